//! Kafka clients: connection settings, the librdkafka context that turns
//! client errors into clear log lines, and the in-memory development broker.

pub mod embedded;
pub mod table;
pub mod topics;

use std::collections::BTreeMap;

/// The consumer settings of every route, besides its group, its start
/// position and statistics. Public so that the end-to-end benchmark's bare
/// baseline (`bench/src/bin/passthrough.rs`) runs with exactly these.
pub const ROUTE_CONSUMER_SETTINGS: &[(&str, &str)] = &[
    ("enable.auto.commit", "true"),
    ("auto.commit.interval.ms", "1000"),
    // Offsets are stored by the ackers, only once outputs are safe.
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "false"),
];

/// Per-partition order and no duplicates from the producer's own retries:
/// the settings of every producer (before the operator's own).
pub const PRODUCER_SETTINGS: &[(&str, &str)] = &[("enable.idempotence", "true")];

/// How long the routes' producer waits to batch records (the HTTP APIs'
/// producer sends at once: a client waits for each acknowledgement).
pub const ROUTE_PRODUCER_LINGER_MS: u32 = 5;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

/// How to reach the cluster. `options` may hold credentials and is never
/// logged.
#[derive(Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub options: BTreeMap<String, String>,
    /// librdkafka properties for consumers only.
    pub consumer_options: BTreeMap<String, String>,
    /// librdkafka properties for the producer only.
    pub producer_options: BTreeMap<String, String>,
    /// True when `brokers` is the in-memory development broker.
    pub embedded: bool,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field(
                "consumer_options",
                &self.consumer_options.keys().collect::<Vec<_>>(),
            )
            .field(
                "producer_options",
                &self.producer_options.keys().collect::<Vec<_>>(),
            )
            .field("embedded", &self.embedded)
            .finish()
    }
}

impl KafkaSettings {
    /// A client config with the brokers and user options applied; callers
    /// add what their role needs.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config.set_log_level(RDKafkaLogLevel::Warning);
        for (key, value) in &self.options {
            config.set(key, value);
        }
        config
    }
}

/// Logs librdkafka's errors and log lines through `tracing`, tagged with
/// the client's role (a route name, or `producer`).
pub struct LoggingContext {
    pub role: String,
}

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let role = &self.role;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(role, facility = fac, "kafka: {log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(role, facility = fac, "kafka: {log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(role, facility = fac, "kafka: {log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(role, facility = fac, "kafka: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka reconnects by itself; these are reported, not fatal.
        tracing::error!(role = %self.role, error = %error, "kafka client error (retrying): {reason}");
    }
}

impl ConsumerContext for LoggingContext {}
