//! The core's log records, handed to a JavaScript function.

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::error::{self, Result};

/// Receives one JSON log record (`{level,target,message,fields}`). Weak and
/// non-blocking: logging never keeps the process alive or waits for
/// JavaScript.
pub type LogCallback = ThreadsafeFunction<String, (), String, napi::Status, false, true>;

/// Starts forwarding the core's log records that pass `filter` (`info`,
/// `zerorelay=debug`, …) to `sink`. Only the first call in a process takes
/// effect; returns false when logging was already set up.
#[napi(ts_args_type = "filter: string, sink: (recordJson: string) => void")]
pub fn init_logging(filter: String, sink: LogCallback) -> Result<bool> {
    zerorelay::log_forward::install(&filter, move |record| {
        sink.call(record, ThreadsafeFunctionCallMode::NonBlocking);
    })
    .map_err(error::invalid)
}
