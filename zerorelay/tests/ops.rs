//! The HTTP surface beside `/ws`: `/metrics` after a scripted workload
//! (exact values, valid exposition), health through every state, the
//! server API with its keys, and `[admin] listen`. Everything goes over
//! real sockets to a real relay.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{config, start, Client, WAIT};
use serde_json::{json, Value};
use zerorelay::Relay;

const KEY: &str = "test-key-0123456789abcdef";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .no_proxy()
        .build()
        .unwrap()
}

/// `(status, body as JSON)`.
async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

/// A scrape as `name{labels}` → value (Prometheus text).
async fn scrape(base: &str) -> (String, HashMap<String, f64>) {
    let r = http().get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let mut m = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (k, v) = line.rsplit_once(' ').unwrap();
        m.insert(k.to_owned(), v.parse::<f64>().unwrap());
    }
    (text, m)
}

fn val(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in the scrape"))
}

/// Finds promtool: `PROMTOOL`, else on `PATH`. `make promtool` installs
/// it from Debian's `prometheus` package into target/tools.
fn promtool() -> std::path::PathBuf {
    let p = std::env::var_os("PROMTOOL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "promtool".into());
    match std::process::Command::new(&p).arg("--version").output() {
        Ok(o) if o.status.success() => p,
        _ => panic!(
            "promtool is needed to check the exposition and the alert rules: run `make promtool` (it unpacks Debian's prometheus package into target/tools) and set PROMTOOL, or install prometheus"
        ),
    }
}

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[tokio::test]
async fn metrics_after_a_scripted_workload_have_exact_values_and_pass_promtool() {
    let s = start(config()).await;
    let base = format!("http://{}", s.addr);
    let mut alice = Client::connect(&s, "alice").await;
    let mut bob = Client::connect(&s, "bob").await;
    alice.ok(json!({"type":"join","id":1,"group":"room"})).await;
    bob.ok(json!({"type":"join","id":1,"group":"room"})).await;
    for i in 0..3 {
        alice
            .ok(json!({"type":"publish","id":10 + i,"group":"room","data":i}))
            .await;
    }
    alice
        .ok(json!({"type":"send","id":20,"to":"bob","data":"hi"}))
        .await;
    for _ in 0..4 {
        bob.message().await;
    }
    bob.send(json!({"type":"ack","seq":4})).await;
    bob.send_text("{not json").await;
    bob.error("bad_frame").await;
    // Sent to nobody: an error, no delivery.
    alice
        .send(json!({"type":"send","id":21,"to":"carol","data":1}))
        .await;
    alice.error("not_found").await;

    let (_, m) = scrape(&base).await;
    for (key, want) in [
        ("zerorelay_connections", 2.0),
        ("zerorelay_connections_opened_total", 2.0),
        ("zerorelay_sessions{state=\"live\"}", 2.0),
        ("zerorelay_sessions{state=\"detached\"}", 0.0),
        ("zerorelay_frames_received_total{type=\"hello\"}", 2.0),
        ("zerorelay_frames_received_total{type=\"join\"}", 2.0),
        ("zerorelay_frames_received_total{type=\"publish\"}", 3.0),
        ("zerorelay_frames_received_total{type=\"send\"}", 2.0),
        ("zerorelay_frames_received_total{type=\"ack\"}", 1.0),
        ("zerorelay_frames_received_total{type=\"invalid\"}", 1.0),
        ("zerorelay_deliveries_total{kind=\"group\"}", 3.0),
        ("zerorelay_deliveries_total{kind=\"direct\"}", 1.0),
        ("zerorelay_deliveries_total{kind=\"broadcast\"}", 0.0),
        ("zerorelay_errors_sent_total{code=\"bad_frame\"}", 1.0),
        ("zerorelay_errors_sent_total{code=\"not_found\"}", 1.0),
        ("zerorelay_errors_sent_total{code=\"forbidden\"}", 0.0),
        ("zerorelay_acks_total", 1.0),
        ("zerorelay_groups", 1.0),
        ("zerorelay_group_members", 2.0),
        ("zerorelay_routing_latency_seconds_count", 4.0),
        (
            "zerorelay_messages_dropped_total{reason=\"outbox_full\"}",
            0.0,
        ),
        ("zerorelay_gaps_total", 0.0),
        ("zerorelay_resumes_total", 0.0),
        ("zerorelay_redeliveries_total", 0.0),
        ("zerorelay_slow_consumer_closes_total", 0.0),
    ] {
        assert_eq!(val(&m, key), want, "{key}");
    }
    // Bob acknowledged all four deliveries; alice was sent none.
    assert_eq!(val(&m, "zerorelay_outbox_bytes"), 0.0);
    assert!(val(&m, "zerorelay_routing_latency_seconds_sum") > 0.0);
    assert!(val(&m, "zerorelay_process_resident_memory_bytes") > 1e6);
    assert!(val(&m, "zerorelay_process_open_fds") >= 3.0);

    // A resume re-sends what was not acknowledged, and is counted.
    alice
        .ok(json!({"type":"publish","id":30,"group":"room","data":"x"}))
        .await;
    bob.message().await;
    let (session, key) = (bob.session.clone(), bob.key.clone());
    bob.cut();
    s.wait_detached(&session).await;
    let (_, m) = scrape(&base).await;
    assert_eq!(val(&m, "zerorelay_sessions{state=\"detached\"}"), 1.0);
    // Gone without a close frame: `none`, not a protocol error.
    assert_eq!(
        val(&m, "zerorelay_connections_closed_total{code=\"none\"}"),
        1.0
    );
    let (mut bob, w) = Client::resume_with_key(&s, "bob", &session, &key, 4).await;
    assert_eq!(w["resumed"], true, "{w}");
    let again = bob.message().await;
    assert_eq!(again["seq"], 5);
    bob.close().await;
    alice.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (text, m) = scrape(&base).await;
    assert_eq!(val(&m, "zerorelay_resumes_total"), 1.0);
    assert_eq!(val(&m, "zerorelay_redeliveries_total"), 1.0);
    // `close(None)`: a close frame without a code, 1005.
    assert_eq!(
        val(&m, "zerorelay_connections_closed_total{code=\"1005\"}"),
        2.0
    );
    assert_eq!(
        val(&m, "zerorelay_connections_closed_total{code=\"none\"}"),
        1.0
    );
    assert_eq!(val(&m, "zerorelay_connections"), 0.0);
    assert_eq!(
        val(
            &m,
            "zerorelay_http_requests_total{endpoint=\"/metrics\",status=\"200\"}"
        ),
        2.0
    );
    // No user, session or group name is a label.
    for name in ["alice", "bob", "room", &session] {
        assert!(!text.contains(name), "{name} appears in the scrape");
    }

    // promtool accepts the exposition.
    let file = std::env::temp_dir().join(format!("zerorelay-metrics-{}.txt", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // OpenMetrics when asked for.
    let r = http()
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(r.text().await.unwrap().ends_with("# EOF\n"));
    s.stop().await;
}

#[tokio::test]
async fn the_alert_rules_pass_promtool_and_the_dashboard_names_only_real_metrics() {
    let rules = repo_file("docs/ops/alerts.yml");
    let out = std::process::Command::new(promtool())
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let s = start(config()).await;
    let (text, _) = scrape(&format!("http://{}", s.addr)).await;
    // The metric families the relay exposes (counters with and without _total).
    let mut families: Vec<String> = Vec::new();
    for l in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = l.split(' ').next().unwrap().to_owned();
        families.push(name);
    }
    let exists = |n: &str| {
        families.iter().any(|f| {
            n == f
                || n.strip_suffix("_total") == Some(f)
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| n.strip_suffix(s) == Some(f))
                || n.strip_suffix("_total")
                    .is_some_and(|b| b == f.trim_end_matches("_total"))
        })
    };
    let names_in = |t: &str| -> Vec<String> {
        let mut v = Vec::new();
        let mut rest = t;
        while let Some(i) = rest.find("zerorelay_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            v.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
        v
    };
    let alerts = std::fs::read_to_string(&rules).unwrap();
    let dashboard = std::fs::read_to_string(repo_file("docs/ops/grafana-dashboard.json")).unwrap();
    let parsed: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(!parsed["panels"].as_array().unwrap().is_empty());
    let mut checked = 0;
    for (what, t) in [
        ("alerts.yml", &alerts),
        ("grafana-dashboard.json", &dashboard),
    ] {
        for n in names_in(t) {
            assert!(
                exists(&n),
                "{what} names {n}, which the relay does not expose"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} metric names found");
    s.stop().await;
}

#[tokio::test]
async fn health_says_ready_then_full_then_draining() {
    let mut c = config();
    c.server.max_connections = 2;
    c.server.shutdown_grace_ms = 3_000;
    let relay = Relay::builder(c).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The HTTP surface on an admin listener before the WebSocket listener
    // runs: not ready yet.
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    tokio::spawn(relay.clone().serve_admin(admin));
    let (st, b) = call(http().get(format!("http://{admin_addr}/readyz"))).await;
    assert_eq!(
        (st, b),
        (
            503,
            json!({"status":"not_ready","reason":"not listening yet"})
        )
    );
    // A host that mounts the handlers accepts the WebSockets itself: ready.
    let req = hyper::Request::get("/readyz")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(relay.handle_http(req, None).await.status(), 200);
    let task = tokio::spawn(relay.clone().serve(listener));
    let s = common::Server::from_parts(relay.clone(), addr, task);
    let base = format!("http://{addr}");
    let (st, b) = call(http().get(format!("{base}/healthz"))).await;
    assert_eq!((st, b), (200, json!({"status":"ok"})));
    let (st, b) = call(http().get(format!("{base}/readyz"))).await;
    assert_eq!((st, b), (200, json!({"status":"ready"})));

    // At server.max_connections: not ready.
    let a = Client::connect(&s, "a").await;
    let mut b2 = Client::connect(&s, "b").await;
    let (st, b) = call(http().get(format!("{base}/readyz"))).await;
    assert_eq!(st, 503);
    assert_eq!(b["reason"], "at server.max_connections");
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (st, _) = call(http().get(format!("{base}/readyz"))).await;
    assert_eq!(st, 200);

    // Shutting down: b2 does not answer the close at once, so the relay
    // drains, and meanwhile /readyz says 503 while /healthz still serves.
    let stopping = tokio::spawn({
        let relay = relay.clone();
        async move { relay.shutdown().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (st, b) = call(http().get(format!("{base}/readyz"))).await;
    assert_eq!(
        (st, b),
        (503, json!({"status":"not_ready","reason":"shutting down"}))
    );
    let (st, _) = call(http().get(format!("{base}/healthz"))).await;
    assert_eq!(st, 200);
    // A WebSocket during the drain is turned away with 1001.
    let mut late = Client::raw(&s).await;
    assert_eq!(late.closed().await.0, 1001);
    assert_eq!(b2.closed().await.0, 1001);
    drop(b2);
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
    s.stop().await;
}

async fn api_relay(keys: &[&str], tokens: bool) -> common::Server {
    let mut c = config();
    c.api.keys = keys.iter().map(|k| k.to_string()).collect();
    if tokens {
        c.auth.tokens = [("tok-alice".to_owned(), "alice".to_owned())].into();
    }
    start(c).await
}

#[tokio::test]
async fn the_api_routes_like_the_protocol_and_answers_deliveries() {
    let s = api_relay(&[KEY], false).await;
    let base = format!("http://{}/api", s.addr);
    let mut a1 = Client::connect(&s, "alice").await;
    let mut a2 = Client::connect(&s, "alice").await;
    let mut bob = Client::connect(&s, "bob").await;
    a1.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    a2.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    bob.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    let post = |path: &str, body: Value| {
        http()
            .post(format!("{base}/{path}"))
            .bearer_auth(KEY)
            .json(&body)
    };

    let (st, b) = call(post("publish", json!({"group":"room-1","data":{"n":1}}))).await;
    assert_eq!((st, b), (200, json!({"deliveries":3})));
    for c in [&mut a1, &mut a2, &mut bob] {
        let m = c.message().await;
        assert_eq!(
            (
                m["kind"].clone(),
                m["group"].clone(),
                m["data"].clone(),
                m["from"].clone()
            ),
            (json!("group"), json!("room-1"), json!({"n":1}), Value::Null)
        );
    }
    let (st, b) = call(post("send", json!({"to":"alice","data":"hi"}))).await;
    assert_eq!((st, b), (200, json!({"deliveries":2})));
    a1.message().await;
    a2.message().await;
    let (st, b) = call(post("send", json!({"session": bob.session,"data":"you"}))).await;
    assert_eq!((st, b), (200, json!({"deliveries":1})));
    assert_eq!(bob.message().await["data"], "you");
    let (st, b) = call(post("broadcast", json!({"data":[1,2]}))).await;
    assert_eq!((st, b), (200, json!({"deliveries":3})));
    for c in [&mut a1, &mut a2, &mut bob] {
        assert_eq!(c.message().await["kind"], "broadcast");
    }

    // Listings.
    let get = |path: &str| {
        http()
            .get(format!("{base}/{path}"))
            .header("x-api-key", KEY)
    };
    let (st, b) = call(get("presence?group=room-1")).await;
    assert_eq!(
        (st, b),
        (
            200,
            json!({"group":"room-1","members":[{"user":"alice","sessions":2},{"user":"bob","sessions":1}],"anonymous":0})
        )
    );
    let (st, b) = call(get("groups")).await;
    assert_eq!((st, b), (200, json!([{"name":"room-1","members":3}])));
    let (st, b) = call(get("sessions?user=alice")).await;
    assert_eq!(st, 200);
    assert_eq!(b.as_array().unwrap().len(), 2);
    assert!(
        !b.to_string().contains(&a1.key),
        "resume keys are never listed"
    );
    let (st, b) = call(get("stats")).await;
    assert_eq!(st, 200);
    assert_eq!(b["sessions"], 3);

    // Disconnect and revoke, by session and by user.
    let (st, b) = call(post("disconnect", json!({"session": bob.session}))).await;
    assert_eq!((st, b), (200, json!({"disconnected":1})));
    assert_eq!(bob.closed().await.0, 4005);
    let (st, b) = call(post("revoke", json!({"user":"alice"}))).await;
    assert_eq!((st, b), (200, json!({"revoked":2})));
    assert_eq!(a1.closed().await.0, 4006);
    assert_eq!(a2.closed().await.0, 4006);
    let (st, b) = call(post("disconnect", json!({"user":"alice"}))).await;
    assert_eq!((st, b["code"].clone()), (404, json!("not_found")));
    s.stop().await;
}

#[tokio::test]
async fn a_retried_publish_with_the_same_idempotency_key_routes_once() {
    let s = api_relay(&[KEY], false).await;
    let url = format!("http://{}/api/publish", s.addr);
    let mut c = Client::connect(&s, "alice").await;
    c.ok(json!({"type":"join","id":1,"group":"g"})).await;
    let publish = |key: &str| {
        http()
            .post(&url)
            .bearer_auth(KEY)
            .header("idempotency-key", key)
            .json(&json!({"group":"g","data":key}))
    };
    let first = publish("k-1").send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    assert_eq!(
        first.json::<Value>().await.unwrap(),
        json!({"deliveries":1})
    );
    let again = publish("k-1").send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        json!({"deliveries":1})
    );
    let (st, _) = call(publish("k-2")).await;
    assert_eq!(st, 200);
    assert_eq!(c.message().await["data"], "k-1");
    assert_eq!(c.message().await["data"], "k-2");
    c.silent(200).await;
    // A key over 255 characters is refused.
    let (st, b) = call(publish(&"k".repeat(256))).await;
    assert_eq!((st, b["code"].clone()), (400, json!("bad_request")));
    s.stop().await;
}

#[tokio::test]
async fn api_keys_are_required_and_bad_calls_are_refused_precisely() {
    let s = api_relay(&[KEY, "second-key-abcdefghijkl"], false).await;
    let base = format!("http://{}", s.addr);
    let mut other = Client::connect(&s, "carol").await;
    let publish = || http().post(format!("{base}/api/publish"));
    let body = json!({"group":"g","data":1});
    for (req, code) in [
        (publish().json(&body), "unauthorized"),
        (
            publish().bearer_auth("wrong-key-0123456789").json(&body),
            "unauthorized",
        ),
        (
            publish().header("x-api-key", "").json(&body),
            "unauthorized",
        ),
    ] {
        let (st, b) = call(req).await;
        assert_eq!((st, b["code"].clone()), (401, json!(code)), "{b}");
    }
    // Either key works, in either header.
    let (st, _) = call(
        publish()
            .header("x-api-key", "second-key-abcdefghijkl")
            .json(&body),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = call(publish().bearer_auth(KEY).json(&body)).await;
    assert_eq!(st, 200);

    let authed = |r: reqwest::RequestBuilder| r.bearer_auth(KEY);
    let big = "x".repeat(70_000);
    for (req, status, code) in [
        (authed(publish().body("{not json")), 400, "bad_request"),
        (
            authed(publish().json(&json!({"group":"g"}))),
            400,
            "bad_request",
        ),
        (
            authed(publish().json(&json!({"group":"g","data":1,"extra":2}))),
            400,
            "bad_request",
        ),
        (
            authed(publish().json(&json!({"group":"","data":1}))),
            400,
            "bad_request",
        ),
        (
            authed(publish().json(&json!({"group":"g","data":big}))),
            413,
            "too_large",
        ),
        (
            authed(
                http()
                    .post(format!("{base}/api/send"))
                    .json(&json!({"to":"a","session":"s","data":1})),
            ),
            400,
            "bad_request",
        ),
        (
            authed(
                http()
                    .post(format!("{base}/api/send"))
                    .json(&json!({"to":"nobody","data":1})),
            ),
            404,
            "not_found",
        ),
        (
            authed(
                http()
                    .post(format!("{base}/api/send"))
                    .json(&json!({"session":"s_none","data":1})),
            ),
            404,
            "not_found",
        ),
        (
            authed(http().post(format!("{base}/api/revoke")).json(&json!({}))),
            400,
            "bad_request",
        ),
        (
            authed(http().get(format!("{base}/api/presence"))),
            400,
            "bad_request",
        ),
        (
            authed(http().get(format!("{base}/api/publish"))),
            405,
            "bad_request",
        ),
        (
            authed(http().post(format!("{base}/api/stats"))),
            405,
            "bad_request",
        ),
        (http().get(format!("{base}/nothing")), 404, "not_found"),
        (http().post(format!("{base}/healthz")), 405, "bad_request"),
    ] {
        let (st, b) = call(req).await;
        assert_eq!((st, b["code"].clone()), (status, json!(code)), "{b}");
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The client beside all this is unaffected.
    other.ok(json!({"type":"join","id":1,"group":"g"})).await;
    let (st, b) = call(publish().bearer_auth(KEY).json(&body)).await;
    assert_eq!((st, b), (200, json!({"deliveries":1})));
    assert_eq!(other.message().await["data"], 1);
    s.stop().await;
}

#[tokio::test]
async fn without_keys_the_api_is_off_unless_in_development_on_loopback() {
    // Authentication configured, no keys: off.
    let s = api_relay(&[], true).await;
    let (st, b) = call(http().get(format!("http://{}/api/stats", s.addr))).await;
    assert_eq!((st, b["code"].clone()), (403, json!("forbidden")));
    s.stop().await;
    // Development mode, a loopback caller: on.
    let s = api_relay(&[], false).await;
    let (st, b) = call(http().get(format!("http://{}/api/stats", s.addr))).await;
    assert_eq!(st, 200);
    assert_eq!(b["sessions"], 0);
    // The same call from another address is refused (through the mounted handler).
    let req = hyper::Request::get("/api/stats")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let r = s
        .relay
        .handle_http(req, Some("192.0.2.7:4000".parse().unwrap()))
        .await;
    assert_eq!(r.status(), 403);
    s.stop().await;
}

#[tokio::test]
async fn admin_listen_puts_the_http_surface_on_its_own_address() {
    let mut c = config();
    c.admin.listen = Some("127.0.0.1:0".into());
    let relay = Relay::builder(c).build().unwrap();
    let (addr, task) = relay.spawn().await.unwrap();
    let admin = relay.admin_addr().expect("admin bound");
    assert_ne!(admin, addr);
    let (st, _) = call(http().get(format!("http://{admin}/readyz"))).await;
    assert_eq!(st, 200);
    let r = http()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The WebSocket address answers /ws only.
    let (st, b) = call(http().get(format!("http://{addr}/metrics"))).await;
    assert_eq!(st, 404);
    assert!(b["message"].as_str().unwrap().contains("admin.listen"));
    let s = common::Server::from_parts(relay.clone(), addr, task);
    let mut c = Client::connect(&s, "alice").await;
    assert_eq!(
        c.request(json!({"type":"ping","id":1})).await["type"],
        "pong"
    );
    c.close().await;
    s.stop().await;
    assert!(http()
        .get(format!("http://{admin}/healthz"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn a_reload_changes_limits_on_live_connections_and_a_restart_only_change_is_refused() {
    let mut c = config();
    c.limits.max_frame_bytes = 4096;
    let s = start(c.clone()).await;
    let mut a = Client::connect(&s, "alice").await;
    a.ok(json!({"type":"join","id":1,"group":"g"})).await;
    let big = "x".repeat(2000);
    a.ok(json!({"type":"publish","id":2,"group":"g","data":big,"echo":true}))
        .await;
    a.message().await;
    a.send(json!({"type":"broadcast","id":3,"data":1})).await;
    a.error("forbidden").await;

    // Lower the frame limit and allow client broadcast: the open
    // connection takes both at its next frame.
    let mut next = c.clone();
    next.limits.max_frame_bytes = 1024;
    next.limits.broadcast_per_sec = 100;
    next.features.client_broadcast = true;
    let changed = s.relay.reload(&next).unwrap();
    assert_eq!(changed, ["[limits]", "[features]"]);
    a.send(json!({"type":"publish","id":4,"group":"g","data":big}))
        .await;
    let e = a.error("too_large").await;
    assert!(e["message"].as_str().unwrap().contains("1024"), "{e}");
    a.ok(json!({"type":"broadcast","id":5,"data":1,"echo":true}))
        .await;
    assert_eq!(a.message().await["kind"], "broadcast");

    // Changing the listen address, or raising the frame limit above its
    // value at start, needs a restart: refused whole, nothing changes.
    let mut moved = next.clone();
    moved.server.listen = "127.0.0.1:1".into();
    moved.features.client_broadcast = false;
    let e = s.relay.reload(&moved).unwrap_err().to_string();
    assert!(
        e.contains("[server]") && e.contains("nothing was reloaded"),
        "{e}"
    );
    let mut raised = next.clone();
    raised.limits.max_frame_bytes = 8192;
    let e = s.relay.reload(&raised).unwrap_err().to_string();
    assert!(e.contains("limits.max_frame_bytes"), "{e}");
    // A schema file that does not exist is refused too.
    let mut schema = next.clone();
    schema.validate.push(zerorelay::config::ValidateRule {
        group: "g".into(),
        schema_file: "/nonexistent/schema.json".into(),
    });
    assert!(s.relay.reload(&schema).is_err());
    a.ok(json!({"type":"broadcast","id":6,"data":2,"echo":true}))
        .await;
    assert_eq!(a.message().await["data"], 2);
    a.send(json!({"type":"publish","id":7,"group":"g","data":big}))
        .await;
    a.error("too_large").await;
    s.stop().await;
}

#[tokio::test]
async fn with_metrics_off_there_is_no_metrics_endpoint() {
    let mut c = config();
    c.metrics.enabled = false;
    let s = start(c).await;
    let (st, b) = call(http().get(format!("http://{}/metrics", s.addr))).await;
    assert_eq!((st, b["code"].clone()), (404, json!("not_found")));
    let (st, _) = call(http().get(format!("http://{}/healthz", s.addr))).await;
    assert_eq!(st, 200);
    s.stop().await;
}

/// Reads from `tcp` until EOF, a reset or 10 s; returns what arrived.
async fn drain_tcp(tcp: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 8192];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn hostile_http_is_refused_while_a_websocket_client_keeps_working() {
    use tokio::io::AsyncWriteExt;
    let s = api_relay(&[KEY], false).await;
    let mut alice = Client::connect(&s, "alice").await;
    let raw = |bytes: Vec<u8>| {
        let addr = s.addr;
        async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = tcp.write_all(&bytes).await;
            drain_tcp(&mut tcp).await
        }
    };
    // Not HTTP at all (a TLS client hello on the plain port): closed.
    let got = raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage".to_vec()).await;
    assert!(!got.contains("200"), "{got}");
    assert_eq!(
        alice.request(json!({"type":"ping","id":1})).await["type"],
        "pong"
    );
    // A header block over 64 KiB: refused (431) or closed, never served.
    let mut big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100_000));
    big.extend_from_slice(b"\r\n\r\n");
    let got = raw(big).await;
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 431"), "{got}");
    assert_eq!(
        alice.request(json!({"type":"ping","id":2})).await["type"],
        "pong"
    );
    // A request that stops mid-header is closed after server.hello_timeout_ms.
    let got = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec()).await;
    assert!(!got.contains("200 OK"), "{got}");
    // A body shorter than its Content-Length, then silence: refused after
    // server.hello_timeout_ms, never routed.
    let got = raw(
        format!("POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 100\r\n\r\n{{\"gro")
            .into_bytes(),
    )
    .await;
    assert!(
        got.starts_with("HTTP/1.1 400") && got.contains("did not arrive"),
        "{got}"
    );
    assert_eq!(
        alice.request(json!({"type":"ping","id":3})).await["type"],
        "pong"
    );
    // 100 pipelined requests on one connection are all answered, in order.
    let mut many = Vec::new();
    for _ in 0..99 {
        many.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    many.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let got = raw(many).await;
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 100);
    // Data nested past limits.max_json_depth is refused: every client
    // would have to decode it.
    let deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
    let (st, b) = call(
        http()
            .post(format!("http://{}/api/broadcast", s.addr))
            .bearer_auth(KEY)
            .body(format!("{{\"data\":{deep}}}")),
    )
    .await;
    assert_eq!((st, b["code"].clone()), (400, json!("bad_request")), "{b}");
    // A body that is not UTF-8.
    let (st, _) = call(
        http()
            .post(format!("http://{}/api/broadcast", s.addr))
            .bearer_auth(KEY)
            .body(vec![0xff, 0xfe, b'{']),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(
        alice.request(json!({"type":"ping","id":4})).await["type"],
        "pong"
    );
    s.stop().await;
}
