//! The alert webhook (`[alerts]`): every `check_ms` the relay measures its
//! error, authentication-failure and drop rates, its slow-consumer closes
//! and how full it is, each over `window_ms`, and POSTs JSON to `url` when
//! one crosses its threshold (`"state":"firing"`) and when it is back under
//! it (`"state":"resolved"`):
//!
//! ```json
//! {"alert":"error_rate","state":"firing","value":12.5,"threshold":10,
//!  "window_ms":60000,"instance":"127.0.0.1:8080","at":1767225600000,
//!  "summary":"error frames sent per second"}
//! ```
//!
//! At most `max_per_minute` POSTs go out; a change of state beyond that
//! waits for a later check, so a flapping threshold cannot storm the
//! receiver. A POST that fails is logged and not retried: the next change
//! of state is the next message.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::AlertsConfig;
use crate::server::{now_ms, Shared};

/// One threshold: its name, what it measures, and its limit.
struct Rule {
    name: &'static str,
    summary: &'static str,
    threshold: f64,
    firing: bool,
}

/// Counter readings at one check.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    errors: u64,
    auth_failures: u64,
    drops: u64,
    slow: u64,
}

fn sample(shared: &Shared) -> Sample {
    let m = &shared.metrics;
    let r = shared.router.stats();
    Sample {
        at: Instant::now(),
        errors: m.errors.values().map(|(_, n)| n).sum(),
        auth_failures: m.auth_failures.values().map(|(_, n)| n).sum(),
        drops: r.dropped.load(Ordering::Relaxed) + shared.router.budget().trimmed(),
        slow: r.slow_consumers.load(Ordering::Relaxed),
    }
}

/// Checks the thresholds until the relay shuts down.
pub(crate) async fn watch(shared: Arc<Shared>, instance: String) {
    let c: AlertsConfig = shared.config.alerts.clone();
    let Some(url) = c.url.clone() else { return };
    let client = match crate::auth::http::client(
        Duration::from_millis(c.timeout_ms),
        c.ca_file.as_deref(),
    ) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "The alert webhook cannot be used; no alerts will be sent.");
            return;
        }
    };
    let mut rules: Vec<Rule> = [
        ("error_rate", "error frames sent per second", c.error_rate),
        (
            "auth_failure_rate",
            "failed authentications per second",
            c.auth_failure_rate,
        ),
        ("drop_rate", "deliveries dropped per second", c.drop_rate),
        (
            "slow_consumer_closes",
            "slow consumers closed in the window",
            c.slow_consumer_closes,
        ),
        (
            "connections_ratio",
            "open connections as a fraction of server.max_connections",
            c.connections_ratio,
        ),
    ]
    .into_iter()
    .filter(|(_, _, t)| *t > 0.0)
    .map(|(name, summary, threshold)| Rule {
        name,
        summary,
        threshold,
        firing: false,
    })
    .collect();
    let window = Duration::from_millis(c.window_ms);
    let mut samples: VecDeque<Sample> = VecDeque::new();
    // POSTs in the last minute, for `max_per_minute`.
    let mut sent: VecDeque<Instant> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(c.check_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::server::shutting_down(&mut shutdown) => return,
        }
        let now = sample(&shared);
        samples.push_back(now);
        while samples.len() > 2 && now.at.duration_since(samples[1].at) >= window {
            samples.pop_front();
        }
        let first = samples[0];
        let secs = now.at.duration_since(first.at).as_secs_f64().max(1e-3);
        let rate = |f: fn(&Sample) -> u64| (f(&now) - f(&first)) as f64 / secs;
        let max = shared.config.server.max_connections as f64;
        let open = shared.metrics.connected.load(Ordering::Relaxed).max(0) as f64;
        for rule in &mut rules {
            let value = match rule.name {
                "error_rate" => rate(|s| s.errors),
                "auth_failure_rate" => rate(|s| s.auth_failures),
                "drop_rate" => rate(|s| s.drops),
                "slow_consumer_closes" => (now.slow - first.slow) as f64,
                _ => open / max,
            };
            let above = value > rule.threshold;
            if above == rule.firing {
                continue;
            }
            while sent
                .front()
                .is_some_and(|t| now.at.duration_since(*t) >= Duration::from_secs(60))
            {
                sent.pop_front();
            }
            if sent.len() >= c.max_per_minute as usize {
                tracing::warn!(alert = rule.name, "An alert changed state but alerts.max_per_minute was reached; it is sent at a later check if it still holds.");
                continue;
            }
            sent.push_back(now.at);
            rule.firing = above;
            let state = if above { "firing" } else { "resolved" };
            let body = serde_json::json!({
                "alert": rule.name,
                "state": state,
                "value": value,
                "threshold": rule.threshold,
                "window_ms": c.window_ms,
                "instance": instance,
                "at": now_ms(),
                "summary": rule.summary,
            });
            if above {
                tracing::warn!(
                    alert = rule.name,
                    value,
                    threshold = rule.threshold,
                    "An alert is firing."
                );
            } else {
                tracing::info!(
                    alert = rule.name,
                    value,
                    threshold = rule.threshold,
                    "An alert resolved."
                );
            }
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(
                        status = r.status().as_u16(),
                        "The alert webhook refused an alert."
                    ),
                    Err(e) => tracing::warn!(error = %e, "The alert webhook could not be reached."),
                }
            });
        }
    }
}
