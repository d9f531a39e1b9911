//! `GET /metrics`: the counters of [`super::Metrics`] and the state read at
//! scrape time, encoded by `prometheus-client` in the Prometheus text
//! format, or OpenMetrics when the scraper's `Accept` asks for it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{Family, LabelSet, Metrics};
use crate::server::Shared;

/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics text.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes every metric; OpenMetrics when `openmetrics`, else Prometheus text.
pub(crate) fn encode(shared: &Arc<Shared>, openmetrics: bool) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(shared.clone())));
    let mut out = String::with_capacity(16 << 10);
    let r = if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
    };
    r.expect("writing to a String does not fail");
    out
}

/// One scrape's view of the relay.
struct Scrape(Arc<Shared>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    let m = e.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge<T>(e: &mut DescriptorEncoder, name: &str, help: &str, v: T) -> std::fmt::Result
where
    ConstGauge<T>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    let m = e.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

/// A counter family with one sample per label value.
fn labelled<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (impl AsRef<str> + 'a, u64)>,
    kind: MetricType,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (v, n) in values {
        let labels = [(label, v.as_ref())];
        let f = m.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => ConstGauge::new(n).encode(f)?,
            _ => ConstCounter::new(n).encode(f)?,
        }
    }
    Ok(())
}

fn family<L: LabelSet, const N: usize>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    f: &Family<L, N>,
) -> std::fmt::Result {
    labelled(e, name, help, L::NAME, f.values(), MetricType::Counter)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let shared = &self.0;
        let m: &Metrics = &shared.metrics;
        let e = &mut e;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);

        // Connections and sessions.
        gauge(
            e,
            "zerorelay_connections",
            "WebSocket connections past their hello, open now.",
            m.connected.load(Ordering::Relaxed).max(0),
        )?;
        gauge(
            e,
            "zerorelay_connections_max",
            "server.max_connections: connections the relay accepts at once.",
            shared.config.server.max_connections as i64,
        )?;
        counter(
            e,
            "zerorelay_connections_opened",
            "Connections welcomed (new or resumed sessions).",
            load(&m.opened),
        )?;
        labelled(
            e,
            "zerorelay_connections_closed",
            "Welcomed connections that ended, by close code (none: no close frame, the socket went away).",
            "code",
            m.closes(),
            MetricType::Counter,
        )?;
        family(
            e,
            "zerorelay_handshake_failures",
            "Connections refused or lost before welcome, by reason.",
            &m.handshake_failures,
        )?;
        family(
            e,
            "zerorelay_auth_failures",
            "Failed authentications (at hello and on refresh), by reason.",
            &m.auth_failures,
        )?;
        let (mut live, mut detached) = (0i64, 0i64);
        shared.router.store().for_each(&mut |s| {
            if s.lock().conn.is_some() {
                live += 1;
            } else {
                detached += 1;
            }
        });
        labelled(
            e,
            "zerorelay_sessions",
            "Sessions by state: live (a connection attached) or detached (resumable until session.ttl_ms).",
            "state",
            [("live", live as u64), ("detached", detached as u64)],
            MetricType::Gauge,
        )?;
        counter(
            e,
            "zerorelay_resumes",
            "Sessions resumed by a new connection.",
            load(&m.resumes),
        )?;

        // Traffic.
        family(
            e,
            "zerorelay_frames_received",
            "Frames received from clients, by type (invalid: not a frame of the protocol).",
            &m.frames,
        )?;
        let r = shared.router.stats();
        family(
            e,
            "zerorelay_deliveries",
            "Deliveries queued on sessions, by kind (one per recipient).",
            &r.deliveries,
        )?;
        labelled(
            e,
            "zerorelay_messages_dropped",
            "Deliveries dropped before they were acknowledged, by reason: a session's outbox bound (session.outbox_messages / outbox_bytes) or the server-wide one (session.outbox_total_bytes). Each is announced to its client by a gap.",
            "reason",
            [
                ("outbox_full", load(&r.dropped)),
                ("outbox_total", shared.router.budget().trimmed()),
            ],
            MetricType::Counter,
        )?;
        counter(
            e,
            "zerorelay_gaps",
            "Gap frames sent to clients.",
            load(&m.gaps),
        )?;
        counter(e, "zerorelay_acks", "Acks received.", load(&m.acks))?;
        counter(
            e,
            "zerorelay_redeliveries",
            "Unacknowledged deliveries sent again after a resume.",
            load(&m.redeliveries),
        )?;
        family(
            e,
            "zerorelay_errors_sent",
            "Error frames sent to clients, by code.",
            &m.errors,
        )?;
        counter(
            e,
            "zerorelay_slow_consumer_closes",
            "Connections closed as slow consumers (limits.slow_consumer_bytes for limits.slow_consumer_ms).",
            load(&r.slow_consumers),
        )?;
        family(
            e,
            "zerorelay_rate_limited",
            "Frames refused by a rate limit, by limit (abuse: connections closed after limits.abuse_strikes refusals).",
            &m.rate_limited,
        )?;
        {
            let (buckets, sum, count) = m.latency.snapshot();
            let mut h = e.encode_descriptor(
                "zerorelay_routing_latency_seconds",
                "From a message's routing to the start of the socket write that carries it to a recipient.",
                None,
                MetricType::Histogram,
            )?;
            h.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }

        // Groups and outboxes.
        let groups = shared.router.store().groups();
        gauge(
            e,
            "zerorelay_groups",
            "Groups with at least one member.",
            groups.len() as i64,
        )?;
        gauge(
            e,
            "zerorelay_group_members",
            "Group memberships (a session in two groups counts twice).",
            groups.iter().map(|(_, n)| *n as i64).sum::<i64>(),
        )?;
        gauge(
            e,
            "zerorelay_outbox_bytes",
            "Bytes of unacknowledged deliveries all sessions hold.",
            shared.router.budget().used() as i64,
        )?;

        // Hooks and the HTTP API.
        counter(
            e,
            "zerorelay_hook_events_dropped",
            "Host events not delivered because a hook's queue (hooks.queue) was full or a subscriber fell behind.",
            load(&shared.events.dropped),
        )?;
        {
            let mut f = e.encode_descriptor(
                "zerorelay_http_requests",
                "HTTP requests served (API, health, metrics), by endpoint and status.",
                None,
                MetricType::Counter,
            )?;
            for (endpoint, status, n) in m.http_requests() {
                let labels = [("endpoint", endpoint), ("status", status.as_str())];
                ConstCounter::new(n).encode(f.encode_family(&labels)?)?;
            }
        }

        // The process.
        let p = super::process::read();
        if let Some(v) = p.rss_bytes {
            gauge(
                e,
                "zerorelay_process_resident_memory_bytes",
                "Resident memory.",
                v as i64,
            )?;
        }
        if let Some(v) = p.open_fds {
            gauge(
                e,
                "zerorelay_process_open_fds",
                "Open file descriptors.",
                v as i64,
            )?;
        }
        if let Some(v) = p.max_fds {
            gauge(
                e,
                "zerorelay_process_max_fds",
                "The open file descriptor limit.",
                v as i64,
            )?;
        }
        if let Some(v) = p.cpu_seconds {
            let c = ConstCounter::new(v);
            let d = e.encode_descriptor(
                "zerorelay_process_cpu_seconds",
                "CPU time used, user and system.",
                None,
                c.metric_type(),
            )?;
            c.encode(d)?;
        }
        gauge(
            e,
            "zerorelay_uptime_seconds",
            "Seconds since the relay was built.",
            m.started.elapsed().as_secs_f64(),
        )?;
        let info = [("version", env!("CARGO_PKG_VERSION"))];
        let mut i = e.encode_descriptor(
            "zerorelay_build",
            "The relay's version.",
            None,
            MetricType::Info,
        )?;
        i.encode_info(&info)?;
        Ok(())
    }
}
