//! Roles and permissions: every rule shape (`*`, a pattern, `{user}`,
//! `broadcast`), default deny, the roles claim (also as a dotted path),
//! the groups claim narrowing, the default roles, reloading, and the host
//! authorizer after the roles.

mod common;

use common::{config, start, Client, Server};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use zerorelay::auth::jwt::now_s;
use zerorelay::config::{AuthConfig, RoleConfig};
use zerorelay::Config;

const SECRET: &str = "permissions-test-secret-0123456789abcdef";

fn token(claims: Value) -> String {
    let mut c = claims;
    c["exp"] = json!(now_s() + 600);
    encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn roles(auth: &mut AuthConfig, list: &[(&str, &[&str])]) {
    for (name, allow) in list {
        auth.roles.insert(
            name.to_string(),
            RoleConfig {
                allow: allow.iter().map(|s| s.to_string()).collect(),
            },
        );
    }
}

/// The example: members chat in rooms and their own group, admins
/// do anything.
fn rbac_config() -> Config {
    let mut c = config();
    c.auth.jwt.secret = Some(SECRET.into());
    c.features.client_broadcast = true;
    roles(
        &mut c.auth,
        &[
            (
                "member",
                &[
                    "join:room-*",
                    "publish:room-*",
                    "join:user:{user}",
                    "send:*",
                    "rpc:time",
                ],
            ),
            ("admin", &["*"]),
            ("announcer", &["broadcast"]),
        ],
    );
    c.auth.default_roles = vec!["member".into()];
    c
}

async fn as_user(s: &Server, claims: Value) -> Client {
    let mut c = Client::raw(s).await;
    let w = c
        .hello(json!({"type":"hello","v":1,"token":token(claims)}))
        .await;
    assert_eq!(w["type"], "welcome", "{w}");
    c
}

async fn forbidden(c: &mut Client, req: Value, names: &str) {
    let e = c.request(req).await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["code"], "forbidden", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains(names), "{m:?} should name {names:?}");
}

#[tokio::test]
async fn members_get_exactly_what_their_role_allows() {
    let mut c = rbac_config();
    c.server.hello_timeout_ms = 2_000;
    let s = start_rpc(c).await;
    let mut alice = as_user(&s, json!({"sub":"alice"})).await;
    let mut bob = as_user(&s, json!({"sub":"bob"})).await;
    alice
        .ok(json!({"type":"join","id":1,"group":"room-1"}))
        .await;
    alice
        .ok(json!({"type":"join","id":2,"group":"user:alice"}))
        .await;
    forbidden(
        &mut alice,
        json!({"type":"join","id":3,"group":"user:bob"}),
        "join user:bob",
    )
    .await;
    forbidden(
        &mut alice,
        json!({"type":"join","id":4,"group":"lobby"}),
        "join lobby",
    )
    .await;
    forbidden(
        &mut alice,
        json!({"type":"publish","id":5,"group":"lobby","data":1}),
        "publish lobby",
    )
    .await;
    forbidden(
        &mut alice,
        json!({"type":"broadcast","id":6,"data":1}),
        "broadcast",
    )
    .await;
    forbidden(
        &mut alice,
        json!({"type":"rpc","id":7,"method":"secret"}),
        "rpc secret",
    )
    .await;
    let r = alice
        .request(json!({"type":"rpc","id":8,"method":"time"}))
        .await;
    assert_eq!(r["type"], "result", "{r}");
    // Refusals cost nothing else: the connection and the others carry on.
    bob.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    alice
        .ok(json!({"type":"publish","id":9,"group":"room-1","data":"hi"}))
        .await;
    assert_eq!(bob.message().await["data"], "hi");
    alice
        .ok(json!({"type":"send","id":10,"to":"bob","data":"psst"}))
        .await;
    assert_eq!(bob.message().await["data"], "psst");
    s.stop().await;
}

async fn start_rpc(c: Config) -> Server {
    common::start_with(
        zerorelay::Relay::builder(c)
            .rpc("time", |_, _| async { Ok(json!(1)) })
            .rpc("secret", |_, _| async { Ok(json!(2)) }),
    )
    .await
}

#[tokio::test]
async fn roles_come_from_the_token_and_unknown_roles_grant_nothing() {
    let s = start(rbac_config()).await;
    let mut admin = as_user(&s, json!({"sub":"root","roles":["admin"]})).await;
    admin
        .ok(json!({"type":"join","id":1,"group":"anything"}))
        .await;
    admin.ok(json!({"type":"broadcast","id":2,"data":1})).await;
    let mut announcer = as_user(&s, json!({"sub":"news","roles":["announcer"]})).await;
    announcer
        .ok(json!({"type":"broadcast","id":1,"data":1}))
        .await;
    // Roles replace the defaults: an announcer is not a member.
    forbidden(
        &mut announcer,
        json!({"type":"join","id":2,"group":"room-1"}),
        "join room-1",
    )
    .await;
    let mut ghost = as_user(&s, json!({"sub":"eve","roles":["superuser"]})).await;
    forbidden(
        &mut ghost,
        json!({"type":"join","id":1,"group":"room-1"}),
        "no role",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn a_dotted_roles_claim_reads_keycloak_tokens() {
    let mut c = rbac_config();
    c.auth.jwt.roles_claim = "realm_access.roles".into();
    let s = start(c).await;
    let mut admin = as_user(&s, json!({"sub":"root","realm_access":{"roles":["admin"]}})).await;
    admin.ok(json!({"type":"join","id":1,"group":"ops"})).await;
    let mut member = as_user(&s, json!({"sub":"al","roles":["admin"]})).await;
    forbidden(
        &mut member,
        json!({"type":"join","id":1,"group":"ops"}),
        "join ops",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn the_groups_claim_narrows_the_roles_and_never_widens_them() {
    let s = start(rbac_config()).await;
    let mut c = as_user(
        &s,
        json!({"sub":"alice","groups":["room-1","user:{user}","vip"]}),
    )
    .await;
    c.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    c.ok(json!({"type":"join","id":2,"group":"user:alice"}))
        .await;
    forbidden(
        &mut c,
        json!({"type":"join","id":3,"group":"room-2"}),
        "groups claim",
    )
    .await;
    forbidden(
        &mut c,
        json!({"type":"publish","id":4,"group":"room-2","data":1}),
        "groups claim",
    )
    .await;
    // Listed by the token, allowed by no role.
    forbidden(
        &mut c,
        json!({"type":"join","id":5,"group":"vip"}),
        "join vip",
    )
    .await;
    // Sending is not a group action: the claim does not narrow it.
    let mut bob = as_user(&s, json!({"sub":"bob"})).await;
    c.ok(json!({"type":"send","id":6,"to":"bob","data":1}))
        .await;
    assert_eq!(bob.message().await["data"], 1);
    s.stop().await;
}

#[tokio::test]
async fn default_deny_once_roles_exist_and_allow_all_in_development_without_them() {
    let mut c = config();
    c.auth.tokens.insert("t".into(), "alice".into());
    roles(&mut c.auth, &[("reader", &["join:news"])]);
    let s = start(c).await;
    let mut a = Client::raw(&s).await;
    a.hello(json!({"type":"hello","v":1,"token":"t"})).await;
    // No default roles and a static token brings none: nothing is allowed.
    forbidden(
        &mut a,
        json!({"type":"join","id":1,"group":"news"}),
        "join news",
    )
    .await;
    s.stop().await;

    let s = start(config()).await;
    let mut a = Client::connect(&s, "alice").await;
    a.ok(json!({"type":"join","id":1,"group":"anything"})).await;
    s.stop().await;
}

#[tokio::test]
async fn reloaded_permissions_apply_to_open_connections_at_their_next_request() {
    let s = start(rbac_config()).await;
    let mut a = as_user(&s, json!({"sub":"alice"})).await;
    a.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    let mut narrower = rbac_config().auth;
    roles(&mut narrower, &[("member", &["join:room-1"])]);
    s.relay.reload_permissions(&narrower).unwrap();
    a.ok(json!({"type":"join","id":2,"group":"room-1"})).await;
    forbidden(
        &mut a,
        json!({"type":"join","id":3,"group":"room-2"}),
        "join room-2",
    )
    .await;
    // A bad reload is refused and changes nothing.
    let mut bad = narrower.clone();
    roles(&mut bad, &[("member", &["fly:away"])]);
    let e = s.relay.reload_permissions(&bad).unwrap_err().to_string();
    assert!(e.contains("auth.roles.member.allow"), "{e}");
    a.ok(json!({"type":"join","id":4,"group":"room-1"})).await;
    s.stop().await;
}

/// The host's authorizer runs after the roles and can refuse what they
/// allow.
#[tokio::test]
async fn the_host_authorizer_runs_after_the_roles() {
    use zerorelay::auth::{Action, AuthRequest, Authenticator, BoxFuture, Identity};
    use zerorelay::{ErrorCode, ProtocolError};
    struct NoRoom13(zerorelay::auth::jwt::Jwt);
    impl Authenticator for NoRoom13 {
        fn authenticate<'a>(
            &'a self,
            r: AuthRequest<'a>,
        ) -> BoxFuture<'a, Result<Identity, ProtocolError>> {
            self.0.authenticate(r)
        }
        fn authorize(&self, _: &Identity, a: &Action<'_>) -> Result<(), ProtocolError> {
            match a {
                Action::Join { group } if *group == "room-13" => Err(ProtocolError::new(
                    ErrorCode::Forbidden,
                    "room 13 is closed",
                )),
                _ => Ok(()),
            }
        }
    }
    let c = rbac_config();
    let jwt = zerorelay::auth::jwt::Jwt::from_config(&c.auth.jwt).unwrap();
    let s = common::start_with(zerorelay::Relay::builder(c).authenticator(NoRoom13(jwt))).await;
    let mut a = as_user(&s, json!({"sub":"alice"})).await;
    a.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    forbidden(
        &mut a,
        json!({"type":"join","id":2,"group":"room-13"}),
        "room 13 is closed",
    )
    .await;
    forbidden(
        &mut a,
        json!({"type":"join","id":3,"group":"lobby"}),
        "join lobby",
    )
    .await;
    s.stop().await;
}

/// An asynchronous host authorizer: it sees every action the roles allow,
/// may refuse it, and a slow one fails the request, not the connection.
#[tokio::test]
async fn an_async_authorizer_decides_after_the_roles_and_a_slow_one_fails_only_its_request() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use zerorelay::auth::{Action, Authorizer, BoxFuture, Identity};
    use zerorelay::{ErrorCode, ProtocolError};
    struct Desk(Arc<AtomicUsize>);
    impl Authorizer for Desk {
        fn authorize<'a>(
            &'a self,
            who: &'a Identity,
            action: Action<'a>,
        ) -> BoxFuture<'a, Result<(), ProtocolError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let no = |m: &str| Err(ProtocolError::new(ErrorCode::Forbidden, m.to_owned()));
            let verdict = match action {
                Action::Join { group: "room-slow" } => None,
                Action::Join { group: "room-vip" } => Some(no("vip only")),
                Action::Publish {
                    group: "room-quiet",
                } => Some(no("quiet please")),
                Action::Send { .. } if who.user.as_deref() == Some("alice") => {
                    Some(no("alice may not send today"))
                }
                Action::Rpc { method: "time" } => Some(no("no time")),
                _ => Some(Ok(())),
            };
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                match verdict {
                    Some(v) => v,
                    None => std::future::pending().await,
                }
            })
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let mut c = rbac_config();
    c.limits.authorize_timeout_ms = 200;
    let s = common::start_with(
        zerorelay::Relay::builder(c)
            .authorizer(Desk(calls.clone()))
            .rpc("time", |_, _| async { Ok(json!(1)) }),
    )
    .await;
    let mut alice = as_user(&s, json!({"sub":"alice"})).await;
    let mut bob = as_user(&s, json!({"sub":"bob"})).await;
    bob.ok(json!({"type":"join","id":1,"group":"room-1"})).await;
    alice
        .ok(json!({"type":"join","id":1,"group":"room-1"}))
        .await;
    forbidden(
        &mut alice,
        json!({"type":"join","id":2,"group":"room-vip"}),
        "vip only",
    )
    .await;
    forbidden(
        &mut alice,
        json!({"type":"publish","id":3,"group":"room-quiet","data":1}),
        "quiet",
    )
    .await;
    forbidden(
        &mut alice,
        json!({"type":"send","id":4,"to":"bob","data":1}),
        "may not send",
    )
    .await;
    forbidden(
        &mut alice,
        json!({"type":"rpc","id":5,"method":"time"}),
        "no time",
    )
    .await;
    let before = calls.load(Ordering::SeqCst);
    // What the roles refuse never reaches the authorizer.
    forbidden(
        &mut alice,
        json!({"type":"join","id":6,"group":"lobby"}),
        "join lobby",
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), before);
    let e = alice
        .request(json!({"type":"join","id":7,"group":"room-slow"}))
        .await;
    assert_eq!(e["code"], "internal", "{e}");
    // The connection goes on, in order, and so does everyone else.
    alice
        .send(json!({"type":"publish","id":8,"group":"room-1","data":"after"}))
        .await;
    alice.send(json!({"type":"ping","id":9})).await;
    assert_eq!(alice.recv().await["id"], 8);
    assert_eq!(alice.recv().await["type"], "pong");
    assert_eq!(bob.message().await["data"], "after");
    bob.ok(json!({"type":"send","id":2,"to":"alice","data":"hi"}))
        .await;
    assert_eq!(alice.message().await["data"], "hi");
    s.stop().await;
}
