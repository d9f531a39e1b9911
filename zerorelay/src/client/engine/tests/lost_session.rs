//! What a lost session (`welcome` with `"resumed":false`) does to unanswered
//! requests: those that may have been routed fail with `unknown_outcome`
//! unless made with `Retry::Resend`; the rest are sent.

use super::*;

/// Whether the request reached a connection before the session was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Sent while connected: the old session may have routed it.
    Yes,
    /// Made while offline: it waited in the queue.
    No,
}

impl T {
    fn publish_with(&mut self, n: i64, retry: Retry) -> RequestToken {
        self.e
            .request_with(
                self.now,
                Request::Publish {
                    group: "g".into(),
                    data: serde_json::value::to_raw_value(&n).unwrap(),
                    echo: false,
                },
                retry,
            )
            .unwrap()
    }

    fn request_with(&mut self, req: Request, retry: Retry) -> RequestToken {
        self.e.request_with(self.now, req, retry).unwrap()
    }
}

/// Connects to S1, makes one publish (written or not), loses the
/// connection, and answers the reconnect with `welcome` for S1 (resumed) or
/// S2 (lost). Returns the publish's token and the welcome's outputs.
fn publish_across_a_reconnect(
    written: Written,
    retry: Retry,
    resumed: bool,
) -> (RequestToken, Vec<Output>) {
    let mut t = T::new(opts());
    t.connect(S1, false);
    let tok = match written {
        Written::Yes => {
            let tok = t.publish_with(1, retry);
            assert_eq!(t.sent().len(), 1, "written to the connection");
            t.reconnect_to_hello();
            tok
        }
        Written::No => {
            t.reconnect_to_hello();
            let tok = t.publish_with(1, retry);
            assert!(t.sent().is_empty(), "queued while offline");
            assert_eq!(t.e.queued(), 1);
            tok
        }
    };
    let out = t.welcome(if resumed { S1 } else { S2 }, resumed);
    (tok, out)
}

#[test]
fn each_case_of_written_retry_and_resume_is_resent_or_fails_with_unknown_outcome() {
    let resent = json!({"type":"publish","id":1,"group":"g","data":1});
    for written in [Written::Yes, Written::No] {
        for retry in [Retry::AtMostOnce, Retry::Resend] {
            for resumed in [true, false] {
                let case = format!("{written:?} {retry:?} resumed:{resumed}");
                let (tok, out) = publish_across_a_reconnect(written, retry, resumed);
                let fails = written == Written::Yes && retry == Retry::AtMostOnce && !resumed;
                if fails {
                    assert!(sent_frames(&out).is_empty(), "{case}: not re-sent");
                    assert_eq!(
                        completions(&out),
                        [(tok.0, Err("unknown_outcome".to_owned()))],
                        "{case}"
                    );
                } else {
                    assert_eq!(
                        sent_frames(&out),
                        std::slice::from_ref(&resent),
                        "{case}: same id"
                    );
                    assert!(completions(&out).is_empty(), "{case}");
                }
            }
        }
    }
}

#[test]
fn unknown_outcome_names_the_request_and_says_it_may_not_have_been_delivered() {
    let (tok, out) = publish_across_a_reconnect(Written::Yes, Retry::AtMostOnce, false);
    let err = out
        .iter()
        .find_map(|o| match o {
            Output::Complete {
                result: Err(e),
                token,
            } if *token == tok => Some(e.clone()),
            _ => None,
        })
        .expect("the publish failed");
    assert_eq!(err, ClientError::UnknownOutcome { id: tok.0 });
    assert_eq!(err.code(), "unknown_outcome");
    let text = err.to_string();
    assert!(
        text.contains(&format!("request {}", tok.0))
            && text.contains("may or may not have been delivered"),
        "{text}"
    );
    // The application hears of the new session before the failure.
    assert!(matches!(
        events(&out)[..],
        [Event::Connected {
            resumed: false,
            lost_session: Some(_),
            ..
        }]
    ));
}

#[test]
fn the_default_is_at_most_once_for_send_publish_broadcast_and_rpc() {
    let data = || serde_json::value::to_raw_value(&1).unwrap();
    let requests = [
        Request::Send {
            target: Target::User("bob".into()),
            data: data(),
        },
        Request::Publish {
            group: "g".into(),
            data: data(),
            echo: false,
        },
        Request::Broadcast {
            data: data(),
            echo: true,
        },
        Request::Rpc {
            method: "time".into(),
            data: None,
        },
    ];
    let mut t = T::new(opts());
    t.connect(S1, false);
    let tokens: Vec<u64> = requests
        .into_iter()
        .map(|r| t.e.request(t.now, r).unwrap().0)
        .collect();
    assert_eq!(t.sent().len(), 4);
    t.reconnect_to_hello();
    let out = t.welcome(S2, false);
    assert!(sent_frames(&out).is_empty());
    let failed: Vec<(u64, Result<(), String>)> = tokens
        .iter()
        .map(|&id| (id, Err("unknown_outcome".to_owned())))
        .collect();
    assert_eq!(completions(&out), failed);
    assert_eq!(t.e.in_flight(), 0);
}

#[test]
fn join_leave_and_presence_are_resent_into_a_new_session_whatever_was_asked() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    t.request_with(
        Request::Join {
            group: "kept".into(),
            presence: false,
        },
        Retry::AtMostOnce,
    );
    t.frame(json!({"type":"ok","id":1}));
    // Written, unanswered, and asked to be at most once: still re-sent.
    t.request_with(
        Request::Join {
            group: "new".into(),
            presence: false,
        },
        Retry::AtMostOnce,
    );
    t.request_with(
        Request::Leave {
            group: "kept".into(),
        },
        Retry::AtMostOnce,
    );
    t.request_with(
        Request::Presence {
            group: "kept".into(),
        },
        Retry::AtMostOnce,
    );
    assert_eq!(t.sent().len(), 4);
    t.reconnect_to_hello();
    let out = t.welcome(S2, false);
    assert!(completions(&out).is_empty(), "nothing fails");
    assert_eq!(
        sent_frames(&out),
        [
            // The engine re-joins what the server confirmed...
            json!({"type":"join","id":5,"group":"kept"}),
            // ...then the unanswered requests go again with their ids.
            json!({"type":"join","id":2,"group":"new"}),
            json!({"type":"leave","id":3,"group":"kept"}),
            json!({"type":"presence","id":4,"group":"kept"}),
        ]
    );
    for id in [5, 2, 3] {
        t.frame(json!({"type":"ok","id":id}));
    }
    assert_eq!(t.e.groups().collect::<Vec<_>>(), ["new"]);
}

#[test]
fn a_request_resent_after_a_resume_may_have_been_routed_when_the_next_session_is_lost() {
    let mut t = T::new(opts());
    // Made offline, first written in S1; then resumed, re-sent; then lost.
    t.e.start(t.now);
    let tok = t.publish(1);
    let out = t.connect(S1, false);
    assert_eq!(sent_frames(&out).len(), 1, "written in S1");
    t.reconnect_to_hello();
    let out = t.welcome(S1, true);
    assert_eq!(sent_frames(&out).len(), 1, "re-sent after the resume");
    t.reconnect_to_hello();
    let out = t.welcome(S2, false);
    assert!(sent_frames(&out).is_empty());
    assert_eq!(
        completions(&out),
        [(tok.0, Err("unknown_outcome".to_owned()))]
    );
}

#[test]
fn after_a_lost_session_the_failed_request_is_gone_and_later_ones_are_sent_in_order() {
    let mut t = T::new(opts());
    t.connect(S1, false);
    let lost = t.publish(1);
    let resend = t.publish_with(2, Retry::Resend);
    t.outputs();
    t.reconnect_to_hello();
    let queued = t.publish(3);
    let out = t.welcome(S2, false);
    assert_eq!(
        completions(&out),
        [(lost.0, Err("unknown_outcome".to_owned()))]
    );
    assert_eq!(
        sent_frames(&out)
            .iter()
            .map(|f| (f["id"].clone(), f["data"].clone()))
            .collect::<Vec<_>>(),
        [(json!(2), json!(2)), (json!(3), json!(3))],
        "the Resend one first, with its id, then the queue"
    );
    // A late answer for the failed id (from no one) is ignored.
    t.frame(json!({"type":"ok","id":1}));
    t.frame(json!({"type":"ok","id":2}));
    t.frame(json!({"type":"ok","id":3}));
    assert_eq!(
        completions(&t.outputs()),
        [(resend.0, Ok(())), (queued.0, Ok(()))]
    );
    assert_eq!(t.e.in_flight(), 0);
}

#[test]
fn a_snapshot_keeps_whether_a_request_was_written_and_its_choice() {
    let mut o = opts();
    o.persist_path = Some("/unused".into());
    let mut t = T::new(o.clone());
    t.connect(S1, false);
    t.publish(1);
    t.publish_with(2, Retry::Resend);
    t.outputs();
    t.e.on_closed(t.now, None, "lost");
    t.publish(3);
    let snapshot = t
        .outputs()
        .into_iter()
        .rev()
        .find_map(|o| match o {
            Output::Persist(Some(s)) => Some(s),
            _ => None,
        })
        .expect("persisted while offline");
    let pending: Vec<(i64, bool, Retry)> = snapshot
        .pending
        .iter()
        .map(|p| (p.id, p.sent, p.retry))
        .collect();
    assert_eq!(
        pending,
        [
            (1, true, Retry::AtMostOnce),
            (2, true, Retry::Resend),
            (3, false, Retry::AtMostOnce)
        ]
    );
    let text = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(
        text["pending"][0],
        json!({"id":1,"frame":"{\"type\":\"publish\",\"id\":1,\"group\":\"g\",\"data\":1}","effect":"none","sent":true}),
        "defaults are left out"
    );
    assert_eq!(text["pending"][1]["retry"], "resend");

    // A new process whose session cannot be resumed: nobody waits for the
    // restored requests, so the unknown outcome is an error event.
    let mut t = T {
        e: Engine::new(o.clone(), false, Some(snapshot.clone())),
        now: Instant::now(),
    };
    t.e.start(t.now);
    t.outputs();
    t.e.on_open(t.now);
    t.outputs();
    let out = t.welcome(S2, false);
    assert_eq!(
        sent_frames(&out)
            .iter()
            .map(|f| f["id"].clone())
            .collect::<Vec<_>>(),
        [json!(2), json!(3)]
    );
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::Error { code, message, .. }
            if code == "unknown_outcome" && message.contains("request 1 "))),
        "{:?}",
        events(&out)
    );

    // One whose session resumes sends them all: the server remembers ids.
    let mut t = T {
        e: Engine::new(o, false, Some(snapshot)),
        now: Instant::now(),
    };
    t.e.start(t.now);
    t.outputs();
    t.e.on_open(t.now);
    t.outputs();
    let out = t.welcome(S1, true);
    assert_eq!(sent_frames(&out).len(), 3);
}

#[test]
fn a_snapshot_from_before_the_field_restores_requests_as_never_written() {
    let old = json!({"version":1,"session":S1,"last_seq":0,"next_id":2,"groups":[],
        "pending":[{"id":1,"frame":"{\"type\":\"publish\",\"id\":1,\"group\":\"g\",\"data\":1}"}]});
    let snapshot: Snapshot = serde_json::from_value(old).unwrap();
    assert_eq!(
        (snapshot.pending[0].sent, snapshot.pending[0].retry),
        (false, Retry::AtMostOnce)
    );
}

#[test]
fn retry_names_round_trip() {
    for r in [Retry::AtMostOnce, Retry::Resend] {
        assert_eq!(r.as_str().parse::<Retry>().unwrap(), r);
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
    }
    assert_eq!(Retry::default(), Retry::AtMostOnce);
    assert_eq!(
        "twice".parse::<Retry>().unwrap_err().code(),
        "invalid_argument"
    );
}
