//! Log setup: human-readable lines on stderr, or JSON with
//! `SWITCHYARD_LOG_FORMAT=json`; levels from `SWITCHYARD_LOG`
//! (default `info`), in `tracing-subscriber`'s `EnvFilter` syntax.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("SWITCHYARD_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
