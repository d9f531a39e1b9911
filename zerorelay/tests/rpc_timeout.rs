//! `limits.rpc_timeout_ms`: a host RPC handler that never answers fails its
//! call with `internal`, and nothing else waits for it.

mod common;

use std::sync::Arc;

use common::{config, start_with, Client, WAIT};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};
use zerorelay::auth::{Action, Authorizer, BoxFuture, Identity};
use zerorelay::{Config, ProtocolError, Relay};

/// A relay whose `hang` handler never answers (it reports when its future
/// is dropped), and whose `echo` answers at once.
fn relay(cfg: Config) -> (zerorelay::RelayBuilder, mpsc::Receiver<()>) {
    let (dropped_tx, dropped) = mpsc::channel::<()>(8);
    let dropped_tx = Arc::new(Mutex::new(dropped_tx));
    let builder = Relay::builder(cfg)
        .rpc("hang", move |_, _| {
            let dropped_tx = dropped_tx.clone();
            async move {
                /// Tells the test when the relay drops the handler's future.
                struct OnDrop(mpsc::Sender<()>);
                impl Drop for OnDrop {
                    fn drop(&mut self) {
                        let _ = self.0.try_send(());
                    }
                }
                let _guard = OnDrop(dropped_tx.lock().await.clone());
                std::future::pending::<()>().await;
                Ok(Value::Null)
            }
        })
        .rpc("echo", |_, data| async move { Ok(data) });
    (builder, dropped)
}

fn short_rpc_timeout() -> Config {
    let mut cfg = config();
    cfg.limits.rpc_timeout_ms = 200;
    cfg
}

#[tokio::test]
async fn an_rpc_handler_that_never_answers_fails_with_internal_after_the_rpc_timeout() {
    let (builder, mut dropped) = relay(short_rpc_timeout());
    let s = start_with(builder).await;
    let mut alice = Client::connect(&s, "alice").await;
    let mut bob = Client::connect(&s, "bob").await;

    alice
        .send(json!({"type":"rpc","id":1,"method":"hang","data":null}))
        .await;
    // While the call hangs, the same connection's next request and another
    // client's are answered.
    let r = alice
        .request(json!({"type":"rpc","id":2,"method":"echo","data":"a"}))
        .await;
    assert_eq!(r, json!({"type":"result","id":2,"data":"a"}));
    let r = bob
        .request(json!({"type":"rpc","id":1,"method":"echo","data":"b"}))
        .await;
    assert_eq!(r, json!({"type":"result","id":1,"data":"b"}));

    // Then the hung call fails with the relay's code for a hook that took
    // too long, and its handler's future is dropped.
    let e = alice.error("internal").await;
    assert_eq!(e["id"], 1, "{e}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("limits.rpc_timeout_ms")),
        "{e}"
    );
    tokio::time::timeout(WAIT, dropped.recv())
        .await
        .expect("the hung handler is dropped within the wait")
        .expect("the relay is alive");

    // The connection is unharmed: its next call is answered.
    let r = alice
        .request(json!({"type":"rpc","id":3,"method":"echo","data":"again"}))
        .await;
    assert_eq!(r, json!({"type":"result","id":3,"data":"again"}));
    s.stop().await;
}

#[tokio::test]
async fn the_rpc_timeout_also_bounds_a_handler_behind_an_authorizer() {
    let (builder, mut dropped) = relay(short_rpc_timeout());
    /// Allows everything, at once.
    struct Yes;
    impl Authorizer for Yes {
        fn authorize<'a>(
            &'a self,
            _: &'a Identity,
            _: Action<'a>,
        ) -> BoxFuture<'a, Result<(), ProtocolError>> {
            Box::pin(async { Ok(()) })
        }
    }
    let s = start_with(builder.authorizer(Yes)).await;
    let mut alice = Client::connect(&s, "alice").await;
    let e = alice
        .request(json!({"type":"rpc","id":1,"method":"hang"}))
        .await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("internal")),
        "{e}"
    );
    tokio::time::timeout(WAIT, dropped.recv())
        .await
        .expect("the hung handler is dropped within the wait")
        .expect("the relay is alive");
    s.stop().await;
}

#[test]
fn the_rpc_timeout_defaults_to_30_s_and_must_be_at_least_1_ms() {
    assert_eq!(Config::default().limits.rpc_timeout_ms, 30_000);
    let mut cfg = config();
    cfg.limits.rpc_timeout_ms = 0;
    let e = cfg.validate().expect_err("0 ms is refused");
    assert!(e.to_string().contains("limits.rpc_timeout_ms"), "{e}");
}
