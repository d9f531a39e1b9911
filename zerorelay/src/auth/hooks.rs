//! The host hooks the language bindings plug in, as JSON in and JSON out,
//! so that each binding only converts a string to its language's function
//! call and back (one contract, written once, for Node and Python alike).
//!
//! - [`JsonAuthorizer`]: an `authorize` function. It is shown
//!   `{"action":"join","resource":"room-1","user":"alice","roles":[…],"claims":{…}}`
//!   (`resource` is `null` for `broadcast`; for `send` it is `user:<name>`
//!   or `session:<id>`) and answers `{"allow":true}` or
//!   `{"allow":false,"message":"…"}`.
//! - [`JsonValidator`]: a `validate` function for a group pattern. It is
//!   shown `{"group":…,"data":<the payload>,"user":…,"session":…,"claims":…}`
//!   and answers `{"accept":true}`, `{"reject":{"code":"bad_request","message":"…"}}`
//!   or `{"rewrite":<the payload to route instead>}` (which may be any JSON
//!   value, `null` included).
//!
//! A function that throws or answers something else fails the request with
//! `internal` (and is logged); it never takes the connection down.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Action, Authorizer, BoxFuture, Identity};
use crate::error::{ErrorCode, ProtocolError};
use crate::protocol::Target;
use crate::validate::{Payload, Validator, Verdict};

/// A host function over JSON text: the call in, eventually the answer out
/// (or why it failed: it threw, or the runtime is gone).
pub type JsonFn = Arc<dyn Fn(String) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// What an `authorize` function is shown.
#[derive(Debug, Serialize)]
pub struct AuthorizeCall<'a> {
    /// `join`, `publish`, `send`, `broadcast`, `rpc` or `presence`.
    pub action: &'static str,
    /// The group, recipient (`user:…` / `session:…`) or method.
    pub resource: Option<String>,
    /// The connection's user.
    pub user: Option<&'a str>,
    /// The roles its credentials named (empty when they named none, in
    /// which case `auth.default_roles` applied).
    pub roles: &'a [String],
    /// Its token's claims.
    pub claims: &'a serde_json::Value,
}

impl<'a> AuthorizeCall<'a> {
    /// Describes `action` by `identity`.
    pub fn new(identity: &'a Identity, action: &Action<'_>) -> Self {
        let (name, resource) = match action {
            Action::Join { group } => ("join", Some(group.to_string())),
            Action::Publish { group } => ("publish", Some(group.to_string())),
            Action::Presence { group } => ("presence", Some(group.to_string())),
            Action::Send { target } => (
                "send",
                Some(match target {
                    Target::User(u) => format!("user:{u}"),
                    Target::Session(s) => format!("session:{s}"),
                }),
            ),
            Action::Broadcast => ("broadcast", None),
            Action::Rpc { method } => ("rpc", Some(method.to_string())),
        };
        AuthorizeCall {
            action: name,
            resource,
            user: identity.user.as_deref(),
            roles: &identity.roles,
            claims: &identity.claims,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeAnswer {
    allow: bool,
    #[serde(default)]
    message: Option<String>,
}

fn failed(hook: &str, why: String) -> ProtocolError {
    tracing::warn!(hook, error = %why, "A host hook failed; the request fails with internal.");
    ProtocolError::new(ErrorCode::Internal, format!("the {hook} hook failed"))
}

/// An [`Authorizer`] over a JSON host function (see the module).
pub struct JsonAuthorizer(pub JsonFn);

impl Authorizer for JsonAuthorizer {
    fn authorize<'a>(
        &'a self,
        identity: &'a Identity,
        action: Action<'a>,
    ) -> BoxFuture<'a, Result<(), ProtocolError>> {
        let call = serde_json::to_string(&AuthorizeCall::new(identity, &action))
            .expect("an authorize call is JSON");
        let asked = (self.0)(call);
        Box::pin(async move {
            let text = asked.await.map_err(|e| failed("authorize", e))?;
            let a: AuthorizeAnswer = serde_json::from_str(&text)
                .map_err(|e| failed("authorize", format!("it answered {text:?}: {e}")))?;
            if a.allow {
                Ok(())
            } else {
                Err(ProtocolError::new(
                    ErrorCode::Forbidden,
                    a.message
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| "refused by the host".to_owned()),
                ))
            }
        })
    }
}

#[derive(Serialize)]
struct ValidateCall<'a> {
    group: &'a str,
    data: &'a RawValue,
    user: Option<&'a str>,
    session: &'a str,
    claims: &'a serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateAnswer {
    #[serde(default)]
    accept: Option<bool>,
    #[serde(default)]
    reject: Option<Rejection>,
    /// Present (even as `null`) means a rewrite.
    #[serde(default, deserialize_with = "present")]
    rewrite: Option<Box<RawValue>>,
}

/// A field that is present, whatever its value (`null` too).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rejection {
    code: String,
    message: String,
}

/// A [`Validator`] over a JSON host function (see the module).
pub struct JsonValidator(pub JsonFn);

impl Validator for JsonValidator {
    fn validate<'a>(&'a self, p: Payload<'a>) -> BoxFuture<'a, Verdict> {
        let call = serde_json::to_string(&ValidateCall {
            group: p.group,
            data: p.data,
            user: p.user,
            session: p.session,
            claims: p.claims,
        })
        .expect("a validate call is JSON");
        let asked = (self.0)(call);
        Box::pin(async move {
            let answer = asked.await.and_then(|text| {
                serde_json::from_str::<ValidateAnswer>(&text)
                    .map_err(|e| format!("it answered {text:?}: {e}"))
            });
            match answer {
                Err(e) => Verdict::Reject(failed("validate", e)),
                Ok(ValidateAnswer {
                    reject: Some(r), ..
                }) => Verdict::Reject(ProtocolError::new(
                    ErrorCode::parse(&r.code).unwrap_or(ErrorCode::BadRequest),
                    r.message,
                )),
                Ok(ValidateAnswer {
                    rewrite: Some(data),
                    ..
                }) => Verdict::Rewrite(data),
                Ok(ValidateAnswer {
                    accept: Some(false),
                    ..
                }) => Verdict::Reject(ProtocolError::new(
                    ErrorCode::BadRequest,
                    "the payload was refused by the host",
                )),
                Ok(_) => Verdict::Accept,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Target;

    fn answering(text: &'static str) -> JsonFn {
        Arc::new(move |_| Box::pin(async move { Ok(text.to_owned()) }))
    }

    #[tokio::test]
    async fn authorize_answers_allow_refuse_and_fail() {
        let who = Identity {
            roles: vec!["member".into()],
            ..Identity::user("alice")
        };
        let seen = Arc::new(parking_lot::Mutex::new(String::new()));
        let s = seen.clone();
        let f: JsonFn = Arc::new(move |call| {
            *s.lock() = call;
            Box::pin(async { Ok(r#"{"allow":true}"#.to_owned()) })
        });
        let bob = Target::User("bob".into());
        JsonAuthorizer(f)
            .authorize(&who, Action::Send { target: &bob })
            .await
            .unwrap();
        let call: serde_json::Value = serde_json::from_str(&seen.lock()).unwrap();
        assert_eq!(call["action"], "send");
        assert_eq!(call["resource"], "user:bob");
        assert_eq!(call["roles"][0], "member");
        let e = JsonAuthorizer(answering(r#"{"allow":false,"message":"not today"}"#))
            .authorize(&who, Action::Broadcast)
            .await
            .unwrap_err();
        assert_eq!((e.code, &*e.message), (ErrorCode::Forbidden, "not today"));
        for bad in [r#"{"allowed":true}"#, "yes", ""] {
            let f: JsonFn = Arc::new(move |_| Box::pin(async move { Ok(bad.to_owned()) }));
            let e = JsonAuthorizer(f)
                .authorize(&who, Action::Broadcast)
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::Internal, "{bad}");
        }
    }

    #[tokio::test]
    async fn validate_answers_accept_reject_rewrite_and_fail() {
        let data = RawValue::from_string(r#"{"t":"<b>"}"#.into()).unwrap();
        let claims = serde_json::Value::Null;
        let p = Payload {
            group: "chat-1",
            data: &data,
            user: Some("alice"),
            session: "s_1",
            claims: &claims,
        };
        let v = |t: &'static str| JsonValidator(answering(t));
        assert!(matches!(
            v(r#"{"accept":true}"#).validate(p).await,
            Verdict::Accept
        ));
        match v(r#"{"reject":{"code":"forbidden","message":"no"}}"#)
            .validate(p)
            .await
        {
            Verdict::Reject(e) => assert_eq!((e.code, &*e.message), (ErrorCode::Forbidden, "no")),
            other => panic!("{other:?}"),
        }
        match v(r#"{"rewrite":{"t":"b"}}"#).validate(p).await {
            Verdict::Rewrite(d) => assert_eq!(d.get(), r#"{"t":"b"}"#),
            other => panic!("{other:?}"),
        }
        match v(r#"{"rewrite":null}"#).validate(p).await {
            Verdict::Rewrite(d) => assert_eq!(d.get(), "null"),
            other => panic!("{other:?}"),
        }
        match v("nonsense").validate(p).await {
            Verdict::Reject(e) => assert_eq!(e.code, ErrorCode::Internal),
            other => panic!("{other:?}"),
        }
    }
}
