//! Loading a [`Config`] from a TOML file, environment variables and flags.
//!
//! Precedence, highest first: `--set section.key=value` flags (and the
//! command's dedicated flags, which are the same thing), `ZERORELAY_SECTION_KEY`
//! environment variables, the TOML file, the defaults. Every source is checked
//! against the same schema: an unknown key or a value of the wrong type is an
//! error that names the key and the source.

use std::path::Path;

use toml::{Table, Value};

use super::Config;
use crate::error::Error;

/// The environment variable prefix.
pub const ENV_PREFIX: &str = "ZERORELAY_";

/// Environment variables with the prefix that are not configuration keys.
pub const ENV_NOT_KEYS: &[&str] = &["ZERORELAY_CONFIG"];

/// Builds the configuration from its sources and validates it.
///
/// `env` is the process environment (pass `std::env::vars()`); `sets` are
/// `section.key=value` overrides.
pub fn load<I>(file: Option<&Path>, env: I, sets: &[String]) -> Result<Config, Error>
where
    I: IntoIterator<Item = (String, String)>,
{
    let schema = schema();
    let mut table = match file {
        None => Table::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
            // Deserializing the text itself gives errors with line numbers
            // and key names.
            toml::from_str::<Config>(&text).map_err(|e| {
                Error::Config(format!("{}: {}", path.display(), e.to_string().trim()))
            })?;
            text.parse::<Table>()
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
        }
    };
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_NOT_KEYS.contains(&k.as_str()))
        .collect();
    env.sort();
    for (var, value) in env {
        let Some(path) = env_key(&schema, &var) else {
            // A typo under a section's prefix is refused; any other
            // ZERORELAY_ variable (a build script's, say) is not ours and
            // is only reported by `ignored_env`.
            if env_section(&schema, &var).is_some() {
                return Err(Error::Config(format!(
                    "unknown environment variable {var}: no configuration key matches it"
                )));
            }
            continue;
        };
        set(&schema, &mut table, &path, &value, &var)?;
    }
    for s in sets {
        let (path, value) = s
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--set {s:?}: expected section.key=value")))?;
        let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
        if keys.len() < 2 {
            return Err(Error::Config(format!(
                "--set {s:?}: expected section.key=value"
            )));
        }
        set(&schema, &mut table, &keys, value, &format!("--set {path}"))?;
    }
    let config: Config = Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| Error::Config(e.to_string().trim().to_owned()))?;
    config.validate()?;
    Ok(config)
}

/// The `ZERORELAY_` variables in `env` that are neither configuration keys
/// nor under a section's prefix: ignored, and worth a warning (a script's
/// `ZERORELAY_BIN`, or a misspelt section).
pub fn ignored_env<I>(env: I) -> Vec<String>
where
    I: IntoIterator<Item = (String, String)>,
{
    let schema = schema();
    let mut v: Vec<String> = env
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(ENV_PREFIX) && !ENV_NOT_KEYS.contains(&k.as_str()))
        .filter(|k| env_section(&schema, k).is_none())
        .collect();
    v.sort();
    v
}

/// The configuration section whose prefix (`ZERORELAY_LIMITS_`, …) an
/// environment variable starts with.
fn env_section<'a>(schema: &'a Table, var: &str) -> Option<&'a str> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    schema
        .keys()
        .find(|section| rest.starts_with(&format!("{}_", section.to_uppercase())))
        .map(|s| s.as_str())
}

/// Keys that are absent from the serialized defaults (they default to
/// nothing) but can be set from the environment and flags, as strings.
const OPTIONAL_STRINGS: &[&str] = &[
    "log.file",
    "log.otlp.endpoint",
    "auth.jwt.secret",
    "auth.jwt.secret_file",
    "auth.jwt.public_key_file",
    "auth.jwt.jwks_file",
    "auth.jwt.jwks_url",
    "auth.jwt.ca_file",
    "auth.jwt.issuer",
    "auth.jwt.audience",
    "auth.callback.url",
    "auth.callback.ca_file",
    "tls.cert_file",
    "tls.key_file",
    "admin.listen",
    "alerts.url",
    "alerts.ca_file",
];

/// Tables whose keys are data (`auth.tokens`: token → user), set from text
/// as `a=b,c=d`; other tables are sections to descend into.
const MAPS: &[&str] = &["auth.tokens"];

/// Every settable key: the serialized defaults plus [`OPTIONAL_STRINGS`].
fn schema() -> Table {
    let mut schema = Table::try_from(Config::default()).expect("the default config is TOML");
    for key in OPTIONAL_STRINGS {
        let parts: Vec<&str> = key.split('.').collect();
        let mut t = &mut schema;
        for p in &parts[..parts.len() - 1] {
            t = t
                .entry(p.to_string())
                .or_insert_with(|| Value::Table(Table::new()))
                .as_table_mut()
                .expect("a section");
        }
        t.insert(
            parts[parts.len() - 1].to_owned(),
            Value::String(String::new()),
        );
    }
    // `[auth.roles]` is written in the file; it has no scalar form.
    if let Some(auth) = schema.get_mut("auth").and_then(Value::as_table_mut) {
        auth.remove("roles");
    }
    schema
}

/// Finds the key path an environment variable names, by the schema
/// (`ZERORELAY_AUTH_JWT_SECRET` → `auth.jwt.secret`).
fn env_key(schema: &Table, var: &str) -> Option<Vec<String>> {
    fn find(table: &Table, prefix: &str, rest: &str) -> Option<Vec<String>> {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let upper = k.to_uppercase();
            match v {
                Value::Table(sub) if !MAPS.contains(&path.as_str()) => {
                    if let Some(r) = rest.strip_prefix(&format!("{upper}_")) {
                        if let Some(mut found) = find(sub, &path, r) {
                            found.insert(0, k.clone());
                            return Some(found);
                        }
                    }
                }
                _ if rest == upper => return Some(vec![k.clone()]),
                _ => {}
            }
        }
        None
    }
    find(schema, "", var.strip_prefix(ENV_PREFIX)?)
}

/// Sets the key at `path` from text, typed by the schema.
fn set(
    schema: &Table,
    table: &mut Table,
    path: &[String],
    value: &str,
    source: &str,
) -> Result<(), Error> {
    let dotted = path.join(".");
    let (last, parents) = path.split_last().expect("a key path is not empty");
    let mut sect = schema;
    for (i, p) in parents.iter().enumerate() {
        sect = sect.get(p).and_then(Value::as_table).ok_or_else(|| {
            if i == 0 {
                Error::Config(format!("{source}: no configuration section `{p}`"))
            } else {
                Error::Config(format!("{source}: no configuration key `{dotted}`"))
            }
        })?;
    }
    let typed = match sect.get(last) {
        Some(Value::Integer(_)) => Value::Integer(value.trim().parse().map_err(|_| {
            Error::Config(format!(
                "{source}: `{dotted}` must be an integer, got {value:?}"
            ))
        })?),
        Some(Value::Boolean(_)) => Value::Boolean(match value.trim() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                return Err(Error::Config(format!(
                    "{source}: `{dotted}` must be true or false, got {value:?}"
                )))
            }
        }),
        Some(Value::Array(_)) => Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| Value::String(v.to_owned()))
                .collect(),
        ),
        Some(Value::Table(_)) if MAPS.contains(&dotted.as_str()) => {
            let mut t = Table::new();
            for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Error::Config(format!(
                        "{source}: `{dotted}` must be a list like a=b,c=d, got {value:?}"
                    ))
                })?;
                t.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
            }
            Value::Table(t)
        }
        Some(Value::Table(_)) | None => {
            return Err(Error::Config(format!(
                "{source}: no configuration key `{dotted}`"
            )))
        }
        Some(_) => Value::String(value.to_owned()),
    };
    let mut t = table;
    for p in parents {
        t = t
            .entry(p.clone())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .ok_or_else(|| Error::Config(format!("`{p}` must be a table")))?;
    }
    t.insert(last.clone(), typed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile_lite::TempFile {
        tempfile_lite::TempFile::new(text)
    }

    /// A tiny temporary file helper (no extra dependency for one test module).
    mod tempfile_lite {
        pub struct TempFile(pub std::path::PathBuf);
        impl TempFile {
            pub fn new(text: &str) -> Self {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b).unwrap();
                let p = std::env::temp_dir()
                    .join(format!("zerorelay-test-{:x}.toml", u64::from_le_bytes(b)));
                std::fs::write(&p, text).unwrap();
                TempFile(p)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let f = file("[limits]\nmax_frame_bytes = 1000\nslow_consumer_ms = 7\nrate_burst = 9\n");
        let c = load(
            Some(&f.0),
            env(&[
                ("ZERORELAY_LIMITS_SLOW_CONSUMER_MS", "80"),
                ("ZERORELAY_LIMITS_RATE_BURST", "10"),
            ]),
            &["limits.rate_burst=11".into()],
        )
        .unwrap();
        assert_eq!(c.limits.max_frame_bytes, 1000);
        assert_eq!(c.limits.slow_consumer_ms, 80);
        assert_eq!(c.limits.rate_burst, 11);
        assert_eq!(c.limits.abuse_strikes, 50, "untouched keys keep defaults");
    }

    #[test]
    fn unknown_file_key_is_named() {
        let f = file("[limits]\nmax_frame_byts = 1000\n");
        let e = load(Some(&f.0), env(&[]), &[]).unwrap_err().to_string();
        assert!(e.contains("max_frame_byts"), "{e}");
    }

    #[test]
    fn wrong_type_in_file_is_named() {
        let f = file("[session]\nttl_ms = \"soon\"\n");
        let e = load(Some(&f.0), env(&[]), &[]).unwrap_err().to_string();
        assert!(e.contains("ttl_ms"), "{e}");
    }

    #[test]
    fn unknown_env_var_is_named() {
        let e = load(None, env(&[("ZERORELAY_LIMITS_NOPE", "1")]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ZERORELAY_LIMITS_NOPE"), "{e}");
    }

    #[test]
    fn other_zerorelay_variables_are_ignored_and_reported_not_refused() {
        let vars = env(&[
            ("ZERORELAY_BUILD_PROFILE", "debug"),
            ("ZERORELAY_BIN", "/x"),
            ("ZERORELAY_LIMITS_RATE_BURST", "12"),
        ]);
        let c = load(None, vars.clone(), &[]).unwrap();
        assert_eq!(c.limits.rate_burst, 12);
        assert_eq!(
            ignored_env(vars),
            ["ZERORELAY_BIN", "ZERORELAY_BUILD_PROFILE"]
        );
    }

    #[test]
    fn bad_env_value_is_named() {
        let e = load(None, env(&[("ZERORELAY_SERVER_HEARTBEAT_MS", "fast")]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ZERORELAY_SERVER_HEARTBEAT_MS") && e.contains("integer"),
            "{e}"
        );
    }

    #[test]
    fn env_sets_tokens_and_log_file() {
        let c = load(
            None,
            env(&[
                ("ZERORELAY_AUTH_TOKENS", "t1=alice,t2=bob"),
                ("ZERORELAY_LOG_FILE", "/tmp/x.log"),
                ("ZERORELAY_LOG_FORMAT", "json"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.auth.tokens.get("t2").map(String::as_str), Some("bob"));
        assert_eq!(c.log.file.as_deref(), Some("/tmp/x.log"));
        assert_eq!(c.log.format, super::super::LogFormat::Json);
    }

    #[test]
    fn nested_keys_lists_and_optional_strings_come_from_env_and_flags() {
        let c = load(
            None,
            env(&[
                ("ZERORELAY_AUTH_JWT_SECRET", "s3cret"),
                ("ZERORELAY_AUTH_JWT_LEEWAY_S", "5"),
                (
                    "ZERORELAY_SERVER_ALLOWED_ORIGINS",
                    "https://a.example, https://b.example",
                ),
            ]),
            &[
                "auth.callback.timeout_ms=900".into(),
                "tls.watch_ms=0".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.auth.jwt.secret.as_deref(), Some("s3cret"));
        assert_eq!(c.auth.jwt.leeway_s, 5);
        assert_eq!(
            c.server.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.auth.callback.timeout_ms, 900);
        assert_eq!(c.tls.watch_ms, 0);
        let e = load(None, env(&[("ZERORELAY_AUTH_JWT_SECRT", "x")]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ZERORELAY_AUTH_JWT_SECRT"), "{e}");
        let e = load(None, env(&[]), &["auth.jwt.nope=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.jwt.nope"), "{e}");
    }

    #[test]
    fn bad_set_flag_is_refused() {
        for s in [
            "nodot=1",
            "limits.max_frame_bytes",
            "nosuch.key=1",
            "limits.nosuch=1",
        ] {
            assert!(load(None, env(&[]), &[s.into()]).is_err(), "{s}");
        }
        let e = load(None, env(&[]), &["log.format=xml".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("xml"), "{e}");
    }

    #[test]
    fn validation_runs_after_merging() {
        let e = load(None, env(&[]), &["limits.max_frame_bytes=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.max_frame_bytes"), "{e}");
    }
}
