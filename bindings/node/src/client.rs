//! The client: a handle over the core's [`Client`], one method per request
//! the application makes (each builds the core's [`Request`], payloads
//! crossing as JSON text), and events pulled in batches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use zerorelay::client::json::events_to_json_array;
use zerorelay::client::{
    Client, ClientError, ClientOptions, Event, Events, Reply, Request, Retry, Status, TokenProvider,
};
use zerorelay::protocol::Target;

use crate::error::{self, Result};
use crate::{ask, JsonCallback};

/// The most events one `nextEvents` call returns.
const BATCH: usize = 4096;

/// A connected (or connecting) client.
#[napi]
pub struct NativeClient {
    client: Client,
    events: Arc<tokio::sync::Mutex<Events>>,
    aborts: Arc<Mutex<HashMap<u32, oneshot::Sender<()>>>>,
}

/// What a token provider answers (the JavaScript layer's JSON).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenAnswer {
    token: Option<String>,
    #[serde(rename = "expiresInMs")]
    expires_in_ms: Option<u64>,
    error: Option<String>,
}

fn token_provider(f: JsonCallback) -> TokenProvider {
    let f = Arc::new(f);
    Arc::new(move || {
        let f = f.clone();
        Box::pin(async move {
            let answer = ask(&f, String::new()).await?;
            let a: TokenAnswer = serde_json::from_str(&answer)
                .map_err(|e| format!("the token provider answered {answer:?}: {e}"))?;
            match (a.token, a.error) {
                (_, Some(e)) => Err(e),
                (Some(t), None) => Ok((t, a.expires_in_ms.map(Duration::from_millis))),
                (None, None) => Err("the token provider returned no token".to_owned()),
            }
        })
    })
}

/// Starts a client. With `wait`, resolves once the first `welcome` arrived
/// (or rejects with the reason the server refused); without it, resolves at
/// once and requests wait in the offline queue until the client connects.
#[napi(
    ts_args_type = "url: string, optionsJson: string, tokenProvider: ((arg: string) => Promise<string>) | undefined | null, wait: boolean"
)]
pub async fn connect(
    url: String,
    options_json: String,
    token_provider: Option<JsonCallback>,
    wait: bool,
) -> Result<NativeClient> {
    let options = ClientOptions::from_json(&options_json).map_err(error::client)?;
    let tokens = token_provider.map(self::token_provider);
    let (client, events) = if wait {
        Client::connect_with(&url, options, tokens).await
    } else {
        Client::start(&url, options, tokens)
    }
    .map_err(error::client)?;
    Ok(NativeClient {
        client,
        events: Arc::new(tokio::sync::Mutex::new(events)),
        aborts: Arc::default(),
    })
}

/// A JSON payload from JavaScript (`JSON.stringify`'s output).
fn payload(what: &str, json: String) -> Result<Box<RawValue>> {
    RawValue::from_string(json).map_err(|e| error::invalid(format!("{what} is not JSON: {e}")))
}

/// The `resend` flag of publish, broadcast, send and rpc as the engine's
/// [`Retry`]: re-send the request if the session is lost after it may have
/// been routed, instead of failing it with `unknown_outcome`.
fn retry(resend: bool) -> Retry {
    if resend {
        Retry::Resend
    } else {
        Retry::AtMostOnce
    }
}

impl NativeClient {
    /// Hands a request to the engine and returns a Promise of its answer:
    /// the result as JSON text (rpc, presence), `null` for a plain `ok`, or
    /// a rejection with the coded error. `abort_id`, when given, lets
    /// [`NativeClient::abort`] cancel it.
    fn submit<'env>(
        &self,
        env: &'env Env,
        req: Request,
        retry: Retry,
        abort_id: Option<u32>,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        let pending = self
            .client
            .submit_now_with(req, retry)
            .map_err(error::client)?;
        let abort = abort_id.map(|id| {
            let (tx, rx) = oneshot::channel();
            self.aborts.lock().expect("not poisoned").insert(id, tx);
            (id, rx)
        });
        let aborts = self.aborts.clone();
        env.spawn_future(async move {
            let result = match abort {
                None => pending.await,
                Some((id, rx)) => {
                    let r = tokio::select! {
                        r = pending => r,
                        // Dropping `pending` cancels the request in the engine.
                        _ = rx => Err(ClientError::Cancelled),
                    };
                    aborts.lock().expect("not poisoned").remove(&id);
                    r
                }
            };
            match result.map_err(error::client)? {
                Reply::Ok => Ok(None),
                Reply::Result(data) => Ok(Some(String::from(Box::<str>::from(data)))),
            }
        })
        .map_err(error::internal)
    }
}

// The requests: each builds the core's `Request` and goes through
// `submit`. They are ordered as the calls are made; each resolves to `null`,
// or to the result's JSON text for `presence` and `rpc`, and rejects with a
// coded error (`[code] message`). `resend` (publish, broadcast, send, rpc)
// chooses `Retry::Resend`; `abortId`, when given, lets `abort` cancel it.
#[napi]
impl NativeClient {
    /// Joins a group (re-joined automatically if the session is lost);
    /// with `presence`, also told who joins and leaves it.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn join<'env>(
        &self,
        env: &'env Env,
        group: String,
        presence: bool,
        abort_id: Option<u32>,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        self.submit(
            env,
            Request::Join { group, presence },
            Retry::default(),
            abort_id,
        )
    }

    /// Leaves a group.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn leave<'env>(
        &self,
        env: &'env Env,
        group: String,
        abort_id: Option<u32>,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        self.submit(env, Request::Leave { group }, Retry::default(), abort_id)
    }

    /// Who is in a group: resolves to `{group, members, anonymous}` as JSON.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn presence<'env>(
        &self,
        env: &'env Env,
        group: String,
        abort_id: Option<u32>,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        self.submit(env, Request::Presence { group }, Retry::default(), abort_id)
    }

    /// Publishes JSON data to a group (to ourselves too with `echo`).
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn publish<'env>(
        &self,
        env: &'env Env,
        group: String,
        data_json: String,
        echo: bool,
        resend: bool,
        abort_id: Option<u32>,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        let data = payload("data", data_json)?;
        let req = Request::Publish { group, data, echo };
        self.submit(env, req, retry(resend), abort_id)
    }

    /// Broadcasts JSON data to every session (to ourselves too with `echo`).
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn broadcast<'env>(
        &self,
        env: &'env Env,
        data_json: String,
        echo: bool,
        resend: bool,
        abort_id: Option<u32>,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        let data = payload("data", data_json)?;
        let req = Request::Broadcast { data, echo };
        self.submit(env, req, retry(resend), abort_id)
    }

    /// Sends JSON data to every session of a user (but this one).
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn send_to_user<'env>(
        &self,
        env: &'env Env,
        user: String,
        data_json: String,
        resend: bool,
        abort_id: Option<u32>,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        let data = payload("data", data_json)?;
        let target = Target::User(user);
        let req = Request::Send { target, data };
        self.submit(env, req, retry(resend), abort_id)
    }

    /// Sends JSON data to one session.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn send_to_session<'env>(
        &self,
        env: &'env Env,
        session: String,
        data_json: String,
        resend: bool,
        abort_id: Option<u32>,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        let data = payload("data", data_json)?;
        let target = Target::Session(session);
        let req = Request::Send { target, data };
        self.submit(env, req, retry(resend), abort_id)
    }

    /// Calls a method the host registered with JSON data (none: `null`);
    /// resolves to its result as JSON.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn rpc<'env>(
        &self,
        env: &'env Env,
        method: String,
        data_json: Option<String>,
        resend: bool,
        abort_id: Option<u32>,
    ) -> Result<PromiseRaw<'env, Option<String>>> {
        let data = data_json.map(|d| payload("data", d)).transpose()?;
        let req = Request::Rpc { method, data };
        self.submit(env, req, retry(resend), abort_id)
    }

    /// Cancels the request started with this `abortId` (no-op when it is
    /// already finished): a queued request is then never sent.
    #[napi]
    pub fn abort(&self, abort_id: u32) {
        if let Some(tx) = self.aborts.lock().expect("not poisoned").remove(&abort_id) {
            let _ = tx.send(());
        }
    }

    /// Waits for events and resolves to a JSON array of them (up to 4,096
    /// at once), or to `null` once the client is closed and every event was
    /// read.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn next_events<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Option<String>>> {
        let events = self.events.clone();
        env.spawn_future(async move {
            let mut events = events.lock().await;
            let mut buf: Vec<Event> = Vec::new();
            if events.recv_many(&mut buf, BATCH).await == 0 {
                return Ok(None);
            }
            Ok(Some(events_to_json_array(&buf)))
        })
        .map_err(error::internal)
    }

    /// Closes cleanly (the session ends on the server); resolves when the
    /// client has finished.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let client = self.client.clone();
        env.spawn_future(async move {
            client.close().await;
            Ok(())
        })
        .map_err(error::internal)
    }

    /// `connecting`, `connected` or `closed`.
    #[napi(getter)]
    pub fn state(&self) -> String {
        match self.client.status() {
            Status::Connecting => "connecting",
            Status::Connected(_) => "connected",
            Status::Closed(_) => "closed",
        }
        .to_owned()
    }

    /// The current session id, while connected.
    #[napi(getter)]
    pub fn session(&self) -> Option<String> {
        match self.client.status() {
            Status::Connected(s) => Some(s),
            _ => None,
        }
    }
}
