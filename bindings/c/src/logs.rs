//! The core's `tracing` events, pulled like client events: a process-wide
//! bounded buffer that `zr_logs_next` drains, so that a foreign runtime can
//! hand them to its own logger.

use std::ffi::c_char;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::{c_string, ffi, put, str_arg, Failure};

/// Log records kept while nobody pulls them; older ones are dropped.
const BUFFER: usize = 4096;

struct Sink {
    /// Kept so that the channel stays open (and `zr_logs_next` waits rather
    /// than failing) when the host's own subscriber won and the forwarder
    /// was dropped.
    _tx: std::sync::mpsc::SyncSender<String>,
    rx: Mutex<std::sync::mpsc::Receiver<String>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts collecting the core's log records at `level` (`error`, `warn`,
/// `info`, `debug`, `trace`, or a filter such as `zerorelay=debug`). Only
/// the first call in a process takes effect.
///
/// # Safety
/// `level` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn zr_log_init(level: *const c_char) -> super::zr_status {
    ffi(|| {
        // SAFETY: forwarded contract.
        let level = unsafe { str_arg(level, "level") }?;
        if SINK.get().is_some() {
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(BUFFER);
        let forward = tx.clone();
        // Another global subscriber (the host's) wins; then nothing is forwarded.
        // Never block the relay on a slow log reader: drop when full.
        zerorelay::log_forward::install(level, move |r| {
            let _ = forward.try_send(r);
        })
        .map_err(Failure::invalid)?;
        let _ = SINK.set(Sink {
            _tx: tx,
            rx: Mutex::new(rx),
        });
        Ok(())
    })
}

/// Waits up to `timeout_ms` for log records and writes up to `max` of them
/// as a JSON array of `{level,target,message,fields}` to `out_json` (null
/// when none came in time).
///
/// # Safety
/// `out_json` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn zr_logs_next(
    timeout_ms: u32,
    max: u32,
    out_json: *mut *mut c_char,
) -> super::zr_status {
    ffi(|| {
        let Some(sink) = SINK.get() else {
            return Err(Failure::invalid("zr_log_init was not called"));
        };
        let rx = sink.rx.lock().expect("not poisoned");
        let mut got = Vec::new();
        if let Ok(first) = rx.recv_timeout(Duration::from_millis(u64::from(timeout_ms))) {
            got.push(first);
            while got.len() < max.max(1) as usize {
                match rx.try_recv() {
                    Ok(r) => got.push(r),
                    Err(_) => break,
                }
            }
        }
        drop(rx);
        let v = if got.is_empty() {
            std::ptr::null_mut()
        } else {
            c_string(format!("[{}]", got.join(",")))
        };
        // SAFETY: forwarded contract.
        unsafe { put(out_json, v) }
    })
}
