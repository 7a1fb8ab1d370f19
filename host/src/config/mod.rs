//! The routes file: which topics flow through which plugin chains to which
//! sinks, and what happens when a record cannot be processed.
//!
//! Parsing is strict (`deny_unknown_fields` everywhere) so that a typo is an
//! error naming the field, never a silently ignored setting. [`Config::load`]
//! also checks what the types cannot: that every plugin file exists, that
//! route names are unique, that a dead-letter policy has a topic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod secrets;

/// Errors found while loading a routes file. Each names the file and, where
/// it applies, the route and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read routes file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid routes file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid routes file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole routes file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory holding plugin components (`<name>.wasm`). Relative paths
    /// are resolved against the directory of the routes file.
    /// Example: `plugins_dir = "target/plugins"`.
    #[serde(default = "default_plugins_dir")]
    pub plugins_dir: PathBuf,

    /// Kafka client settings shared by every route.
    #[serde(default)]
    pub kafka: KafkaConfig,

    /// Defaults applied to every route unless the route overrides them.
    #[serde(default)]
    pub defaults: RouteTuning,

    /// The routes, each an independent consumer group.
    #[serde(default, rename = "routes")]
    pub routes: Vec<RouteConfig>,

    /// Extra HTTP listeners.
    #[serde(default)]
    pub http: HttpConfig,

    /// `POST /events` and `GET /events`; absent, those answer 404.
    pub events_api: Option<EventsApiConfig>,

    /// The streams API (`/api/v1/streams/...`); absent, it answers 404.
    pub streams_api: Option<StreamsApiConfig>,

    /// `POST /ingest/{route}`: producers publish through a route's chain
    /// over HTTP; absent, it answers 404.
    pub ingest_api: Option<IngestApiConfig>,

    /// Subject encryption and erasure (see `docs/gdpr.md`); absent, plugins
    /// cannot encrypt and `/admin/subjects` answers 404.
    pub subjects: Option<SubjectsConfig>,

    /// What routes changed through the admin API may reference.
    #[serde(default)]
    pub secrets: SecretsConfig,

    /// When a route counts as stalled (read at start).
    #[serde(default)]
    pub health: HealthConfig,
}

/// `[health]`: when a route that cannot make progress makes the instance
/// unready (see `docs/production.md`, "Health and readiness").
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds a route may be unable to progress (Kafka unreachable, a
    /// source topic missing, records waiting while the group's committed
    /// offset does not move) before `/readyz` fails (default 30).
    pub stall_after_s: Option<u64>,
}

impl HealthConfig {
    /// The settings, or why they are invalid.
    pub fn settings(&self) -> Result<crate::route::health::HealthSettings, String> {
        let mut settings = crate::route::health::HealthSettings::default();
        if let Some(s) = self.stall_after_s {
            if s == 0 {
                return Err("`health.stall_after_s` must be at least 1 (seconds)".into());
            }
            settings.stall_after = std::time::Duration::from_secs(s);
        }
        Ok(settings)
    }
}

/// Secret references of routes created or changed through the admin API.
/// A route in this file may reference any environment variable or file;
/// one sent to the admin API only what is listed here (or what the route
/// it replaces referenced already), and never a file: a token holder must
/// not be able to send the master key, or any file the process can read,
/// to a topic or an endpoint of their choosing.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Environment variables such routes may reference, e.g.
    /// `api_env = ["CRM_TOKEN"]`. Those the file itself uses elsewhere (the
    /// master key, API tokens, passwords) are never allowed.
    #[serde(default)]
    pub api_env: Vec<String>,
}

/// The settings read once at start (a change needs a restart).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiSettings {
    pub http: HttpConfig,
    pub events_api: Option<EventsApiConfig>,
    pub streams_api: Option<StreamsApiConfig>,
    pub ingest_api: Option<IngestApiConfig>,
    pub subjects: Option<SubjectsConfig>,
}

impl Config {
    pub fn api_settings(&self) -> ApiSettings {
        ApiSettings {
            http: self.http.clone(),
            events_api: self.events_api.clone(),
            streams_api: self.streams_api.clone(),
            ingest_api: self.ingest_api.clone(),
            subjects: self.subjects.clone(),
        }
    }
}

/// The ingest API: `POST /ingest/{route}` with JSON Lines, each line run
/// through the route's chain and published; for producers whose data must
/// not reach Kafka as it is (personal fields encrypted by the chain first).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestApiConfig {
    /// Routes fed by HTTP (`source = { http = true }`) that may be posted to.
    pub routes: Vec<String>,
    /// Bearer tokens that may post, each a secret reference (`{ "$env" =
    /// "NAME" }` or `{ "$file" = "path" }`), 16 characters or more.
    pub tokens: Vec<toml::Value>,
    /// Largest request body in bytes (default 1 MiB); bigger is a 413.
    pub max_body_bytes: Option<usize>,
}

impl std::fmt::Debug for IngestApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestApiConfig")
            .field("routes", &self.routes)
            .field("tokens", &format_args!("<{} withheld>", self.tokens.len()))
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// Subject encryption: per-subject data keys wrapped by a master key, kept
/// in a compacted topic every instance reads; erasure destroys them.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubjectsConfig {
    /// The master key, 32 bytes as 64 hex digits or base64, as a secret
    /// reference: `{ "$env" = "SWITCHYARD_MASTER_KEY" }` or `{ "$file" =
    /// "/run/secrets/master-key" }`. Never the key itself in this file.
    pub master_key: toml::Value,
    /// Master keys being rotated away from (or to), as secret references:
    /// keys wrapped under them open too, and every key is wrapped again
    /// under `master_key` at start. Empty outside a rotation.
    #[serde(default)]
    pub other_master_keys: Vec<toml::Value>,
    /// The compacted topic of the wrapped keys (default
    /// `switchyard.subjects.keys`).
    pub keys_topic: Option<String>,
    /// The topic of erasure audit records (default
    /// `switchyard.subjects.audit`).
    pub audit_topic: Option<String>,
    /// Where a record names its subject, a JSON Pointer (default
    /// `/userId`): in-memory buffers are purged of a subject's records by
    /// it.
    pub subject_field: Option<String>,
    /// Topics that get a tombstone on erasure, keyed by what that topic's
    /// records of the subject are keyed by: on a compacted topic the
    /// subject's records go; on others, consumers learn to forget it.
    #[serde(default)]
    pub erase_topics: Vec<EraseTopic>,
    /// Replication factor of the two topics (default: the broker's).
    pub replication_factor: Option<i32>,
    /// What becomes of a subject's data that arrives after its erasure (the
    /// source that sent it still has it): `"suppress"` (default) encrypts
    /// it under a key that is destroyed already, so no route can read it
    /// and nothing of the subject flows on; `"new-lifetime"` gives the
    /// subject a new key, unlinkable to the old one, as for a new person.
    #[serde(default)]
    pub after_erasure: AfterErasure,
    /// New data subjects that records received over HTTP (the events API,
    /// the ingest API) may bring per second, in this process (default 100,
    /// with as many at once). Each gets a key kept until it is erased, so an
    /// anonymous client posting made-up ids must not grow the key store
    /// without bound; beyond it, such records are refused for now (503) and
    /// can be sent again. Records read from Kafka are not limited.
    pub new_subjects_per_second: Option<u32>,
}

/// See [`SubjectsConfig::after_erasure`].
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AfterErasure {
    #[default]
    Suppress,
    NewLifetime,
}

impl std::fmt::Debug for SubjectsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectsConfig")
            .field("master_key", &"<withheld>")
            .field("other_master_keys", &self.other_master_keys.len())
            .field("keys_topic", &self.keys_topic)
            .field("audit_topic", &self.audit_topic)
            .field("erase_topics", &self.erase_topics)
            .finish_non_exhaustive()
    }
}

/// A topic erasure writes tombstones to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EraseTopic {
    pub topic: String,
    /// `"key-ref"`: the topic is keyed by the subject's key reference
    /// (`redact`'s `key = "subject-ref"`); `"pseudonym"`: by its pseudonym.
    pub key: EraseKey,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EraseKey {
    KeyRef,
    Pseudonym,
}

/// The HTTP listeners: an extra public one beside the main one (`--http`),
/// and the limits both apply to their clients.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Also serve the event APIs, their OpenAPI document and Swagger UI
    /// (but not `/admin`, `/metrics` or health) on this address, e.g.
    /// `"0.0.0.0:5000"`: the port to give API users, while the main one
    /// stays for operators.
    pub public: Option<std::net::SocketAddr>,
    /// How long a client has to send a request's head (request line and
    /// headers), in milliseconds (default 10000); also how long an idle
    /// keep-alive connection stays open. Past it the connection is closed.
    pub header_read_timeout_ms: Option<u64>,
    /// How long a client has to send a request's whole body once its head
    /// has arrived, in milliseconds (default 30000): a total, not a gap
    /// between reads. Past it the request is answered 408 and the
    /// connection closed.
    pub body_read_timeout_ms: Option<u64>,
    /// Most connections open at once on each listener (default 1024).
    /// Further clients wait, unaccepted, until one closes.
    pub max_connections: Option<usize>,
}

/// Default of `http.header_read_timeout_ms`.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Default of `http.body_read_timeout_ms`.
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 30_000;
/// Default of `http.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl HttpConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(
            self.header_read_timeout_ms
                .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_MS),
        )
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(
            self.body_read_timeout_ms
                .unwrap_or(DEFAULT_BODY_READ_TIMEOUT_MS),
        )
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)
    }

    /// What the types cannot say: no limit may be zero (a zero timeout
    /// would close every connection, zero connections would serve none).
    fn check(&self) -> Result<(), String> {
        for (field, value) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("max_connections", self.max_connections.map(|n| n as u64)),
        ] {
            if value == Some(0) {
                return Err(format!("`http.{field}` must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The events API: `POST /events` runs an HTTP-sourced route's chain on the
/// body and publishes what it emits; `GET /events` reads the most recent
/// records of a buffer sink.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventsApiConfig {
    /// A route with `source = { http = true }`: its chain validates each
    /// posted event and its sink is where accepted events are published.
    pub ingest_route: String,
    /// A buffer that a route fills (`sink = { buffer = "..." }`).
    pub recent_buffer: String,
    /// Largest request body in bytes (default 65536); bigger is a 413.
    pub max_body_bytes: Option<usize>,
    /// Bearer tokens that may read `GET /events`, each a string or a secret
    /// reference (`{ "$env" = "NAME" }` or `{ "$file" = "path" }`), 16
    /// characters or more; several let a token be rotated. Absent or
    /// empty: reads are open to anyone who reaches a listener.
    #[serde(default)]
    pub read_tokens: Vec<toml::Value>,
    /// Reads without a token on a listener beyond loopback are refused at
    /// start (`GET /events` shows what users did) unless this is `true`:
    /// the operator's word that those events may be public. Default false;
    /// contradicts `read_tokens`.
    #[serde(default)]
    pub public_reads: bool,
    /// Largest `limit` of `GET /events`, 1 to 1000 (default 1000): a read
    /// copies up to this many events. A larger `limit` is a 400 naming it.
    pub max_limit: Option<usize>,
}

/// Default and ceiling of `events_api.max_limit`.
pub const MAX_EVENTS_LIMIT: usize = 1000;

impl EventsApiConfig {
    pub fn max_limit(&self) -> usize {
        self.max_limit.unwrap_or(MAX_EVENTS_LIMIT)
    }
}

/// Shows how many read tokens there are, never their values.
impl std::fmt::Debug for EventsApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsApiConfig")
            .field("ingest_route", &self.ingest_route)
            .field("recent_buffer", &self.recent_buffer)
            .field("max_body_bytes", &self.max_body_bytes)
            .field(
                "read_tokens",
                &format_args!("<{} withheld>", self.read_tokens.len()),
            )
            .field("public_reads", &self.public_reads)
            .field("max_limit", &self.max_limit)
            .finish()
    }
}

/// The streams API: append-only named streams with one producer each and
/// per-consumer positions, all kept in Kafka.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamsApiConfig {
    /// Who may call the API (HTTP Basic). At least one.
    pub credentials: Vec<BasicCredential>,
    /// Prefix of the topic of each stream (default `"streams."`): stream
    /// `orders` is the topic `streams.orders`.
    pub topic_prefix: Option<String>,
    /// The topic recording which producer owns which stream (default
    /// `"switchyard.streams.owners"`).
    pub owners_topic: Option<String>,
    /// The compacted topic of consumer positions (default
    /// `"switchyard.streams.positions"`).
    pub positions_topic: Option<String>,
    /// Replication factor of the topics the API creates (default: the
    /// broker's default).
    pub replication_factor: Option<i32>,
    /// Largest request body in bytes (default 65536); bigger is a 413.
    pub max_body_bytes: Option<usize>,
    /// Most streams (each a Kafka topic) producers may create (default
    /// 1000). A first append to a new stream beyond it is a 403; the
    /// streams there keep working.
    pub max_streams: Option<usize>,
}

/// Default of `streams_api.max_streams`.
pub const DEFAULT_MAX_STREAMS: usize = 1000;

impl StreamsApiConfig {
    pub fn max_streams(&self) -> usize {
        self.max_streams.unwrap_or(DEFAULT_MAX_STREAMS)
    }
}

/// One HTTP Basic user of the streams API. The password may be a secret
/// reference (`{ "$env" = "NAME" }` or `{ "$file" = "path" }`); it must be
/// 12 characters or more and no placeholder (`CHANGE-ME`...), or
/// switchyard does not start.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    pub user: String,
    pub password: toml::Value,
}

/// Shows the user, never the password.
impl std::fmt::Debug for BasicCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredential")
            .field("user", &self.user)
            .field("password", &"<withheld>")
            .finish()
    }
}

/// Kafka client settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, e.g. `"broker-1:9092,broker-2:9092"`. The
    /// `--brokers` flag and `SWITCHYARD_BROKERS` override it; with none of
    /// the three, switchyard starts an in-memory development broker.
    pub brokers: Option<String>,
    /// Extra librdkafka properties passed to every client, e.g.
    /// `{ "security.protocol" = "SASL_SSL", "sasl.password" = { "$env" =
    /// "KAFKA_PASSWORD" } }`. A value is a string, a number or a boolean, or
    /// a secret reference (`$env`, `$file`) so that passwords stay out of
    /// this file. Values are never logged.
    #[serde(default)]
    pub options: BTreeMap<String, toml::Value>,
    /// librdkafka properties for route consumers only, e.g.
    /// `{ "session.timeout.ms" = "10000" }`.
    #[serde(default)]
    pub consumer: BTreeMap<String, toml::Value>,
    /// librdkafka properties for the producer only, e.g.
    /// `{ "linger.ms" = "10" }`.
    #[serde(default)]
    pub producer: BTreeMap<String, toml::Value>,
    /// Partitions of the topics switchyard creates for routes fed over HTTP
    /// (the events API's and the ingest API's topics), when they do not
    /// exist yet. Default: the broker's `num.partitions`. Partitions are
    /// the unit of parallelism: see docs/runbooks.md.
    pub topic_partitions: Option<i32>,
}

/// [`KafkaConfig`]'s properties as librdkafka takes them: secrets read.
#[derive(Clone, Default, PartialEq)]
pub struct KafkaProperties {
    pub options: BTreeMap<String, String>,
    pub consumer: BTreeMap<String, String>,
    pub producer: BTreeMap<String, String>,
}

/// Shows the property names, never their values.
impl std::fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProperties")
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("consumer", &self.consumer.keys().collect::<Vec<_>>())
            .field("producer", &self.producer.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KafkaConfig {
    /// The properties with their secret references read; `base` is the
    /// routes file's directory. Messages name the property, never a value.
    pub fn properties(&self, base: &Path) -> Result<KafkaProperties, String> {
        let resolve = |table: &BTreeMap<String, toml::Value>, section: &str| {
            table
                .iter()
                .map(|(key, value)| {
                    let at = format!("kafka.{section}.\"{key}\"");
                    let text = match value {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(n) => n.to_string(),
                        toml::Value::Float(n) => n.to_string(),
                        toml::Value::Boolean(b) => b.to_string(),
                        toml::Value::Table(_) => secrets::resolve_string(value, &at, base)?,
                        _ => {
                            return Err(format!(
                                "{at}: must be a string, number, boolean or secret reference"
                            ))
                        }
                    };
                    Ok((key.clone(), text))
                })
                .collect::<Result<BTreeMap<_, _>, String>>()
        };
        Ok(KafkaProperties {
            options: resolve(&self.options, "options")?,
            consumer: resolve(&self.consumer, "consumer")?,
            producer: resolve(&self.producer, "producer")?,
        })
    }
}

/// Per-route knobs with defaults. Every field is optional in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteTuning {
    /// Most records handed to a plugin in one call (default 256).
    pub batch_size: Option<usize>,
    /// Deadline for one plugin call, in milliseconds (default 1000). A call
    /// past it is interrupted and its instance replaced.
    pub call_timeout_ms: Option<u64>,
    /// Linear memory cap per plugin instance, in MiB (default 64).
    pub memory_limit_mib: Option<u64>,
}

impl RouteTuning {
    /// `self` with unset fields taken from `fallback`.
    fn or(&self, fallback: &RouteTuning) -> RouteTuning {
        RouteTuning {
            batch_size: self.batch_size.or(fallback.batch_size),
            call_timeout_ms: self.call_timeout_ms.or(fallback.call_timeout_ms),
            memory_limit_mib: self.memory_limit_mib.or(fallback.memory_limit_mib),
        }
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(256).max(1)
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms.unwrap_or(1000))
    }

    pub fn memory_limit_bytes(&self) -> usize {
        (self.memory_limit_mib.unwrap_or(64) as usize) << 20
    }
}

/// One route: source topics, a plugin chain, sinks and an error policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name, used in logs, metrics and headers.
    pub name: String,
    /// Where records come from.
    pub source: SourceConfig,
    /// Plugins applied in order. May be empty (a plain copy).
    #[serde(default)]
    pub chain: Vec<ChainStep>,
    /// Where untargeted outputs of the last plugin go.
    pub sink: SinkConfig,
    /// Named outputs a plugin may target by name, e.g.
    /// `outputs.audit = { topic = "orders.audit" }`.
    #[serde(default)]
    pub outputs: BTreeMap<String, KafkaSink>,
    /// Where records that fail for good are written, with context headers.
    pub dead_letter: Option<KafkaSink>,
    /// What to do with a record that a plugin rejects or fails on.
    #[serde(default)]
    pub on_error: ErrorPolicyConfig,
    /// Overrides `[defaults].batch_size` for this route.
    pub batch_size: Option<usize>,
    /// Overrides `[defaults].call_timeout_ms` for this route.
    pub call_timeout_ms: Option<u64>,
    /// Overrides `[defaults].memory_limit_mib` for this route.
    pub memory_limit_mib: Option<u64>,
    /// A paused route consumes nothing; its committed offsets wait for it.
    /// Set by `POST /admin/routes/NAME/pause` and `/resume`, or by hand.
    #[serde(default)]
    pub paused: bool,
}

/// Source topics and consumer group, or HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Topics to consume.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Records come from an HTTP API (`[events_api]` or `[streams_api]`)
    /// instead of topics: the chain runs on each request, and the request
    /// succeeds once its outputs are on the broker.
    #[serde(default)]
    pub http: bool,
    /// Consumer group id (default `switchyard-<route name>`). Instances
    /// sharing a group share the partitions.
    pub group: Option<String>,
    /// Where a new group starts: `"earliest"` (default) or `"latest"`.
    #[serde(default)]
    pub start_from: StartFrom,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
}

impl StartFrom {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        }
    }
}

/// One plugin in a chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainStep {
    /// Plugin name: the file `<plugins_dir>/<name>.wasm`.
    pub plugin: String,
    /// Configuration handed to the plugin's `init`, as JSON.
    #[serde(default = "empty_table")]
    pub config: toml::Table,
}

/// A Kafka topic to write to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSink {
    pub topic: String,
}

/// A route's main sink: a topic, an in-memory buffer of the most recent
/// outputs (read by `GET /events`), or an HTTP endpoint. Exactly one of
/// `topic`, `buffer` and `http`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub topic: Option<String>,
    /// Name of the buffer, e.g. `"recent-events"`.
    pub buffer: Option<String>,
    /// Most records the buffer keeps (default 1000); older ones are dropped.
    pub capacity: Option<usize>,
    /// Deliver outputs to an HTTP endpoint, e.g.
    /// `http = { url = "http://crm:5050", format = "crm-upsert" }`.
    pub http: Option<HttpSinkConfig>,
}

/// An HTTP endpoint as a route's sink. A record's offset is committed only
/// once the endpoint has taken every output of it (or the record is
/// dead-lettered); outputs of one key are delivered in order, different
/// keys concurrently.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// `json-post`: the URL each output's value is POSTed to.
    /// `crm-upsert`: the base URL of the REST API (`{url}/{resource}/{id}`).
    /// A string, or a reference (`{ "$env" = "CRM_URL" }`) so that one
    /// routes file serves several environments.
    pub url: toml::Value,
    /// What an output is: `"json-post"` (default; the body of one POST) or
    /// `"crm-upsert"` (a CRM operation document, as `crm-map` emits).
    #[serde(default)]
    pub format: HttpFormat,
    /// Request headers, e.g. `{ Authorization = { "$env" = "CRM_TOKEN" } }`;
    /// values may be secret references and are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, toml::Value>,
    /// Deadline of one request in milliseconds (default 10000).
    pub timeout_ms: Option<u64>,
    /// How long an output is retried on 5xx, 408, 429, timeouts and
    /// connection errors before its record goes the way of `on_error`, in
    /// milliseconds (default 300000: five minutes of outage are ridden out).
    pub retry_budget_ms: Option<u64>,
    /// First retry delay in milliseconds, doubled per retry (default 100).
    pub backoff_ms: Option<u64>,
    /// Longest retry delay in milliseconds (default 5000).
    pub max_backoff_ms: Option<u64>,
    /// Keys delivered at once per partition (default 16).
    pub concurrency: Option<usize>,
    /// `crm-upsert` only: what erasing a data subject (`DELETE
    /// /admin/subjects/{id}`) does to the endpoint's copies of its personal
    /// data, for an API without a delete: each entry's records of the
    /// subject are rewritten with `set` written over them. E.g.
    /// `{ resource = "users", key = "id", set = { Email = "erased@erased.invalid" } }`
    /// (the record whose id is the subject's id), or `{ resource = "trips",
    /// field = "UserId", set = { From = "" } }` (every record whose `UserId`
    /// is the subject's id; the collection is listed to find them).
    #[serde(default)]
    pub on_erasure: Vec<ErasureOverwriteConfig>,
}

/// One kind of record an erasure overwrites at an HTTP sink's endpoint.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ErasureOverwriteConfig {
    /// The collection, e.g. `"users"` (`{url}/{resource}`).
    pub resource: String,
    /// `"id"`: the subject's record is the one whose id is the subject's id.
    pub key: Option<String>,
    /// A field naming the subject: every record whose field holds the
    /// subject's id.
    pub field: Option<String>,
    /// Fields written over each record found, e.g. `{ LastName = "(erased)" }`.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Fields set to `null` in each record found (TOML has no null).
    #[serde(default)]
    pub clear: Vec<String>,
}

/// Which records of a subject an erasure overwrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasureMatch {
    /// The record `{url}/{resource}/{subject id}`.
    Id,
    /// The records of `{url}/{resource}` whose field holds the subject id.
    Field(String),
}

/// A checked [`ErasureOverwriteConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureOverwrite {
    pub resource: String,
    pub matching: ErasureMatch,
    /// JSON object of the fields to write.
    pub set: serde_json::Map<String, serde_json::Value>,
}

impl ErasureOverwriteConfig {
    fn resolve(&self, at: &str) -> Result<ErasureOverwrite, String> {
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.resource.is_empty() || !self.resource.chars().all(valid) {
            return Err(format!(
                "`{at}.resource` must be letters, digits, `-` or `_`, got {:?}",
                self.resource
            ));
        }
        let matching = match (self.key.as_deref(), self.field.as_deref()) {
            (Some("id"), None) => ErasureMatch::Id,
            (Some(other), None) => {
                return Err(format!(
                    "`{at}.key` can only be \"id\" (the record whose id is the subject's id), \
                     got {other:?}"
                ))
            }
            (None, Some(field)) if !field.is_empty() => ErasureMatch::Field(field.to_owned()),
            (None, Some(_)) => return Err(format!("`{at}.field` is empty")),
            _ => {
                return Err(format!(
                    "`{at}`: give exactly one of `key = \"id\"` (the record whose id is the \
                     subject's id) or `field = \"NAME\"` (every record whose NAME holds it)"
                ))
            }
        };
        if self.set.is_empty() && self.clear.is_empty() {
            return Err(format!(
                "`{at}` overwrites nothing: name the fields that hold personal data in `set` \
                 (what they become) or `clear` (set to null)"
            ));
        }
        let mut set = serde_json::to_value(&self.set)
            .map_err(|e| format!("`{at}.set`: {e}"))?
            .as_object()
            .cloned()
            .unwrap_or_default();
        for field in &self.clear {
            if set.insert(field.clone(), serde_json::Value::Null).is_some() {
                return Err(format!("`{at}`: `{field}` is in both `set` and `clear`"));
            }
        }
        Ok(ErasureOverwrite {
            resource: self.resource.clone(),
            matching,
            set,
        })
    }
}

/// Shows the header names, never their values.
impl std::fmt::Debug for HttpSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSinkConfig")
            .field("format", &self.format)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// How an HTTP sink turns an output into requests.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HttpFormat {
    /// `POST {url}` with the output's value as a JSON body.
    #[default]
    JsonPost,
    /// The output is a CRM operation (`{"op": "upsert", "resource", "id",
    /// "set", "on_create"}`): `GET {url}/{resource}/{id}`, then replace it
    /// with `set` written over it (`POST {url}/{resource}/{id}`), or create
    /// it from `on_create` and `set` (`POST {url}/{resource}`).
    CrmUpsert,
}

/// Where a route's untargeted outputs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Topic(String),
    /// An in-memory buffer keeping the `capacity` most recent outputs.
    Buffer {
        name: String,
        capacity: usize,
    },
    /// An HTTP endpoint.
    Http(HttpSinkSpec),
}

/// A checked HTTP sink, with its secrets resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpSinkSpec {
    pub url: reqwest::Url,
    pub format: HttpFormat,
    /// Names and values, secrets resolved.
    pub headers: Vec<(String, String)>,
    /// What erasing a subject overwrites at the endpoint.
    pub on_erasure: Vec<ErasureOverwrite>,
    pub timeout: Duration,
    pub retry_budget: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub concurrency: usize,
}

/// Shows the URL without credentials and the header names, never values.
impl std::fmt::Debug for HttpSinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSinkSpec")
            .field("url", &redact_userinfo(self.url.as_str()))
            .field("format", &self.format)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("retry_budget", &self.retry_budget)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// `url` with any `user:password@` replaced by `***@`, for logs.
pub fn redact_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("***");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl HttpSinkConfig {
    /// Check the settings and resolve the header secrets; `base` is the
    /// routes file's directory.
    fn resolve(&self, base: &Path) -> Result<HttpSinkSpec, String> {
        let text = secrets::resolve_string(&self.url, "sink.http.url", base)?;
        let url =
            reqwest::Url::parse(&text).map_err(|e| format!("`sink.http.url`: not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!(
                "`sink.http.url`: must be an http:// or https:// URL with a host, got `{}`",
                redact_userinfo(&text)
            ));
        }
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let at = format!("sink.http.headers.{name}");
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("`{at}`: not a valid header name"));
            }
            let value = secrets::resolve_string(value, &at, base)?;
            if axum::http::HeaderValue::from_str(&value).is_err() {
                // Never quote the value: it may be a secret.
                return Err(format!(
                    "`{at}`: the value is not a valid header value (control characters or \
                     non-ASCII)"
                ));
            }
            headers.push((name.clone(), value));
        }
        let positive = |value: Option<u64>, default: u64, field: &str| match value {
            Some(0) => Err(format!("`sink.http.{field}` must be at least 1")),
            Some(v) => Ok(Duration::from_millis(v)),
            None => Ok(Duration::from_millis(default)),
        };
        let concurrency = match self.concurrency {
            None => 16,
            Some(n @ 1..=1024) => n,
            Some(n) => {
                return Err(format!(
                    "`sink.http.concurrency` must be 1 to 1024, got {n}"
                ))
            }
        };
        let backoff = positive(self.backoff_ms, 100, "backoff_ms")?;
        let max_backoff = positive(self.max_backoff_ms, 5000, "max_backoff_ms")?;
        if max_backoff < backoff {
            return Err("`sink.http.max_backoff_ms` is less than `backoff_ms`".into());
        }
        if !self.on_erasure.is_empty() && self.format != HttpFormat::CrmUpsert {
            return Err(
                "`sink.http.on_erasure` needs `format = \"crm-upsert\"` (records named by \
                 resource and id)"
                    .into(),
            );
        }
        let on_erasure = self
            .on_erasure
            .iter()
            .enumerate()
            .map(|(i, e)| e.resolve(&format!("sink.http.on_erasure[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HttpSinkSpec {
            url,
            format: self.format,
            headers,
            on_erasure,
            timeout: positive(self.timeout_ms, 10_000, "timeout_ms")?,
            retry_budget: Duration::from_millis(self.retry_budget_ms.unwrap_or(300_000)),
            backoff,
            max_backoff,
            concurrency,
        })
    }
}

/// Why `name` cannot name a route (`kind` = "route", at most 128
/// characters) or a plugin ("plugin", at most 64), if it cannot. Names
/// become file names (`plugins_dir/NAME.wasm`), log fields, metric labels
/// and header values, so they are letters, digits, `-` and `_` (and `.` in
/// route names): no path, no line break, nothing to escape.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let (max, dot) = if kind == "route" {
        (128, true)
    } else {
        (64, false)
    };
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || (dot && c == '.'));
    if ok {
        return Ok(());
    }
    let allowed = if dot {
        "letters, digits, '.', '-' or '_'"
    } else {
        "letters, digits, '-' or '_'"
    };
    Err(format!(
        "invalid {kind} name {name:?}: use 1 to {max} {allowed}"
    ))
}

/// Default size of a buffer sink.
pub const DEFAULT_BUFFER_CAPACITY: usize = 1000;

/// What to do when a plugin rejects a record or fails on it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorPolicyConfig {
    /// `"dead-letter"` (default when `dead_letter` is set) writes the record
    /// to the dead-letter topic and moves on; `"halt"` (default otherwise)
    /// stops the route before the record, so nothing is skipped.
    pub policy: Option<ErrorAction>,
    /// Retries of a `retryable` failure before the policy applies (default 3).
    pub max_retries: Option<u32>,
    /// First retry delay in milliseconds, doubled per retry (default 100).
    pub backoff_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorAction {
    DeadLetter,
    Halt,
}

fn default_plugins_dir() -> PathBuf {
    PathBuf::from("plugins")
}

fn empty_table() -> toml::Table {
    toml::Table::new()
}

/// A route with defaults applied and paths resolved: what the runtime uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    /// Empty for an HTTP-sourced route.
    pub topics: Vec<String>,
    /// Fed by an HTTP API instead of topics.
    pub http_source: bool,
    pub group: String,
    pub start_from: StartFrom,
    pub chain: Vec<ResolvedStep>,
    pub sink: Sink,
    pub outputs: BTreeMap<String, KafkaSink>,
    pub dead_letter: Option<KafkaSink>,
    pub on_error: ErrorAction,
    pub max_retries: u32,
    pub backoff: Duration,
    pub tuning: RouteTuning,
    pub paused: bool,
}

/// A chain step whose plugin file has been found.
#[derive(Clone, PartialEq)]
pub struct ResolvedStep {
    pub plugin: String,
    pub path: PathBuf,
    /// The step's config as a JSON string, ready for `init`.
    pub config_json: String,
}

/// Shows the size of the configuration, not its text: secrets are resolved
/// into it.
impl std::fmt::Debug for ResolvedStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedStep")
            .field("plugin", &self.plugin)
            .field("path", &self.path)
            .field(
                "config_json",
                &format_args!("<{} bytes>", self.config_json.len()),
            )
            .finish()
    }
}

/// The directory of a file's path, `.` for a bare file name.
fn path_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

impl Route {
    /// Every topic this route writes to.
    /// The scope the tokens this route's plugins make are bound to: its
    /// sink topic, where they can be read back; for a route whose sink is
    /// not a topic, `route:NAME` (no topic can be named so: `:` is not
    /// allowed in topic names), so that they open nowhere else.
    pub fn token_scope(&self) -> String {
        match &self.sink {
            Sink::Topic(topic) => topic.clone(),
            Sink::Buffer { .. } | Sink::Http(_) => format!("route:{}", self.name),
        }
    }

    pub fn output_topics(&self) -> impl Iterator<Item = &str> {
        let sink = match &self.sink {
            Sink::Topic(topic) => Some(topic.as_str()),
            Sink::Buffer { .. } | Sink::Http(_) => None,
        };
        sink.into_iter()
            .chain(self.outputs.values().map(|s| s.topic.as_str()))
            .chain(self.dead_letter.iter().map(|s| s.topic.as_str()))
    }
}

impl Config {
    /// Parse `text` as a routes file; `path` is used for messages and to
    /// resolve a relative `plugins_dir`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if config.plugins_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            config.plugins_dir = base.join(&config.plugins_dir);
        }
        Ok(config)
    }

    /// Read and parse a routes file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Check the routes and resolve them for the runtime. `path` is the
    /// routes file, for messages.
    pub fn resolve(&self, path: &Path) -> Result<Vec<Route>, ConfigError> {
        let path_of_file = path;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut routes = Vec::with_capacity(self.routes.len());
        for r in &self.routes {
            if r.name.is_empty() {
                return Err(invalid("a route has an empty `name`".into()));
            }
            check_name("route", &r.name).map_err(invalid)?;
            if !seen.insert(r.name.as_str()) {
                return Err(invalid(format!("route name `{}` is used twice", r.name)));
            }
            match (r.source.topics.is_empty(), r.source.http) {
                (true, false) => {
                    return Err(invalid(format!(
                        "route `{}`: `source.topics` is empty (give topics, or `http = true` \
                         for a route fed by an HTTP API)",
                        r.name
                    )))
                }
                (false, true) => {
                    return Err(invalid(format!(
                        "route `{}`: `source` has both `topics` and `http = true`; choose one",
                        r.name
                    )))
                }
                _ => {}
            }
            let sink = match (&r.sink.topic, &r.sink.buffer, r.sink.capacity, &r.sink.http) {
                (Some(topic), None, None, None) => Sink::Topic(topic.clone()),
                (None, None, None, Some(http)) => Sink::Http(
                    http.resolve(path_dir(path_of_file))
                        .map_err(|e| invalid(format!("route `{}`: {e}", r.name)))?,
                ),
                (None, Some(name), capacity, None) => {
                    let capacity = capacity.unwrap_or(DEFAULT_BUFFER_CAPACITY);
                    if capacity == 0 || name.is_empty() {
                        return Err(invalid(format!(
                            "route `{}`: a buffer sink needs a non-empty name and a capacity of at \
                             least 1",
                            r.name
                        )));
                    }
                    Sink::Buffer {
                        name: name.clone(),
                        capacity,
                    }
                }
                (_, None, Some(_), _) => {
                    return Err(invalid(format!(
                        "route `{}`: `sink.capacity` applies to a buffer sink only",
                        r.name
                    )))
                }
                _ => {
                    return Err(invalid(format!(
                        "route `{}`: `sink` needs exactly one of `topic`, `buffer` and `http`",
                        r.name
                    )))
                }
            };
            let mut chain = Vec::with_capacity(r.chain.len());
            for (i, step) in r.chain.iter().enumerate() {
                check_name("plugin", &step.plugin).map_err(|e| {
                    invalid(format!("route `{}`, chain step {}: {e}", r.name, i + 1))
                })?;
                let path = self.plugins_dir.join(format!("{}.wasm", step.plugin));
                if !path.is_file() {
                    return Err(invalid(format!(
                        "route `{}`, chain step {}: plugin `{}` not found: {} does not exist \
                         (build it with `switchyard plugin build` or check `plugins_dir`)",
                        r.name,
                        i + 1,
                        step.plugin,
                        path.display()
                    )));
                }
                let base = path_dir(path_of_file);
                let config = secrets::resolve_table(&step.config, base).map_err(|e| {
                    invalid(format!(
                        "route `{}`, chain step {} (`{}`): {e}",
                        r.name,
                        i + 1,
                        step.plugin
                    ))
                })?;
                let config_json =
                    serde_json::to_string(&config).expect("a TOML table always converts to JSON");
                chain.push(ResolvedStep {
                    plugin: step.plugin.clone(),
                    path,
                    config_json,
                });
            }
            let on_error = match (r.on_error.policy, &r.dead_letter) {
                (Some(ErrorAction::DeadLetter), None) => {
                    return Err(invalid(format!(
                        "route `{}`: `on_error.policy = \"dead-letter\"` needs a \
                         `dead_letter = {{ topic = \"...\" }}`",
                        r.name
                    )))
                }
                (Some(action), _) => action,
                (None, Some(_)) => ErrorAction::DeadLetter,
                (None, None) => ErrorAction::Halt,
            };
            routes.push(Route {
                name: r.name.clone(),
                topics: r.source.topics.clone(),
                http_source: r.source.http,
                group: r
                    .source
                    .group
                    .clone()
                    .unwrap_or_else(|| format!("switchyard-{}", r.name)),
                start_from: r.source.start_from,
                chain,
                sink,
                outputs: r.outputs.clone(),
                dead_letter: r.dead_letter.clone(),
                on_error,
                max_retries: r.on_error.max_retries.unwrap_or(3),
                backoff: Duration::from_millis(r.on_error.backoff_ms.unwrap_or(100)),
                tuning: RouteTuning {
                    batch_size: r.batch_size,
                    call_timeout_ms: r.call_timeout_ms,
                    memory_limit_mib: r.memory_limit_mib,
                }
                .or(&self.defaults),
                paused: r.paused,
            });
        }
        self.check_apis(&routes).map_err(invalid)?;
        Ok(routes)
    }

    /// The HTTP APIs name routes and buffers that must exist, as such.
    fn check_apis(&self, routes: &[Route]) -> Result<(), String> {
        self.http.check()?;
        let mut buffers = std::collections::BTreeSet::new();
        for r in routes {
            match (r.http_source, &r.sink) {
                (true, Sink::Buffer { .. }) => {
                    return Err(format!(
                        "route `{}`: a route fed by HTTP publishes to a topic; a buffer sink \
                         would answer 202 for events that no broker ever acknowledged",
                        r.name
                    ))
                }
                (true, Sink::Http(_)) => {
                    return Err(format!(
                        "route `{}`: a route fed by HTTP publishes to a topic; give the HTTP \
                         sink to a route that consumes that topic",
                        r.name
                    ))
                }
                _ => {}
            }
            if let Sink::Buffer { name, .. } = &r.sink {
                if !buffers.insert(name.as_str()) {
                    return Err(format!(
                        "buffer `{name}` is the sink of two routes; give each its own"
                    ));
                }
            }
        }
        let http_route = |api: &str, name: &str| {
            let field = if api == "ingest_api" {
                "routes"
            } else {
                "ingest_route"
            };
            match routes.iter().find(|r| r.name == name) {
            Some(r) if r.http_source => Ok(()),
            Some(_) => Err(format!(
                "`{api}.{field}`: route `{name}` is not fed by HTTP (set `source = {{ http = true }}`)"
            )),
            None => Err(format!("`{api}.{field}`: no route named `{name}`")),
        }
        };
        if let Some(api) = &self.events_api {
            http_route("events_api", &api.ingest_route)?;
            if !buffers.contains(api.recent_buffer.as_str()) {
                return Err(format!(
                    "`events_api.recent_buffer`: no route has the sink `{{ buffer = \"{}\" }}`",
                    api.recent_buffer
                ));
            }
            if api.public_reads && !api.read_tokens.is_empty() {
                return Err(
                    "`events_api.public_reads = true` and `events_api.read_tokens` contradict \
                     each other: reads either need a token or are public; keep one"
                        .into(),
                );
            }
            match api.max_limit {
                Some(1..=MAX_EVENTS_LIMIT) | None => {}
                Some(n) => {
                    return Err(format!(
                        "`events_api.max_limit` must be 1 to {MAX_EVENTS_LIMIT} (got {n})"
                    ))
                }
            }
        }
        if let Some(api) = &self.streams_api {
            if api.credentials.is_empty() {
                return Err("`streams_api.credentials` is empty: give at least one user".into());
            }
            if api.max_streams == Some(0) {
                return Err("`streams_api.max_streams` must be at least 1".into());
            }
        }
        if let Some(api) = &self.ingest_api {
            for name in &api.routes {
                http_route("ingest_api", name)?;
            }
            if api.tokens.is_empty() {
                return Err("`ingest_api.tokens` is empty: give at least one token".into());
            }
        }
        if let Some(n) = self.kafka.topic_partitions {
            if n < 1 {
                return Err(format!(
                    "`kafka.topic_partitions` must be at least 1 (got {n})"
                ));
            }
        }
        if let Some(subjects) = &self.subjects {
            if !matches!(&subjects.master_key, toml::Value::Table(_)) {
                return Err(
                    "`subjects.master_key` must be a secret reference ({ \"$env\" = \"NAME\" } \
                     or { \"$file\" = \"path\" }), never the key itself in the routes file"
                        .into(),
                );
            }
            if let Some(i) = subjects
                .other_master_keys
                .iter()
                .position(|k| !matches!(k, toml::Value::Table(_)))
            {
                return Err(format!(
                    "`subjects.other_master_keys[{i}]` must be a secret reference \
                     ({{ \"$env\" = \"NAME\" }} or {{ \"$file\" = \"path\" }}), never the key \
                     itself in the routes file"
                ));
            }
            if let Some(field) = &subjects.subject_field {
                if !field.starts_with('/') {
                    return Err(format!(
                        "`subjects.subject_field` must be a JSON Pointer such as \"/userId\" (got {field:?})"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[routes]]
        name = "r"
        source = { topics = ["in"] }
        sink = { topic = "out" }
    "#;

    #[test]
    fn minimal_route_gets_defaults() {
        let config = Config::parse(MINIMAL, Path::new("/etc/sy/routes.toml")).unwrap();
        assert_eq!(config.plugins_dir, Path::new("/etc/sy/plugins"));
        let routes = config.resolve(Path::new("routes.toml")).unwrap();
        let r = &routes[0];
        assert_eq!(r.group, "switchyard-r");
        assert_eq!(r.on_error, ErrorAction::Halt);
        assert_eq!(r.tuning.batch_size(), 256);
        assert_eq!(r.tuning.call_timeout(), Duration::from_secs(1));
        assert_eq!(r.start_from, StartFrom::Earliest);
    }

    #[test]
    fn kafka_properties_take_secret_references_and_plain_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "file-password\n").unwrap();
        let text = r#"
            [kafka.options]
            "security.protocol" = "SASL_SSL"
            "sasl.password" = { "$file" = "password" }
            [kafka.consumer]
            "session.timeout.ms" = 10000
            "enable.partition.eof" = false
        "#;
        let config = Config::parse(text, &dir.path().join("routes.toml")).unwrap();
        let properties = config.kafka.properties(dir.path()).unwrap();
        assert_eq!(properties.options["sasl.password"], "file-password");
        assert_eq!(properties.options["security.protocol"], "SASL_SSL");
        assert_eq!(properties.consumer["session.timeout.ms"], "10000");
        assert_eq!(properties.consumer["enable.partition.eof"], "false");
        let missing = r#"kafka.options = { "sasl.password" = { "$env" = "SWITCHYARD_TEST_UNSET_PASSWORD" } }"#;
        let err = Config::parse(missing, Path::new("x.toml"))
            .unwrap()
            .kafka
            .properties(dir.path())
            .unwrap_err();
        assert_eq!(
            err,
            "kafka.options.\"sasl.password\": environment variable `SWITCHYARD_TEST_UNSET_PASSWORD` is not set"
        );
        let list = r#"kafka.producer = { "linger.ms" = [1] }"#;
        let err = Config::parse(list, Path::new("x.toml"))
            .unwrap()
            .kafka
            .properties(dir.path())
            .unwrap_err();
        assert!(
            err.contains("must be a string, number, boolean or secret reference"),
            "{err}"
        );
    }

    #[test]
    fn dead_letter_topic_makes_dead_letter_the_default_policy() {
        let text = format!("{MINIMAL}\ndead_letter = {{ topic = \"dlq\" }}\n");
        let routes = Config::parse(&text, Path::new("x.toml"))
            .unwrap()
            .resolve(Path::new("x.toml"))
            .unwrap();
        assert_eq!(routes[0].on_error, ErrorAction::DeadLetter);
        assert_eq!(
            routes[0].output_topics().collect::<Vec<_>>(),
            vec!["out", "dlq"]
        );
    }

    #[test]
    fn route_tuning_overrides_defaults() {
        let text = format!(
            "[defaults]\nbatch_size = 8\ncall_timeout_ms = 50\n{MINIMAL}\nbatch_size = 4\n"
        );
        let routes = Config::parse(&text, Path::new("x.toml"))
            .unwrap()
            .resolve(Path::new("x.toml"))
            .unwrap();
        assert_eq!(routes[0].tuning.batch_size(), 4);
        assert_eq!(routes[0].tuning.call_timeout(), Duration::from_millis(50));
    }

    #[test]
    fn unknown_field_is_named() {
        let text = MINIMAL.replace("sink =", "snik =");
        let err = Config::parse(&text, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `snik`"), "{err}");
        assert!(err.contains("x.toml"), "{err}");
    }

    #[test]
    fn dead_letter_policy_without_topic_is_refused() {
        let text = format!("{MINIMAL}\non_error = {{ policy = \"dead-letter\" }}\n");
        let err = Config::parse(&text, Path::new("x.toml"))
            .unwrap()
            .resolve(Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a `dead_letter"), "{err}");
    }

    #[test]
    fn duplicate_route_names_are_refused() {
        let text = format!("{MINIMAL}{MINIMAL}");
        let err = Config::parse(&text, Path::new("x.toml"))
            .unwrap()
            .resolve(Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("route name `r` is used twice"), "{err}");
    }

    #[test]
    fn missing_plugin_names_the_file() {
        let text = format!("{MINIMAL}\nchain = [{{ plugin = \"nope\" }}]\n");
        let err = Config::parse(&text, Path::new("/tmp/x.toml"))
            .unwrap()
            .resolve(Path::new("/tmp/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("plugin `nope` not found"), "{err}");
        assert!(err.contains("/tmp/plugins/nope.wasm"), "{err}");
    }

    #[test]
    fn http_limits_have_defaults_and_zero_is_refused() {
        let config = Config::parse(MINIMAL, Path::new("x.toml")).unwrap();
        assert_eq!(config.http.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(config.http.body_read_timeout(), Duration::from_secs(30));
        assert_eq!(config.http.max_connections(), 1024);
        let text = format!("[http]\nbody_read_timeout_ms = 2500\nmax_connections = 8\n{MINIMAL}");
        let config = Config::parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(config.http.body_read_timeout(), Duration::from_millis(2500));
        assert_eq!(config.http.max_connections(), 8);
        config.resolve(Path::new("x.toml")).unwrap();
        let zero = format!("[http]\nbody_read_timeout_ms = 0\n{MINIMAL}");
        let err = Config::parse(&zero, Path::new("x.toml"))
            .unwrap()
            .resolve(Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`http.body_read_timeout_ms` must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn http_sourced_routes_and_buffer_sinks_resolve() {
        let text = r#"
            [events_api]
            ingest_route = "in"
            recent_buffer = "recent"

            [[routes]]
            name = "in"
            source = { http = true }
            sink = { topic = "events" }

            [[routes]]
            name = "keep"
            source = { topics = ["events"] }
            sink = { buffer = "recent" }
        "#;
        let config = Config::parse(text, Path::new("x.toml")).unwrap();
        let routes = config.resolve(Path::new("x.toml")).unwrap();
        assert!(routes[0].http_source && routes[0].topics.is_empty());
        assert_eq!(routes[0].output_topics().collect::<Vec<_>>(), ["events"]);
        assert_eq!(
            routes[1].sink,
            Sink::Buffer {
                name: "recent".into(),
                capacity: DEFAULT_BUFFER_CAPACITY
            }
        );
        assert_eq!(routes[1].output_topics().count(), 0);
    }

    #[test]
    fn a_buffer_feeds_one_route_only() {
        let route = |name: &str| {
            format!("[[routes]]\nname = \"{name}\"\nsource = {{ topics = [\"a\"] }}\nsink = {{ buffer = \"b\", capacity = 5 }}\n")
        };
        let text = format!("{}{}", route("one"), route("two"));
        let err = Config::parse(&text, Path::new("x.toml"))
            .unwrap()
            .resolve(Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("buffer `b` is the sink of two routes"),
            "{err}"
        );
        let zero = route("one").replace("capacity = 5", "capacity = 0");
        let err = Config::parse(&zero, Path::new("x.toml"))
            .unwrap()
            .resolve(Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a capacity of at least 1"), "{err}");
    }

    #[test]
    fn http_sinks_resolve_with_defaults_and_secret_references() {
        std::env::set_var("SWITCHYARD_TEST_CRM_URL", "http://user:pw@crm:5050/api");
        std::env::set_var("SWITCHYARD_TEST_CRM_TOKEN", "Bearer s3cret-token");
        let text = r#"
            [[routes]]
            name = "crm"
            source = { topics = ["in"] }
            sink = { http = { url = { "$env" = "SWITCHYARD_TEST_CRM_URL" }, format = "crm-upsert", headers = { Authorization = { "$env" = "SWITCHYARD_TEST_CRM_TOKEN" } } } }
        "#;
        let routes = Config::parse(text, Path::new("x.toml"))
            .unwrap()
            .resolve(Path::new("x.toml"))
            .unwrap();
        let Sink::Http(spec) = &routes[0].sink else {
            panic!("not an HTTP sink: {:?}", routes[0].sink);
        };
        assert_eq!(spec.url.as_str(), "http://user:pw@crm:5050/api");
        assert_eq!(spec.format, HttpFormat::CrmUpsert);
        assert_eq!(
            spec.headers,
            [("Authorization".to_owned(), "Bearer s3cret-token".to_owned())]
        );
        assert_eq!(spec.timeout, Duration::from_secs(10));
        assert_eq!(spec.retry_budget, Duration::from_secs(300));
        assert_eq!(spec.concurrency, 16);
        assert_eq!(routes[0].output_topics().count(), 0);
        // Neither the password in the URL nor the header value is shown.
        let shown = format!("{spec:?}");
        assert!(
            !shown.contains("pw") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("Authorization"), "{shown}");
    }
}
