//! The Rust peer of the cross-language interop test (`tests/interop`):
//! joins group `interop`, prints `ready`, waits for `go` on stdin, then
//! publishes N group messages and sends N direct messages to each other
//! peer, and prints what it received as one JSON line.
//!
//! `interop_peer <url> <name> <other,other,…> <n>`

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;

use zerorelay::client::{Client, ClientOptions, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, name, others, n] = &args[..] else {
        return Err("usage: interop_peer <url> <name> <other,other,…> <n>".into());
    };
    let others: Vec<&str> = others.split(',').collect();
    let n: u64 = n.parse()?;
    let opts = ClientOptions {
        user: Some(name.clone()),
        ..ClientOptions::default()
    };
    let (client, mut events) = Client::connect(url, opts).await?;
    client.join("interop").await?;
    println!("ready");
    tokio::task::spawn_blocking(|| {
        let stdin = std::io::stdin();
        stdin
            .lock()
            .lines()
            .map_while(Result::ok)
            .any(|l| l == "go")
    })
    .await?;

    let sender = {
        let client = client.clone();
        let others: Vec<String> = others.iter().map(|s| s.to_string()).collect();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            for i in 0..n {
                let data = serde_json::json!({ "i": i });
                pending.push(client.submit(publish(&data)).await?);
                for o in &others {
                    pending.push(client.submit(send(o, &data)).await?);
                }
            }
            for p in pending {
                p.await?;
            }
            Ok::<_, zerorelay::client::ClientError>(())
        })
    };

    let expected = others.len() as u64 * n * 2;
    let mut got: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut count = 0;
    let mut record = |e: Event| {
        if let Event::Message(m) = e {
            let data: serde_json::Value = serde_json::from_str(m.data.get()).unwrap_or_default();
            let i = data["i"].as_u64().unwrap_or(u64::MAX);
            let key = format!("{}:{}", m.from.unwrap_or_default(), m.kind.as_str());
            got.entry(key).or_default().push(i);
            1
        } else {
            0
        }
    };
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    while count < expected {
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => count += record(e),
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    sender.await??;
    // Anything delivered twice would arrive now.
    let extra = tokio::time::sleep(Duration::from_millis(300));
    tokio::pin!(extra);
    loop {
        tokio::select! {
            Some(e) = events.recv() => { record(e); }
            _ = &mut extra => break,
        }
    }
    println!("{}", serde_json::json!({ "name": name, "got": got }));
    client.close().await;
    Ok(())
}

fn publish(data: &serde_json::Value) -> zerorelay::client::Request {
    zerorelay::client::Request::Publish {
        group: "interop".into(),
        data: serde_json::value::to_raw_value(data).expect("JSON"),
        echo: false,
    }
}

fn send(user: &str, data: &serde_json::Value) -> zerorelay::client::Request {
    zerorelay::client::Request::Send {
        target: zerorelay::protocol::Target::User(user.into()),
        data: serde_json::value::to_raw_value(data).expect("JSON"),
    }
}
