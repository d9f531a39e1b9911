//! The core's `tracing` events reach Python's `logging`: with no tracing
//! subscriber installed they become `log` records (tracing's `log`
//! feature), which pyo3-log hands to the logger named after their target
//! (`zerorelay.client.driver` and so on, children of `zerorelay`).
//! Dependencies' own `log` records go to their loggers from warnings up.

use log::{Log, Metadata, Record};
use pyo3::prelude::*;

use crate::runtime;

/// pyo3-log, silenced once the interpreter is exiting.
struct Guarded(pyo3_log::Logger);

impl Log for Guarded {
    fn enabled(&self, metadata: &Metadata) -> bool {
        !runtime::exiting() && self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        // Counted, so that the exit waits for a record being written.
        runtime::guarded(|| self.0.log(record));
    }

    fn flush(&self) {}
}

/// Installs the bridge (once per process). Levels are read from Python's
/// loggers and cached; [`reset_log_cache`] re-reads them.
pub fn install(py: Python<'_>) -> PyResult<()> {
    // The core's records at every level (Python's logger levels decide);
    // the dependencies' (tungstenite, rustls, ...) from warnings up only.
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels)?
        .filter(log::LevelFilter::Warn)
        .filter_target("zerorelay".to_owned(), log::LevelFilter::Trace);
    let handle = logger.reset_handle();
    if log::set_boxed_logger(Box::new(Guarded(logger))).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
        let _ = HANDLE.set(handle);
    }
    Ok(())
}

static HANDLE: std::sync::OnceLock<pyo3_log::ResetHandle> = std::sync::OnceLock::new();

/// Forgets the cached logger levels, after the application changed them.
#[pyfunction]
pub fn reset_log_cache() {
    if let Some(h) = HANDLE.get() {
        h.reset();
    }
}
