//! The control plane: every live change to what the routes run goes through
//! here, one at a time, off the data path.
//!
//! - [`plugins`]: the catalog of plugin versions, and reloading a plugin
//!   file into the routes that use it.
//! - [`watch`]: turns file-system events in the plugins directory into
//!   reloads, once a file has been quiet long enough to be whole.

pub mod plugins;
pub mod watch;

pub use plugins::{PluginCatalog, PluginStatus, ReloadOutcome};
