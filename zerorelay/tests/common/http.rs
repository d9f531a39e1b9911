//! A tiny HTTP/1.1 server on an ephemeral loopback port, for the endpoints
//! the relay calls (the auth callback, a JWKS URL). Each request gets one
//! answer from the test's handler, then the connection is closed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the handler answers: status, body, and how long to wait first.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
}

pub struct HttpServer {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Serves `path`; `handler` sees each request's body.
    pub async fn start(
        path: &str,
        handler: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> HttpServer {
        HttpServer::serve(path, handler, None).await
    }

    /// Serves `path` over TLS with `cert`/`key` (PEM), as `https://localhost:…`.
    pub async fn start_tls(
        path: &str,
        handler: impl Fn(&str) -> Reply + Send + Sync + 'static,
        cert: &str,
        key: &str,
    ) -> HttpServer {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        let certs =
            vec![rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        HttpServer::serve(path, handler, Some(acceptor)).await
    }

    async fn serve(
        path: &str,
        handler: impl Fn(&str) -> Reply + Send + Sync + 'static,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}{path}"),
            None => format!("http://127.0.0.1:{port}{path}"),
        };
        let hits = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let counted = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let hits = counted.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let mut io: Box<dyn Io> = match tls {
                        None => Box::new(tcp),
                        Some(a) => match a.accept(tcp).await {
                            Ok(s) => Box::new(s),
                            Err(_) => return,
                        },
                    };
                    let tcp = &mut io;
                    let Some(body) = read_request(tcp).await else {
                        return;
                    };
                    hits.fetch_add(1, Ordering::SeqCst);
                    let reply = handler(&body);
                    tokio::time::sleep(reply.delay).await;
                    let text = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                        reply.status,
                        reply.body.len(),
                        reply.body
                    );
                    let _ = tcp.write_all(text.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        HttpServer { url, hits, task }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain or TLS stream.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Reads one request; returns its body.
async fn read_request(tcp: &mut Box<dyn Io>) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    while buf.len() < head_end + len {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned())
}
