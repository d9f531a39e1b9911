//! The core's `tracing` events, pulled like client events: a process-wide
//! bounded buffer that `zr_logs_next` drains, so that a foreign runtime can
//! hand them to its own logger.

use std::ffi::c_char;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use super::{c_string, ffi, put, str_arg, Failure};

/// Log records kept while nobody pulls them; older ones are dropped.
const BUFFER: usize = 4096;

struct Sink {
    tx: std::sync::mpsc::SyncSender<String>,
    rx: Mutex<std::sync::mpsc::Receiver<String>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

struct Forward;

#[derive(Default)]
struct Fields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        if field.name() == "message" {
            self.message = s;
        } else {
            self.rest
                .insert(field.name().to_owned(), serde_json::Value::String(s));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest.insert(field.name().to_owned(), value.into());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let Some(sink) = SINK.get() else { return };
        let mut f = Fields::default();
        event.record(&mut f);
        let meta = event.metadata();
        let record = serde_json::json!({
            "level": meta.level().as_str().to_ascii_lowercase(),
            "target": meta.target(),
            "message": f.message,
            "fields": f.rest,
        });
        // Never block the relay on a slow log reader: drop when full.
        let _ = sink.tx.try_send(record.to_string());
    }
}

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
        let filter = tracing_subscriber::EnvFilter::try_new(level)
            .map_err(|e| Failure::invalid(format!("level {level:?}: {e}")))?;
        if SINK.get().is_some() {
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(BUFFER);
        if SINK
            .set(Sink {
                tx,
                rx: Mutex::new(rx),
            })
            .is_ok()
        {
            let subscriber = tracing_subscriber::registry().with(Forward.with_filter(filter));
            // Another global subscriber (the host's) wins; then nothing is forwarded.
            let _ = tracing::subscriber::set_global_default(subscriber);
        }
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
