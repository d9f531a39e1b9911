//! Test harness: a real relay on an ephemeral loopback port and a minimal
//! WebSocket client that speaks raw JSON frames.
#![allow(dead_code)]

pub mod http;
pub mod proxy;
pub mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use zerorelay::{Config, Relay, RelayBuilder};

/// How long a test waits for a frame that must arrive.
pub const WAIT: Duration = Duration::from_secs(5);

/// A configuration with short timers for tests.
pub fn config() -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".into();
    c.server.hello_timeout_ms = 2_000;
    c.server.shutdown_grace_ms = 1_000;
    c
}

pub struct Server {
    pub relay: Relay,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<zerorelay::Result<()>>,
}

pub async fn start(config: Config) -> Server {
    start_with(Relay::builder(config)).await
}

pub async fn start_with(builder: RelayBuilder) -> Server {
    let relay = builder.build().expect("valid test config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(relay.clone().serve(listener));
    Server { relay, addr, task }
}

impl Server {
    /// A relay the test started itself.
    pub fn from_parts(
        relay: Relay,
        addr: SocketAddr,
        task: tokio::task::JoinHandle<zerorelay::Result<()>>,
    ) -> Server {
        Server { relay, addr, task }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Graceful shutdown, and the serve task must end.
    pub async fn stop(self) {
        self.relay.shutdown().await;
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("serve ends after shutdown")
            .unwrap()
            .unwrap();
    }

    /// Waits until the session's connection is detached (bounded).
    pub async fn wait_detached(&self, session: &str) {
        for _ in 0..500 {
            if self
                .relay
                .sessions()
                .iter()
                .any(|s| s.id == session && !s.connected)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("session {session} never detached");
    }

    /// Waits until the session no longer exists (bounded).
    pub async fn wait_gone(&self, session: &str) {
        for _ in 0..500 {
            if !self.relay.sessions().iter().any(|s| s.id == session) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("session {session} never went away");
    }
}

/// A text frame or a close.
#[derive(Debug)]
pub enum Frame {
    Text(Value),
    Close(u16),
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub session: String,
    /// The `resume_key` of the last `welcome`.
    pub key: String,
}

/// Every resume key a test client was welcomed with, by session: what the
/// session's legitimate owner knows (see [`Client::resume`]).
static KEYS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// The key the owner of `session` was given.
pub fn key_of(session: &str) -> String {
    KEYS.lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(s, _)| s == session)
        .map(|(_, k)| k.clone())
        .unwrap_or_else(|| panic!("no welcome seen for {session}"))
}

impl Client {
    /// Connects without saying hello.
    pub async fn raw(server: &Server) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(server.url())
            .await
            .unwrap();
        Client {
            ws,
            session: String::new(),
            key: String::new(),
        }
    }

    /// Connects and says hello as `user` (development mode).
    pub async fn connect(server: &Server, user: &str) -> Client {
        let mut c = Client::raw(server).await;
        let w = c.hello(json!({"type":"hello","v":1,"user":user})).await;
        assert_eq!(w["type"], "welcome", "{w}");
        c
    }

    /// Resumes `session` after `last_seq`, as its owner: with the key its
    /// welcome carried.
    pub async fn resume(
        server: &Server,
        user: &str,
        session: &str,
        last_seq: u64,
    ) -> (Client, Value) {
        Client::resume_with_key(server, user, session, &key_of(session), last_seq).await
    }

    /// Resumes `session` presenting `key` (right or wrong).
    pub async fn resume_with_key(
        server: &Server,
        user: &str,
        session: &str,
        key: &str,
        last_seq: u64,
    ) -> (Client, Value) {
        let mut c = Client::raw(server).await;
        let w = c
            .hello(json!({"type":"hello","v":1,"user":user,"resume":{"session":session,"key":key,"last_seq":last_seq}}))
            .await;
        (c, w)
    }

    /// Sends a hello and returns the answer; remembers the session.
    pub async fn hello(&mut self, hello: Value) -> Value {
        self.send(hello).await;
        let w = self.recv().await;
        if w["type"] == "welcome" {
            self.session = w["session"].as_str().unwrap().to_owned();
            self.key = w["resume_key"].as_str().unwrap().to_owned();
            KEYS.lock()
                .unwrap()
                .push((self.session.clone(), self.key.clone()));
        }
        w
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, t: &str) {
        self.ws.send(Message::text(t.to_owned())).await.unwrap();
    }

    /// The next text frame as JSON; panics on close or after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        match self.next_frame().await {
            Frame::Text(v) => v,
            Frame::Close(code) => panic!("expected a text frame, got a close with {code}"),
        }
    }

    /// The next text frame as its exact text.
    pub async fn recv_text(&mut self) -> String {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends a request and returns the next frame (its reply).
    pub async fn request(&mut self, v: Value) -> Value {
        self.send(v).await;
        self.recv().await
    }

    /// Sends a request and asserts it was answered `ok` with its id.
    pub async fn ok(&mut self, v: Value) {
        let id = v["id"].clone();
        let r = self.request(v).await;
        assert_eq!(r, json!({"type":"ok","id":id}));
    }

    /// Receives a `message` frame and returns it.
    pub async fn message(&mut self) -> Value {
        let m = self.recv().await;
        assert_eq!(m["type"], "message", "{m}");
        m
    }

    /// Asserts the next frame is an error with this code, and returns it.
    pub async fn error(&mut self, code: &str) -> Value {
        let e = self.recv().await;
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["code"], code, "{e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
        e
    }

    /// Reads until the server's close frame and returns its code; text frames
    /// before it are returned too.
    pub async fn closed(&mut self) -> (u16, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close within the wait");
            match m {
                Some(Ok(Message::Close(Some(f)))) => return (u16::from(f.code), before),
                Some(Ok(Message::Close(None))) => return (1005, before),
                Some(Ok(Message::Text(t))) => before.push(serde_json::from_str(&t).unwrap()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("transport error before close: {e}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Asserts nothing but pings arrives for `ms` milliseconds.
    pub async fn silent(&mut self, ms: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// The next text frame or the close (its code), skipping pings.
    pub async fn next_frame(&mut self) -> Frame {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait")
                .expect("the connection is open")
                .expect("no transport error");
            match m {
                Message::Text(t) => return Frame::Text(serde_json::from_str(&t).unwrap()),
                Message::Close(Some(f)) => return Frame::Close(u16::from(f.code)),
                Message::Close(None) => return Frame::Close(1005),
                _ => continue,
            }
        }
    }

    /// Sends every frame with one flush (a burst).
    pub async fn send_all(&mut self, frames: &[String]) {
        for f in frames {
            self.ws.feed(Message::text(f.clone())).await.unwrap();
        }
        self.ws.flush().await.unwrap();
    }

    /// Closes cleanly with 1000.
    pub async fn close(mut self) {
        self.ws.close(None).await.unwrap();
        while let Some(Ok(_)) = self.ws.next().await {}
    }

    /// Drops the TCP connection without a close frame (a network failure).
    pub fn cut(self) {
        drop(self.ws);
    }

    /// Acknowledges everything up to `seq`.
    pub async fn ack(&mut self, seq: u64) {
        self.send(json!({"type":"ack","seq":seq})).await;
    }
}
