//! JSON Web Tokens checked offline: against an HMAC secret, a PEM public
//! key, or a JWKS document (a file or an `https://` URL) that is cached and
//! refreshed, so an identity provider's keys rotate without a restart. This
//! is how OIDC access tokens are checked.
//!
//! The algorithm is pinned by the key: a secret accepts HS256/384/512 only,
//! an RSA key RS*/PS*, an EC key the ES algorithm of its curve, an Ed25519
//! key EdDSA. `alg: none` and HMAC signed with a public key are refused
//! whatever the token's header says. `exp` is required; `nbf`, `iss` and
//! `aud` are checked as configured, with `leeway_s`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde_json::Value;

use super::{AuthRequest, Authenticator, BoxFuture, Identity};
use crate::config::JwtConfig;
use crate::error::{Error, ErrorCode, ProtocolError};

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// A verification key and the algorithms it may verify.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: &'static [Algorithm],
}

/// Where the keys come from.
#[derive(Debug, Clone)]
enum Source {
    Fixed,
    JwksFile(String),
    JwksUrl(String),
}

/// The current keys and when they were read.
struct KeySet {
    keys: Arc<Vec<Key>>,
    /// When the keys were last read (successfully or not); `None`: never.
    read_at: Option<Instant>,
}

/// Authenticates JSON Web Tokens (see the module documentation).
pub struct Jwt {
    config: JwtConfig,
    source: Source,
    keys: Mutex<KeySet>,
    /// One JWKS read at a time; others wait for it and use its keys.
    reading: tokio::sync::Mutex<()>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("source", &self.source)
            .field("keys", &self.keys.lock().keys.len())
            .finish_non_exhaustive()
    }
}

fn config_error(key: &str, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("`auth.jwt.{key}`: {why}"))
}

impl Jwt {
    /// Builds the authenticator from `[auth.jwt]`, reading its secret, key
    /// file or JWKS file now (a JWKS URL is fetched on first use and on its
    /// schedule). The error names the key and what is wrong with it.
    pub fn from_config(config: &JwtConfig) -> Result<Jwt, Error> {
        let mut http = None;
        let (source, keys) = if let Some(secret) = &config.secret {
            (Source::Fixed, vec![hmac_key(secret.as_bytes())])
        } else if let Some(path) = &config.secret_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| config_error("secret_file", format!("cannot read {path}: {e}")))?;
            let secret = text.trim_end_matches(['\n', '\r']);
            if secret.is_empty() {
                return Err(config_error("secret_file", format!("{path} is empty")));
            }
            (Source::Fixed, vec![hmac_key(secret.as_bytes())])
        } else if let Some(path) = &config.public_key_file {
            let pem = std::fs::read(path)
                .map_err(|e| config_error("public_key_file", format!("cannot read {path}: {e}")))?;
            let key = pem_key(&pem).map_err(|e| config_error("public_key_file", e))?;
            (Source::Fixed, vec![key])
        } else if let Some(path) = &config.jwks_file {
            let text = std::fs::read(path)
                .map_err(|e| config_error("jwks_file", format!("cannot read {path}: {e}")))?;
            let keys = jwks_keys(&text).map_err(|e| config_error("jwks_file", e))?;
            (Source::JwksFile(path.clone()), keys)
        } else if let Some(url) = &config.jwks_url {
            http = Some(
                super::http::client(Duration::from_secs(10), config.ca_file.as_deref())
                    .map_err(|e| config_error("ca_file", e))?,
            );
            (Source::JwksUrl(url.clone()), Vec::new())
        } else {
            return Err(Error::Config(
                "`auth.jwt` needs a key: secret, secret_file, public_key_file, jwks_file or jwks_url"
                    .into(),
            ));
        };
        let read_at = match source {
            Source::JwksUrl(_) => None,
            _ => Some(Instant::now()),
        };
        Ok(Jwt {
            config: config.clone(),
            source,
            keys: Mutex::new(KeySet {
                keys: Arc::new(keys),
                read_at,
            }),
            reading: tokio::sync::Mutex::new(()),
            http,
        })
    }

    /// Reads the JWKS again (a no-op for a fixed key). Keeps the old keys
    /// when the read fails.
    pub async fn reload_keys(&self) -> Result<(), String> {
        let _one = self.reading.lock().await;
        self.read_keys().await
    }

    async fn read_keys(&self) -> Result<(), String> {
        let read = match &self.source {
            Source::Fixed => return Ok(()),
            // A key set is a few kilobytes on a local disk.
            Source::JwksFile(path) => std::fs::read(path)
                .map_err(|e| format!("cannot read {path}: {e}"))
                .and_then(|b| jwks_keys(&b)),
            Source::JwksUrl(url) => self.fetch(url).await.and_then(|b| jwks_keys(&b)),
        };
        let mut set = self.keys.lock();
        set.read_at = Some(Instant::now());
        match read {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "Read the JWKS.");
                set.keys = Arc::new(keys);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the JWKS; the keys read before stay in use.");
                Err(e)
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let http = self.http.as_ref().expect("a JWKS URL has a client");
        let resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        // A JWKS is a few kilobytes; refuse to hold an unbounded answer.
        const MAX: usize = 1 << 20;
        if resp.content_length().is_some_and(|n| n > MAX as u64) {
            return Err(format!("GET {url}: the JWKS is over {MAX} bytes"));
        }
        let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        if body.len() > MAX {
            return Err(format!("GET {url}: the JWKS is over {MAX} bytes"));
        }
        Ok(body.to_vec())
    }

    /// The keys to try, reading the JWKS first when it was never read or
    /// its refresh is due (a due refresh runs while the old keys serve).
    async fn current_keys(&self) -> Arc<Vec<Key>> {
        let (keys, read_at) = {
            let s = self.keys.lock();
            (s.keys.clone(), s.read_at)
        };
        if matches!(self.source, Source::Fixed) {
            return keys;
        }
        let refresh = Duration::from_secs(self.config.jwks_refresh_s);
        match read_at {
            None => {
                let _one = self.reading.lock().await;
                if self.keys.lock().read_at.is_none() {
                    let _ = self.read_keys().await;
                }
                self.keys.lock().keys.clone()
            }
            Some(at) if at.elapsed() >= refresh => {
                // Refresh in line, but only one connection waits for it.
                if let Ok(_one) = self.reading.try_lock() {
                    let _ = self.read_keys().await;
                    return self.keys.lock().keys.clone();
                }
                keys
            }
            Some(_) => keys,
        }
    }

    /// A token names a `kid` the keys do not have: read the JWKS again,
    /// at most once per `refresh_min_s`.
    async fn read_for_unknown_kid(&self) -> bool {
        if matches!(self.source, Source::Fixed) {
            return false;
        }
        let _one = self.reading.lock().await;
        let min = Duration::from_secs(self.config.refresh_min_s);
        let due = self
            .keys
            .lock()
            .read_at
            .is_none_or(|at| at.elapsed() >= min);
        if due {
            tracing::info!(
                "A token names a key id the JWKS does not have; reading the JWKS again."
            );
            let _ = self.read_keys().await;
        }
        due
    }

    /// Checks `token` and returns who it is.
    pub async fn verify(&self, token: &str) -> Result<Identity, ProtocolError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            if token_alg(token).is_some_and(|a| a.eq_ignore_ascii_case("none")) {
                unauthorized("the token is not signed (alg none is refused)")
            } else {
                unauthorized(format!("the token is not a valid JWT: {e}"))
            }
        })?;
        let mut keys = self.current_keys().await;
        let mut key = pick(&keys, header.kid.as_deref(), header.alg);
        if key.is_none() && header.kid.is_some() && self.read_for_unknown_kid().await {
            keys = self.keys.lock().keys.clone();
            key = pick(&keys, header.kid.as_deref(), header.alg);
        }
        let Some(key) = key else {
            return Err(match &header.kid {
                Some(kid) if !keys.iter().any(|k| k.kid.as_deref() == Some(kid)) => {
                    unauthorized(format!("the token's key id {kid:?} is not known"))
                }
                _ => unauthorized(format!(
                    "the token's algorithm {:?} is not accepted by the configured key",
                    header.alg
                )),
            });
        };
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = self.config.leeway_s;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        match &self.config.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                v.required_spec_claims.insert("iss".into());
            }
            None => v.iss = None,
        }
        match &self.config.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                v.required_spec_claims.insert("aud".into());
            }
            None => v.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &v).map_err(describe)?;
        self.identity(data.claims)
    }

    fn identity(&self, claims: Value) -> Result<Identity, ProtocolError> {
        let c = &self.config;
        let user = match path(&claims, &c.user_claim) {
            Some(Value::String(u)) => u.clone(),
            Some(_) => {
                return Err(unauthorized(format!(
                    "the token's {} claim is not a string",
                    c.user_claim
                )))
            }
            None => {
                return Err(unauthorized(format!(
                    "the token has no {} claim",
                    c.user_claim
                )))
            }
        };
        crate::protocol::names::validate("user", &user).map_err(|e| {
            unauthorized(format!(
                "the token's {} claim is not a valid user: {}",
                c.user_claim, e.message
            ))
        })?;
        let roles = strings(&claims, &c.roles_claim)?.unwrap_or_default();
        let groups = strings(&claims, &c.groups_claim)?;
        // The token was accepted up to `leeway_s` past its `exp`, so the
        // connection lives as long: expiring it earlier would close a
        // connection that was just let in (and its client would reconnect
        // with the same token, over and over). `exp` may be fractional.
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| {
                UNIX_EPOCH + Duration::from_secs_f64(s.min(1e12)) + Duration::from_secs(c.leeway_s)
            });
        Ok(Identity {
            user: Some(user),
            expires_at,
            roles,
            groups,
            claims,
        })
    }
}

impl Authenticator for Jwt {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
        Box::pin(async move { self.verify(request.require_token()?).await })
    }
}

fn unauthorized(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::Unauthorized, message.into())
}

/// The error a client is told: what is wrong with its token, never what
/// the key is.
fn describe(e: jsonwebtoken::errors::Error) -> ProtocolError {
    use jsonwebtoken::errors::ErrorKind as K;
    let m = match e.kind() {
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::InvalidSignature => "the token's signature is not valid".into(),
        K::InvalidIssuer => "the token's issuer (iss) is not accepted".into(),
        K::InvalidAudience => "the token's audience (aud) is not accepted".into(),
        K::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
        K::InvalidClaimFormat(c) => format!("the token's {c} claim is malformed"),
        K::InvalidAlgorithm | K::MissingAlgorithm => {
            "the token's algorithm is not accepted by the configured key".into()
        }
        _ => format!("the token is not valid: {e}"),
    };
    unauthorized(m)
}

/// The `alg` of a token's header, read without trusting it (to name
/// `none`, which the JWT library cannot even parse).
fn token_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let head = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(str::to_owned)
}

/// The key for a token: by `kid` when it has one, else the only key that
/// accepts its algorithm.
fn pick<'k>(keys: &'k [Key], kid: Option<&str>, alg: Algorithm) -> Option<&'k Key> {
    let mut fits = keys.iter().filter(|k| k.algorithms.contains(&alg));
    match kid {
        Some(kid) => fits.find(|k| k.kid.as_deref() == Some(kid)),
        None => {
            let first = fits.next()?;
            // Without a kid, several candidates are ambiguous: refuse
            // rather than try them all.
            fits.next().is_none().then_some(first)
        }
    }
}

fn hmac_key(secret: &[u8]) -> Key {
    Key {
        kid: None,
        key: DecodingKey::from_secret(secret),
        algorithms: HMAC,
    }
}

/// A PEM public key; its type (and an EC key's curve) pins the algorithms.
fn pem_key(pem: &[u8]) -> Result<Key, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "the key file is not PEM text".to_owned())?;
    if text.contains("PRIVATE KEY") {
        return Err("the key file holds a private key; configure the public key".into());
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(Key {
            kid: None,
            key,
            algorithms: RSA,
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        let der = pem_der(text).ok_or("the key file is not PEM")?;
        // The curve's object identifier in the SubjectPublicKeyInfo.
        const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
        let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
        let algorithms: &'static [Algorithm] = if has(P256) {
            &[Algorithm::ES256]
        } else if has(P384) {
            &[Algorithm::ES384]
        } else {
            return Err("the EC key is on a curve other than P-256 or P-384".into());
        };
        return Ok(Key {
            kid: None,
            key,
            algorithms,
        });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok(Key {
            kid: None,
            key,
            algorithms: &[Algorithm::EdDSA],
        });
    }
    Err("not a PEM public key of a supported type (RSA, EC P-256/P-384, Ed25519)".into())
}

fn pem_der(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The usable keys of a JWKS document. Symmetric (`oct`) keys are skipped:
/// a key set is public, and HMAC with a public key is forgeable.
fn jwks_keys(bytes: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        match jwk_key(jwk) {
            Ok(Some(k)) => keys.push(k),
            Ok(None) => {}
            Err(e) => tracing::warn!(kid = ?jwk.common.key_id, error = %e, "Skipped a JWKS key."),
        }
    }
    Ok(keys)
}

fn jwk_key(jwk: &Jwk) -> Result<Option<Key>, String> {
    let family: &'static [Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return Err("unsupported curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) => {
            tracing::warn!(kid = ?jwk.common.key_id, "Skipped a symmetric (oct) key in the JWKS: HMAC keys are secrets and never come from a key set.");
            return Ok(None);
        }
    };
    // A key that names its algorithm accepts only that one.
    let algorithms = match jwk.common.key_algorithm {
        None => family,
        Some(ka) => {
            let alg = key_algorithm(ka).ok_or("unsupported alg")?;
            let one = family
                .iter()
                .find(|a| **a == alg)
                .ok_or("the key's alg does not fit its type")?;
            std::slice::from_ref(one)
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    Ok(Some(Key {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
    }))
}

fn key_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The value at a dotted claim path.
fn path<'v>(claims: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted.split('.').try_fold(claims, |v, k| v.get(k))
}

/// A claim that is a list of strings (or one string); `None` when absent.
fn strings(claims: &Value, dotted: &str) -> Result<Option<Vec<String>>, ProtocolError> {
    match path(claims, dotted) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.split_whitespace().map(str::to_owned).collect())),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    unauthorized(format!("the token's {dotted} claim must list strings"))
                })
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(unauthorized(format!(
            "the token's {dotted} claim must be a list of strings"
        ))),
    }
}

/// Seconds since the Unix epoch (for tests and token makers).
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
