//! A session lost with a request's answer: the Rust client (engine + tokio
//! driver) against a real relay, through a proxy that can hold the relay's
//! frames back. The relay routes a publish, its `ok` never reaches the
//! client, the connection is cut and the session ended; the client's next
//! `welcome` says `"resumed":false`. The publish must not be routed a second
//! time: it fails with `unknown_outcome`, while a request made offline (and
//! one made with `Retry::Resend`) is sent in the new session.
#![cfg(feature = "client")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{config, start};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use zerorelay::client::{
    Client, ClientError, ClientOptions, Event, Events, Request, Retry, Status,
};

/// How long a test waits for something that must happen.
const WAIT: Duration = Duration::from_secs(10);

/// A TCP proxy whose relay-to-client direction can be held: what the client
/// writes reaches the relay, what the relay answers waits. It can also cut
/// every connection and refuse new ones.
#[derive(Clone)]
struct Gate {
    addr: SocketAddr,
    hold: watch::Sender<bool>,
    cut: watch::Sender<u64>,
    down: Arc<AtomicBool>,
}

impl Gate {
    async fn start(upstream: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate = Gate {
            addr: listener.local_addr().unwrap(),
            hold: watch::channel(false).0,
            cut: watch::channel(0).0,
            down: Arc::new(AtomicBool::new(false)),
        };
        let g = gate.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if g.down.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let g = g.clone();
                tokio::spawn(async move { g.pipe(client, upstream).await });
            }
        });
        gate
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Holds (or releases) what the relay sends to the client.
    fn hold_replies(&self, on: bool) {
        self.hold.send_replace(on);
    }

    /// Cuts every connection (no close frames) and refuses new ones.
    fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    async fn pipe(self, client: TcpStream, upstream: SocketAddr) {
        let Ok(server) = TcpStream::connect(upstream).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let mut cut = self.cut.subscribe();
        cut.borrow_and_update();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = async {
            let mut buf = vec![0u8; 16 << 10];
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        let mut hold = self.hold.subscribe();
        let down = async {
            let mut buf = vec![0u8; 16 << 10];
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if hold.wait_for(|held| !held).await.is_err() {
                    return;
                }
                if cw.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = up => {}
            _ = down => {}
            _ = cut.changed() => {}
        }
        // Dropping every half resets both connections.
    }
}

fn opts(user: &str) -> ClientOptions {
    let mut o = ClientOptions {
        user: Some(user.into()),
        seed: Some(7),
        ..ClientOptions::default()
    };
    o.reconnect.base_ms = 20;
    o.reconnect.cap_ms = 200;
    o.connect_timeout_ms = 5_000;
    // Longer than anything here takes on a loaded machine: a held reply
    // must not time out instead.
    o.request_timeout_ms = 60_000;
    o
}

fn publish(group: &str, data: &str) -> Request {
    Request::Publish {
        group: group.into(),
        data: serde_json::value::to_raw_value(data).unwrap(),
        echo: false,
    }
}

/// Waits (bounded) for an event matching `f`.
async fn wait_for(ev: &mut Events, f: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = ev.recv().await.expect("events open");
            if f(&e) {
                return e;
            }
        }
    })
    .await
    .expect("the event in time")
}

/// The payload of the next message (bounded).
async fn next_data(ev: &mut Events) -> Value {
    match wait_for(ev, |e| matches!(e, Event::Message(_))).await {
        Event::Message(m) => serde_json::from_str(m.data.get()).unwrap(),
        _ => unreachable!("matched a message"),
    }
}

#[tokio::test]
async fn a_publish_routed_before_the_session_was_lost_fails_with_unknown_outcome_and_is_not_routed_again(
) {
    let s = start(config()).await;
    let gate = Gate::start(s.addr).await;
    let (bob, mut bev) = Client::connect(&s.url(), opts("bob")).await.unwrap();
    bob.join("g").await.unwrap();
    let (alice, mut aev) = Client::connect(&gate.url(), opts("alice")).await.unwrap();
    let Status::Connected(old) = alice.status() else {
        panic!("connected: {:?}", alice.status());
    };

    // Two publishes reach the relay and are routed; their `ok`s are held.
    gate.hold_replies(true);
    let first = alice.submit_now(publish("g", "first")).unwrap();
    let again = alice
        .submit_now_with(publish("g", "again"), Retry::Resend)
        .unwrap();
    assert_eq!(next_data(&mut bev).await, json!("first"));
    assert_eq!(next_data(&mut bev).await, json!("again"));

    // The connection is cut before the answers arrive, and the session ends
    // on the relay (as when it expires), so it cannot be resumed.
    gate.down();
    wait_for(&mut aev, |e| matches!(e, Event::Disconnected { .. })).await;
    s.wait_detached(&old).await;
    assert!(s.relay.disconnect(&old));
    s.wait_gone(&old).await;

    // Made while offline: it was never written anywhere.
    let second = alice.submit_now(publish("g", "second")).unwrap();
    gate.hold_replies(false);
    gate.up();

    let e = wait_for(&mut aev, |e| matches!(e, Event::Connected { .. })).await;
    assert!(
        matches!(&e, Event::Connected { resumed: false, lost_session: Some(l), .. } if *l == old),
        "{e:?}"
    );
    let bounded = |f| tokio::time::timeout(WAIT, f);
    let err = bounded(first)
        .await
        .expect("answered in time")
        .expect_err("the outcome is unknown");
    assert!(matches!(err, ClientError::UnknownOutcome { .. }), "{err:?}");
    assert_eq!(err.code(), "unknown_outcome");
    assert!(
        err.to_string()
            .contains("may or may not have been delivered"),
        "{err}"
    );
    bounded(again)
        .await
        .expect("answered in time")
        .expect("re-sent and answered");
    bounded(second)
        .await
        .expect("answered in time")
        .expect("sent and answered");

    // A marker after everything: what bob got before it is all he gets.
    bounded(alice.submit_now(publish("g", "end")).unwrap())
        .await
        .expect("answered in time")
        .unwrap();
    let mut got = vec![];
    loop {
        let d = next_data(&mut bev).await;
        if d == json!("end") {
            break;
        }
        got.push(d);
    }
    assert_eq!(
        got,
        [json!("again"), json!("second")],
        "`first` is not routed twice; `again` was allowed to be; `second` once"
    );

    alice.close().await;
    bob.close().await;
    s.stop().await;
}

#[tokio::test]
async fn requests_unanswered_across_a_resume_are_answered_once_whatever_their_choice() {
    let s = start(config()).await;
    let gate = Gate::start(s.addr).await;
    let (bob, mut bev) = Client::connect(&s.url(), opts("bob")).await.unwrap();
    bob.join("g").await.unwrap();
    let (alice, mut aev) = Client::connect(&gate.url(), opts("alice")).await.unwrap();
    let Status::Connected(old) = alice.status() else {
        panic!("connected: {:?}", alice.status());
    };
    gate.hold_replies(true);
    let first = alice.submit_now(publish("g", "first")).unwrap();
    let again = alice
        .submit_now_with(publish("g", "again"), Retry::Resend)
        .unwrap();
    assert_eq!(next_data(&mut bev).await, json!("first"));
    assert_eq!(next_data(&mut bev).await, json!("again"));
    gate.down();
    wait_for(&mut aev, |e| matches!(e, Event::Disconnected { .. })).await;
    gate.hold_replies(false);
    gate.up();

    // The session resumes: both are re-sent with their ids, and the relay
    // answers them from memory without routing them again.
    let e = wait_for(&mut aev, |e| matches!(e, Event::Connected { .. })).await;
    assert!(
        matches!(&e, Event::Connected { resumed: true, session, .. } if *session == old),
        "{e:?}"
    );
    for pending in [first, again] {
        tokio::time::timeout(WAIT, pending)
            .await
            .expect("answered in time")
            .expect("answered from the relay's memory");
    }
    tokio::time::timeout(WAIT, alice.submit_now(publish("g", "end")).unwrap())
        .await
        .expect("answered in time")
        .unwrap();
    assert_eq!(next_data(&mut bev).await, json!("end"), "nothing twice");

    alice.close().await;
    bob.close().await;
    s.stop().await;
}
