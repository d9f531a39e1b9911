//! Deterministic tests of the engine: no sockets, no sleeps.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::client::options::FullPolicy;

const S1: &str = "s_00000000000000000000000000000001";
const S2: &str = "s_00000000000000000000000000000002";

fn opts() -> ClientOptions {
    ClientOptions {
        user: Some("alice".into()),
        client_name: "test/1".into(),
        seed: Some(42),
        ..ClientOptions::default()
    }
}

struct T {
    e: Engine,
    now: Instant,
}

impl T {
    fn new(o: ClientOptions) -> T {
        T {
            e: Engine::new(o, false, None),
            now: Instant::now(),
        }
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.e.poll_output()).collect()
    }

    /// Sent frames as JSON, discarding other outputs.
    fn sent(&mut self) -> Vec<Value> {
        self.outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Send(t) => Some(serde_json::from_str(&t).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.e.handle_timeout(self.now);
    }

    /// Starts and completes a connection with a welcome for `session`.
    fn connect(&mut self, session: &str, resumed: bool) -> Vec<Output> {
        if matches!(self.e.phase, Phase::Idle) {
            self.e.start(self.now);
        }
        self.outputs();
        assert!(
            matches!(self.e.phase, Phase::Connecting { .. }),
            "{:?}",
            self.e.phase
        );
        self.e.on_open(self.now);
        let hello = self.sent();
        assert_eq!(hello[0]["type"], "hello");
        self.welcome(session, resumed)
    }

    fn welcome(&mut self, session: &str, resumed: bool) -> Vec<Output> {
        let w = json!({"type":"welcome","v":1,"session":session,"user":"alice","resumed":resumed,
                       "heartbeat_ms":25000,"session_ttl_ms":60000,"server":"zerorelay/0.1.0"});
        self.e.on_frame(self.now, &w.to_string());
        self.outputs()
    }

    fn frame(&mut self, v: Value) {
        self.e.on_frame(self.now, &v.to_string());
    }

    fn message(&mut self, seq: u64, data: Value) {
        self.frame(
            json!({"type":"message","seq":seq,"kind":"direct","from":"bob",
                          "from_session":S2,"data":data,"ts":1}),
        );
    }

    fn publish(&mut self, n: i64) -> RequestToken {
        self.e
            .request(
                self.now,
                Request::Publish {
                    group: "g".into(),
                    data: serde_json::value::to_raw_value(&n).unwrap(),
                    echo: false,
                },
            )
            .unwrap()
    }

    /// Drops the connection and runs the backoff to the next hello.
    fn reconnect_to_hello(&mut self) -> Value {
        self.e.on_closed(self.now, None, "connection lost");
        let out = self.outputs();
        let delay = out
            .iter()
            .find_map(|o| match o {
                Output::Event(Event::Reconnecting { delay_ms, .. }) => Some(*delay_ms),
                _ => None,
            })
            .expect("a reconnect is scheduled");
        self.advance(delay);
        assert!(self.outputs().iter().any(|o| matches!(o, Output::Connect)));
        self.e.on_open(self.now);
        self.sent().remove(0)
    }
}

fn events(out: &[Output]) -> Vec<&Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn completions(out: &[Output]) -> Vec<(u64, Result<(), String>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Complete { token, result } => Some((
                token.0,
                result.as_ref().map(drop).map_err(|e| e.code().to_owned()),
            )),
            _ => None,
        })
        .collect()
}

fn sent_frames(out: &[Output]) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(t) => Some(serde_json::from_str(t).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn hello_names_the_client_and_welcome_connects() {
    let mut t = T::new(opts());
    t.e.start(t.now);
    assert!(matches!(t.outputs()[..], [Output::Connect]));
    t.e.on_open(t.now);
    assert_eq!(
        t.sent(),
        [json!({"type":"hello","v":1,"user":"alice","client":"test/1"})]
    );
    let out = t.welcome(S1, false);
    assert!(matches!(
        events(&out)[..],
        [Event::Connected {
            resumed: false,
            lost_session: None,
            ..
        }]
    ));
    assert!(t.e.is_connected());
    assert_eq!(t.e.session(), Some(S1));
}

#[test]
fn requests_get_increasing_integer_ids_and_complete_on_ok() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    let a = t.publish(1);
    let b = t.publish(2);
    let sent = t.sent();
    assert_eq!(
        sent[0],
        json!({"type":"publish","id":1,"group":"g","data":1})
    );
    assert_eq!(sent[1]["id"], 2);
    t.frame(json!({"type":"ok","id":2}));
    t.frame(json!({"type":"error","id":1,"code":"forbidden","message":"no"}));
    let out = t.outputs();
    assert_eq!(
        completions(&out),
        [(b.0, Ok(())), (a.0, Err("forbidden".to_owned()))]
    );
    assert_eq!(t.e.in_flight(), 0);
}

#[test]
fn requests_made_offline_wait_in_order_and_flush_after_welcome() {
    let mut t = T::new(opts());
    t.e.start(t.now);
    t.publish(1);
    t.publish(2);
    assert_eq!(t.e.queued(), 2);
    let out = t.connect(S1, false);
    let sent = sent_frames(&out);
    assert_eq!(
        sent.iter().map(|f| f["data"].clone()).collect::<Vec<_>>(),
        [json!(1), json!(2)]
    );
    assert_eq!(t.e.queued(), 0);
    assert_eq!(t.e.in_flight(), 2);
}

#[test]
fn after_a_drop_the_client_resumes_and_resends_unanswered_requests_first() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    t.message(1, json!("a"));
    t.message(2, json!("b"));
    t.publish(10);
    t.outputs();
    let hello = t.reconnect_to_hello();
    assert_eq!(hello["resume"], json!({"session":S1,"last_seq":2}));
    // Made while reconnecting: queued behind the unanswered one.
    t.publish(11);
    let out = t.welcome(S1, true);
    let sent = sent_frames(&out);
    assert_eq!(
        sent[0],
        json!({"type":"publish","id":1,"group":"g","data":10}),
        "same id"
    );
    assert_eq!(sent[1]["data"], 11);
}

#[test]
fn redelivered_messages_are_emitted_once_and_in_order() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    for s in 1..=3 {
        t.message(s, json!(s));
    }
    t.reconnect_to_hello();
    t.welcome(S1, true);
    for s in 2..=5 {
        t.message(s, json!(s));
    }
    let got: Vec<u64> = events(&t.outputs())
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.seq),
            _ => None,
        })
        .collect();
    assert_eq!(got, [4, 5]);
    assert_eq!(t.e.last_seq(), 5);
}

#[test]
fn acks_are_batched_by_count_and_by_time() {
    let mut o = opts();
    o.ack.batch = 3;
    o.ack.interval_ms = 50;
    let mut t = T::new(o);
    t.connect(S1, false);
    t.message(1, json!(1));
    t.message(2, json!(2));
    assert!(t.sent().is_empty(), "below the batch, before the interval");
    t.message(3, json!(3));
    assert_eq!(t.sent(), [json!({"type":"ack","seq":3})]);
    t.message(4, json!(4));
    t.advance(49);
    assert!(t.sent().is_empty());
    t.advance(1);
    assert_eq!(t.sent(), [json!({"type":"ack","seq":4})]);
    t.advance(1000);
    assert!(t.sent().is_empty(), "nothing new to acknowledge");
}

#[test]
fn a_gap_is_reported_as_loss_and_acknowledged() {
    let mut o = opts();
    o.ack.batch = 1;
    let mut t = T::new(o);
    t.connect(S1, false);
    t.message(1, json!(1));
    t.outputs();
    t.frame(json!({"type":"gap","from_seq":2,"to_seq":5,"reason":"outbox_full"}));
    let out = t.outputs();
    assert!(matches!(
        events(&out)[..],
        [Event::Loss {
            from_seq: 2,
            to_seq: 5,
            ..
        }]
    ));
    assert_eq!(sent_frames(&out), [json!({"type":"ack","seq":5})]);
    t.message(6, json!(6));
    assert_eq!(t.e.last_seq(), 6);
}

#[test]
fn an_auth_refusal_is_not_retried_and_fails_everything_pending() {
    let mut t = T::new(opts());
    t.e.start(t.now);
    let tok = t.publish(1);
    t.outputs();
    t.e.on_open(t.now);
    t.frame(json!({"type":"error","code":"unauthorized","message":"the token is not valid"}));
    t.e.on_closed(t.now, Some(close::AUTH_FAILED), "authentication failed");
    let out = t.outputs();
    assert_eq!(completions(&out), [(tok.0, Err("closed".to_owned()))]);
    let ev = events(&out);
    assert!(ev.iter().any(|e| matches!(e, Event::Disconnected { will_retry: false, code: Some(4001), reason, .. } if reason.contains("unauthorized"))), "{ev:?}");
    assert!(matches!(ev.last(), Some(Event::Closed { .. })));
    assert!(t.e.is_closed());
    assert!(matches!(
        t.e.request(
            t.now,
            Request::Join {
                group: "g".into(),
                presence: false
            }
        ),
        Err(ClientError::Closed)
    ));
}

/// The code of the `closed` event that ends `t`'s engine.
fn closed_code(out: &[Output]) -> Option<String> {
    match events(out).last() {
        Some(Event::Closed { code, .. }) => code.clone(),
        other => panic!("the last event is not closed: {other:?}"),
    }
}

#[test]
fn a_client_closed_by_a_refusal_says_the_refusals_code() {
    // The error frame's code wins over the close code's meaning.
    let mut t = T::new(opts());
    t.e.start(t.now);
    t.outputs();
    t.e.on_open(t.now);
    t.frame(json!({"type":"error","code":"forbidden","message":"not this user"}));
    t.e.on_closed(t.now, Some(close::AUTH_FAILED), "authentication failed");
    assert_eq!(closed_code(&t.outputs()).as_deref(), Some("forbidden"));

    // Without an error frame, the close code says what it stands for.
    let mut t = T::new(opts());
    t.e.start(t.now);
    t.outputs();
    t.e.on_open(t.now);
    t.e.on_closed(t.now, Some(close::AUTH_FAILED), "authentication failed");
    assert_eq!(closed_code(&t.outputs()).as_deref(), Some("unauthorized"));
}

#[test]
fn a_client_closed_by_a_transport_failure_has_no_refusal_code() {
    let mut o = opts();
    o.reconnect.max_attempts = Some(1);
    let mut t = T::new(o);
    t.e.start(t.now);
    t.outputs();
    // A refusal on a retryable close, then an attempt nothing answers:
    // the first attempt's refusal does not stick to the last one.
    t.e.on_open(t.now);
    t.frame(json!({"type":"error","code":"limit_exceeded","message":"full"}));
    t.e.on_closed(t.now, Some(close::TRY_AGAIN_LATER), "full");
    t.advance(60_000);
    t.outputs();
    t.e.on_closed(t.now, None, "connection refused");
    assert!(t.e.is_closed());
    assert_eq!(closed_code(&t.outputs()), None);

    // A session the host ends is not a refusal.
    let mut t = T::new(opts());
    t.connect(S1, false);
    t.e.on_closed(t.now, Some(close::KICKED), "kicked");
    assert_eq!(closed_code(&t.outputs()), None);
}

#[test]
fn an_expired_token_is_retried_only_with_a_token_provider() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    t.e.on_closed(t.now, Some(close::TOKEN_EXPIRED), "token expired");
    assert!(t.e.is_closed());

    let mut t = T {
        e: Engine::new(opts(), true, None),
        now: Instant::now(),
    };
    t.e.start(t.now);
    assert!(matches!(t.outputs()[..], [Output::FetchToken]));
    t.e.on_token(t.now, Ok(("tok-1".into(), Some(Duration::from_secs(60)))));
    assert!(matches!(t.outputs()[..], [Output::Connect]));
    t.e.on_open(t.now);
    assert_eq!(t.sent()[0]["token"], "tok-1");
    t.welcome(S1, false);
    t.e.on_closed(t.now, Some(close::TOKEN_EXPIRED), "token expired");
    assert!(!t.e.is_closed());
}

#[test]
fn the_token_is_refreshed_before_it_expires() {
    let mut o = opts();
    o.refresh_margin_ms = 10_000;
    let mut t = T {
        e: Engine::new(o, true, None),
        now: Instant::now(),
    };
    t.e.start(t.now);
    t.outputs();
    t.e.on_token(t.now, Ok(("old".into(), Some(Duration::from_secs(60)))));
    t.outputs();
    t.e.on_open(t.now);
    t.outputs();
    t.welcome(S1, false);
    assert_eq!(t.e.poll_timeout(), Some(t.now + Duration::from_secs(50)));
    t.advance(50_000);
    assert!(matches!(t.outputs()[..], [Output::FetchToken]));
    t.e.on_token(t.now, Ok(("new".into(), None)));
    let sent = t.sent();
    assert_eq!(
        (sent[0]["type"].as_str(), sent[0]["token"].as_str()),
        (Some("refresh"), Some("new"))
    );
}

#[test]
fn reconnect_gives_up_after_max_attempts() {
    let mut o = opts();
    o.reconnect.max_attempts = Some(2);
    let mut t = T::new(o);
    t.e.start(t.now);
    for attempt in 1..=2 {
        t.outputs();
        t.e.on_closed(t.now, None, "refused");
        let out = t.outputs();
        assert!(events(&out)
            .iter()
            .any(|e| matches!(e, Event::Reconnecting { attempt: a, .. } if *a == attempt)));
        t.advance(60_000);
    }
    t.outputs();
    t.e.on_closed(t.now, None, "refused");
    assert!(t.e.is_closed());
}

#[test]
fn reconnect_delays_grow_with_full_jitter_and_reset_after_success() {
    let mut o = opts();
    o.reconnect.base_ms = 100;
    o.reconnect.cap_ms = 800;
    let mut t = T::new(o);
    t.e.start(t.now);
    let mut delays = vec![];
    for _ in 0..6 {
        t.outputs();
        t.e.on_closed(t.now, None, "refused");
        let out = t.outputs();
        for e in events(&out) {
            if let Event::Reconnecting { attempt, delay_ms } = e {
                delays.push((*attempt, *delay_ms));
            }
        }
        t.advance(1_000);
    }
    for (attempt, d) in &delays {
        let ceiling = (100u64 << (attempt - 1)).min(800);
        assert!(*d <= ceiling, "attempt {attempt}: {d} > {ceiling}");
    }
    t.e.on_open(t.now);
    t.outputs();
    t.welcome(S1, false);
    t.e.on_closed(t.now, None, "lost");
    let out = t.outputs();
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::Reconnecting { attempt: 1, .. })));
}

#[test]
fn a_lost_session_restarts_seqs_and_rejoins_groups() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    t.e.request(
        t.now,
        Request::Join {
            group: "room".into(),
            presence: false,
        },
    )
    .unwrap();
    t.outputs();
    t.frame(json!({"type":"ok","id":1}));
    t.message(1, json!(1));
    t.outputs();
    t.reconnect_to_hello();
    let out = t.welcome(S2, false);
    let ev = events(&out);
    assert!(
        matches!(ev[0], Event::Connected { resumed: false, lost_session: Some(s), .. } if s == S1)
    );
    assert!(matches!(ev[1], Event::Rejoined { groups } if groups == &["room".to_owned()]));
    assert_eq!(
        sent_frames(&out),
        [json!({"type":"join","id":2,"group":"room"})]
    );
    t.message(1, json!("fresh"));
    assert!(events(&t.outputs())
        .iter()
        .any(|e| matches!(e, Event::Message(m) if m.seq == 1)));
}

#[test]
fn a_group_joined_with_presence_is_rejoined_with_it_and_notices_become_events() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    for (group, presence) in [("watched", true), ("plain", false)] {
        t.e.request(
            t.now,
            Request::Join {
                group: group.into(),
                presence,
            },
        )
        .unwrap();
    }
    assert_eq!(
        t.sent(),
        [
            json!({"type":"join","id":1,"group":"watched","presence":true}),
            json!({"type":"join","id":2,"group":"plain"})
        ]
    );
    t.frame(json!({"type":"ok","id":1}));
    t.frame(json!({"type":"ok","id":2}));
    t.outputs();
    t.frame(json!({"type":"presence_change","group":"watched","user":"bob","change":"join"}));
    t.frame(json!({"type":"presence_summary","group":"watched","joined":3,"left":1,"present":9}));
    let out = t.outputs();
    let ev = events(&out);
    assert!(
        matches!(ev[0], Event::PresenceChange(p) if p.group == "watched" && p.user.as_deref() == Some("bob") && p.change == "join")
    );
    assert!(
        matches!(ev[1], Event::PresenceSummary(p) if (p.joined, p.left, p.present) == (3, 1, 9))
    );
    t.reconnect_to_hello();
    let out = t.welcome(S2, false);
    assert_eq!(
        sent_frames(&out),
        [
            json!({"type":"join","id":3,"group":"plain"}),
            json!({"type":"join","id":4,"group":"watched","presence":true})
        ]
    );
}

#[test]
fn leave_removes_the_group_from_what_is_rejoined() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    t.e.request(
        t.now,
        Request::Join {
            group: "a".into(),
            presence: false,
        },
    )
    .unwrap();
    t.e.request(
        t.now,
        Request::Join {
            group: "b".into(),
            presence: false,
        },
    )
    .unwrap();
    t.e.request(t.now, Request::Leave { group: "a".into() })
        .unwrap();
    for id in 1..=3 {
        t.frame(json!({"type":"ok","id":id}));
    }
    assert_eq!(t.e.groups().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn a_full_queue_fails_fast_or_drops_the_oldest() {
    let mut o = opts();
    o.queue.max_messages = 2;
    let mut t = T::new(o.clone());
    t.e.start(t.now);
    t.publish(1);
    t.publish(2);
    let r = t.e.request(
        t.now,
        Request::Join {
            group: "g".into(),
            presence: false,
        },
    );
    assert!(matches!(r, Err(ClientError::QueueFull)));

    o.queue.full = FullPolicy::DropOldest;
    let mut t = T::new(o);
    t.e.start(t.now);
    let first = t.publish(1);
    t.publish(2);
    t.outputs();
    t.publish(3);
    assert_eq!(
        completions(&t.outputs()),
        [(first.0, Err("queue_full".to_owned()))]
    );
    let out = t.connect(S1, false);
    let data: Vec<Value> = sent_frames(&out)
        .iter()
        .map(|f| f["data"].clone())
        .collect();
    assert_eq!(data, [json!(2), json!(3)]);
}

#[test]
fn an_unanswered_request_times_out() {
    let mut o = opts();
    o.request_timeout_ms = 500;
    let mut t = T::new(o);
    t.connect(S1, false);
    let tok = t.publish(1);
    t.outputs();
    t.advance(499);
    assert!(completions(&t.outputs()).is_empty());
    t.advance(1);
    assert_eq!(
        completions(&t.outputs()),
        [(tok.0, Err("timeout".to_owned()))]
    );
    // A late answer is ignored.
    t.frame(json!({"type":"ok","id":1}));
    assert!(t.outputs().is_empty());
}

#[test]
fn time_offline_does_not_count_against_the_request_timeout() {
    let mut o = opts();
    o.request_timeout_ms = 500;
    let mut t = T::new(o);
    t.e.start(t.now);
    let tok = t.publish(1);
    t.advance(5_000);
    t.outputs();
    t.connect(S1, false);
    t.frame(json!({"type":"ok","id":1}));
    assert_eq!(completions(&t.outputs()), [(tok.0, Ok(()))]);
}

#[test]
fn a_cancelled_queued_request_is_never_sent() {
    let mut t = T::new(opts());
    t.e.start(t.now);
    let a = t.publish(1);
    t.publish(2);
    t.e.cancel(a);
    let out = t.connect(S1, false);
    let data: Vec<Value> = sent_frames(&out)
        .iter()
        .map(|f| f["data"].clone())
        .collect();
    assert_eq!(data, [json!(2)]);
}

#[test]
fn close_sends_1000_and_fails_what_is_pending() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    t.message(1, json!(1));
    let tok = t.publish(1);
    t.outputs();
    t.e.close();
    let out = t.outputs();
    assert_eq!(
        sent_frames(&out),
        [json!({"type":"ack","seq":1})],
        "acks what it emitted"
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Close { code: 1000, .. })));
    assert_eq!(completions(&out), [(tok.0, Err("closed".to_owned()))]);
    t.e.on_closed(t.now, None, "closed");
    assert!(matches!(events(&t.outputs())[..], [Event::Closed { .. }]));
    assert!(t.e.is_closed());
}

#[test]
fn a_connection_that_never_says_welcome_times_out_and_retries() {
    let mut o = opts();
    o.connect_timeout_ms = 1_000;
    let mut t = T::new(o);
    t.e.start(t.now);
    t.outputs();
    t.e.on_open(t.now);
    t.outputs();
    t.advance(1_000);
    let out = t.outputs();
    assert!(out.iter().any(|o| matches!(o, Output::Close { .. })));
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::Reconnecting { .. })));
}

#[test]
fn unknown_server_frames_are_ignored_and_garbage_is_reported() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    t.frame(json!({"type":"future_frame","x":1}));
    assert!(t.outputs().is_empty());
    t.e.on_frame(t.now, "not json");
    assert!(matches!(events(&t.outputs())[..], [Event::Error { code, .. }] if code == "bad_frame"));
}

#[test]
fn a_snapshot_restores_the_session_groups_and_pending_requests() {
    let mut o = opts();
    o.persist_path = Some("/unused".into());
    let mut t = T::new(o.clone());
    t.connect(S1, false);
    t.e.request(
        t.now,
        Request::Join {
            group: "room".into(),
            presence: false,
        },
    )
    .unwrap();
    t.frame(json!({"type":"ok","id":1}));
    t.message(1, json!(1));
    t.outputs();
    t.e.on_closed(t.now, None, "lost");
    t.publish(7);
    let snapshot = t
        .outputs()
        .into_iter()
        .rev()
        .filter_map(|o| match o {
            Output::Persist(Some(s)) => Some(s),
            _ => None,
        })
        .next()
        .expect("persisted while offline");
    assert_eq!(snapshot.pending.len(), 1);

    // A new process starts from the snapshot.
    let mut t = T {
        e: Engine::new(o, false, Some(snapshot)),
        now: Instant::now(),
    };
    t.e.start(t.now);
    t.outputs();
    t.e.on_open(t.now);
    assert_eq!(t.sent()[0]["resume"], json!({"session":S1,"last_seq":1}));
    let out = t.welcome(S1, true);
    assert_eq!(
        sent_frames(&out),
        [json!({"type":"publish","id":2,"group":"g","data":7})]
    );
    let next = t.publish(8);
    assert_eq!(next.0, 3, "ids continue after the restored ones");
    assert_eq!(t.e.groups().collect::<Vec<_>>(), ["room"]);
}

#[test]
fn invalid_requests_are_refused_before_queueing() {
    let mut t = T::new(opts());
    t.e.start(t.now);
    for req in [
        Request::Join {
            group: "bad name".into(),
            presence: false,
        },
        Request::Rpc {
            method: "".into(),
            data: None,
        },
        Request::Send {
            target: Target::User("x y".into()),
            data: serde_json::value::to_raw_value(&1).unwrap(),
        },
    ] {
        assert!(matches!(
            t.e.request(t.now, req),
            Err(ClientError::InvalidArgument(_))
        ));
    }
    assert_eq!(t.e.queued(), 0);
}

#[test]
fn an_overlong_session_id_is_refused_locally_and_a_deep_payload_is_left_to_the_relay() {
    let mut t = T::new(opts());
    t.e.start(t.now);
    let raw = |s: String| RawValue::from_string(s).unwrap();
    match t.e.request(
        t.now,
        Request::Send {
            target: Target::Session("s".repeat(129)),
            data: raw("1".into()),
        },
    ) {
        Err(ClientError::InvalidArgument(m)) => {
            assert_eq!(m, "`session` must be a session id of 1 to 128 bytes")
        }
        other => panic!("expected invalid_argument, got {other:?}"),
    }
    assert_eq!(t.e.queued(), 0);
    // The relay's limits.max_json_depth may be raised, so the engine sends
    // a payload deeper than the protocol's default bound.
    let deep = "[".repeat(100) + &"]".repeat(100);
    t.e.request(
        t.now,
        Request::Publish {
            group: "g".into(),
            data: raw(deep),
            echo: false,
        },
    )
    .expect("the relay decides");
    assert_eq!(t.e.queued(), 1);
}

#[test]
fn a_message_that_does_not_decode_is_reported_in_its_place_and_acknowledged() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    let frame = |seq: u64, data: &str| {
        format!(
            r#"{{"type":"message","seq":{seq},"kind":"direct","from":"bob","from_session":"{S2}","data":{data},"ts":1}}"#
        )
    };
    // Payloads the engine passes on as raw JSON, however deep or large.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    t.e.on_frame(t.now, &frame(1, &deep));
    t.e.on_frame(t.now, &frame(2, "1e400"));
    // A payload that is not JSON at all (a server that breaks the protocol).
    t.e.on_frame(t.now, &frame(3, "[1,"));
    t.e.on_frame(t.now, &frame(4, r#"{"n":4}"#));
    let out = t.outputs();
    let got: Vec<String> = events(&out)
        .iter()
        .map(|e| match e {
            Event::Message(m) => format!("message {} ({} bytes)", m.seq, m.data.get().len()),
            Event::Error { code, seq, .. } => format!("error {code} {seq:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            "message 1 (200000 bytes)",
            "message 2 (5 bytes)",
            "error undecodable Some(3)",
            "message 4 (7 bytes)"
        ]
    );
    // The undecodable message counts as processed: the ack covers it.
    t.advance(t.e.opts.ack.interval_ms);
    assert_eq!(t.sent(), [json!({"type":"ack","seq":4})]);
    // A redelivery of it is dropped like any other.
    t.e.on_frame(t.now, &frame(3, "[1,"));
    assert!(t.outputs().is_empty());
}

#[test]
fn a_message_event_always_starts_with_its_type_and_seq() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    // The same message in another field order.
    t.frame(
        json!({"ts":1,"data":{"a":[1]},"seq":1,"kind":"direct","from":"bob",
                   "from_session":S2,"type":"message"}),
    );
    let out = t.outputs();
    let text = crate::client::json::events_to_json_array(
        &events(&out).into_iter().cloned().collect::<Vec<_>>(),
    );
    assert!(text.starts_with(r#"[{"type":"message","seq":1,"#), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v[0]["data"], json!({"a":[1]}));
}

mod lost_session;
