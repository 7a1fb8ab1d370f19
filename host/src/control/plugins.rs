//! The plugin catalog and hot reload.
//!
//! Reloading `NAME.wasm`: read and hash it; compile and check it against the
//! world (on the blocking pool, off the data path); build every using
//! route's new chain, which instantiates and `init`s the new version with
//! each step's configuration; only when all of that succeeded, swap the
//! chains in. Anything failing refuses the file: the serving version stays,
//! and the refusal is recorded for `GET /admin/plugins` and logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::plugin::cache::content_hash;
use crate::plugin::{LoadedPlugin, PluginRuntime};
use crate::route::RouteRuntime;

/// What an operator sees of one plugin.
#[derive(Debug, Clone, Default, Serialize)]
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

/// Every plugin known to this process, and the routes to swap into.
#[derive(Clone)]
pub struct PluginCatalog {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: PluginRuntime,
    plugins_dir: PathBuf,
    routes: Vec<Arc<RouteRuntime>>,
    status: Mutex<BTreeMap<String, PluginStatus>>,
    /// One reload at a time, so two changes cannot interleave their swaps.
    reloading: tokio::sync::Mutex<()>,
}

impl PluginCatalog {
    /// A catalog of the plugins `routes` were started with.
    pub fn new(
        runtime: PluginRuntime,
        plugins_dir: PathBuf,
        loaded: &[LoadedPlugin],
        routes: Vec<Arc<RouteRuntime>>,
    ) -> PluginCatalog {
        let status = loaded
            .iter()
            .map(|p| {
                let status = PluginStatus {
                    name: p.name.clone(),
                    serving: Some(p.version_tag()),
                    hash: Some(p.hash.clone()),
                    used_by: users(&routes, &p.name),
                    ..PluginStatus::default()
                };
                (p.name.clone(), status)
            })
            .collect();
        PluginCatalog {
            inner: Arc::new(Inner {
                runtime,
                plugins_dir,
                routes,
                status: Mutex::new(status),
                reloading: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn plugins_dir(&self) -> &Path {
        &self.inner.plugins_dir
    }

    /// Every plugin's status, by name.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        self.inner
            .status
            .lock()
            .expect("status lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn status(&self, name: &str) -> Option<PluginStatus> {
        self.inner
            .status
            .lock()
            .expect("status lock")
            .get(name)
            .cloned()
    }

    /// Reload `NAME.wasm` from the plugins directory; `noticed` is when the
    /// change was first seen, for the reload latency.
    pub async fn reload(&self, name: &str, noticed: Instant) -> ReloadOutcome {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let path = self.inner.plugins_dir.join(format!("{name}.wasm"));
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(plugin = name, path = %path.display(), "plugin file removed; routes keep the version they run");
                return ReloadOutcome::Missing;
            }
            Err(e) => {
                return self.refuse(
                    name,
                    content_hash(&[]),
                    format!("cannot read {}: {e}", path.display()),
                )
            }
        };
        let hash = content_hash(&bytes);
        {
            let mut status = self.inner.status.lock().expect("status lock");
            if let Some(status) = status.get_mut(name) {
                if status.hash.as_deref() == Some(hash.as_str()) {
                    // Back to the serving version: nothing to swap, and an
                    // earlier refusal no longer describes the file.
                    status.refused = None;
                    return ReloadOutcome::Unchanged;
                }
                if status.refused.as_ref().is_some_and(|r| r.hash == hash) {
                    return ReloadOutcome::Unchanged;
                }
            }
        }

        // Compile, check and init off the async threads: compiling takes
        // from milliseconds to seconds.
        let inner = self.inner.clone();
        let plugin_name = name.to_owned();
        let prepared = tokio::task::spawn_blocking(move || {
            let plugin = inner
                .runtime
                .load_bytes(&plugin_name, &path, &bytes)
                .map_err(|e| format!("loading `{plugin_name}` from {}: {e:#}", path.display()))?;
            let mut swaps = Vec::new();
            for route in &inner.routes {
                match route.chain().with_version(&plugin) {
                    Ok(Some(chain)) => swaps.push((route.clone(), chain)),
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
            plugin = %version, routes = ?routes, elapsed = ?elapsed, compiled = plugin.cache == crate::plugin::cache::CacheOutcome::Compiled,
            "plugin version swapped in"
        );
        let mut status = self.inner.status.lock().expect("status lock");
        let entry = status.entry(name.to_owned()).or_default();
        entry.name = name.to_owned();
        entry.serving = Some(version.clone());
        entry.hash = Some(plugin.hash.clone());
        entry.used_by = users(&self.inner.routes, name);
        entry.reloads += 1;
        entry.last_reload_ms = Some(elapsed.as_millis() as u64);
        entry.refused = None;
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
        let mut status = self.inner.status.lock().expect("status lock");
        let entry = status.entry(name.to_owned()).or_default();
        entry.name = name.to_owned();
        entry.used_by = users(&self.inner.routes, name);
        entry.refused = Some(refusal.clone());
        ReloadOutcome::Refused(refusal)
    }
}

/// Names of the routes whose chain runs plugin `name`.
fn users(routes: &[Arc<RouteRuntime>], name: &str) -> Vec<String> {
    routes
        .iter()
        .filter(|r| r.chain().uses(name))
        .map(|r| r.route.name.clone())
        .collect()
}
