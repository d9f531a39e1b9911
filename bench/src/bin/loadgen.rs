//! The load generator. One scenario per run; prints one JSON line with the
//! figures and a human summary on standard error. Runs on a current-thread
//! runtime so that it uses exactly one core (pin it with taskset).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use zerorelay::client::ClientOptions;
use zerorelay_bench::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// One publisher, many subscribers, as fast as a bounded window allows.
    Fanout,
    /// One publisher at a light paced rate, many subscribers: latency.
    Paced,
    /// Pairs echoing direct messages at a paced rate: round trips.
    Direct,
    /// Many idle connections joined to a group: server memory.
    Idle,
    /// Connect, hello, close, as fast as possible.
    Churn,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, value_enum)]
    scenario: Scenario,
    #[arg(long, value_enum)]
    proto: Proto,
    /// Base URL, ws://127.0.0.1:PORT/ws.
    #[arg(long)]
    url: String,
    /// Label of the server under test, copied to the output.
    #[arg(long)]
    label: String,
    /// The server's pid, for its CPU time and memory.
    #[arg(long)]
    server_pid: u32,
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Measured seconds (after one second of warm-up for fanout).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Messages the publisher may be ahead of the average subscriber.
    #[arg(long, default_value_t = 32)]
    window: u64,
    /// Messages per second for paced (per pair for direct).
    #[arg(long, default_value_t = 20)]
    rate: u64,
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Fan-out payload size for the raw and Socket.IO protocols (Zerorelay
    /// always sends 64-byte data). 223 puts as many bytes on the wire per
    /// delivery as Zerorelay's `message` frame around 64-byte data does.
    #[arg(long, default_value_t = 64)]
    raw_payload_bytes: usize,
    /// Zerorelay clients ack once this many messages are unacknowledged
    /// (default: the client engine's `ack.batch`); 0 never acks.
    #[arg(long, default_value_t = ClientOptions::default().ack.batch)]
    ack_batch: u32,
    /// …or this long after the first unacknowledged one (default: the
    /// engine's `ack.interval_ms`).
    #[arg(long, default_value_t = ClientOptions::default().ack.interval_ms)]
    ack_interval_ms: u64,
    /// The server runs under `valgrind --tool=callgrind`: zero its counters
    /// when the measured window opens and dump them when it closes, so the
    /// dump holds the instructions spent on the window's deliveries only.
    #[arg(long)]
    callgrind: bool,
}

/// Sends a command to a server running under callgrind, waiting until done.
fn callgrind_control(pid: u32, flag: &str) {
    let status = std::process::Command::new("callgrind_control")
        .arg(flag)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("callgrind_control runs");
    assert!(
        status.success(),
        "callgrind_control {flag} {pid} failed: {status}"
    );
}

/// The fan-out payload for this run's protocol.
fn payload_of(a: &Args, t_ns: u64, n: u64) -> String {
    match a.proto {
        Proto::Zerorelay => payload(t_ns, n, 64),
        _ => payload(t_ns, n, a.raw_payload_bytes),
    }
}

struct Shared {
    epoch: Instant,
    delivered: AtomicU64,
    /// Text bytes of every delivery frame received (payload and envelope).
    frame_bytes: AtomicU64,
    dups: AtomicU64,
    gaps: AtomicU64,
    latencies: Mutex<Vec<u32>>,
    sample_every: u64,
    stop: AtomicBool,
    /// Wakes the publisher when deliveries make room in its window.
    progress: tokio::sync::Notify,
}

impl Args {
    fn ack_policy(&self) -> AckPolicy {
        AckPolicy::new(self.ack_batch, Duration::from_millis(self.ack_interval_ms))
    }
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(run(&args));
    println!("{out}");
}

async fn run(a: &Args) -> serde_json::Value {
    match a.scenario {
        Scenario::Fanout | Scenario::Paced => fanout(a).await,
        Scenario::Direct => direct(a).await,
        Scenario::Idle => idle(a).await,
        Scenario::Churn => churn(a).await,
    }
}

/// Subscribers: handshake, then count and check deliveries.
async fn subscribe(
    a: &Args,
    shared: &Arc<Shared>,
    n: usize,
    source: Option<IpAddr>,
) -> Vec<Arc<AtomicU64>> {
    let url = url_for(a.proto, &a.url);
    let mut lasts = Vec::with_capacity(n);
    let mut pending = Vec::new();
    for i in 0..n {
        let (url, proto) = (url.clone(), a.proto);
        pending.push(tokio::spawn(async move {
            let mut ws = connect(&url, source).await.expect("subscriber connects");
            handshake(&mut ws, proto, &format!("s{i}"), true)
                .await
                .expect("subscriber handshake");
            ws
        }));
        if pending.len() == 100 {
            for p in pending.drain(..) {
                lasts.push(p.await.expect("task"));
            }
        }
    }
    for p in pending {
        lasts.push(p.await.expect("task"));
    }
    let mut counters = Vec::new();
    for ws in lasts {
        let last = Arc::new(AtomicU64::new(0));
        counters.push(last.clone());
        let (shared, proto, acks) = (shared.clone(), a.proto, a.ack_policy());
        tokio::spawn(async move { receive(ws, proto, shared, last, acks).await });
    }
    counters
}

async fn receive(
    mut ws: Ws,
    proto: Proto,
    shared: Arc<Shared>,
    last: Arc<AtomicU64>,
    mut acks: AckPolicy,
) {
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        if proto == Proto::Socketio && &*t == "2" {
            let _ = ws.send(Message::text("3")).await;
            continue;
        }
        let Some((t_ns, n, seq)) = delivery(proto, &t) else {
            continue;
        };
        let prev = last.load(Ordering::Relaxed);
        if n <= prev {
            shared.dups.fetch_add(1, Ordering::Relaxed);
        } else {
            if n > prev + 1 {
                shared.gaps.fetch_add(n - prev - 1, Ordering::Relaxed);
            }
            last.store(n, Ordering::Relaxed);
        }
        let d = shared.delivered.fetch_add(1, Ordering::Relaxed);
        shared
            .frame_bytes
            .fetch_add(t.len() as u64, Ordering::Relaxed);
        shared.progress.notify_one();
        if d.is_multiple_of(shared.sample_every) {
            let lat = since(shared.epoch).saturating_sub(t_ns) / 1_000;
            shared
                .latencies
                .lock()
                .expect("not poisoned")
                .push(lat.min(u64::from(u32::MAX)) as u32);
        }
        if let Some(seq) = seq {
            if acks.due() {
                let _ = ws
                    .send(Message::text(format!(r#"{{"type":"ack","seq":{seq}}}"#)))
                    .await;
            }
        }
    }
}

async fn fanout(a: &Args) -> serde_json::Value {
    let paced = a.scenario == Scenario::Paced;
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        delivered: AtomicU64::new(0),
        frame_bytes: AtomicU64::new(0),
        dups: AtomicU64::new(0),
        gaps: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
        sample_every: if paced { 1 } else { 16 },
        stop: AtomicBool::new(false),
        progress: tokio::sync::Notify::new(),
    });
    let subs = subscribe(a, &shared, a.subscribers, None).await;
    let mut publisher = connect(&url_for(a.proto, &a.url), None)
        .await
        .expect("publisher connects");
    handshake(&mut publisher, a.proto, "publisher", false)
        .await
        .expect("publisher handshake");
    let n_subs = a.subscribers as u64;
    let mut sent: u64 = 0;
    let warmup = if paced {
        Duration::ZERO
    } else {
        Duration::from_secs(1)
    };
    let start = Instant::now();
    let mut window_start: Option<(Instant, u64, f64, f64)> = None;
    let measure = Duration::from_secs(a.seconds);
    let interval = Duration::from_nanos(1_000_000_000 / a.rate.max(1));
    let mut next_send = Instant::now();
    loop {
        let now = Instant::now();
        if window_start.is_none() && now.duration_since(start) >= warmup {
            shared.latencies.lock().expect("not poisoned").clear();
            if a.callgrind {
                callgrind_control(a.server_pid, "--zero");
            }
            window_start = Some((
                now,
                shared.delivered.load(Ordering::Relaxed),
                cpu_seconds(a.server_pid),
                cpu_seconds(std::process::id()),
            ));
        }
        if let Some((ws, _, _, _)) = window_start {
            if now.duration_since(ws) >= measure {
                break;
            }
        }
        if paced {
            if now < next_send {
                tokio::time::sleep_until(next_send.into()).await;
            }
            next_send += interval;
            sent += 1;
            let f = publish_frame(a.proto, &payload_of(a, since(shared.epoch), sent));
            publisher.send(Message::text(f)).await.expect("publish");
        } else {
            let done = shared.delivered.load(Ordering::Relaxed) / n_subs;
            if sent - done.min(sent) >= a.window {
                // Sleep until a delivery arrives (bounded, so the window
                // check also sees the measurement deadline).
                let _ = tokio::time::timeout(Duration::from_millis(5), shared.progress.notified())
                    .await;
                continue;
            }
            let room = a.window - (sent - done.min(sent));
            for _ in 0..room {
                sent += 1;
                let f = publish_frame(a.proto, &payload_of(a, since(shared.epoch), sent));
                publisher.feed(Message::text(f)).await.expect("publish");
            }
            publisher.flush().await.expect("flush");
            tokio::task::yield_now().await;
        }
    }
    let (w_start, d0, s0, l0) = window_start.expect("measured");
    if a.callgrind {
        callgrind_control(a.server_pid, "--dump");
    }
    let elapsed = w_start.elapsed();
    let delivered = shared.delivered.load(Ordering::Relaxed) - d0;
    let server_cpu = cpu_seconds(a.server_pid) - s0;
    let loadgen_cpu = cpu_seconds(std::process::id()) - l0;
    // Drain: every subscriber should reach the last message.
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < drain_deadline && subs.iter().any(|l| l.load(Ordering::Relaxed) < sent) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let missing: u64 = subs
        .iter()
        .map(|l| sent - l.load(Ordering::Relaxed).min(sent))
        .sum();
    let loss = missing + shared.gaps.load(Ordering::Relaxed);
    let lat = std::mem::take(&mut *shared.latencies.lock().expect("not poisoned"));
    let (p50, p99, max) = percentiles(lat);
    let rate = delivered as f64 / secs(elapsed);
    let server_util = server_cpu / secs(elapsed);
    let loadgen_util = loadgen_cpu / secs(elapsed);
    let bottleneck = match (server_util > 0.9, loadgen_util > 0.9) {
        (true, true) => "both",
        (true, false) => "server",
        (false, true) => "loadgen",
        (false, false) => "neither",
    };
    let v = json!({
        "scenario": if paced { "paced" } else { "fanout" }, "server": a.label,
        "subscribers": a.subscribers, "messages": sent, "seconds": secs(elapsed),
        "delivered": delivered, "delivered_in_run": shared.delivered.load(Ordering::Relaxed),
        "deliveries_per_s": rate,
        "server_cpu_s": server_cpu, "deliveries_per_server_cpu_s": if server_cpu > 0.0 { delivered as f64 / server_cpu } else { 0.0 },
        "loadgen_cpu_s": loadgen_cpu, "bottleneck": bottleneck,
        "latency_us": {"p50": p50, "p99": p99, "max": max},
        "loss": loss, "duplicates": shared.dups.load(Ordering::Relaxed),
        "frame_bytes": shared.frame_bytes.load(Ordering::Relaxed) / shared.delivered.load(Ordering::Relaxed).max(1),
    });
    eprintln!(
        "{:>10} {:>6}: {:>10.0} deliveries/s, {:>10.0} per server-CPU-s (server {:.0}%, loadgen {:.0}%, bottleneck {}), latency p50 {:.0} us p99 {:.0} us max {:.0} us, loss {}, dups {}",
        a.label, v["scenario"].as_str().unwrap_or(""), rate, v["deliveries_per_server_cpu_s"].as_f64().unwrap_or(0.0),
        server_util * 100.0, loadgen_util * 100.0, bottleneck, p50, p99, max, loss, v["duplicates"]
    );
    v
}

async fn direct(a: &Args) -> serde_json::Value {
    assert_eq!(
        a.proto,
        Proto::Zerorelay,
        "direct messages need addressing: Zerorelay only"
    );
    let epoch = Instant::now();
    let rtts = Arc::new(Mutex::new(Vec::<u32>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..a.pairs {
        let mut echo = connect(&a.url, None).await.expect("connect");
        handshake(&mut echo, Proto::Zerorelay, &format!("b{i}"), false)
            .await
            .expect("hello");
        let mut caller = connect(&a.url, None).await.expect("connect");
        handshake(&mut caller, Proto::Zerorelay, &format!("a{i}"), false)
            .await
            .expect("hello");
        let mut acks = a.ack_policy();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = echo.next().await {
                if let Some((t_ns, n, Some(seq))) = delivery(Proto::Zerorelay, &t) {
                    let back = format!(
                        r#"{{"type":"send","to":"a{i}","data":{}}}"#,
                        payload(t_ns, n, 64)
                    );
                    if echo.send(Message::text(back)).await.is_err() {
                        return;
                    }
                    if acks.due() {
                        let _ = echo
                            .send(Message::text(format!(r#"{{"type":"ack","seq":{seq}}}"#)))
                            .await;
                    }
                }
            }
        });
        let (rtts, stop, received, rate) = (rtts.clone(), stop.clone(), received.clone(), a.rate);
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = caller.split();
            let reader = {
                let rtts = rtts.clone();
                tokio::spawn(async move {
                    while let Some(Ok(Message::Text(t))) = stream.next().await {
                        if let Some((t_ns, _, _)) = delivery(Proto::Zerorelay, &t) {
                            received.fetch_add(1, Ordering::Relaxed);
                            let rtt = since(epoch).saturating_sub(t_ns) / 1_000;
                            rtts.lock().expect("not poisoned").push(rtt as u32);
                        }
                    }
                })
            };
            let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                let f = format!(
                    r#"{{"type":"send","to":"b{i}","data":{}}}"#,
                    payload(since(epoch), n, 64)
                );
                if sink.send(Message::text(f)).await.is_err() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            reader.abort();
            n
        }));
    }
    let s0 = cpu_seconds(a.server_pid);
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0u64;
    for t in tasks {
        sent += t.await.unwrap_or(0);
    }
    let server_cpu = cpu_seconds(a.server_pid) - s0;
    let got = received.load(Ordering::Relaxed);
    let (p50, p99, max) = percentiles(std::mem::take(&mut *rtts.lock().expect("not poisoned")));
    eprintln!(
        "{:>10} direct: {} pairs at {}/s each, round trip p50 {:.0} us p99 {:.0} us max {:.0} us, {} of {} answered, server CPU {:.2} s",
        a.label, a.pairs, a.rate, p50, p99, max, got, sent, server_cpu
    );
    json!({"scenario": "direct", "server": a.label, "pairs": a.pairs, "rate_per_pair": a.rate,
           "sent": sent, "answered": got, "server_cpu_s": server_cpu,
           "rtt_us": {"p50": p50, "p99": p99, "max": max}, "loss": sent.saturating_sub(got)})
}

async fn idle(a: &Args) -> serde_json::Value {
    let url = url_for(a.proto, &a.url);
    let before = rss_bytes(a.server_pid);
    let keep = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut failed = 0usize;
    let mut pending = Vec::new();
    for i in 0..a.connections {
        // ~28k ephemeral ports per source address: spread over 127.0.0.x.
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i / 20_000) as u8));
        let (url, proto, keep) = (url.clone(), a.proto, keep.clone());
        pending.push(tokio::spawn(async move {
            let Ok(mut ws) = connect(&url, Some(source)).await else {
                return false;
            };
            if handshake(&mut ws, proto, &format!("i{i}"), true)
                .await
                .is_err()
            {
                return false;
            }
            // Keep reading so that pings are answered.
            let h = tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(t) = m {
                        if &*t == "2" {
                            let _ = ws.send(Message::text("3")).await;
                        }
                    }
                }
            });
            keep.lock().expect("not poisoned").push(h);
            true
        }));
        if pending.len() >= a.concurrency.max(1) * 4 {
            for p in pending.drain(..) {
                failed += usize::from(!p.await.unwrap_or(false));
            }
        }
    }
    for p in pending {
        failed += usize::from(!p.await.unwrap_or(false));
    }
    let connect_s = secs(started.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_bytes(a.server_pid);
    let open = a.connections - failed;
    let per = after.saturating_sub(before) as f64 / open.max(1) as f64;
    eprintln!(
        "{:>10} idle: {} connections ({} failed) in {:.1} s, server RSS {:.1} MiB -> {:.1} MiB, {:.0} bytes per connection",
        a.label, open, failed, connect_s, before as f64 / 1048576.0, after as f64 / 1048576.0, per
    );
    for h in keep.lock().expect("not poisoned").drain(..) {
        h.abort();
    }
    json!({"scenario": "idle", "server": a.label, "connections": open, "failed": failed,
           "rss_before": before, "rss_after": after, "bytes_per_connection": per, "connect_seconds": connect_s})
}

async fn churn(a: &Args) -> serde_json::Value {
    let url = url_for(a.proto, &a.url);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let s0 = cpu_seconds(a.server_pid);
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..a.concurrency {
        let (url, proto, done, failed, stop) = (
            url.clone(),
            a.proto,
            done.clone(),
            failed.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (w % 200) as u8));
                match connect(&url, Some(source)).await {
                    Ok(mut ws) => {
                        match handshake(&mut ws, proto, &format!("c{w}x{i}"), false).await {
                            Ok(()) => {
                                let _ = ws.close(None).await;
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = secs(start.elapsed());
    let n = done.load(Ordering::Relaxed);
    let server_cpu = cpu_seconds(a.server_pid) - s0;
    for w in workers {
        let _ = w.await;
    }
    let rate = n as f64 / elapsed;
    eprintln!(
        "{:>10} churn: {:.0} connect+hello per second ({} failed), server CPU {:.0}%",
        a.label,
        rate,
        failed.load(Ordering::Relaxed),
        server_cpu / elapsed * 100.0
    );
    json!({"scenario": "churn", "server": a.label, "per_second": rate, "failed": failed.load(Ordering::Relaxed),
           "server_cpu_s": server_cpu, "seconds": elapsed})
}
