//! Client options. Every binding passes these as JSON, so they deserialize
//! with the same names in every language; unknown keys are errors.
//!
//! The definitions describe themselves ([`ClientOptions::describe`]: names,
//! kinds, enum values, defaults and doc comments), so that an SDK can
//! generate its option table and documentation from them instead of
//! copying them by hand (the Node SDK's `lib/options.generated.js`, written
//! by `bindings/node/tests/options.rs`). The structs and the enum are
//! declared through `described_struct!` and `described_enum!`, which
//! emit the item unchanged plus its [`Describe`] impl; a test checks the
//! description against what serde reads and against `Default`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backoff::Backoff;

/// What an option holds, as an SDK checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OptionKind {
    /// `true` or `false`.
    Boolean,
    /// A non-negative integer, at most `max`.
    Integer {
        /// The largest value the field's type holds.
        max: u64,
    },
    /// A string.
    String,
    /// An object whose values are strings (header names to values).
    StringMap,
    /// One of these strings.
    Enum {
        /// The values, in declaration order.
        values: Vec<EnumValue>,
    },
    /// An object of options of its own.
    Section {
        /// Its options, in declaration order.
        fields: Vec<OptionSpec>,
    },
}

/// One value of an [`OptionKind::Enum`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnumValue {
    /// The value as JSON has it (`fail_fast`).
    pub name: String,
    /// The variant's doc comment.
    pub doc: String,
}

/// One option: its key, doc comment, kind and default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptionSpec {
    /// The JSON key (`base_ms`).
    pub name: &'static str,
    /// The field's doc comment, one entry per line.
    pub doc: String,
    /// What it holds.
    pub kind: OptionKind,
    /// Whether it may be absent (`null`) with a meaning of its own (an
    /// `Option` field); every option may be left out to get its default.
    pub optional: bool,
    /// The default (`Default`), as JSON.
    pub default: serde_json::Value,
}

/// A type an option can have, and what it looks like to an SDK.
pub trait Describe {
    /// What the option holds.
    fn kind() -> OptionKind;
    /// Whether `null` is one of its values.
    fn optional() -> bool {
        false
    }
}

impl Describe for bool {
    fn kind() -> OptionKind {
        OptionKind::Boolean
    }
}

macro_rules! describe_integers {
    ($($t:ty),*) => {$(
        impl Describe for $t {
            fn kind() -> OptionKind {
                OptionKind::Integer { max: <$t>::MAX as u64 }
            }
        }
    )*};
}
describe_integers!(u32, u64, usize);

impl Describe for String {
    fn kind() -> OptionKind {
        OptionKind::String
    }
}

impl Describe for BTreeMap<String, String> {
    fn kind() -> OptionKind {
        OptionKind::StringMap
    }
}

impl<T: Describe> Describe for Option<T> {
    fn kind() -> OptionKind {
        T::kind()
    }
    fn optional() -> bool {
        true
    }
}

/// A doc comment from the attributes of an item (`#[doc = "…"]` is what
/// `///` becomes), its lines without the space after `///`, joined by `\n`.
macro_rules! doc_of {
    ($([$($attr:tt)*])*) => {
        [$(doc_of!(@one $($attr)*)),*]
            .iter()
            .filter_map(|line: &Option<&str>| *line)
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n")
    };
    (@one doc = $line:literal) => { Some($line) };
    (@one $($other:tt)*) => { None };
}

/// Declares an options struct (attributes and doc comments as usual,
/// `pub` fields) and its [`Describe`] impl: a section whose options are the
/// fields, named as serde names them, with their doc comments and the
/// values of the struct's `Default`.
macro_rules! described_struct {
    (
        $(#[$($attr:tt)*])*
        pub struct $name:ident {
            $( $(#[$($fattr:tt)*])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$($attr)*])*
        pub struct $name {
            $( $(#[$($fattr)*])* pub $field: $ty ),*
        }

        impl Describe for $name {
            fn kind() -> OptionKind {
                let default = <$name as Default>::default();
                OptionKind::Section {
                    fields: vec![$(OptionSpec {
                        name: stringify!($field),
                        doc: doc_of!($([$($fattr)*])*),
                        kind: <$ty as Describe>::kind(),
                        optional: <$ty as Describe>::optional(),
                        default: serde_json::to_value(&default.$field)
                            .expect("options serialize to JSON"),
                    }),*],
                }
            }
        }
    };
}

/// Declares an options enum of unit variants and its [`Describe`] impl:
/// its values as serde writes them, with the variants' doc comments.
macro_rules! described_enum {
    (
        $(#[$($attr:tt)*])*
        pub enum $name:ident {
            $( $(#[$($vattr:tt)*])* $variant:ident ),* $(,)?
        }
    ) => {
        $(#[$($attr)*])*
        pub enum $name {
            $( $(#[$($vattr)*])* $variant ),*
        }

        impl Describe for $name {
            fn kind() -> OptionKind {
                OptionKind::Enum {
                    values: vec![$(EnumValue {
                        name: match serde_json::to_value($name::$variant) {
                            Ok(serde_json::Value::String(s)) => s,
                            other => panic!(
                                "{} is not a string value: {other:?}",
                                stringify!($variant)
                            ),
                        },
                        doc: doc_of!($([$($vattr)*])*),
                    }),*],
                }
            }
        }
    };
}

described_enum! {
    /// What happens when a request is made while the offline queue is full.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum FullPolicy {
        /// Refuse the new request with `queue_full`.
        #[default]
        FailFast,
        /// Drop the oldest queued request (it fails with `queue_full`) and queue
        /// the new one.
        DropOldest,
    }
}

described_struct! {
    /// Reconnection.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct ReconnectOptions {
        /// Whether to reconnect at all.
        pub enabled: bool,
        /// Ceiling of the first delay, in ms.
        pub base_ms: u64,
        /// Largest delay ceiling, in ms.
        pub cap_ms: u64,
        /// Give up after this many consecutive failed attempts (`null`: never).
        pub max_attempts: Option<u32>,
    }
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        ReconnectOptions {
            enabled: true,
            base_ms: 250,
            cap_ms: 30_000,
            max_attempts: None,
        }
    }
}

described_struct! {
    /// Acknowledgement batching. Every ack is a frame the server must read and
    /// process (a few microseconds of its CPU), so the count decides what acks
    /// cost a fast stream and the interval what they cost a slow one (see
    /// `docs/BENCHMARKS.md`). Unacknowledged messages stay in the server's
    /// outbox and are sent again after a resume (and de-duplicated here), so the
    /// two also bound what a resume re-sends: 256 messages or one second.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct AckOptions {
        /// Send an ack once this many messages are unacknowledged…
        pub batch: u32,
        /// …or this long after the first unacknowledged one, in ms.
        pub interval_ms: u64,
    }
}

impl Default for AckOptions {
    fn default() -> Self {
        AckOptions {
            batch: 256,
            interval_ms: 1000,
        }
    }
}

described_struct! {
    /// The offline queue.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct QueueOptions {
        /// Requests held while disconnected.
        pub max_messages: usize,
        /// Bytes of requests held while disconnected.
        pub max_bytes: usize,
        /// What to do when full.
        pub full: FullPolicy,
    }
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_messages: 1_000,
            max_bytes: 1 << 20,
            full: FullPolicy::FailFast,
        }
    }
}

/// The longest duration any option may give, in ms (one day).
pub const MAX_DURATION_MS: u64 = 86_400_000;

described_struct! {
    /// Everything a client can be told.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct ClientOptions {
        /// The token sent in `hello` (and re-sent on every reconnect). A token
        /// provider, where a binding offers one, takes precedence.
        pub token: Option<String>,
        /// The user name, honoured by servers in development mode only.
        pub user: Option<String>,
        /// The `client` string sent in `hello`.
        pub client_name: String,
        /// Extra HTTP headers on the WebSocket upgrade request.
        pub headers: BTreeMap<String, String>,
        /// Reconnection.
        pub reconnect: ReconnectOptions,
        /// Acknowledgements.
        pub ack: AckOptions,
        /// The offline queue.
        pub queue: QueueOptions,
        /// How long a request waits for its answer once sent, in ms.
        pub request_timeout_ms: u64,
        /// How long to wait for the transport and `welcome`, in ms.
        pub connect_timeout_ms: u64,
        /// Ask the token provider for a new token this long before the current
        /// one expires, in ms.
        pub refresh_margin_ms: u64,
        /// A PEM file with extra trusted CA certificates for `wss://` (on top of
        /// the system's roots).
        pub ca_file: Option<String>,
        /// Persist the offline queue and the resume state to this file, so that
        /// a process restarted while offline loses nothing it had accepted.
        pub persist_path: Option<String>,
        /// Seed for reconnect jitter (tests); random when absent.
        pub seed: Option<u64>,
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            token: None,
            user: None,
            client_name: concat!("zerorelay-rust/", env!("CARGO_PKG_VERSION")).to_owned(),
            headers: BTreeMap::new(),
            reconnect: ReconnectOptions::default(),
            ack: AckOptions::default(),
            queue: QueueOptions::default(),
            request_timeout_ms: 10_000,
            connect_timeout_ms: 10_000,
            refresh_margin_ms: 30_000,
            ca_file: None,
            persist_path: None,
            seed: None,
        }
    }
}

impl ClientOptions {
    /// Every option, in declaration order: what SDKs generate their option
    /// tables and documentation from.
    pub fn describe() -> Vec<OptionSpec> {
        match <Self as Describe>::kind() {
            OptionKind::Section { fields } => fields,
            _ => unreachable!("ClientOptions is declared with described_struct!"),
        }
    }

    /// Parses options from JSON (what the bindings pass); errors name the key.
    pub fn from_json(json: &str) -> Result<Self, super::ClientError> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let o: Self = serde_json::from_str(json)
            .map_err(|e| super::ClientError::InvalidArgument(format!("options: {e}")))?;
        o.validate()?;
        Ok(o)
    }

    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), super::ClientError> {
        let bad = |m: &str| Err(super::ClientError::InvalidArgument(m.to_owned()));
        if self.reconnect.base_ms == 0 || self.reconnect.cap_ms < self.reconnect.base_ms {
            return bad("options: reconnect.base_ms must be > 0 and <= reconnect.cap_ms");
        }
        if self.ack.batch == 0 {
            return bad("options: ack.batch must be > 0");
        }
        if self.queue.max_messages == 0 || self.queue.max_bytes == 0 {
            return bad("options: queue.max_messages and queue.max_bytes must be > 0");
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return bad("options: request_timeout_ms and connect_timeout_ms must be > 0");
        }
        // Upper bounds: a duration past them would overflow `Instant +
        // Duration` in the driver, and no real deployment wants them.
        let day = MAX_DURATION_MS;
        for (key, v) in [
            ("reconnect.base_ms", self.reconnect.base_ms),
            ("reconnect.cap_ms", self.reconnect.cap_ms),
            ("ack.interval_ms", self.ack.interval_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("refresh_margin_ms", self.refresh_margin_ms),
        ] {
            if v > day {
                return Err(super::ClientError::InvalidArgument(format!(
                    "options: {key} must be at most {day} (one day), got {v}"
                )));
            }
        }
        if self.ack.batch > 1_000_000 {
            return bad("options: ack.batch must be at most 1000000");
        }
        if self.queue.max_messages > 10_000_000 || self.queue.max_bytes > 1 << 34 {
            return bad(
                "options: queue.max_messages must be at most 10000000 and queue.max_bytes at most 17179869184 (16 GiB)",
            );
        }
        if let Some(u) = &self.user {
            crate::protocol::names::validate("user", u).map_err(|e| {
                super::ClientError::InvalidArgument(format!("options: {}", e.message))
            })?;
        }
        Ok(())
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.reconnect.base_ms),
            cap: Duration::from_millis(self.reconnect.cap_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// Every option's path (`reconnect.base_ms`) with its description.
    fn leaves(fields: &[OptionSpec], prefix: &str, out: &mut Vec<(String, OptionSpec)>) {
        for f in fields {
            let path = format!("{prefix}{}", f.name);
            match &f.kind {
                OptionKind::Section { fields } => leaves(fields, &format!("{path}."), out),
                _ => out.push((path, f.clone())),
            }
        }
    }

    /// `{"a":{"b":value}}` for the path `a.b`.
    fn at(path: &str, value: Value) -> Value {
        path.rsplit('.').fold(value, |v, key| json!({ key: v }))
    }

    fn reads(v: Value) -> bool {
        serde_json::from_value::<ClientOptions>(v).is_ok()
    }

    /// The description names exactly the keys serde writes, with the values of `Default`, section by section.
    fn check_against(fields: &[OptionSpec], default: &Value, path: &str) {
        let Value::Object(map) = default else {
            panic!("{path}: the default is not an object: {default}");
        };
        // serde_json's map is sorted, so the order cannot be compared.
        let mut described: Vec<&str> = fields.iter().map(|f| f.name).collect();
        described.sort_unstable();
        let serialized: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(
            described, serialized,
            "{path}: described keys against serde's"
        );
        for f in fields {
            let value = &map[f.name];
            match &f.kind {
                OptionKind::Section { fields } => {
                    check_against(fields, value, &format!("{path}{}.", f.name));
                }
                _ => assert_eq!(&f.default, value, "{path}{}: default", f.name),
            }
        }
    }

    #[test]
    fn the_description_has_every_serde_key_and_its_default() {
        let default = serde_json::to_value(ClientOptions::default()).unwrap();
        check_against(&ClientOptions::describe(), &default, "");
    }

    #[test]
    fn every_described_option_has_a_doc_comment() {
        let mut all = Vec::new();
        leaves(&ClientOptions::describe(), "", &mut all);
        for (path, f) in &all {
            assert!(!f.doc.trim().is_empty(), "{path} has no doc comment");
            assert!(!f.doc.starts_with(' '), "{path}: {:?}", f.doc);
            if let OptionKind::Enum { values } = &f.kind {
                for v in values {
                    assert!(
                        !v.doc.trim().is_empty(),
                        "{path} = {} has no doc comment",
                        v.name
                    );
                }
            }
        }
        let reconnect = &ClientOptions::describe()[4];
        assert_eq!(
            (reconnect.name, reconnect.doc.as_str()),
            ("reconnect", "Reconnection.")
        );
    }

    #[test]
    fn serde_reads_what_each_kind_allows_and_refuses_the_rest() {
        let mut all = Vec::new();
        leaves(&ClientOptions::describe(), "", &mut all);
        assert!(all.len() > 10, "{all:?}");
        for (path, f) in &all {
            let (good, bad): (Vec<Value>, Vec<Value>) = match &f.kind {
                OptionKind::Boolean => (
                    vec![json!(true), json!(false)],
                    vec![json!(1), json!("true")],
                ),
                OptionKind::Integer { max } => {
                    let mut bad = vec![json!(-1), json!(1.5), json!("1"), json!(true)];
                    if let Some(over) = max.checked_add(1) {
                        bad.push(json!(over));
                    }
                    (vec![json!(0), json!(max)], bad)
                }
                OptionKind::String => (vec![json!("x")], vec![json!(1), json!(["x"])]),
                OptionKind::StringMap => (
                    vec![json!({}), json!({"x-a": "b"})],
                    vec![json!({"x-a": 1}), json!(["b"]), json!("b")],
                ),
                OptionKind::Enum { values } => (
                    values.iter().map(|v| json!(v.name)).collect(),
                    vec![json!("no_such_value"), json!(0)],
                ),
                OptionKind::Section { .. } => unreachable!("leaves() descends into sections"),
            };
            for v in good {
                assert!(reads(at(path, v.clone())), "{path} = {v} should be read");
            }
            for v in bad {
                assert!(
                    !reads(at(path, v.clone())),
                    "{path} = {v} should be refused"
                );
            }
            assert_eq!(reads(at(path, Value::Null)), f.optional, "{path} = null");
            // Unknown keys are refused in every section, as SDKs assume.
            let unknown = path
                .rsplit_once('.')
                .map_or("no_such_option".to_owned(), |(s, _)| {
                    format!("{s}.no_such_option")
                });
            assert!(
                !reads(at(&unknown, json!(1))),
                "{unknown} should be refused"
            );
        }
    }

    #[test]
    fn enum_values_are_what_serde_writes() {
        let OptionKind::Enum { values } = FullPolicy::kind() else {
            panic!("FullPolicy is an enum");
        };
        let names: Vec<&str> = values.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["fail_fast", "drop_oldest"]);
        assert_eq!(values[0].doc, "Refuse the new request with `queue_full`.");
    }
}
