//! What the relay counts, for `GET /metrics` ([`exposition`]).
//!
//! Every counter is a relaxed atomic bumped where the event happens; labels
//! come from small fixed sets (frame types, close codes, error codes,
//! reasons), each an index into an array, so counting never takes a lock
//! or allocates, and no user, session or group name ever becomes a label.
//! Gauges that describe state (sessions, groups, outbox bytes, the
//! process) are read at scrape time instead of being kept up to date on
//! the routing path. With `metrics.enabled = false` the routing-path
//! counters (frames, latency) are skipped.

pub mod exposition;
mod process;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use crate::error::ErrorCode;
use crate::protocol::close;

/// A set of label values a counter family is indexed by.
pub(crate) trait LabelSet: Copy + 'static {
    /// The label's name.
    const NAME: &'static str;
    /// Every value, in index order.
    const VALUES: &'static [&'static str];
    fn index(self) -> usize;
}

/// A counter per label value: `[AtomicU64; N]` addressed by `L`.
pub(crate) struct Family<L: LabelSet, const N: usize> {
    counts: [AtomicU64; N],
    _l: std::marker::PhantomData<L>,
}

impl<L: LabelSet, const N: usize> Default for Family<L, N> {
    fn default() -> Self {
        Family {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            _l: std::marker::PhantomData,
        }
    }
}

impl<L: LabelSet, const N: usize> Family<L, N> {
    pub(crate) fn inc(&self, l: L) {
        self.add(l, 1);
    }

    pub(crate) fn add(&self, l: L, n: u64) {
        self.counts[l.index()].fetch_add(n, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn get(&self, l: L) -> u64 {
        self.counts[l.index()].load(Ordering::Relaxed)
    }

    /// `(label value, count)` for every value.
    pub(crate) fn values(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        L::VALUES
            .iter()
            .zip(&self.counts)
            .map(|(v, c)| (*v, c.load(Ordering::Relaxed)))
    }
}

macro_rules! label_set {
    ($(#[$m:meta])* $name:ident, $label:literal, { $($variant:ident => $value:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum $name { $($variant),+ }
        impl LabelSet for $name {
            const NAME: &'static str = $label;
            const VALUES: &'static [&'static str] = &[$($value),+];
            fn index(self) -> usize { self as usize }
        }
        impl $name {
            /// How many values the label has.
            pub const COUNT: usize = [$($value),+].len();
        }
    };
}

label_set!(
    /// Why a connection did not get as far as `welcome`.
    HandshakeFailure, "reason", {
        NotWebsocket => "not_websocket",
        Tls => "tls",
        UpgradeTimeout => "upgrade_timeout",
        Origin => "origin",
        AddressLimit => "address_limit",
        ConnectionLimit => "connection_limit",
        ShuttingDown => "shutting_down",
        RemoteDevelopment => "remote_in_development",
        HelloTimeout => "hello_timeout",
        BadHello => "bad_hello",
        Auth => "auth",
        SessionRefused => "session_refused",
    }
);

label_set!(
    /// Why an authentication (at `hello` or a `refresh`) failed.
    AuthFailure, "reason", {
        Invalid => "invalid",
        Forbidden => "forbidden",
        Backend => "backend",
        Timeout => "timeout",
    }
);

label_set!(
    /// The type of a frame a client sent.
    FrameType, "type", {
        Hello => "hello",
        Ack => "ack",
        Ping => "ping",
        Join => "join",
        Leave => "leave",
        Send => "send",
        Publish => "publish",
        Broadcast => "broadcast",
        Rpc => "rpc",
        Refresh => "refresh",
        Presence => "presence",
        Invalid => "invalid",
        Binary => "binary",
    }
);

label_set!(
    /// Why deliveries were dropped before the client acknowledged them.
    DropReason, "reason", {
        OutboxFull => "outbox_full",
        OutboxTotal => "outbox_total",
    }
);

label_set!(
    /// Which rate limit refused a frame.
    RateLimit, "limit", {
        Frames => "frames",
        Acks => "acks",
        Broadcasts => "broadcasts",
        Abuse => "abuse",
    }
);

label_set!(
    /// The delivery kinds of `docs/PROTOCOL.md`.
    Kind, "kind", {
        Direct => "direct",
        Group => "group",
        Broadcast => "broadcast",
    }
);

label_set!(
    /// The endpoints of the HTTP surface.
    Endpoint, "endpoint", {
        Metrics => "/metrics",
        Healthz => "/healthz",
        Readyz => "/readyz",
        Publish => "/api/publish",
        Send => "/api/send",
        Broadcast => "/api/broadcast",
        Disconnect => "/api/disconnect",
        Revoke => "/api/revoke",
        Sessions => "/api/sessions",
        Groups => "/api/groups",
        Presence => "/api/presence",
        Stats => "/api/stats",
        Other => "other",
    }
);

impl LabelSet for ErrorCode {
    const NAME: &'static str = "code";
    const VALUES: &'static [&'static str] = &[
        "bad_frame",
        "bad_request",
        "unsupported",
        "unauthorized",
        "forbidden",
        "not_found",
        "too_large",
        "rate_limited",
        "limit_exceeded",
        "internal",
    ];
    fn index(self) -> usize {
        ErrorCode::ALL
            .iter()
            .position(|c| *c == self)
            .expect("ALL lists every code")
    }
}

/// The close codes a relay sends or receives, as counted; anything else is
/// counted as `other`, a close frame without a code as 1005 (RFC 6455's
/// "no status received"), and a connection that ended without a close
/// frame as `none`.
pub const CLOSE_CODES: [u16; 19] = [
    close::NORMAL,
    close::GOING_AWAY,
    close::PROTOCOL,
    1003,
    1005,
    close::INVALID_PAYLOAD,
    close::POLICY,
    close::TOO_BIG,
    close::INTERNAL,
    close::TRY_AGAIN_LATER,
    close::BAD_HELLO,
    close::AUTH_FAILED,
    close::HELLO_TIMEOUT,
    close::SLOW_CONSUMER,
    close::KICKED,
    close::REVOKED,
    close::TOKEN_EXPIRED,
    close::TAKEN_OVER,
    close::HEARTBEAT_TIMEOUT,
];

/// HTTP statuses counted by value; anything else is counted with the
/// nearest class (`2xx`…).
const STATUSES: [u16; 12] = [200, 400, 401, 403, 404, 405, 413, 415, 429, 500, 503, 0];

/// Upper bounds of the routing-latency histogram's buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Nanosecond bounds of [`LATENCY_BUCKETS`].
const LATENCY_BOUNDS_NS: [u64; 15] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// The process's clock origin for delivery timestamps ([`monotonic_ns`]).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the first call in this process: a delivery's birth
/// time, compared with the time its recipient's socket write starts.
pub fn monotonic_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// A histogram of latencies with atomic buckets (no lock per observation).
#[derive(Default)]
pub(crate) struct Latency {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; 16],
    sum_ns: AtomicU64,
}

impl Latency {
    /// Adds the observations a writer collected in one turn.
    pub(crate) fn add(&self, local: &LocalLatency) {
        if local.count == 0 {
            return;
        }
        for (b, n) in self.buckets.iter().zip(local.buckets) {
            if n > 0 {
                b.fetch_add(u64::from(n), Ordering::Relaxed);
            }
        }
        self.sum_ns.fetch_add(local.sum_ns, Ordering::Relaxed);
    }

    /// Cumulative `(upper bound, count)` pairs, the sum in seconds and the count.
    pub(crate) fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut total = 0;
        let mut out = Vec::with_capacity(16);
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            out.push((le, total));
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (out, sum, total)
    }
}

/// Latencies collected by one writer turn before they are added to the
/// shared histogram at once.
#[derive(Default)]
pub(crate) struct LocalLatency {
    buckets: [u32; 16],
    sum_ns: u64,
    count: u32,
}

impl LocalLatency {
    pub(crate) fn observe(&mut self, ns: u64) {
        let i = LATENCY_BOUNDS_NS.partition_point(|&b| b < ns);
        self.buckets[i] += 1;
        self.sum_ns += ns;
        self.count += 1;
    }
}

/// The relay's counters.
pub struct Metrics {
    /// Whether the routing path counts (`metrics.enabled`).
    pub(crate) on: bool,
    pub(crate) started: Instant,
    /// Connections welcomed, and open now.
    pub(crate) opened: AtomicU64,
    pub(crate) connected: AtomicI64,
    pub(crate) closed: [AtomicU64; CLOSE_CODES.len() + 2],
    pub(crate) handshake_failures: Family<HandshakeFailure, { HandshakeFailure::COUNT }>,
    pub(crate) auth_failures: Family<AuthFailure, { AuthFailure::COUNT }>,
    pub(crate) frames: Family<FrameType, { FrameType::COUNT }>,
    pub(crate) errors: Family<ErrorCode, 10>,
    pub(crate) gaps: AtomicU64,
    pub(crate) acks: AtomicU64,
    pub(crate) redeliveries: AtomicU64,
    pub(crate) resumes: AtomicU64,
    pub(crate) rate_limited: Family<RateLimit, { RateLimit::COUNT }>,
    pub(crate) latency: Latency,
    http: [[AtomicU64; STATUSES.len()]; Endpoint::COUNT],
}

impl Metrics {
    pub(crate) fn new(on: bool) -> Self {
        epoch();
        Metrics {
            on,
            started: Instant::now(),
            opened: AtomicU64::new(0),
            connected: AtomicI64::new(0),
            closed: std::array::from_fn(|_| AtomicU64::new(0)),
            handshake_failures: Family::default(),
            auth_failures: Family::default(),
            frames: Family::default(),
            errors: Family::default(),
            gaps: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            redeliveries: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            rate_limited: Family::default(),
            latency: Latency::default(),
            http: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Counts a connection that ended with `code` (`None`: no close frame).
    pub(crate) fn closed(&self, code: Option<u16>) {
        let i = match code {
            Some(c) => CLOSE_CODES
                .iter()
                .position(|k| *k == c)
                .unwrap_or(CLOSE_CODES.len()),
            None => CLOSE_CODES.len() + 1,
        };
        self.closed[i].fetch_add(1, Ordering::Relaxed);
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// `(code label, count)` for every close code.
    pub(crate) fn closes(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        CLOSE_CODES
            .iter()
            .map(|c| c.to_string())
            .chain(["other".to_owned(), "none".to_owned()])
            .zip(&self.closed)
            .map(|(l, n)| (l, n.load(Ordering::Relaxed)))
    }

    pub(crate) fn http(&self, endpoint: Endpoint, status: u16) {
        let i = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.http[endpoint.index()][i].fetch_add(1, Ordering::Relaxed);
    }

    /// `(endpoint, status, count)` for every pair counted at least once.
    pub(crate) fn http_requests(&self) -> Vec<(&'static str, String, u64)> {
        let mut v = Vec::new();
        for (e, row) in Endpoint::VALUES.iter().zip(&self.http) {
            for (s, n) in STATUSES.iter().zip(row) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let s = if *s == 0 {
                        "other".to_owned()
                    } else {
                        s.to_string()
                    };
                    v.push((*e, s, n));
                }
            }
        }
        v
    }

    /// Counts a frame, when the routing path counts.
    #[inline]
    pub(crate) fn frame(&self, t: FrameType) {
        if self.on {
            self.frames.inc(t);
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("on", &self.on)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_the_first_bucket_at_or_above_them() {
        let mut l = LocalLatency::default();
        l.observe(50_000); // 50 µs
        l.observe(100_000); // exactly 100 µs: le="0.0001"
        l.observe(100_001);
        l.observe(10_000_000_000); // 10 s: +Inf
        let h = Latency::default();
        h.add(&l);
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(count, 4);
        assert_eq!(buckets[0], (0.0001, 2));
        assert_eq!(buckets[1], (0.00025, 3));
        assert_eq!(buckets[14], (5.0, 3));
        assert_eq!(buckets[15].1, 4);
        assert!(buckets[15].0.is_infinite());
        assert!((sum - 10.000250001).abs() < 1e-9);
    }

    #[test]
    fn every_error_code_and_close_code_has_a_place() {
        let m = Metrics::new(true);
        for c in ErrorCode::ALL {
            m.errors.inc(c);
            assert_eq!(m.errors.get(c), 1);
            assert_eq!(ErrorCode::VALUES[c.index()], c.as_str());
        }
        m.closed(Some(4005));
        m.closed(Some(3999));
        m.closed(None);
        let closes: Vec<_> = m.closes().filter(|(_, n)| *n > 0).collect();
        assert_eq!(
            closes,
            [
                ("4005".to_owned(), 1),
                ("other".to_owned(), 1),
                ("none".to_owned(), 1)
            ]
        );
    }
}
