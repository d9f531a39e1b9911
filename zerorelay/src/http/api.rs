//! The server HTTP API: a backend publishes, sends, broadcasts, ends
//! sessions and looks at the relay without holding a WebSocket.
//!
//! | Call | Body | Answer |
//! |---|---|---|
//! | `POST /api/publish` | `{"group":"room-1","data":…}` | `{"deliveries":N}` |
//! | `POST /api/send` | `{"to":"alice","data":…}` or `{"session":"s_…","data":…}` | `{"deliveries":N}` |
//! | `POST /api/broadcast` | `{"data":…}` | `{"deliveries":N}` |
//! | `POST /api/disconnect` | `{"session":"s_…"}` or `{"user":"alice"}` | `{"disconnected":N}` |
//! | `POST /api/revoke` | `{"session":"s_…"}` or `{"user":"alice"}` | `{"revoked":N}` |
//! | `GET /api/sessions[?user=]` | | `[SessionInfo]` |
//! | `GET /api/groups` | | `[GroupInfo]` |
//! | `GET /api/presence?group=` | | `Presence` |
//! | `GET /api/stats` | | `Stats` |
//!
//! Keys (`api.keys`) come as `Authorization: Bearer KEY` or
//! `X-API-Key: KEY` and are compared in constant time. Errors carry the
//! protocol's codes: `{"code":"not_found","message":…}`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{error, json, method_not_allowed, Body};
use crate::error::{Error, ErrorCode};
use crate::metrics::Endpoint;
use crate::protocol::resume_key::constant_time_eq;
use crate::server::{Relay, Shared};

/// A refused call.
struct Refused(StatusCode, ErrorCode, String);

impl Refused {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refused(status_of(code), code, message.into())
    }

    fn into_response(self) -> Response<Body> {
        error(self.0, self.1, &self.2)
    }
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        match e {
            Error::Protocol(p) => Refused::new(p.code, p.message),
            other => Refused::new(ErrorCode::Internal, other.to_string()),
        }
    }
}

impl From<crate::error::ProtocolError> for Refused {
    fn from(p: crate::error::ProtocolError) -> Self {
        Refused::new(p.code, p.message)
    }
}

/// The HTTP status for a protocol error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadFrame | ErrorCode::BadRequest | ErrorCode::Unsupported => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited | ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub(super) async fn serve<B>(
    shared: &Arc<Shared>,
    req: Request<B>,
    peer: Option<SocketAddr>,
    endpoint: Endpoint,
) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let post = matches!(
        endpoint,
        Endpoint::Publish
            | Endpoint::Send
            | Endpoint::Broadcast
            | Endpoint::Disconnect
            | Endpoint::Revoke
    );
    let allowed = if post {
        req.method() == Method::POST
    } else {
        req.method() == Method::GET
    };
    if !allowed {
        return method_not_allowed(if post { "POST" } else { "GET" });
    }
    if let Err(r) = check_key(shared, req.headers(), peer) {
        return r.into_response();
    }
    match call(shared, req, endpoint).await {
        Ok(r) => r,
        Err(r) => r.into_response(),
    }
}

/// The caller presents one of `api.keys`; with none configured the API is
/// off, except in development mode for callers on this machine.
fn check_key(
    shared: &Shared,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<(), Refused> {
    let keys = &shared.config.api.keys;
    if keys.is_empty() {
        if shared.development && peer.is_some_and(|p| p.ip().is_loopback()) {
            return Ok(());
        }
        return Err(Refused::new(
            ErrorCode::Forbidden,
            "the HTTP API is off: set api.keys",
        ));
    }
    let presented = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .ok_or_else(|| {
            Refused::new(
                ErrorCode::Unauthorized,
                "an API key is required (Authorization: Bearer KEY or X-API-Key: KEY)",
            )
        })?;
    // Every key is compared, so the time taken says nothing about which
    // one came close.
    let mut ok = false;
    for k in keys {
        ok |= constant_time_eq(k.as_bytes(), presented.as_bytes());
    }
    if !ok {
        tracing::info!("Refused an HTTP API call with a wrong key.");
        return Err(Refused::new(ErrorCode::Unauthorized, "wrong API key"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    group: String,
    data: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    to: Option<String>,
    session: Option<String>,
    data: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Broadcast {
    data: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Whom {
    session: Option<String>,
    user: Option<String>,
}

impl Whom {
    fn one(self) -> Result<Result<String, String>, Refused> {
        match (self.session, self.user) {
            (Some(s), None) => Ok(Ok(s)),
            (None, Some(u)) => Ok(Err(u)),
            _ => Err(Refused::new(
                ErrorCode::BadRequest,
                "give exactly one of `session` and `user`",
            )),
        }
    }
}

async fn call<B>(
    shared: &Arc<Shared>,
    req: Request<B>,
    endpoint: Endpoint,
) -> Result<Response<Body>, Refused>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let relay = Relay {
        shared: shared.clone(),
    };
    let query = req.uri().query().map(str::to_owned);
    let param = |name: &str| query.as_deref().and_then(|q| query_param(q, name));
    match endpoint {
        Endpoint::Sessions => {
            let mut v = relay.sessions();
            if let Some(u) = param("user") {
                v.retain(|s| s.user.as_deref() == Some(u.as_str()));
            }
            return Ok(json(StatusCode::OK, &v));
        }
        Endpoint::Groups => return Ok(json(StatusCode::OK, &relay.groups())),
        Endpoint::Stats => return Ok(json(StatusCode::OK, &relay.stats())),
        Endpoint::Presence => {
            let group = param("group").ok_or_else(|| {
                Refused::new(ErrorCode::BadRequest, "`group` is required: ?group=NAME")
            })?;
            return Ok(json(StatusCode::OK, &relay.presence(&group)?));
        }
        _ => {}
    }
    let idempotency_key = match req.headers().get("idempotency-key") {
        None => None,
        Some(k) => {
            let k = k
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= super::idempotency::MAX_KEY_LEN)
                .ok_or_else(|| {
                    Refused::new(
                        ErrorCode::BadRequest,
                        "Idempotency-Key must be 1 to 255 visible ASCII characters",
                    )
                })?;
            Some(k.to_owned())
        }
    };
    let body = read_body(shared, req).await?;
    let depth = shared.live.get().limits.max_json_depth;
    let route = || -> Result<Bytes, Refused> {
        let answer = match endpoint {
            Endpoint::Publish => {
                let p: Publish = parse(&body, depth)?;
                serde_json::json!({"deliveries": relay.publish(&p.group, &p.data)?})
            }
            Endpoint::Send => {
                let s: SendBody = parse(&body, depth)?;
                let n = match (s.to, s.session) {
                    (Some(u), None) => relay.send_to_user(&u, &s.data)?,
                    (None, Some(id)) => relay.send_to_session(&id, &s.data).map(|()| 1)?,
                    _ => {
                        return Err(Refused::new(
                            ErrorCode::BadRequest,
                            "give exactly one of `to` (a user) and `session`",
                        ))
                    }
                };
                serde_json::json!({ "deliveries": n })
            }
            Endpoint::Broadcast => {
                let b: Broadcast = parse(&body, depth)?;
                serde_json::json!({"deliveries": relay.broadcast(&b.data)?})
            }
            Endpoint::Disconnect => {
                let n = match parse::<Whom>(&body, depth)?.one()? {
                    Ok(session) => usize::from(relay.disconnect(&session)),
                    Err(user) => relay.disconnect_user(&user),
                };
                if n == 0 {
                    return Err(Refused::new(ErrorCode::NotFound, "no such session"));
                }
                serde_json::json!({ "disconnected": n })
            }
            Endpoint::Revoke => {
                let n = match parse::<Whom>(&body, depth)?.one()? {
                    Ok(session) => usize::from(relay.revoke_session(&session)),
                    Err(user) => relay.revoke_user(&user),
                };
                if n == 0 {
                    return Err(Refused::new(ErrorCode::NotFound, "no such session"));
                }
                serde_json::json!({ "revoked": n })
            }
            _ => unreachable!("GET endpoints are answered above"),
        };
        Ok(Bytes::from(answer.to_string()))
    };
    let (answer, replayed) = match idempotency_key {
        Some(k) => {
            let key = format!("{}\n{k}", endpoint_path(endpoint));
            shared.idempotency.run(key, route)?
        }
        None => (route()?, false),
    };
    let mut r = Response::new(Full::new(answer));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(r)
}

fn endpoint_path(e: Endpoint) -> &'static str {
    use crate::metrics::LabelSet;
    <Endpoint as LabelSet>::VALUES[e.index()]
}

/// The body, at most `limits.max_frame_bytes` (else 413).
async fn read_body<B>(shared: &Shared, req: Request<B>) -> Result<Bytes, Refused>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let max = shared.live.get().limits.max_frame_bytes;
    let too_large = || {
        Refused::new(
            ErrorCode::TooLarge,
            format!("the body is over the limit of {max} bytes (limits.max_frame_bytes)"),
        )
    };
    if let Some(n) = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if n > max as u64 {
            return Err(too_large());
        }
    }
    // A body that trickles in (or stops short of its Content-Length) must
    // not hold the connection: the whole body within the hello timeout.
    let limit = std::time::Duration::from_millis(shared.config.server.hello_timeout_ms);
    let read = tokio::time::timeout(limit, Limited::new(req.into_body(), max).collect());
    match read.await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Refused::new(
            ErrorCode::BadRequest,
            format!("the body could not be read: {e}"),
        )),
        Err(_) => Err(Refused::new(
            ErrorCode::BadRequest,
            "the body did not arrive within server.hello_timeout_ms",
        )),
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], max_depth: usize) -> Result<T, Refused> {
    // The same nesting bound as a client's frame: what the API routes,
    // every client has to decode.
    let text = std::str::from_utf8(body)
        .map_err(|_| Refused::new(ErrorCode::BadRequest, "the body is not UTF-8"))?;
    if crate::protocol::client::exceeds_depth(text, max_depth) {
        return Err(Refused::new(
            ErrorCode::BadRequest,
            format!("the body nests deeper than limits.max_json_depth ({max_depth})"),
        ));
    }
    serde_json::from_str(text)
        .map_err(|e| Refused::new(ErrorCode::BadRequest, format!("the body is not valid: {e}")))
}

/// `name=` from a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?;
    crate::server::listener::percent_decode(raw)
}
