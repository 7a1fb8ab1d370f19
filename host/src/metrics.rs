//! Prometheus metrics, served at `GET /metrics`.
//!
//! One process-wide registry. Route counters are the same atomics that
//! `/healthz` and `/admin/routes` read, so the two can never disagree.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `switchyard_records_in_total` | route | source records taken from the consumer (each once per process) |
//! | `switchyard_records_replayed_total` | route | source records read again (after a halted route started again, or a partition came back) |
//! | `switchyard_records_out_total` | route | output records acknowledged by the broker |
//! | `switchyard_records_dropped_total` | route | source records that produced no output |
//! | `switchyard_records_rejected_total` | route | source records a plugin rejected |
//! | `switchyard_records_dead_lettered_total` | route | source records written to the dead-letter topic |
//! | `switchyard_retries_total` | route | retries of retryable failures |
//! | `switchyard_records_skipped_total` | route | source records an operator skipped after a halt |
//! | `switchyard_plugin_call_seconds` | route, plugin | duration of one `process` call (one batch) |
//! | `switchyard_consumer_lag` | route, topic, partition | records between the group's committed offset and the end of the partition (true while paused or unassigned) |
//! | `switchyard_route_state` | route, state | 1 for the route's state (`starting`, `connecting`, `running`, `halted`, `paused`, `stopped`), 0 for the others |
//! | `switchyard_route_stalled` | route | 1 while the route cannot make progress for `[health] stall_after_s` |
//! | `switchyard_start_time_seconds` | | when the process started (Unix time) |
//! | `switchyard_build_info` | version | 1, labelled with the version |
//! | `switchyard_http_sink_requests_total` | route, status | requests of HTTP sinks, by answer status (`error`: no answer) |

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub route: String,
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStateLabels {
    pub route: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub route: String,
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpSinkLabels {
    pub route: String,
    /// The answer's status code, or `error` when none came.
    pub status: String,
}

type HistogramFamily = Family<PluginLabels, Histogram, fn() -> Histogram>;

/// Every metric family.
pub struct Metrics {
    registry: Registry,
    pub records_in: Family<RouteLabels, Counter>,
    pub replayed: Family<RouteLabels, Counter>,
    pub records_out: Family<RouteLabels, Counter>,
    pub dropped: Family<RouteLabels, Counter>,
    pub rejected: Family<RouteLabels, Counter>,
    pub dead_lettered: Family<RouteLabels, Counter>,
    pub retries: Family<RouteLabels, Counter>,
    pub skipped: Family<RouteLabels, Counter>,
    pub plugin_call_seconds: HistogramFamily,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    pub http_sink_requests: Family<HttpSinkLabels, Counter>,
    pub route_state: Family<RouteStateLabels, Gauge>,
    pub route_stalled: Family<RouteLabels, Gauge>,
}

/// 50 µs to ~26 s, doubling: a plugin call is a batch of 1 to thousands of
/// records, bounded by its deadline.
fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchyard");
        let mut counter = |name: &str, help: &str| {
            let family = Family::<RouteLabels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let records_in = counter("records_in", "Source records taken from the consumer");
        let replayed = counter(
            "records_replayed",
            "Source records read again: a halted route started again, or a partition came back",
        );
        let records_out = counter("records_out", "Output records acknowledged by the broker");
        let dropped = counter("records_dropped", "Source records that produced no output");
        let rejected = counter("records_rejected", "Source records a plugin rejected");
        let dead_lettered = counter(
            "records_dead_lettered",
            "Source records written to the dead-letter topic",
        );
        let retries = counter("retries", "Retries of retryable plugin failures");
        let skipped = counter(
            "records_skipped",
            "Source records an operator skipped after a halt",
        );
        let plugin_call_seconds = HistogramFamily::new_with_constructor(call_buckets);
        registry.register(
            "plugin_call_seconds",
            "Duration of one plugin process call (one batch)",
            plugin_call_seconds.clone(),
        );
        let consumer_lag = Family::<PartitionLabels, Gauge>::default();
        registry.register(
            "consumer_lag",
            "Records between the group's committed offset and the end of the partition",
            consumer_lag.clone(),
        );
        let http_sink_requests = Family::<HttpSinkLabels, Counter>::default();
        registry.register(
            "http_sink_requests",
            "Requests of HTTP sinks, by answer status (error: no answer came)",
            http_sink_requests.clone(),
        );
        let route_state = Family::<RouteStateLabels, Gauge>::default();
        registry.register(
            "route_state",
            "1 for the route's current state, 0 for the others",
            route_state.clone(),
        );
        let route_stalled = Family::<RouteLabels, Gauge>::default();
        registry.register(
            "route_stalled",
            "1 while the route cannot make progress (see [health] stall_after_s)",
            route_stalled.clone(),
        );
        let start_time = Gauge::<i64>::default();
        start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default(),
        );
        registry.register(
            "start_time_seconds",
            "When the process started, in seconds since the Unix epoch",
            start_time,
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "The running version", build_info);
        Metrics {
            registry,
            route_state,
            route_stalled,
            records_in,
            replayed,
            records_out,
            dropped,
            rejected,
            dead_lettered,
            retries,
            skipped,
            plugin_call_seconds,
            consumer_lag,
            http_sink_requests,
        }
    }

    /// The exposition text (OpenMetrics), for a scrape.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_are_exposed_with_their_labels() {
        let m = Metrics::new();
        let route = RouteLabels {
            route: "orders".into(),
        };
        m.records_in.get_or_create(&route).inc_by(3);
        m.plugin_call_seconds
            .get_or_create(&PluginLabels {
                route: "orders".into(),
                plugin: "validate".into(),
            })
            .observe(0.002);
        let text = m.encode();
        assert!(
            text.contains("switchyard_records_in_total{route=\"orders\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "switchyard_plugin_call_seconds_count{route=\"orders\",plugin=\"validate\"} 1"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
