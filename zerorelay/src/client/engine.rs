//! The sans-IO client engine.
//!
//! [`Engine`] holds the whole client side of the protocol: the connection
//! phase, reconnect policy, session resume, in-flight requests and their
//! re-sending, the offline queue, acknowledgements, de-duplication and
//! group re-joining. It performs no I/O and reads no clock: every input
//! carries `now`, and the driver asks [`Engine::poll_output`] what to do and
//! [`Engine::poll_timeout`] when to call [`Engine::handle_timeout`].
//!
//! Delivery guarantee: each message is emitted once, in seq order. It is
//! acknowledged once emitted (acks are batched by count and time), so a
//! process that crashes between emitting and handling may lose it; a resume
//! never duplicates it.
//!
//! Request guarantee: after a resume, unanswered requests are re-sent with
//! their ids and the server answers a repeated id without routing it again.
//! When the session cannot be resumed, a request that may already have been
//! routed fails with [`ClientError::UnknownOutcome`] unless it was made with
//! [`Retry::Resend`]; one that never reached a connection is sent (see
//! [`Retry`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::backoff::Rng;
use super::options::ClientOptions;
use super::queue::{OfflineQueue, Pushed, Sized_};
use super::{ClientError, Event};
use crate::error::ErrorCode;
use crate::protocol::client::{ClientFrame, Hello, RequestId, Resume, Target};
use crate::protocol::{close, ResumeKey, ServerFrame};

/// Identifies a request made through [`Engine::request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RequestToken(pub u64);

/// A request the application makes.
#[derive(Debug, Clone)]
pub enum Request {
    /// Direct message.
    Send {
        /// To a user or a session.
        target: Target,
        /// JSON payload.
        data: Box<RawValue>,
    },
    /// Publish to a group.
    Publish {
        /// The group.
        group: String,
        /// JSON payload.
        data: Box<RawValue>,
        /// Deliver to ourselves too.
        echo: bool,
    },
    /// Broadcast to everyone.
    Broadcast {
        /// JSON payload.
        data: Box<RawValue>,
        /// Deliver to ourselves too.
        echo: bool,
    },
    /// Join a group (re-joined automatically if the session is lost).
    Join {
        /// The group.
        group: String,
        /// Also be told who joins and leaves it.
        presence: bool,
    },
    /// Who is in a group; answered with the list as a result.
    Presence {
        /// The group.
        group: String,
    },
    /// Leave a group.
    Leave {
        /// The group.
        group: String,
    },
    /// Call a host method.
    Rpc {
        /// Method name.
        method: String,
        /// Argument.
        data: Option<Box<RawValue>>,
    },
}

/// What the engine does with an unanswered request when the server could
/// not resume the session (`welcome` with `"resumed":false`: the session
/// expired, was ended, or the relay restarted).
///
/// A fresh session remembers none of the old session's request ids
/// (protocol §10), so a request the old connection may already have routed
/// (only its answer was lost) would be routed a second time if re-sent. A
/// request "may have been routed" once the engine has handed it to a
/// connection; one that waited in the offline queue the whole time never
/// was, and is always sent. A normal resume (`"resumed":true`) re-sends every
/// unanswered request whatever its choice: the server answers a repeated id
/// from memory instead of routing it again.
///
/// The choice applies to `send`, `publish`, `broadcast` and `rpc`. `join`,
/// `leave` and `presence` are always re-sent: they are idempotent or
/// read-only, and the fresh session holds none of the old one's state, so
/// sending them again is what makes their outcome known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// Never route the request twice: when the session is lost after the
    /// request may have been routed, it fails with
    /// [`ClientError::UnknownOutcome`] (it may or may not have been
    /// delivered) instead of being re-sent. The default.
    #[default]
    AtMostOnce,
    /// Re-send it in the new session with the same id: the application says
    /// the request is idempotent or that it accepts a duplicate.
    Resend,
}

impl Retry {
    /// Its name in the bindings' JSON and options: `at_most_once` or
    /// `resend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Retry::AtMostOnce => "at_most_once",
            Retry::Resend => "resend",
        }
    }
}

impl std::str::FromStr for Retry {
    type Err = ClientError;

    /// Parses `at_most_once` or `resend`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "at_most_once" => Ok(Retry::AtMostOnce),
            "resend" => Ok(Retry::Resend),
            other => Err(ClientError::InvalidArgument(format!(
                "retry {other:?}: expected \"at_most_once\" or \"resend\""
            ))),
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `ok`.
    Ok,
    /// An rpc `result`.
    Result(Box<RawValue>),
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Output {
    /// Open the transport, then call [`Engine::on_open`] or
    /// [`Engine::on_closed`].
    Connect,
    /// Ask the token provider, then call [`Engine::on_token`].
    FetchToken,
    /// Send a text frame. A request's frame counts as possibly routed from
    /// here on, whether or not the driver could write it ([`Retry`]).
    Send(String),
    /// Close the transport with this code, then call [`Engine::on_closed`].
    Close {
        /// WebSocket close code.
        code: u16,
        /// Reason.
        reason: String,
    },
    /// Hand an event to the application.
    Event(Event),
    /// A request finished.
    Complete {
        /// Which.
        token: RequestToken,
        /// How.
        result: Result<Reply, ClientError>,
    },
    /// Write this state to the persistence file (`None`: delete it).
    Persist(Option<Snapshot>),
}

/// Persisted state: enough to resume and to re-send what was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    /// The session to resume.
    pub session: Option<String>,
    /// Its resume key (from `welcome`); without it the session cannot be
    /// resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_key: Option<ResumeKey>,
    /// The last seq emitted.
    pub last_seq: u64,
    /// The next request id.
    pub next_id: i64,
    /// Groups joined.
    pub groups: Vec<String>,
    /// Those of `groups` joined with presence notices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watching: Vec<String>,
    /// Requests accepted and not answered, in order.
    pub pending: Vec<PersistedRequest>,
}

/// A persisted request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedRequest {
    /// Its id.
    pub id: i64,
    /// Its encoded frame.
    pub frame: String,
    /// A join or leave records the group it affects.
    #[serde(default)]
    pub effect: Effect,
    /// It was handed to a connection at least once, so it may have been
    /// routed (absent in files written before this field: not sent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sent: bool,
    /// What to do with it if the session is lost ([`Retry`]).
    #[serde(default, skip_serializing_if = "is_default")]
    pub retry: Retry,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What an `ok` changes in the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Nothing.
    #[default]
    None,
    /// Add the group to the joined set.
    Join(String),
    /// Add the group to the joined set, with presence notices.
    JoinWatching(String),
    /// Remove the group from the joined set.
    Leave(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The application waits for it.
    User(RequestToken),
    /// The engine made it (re-join, refresh).
    Internal,
    /// Restored from a snapshot: nobody waits, errors become events.
    Restored,
}

#[derive(Debug)]
struct Pending {
    id: i64,
    frame: String,
    owner: Owner,
    effect: Effect,
    deadline: Option<Instant>,
    /// Handed to a connection at least once: it may have been routed.
    sent: bool,
    /// What a lost session does to it (always `Resend` for joins, leaves,
    /// presence and the engine's own requests).
    retry: Retry,
}

impl Pending {
    /// Re-sending it to a fresh session might route it a second time, and
    /// the application did not accept that.
    fn outcome_lost_with_session(&self) -> bool {
        self.sent && self.retry == Retry::AtMostOnce
    }
}

impl Sized_ for Pending {
    fn size(&self) -> usize {
        self.frame.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    FetchingToken,
    Connecting { deadline: Instant },
    Handshaking { deadline: Instant },
    Connected,
    Backoff { until: Instant },
    Closing,
    Closed,
}

/// The client state machine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    opts: ClientOptions,
    phase: Phase,
    has_token_provider: bool,
    token: Option<String>,
    refresh_at: Option<Instant>,
    /// A refresh's `FetchToken` is out and not yet answered.
    token_asked: bool,
    session: Option<String>,
    resume_key: Option<ResumeKey>,
    last_seq: u64,
    ack_sent: u64,
    ack_due: Option<Instant>,
    next_id: i64,
    inflight: BTreeMap<i64, Pending>,
    queue: OfflineQueue<Pending>,
    groups: BTreeSet<String>,
    /// Those of `groups` joined with presence notices.
    watching: BTreeSet<String>,
    attempt: u32,
    rng: Rng,
    out: VecDeque<Output>,
    last_error: Option<String>,
    /// The code of the `error` frame that refused the current attempt's
    /// handshake, if one came.
    refused: Option<ErrorCode>,
}

impl Engine {
    /// A new engine. `has_token_provider` makes it ask for a token before
    /// every connection and before expiry; `snapshot` restores persisted state.
    pub fn new(opts: ClientOptions, has_token_provider: bool, snapshot: Option<Snapshot>) -> Self {
        let rng = opts.seed.map(Rng::seeded).unwrap_or_else(Rng::from_os);
        let mut e = Engine {
            queue: OfflineQueue::new(opts.queue.clone()),
            token: opts.token.clone(),
            opts,
            phase: Phase::Idle,
            has_token_provider,
            refresh_at: None,
            token_asked: false,
            session: None,
            resume_key: None,
            last_seq: 0,
            ack_sent: 0,
            ack_due: None,
            next_id: 1,
            inflight: BTreeMap::new(),
            groups: BTreeSet::new(),
            watching: BTreeSet::new(),
            attempt: 0,
            rng,
            out: VecDeque::new(),
            last_error: None,
            refused: None,
        };
        if let Some(s) = snapshot {
            e.session = s.session;
            e.resume_key = s.resume_key;
            e.last_seq = s.last_seq;
            e.ack_sent = s.last_seq;
            e.next_id = s.next_id.max(1);
            e.groups = s.groups.into_iter().collect();
            e.watching = s.watching.into_iter().collect();
            for p in s.pending {
                e.next_id = e.next_id.max(p.id + 1);
                // Restored items were accepted before: they bypass the bound.
                let _ = e.queue.push(Pending {
                    id: p.id,
                    frame: p.frame,
                    owner: Owner::Restored,
                    effect: p.effect,
                    deadline: None,
                    sent: p.sent,
                    retry: p.retry,
                });
            }
        }
        e
    }

    /// Starts connecting.
    pub fn start(&mut self, now: Instant) {
        if self.phase == Phase::Idle {
            self.begin_attempt(now);
        }
    }

    fn begin_attempt(&mut self, now: Instant) {
        if self.has_token_provider {
            self.phase = Phase::FetchingToken;
            self.out.push_back(Output::FetchToken);
        } else {
            self.connect(now);
        }
    }

    fn connect(&mut self, now: Instant) {
        self.phase = Phase::Connecting {
            deadline: now + self.connect_timeout(),
        };
        self.out.push_back(Output::Connect);
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.opts.connect_timeout_ms)
    }

    /// The token provider answered: a token and how long it is valid, or an
    /// error (treated as a failed connection attempt).
    pub fn on_token(&mut self, now: Instant, token: Result<(String, Option<Duration>), String>) {
        self.token_asked = false;
        match token {
            Ok((t, valid_for)) => {
                self.token = Some(t.clone());
                self.refresh_at = valid_for.map(|v| {
                    now + v.saturating_sub(Duration::from_millis(self.opts.refresh_margin_ms))
                });
                match self.phase {
                    Phase::FetchingToken => self.connect(now),
                    Phase::Connected => {
                        let frame = |id| {
                            ClientFrame::Refresh {
                                id: Some(RequestId::Int(id)),
                                token: t.clone(),
                            }
                            .encode()
                        };
                        self.internal(now, frame, Effect::None);
                    }
                    _ => {}
                }
            }
            Err(e) => {
                if self.phase == Phase::FetchingToken {
                    self.failed(now, None, &format!("token provider failed: {e}"));
                } else {
                    self.emit(Event::Error {
                        code: "unauthorized".into(),
                        message: format!("token provider failed: {e}"),
                        seq: None,
                    });
                }
            }
        }
    }

    /// The transport is open: say hello.
    pub fn on_open(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Connecting { .. }) {
            return;
        }
        let hello = ClientFrame::Hello(Hello {
            v: crate::protocol::VERSION,
            token: self.token.clone(),
            user: self.opts.user.clone(),
            resume: self.session.as_ref().map(|s| Resume {
                session: s.clone(),
                key: self.resume_key.clone(),
                last_seq: self.last_seq,
            }),
            client: Some(self.opts.client_name.clone()),
        });
        self.out.push_back(Output::Send(hello.encode()));
        self.phase = Phase::Handshaking {
            deadline: now + self.connect_timeout(),
        };
    }

    /// A text frame arrived.
    pub fn on_frame(&mut self, now: Instant, text: &str) {
        let frame = match ServerFrame::decode(text) {
            Ok(f) => f,
            Err(e) => {
                if let Some(seq) = crate::protocol::server::message_seq(text) {
                    // A message whose payload does not decode: report that
                    // one message, in its place, and go on with the next.
                    let err = ClientError::Undecodable {
                        seq,
                        message: e.to_string(),
                    };
                    self.on_message(now, seq, || Event::Error {
                        code: err.code().into(),
                        message: err.to_string(),
                        seq: Some(seq),
                    });
                } else if !e.to_string().starts_with("unknown server frame type") {
                    // Unknown frame types are ignored (protocol §1); anything
                    // else malformed is reported.
                    self.emit(Event::Error {
                        code: "bad_frame".into(),
                        message: format!("could not decode a server frame: {e}"),
                        seq: None,
                    });
                }
                return;
            }
        };
        match frame {
            ServerFrame::Welcome(w) => self.on_welcome(now, w),
            ServerFrame::RefreshRequired { expires_in_ms } => {
                // The server says when the credentials expire, whatever the
                // provider said: ask it now (once), then send `refresh`.
                if self.has_token_provider && !self.token_asked {
                    tracing::debug!(expires_in_ms, "The server asked for fresh credentials.");
                    self.refresh_at = None;
                    self.token_asked = true;
                    self.out.push_back(Output::FetchToken);
                }
            }
            ServerFrame::Message(m) => {
                let seq = m.seq;
                self.on_message(now, seq, move || Event::Message(m));
            }
            ServerFrame::Gap {
                from_seq,
                to_seq,
                reason,
            } => {
                if to_seq > self.last_seq {
                    self.emit(Event::Loss {
                        from_seq: from_seq.max(self.last_seq + 1),
                        to_seq,
                        reason,
                    });
                    self.last_seq = to_seq;
                    self.schedule_ack(now);
                }
            }
            ServerFrame::Ok { id } => self.answered(&id, Ok(Reply::Ok)),
            ServerFrame::Result { id, data } => self.answered(&id, Ok(Reply::Result(data))),
            ServerFrame::Error { id, code, message } => {
                let err = ClientError::Server {
                    code: ErrorCode::parse(&code).unwrap_or(ErrorCode::Internal),
                    message: message.clone(),
                };
                match id {
                    Some(id) => self.answered(&id, Err(err)),
                    None => {
                        if matches!(self.phase, Phase::Handshaking { .. }) {
                            self.last_error = Some(format!("{code}: {message}"));
                            self.refused =
                                Some(ErrorCode::parse(&code).unwrap_or(ErrorCode::Internal));
                        }
                        self.emit(Event::Error {
                            code,
                            message,
                            seq: None,
                        });
                    }
                }
            }
            ServerFrame::Pong { .. } => {}
            ServerFrame::PresenceChange(p) => {
                if self.phase == Phase::Connected {
                    self.emit(Event::PresenceChange(p));
                }
            }
            ServerFrame::PresenceSummary(p) => {
                if self.phase == Phase::Connected {
                    self.emit(Event::PresenceSummary(p));
                }
            }
        }
    }

    /// Message `seq` arrived: emits `event` for it unless it is a
    /// redelivery, after a loss for any seqs skipped, and schedules its ack.
    fn on_message(&mut self, now: Instant, seq: u64, event: impl FnOnce() -> Event) {
        if self.phase != Phase::Connected {
            return;
        }
        if seq <= self.last_seq {
            return; // a redelivery we already emitted
        }
        if seq > self.last_seq + 1 {
            self.emit(Event::Loss {
                from_seq: self.last_seq + 1,
                to_seq: seq - 1,
                reason: "unannounced".into(),
            });
        }
        self.last_seq = seq;
        self.emit(event());
        self.schedule_ack(now);
    }

    fn on_welcome(&mut self, now: Instant, w: crate::protocol::Welcome) {
        self.token_asked = false;
        if !matches!(self.phase, Phase::Handshaking { .. }) {
            return;
        }
        self.phase = Phase::Connected;
        self.attempt = 0;
        self.last_error = None;
        self.refused = None;
        let lost_session = match &self.session {
            Some(old) if !w.resumed => Some(old.clone()),
            _ => None,
        };
        if lost_session.is_some() {
            // A fresh session numbers from 1 again.
            self.last_seq = 0;
            self.ack_sent = 0;
            self.ack_due = None;
        }
        self.session = Some(w.session.clone());
        // A server keeps a session's key across resumes; one that sends
        // none (before protocol 1.1) leaves nothing to present.
        self.resume_key = w.resume_key;
        self.emit(Event::Connected {
            session: w.session,
            user: w.user,
            resumed: w.resumed,
            lost_session: lost_session.clone(),
        });
        // A fresh session remembers none of the old one's ids (protocol
        // §10): a request the old connection may have routed would be routed
        // again. Unless the application accepted that, its outcome is
        // unknown; say so instead of re-sending it.
        if !w.resumed {
            let lost: Vec<i64> = self
                .inflight
                .values()
                .filter(|p| p.outcome_lost_with_session())
                .map(|p| p.id)
                .collect();
            for id in lost {
                let p = self.inflight.remove(&id).expect("listed");
                self.complete(p.owner, Err(unknown_outcome(p.id)));
            }
        }
        // Unanswered requests go again, with their ids, in order, after any
        // re-joins; then the offline queue.
        let unanswered: Vec<i64> = self.inflight.keys().copied().collect();
        if lost_session.is_some() && !self.groups.is_empty() {
            let groups: Vec<String> = self.groups.iter().cloned().collect();
            for g in &groups {
                let presence = self.watching.contains(g);
                let frame = |id| {
                    ClientFrame::Join {
                        id: Some(RequestId::Int(id)),
                        group: g.clone(),
                        presence,
                    }
                    .encode()
                };
                let effect = if presence {
                    Effect::JoinWatching(g.clone())
                } else {
                    Effect::Join(g.clone())
                };
                self.internal(now, frame, effect);
            }
            self.emit(Event::Rejoined { groups });
        }
        let deadline = Some(now + self.request_timeout());
        for id in unanswered {
            let p = self.inflight.get_mut(&id).expect("listed");
            p.deadline = deadline;
            p.sent = true;
            let frame = p.frame.clone();
            self.out.push_back(Output::Send(frame));
        }
        let queued: Vec<Pending> = self.queue.drain().collect();
        for mut p in queued {
            // Only a request restored from a snapshot can have been sent
            // before it was queued.
            if !w.resumed && p.outcome_lost_with_session() {
                self.complete(p.owner, Err(unknown_outcome(p.id)));
                continue;
            }
            p.deadline = deadline;
            p.sent = true;
            self.out.push_back(Output::Send(p.frame.clone()));
            self.inflight.insert(p.id, p);
        }
        self.persist();
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.opts.request_timeout_ms)
    }

    fn schedule_ack(&mut self, now: Instant) {
        if self.last_seq - self.ack_sent >= u64::from(self.opts.ack.batch) {
            self.send_ack();
        } else if self.ack_due.is_none() {
            self.ack_due = Some(now + Duration::from_millis(self.opts.ack.interval_ms));
        }
    }

    fn send_ack(&mut self) {
        self.ack_due = None;
        if self.last_seq > self.ack_sent && self.phase == Phase::Connected {
            self.ack_sent = self.last_seq;
            let ack = ClientFrame::Ack { seq: self.last_seq };
            self.out.push_back(Output::Send(ack.encode()));
        }
    }

    fn answered(&mut self, id: &RequestId, result: Result<Reply, ClientError>) {
        let RequestId::Int(id) = id else { return };
        let Some(p) = self.inflight.remove(id) else {
            return; // timed out, cancelled, or not ours
        };
        if result.is_ok() {
            match &p.effect {
                Effect::Join(g) => {
                    self.groups.insert(g.clone());
                }
                Effect::JoinWatching(g) => {
                    self.groups.insert(g.clone());
                    self.watching.insert(g.clone());
                }
                Effect::Leave(g) => {
                    self.groups.remove(g);
                    self.watching.remove(g);
                }
                Effect::None => {}
            }
        }
        self.complete(p.owner, result);
    }

    fn complete(&mut self, owner: Owner, result: Result<Reply, ClientError>) {
        match owner {
            Owner::User(token) => self.out.push_back(Output::Complete { token, result }),
            Owner::Internal | Owner::Restored => {
                if let Err(e) = result {
                    self.emit(Event::Error {
                        code: e.code().to_owned(),
                        message: e.to_string(),
                        seq: None,
                    });
                }
            }
        }
    }

    /// The transport closed (or could not be opened): `code` is the close
    /// code the server sent, if any.
    pub fn on_closed(&mut self, now: Instant, code: Option<u16>, reason: &str) {
        match self.phase {
            Phase::Closed | Phase::Idle | Phase::Backoff { .. } | Phase::FetchingToken => {}
            Phase::Closing => {
                self.phase = Phase::Closed;
                self.emit(Event::Closed {
                    reason: "closed by the application".into(),
                    code: None,
                });
            }
            Phase::Connecting { .. } | Phase::Handshaking { .. } | Phase::Connected => {
                self.failed(now, code, reason);
            }
        }
    }

    /// A connection ended or an attempt failed: retry or give up.
    fn failed(&mut self, now: Instant, code: Option<u16>, reason: &str) {
        self.ack_due = None;
        // Requests in flight are kept and re-sent after the next welcome.
        for p in self.inflight.values_mut() {
            p.deadline = None;
        }
        let reason = match self.last_error.take() {
            Some(e) if reason.is_empty() => e,
            Some(e) => format!("{reason} ({e})"),
            None => reason.to_owned(),
        };
        // What the relay refused with: its `error` frame's code, else what
        // its close code stands for. A transport failure has neither.
        let refused = self
            .refused
            .take()
            .or_else(|| code.and_then(close::error_code));
        let retryable = match code {
            Some(close::TOKEN_EXPIRED) => self.has_token_provider,
            Some(c) => close::is_retryable(c),
            None => true,
        };
        let attempts_left = self
            .opts
            .reconnect
            .max_attempts
            .is_none_or(|max| self.attempt < max);
        let will_retry = retryable && self.opts.reconnect.enabled && attempts_left;
        self.emit(Event::Disconnected {
            code,
            reason: reason.clone(),
            will_retry,
        });
        if will_retry {
            self.attempt += 1;
            let delay = self.opts.backoff().delay(self.attempt, &mut self.rng);
            self.phase = Phase::Backoff { until: now + delay };
            self.emit(Event::Reconnecting {
                attempt: self.attempt,
                delay_ms: delay.as_millis() as u64,
            });
            self.persist();
        } else {
            self.shut(reason, refused);
        }
    }

    /// Ends for good: fails everything pending. `refused` is the protocol
    /// code the relay refused the last connection with, if it did.
    fn shut(&mut self, reason: String, refused: Option<ErrorCode>) {
        self.phase = Phase::Closed;
        self.fail_all_pending();
        self.emit(Event::Closed {
            reason,
            code: refused.map(|c| c.as_str().to_owned()),
        });
    }

    fn complete_silently(&mut self, owner: Owner, e: ClientError) {
        if let Owner::User(token) = owner {
            self.out.push_back(Output::Complete {
                token,
                result: Err(e),
            });
        }
    }

    /// Makes a request with the default [`Retry::AtMostOnce`]. While
    /// connected it is sent at once; otherwise it waits in the offline queue.
    pub fn request(&mut self, now: Instant, req: Request) -> Result<RequestToken, ClientError> {
        self.request_with(now, req, Retry::default())
    }

    /// [`Engine::request`] with the choice of what a lost session does to
    /// it ([`Retry`]; ignored for join, leave and presence, always re-sent).
    pub fn request_with(
        &mut self,
        now: Instant,
        req: Request,
        retry: Retry,
    ) -> Result<RequestToken, ClientError> {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return Err(ClientError::Closed);
        }
        validate(&req)?;
        let id = self.next_id;
        let (frame, effect) = encode(id, &req);
        let token = RequestToken(id as u64);
        let retry = match req {
            Request::Join { .. } | Request::Leave { .. } | Request::Presence { .. } => {
                Retry::Resend
            }
            Request::Send { .. }
            | Request::Publish { .. }
            | Request::Broadcast { .. }
            | Request::Rpc { .. } => retry,
        };
        let p = Pending {
            id,
            frame,
            owner: Owner::User(token),
            effect,
            deadline: None,
            sent: false,
            retry,
        };
        self.submit(now, p)?;
        self.next_id += 1;
        Ok(token)
    }

    fn internal(&mut self, now: Instant, frame: impl FnOnce(i64) -> String, effect: Effect) {
        let id = self.next_id;
        self.next_id += 1;
        // Re-joins and refreshes are idempotent: always re-sent.
        let p = Pending {
            id,
            frame: frame(id),
            owner: Owner::Internal,
            effect,
            deadline: None,
            sent: false,
            retry: Retry::Resend,
        };
        let _ = self.submit(now, p);
    }

    fn submit(&mut self, now: Instant, mut p: Pending) -> Result<(), ClientError> {
        if self.phase == Phase::Connected {
            p.deadline = Some(now + self.request_timeout());
            p.sent = true;
            self.out.push_back(Output::Send(p.frame.clone()));
            self.inflight.insert(p.id, p);
            return Ok(());
        }
        match self.queue.push(p) {
            Ok(Pushed::Queued) => {}
            Ok(Pushed::Evicted(old)) => {
                for o in old {
                    self.complete(o.owner, Err(ClientError::QueueFull));
                }
            }
            Err(_) => return Err(ClientError::QueueFull),
        }
        self.persist();
        Ok(())
    }

    /// Stops waiting for a request. A queued request is not sent; one in
    /// flight may still take effect on the server.
    pub fn cancel(&mut self, token: RequestToken) {
        let owned = |p: &Pending| p.owner == Owner::User(token);
        if self.queue.remove(owned).is_some() {
            self.persist();
            return;
        }
        let id = token.0 as i64;
        if self.inflight.get(&id).is_some_and(owned) {
            self.inflight.remove(&id);
        }
    }

    /// Closes cleanly (1000): the session ends on the server, everything
    /// pending fails with `closed`.
    pub fn close(&mut self) {
        match self.phase {
            Phase::Closing | Phase::Closed => {}
            Phase::Connected => {
                self.send_ack();
                self.out.push_back(Output::Close {
                    code: close::NORMAL,
                    reason: "client closed".into(),
                });
                self.fail_all_pending();
                self.phase = Phase::Closing;
            }
            Phase::Connecting { .. } | Phase::Handshaking { .. } => {
                self.out.push_back(Output::Close {
                    code: close::NORMAL,
                    reason: "client closed".into(),
                });
                self.fail_all_pending();
                self.phase = Phase::Closing;
            }
            Phase::Idle | Phase::Backoff { .. } | Phase::FetchingToken => {
                self.shut("closed by the application".into(), None);
            }
        }
    }

    /// Fails every unanswered and queued request with `closed` and deletes
    /// the persisted state (nothing is left to resume).
    fn fail_all_pending(&mut self) {
        let inflight = std::mem::take(&mut self.inflight);
        for p in inflight.into_values() {
            self.complete_silently(p.owner, ClientError::Closed);
        }
        let queued: Vec<Pending> = self.queue.drain().collect();
        for p in queued {
            self.complete_silently(p.owner, ClientError::Closed);
        }
        if self.opts.persist_path.is_some() {
            self.out.push_back(Output::Persist(None));
        }
    }

    /// When [`Engine::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Connecting { deadline } | Phase::Handshaking { deadline } => Some(deadline),
            Phase::Backoff { until } => Some(until),
            _ => None,
        };
        let request = self.inflight.values().filter_map(|p| p.deadline).min();
        let refresh = if self.phase == Phase::Connected && self.has_token_provider {
            self.refresh_at
        } else {
            None
        };
        [phase, self.ack_due, request, refresh]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Connecting { deadline } | Phase::Handshaking { deadline } if now >= deadline => {
                self.last_error = Some("connection timed out".into());
                self.out.push_back(Output::Close {
                    code: close::GOING_AWAY,
                    reason: "connect timeout".into(),
                });
                // Not waiting for the driver: the attempt has failed.
                self.failed(now, None, "connection timed out");
            }
            Phase::Backoff { until } if now >= until => self.begin_attempt(now),
            _ => {}
        }
        if self.ack_due.is_some_and(|t| now >= t) {
            self.send_ack();
        }
        let expired: Vec<i64> = self
            .inflight
            .values()
            .filter(|p| p.deadline.is_some_and(|d| now >= d))
            .map(|p| p.id)
            .collect();
        for id in expired {
            let p = self.inflight.remove(&id).expect("listed");
            self.complete(p.owner, Err(ClientError::Timeout));
        }
        if self.phase == Phase::Connected
            && self.has_token_provider
            && self.refresh_at.is_some_and(|t| now >= t)
        {
            self.refresh_at = None;
            self.token_asked = true;
            self.out.push_back(Output::FetchToken);
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Whether the engine is closed for good.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether a session is live on an open connection.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The current (or last) session id.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The last seq emitted.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Groups joined (as confirmed by the server).
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(String::as_str)
    }

    /// Requests waiting in the offline queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Requests sent and not answered.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// The state worth persisting.
    pub fn snapshot(&self) -> Snapshot {
        let pending = self
            .inflight
            .values()
            .chain(self.queue.iter())
            .filter(|p| p.owner != Owner::Internal)
            .map(|p| PersistedRequest {
                id: p.id,
                frame: p.frame.clone(),
                effect: p.effect.clone(),
                sent: p.sent,
                retry: p.retry,
            })
            .collect();
        Snapshot {
            version: 1,
            session: self.session.clone(),
            resume_key: self.resume_key.clone(),
            last_seq: self.last_seq,
            next_id: self.next_id,
            groups: self.groups.iter().cloned().collect(),
            watching: self.watching.iter().cloned().collect(),
            pending,
        }
    }

    fn persist(&mut self) {
        if self.opts.persist_path.is_some() {
            let s = self.snapshot();
            self.out.push_back(Output::Persist(Some(s)));
        }
    }

    fn emit(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }
}

fn unknown_outcome(id: i64) -> ClientError {
    ClientError::UnknownOutcome { id: id as u64 }
}

fn validate(req: &Request) -> Result<(), ClientError> {
    let name = |what: &str, v: &str| {
        crate::protocol::names::validate(what, v)
            .map_err(|e| ClientError::InvalidArgument(e.message.into_owned()))
    };
    use crate::protocol::client::MAX_SESSION_ID_LEN;
    // Payload depth is the relay's to bound (`limits.max_json_depth` may be
    // raised there); a frame over its bound is answered with `bad_request`.
    match req {
        Request::Send { target, .. } => match target {
            Target::User(u) => name("to", u),
            Target::Session(s) if s.is_empty() || s.len() > MAX_SESSION_ID_LEN => {
                Err(ClientError::InvalidArgument(format!(
                    "`session` must be a session id of 1 to {MAX_SESSION_ID_LEN} bytes"
                )))
            }
            Target::Session(_) => Ok(()),
        },
        Request::Publish { group, .. }
        | Request::Join { group, .. }
        | Request::Leave { group }
        | Request::Presence { group } => name("group", group),
        Request::Broadcast { .. } => Ok(()),
        Request::Rpc { method, .. } => name("method", method),
    }
}

/// Encodes a request with the protocol's own frame types.
fn encode(id: i64, req: &Request) -> (String, Effect) {
    let rpc_id = RequestId::Int(id);
    let id = Some(rpc_id.clone());
    match req {
        Request::Send { target, data } => (
            ClientFrame::Send {
                id,
                target: target.clone(),
                data,
            }
            .encode(),
            Effect::None,
        ),
        Request::Publish { group, data, echo } => (
            ClientFrame::Publish {
                id,
                group: group.clone(),
                data,
                echo: *echo,
            }
            .encode(),
            Effect::None,
        ),
        Request::Broadcast { data, echo } => (
            ClientFrame::Broadcast {
                id,
                data,
                echo: *echo,
            }
            .encode(),
            Effect::None,
        ),
        Request::Join { group, presence } => (
            ClientFrame::Join {
                id,
                group: group.clone(),
                presence: *presence,
            }
            .encode(),
            if *presence {
                Effect::JoinWatching(group.clone())
            } else {
                Effect::Join(group.clone())
            },
        ),
        Request::Presence { group } => (
            ClientFrame::Presence {
                id: rpc_id,
                group: group.clone(),
            }
            .encode(),
            Effect::None,
        ),
        Request::Leave { group } => (
            ClientFrame::Leave {
                id,
                group: group.clone(),
            }
            .encode(),
            Effect::Leave(group.clone()),
        ),
        Request::Rpc { method, data } => (
            ClientFrame::Rpc {
                id: rpc_id,
                method: method.clone(),
                data: data.as_deref(),
            }
            .encode(),
            Effect::None,
        ),
    }
}

#[cfg(test)]
mod tests;
