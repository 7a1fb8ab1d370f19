//! Starting the platform: routes file, Kafka, plugins, HTTP, routes; and
//! stopping it cleanly on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::Producer as _;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::config::{secrets, Config, IngestApiConfig, StreamsApiConfig, SubjectsConfig};
use crate::control::{watch, ControlPlane, Deps};
use crate::http::events::EventsApi;
use crate::http::ingest::IngestApi;
use crate::http::streams::StreamsHttp;
use crate::http::{AdminCredential, AdminToken, AppState, KafkaInfo};
use crate::kafka::embedded::EmbeddedBroker;
use crate::kafka::topics::{TopicAdmin, TopicSpec};
use crate::kafka::{KafkaSettings, LoggingContext};
use crate::plugin::PluginRuntime;
use crate::route::buffer::Buffers;
use crate::route::status::StatusBoard;
use crate::route::Producer;
use crate::streams::StreamStore;
use crate::subjects::crypto::MasterKey;
use crate::subjects::keys::KeyStore;
use crate::subjects::keys::MasterKeys;
use crate::subjects::{self, Subjects};

/// What `switchyard run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Overrides the routes file's `kafka.brokers`.
    pub brokers: Option<String>,
    pub http: SocketAddr,
    pub cache_dir: PathBuf,
    /// Credentials of admin changes; without one they are refused.
    pub admin_token: AdminCredential,
}

/// Run until SIGTERM or Ctrl-C, then drain and commit.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    check_admin_exposure(&opts)?;
    let config = Config::load(&opts.config)?;
    let routes = config.resolve(&opts.config)?;
    let listeners: Vec<SocketAddr> = std::iter::once(opts.http)
        .chain(config.http.public)
        .collect();
    let events_api = EventsApi::open(config.events_api.as_ref(), &opts.config, &listeners)?;
    let streams_credentials = match &config.streams_api {
        Some(api) => Some(crate::http::streams::resolve_credentials(
            api,
            &opts.config,
        )?),
        None => None,
    };
    // The ports first: an instance that cannot serve must exit before it
    // joins a consumer group and takes partitions from the others.
    let listener = crate::http::serve::bind(opts.http, "--http").await?;
    let public_listener = match config.http.public {
        Some(addr) => Some((addr, crate::http::serve::bind(addr, "`http.public`").await?)),
        None => None,
    };

    // Kafka: a real cluster when one is named, else the development broker.
    let brokers = opts
        .brokers
        .clone()
        .or_else(|| config.kafka.brokers.clone());
    let (embedded, brokers) = match brokers {
        Some(b) => (None, b),
        None => {
            // Once each: one route's sink is often another's source.
            let topics: std::collections::BTreeSet<&str> = routes
                .iter()
                .flat_map(|r| r.topics.iter().map(String::as_str).chain(r.output_topics()))
                .collect();
            let broker = EmbeddedBroker::start(topics)?;
            let addr = broker.bootstrap_servers();
            warn_embedded(&addr);
            (Some(broker), addr)
        }
    };
    let properties = config
        .kafka
        .properties(opts.config.parent().unwrap_or(std::path::Path::new(".")))
        .map_err(|e| anyhow::anyhow!("invalid routes file {}: {e}", opts.config.display()))?;
    let kafka = KafkaSettings {
        brokers: brokers.clone(),
        options: properties.options,
        consumer_options: properties.consumer,
        producer_options: properties.producer,
        embedded: embedded.is_some(),
    };
    tracing::info!(brokers = %kafka.brokers, routes = routes.len(), config = %opts.config.display(), "starting switchyard");

    let board = StatusBoard::default();
    let producer = create_producer(&kafka)?;
    let api_producer = create_api_producer(&kafka)?;
    let topic_admin = TopicAdmin::new(&kafka, embedded.as_ref())?;
    // Before any plugin runs: plugins encrypt and decrypt through it.
    let subjects = match &config.subjects {
        Some(settings) => Some(Arc::new(
            open_subjects(settings, &opts.config, &kafka, &api_producer, &topic_admin).await?,
        )),
        None => None,
    };
    let mut runtime = PluginRuntime::new(opts.cache_dir.clone())?;
    if let Some(subjects) = &subjects {
        runtime = runtime.with_subjects(subjects.keys.clone());
    }
    let ingest_api = match &config.ingest_api {
        Some(api) => Some(Arc::new(resolve_ingest_api(api, &opts.config)?)),
        None => None,
    };
    let shutdown = CancellationToken::new();
    let buffers = Buffers::default();
    // Plugins may be added later, by file or through the admin API.
    std::fs::create_dir_all(&config.plugins_dir).with_context(|| {
        format!(
            "cannot create the plugins directory {}",
            config.plugins_dir.display()
        )
    })?;
    let control = ControlPlane::new(Deps {
        runtime,
        kafka: kafka.clone(),
        producer: producer.clone(),
        board: board.clone(),
        shutdown: shutdown.clone(),
        config_path: opts.config.clone(),
        plugins_dir: config.plugins_dir.clone(),
        buffers: buffers.clone(),
        api_settings: config.api_settings(),
        kafka_config: config.kafka.clone(),
        // One per plugins directory: processes sharing a cache directory
        // keep their copies apart.
        serving_dir: opts.cache_dir.join("serving").join(
            &crate::plugin::cache::content_hash(
                std::fs::canonicalize(&config.plugins_dir)
                    .unwrap_or_else(|_| config.plugins_dir.clone())
                    .as_os_str()
                    .as_encoded_bytes(),
            )[..16],
        ),
        health: config
            .health
            .settings()
            .map_err(|e| anyhow::anyhow!("invalid routes file {}: {e}", opts.config.display()))?,
    });
    // HTTP APIs publish to the sinks of HTTP-sourced routes: those topics
    // must exist before the first request, for the routes that read them
    // to find them when they start.
    for route in routes.iter().filter(|r| r.http_source) {
        for topic in route.output_topics() {
            topic_admin
                .ensure(&TopicSpec {
                    name: topic,
                    partitions: config.kafka.topic_partitions,
                    ..TopicSpec::default()
                })
                .await?;
        }
    }
    control.start(routes).await?;

    let streams_api = match (&config.streams_api, streams_credentials) {
        (Some(api), Some(credentials)) => Some(Arc::new(
            open_streams_api(api, &credentials, &kafka, &api_producer, topic_admin).await?,
        )),
        _ => None,
    };

    tracing::info!(addr = %opts.http, "HTTP API listening (GET /healthz, /metrics, /admin)");
    watch::plugins(control.clone(), shutdown.clone()).with_context(|| {
        format!(
            "cannot watch the plugins directory {}",
            config.plugins_dir.display()
        )
    })?;
    watch::routes_file(control.clone(), shutdown.clone())
        .with_context(|| format!("cannot watch the routes file {}", opts.config.display()))?;
    opts.admin_token.follow_file(shutdown.clone());
    if !opts.admin_token.is_set() {
        tracing::warn!("no admin token configured: admin changes are refused; set SWITCHYARD_ADMIN_TOKEN or --admin-token-file");
    }
    let app_state = AppState {
        board: board.clone(),
        kafka: KafkaInfo {
            brokers: kafka.brokers.clone(),
            embedded: kafka.embedded,
        },
        control: control.clone(),
        admin_token: opts.admin_token.clone(),
        producer: api_producer.clone(),
        buffers,
        events_api,
        streams_api,
        ingest_api,
        subjects,
    };
    if let Some(subjects) = &app_state.subjects {
        tokio::spawn(subjects::purge_erased_from_buffers(
            subjects.keys.clone(),
            app_state.buffers.clone(),
            shutdown.clone(),
        ));
    }
    let app = crate::http::app(app_state.clone());
    let limits = crate::http::serve::Limits::of(&config.http);
    let public = match public_listener {
        Some((addr, listener)) => {
            tracing::info!(%addr, "public HTTP API listening (event APIs, /openapi.json, /swagger)");
            let public_app = crate::http::public_app(app_state.clone());
            Some(tokio::spawn(crate::http::serve::serve(
                listener,
                public_app,
                limits,
                "public",
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let http = tokio::spawn(crate::http::serve::serve(
        listener,
        app,
        limits,
        "main",
        shutdown.clone(),
    ));

    wait_for_signal().await;
    tracing::info!("shutting down: draining in-flight records and committing offsets");
    shutdown.cancel();
    control.stop_all().await;
    let flush = tokio::task::spawn_blocking(move || {
        api_producer
            .flush(Duration::from_secs(10))
            .and(producer.flush(Duration::from_secs(10)))
    });
    if let Ok(Err(e)) = flush.await {
        tracing::warn!(error = %e, "producer flush incomplete");
    }
    let _ = http.await;
    if let Some(public) = public {
        let _ = public.await;
    }
    drop(embedded);
    tracing::info!("switchyard stopped");
    Ok(())
}

/// The streams API's store in Kafka, with its users' credentials.
async fn open_streams_api(
    api: &StreamsApiConfig,
    credentials: &[(String, String)],
    kafka: &KafkaSettings,
    producer: &Producer,
    topic_admin: TopicAdmin,
) -> anyhow::Result<StreamsHttp> {
    let store = StreamStore::open(api, kafka, producer.clone(), topic_admin)
        .await
        .context("starting the streams API")?;
    Ok(StreamsHttp::new(store, credentials, api.max_body_bytes))
}

/// The subject key store on its topic (made if missing), with the master
/// key from its secret reference. Without the key, switchyard does not
/// start: data it would encrypt could never be read again.
async fn open_subjects(
    settings: &SubjectsConfig,
    config_path: &std::path::Path,
    kafka: &KafkaSettings,
    producer: &Producer,
    topic_admin: &TopicAdmin,
) -> anyhow::Result<Subjects> {
    let base = config_path.parent().unwrap_or(std::path::Path::new("."));
    let master = |reference: &toml::Value, at: &str| -> anyhow::Result<MasterKey> {
        let text = secrets::resolve_string(reference, at, base).map_err(|e| {
            anyhow::anyhow!(
                "invalid routes file {}: {e}. Subject encryption needs its master key: 32 \
                 random bytes as 64 hex digits, e.g. `openssl rand -hex 32`; keep it safe, \
                 data encrypted under it cannot be read without it",
                config_path.display()
            )
        })?;
        MasterKey::parse(&text).map_err(|e| {
            anyhow::anyhow!("invalid routes file {}: {at}: {e}", config_path.display())
        })
    };
    let masters = MasterKeys {
        current: master(&settings.master_key, "subjects.master_key")?,
        others: settings
            .other_master_keys
            .iter()
            .enumerate()
            .map(|(i, k)| master(k, &format!("subjects.other_master_keys[{i}]")))
            .collect::<anyhow::Result<_>>()?,
    };
    let keys_topic = settings
        .keys_topic
        .clone()
        .unwrap_or_else(|| subjects::DEFAULT_KEYS_TOPIC.to_owned());
    let audit_topic = settings
        .audit_topic
        .clone()
        .unwrap_or_else(|| subjects::DEFAULT_AUDIT_TOPIC.to_owned());
    // An existing key topic's settings, checked before anything uses it.
    // Read where the cluster lets us (DescribeConfigs): a cluster that does
    // not is warned about, not refused; a topic that does not exist yet
    // (or not for the broker answering) is created below with the right
    // ones.
    match topic_admin.settings(&keys_topic).await {
        Ok(Some(settings)) if settings.contains_key("cleanup.policy") => {
            for warning in subjects::check_keys_topic(&keys_topic, &settings)
                .map_err(|e| anyhow::anyhow!("refusing to start: {e}"))?
            {
                tracing::warn!(topic = %keys_topic, "the key topic's settings: {warning}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(
            topic = %keys_topic,
            "cannot read the key topic's settings, so they are not checked (it must be \
             compacted, never deleted: see docs/runbooks.md): {e:#}"
        ),
    }
    topic_admin
        .ensure(&TopicSpec {
            name: &keys_topic,
            partitions: Some(1),
            replication: settings.replication_factor,
            config: subjects::KEYS_TOPIC_CONFIG,
        })
        .await?;
    topic_admin
        .ensure(&TopicSpec {
            name: &audit_topic,
            partitions: Some(1),
            replication: settings.replication_factor,
            config: &[],
        })
        .await?;
    let keys = KeyStore::open(&masters, kafka, &keys_topic, producer.clone())
        .await
        .with_context(|| format!("opening the subject keys of `{keys_topic}`"))?
        .with_new_subjects_per_second(
            settings
                .new_subjects_per_second
                .unwrap_or(subjects::keys::DEFAULT_NEW_SUBJECTS_PER_SECOND),
        );
    tracing::info!(
        topic = %keys_topic,
        keys = keys.len(),
        master_key = %masters.current.fingerprint(),
        "subject key store ready"
    );
    Ok(Subjects {
        keys: Arc::new(keys),
        audit_topic,
        keys_topic,
        subject_field: settings
            .subject_field
            .clone()
            .unwrap_or_else(|| subjects::DEFAULT_SUBJECT_FIELD.to_owned()),
        erase_topics: settings.erase_topics.clone(),
        after_erasure: settings.after_erasure,
    })
}

/// The ingest API with its tokens read from their secret references.
fn resolve_ingest_api(
    api: &IngestApiConfig,
    config_path: &std::path::Path,
) -> anyhow::Result<IngestApi> {
    let base = config_path.parent().unwrap_or(std::path::Path::new("."));
    let tokens = api
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = format!("ingest_api.tokens[{i}]");
            let invalid = |e: String| {
                anyhow::anyhow!("invalid routes file {}: {at}: {e}", config_path.display())
            };
            let token = secrets::resolve_string(t, &at, base).map_err(invalid)?;
            AdminToken::new(&token).map_err(|e| invalid(e.replace("admin token", "token")))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(IngestApi {
        routes: api.routes.clone(),
        tokens,
        max_body_bytes: api
            .max_body_bytes
            .unwrap_or(crate::http::ingest::DEFAULT_MAX_BODY),
    })
}

/// Refuse to serve the admin API beyond this machine without credentials.
fn check_admin_exposure(opts: &RunOptions) -> anyhow::Result<()> {
    if !opts.admin_token.is_set() && !opts.http.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve the admin API on {} (not a loopback address) without an admin \
             token: set SWITCHYARD_ADMIN_TOKEN or --admin-token-file, or listen on 127.0.0.1",
            opts.http
        );
    }
    Ok(())
}

fn warn_embedded(addr: &str) {
    tracing::warn!(
        brokers = %addr,
        "DEVELOPMENT MODE: no Kafka brokers configured, so switchyard started an in-memory \
         broker at {addr}. Data lives in memory only and is LOST when switchyard exits. \
         Set --brokers, SWITCHYARD_BROKERS or `kafka.brokers` in the routes file to use a \
         real cluster."
    );
}

/// The producer of routes: throughput first (records wait up to `linger`
/// to share a batch).
fn create_producer(kafka: &KafkaSettings) -> anyhow::Result<Producer> {
    producer_with_linger(kafka, "producer", crate::kafka::ROUTE_PRODUCER_LINGER_MS)
}

/// The producer of the HTTP APIs: a client waits for each record's
/// acknowledgement, so records are sent at once; concurrent requests still
/// share batches (while earlier ones are in flight).
fn create_api_producer(kafka: &KafkaSettings) -> anyhow::Result<Producer> {
    producer_with_linger(kafka, "api producer", 0)
}

fn producer_with_linger(
    kafka: &KafkaSettings,
    role: &str,
    linger_ms: u32,
) -> anyhow::Result<Producer> {
    let mut config = kafka.client_config();
    for (key, value) in crate::kafka::PRODUCER_SETTINGS {
        config.set(*key, *value);
    }
    config.set("linger.ms", linger_ms.to_string());
    // The operator's settings win.
    for (key, value) in &kafka.producer_options {
        config.set(key, value);
    }
    config
        .create_with_context(LoggingContext { role: role.into() })
        .with_context(|| format!("creating the Kafka {role}"))
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
