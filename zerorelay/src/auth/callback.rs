//! An authenticator that asks a host callback, for the language bindings
//! (a JavaScript or Python function decides who a connection is).
//!
//! The binding turns its callback into a [`Decide`] function; this module
//! owns the rules every binding shares: what the callback is shown
//! ([`Credentials`]), what its answer means ([`Answer`]), and how long it
//! may take.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{AuthRequest, Authenticator, BoxFuture, Identity};
use crate::error::{ErrorCode, ProtocolError};

/// What the callback is shown of a `hello` or a `refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credentials {
    /// `hello.token` / `refresh.token`.
    pub token: Option<String>,
    /// `hello.user` (a claim, not a proof).
    pub user: Option<String>,
    /// The peer's address, `ip:port`.
    pub remote: Option<String>,
    /// `hello.client`.
    pub client: Option<String>,
}

impl From<AuthRequest<'_>> for Credentials {
    fn from(r: AuthRequest<'_>) -> Self {
        Credentials {
            token: r.token.map(str::to_owned),
            user: r.user.map(str::to_owned),
            remote: r.remote.map(|a| a.to_string()),
            client: r.client.map(str::to_owned),
        }
    }
}

/// The callback's answer when it lets a connection in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The user the connection acts as (`None`: anonymous).
    #[serde(default)]
    pub user: Option<String>,
    /// How long the credentials stay valid, in milliseconds (`None`: no
    /// expiry). The connection is closed with 4003 then, unless the client
    /// sends a `refresh`.
    #[serde(default, alias = "expiresInMs")]
    pub expires_in_ms: Option<u64>,
    /// The identity's roles (`None`: `auth.default_roles`).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The group patterns the identity is narrowed to, as a JWT's groups
    /// claim narrows it (`None`: no narrowing).
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Claims shown to the authorize and validate hooks (`None`: `null`).
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
}

impl Answer {
    /// The identity this answer grants.
    pub fn into_identity(self) -> Result<Identity, ProtocolError> {
        if let Some(u) = &self.user {
            crate::protocol::names::validate("user", u).map_err(|e| {
                ProtocolError::new(
                    ErrorCode::Unauthorized,
                    format!("the auth callback answered an invalid user: {}", e.message),
                )
            })?;
        }
        Ok(Identity {
            user: self.user,
            expires_at: self
                .expires_in_ms
                .map(|ms| SystemTime::now() + Duration::from_millis(ms)),
            roles: self.roles.unwrap_or_default(),
            groups: self.groups,
            claims: self.claims.unwrap_or_default(),
        })
    }
}

/// The binding's side: given the credentials, eventually `Ok(Some(answer))`
/// to let the connection in, `Ok(None)` to refuse it, or `Err(message)` when
/// the callback failed (it threw, or answered something unreadable).
pub type Decide =
    Arc<dyn Fn(Credentials) -> BoxFuture<'static, Result<Option<Answer>, String>> + Send + Sync>;

/// How long a callback may take by default before the connection is
/// refused.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Authenticates through a host callback. A refusal, a failure and a late
/// answer all close the connection with 4001 (`unauthorized`); the message
/// says which, and a failure is logged.
#[derive(Clone)]
pub struct Callback {
    decide: Decide,
    timeout: Duration,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// An authenticator that asks `decide`, waiting at most
    /// [`DEFAULT_TIMEOUT`].
    pub fn new(decide: Decide) -> Self {
        Callback {
            decide,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets how long the callback may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Authenticator for Callback {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
        let asked = (self.decide)(Credentials::from(request));
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, asked).await {
                Ok(Ok(Some(answer))) => answer.into_identity(),
                Ok(Ok(None)) => Err(ProtocolError::new(
                    ErrorCode::Unauthorized,
                    "refused by the auth callback",
                )),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "The auth callback failed; the connection is refused.");
                    Err(ProtocolError::new(
                        ErrorCode::Unauthorized,
                        "the auth callback failed",
                    ))
                }
                Err(_) => {
                    tracing::warn!(
                        timeout_ms = timeout.as_millis() as u64,
                        "The auth callback did not answer in time; the connection is refused."
                    );
                    Err(ProtocolError::new(
                        ErrorCode::Unauthorized,
                        "the auth callback did not answer in time",
                    ))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AuthRequest<'static> {
        AuthRequest {
            token: Some("t"),
            user: None,
            remote: None,
            client: Some("test/1"),
        }
    }

    fn callback(
        f: impl Fn(Credentials) -> Result<Option<Answer>, String> + Send + Sync + 'static,
    ) -> Callback {
        let f = Arc::new(f);
        Callback::new(Arc::new(move |c| {
            let f = f.clone();
            Box::pin(async move { f(c) })
        }))
    }

    #[tokio::test]
    async fn an_answer_grants_its_user_and_expiry() {
        let auth = callback(|c| {
            assert_eq!(c.token.as_deref(), Some("t"));
            assert_eq!(c.client.as_deref(), Some("test/1"));
            Ok(Some(Answer {
                user: Some("alice".into()),
                expires_in_ms: Some(60_000),
                roles: Some(vec!["admin".into()]),
                ..Answer::default()
            }))
        });
        let id = auth.authenticate(request()).await.unwrap();
        assert_eq!(id.user.as_deref(), Some("alice"));
        assert!(id.expires_at.unwrap() > SystemTime::now());
        assert_eq!(id.roles, ["admin"]);
    }

    #[tokio::test]
    async fn refusals_failures_bad_users_and_late_answers_are_unauthorized() {
        let cases: Vec<(Callback, &str)> = vec![
            (callback(|_| Ok(None)), "refused by the auth callback"),
            (callback(|_| Err("boom".into())), "the auth callback failed"),
            (
                callback(|_| {
                    Ok(Some(Answer {
                        user: Some("no spaces".into()),
                        ..Answer::default()
                    }))
                }),
                "invalid user",
            ),
            (
                Callback::new(Arc::new(|_| Box::pin(std::future::pending())))
                    .timeout(Duration::from_millis(20)),
                "did not answer in time",
            ),
        ];
        for (auth, want) in cases {
            let e = auth.authenticate(request()).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::Unauthorized);
            assert!(e.message.contains(want), "{} !~ {want}", e.message);
        }
    }

    #[test]
    fn answers_read_both_spellings_and_refuse_unknown_keys() {
        let a: Answer = serde_json::from_str(r#"{"user":"a","expiresInMs":5}"#).unwrap();
        assert_eq!(a.expires_in_ms, Some(5));
        let a: Answer = serde_json::from_str(r#"{"expires_in_ms":5}"#).unwrap();
        assert_eq!(a.user, None);
        assert!(serde_json::from_str::<Answer>(r#"{"usr":"a"}"#).is_err());
    }
}
