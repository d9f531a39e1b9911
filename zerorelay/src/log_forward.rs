//! Forwards the core's `tracing` events to a foreign logger, for the
//! language bindings: each event becomes one JSON record
//! `{"level":"info","target":"zerorelay::server","message":"…","fields":{…}}`
//! handed to a sink the binding provides (a queue the C ABI drains, a Node
//! callback, Python's `logging`). One shape for every language.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Installs the forwarder as the process's global `tracing` subscriber,
/// passing events that `filter` (`info`, `zerorelay=debug`, …) lets through
/// to `sink`. The sink runs on the thread that logged, so it must not block.
///
/// Returns `Ok(false)` when another global subscriber (the host's) was
/// already installed: then nothing is forwarded. Fails when the filter is
/// not valid.
pub fn install(
    filter: &str,
    sink: impl Fn(String) + Send + Sync + 'static,
) -> Result<bool, String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("log filter {filter:?}: {e}"))?;
    let subscriber = tracing_subscriber::registry().with(Forward { sink }.with_filter(filter));
    Ok(tracing::subscriber::set_global_default(subscriber).is_ok())
}

struct Forward<F> {
    sink: F,
}

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

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
}

/// The JSON record of one event.
fn record(event: &tracing::Event<'_>) -> String {
    let mut f = Fields::default();
    event.record(&mut f);
    let meta = event.metadata();
    serde_json::json!({
        "level": meta.level().as_str().to_ascii_lowercase(),
        "target": meta.target(),
        "message": f.message,
        "fields": f.rest,
    })
    .to_string()
}

impl<S: tracing::Subscriber, F: Fn(String) + Send + Sync + 'static> Layer<S> for Forward<F> {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        (self.sink)(record(event));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn events_become_json_records_with_their_fields() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let subscriber = tracing_subscriber::registry().with(Forward {
            sink: move |r| sink.lock().expect("not poisoned").push(r),
        });
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                session = "s1",
                count = 3u64,
                ok = true,
                "The session resumed."
            );
        });
        let got = got.lock().expect("not poisoned");
        let v: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["message"], "The session resumed.");
        assert_eq!(v["fields"]["session"], "s1");
        assert_eq!(v["fields"]["count"], 3);
        assert_eq!(v["fields"]["ok"], true);
    }

    #[test]
    fn a_bad_filter_is_refused() {
        assert!(install("zerorelay=loud", |_| {}).is_err());
    }
}
