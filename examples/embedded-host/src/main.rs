//! Runs the embedded-host example: `cargo run -p embedded-host -- [ADDR]`.

use std::time::Duration;

use zerorelay::Config;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let relay = embedded_host::relay(Config::default())?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "host app on http://{0}/ (relay at ws://{0}/ws)",
        listener.local_addr()?
    );
    let http = tokio::spawn(embedded_host::serve_http(relay.clone(), listener));
    tokio::spawn(embedded_host::publish_ticks(
        relay.clone(),
        Duration::from_secs(1),
    ));
    tokio::signal::ctrl_c().await?;
    relay.shutdown().await;
    http.await?;
    Ok(())
}
