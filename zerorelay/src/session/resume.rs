//! Which session a new connection gets: the resume and ownership policy.
//!
//! A session id is a public name (every delivery carries its sender's in
//! `from_session`), so it never proves anything. A connection resumes a
//! session only when it presents the session's resume key, the session has
//! not ended, and the identity is the same user; anything else gets a fresh
//! session, never an error that would tell a guesser which ids exist.

use std::sync::Arc;

use super::{ConnLink, OutboxBudget, Session, SessionLimits, SessionStore};
use crate::error::{ErrorCode, ProtocolError};
use crate::protocol::{close, Resume};

/// Bounds on how many sessions may exist.
#[derive(Debug, Clone, Copy)]
pub struct SessionCaps {
    /// Sessions (live or resumable) in the whole server.
    pub max_sessions: usize,
    /// Sessions of one user.
    pub max_per_user: usize,
}

/// Why a connection gets no session: the error it is told and the close
/// code.
pub type Refusal = (ProtocolError, u16);

/// Attaches `link` to the session `resume` names when the caller owns it,
/// otherwise to a new session. Returns the session and whether it was
/// resumed. A session that had another connection attached asks that
/// connection to close with 4009.
pub fn open_or_resume(
    store: &dyn SessionStore,
    limits: &SessionLimits,
    budget: &OutboxBudget,
    caps: SessionCaps,
    user: Option<&str>,
    resume: Option<&Resume>,
    link: &Arc<ConnLink>,
) -> Result<(Arc<Session>, bool), Refusal> {
    if let Some(s) = resume.and_then(|r| owned(store, user, r)) {
        let r = resume.expect("owned() found the session it names");
        let mut st = s.lock();
        if !st.ended {
            let before = st.outbox.bytes();
            st.outbox.resume(r.last_seq).map_err(|m| {
                (
                    ProtocolError::new(ErrorCode::BadRequest, m),
                    close::BAD_HELLO,
                )
            })?;
            // What the resume acknowledged leaves the server-wide count.
            budget.add(st.outbox.bytes() as i64 - before as i64);
            st.slow_since = None;
            // Asked under the lock, before the link is replaced, so that the
            // old connection's next look at the session finds its close code.
            let old = st.detach(close::TAKEN_OVER, "session taken over");
            st.conn = Some(link.clone());
            st.detached_since = None;
            st.replies.clear();
            drop(st);
            if let Some(old) = old {
                tracing::debug!(session = %s.id, old = old.id, new = link.id, "A newer connection took over a session.");
            }
            link.wake();
            return Ok((s, true));
        }
    }
    if let Some(r) = resume {
        tracing::debug!(
            session = %r.session,
            "A resume was not granted (no such session, a wrong or missing key, another user, or ended); the connection gets a fresh session."
        );
    }
    if store.len() >= caps.max_sessions {
        tracing::warn!(
            limit = caps.max_sessions,
            "Refused a new session: session.max_sessions reached."
        );
        return Err((
            ProtocolError::new(
                ErrorCode::LimitExceeded,
                "the server is at its session limit",
            ),
            close::TRY_AGAIN_LATER,
        ));
    }
    if let Some(u) = user {
        let mut n = 0usize;
        store.for_user(u, &mut |_| n += 1);
        if n >= caps.max_per_user {
            tracing::info!(
                limit = caps.max_per_user,
                "Refused a new session: the user is at session.max_per_user."
            );
            return Err((
                ProtocolError::new(
                    ErrorCode::LimitExceeded,
                    format!(
                        "a user may have at most {} sessions; close or let others expire",
                        caps.max_per_user
                    ),
                ),
                close::TRY_AGAIN_LATER,
            ));
        }
    }
    let s = Arc::new(Session::new(
        super::new_session_id(),
        user.map(Arc::from),
        limits,
    ));
    {
        let mut st = s.lock();
        st.conn = Some(link.clone());
        st.detached_since = None;
    }
    store.insert(s.clone());
    Ok((s, false))
}

/// The session `r` names, if the caller proves ownership: the right key
/// (compared in constant time) and the same user.
fn owned(store: &dyn SessionStore, user: Option<&str>, r: &Resume) -> Option<Arc<Session>> {
    let s = store.get(&r.session)?;
    let key_ok = r
        .key
        .as_ref()
        .is_some_and(|k| s.resume_key.matches(k.expose()));
    (key_ok && s.user.as_deref() == user).then_some(s)
}
