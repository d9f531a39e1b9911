//! Shared pieces of the load generator: the protocols it speaks, process
//! CPU and memory readings, and latency statistics.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A load-generator connection.
pub type Ws = WebSocketStream<TcpStream>;

/// The protocol a server under test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// Zerorelay protocol v1 (hello, join, publish, acks).
    Zerorelay,
    /// Every text frame goes to every other connection (baseline, ws).
    Raw,
    /// Socket.IO v4 over Engine.IO v4 WebSocket transport.
    Socketio,
}

/// The bench group/room name.
pub const GROUP: &str = "bench";

/// Opens a WebSocket to `url` (`ws://host:port/path`) from `source`.
pub async fn connect(url: &str, source: Option<IpAddr>) -> std::io::Result<Ws> {
    let rest = url.strip_prefix("ws://").expect("ws:// URL");
    let hostport = rest.split('/').next().expect("host:port");
    let addr: SocketAddr = hostport.parse().expect("an IP:port URL");
    let sock = TcpSocket::new_v4()?;
    // Ports of earlier runs may linger in TIME_WAIT on this side.
    sock.set_reuseaddr(true)?;
    if let Some(ip) = source {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let tcp = sock.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .write_buffer_size(16 << 10);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
        .await
        .map_err(std::io::Error::other)?;
    Ok(ws)
}

/// The URL for a protocol (Socket.IO has its own path and query).
pub fn url_for(proto: Proto, base: &str) -> String {
    match proto {
        Proto::Socketio => {
            let hostport = base
                .trim_start_matches("ws://")
                .split('/')
                .next()
                .expect("host:port");
            format!("ws://{hostport}/socket.io/?EIO=4&transport=websocket")
        }
        _ => base.to_owned(),
    }
}

async fn next_text(ws: &mut Ws) -> std::io::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(std::io::Error::other(e)),
            None => return Err(std::io::Error::other("closed")),
        }
    }
}

/// Says hello (as `user`) and, when `join`, joins the bench group.
pub async fn handshake(ws: &mut Ws, proto: Proto, user: &str, join: bool) -> std::io::Result<()> {
    match proto {
        Proto::Raw => Ok(()),
        Proto::Zerorelay => {
            let hello = format!(r#"{{"type":"hello","v":1,"user":"{user}"}}"#);
            ws.send(Message::text(hello))
                .await
                .map_err(std::io::Error::other)?;
            let w = next_text(ws).await?;
            if !w.contains("\"welcome\"") {
                return Err(std::io::Error::other(format!("no welcome: {w}")));
            }
            if join {
                let j = format!(r#"{{"type":"join","id":1,"group":"{GROUP}"}}"#);
                ws.send(Message::text(j))
                    .await
                    .map_err(std::io::Error::other)?;
                let ok = next_text(ws).await?;
                if !ok.contains("\"ok\"") {
                    return Err(std::io::Error::other(format!("join refused: {ok}")));
                }
            }
            Ok(())
        }
        Proto::Socketio => {
            let open = next_text(ws).await?;
            if !open.starts_with('0') {
                return Err(std::io::Error::other(format!("no engine.io open: {open}")));
            }
            ws.send(Message::text("40"))
                .await
                .map_err(std::io::Error::other)?;
            let connected = next_text(ws).await?;
            if !connected.starts_with("40") {
                return Err(std::io::Error::other(format!(
                    "no socket.io connect: {connected}"
                )));
            }
            if join {
                let j = format!(r#"42["join","{GROUP}"]"#);
                ws.send(Message::text(j))
                    .await
                    .map_err(std::io::Error::other)?;
            }
            Ok(())
        }
    }
}

/// A JSON payload of `bytes` bytes (at least its fields' length) carrying a
/// send time (ns since the run's epoch) and a message number.
pub fn payload(t_ns: u64, n: u64, bytes: usize) -> String {
    let mut p = format!(r#"{{"t":{t_ns},"n":{n},"p":""#);
    while p.len() + 2 < bytes {
        p.push('x');
    }
    p.push_str("\"}");
    p
}

/// The frame that publishes `payload` to the bench group.
pub fn publish_frame(proto: Proto, payload: &str) -> String {
    match proto {
        Proto::Zerorelay => format!(r#"{{"type":"publish","group":"{GROUP}","data":{payload}}}"#),
        Proto::Raw => payload.to_owned(),
        Proto::Socketio => format!(r#"42["pub","{GROUP}",{payload}]"#),
    }
}

/// The unsigned integer whose digits start at `at` in `b`, and the index
/// after it.
fn digits_at(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut i = at;
    while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    (i > at).then_some((v, i))
}

/// Finds the payload (`{"t":…,"n":…`) in a frame. One searcher, built once:
/// the load generator checks every delivery, and on one core the cost of
/// checking them bounds what it can receive.
static PAYLOAD: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(T_KEY));
const T_KEY: &[u8] = br#"{"t":"#;
const N_KEY: &[u8] = br#","n":"#;

/// A delivery's payload numbers: `(t_ns, n, zerorelay seq)`.
///
/// Zerorelay's `message` frame is read in the server's canonical layout
/// (`{"type":"message","seq":N,…`, PROTOCOL.md); anything else is not a
/// delivery.
pub fn delivery(proto: Proto, text: &str) -> Option<(u64, u64, Option<u64>)> {
    const ZR: &[u8] = br#"{"type":"message","seq":"#;
    const SIO: &[u8] = br#"42["msg","#;
    let b = text.as_bytes();
    let (seq, from) = match proto {
        Proto::Zerorelay if !b.starts_with(ZR) => return None,
        Proto::Zerorelay => {
            let (seq, end) = digits_at(b, ZR.len())?;
            (Some(seq), end)
        }
        Proto::Socketio if !b.starts_with(SIO) => return None,
        Proto::Socketio => (None, SIO.len()),
        Proto::Raw => (None, 0),
    };
    let p = from + PAYLOAD.find(&b[from..])?;
    let (t, end) = digits_at(b, p + T_KEY.len())?;
    if !b[end..].starts_with(N_KEY) {
        return None;
    }
    let (n, _) = digits_at(b, end + N_KEY.len())?;
    Some((t, n, seq))
}

/// CPU seconds (user + system) used so far by a process.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of /proc/pid/stat; clock ticks are 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// p50, p99 and max of latencies in microseconds.
pub fn percentiles(mut v: Vec<u32>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_unstable();
    let at = |q: f64| f64::from(v[((v.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.99), f64::from(*v.last().expect("non-empty")))
}

/// Time since the run's epoch in ns.
pub fn since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// A `Duration` in seconds as f64.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// When a Zerorelay subscriber acks, the way the client engine decides it:
/// once `batch` messages are unacknowledged, or `interval` after the first
/// unacknowledged one. The engine keeps a timer for the interval; here the
/// clock is read as each message arrives, so an ack the timer would send
/// between two messages goes out with the second.
pub struct AckPolicy {
    batch: u32,
    interval: Duration,
    unacked: u32,
    first: Option<Instant>,
}

impl AckPolicy {
    /// `batch` 0 never acks.
    pub fn new(batch: u32, interval: Duration) -> Self {
        AckPolicy {
            batch,
            interval,
            unacked: 0,
            first: None,
        }
    }

    /// Counts one received message; true when an ack covering it is due.
    pub fn due(&mut self) -> bool {
        if self.batch == 0 {
            return false;
        }
        self.unacked += 1;
        let first = *self.first.get_or_insert_with(Instant::now);
        let due = self.unacked >= self.batch || first.elapsed() >= self.interval;
        if due {
            self.unacked = 0;
            self.first = None;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_their_size_and_parse_back() {
        assert_eq!(payload(123_456_789, 42, 205).len(), 205);
        let p = payload(123_456_789, 42, 64);
        assert_eq!(p.len(), 64, "{p}");
        for proto in [Proto::Raw, Proto::Zerorelay, Proto::Socketio] {
            let frame = match proto {
                Proto::Zerorelay => format!(
                    r#"{{"type":"message","seq":7,"kind":"group","from":"p","from_session":"s_1","group":"bench","data":{p},"ts":1}}"#
                ),
                Proto::Raw => p.clone(),
                Proto::Socketio => format!(r#"42["msg",{p}]"#),
            };
            let (t, n, seq) = delivery(proto, &frame).unwrap();
            assert_eq!((t, n), (123_456_789, 42));
            assert_eq!(seq, (proto == Proto::Zerorelay).then_some(7));
        }
    }

    #[test]
    fn frames_that_are_not_deliveries_are_not_counted() {
        let p = payload(5, 6, 64);
        for (proto, frame) in [
            (Proto::Zerorelay, r#"{"type":"ok","id":1}"#.to_owned()),
            (
                Proto::Zerorelay,
                format!(r#"{{"type":"message","seq":x,"data":{p}}}"#),
            ),
            (Proto::Socketio, r#"2"#.to_owned()),
            (Proto::Raw, r#"{"t":1}"#.to_owned()),
            (
                Proto::Raw,
                r#"{"t":99999999999999999999999,"n":1}"#.to_owned(),
            ),
        ] {
            assert_eq!(delivery(proto, &frame), None, "{frame}");
        }
    }

    #[test]
    fn acks_by_count_or_by_time() {
        let mut p = AckPolicy::new(4, Duration::from_secs(3600));
        let acks: Vec<bool> = (0..8).map(|_| p.due()).collect();
        assert_eq!(acks, [false, false, false, true, false, false, false, true]);

        let mut p = AckPolicy::new(1000, Duration::from_millis(20));
        assert!(!p.due());
        std::thread::sleep(Duration::from_millis(25));
        assert!(p.due(), "the interval has passed since the first");
        assert!(!p.due(), "the interval starts again after an ack");

        let mut p = AckPolicy::new(0, Duration::ZERO);
        assert!((0..1000).all(|_| !p.due()), "batch 0 never acks");
    }
}
