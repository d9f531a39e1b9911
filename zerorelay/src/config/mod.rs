//! Configuration: every key, its default, and its validation.
//!
//! [`Config`] is plain data with serde support; a host app builds one in code
//! (or deserializes it from anything serde reads). With the `cli` feature,
//! [`load`] reads it from a TOML file, `ZERORELAY_…` environment variables and
//! `--set key=value` flags, in that order of increasing precedence.
//!
//! Durations are integers in milliseconds (`…_ms`), sizes integers in bytes
//! (`…_bytes`). Unknown keys are errors, so that a typo is not silently
//! ignored.

mod auth;
#[cfg(feature = "cli")]
pub mod load;

pub use auth::{AuthConfig, CallbackConfig, JwtConfig, RoleConfig};

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listening and connection lifecycle.
    pub server: ServerConfig,
    /// Session lifetime and retention.
    pub session: SessionConfig,
    /// Per-connection and per-server limits.
    pub limits: LimitsConfig,
    /// Authentication and permissions.
    pub auth: AuthConfig,
    /// `wss://` served by the relay itself.
    pub tls: TlsConfig,
    /// Feature switches.
    pub features: FeaturesConfig,
    /// Logging (used by the `zerorelay` command).
    pub log: LogConfig,
    /// `[[validate]]`: JSON Schemas that payloads to matching groups must
    /// satisfy before they are routed.
    pub validate: Vec<ValidateRule>,
    /// The HTTP surface's own address.
    pub admin: AdminConfig,
    /// The server HTTP API (`/api/…`).
    pub api: ApiConfig,
    /// `GET /metrics`.
    pub metrics: MetricsConfig,
    /// Host event hooks.
    pub hooks: HooksConfig,
    /// The alert webhook.
    pub alerts: AlertsConfig,
    /// Presence notices.
    pub presence: PresenceConfig,
}

/// `[presence]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Above this many users present in a group, watchers get one
    /// `presence_summary` per `notify_ms` instead of a `presence_change`
    /// per join and leave.
    pub max_notify_members: usize,
    /// How often a large group's summary goes out, in milliseconds.
    pub notify_ms: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            max_notify_members: 100,
            notify_ms: 1_000,
        }
    }
}

/// `[alerts]`: a webhook told when a threshold is crossed and when it
/// clears. Each threshold is measured over `window_ms`; 0 turns it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where alerts are POSTed (JSON). Unset: no alerts.
    pub url: Option<String>,
    /// A PEM CA bundle to trust for `url`, besides the system's roots.
    pub ca_file: Option<String>,
    /// How often the thresholds are checked, in milliseconds.
    pub check_ms: u64,
    /// The window each rate is measured over, in milliseconds.
    pub window_ms: u64,
    /// POSTs per minute at most; a change of state over it waits for the
    /// next check.
    pub max_per_minute: u32,
    /// How long a POST may take, in milliseconds.
    pub timeout_ms: u64,
    /// Error frames sent per second.
    pub error_rate: f64,
    /// Failed authentications per second.
    pub auth_failure_rate: f64,
    /// Deliveries dropped per second (each one a client's gap).
    pub drop_rate: f64,
    /// Slow-consumer closes within the window.
    pub slow_consumer_closes: f64,
    /// Open connections as a fraction of `server.max_connections` (0.9: 90%).
    pub connections_ratio: f64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            url: None,
            ca_file: None,
            check_ms: 10_000,
            window_ms: 60_000,
            max_per_minute: 10,
            timeout_ms: 5_000,
            error_rate: 10.0,
            auth_failure_rate: 5.0,
            drop_rate: 1.0,
            slow_consumer_closes: 10.0,
            connections_ratio: 0.9,
        }
    }
}

/// `[hooks]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// Events each hook may have waiting; beyond it events are dropped
    /// (and counted), never waited for.
    pub queue: usize,
    /// Also tell hooks and event subscribers about every message a client
    /// routes (its kind, sender, group or recipient and size; not its data).
    pub messages: bool,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            queue: 4_096,
            messages: false,
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// An address for everything but `/ws` (health, `/metrics`, the API),
    /// so that it can stay on a private network; the WebSocket listener
    /// then answers only `/ws`. Unset: all on `server.listen`.
    pub listen: Option<String>,
}

/// `[api]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Keys a backend presents (`Authorization: Bearer KEY` or
    /// `X-API-Key: KEY`), at least 16 characters each. None: the API is
    /// off, except in development mode for callers on the same machine.
    pub keys: Vec<String>,
    /// How long an `Idempotency-Key` is remembered, in milliseconds.
    pub idempotency_ttl_ms: u64,
    /// How many `Idempotency-Key`s are remembered at most (the oldest go first).
    pub idempotency_keys: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            keys: Vec::new(),
            idempotency_ttl_ms: 600_000,
            idempotency_keys: 100_000,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` and count on the routing path.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// `[tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM (leaf first).
    pub cert_file: Option<String>,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<String>,
    /// How often the files are checked for changes, in milliseconds (0:
    /// only on SIGHUP or [`crate::Relay::reload_tls`]).
    pub watch_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            watch_ms: 2_000,
        }
    }
}

impl TlsConfig {
    /// Whether the relay serves `wss://`.
    pub fn is_enabled(&self) -> bool {
        self.cert_file.is_some()
    }
}

/// One `[[validate]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRule {
    /// The groups it applies to (a pattern: `chat-*`).
    pub group: String,
    /// A JSON Schema file (draft 2020-12 unless the schema says otherwise).
    pub schema_file: String,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Allow development mode (no authentication) on a non-loopback address.
    pub insecure: bool,
    /// How long a new connection has to send `hello`.
    pub hello_timeout_ms: u64,
    /// Interval of WebSocket pings; a connection silent for two intervals is closed.
    pub heartbeat_ms: u64,
    /// How long a blocked socket write may take before the connection is dropped.
    pub write_timeout_ms: u64,
    /// How long graceful shutdown waits for clients to close.
    pub shutdown_grace_ms: u64,
    /// Concurrent connections, counted from TCP accept (before the upgrade).
    pub max_connections: usize,
    /// Connections from one IP address between TCP accept and `welcome`
    /// (upgrading, or not yet through `hello`); beyond it new ones from that
    /// address are closed at once.
    pub max_handshaking_per_ip: usize,
    /// Runtime worker threads of the `zerorelay` command (0: one per core).
    pub worker_threads: usize,
    /// Origins a browser may connect from (`https://app.example.com`, or a
    /// pattern like `https://*.example.com`). Empty: any origin. A request
    /// without an `Origin` header (not a browser) is always let through.
    pub allowed_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            insecure: false,
            hello_timeout_ms: 5_000,
            heartbeat_ms: 25_000,
            write_timeout_ms: 10_000,
            shutdown_grace_ms: 5_000,
            max_connections: 100_000,
            max_handshaking_per_ip: 64,
            worker_threads: 0,
            allowed_origins: Vec::new(),
        }
    }
}

/// `[session]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// How long a disconnected session stays resumable.
    pub ttl_ms: u64,
    /// Unacknowledged deliveries kept per session (oldest dropped first, with a gap).
    pub outbox_messages: usize,
    /// Bytes of unacknowledged deliveries kept per session.
    pub outbox_bytes: usize,
    /// Routing request ids remembered per session for duplicate suppression
    /// (at least 1,024, as the protocol promises).
    pub recent_requests: usize,
    /// Sessions (live or resumable) in the whole server.
    pub max_sessions: usize,
    /// Sessions (live or resumable) of one user; beyond it a new session is
    /// refused with `limit_exceeded` and 1013.
    pub max_per_user: usize,
    /// Bytes all outboxes together may hold; past it the largest detached
    /// outboxes are trimmed first (each session told with a `gap`). 0 means
    /// a quarter of the machine's memory.
    pub outbox_total_bytes: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            ttl_ms: 60_000,
            outbox_messages: 4_096,
            outbox_bytes: 4 << 20,
            recent_requests: 1_024,
            max_sessions: 100_000,
            max_per_user: 64,
            outbox_total_bytes: 0,
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest text frame accepted; larger ones get `too_large`.
    pub max_frame_bytes: usize,
    /// Deepest nesting of arrays and objects in a client frame, counted
    /// from the frame itself (depth 1), checked once when the frame is
    /// parsed; deeper frames get `bad_frame` (or `bad_request` with the id).
    pub max_json_depth: usize,
    /// Frames more than this many times `max_frame_bytes` are not even read:
    /// the connection is closed with 1009.
    pub transport_frame_factor: usize,
    /// Bytes queued for a connection and not yet handed to its writer above
    /// which, when they stay there for `slow_consumer_ms`, the connection is
    /// closed as a slow consumer (4008). A client that reads as fast as the
    /// network allows drains any burst and is never closed.
    pub slow_consumer_bytes: usize,
    /// How long the queue may stay above `slow_consumer_bytes`.
    pub slow_consumer_ms: u64,
    /// Groups one session may be in.
    pub max_groups_per_session: usize,
    /// Sustained frames per second per connection.
    pub rate_per_sec: u32,
    /// Frames a connection may send in a burst above the sustained rate.
    pub rate_burst: u32,
    /// Refused frames (bad input or over the rate) within ten seconds after
    /// which the connection is closed with 1008.
    pub abuse_strikes: u32,
    /// Sustained `ack` frames per second per connection (a burst of twice
    /// as many is allowed). Separate from `rate_per_sec`, and generous: a
    /// reader acknowledges in proportion to what it is sent.
    pub ack_rate_per_sec: u32,
    /// Client `broadcast` frames per second per connection (when
    /// `features.client_broadcast` is on).
    pub broadcast_per_sec: u32,
    /// A `publish` to a group of more members than this counts as
    /// members / 1,000 frames toward the sender's rate budget.
    pub large_group: usize,
    /// How long a host validation hook may take before the request fails
    /// with `internal`.
    pub validate_timeout_ms: u64,
    /// How long the host's asynchronous authorizer may take before the
    /// request fails with `internal`.
    pub authorize_timeout_ms: u64,
    /// How long a host RPC handler may take before the call fails with
    /// `internal` (the handler's future is dropped; the connection's other
    /// requests, and other clients, do not wait for it).
    pub rpc_timeout_ms: u64,
    /// Read buffer per connection, and the most one read takes from the
    /// socket. It grows for a larger frame. Small by default: every idle
    /// connection keeps one, and each read clears it first (protocol v1's
    /// client frames are short; raise it for connections that mostly
    /// upload large frames).
    pub read_buffer_bytes: usize,
    /// tungstenite's write buffer per connection, for the frames it writes
    /// itself (pongs, the close). Answers and deliveries go through the
    /// connection's own output buffer, written once per loop turn.
    pub write_buffer_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_frame_bytes: 64 << 10,
            max_json_depth: 64,
            transport_frame_factor: 4,
            slow_consumer_bytes: 1 << 20,
            slow_consumer_ms: 5_000,
            max_groups_per_session: 256,
            rate_per_sec: 1_000,
            rate_burst: 2_000,
            abuse_strikes: 50,
            ack_rate_per_sec: 10_000,
            broadcast_per_sec: 1,
            large_group: 10_000,
            validate_timeout_ms: 1_000,
            authorize_timeout_ms: 1_000,
            rpc_timeout_ms: 30_000,
            read_buffer_bytes: 512,
            write_buffer_bytes: 16 << 10,
        }
    }
}

/// `[features]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeaturesConfig {
    /// Whether clients may `broadcast` (the host always may).
    pub client_broadcast: bool,
    /// Whether clients may send directly to a session id.
    pub send_to_session: bool,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            // Off: one client could otherwise make a delivery to every
            // session, as often as its rate allows.
            client_broadcast: false,
            send_to_session: true,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `zerorelay=debug,warn`, …
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
    /// Write logs to this file instead of standard error.
    pub file: Option<String>,
    /// Also export logs with OpenTelemetry (OTLP over HTTP).
    pub otlp: OtlpConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            file: None,
            otlp: OtlpConfig::default(),
        }
    }
}

/// `[log.otlp]`: the `zerorelay` command's logs, exported to an
/// OpenTelemetry collector as OTLP over HTTP (protobuf) besides the console
/// or file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP base address (`http://collector:4318`);
    /// logs go to `<endpoint>/v1/logs`. Unset: no export.
    pub endpoint: Option<String>,
    /// `service.name` on every record.
    pub service_name: String,
    /// How long one export may take, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoint: None,
            service_name: "zerorelay".into(),
            timeout_ms: 10_000,
        }
    }
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    v: T,
    min: T,
    max: T,
) -> Result<(), Error> {
    if v < min || v > max {
        return Err(Error::Config(format!(
            "`{key}` must be between {min} and {max}, got {v}"
        )));
    }
    Ok(())
}

impl Config {
    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<(), Error> {
        let s = &self.server;
        self.listen_addr()?;
        range("server.hello_timeout_ms", s.hello_timeout_ms, 10, 600_000)?;
        range("server.heartbeat_ms", s.heartbeat_ms, 10, 3_600_000)?;
        range("server.write_timeout_ms", s.write_timeout_ms, 10, 600_000)?;
        range("server.shutdown_grace_ms", s.shutdown_grace_ms, 0, 600_000)?;
        range("server.max_connections", s.max_connections, 1, 10_000_000)?;
        range(
            "server.max_handshaking_per_ip",
            s.max_handshaking_per_ip,
            1,
            10_000_000,
        )?;
        range("server.worker_threads", s.worker_threads, 0, 1024)?;
        let se = &self.session;
        range("session.ttl_ms", se.ttl_ms, 0, 86_400_000)?;
        range("session.outbox_messages", se.outbox_messages, 1, 10_000_000)?;
        range(
            "session.recent_requests",
            se.recent_requests,
            1_024,
            1_000_000,
        )?;
        range("session.max_sessions", se.max_sessions, 1, 100_000_000)?;
        range("session.max_per_user", se.max_per_user, 1, 100_000_000)?;
        if se.outbox_total_bytes != 0 && se.outbox_total_bytes < se.outbox_bytes as u64 {
            return Err(Error::Config(format!(
                "`session.outbox_total_bytes` ({}) must be 0 (a quarter of the machine's memory) or at least `session.outbox_bytes` ({})",
                se.outbox_total_bytes, se.outbox_bytes
            )));
        }
        let l = &self.limits;
        range("limits.max_frame_bytes", l.max_frame_bytes, 256, 64 << 20)?;
        range("limits.max_json_depth", l.max_json_depth, 2, 1_000_000)?;
        range(
            "limits.transport_frame_factor",
            l.transport_frame_factor,
            1,
            64,
        )?;
        range(
            "limits.slow_consumer_bytes",
            l.slow_consumer_bytes,
            1 << 10,
            1 << 40,
        )?;
        range("limits.slow_consumer_ms", l.slow_consumer_ms, 10, 600_000)?;
        range(
            "limits.max_groups_per_session",
            l.max_groups_per_session,
            0,
            1_000_000,
        )?;
        range("limits.rate_per_sec", l.rate_per_sec, 1, 100_000_000)?;
        range("limits.rate_burst", l.rate_burst, 1, 100_000_000)?;
        range("limits.abuse_strikes", l.abuse_strikes, 1, 1_000_000)?;
        range(
            "limits.ack_rate_per_sec",
            l.ack_rate_per_sec,
            1,
            100_000_000,
        )?;
        range(
            "limits.broadcast_per_sec",
            l.broadcast_per_sec,
            1,
            1_000_000,
        )?;
        range("limits.large_group", l.large_group, 1, 100_000_000)?;
        range(
            "limits.read_buffer_bytes",
            l.read_buffer_bytes,
            256,
            16 << 20,
        )?;
        range(
            "limits.write_buffer_bytes",
            l.write_buffer_bytes,
            0,
            16 << 20,
        )?;
        if se.outbox_bytes < l.max_frame_bytes {
            return Err(Error::Config(format!(
                "`session.outbox_bytes` ({}) must be at least `limits.max_frame_bytes` ({}), or one large message could never be kept",
                se.outbox_bytes, l.max_frame_bytes
            )));
        }
        range(
            "limits.authorize_timeout_ms",
            l.authorize_timeout_ms,
            1,
            60_000,
        )?;
        range(
            "limits.validate_timeout_ms",
            l.validate_timeout_ms,
            1,
            60_000,
        )?;
        range("limits.rpc_timeout_ms", l.rpc_timeout_ms, 1, 3_600_000)?;
        for o in &s.allowed_origins {
            if o.is_empty() || o.ends_with('/') || !o.contains("://") {
                return Err(Error::Config(format!(
                    "`server.allowed_origins`: {o:?} is not an origin like https://app.example.com"
                )));
            }
        }
        self.auth.validate()?;
        if let Some(a) = &self.admin.listen {
            a.parse::<SocketAddr>().map_err(|_| {
                Error::Config(format!(
                    "`admin.listen` must be an address like 127.0.0.1:9090, got {a:?}"
                ))
            })?;
        }
        for (i, k) in self.api.keys.iter().enumerate() {
            if k.len() < 16 || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::Config(format!(
                    "`api.keys[{i}]` must be at least 16 characters, without spaces"
                )));
            }
        }
        range(
            "api.idempotency_ttl_ms",
            self.api.idempotency_ttl_ms,
            1_000,
            86_400_000,
        )?;
        range(
            "api.idempotency_keys",
            self.api.idempotency_keys,
            1,
            10_000_000,
        )?;
        range("hooks.queue", self.hooks.queue, 1, 10_000_000)?;
        let o = &self.log.otlp;
        if let Some(e) = &o.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) || e.ends_with("/v1/logs") {
                return Err(Error::Config(format!(
                    "`log.otlp.endpoint` must be the collector's base address like http://collector:4318 (logs go to /v1/logs), got {e:?}"
                )));
            }
        }
        if o.service_name.is_empty() {
            return Err(Error::Config(
                "`log.otlp.service_name` must not be empty".into(),
            ));
        }
        range("log.otlp.timeout_ms", o.timeout_ms, 10, 600_000)?;
        range("presence.notify_ms", self.presence.notify_ms, 10, 600_000)?;
        range(
            "presence.max_notify_members",
            self.presence.max_notify_members,
            0,
            10_000_000,
        )?;
        let a = &self.alerts;
        if let Some(u) = &a.url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "`alerts.url` must be an http:// or https:// URL, got {u:?}"
                )));
            }
        }
        range("alerts.check_ms", a.check_ms, 50, 3_600_000)?;
        range("alerts.window_ms", a.window_ms, a.check_ms, 86_400_000)?;
        range("alerts.max_per_minute", a.max_per_minute, 1, 10_000)?;
        range("alerts.timeout_ms", a.timeout_ms, 10, 600_000)?;
        for (name, v) in [
            ("alerts.error_rate", a.error_rate),
            ("alerts.auth_failure_rate", a.auth_failure_rate),
            ("alerts.drop_rate", a.drop_rate),
            ("alerts.slow_consumer_closes", a.slow_consumer_closes),
            ("alerts.connections_ratio", a.connections_ratio),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Config(format!(
                    "`{name}` must be a number of at least 0 (0 turns it off), got {v}"
                )));
            }
        }
        let t = &self.tls;
        if t.cert_file.is_some() != t.key_file.is_some() {
            return Err(Error::Config(
                "`tls.cert_file` and `tls.key_file` go together: set both or neither".into(),
            ));
        }
        range("tls.watch_ms", t.watch_ms, 0, 86_400_000)?;
        for (i, v) in self.validate.iter().enumerate() {
            crate::validate::group_pattern(&v.group)
                .map_err(|e| Error::Config(format!("`validate[{i}].group`: {e}")))?;
            if v.schema_file.is_empty() {
                return Err(Error::Config(format!(
                    "`validate[{i}].schema_file` must name a file"
                )));
            }
        }
        Ok(())
    }

    /// The settings that differ between `self` (in force) and `next` but
    /// take effect only at a restart: everything but the limits checked per
    /// frame, `[features]`, `[auth]`, `[[validate]]`, the contents of
    /// `[tls]`'s files and `log.level`. A reload that changes any of these is refused.
    pub fn restart_only_changes(&self, next: &Config) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut differs = |name: &'static str, changed: bool| {
            if changed {
                v.push(name);
            }
        };
        differs("[server]", self.server != next.server);
        differs("[session]", self.session != next.session);
        differs("[admin]", self.admin != next.admin);
        differs("[api]", self.api != next.api);
        differs("[metrics]", self.metrics != next.metrics);
        differs("[hooks]", self.hooks != next.hooks);
        differs("[alerts]", self.alerts != next.alerts);
        differs("[presence]", self.presence != next.presence);
        differs("log.format", self.log.format != next.log.format);
        differs("log.file", self.log.file != next.log.file);
        differs("[log.otlp]", self.log.otlp != next.log.otlp);
        let (a, b) = (&self.limits, &next.limits);
        differs(
            "limits.max_frame_bytes (raised above its value at start)",
            b.max_frame_bytes > a.max_frame_bytes,
        );
        differs(
            "limits.transport_frame_factor",
            a.transport_frame_factor != b.transport_frame_factor,
        );
        differs(
            "limits.read_buffer_bytes",
            a.read_buffer_bytes != b.read_buffer_bytes,
        );
        differs(
            "limits.write_buffer_bytes",
            a.write_buffer_bytes != b.write_buffer_bytes,
        );
        differs(
            "limits.slow_consumer_bytes",
            a.slow_consumer_bytes != b.slow_consumer_bytes,
        );
        differs(
            "limits.slow_consumer_ms",
            a.slow_consumer_ms != b.slow_consumer_ms,
        );
        differs(
            "limits.max_groups_per_session",
            a.max_groups_per_session != b.max_groups_per_session,
        );
        differs(
            "[auth] (turning authentication on or off)",
            self.is_development() != next.is_development(),
        );
        differs(
            "[tls] (turning TLS on or off)",
            self.tls.is_enabled() != next.tls.is_enabled(),
        );
        differs("tls.watch_ms", self.tls.watch_ms != next.tls.watch_ms);
        differs(
            "tls.cert_file / tls.key_file (the files are reloaded; their paths are not)",
            self.tls.is_enabled()
                && (self.tls.cert_file != next.tls.cert_file
                    || self.tls.key_file != next.tls.key_file),
        );
        v
    }

    /// `admin.listen` as a socket address, when set.
    pub fn admin_addr(&self) -> Result<Option<SocketAddr>, Error> {
        self.admin
            .listen
            .as_deref()
            .map(|a| {
                a.parse().map_err(|_| {
                    Error::Config(format!(
                        "`admin.listen` must be an address like 127.0.0.1:9090, got {a:?}"
                    ))
                })
            })
            .transpose()
    }

    /// `server.listen` as a socket address.
    pub fn listen_addr(&self) -> Result<SocketAddr, Error> {
        self.server.listen.parse().map_err(|_| {
            Error::Config(format!(
                "`server.listen` must be an address like 127.0.0.1:8080, got {:?}",
                self.server.listen
            ))
        })
    }

    /// Whether no authentication is configured (development mode).
    pub fn is_development(&self) -> bool {
        !self.auth.is_configured()
    }

    /// Refuses to serve development mode (no authentication: anyone may
    /// connect as any user) on `addr` unless it is a loopback address or
    /// `server.insecure` is set. `development` says whether the relay runs
    /// without authentication (a host may plug in its own authenticator).
    pub fn check_exposure(&self, addr: SocketAddr, development: bool) -> Result<(), Error> {
        if development && !addr.ip().is_loopback() && !self.server.insecure {
            return Err(Error::Config(format!(
                "refusing to listen on {addr} without authentication: anyone could connect as any user. \
                 Configure auth.tokens (or an authenticator), listen on a loopback address, or set server.insecure (--insecure) to do it anyway"
            )));
        }
        Ok(())
    }

    /// `session.outbox_total_bytes`, with 0 resolved to a quarter of the
    /// machine's memory (1 GiB where that cannot be read).
    pub fn outbox_total_bytes(&self) -> u64 {
        match self.session.outbox_total_bytes {
            0 => machine_memory().map_or(1 << 30, |m| m / 4),
            n => n,
        }
    }

    /// `limits.slow_consumer_ms` as a duration.
    pub fn slow_consumer_after(&self) -> Duration {
        Duration::from_millis(self.limits.slow_consumer_ms)
    }

    /// `session.ttl_ms` as a duration.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_millis(self.session.ttl_ms)
    }
}

/// Total memory of the machine in bytes (Linux: `/proc/meminfo`).
fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_mode_is_refused_on_a_public_address_unless_insecure() {
        let mut c = Config::default();
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let e = c.check_exposure(public, true).unwrap_err().to_string();
        assert!(e.contains("without authentication"), "{e}");
        assert!(c.check_exposure(public, false).is_ok());
        assert!(c
            .check_exposure("127.0.0.1:1".parse().unwrap(), true)
            .is_ok());
        assert!(c.check_exposure("[::1]:1".parse().unwrap(), true).is_ok());
        c.server.insecure = true;
        assert!(c.check_exposure(public, true).is_ok());
    }

    #[test]
    fn the_outbox_budget_defaults_to_a_quarter_of_memory() {
        let mut c = Config::default();
        assert!(c.outbox_total_bytes() >= 1 << 20);
        c.session.outbox_total_bytes = 1;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("outbox_total_bytes"));
        c.session.outbox_total_bytes = 8 << 20;
        assert_eq!(c.outbox_total_bytes(), 8 << 20);
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = Config::default();
        c.limits.max_frame_bytes = 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("limits.max_frame_bytes"), "{e}");
        let mut c = Config::default();
        c.server.listen = "nowhere".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("server.listen"));
        let mut c = Config::default();
        c.auth.tokens.insert("t".into(), "bad user!".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("auth.tokens"));
    }
}
