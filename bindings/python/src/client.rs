//! `_native.Client`: the engine's client handle. Requests go in as JSON
//! (`{"type":"publish","group":…,"data":…}`, parsed by the core's
//! `request_from_json`); events come out in batches, one JSON array per
//! crossing (messages as the server's frame text, untouched).

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use zerorelay::client::json::{events_to_json_array, request_from_json};
use zerorelay::client::{
    Client as Engine, ClientError, ClientOptions, Event, Events, Reply, Status, TokenProvider,
};

use crate::error;
use crate::runtime::{self, attach, Owner};

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

    fn submit_now(&self, request_json: &str) -> PyResult<zerorelay::client::PendingReply> {
        self.check()?;
        let req = request_from_json(request_json).map_err(error::client)?;
        self.engine.submit_now(req).map_err(error::client)
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

    /// Submits a request (a client frame without `id`) and returns an
    /// awaitable of its answer: `None`, or an rpc result as JSON text.
    /// Requests are sent in call order; cancelling the awaitable cancels
    /// the request.
    fn submit<'py>(&self, py: Python<'py>, request_json: &str) -> PyResult<Bound<'py, PyAny>> {
        let pending = self.submit_now(request_json)?;
        runtime::future_into_py(py, async move { Ok(Answer(pending.await)) })
    }

    /// [`Client::submit`], blocking until the answer (GIL released).
    fn submit_blocking(&self, py: Python<'_>, request_json: &str) -> PyResult<Option<String>> {
        let pending = self.submit_now(request_json)?;
        reply(runtime::block_on(py, pending)?)
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
