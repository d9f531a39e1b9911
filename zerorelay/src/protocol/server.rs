//! Frames the server sends.
//!
//! Control frames (`welcome`, `ok`, `error`, `pong`, `result`, `gap`) are
//! rare and encoded with serde. Deliveries are the hot path: a routed message
//! is encoded once into a [`Delivery`] whose text is shared by every recipient
//! and every outbox; only `seq` differs per recipient and is spliced in when
//! the frame is written.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::client::RequestId;
use crate::error::ErrorCode;

/// What kind of routing produced a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// A `send` to a user or session.
    Direct,
    /// A `publish` to a group.
    Group,
    /// A `broadcast` to everyone.
    Broadcast,
}

impl DeliveryKind {
    /// The wire form.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Direct => "direct",
            DeliveryKind::Group => "group",
            DeliveryKind::Broadcast => "broadcast",
        }
    }
}

/// The `welcome` frame that answers a successful `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// Protocol version in use.
    pub v: u64,
    /// The session id, to resume with later. A public name, not a
    /// credential: resuming also needs `resume_key`.
    pub session: String,
    /// The secret that proves ownership of the session on resume (§9):
    /// 32 hex digits (128 bits from the server's CSPRNG), sent only on this
    /// connection's `welcome`. Absent from servers before protocol 1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_key: Option<super::ResumeKey>,
    /// The authenticated user, or `null` for an anonymous session.
    pub user: Option<String>,
    /// Whether an earlier session was resumed.
    pub resumed: bool,
    /// Interval of the server's WebSocket pings.
    pub heartbeat_ms: u64,
    /// How long a disconnected session stays resumable.
    pub session_ttl_ms: u64,
    /// Server name and version.
    pub server: String,
}

/// A delivered message, as a client decodes it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageFrame {
    /// Per-session sequence number, contiguous from 1.
    pub seq: u64,
    /// How it was routed.
    pub kind: DeliveryKind,
    /// The sending user, `null` for anonymous senders and the host.
    pub from: Option<String>,
    /// The sending session, `null` when the host sent it.
    pub from_session: Option<String>,
    /// The group, for group deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The payload.
    pub data: Box<RawValue>,
    /// Server time when the message was routed, in Unix milliseconds.
    pub ts: u64,
    /// The frame's text as received, when it was decoded from the wire: a
    /// binding can pass it on as the message's JSON without encoding again.
    #[serde(skip)]
    pub text: Option<Arc<str>>,
}

/// A `presence_change` notice (protocol §16a): a user's first session
/// joined a group, or their last left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChange {
    /// The group.
    pub group: String,
    /// The user; `None` for a session without one.
    pub user: Option<String>,
    /// `join` or `leave`.
    pub change: String,
}

/// A `presence_summary` notice (protocol §16a): a large group's joins and
/// leaves since the last notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceSummary {
    /// The group.
    pub group: String,
    /// Users who joined.
    pub joined: u64,
    /// Users who left.
    pub left: u64,
    /// Users (and sessions without a user) present now.
    pub present: u64,
}

/// Every frame the server sends.
///
/// Encoded with serde; decoded by [`ServerFrame::decode`] (serde's derived
/// decoding of tagged enums cannot keep `data` as raw JSON text).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Answer to `hello`.
    Welcome(Welcome),
    /// A request succeeded.
    Ok {
        /// The request's id.
        id: RequestId,
    },
    /// A request or frame failed.
    Error {
        /// The request's id, when it had a valid one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The stable error code.
        code: String,
        /// A sentence for people.
        message: String,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// The answer of an `rpc`.
    Result {
        /// The rpc's id.
        id: RequestId,
        /// What the handler returned.
        data: Box<RawValue>,
    },
    /// Messages `from_seq..=to_seq` were dropped and will never arrive.
    Gap {
        /// First dropped seq.
        from_seq: u64,
        /// Last dropped seq.
        to_seq: u64,
        /// Why (for example `outbox_full`).
        reason: String,
    },
    /// A delivery.
    Message(MessageFrame),
    /// The connection's credentials expire in `expires_in_ms`: send a
    /// `refresh` before then, or the connection is closed with 4003.
    RefreshRequired {
        /// Milliseconds until the credentials expire.
        expires_in_ms: u64,
    },
    /// A user joined or left a group this session watches (revision 1.3).
    PresenceChange(PresenceChange),
    /// Joins and leaves of a large group this session watches since the
    /// last notice (revision 1.3).
    PresenceSummary(PresenceSummary),
}

impl ServerFrame {
    /// `ok` for a request id.
    pub fn ok(id: &RequestId) -> Self {
        ServerFrame::Ok { id: id.clone() }
    }

    /// `error`, echoing the id when there is one.
    pub fn error(id: Option<&RequestId>, code: ErrorCode, message: &str) -> Self {
        ServerFrame::Error {
            id: id.cloned(),
            code: code.as_str().to_owned(),
            message: message.to_owned(),
        }
    }

    /// Encodes the frame as JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("server frames are always serializable")
    }

    /// Decodes a server frame (the client side of the protocol). Unknown
    /// fields are ignored; an unknown `type` is an error.
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;
        // Deliveries are nearly every frame a client reads: the layout this
        // crate's server writes is decoded without the general parser.
        if let Some(m) = decode_canonical_message(text) {
            return Ok(ServerFrame::Message(m));
        }
        if !super::client::is_object_text(text) {
            return Err(serde_json::Error::custom(
                "a server frame must be a JSON object",
            ));
        }
        let raw: RawServerFrame<'_> = serde_json::from_str(text)?;
        fn req<'a>(v: Option<&'a RawValue>, f: &str) -> Result<&'a RawValue, serde_json::Error> {
            v.ok_or_else(|| serde_json::Error::custom(format!("missing field `{f}`")))
        }
        fn get<T: serde::de::DeserializeOwned>(
            v: Option<&RawValue>,
            f: &str,
        ) -> Result<T, serde_json::Error> {
            serde_json::from_str(req(v, f)?.get())
        }
        fn opt<T: serde::de::DeserializeOwned>(
            v: Option<&RawValue>,
        ) -> Result<Option<T>, serde_json::Error> {
            v.map(|v| serde_json::from_str(v.get())).transpose()
        }
        fn owned(v: &RawValue) -> Box<RawValue> {
            v.to_owned()
        }
        Ok(match &*raw.ty {
            "welcome" => ServerFrame::Welcome(serde_json::from_str(text)?),
            "ok" => ServerFrame::Ok {
                id: get(raw.id, "id")?,
            },
            "error" => ServerFrame::Error {
                id: opt(raw.id)?,
                code: get(raw.code, "code")?,
                message: get(raw.message, "message")?,
            },
            "pong" => ServerFrame::Pong { id: opt(raw.id)? },
            "result" => ServerFrame::Result {
                id: get(raw.id, "id")?,
                data: owned(req(raw.data, "data")?),
            },
            "gap" => ServerFrame::Gap {
                from_seq: get(raw.from_seq, "from_seq")?,
                to_seq: get(raw.to_seq, "to_seq")?,
                reason: get(raw.reason, "reason")?,
            },
            "refresh_required" => ServerFrame::RefreshRequired {
                expires_in_ms: get(raw.expires_in_ms, "expires_in_ms")?,
            },
            "presence_change" => ServerFrame::PresenceChange(serde_json::from_str(text)?),
            "presence_summary" => ServerFrame::PresenceSummary(serde_json::from_str(text)?),
            "message" => ServerFrame::Message(MessageFrame {
                seq: get(raw.seq, "seq")?,
                kind: get(raw.kind, "kind")?,
                from: get(raw.from, "from")?,
                from_session: get(raw.from_session, "from_session")?,
                group: opt(raw.group)?,
                data: owned(req(raw.data, "data")?),
                ts: get(raw.ts, "ts")?,
                text: Some(Arc::from(text)),
            }),
            other => {
                return Err(serde_json::Error::custom(format!(
                    "unknown server frame type {other:?}"
                )))
            }
        })
    }
}

/// Every field a server frame may carry, as raw JSON.
#[derive(Deserialize)]
struct RawServerFrame<'a> {
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    code: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    expires_in_ms: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    message: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    data: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    from_seq: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    to_seq: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    reason: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    seq: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    from: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    from_session: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    group: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "super::client::present")]
    ts: Option<&'a RawValue>,
}

/// Decodes a `message` frame laid out exactly as [`Delivery::frame`] writes
/// it, with no escapes in its strings; `None` for anything else, which the
/// general decoder then handles with the same result.
fn decode_canonical_message(text: &str) -> Option<MessageFrame> {
    let r = text.strip_prefix(MESSAGE_PREFIX)?;
    let (seq, r) = take_u64(r)?;
    let r = r.strip_prefix(r#","kind":""#)?;
    let (kind, r) = [
        DeliveryKind::Direct,
        DeliveryKind::Group,
        DeliveryKind::Broadcast,
    ]
    .into_iter()
    .find_map(|k| Some((k, r.strip_prefix(k.as_str())?.strip_prefix('"')?)))?;
    let (from, r) = take_opt_str(r.strip_prefix(r#","from":"#)?)?;
    let (from_session, r) = take_opt_str(r.strip_prefix(r#","from_session":"#)?)?;
    let (group, r) = match r.strip_prefix(r#","group":"#) {
        Some(g) => {
            let (g, rest) = take_opt_str(g)?;
            (Some(g?), rest)
        }
        None => (None, r),
    };
    let body = r.strip_prefix(r#","data":"#)?.strip_suffix('}')?;
    // `ts` is the last field; a nested "ts" key in the data comes before it.
    let at = body.rfind(r#","ts":"#)?;
    let (data, ts) = (&body[..at], &body[at + 6..]);
    let (ts, rest) = take_u64(ts)?;
    if !rest.is_empty()
        || data.is_empty()
        || data.starts_with(char::is_whitespace)
        || data.ends_with(char::is_whitespace)
    {
        return None;
    }
    let data = RawValue::from_string(data.to_owned()).ok()?;
    Some(MessageFrame {
        seq,
        kind,
        from,
        from_session,
        group,
        data,
        ts,
        text: Some(Arc::from(text)),
    })
}

/// The seq of a `message` frame that starts as [`Delivery::frame`] writes it
/// (`{"type":"message","seq":N,`), without decoding the rest: a client can
/// then report a message whose payload it cannot decode in its place.
pub fn message_seq(text: &str) -> Option<u64> {
    let (seq, rest) = take_u64(text.strip_prefix(MESSAGE_PREFIX)?)?;
    rest.starts_with(',').then_some(seq)
}

/// Leading decimal digits as a u64.
fn take_u64(s: &str) -> Option<(u64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || n > 20 || (n > 1 && s.starts_with('0')) {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// `null`, or a JSON string without escapes or control characters.
fn take_opt_str(s: &str) -> Option<(Option<String>, &str)> {
    if let Some(rest) = s.strip_prefix("null") {
        return Some((None, rest));
    }
    let s = s.strip_prefix('"')?;
    let end = s.find('"')?;
    let v = &s[..end];
    if v.bytes().any(|b| b == b'\\' || b < 0x20) {
        return None;
    }
    Some((Some(v.to_owned()), &s[end + 1..]))
}

/// A routed message, encoded once and shared by all its recipients.
///
/// Holds the frame text after `"seq":N`; cloning is a reference-count bump.
#[derive(Clone, Debug)]
pub struct Delivery {
    tail: Arc<str>,
    /// When it was routed ([`crate::metrics::monotonic_ns`]).
    born: u64,
}

/// The text before the seq number in every delivery.
const MESSAGE_PREFIX: &str = r#"{"type":"message","seq":"#;

impl Delivery {
    /// Encodes a message once. `data` must be valid JSON text (it comes from a
    /// parsed frame or from `serde_json`).
    pub fn new(
        kind: DeliveryKind,
        from: Option<&str>,
        from_session: Option<&str>,
        group: Option<&str>,
        data: &str,
        ts: u64,
    ) -> Self {
        let mut t = String::with_capacity(96 + data.len());
        t.push_str(r#","kind":""#);
        t.push_str(kind.as_str());
        t.push_str(r#"","from":"#);
        push_opt_str(&mut t, from);
        t.push_str(r#","from_session":"#);
        push_opt_str(&mut t, from_session);
        if let Some(g) = group {
            t.push_str(r#","group":"#);
            push_opt_str(&mut t, Some(g));
        }
        t.push_str(r#","data":"#);
        t.push_str(data);
        t.push_str(r#","ts":"#);
        t.push_str(itoa::Buffer::new().format(ts));
        t.push('}');
        Delivery {
            tail: t.into(),
            born: crate::metrics::monotonic_ns(),
        }
    }

    /// The full frame text for one recipient's `seq`.
    pub fn frame(&self, seq: u64) -> String {
        let mut buf = itoa::Buffer::new();
        let parts = self.frame_parts(buf.format(seq));
        let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            s.push_str(p);
        }
        s
    }

    /// The frame text for one recipient in pieces, given its `seq` as
    /// decimal text: written one after the other, they are [`Self::frame`].
    pub fn frame_parts<'a>(&'a self, seq: &'a str) -> [&'a str; 3] {
        [MESSAGE_PREFIX, seq, &self.tail]
    }

    /// When it was routed, in [`crate::metrics::monotonic_ns`].
    pub fn born(&self) -> u64 {
        self.born
    }

    /// Bytes this delivery holds (shared between recipients).
    pub fn size(&self) -> usize {
        self.tail.len()
    }
}

fn push_opt_str(t: &mut String, s: Option<&str>) {
    match s {
        None => t.push_str("null"),
        Some(s) => {
            // Names and session ids are plain ASCII by grammar, but escape
            // properly anyway: the host API accepts any string.
            let enc = serde_json::to_string(s).expect("strings are always serializable");
            t.push_str(&enc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes through the general path only.
    fn general(text: &str) -> MessageFrame {
        let mut t = String::from(" ");
        t.push_str(text);
        match ServerFrame::decode(&t).unwrap() {
            ServerFrame::Message(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn same(a: &MessageFrame, b: &MessageFrame) {
        assert_eq!(
            (
                a.seq,
                a.kind,
                &a.from,
                &a.from_session,
                &a.group,
                a.data.get(),
                a.ts
            ),
            (
                b.seq,
                b.kind,
                &b.from,
                &b.from_session,
                &b.group,
                b.data.get(),
                b.ts
            )
        );
    }

    #[test]
    fn the_fast_path_decodes_every_delivery_like_the_general_decoder() {
        let datas = [
            "null",
            "0",
            "-1.5e3",
            r#""plain""#,
            r#""with \"escapes\" and ,\"ts\":1}""#,
            r#"{"ts":5,"nested":{"ts":6}}"#,
            r#"[1,{"a":"b"},"ü ✓"]"#,
            r#"{"a":{"b":[true,false,null]}}"#,
        ];
        let senders = [
            (None, None),
            (Some("bob"), Some("s_0123")),
            (Some("a@b.c/d:e"), Some("s_x")),
        ];
        for kind in [
            DeliveryKind::Direct,
            DeliveryKind::Group,
            DeliveryKind::Broadcast,
        ] {
            for data in datas {
                for (from, session) in senders {
                    let group = (kind == DeliveryKind::Group).then_some("room-1");
                    let text = Delivery::new(kind, from, session, group, data, 1_767_225_600_123)
                        .frame(42);
                    let fast = decode_canonical_message(&text)
                        .unwrap_or_else(|| panic!("fast path refused {text}"));
                    same(&fast, &general(&text));
                }
            }
        }
    }

    #[test]
    fn anything_else_is_left_to_the_general_decoder() {
        let canonical =
            Delivery::new(DeliveryKind::Direct, Some("bob"), Some("s_1"), None, "1", 7).frame(3);
        for text in [
            canonical.replace(r#""from":"bob""#, r#""from":"b\u006fb""#),
            canonical.replace(r#","ts":7}"#, r#","ts":7 }"#),
            canonical.replace(r#","ts":7}"#, r#","ts":07}"#),
            canonical.replace(r#""data":1"#, r#""data": 1"#),
            canonical.replace(r#""kind":"direct""#, r#""kind":"other""#),
            canonical.replace(r#""data":1"#, r#""data":{"#),
            canonical.replace('}', r#","extra":1}"#),
        ] {
            assert!(decode_canonical_message(&text).is_none(), "{text}");
        }
        // The general decoder still reads the escaped form.
        let escaped = canonical.replace(r#""from":"bob""#, r#""from":"b\u006fb""#);
        assert_eq!(general(&escaped).from.as_deref(), Some("bob"));
    }
}
