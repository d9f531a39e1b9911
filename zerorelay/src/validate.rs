//! Payload validation before routing.
//!
//! A publish to a group is checked, after its permissions and before it is
//! serialized for fan-out (so once per message, never per recipient):
//! - against the JSON Schema of each `[[validate]]` entry whose `group`
//!   pattern matches, compiled once at start; a payload that fails gets
//!   `bad_request` naming the failing instance path;
//! - then by the host's [`Validator`] hooks registered for matching group
//!   patterns ([`crate::RelayBuilder::validator`]), which may accept,
//!   reject with a code and a message, or rewrite the payload (to strip
//!   HTML, say). A hook that takes longer than `limits.validate_timeout_ms`
//!   fails that request with `internal`; the connection carries on.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::auth::rbac::Pattern;
use crate::auth::BoxFuture;
use crate::config::ValidateRule;
use crate::error::{Error, ErrorCode, ProtocolError};

/// What a hook decides about one payload.
#[derive(Debug)]
pub enum Verdict {
    /// Route it as it is.
    Accept,
    /// Refuse it; the client gets an `error` with this code and message.
    Reject(ProtocolError),
    /// Route this JSON text instead.
    Rewrite(Box<RawValue>),
}

/// The payload a hook is shown, and who sent it.
#[derive(Debug, Clone, Copy)]
pub struct Payload<'a> {
    /// The group it is published to.
    pub group: &'a str,
    /// The payload (`data`), as JSON text.
    pub data: &'a RawValue,
    /// The sender's user.
    pub user: Option<&'a str>,
    /// The sender's session.
    pub session: &'a str,
    /// The sender's token claims (`Null` when it has none).
    pub claims: &'a serde_json::Value,
}

/// A host validation hook.
pub trait Validator: Send + Sync + 'static {
    /// Decides about one payload.
    fn validate<'a>(&'a self, payload: Payload<'a>) -> BoxFuture<'a, Verdict>;
}

impl<F> Validator for F
where
    F: Fn(Payload<'_>) -> Verdict + Send + Sync + 'static,
{
    fn validate<'a>(&'a self, payload: Payload<'a>) -> BoxFuture<'a, Verdict> {
        let v = self(payload);
        Box::pin(std::future::ready(v))
    }
}

/// A group pattern for validation: `*` but not `{user}` (a payload's
/// checks are the group's, whoever sends it).
pub fn group_pattern(text: &str) -> Result<Pattern, String> {
    if text.contains("{user}") {
        return Err(format!(
            "{text:?}: {{user}} is for permissions; a validation pattern names groups (use *)"
        ));
    }
    Pattern::parse(text)
}

/// The compiled schemas and the host's hooks, by group pattern.
#[derive(Default)]
pub struct Validation {
    schemas: Vec<(Pattern, String, jsonschema::Validator)>,
    hooks: Vec<(Pattern, Arc<dyn Validator>)>,
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validation")
            .field("schemas", &self.schemas.len())
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl Validation {
    /// Reads and compiles the schemas of `[[validate]]`; the error names the
    /// entry and the file.
    pub fn from_config(rules: &[ValidateRule]) -> Result<Validation, Error> {
        let mut v = Validation::default();
        for (i, r) in rules.iter().enumerate() {
            let bad =
                |why: String| Error::Config(format!("`validate[{i}]` ({}): {why}", r.schema_file));
            let pattern = group_pattern(&r.group).map_err(&bad)?;
            let text = std::fs::read_to_string(&r.schema_file)
                .map_err(|e| bad(format!("cannot read it: {e}")))?;
            let schema: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
            let compiled = jsonschema::validator_for(&schema)
                .map_err(|e| bad(format!("not a valid JSON Schema: {e}")))?;
            v.schemas.push((pattern, r.schema_file.clone(), compiled));
        }
        Ok(v)
    }

    /// Adds a host hook for groups matching `pattern`.
    pub fn add_hook(&mut self, pattern: &str, hook: Arc<dyn Validator>) -> Result<(), Error> {
        let p =
            group_pattern(pattern).map_err(|e| Error::Config(format!("validator pattern: {e}")))?;
        self.hooks.push((p, hook));
        Ok(())
    }

    /// Checks `data` against every schema for `group`. Parses the payload
    /// only when a schema applies.
    pub fn check_schemas(&self, group: &str, data: &RawValue) -> Result<(), ProtocolError> {
        let mut parsed = None;
        for (pattern, file, schema) in &self.schemas {
            if !pattern.matches(("", group), None) {
                continue;
            }
            let value = match &parsed {
                Some(v) => v,
                None => parsed.insert(
                    serde_json::from_str::<serde_json::Value>(data.get()).map_err(|e| {
                        ProtocolError::new(
                            ErrorCode::BadRequest,
                            format!("`data` cannot be validated: {e}"),
                        )
                    })?,
                ),
            };
            if let Some(e) = schema.iter_errors(value).next() {
                let path = e.instance_path.to_string();
                let at = if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                };
                tracing::debug!(group, schema = %file, at = %at, "Refused a payload that fails its group's schema.");
                return Err(ProtocolError::new(
                    ErrorCode::BadRequest,
                    format!("`data` does not match the schema for {group} at {at}: {e}"),
                ));
            }
        }
        Ok(())
    }

    /// The hooks for `group`, in registration order.
    pub fn hooks_for<'s>(
        &'s self,
        group: &'s str,
    ) -> impl Iterator<Item = &'s Arc<dyn Validator>> + 's {
        self.hooks
            .iter()
            .filter(move |(p, _)| p.matches(("", group), None))
            .map(|(_, h)| h)
    }

    /// Whether any hook applies to `group`.
    pub fn has_hooks(&self, group: &str) -> bool {
        self.hooks_for(group).next().is_some()
    }
}
