//! Runs the canonical protocol test vectors in `tests/vectors/` (the same
//! files every SDK's tests read).

use std::path::PathBuf;

use serde_json::Value;
use zerorelay::protocol::client::parse;
use zerorelay::protocol::{close, Delivery, DeliveryKind, ServerFrame};
use zerorelay::ErrorCode;

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 1, "{name}");
    v
}

fn cases<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    let c = v[key].as_array().unwrap();
    assert!(!c.is_empty());
    c
}

#[test]
fn client_frames_parse_to_their_canonical_form_or_their_error() {
    let v = load("client-frames.json");
    let mut failures = Vec::new();
    for case in cases(&v, "cases") {
        let name = case["name"].as_str().unwrap();
        let frame = case["frame"].as_str().unwrap();
        match (parse(frame), case.get("parsed"), case.get("error")) {
            (Ok(f), Some(expected), None) => {
                let got: Value = serde_json::from_str(&f.encode()).unwrap();
                if &got != expected {
                    failures.push(format!("{name}: parsed {got}, expected {expected}"));
                }
                // The canonical form is a fixed point.
                let again = parse(&f.encode()).map(|g| g.encode());
                if again.as_deref() != Ok(f.encode().as_str()) {
                    failures.push(format!("{name}: canonical form does not round-trip"));
                }
            }
            (Err(e), None, Some(expected)) => {
                let code = expected["code"].as_str().unwrap();
                if e.error.code.as_str() != code {
                    failures.push(format!("{name}: error {}, expected {code}", e.error.code));
                }
                let id = serde_json::to_value(&e.id).unwrap();
                if id != expected["id"] {
                    failures.push(format!(
                        "{name}: error id {id}, expected {}",
                        expected["id"]
                    ));
                }
                if e.error.message.is_empty() {
                    failures.push(format!("{name}: empty message"));
                }
            }
            (Ok(f), _, _) => failures.push(format!(
                "{name}: parsed {} but expected an error",
                f.encode()
            )),
            (Err(e), _, _) => failures.push(format!("{name}: error {e} but expected a parse")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing vectors:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn server_frames_decode_and_re_encode_unchanged() {
    let v = load("server-frames.json");
    for case in cases(&v, "cases") {
        let name = case["name"].as_str().unwrap();
        let text = case["frame"].to_string();
        let frame = ServerFrame::decode(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again: Value = serde_json::from_str(&frame.encode()).unwrap();
        assert_eq!(again, case["frame"], "{name}");
    }
}

#[test]
fn deliveries_are_encoded_byte_for_byte() {
    let v = load("server-frames.json");
    for case in cases(&v, "deliveries") {
        let name = case["name"].as_str().unwrap();
        let kind: DeliveryKind = serde_json::from_value(case["kind"].clone()).unwrap();
        let d = Delivery::new(
            kind,
            case["from"].as_str(),
            case["from_session"].as_str(),
            case["group"].as_str(),
            case["data"].as_str().unwrap(),
            case["ts"].as_u64().unwrap(),
        );
        let frame = d.frame(case["seq"].as_u64().unwrap());
        assert_eq!(frame, case["frame"].as_str().unwrap(), "{name}");
        assert!(
            matches!(ServerFrame::decode(&frame), Ok(ServerFrame::Message(_))),
            "{name}"
        );
    }
}

#[test]
fn error_and_close_code_tables_match_the_implementation() {
    let v = load("codes.json");
    let listed: Vec<&str> = cases(&v, "error_codes")
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    let ours: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, ours);
    for c in ErrorCode::ALL {
        assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
    }
    let listed: Vec<(u16, &str, bool)> = cases(&v, "close_codes")
        .iter()
        .map(|c| {
            (
                c["code"].as_u64().unwrap() as u16,
                c["name"].as_str().unwrap(),
                c["reconnect"].as_bool().unwrap(),
            )
        })
        .collect();
    let ours: Vec<(u16, &str, bool)> = close::ALL
        .iter()
        .map(|&(code, name)| (code, name, close::is_retryable(code)))
        .collect();
    assert_eq!(listed, ours);
}

#[cfg(feature = "client")]
#[test]
fn client_side_codes_match_the_table_every_sdk_reads() {
    let v = load("codes.json");
    let listed: Vec<&str> = cases(&v, "client_codes")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(listed, zerorelay::client::ClientError::CLIENT_CODES);
}
