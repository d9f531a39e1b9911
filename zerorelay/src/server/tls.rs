//! `wss://` served by the relay itself (rustls, ring provider, TLS 1.2
//! minimum).
//!
//! The certificate is resolved per handshake from a slot that
//! [`Tls::reload`] replaces: on SIGHUP (the `zerorelay` command), on
//! [`crate::Relay::reload_tls`], and when the files change (checked every
//! `tls.watch_ms`). Connections already open keep their session keys; new
//! ones get the new certificate. A reload that fails (a half-written file,
//! a key that does not match) keeps the old certificate and says why.

use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::{Error, Result};

/// The relay's TLS side: an acceptor whose certificate can be replaced.
pub(crate) struct Tls {
    cert_file: String,
    key_file: String,
    current: Arc<Slot>,
    /// The files' modification times when last loaded.
    loaded: parking_lot::Mutex<(Option<SystemTime>, Option<SystemTime>)>,
    pub(crate) acceptor: TlsAcceptor,
}

#[derive(Debug)]
struct Slot(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Slot {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().clone())
    }
}

fn load(cert_file: &str, key_file: &str) -> std::result::Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cannot read {cert_file}: {e}"))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("{cert_file}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{cert_file} holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("cannot read a private key from {key_file}: {e}"))?;
    let provider = rustls::crypto::ring::default_provider();
    let ck = CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| format!("{cert_file} and {key_file}: {e}"))?;
    Ok(ck)
}

fn mtime(path: &str) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Tls {
    /// Loads the certificate and key named by `[tls]`.
    pub(crate) fn from_config(c: &TlsConfig) -> Result<Tls> {
        let (Some(cert_file), Some(key_file)) = (c.cert_file.clone(), c.key_file.clone()) else {
            return Err(Error::Config(
                "`tls.cert_file` and `tls.key_file` must both be set".into(),
            ));
        };
        let loaded = (mtime(&cert_file), mtime(&key_file));
        let ck = load(&cert_file, &key_file).map_err(|e| Error::Config(format!("`tls`: {e}")))?;
        let current = Arc::new(Slot(RwLock::new(Arc::new(ck))));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::Config(format!("`tls`: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            cert_file,
            key_file,
            current,
            loaded: parking_lot::Mutex::new(loaded),
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// Reads the files again and, if they hold a valid pair, serves it to
    /// new connections.
    pub(crate) fn reload(&self) -> std::result::Result<(), String> {
        let stamp = (mtime(&self.cert_file), mtime(&self.key_file));
        let ck = load(&self.cert_file, &self.key_file)?;
        *self.current.0.write() = Arc::new(ck);
        *self.loaded.lock() = stamp;
        tracing::info!(cert = %self.cert_file, "Reloaded the TLS certificate.");
        Ok(())
    }

    /// Reloads when either file changed since the last load.
    pub(crate) fn reload_if_changed(&self) {
        let stamp = (mtime(&self.cert_file), mtime(&self.key_file));
        if stamp == *self.loaded.lock() {
            return;
        }
        if let Err(e) = self.reload() {
            // Remember the stamp anyway: a broken file is reported once,
            // not every tick, and the next write is noticed.
            *self.loaded.lock() = stamp;
            tracing::warn!(error = %e, "The TLS files changed but could not be loaded; the previous certificate stays in use.");
        }
    }
}
