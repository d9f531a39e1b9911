//! The ceiling: a bare tokio-tungstenite relay that forwards every text
//! frame to every other connection, written as well as we can (one task per
//! connection, the `Message` built once and cloned per recipient, bounded
//! queues drained with feed + one flush, small buffers, TCP_NODELAY). It
//! does nothing a relay must do: no sessions, seqs, outboxes or acks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
    /// Runtime worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

type Peers = Arc<RwLock<HashMap<u64, mpsc::Sender<Message>>>>;

fn main() {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        builder.worker_threads(args.threads);
    }
    let rt = builder.enable_all().build().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .expect("bind");
        println!(
            "baseline listening on ws://{}/ws",
            listener.local_addr().expect("addr")
        );
        let peers: Peers = Arc::default();
        let next = Arc::new(AtomicU64::new(0));
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (peers, id) = (peers.clone(), next.fetch_add(1, Ordering::Relaxed));
            tokio::spawn(async move {
                let config = WebSocketConfig::default()
                    .read_buffer_size(4 << 10)
                    .write_buffer_size(16 << 10);
                let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
                else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                let (tx, mut rx) = mpsc::channel::<Message>(4096);
                peers.write().expect("not poisoned").insert(id, tx);
                let writer = tokio::spawn(async move {
                    while let Some(m) = rx.recv().await {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                        while let Ok(m) = rx.try_recv() {
                            if sink.feed(m).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                });
                while let Some(Ok(m)) = stream.next().await {
                    if let Message::Text(_) = m {
                        let peers = peers.read().expect("not poisoned");
                        for (other, tx) in peers.iter() {
                            if *other != id {
                                let _ = tx.try_send(m.clone());
                            }
                        }
                    }
                }
                peers.write().expect("not poisoned").remove(&id);
                writer.abort();
            });
        }
    });
}
