//! The `zerorelay` command, run as a real process.
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_zerorelay");

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("ZERORELAY_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Starts `zerorelay serve` with extra args; returns the process and its URL.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    clean_env(&mut cmd)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("zerorelay listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    clean_env(&mut cmd)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

async fn hello(
    url: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Value,
) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"type":"hello","v":1,"user":"cli"}).to_string(),
    ))
    .await
    .unwrap();
    let w = match tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    (ws, w)
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.kill().unwrap();
    panic!("zerorelay did not exit after SIGTERM");
}

#[tokio::test]
async fn serve_runs_a_relay_and_sigterm_closes_clients_with_1001() {
    let (mut child, url) = serve(&[], &[]);
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/ws"),
        "{url}"
    );
    let (mut ws, w) = hello(&url).await;
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["user"], "cli");
    let status = tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 1001);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn flags_beat_environment_beat_file() {
    let dir = std::env::temp_dir().join(format!("zerorelay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("relay.toml");
    std::fs::write(
        &file,
        "[server]\nheartbeat_ms = 1111\n[session]\nttl_ms = 2222\n",
    )
    .unwrap();
    let (mut child, url) = serve(
        &[
            "--config",
            file.to_str().unwrap(),
            "--set",
            "server.heartbeat_ms=3333",
        ],
        &[
            ("ZERORELAY_SERVER_HEARTBEAT_MS", "4444"),
            ("ZERORELAY_SESSION_TTL_MS", "5555"),
        ],
    );
    let (_ws, w) = hello(&url).await;
    assert_eq!(w["heartbeat_ms"], 3333, "flag wins over env and file");
    assert_eq!(w["session_ttl_ms"], 5555, "env wins over file");
    tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn json_logs_go_to_the_log_file() {
    let log = std::env::temp_dir().join(format!("zerorelay-log-{}.json", std::process::id()));
    let (mut child, url) = serve(
        &[
            "--log-format",
            "json",
            "--log-file",
            log.to_str().unwrap(),
            "--log-level",
            "debug",
        ],
        &[],
    );
    let _ = hello(&url).await;
    tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "The relay is listening."),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "A client said hello."),
        "{text}"
    );
    std::fs::remove_file(log).unwrap();
}

#[test]
fn invalid_configuration_is_refused_naming_the_key() {
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec!["--set", "limits.max_frame_bytes=1"],
            vec![],
            "limits.max_frame_bytes",
        ),
        (vec!["--set", "limits.nope=1"], vec![], "limits.nope"),
        (vec!["--listen", "not-an-address"], vec![], "server.listen"),
        (
            vec![],
            vec![("ZERORELAY_LIMITS_SLOW_CONSUMER_MS", "lots")],
            "ZERORELAY_LIMITS_SLOW_CONSUMER_MS",
        ),
        (
            vec![],
            vec![("ZERORELAY_LIMITS_TYPO", "1")],
            "ZERORELAY_LIMITS_TYPO",
        ),
        (
            vec!["--config", "/nonexistent/zerorelay.toml"],
            vec![],
            "/nonexistent/zerorelay.toml",
        ),
        (vec!["--log-level", "[[["], vec![], "log.level"),
    ];
    for (args, env, needle) in cases {
        let mut all = vec!["serve"];
        all.extend(args.iter().copied());
        let out = run(&all, &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(err.contains(needle), "{args:?} {env:?}: {err}");
    }
}

#[test]
fn an_unknown_key_in_the_file_is_named() {
    let file = std::env::temp_dir().join(format!("zerorelay-bad-{}.toml", std::process::id()));
    std::fs::write(&file, "[limits]\nmax_frame_bites = 10\n").unwrap();
    let out = run(&["serve", "--config", file.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("max_frame_bites"), "{err}");
    std::fs::remove_file(file).unwrap();
}

#[test]
fn development_mode_refuses_a_non_loopback_address() {
    let out = run(&["serve", "--listen", "0.0.0.0:0"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("without authentication") && err.contains("--insecure"),
        "{err}"
    );
}

#[test]
fn config_prints_the_effective_configuration() {
    let out = run(
        &["config", "--set", "limits.slow_consumer_ms=77"],
        &[("ZERORELAY_AUTH_TOKENS", "secret=alice")],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("slow_consumer_ms = 77"), "{text}");
    // Tokens are credentials: shown masked, with their users.
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("\"<redacted 1>\" = \"alice\""), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
}

#[test]
fn other_zerorelay_variables_are_ignored_with_a_warning() {
    let out = run(
        &["config"],
        &[
            ("ZERORELAY_BUILD_PROFILE", "debug"),
            ("ZERORELAY_BIN", "/x"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("ZERORELAY_BIN") && err.contains("ZERORELAY_BUILD_PROFILE"),
        "{err}"
    );
}

#[test]
fn help_lists_commands_and_flags() {
    let out = run(&["--help"], &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    for word in ["serve", "config", "ZERORELAY_"] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
    let out = run(&["serve", "--help"], &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--config",
        "--set",
        "--log-level",
        "--log-format",
        "--log-file",
        "--insecure",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

/// Sends `frame` and returns the next text frame.
async fn ask(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    frame: Value,
) -> Value {
    ws.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn sighup_puts_reloaded_roles_in_force_without_dropping_connections() {
    let dir = std::env::temp_dir().join(format!("zerorelay-cli-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("relay.toml");
    let config = |allow: &str| {
        format!(
            "[auth]\ndefault_roles = [\"member\"]\n[auth.jwt]\nsecret = \"hup-secret-0123456789abcdef0123\"\n[auth.roles.member]\nallow = [{allow}]\n"
        )
    };
    std::fs::write(&file, config("\"join:room-*\"")).unwrap();
    let (mut child, url) = serve(&["--config", file.to_str().unwrap()], &[]);
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub":"alice","exp": zerorelay::auth::jwt::now_s() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"hup-secret-0123456789abcdef0123"),
    )
    .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let w = ask(&mut ws, json!({"type":"hello","v":1,"token":token})).await;
    assert_eq!(w["user"], "alice", "{w}");
    let r = ask(&mut ws, json!({"type":"join","id":1,"group":"lobby"})).await;
    assert_eq!(r["code"], "forbidden", "{r}");

    // A broken file is refused on reload and changes nothing.
    std::fs::write(&file, config("\"fly:away\"")).unwrap();
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(hup().success());
    std::fs::write(&file, config("\"join:room-*\", \"join:lobby\"")).unwrap();
    assert!(hup().success());
    let mut id = 2;
    let joined = loop {
        let r = ask(&mut ws, json!({"type":"join","id":id,"group":"lobby"})).await;
        if r["type"] == "ok" || id > 100 {
            break r;
        }
        id += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(joined["type"], "ok", "{joined}");
    let r = ask(&mut ws, json!({"type":"join","id":"r","group":"room-9"})).await;
    assert_eq!(r["type"], "ok", "{r}");
    let status = tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_jwt_and_tls_example_configuration_loads_with_its_secret_masked() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/jwt-tls/relay.toml"
    );
    let out = run(
        &["config", "--config", example],
        &[("ZERORELAY_AUTH_JWT_SECRET", "change-me")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("roles_claim = \"roles\""), "{text}");
    assert!(
        text.contains("secret = \"***\"") && !text.contains("change-me"),
        "{text}"
    );
}

#[test]
fn config_check_validates_a_file_and_every_file_it_names_without_starting() {
    let dir = std::env::temp_dir().join(format!("zerorelay-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    let schema = dir.join("chat.json");
    std::fs::write(&schema, r#"{"type":"object"}"#).unwrap();
    std::fs::write(
        &good,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[[validate]]\ngroup = \"chat-*\"\nschema_file = {:?}\n",
            schema.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = run(&["config", "--check", good.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let cases = [
        (
            "typo.toml",
            "[server]\nlisten_address = \"x\"\n".to_owned(),
            "listen_address",
        ),
        (
            "schema.toml",
            "[[validate]]\ngroup = \"chat-*\"\nschema_file = \"/nonexistent/s.json\"\n".to_owned(),
            "/nonexistent/s.json",
        ),
        (
            "key.toml",
            "[auth.jwt]\npublic_key_file = \"/nonexistent/key.pem\"\n".to_owned(),
            "/nonexistent/key.pem",
        ),
    ];
    for (name, text, named) in cases {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        let out = run(&["config", "--check", f.to_str().unwrap()], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(named), "{name}: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn logs_are_exported_over_otlp_http_to_a_collector() {
    use common::http::{HttpServer, Reply};
    let bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let keep = bodies.clone();
    let collector = HttpServer::start("/v1/logs", move |body| {
        keep.lock().unwrap().push(body.to_owned());
        Reply {
            status: 200,
            body: String::new(),
            delay: Duration::ZERO,
        }
    })
    .await;
    let base = collector.url.strip_suffix("/v1/logs").unwrap().to_owned();
    let endpoint = format!("log.otlp.endpoint={base}");
    let (mut child, url) = serve(
        &[
            "--set",
            &endpoint,
            "--set",
            "log.otlp.service_name=relay-under-test",
        ],
        &[],
    );
    let (ws, w) = hello(&url).await;
    assert_eq!(w["type"], "welcome");
    drop(ws);
    // SIGTERM: the relay shuts down and flushes what the exporter holds.
    let status = tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let got = bodies.lock().unwrap().join("\n");
    assert!(collector.hits() >= 1, "the collector got nothing");
    for text in [
        "The relay is listening.",
        "relay-under-test",
        "service.name",
    ] {
        assert!(
            got.contains(text),
            "{text:?} is not in what the collector got"
        );
    }
    // Only the relay's own events: not the exporter's HTTP client's.
    assert!(
        !got.contains("hyper"),
        "the exporter exported its own client's logs"
    );
}
