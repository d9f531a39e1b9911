//! The embedded relay, with optional JavaScript functions: the auth
//! callback, RPC methods, and the `authorize` and `validate` hooks (JSON in,
//! JSON out: the core's [`zerorelay::auth::hooks`] decides what they mean).

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;
use serde_json::value::RawValue;

use zerorelay::auth::callback::{Answer, Callback, Decide};
use zerorelay::auth::hooks::{JsonAuthorizer, JsonFn, JsonValidator};
use zerorelay::server::events::HostEventStream;
use zerorelay::{Config, ErrorCode, ProtocolError, Relay, RpcContext};

use crate::error::{self, Result};
use crate::{ask, JsonCallback};

type ServeTask = tokio::task::JoinHandle<zerorelay::Result<()>>;

/// A running relay.
#[napi]
pub struct NativeServer {
    relay: Relay,
    address: String,
    task: Arc<Mutex<Option<ServeTask>>>,
    /// Subscribed at the first `nextEvents` call (the JavaScript layer makes
    /// it when the first listener is added).
    host_events: Arc<tokio::sync::Mutex<Option<HostEventStream>>>,
}

/// What the JavaScript layer answers for an auth callback:
/// `{"allow":{"user":…,"expiresInMs":…}}`, `{"allow":null}` (refused) or
/// `{"error":"…"}` (the callback threw).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthReply {
    #[serde(default)]
    allow: Option<Answer>,
    #[serde(default)]
    error: Option<String>,
}

fn decide(f: JsonCallback) -> Decide {
    let f = Arc::new(f);
    Arc::new(move |credentials| {
        let f = f.clone();
        Box::pin(async move {
            let arg = serde_json::to_string(&credentials).expect("credentials are JSON");
            let answer = ask(&f, arg).await?;
            let r: AuthReply = serde_json::from_str(&answer)
                .map_err(|e| format!("the auth callback answered {answer:?}: {e}"))?;
            match r.error {
                Some(e) => Err(e),
                None => Ok(r.allow),
            }
        })
    })
}

/// What the JavaScript layer answers for an RPC call: `{"ok":result}` or
/// `{"error":{"code":…,"message":…}}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RpcReply {
    #[serde(default)]
    ok: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<RpcError>,
}

#[derive(serde::Deserialize)]
struct RpcError {
    code: String,
    message: String,
}

async fn call_rpc(
    f: Arc<JsonCallback>,
    method: String,
    ctx: RpcContext,
    data: serde_json::Value,
) -> zerorelay::server::RpcResult {
    let arg = serde_json::json!({
        "method": method,
        "session": ctx.session,
        "user": ctx.user,
        "data": data,
    });
    let failed = |m: String| {
        tracing::warn!(method = %method, error = %m, "An RPC handler failed.");
        ProtocolError::new(ErrorCode::Internal, "the RPC handler failed")
    };
    let answer = ask(&f, arg.to_string()).await.map_err(failed)?;
    let r: RpcReply = serde_json::from_str(&answer)
        .map_err(|e| failed(format!("it answered {answer:?}: {e}")))?;
    match r.error {
        Some(e) => Err(ProtocolError::new(
            ErrorCode::parse(&e.code).unwrap_or(ErrorCode::Internal),
            e.message,
        )),
        None => Ok(r.ok.unwrap_or(serde_json::Value::Null)),
    }
}

/// A JavaScript hook as the core's [`JsonFn`]: the call's JSON in, the
/// answer's JSON out; a rejected Promise is the hook failing.
fn json_fn(f: JsonCallback) -> JsonFn {
    let f = Arc::new(f);
    Arc::new(move |call| {
        let f = f.clone();
        Box::pin(async move { ask(&f, call).await })
    })
}

fn data(json: &str) -> Result<Box<RawValue>> {
    RawValue::from_string(json.to_owned()).map_err(|e| error::invalid(format!("data: {e}")))
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Starts a relay from a configuration (JSON with the sections and keys of
/// the TOML file; `server.listen` with port 0 picks a free port).
/// `rpcMethods` are the RPC methods `rpc` answers (one JavaScript function
/// dispatches them all). `authorize` is the relay's authorizer and
/// `validators[i]` the validation hook for groups matching
/// `validatePatterns[i]`, in that order (see `zerorelay::auth::hooks` for
/// the JSON they are shown and answer).
#[napi(
    ts_args_type = "configJson: string, auth: ((credentialsJson: string) => Promise<string>) | undefined | null, rpcMethods: string[], rpc: ((callJson: string) => Promise<string>) | undefined | null, authorize: ((callJson: string) => Promise<string>) | undefined | null, validatePatterns: string[], validators: Array<(callJson: string) => Promise<string>>"
)]
pub async fn start_server(
    config_json: String,
    auth: Option<JsonCallback>,
    rpc_methods: Vec<String>,
    rpc: Option<JsonCallback>,
    authorize: Option<JsonCallback>,
    validate_patterns: Vec<String>,
    validators: Vec<JsonCallback>,
) -> Result<NativeServer> {
    if validate_patterns.len() != validators.len() {
        return Err(error::invalid(format!(
            "{} validate patterns for {} validators",
            validate_patterns.len(),
            validators.len()
        )));
    }
    let config: Config = if config_json.trim().is_empty() {
        Config::default()
    } else {
        serde_json::from_str(&config_json).map_err(|e| error::invalid(format!("config: {e}")))?
    };
    let mut builder = Relay::builder(config);
    if let Some(f) = auth {
        builder = builder.authenticator(Callback::new(decide(f)));
    }
    if let Some(f) = rpc {
        let f = Arc::new(f);
        for method in rpc_methods {
            let f = f.clone();
            let name = method.clone();
            builder = builder.rpc(method, move |ctx, data| {
                call_rpc(f.clone(), name.clone(), ctx, data)
            });
        }
    }
    if let Some(f) = authorize {
        builder = builder.authorizer(JsonAuthorizer(json_fn(f)));
    }
    for (pattern, f) in validate_patterns.into_iter().zip(validators) {
        builder = builder.validator(pattern, JsonValidator(json_fn(f)));
    }
    let relay = builder.build().map_err(error::relay)?;
    let (addr, task) = relay.spawn().await.map_err(error::relay)?;
    Ok(NativeServer {
        relay,
        address: addr.to_string(),
        task: Arc::new(Mutex::new(Some(task))),
        host_events: Arc::default(),
    })
}

#[napi]
impl NativeServer {
    /// The bound address, `host:port`.
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Publishes JSON data to a group; returns the sessions reached.
    #[napi]
    pub fn publish(&self, group: String, data_json: String) -> Result<u32> {
        let n = self.relay.publish(&group, &data(&data_json)?);
        n.map(count).map_err(error::relay)
    }

    /// Sends JSON data to every session of a user (`not_found` when none).
    #[napi]
    pub fn send_to_user(&self, user: String, data_json: String) -> Result<u32> {
        let n = self.relay.send_to_user(&user, &data(&data_json)?);
        n.map(count).map_err(error::relay)
    }

    /// Sends JSON data to one session (`not_found` when it does not exist).
    #[napi]
    pub fn send_to_session(&self, session: String, data_json: String) -> Result<()> {
        let r = self.relay.send_to_session(&session, &data(&data_json)?);
        r.map_err(error::relay)
    }

    /// Broadcasts JSON data to every session; returns the sessions reached.
    #[napi]
    pub fn broadcast(&self, data_json: String) -> Result<u32> {
        let n = self.relay.broadcast(&data(&data_json)?);
        n.map(count).map_err(error::relay)
    }

    /// Ends a session (close 4005); false when there is no such session.
    #[napi]
    pub fn disconnect(&self, session: String) -> bool {
        self.relay.disconnect(&session)
    }

    /// Revokes a session (close 4006, not resumable); false when there is no
    /// such session.
    #[napi]
    pub fn revoke_session(&self, session: String) -> bool {
        self.relay.revoke_session(&session)
    }

    /// Revokes every session of a user (close 4006); how many were ended.
    #[napi]
    pub fn revoke_user(&self, user: String) -> u32 {
        count(self.relay.revoke_user(&user))
    }

    /// Cuts a session's connection without ending the session, as a network
    /// failure would (the client resumes); false when it is not connected.
    #[napi]
    pub fn drop_connection(&self, session: String) -> bool {
        self.relay.drop_connection(&session)
    }

    /// The sessions, as JSON.
    #[napi]
    pub fn sessions(&self) -> String {
        serde_json::to_string(&self.relay.sessions()).expect("sessions are JSON")
    }

    /// The groups, as JSON.
    #[napi]
    pub fn groups(&self) -> String {
        serde_json::to_string(&self.relay.groups()).expect("groups are JSON")
    }

    /// Who is in a group, as JSON: `{group, members: [{user, sessions}],
    /// anonymous}`.
    #[napi]
    pub fn presence(&self, group: String) -> Result<String> {
        let p = self.relay.presence(&group).map_err(error::relay)?;
        Ok(serde_json::to_string(&p).expect("presence is JSON"))
    }

    /// The counters, as JSON.
    #[napi]
    pub fn stats(&self) -> String {
        serde_json::to_string(&self.relay.stats()).expect("stats are JSON")
    }

    /// Shuts down gracefully (clients get 1001) and resolves when every
    /// connection has closed.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let relay = self.relay.clone();
        let task = self.task.clone();
        env.spawn_future(async move {
            relay.shutdown().await;
            let t = task.lock().expect("not poisoned").take();
            if let Some(t) = t {
                let _ = t.await;
            }
            Ok(())
        })
        .map_err(error::internal)
    }

    /// Waits for what happens to sessions and resolves to a JSON array of
    /// events (`connected`, `disconnected`, `ended`, and `lagged` with the
    /// number missed when JavaScript fell behind), or to `null` once the
    /// relay is shutting down. Events before the first call are not kept.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn next_events<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Option<String>>> {
        let relay = self.relay.clone();
        let slot = self.host_events.clone();
        // Subscribe now, not when the future first runs, so that a client
        // connecting right after this call is reported.
        if let Ok(mut s) = slot.try_lock() {
            s.get_or_insert_with(|| relay.event_stream());
        }
        env.spawn_future(async move {
            let mut slot = slot.lock().await;
            let stream = slot.get_or_insert_with(|| relay.event_stream());
            Ok(stream.next_json_batch(1024).await)
        })
        .map_err(error::internal)
    }

    /// Resolves once the relay is shutting down. While it is pending it
    /// keeps the process alive, as a listening `http.Server` does.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn closed<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let relay = self.relay.clone();
        env.spawn_future(async move {
            relay.shutdown_requested().await;
            Ok(())
        })
        .map_err(error::internal)
    }
}
