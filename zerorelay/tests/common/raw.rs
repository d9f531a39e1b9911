//! A raw WebSocket client over a plain TCP socket, for input no WebSocket
//! library would send: frames split at any byte, unmasked frames, oversized
//! control frames, reserved bits and opcodes, and half-finished upgrades.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Encodes one client frame. `mask` as RFC 6455 requires of clients;
/// `rsv` is the three reserved bits (0 in a valid frame).
pub fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    let mut b = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0xF)];
    let m = if mask { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        b.push(m | len as u8);
    } else if len <= 0xFFFF {
        b.push(m | 126);
        b.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        b.push(m | 127);
        b.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if mask {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        b.extend_from_slice(&key);
        b.extend(payload.iter().enumerate().map(|(i, x)| x ^ key[i % 4]));
    } else {
        b.extend_from_slice(payload);
    }
    b
}

/// A valid masked text frame.
pub fn text(t: &str) -> Vec<u8> {
    frame(true, 0, OP_TEXT, t.as_bytes(), true)
}

/// A server frame as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Text(String),
    Close(u16),
    Ping,
    Pong(Vec<u8>),
    Other(u8),
    /// The connection ended without a close frame (EOF or reset).
    Eof,
}

pub struct RawWs {
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Opens TCP only.
    pub async fn tcp(addr: SocketAddr) -> RawWs {
        RawWs {
            tcp: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// Opens TCP and completes the upgrade on `/ws`.
    pub async fn connect(addr: SocketAddr) -> RawWs {
        let mut c = RawWs::tcp(addr).await;
        c.upgrade().await;
        c
    }

    pub async fn upgrade(&mut self) {
        let req = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        self.tcp.write_all(req.as_bytes()).await.unwrap();
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                assert!(head.starts_with("HTTP/1.1 101"), "{head}");
                self.buf.drain(..end + 4);
                return;
            }
            assert!(self.fill().await > 0, "upgrade answered");
        }
    }

    /// Upgrades and says hello as `user`; returns the welcome.
    pub async fn hello(addr: SocketAddr, user: &str) -> (RawWs, Value) {
        let mut c = RawWs::connect(addr).await;
        c.send(&text(&format!(
            r#"{{"type":"hello","v":1,"user":"{user}"}}"#
        )))
        .await;
        let w = c.json().await;
        assert_eq!(w["type"], "welcome", "{w}");
        (c, w)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// Writes `bytes` in pieces of the given sizes (the rest in one piece),
    /// with `pause` after each.
    pub async fn send_split(&mut self, bytes: &[u8], sizes: &[usize], pause: Duration) {
        let mut at = 0;
        for &n in sizes {
            let end = (at + n).min(bytes.len());
            self.tcp.write_all(&bytes[at..end]).await.unwrap();
            self.tcp.flush().await.unwrap();
            at = end;
            tokio::time::sleep(pause).await;
        }
        if at < bytes.len() {
            self.tcp.write_all(&bytes[at..]).await.unwrap();
        }
    }

    /// Writes without failing when the server already closed.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    async fn fill(&mut self) -> usize {
        let mut b = [0u8; 8192];
        match tokio::time::timeout(WAIT, self.tcp.read(&mut b)).await {
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&b[..n]);
                n
            }
            Ok(Err(_)) => 0,
            Err(_) => panic!("nothing arrived within the wait"),
        }
    }

    /// The next server frame (server frames are unmasked).
    pub async fn next(&mut self) -> Got {
        loop {
            if let Some((got, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return got;
            }
            if self.fill().await == 0 {
                return Got::Eof;
            }
        }
    }

    /// The next frame within `within`, or `None`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Got> {
        tokio::time::timeout(within, self.next()).await.ok()
    }

    /// The next text frame, as JSON (pings skipped).
    pub async fn json(&mut self) -> Value {
        loop {
            match self.next().await {
                Got::Text(t) => return serde_json::from_str(&t).unwrap(),
                Got::Ping | Got::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Text frames until the close; its code, or `None` when the
    /// connection ended without one.
    pub async fn closed(&mut self) -> (Option<u16>, Vec<Value>) {
        let mut texts = Vec::new();
        loop {
            match self.next().await {
                Got::Text(t) => texts.push(serde_json::from_str(&t).unwrap()),
                Got::Close(c) => return (Some(c), texts),
                Got::Eof => return (None, texts),
                _ => continue,
            }
        }
    }

    /// Whether the server ends the connection (EOF or reset) within `within`,
    /// reading and discarding anything before.
    pub async fn ended_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut b = [0u8; 8192];
        loop {
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut b)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn parse(b: &[u8]) -> Option<(Got, usize)> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0xF;
    let (len, mut at) = match b[1] & 0x7F {
        126 => {
            if b.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([b[2], b[3]]) as usize, 4)
        }
        127 => {
            if b.len() < 10 {
                return None;
            }
            (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            )
        }
        n => (n as usize, 2),
    };
    if b[1] & 0x80 != 0 {
        at += 4;
    }
    if b.len() < at + len {
        return None;
    }
    let p = &b[at..at + len];
    let got = match opcode {
        OP_TEXT => Got::Text(String::from_utf8(p.to_vec()).expect("server text is UTF-8")),
        OP_CLOSE if p.len() >= 2 => Got::Close(u16::from_be_bytes([p[0], p[1]])),
        OP_CLOSE => Got::Close(1005),
        OP_PING => Got::Ping,
        OP_PONG => Got::Pong(p.to_vec()),
        o => Got::Other(o),
    };
    Some((got, at + len))
}
