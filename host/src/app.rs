//! Starting the platform: routes file, Kafka, plugins, HTTP, routes; and
//! stopping it cleanly on SIGTERM or Ctrl-C.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::Producer as _;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Route};
use crate::control::PluginCatalog;
use crate::http::{AdminToken, AppState, KafkaInfo};
use crate::kafka::embedded::EmbeddedBroker;
use crate::kafka::{KafkaSettings, LoggingContext};
use crate::plugin::cache::CacheOutcome;
use crate::plugin::pool::Limits;
use crate::plugin::{InstancePool, LoadedPlugin, PluginRuntime};
use crate::route::chain::Chain;
use crate::route::status::StatusBoard;
use crate::route::{self, Producer, RouteRuntime};

/// What `switchyard run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Overrides the routes file's `kafka.brokers`.
    pub brokers: Option<String>,
    pub http: SocketAddr,
    pub cache_dir: PathBuf,
    /// Credentials of admin changes; without one they are refused.
    pub admin_token: Option<AdminToken>,
}

/// Run until SIGTERM or Ctrl-C, then drain and commit.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    check_admin_exposure(&opts)?;
    let config = Config::load(&opts.config)?;
    let routes = config.resolve(&opts.config)?;

    // Kafka: a real cluster when one is named, else the development broker.
    let brokers = opts
        .brokers
        .clone()
        .or_else(|| config.kafka.brokers.clone());
    let (embedded, brokers) = match brokers {
        Some(b) => (None, b),
        None => {
            let topics: Vec<&str> = routes
                .iter()
                .flat_map(|r| r.topics.iter().map(String::as_str).chain(r.output_topics()))
                .collect();
            let broker = EmbeddedBroker::start(topics)?;
            let addr = broker.bootstrap_servers();
            warn_embedded(&addr);
            (Some(broker), addr)
        }
    };
    let kafka = KafkaSettings {
        brokers: brokers.clone(),
        options: config.kafka.options.clone(),
        consumer_options: config.kafka.consumer.clone(),
        producer_options: config.kafka.producer.clone(),
        embedded: embedded.is_some(),
    };
    tracing::info!(brokers = %kafka.brokers, routes = routes.len(), config = %opts.config.display(), "starting switchyard");

    let runtime = PluginRuntime::new(opts.cache_dir.clone())?;
    let board = StatusBoard::default();
    let (runtimes, loaded) = build_routes(&runtime, &routes, &board)?;
    let producer = create_producer(&kafka)?;

    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", opts.http))?;
    tracing::info!(addr = %opts.http, "HTTP API listening (GET /healthz)");
    let shutdown = CancellationToken::new();
    let catalog = PluginCatalog::new(
        runtime.clone(),
        config.plugins_dir.clone(),
        &loaded,
        runtimes.clone(),
    );
    // Plugins may be added later, by file or through the admin API.
    std::fs::create_dir_all(&config.plugins_dir).with_context(|| {
        format!(
            "cannot create the plugins directory {}",
            config.plugins_dir.display()
        )
    })?;
    crate::control::watch::spawn(catalog.clone(), shutdown.clone()).with_context(|| {
        format!(
            "cannot watch the plugins directory {}",
            config.plugins_dir.display()
        )
    })?;
    if opts.admin_token.is_none() {
        tracing::warn!("no admin token configured: admin changes (plugin uploads) are refused; set SWITCHYARD_ADMIN_TOKEN or --admin-token-file");
    }
    let app = crate::http::app(AppState {
        board: board.clone(),
        kafka: KafkaInfo {
            brokers: kafka.brokers.clone(),
            embedded: kafka.embedded,
        },
        catalog,
        admin_token: opts.admin_token.clone(),
    });
    let http_stop = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_stop.cancelled().await })
            .await
    });

    let tasks: Vec<_> = runtimes
        .into_iter()
        .map(|rt| {
            tokio::spawn(route::run(
                rt,
                kafka.clone(),
                producer.clone(),
                shutdown.clone(),
            ))
        })
        .collect();

    wait_for_signal().await;
    tracing::info!("shutting down: draining in-flight records and committing offsets");
    shutdown.cancel();
    futures::future::join_all(tasks).await;
    let flush = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10)));
    if let Ok(Err(e)) = flush.await {
        tracing::warn!(error = %e, "producer flush incomplete");
    }
    let _ = http.await;
    drop(embedded);
    tracing::info!("switchyard stopped");
    Ok(())
}

/// Refuse to serve the admin API beyond this machine without credentials.
fn check_admin_exposure(opts: &RunOptions) -> anyhow::Result<()> {
    if opts.admin_token.is_none() && !opts.http.ip().is_loopback() {
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

/// Load each plugin once, then give every route step its own instance
/// pool (its own configuration and state).
fn build_routes(
    runtime: &PluginRuntime,
    routes: &[Route],
    board: &StatusBoard,
) -> anyhow::Result<(Vec<Arc<RouteRuntime>>, Vec<LoadedPlugin>)> {
    let mut loaded: HashMap<&Path, LoadedPlugin> = HashMap::new();
    let mut out = Vec::with_capacity(routes.len());
    for route in routes {
        let mut pools = Vec::with_capacity(route.chain.len());
        for (i, step) in route.chain.iter().enumerate() {
            let context = || {
                format!(
                    "route `{}`, chain step {} (`{}`)",
                    route.name,
                    i + 1,
                    step.plugin
                )
            };
            let plugin = match loaded.get(step.path.as_path()) {
                Some(p) => p.clone(),
                None => {
                    let started = std::time::Instant::now();
                    let p = runtime.load(&step.path).with_context(context)?;
                    tracing::info!(
                        plugin = %p.version_tag(),
                        compiled = p.cache == CacheOutcome::Compiled,
                        elapsed = ?started.elapsed(),
                        "plugin loaded"
                    );
                    loaded.insert(step.path.as_path(), p.clone());
                    p
                }
            };
            let limits = Limits {
                call_timeout: route.tuning.call_timeout(),
                memory_bytes: route.tuning.memory_limit_bytes(),
            };
            let pool = InstancePool::new(
                runtime.clone(),
                plugin,
                step.config_json.clone(),
                &route.name,
                limits,
            )
            .with_context(context)?;
            pools.push(pool);
        }
        let outputs = route
            .outputs
            .iter()
            .map(|(name, sink)| (name.clone(), sink.topic.clone()))
            .collect();
        let chain = Chain::new(pools, &route.sink.topic, &outputs);
        let entry = board.register(&route.name, chain.versions().to_owned());
        out.push(Arc::new(RouteRuntime::new(route.clone(), chain, entry)));
    }
    Ok((out, loaded.into_values().collect()))
}

fn create_producer(kafka: &KafkaSettings) -> anyhow::Result<Producer> {
    let mut config = kafka.client_config();
    config
        // Per-partition order and no duplicates from the producer's own
        // retries.
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    for (key, value) in &kafka.producer_options {
        config.set(key, value);
    }
    config
        .create_with_context(LoggingContext {
            role: "producer".into(),
            lag_of_route: None,
        })
        .context("creating the Kafka producer")
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
