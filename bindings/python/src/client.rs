//! `_native.Client`: the engine's client handle. Requests go in through
//! typed methods (`join`, `publish`, …) that build the engine's
//! [`Request`]s, payloads as JSON text; the engine alone knows how they are
//! encoded on the wire. Events come out in batches, one JSON array per
//! crossing (messages as the server's frame text, untouched).

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use zerorelay::client::json::events_to_json_array;
use zerorelay::client::{
    Client as Engine, ClientError, ClientOptions, Event, Events, PendingReply, Reply, Request,
    Retry, Status, TokenProvider,
};
use zerorelay::protocol::Target;

use crate::runtime::{self, attach, Owner};
use crate::{error, json_arg};

/// Largest batch one crossing may carry.
const MAX_BATCH: usize = 4096;

/// A client of a relay: reconnects, resumes and queues by itself.
#[pyclass(frozen, module = "zerorelay._native")]
pub struct Client {
    engine: Engine,
    events: Arc<tokio::sync::Mutex<Pulled>>,
    owner: Owner,
}

/// The engine's events.
struct Pulled {
    rx: Events,
}

impl Pulled {
    /// Up to `max` events that are ready now.
    fn take_ready(&mut self, max: usize, buf: &mut Vec<Event>) {
        while buf.len() < max {
            match self.rx.try_recv() {
                Some(e) => buf.push(e),
                None => break,
            }
        }
    }

    /// Waits for at least one event (0: the client is closed and drained).
    async fn take(&mut self, max: usize, buf: &mut Vec<Event>) -> usize {
        self.take_ready(max, buf);
        if buf.is_empty() {
            self.rx.recv_many(buf, max).await
        } else {
            buf.len()
        }
    }
}

fn options(json: &str, client_name: &str) -> PyResult<ClientOptions> {
    let mut o = ClientOptions::from_json(json).map_err(error::client)?;
    if !client_name.is_empty() {
        o.client_name = client_name.to_owned();
    }
    Ok(o)
}

/// A token provider that calls a Python function with no arguments in a
/// blocking thread; it returns `(token, valid_ms or None)`.
fn token_provider(f: Py<PyAny>) -> TokenProvider {
    let f = Arc::new(f);
    Arc::new(move || {
        let f = f.clone();
        Box::pin(async move {
            let asked = runtime::runtime().spawn_blocking(move || {
                attach(|py| {
                    let r = f.bind(py).call0().map_err(|e| e.to_string())?;
                    r.extract::<(String, Option<u64>)>()
                        .map_err(|e| format!("the token provider's answer: {e}"))
                })
                .unwrap_or_else(|| Err("the interpreter is exiting".into()))
            });
            match asked.await {
                Ok(Ok((token, ms))) => Ok((token, ms.map(Duration::from_millis))),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(format!("the token provider failed: {e}")),
            }
        })
    })
}

/// A request's answer, made a Python value (or exception) only once the
/// GIL is held: the future resolves on a Tokio thread, which must not wait
/// for the GIL itself.
struct Answer(Result<Reply, ClientError>);

impl<'py> IntoPyObject<'py> for Answer {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        reply(self.0)?.into_bound_py_any(py)
    }
}

fn reply(r: Result<Reply, ClientError>) -> PyResult<Option<String>> {
    match r {
        Ok(Reply::Ok) => Ok(None),
        Ok(Reply::Result(v)) => Ok(Some(v.get().to_owned())),
        Err(e) => Err(error::client(e)),
    }
}

fn status_tuple(s: Status) -> (&'static str, Option<String>) {
    match s {
        Status::Connecting => ("connecting", None),
        Status::Connected(session) => ("connected", Some(session)),
        Status::Closed(reason) => ("closed", Some(reason)),
    }
}

impl Client {
    fn new(engine: Engine, events: Events) -> Self {
        Client {
            engine,
            events: Arc::new(tokio::sync::Mutex::new(Pulled { rx: events })),
            owner: Owner::here(),
        }
    }

    fn check(&self) -> PyResult<()> {
        if self.owner.is_here() {
            Ok(())
        } else {
            Err(error::forked())
        }
    }

    /// Hands a request to the engine (in call order) and returns its answer.
    fn submit_now(&self, req: Request, retry: Retry) -> PyResult<PendingReply> {
        self.check()?;
        self.engine
            .submit_now_with(req, retry)
            .map_err(error::client)
    }

    /// An awaitable of a request's answer: `None`, or a result as JSON
    /// text. Cancelling the awaitable cancels the request.
    fn submit<'py>(
        &self,
        py: Python<'py>,
        req: Request,
        retry: Retry,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pending = self.submit_now(req, retry)?;
        runtime::future_into_py(py, async move { Ok(Answer(pending.await)) })
    }

    /// [`Client::submit`], blocking until the answer (GIL released;
    /// Ctrl-C cancels the request).
    fn submit_blocking(
        &self,
        py: Python<'_>,
        req: Request,
        retry: Retry,
    ) -> PyResult<Option<String>> {
        let pending = self.submit_now(req, retry)?;
        reply(runtime::block_on(py, pending)?)
    }
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

#[pymethods]
impl Client {
    /// Starts a client that connects in the background; requests made
    /// before it is connected wait in the offline queue. (Waiting for the
    /// welcome is the package's: it reads the `connected` event, or the
    /// `error` and `closed` events that say why not.)
    #[staticmethod]
    #[pyo3(signature = (url, options_json, client_name, token_provider=None))]
    fn start(
        url: &str,
        options_json: &str,
        client_name: &str,
        token_provider: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let opts = options(options_json, client_name)?;
        let rt = runtime::runtime();
        let _entered = rt.enter();
        let (engine, events) = Engine::start(url, opts, token_provider.map(self::token_provider))
            .map_err(error::client)?;
        Ok(Client::new(engine, events))
    }

    // Requests. Each returns an awaitable of its answer (`None`, or for
    // `presence` and `rpc` the result as JSON text) and has a `_blocking`
    // twin that waits with the GIL released. Requests are sent in call
    // order; cancelling the awaitable cancels the request. `resend`
    // (publish, broadcast, send, rpc) chooses `Retry::Resend`.

    /// Joins a group (with `presence`, also presence notices).
    fn join<'py>(
        &self,
        py: Python<'py>,
        group: String,
        presence: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.submit(py, Request::Join { group, presence }, Retry::default())
    }

    /// [`Client::join`], blocking.
    fn join_blocking(
        &self,
        py: Python<'_>,
        group: String,
        presence: bool,
    ) -> PyResult<Option<String>> {
        self.submit_blocking(py, Request::Join { group, presence }, Retry::default())
    }

    /// Leaves a group.
    fn leave<'py>(&self, py: Python<'py>, group: String) -> PyResult<Bound<'py, PyAny>> {
        self.submit(py, Request::Leave { group }, Retry::default())
    }

    /// [`Client::leave`], blocking.
    fn leave_blocking(&self, py: Python<'_>, group: String) -> PyResult<Option<String>> {
        self.submit_blocking(py, Request::Leave { group }, Retry::default())
    }

    /// Who is in a group; the answer is the list as JSON text.
    fn presence<'py>(&self, py: Python<'py>, group: String) -> PyResult<Bound<'py, PyAny>> {
        self.submit(py, Request::Presence { group }, Retry::default())
    }

    /// [`Client::presence`], blocking.
    fn presence_blocking(&self, py: Python<'_>, group: String) -> PyResult<Option<String>> {
        self.submit_blocking(py, Request::Presence { group }, Retry::default())
    }

    /// Publishes JSON `data_json` to a group (to this session too when
    /// `echo`).
    fn publish<'py>(
        &self,
        py: Python<'py>,
        group: String,
        data_json: String,
        echo: bool,
        resend: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.submit(
            py,
            Request::Publish {
                group,
                data: json_arg(data_json, "data")?,
                echo,
            },
            retry(resend),
        )
    }

    /// [`Client::publish`], blocking.
    fn publish_blocking(
        &self,
        py: Python<'_>,
        group: String,
        data_json: String,
        echo: bool,
        resend: bool,
    ) -> PyResult<Option<String>> {
        self.submit_blocking(
            py,
            Request::Publish {
                group,
                data: json_arg(data_json, "data")?,
                echo,
            },
            retry(resend),
        )
    }

    /// Sends JSON `data_json` to every session (to this one too when
    /// `echo`).
    fn broadcast<'py>(
        &self,
        py: Python<'py>,
        data_json: String,
        echo: bool,
        resend: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.submit(
            py,
            Request::Broadcast {
                data: json_arg(data_json, "data")?,
                echo,
            },
            retry(resend),
        )
    }

    /// [`Client::broadcast`], blocking.
    fn broadcast_blocking(
        &self,
        py: Python<'_>,
        data_json: String,
        echo: bool,
        resend: bool,
    ) -> PyResult<Option<String>> {
        self.submit_blocking(
            py,
            Request::Broadcast {
                data: json_arg(data_json, "data")?,
                echo,
            },
            retry(resend),
        )
    }

    /// Sends JSON `data_json` to every session of `user` (but this one).
    fn send_to_user<'py>(
        &self,
        py: Python<'py>,
        user: String,
        data_json: String,
        resend: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.submit(
            py,
            Request::Send {
                target: Target::User(user),
                data: json_arg(data_json, "data")?,
            },
            retry(resend),
        )
    }

    /// [`Client::send_to_user`], blocking.
    fn send_to_user_blocking(
        &self,
        py: Python<'_>,
        user: String,
        data_json: String,
        resend: bool,
    ) -> PyResult<Option<String>> {
        self.submit_blocking(
            py,
            Request::Send {
                target: Target::User(user),
                data: json_arg(data_json, "data")?,
            },
            retry(resend),
        )
    }

    /// Sends JSON `data_json` to one session.
    fn send_to_session<'py>(
        &self,
        py: Python<'py>,
        session: String,
        data_json: String,
        resend: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.submit(
            py,
            Request::Send {
                target: Target::Session(session),
                data: json_arg(data_json, "data")?,
            },
            retry(resend),
        )
    }

    /// [`Client::send_to_session`], blocking.
    fn send_to_session_blocking(
        &self,
        py: Python<'_>,
        session: String,
        data_json: String,
        resend: bool,
    ) -> PyResult<Option<String>> {
        self.submit_blocking(
            py,
            Request::Send {
                target: Target::Session(session),
                data: json_arg(data_json, "data")?,
            },
            retry(resend),
        )
    }

    /// Calls a host method with JSON `data_json` (`None`: no argument); the
    /// answer is its result as JSON text.
    #[pyo3(signature = (method, data_json=None, resend=false))]
    fn rpc<'py>(
        &self,
        py: Python<'py>,
        method: String,
        data_json: Option<String>,
        resend: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.submit(
            py,
            Request::Rpc {
                method,
                data: data_json.map(|d| json_arg(d, "data")).transpose()?,
            },
            retry(resend),
        )
    }

    /// [`Client::rpc`], blocking.
    #[pyo3(signature = (method, data_json=None, resend=false))]
    fn rpc_blocking(
        &self,
        py: Python<'_>,
        method: String,
        data_json: Option<String>,
        resend: bool,
    ) -> PyResult<Option<String>> {
        self.submit_blocking(
            py,
            Request::Rpc {
                method,
                data: data_json.map(|d| json_arg(d, "data")).transpose()?,
            },
            retry(resend),
        )
    }

    /// The events ready now, as a JSON array, without waiting; `None` when
    /// none is ready.
    fn try_batch(&self, max: usize) -> PyResult<Option<String>> {
        self.check()?;
        let Ok(mut events) = self.events.try_lock() else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        events.take_ready(max.clamp(1, MAX_BATCH), &mut buf);
        Ok((!buf.is_empty()).then(|| events_to_json_array(&buf)))
    }

    /// An awaitable of the next events (at least one, at most `max`) as a
    /// JSON array; `None` once the client is closed and every event was read.
    fn next_batch<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyAny>> {
        self.check()?;
        let events = self.events.clone();
        let max = max.clamp(1, MAX_BATCH);
        runtime::future_into_py(py, async move {
            let mut events = events.lock().await;
            let mut buf = Vec::new();
            Ok((events.take(max, &mut buf).await > 0).then(|| events_to_json_array(&buf)))
        })
    }

    /// The next events, blocking up to `timeout_ms` (GIL released): a JSON
    /// array (`"[]"` when none came in time), or `None` once the client is
    /// closed and every event was read.
    fn next_batch_blocking(
        &self,
        py: Python<'_>,
        max: usize,
        timeout_ms: u64,
    ) -> PyResult<Option<String>> {
        self.check()?;
        let max = max.clamp(1, MAX_BATCH);
        let events = self.events.clone();
        runtime::block_on(py, async move {
            let mut events = events.lock().await;
            let mut buf = Vec::new();
            let wait = Duration::from_millis(timeout_ms);
            match tokio::time::timeout(wait, events.take(max, &mut buf)).await {
                Ok(0) => None,
                Ok(_) => Some(events_to_json_array(&buf)),
                Err(_) => Some("[]".to_owned()),
            }
        })
    }

    /// `(state, detail)`: `("connecting", None)`, `("connected", session)`
    /// or `("closed", reason)`.
    fn status(&self) -> (&'static str, Option<String>) {
        if !self.owner.is_here() {
            return ("closed", Some("created in another process".into()));
        }
        status_tuple(self.engine.status())
    }

    /// Closes cleanly (the session ends on the server); an awaitable that
    /// resolves once the client has finished.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let engine = self.engine.clone();
        let here = self.owner.is_here();
        runtime::future_into_py(py, async move {
            if here {
                engine.close().await;
            }
            Ok(())
        })
    }

    /// [`Client::close`], blocking at most `timeout_ms` (GIL released).
    fn close_blocking(&self, py: Python<'_>, timeout_ms: u64) -> PyResult<()> {
        if !self.owner.is_here() {
            return Ok(());
        }
        let engine = self.engine.clone();
        let wait = Duration::from_millis(timeout_ms);
        runtime::block_on(py, async move {
            let _ = tokio::time::timeout(wait, engine.close()).await;
        })
    }

    fn __repr__(&self) -> String {
        let (state, detail) = self.status();
        format!(
            "<zerorelay._native.Client {state}{}>",
            detail.map(|d| format!(" {d}")).unwrap_or_default()
        )
    }
}
