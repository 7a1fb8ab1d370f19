//! The plugin catalog and hot reload.
//!
//! Reloading `NAME.wasm`: read and hash it; compile and check it against the
//! world (on the blocking pool, off the data path); build every using
//! route's new chain, which instantiates and `init`s the new version with
//! each step's configuration; only when all of that succeeded, swap the
//! chains in. Anything failing refuses the file: the serving version stays,
//! and the refusal is recorded for `GET /admin/plugins` and logged.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;

use super::ControlPlane;
use crate::plugin::cache::{content_hash, CacheOutcome};
use crate::plugin::LoadedPlugin;
use crate::route::RouteRuntime;

/// What an operator sees of one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    /// `name@hash12` of the version routes run, if one was ever accepted.
    pub serving: Option<String>,
    /// Full SHA-256 of the serving version.
    pub hash: Option<String>,
    /// Routes whose chain runs it.
    pub used_by: Vec<String>,
    /// Versions swapped in since start.
    pub reloads: u64,
    /// Milliseconds from the file change being noticed to the new version
    /// serving, for the last reload.
    pub last_reload_ms: Option<u64>,
    /// The last file refused, if it came after the serving version.
    pub refused: Option<Refusal>,
    /// The file is gone from the plugins directory; routes keep running
    /// the loaded version, and a restart would fail to find it.
    pub file_removed: bool,
}

/// A plugin file that was not swapped in, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Refusal {
    /// SHA-256 of the refused bytes (a file that is being written refuses
    /// with one hash, then loads with another).
    pub hash: String,
    pub reason: String,
    /// Unix time of the refusal, in milliseconds.
    pub at_ms: u64,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// The new version serves the routes that use it (maybe none).
    Swapped {
        version: String,
        routes: Vec<String>,
    },
    /// The file holds the version already serving (or already refused).
    Unchanged,
    /// The file is gone; routes keep the version they run.
    Missing,
    /// Refused; the previous version keeps serving.
    Refused(Refusal),
}

/// A catalog entry. The serving version is the plugin itself; what
/// [`PluginStatus`] shows of it (tag, hash, users) is derived when asked.
#[derive(Default)]
pub(super) struct PluginEntry {
    serving: Option<LoadedPlugin>,
    reloads: u64,
    last_reload_ms: Option<u64>,
    refused: Option<Refusal>,
    file_removed: bool,
}

impl ControlPlane {
    /// Every plugin's status, by name.
    pub fn plugin_statuses(&self) -> Vec<PluginStatus> {
        let routes = self.live_runtimes();
        self.plugins()
            .iter()
            .map(|(name, entry)| status_of(name, entry, &routes))
            .collect()
    }

    pub fn plugin_status(&self, name: &str) -> Option<PluginStatus> {
        let routes = self.live_runtimes();
        self.plugins()
            .get(name)
            .map(|entry| status_of(name, entry, &routes))
    }

    fn plugins(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, PluginEntry>> {
        self.inner.plugins.lock().expect("plugin catalog lock")
    }

    /// The serving version of plugin `name`, loading `path` the first time
    /// (for a route being built). Blocking: call off the async threads.
    pub(super) fn plugin_for(&self, name: &str, path: &Path) -> anyhow::Result<LoadedPlugin> {
        if let Some(plugin) = self.plugins().get(name).and_then(|e| e.serving.clone()) {
            return Ok(plugin);
        }
        let started = Instant::now();
        let plugin = self.inner.deps.runtime.load(path)?;
        tracing::info!(
            plugin = %plugin.version_tag(),
            compiled = plugin.cache == CacheOutcome::Compiled,
            elapsed = ?started.elapsed(),
            "plugin loaded"
        );
        self.plugins().entry(name.to_owned()).or_default().serving = Some(plugin.clone());
        Ok(plugin)
    }

    /// Reload `NAME.wasm` from the plugins directory; `noticed` is when the
    /// change was first seen, for the reload latency.
    pub async fn reload_plugin(&self, name: &str, noticed: Instant) -> ReloadOutcome {
        let _one_change_at_a_time = self.inner.changes.lock().await;
        let path = self.plugins_dir().join(format!("{name}.wasm"));
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(plugin = name, path = %path.display(), "plugin file removed; routes keep the version they run");
                if let Some(entry) = self.plugins().get_mut(name) {
                    entry.file_removed = true;
                }
                return ReloadOutcome::Missing;
            }
            Err(e) => {
                let reason = format!("cannot read {}: {e}", path.display());
                return self.refuse(name, content_hash(&[]), reason);
            }
        };
        let hash = content_hash(&bytes);
        if let Some(entry) = self.plugins().get_mut(name) {
            entry.file_removed = false;
            if entry.serving.as_ref().is_some_and(|p| p.hash == hash) {
                // Back to the serving version: nothing to swap, and an
                // earlier refusal no longer describes the file.
                entry.refused = None;
                return ReloadOutcome::Unchanged;
            }
            if entry.refused.as_ref().is_some_and(|r| r.hash == hash) {
                return ReloadOutcome::Unchanged;
            }
        }

        // Compile, check and init off the async threads: compiling takes
        // from milliseconds to seconds.
        let using = self.routes_using(name);
        let runtime = self.inner.deps.runtime.clone();
        let plugin_name = name.to_owned();
        let prepared = tokio::task::spawn_blocking(move || {
            let plugin = runtime
                .load_bytes(&plugin_name, &path, &bytes)
                .with_context(|| format!("loading `{plugin_name}` from {}", path.display()))
                .map_err(|e| format!("{e:#}"))?;
            let mut swaps = Vec::with_capacity(using.len());
            for route in using {
                match route.chain().with_version(&plugin) {
                    Ok(Some(chain)) => swaps.push((route, chain)),
                    Ok(None) => {}
                    Err(e) => return Err(format!("route `{}`: {e}", route.route.name)),
                }
            }
            Ok((plugin, swaps))
        })
        .await
        .expect("plugin reload panicked");

        let (plugin, swaps) = match prepared {
            Ok(prepared) => prepared,
            Err(reason) => return self.refuse(name, hash, reason),
        };
        let version = plugin.version_tag();
        let routes: Vec<String> = swaps.iter().map(|(r, _)| r.route.name.clone()).collect();
        for (route, chain) in swaps {
            route.swap_chain(chain);
        }
        let elapsed = noticed.elapsed();
        tracing::info!(
            plugin = %version, routes = ?routes, elapsed = ?elapsed,
            compiled = plugin.cache == CacheOutcome::Compiled,
            "plugin version swapped in"
        );
        let mut plugins = self.plugins();
        let entry = plugins.entry(name.to_owned()).or_default();
        entry.reloads += 1;
        entry.last_reload_ms = Some(elapsed.as_millis() as u64);
        entry.refused = None;
        entry.serving = Some(plugin);
        ReloadOutcome::Swapped { version, routes }
    }

    fn refuse(&self, name: &str, hash: String, reason: String) -> ReloadOutcome {
        tracing::error!(plugin = name, hash = %&hash[..12], "plugin file refused; the serving version stays: {reason}");
        let refusal = Refusal {
            hash,
            reason,
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
        };
        self.plugins().entry(name.to_owned()).or_default().refused = Some(refusal.clone());
        ReloadOutcome::Refused(refusal)
    }

    /// The live routes whose chain runs plugin `name`.
    fn routes_using(&self, name: &str) -> Vec<Arc<RouteRuntime>> {
        self.live_runtimes()
            .into_iter()
            .filter(|r| r.chain().uses(name))
            .collect()
    }
}

/// What an operator sees of `entry`; `routes` are the live routes.
fn status_of(name: &str, entry: &PluginEntry, routes: &[Arc<RouteRuntime>]) -> PluginStatus {
    PluginStatus {
        name: name.to_owned(),
        serving: entry.serving.as_ref().map(LoadedPlugin::version_tag),
        hash: entry.serving.as_ref().map(|p| p.hash.clone()),
        used_by: routes
            .iter()
            .filter(|r| r.chain().uses(name))
            .map(|r| r.route.name.clone())
            .collect(),
        reloads: entry.reloads,
        last_reload_ms: entry.last_reload_ms,
        refused: entry.refused.clone(),
        file_removed: entry.file_removed,
    }
}
