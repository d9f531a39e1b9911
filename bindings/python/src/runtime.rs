//! The binding's own Tokio runtime, and the bridge that turns Rust futures
//! into asyncio awaitables through it.
//!
//! The runtime belongs to the process that built it: after `fork()` the
//! child has none of the parent's worker threads, so the first use in a
//! child builds a fresh runtime (the parent's is leaked, never dropped, as
//! dropping it would wait for threads that do not exist). Clients and
//! servers made before the fork stay with the parent; using them in the
//! child fails with `closed` (see [`Owner`]).

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::IntoPyObject;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use pyo3_async_runtimes::TaskLocals;
use tokio::runtime::Runtime;

/// Worker threads: the relay and clients are I/O-bound; two threads keep
/// a busy server from starving a client in the same process.
const WORKERS: usize = 2;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// Set once the interpreter is exiting: from then on no Rust thread calls
/// into Python (a thread that attaches during finalization may be killed).
static EXITING: AtomicBool = AtomicBool::new(false);

/// Rust threads inside (or about to enter) Python right now; `at_exit`
/// waits for them, so that none is still attached when finalization starts.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The runtime of this process, built on first use.
pub fn runtime() -> Arc<Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return rt.clone();
        }
    }
    if let Some((_, inherited)) = slot.take() {
        // Forked: the parent's worker threads are gone in this process.
        std::mem::forget(inherited);
    }
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("zerorelay")
            .enable_all()
            .build()
            .expect("a Tokio runtime can be built"),
    );
    *slot = Some((pid, rt.clone()));
    rt
}

/// Marks the interpreter as exiting (called from an `atexit` handler, with
/// the GIL) and waits, with the GIL released, at most two seconds for the
/// Rust threads that were already entering Python to leave it.
pub fn set_exiting(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < give_up {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
}

/// Runs `f` (which enters Python) unless the interpreter is exiting,
/// counted so that `set_exiting` can wait for it. The count is raised
/// before the check (and `set_exiting` sets the flag before reading the
/// count), so either this call sees the flag or `set_exiting` sees the call.
pub fn guarded<R>(f: impl FnOnce() -> R) -> Option<R> {
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let r = if EXITING.load(Ordering::SeqCst) {
        None
    } else {
        Some(f())
    };
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    r
}

/// Whether Rust threads must stay away from Python.
pub fn exiting() -> bool {
    EXITING.load(Ordering::SeqCst)
}

/// Runs `f` attached to the interpreter, unless it is exiting.
pub fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    guarded(|| Python::try_attach(f)).flatten()
}

/// The process that made a client or server.
#[derive(Debug, Clone, Copy)]
pub struct Owner(u32);

impl Owner {
    /// The current process.
    pub fn here() -> Self {
        Owner(std::process::id())
    }

    /// Whether the object is used in the process that made it.
    pub fn is_here(self) -> bool {
        self.0 == std::process::id()
    }
}

/// A pyo3-async-runtimes task: it hands its result to asyncio (entering
/// Python) inside some poll, so every poll is [`guarded`], and once the
/// interpreter is exiting the task is never polled to completion again.
struct Guarded(Pin<Box<dyn Future<Output = ()> + Send>>);

impl Future for Guarded {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // Exiting: stay pending without a wake-up (the process is ending).
        guarded(|| self.0.as_mut().poll(cx)).unwrap_or(std::task::Poll::Pending)
    }
}

/// pyo3-async-runtimes' view of [`runtime`].
pub struct Rt;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl GenericRuntime for Rt {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        runtime().spawn(Guarded(Box::pin(fut)))
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        runtime().spawn_blocking(move || {
            let _ = guarded(f);
        })
    }
}

impl ContextExt for Rt {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}

/// An asyncio awaitable for a Rust future, on the running event loop.
/// Cancelling the awaitable drops the future (which cancels what it was
/// doing, a request in particular).
pub fn future_into_py<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    pyo3_async_runtimes::generic::future_into_py::<Rt, F, T>(py, fut)
}

/// Blocks on `fut` with the GIL released, waking every 100 ms to let
/// Python raise `KeyboardInterrupt` (the future is then dropped).
pub fn block_on<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime();
    let mut fut = std::pin::pin!(fut);
    loop {
        let step = py.detach(|| {
            rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_millis(100), fut.as_mut()).await
            })
        });
        match step {
            Ok(v) => return Ok(v),
            Err(_) => py.check_signals()?,
        }
    }
}
