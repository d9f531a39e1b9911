//! A terminal chat client: `cargo run -p rust-chat -- ws://127.0.0.1:8080/ws alice room-1`.
//!
//! Every line typed is published to the room; every message in the room is
//! printed. Reconnection, resume, acknowledgements and the offline queue are
//! the engine's: drop the relay and start it again, and nothing is lost.

use tokio::io::{AsyncBufReadExt, BufReader};
use zerorelay::client::{Client, ClientOptions, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let user = args.next().unwrap_or_else(|| "guest".into());
    let room = args.next().unwrap_or_else(|| "lobby".into());

    let opts = ClientOptions {
        user: Some(user.clone()),
        ..ClientOptions::default()
    };
    let (client, mut events) = Client::connect(&url, opts).await?;
    client.join(&room).await?;
    println!("{user} joined {room}; type to talk, Ctrl-D to leave.");

    let printer = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                Event::Message(m) => {
                    let text = serde_json::from_str::<serde_json::Value>(m.data.get())
                        .ok()
                        .and_then(|v| v["text"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| m.data.get().to_owned());
                    println!("<{}> {text}", m.from.as_deref().unwrap_or("host"));
                }
                Event::Reconnecting { attempt, delay_ms } => {
                    eprintln!("(reconnecting: attempt {attempt} in {delay_ms} ms)");
                }
                Event::Connected { resumed, .. } => eprintln!("(connected, resumed: {resumed})"),
                Event::Loss {
                    from_seq, to_seq, ..
                } => eprintln!("(lost messages {from_seq}-{to_seq})"),
                _ => {}
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if let Err(e) = client
            .publish(&room, &serde_json::json!({ "text": line }))
            .await
        {
            eprintln!("(not sent: {e})");
        }
    }
    client.close().await;
    printer.await?;
    Ok(())
}
