//! End-to-end tests: the switchyard binary against a real Kafka broker.
//! One test binary, so everything builds once.

mod admin_routes;
mod api_contract;
mod api_docs;
mod bad_input;
mod delivery;
mod deployment;
mod events_api;
mod gdpr;
mod hostile;
mod hostile_plugins;
mod hot_reload;
mod http_limits;
mod http_sink;
mod image;
mod ingest_api;
mod kafka_faults;
mod mobility;
mod personal_data;
mod platform;
mod plugin_kit;
mod plugin_loading;
mod plugin_mapping;
mod plugin_python;
mod plugin_redact;
mod plugin_validate;
mod sandbox;
mod scale_out;
mod secrets;
mod shadow;
mod shipped_config;
mod streams_api;
