//! The scenario suite (`tests/scenarios/scenarios.json`) run with the Rust
//! client engine against an embedded relay: every row against a fresh relay,
//! one after the other; the test fails listing every row that failed. The
//! step vocabulary is in `tests/scenarios/README.md`; a step this runner does
//! not implement fails its row.
#![cfg(feature = "client")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::proxy::Proxy;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use zerorelay::client::{Client, ClientError, ClientOptions, Event, Reply, Request, TokenProvider};
use zerorelay::protocol::Target;
use zerorelay::{Config, Relay};

type Outcome = Result<Value, String>;

/// What one client of a scenario saw.
#[derive(Default)]
struct Log {
    events: Vec<Value>,
    messages: Vec<Value>,
    /// Each token's `exp`; `None` for a provider call that failed.
    tokens: Vec<Option<u64>>,
}

struct Peer {
    client: Client,
    net: Option<Proxy>,
    log: Arc<Mutex<Log>>,
    cursor: usize,
    read: usize,
    reader: JoinHandle<()>,
}

struct Run {
    server: common::Server,
    stopped: bool,
    wait: Duration,
    peers: HashMap<String, Peer>,
    pending: HashMap<String, JoinHandle<Outcome>>,
}

fn s<'a>(step: &'a Value, key: &str) -> &'a str {
    step[key].as_str().unwrap_or_default()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Checks an outcome against a step's `error` / `result`.
fn check(step: &Value, out: Outcome) -> Result<(), String> {
    match (step.get("error"), out) {
        (Some(want), Err(code)) if want == code.as_str() => Ok(()),
        (Some(want), out) => Err(format!("expected error {want}, got {out:?}")),
        (None, Err(code)) => Err(format!("expected success, got error {code}")),
        (None, Ok(result)) => match step.get("result") {
            Some(want) if *want != result => Err(format!("expected result {want}, got {result}")),
            _ => Ok(()),
        },
    }
}

fn outcome(r: Result<Reply, ClientError>) -> Outcome {
    match r {
        Ok(Reply::Ok) => Ok(Value::Null),
        Ok(Reply::Result(v)) => serde_json::from_str(v.get()).map_err(|e| e.to_string()),
        Err(e) => Err(e.code().to_owned()),
    }
}

fn raw(v: &Value) -> Box<RawValue> {
    to_raw_value(v).expect("a JSON value serializes")
}

impl Run {
    /// Polls `check` until it returns something, for at most the suite's wait.
    async fn until<T>(
        &self,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(v) = check() {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!("no {what} within {:?}", self.wait));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn peer(&self, name: &str) -> Result<&Peer, String> {
        self.peers
            .get(name)
            .ok_or_else(|| format!("no client {name:?} in this scenario"))
    }

    /// The session of a client's latest welcome.
    async fn session(&self, name: &str) -> Result<String, String> {
        let log = self.peer(name)?.log.clone();
        self.until(&format!("session of {name}"), || {
            let log = log.lock().unwrap();
            log.events
                .iter()
                .rev()
                .find(|e| e["type"] == "connected")
                .map(|e| e["session"].as_str().unwrap().to_owned())
        })
        .await
    }

    /// Waits for the next event after the last one matched that has the
    /// step's fields.
    async fn expect_event(
        &mut self,
        step: &Value,
        kind: &str,
        fields: &[&str],
    ) -> Result<(), String> {
        let name = s(step, "client");
        let (log, from) = {
            let p = self.peer(name)?;
            (p.log.clone(), p.cursor)
        };
        let at = self
            .until(&format!("{kind} event on {name} like {step}"), || {
                let log = log.lock().unwrap();
                (from..log.events.len()).find(|&i| {
                    let e = &log.events[i];
                    e["type"] == kind
                        && fields
                            .iter()
                            .all(|f| step.get(*f).is_none_or(|want| e[*f] == *want))
                })
            })
            .await?;
        self.peers.get_mut(name).unwrap().cursor = at + 1;
        Ok(())
    }

    /// The request a request step names.
    async fn request_of(&self, step: &Value) -> Result<Request, String> {
        Ok(match s(step, "do") {
            "join" => Request::Join {
                group: s(step, "group").into(),
                presence: false,
            },
            "leave" => Request::Leave {
                group: s(step, "group").into(),
            },
            "publish" => Request::Publish {
                group: s(step, "group").into(),
                data: raw(&step["data"]),
                echo: step["echo"] == true,
            },
            "send" => Request::Send {
                target: match step.get("to") {
                    Some(to) => Target::User(to.as_str().unwrap_or_default().into()),
                    None => Target::Session(self.session(s(step, "session_of")).await?),
                },
                data: raw(&step["data"]),
            },
            "broadcast" => Request::Broadcast {
                data: raw(&step["data"]),
                echo: false,
            },
            _ => Request::Rpc {
                method: s(step, "method").into(),
                data: Some(raw(&step["data"])),
            },
        })
    }

    async fn request(&mut self, step: &Value) -> Result<(), String> {
        let req = self.request_of(step).await?;
        // `submit_now` queues the request before it returns, so pending
        // requests are made in step order.
        let reply = self
            .peer(s(step, "client"))?
            .client
            .submit_now(req)
            .map_err(|e| e.code().to_owned());
        let reply = match reply {
            Ok(r) => r,
            Err(code) => return check(step, Err(code)),
        };
        if let Some(name) = step["pending"].as_str() {
            let task = tokio::spawn(async move { outcome(reply.await) });
            self.pending.insert(name.into(), task);
            return Ok(());
        }
        match tokio::time::timeout(self.wait, reply).await {
            Ok(r) => check(step, outcome(r)),
            Err(_) => Err(format!("no answer within {:?}", self.wait)),
        }
    }

    async fn connect(&mut self, step: &Value) -> Result<(), String> {
        let mut opts = ClientOptions {
            user: step["user"].as_str().map(Into::into),
            token: step["token"].as_str().map(Into::into),
            ..ClientOptions::default()
        };
        opts.reconnect.base_ms = 20;
        opts.reconnect.cap_ms = 200;
        if let Some(n) = step["queue"]["max_messages"].as_u64() {
            opts.queue.max_messages = n as usize;
        }
        let log = Arc::new(Mutex::new(Log::default()));
        let provider: Option<TokenProvider> = step.get("token_provider").map(|spec| {
            let (spec, log) = (spec.clone(), log.clone());
            let provider: TokenProvider = Arc::new(move || {
                let mut log = log.lock().unwrap();
                let call = log.tokens.len() as u64 + 1;
                let fails = spec["fail_calls"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|n| n.as_u64() == Some(call)));
                let token = if fails {
                    log.tokens.push(None);
                    Err(format!("the scenario fails call {call}"))
                } else {
                    let exp = now_s().ceil() as u64 + spec["ttl_s"].as_u64().unwrap_or(0);
                    log.tokens.push(Some(exp));
                    let key = EncodingKey::from_secret(s(&spec, "jwt_secret").as_bytes());
                    let claims = json!({"sub": spec["sub"], "exp": exp});
                    Ok((encode(&Header::default(), &claims, &key).unwrap(), None))
                };
                Box::pin(async move { token })
            });
            provider
        });
        let net = if step["proxy"] == true {
            Some(Proxy::start(self.server.addr).await)
        } else {
            None
        };
        let url = net.as_ref().map_or_else(|| self.server.url(), Proxy::url);
        let connected = Client::connect_with(&url, opts, provider).await;
        if step.get("error").is_some() {
            // A connect that must fail: no client is kept.
            return check(
                step,
                connected
                    .map(|_| Value::Null)
                    .map_err(|e| e.code().to_owned()),
            );
        }
        let (client, mut events) =
            connected.map_err(|e| format!("connect failed: {}: {e}", e.code()))?;
        let l = log.clone();
        let reader = tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let mut log = l.lock().unwrap();
                match e {
                    Event::Message(m) => log.messages.push(json!({
                        "from": m.from,
                        "kind": m.kind,
                        "group": m.group,
                        "data": serde_json::from_str::<Value>(m.data.get()).unwrap(),
                    })),
                    Event::Connected { session, user, resumed, .. } => log.events.push(
                        json!({"type": "connected", "session": session, "user": user, "resumed": resumed}),
                    ),
                    Event::Disconnected { code, will_retry, .. } => log.events.push(
                        json!({"type": "disconnected", "code": code, "will_retry": will_retry}),
                    ),
                    Event::Error { code, .. } => {
                        log.events.push(json!({"type": "error", "code": code}))
                    }
                    Event::Closed { .. } => log.events.push(json!({"type": "closed"})),
                    _ => {}
                }
            }
        });
        let peer = Peer {
            client,
            net,
            log,
            cursor: 0,
            read: 0,
            reader,
        };
        self.peers.insert(s(step, "as").into(), peer);
        Ok(())
    }

    async fn step(&mut self, step: &Value) -> Result<(), String> {
        let kind = s(step, "do");
        let name = s(step, "client");
        let relay = self.server.relay.clone();
        match kind {
            "connect" => self.connect(step).await,
            "close" => {
                self.peer(name)?.client.close().await;
                Ok(())
            }
            "join" | "leave" | "publish" | "send" | "broadcast" | "rpc" => self.request(step).await,
            "await" => {
                let task = self
                    .pending
                    .remove(s(step, "pending"))
                    .ok_or_else(|| format!("no pending request {}", step["pending"]))?;
                match tokio::time::timeout(self.wait, task).await {
                    Ok(out) => check(step, out.expect("the request task does not panic")),
                    Err(_) => Err(format!("no answer within {:?}", self.wait)),
                }
            }
            "expect_message" => {
                let (log, read) = {
                    let p = self.peer(name)?;
                    (p.log.clone(), p.read)
                };
                let got = self
                    .until(&format!("message on {name}"), || {
                        log.lock().unwrap().messages.get(read).cloned()
                    })
                    .await?;
                self.peers.get_mut(name).unwrap().read += 1;
                for f in ["from", "kind", "group", "data"] {
                    if let Some(want) = step.get(f) {
                        if got[f] != *want {
                            return Err(format!("message {got} should have {f} {want}"));
                        }
                    }
                }
                Ok(())
            }
            "expect_no_message" => {
                let ms = step["within_ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let p = self.peer(name)?;
                let log = p.log.lock().unwrap();
                match log.messages.get(p.read..).unwrap_or_default() {
                    [] => Ok(()),
                    extra => Err(format!("no message should have arrived, got {extra:?}")),
                }
            }
            "expect_connected" => {
                self.expect_event(step, "connected", &["user", "resumed"])
                    .await
            }
            "expect_disconnect" => {
                self.expect_event(step, "disconnected", &["code", "will_retry"])
                    .await
            }
            "expect_error" => self.expect_event(step, "error", &["code"]).await,
            "expect_closed" => self.expect_event(step, "closed", &[]).await,
            "expect_no_event" => {
                let log = self.peer(name)?.log.lock().unwrap();
                match log.events.iter().find(|e| e["type"] == step["event"]) {
                    Some(e) => Err(format!("unexpected event {e}")),
                    None => Ok(()),
                }
            }
            "expect_sessions" => {
                let (user, count) = (s(step, "user"), step["count"].as_u64().unwrap_or(0));
                self.until(&format!("{count} sessions of {user}"), || {
                    let n = relay
                        .sessions()
                        .iter()
                        .filter(|x| x.user.as_deref() == Some(user))
                        .count();
                    (n as u64 == count).then_some(())
                })
                .await
            }
            "outlive_token" => {
                // Token n+1 was issued (the relay asked before n expired)
                // and n's expiry has passed.
                let n = step["token"].as_u64().unwrap_or(0) as usize;
                let log = self.peer(name)?.log.clone();
                self.until(&format!("the expiry of token {n} of {name}"), || {
                    let log = log.lock().unwrap();
                    let exp = (log.tokens.len() > n)
                        .then(|| log.tokens[n - 1])
                        .flatten()?;
                    (now_s() > exp as f64).then_some(())
                })
                .await
            }
            "cut" | "kick" | "revoke" => {
                let session = self.session(name).await?;
                let existed = match kind {
                    "cut" => relay.drop_connection(&session),
                    "kick" => relay.disconnect(&session),
                    _ => relay.revoke_session(&session),
                };
                existed
                    .then_some(())
                    .ok_or_else(|| format!("{kind}: no session {session}"))
            }
            "offline" | "online" => {
                let net = self.peer(name)?.net.as_ref().ok_or_else(|| {
                    format!("{kind} needs a client connected with \"proxy\": true")
                })?;
                if kind == "offline" {
                    net.down();
                } else {
                    net.up();
                }
                Ok(())
            }
            "stop_server" => {
                self.stopped = true;
                tokio::time::timeout(self.wait, relay.shutdown())
                    .await
                    .map_err(|_| "the server did not stop in time".to_owned())
            }
            "host_publish" => relay
                .publish(s(step, "group"), &step["data"])
                .map(drop)
                .map_err(|e| e.to_string()),
            "host_send" => match step.get("to") {
                Some(to) => relay
                    .send_to_user(to.as_str().unwrap_or_default(), &step["data"])
                    .map(drop)
                    .map_err(|e| e.to_string()),
                None => {
                    let session = self.session(s(step, "session_of")).await?;
                    relay
                        .send_to_session(&session, &step["data"])
                        .map_err(|e| e.to_string())
                }
            },
            "host_broadcast" => relay
                .broadcast(&step["data"])
                .map(drop)
                .map_err(|e| e.to_string()),
            other => Err(format!("the Rust runner does not implement step {other:?}")),
        }
    }

    async fn close(self) {
        for (_, p) in self.peers {
            p.client.close().await;
            p.reader.abort();
        }
        for (_, t) in self.pending {
            t.abort();
        }
        if !self.stopped {
            self.server.relay.shutdown().await;
        }
    }
}

async fn run_row(suite: &Value, row: &Value) -> Result<(), String> {
    let mut config = row["config"].clone();
    config["server"]["listen"] = json!("127.0.0.1:0");
    let config: Config = serde_json::from_value(config).map_err(|e| format!("config: {e}"))?;
    let builder = Relay::builder(config).rpc("echo", |ctx, data| async move {
        Ok(json!({"data": data, "user": ctx.user}))
    });
    let mut run = Run {
        server: common::start_with(builder).await,
        stopped: false,
        wait: Duration::from_millis(suite["wait_ms"].as_u64().unwrap()),
        peers: HashMap::new(),
        pending: HashMap::new(),
    };
    let mut result = Ok(());
    for (i, step) in row["steps"].as_array().unwrap().iter().enumerate() {
        let kind = s(step, "do");
        let Some(allowed) = suite["vocabulary"][kind].as_array() else {
            result = Err(format!("step {}: unknown step {kind:?}", i + 1));
            break;
        };
        let extra: Vec<&String> = step
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "do" && !allowed.iter().any(|a| a == k.as_str()))
            .collect();
        if !extra.is_empty() {
            result = Err(format!("step {} ({kind}): unknown keys {extra:?}", i + 1));
            break;
        }
        if let Err(e) = run.step(step).await {
            result = Err(format!("step {} {step}: {e}", i + 1));
            break;
        }
    }
    run.close().await;
    result
}

#[tokio::test]
async fn every_scenario_passes_with_the_rust_client() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/scenarios/scenarios.json"
    );
    let suite: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rows = suite["scenarios"].as_array().unwrap();
    let mut failed = Vec::new();
    for row in rows {
        let name = row["name"].as_str().unwrap();
        match run_row(&suite, row).await {
            Ok(()) => eprintln!("scenario {name}: ok"),
            Err(e) => {
                eprintln!("scenario {name}: FAILED: {e}");
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failed.len(),
        rows.len(),
        failed.join("\n")
    );
}
