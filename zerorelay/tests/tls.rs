//! `wss://` served by the relay itself: a certificate made at test time,
//! clients that trust it (the client engine through `ca_file`, a raw
//! rustls client), reload on change without dropping connections, and the
//! Origin allow-list.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, Client};
use serde_json::json;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use zerorelay::{Config, Relay};

struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Dir {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let p = std::env::temp_dir().join(format!("zerorelay-tls-{:x}", u64::from_le_bytes(b)));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }

    /// Writes aside and renames, as certificate tools do.
    fn write(&self, name: &str, text: &str) {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.0.join(name)).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for localhost: (cert PEM, key PEM).
fn certificate() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

struct TlsServer {
    relay: Relay,
    port: u16,
    task: tokio::task::JoinHandle<zerorelay::Result<()>>,
}

async fn start_tls(dir: &Dir, mut c: Config) -> TlsServer {
    c.tls.cert_file = Some(dir.path("cert.pem"));
    c.tls.key_file = Some(dir.path("key.pem"));
    let relay = Relay::builder(c).build().unwrap();
    assert!(relay.is_tls());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(relay.clone().serve(listener));
    TlsServer { relay, port, task }
}

impl TlsServer {
    fn url(&self) -> String {
        format!("wss://localhost:{}/ws", self.port)
    }

    async fn stop(self) {
        self.relay.shutdown().await;
        self.task.await.unwrap().unwrap();
    }
}

/// A raw client trusting only `ca_pem`, limited to `versions`.
async fn raw_tls(
    url: &str,
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Client, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(cfg));
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url.into_client_request().unwrap(),
        None,
        false,
        Some(connector),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut c = Client {
        ws,
        session: String::new(),
        key: String::new(),
    };
    let w = c.hello(json!({"type":"hello","v":1,"user":"alice"})).await;
    assert_eq!(w["type"], "welcome", "{w}");
    Ok(c)
}

#[tokio::test]
async fn the_relay_serves_wss_to_the_client_engine_and_to_tls_1_2_clients() {
    let dir = Dir::new();
    let (cert, key) = certificate();
    dir.write("cert.pem", &cert);
    dir.write("key.pem", &key);
    dir.write("ca.pem", &cert);
    let s = start_tls(&dir, config()).await;

    let mut o = zerorelay::client::ClientOptions {
        user: Some("bob".into()),
        ..Default::default()
    };
    o.reconnect.max_attempts = Some(0);
    // Not trusted without the extra CA.
    let e = zerorelay::client::Client::connect(&s.url(), o.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "connection", "{e}");
    o.ca_file = Some(dir.path("ca.pem"));
    let (engine, _ev) = zerorelay::client::Client::connect(&s.url(), o)
        .await
        .unwrap();
    engine.join("secure").await.unwrap();

    let mut old = raw_tls(&s.url(), &cert, &[&rustls::version::TLS12])
        .await
        .unwrap();
    old.ok(json!({"type":"join","id":1,"group":"secure"})).await;
    let mut new = raw_tls(&s.url(), &cert, &[&rustls::version::TLS13])
        .await
        .unwrap();
    new.ok(json!({"type":"publish","id":1,"group":"secure","data":"sealed"}))
        .await;
    assert_eq!(old.message().await["data"], "sealed");

    // Plain ws:// to a TLS port is not a WebSocket.
    let plain = format!("ws://127.0.0.1:{}/ws", s.port);
    assert!(tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(plain)
    )
    .await
    .unwrap()
    .is_err());
    engine.close().await;
    s.stop().await;
}

#[tokio::test]
async fn a_changed_certificate_is_served_to_new_connections_without_dropping_open_ones() {
    let dir = Dir::new();
    let (cert_a, key_a) = certificate();
    let (cert_b, key_b) = certificate();
    dir.write("cert.pem", &cert_a);
    dir.write("key.pem", &key_a);
    let mut c = config();
    c.tls.watch_ms = 50;
    let s = start_tls(&dir, c).await;
    let mut open = raw_tls(&s.url(), &cert_a, &[&rustls::version::TLS13])
        .await
        .unwrap();
    assert!(raw_tls(&s.url(), &cert_b, &[&rustls::version::TLS13])
        .await
        .is_err());

    // The files change (key first, as a renewal would): within a few
    // checks new connections get certificate B.
    dir.write("key.pem", &key_b);
    dir.write("cert.pem", &cert_b);
    let mut served_b = None;
    for _ in 0..100 {
        if let Ok(c) = raw_tls(&s.url(), &cert_b, &[&rustls::version::TLS13]).await {
            served_b = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut b = served_b.expect("certificate B is served after the files change");
    open.ok(json!({"type":"join","id":1,"group":"g"})).await;
    b.ok(json!({"type":"publish","id":1,"group":"g","data":"after reload"}))
        .await;
    assert_eq!(open.message().await["data"], "after reload");

    // A broken pair is refused by an explicit reload and the current one stays.
    dir.write(
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let e = s.relay.reload_tls().unwrap_err().to_string();
    assert!(e.contains("tls"), "{e}");
    raw_tls(&s.url(), &cert_b, &[&rustls::version::TLS13])
        .await
        .unwrap();
    s.stop().await;
}

#[tokio::test]
async fn bad_tls_configuration_is_refused_naming_the_key() {
    let dir = Dir::new();
    let mut c = config();
    c.tls.cert_file = Some(dir.path("cert.pem"));
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("tls.key_file"), "{e}");
    c.tls.key_file = Some(dir.path("key.pem"));
    let e = Relay::builder(c)
        .build()
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("cannot read"), "{e}");
    let (cert, _) = certificate();
    let (_, other_key) = certificate();
    dir.write("cert.pem", &cert);
    dir.write("key.pem", &other_key);
    let mut c = config();
    c.tls.cert_file = Some(dir.path("cert.pem"));
    c.tls.key_file = Some(dir.path("key.pem"));
    let e = Relay::builder(c)
        .build()
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("tls"),
        "a key that does not match the certificate: {e}"
    );
}

#[tokio::test]
async fn browsers_connect_only_from_allowed_origins() {
    let mut c = config();
    c.server.allowed_origins = vec![
        "https://app.example.com".into(),
        "https://*.example.org".into(),
    ];
    let s = common::start(c).await;
    let upgrade = |origin: Option<&str>| {
        let mut req = s.url().into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    assert!(upgrade(Some("https://app.example.com")).await.is_ok());
    assert!(upgrade(Some("https://APP.example.com")).await.is_ok());
    assert!(upgrade(Some("https://chat.example.org")).await.is_ok());
    assert!(upgrade(None).await.is_ok(), "not a browser");
    for bad in ["https://evil.example.net", "http://app.example.com", "null"] {
        match upgrade(Some(bad)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 403, "{bad}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let mut bad = config();
    bad.server.allowed_origins = vec!["app.example.com".into()];
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("server.allowed_origins"));
    s.stop().await;
}
