//! Authentication and authorization, pluggable by the host.
//!
//! An [`Authenticator`] turns a `hello` (its token, and in development mode its
//! `user`) into an [`Identity`], and may refuse individual actions. Built in:
//! [`AllowAll`] for development (anyone, named by `hello.user`),
//! [`StaticTokens`] (a fixed token → user map from the configuration),
//! [`jwt::Jwt`] (JSON Web Tokens checked offline against a secret, a public
//! key or a JWKS), [`http::HttpCallback`] (an HTTP endpoint decides, for
//! opaque tokens) and [`Chain`] (the configured ones, in order);
//! [`Callback`] asks a host function (the language bindings use it). Hosts
//! plug in their own by implementing the trait.
//!
//! What an identity may do is decided by [`rbac`] (roles from the
//! configuration, compiled once) and then by the authenticator's
//! [`Authenticator::authorize`] hook.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::SystemTime;

use crate::error::{ErrorCode, ProtocolError};
use crate::protocol::Target;

pub mod callback;
mod chain;
pub mod hooks;
pub mod http;
pub mod jwt;
pub mod rbac;
pub use callback::Callback;
pub use chain::Chain;

/// A boxed, sendable future (what async trait methods return here).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the authenticator is shown of a `hello` (or a `refresh`).
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// `hello.token` / `refresh.token`.
    pub token: Option<&'a str>,
    /// `hello.user`; only development authenticators may honour it.
    pub user: Option<&'a str>,
    /// The peer's address, when known.
    pub remote: Option<SocketAddr>,
    /// `hello.client`.
    pub client: Option<&'a str>,
}

impl<'a> AuthRequest<'a> {
    /// The token, or the `unauthorized` refusal every token authenticator
    /// gives when there is none.
    pub fn require_token(&self) -> Result<&'a str, ProtocolError> {
        self.token
            .ok_or_else(|| ProtocolError::new(ErrorCode::Unauthorized, "a token is required"))
    }
}

/// Who a connection is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// The user, or `None` for an anonymous (development) connection.
    pub user: Option<String>,
    /// When the credentials expire: the server sends `refresh_required`
    /// ahead of it, and closes the connection with 4003 then unless a
    /// `refresh` extends it.
    pub expires_at: Option<SystemTime>,
    /// Roles, looked up in `[auth.roles]`. None: `auth.default_roles`.
    pub roles: Vec<String>,
    /// The group patterns the credentials allow (a JWT's groups claim):
    /// they narrow what the roles allow for join, publish and presence, and
    /// never widen it. `None`: no narrowing.
    pub groups: Option<Vec<String>>,
    /// The token's claims (a JWT's payload), for authorizer and validation
    /// hooks; `Null` when the credentials carry none.
    pub claims: serde_json::Value,
}

impl Identity {
    /// A user with credentials that do not expire.
    pub fn user(name: impl Into<String>) -> Self {
        Identity {
            user: Some(name.into()),
            ..Identity::default()
        }
    }
}

/// Something a client asks to do, shown to [`Authenticator::authorize`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Action<'a> {
    /// `join`.
    Join {
        /// The group.
        group: &'a str,
    },
    /// `publish`.
    Publish {
        /// The group.
        group: &'a str,
    },
    /// `send`.
    Send {
        /// The recipient.
        target: &'a Target,
    },
    /// `broadcast`.
    Broadcast,
    /// `rpc`.
    Rpc {
        /// The method.
        method: &'a str,
    },
    /// Asking who is in a group.
    Presence {
        /// The group.
        group: &'a str,
    },
}

/// Decides who a connection is and what it may do.
pub trait Authenticator: Send + Sync + 'static {
    /// Checks credentials. Refuse with `unauthorized` (the connection is then
    /// closed with 4001).
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, ProtocolError>>;

    /// Checks one action; refuse with `forbidden`. Allows everything by default.
    fn authorize(&self, identity: &Identity, action: &Action<'_>) -> Result<(), ProtocolError> {
        let _ = (identity, action);
        Ok(())
    }

    /// Whether this is development mode (no real authentication). The
    /// `zerorelay` command refuses to listen on a non-loopback address in
    /// development mode unless told it is insecure on purpose.
    fn is_development(&self) -> bool {
        false
    }
}

/// An asynchronous authorization hook ([`crate::RelayBuilder::authorizer`]),
/// asked after the roles and [`Authenticator::authorize`] allowed an action.
/// The language bindings plug their `authorize` functions in here.
pub trait Authorizer: Send + Sync + 'static {
    /// Allows `action` for `identity`, or refuses it (`forbidden`, say).
    fn authorize<'a>(
        &'a self,
        identity: &'a Identity,
        action: Action<'a>,
    ) -> BoxFuture<'a, Result<(), ProtocolError>>;
}

/// Development mode: everyone is let in, named by `hello.user` (or anonymous).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
        let user = request.user.map(str::to_owned);
        Box::pin(async move {
            Ok(Identity {
                user,
                ..Identity::default()
            })
        })
    }

    fn is_development(&self) -> bool {
        true
    }
}

/// A fixed map of tokens to users. `hello.user` is ignored.
#[derive(Clone, Default)]
pub struct StaticTokens {
    tokens: HashMap<String, String>,
}

impl StaticTokens {
    /// Builds the authenticator from `(token, user)` pairs.
    pub fn new<I, T, U>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (T, U)>,
        T: Into<String>,
        U: Into<String>,
    {
        StaticTokens {
            tokens: pairs
                .into_iter()
                .map(|(t, u)| (t.into(), u.into()))
                .collect(),
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl std::fmt::Debug for StaticTokens {
    /// Shows how many tokens there are, never the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokens")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl StaticTokens {
    /// The user of `token`. Every configured token is compared, each in
    /// constant time, so the time taken says nothing about how close a
    /// guess was or which token it resembled.
    pub(crate) fn find(&self, token: &str) -> Option<&str> {
        let mut found = None;
        for (t, user) in &self.tokens {
            if crate::protocol::resume_key::constant_time_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(user.as_str());
            }
        }
        found
    }
}

impl Authenticator for StaticTokens {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
        let result = match request.token {
            None => Err(ProtocolError::new(
                ErrorCode::Unauthorized,
                "a token is required",
            )),
            Some(t) => match self.find(t) {
                Some(user) => Ok(Identity::user(user.to_owned())),
                None => Err(ProtocolError::new(
                    ErrorCode::Unauthorized,
                    "the token is not valid",
                )),
            },
        };
        Box::pin(async move { result })
    }
}
