//! Identity: JWT against a secret, PEM public keys and a JWKS (a file and a
//! URL, with rotation), the HTTP auth callback, the token sources, and the
//! token lifecycle (`refresh_required`, `refresh`, expiry).

mod common;

use std::time::Duration;

use common::http::{HttpServer, Reply};
use common::{config, start, Client, Server};
use futures_util::StreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use zerorelay::auth::jwt::now_s;
use zerorelay::Config;

const SECRET: &str = "a-test-secret-of-decent-length-0123456789";
const RSA_KEY: &str = include_str!("keys/rsa.key.pem");
const RSA_PUB: &str = include_str!("keys/rsa.pub.pem");

fn hs256(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn claims(user: &str, ttl_s: i64) -> Value {
    json!({"sub": user, "exp": now_s() as i64 + ttl_s})
}

fn jwt_config() -> Config {
    let mut c = config();
    c.auth.jwt.secret = Some(SECRET.into());
    c
}

/// A temporary directory removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let p = std::env::temp_dir().join(format!("zerorelay-{name}-{:x}", u64::from_le_bytes(b)));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        // Written aside and renamed, as a deployment tool would.
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p.to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Says hello with `token`; returns the answer and, when refused, the
/// close code.
async fn hello(s: &Server, token: &str) -> (Client, Value) {
    let mut c = Client::raw(s).await;
    let w = c
        .hello(json!({"type":"hello","v":1,"token":token,"user":"mallory"}))
        .await;
    (c, w)
}

async fn welcomed(s: &Server, token: &str) -> Client {
    let (c, w) = hello(s, token).await;
    assert_eq!(w["type"], "welcome", "{w}");
    c
}

async fn refused(s: &Server, token: &str, says: &str) {
    let (mut c, w) = hello(s, token).await;
    assert_eq!(w["type"], "error", "{w}");
    assert_eq!(w["code"], "unauthorized", "{w}");
    let m = w["message"].as_str().unwrap();
    assert!(m.contains(says), "{m:?} should say {says:?}");
    assert_eq!(c.closed().await.0, 4001);
}

fn unsigned(claims: &Value) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b.encode(claims.to_string())
    )
}

#[tokio::test]
async fn a_valid_token_names_the_user_whatever_hello_user_says() {
    let s = start(jwt_config()).await;
    let c = welcomed(&s, &hs256(claims("alice", 60))).await;
    let info = s.relay.sessions();
    assert_eq!(info[0].user.as_deref(), Some("alice"));
    drop(c);
    s.stop().await;
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_reason() {
    let mut cfg = jwt_config();
    cfg.auth.jwt.issuer = Some("https://id.example.com/".into());
    cfg.auth.jwt.audience = Some("zerorelay".into());
    cfg.auth.jwt.leeway_s = 0;
    let s = start(cfg).await;
    let good = |extra: Value| {
        let mut c = json!({"sub":"alice","exp":now_s() + 60,"iss":"https://id.example.com/","aud":"zerorelay"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    welcomed(&s, &hs256(good(json!({})))).await;
    let wrong_secret = encode(
        &Header::new(Algorithm::HS256),
        &good(json!({})),
        &EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    let cases: Vec<(String, &str)> = vec![
        (hs256(good(json!({"exp": now_s() - 10}))), "expired"),
        (hs256(good(json!({"nbf": now_s() + 600}))), "not valid yet"),
        (wrong_secret, "signature"),
        (
            hs256(good(json!({"iss":"https://evil.example.com/"}))),
            "issuer",
        ),
        (hs256(good(json!({"aud":"someone-else"}))), "audience"),
        (unsigned(&good(json!({}))), "alg none"),
        ("garbage".into(), "not a valid JWT"),
        ("a.b.c".into(), "not a valid JWT"),
        (
            hs256(json!({"sub":"alice","iss":"https://id.example.com/","aud":"zerorelay"})),
            "exp",
        ),
        (hs256(good(json!({"sub":"bad user!"}))), "not a valid user"),
        (hs256(good(json!({"roles":[1,2]}))), "roles claim"),
    ];
    for (token, says) in cases {
        refused(&s, &token, says).await;
    }
    // No token at all.
    let mut c = Client::raw(&s).await;
    let w = c.hello(json!({"type":"hello","v":1,"user":"alice"})).await;
    assert_eq!(w["code"], "unauthorized", "{w}");
    // Refusals leave others alone.
    let mut ok = welcomed(&s, &hs256(good(json!({})))).await;
    ok.ok(json!({"type":"join","id":1,"group":"g"})).await;
    s.stop().await;
}

#[tokio::test]
async fn public_keys_pin_their_algorithms_and_hmac_with_the_public_key_is_refused() {
    let dir = Dir::new("jwt-keys");
    let rsa_pub = dir.write("rsa.pub.pem", RSA_PUB);
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ec_pub = dir.write("ec.pub.pem", &ec.public_key_pem());
    let ed_pub = dir.write("ed.pub.pem", &ed.public_key_pem());
    let rsa_enc = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
    let ec_enc = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap();
    let ed_enc = EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).unwrap();
    let sign =
        |alg, key: &EncodingKey| encode(&Header::new(alg), &claims("alice", 60), key).unwrap();

    let mut cfg = config();
    cfg.auth.jwt.public_key_file = Some(rsa_pub);
    let s = start(cfg).await;
    welcomed(&s, &sign(Algorithm::RS256, &rsa_enc)).await;
    welcomed(&s, &sign(Algorithm::PS256, &rsa_enc)).await;
    // The classic confusion: HS256 with the RSA public key as the secret.
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUB.as_bytes()),
    );
    refused(&s, &forged, "algorithm").await;
    refused(&s, &sign(Algorithm::ES256, &ec_enc), "algorithm").await;
    s.stop().await;

    let mut cfg = config();
    cfg.auth.jwt.public_key_file = Some(ec_pub);
    let s = start(cfg).await;
    welcomed(&s, &sign(Algorithm::ES256, &ec_enc)).await;
    refused(&s, &sign(Algorithm::RS256, &rsa_enc), "algorithm").await;
    s.stop().await;

    let mut cfg = config();
    cfg.auth.jwt.public_key_file = Some(ed_pub);
    let s = start(cfg).await;
    welcomed(&s, &sign(Algorithm::EdDSA, &ed_enc)).await;
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let other = EncodingKey::from_ed_pem(other.serialize_pem().as_bytes()).unwrap();
    refused(&s, &sign(Algorithm::EdDSA, &other), "signature").await;
    s.stop().await;

    // A private key where the public key belongs is refused at start.
    let mut cfg = config();
    cfg.auth.jwt.public_key_file = Some(dir.write("oops.pem", RSA_KEY));
    let e = zerorelay::Relay::builder(cfg)
        .build()
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("auth.jwt.public_key_file") && e.contains("private key"),
        "{e}"
    );
}

/// An EC key pair as a JWK with `kid`, and a signer for it.
fn ec_jwk(kid: &str) -> (Value, EncodingKey) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
    let mut jwk = serde_json::to_value(
        jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, Algorithm::ES256).unwrap(),
    )
    .unwrap();
    jwk["kid"] = json!(kid);
    (jwk, enc)
}

fn with_kid(kid: &str, key: &EncodingKey, claims: Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    encode(&h, &claims, key).unwrap()
}

#[tokio::test]
async fn an_unknown_kid_rereads_the_jwks_so_keys_rotate_without_a_restart() {
    let dir = Dir::new("jwks");
    let (a, a_key) = ec_jwk("a");
    let (b, b_key) = ec_jwk("b");
    let path = dir.write("jwks.json", &json!({"keys":[a]}).to_string());
    let mut cfg = config();
    cfg.auth.jwt.jwks_file = Some(path);
    cfg.auth.jwt.refresh_min_s = 0;
    let s = start(cfg).await;
    welcomed(&s, &with_kid("a", &a_key, claims("alice", 60))).await;
    refused(
        &s,
        &with_kid("b", &b_key, claims("bob", 60)),
        "key id \"b\"",
    )
    .await;
    // The provider rotates: b is published next to a.
    dir.write("jwks.json", &json!({"keys":[a, b]}).to_string());
    welcomed(&s, &with_kid("b", &b_key, claims("bob", 60))).await;
    // A token signed by b but naming a is a bad signature, not a lookup.
    refused(&s, &with_kid("a", &b_key, claims("bob", 60)), "signature").await;
    s.stop().await;
}

#[tokio::test]
async fn unknown_kids_reread_the_jwks_at_most_once_per_refresh_min_s() {
    let (a, a_key) = ec_jwk("a");
    let (b, b_key) = ec_jwk("b");
    let keys = std::sync::Arc::new(parking_lot::Mutex::new(json!({"keys":[a.clone()]})));
    let served = keys.clone();
    let jwks = HttpServer::start("/jwks.json", move |_| {
        Reply::json(200, served.lock().clone())
    })
    .await;
    let mut cfg = config();
    cfg.auth.jwt.jwks_url = Some(jwks.url.clone());
    cfg.auth.jwt.refresh_min_s = 3600;
    let s = start(cfg).await;
    // Fetched on first use, then cached.
    welcomed(&s, &with_kid("a", &a_key, claims("alice", 60))).await;
    welcomed(&s, &with_kid("a", &a_key, claims("alice", 60))).await;
    assert_eq!(jwks.hits(), 1);
    *keys.lock() = json!({"keys":[a, b]});
    // A flood of unknown kids cannot make the relay hammer the provider.
    for _ in 0..5 {
        refused(&s, &with_kid("b", &b_key, claims("bob", 60)), "not known").await;
    }
    assert_eq!(
        jwks.hits(),
        1,
        "an unknown kid inside refresh_min_s does not fetch"
    );
    s.stop().await;

    let mut cfg = config();
    cfg.auth.jwt.jwks_url = Some(jwks.url.clone());
    cfg.auth.jwt.refresh_min_s = 0;
    let s = start(cfg).await;
    welcomed(&s, &with_kid("b", &b_key, claims("bob", 60))).await;
    s.stop().await;
}

#[tokio::test]
async fn the_http_callback_answers_refuses_and_fails_without_crashing_anything() {
    let backend = HttpServer::start("/auth", |body| {
        let ask: Value = serde_json::from_str(body).unwrap();
        assert!(
            ask["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{ask}"
        );
        match ask["token"].as_str().unwrap() {
            "good" => Reply::json(
                200,
                json!({"user":"alice","roles":["member"],"expires_at": now_s() + 600}),
            ),
            "locked" => Reply::json(401, json!({"message":"account locked"})),
            "slow" => Reply {
                delay: Duration::from_millis(1_500),
                ..Reply::json(200, json!({"user":"slow"}))
            },
            "broken" => Reply::json(500, json!({})),
            _ => Reply::json(200, json!("not an object")),
        }
    })
    .await;
    let mut cfg = config();
    cfg.auth.callback.url = Some(backend.url.clone());
    cfg.auth.callback.timeout_ms = 300;
    let s = start(cfg).await;
    welcomed(&s, "good").await;
    welcomed(&s, "good").await;
    assert_eq!(backend.hits(), 1, "the answer is cached per token");
    assert_eq!(s.relay.sessions()[0].user.as_deref(), Some("alice"));
    refused(&s, "locked", "account locked").await;
    refused(&s, "locked", "account locked").await;
    assert_eq!(backend.hits(), 2, "a refusal is reused for a few seconds");
    for token in ["slow", "broken", "odd", "broken"] {
        let (mut c, w) = hello(&s, token).await;
        assert_eq!(w["code"], "internal", "{token}: {w}");
        assert_eq!(c.closed().await.0, 1011, "{token}");
    }
    assert_eq!(backend.hits(), 6, "a backend failure is never reused");
    // The relay is fine.
    let mut c = welcomed(&s, "good").await;
    c.ok(json!({"type":"join","id":1,"group":"g"})).await;
    s.stop().await;
}

async fn connect_with(
    s: &Server,
    path: &str,
    bearer: Option<&str>,
    hello: Value,
) -> (Client, Value) {
    let mut req = format!("ws://{}{path}", s.addr)
        .into_client_request()
        .unwrap();
    if let Some(b) = bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {b}").parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut c = Client {
        ws,
        session: String::new(),
        key: String::new(),
    };
    let w = c.hello(hello).await;
    (c, w)
}

#[tokio::test]
async fn tokens_come_from_hello_then_the_authorization_header_then_the_query() {
    let s = start(jwt_config()).await;
    let alice = hs256(claims("alice", 60));
    let bob = hs256(claims("bob", 60));
    let bare = json!({"type":"hello","v":1});
    let (_a, w) = connect_with(&s, "/ws", Some(&alice), bare.clone()).await;
    assert_eq!(w["user"], "alice", "{w}");
    let (_b, w) = connect_with(&s, &format!("/ws?x=1&token={bob}"), None, bare.clone()).await;
    assert_eq!(w["user"], "bob", "{w}");
    let (_c, w) = connect_with(&s, &format!("/ws?token={bob}"), Some(&alice), bare.clone()).await;
    assert_eq!(w["user"], "alice", "the header beats the query: {w}");
    let (_d, w) = connect_with(
        &s,
        &format!("/ws?token={bob}"),
        Some(&alice),
        json!({"type":"hello","v":1,"token":hs256(claims("carol", 60))}),
    )
    .await;
    assert_eq!(w["user"], "carol", "hello.token beats both: {w}");
    let (mut e, w) = connect_with(&s, "/ws?token=nonsense", None, bare).await;
    assert_eq!(w["code"], "unauthorized", "{w}");
    assert_eq!(e.closed().await.0, 4001);
    s.stop().await;
}

/// Reads frames until one of `kind`, answering nothing else.
async fn frame_of(c: &mut Client, kind: &str, within: Duration) -> Value {
    let end = tokio::time::Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(end, c.ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} in time"))
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == kind {
                return v;
            }
            panic!("expected {kind}, got {v}");
        }
    }
}

#[tokio::test]
async fn a_connection_lives_across_three_expiries_by_answering_refresh_required() {
    let mut cfg = jwt_config();
    cfg.auth.jwt.leeway_s = 0;
    let s = start(cfg).await;
    let mut c = welcomed(&s, &hs256(claims("alice", 2))).await;
    let session = c.session.clone();
    for i in 0..3 {
        let r = frame_of(&mut c, "refresh_required", Duration::from_secs(4)).await;
        let left = r["expires_in_ms"].as_u64().unwrap();
        assert!(left > 0 && left <= 2_000, "{r}");
        c.send(json!({"type":"refresh","id":i,"token":hs256(claims("alice", 2))}))
            .await;
        let ok = frame_of(&mut c, "ok", Duration::from_secs(2)).await;
        assert_eq!(ok["id"], i);
    }
    assert_eq!(s.relay.sessions()[0].id, session);
    assert!(s.relay.sessions()[0].connected);
    // Another user's token is refused and the connection stays.
    c.send(json!({"type":"refresh","id":"x","token":hs256(claims("bob", 60))}))
        .await;
    let e = frame_of(&mut c, "error", Duration::from_secs(2)).await;
    assert_eq!(e["code"], "forbidden", "{e}");
    // Not refreshed: closed with 4003 at expiry.
    let _ = frame_of(&mut c, "refresh_required", Duration::from_secs(4)).await;
    assert_eq!(c.closed().await.0, 4003);
    s.stop().await;
}

#[tokio::test]
async fn the_client_engine_refreshes_from_its_provider_when_the_server_asks() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use zerorelay::client::{Client as Engine, ClientOptions, Event};
    let mut cfg = jwt_config();
    cfg.auth.jwt.leeway_s = 0;
    let s = start(cfg).await;
    let asked = Arc::new(AtomicU32::new(0));
    let a = asked.clone();
    // The provider does not say how long its tokens last: the server's
    // refresh_required is what drives the refresh.
    let provider: zerorelay::client::TokenProvider = Arc::new(move || {
        a.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok((hs256(claims("alice", 2)), None)) })
    });
    let mut o = ClientOptions::default();
    o.reconnect.max_attempts = Some(0);
    let (c, mut ev) = Engine::connect_with(&s.url(), o, Some(provider))
        .await
        .unwrap();
    let session = s.relay.sessions()[0].id.clone();
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    assert!(
        asked.load(Ordering::SeqCst) >= 4,
        "asked {} times",
        asked.load(Ordering::SeqCst)
    );
    while let Some(e) = ev.try_recv() {
        assert!(
            !matches!(e, Event::Disconnected { .. } | Event::Error { .. }),
            "{e:?}"
        );
    }
    assert_eq!(s.relay.sessions()[0].id, session);
    assert!(s.relay.sessions()[0].connected);
    c.close().await;
    s.stop().await;
}

#[tokio::test]
async fn bad_auth_configuration_is_refused_naming_the_key() {
    type Set = Box<dyn Fn(&mut Config)>;
    let cases: Vec<(Set, &str)> = vec![
        (
            Box::new(|c| {
                c.auth.jwt.secret = Some("s".into());
                c.auth.jwt.jwks_url = Some("https://x/".into());
            }),
            "one key source",
        ),
        (
            Box::new(|c| c.auth.jwt.jwks_url = Some("http://id.example.com/jwks".into())),
            "auth.jwt.jwks_url",
        ),
        (
            Box::new(|c| c.auth.callback.url = Some("ftp://x".into())),
            "auth.callback.url",
        ),
        (
            Box::new(|c| {
                c.auth.jwt.secret = Some("s".into());
                c.auth.jwt.roles_claim = "a..b".into();
            }),
            "auth.jwt.roles_claim",
        ),
        (
            Box::new(|c| c.auth.jwt.jwks_file = Some("/nonexistent/jwks.json".into())),
            "auth.jwt.jwks_file",
        ),
        (
            Box::new(|c| c.auth.jwt.secret_file = Some("/nonexistent/secret".into())),
            "auth.jwt.secret_file",
        ),
    ];
    for (set, says) in cases {
        let mut c = config();
        set(&mut c);
        let e = zerorelay::Relay::builder(c)
            .build()
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains(says), "{e:?} should say {says:?}");
    }
    // A JWKS URL over plain HTTP is fine on loopback only.
    let mut c = config();
    c.auth.jwt.jwks_url = Some("http://127.0.0.1:9/jwks".into());
    c.validate().unwrap();
}

#[tokio::test]
async fn a_fractional_exp_expires_and_a_token_inside_the_leeway_lives_until_it_ends() {
    let mut cfg = jwt_config();
    cfg.auth.jwt.leeway_s = 2;
    let s = start(cfg).await;
    // exp 1.5 s from now, written as a float, as Python's time.time() + 1.5 is.
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 1.5;
    let mut c = welcomed(&s, &hs256(json!({"sub":"alice","exp":exp}))).await;
    let notice = frame_of(&mut c, "refresh_required", Duration::from_secs(5)).await;
    assert!(notice["expires_in_ms"].as_u64().unwrap() >= 500, "{notice}");
    assert_eq!(c.closed().await.0, 4003);
    // Expired a moment ago but inside the 2 s leeway: accepted, and told
    // to refresh rather than closed at once (its client would reconnect
    // with the same token, over and over); a refresh keeps it.
    let mut late = welcomed(&s, &hs256(claims("bob", -1))).await;
    let notice = frame_of(&mut late, "refresh_required", Duration::from_secs(2)).await;
    assert!(notice["expires_in_ms"].as_u64().unwrap() > 0, "{notice}");
    late.send(json!({"type":"refresh","id":1,"token":hs256(claims("bob", 60))}))
        .await;
    assert_eq!(
        frame_of(&mut late, "ok", Duration::from_secs(2)).await["id"],
        1
    );
    late.silent(1_500).await;
    s.stop().await;
}

#[tokio::test]
async fn a_jwks_behind_a_private_ca_is_fetched_over_https_with_ca_file() {
    let dir = Dir::new("jwks-https");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca = dir.write("ca.pem", &ck.cert.pem());
    let (a, a_key) = ec_jwk("a");
    let jwks = HttpServer::start_tls(
        "/jwks.json",
        move |_| Reply::json(200, json!({"keys":[a.clone()]})),
        &ck.cert.pem(),
        &ck.signing_key.serialize_pem(),
    )
    .await;
    let token = with_kid("a", &a_key, claims("alice", 60));
    // Without the CA the provider is not trusted: no keys, so no token passes.
    let mut cfg = config();
    cfg.auth.jwt.jwks_url = Some(jwks.url.clone());
    let s = start(cfg.clone()).await;
    refused(&s, &token, "not known").await;
    s.stop().await;
    cfg.auth.jwt.ca_file = Some(ca);
    let s = start(cfg).await;
    welcomed(&s, &token).await;
    s.stop().await;
    // A CA file that holds no certificate is refused at start.
    let mut bad = config();
    bad.auth.jwt.jwks_url = Some(jwks.url.clone());
    bad.auth.jwt.ca_file = Some(dir.write("empty.pem", "nothing here"));
    let e = zerorelay::Relay::builder(bad)
        .build()
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("auth.jwt.ca_file"), "{e}");
}

#[tokio::test]
async fn hostile_tokens_are_refused_and_others_keep_working() {
    use base64::Engine;
    let s = start(jwt_config()).await;
    let mut bystander = welcomed(&s, &hs256(claims("bob", 600))).await;
    bystander
        .ok(json!({"type":"join","id":1,"group":"g"}))
        .await;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    // Correctly signed claims nested 100 deep: the signature vouches for
    // them, they are parsed within serde_json's recursion limit and kept.
    let nested: Value =
        serde_json::from_str(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap();
    welcomed(
        &s,
        &hs256(json!({"sub":"alice","exp":now_s() + 60,"x":nested})),
    )
    .await;
    let hostile = vec![
        // Claims deeper than serde_json accepts, with a bad signature.
        format!(
            "{}.{}.{}",
            b.encode(br#"{"alg":"HS256"}"#),
            b.encode(format!(r#"{{"sub":"a","x":{deep}}}"#)),
            b.encode(b"sig")
        ),
        // Header that is not JSON, not base64, or empty parts.
        format!("{}.{}.{}", b.encode(b"\xff\xfe"), b.encode(b"{}"), "x"),
        "..".into(),
        "a.b.c.d.e".into(),
        format!("{}.e30.", "%%%"),
        // A large token (within the frame limit).
        "x".repeat(40_000),
    ];
    for t in &hostile {
        let (mut c, w) = hello(&s, t).await;
        assert_eq!(w["code"], "unauthorized", "{w}");
        assert_eq!(c.closed().await.0, 4001);
    }
    // An oversized Authorization header is refused at the upgrade.
    let mut req = format!("ws://{}/ws", s.addr).into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", "y".repeat(200_000)).parse().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    // The bystander never noticed.
    let mut alice = welcomed(&s, &hs256(claims("alice", 600))).await;
    alice
        .ok(json!({"type":"publish","id":1,"group":"g","data":"still here"}))
        .await;
    assert_eq!(bystander.message().await["data"], "still here");
    s.stop().await;
}
