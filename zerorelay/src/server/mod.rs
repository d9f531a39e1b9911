//! The relay server: the [`Relay`] handle a host holds, its listener, and
//! one task per connection.
//!
//! - [`listener`]: accepts TCP connections, upgrades them on `/ws`, enforces
//!   the connection cap, and drains on shutdown.
//! - [`connection`]: the per-connection task: its loop, reads, heartbeats,
//!   and the release of its session whatever happens;
//!   - `handshake`: `hello`, authentication, opening or resuming the session;
//!   - `dispatch`: one client frame: its bounds, then each request;
//!   - `held`: requests held for the host's asynchronous hooks
//!     (authorizer, validation);
//!   - `writer`: deliveries and answers to the socket, and the close.
//! - `tls`: `wss://` with a certificate that reloads without a restart.
//! - `presence`: who is in each group, by user, and the notices for
//!   sessions that watch.
//! - `prefixed`: the first bytes of a request, read to choose between the
//!   WebSocket upgrade and the HTTP surface ([`crate::http`]).
//! - [`limiter`]: per-connection rate limit and abuse counting.
//! - [`rpc`]: host-defined methods.
//! - [`events`]: what happens to sessions, for the host ([`Relay::events`]).
//!
//! The library takes a bound listener (or already-upgraded streams) and a
//! shutdown call; the `zerorelay` binary only parses configuration.

pub mod connection;
mod dispatch;
pub mod events;
mod frames;
mod handshake;
mod held;
pub mod limiter;
pub mod listener;
mod live;
mod prefixed;
mod presence;
pub mod rpc;
mod tls;
mod writer;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify, Semaphore};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::auth::rbac::{Policy, PolicyCell};
use crate::auth::{AllowAll, Authenticator, Chain};
use crate::config::Config;
use crate::error::{Error, ErrorCode, ProtocolError, Result};
use crate::protocol::{close, Delivery, DeliveryKind};
use crate::router::Router;
use crate::session::{ExpiryQueue, MemoryStore, OutboxBudget, SessionLimits, SessionStore};

pub use events::{EventHook, HostEvent};
pub use rpc::{RpcContext, RpcRegistry, RpcResult};

/// The server name and version sent in `welcome`.
pub const SERVER_NAME: &str = concat!("zerorelay/", env!("CARGO_PKG_VERSION"));

/// Builds a [`Relay`].
pub struct RelayBuilder {
    config: Config,
    auth: Option<Arc<dyn Authenticator>>,
    store: Option<Arc<dyn SessionStore>>,
    rpc: RpcRegistry,
    validators: Vec<(String, Arc<dyn crate::validate::Validator>)>,
    authorizer: Option<Arc<dyn crate::auth::Authorizer>>,
    hooks: Vec<Arc<dyn events::EventHook>>,
}

impl RelayBuilder {
    /// Uses this authenticator instead of the one the configuration implies
    /// (static tokens, JWT and the HTTP callback as `[auth]` sets them up,
    /// development mode when it sets up none). The roles of `[auth.roles]`
    /// apply whichever authenticator decides who a connection is.
    pub fn authenticator(mut self, auth: impl Authenticator) -> Self {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// Uses this session store instead of the in-memory one.
    pub fn store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Runs `hook` on every client publish to a group matching `pattern`
    /// (`chat-*`), after the group's schemas; see [`crate::validate`].
    pub fn validator(
        mut self,
        pattern: impl Into<String>,
        hook: impl crate::validate::Validator,
    ) -> Self {
        self.validators.push((pattern.into(), Arc::new(hook)));
        self
    }

    /// Asks `authorizer` about every `join`, `publish`, `send`,
    /// `broadcast` and `rpc` that the roles allow, asynchronously (the
    /// SDKs' `authorize` functions). A request waits for it at most
    /// `limits.authorize_timeout_ms`; the connection's later frames wait
    /// behind it, other connections do not. For a check that needs no
    /// waiting, implement [`Authenticator::authorize`] instead.
    pub fn authorizer(mut self, authorizer: impl crate::auth::Authorizer) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }

    /// Tells `hook` what happens on the relay ([`HostEvent`]), on a thread
    /// of its own fed by a queue of `hooks.queue` events: a hook that falls
    /// behind misses events (counted in
    /// `zerorelay_hook_events_dropped_total`) and never slows routing.
    pub fn hook(mut self, hook: impl events::EventHook) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Registers an RPC method. A call its handler has not answered within
    /// `limits.rpc_timeout_ms` fails with `internal` (the handler's future
    /// is dropped).
    pub fn rpc<F, Fut>(mut self, method: impl Into<String>, f: F) -> Self
    where
        F: Fn(RpcContext, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = RpcResult> + Send + 'static,
    {
        self.rpc.register(method, f);
        self
    }

    /// Validates the configuration and builds the relay. Must be called
    /// inside a Tokio runtime: it starts the session expiry task.
    pub fn build(self) -> Result<Relay> {
        self.config.validate()?;
        for m in self.rpc.methods() {
            crate::protocol::names::validate("rpc method", m)
                .map_err(|e| Error::Config(format!("rpc method {m:?}: {}", e.message)))?;
        }
        let c = &self.config;
        let limits = SessionLimits {
            slow_consumer_bytes: c.limits.slow_consumer_bytes,
            slow_consumer_after: c.slow_consumer_after(),
            outbox_messages: c.session.outbox_messages,
            outbox_bytes: c.session.outbox_bytes,
            max_groups: c.limits.max_groups_per_session,
            recent_requests: c.session.recent_requests,
        };
        let custom_auth = self.auth.is_some();
        let auth: Arc<dyn Authenticator> = match self.auth {
            Some(a) => a,
            None if c.is_development() => Arc::new(AllowAll),
            None => Arc::new(Chain::from_config(&c.auth)?),
        };
        let policy = PolicyCell::new(Policy::compile(&c.auth)?);
        let validation = validation(&c.validate, &self.validators)?;
        let tls = c
            .tls
            .is_enabled()
            .then(|| tls::Tls::from_config(&c.tls))
            .transpose()?;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let transport_max = c.limits.max_frame_bytes * c.limits.transport_frame_factor;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(c.limits.read_buffer_bytes)
            .write_buffer_size(c.limits.write_buffer_bytes)
            .max_write_buffer_size(c.limits.write_buffer_bytes.max(transport_max) + transport_max)
            .max_message_size(Some(transport_max))
            .max_frame_size(Some(transport_max));
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            router: Router::new(
                store,
                limits,
                Arc::new(OutboxBudget::new(c.outbox_total_bytes())),
            ),
            expiry: ExpiryQueue::new(),
            handshaking: dashmap::DashMap::new(),
            development: auth.is_development(),
            custom_auth,
            live: live::LiveCell::new(live::Live {
                limits: c.limits.clone(),
                features: c.features.clone(),
                auth,
                validation,
            }),
            validators: self.validators,
            current: parking_lot::Mutex::new(self.config.clone()),
            policy,
            tls,
            authorizer: self.authorizer,
            rpc: self.rpc,
            connections: Arc::new(Semaphore::new(c.server.max_connections)),
            ws_config,
            shutdown,
            events: events::HostEvents::new(self.hooks, c.hooks.queue, c.hooks.messages),
            metrics: crate::metrics::Metrics::new(c.metrics.enabled),
            presence: presence::PresenceIndex::new(c.presence.max_notify_members),
            idempotency: crate::http::Idempotency::new(
                Duration::from_millis(c.api.idempotency_ttl_ms),
                c.api.idempotency_keys,
            ),
            listening: AtomicBool::new(false),
            admin_bound: parking_lot::Mutex::new(None),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            accepted: AtomicU64::new(0),
            config: self.config,
        });
        tokio::spawn(maintain(shared.clone()));
        tokio::spawn(presence::summaries(shared.clone()));
        if shared.tls.is_some() && shared.config.tls.watch_ms > 0 {
            tokio::spawn(watch_tls(shared.clone()));
        }
        Ok(Relay { shared })
    }
}

/// State shared by the relay handle and every connection task.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) router: Router,
    /// Whether the relay runs without authentication (fixed at build).
    pub(crate) development: bool,
    /// Whether the host supplied the authenticator (a reload keeps it).
    custom_auth: bool,
    /// What a reload changes on live connections: limits, features, the
    /// authenticator, the schemas.
    pub(crate) live: live::LiveCell,
    /// The host's validation hooks, kept for reloads.
    validators: Vec<(String, Arc<dyn crate::validate::Validator>)>,
    /// The configuration last put in force (by build or [`Relay::reload`]).
    current: parking_lot::Mutex<Config>,
    /// `[auth.roles]`, compiled.
    pub(crate) policy: PolicyCell,
    /// `[tls]`, when the relay serves `wss://`.
    pub(crate) tls: Option<tls::Tls>,
    /// The host's asynchronous authorizer.
    pub(crate) authorizer: Option<Arc<dyn crate::auth::Authorizer>>,
    pub(crate) rpc: RpcRegistry,
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) ws_config: WebSocketConfig,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) events: events::HostEvents,
    /// Detached sessions by expiry deadline.
    pub(crate) expiry: ExpiryQueue,
    /// Connections between accept and `welcome`, by address.
    pub(crate) handshaking: dashmap::DashMap<IpAddr, usize>,
    pub(crate) metrics: crate::metrics::Metrics,
    /// Who is in each group, by user.
    pub(crate) presence: presence::PresenceIndex,
    /// Answers of the HTTP API's routing calls, by `Idempotency-Key`.
    pub(crate) idempotency: crate::http::Idempotency,
    /// Whether the WebSocket listener is accepting (for `/readyz`).
    listening: AtomicBool,
    /// Where `serve_admin` listens.
    pub(crate) admin_bound: parking_lot::Mutex<Option<SocketAddr>>,
    active: AtomicUsize,
    idle: Notify,
    accepted: AtomicU64,
}

impl Shared {
    /// Counts a connection task for graceful shutdown; dropping the guard
    /// uncounts it.
    pub(crate) fn track(self: &Arc<Self>) -> TaskGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        TaskGuard(self.clone())
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    pub(crate) fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::Relaxed);
    }

    /// Connection tasks running now (upgrading, WebSocket or HTTP).
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

pub(crate) struct TaskGuard(Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A handle to a relay server. Cheap to clone; all clones are the same relay.
#[derive(Clone)]
pub struct Relay {
    pub(crate) shared: Arc<Shared>,
}

/// What the host can see of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// User, if any.
    pub user: Option<String>,
    /// Whether a connection is attached.
    pub connected: bool,
    /// Groups it is in, sorted.
    pub groups: Vec<String>,
    /// The last seq assigned.
    pub last_seq: u64,
    /// Deliveries retained until acknowledged.
    pub unacked: usize,
}

/// What the host can see of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// Member sessions.
    pub members: usize,
}

/// Who is in a group ([`Relay::presence`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Presence {
    /// The group.
    pub group: String,
    /// Its users, sorted, each with the number of their member sessions.
    pub members: Vec<PresenceMember>,
    /// Member sessions without a user.
    pub anonymous: usize,
}

/// A user in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceMember {
    /// The user.
    pub user: String,
    /// How many of the user's sessions are in the group.
    pub sessions: usize,
}

/// Counters of a running relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Connections open now.
    pub connections_open: usize,
    /// Sessions, live or resumable.
    pub sessions: usize,
    /// Deliveries queued on sessions since start.
    pub deliveries: u64,
    /// Deliveries dropped by outbox bounds (announced with gaps).
    pub dropped: u64,
    /// Connections closed as slow consumers.
    pub slow_consumers: u64,
    /// Deliveries dropped to keep all outboxes within
    /// `session.outbox_total_bytes` (announced with gaps).
    pub trimmed: u64,
    /// Bytes all outboxes hold now.
    pub outbox_bytes: u64,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `[[validate]]`'s schemas with the host's hooks added.
fn validation(
    rules: &[crate::config::ValidateRule],
    hooks: &[(String, Arc<dyn crate::validate::Validator>)],
) -> Result<crate::validate::Validation> {
    let mut v = crate::validate::Validation::from_config(rules)?;
    for (pattern, hook) in hooks {
        v.add_hook(pattern, hook.clone())?;
    }
    Ok(v)
}

/// A delivery from the host: no sender user or session.
fn host_delivery(
    kind: DeliveryKind,
    group: Option<&str>,
    data: &impl Serialize,
) -> Result<Delivery> {
    Ok(Delivery::new(
        kind,
        None,
        None,
        group,
        &encode_data(data)?,
        now_ms(),
    ))
}

fn encode_data(data: &impl Serialize) -> Result<String> {
    serde_json::to_string(data).map_err(|e| {
        Error::Protocol(ProtocolError::new(
            ErrorCode::BadRequest,
            format!("data is not serializable as JSON: {e}"),
        ))
    })
}

impl Relay {
    /// Starts building a relay from a configuration.
    pub fn builder(config: Config) -> RelayBuilder {
        RelayBuilder {
            config,
            auth: None,
            store: None,
            validators: Vec::new(),
            authorizer: None,
            hooks: Vec::new(),
            rpc: RpcRegistry::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The WebSocket settings (buffer sizes, size limits) to use when the host
    /// upgrades connections itself.
    pub fn websocket_config(&self) -> WebSocketConfig {
        self.shared.ws_config
    }

    /// Whether [`Relay::shutdown`] has been called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    /// Whether the relay runs without real authentication.
    pub fn is_development(&self) -> bool {
        self.shared.development
    }

    /// Accepts connections from `listener` until [`Relay::shutdown`], then
    /// waits for open connections to close.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<()> {
        listener::serve(self.shared.clone(), listener).await
    }

    /// Binds `server.listen` (port 0 picks a free port) and serves in a
    /// background task until [`Relay::shutdown`]; with `[admin] listen`,
    /// binds that too and serves the HTTP surface there. Returns the bound
    /// address and the task. Must be called inside a Tokio runtime.
    pub async fn spawn(&self) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<()>>)> {
        let listener = bind(self.config().listen_addr()?).await?;
        let bound = listener.local_addr()?;
        let admin = match self.config().admin_addr()? {
            Some(a) => {
                let l = bind(a).await?;
                *self.shared.admin_bound.lock() = Some(l.local_addr()?);
                Some(l)
            }
            None => None,
        };
        let relay = self.clone();
        Ok((
            bound,
            tokio::spawn(async move {
                let admin = admin.map(|l| tokio::spawn(relay.clone().serve_admin(l)));
                let served = relay.serve(listener).await;
                if let Some(a) = admin {
                    a.await.map_err(|e| Error::Io(std::io::Error::other(e)))??;
                }
                served
            }),
        ))
    }

    /// The address `[admin] listen` was bound to by [`Relay::spawn`].
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        *self.shared.admin_bound.lock()
    }

    /// Serves the HTTP surface (health, `/metrics`, the API; not `/ws`) on
    /// `listener` until the relay has shut down. [`Relay::spawn`] calls it
    /// for `[admin] listen`; a host may call it on a listener of its own.
    pub async fn serve_admin(self, listener: tokio::net::TcpListener) -> Result<()> {
        listener::serve_admin(self.shared.clone(), listener).await
    }

    /// Answers a request for the HTTP surface (`/healthz`, `/readyz`,
    /// `/metrics`, `/api/…`; anything else is a JSON 404), for a host that
    /// runs its own hyper or axum server and mounts these paths (and hands
    /// `/ws` upgrades to [`Relay::accept_upgraded`]). `peer` is the
    /// caller's address (development mode opens the API to loopback
    /// callers only). `/readyz` then does not wait for the relay's own
    /// listener, which such a host does not start.
    pub async fn handle_http<B>(
        &self,
        req: hyper::Request<B>,
        peer: Option<SocketAddr>,
    ) -> hyper::Response<crate::http::Body>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        crate::http::handle(&self.shared, req, peer, crate::http::Surface::Mounted).await
    }

    /// Runs the relay protocol on a WebSocket the host already accepted (on
    /// any path of its own HTTP server). The future resolves when the
    /// connection ends; it does not borrow the relay, and it keeps only the
    /// connection's steady state (not the stream it was given) while idle.
    /// The host did the upgrade, so the relay sees neither its
    /// `Authorization` header nor its URL, nor checks its `Origin` against
    /// `server.allowed_origins`: the token comes from `hello.token`, and the
    /// host checks the origin.
    pub fn accept_websocket<S>(
        &self,
        ws: WebSocketStream<S>,
        peer: Option<SocketAddr>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        listener::run_accepted(self.shared.clone(), ws, peer)
    }

    /// Runs the relay protocol on a raw stream on which the host's HTTP
    /// server has already completed the WebSocket upgrade (hyper's
    /// `Upgraded`, wrapped in `TokioIo`, say). Like
    /// [`Self::accept_websocket`].
    pub fn accept_upgraded<S>(
        &self,
        io: S,
        peer: Option<SocketAddr>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = self.shared.clone();
        let ws = Box::pin(WebSocketStream::from_raw_socket(
            io,
            Role::Server,
            Some(shared.ws_config),
        ));
        async move { listener::run_accepted(shared, ws.await, peer).await }
    }

    /// Publishes to a group's members from the host. Returns the number of
    /// sessions it was queued on.
    pub fn publish(&self, group: &str, data: &impl Serialize) -> Result<usize> {
        crate::protocol::names::validate("group", group)?;
        let d = host_delivery(DeliveryKind::Group, Some(group), data)?;
        Ok(self.shared.router.to_group(group, None, &d))
    }

    /// Sends to every session of a user from the host; `not_found` when the
    /// user has none.
    pub fn send_to_user(&self, user: &str, data: &impl Serialize) -> Result<usize> {
        let d = host_delivery(DeliveryKind::Direct, None, data)?;
        Ok(self.shared.router.to_user(user, None, &d)?)
    }

    /// Sends to one session from the host; `not_found` when it does not exist.
    pub fn send_to_session(&self, session: &str, data: &impl Serialize) -> Result<()> {
        let d = host_delivery(DeliveryKind::Direct, None, data)?;
        self.shared.router.to_session(session, &d)?;
        Ok(())
    }

    /// Broadcasts to every session from the host.
    pub fn broadcast(&self, data: &impl Serialize) -> Result<usize> {
        let d = host_delivery(DeliveryKind::Broadcast, None, data)?;
        Ok(self.shared.router.to_all(None, &d))
    }

    /// Reads `[tls]`'s certificate and key again; new connections get them,
    /// open ones are untouched. A pair that does not load leaves the
    /// current one in place and is an error.
    pub fn reload_tls(&self) -> Result<()> {
        match &self.shared.tls {
            None => Err(Error::Config("this relay does not serve TLS".into())),
            Some(tls) => tls
                .reload()
                .map_err(|e| Error::Config(format!("`tls`: {e}"))),
        }
    }

    /// Whether the relay serves `wss://`.
    pub fn is_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Puts a changed configuration in force without a restart (SIGHUP in
    /// the `zerorelay` command): the limits checked per frame, `[features]`,
    /// `[auth]` (keys, tokens, the callback; roles), the `[[validate]]`
    /// schemas and `[tls]`'s certificate files. Open connections keep
    /// running and take the new settings at their next frame.
    ///
    /// A configuration that changes a setting that needs a restart
    /// ([`Config::restart_only_changes`]: the listen addresses, the session
    /// store, …) is refused, as is one whose keys, schemas or certificate
    /// do not load; either way nothing changes. Returns what changed.
    pub fn reload(&self, next: &Config) -> Result<Vec<&'static str>> {
        next.validate()?;
        let shared = &self.shared;
        let (now, _) = shared.live.snapshot();
        let fixed = shared.config.restart_only_changes(next);
        if !fixed.is_empty() {
            return Err(Error::Config(format!(
                "these settings change only with a restart: {}; nothing was reloaded",
                fixed.join(", ")
            )));
        }
        // Everything is built before anything is replaced.
        let policy = Policy::compile(&next.auth)?;
        let auth: Arc<dyn Authenticator> = if shared.custom_auth || shared.development {
            now.auth.clone()
        } else {
            Arc::new(Chain::from_config(&next.auth)?)
        };
        let validation = validation(&next.validate, &shared.validators)?;
        if let Some(tls) = &shared.tls {
            tls.reload()
                .map_err(|e| Error::Config(format!("`tls`: {e}")))?;
        }
        let mut changed = Vec::new();
        let current = shared.current.lock().clone();
        if current.limits != next.limits {
            changed.push("[limits]");
        }
        if current.features != next.features {
            changed.push("[features]");
        }
        if current.auth != next.auth {
            changed.push("[auth]");
        }
        if current.validate != next.validate {
            changed.push("[[validate]]");
        }
        if shared.tls.is_some() {
            changed.push("the TLS certificate (read again)");
        }
        shared.policy.replace(policy);
        shared.live.replace(live::Live {
            limits: next.limits.clone(),
            features: next.features.clone(),
            auth,
            validation,
        });
        *shared.current.lock() = next.clone();
        tracing::info!(changed = ?changed, "Put a reloaded configuration in force.");
        Ok(changed)
    }

    /// Puts new roles in force (`[auth.roles]` and `auth.default_roles`,
    /// say from a reloaded configuration file). Every connection checks its
    /// next request under them; nothing is dropped.
    pub fn reload_permissions(&self, auth: &crate::config::AuthConfig) -> Result<()> {
        let policy = Policy::compile(auth)?;
        self.shared.policy.replace(policy);
        tracing::info!(
            roles = auth.roles.len(),
            "Put reloaded permissions in force."
        );
        Ok(())
    }

    /// Ends a session: its connection (if any) is closed with 4005 and it
    /// cannot be resumed. Returns whether it existed.
    pub fn disconnect(&self, session: &str) -> bool {
        let store = self.shared.router.store();
        let Some(s) = store.get(session) else {
            return false;
        };
        end_session(&self.shared, &s, close::KICKED, "disconnected by the host");
        true
    }

    /// Revokes a session: its connection (if any) is closed with 4006 and
    /// the session ends (it cannot be resumed). For credentials that must
    /// stop working now, such as a logged-out device. Returns whether it
    /// existed.
    pub fn revoke_session(&self, session: &str) -> bool {
        let Some(s) = self.shared.router.store().get(session) else {
            return false;
        };
        tracing::info!(session = %s.id, "Revoked a session.");
        end_session(&self.shared, &s, close::REVOKED, "revoked");
        true
    }

    /// Revokes every session of `user` (close 4006, sessions ended), for a
    /// user whose access was withdrawn. Returns how many sessions it ended.
    /// New connections are authenticated as usual: withdraw the user's
    /// credentials at the authenticator too.
    pub fn revoke_user(&self, user: &str) -> usize {
        let sessions = self.sessions_of(user);
        for s in &sessions {
            end_session(&self.shared, s, close::REVOKED, "revoked");
        }
        if !sessions.is_empty() {
            tracing::info!(
                user,
                sessions = sessions.len(),
                "Revoked a user's sessions."
            );
        }
        sessions.len()
    }

    /// Every session of `user`, live or detached.
    fn sessions_of(&self, user: &str) -> Vec<Arc<crate::session::Session>> {
        let mut sessions = Vec::new();
        self.shared
            .router
            .store()
            .for_user(user, &mut |s| sessions.push(s.clone()));
        sessions
    }

    /// Closes a session's connection without ending the session (as a
    /// network failure would); the client may resume. Returns whether a
    /// connection was attached.
    pub fn drop_connection(&self, session: &str) -> bool {
        let Some(s) = self.shared.router.store().get(session) else {
            return false;
        };
        let conn = s.lock().conn.clone();
        match conn {
            Some(c) => {
                c.request_close(close::GOING_AWAY, "connection dropped by the host");
                true
            }
            None => false,
        }
    }

    /// Ends every session of `user` (close 4005, not resumable), as
    /// [`Relay::disconnect`] does for one. Returns how many it ended.
    pub fn disconnect_user(&self, user: &str) -> usize {
        let sessions = self.sessions_of(user);
        for s in &sessions {
            end_session(&self.shared, s, close::KICKED, "disconnected by the host");
        }
        sessions.len()
    }

    /// Who is in `group`: each user with how many of their sessions are
    /// members, sorted by user, and how many member sessions have no user.
    /// `bad_request` for a name outside the grammar.
    pub fn presence(&self, group: &str) -> Result<Presence> {
        crate::protocol::names::validate("group", group)?;
        Ok(self.shared.presence.snapshot(group))
    }

    /// Every session, sorted by id.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut v = Vec::new();
        self.shared.router.store().for_each(&mut |s| {
            let st = s.lock();
            let mut groups: Vec<String> = st.groups.iter().map(|g| g.to_string()).collect();
            groups.sort();
            v.push(SessionInfo {
                id: s.id.to_string(),
                user: s.user.as_ref().map(|u| u.to_string()),
                connected: st.conn.is_some(),
                groups,
                last_seq: st.outbox.last_seq(),
                unacked: st.outbox.len(),
            });
        });
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Every non-empty group, sorted by name.
    pub fn groups(&self) -> Vec<GroupInfo> {
        self.shared
            .router
            .store()
            .groups()
            .into_iter()
            .map(|(name, members)| GroupInfo { name, members })
            .collect()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let r = self.shared.router.stats();
        Stats {
            connections_accepted: self.shared.accepted.load(Ordering::Relaxed),
            connections_open: self.shared.active.load(Ordering::SeqCst),
            sessions: self.shared.router.store().len(),
            deliveries: r.deliveries(),
            dropped: r.dropped.load(Ordering::Relaxed),
            slow_consumers: r.slow_consumers.load(Ordering::Relaxed),
            trimmed: self.shared.router.budget().trimmed(),
            outbox_bytes: self.shared.router.budget().used(),
        }
    }

    /// Graceful shutdown: stops accepting, writes what each connection has
    /// queued, closes every client with 1001, and waits for the connections
    /// to finish (at most `server.shutdown_grace_ms` plus the write timeout).
    pub async fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        let grace = Duration::from_millis(self.shared.config.server.shutdown_grace_ms)
            + Duration::from_millis(self.shared.config.server.write_timeout_ms);
        let _ = tokio::time::timeout(grace, self.wait_idle()).await;
    }

    /// Subscribes to what happens to sessions: clients welcomed, connections
    /// ended, sessions ended. A subscriber more than
    /// [`events::EVENT_CAPACITY`] events behind misses the oldest (and is
    /// told how many).
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<HostEvent> {
        self.shared.events.subscribe()
    }

    /// [`Relay::events`] as batches of JSON, for the language bindings.
    pub fn event_stream(&self) -> events::HostEventStream {
        events::HostEventStream::new(self.clone())
    }

    /// Resolves once [`Relay::shutdown`] has been called (by anyone).
    pub async fn shutdown_requested(&self) {
        shutting_down(&mut self.shared.shutdown.subscribe()).await;
    }

    async fn wait_idle(&self) {
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// The `Sec-WebSocket-Accept` value for a request's `Sec-WebSocket-Key`, for
/// hosts that answer the upgrade with their own HTTP server and then call
/// [`Relay::accept_upgraded`].
pub fn websocket_accept_key(key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key)
}

/// Ends a session for good: closes its connection with `code` and removes it
/// from the store (and so from every group).
pub(crate) fn end_session(
    shared: &Shared,
    s: &Arc<crate::session::Session>,
    code: u16,
    reason: &'static str,
) {
    {
        let mut st = s.lock();
        if st.ended {
            return;
        }
        st.ended = true;
        // Asked under the lock: the connection reads this code, not 4009.
        st.detach(code, reason);
        st.detached_since = None;
    }
    remove_session(shared, s, reason);
}

/// Removes an ended session from the store and its outbox from the
/// server-wide count, and tells the host.
fn remove_session(shared: &Shared, s: &Arc<crate::session::Session>, reason: &str) {
    let store = shared.router.store();
    {
        let groups: Vec<String> = s.lock().groups.iter().map(|g| g.to_string()).collect();
        for group in groups {
            shared.presence.left(&group, s);
            shared.events.emit(|| HostEvent::Left {
                session: s.id.to_string(),
                user: s.user.as_ref().map(|u| u.to_string()),
                group,
            });
        }
    }
    store.remove(s);
    let bytes = s.lock().outbox.bytes();
    shared.router.budget().add(-(bytes as i64));
    shared.events.emit(|| HostEvent::Ended {
        session: s.id.to_string(),
        user: s.user.as_ref().map(|u| u.to_string()),
        reason: reason.to_owned(),
    });
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr}: {e}"),
        ))
    })
}

/// Reloads the TLS certificate when its files change.
async fn watch_tls(shared: Arc<Shared>) {
    let every = Duration::from_millis(shared.config.tls.watch_ms);
    let mut shutdown = shared.shutdown.subscribe();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(tls) = &shared.tls {
                    tls.reload_if_changed();
                }
            }
            _ = shutting_down(&mut shutdown) => return,
        }
    }
}

/// Resolves once shutdown has been requested.
pub(crate) async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Upkeep off the routing path: ends sessions whose expiry deadline has
/// come (the cost follows expiries, not sessions) and trims outboxes when
/// all of them together pass `session.outbox_total_bytes`.
async fn maintain(shared: Arc<Shared>) {
    let ttl = shared.config.session_ttl();
    let budget = shared.router.budget().clone();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let now = std::time::Instant::now();
        let (due, next) = shared.expiry.due(now);
        for s in due {
            expire(&shared, &s, ttl, now);
        }
        if budget.is_over() {
            let t = budget.trim(&**shared.router.store());
            tracing::warn!(
                limit = budget.limit(),
                sessions = t.sessions,
                deliveries = t.deliveries,
                bytes = t.bytes,
                "Outboxes reached session.outbox_total_bytes: dropped the oldest deliveries of the largest (detached first); those clients get a gap."
            );
        }
        let wait = next.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(std::time::Instant::now())
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.expiry.wait_for_more(Duration::from_secs(3600)), if next.is_none() => {}
            _ = budget.wake.notified() => {}
            _ = shutting_down(&mut shutdown) => return,
        }
    }
}

/// Ends `s` if it is still detached and its TTL has passed; a session
/// detached again later is scheduled again for its new deadline.
fn expire(
    shared: &Shared,
    s: &Arc<crate::session::Session>,
    ttl: Duration,
    now: std::time::Instant,
) {
    let verdict = {
        let mut st = s.lock();
        match st.detached_since {
            Some(t) if st.conn.is_none() && !st.ended => {
                if now.saturating_duration_since(t) >= ttl {
                    st.ended = true;
                    Ok(())
                } else {
                    Err(Some(t + ttl))
                }
            }
            _ => Err(None),
        }
    };
    match verdict {
        Ok(()) => {
            tracing::debug!(session = %s.id, "Expired a session that stayed disconnected longer than session.ttl_ms.");
            remove_session(shared, s, "expired");
        }
        Err(Some(deadline)) => shared.expiry.schedule(s, deadline),
        Err(None) => {}
    }
}
