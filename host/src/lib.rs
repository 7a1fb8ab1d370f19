//! Switchyard: Kafka topics through chains of WebAssembly plugins.
//!
//! - [`config`]: the routes file.
//! - [`plugin`]: loading, caching, sandboxing and pooling plugin components.
//! - [`route`]: consuming, running chains, producing, committing offsets.
//! - [`control`]: live changes: plugin hot reload.
//! - [`kafka`]: client settings and the in-memory development broker.
//! - [`http`]: the HTTP API.
//! - [`subjects`]: per-subject encryption of personal data, and erasure.
//! - [`plugin_kit`]: `switchyard plugin new` and `plugin test`, for plugin authors.
//! - [`app`]: wiring it together for `switchyard run`.

pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod devtools;
pub mod http;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod plugin;
pub mod plugin_build;
pub mod plugin_kit;
pub mod route;
pub mod streams;
pub mod subjects;
