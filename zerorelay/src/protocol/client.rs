//! Frames a client sends, and their parser.
//!
//! Parsing is strict about the fields each frame needs and lenient about
//! fields it does not know (they are ignored, so that later minor versions can
//! add optional fields). The payload `data` is never re-serialized: it is kept
//! as the exact JSON text the client sent and copied once into the delivery.

use std::fmt;

use serde::de::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::names;
use crate::error::{ErrorCode, ProtocolError};

/// The longest string request id, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// The longest session id accepted in a frame, in bytes.
pub const MAX_SESSION_ID_LEN: usize = 128;
/// The longest `client` string in `hello`, in characters.
pub const MAX_CLIENT_CHARS: usize = 128;
/// The nesting bound [`parse`] applies (the default of the server's
/// `limits.max_json_depth`).
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// A request id: a string of at most 64 characters, or an integer.
///
/// `1` and `"1"` are different ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id (signed 64-bit range).
    Int(i64),
    /// A string id.
    Str(Box<str>),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Int(i) => write!(f, "{i}"),
            RequestId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for RequestId {
    fn from(v: i64) -> Self {
        RequestId::Int(v)
    }
}

impl From<&str> for RequestId {
    fn from(v: &str) -> Self {
        RequestId::Str(v.into())
    }
}

/// The longest resume key accepted in a frame, in bytes.
pub const MAX_RESUME_KEY_LEN: usize = 128;

/// `hello.resume`: the session to resume, the key that proves it is ours,
/// and the last seq the client processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The session id from an earlier `welcome`.
    pub session: String,
    /// The `resume_key` from that `welcome`. Without the right key the
    /// server opens a fresh session instead.
    pub key: Option<super::ResumeKey>,
    /// Every message with `seq <= last_seq` has been processed.
    pub last_seq: u64,
}

/// The `hello` frame that opens every connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// Protocol version asked for.
    pub v: u64,
    /// Credentials, checked by the authenticator.
    pub token: Option<String>,
    /// A user name; honoured only in development mode.
    pub user: Option<String>,
    /// The session to resume, if any.
    pub resume: Option<Resume>,
    /// Free-form client name and version, for logs.
    pub client: Option<String>,
}

/// The target of a direct `send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every session of a user, except the sender's own.
    User(String),
    /// One session, which may be the sender's own.
    Session(String),
}

/// A parsed client frame. `data` borrows the frame's text.
#[derive(Debug, Clone)]
pub enum ClientFrame<'a> {
    /// Opens the connection.
    Hello(Hello),
    /// Direct message to a user or a session.
    Send {
        /// Request id.
        id: Option<RequestId>,
        /// Recipient.
        target: Target,
        /// Payload, as sent.
        data: &'a RawValue,
    },
    /// Join a group.
    Join {
        /// Request id.
        id: Option<RequestId>,
        /// Group name.
        group: String,
        /// Whether to be told who joins and leaves (revision 1.3).
        presence: bool,
    },
    /// Leave a group.
    Leave {
        /// Request id.
        id: Option<RequestId>,
        /// Group name.
        group: String,
    },
    /// Publish to a group's members.
    Publish {
        /// Request id.
        id: Option<RequestId>,
        /// Group name.
        group: String,
        /// Payload, as sent.
        data: &'a RawValue,
        /// Whether the publisher's own session receives it too.
        echo: bool,
    },
    /// Publish to every session.
    Broadcast {
        /// Request id.
        id: Option<RequestId>,
        /// Payload, as sent.
        data: &'a RawValue,
        /// Whether the sender's own session receives it too.
        echo: bool,
    },
    /// Cumulative acknowledgement.
    Ack {
        /// Every message with a seq up to this one has been processed.
        seq: u64,
    },
    /// Application-level ping.
    Ping {
        /// Request id, echoed in `pong`.
        id: Option<RequestId>,
    },
    /// Call a host-defined method.
    Rpc {
        /// Request id (required).
        id: RequestId,
        /// Method name.
        method: String,
        /// Argument, as sent (`None` when absent, which handlers see as `null`).
        data: Option<&'a RawValue>,
    },
    /// Present a fresh token before the current one expires.
    Refresh {
        /// Request id.
        id: Option<RequestId>,
        /// The new token.
        token: String,
    },
    /// Who is in a group (revision 1.3).
    Presence {
        /// Request id (required: the answer is a `result`).
        id: RequestId,
        /// Group name.
        group: String,
    },
}

impl ClientFrame<'_> {
    /// The frame's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::Hello(_) => "hello",
            ClientFrame::Send { .. } => "send",
            ClientFrame::Join { .. } => "join",
            ClientFrame::Leave { .. } => "leave",
            ClientFrame::Publish { .. } => "publish",
            ClientFrame::Broadcast { .. } => "broadcast",
            ClientFrame::Ack { .. } => "ack",
            ClientFrame::Ping { .. } => "ping",
            ClientFrame::Rpc { .. } => "rpc",
            ClientFrame::Refresh { .. } => "refresh",
            ClientFrame::Presence { .. } => "presence",
        }
    }

    /// The request id, if the frame carries one.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            ClientFrame::Hello(_) | ClientFrame::Ack { .. } => None,
            ClientFrame::Send { id, .. }
            | ClientFrame::Join { id, .. }
            | ClientFrame::Leave { id, .. }
            | ClientFrame::Publish { id, .. }
            | ClientFrame::Broadcast { id, .. }
            | ClientFrame::Ping { id }
            | ClientFrame::Refresh { id, .. } => id.as_ref(),
            ClientFrame::Presence { id, .. } => Some(id),
            ClientFrame::Rpc { id, .. } => Some(id),
        }
    }
}

/// A frame that could not be parsed: the error, and the request id when the
/// frame had a valid one (so that the `error` reply can echo it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was wrong.
    pub error: ProtocolError,
    /// The frame's valid `id`, if any.
    pub id: Option<RequestId>,
}

impl ParseError {
    fn new(code: ErrorCode, message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        ParseError {
            error: ProtocolError::new(code, message),
            id: None,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ParseError {}

/// Every field any client frame may carry, each as raw JSON so that a field's
/// wrong type is reported by name rather than by serde's position message.
#[derive(serde::Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "present")]
    ty: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    v: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    token: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    user: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    resume: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    client: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    to: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    session: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    group: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    echo: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    seq: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    presence: Option<&'a RawValue>,
}

/// Keeps an explicit `null` as `Some("null")`, so that `"id":null` is an
/// invalid id rather than a missing one.
pub(crate) fn present<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<&'a RawValue>, D::Error> {
    <&'a RawValue>::deserialize(d).map(Some)
}

/// Parses one client text frame.
///
/// # Errors
/// `bad_frame` when the text is not a JSON object with a string `type`;
/// `unsupported` for an unknown `type` or an unsupported `v`; `bad_request`
/// for a missing or invalid field. The error carries the frame's `id` when
/// that was valid.
pub fn parse(text: &str) -> Result<ClientFrame<'_>, ParseError> {
    parse_bounded(text, DEFAULT_MAX_DEPTH)
}

/// [`parse`] with a nesting bound: arrays and objects nested deeper than
/// `max_depth` (the frame itself is depth 1), anywhere in the frame, are
/// refused before anything else is read: `bad_request` when the frame has
/// a valid `id`, `bad_frame` otherwise.
pub fn parse_bounded(text: &str, max_depth: usize) -> Result<ClientFrame<'_>, ParseError> {
    let (raw, ty) = envelope(text, max_depth)?;
    // The id is checked first, so that every later error can echo it.
    let id = match raw.id {
        None => None,
        Some(v) => Some(request_id(v)?),
    };
    frame(&ty, &raw, id.clone()).map_err(|error| ParseError { error, id })
}

/// The frame's fields and its `type`, or the `bad_frame` error.
fn envelope(
    text: &str,
    max_depth: usize,
) -> Result<(RawFrame<'_>, std::borrow::Cow<'_, str>), ParseError> {
    if exceeds_depth(text, max_depth) {
        let message = format!("frame is nested deeper than {max_depth} levels");
        // serde_json skips nested values without recursing (and stops at
        // its own bound of 128), so the id can still be read safely.
        let id = serde_json::from_str::<RawFrame<'_>>(text)
            .ok()
            .and_then(|raw| raw.id)
            .and_then(|v| request_id(v).ok());
        return Err(match id {
            Some(id) => ParseError {
                error: ProtocolError::new(ErrorCode::BadRequest, message),
                id: Some(id),
            },
            None => ParseError::new(ErrorCode::BadFrame, message),
        });
    }
    // serde would also read a struct from a JSON array, field by field.
    if !is_object_text(text) {
        let message = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => "frame is not a JSON object".to_owned(),
            Err(e) => format!("frame is not valid JSON: {e}"),
        };
        return Err(ParseError::new(ErrorCode::BadFrame, message));
    }
    let raw: RawFrame<'_> = serde_json::from_str(text).map_err(|e| {
        use serde_json::error::Category;
        let message = match e.classify() {
            Category::Data if e.to_string().starts_with("duplicate field") => {
                format!("frame has a {}", strip_position(&e))
            }
            Category::Data => "frame is not a JSON object".to_owned(),
            Category::Io | Category::Syntax | Category::Eof => {
                format!("frame is not valid JSON: {}", e)
            }
        };
        ParseError::new(ErrorCode::BadFrame, message)
    })?;
    let ty = match raw.ty {
        None => return Err(ParseError::new(ErrorCode::BadFrame, "frame has no `type`")),
        Some(v) => serde_json::from_str::<std::borrow::Cow<'_, str>>(v.get())
            .map_err(|_| ParseError::new(ErrorCode::BadFrame, "frame's `type` must be a string"))?,
    };
    Ok((raw, ty))
}

/// The seq of an `ack` in its canonical form, `{"type":"ack","seq":N}`
/// exactly (what this crate's client sends), or `None` for anything else
/// (which [`parse`] then handles, with the same result).
pub fn canonical_ack(text: &str) -> Option<u64> {
    let digits = text
        .strip_prefix(r#"{"type":"ack","seq":"#)?
        .strip_suffix('}')?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses a request as a client application hands it to the engine: a
/// client frame without `id` (the engine numbers requests itself). An `rpc`
/// gets the placeholder id 0, to be replaced when it is sent.
///
/// # Errors
/// As [`parse`], and `bad_request` when the frame carries an `id`.
pub fn parse_unnumbered(text: &str) -> Result<ClientFrame<'_>, ParseError> {
    let (raw, ty) = envelope(text, DEFAULT_MAX_DEPTH)?;
    if raw.id.is_some() {
        return Err(ParseError::new(
            ErrorCode::BadRequest,
            "a request handed to the client must not carry an `id`: the client numbers requests",
        ));
    }
    let id = matches!(&*ty, "rpc" | "presence").then_some(RequestId::Int(0));
    frame(&ty, &raw, id).map_err(|error| ParseError { error, id: None })
}

/// Whether arrays and objects in `text` nest deeper than `max` (outside
/// strings). One pass over the bytes, no recursion: the bound is checked
/// before any parser sees the frame. Invalid JSON is left to the parser.
pub fn exceeds_depth(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether the text starts (after whitespace) with `{`.
pub(crate) fn is_object_text(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn frame<'a>(
    ty: &str,
    raw: &RawFrame<'a>,
    id: Option<RequestId>,
) -> Result<ClientFrame<'a>, ProtocolError> {
    Ok(match ty {
        "hello" => ClientFrame::Hello(hello(raw)?),
        "send" => {
            let target = match (raw.to, raw.session) {
                (Some(to), None) => Target::User(name("to", to)?),
                (None, Some(s)) => Target::Session(session_id("session", s)?),
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "`send` takes exactly one of `to` and `session`, not both",
                    ))
                }
                (None, None) => return Err(bad("`send` needs `to` (a user) or `session`")),
            };
            ClientFrame::Send {
                id,
                target,
                data: required("data", raw.data)?,
            }
        }
        "join" => ClientFrame::Join {
            id,
            group: name("group", required("group", raw.group)?)?,
            presence: optional_bool("presence", raw.presence)?,
        },
        "leave" => ClientFrame::Leave {
            id,
            group: name("group", required("group", raw.group)?)?,
        },
        "publish" => ClientFrame::Publish {
            id,
            group: name("group", required("group", raw.group)?)?,
            data: required("data", raw.data)?,
            echo: optional_bool("echo", raw.echo)?,
        },
        "broadcast" => ClientFrame::Broadcast {
            id,
            data: required("data", raw.data)?,
            echo: optional_bool("echo", raw.echo)?,
        },
        "ack" => ClientFrame::Ack {
            seq: uint("seq", required("seq", raw.seq)?)?,
        },
        "ping" => ClientFrame::Ping { id },
        "rpc" => ClientFrame::Rpc {
            id: id.ok_or_else(|| bad("`rpc` needs an `id` to answer with its result"))?,
            method: name("method", required("method", raw.method)?)?,
            data: raw.data,
        },
        "refresh" => ClientFrame::Refresh {
            id,
            token: string("token", required("token", raw.token)?)?,
        },
        "presence" => ClientFrame::Presence {
            id: id.ok_or_else(|| bad("`presence` needs an `id` to answer with its result"))?,
            group: name("group", required("group", raw.group)?)?,
        },
        other => {
            let mut shown: String = other.chars().take(32).collect();
            if shown.len() < other.len() {
                shown.push('…');
            }
            return Err(ProtocolError::new(
                ErrorCode::Unsupported,
                format!("unknown frame type {shown:?}"),
            ));
        }
    })
}

fn hello(raw: &RawFrame<'_>) -> Result<Hello, ProtocolError> {
    let v = required("v", raw.v)?;
    let v = serde_json::from_str::<u64>(v.get())
        .map_err(|_| bad("`v` must be a positive integer (the protocol version)"))?;
    if v != super::VERSION {
        return Err(ProtocolError::new(
            ErrorCode::Unsupported,
            format!("protocol version {v} is not supported; this server speaks v1"),
        ));
    }
    let token = raw.token.map(|t| string("token", t)).transpose()?;
    let user = raw.user.map(|u| name("user", u)).transpose()?;
    let client = raw
        .client
        .map(|c| {
            let c = string("client", c)?;
            if c.chars().count() > MAX_CLIENT_CHARS {
                return Err(bad(format!(
                    "`client` is longer than {MAX_CLIENT_CHARS} characters"
                )));
            }
            Ok(c)
        })
        .transpose()?;
    let resume = raw.resume.map(resume).transpose()?;
    Ok(Hello {
        v,
        token,
        user,
        resume,
        client,
    })
}

fn resume(raw: &RawValue) -> Result<Resume, ProtocolError> {
    #[derive(serde::Deserialize)]
    struct RawResume<'a> {
        #[serde(default, borrow, deserialize_with = "present")]
        session: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "present")]
        key: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "present")]
        last_seq: Option<&'a RawValue>,
    }
    let invalid = || bad("`resume` must be an object with `session`, `key` and `last_seq`");
    if !is_object_text(raw.get()) {
        return Err(invalid());
    }
    let r: RawResume<'_> = serde_json::from_str(raw.get()).map_err(|_| invalid())?;
    Ok(Resume {
        session: session_id("resume.session", required("resume.session", r.session)?)?,
        key: r.key.map(resume_key).transpose()?,
        last_seq: uint("resume.last_seq", required("resume.last_seq", r.last_seq)?)?,
    })
}

fn bad(message: impl Into<std::borrow::Cow<'static, str>>) -> ProtocolError {
    ProtocolError::new(ErrorCode::BadRequest, message)
}

fn required<'a>(field: &str, v: Option<&'a RawValue>) -> Result<&'a RawValue, ProtocolError> {
    v.ok_or_else(|| bad(format!("missing field `{field}`")))
}

fn string(field: &str, v: &RawValue) -> Result<String, ProtocolError> {
    serde_json::from_str::<String>(v.get()).map_err(|_| bad(format!("`{field}` must be a string")))
}

fn name(field: &str, v: &RawValue) -> Result<String, ProtocolError> {
    let s = string(field, v)?;
    names::validate(field, &s)?;
    Ok(s)
}

fn session_id(field: &str, v: &RawValue) -> Result<String, ProtocolError> {
    let s = string(field, v)?;
    if s.is_empty() || s.len() > MAX_SESSION_ID_LEN {
        return Err(bad(format!(
            "`{field}` must be a session id of 1 to {MAX_SESSION_ID_LEN} bytes"
        )));
    }
    Ok(s)
}

fn resume_key(v: &RawValue) -> Result<super::ResumeKey, ProtocolError> {
    let s = string("resume.key", v)?;
    if s.is_empty() || s.len() > MAX_RESUME_KEY_LEN {
        return Err(bad(format!(
            "`resume.key` must be a key of 1 to {MAX_RESUME_KEY_LEN} bytes"
        )));
    }
    Ok(super::ResumeKey::new(s))
}

fn uint(field: &str, v: &RawValue) -> Result<u64, ProtocolError> {
    serde_json::from_str::<u64>(v.get())
        .map_err(|_| bad(format!("`{field}` must be a non-negative integer")))
}

fn optional_bool(field: &str, v: Option<&RawValue>) -> Result<bool, ProtocolError> {
    match v {
        None => Ok(false),
        Some(v) => serde_json::from_str::<bool>(v.get())
            .map_err(|_| bad(format!("`{field}` must be true or false"))),
    }
}

fn request_id(v: &RawValue) -> Result<RequestId, ParseError> {
    let invalid = || {
        ParseError::new(
            ErrorCode::BadRequest,
            format!("`id` must be a string of at most {MAX_ID_CHARS} characters or an integer"),
        )
    };
    let text = v.get();
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|_| invalid())?;
        if s.chars().count() > MAX_ID_CHARS {
            return Err(invalid());
        }
        return Ok(RequestId::Str(s.into_boxed_str()));
    }
    // Only plain integer literals: `1.0` and `1e3` are numbers but not ids.
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(RequestId::Int(i));
        }
    }
    Err(invalid())
}

impl serde::Serialize for ClientFrame<'_> {
    /// The canonical encoding of a client frame: `type` first, optional
    /// fields only when present, `echo` only when true.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", self.type_name())?;
        if let Some(id) = self.id() {
            m.serialize_entry("id", id)?;
        }
        match self {
            ClientFrame::Hello(h) => {
                m.serialize_entry("v", &h.v)?;
                if let Some(t) = &h.token {
                    m.serialize_entry("token", t)?;
                }
                if let Some(u) = &h.user {
                    m.serialize_entry("user", u)?;
                }
                if let Some(r) = &h.resume {
                    #[derive(serde::Serialize)]
                    struct R<'a> {
                        session: &'a str,
                        #[serde(skip_serializing_if = "Option::is_none")]
                        key: Option<&'a str>,
                        last_seq: u64,
                    }
                    m.serialize_entry(
                        "resume",
                        &R {
                            session: &r.session,
                            key: r.key.as_ref().map(|k| k.expose()),
                            last_seq: r.last_seq,
                        },
                    )?;
                }
                if let Some(c) = &h.client {
                    m.serialize_entry("client", c)?;
                }
            }
            ClientFrame::Send { target, data, .. } => {
                match target {
                    Target::User(u) => m.serialize_entry("to", u)?,
                    Target::Session(s) => m.serialize_entry("session", s)?,
                }
                m.serialize_entry("data", data)?;
            }
            ClientFrame::Join {
                group, presence, ..
            } => {
                m.serialize_entry("group", group)?;
                if *presence {
                    m.serialize_entry("presence", &true)?;
                }
            }
            ClientFrame::Leave { group, .. } | ClientFrame::Presence { group, .. } => {
                m.serialize_entry("group", group)?;
            }
            ClientFrame::Publish {
                group, data, echo, ..
            } => {
                m.serialize_entry("group", group)?;
                m.serialize_entry("data", data)?;
                if *echo {
                    m.serialize_entry("echo", &true)?;
                }
            }
            ClientFrame::Broadcast { data, echo, .. } => {
                m.serialize_entry("data", data)?;
                if *echo {
                    m.serialize_entry("echo", &true)?;
                }
            }
            ClientFrame::Ack { seq } => m.serialize_entry("seq", seq)?,
            ClientFrame::Ping { .. } => {}
            ClientFrame::Rpc { method, data, .. } => {
                m.serialize_entry("method", method)?;
                if let Some(d) = data {
                    m.serialize_entry("data", d)?;
                }
            }
            ClientFrame::Refresh { token, .. } => m.serialize_entry("token", token)?,
        }
        m.end()
    }
}

impl ClientFrame<'_> {
    /// Encodes the frame as JSON text (what a client sends).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("client frames are always serializable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_ack_fast_path_agrees_with_the_parser() {
        for text in [
            r#"{"type":"ack","seq":0}"#,
            r#"{"type":"ack","seq":42}"#,
            r#"{"type":"ack","seq":18446744073709551615}"#,
        ] {
            let fast = canonical_ack(text).expect("canonical");
            match parse(text) {
                Ok(ClientFrame::Ack { seq }) => assert_eq!(seq, fast),
                other => panic!("{other:?}"),
            }
            assert_eq!(ClientFrame::Ack { seq: fast }.encode(), text);
        }
        for text in [
            r#"{"type":"ack","seq":-1}"#,
            r#"{"type":"ack","seq":}"#,
            r#"{"type":"ack","seq":1.5}"#,
            r#"{"type":"ack","seq":18446744073709551616}"#,
            r#"{"type":"ack", "seq":1}"#,
            r#"{"type":"ack","seq":1,"x":2}"#,
        ] {
            assert_eq!(canonical_ack(text), None, "{text}");
        }
    }

    fn nested(depth: usize) -> String {
        format!(
            r#"{{"type":"publish","id":7,"group":"g","data":{}1{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    }

    #[test]
    fn the_depth_bound_counts_the_frame_and_ignores_brackets_in_strings() {
        assert!(parse_bounded(&nested(64), 64).is_ok());
        let e = parse_bounded(&nested(65), 64).unwrap_err();
        assert_eq!(
            (e.error.code, e.id),
            (ErrorCode::BadRequest, Some(RequestId::Int(7)))
        );
        let text = r#"{"type":"publish","group":"g","data":"[[[[[[{{{{\"[[["}"#;
        assert!(
            parse_bounded(text, 2).is_ok(),
            "brackets in strings do not count"
        );
        // Far deeper than serde_json's own bound: refused, with no id to echo.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse_bounded(&deep, 64).unwrap_err().error.code,
            ErrorCode::BadFrame
        );
        let deep_object = format!(r#"{{"type":"ping","id":{}"#, "{\"a\":".repeat(100_000));
        assert_eq!(
            parse_bounded(&deep_object, 64).unwrap_err().error.code,
            ErrorCode::BadFrame
        );
    }
}
