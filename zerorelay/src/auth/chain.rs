//! The authenticators the configuration sets up, asked in a fixed order.

use super::{AuthRequest, Authenticator, BoxFuture, Identity, StaticTokens};
use crate::error::{ErrorCode, ProtocolError};

/// Static tokens first (an exact match), then JWT for a token shaped like
/// one (three dot-separated parts), then the HTTP callback. The first that
/// applies decides; its refusal is final.
pub struct Chain {
    tokens: Option<StaticTokens>,
    jwt: Option<super::jwt::Jwt>,
    callback: Option<super::http::HttpCallback>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("tokens", &self.tokens)
            .field("jwt", &self.jwt)
            .field("callback", &self.callback)
            .finish()
    }
}

impl Chain {
    /// The authenticators `[auth]` configures.
    pub fn from_config(auth: &crate::config::AuthConfig) -> crate::Result<Chain> {
        Ok(Chain {
            tokens: (!auth.tokens.is_empty()).then(|| StaticTokens::new(auth.tokens.clone())),
            jwt: auth
                .jwt
                .is_enabled()
                .then(|| super::jwt::Jwt::from_config(&auth.jwt))
                .transpose()?,
            callback: auth
                .callback
                .url
                .is_some()
                .then(|| super::http::HttpCallback::from_config(&auth.callback))
                .transpose()?,
        })
    }
}

fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

impl Authenticator for Chain {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
        Box::pin(async move {
            let token = request.require_token()?;
            if let Some(t) = &self.tokens {
                if let Some(user) = t.find(token) {
                    return Ok(Identity::user(user.to_owned()));
                }
            }
            if let Some(jwt) = &self.jwt {
                if looks_like_jwt(token) || self.callback.is_none() {
                    return jwt.verify(token).await;
                }
            }
            if let Some(cb) = &self.callback {
                return cb.authenticate(request).await;
            }
            Err(ProtocolError::new(
                ErrorCode::Unauthorized,
                "the token is not valid",
            ))
        })
    }
}
