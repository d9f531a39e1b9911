//! A TCP proxy for fault injection: it forwards loopback connections to the
//! relay and can cut them, stall them or delay them, at the test's command
//! or at random points.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

struct Inner {
    upstream: SocketAddr,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
    /// While true, new connections are refused (closed at once).
    down: AtomicBool,
    /// Forwarding pauses while true (a stalled network).
    stalled: AtomicBool,
    /// Extra delay per forwarded chunk, in ms.
    delay_ms: AtomicU64,
    pub cuts: AtomicU64,
    conns: Mutex<u64>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            upstream,
            cut,
            down: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            conns: Mutex::new(0),
        });
        let i = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if i.down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let i = i.clone();
                tokio::spawn(async move { pipe(i, client).await });
            }
        });
        Proxy { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Cuts every open connection (both directions, no close frames).
    pub fn cut(&self) {
        self.inner.cuts.fetch_add(1, Ordering::SeqCst);
        self.inner.cut.send_modify(|n| *n += 1);
    }

    /// Refuses new connections (and cuts the open ones) until `up`.
    pub fn down(&self) {
        self.inner.down.store(true, Ordering::SeqCst);
        self.cut();
    }

    pub fn up(&self) {
        self.inner.down.store(false, Ordering::SeqCst);
    }

    pub fn stall(&self, on: bool) {
        self.inner.stalled.store(on, Ordering::SeqCst);
    }

    pub fn delay(&self, ms: u64) {
        self.inner.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn connections(&self) -> u64 {
        *self.inner.conns.lock().unwrap()
    }
}

async fn pipe(i: Arc<Inner>, client: TcpStream) {
    let Ok(server) = TcpStream::connect(i.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    *i.conns.lock().unwrap() += 1;
    let mut cut = i.cut.subscribe();
    cut.borrow_and_update();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = copy(i.clone(), cr, sw);
    let down = copy(i.clone(), sr, cw);
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut.changed() => {}
    }
    // Dropping both halves of both sockets resets the connection.
}

async fn copy(
    i: Arc<Inner>,
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while i.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let d = i.delay_ms.load(Ordering::SeqCst);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
