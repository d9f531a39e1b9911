//! The JSON shapes every binding uses to talk to the engine, defined once.
//!
//! - A request is a client frame without `id` (`{"type":"publish",
//!   "group":"g","data":…}`), parsed by the protocol's own parser.
//! - Events are [`Event`]s serialized with their `type` tag.
//! - A finished request is `{"type":"reply","request":7,"ok":true,"data":…}`
//!   or `{"type":"reply","request":7,"ok":false,"error":{"code":…,"message":…}}`.

use serde::Serialize;
use serde_json::value::RawValue;

use super::engine::{Reply, Request};
use super::{ClientError, Event};
use crate::protocol::client::{parse_unnumbered, ClientFrame};
use crate::protocol::server::message_seq;

/// Parses a request from its JSON form.
pub fn request_from_json(json: &str) -> Result<Request, ClientError> {
    let frame = parse_unnumbered(json)
        .map_err(|e| ClientError::InvalidArgument(e.error.message.into_owned()))?;
    let owned = |d: &RawValue| d.to_owned();
    Ok(match frame {
        ClientFrame::Send { target, data, .. } => Request::Send {
            target,
            data: owned(data),
        },
        ClientFrame::Publish {
            group, data, echo, ..
        } => Request::Publish {
            group,
            data: owned(data),
            echo,
        },
        ClientFrame::Broadcast { data, echo, .. } => Request::Broadcast {
            data: owned(data),
            echo,
        },
        ClientFrame::Join {
            group, presence, ..
        } => Request::Join { group, presence },
        ClientFrame::Presence { group, .. } => Request::Presence { group },
        ClientFrame::Leave { group, .. } => Request::Leave { group },
        ClientFrame::Rpc { method, data, .. } => Request::Rpc {
            method,
            data: data.map(owned),
        },
        other => {
            return Err(ClientError::InvalidArgument(format!(
                "`{}` is not a request an application makes (the engine sends it itself)",
                other.type_name()
            )))
        }
    })
}

/// An event as JSON.
pub fn event_to_json(e: &Event) -> String {
    let mut s = String::new();
    write_event(e, &mut s);
    s
}

/// Appends an event's JSON to `out`. A message decoded from the wire is
/// passed on as the frame text the server sent (the event has the same
/// shape), without encoding it again.
///
/// A message event always starts `{"type":"message","seq":N,` (a frame in
/// another layout is encoded again), so that a binding whose JSON decoder
/// fails on one message's payload can still name its seq.
pub fn write_event(e: &Event, out: &mut String) {
    match e {
        Event::Message(m) if m.text.as_deref().and_then(message_seq) == Some(m.seq) => {
            out.push_str(m.text.as_deref().expect("checked"));
        }
        other => out.push_str(&serde_json::to_string(other).expect("events are JSON")),
    }
}

/// Events as one JSON array, the batch form the bindings hand across
/// their boundary (one crossing per batch).
pub fn events_to_json_array(events: &[Event]) -> String {
    let mut out = String::with_capacity(2 + events.len() * 128);
    out.push('[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_event(e, &mut out);
    }
    out.push(']');
    out
}

/// One event of a batch from [`events_to_json_array`], as text: its
/// `type`, its `seq` (messages, and errors about one message), and its JSON
/// text, which a binding decodes on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventText<'a> {
    /// The event's `type`.
    pub ty: String,
    /// The message's (or the message an error is about) seq.
    pub seq: Option<u64>,
    /// The event's exact JSON text.
    pub text: &'a str,
}

/// Splits an event batch into its events without decoding any payload (a
/// payload nests as deep as its sender made it): for a binding whose own
/// JSON decoder gives up on one event, so that it can decode the others and
/// report that one by its seq.
pub fn split_event_array(batch: &str) -> Result<Vec<EventText<'_>>, ClientError> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        ty: std::borrow::Cow<'a, str>,
        #[serde(default)]
        seq: Option<u64>,
    }
    let bad = |e: serde_json::Error| ClientError::InvalidArgument(format!("event batch: {e}"));
    let items: Vec<&RawValue> = serde_json::from_str(batch).map_err(bad)?;
    items
        .into_iter()
        .map(|raw| {
            let head: Head<'_> = serde_json::from_str(raw.get()).map_err(bad)?;
            Ok(EventText {
                ty: head.ty.into_owned(),
                seq: head.seq,
                text: raw.get(),
            })
        })
        .collect()
}

/// The error part of a reply.
#[derive(Serialize)]
pub struct ErrorJson<'a> {
    /// Stable code (protocol or client-side).
    pub code: &'a str,
    /// Message.
    pub message: String,
}

/// A finished request as JSON.
pub fn reply_to_json(request: u64, result: &Result<Reply, ClientError>) -> String {
    #[derive(Serialize)]
    struct ReplyJson<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        request: u64,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorJson<'a>>,
    }
    let (data, error) = match result {
        Ok(Reply::Ok) => (None, None),
        Ok(Reply::Result(d)) => (Some(&**d), None),
        Err(e) => (
            None,
            Some(ErrorJson {
                code: e.code(),
                message: match e {
                    ClientError::Server { message, .. } => message.clone(),
                    other => other.to_string(),
                },
            }),
        ),
    };
    serde_json::to_string(&ReplyJson {
        ty: "reply",
        request,
        ok: result.is_ok(),
        data,
        error,
    })
    .expect("replies are JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn requests_parse_from_frames_without_id() {
        assert!(matches!(
            request_from_json(r#"{"type":"publish","group":"g","data":[1],"echo":true}"#),
            Ok(Request::Publish { echo: true, .. })
        ));
        assert!(matches!(
            request_from_json(r#"{"type":"rpc","method":"m","data":{"a":1}}"#),
            Ok(Request::Rpc { .. })
        ));
        assert!(matches!(
            request_from_json(r#"{"type":"join","id":1,"group":"g"}"#),
            Err(ClientError::InvalidArgument(m)) if m.contains("must not carry an `id`")
        ));
    }

    #[test]
    fn frames_the_engine_owns_are_refused() {
        for f in [
            r#"{"type":"ack","seq":1}"#,
            r#"{"type":"hello","v":1}"#,
            r#"{"type":"ping"}"#,
        ] {
            assert!(
                matches!(request_from_json(f), Err(ClientError::InvalidArgument(_))),
                "{f}"
            );
        }
        assert!(matches!(
            request_from_json("nope"),
            Err(ClientError::InvalidArgument(_))
        ));
    }

    #[test]
    fn event_batches_are_json_arrays() {
        let events = [
            Event::Reconnecting {
                attempt: 1,
                delay_ms: 5,
            },
            Event::Closed {
                reason: "bye".into(),
                code: None,
            },
        ];
        assert_eq!(
            events_to_json_array(&events),
            r#"[{"type":"reconnecting","attempt":1,"delay_ms":5},{"type":"closed","reason":"bye"}]"#
        );
        assert_eq!(events_to_json_array(&[]), "[]");
    }

    #[test]
    fn a_batch_splits_into_its_events_whatever_their_payloads_hold() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let batch = format!(
            r#"[{{"type":"message","seq":7,"kind":"direct","data":{deep}}},{{"type":"closed","reason":"bye"}}]"#
        );
        let parts = split_event_array(&batch).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].ty.as_str(), parts[0].seq), ("message", Some(7)));
        assert!(parts[0].text.ends_with(&format!("{deep}}}")));
        assert_eq!(
            parts[1],
            EventText {
                ty: "closed".into(),
                seq: None,
                text: r#"{"type":"closed","reason":"bye"}"#
            }
        );
        assert!(split_event_array("[1").is_err());
        assert_eq!(split_event_array("[]").unwrap(), []);
    }

    #[test]
    fn replies_carry_data_or_a_coded_error() {
        let ok = reply_to_json(
            3,
            &Ok(Reply::Result(RawValue::from_string("[1]".into()).unwrap())),
        );
        assert_eq!(ok, r#"{"type":"reply","request":3,"ok":true,"data":[1]}"#);
        let err = reply_to_json(
            4,
            &Err(ClientError::Server {
                code: ErrorCode::NotFound,
                message: "no".into(),
            }),
        );
        assert_eq!(
            err,
            r#"{"type":"reply","request":4,"ok":false,"error":{"code":"not_found","message":"no"}}"#
        );
    }
}
