//! `_native.Server`: an embedded relay. Payloads arrive as JSON text; host
//! callbacks (authentication, rpc methods, the `authorize` and `validate`
//! hooks) are Python functions the core calls in a blocking thread.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use zerorelay::auth::callback::{Answer, Credentials};
use zerorelay::auth::hooks::{JsonAuthorizer, JsonFn, JsonValidator};
use zerorelay::auth::Callback;
use zerorelay::error::{ErrorCode, ProtocolError};
use zerorelay::server::events::HostEventStream;
use zerorelay::server::{RpcContext, RpcResult};
use zerorelay::{Config, Relay};

use crate::runtime::{self, attach, Owner};
use crate::{error, json_arg};

type Serve = tokio::task::JoinHandle<zerorelay::Result<()>>;

/// An embedded relay server.
#[pyclass(frozen, module = "zerorelay._native")]
pub struct Server {
    relay: Relay,
    address: String,
    serve: Mutex<Option<Serve>>,
    owner: Owner,
}

/// The authenticator: `decide(credentials_json)` returns the answer as JSON
/// text (`{"user":…,"expires_in_ms":…}`), or `None` to refuse.
fn authenticator(decide: Py<PyAny>) -> Callback {
    let decide = Arc::new(decide);
    Callback::new(Arc::new(move |creds: Credentials| {
        let decide = decide.clone();
        Box::pin(async move {
            let creds = serde_json::to_string(&creds).expect("credentials are JSON");
            let asked = runtime::runtime().spawn_blocking(move || {
                attach(|py| {
                    let r = decide.bind(py).call1((creds,)).map_err(|e| e.to_string())?;
                    r.extract::<Option<String>>()
                        .map_err(|e| format!("the auth callback's answer: {e}"))
                })
                .unwrap_or_else(|| Err("the interpreter is exiting".into()))
            });
            match asked.await {
                Ok(Ok(None)) => Ok(None),
                Ok(Ok(Some(json))) => serde_json::from_str::<Answer>(&json)
                    .map(Some)
                    .map_err(|e| format!("the auth callback's answer: {e}")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(format!("the auth callback failed: {e}")),
            }
        })
    }))
}

/// A hook as the core's [`JsonFn`] (see `zerorelay::auth::hooks`):
/// `hook(call_json)` returns the answer as JSON text; an exception is the
/// hook failing.
fn json_fn(hook: Py<PyAny>) -> JsonFn {
    let hook = Arc::new(hook);
    Arc::new(move |call: String| {
        let hook = hook.clone();
        Box::pin(async move {
            let asked = runtime::runtime().spawn_blocking(move || {
                attach(|py| {
                    let r = hook
                        .bind(py)
                        .call1((call,))
                        .and_then(|r| r.extract::<String>());
                    r.map_err(|e| e.to_string())
                })
                .unwrap_or_else(|| Err("the interpreter is exiting".into()))
            });
            asked
                .await
                .unwrap_or_else(|e| Err(format!("the hook's thread failed: {e}")))
        })
    })
}

/// An rpc method: `handler(session, user, arg_json)` returns the result as
/// JSON text; an exception with a protocol `code` is that error.
async fn call_rpc(handler: Arc<Py<PyAny>>, ctx: RpcContext, arg: serde_json::Value) -> RpcResult {
    let arg = arg.to_string();
    let asked = runtime::runtime().spawn_blocking(move || {
        attach(|py| {
            let r = handler.bind(py).call1((ctx.session, ctx.user, arg));
            match r.and_then(|v| v.extract::<String>()) {
                Ok(text) => serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                    ProtocolError::new(
                        ErrorCode::Internal,
                        format!("the rpc handler returned non-JSON: {e}"),
                    )
                }),
                Err(e) => Err(error::to_protocol(py, &e)),
            }
        })
        .unwrap_or_else(|| {
            Err(ProtocolError::new(
                ErrorCode::Internal,
                "the server is shutting down",
            ))
        })
    });
    asked.await.unwrap_or_else(|_| {
        Err(ProtocolError::new(
            ErrorCode::Internal,
            "the rpc handler failed",
        ))
    })
}

impl Server {
    fn check(&self) -> PyResult<()> {
        if self.owner.is_here() {
            Ok(())
        } else {
            Err(error::forked())
        }
    }
}

#[pymethods]
impl Server {
    /// Starts a relay from a configuration (JSON with the sections and keys
    /// of the TOML file) and binds `server.listen` (port 0: any free port).
    /// `authorize` is the relay's authorizer and `validate` maps group
    /// patterns to validation hooks, in order; both take and return JSON
    /// text (see `zerorelay::auth::hooks`).
    #[staticmethod]
    #[pyo3(signature = (config_json, auth=None, rpc=None, authorize=None, validate=None))]
    fn start(
        py: Python<'_>,
        config_json: &str,
        auth: Option<Py<PyAny>>,
        rpc: Option<Bound<'_, PyDict>>,
        authorize: Option<Py<PyAny>>,
        validate: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let config: Config = if config_json.trim().is_empty() {
            Config::default()
        } else {
            serde_json::from_str(config_json).map_err(|e| error::invalid(format!("config: {e}")))?
        };
        let mut methods = Vec::new();
        if let Some(rpc) = rpc {
            for (name, handler) in rpc.iter() {
                methods.push((name.extract::<String>()?, Arc::new(handler.unbind())));
            }
        }
        let mut validators = Vec::new();
        if let Some(validate) = validate {
            for (pattern, hook) in validate.iter() {
                validators.push((pattern.extract::<String>()?, hook.unbind()));
            }
        }
        let started = runtime::block_on(py, async move {
            let mut builder = Relay::builder(config);
            if let Some(decide) = auth {
                builder = builder.authenticator(authenticator(decide));
            }
            if let Some(hook) = authorize {
                builder = builder.authorizer(JsonAuthorizer(json_fn(hook)));
            }
            for (pattern, hook) in validators {
                builder = builder.validator(pattern, JsonValidator(json_fn(hook)));
            }
            for (name, handler) in methods {
                builder = builder.rpc(name, move |ctx, arg| call_rpc(handler.clone(), ctx, arg));
            }
            let relay = builder.build()?;
            let (bound, serve) = relay.spawn().await?;
            Ok::<_, zerorelay::Error>((relay, bound, serve))
        })?;
        let (relay, bound, serve) = started.map_err(error::server)?;
        Ok(Server {
            relay,
            address: bound.to_string(),
            serve: Mutex::new(Some(serve)),
            owner: Owner::here(),
        })
    }

    /// The bound address, `host:port`.
    #[getter]
    fn address(&self) -> &str {
        &self.address
    }

    /// Publishes JSON `data_json` to a group; returns the sessions reached.
    fn publish(&self, group: &str, data_json: String) -> PyResult<usize> {
        self.check()?;
        self.relay
            .publish(group, &json_arg(data_json, "data")?)
            .map_err(error::server)
    }

    /// Sends to every session of a user (`not_found` when none); returns
    /// the sessions reached.
    fn send_to_user(&self, user: &str, data_json: String) -> PyResult<usize> {
        self.check()?;
        self.relay
            .send_to_user(user, &json_arg(data_json, "data")?)
            .map_err(error::server)
    }

    /// Sends to one session (`not_found` when it does not exist).
    fn send_to_session(&self, session: &str, data_json: String) -> PyResult<()> {
        self.check()?;
        self.relay
            .send_to_session(session, &json_arg(data_json, "data")?)
            .map_err(error::server)
    }

    /// Broadcasts to every session; returns the sessions reached.
    fn broadcast(&self, data_json: String) -> PyResult<usize> {
        self.check()?;
        self.relay
            .broadcast(&json_arg(data_json, "data")?)
            .map_err(error::server)
    }

    /// Ends a session (close 4005, not resumable); whether it existed.
    fn disconnect(&self, session: &str) -> PyResult<bool> {
        self.check()?;
        Ok(self.relay.disconnect(session))
    }

    /// Revokes a session (close 4006, not resumable); whether it existed.
    fn revoke_session(&self, session: &str) -> PyResult<bool> {
        self.check()?;
        Ok(self.relay.revoke_session(session))
    }

    /// Revokes every session of a user (close 4006); how many were ended.
    fn revoke_user(&self, user: &str) -> PyResult<usize> {
        self.check()?;
        Ok(self.relay.revoke_user(user))
    }

    /// Drops a session's connection as a network failure would (the client
    /// resumes); whether a connection was attached.
    fn drop_connection(&self, session: &str) -> PyResult<bool> {
        self.check()?;
        Ok(self.relay.drop_connection(session))
    }

    /// The sessions, as a JSON array.
    fn sessions(&self) -> PyResult<String> {
        self.check()?;
        Ok(serde_json::to_string(&self.relay.sessions()).expect("sessions are JSON"))
    }

    /// The non-empty groups, as a JSON array.
    fn groups(&self) -> PyResult<String> {
        self.check()?;
        Ok(serde_json::to_string(&self.relay.groups()).expect("groups are JSON"))
    }

    /// Who is in a group, as a JSON object.
    fn presence(&self, group: &str) -> PyResult<String> {
        self.check()?;
        let p = self.relay.presence(group).map_err(error::server)?;
        Ok(serde_json::to_string(&p).expect("presence is JSON"))
    }

    /// The counters, as a JSON object.
    fn stats(&self) -> PyResult<String> {
        self.check()?;
        Ok(serde_json::to_string(&self.relay.stats()).expect("stats are JSON"))
    }

    /// Whether the server was closed.
    #[getter]
    fn closed(&self) -> bool {
        !self.owner.is_here() || self.relay.is_shut_down()
    }

    /// Graceful shutdown (stop accepting, flush, close clients with 1001,
    /// wait); an awaitable.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let relay = self.relay.clone();
        let serve = self.take_serve();
        let here = self.owner.is_here();
        runtime::future_into_py(py, async move {
            if !here {
                return Ok(());
            }
            relay.shutdown().await;
            if let Some(t) = serve {
                let _ = t.await;
            }
            Ok(())
        })
    }

    /// [`Server::close`], blocking (GIL released), at most `timeout_ms`
    /// when given.
    #[pyo3(signature = (timeout_ms=None))]
    fn close_blocking(&self, py: Python<'_>, timeout_ms: Option<u64>) -> PyResult<()> {
        if !self.owner.is_here() {
            return Ok(());
        }
        let relay = self.relay.clone();
        let serve = self.take_serve();
        let stop = async move {
            relay.shutdown().await;
            if let Some(t) = serve {
                let _ = t.await;
            }
        };
        runtime::block_on(py, async move {
            match timeout_ms {
                Some(ms) => {
                    let _ = tokio::time::timeout(Duration::from_millis(ms), stop).await;
                }
                None => stop.await,
            }
        })
    }

    /// Stops the relay without waiting for anything, for interpreter exit:
    /// it stops accepting and each connection is told to close (1001), but
    /// neither the drain (`server.shutdown_grace_ms`) nor a client's answer
    /// is waited for; what is still open ends with the process.
    fn stop_now(&self, py: Python<'_>) -> PyResult<()> {
        if !self.owner.is_here() {
            return Ok(());
        }
        let relay = self.relay.clone();
        drop(self.take_serve());
        // `shutdown` signals on its first poll and then waits for the
        // drain; a timeout polls a future before it looks at the clock, so
        // a zero one signals and gives the wait up.
        runtime::block_on(py, async move {
            let _ = tokio::time::timeout(Duration::ZERO, relay.shutdown()).await;
        })
    }

    /// Subscribes to what happens to sessions from now on (see
    /// [`ServerEvents`]).
    fn events(&self) -> ServerEvents {
        ServerEvents {
            stream: Arc::new(tokio::sync::Mutex::new(self.relay.event_stream())),
        }
    }

    fn __repr__(&self) -> String {
        format!("<zerorelay._native.Server {}>", self.address)
    }
}

/// A subscription to a server's session events: batches of JSON events
/// (`connected`, `disconnected`, `ended`, `lagged`), ending when the server
/// shuts down.
#[pyclass(frozen, module = "zerorelay._native")]
pub struct ServerEvents {
    stream: Arc<tokio::sync::Mutex<HostEventStream>>,
}

#[pymethods]
impl ServerEvents {
    /// An awaitable of the next batch as a JSON array, or None once the
    /// server is shutting down.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stream = self.stream.clone();
        runtime::future_into_py(py, async move {
            Ok(stream.lock().await.next_json_batch(1024).await)
        })
    }

    /// The next batch, waiting at most `timeout_ms` (GIL released):
    /// `(False, None)` on timeout, `(True, None)` once the server is
    /// shutting down, `(False, batch)` otherwise.
    fn next_batch_blocking(
        &self,
        py: Python<'_>,
        timeout_ms: u64,
    ) -> PyResult<(bool, Option<String>)> {
        let stream = self.stream.clone();
        runtime::block_on(py, async move {
            let mut s = stream.lock().await;
            match tokio::time::timeout(Duration::from_millis(timeout_ms), s.next_json_batch(1024))
                .await
            {
                Ok(None) => (true, None),
                Ok(Some(b)) => (false, Some(b)),
                Err(_) => (false, None),
            }
        })
    }
}

impl Server {
    /// The serving task, once (later closes only wait for the shutdown).
    /// `None` in a forked child, where the task does not exist.
    fn take_serve(&self) -> Option<Serve> {
        let serve = self.serve.lock().unwrap_or_else(|e| e.into_inner()).take();
        if self.owner.is_here() {
            serve
        } else {
            std::mem::forget(serve);
            None
        }
    }
}
