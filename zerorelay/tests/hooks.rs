//! Host event hooks (connect, disconnect, join, leave, messages, errors) on
//! their own bounded queues, and the alert webhook firing and clearing
//! against a local HTTP receiver.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{HttpServer, Reply};
use common::{config, start_with, Client};
use serde_json::{json, Value};
use zerorelay::server::HostEvent;
use zerorelay::Relay;

/// Polls `f` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen");
}

#[tokio::test]
async fn hooks_hear_connects_joins_leaves_messages_errors_and_ends() {
    let seen: Arc<Mutex<Vec<HostEvent>>> = Arc::default();
    let mut c = config();
    c.hooks.messages = true;
    let log = seen.clone();
    let s = start_with(
        Relay::builder(c).hook(move |e: &HostEvent| log.lock().unwrap().push(e.clone())),
    )
    .await;
    let mut a = Client::connect(&s, "alice").await;
    a.ok(json!({"type":"join","id":1,"group":"room"})).await;
    a.ok(json!({"type":"join","id":2,"group":"lobby"})).await;
    a.ok(json!({"type":"leave","id":3,"group":"lobby"})).await;
    a.ok(json!({"type":"publish","id":4,"group":"room","data":"hello"}))
        .await;
    a.send_text("[1,2").await;
    a.error("bad_frame").await;
    let session = a.session.clone();
    // A close with 1000: the client is done with its session.
    {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
        a.ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await
        .unwrap();
        while let Some(Ok(_)) = a.ws.next().await {}
    }
    eventually("the end reaches the hook", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, HostEvent::Ended { .. }))
    })
    .await;
    let got: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let u = json!("alice");
    assert_eq!(got[0]["type"], "connected");
    assert_eq!((&got[0]["session"], &got[0]["user"]), (&json!(session), &u));
    assert_eq!(got[0]["roles"], json!([]));
    assert_eq!(
        got[1],
        json!({"type":"joined","session":session,"user":u,"group":"room"})
    );
    assert_eq!(
        got[2],
        json!({"type":"joined","session":session,"user":u,"group":"lobby"})
    );
    assert_eq!(
        got[3],
        json!({"type":"left","session":session,"user":u,"group":"lobby"})
    );
    assert_eq!(
        got[4],
        json!({"type":"message","kind":"group","session":session,"user":u,"group":"room","to":null,"bytes":7})
    );
    assert_eq!(got[5]["type"], "error");
    assert_eq!(
        (&got[5]["code"], &got[5]["frame_type"], &got[5]["session"]),
        (&json!("bad_frame"), &json!("invalid"), &json!(session))
    );
    assert_eq!(got[6]["type"], "disconnected");
    // The session ended: it left what it was still in, then ended.
    assert_eq!(
        got[7],
        json!({"type":"left","session":session,"user":u,"group":"room"})
    );
    assert_eq!(got[8]["type"], "ended");
    assert_eq!(got.len(), 9, "{got:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_slow_hook_misses_events_which_are_counted_and_routing_goes_on() {
    let heard = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate_rx);
    let mut c = config();
    c.hooks.queue = 4;
    let count = heard.clone();
    // The hook blocks on its first event until the test opens the gate.
    let s = start_with(Relay::builder(c).hook(move |_: &HostEvent| {
        if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            let _ = gate.lock().unwrap().recv();
        }
    }))
    .await;
    let mut a = Client::connect(&s, "alice").await; // 1 event: connected
                                                    // The hook has taken that first event and blocks on it: its queue is
                                                    // empty, whatever the scheduler did.
    eventually("the hook takes its first event", || {
        heard.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    let mut b = Client::connect(&s, "bob").await; // 2
    b.ok(json!({"type":"join","id":1,"group":"g"})).await; // 3
    for i in 0..25 {
        // 50 more: joined and left
        a.ok(json!({"type":"join","id":10 + 2 * i,"group":"g"}))
            .await;
        a.ok(json!({"type":"leave","id":11 + 2 * i,"group":"g"}))
            .await;
        // Routing does not wait for the blocked hook.
        a.ok(json!({"type":"publish","id":1000 + i,"group":"g","data":i}))
            .await;
        assert_eq!(b.message().await["data"], i);
    }
    let emitted = 53;
    gate_tx.send(()).unwrap();
    let metrics = format!("http://{}/metrics", s.addr);
    let mut dropped = 0;
    for _ in 0..500 {
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        dropped = text
            .lines()
            .find_map(|l| l.strip_prefix("zerorelay_hook_events_dropped_total "))
            .unwrap()
            .parse::<usize>()
            .unwrap();
        if heard.load(std::sync::atomic::Ordering::SeqCst) + dropped == emitted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heard = heard.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(heard + dropped, emitted, "heard {heard}, dropped {dropped}");
    // The first event, the four queued behind it, and nothing else until
    // the gate opened.
    assert_eq!(heard, 5);
    s.stop().await;
}

/// A receiver that keeps every alert it is sent.
async fn receiver() -> (HttpServer, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let keep = got.clone();
    let server = HttpServer::start("/alerts", move |body| {
        keep.lock()
            .unwrap()
            .push(serde_json::from_str(body).unwrap());
        Reply::json(200, json!({}))
    })
    .await;
    (server, got)
}

fn alerting(url: &str) -> zerorelay::Config {
    let mut c = config();
    c.alerts.url = Some(url.to_owned());
    c.alerts.check_ms = 100;
    c.alerts.window_ms = 500;
    c.alerts.error_rate = 5.0;
    c.alerts.auth_failure_rate = 0.0;
    c.alerts.drop_rate = 0.0;
    c.alerts.slow_consumer_closes = 0.0;
    c.alerts.connections_ratio = 0.0;
    c.limits.abuse_strikes = 1_000;
    c
}

#[tokio::test]
async fn the_alert_webhook_fires_on_an_error_burst_and_clears_after() {
    let (hook, got) = receiver().await;
    let s = common::start(alerting(&hook.url)).await;
    let mut c = Client::connect(&s, "alice").await;
    for _ in 0..20 {
        c.send_text("nope").await;
        c.error("bad_frame").await;
    }
    eventually("a firing and then a resolved alert", || {
        got.lock().unwrap().len() >= 2
    })
    .await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got[0]["alert"], "error_rate");
    assert_eq!(got[0]["state"], "firing");
    assert!(got[0]["value"].as_f64().unwrap() > 5.0, "{}", got[0]);
    assert_eq!(got[0]["threshold"], 5.0);
    assert_eq!(got[0]["window_ms"], 500);
    assert_eq!(got[0]["instance"], s.addr.to_string());
    assert_eq!(got[1]["alert"], "error_rate");
    assert_eq!(got[1]["state"], "resolved");
    assert!(got[1]["value"].as_f64().unwrap() <= 5.0);
    // The client beside the errors kept working.
    assert_eq!(
        c.request(json!({"type":"ping","id":1})).await["type"],
        "pong"
    );
    s.stop().await;
}

#[tokio::test]
async fn alerts_are_rate_limited_so_a_flapping_threshold_cannot_storm() {
    let (hook, got) = receiver().await;
    let mut cfg = alerting(&hook.url);
    cfg.alerts.max_per_minute = 1;
    let s = common::start(cfg).await;
    let mut c = Client::connect(&s, "alice").await;
    for _ in 0..20 {
        c.send_text("nope").await;
        c.error("bad_frame").await;
    }
    eventually("the firing alert", || !got.lock().unwrap().is_empty()).await;
    // The window passes and the rate falls, but the one POST a minute is spent.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["state"], "firing");
    s.stop().await;
}
