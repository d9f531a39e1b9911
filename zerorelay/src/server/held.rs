//! Requests held for something the connection's loop must await: the
//! authenticator for a `refresh` (at most `server.hello_timeout_ms`), and
//! the host's asynchronous hooks.
//!
//! When the host installed an [`crate::auth::Authorizer`] (the SDKs'
//! `authorize` functions), or a group has validation hooks, a `join`,
//! `publish`, `send` or `broadcast` is checked synchronously first (roles,
//! features, schemas), then held while the connection's loop awaits the
//! hooks, and then performed, answered and remembered like any request.
//! The frames after it are read once it is answered, so a connection's
//! requests keep their order; other connections never wait for it.

use std::time::Duration;

use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::{Conn, End};
use crate::auth::Action;
use crate::error::{ErrorCode, ProtocolError};
use crate::protocol::client::{RequestId, Target};
use crate::validate::{Payload, Verdict};

/// What a held request will do once its hooks agree.
pub(super) enum Held {
    Join {
        group: String,
        presence: bool,
    },
    Publish {
        group: String,
        data: Box<RawValue>,
        echo: bool,
    },
    Send {
        target: Target,
        data: Box<RawValue>,
    },
    Broadcast {
        data: Box<RawValue>,
        echo: bool,
    },
    /// Not a hook: a `refresh` waits for the authenticator.
    Refresh {
        token: String,
    },
}

impl Held {
    /// Routing requests are remembered by id (a re-sent one is answered
    /// from memory); a join is simply done again.
    fn is_routed(&self) -> bool {
        !matches!(self, Held::Join { .. } | Held::Refresh { .. })
    }

    /// What the authorizer is asked about (nothing for a `refresh`).
    fn action(&self) -> Option<Action<'_>> {
        Some(match self {
            Held::Join { group, .. } => Action::Join { group },
            Held::Publish { group, .. } => Action::Publish { group },
            Held::Send { target, .. } => Action::Send { target },
            Held::Broadcast { .. } => Action::Broadcast,
            Held::Refresh { .. } => return None,
        })
    }
}

/// A held request and its id.
pub(super) struct HeldRequest {
    id: Option<RequestId>,
    what: Held,
}

impl HeldRequest {
    /// A `refresh`, answered once the authenticator has.
    pub(super) fn refresh(id: Option<RequestId>, token: String) -> Self {
        HeldRequest {
            id,
            what: Held::Refresh { token },
        }
    }
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Checks `what` now and holds it for the hooks ([`Self::finish_held`]).
    pub(super) fn hold(&mut self, id: Option<RequestId>, what: Held) -> Result<(), End> {
        if what.is_routed() {
            if let Some(done) = self.seen_before(id.as_ref()) {
                return done;
            }
        }
        let checked = match &what {
            Held::Refresh { .. } => Ok(()),
            Held::Join { group, presence } => self.check_join(group, *presence),
            Held::Publish { group, data, .. } => self.check_publish(group, data),
            Held::Send { target, .. } => self.check_send(target),
            Held::Broadcast { .. } => self.check_broadcast(),
        };
        if let Err(e) = checked {
            return self.reply_held(id, &what, Err(e));
        }
        self.held = Some(Box::new(HeldRequest { id, what }));
        Ok(())
    }

    /// Runs the hooks on a held request, then performs and answers it.
    pub(super) async fn finish_held(&mut self, held: HeldRequest) -> Result<(), End> {
        let HeldRequest { id, mut what } = held;
        if let Held::Refresh { token } = &what {
            self.frame_type = "refresh";
            let r = self.refresh(token).await;
            return self.answer(id.as_ref(), r);
        }
        let r = match self.run_hooks(&mut what).await {
            Ok(()) => self.perform(&what),
            Err(e) => Err(e),
        };
        self.reply_held(id, &what, r)
    }

    fn reply_held(
        &mut self,
        id: Option<RequestId>,
        what: &Held,
        r: Result<(), ProtocolError>,
    ) -> Result<(), End> {
        if what.is_routed() {
            self.routed(id, |_| r)
        } else {
            self.answer(id.as_ref(), r)
        }
    }

    fn perform(&mut self, what: &Held) -> Result<(), ProtocolError> {
        match what {
            Held::Join { group, presence } => self.do_join(group.clone(), *presence),
            Held::Publish { group, data, echo } => self.route_publish(group, data, *echo),
            Held::Send { target, data } => self.route_send(target, data),
            Held::Broadcast { data, echo } => self.route_broadcast(data, *echo),
            Held::Refresh { .. } => Ok(()),
        }
    }

    /// The host's authorizer (within `limits.authorize_timeout_ms`), then,
    /// for a publish, its group's validation hooks (each within
    /// `limits.validate_timeout_ms`), which may rewrite the payload.
    async fn run_hooks(&mut self, what: &mut Held) -> Result<(), ProtocolError> {
        let shared = self.shared.clone();
        // Held requests are rare: one reference-count bump each is fine.
        let live = self.live.clone();
        let limits = &live.limits;
        if let (Some(authorizer), Some(action)) = (&shared.authorizer, what.action()) {
            let limit = Duration::from_millis(limits.authorize_timeout_ms);
            let verdict =
                tokio::time::timeout(limit, authorizer.authorize(&self.identity, action)).await;
            match verdict {
                Ok(r) => r?,
                Err(_) => {
                    tracing::warn!(session = %self.session.id, "The host authorizer did not answer within limits.authorize_timeout_ms; the request failed with internal.");
                    return Err(ProtocolError::new(
                        ErrorCode::Internal,
                        "authorization did not finish in time (limits.authorize_timeout_ms)",
                    ));
                }
            }
        }
        let Held::Publish { group, data, .. } = what else {
            return Ok(());
        };
        let limit = Duration::from_millis(limits.validate_timeout_ms);
        for hook in live.validation.hooks_for(group) {
            let payload = Payload {
                group,
                data,
                user: self.identity.user.as_deref(),
                session: &self.session.id,
                claims: &self.identity.claims,
            };
            let verdict = tokio::time::timeout(limit, hook.validate(payload)).await;
            match verdict {
                Ok(Verdict::Accept) => {}
                Ok(Verdict::Rewrite(new)) => *data = new,
                Ok(Verdict::Reject(e)) => return Err(e),
                Err(_) => {
                    tracing::warn!(group = %group, session = %self.session.id, "A validation hook did not answer within limits.validate_timeout_ms; the publish failed with internal.");
                    return Err(ProtocolError::new(
                        ErrorCode::Internal,
                        "the payload's validation did not finish in time (limits.validate_timeout_ms)",
                    ));
                }
            }
        }
        Ok(())
    }
}
