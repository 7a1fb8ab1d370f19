//! The plugin catalog and hot reload.
//!
//! Reloading `NAME.wasm`: read and hash it; compile and check it against the
//! world (on the blocking pool, off the data path); build every using
//! route's new chain, which instantiates and `init`s the new version with
//! each step's configuration; only when all of that succeeded, swap the
//! chains in. Anything failing refuses the file: the serving version stays,
//! and the refusal is recorded for `GET /admin/plugins` and logged. An
//! upload goes through the same checks before it is written, so a refused
//! upload never reaches the plugins directory.

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
    /// An upload was accepted but could not be written into the plugins
    /// directory: nothing was swapped.
    NotWritten(String),
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

    /// Keep a copy of the serving version of each of `plugins`, for
    /// [`ControlPlane::fall_back`]. Blocking. A copy that cannot be written
    /// is only logged: it is a safety net.
    pub(super) fn keep_serving_copies(&self, plugins: &[LoadedPlugin]) {
        let dir = &self.inner.deps.serving_dir;
        for plugin in plugins {
            let copy = dir.join(format!("{}.wasm", plugin.name));
            let same = std::fs::read(&copy).is_ok_and(|b| content_hash(&b) == plugin.hash);
            if same {
                continue;
            }
            let kept = std::fs::read(&plugin.path)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| {
                    anyhow::ensure!(
                        content_hash(&bytes) == plugin.hash,
                        "{} changed since it was loaded",
                        plugin.path.display()
                    );
                    std::fs::create_dir_all(dir)?;
                    crate::plugin_build::write_atomically(&copy, &bytes)
                });
            if let Err(e) = kept {
                tracing::warn!(plugin = %plugin.name, "cannot keep a copy of the serving version: {e:#}");
            }
        }
    }

    /// At start, a route could not be built from the plugins directory:
    /// make the last version of each of its plugins that served (kept by
    /// [`ControlPlane::keep_serving_copies`]) the serving one, where it
    /// differs from what was loaded, and record why the file was refused.
    /// Whether any plugin fell back.
    pub(super) fn fall_back(&self, plugin_names: &[String], why: &str) -> bool {
        let mut fell_back = false;
        for name in plugin_names {
            let copy = self.inner.deps.serving_dir.join(format!("{name}.wasm"));
            let Ok(bytes) = std::fs::read(&copy) else {
                continue;
            };
            let hash = content_hash(&bytes);
            let file_hash = std::fs::read(self.plugins_dir().join(format!("{name}.wasm")))
                .map(|b| content_hash(&b))
                .unwrap_or_else(|_| content_hash(&[]));
            if file_hash == hash {
                continue;
            }
            let plugin = match self.inner.deps.runtime.load_bytes(name, &copy, &bytes) {
                Ok(plugin) => plugin,
                Err(e) => {
                    tracing::warn!(plugin = %name, "the kept copy of the last serving version does not load either: {e:#}");
                    continue;
                }
            };
            tracing::error!(
                plugin = %plugin.version_tag(),
                "the plugins directory holds a version of `{name}` that cannot start; serving \
                 the last version that served instead (replace or remove the file): {why}"
            );
            let mut plugins = self.plugins();
            let entry = plugins.entry(name.clone()).or_default();
            entry.serving = Some(plugin);
            entry.refused = Some(Refusal {
                hash: file_hash,
                reason: format!(
                    "refused at start, the last version that served runs instead: {why}"
                ),
                at_ms: now_ms(),
            });
            fell_back = true;
        }
        fell_back
    }

    /// Reload `NAME.wasm` from the plugins directory; `noticed` is when the
    /// change was first seen, for the reload latency.
    pub async fn reload_plugin(&self, name: &str, noticed: Instant) -> ReloadOutcome {
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
        self.try_version(name, bytes, noticed, None).await
    }

    /// Upload a version of plugin `name`: it is checked exactly as a
    /// reload checks it (compiled, `init`-ed with every using route's
    /// configuration) *before* anything is written, and written into the
    /// plugins directory only once accepted, so a refused upload leaves the
    /// file that serves, and the next start serves it again. If the write
    /// fails, nothing is swapped.
    pub async fn upload_plugin(&self, name: &str, bytes: Vec<u8>) -> ReloadOutcome {
        let path = self.plugins_dir().join(format!("{name}.wasm"));
        self.try_version(name, bytes, Instant::now(), Some(&path))
            .await
    }

    /// Check `bytes` as the next version of `name`; when accepted, write
    /// them to `write_to` (if given) and swap them into every using route.
    async fn try_version(
        &self,
        name: &str,
        bytes: Vec<u8>,
        noticed: Instant,
        write_to: Option<&Path>,
    ) -> ReloadOutcome {
        let hash = content_hash(&bytes);
        if let Some(outcome) = self.already_known(name, &hash) {
            return outcome;
        }
        let path = self.plugins_dir().join(format!("{name}.wasm"));
        // Compile off the async threads and outside the change lock:
        // compiling takes from milliseconds to seconds, and other changes
        // need not wait for it.
        let runtime = self.inner.deps.runtime.clone();
        let plugin_name = name.to_owned();
        let compiled = tokio::task::spawn_blocking(move || {
            runtime
                .load_bytes(&plugin_name, &path, &bytes)
                .with_context(|| format!("loading `{plugin_name}` from {}", path.display()))
                .map_err(|e| format!("{e:#}"))
                .map(|plugin| (plugin, bytes))
        })
        .await
        .expect("plugin compile panicked");
        let (plugin, bytes) = match compiled {
            Ok(compiled) => compiled,
            Err(reason) => return self.refuse(name, hash, reason),
        };

        // From here on, one change at a time: the routes using the plugin
        // are the ones running now.
        let _one_change_at_a_time = self.inner.changes.lock().await;
        if let Some(outcome) = self.already_known(name, &hash) {
            return outcome;
        }
        let using = self.routes_using(name);
        let for_chains = plugin.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let mut swaps = Vec::with_capacity(using.len());
            for route in using {
                match route.chain().with_version(&for_chains) {
                    Ok(Some(chain)) => swaps.push((route, chain)),
                    Ok(None) => {}
                    Err(e) => return Err(format!("route `{}`: {e}", route.route.name)),
                }
            }
            Ok(swaps)
        })
        .await
        .expect("plugin reload panicked");
        let swaps = match prepared {
            Ok(swaps) => swaps,
            Err(reason) => return self.refuse(name, hash, reason),
        };
        if let Some(path) = write_to {
            let path = path.to_owned();
            let written = tokio::task::spawn_blocking(move || {
                crate::plugin_build::write_atomically(&path, &bytes)
            })
            .await
            .expect("plugin write panicked");
            if let Err(e) = written {
                return ReloadOutcome::NotWritten(format!(
                    "cannot write the plugin into the plugins directory: {e:#}"
                ));
            }
        }
        let version = plugin.version_tag();
        let routes: Vec<String> = swaps.iter().map(|(r, _)| r.route.name.clone()).collect();
        for (route, chain) in swaps {
            route.swap_chain(chain);
        }
        if !routes.is_empty() {
            let this = self.clone();
            let serving = plugin.clone();
            tokio::task::spawn_blocking(move || this.keep_serving_copies(&[serving]));
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
        entry.file_removed = false;
        entry.serving = Some(plugin);
        ReloadOutcome::Swapped { version, routes }
    }

    /// The outcome for bytes of hash `hash` if they are the serving version
    /// (nothing to swap; an earlier refusal no longer describes the file)
    /// or the version refused last.
    fn already_known(&self, name: &str, hash: &str) -> Option<ReloadOutcome> {
        let mut plugins = self.plugins();
        let entry = plugins.get_mut(name)?;
        entry.file_removed = false;
        if entry.serving.as_ref().is_some_and(|p| p.hash == hash) {
            entry.refused = None;
            return Some(ReloadOutcome::Unchanged);
        }
        if let Some(refusal) = entry.refused.as_ref().filter(|r| r.hash == hash) {
            return Some(ReloadOutcome::Refused(refusal.clone()));
        }
        None
    }

    fn refuse(&self, name: &str, hash: String, reason: String) -> ReloadOutcome {
        tracing::error!(plugin = name, hash = %&hash[..12], "plugin file refused; the serving version stays: {reason}");
        let refusal = Refusal {
            hash,
            reason,
            at_ms: now_ms(),
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
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
