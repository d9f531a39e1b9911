//! Handling one client frame after `hello`: the input bounds (size, depth,
//! rate, the ack and broadcast budgets), then each request: routing with
//! duplicate suppression, membership, RPC, token refresh.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::{Conn, End};
use super::held::{Held, HeldRequest};
use super::limiter::{RateLimiter, Strikes};
use super::{now_ms, HostEvent, RpcContext};
use crate::auth::rbac::Access;
use crate::auth::{Action, AuthRequest};
use crate::error::{ErrorCode, ProtocolError};
use crate::metrics::{AuthFailure, FrameType, RateLimit};
use crate::protocol::client::{self as wire, ClientFrame, RequestId, Target};
use crate::protocol::{close, Delivery, DeliveryKind, ServerFrame};
use crate::session::RecentReply;

/// Counts an error sent to a client, logs it as a `tracing` event with
/// stable fields (`code`, `session`, `frame_type`; at `error` level for
/// `internal`, which is the relay's or a hook's failure, else at `debug`),
/// and tells the host's hooks.
pub(crate) fn report_error(
    shared: &super::Shared,
    session: Option<&str>,
    code: ErrorCode,
    message: &str,
    frame_type: &str,
) {
    shared.metrics.errors.inc(code);
    let c = code.as_str();
    if code == ErrorCode::Internal {
        tracing::error!(
            code = c,
            session,
            frame_type,
            message,
            "Answered a client with an internal error."
        );
    } else {
        tracing::debug!(
            code = c,
            session,
            frame_type,
            message,
            "Refused a client's request."
        );
    }
    shared.events.emit(|| HostEvent::Error {
        session: session.map(str::to_owned),
        code: c.to_owned(),
        message: message.to_owned(),
        frame_type: frame_type.to_owned(),
    });
}

/// The metrics label of a frame.
fn frame_type(f: &ClientFrame<'_>) -> FrameType {
    match f {
        ClientFrame::Hello(_) => FrameType::Hello,
        ClientFrame::Ack { .. } => FrameType::Ack,
        ClientFrame::Ping { .. } => FrameType::Ping,
        ClientFrame::Join { .. } => FrameType::Join,
        ClientFrame::Leave { .. } => FrameType::Leave,
        ClientFrame::Send { .. } => FrameType::Send,
        ClientFrame::Publish { .. } => FrameType::Publish,
        ClientFrame::Broadcast { .. } => FrameType::Broadcast,
        ClientFrame::Rpc { .. } => FrameType::Rpc,
        ClientFrame::Refresh { .. } => FrameType::Refresh,
        ClientFrame::Presence { .. } => FrameType::Presence,
    }
}

/// RPC calls one connection may have in flight.
const MAX_RPC_IN_FLIGHT: usize = 64;

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(super) fn on_text(&mut self, text: &str) -> Result<(), End> {
        self.renew_live();
        let limits = &self.live.limits;
        let max = limits.max_frame_bytes;
        if text.len() > max {
            tracing::debug!(session = %self.session.id, bytes = text.len(), "Refused a frame over limits.max_frame_bytes.");
            let m = format!(
                "frame of {} bytes is over the limit of {max} bytes",
                text.len()
            );
            return self.reply_error(None, ErrorCode::TooLarge, &m, true);
        }
        // Acks are most of what a busy reader sends: the canonical form skips
        // the general parser.
        if let Some(seq) = wire::canonical_ack(text) {
            self.frame_type = "ack";
            self.shared.metrics.frame(FrameType::Ack);
            return self.on_ack(seq);
        }
        let frame = match wire::parse_bounded(text, limits.max_json_depth) {
            Ok(f) => f,
            Err(e) => {
                self.shared.metrics.frame(FrameType::Invalid);
                self.frame_type = "invalid";
                return self.reply_error(e.id.as_ref(), e.error.code, &e.error.message, true);
            }
        };
        self.frame_type = frame.type_name();
        self.shared.metrics.frame(frame_type(&frame));
        self.access
            .renew_if_replaced(&self.shared.policy, &self.identity);
        // Acks have a budget of their own (`on_ack`).
        let is_ack = matches!(frame, ClientFrame::Ack { .. });
        if !is_ack && !self.limiter.allow(Instant::now()) {
            self.shared.metrics.rate_limited.inc(RateLimit::Frames);
            tracing::debug!(session = %self.session.id, "Refused a frame over limits.rate_per_sec / limits.rate_burst.");
            let id = frame.id().cloned();
            return self.reply_error(
                id.as_ref(),
                ErrorCode::RateLimited,
                "too many frames: slow down",
                true,
            );
        }
        match frame {
            ClientFrame::Hello(_) => self.reply_error(
                None,
                ErrorCode::BadRequest,
                "hello was already received on this connection",
                true,
            ),
            ClientFrame::Ack { seq } => self.on_ack(seq),
            ClientFrame::Ping { id } => self.write(&ServerFrame::Pong { id }.encode()),
            ClientFrame::Join {
                id,
                group,
                presence,
            } => {
                if self.shared.authorizer.is_some() {
                    return self.hold(id, Held::Join { group, presence });
                }
                let r = self.join(group, presence);
                self.answer(id.as_ref(), r)
            }
            ClientFrame::Presence { id, group } => self.presence(id, &group),
            ClientFrame::Leave { id, group } => {
                let r = self.leave(&group);
                self.answer(id.as_ref(), r)
            }
            ClientFrame::Send { id, target, data } => {
                if self.shared.authorizer.is_some() {
                    let data = data.to_owned();
                    return self.hold(id, Held::Send { target, data });
                }
                self.routed(id, |c| c.send(&target, data))
            }
            ClientFrame::Publish {
                id,
                group,
                data,
                echo,
            } => {
                if self.shared.authorizer.is_some() || self.live.validation.has_hooks(&group) {
                    let data = data.to_owned();
                    return self.hold(id, Held::Publish { group, data, echo });
                }
                self.routed(id, |c| c.publish(&group, data, echo))
            }
            ClientFrame::Broadcast { id, data, echo } => {
                if self.shared.authorizer.is_some() {
                    let data = data.to_owned();
                    return self.hold(id, Held::Broadcast { data, echo });
                }
                self.routed(id, |c| c.broadcast(data, echo))
            }
            ClientFrame::Rpc { id, method, data } => self.rpc(id, &method, data),
            ClientFrame::Refresh { id, token } => {
                self.held = Some(Box::new(HeldRequest::refresh(id, token)));
                Ok(())
            }
        }
    }

    /// Takes reloaded limits, features, authenticator and schemas when a
    /// reload replaced them (one atomic load per frame otherwise). The rate
    /// limiters start again under the new rates.
    fn renew_live(&mut self) {
        if self.shared.live.generation() == self.live_gen {
            return;
        }
        let (live, generation) = self.shared.live.snapshot();
        let l = &live.limits;
        let now = Instant::now();
        self.limiter = RateLimiter::new(l.rate_per_sec, l.rate_burst, now);
        self.acks = RateLimiter::new(
            l.ack_rate_per_sec,
            l.ack_rate_per_sec.saturating_mul(2),
            now,
        );
        self.broadcasts = RateLimiter::new(l.broadcast_per_sec, l.broadcast_per_sec, now);
        self.strikes = Strikes::new(l.abuse_strikes, now);
        self.live = live;
        self.live_gen = generation;
    }

    /// A cumulative ack, within its own rate budget (`limits.ack_rate_per_sec`).
    fn on_ack(&mut self, seq: u64) -> Result<(), End> {
        if !self.acks.allow(Instant::now()) {
            self.shared.metrics.rate_limited.inc(RateLimit::Acks);
            tracing::debug!(session = %self.session.id, "Refused an ack over limits.ack_rate_per_sec.");
            return self.reply_error(
                None,
                ErrorCode::RateLimited,
                "too many acks: acknowledge in batches",
                true,
            );
        }
        let (r, delta) = {
            let mut st = self.session.lock();
            let before = st.outbox.bytes();
            let r = st.outbox.ack(seq);
            (r, st.outbox.bytes() as i64 - before as i64)
        };
        self.shared.router.budget().add(delta);
        match r {
            Ok(()) => {
                self.shared.metrics.acks.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(m) => self.reply_error(None, ErrorCode::BadRequest, &m, true),
        }
    }

    /// A request whose id was seen before is answered from memory (its
    /// answer written again, or nothing while it is still in progress):
    /// `Some` with what that did, `None` for a new request.
    pub(super) fn seen_before(&mut self, id: Option<&RequestId>) -> Option<Result<(), End>> {
        let seen = self.session.lock().recent.get(id?).cloned()?;
        Some(match seen {
            RecentReply::Done(frame) => self.write(&frame),
            RecentReply::Pending => Ok(()),
        })
    }

    /// A routing request: answered from memory when its id was seen before,
    /// otherwise routed once and its answer remembered.
    pub(super) fn routed(
        &mut self,
        id: Option<RequestId>,
        route: impl FnOnce(&mut Self) -> Result<(), ProtocolError>,
    ) -> Result<(), End> {
        if let Some(done) = self.seen_before(id.as_ref()) {
            return done;
        }
        let result = route(self);
        let Some(id) = id else {
            return match result {
                Ok(()) => Ok(()),
                Err(e) => self.reply_error(None, e.code, &e.message, false),
            };
        };
        let frame = match &result {
            Ok(()) => ServerFrame::ok(&id),
            Err(e) => {
                self.report_error(e.code, &e.message);
                ServerFrame::error(Some(&id), e.code, &e.message)
            }
        }
        .encode();
        self.session
            .lock()
            .recent
            .insert(id, RecentReply::Done(frame.clone()));
        self.write(&frame)
    }

    /// The roles' permissions, then the host's authorizer.
    pub(super) fn authorize(&self, action: Action<'_>) -> Result<(), ProtocolError> {
        self.access.check(&self.identity, &action)?;
        self.live.auth.authorize(&self.identity, &action)
    }

    fn delivery(&self, kind: DeliveryKind, group: Option<&str>, data: &RawValue) -> Delivery {
        Delivery::new(
            kind,
            self.session.user.as_deref(),
            Some(&self.session.id),
            group,
            data.get(),
            now_ms(),
        )
    }

    fn send(&self, target: &Target, data: &RawValue) -> Result<(), ProtocolError> {
        self.check_send(target)?;
        self.route_send(target, data)
    }

    pub(super) fn check_send(&self, target: &Target) -> Result<(), ProtocolError> {
        if matches!(target, Target::Session(_)) && !self.live.features.send_to_session {
            return Err(ProtocolError::new(
                ErrorCode::Forbidden,
                "sending to a session id is disabled on this server",
            ));
        }
        self.authorize(Action::Send { target })
    }

    pub(super) fn route_send(&self, target: &Target, data: &RawValue) -> Result<(), ProtocolError> {
        let d = self.delivery(DeliveryKind::Direct, None, data);
        let router = &self.shared.router;
        match target {
            Target::User(u) => router.to_user(u, Some(&self.session), &d).map(drop),
            Target::Session(s) => router.to_session(s, &d).map(drop),
        }?;
        self.message_event(DeliveryKind::Direct, None, Some(target), data);
        Ok(())
    }

    fn publish(&mut self, group: &str, data: &RawValue, echo: bool) -> Result<(), ProtocolError> {
        self.check_publish(group, data)?;
        self.route_publish(group, data, echo)
    }

    /// A publish's permission, then its group's schemas.
    pub(super) fn check_publish(&self, group: &str, data: &RawValue) -> Result<(), ProtocolError> {
        self.authorize(Action::Publish { group })?;
        self.live.validation.check_schemas(group, data)
    }

    pub(super) fn route_publish(
        &mut self,
        group: &str,
        data: &RawValue,
        echo: bool,
    ) -> Result<(), ProtocolError> {
        self.message_event(DeliveryKind::Group, Some(group), None, data);
        let d = self.delivery(DeliveryKind::Group, Some(group), data);
        let exclude = (!echo).then_some(&*self.session);
        let n = self.shared.router.to_group(group, exclude, &d);
        // A publish to a large group costs its sender in proportion to the
        // deliveries it makes: members / 1,000 frames of its rate budget.
        if n > self.live.limits.large_group {
            self.limiter.charge(n as f64 / 1_000.0);
        }
        Ok(())
    }

    fn broadcast(&mut self, data: &RawValue, echo: bool) -> Result<(), ProtocolError> {
        self.check_broadcast()?;
        self.route_broadcast(data, echo)
    }

    pub(super) fn check_broadcast(&self) -> Result<(), ProtocolError> {
        if !self.live.features.client_broadcast {
            return Err(ProtocolError::new(
                ErrorCode::Forbidden,
                "client broadcast is disabled on this server (features.client_broadcast)",
            ));
        }
        self.authorize(Action::Broadcast)
    }

    pub(super) fn route_broadcast(
        &mut self,
        data: &RawValue,
        echo: bool,
    ) -> Result<(), ProtocolError> {
        if !self.broadcasts.allow(Instant::now()) {
            self.shared.metrics.rate_limited.inc(RateLimit::Broadcasts);
            return Err(ProtocolError::new(
                ErrorCode::RateLimited,
                format!(
                    "at most {} broadcasts per second (limits.broadcast_per_sec)",
                    self.live.limits.broadcast_per_sec
                ),
            ));
        }
        self.message_event(DeliveryKind::Broadcast, None, None, data);
        let d = self.delivery(DeliveryKind::Broadcast, None, data);
        let exclude = (!echo).then_some(&*self.session);
        self.shared.router.to_all(exclude, &d);
        Ok(())
    }

    fn join(&self, group: String, presence: bool) -> Result<(), ProtocolError> {
        self.check_join(&group, presence)?;
        self.do_join(group, presence)
    }

    /// A join's permissions: `join`, and `presence` when it asks for notices.
    pub(super) fn check_join(&self, group: &str, presence: bool) -> Result<(), ProtocolError> {
        self.authorize(Action::Join { group })?;
        if presence {
            self.authorize(Action::Presence { group })?;
        }
        Ok(())
    }

    /// Who is in `group`, answered as a `result` (the roles' `presence`
    /// permission decides).
    fn presence(&mut self, id: RequestId, group: &str) -> Result<(), End> {
        if let Err(e) = self.authorize(Action::Presence { group }) {
            return self.reply_error(Some(&id), e.code, &e.message, false);
        }
        let list = self.shared.presence.snapshot(group);
        let data = serde_json::value::to_raw_value(&list).expect("presence is JSON");
        self.write(&ServerFrame::Result { id, data }.encode())
    }

    pub(super) fn do_join(&self, group: String, presence: bool) -> Result<(), ProtocolError> {
        let group: Arc<str> = group.into();
        let max = self.shared.router.limits().max_groups;
        {
            let mut st = self.session.lock();
            if st.groups.contains(&group) {
                drop(st);
                if presence {
                    self.shared.presence.watch(&group, &self.session);
                }
                return Ok(());
            }
            if st.groups.len() >= max {
                tracing::debug!(session = %self.session.id, limit = max, "Refused a join: limits.max_groups_per_session reached.");
                return Err(ProtocolError::new(
                    ErrorCode::LimitExceeded,
                    format!("a session may be in at most {max} groups"),
                ));
            }
            st.groups.insert(group.clone());
        }
        let store = self.shared.router.store();
        store.join(&group, &self.session);
        if self.session.is_ended() {
            // The session ended while joining: undo, so no membership dangles.
            store.leave(&group, &self.session.id);
            return Ok(());
        }
        self.shared.presence.joined(&group, &self.session, presence);
        self.shared.events.emit(|| HostEvent::Joined {
            session: self.session.id.to_string(),
            user: self.identity.user.clone(),
            group: group.to_string(),
        });
        Ok(())
    }

    fn leave(&self, group: &str) -> Result<(), ProtocolError> {
        let was = self.session.lock().groups.remove(group);
        self.shared.router.store().leave(group, &self.session.id);
        if was {
            self.shared.presence.left(group, &self.session);
            self.shared.events.emit(|| HostEvent::Left {
                session: self.session.id.to_string(),
                user: self.identity.user.clone(),
                group: group.to_owned(),
            });
        }
        Ok(())
    }

    /// Counts an error sent to this client, logs it and tells the hooks.
    pub(super) fn report_error(&self, code: ErrorCode, message: &str) {
        report_error(
            &self.shared,
            Some(&self.session.id),
            code,
            message,
            self.frame_type,
        );
    }

    /// Tells the hooks about a message this client routed (`hooks.messages`).
    fn message_event(
        &self,
        kind: DeliveryKind,
        group: Option<&str>,
        to: Option<&Target>,
        data: &RawValue,
    ) {
        if !self.shared.events.messages {
            return;
        }
        self.shared.events.emit(|| HostEvent::Message {
            kind: kind.as_str().to_owned(),
            session: self.session.id.to_string(),
            user: self.identity.user.clone(),
            group: group.map(str::to_owned),
            to: to.map(|t| match t {
                Target::User(u) => u.to_string(),
                Target::Session(s) => s.to_string(),
            }),
            bytes: data.get().len(),
        });
    }

    /// The handler's future, which fails with `internal` when the handler
    /// takes longer than `limits.rpc_timeout_ms`; with a host authorizer,
    /// the handler starts only once it allowed the call (within
    /// `limits.authorize_timeout_ms`).
    fn rpc_call(
        &self,
        method: &str,
        ctx: RpcContext,
        arg: serde_json::Value,
    ) -> crate::auth::BoxFuture<'static, super::RpcResult> {
        let shared = self.shared.clone();
        let method = method.to_owned();
        let rpc_limit = Duration::from_millis(self.live.limits.rpc_timeout_ms);
        let Some(authorizer) = shared.authorizer.clone() else {
            let call = shared
                .rpc
                .call(&method, ctx, arg)
                .expect("the method was found");
            return Box::pin(super::rpc::within(rpc_limit, method, call));
        };
        let identity = self.identity.clone();
        let limit = Duration::from_millis(self.live.limits.authorize_timeout_ms);
        Box::pin(async move {
            let asked = authorizer.authorize(&identity, Action::Rpc { method: &method });
            match tokio::time::timeout(limit, asked).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::Internal,
                        "authorization did not finish in time (limits.authorize_timeout_ms)",
                    ))
                }
            }
            let call = shared
                .rpc
                .call(&method, ctx, arg)
                .expect("the method was found");
            super::rpc::within(rpc_limit, method, call).await
        })
    }

    pub(super) async fn refresh(&mut self, token: &str) -> Result<(), ProtocolError> {
        let request = AuthRequest {
            token: Some(token),
            user: self.identity.user.as_deref(),
            remote: None,
            client: None,
        };
        let limit = Duration::from_millis(self.shared.config.server.hello_timeout_ms);
        let fresh = tokio::time::timeout(limit, self.live.auth.authenticate(request))
            .await
            .map_err(|_| {
                self.shared.metrics.auth_failures.inc(AuthFailure::Timeout);
                tracing::warn!(session = %self.session.id, "A refresh got no answer from the authenticator within server.hello_timeout_ms.");
                ProtocolError::new(
                    ErrorCode::Internal,
                    "the authenticator did not answer in time; try the refresh again",
                )
            })?
            .inspect_err(|e| {
                self.shared
                    .metrics
                    .auth_failures
                    .inc(super::handshake::auth_failure(e.code));
            })?;
        if fresh.user != self.identity.user {
            return Err(ProtocolError::new(
                ErrorCode::Forbidden,
                "a refreshed token must be for the same user",
            ));
        }
        // The new credentials decide from now on: their expiry, and their
        // roles and groups (a refresh may narrow what a connection may do).
        self.identity = fresh;
        self.access = Access::new(&self.shared.policy, &self.identity);
        Ok(())
    }

    fn rpc(&mut self, id: RequestId, method: &str, data: Option<&RawValue>) -> Result<(), End> {
        if let Some(done) = self.seen_before(Some(&id)) {
            return done;
        }
        // The frame passed the depth bound, but a handler gets a `Value`,
        // which cannot hold every JSON text (a number like 1e400).
        let arg = match data.map(|d| serde_json::from_str(d.get())).transpose() {
            Ok(v) => v.unwrap_or(serde_json::Value::Null),
            Err(e) => {
                let m = format!("rpc `data` cannot be handed to a handler: {e}");
                return self.reply_error(Some(&id), ErrorCode::BadRequest, &m, true);
            }
        };
        let ctx = RpcContext {
            session: self.session.id.to_string(),
            user: self.identity.user.clone(),
        };
        let call = self.authorize(Action::Rpc { method }).and_then(|()| {
            if !self.shared.rpc.contains(method) {
                return Err(ProtocolError::new(
                    ErrorCode::NotFound,
                    format!("no rpc method {method:?}"),
                ));
            }
            Ok(self.rpc_call(method, ctx, arg))
        });
        let fut = match call {
            Ok(fut) => fut,
            Err(e) => {
                self.report_error(e.code, &e.message);
                let frame = ServerFrame::error(Some(&id), e.code, &e.message).encode();
                self.session
                    .lock()
                    .recent
                    .insert(id, RecentReply::Done(frame.clone()));
                return self.write(&frame);
            }
        };
        if self.rpc_in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_RPC_IN_FLIGHT {
            self.rpc_in_flight.fetch_sub(1, Ordering::AcqRel);
            let m =
                format!("at most {MAX_RPC_IN_FLIGHT} rpc calls may be in flight per connection");
            return self.reply_error(Some(&id), ErrorCode::LimitExceeded, &m, false);
        }
        self.session
            .lock()
            .recent
            .insert(id.clone(), RecentReply::Pending);
        let session = self.session.clone();
        let in_flight = self.rpc_in_flight.clone();
        let method = method.to_owned();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let frame = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(Ok(v)) => match serde_json::value::to_raw_value(&v) {
                    Ok(data) => ServerFrame::Result {
                        id: id.clone(),
                        data,
                    },
                    Err(_) => {
                        ServerFrame::error(Some(&id), ErrorCode::Internal, "the result is not JSON")
                    }
                },
                Ok(Err(e)) => ServerFrame::error(Some(&id), e.code, &e.message),
                Err(_) => {
                    tracing::error!(method, "An rpc handler panicked.");
                    ServerFrame::error(Some(&id), ErrorCode::Internal, "the rpc handler failed")
                }
            };
            if let ServerFrame::Error { code, message, .. } = &frame {
                if let Some(c) = ErrorCode::ALL.iter().find(|c| c.as_str() == code) {
                    report_error(&shared, Some(&session.id), *c, message, "rpc");
                }
            }
            let frame = frame.encode();
            session
                .lock()
                .recent
                .insert(id, RecentReply::Done(frame.clone()));
            session.reply(frame);
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
        Ok(())
    }

    /// Answers a non-routing request: `ok` when it has an id, `error` always
    /// on failure.
    pub(super) fn answer(
        &mut self,
        id: Option<&RequestId>,
        r: Result<(), ProtocolError>,
    ) -> Result<(), End> {
        match (r, id) {
            (Ok(()), Some(id)) => self.write(&ServerFrame::ok(id).encode()),
            (Ok(()), None) => Ok(()),
            (Err(e), id) => self.reply_error(id, e.code, &e.message, false),
        }
    }

    /// Sends an `error`. `strike` counts it as bad input towards the abuse
    /// limit, past which the connection is closed with 1008.
    pub(super) fn reply_error(
        &mut self,
        id: Option<&RequestId>,
        code: ErrorCode,
        message: &str,
        strike: bool,
    ) -> Result<(), End> {
        self.report_error(code, message);
        self.write(&ServerFrame::error(id, code, message).encode())?;
        if strike && self.strikes.strike(Instant::now()) {
            self.shared.metrics.rate_limited.inc(RateLimit::Abuse);
            tracing::info!(session = %self.session.id, limit = self.live.limits.abuse_strikes, "Closed a connection for repeated abuse: limits.abuse_strikes refused frames within ten seconds.");
            return Err(End::Close(close::POLICY, "too many refused frames"));
        }
        Ok(())
    }
}
