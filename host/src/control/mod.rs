//! The control plane: every live change to what runs goes through here, one
//! at a time, off the data path.
//!
//! - [`plugins`]: the plugin catalog, and reloading a plugin file into the
//!   routes that use it.
//! - [`routes`]: starting, stopping, pausing and replacing routes, and
//!   bringing the running routes in line with the routes file.
//! - [`routes_file`]: the admin API's edits of the routes file, which stays
//!   the one source of truth.
//! - [`watch`]: file-system events in the plugins directory and on the
//!   routes file, turned into reloads once a file is quiet.

pub mod halts;
pub mod plugins;
pub mod routes;
pub mod routes_file;
pub mod shadow;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::kafka::KafkaSettings;
use crate::plugin::PluginRuntime;
use crate::route::buffer::Buffers;
use crate::route::status::StatusBoard;
use crate::route::Producer;
pub use halts::{SkipError, Skipped};
pub use plugins::{PluginStatus, Refusal, ReloadOutcome};
pub use routes::RouteChangeError;
pub use shadow::ShadowError;

/// What the control plane works with.
pub struct Deps {
    pub runtime: PluginRuntime,
    pub kafka: KafkaSettings,
    pub producer: Producer,
    pub board: StatusBoard,
    /// Cancelled when the process shuts down; every route stops with it.
    pub shutdown: CancellationToken,
    /// The routes file.
    pub config_path: PathBuf,
    pub plugins_dir: PathBuf,
    /// The buffer sinks of routes, by name.
    pub buffers: Buffers,
    /// The HTTP APIs' settings this process started with.
    pub api_settings: crate::config::ApiSettings,
    /// The `[kafka]` settings this process started with.
    pub kafka_config: crate::config::KafkaConfig,
    /// Where a copy of each plugin's serving version is kept (in the cache
    /// directory), for a start to fall back on when the plugins directory
    /// holds a version that is refused.
    pub serving_dir: PathBuf,
    /// When a route counts as stalled.
    pub health: crate::route::health::HealthSettings,
}

/// The control plane. Cheap to clone.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

struct Inner {
    deps: Deps,
    /// One change at a time: a plugin swap and a route change must not
    /// interleave (a route started from the old version would miss the
    /// swap).
    changes: tokio::sync::Mutex<()>,
    plugins: Mutex<BTreeMap<String, plugins::PluginEntry>>,
    routes: Mutex<BTreeMap<String, routes::LiveRoute>>,
    /// Why the routes file on disk is not what runs, if it is not.
    routes_file_refused: Mutex<Option<String>>,
}

impl ControlPlane {
    pub fn new(deps: Deps) -> ControlPlane {
        ControlPlane {
            inner: Arc::new(Inner {
                deps,
                changes: tokio::sync::Mutex::new(()),
                plugins: Mutex::new(BTreeMap::new()),
                routes: Mutex::new(BTreeMap::new()),
                routes_file_refused: Mutex::new(None),
            }),
        }
    }

    pub fn plugins_dir(&self) -> &std::path::Path {
        &self.inner.deps.plugins_dir
    }

    pub fn config_path(&self) -> &std::path::Path {
        &self.inner.deps.config_path
    }

    pub fn board(&self) -> &StatusBoard {
        &self.inner.deps.board
    }
}
