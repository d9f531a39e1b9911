//! The relay mounted on the host's own HTTP server works end to end.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn recv(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn clients_talk_through_the_relay_mounted_on_the_host_router() {
    let mut config = zerorelay::Config::default();
    config.server.listen = "127.0.0.1:0".into();
    let relay = embedded_host::relay(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tokio::spawn(embedded_host::serve_http(relay.clone(), listener));
    let ticks = tokio::spawn(embedded_host::publish_ticks(
        relay.clone(),
        Duration::from_millis(20),
    ));

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"type":"hello","v":1,"user":"alice"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(recv(&mut ws).await["type"], "welcome");
    ws.send(Message::text(
        json!({"type":"join","id":1,"group":"clock"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(recv(&mut ws).await, json!({"type":"ok","id":1}));
    // A tick published by the host arrives.
    let m = recv(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["group"].as_str()),
        (Some("message"), Some("clock"))
    );
    assert!(m["data"]["tick"].as_u64().is_some());
    // The host's RPC method answers.
    ws.send(Message::text(
        json!({"type":"rpc","id":2,"method":"time"}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        let r = recv(&mut ws).await;
        if r["type"] == "result" {
            assert!(r["data"]["unix_ms"].as_u64().unwrap() > 0);
            break;
        }
    }
    // The host's own routes still work on the same port.
    let health = http_get(addr, "/healthz").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let listed = http_get(addr, "/sessions").await;
    assert!(listed.contains("\"groups\":[\"clock\"]"), "{listed}");
    assert!(http_get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    // The relay's surface, mounted on the host's router.
    let ready = http_get(addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let metrics = http_get(addr, "/metrics").await;
    assert!(metrics.contains("zerorelay_connections 1"), "{metrics}");
    let stats = http_get(addr, "/api/stats").await;
    assert!(stats.contains("\"sessions\":1"), "{stats}");
    let sessions = relay.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].groups, vec!["clock".to_owned()]);

    relay.shutdown().await;
    ticks.await.unwrap();
    http.await.unwrap();
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}
