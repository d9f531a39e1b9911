//! The tokio driver: owns the WebSocket, runs the [`Engine`], and gives the
//! application a [`Client`] handle (async requests) and an [`Events`] stream.
//!
//! All protocol decisions are the engine's; this file only moves bytes,
//! sleeps until the engine's next timer, and writes the persistence file.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::engine::{Engine, Output, Reply, Request, RequestToken, Retry, Snapshot};
use super::options::ClientOptions;
use super::{ClientError, Event};
use crate::error::ErrorCode;
use crate::protocol::Target;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Returns a fresh token and how long it is valid (`None`: no expiry). Asked
/// before every connection attempt and before the token expires.
pub type TokenProvider = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// What a [`TokenProvider`] returns.
pub type TokenFuture = BoxFuture<Result<(String, Option<Duration>), String>>;

/// How many events may wait for the application before the driver stops
/// reading from the socket (backpressure, rather than unbounded memory).
const EVENT_BUFFER: usize = 4096;

#[derive(Debug)]
enum Command {
    Request {
        req: Request,
        retry: Retry,
        handle: u64,
        reply: oneshot::Sender<Result<Reply, ClientError>>,
    },
    Cancel(u64),
    Close(oneshot::Sender<()>),
}

/// The connection status, as the driver last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not connected yet (or reconnecting).
    Connecting,
    /// Connected with this session.
    Connected(String),
    /// Closed for good, for this reason.
    Closed(String),
}

/// A handle to a client. Cheap to clone; the client closes (cleanly) when
/// [`Client::close`] is called or every handle is dropped.
#[derive(Clone, Debug)]
pub struct Client {
    cmd: mpsc::UnboundedSender<Command>,
    next_handle: Arc<AtomicU64>,
    status: watch::Receiver<Status>,
    close_now: Arc<tokio::sync::Notify>,
    last_failure: Arc<parking_lot::Mutex<Option<String>>>,
    refused: Arc<parking_lot::Mutex<Option<ErrorCode>>>,
}

/// The client's events, in order. Messages are delivered exactly once.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` after the client closed and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Up to `limit` events at once (waits for at least one).
    pub async fn recv_many(&mut self, buf: &mut Vec<Event>, limit: usize) -> usize {
        self.rx.recv_many(buf, limit).await
    }

    /// An event if one is ready.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl Client {
    /// Connects and waits until the first `welcome` (retrying within
    /// `connect_timeout_ms` as the reconnect policy allows).
    ///
    /// When the relay refuses for good (an `error` frame in the handshake,
    /// or a close code that stands for one, like 4001) it fails with
    /// [`ClientError::Server`] and that protocol code (`unauthorized`,
    /// `forbidden`, ...); a transport failure (nothing listening, TLS, no
    /// welcome in time) is [`ClientError::Connection`].
    pub async fn connect(
        url: &str,
        options: ClientOptions,
    ) -> Result<(Client, Events), ClientError> {
        Self::connect_with(url, options, None).await
    }

    /// [`Client::connect`] with a token provider.
    pub async fn connect_with(
        url: &str,
        options: ClientOptions,
        tokens: Option<TokenProvider>,
    ) -> Result<(Client, Events), ClientError> {
        let timeout = Duration::from_millis(options.connect_timeout_ms);
        let (client, events) = Self::start(url, options, tokens)?;
        let mut status = client.status.clone();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                match &*status.borrow_and_update() {
                    Status::Connected(_) => return Ok(()),
                    Status::Closed(reason) => {
                        return Err(match *client.refused.lock() {
                            Some(code) => ClientError::Server {
                                code,
                                message: reason.clone(),
                            },
                            None => ClientError::Connection(reason.clone()),
                        })
                    }
                    Status::Connecting => {}
                }
                if status.changed().await.is_err() {
                    return Err(ClientError::Closed);
                }
            }
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok((client, events)),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let last = client.last_failure.lock().clone();
                client.close().await;
                Err(ClientError::Connection(format!(
                    "not connected within connect_timeout_ms ({} ms){}",
                    timeout.as_millis(),
                    last.map(|r| format!("; last attempt: {r}"))
                        .unwrap_or_default()
                )))
            }
        }
    }

    /// Starts a client that connects in the background: requests made before
    /// it is connected wait in the offline queue. Must be called inside a
    /// Tokio runtime.
    pub fn start(
        url: &str,
        options: ClientOptions,
        tokens: Option<TokenProvider>,
    ) -> Result<(Client, Events), ClientError> {
        options.validate()?;
        let request = url
            .into_client_request()
            .map_err(|e| ClientError::InvalidArgument(format!("url {url:?}: {e}")))?;
        if !matches!(request.uri().scheme_str(), Some("ws" | "wss")) {
            return Err(ClientError::InvalidArgument(format!(
                "url {url:?}: the scheme must be ws or wss"
            )));
        }
        let tls = match &options.ca_file {
            Some(path) => Some(tls_config(path)?),
            None => None,
        };
        let persist = options.persist_path.as_ref().map(PathBuf::from);
        let snapshot = match &persist {
            Some(p) => load_snapshot(p)?,
            None => None,
        };
        let engine = Engine::new(options.clone(), tokens.is_some(), snapshot);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_BUFFER);
        let (status_tx, status_rx) = watch::channel(Status::Connecting);
        let close_now = Arc::new(tokio::sync::Notify::new());
        let last_failure = Arc::new(parking_lot::Mutex::new(None));
        let refused = Arc::new(parking_lot::Mutex::new(None));
        let driver = Driver {
            engine,
            url: url.to_owned(),
            options,
            tls,
            persist,
            tokens,
            events: ev_tx,
            status: status_tx,
            waiters: HashMap::new(),
            handles: HashMap::new(),
            close_now: close_now.clone(),
            closing: false,
            last_failure: last_failure.clone(),
            refused: refused.clone(),
        };
        tokio::spawn(driver.run(cmd_rx));
        Ok((
            Client {
                cmd: cmd_tx,
                next_handle: Arc::new(AtomicU64::new(1)),
                status: status_rx,
                close_now,
                last_failure,
                refused,
            },
            Events { rx: ev_rx },
        ))
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Makes a request and waits for its answer. Dropping the future cancels
    /// it (a queued request is then not sent). If the session is lost after
    /// the request may have been routed, it fails with
    /// [`ClientError::UnknownOutcome`] rather than risk routing it twice
    /// ([`Retry::AtMostOnce`]; [`Client::request_with`] chooses).
    pub async fn request(&self, req: Request) -> Result<Reply, ClientError> {
        self.submit(req).await?.await
    }

    /// [`Client::request`] with the choice of what a lost session does to
    /// it: [`Retry::Resend`] re-sends it to the new session (the request is
    /// idempotent, or a duplicate is acceptable).
    pub async fn request_with(&self, req: Request, retry: Retry) -> Result<Reply, ClientError> {
        self.submit_now_with(req, retry)?.await
    }

    /// Hands a request to the engine and returns a future of its answer.
    /// Requests are ordered as their `submit`s complete, so a caller that
    /// awaits `submit` before the next one keeps its order even when it does
    /// not wait for the answers. Dropping the returned future cancels it.
    pub async fn submit(&self, req: Request) -> Result<PendingReply, ClientError> {
        self.submit_now(req)
    }

    /// [`Client::submit`] with a [`Retry`] choice.
    pub async fn submit_with(
        &self,
        req: Request,
        retry: Retry,
    ) -> Result<PendingReply, ClientError> {
        self.submit_now_with(req, retry)
    }

    /// [`Client::submit`] without an `await`, for bindings whose callers
    /// cannot wait: requests are ordered as the calls are made. The command
    /// path is unbounded; what bounds memory is the engine (its offline queue
    /// and the socket's backpressure). Uses [`Retry::AtMostOnce`].
    pub fn submit_now(&self, req: Request) -> Result<PendingReply, ClientError> {
        self.submit_now_with(req, Retry::default())
    }

    /// [`Client::submit_now`] with the choice of what a lost session does
    /// to the request ([`Retry`]; join, leave and presence are always
    /// re-sent).
    pub fn submit_now_with(&self, req: Request, retry: Retry) -> Result<PendingReply, ClientError> {
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Request {
                req,
                retry,
                handle,
                reply: tx,
            })
            .map_err(|_| ClientError::Closed)?;
        Ok(PendingReply {
            rx,
            cancel: Some((self.cmd.clone(), handle)),
        })
    }

    /// Sends to every session of `user` (except this one).
    pub async fn send_to_user(&self, user: &str, data: &impl Serialize) -> Result<(), ClientError> {
        let data = raw(data)?;
        self.request(Request::Send {
            target: Target::User(user.to_owned()),
            data,
        })
        .await
        .map(drop)
    }

    /// Sends to one session.
    pub async fn send_to_session(
        &self,
        session: &str,
        data: &impl Serialize,
    ) -> Result<(), ClientError> {
        let data = raw(data)?;
        self.request(Request::Send {
            target: Target::Session(session.to_owned()),
            data,
        })
        .await
        .map(drop)
    }

    /// Publishes to a group (not to ourselves).
    pub async fn publish(&self, group: &str, data: &impl Serialize) -> Result<(), ClientError> {
        let data = raw(data)?;
        self.request(Request::Publish {
            group: group.to_owned(),
            data,
            echo: false,
        })
        .await
        .map(drop)
    }

    /// Broadcasts to every session (not to ourselves).
    pub async fn broadcast(&self, data: &impl Serialize) -> Result<(), ClientError> {
        let data = raw(data)?;
        self.request(Request::Broadcast { data, echo: false })
            .await
            .map(drop)
    }

    /// Joins a group; it is re-joined automatically if the session is lost.
    pub async fn join(&self, group: &str) -> Result<(), ClientError> {
        self.request(Request::Join {
            group: group.to_owned(),
            presence: false,
        })
        .await
        .map(drop)
    }

    /// Joins a group and asks to be told who joins and leaves it
    /// ([`super::Event::PresenceChange`], [`super::Event::PresenceSummary`]).
    pub async fn join_with_presence(&self, group: &str) -> Result<(), ClientError> {
        self.request(Request::Join {
            group: group.to_owned(),
            presence: true,
        })
        .await
        .map(drop)
    }

    /// Who is in a group: `{"group", "members": [{"user", "sessions"}],
    /// "anonymous"}`.
    pub async fn presence(&self, group: &str) -> Result<serde_json::Value, ClientError> {
        match self
            .request(Request::Presence {
                group: group.to_owned(),
            })
            .await?
        {
            Reply::Result(v) => serde_json::from_str(v.get())
                .map_err(|e| ClientError::InvalidArgument(format!("presence: {e}"))),
            Reply::Ok => Ok(serde_json::Value::Null),
        }
    }

    /// Leaves a group.
    pub async fn leave(&self, group: &str) -> Result<(), ClientError> {
        self.request(Request::Leave {
            group: group.to_owned(),
        })
        .await
        .map(drop)
    }

    /// Calls a host method and returns its result.
    pub async fn rpc(
        &self,
        method: &str,
        arg: &impl Serialize,
    ) -> Result<serde_json::Value, ClientError> {
        let data = Some(raw(arg)?);
        match self
            .request(Request::Rpc {
                method: method.to_owned(),
                data,
            })
            .await?
        {
            Reply::Result(v) => serde_json::from_str(v.get())
                .map_err(|e| ClientError::InvalidArgument(format!("result: {e}"))),
            Reply::Ok => Ok(serde_json::Value::Null),
        }
    }

    /// Closes cleanly (the session ends on the server) and waits until the
    /// driver has finished.
    pub async fn close(&self) {
        // Also wakes a driver blocked on a full event buffer (an application
        // that stopped reading), which would not see the command.
        self.close_now.notify_one();
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The answer to a submitted request. Dropping it before it resolves
/// cancels the request (a queued request is then never sent).
#[derive(Debug)]
pub struct PendingReply {
    rx: oneshot::Receiver<Result<Reply, ClientError>>,
    cancel: Option<(mpsc::UnboundedSender<Command>, u64)>,
}

impl Future for PendingReply {
    type Output = Result<Reply, ClientError>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let r = std::task::ready!(Pin::new(&mut self.rx).poll(cx));
        self.cancel = None;
        std::task::Poll::Ready(r.unwrap_or(Err(ClientError::Closed)))
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        if let Some((cmd, handle)) = self.cancel.take() {
            let _ = cmd.send(Command::Cancel(handle));
        }
    }
}

fn raw(v: &impl Serialize) -> Result<Box<RawValue>, ClientError> {
    serde_json::value::to_raw_value(v)
        .map_err(|e| ClientError::InvalidArgument(format!("data is not JSON-serializable: {e}")))
}

struct Driver {
    engine: Engine,
    url: String,
    options: ClientOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    persist: Option<PathBuf>,
    tokens: Option<TokenProvider>,
    events: mpsc::Sender<Event>,
    status: watch::Sender<Status>,
    waiters: HashMap<RequestToken, (u64, oneshot::Sender<Result<Reply, ClientError>>)>,
    handles: HashMap<u64, RequestToken>,
    close_now: Arc<tokio::sync::Notify>,
    /// Set once a close was asked while events were waiting for the
    /// application: from then on events that do not fit are dropped.
    closing: bool,
    /// Why the last connection attempt or connection ended, for the error
    /// of a `connect` that runs out of time.
    last_failure: Arc<parking_lot::Mutex<Option<String>>>,
    /// The protocol code the relay refused with when it closed the client
    /// for good (set before the status turns `Closed`), for `connect`.
    refused: Arc<parking_lot::Mutex<Option<ErrorCode>>>,
}

impl Driver {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Command>) {
        let mut ws: Option<Ws> = None;
        let mut connecting: Option<BoxFuture<Result<Ws, String>>> = None;
        let mut token: Option<TokenFuture> = None;
        let mut closers: Vec<oneshot::Sender<()>> = Vec::new();
        let mut commands_open = true;
        self.engine.start(Instant::now());
        loop {
            self.pump(&mut ws, &mut connecting, &mut token).await;
            if self.engine.is_closed() {
                break;
            }
            let wake = self.engine.poll_timeout();
            tokio::select! {
                r = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                    connecting = None;
                    match r {
                        Ok(s) => {
                            ws = Some(s);
                            self.engine.on_open(Instant::now());
                        }
                        Err(e) => self.engine.on_closed(Instant::now(), None, &e),
                    }
                }
                msg = async { ws.as_mut().expect("guarded").next().await }, if ws.is_some() => {
                    let now = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => self.engine.on_frame(now, &t),
                        Some(Ok(Message::Close(f))) => {
                            ws = None;
                            let (code, reason) = f
                                .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                                .unwrap_or((None, "closed without a code".into()));
                            self.engine.on_closed(now, code, &reason);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            ws = None;
                            self.engine.on_closed(now, None, &e.to_string());
                        }
                        None => {
                            ws = None;
                            self.engine.on_closed(now, None, "connection lost");
                        }
                    }
                }
                t = async { token.as_mut().expect("guarded").await }, if token.is_some() => {
                    token = None;
                    self.engine.on_token(Instant::now(), t);
                }
                cmd = cmds.recv(), if commands_open => match cmd {
                    Some(Command::Request { req, retry, handle, reply }) => {
                        match self.engine.request_with(Instant::now(), req, retry) {
                            Ok(t) => {
                                self.handles.insert(handle, t);
                                self.waiters.insert(t, (handle, reply));
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    Some(Command::Cancel(handle)) => {
                        if let Some(t) = self.handles.remove(&handle) {
                            self.waiters.remove(&t);
                            self.engine.cancel(t);
                        }
                    }
                    Some(Command::Close(done)) => {
                        closers.push(done);
                        self.engine.close();
                    }
                    None => {
                        // Every handle is gone: close cleanly.
                        commands_open = false;
                        self.engine.close();
                    }
                },
                _ = sleep_until(wake), if wake.is_some() => {
                    self.engine.handle_timeout(Instant::now());
                }
            }
        }
        for w in self.waiters.drain() {
            let _ = (w.1).1.send(Err(ClientError::Closed));
        }
        for c in closers {
            let _ = c.send(());
        }
        // Late closers (a close() after the engine closed by itself).
        cmds.close();
        while let Some(cmd) = cmds.recv().await {
            match cmd {
                Command::Close(done) => {
                    let _ = done.send(());
                }
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(ClientError::Closed));
                }
                Command::Cancel(_) => {}
            }
        }
    }

    /// Carries out everything the engine asked for.
    async fn pump(
        &mut self,
        ws: &mut Option<Ws>,
        connecting: &mut Option<BoxFuture<Result<Ws, String>>>,
        token: &mut Option<TokenFuture>,
    ) {
        let mut wrote = false;
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Connect => {
                    *connecting = Some(Box::pin(open(
                        self.url.clone(),
                        self.options.headers.clone(),
                        self.tls.clone(),
                    )));
                }
                Output::FetchToken => {
                    if let Some(p) = &self.tokens {
                        *token = Some(p());
                    }
                }
                Output::Send(text) => {
                    // The engine counts a request as possibly routed once it
                    // is output; one dropped here (the connection just
                    // failed) errs on that safe side (Retry::AtMostOnce).
                    if let Some(s) = ws.as_mut() {
                        if let Err(e) = s.feed(Message::text(text)).await {
                            *ws = None;
                            self.engine.on_closed(Instant::now(), None, &e.to_string());
                        } else {
                            wrote = true;
                        }
                    }
                }
                Output::Close { code, reason } => {
                    *connecting = None;
                    if let Some(mut s) = ws.take() {
                        let frame = CloseFrame {
                            code: CloseCode::from(code),
                            reason: reason.into(),
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(2), async {
                            s.close(Some(frame)).await?;
                            while let Some(Ok(_)) = s.next().await {}
                            Ok::<_, tokio_tungstenite::tungstenite::Error>(())
                        })
                        .await;
                    }
                    wrote = false;
                    self.engine
                        .on_closed(Instant::now(), None, "closed by the client");
                }
                Output::Event(e) => {
                    match &e {
                        Event::Connected {
                            session, resumed, ..
                        } => {
                            tracing::info!(url = %self.url, session, resumed, "The client is connected.");
                            self.status.send_replace(Status::Connected(session.clone()));
                        }
                        Event::Disconnected {
                            code,
                            reason,
                            will_retry,
                        } => {
                            tracing::info!(url = %self.url, ?code, reason, will_retry, "The client was disconnected.");
                            *self.last_failure.lock() = Some(reason.clone());
                            self.status.send_replace(Status::Connecting);
                        }
                        Event::Reconnecting { attempt, delay_ms } => {
                            tracing::debug!(url = %self.url, attempt, delay_ms, "The client will reconnect.");
                        }
                        Event::Loss {
                            from_seq,
                            to_seq,
                            reason,
                        } => {
                            tracing::warn!(
                                from_seq,
                                to_seq,
                                reason,
                                "The server dropped messages for this client."
                            );
                        }
                        Event::Closed { reason, code } => {
                            tracing::info!(url = %self.url, reason, ?code, "The client is closed.");
                            *self.refused.lock() = code.as_deref().and_then(ErrorCode::parse);
                            self.status.send_replace(Status::Closed(reason.clone()));
                        }
                        _ => {}
                    }
                    // A full buffer pauses the driver: the application sets the
                    // pace. A close still gets through (the application may
                    // have stopped reading); what does not fit then is dropped.
                    if self.closing {
                        let _ = self.events.try_send(e);
                    } else {
                        // Biased: a close asked earlier leaves a permit, which
                        // must not win over an event that fits.
                        tokio::select! {
                            biased;
                            _ = self.events.send(e) => {}
                            _ = self.close_now.notified() => {
                                self.closing = true;
                                self.engine.close();
                            }
                        }
                    }
                }
                Output::Complete { token, result } => {
                    if let Some((handle, tx)) = self.waiters.remove(&token) {
                        self.handles.remove(&handle);
                        let _ = tx.send(result);
                    }
                }
                Output::Persist(s) => {
                    if let Some(path) = &self.persist {
                        if let Err(e) = save_snapshot(path, s.as_ref()) {
                            let _ = self
                                .events
                                .send(Event::Error {
                                    code: "internal".into(),
                                    message: format!("cannot write {}: {e}", path.display()),
                                    seq: None,
                                })
                                .await;
                        }
                    }
                }
            }
        }
        if wrote {
            if let Some(s) = ws.as_mut() {
                if let Err(e) = s.flush().await {
                    *ws = None;
                    self.engine.on_closed(Instant::now(), None, &e.to_string());
                    // The engine may have more to say (a reconnect).
                    Box::pin(self.pump(ws, connecting, token)).await;
                }
            }
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

async fn open(
    url: String,
    headers: std::collections::BTreeMap<String, String>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Ws, String> {
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    for (k, v) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("header {k:?}: {e}"))?;
        let value = tokio_tungstenite::tungstenite::http::HeaderValue::from_str(&v)
            .map_err(|e| format!("header {k:?}: {e}"))?;
        req.headers_mut().insert(name, value);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .write_buffer_size(16 << 10);
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, Some(config), true, connector)
            .await
            .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// The system's roots plus the CA certificates in `path`.
fn tls_config(path: &str) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bad = |m: String| ClientError::InvalidArgument(format!("ca_file {path:?}: {m}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if extra.is_empty() {
        return Err(bad("no certificate found".into()));
    }
    for cert in extra {
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

fn load_snapshot(path: &PathBuf) -> Result<Option<Snapshot>, ClientError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            ClientError::InvalidArgument(format!("persist_path {}: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::InvalidArgument(format!(
            "persist_path {}: {e}",
            path.display()
        ))),
    }
}

/// Writes atomically (temporary file, then rename), or deletes. The file
/// holds the session's resume key, a secret: on Unix only its owner may
/// read it.
fn save_snapshot(path: &PathBuf, s: Option<&Snapshot>) -> std::io::Result<()> {
    use std::io::Write as _;
    match s {
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Some(s) => {
            let tmp = path.with_extension("tmp");
            // A leftover from a crash may have other permissions: start anew.
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
            let mut f = open.open(&tmp)?;
            f.write_all(&serde_json::to_vec(s).expect("a snapshot is JSON"))?;
            drop(f);
            std::fs::rename(&tmp, path)
        }
    }
}
