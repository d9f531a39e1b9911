//! An HTTP endpoint decides who a token belongs to: OAuth token
//! introspection for opaque tokens, or a backend's session check.
//!
//! The relay POSTs `{"token":…,"client":…,"remote":…}` as JSON to
//! `auth.callback.url` and waits at most `auth.callback.timeout_ms`:
//! - 200 with `{"user":…,"roles":[…],"expires_at":<unix seconds>}` lets the
//!   connection in; the answer is reused for the same token (by its SHA-256)
//!   for `auth.callback.cache_s`, never past `expires_at`;
//! - 401 or 403 refuses it: `unauthorized`, with the body's `message` (or
//!   its text) as the reason; the refusal is reused for the same token for
//!   up to 5 seconds, so a client retrying a bad token cannot make the
//!   relay call the backend on every attempt;
//! - anything else, an unreadable answer or no answer in time is
//!   `internal`: the backend failed, not the client.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuthRequest, Authenticator, BoxFuture, Identity};
use crate::config::CallbackConfig;
use crate::error::{Error, ErrorCode, ProtocolError};

/// Cached answers at most; past it, expired ones are dropped, then the
/// oldest half.
const MAX_CACHED: usize = 100_000;

/// The longest answer read from the endpoint.
const MAX_ANSWER: usize = 64 << 10;

#[derive(Serialize)]
struct Ask<'a> {
    token: &'a str,
    client: Option<&'a str>,
    remote: Option<String>,
}

#[derive(Deserialize)]
struct Grant {
    user: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// Unix seconds.
    expires_at: Option<u64>,
}

#[derive(Deserialize)]
struct Refusal {
    message: Option<String>,
}

/// The HTTP client the relay's own calls use (the auth callback, a JWKS
/// URL): the system's roots plus the CA certificates in `ca_file`, no
/// redirects (a credential is never sent on to another address), and a
/// timeout for the whole exchange.
pub(crate) fn client(timeout: Duration, ca_file: Option<&str>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {path}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {path}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("ca_file {path} holds no certificate"));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| e.to_string())
}

/// How long a refusal is reused for the same token: a client retrying a
/// bad token costs the backend one call per this long, not one per attempt.
const REFUSAL_CACHE: Duration = Duration::from_secs(5);

/// Authenticates by asking an HTTP endpoint (see the module documentation).
pub struct HttpCallback {
    url: String,
    timeout: Duration,
    cache_for: Duration,
    client: reqwest::Client,
    /// Answers by the token's SHA-256, with how long each may be reused.
    cache: Mutex<HashMap<[u8; 32], (Instant, Verdict)>>,
}

/// What the backend answered for a token.
type Verdict = Result<Identity, ProtocolError>;

impl std::fmt::Debug for HttpCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCallback")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpCallback {
    /// Builds it from `[auth.callback]` (which must have a `url`).
    pub fn from_config(c: &CallbackConfig) -> Result<HttpCallback, Error> {
        let url = c
            .url
            .clone()
            .ok_or_else(|| Error::Config("`auth.callback.url` is not set".into()))?;
        let timeout = Duration::from_millis(c.timeout_ms);
        let client = client(timeout, c.ca_file.as_deref())
            .map_err(|e| Error::Config(format!("`auth.callback`: {e}")))?;
        Ok(HttpCallback {
            url,
            timeout,
            cache_for: Duration::from_secs(c.cache_s),
            client,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Verdict> {
        let mut cache = self.cache.lock();
        match cache.get(hash) {
            Some((until, id)) if *until > Instant::now() => Some(id.clone()),
            Some(_) => {
                cache.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Keeps a grant (for `cache_s`, never past its expiry) or a refusal
    /// (at most [`REFUSAL_CACHE`]); a backend failure is never kept.
    fn remember(&self, hash: [u8; 32], answer: &Verdict) {
        let mut until = Instant::now() + self.cache_for;
        match answer {
            Ok(id) => {
                if let Some(exp) = id.expires_at {
                    let left = exp.duration_since(SystemTime::now()).unwrap_or_default();
                    until = until.min(Instant::now() + left);
                }
            }
            Err(e) if e.code == ErrorCode::Unauthorized => {
                until = until.min(Instant::now() + REFUSAL_CACHE);
            }
            Err(_) => return,
        }
        if self.cache_for.is_zero() {
            return;
        }
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, (u, _)| *u > now);
            if cache.len() >= MAX_CACHED {
                let mut ages: Vec<Instant> = cache.values().map(|(u, _)| *u).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                cache.retain(|_, (u, _)| *u > cut);
            }
        }
        cache.insert(hash, (until, answer.clone()));
    }

    async fn ask(&self, request: AuthRequest<'_>, token: &str) -> Result<Identity, ProtocolError> {
        let body = Ask {
            token,
            client: request.client,
            remote: request.remote.map(|r| r.to_string()),
        };
        let failed = |why: String| {
            tracing::warn!(url = %self.url, error = %why, "The auth callback failed; the connection is refused with internal.");
            ProtocolError::new(ErrorCode::Internal, "the auth backend failed; try again")
        };
        let resp = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    failed(format!("no answer within {} ms", self.timeout.as_millis()))
                } else {
                    failed(e.to_string())
                }
            })?;
        let status = resp.status();
        if resp.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(failed(format!("an answer over {MAX_ANSWER} bytes")));
        }
        let text = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
        if text.len() > MAX_ANSWER {
            return Err(failed(format!("an answer over {MAX_ANSWER} bytes")));
        }
        match status.as_u16() {
            200 => {
                let g: Grant = serde_json::from_slice(&text)
                    .map_err(|e| failed(format!("an unreadable answer: {e}")))?;
                if let Some(u) = &g.user {
                    crate::protocol::names::validate("user", u)
                        .map_err(|e| failed(format!("an invalid user: {}", e.message)))?;
                }
                Ok(Identity {
                    user: g.user,
                    expires_at: g.expires_at.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
                    roles: g.roles,
                    ..Identity::default()
                })
            }
            401 | 403 => {
                let message = serde_json::from_slice::<Refusal>(&text)
                    .ok()
                    .and_then(|r| r.message)
                    .unwrap_or_else(|| String::from_utf8_lossy(&text).trim().to_owned());
                let message: String = message.chars().take(200).collect();
                Err(ProtocolError::new(
                    ErrorCode::Unauthorized,
                    if message.is_empty() {
                        "refused by the auth backend".to_owned()
                    } else {
                        message
                    },
                ))
            }
            _ => Err(failed(format!("HTTP {status}"))),
        }
    }
}

impl Authenticator for HttpCallback {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
        Box::pin(async move {
            let token = request.require_token()?;
            let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some(answer) = self.cached(&hash) {
                return answer;
            }
            let answer = self.ask(request, token).await;
            self.remember(hash, &answer);
            answer
        })
    }
}
