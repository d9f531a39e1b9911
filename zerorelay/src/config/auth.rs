//! `[auth]`: who may connect (static tokens, JWT, an HTTP callback) and what
//! each role may do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Static tokens: token → user. With no tokens, no `[auth.jwt]` key and
    /// no `[auth.callback]` URL the relay runs in development mode (anyone may
    /// connect and name themselves with `hello.user`).
    pub tokens: BTreeMap<String, String>,
    /// The roles of an identity that brings none (a static token, a callback
    /// answer without roles, a JWT without the roles claim).
    pub default_roles: Vec<String>,
    /// Role name → what it allows. Once any role is configured, everything
    /// not allowed is refused with `forbidden`.
    pub roles: BTreeMap<String, RoleConfig>,
    /// How long before an identity expires the server sends
    /// `refresh_required` (or 10% of the token's lifetime, if shorter, but
    /// at least one second; 0: never).
    pub refresh_ahead_ms: u64,
    /// `[auth.jwt]`: JSON Web Tokens checked offline.
    pub jwt: JwtConfig,
    /// `[auth.callback]`: an HTTP endpoint that decides (opaque tokens).
    pub callback: CallbackConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            tokens: BTreeMap::new(),
            default_roles: Vec::new(),
            roles: BTreeMap::new(),
            refresh_ahead_ms: 60_000,
            jwt: JwtConfig::default(),
            callback: CallbackConfig::default(),
        }
    }
}

/// `[auth.roles.<name>]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleConfig {
    /// Permissions, each `action:resource-pattern` (`join:room-*`,
    /// `join:user:{user}`, `rpc:time`) or `*` for everything.
    pub allow: Vec<String>,
}

/// `[auth.jwt]`. Exactly one key source: `secret`, `secret_file`,
/// `public_key_file`, `jwks_file` or `jwks_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// An HMAC secret (HS256/384/512).
    pub secret: Option<String>,
    /// A file holding the HMAC secret (trailing newline removed).
    pub secret_file: Option<String>,
    /// A PEM public key (RSA: RS*/PS*; EC P-256/P-384: ES256/ES384;
    /// Ed25519: EdDSA).
    pub public_key_file: Option<String>,
    /// A JWKS document on disk, re-read on the refresh schedule.
    pub jwks_file: Option<String>,
    /// A JWKS document at an `https://` URL (`http://` only on a loopback
    /// address), re-fetched on the refresh schedule.
    pub jwks_url: Option<String>,
    /// CA certificates (PEM) trusted for `jwks_url` besides the system's
    /// (an identity provider behind a private CA).
    pub ca_file: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's audiences).
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
    /// The claim naming the user.
    pub user_claim: String,
    /// The claim listing the roles; a dotted path reaches into objects
    /// (`realm_access.roles` for Keycloak).
    pub roles_claim: String,
    /// The claim listing the group patterns the token allows (narrows the
    /// roles, never widens them). Absent from a token: no narrowing.
    pub groups_claim: String,
    /// How often a JWKS is read again, in seconds.
    pub jwks_refresh_s: u64,
    /// A token with an unknown `kid` makes the JWKS be read again at most
    /// once per this many seconds.
    pub refresh_min_s: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            secret: None,
            secret_file: None,
            public_key_file: None,
            jwks_file: None,
            jwks_url: None,
            ca_file: None,
            issuer: None,
            audience: None,
            leeway_s: 30,
            user_claim: "sub".into(),
            roles_claim: "roles".into(),
            groups_claim: "groups".into(),
            jwks_refresh_s: 300,
            refresh_min_s: 30,
        }
    }
}

impl JwtConfig {
    /// Whether a key source is configured.
    pub fn is_enabled(&self) -> bool {
        self.key_sources().next().is_some()
    }

    fn key_sources(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            ("secret", self.secret.is_some()),
            ("secret_file", self.secret_file.is_some()),
            ("public_key_file", self.public_key_file.is_some()),
            ("jwks_file", self.jwks_file.is_some()),
            ("jwks_url", self.jwks_url.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
    }

    /// Masks the secret, for showing the configuration.
    pub fn masked(&self) -> JwtConfig {
        let mut c = self.clone();
        if c.secret.is_some() {
            c.secret = Some("***".into());
        }
        c
    }

    fn validate(&self) -> Result<(), Error> {
        let sources: Vec<_> = self.key_sources().collect();
        if sources.len() > 1 {
            return Err(Error::Config(format!(
                "`auth.jwt` takes one key source, got {}",
                sources
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if self.secret.as_deref() == Some("") {
            return Err(Error::Config("`auth.jwt.secret` must not be empty".into()));
        }
        if let Some(url) = &self.jwks_url {
            check_url("auth.jwt.jwks_url", url)?;
        }
        super::range("auth.jwt.leeway_s", self.leeway_s, 0, 3_600)?;
        super::range("auth.jwt.jwks_refresh_s", self.jwks_refresh_s, 1, 86_400)?;
        super::range("auth.jwt.refresh_min_s", self.refresh_min_s, 0, 86_400)?;
        for (k, v) in [
            ("auth.jwt.user_claim", &self.user_claim),
            ("auth.jwt.roles_claim", &self.roles_claim),
            ("auth.jwt.groups_claim", &self.groups_claim),
        ] {
            if v.is_empty() || v.split('.').any(str::is_empty) {
                return Err(Error::Config(format!(
                    "`{k}` must be a claim name or a dotted path like realm_access.roles, got {v:?}"
                )));
            }
        }
        Ok(())
    }
}

/// `[auth.callback]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbackConfig {
    /// Where `{token, client, remote}` is POSTed (`https://`, or `http://`
    /// on a loopback address).
    pub url: Option<String>,
    /// How long the endpoint may take.
    pub timeout_ms: u64,
    /// How long an answer is reused for the same token, in seconds (0: ask
    /// every time). A refusal is reused for at most 5 seconds.
    pub cache_s: u64,
    /// CA certificates (PEM) trusted for `url` besides the system's.
    pub ca_file: Option<String>,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            url: None,
            timeout_ms: 2_000,
            cache_s: 60,
            ca_file: None,
        }
    }
}

/// Accepts `https://…`, and `http://` only to a loopback host: a token sent in
/// clear over a network is a token given away.
pub(crate) fn check_url(key: &str, url: &str) -> Result<(), Error> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            return Ok(());
        }
        return Err(Error::Config(format!(
            "`{key}` must be https:// (http:// is allowed only to a loopback address), got {url:?}"
        )));
    }
    Err(Error::Config(format!(
        "`{key}` must be an https:// URL, got {url:?}"
    )))
}

impl AuthConfig {
    /// Whether any authentication is configured.
    pub fn is_configured(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_enabled() || self.callback.url.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        for (token, user) in &self.tokens {
            if token.is_empty() {
                return Err(Error::Config("`auth.tokens` has an empty token".into()));
            }
            crate::protocol::names::validate("auth.tokens user", user)
                .map_err(|e| Error::Config(format!("`auth.tokens`: {}", e.message)))?;
        }
        super::range(
            "auth.refresh_ahead_ms",
            self.refresh_ahead_ms,
            0,
            86_400_000,
        )?;
        self.jwt.validate()?;
        if let Some(url) = &self.callback.url {
            check_url("auth.callback.url", url)?;
        }
        super::range(
            "auth.callback.timeout_ms",
            self.callback.timeout_ms,
            10,
            60_000,
        )?;
        super::range("auth.callback.cache_s", self.callback.cache_s, 0, 86_400)?;
        for r in &self.default_roles {
            if !self.roles.contains_key(r) {
                return Err(Error::Config(format!(
                    "`auth.default_roles` names {r:?}, which is not under [auth.roles]"
                )));
            }
        }
        // Compiling checks every permission's grammar.
        crate::auth::rbac::Policy::compile(self).map(drop)
    }
}
