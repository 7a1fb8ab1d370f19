//! Plugins: WebAssembly components implementing the `switchyard:plugin`
//! world (see `wit/plugin.wit`).
//!
//! - [`runtime`]: the shared wasmtime engine, the epoch ticker that enforces
//!   call deadlines, and loading components through the compile cache.
//! - [`cache`]: precompiled artefacts on disk, keyed by content hash.
//! - [`pool`]: ready-to-call instances of one plugin configured for one
//!   route step, and the host side of the plugin's imports.
//! - The sandbox's bounds: [`limits`] (memory over all of an instance's
//!   linear memories, core instances, tables), [`state`] (the `state`
//!   import's store), [`log`] (the `log` import: one line per message, size
//!   and rate), [`wasi`] (WASI preview 2 with every wait ending at the
//!   call's deadline).

pub mod cache;
pub mod limits;
pub mod log;
pub mod pool;
pub mod runtime;
pub mod state;
pub mod wasi;

pub use pool::{CallError, InstancePool};
pub use runtime::{LoadedPlugin, PluginRuntime};

/// Host bindings generated from the WIT package in `wit/`, shared with every
/// guest: no type here is written by hand.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: {
            // Past the bounds of the step's state, `set` traps (its WIT
            // signature has no error to return).
            "switchyard:plugin/state.set": trappable,
        },
    });

    pub use exports::switchyard::plugin::transform;
    pub use switchyard::plugin::types::{Error, Event, Header, Outcome, Output};
}

/// Name of the interface every plugin must export, for error messages.
pub const TRANSFORM_EXPORT: &str = "switchyard:plugin/transform@0.1.0";
