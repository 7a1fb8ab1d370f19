//! Running routes, and changing them while the others run.
//!
//! The routes file is the one source of truth. An admin change edits it
//! (see [`super::routes_file`]) and then brings the running routes in line
//! with it, as a change of the file on disk does: routes that are new
//! start, routes that are gone stop, and a route whose settings changed is
//! rebuilt, stopped (its in-flight records drained and offsets committed),
//! and started again on the same consumer group, so nothing is lost or
//! skipped. Every new chain is built and `init`-ed before anything stops:
//! a change that cannot start is refused and the old routes keep running.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::routes_file::{self, EditError};
use super::ControlPlane;
use crate::config::{Config, Route, Sink};
use crate::plugin::pool::{Limits, RouteScope};
use crate::plugin::InstancePool;
use crate::route::chain::{Chain, Destination};
use crate::route::http_sink::HttpSink;
use crate::route::status::RouteState;
use crate::route::{self, RouteRuntime};

/// A route this process knows: its runtime, and its task unless paused.
pub(super) struct LiveRoute {
    rt: Arc<RouteRuntime>,
    task: Option<(CancellationToken, JoinHandle<()>)>,
    /// Ends the route's health monitor when the route is dropped.
    _monitor: Option<tokio_util::sync::DropGuard>,
}

/// Why a route change was not made. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum RouteChangeError {
    #[error("no route named `{0}`")]
    NotFound(String),
    #[error("a route named `{0}` already exists")]
    Exists(String),
    /// The route or the resulting routes file is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Valid, but it cannot start: a plugin refused its configuration or
    /// cannot be loaded.
    #[error("{0}")]
    CannotStart(String),
    /// The routes file could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl From<EditError> for RouteChangeError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::NotFound(name) => RouteChangeError::NotFound(name),
            EditError::Exists(name) => RouteChangeError::Exists(name),
            EditError::Invalid(message) | EditError::File(message) => {
                RouteChangeError::Invalid(message)
            }
            EditError::Unsupported(message) => RouteChangeError::Io(message),
        }
    }
}

/// What bringing the routes in line did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Applied {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
}

impl ControlPlane {
    /// Start `routes` at launch. A route that cannot be built from the
    /// plugins directory is built from the last versions of its plugins
    /// that served, when they are kept; otherwise it fails the launch,
    /// naming the route and step.
    pub async fn start(&self, routes: Vec<Route>) -> anyhow::Result<()> {
        let _one_change_at_a_time = self.inner.changes.lock().await;
        let this = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            routes
                .into_iter()
                .map(|route| {
                    let chain = match this.build_chain(&route) {
                        Ok(chain) => chain,
                        Err(e) => {
                            let plugins: Vec<String> =
                                route.chain.iter().map(|s| s.plugin.clone()).collect();
                            if !this.fall_back(&plugins, &format!("{e:#}")) {
                                return Err(e);
                            }
                            this.build_chain(&route)?
                        }
                    };
                    this.keep_serving_copies(&chain.plugins());
                    Ok((route, chain))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await
        .expect("building routes panicked")?;
        for rt in built {
            self.launch(rt);
        }
        Ok(())
    }

    /// Stop every route (drain, commit) and wait for them.
    pub async fn stop_all(&self) {
        let _one_change_at_a_time = self.inner.changes.lock().await;
        let live: Vec<LiveRoute> = std::mem::take(&mut *self.routes()).into_values().collect();
        futures::future::join_all(live.into_iter().map(stop)).await;
    }

    /// The runtimes of every known route, paused ones included.
    pub(super) fn live_runtimes(&self) -> Vec<Arc<RouteRuntime>> {
        self.routes().values().map(|l| l.rt.clone()).collect()
    }

    /// The HTTP sinks of the routes known here (running or paused) whose
    /// endpoints keep copies that erasing a subject overwrites.
    pub fn erasure_sinks(&self) -> Vec<Arc<HttpSink>> {
        self.live_runtimes()
            .iter()
            .filter_map(|rt| match rt.chain().sink() {
                Destination::Http(sink) if sink.erases() => Some(sink.clone()),
                _ => None,
            })
            .collect()
    }

    /// The runtime of route `name`, if it is known (running or paused).
    pub fn route(&self, name: &str) -> Option<Arc<RouteRuntime>> {
        self.routes().get(name).map(|l| l.rt.clone())
    }

    /// Why the routes file on disk is not what runs, if it is not.
    pub fn routes_file_refused(&self) -> Option<String> {
        self.inner.routes_file_refused.lock().expect("lock").clone()
    }

    /// Add a route (as JSON, as in the routes file).
    pub async fn create_route(&self, route: &Value) -> Result<Applied, RouteChangeError> {
        self.edit(|text| routes_file::add_route(text, route)).await
    }

    /// Replace route `name` by `route`.
    pub async fn replace_route(
        &self,
        name: &str,
        route: &Value,
    ) -> Result<Applied, RouteChangeError> {
        self.edit(|text| routes_file::replace_route(text, name, route))
            .await
    }

    pub async fn delete_route(&self, name: &str) -> Result<Applied, RouteChangeError> {
        self.edit(|text| routes_file::remove_route(text, name))
            .await
    }

    /// Pause or resume route `name`. Resuming a route halted by its error
    /// policy or a fault starts it again, from its group's committed
    /// offsets, with the current chain: the record it halted on is read
    /// again (after a fix, it goes through).
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<Applied, RouteChangeError> {
        let mut applied = self
            .edit(|text| routes_file::set_paused(text, name, paused))
            .await?;
        if !paused && !applied.restarted.iter().any(|r| r == name) {
            if let Some(rt) = self.route(name) {
                if rt.restart_if_halted() {
                    tracing::info!(route = name, "halted route resumed by an operator");
                    applied.restarted.push(name.to_owned());
                }
            }
        }
        Ok(applied)
    }

    /// Bring the running routes in line with the routes file on disk (after
    /// it changed). A file that is invalid, or whose routes cannot start, is
    /// refused and logged; the routes keep running as they are.
    pub async fn reload_routes_file(&self) -> Result<Applied, RouteChangeError> {
        let _one_change_at_a_time = self.inner.changes.lock().await;
        let result = match self.read_routes_file().await {
            Ok(text) => self.apply_text(&text).await,
            Err(e) => Err(e),
        };
        let mut refused = self.inner.routes_file_refused.lock().expect("lock");
        match &result {
            Ok(applied) => {
                *refused = None;
                if *applied != Applied::default() {
                    tracing::info!(?applied, "routes file change applied");
                }
            }
            Err(e) => {
                tracing::error!(
                    "routes file change refused; the routes keep running as they were: {e}"
                );
                *refused = Some(e.to_string());
            }
        }
        result
    }

    /// Edit the routes file with `change`: write the result, then apply it;
    /// if it does not apply, put the file back as it was. Either both the
    /// file and the running routes change, or neither does.
    async fn edit(
        &self,
        change: impl FnOnce(&str) -> Result<String, EditError>,
    ) -> Result<Applied, RouteChangeError> {
        let _one_change_at_a_time = self.inner.changes.lock().await;
        let text = self.read_routes_file().await?;
        let edited = change(&text)?;
        // Parsed before anything is written: an invalid route is refused
        // without touching the file.
        let path = self.config_path().to_owned();
        Config::parse(&edited, &path).map_err(|e| RouteChangeError::Invalid(e.to_string()))?;
        self.write_routes_file(edited.clone()).await.map_err(|e| {
            RouteChangeError::Io(format!(
                "the routes file was not written, nothing changed: {e:#}"
            ))
        })?;
        match self.apply_text(&edited).await {
            Ok(applied) => {
                tracing::info!(
                    ?applied,
                    "admin change written to the routes file and applied"
                );
                Ok(applied)
            }
            Err(e) => {
                if let Err(undo) = self.write_routes_file(text).await {
                    tracing::error!(
                        "an admin change did not apply, and the routes file could not be put \
                         back as it was; it holds the refused change: {undo:#}"
                    );
                }
                Err(e)
            }
        }
    }

    async fn write_routes_file(&self, text: String) -> anyhow::Result<()> {
        let path = self.config_path().to_owned();
        tokio::task::spawn_blocking(move || {
            crate::plugin_build::write_atomically(&path, text.as_bytes())
        })
        .await
        .expect("routes file write panicked")
    }

    async fn read_routes_file(&self) -> Result<String, RouteChangeError> {
        let path = self.config_path();
        tokio::fs::read_to_string(path).await.map_err(|e| {
            RouteChangeError::Io(format!(
                "cannot read the routes file {}: {e}",
                path.display()
            ))
        })
    }

    /// Parse `text` as the routes file and bring the routes in line with it.
    async fn apply_text(&self, text: &str) -> Result<Applied, RouteChangeError> {
        let path = self.config_path();
        let config =
            Config::parse(text, path).map_err(|e| RouteChangeError::Invalid(e.to_string()))?;
        if config.plugins_dir != self.plugins_dir() {
            tracing::warn!(
                "`plugins_dir` changed in the routes file; it takes effect at the next restart"
            );
        }
        if config.kafka != self.inner.deps.kafka_config {
            tracing::warn!(
                "`[kafka]` changed in the routes file; the Kafka clients keep the settings they \
                 started with until the next restart (the routes' changes apply now)"
            );
        }
        if config.api_settings() != self.inner.deps.api_settings {
            tracing::warn!(
                "`[http]`, `[events_api]` or `[streams_api]` changed in the routes file; the \
                 HTTP APIs keep their settings until the next restart"
            );
        }
        let desired = config
            .resolve(path)
            .map_err(|e| RouteChangeError::Invalid(e.to_string()))?;
        self.reconcile(desired).await
    }

    async fn reconcile(&self, desired: Vec<Route>) -> Result<Applied, RouteChangeError> {
        let current: BTreeMap<String, Route> = self
            .routes()
            .iter()
            .map(|(name, live)| (name.clone(), live.rt.route.clone()))
            .collect();
        let mut applied = Applied::default();
        let mut to_build = Vec::new();
        for route in &desired {
            match current.get(&route.name) {
                None => applied.started.push(route.name.clone()),
                Some(running) if running != route => applied.restarted.push(route.name.clone()),
                Some(_) => continue,
            }
            to_build.push(route.clone());
        }
        applied.stopped = current
            .keys()
            .filter(|name| !desired.iter().any(|r| &r.name == *name))
            .cloned()
            .collect();

        // Everything new is built before anything stops.
        let built = self
            .build_all(to_build)
            .await
            .map_err(|e| RouteChangeError::CannotStart(format!("{e:#}")))?;
        for name in applied.stopped.iter().chain(&applied.restarted) {
            let live = self.routes().remove(name);
            if let Some(live) = live {
                stop(live).await;
            }
            if applied.stopped.contains(name) {
                self.board().remove(name);
            }
        }
        for rt in built {
            self.launch(rt);
        }
        Ok(applied)
    }

    /// Build routes' chains (loading plugins, `init`-ing every step) on
    /// the blocking pool.
    async fn build_all(&self, routes: Vec<Route>) -> anyhow::Result<Vec<(Route, Chain)>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            routes
                .into_iter()
                .map(|route| {
                    let chain = this.build_chain(&route)?;
                    Ok((route, chain))
                })
                .collect()
        })
        .await
        .expect("building routes panicked")
    }

    fn build_chain(&self, route: &Route) -> anyhow::Result<Chain> {
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
            let plugin = self
                .plugin_for(&step.plugin, &step.path)
                .with_context(context)?;
            let limits = Limits {
                call_timeout: route.tuning.call_timeout(),
                memory_bytes: route.tuning.memory_limit_bytes(),
            };
            let pool = InstancePool::new(
                self.inner.deps.runtime.clone(),
                plugin,
                step.config_json.clone(),
                RouteScope::new(&route.name, &route.token_scope()),
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
        let sink = match &route.sink {
            Sink::Topic(topic) => Destination::topic(topic),
            Sink::Buffer { name, capacity } => Destination::Buffer {
                name: name.as_str().into(),
                buffer: self.inner.deps.buffers.open(name, *capacity),
            },
            Sink::Http(spec) => Destination::Http(Arc::new(
                HttpSink::new(
                    &route.name,
                    spec,
                    self.inner.deps.runtime.subjects().cloned(),
                )
                .with_context(|| {
                    format!("route `{}`: creating the HTTP sink's client", route.name)
                })?,
            )),
        };
        Ok(Chain::new(pools, sink, &outputs))
    }

    /// Register a built route on the board and start it, or mark it paused.
    fn launch(&self, (route, chain): (Route, Chain)) {
        let deps = &self.inner.deps;
        let entry = deps
            .board
            .register(&route.name, chain.versions().to_owned());
        let rt = Arc::new(RouteRuntime::new(route, chain, entry));
        let task = if rt.route.paused {
            rt.entry.set(RouteState::Paused);
            tracing::info!(route = %rt.route.name, "route paused");
            None
        } else if rt.route.http_source {
            // Nothing to consume: requests run its chain (see
            // `route::ingest`).
            rt.entry.set(RouteState::Running);
            tracing::info!(route = %rt.route.name, chain = %rt.chain().versions(), "route serving HTTP requests");
            None
        } else {
            let stop = deps.shutdown.child_token();
            let handle = tokio::spawn(route::run(
                rt.clone(),
                deps.kafka.clone(),
                deps.producer.clone(),
                stop.clone(),
            ));
            Some((stop, handle))
        };
        // Paused routes too: their lag is still true.
        let monitor = (!rt.route.http_source).then(|| {
            let stop = deps.shutdown.child_token();
            tokio::spawn(route::health::monitor(
                rt.route.clone(),
                rt.entry.clone(),
                deps.kafka.clone(),
                deps.health,
                stop.clone(),
            ));
            stop.drop_guard()
        });
        self.routes().insert(
            rt.route.name.clone(),
            LiveRoute {
                rt,
                task,
                _monitor: monitor,
            },
        );
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LiveRoute>> {
        self.inner.routes.lock().expect("routes lock")
    }
}

/// Stop a route: it drains its in-flight records and commits.
async fn stop(live: LiveRoute) {
    if let Some((stop, handle)) = live.task {
        stop.cancel();
        let _ = handle.await;
    }
}
