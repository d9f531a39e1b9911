//! The Node SDK's client options are generated from the engine's own
//! description of them ([`ClientOptions::describe`]): `sdk-node/lib/
//! options.generated.js` (the table `lib/options.js` checks options with)
//! and the `ClientOptions` interface in `sdk-node/lib/index.d.ts` (between
//! its `BEGIN/END GENERATED` lines). This test fails when either is stale;
//! `ZERORELAY_UPDATE_OPTIONS=1 cargo test -p zerorelay-node --test options`
//! rewrites them.
//!
//! JavaScript names are the engine's in camelCase, except the renames in
//! [`RENAMES`]; enum values are camelCase too (`fail_fast` → `'failFast'`).

use std::fmt::Write as _;

use serde_json::Value;
use zerorelay::client::options::{OptionKind, OptionSpec};
use zerorelay::client::ClientOptions;

/// Engine option paths whose JavaScript name is not the camelCase of the
/// last key. (The public names predate the generator; these keep them.)
const RENAMES: &[(&str, &str)] = &[("queue", "offlineQueue"), ("queue.full", "whenFull")];

/// Options whose default the JavaScript layer sets itself, with the
/// documented default.
const JS_DEFAULTS: &[(&str, &str)] = &[("client_name", "'zerorelay-node/<version>'")];

/// The largest integer a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

const BEGIN: &str = "// BEGIN GENERATED CLIENT OPTIONS";
const END: &str = "// END GENERATED CLIENT OPTIONS";

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn js_name(path: &str, name: &str) -> String {
    RENAMES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or_else(|| camel(name), |(_, js)| (*js).to_owned())
}

fn path_of(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A JavaScript string literal (single quotes, as the SDK's style has it).
fn quote(s: &str) -> String {
    let json = serde_json::to_string(s).expect("strings are JSON");
    format!("'{}'", json[1..json.len() - 1].replace('\'', "\\'"))
}

/// The table `lib/options.js` walks: JavaScript name → `{ key, type, … }`.
fn js_table(fields: &[OptionSpec], prefix: &str, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    for f in fields {
        let path = path_of(prefix, f.name);
        let js = js_name(&path, f.name);
        let head = format!("{pad}{js}: {{ key: {}, ", quote(f.name));
        match &f.kind {
            OptionKind::Boolean => writeln!(out, "{head}type: 'boolean' }},"),
            OptionKind::String => writeln!(out, "{head}type: 'string' }},"),
            OptionKind::StringMap => writeln!(out, "{head}type: 'stringMap' }},"),
            OptionKind::Integer { max } => {
                let max = if *max > MAX_SAFE_INTEGER {
                    "Number.MAX_SAFE_INTEGER".to_owned()
                } else {
                    max.to_string()
                };
                writeln!(out, "{head}type: 'integer', max: {max} }},")
            }
            OptionKind::Enum { values } => {
                let values: Vec<String> = values
                    .iter()
                    .map(|v| format!("{}: {}", camel(&v.name), quote(&v.name)))
                    .collect();
                writeln!(
                    out,
                    "{head}type: 'enum', values: {{ {} }} }},",
                    values.join(", ")
                )
            }
            OptionKind::Section { fields } => {
                writeln!(out, "{head}type: 'section', fields: {{").unwrap();
                js_table(fields, &path, indent + 1, out);
                writeln!(out, "{pad}}} }},")
            }
            other => panic!("{path}: the Node SDK does not know the option kind {other:?}"),
        }
        .unwrap();
    }
}

fn js_file() -> String {
    let mut out = String::from(
        "'use strict'\n\
         // Generated from the engine's ClientOptions (zerorelay/src/client/options.rs)\n\
         // by bindings/node/tests/options.rs; do not edit. To regenerate:\n\
         // ZERORELAY_UPDATE_OPTIONS=1 cargo test -p zerorelay-node --test options\n\
         //\n\
         // JavaScript name -> { key: the engine's key, type, and per type: max\n\
         // (integer), values (enum: JavaScript value -> engine value), fields\n\
         // (section) }.\n\
         module.exports = {\n",
    );
    js_table(&ClientOptions::describe(), "", 1, &mut out);
    out.push_str("}\n");
    out
}

/// A default as the documentation shows it (a JSDoc `@default`), if it
/// says anything.
fn shown_default(path: &str, f: &OptionSpec) -> Option<String> {
    if let Some((_, d)) = JS_DEFAULTS.iter().find(|(p, _)| *p == path) {
        return Some((*d).to_owned());
    }
    match (&f.kind, &f.default) {
        (_, Value::Null) | (OptionKind::Section { .. }, _) => None,
        (_, Value::Object(m)) if m.is_empty() => None,
        (OptionKind::Enum { .. }, Value::String(s)) => Some(quote(&camel(s))),
        (_, Value::String(s)) => Some(quote(s)),
        (_, v) => Some(v.to_string()),
    }
}

fn ts_type(f: &OptionSpec, path: &str, indent: usize) -> String {
    match &f.kind {
        OptionKind::Boolean => "boolean".to_owned(),
        OptionKind::Integer { .. } => "number".to_owned(),
        OptionKind::String => "string".to_owned(),
        OptionKind::StringMap => "Record<string, string>".to_owned(),
        OptionKind::Enum { values } => values
            .iter()
            .map(|v| quote(&camel(&v.name)))
            .collect::<Vec<_>>()
            .join(" | "),
        OptionKind::Section { fields } => {
            let mut out = String::from("{\n");
            ts_fields(fields, path, indent + 1, &mut out);
            out.push_str(&"  ".repeat(indent));
            out.push('}');
            out
        }
        other => panic!("{path}: the Node SDK does not know the option kind {other:?}"),
    }
}

fn ts_fields(fields: &[OptionSpec], prefix: &str, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    for f in fields {
        let path = path_of(prefix, f.name);
        let mut doc: Vec<String> = f.doc.lines().map(str::to_owned).collect();
        if let OptionKind::Enum { values } = &f.kind {
            for v in values {
                let mut lines = v.doc.lines();
                let first = lines.next().unwrap_or_default();
                doc.push(format!("- {}: {first}", quote(&camel(&v.name))));
                doc.extend(lines.map(|l| format!("  {l}")));
            }
        }
        if let Some(d) = shown_default(&path, f) {
            doc.push(format!("@default {d}"));
        }
        if doc.len() == 1 {
            writeln!(out, "{pad}/** {} */", doc[0]).unwrap();
        } else {
            writeln!(out, "{pad}/**").unwrap();
            for line in &doc {
                writeln!(out, "{pad} * {line}").unwrap();
            }
            writeln!(out, "{pad} */").unwrap();
        }
        let ty = ts_type(f, &path, indent);
        writeln!(out, "{pad}{}?: {ty}", js_name(&path, f.name)).unwrap();
    }
}

fn ts_block() -> String {
    let mut out = format!(
        "{BEGIN}\n\
         // From the engine's ClientOptions (zerorelay/src/client/options.rs) by\n\
         // bindings/node/tests/options.rs: edit the Rust doc comments, then run\n\
         // ZERORELAY_UPDATE_OPTIONS=1 cargo test -p zerorelay-node --test options\n\
         /** What the client engine can be told (`connect` adds a few options of the SDK's own). */\n\
         export interface ClientOptions {{\n"
    );
    ts_fields(&ClientOptions::describe(), "", 1, &mut out);
    out.push_str("}\n");
    out.push_str(END);
    out
}

/// `index.d.ts` with its generated block replaced.
fn with_ts_block(dts: &str) -> String {
    let start = dts
        .find(BEGIN)
        .unwrap_or_else(|| panic!("index.d.ts has no `{BEGIN}` line"));
    let end = dts[start..]
        .find(END)
        .map(|i| start + i + END.len())
        .unwrap_or_else(|| panic!("index.d.ts has no `{END}` line"));
    format!("{}{}{}", &dts[..start], ts_block(), &dts[end..])
}

#[test]
fn every_rename_names_an_engine_option() {
    fn paths(fields: &[OptionSpec], prefix: &str, out: &mut Vec<String>) {
        for f in fields {
            let path = path_of(prefix, f.name);
            if let OptionKind::Section { fields } = &f.kind {
                paths(fields, &path, out);
            }
            out.push(path);
        }
    }
    let mut all = Vec::new();
    paths(&ClientOptions::describe(), "", &mut all);
    for (path, _) in RENAMES.iter().chain(JS_DEFAULTS) {
        assert!(all.iter().any(|p| p == path), "{path} is no engine option");
    }
}

#[test]
fn names_are_camel_case() {
    assert_eq!(camel("request_timeout_ms"), "requestTimeoutMs");
    assert_eq!(camel("seed"), "seed");
    assert_eq!(js_name("queue.full", "full"), "whenFull");
    assert_eq!(quote("it's \"x\""), r#"'it\'s \"x\"'"#);
}

#[test]
fn the_committed_option_files_match_the_engine() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let js_path = format!("{dir}/../../sdk-node/lib/options.generated.js");
    let dts_path = format!("{dir}/../../sdk-node/lib/index.d.ts");
    let dts = std::fs::read_to_string(&dts_path).expect("sdk-node/lib/index.d.ts is readable");
    let (js, new_dts) = (js_file(), with_ts_block(&dts));
    if std::env::var_os("ZERORELAY_UPDATE_OPTIONS").is_some() {
        std::fs::write(&js_path, &js).expect("options.generated.js is writable");
        std::fs::write(&dts_path, &new_dts).expect("index.d.ts is writable");
        return;
    }
    let committed = std::fs::read_to_string(&js_path).unwrap_or_default();
    let stale = "is stale: run `ZERORELAY_UPDATE_OPTIONS=1 cargo test -p zerorelay-node --test options` and commit the result";
    assert!(committed == js, "{js_path} {stale}");
    assert!(dts == new_dts, "{dts_path}'s ClientOptions {stale}");
}
