//! A bare axum server answering `POST /events`: the baseline of the events
//! API load benchmark (`scripts/bench-events-api.sh`).
//!
//! It does the least work any real handler of that endpoint must do (read
//! the whole body, parse it as JSON) and nothing else: no validation, no
//! Kafka. Comparing switchyard against it under the same load shows what the
//! events API costs on top of the HTTP stack itself.
//!
//! ```sh
//! cargo run --release -p switchyard --example bare_events -- --addr 127.0.0.1:8090
//! ```
//!
//! `POST /events` answers 202 with an empty body (400 if the body is not
//! JSON); any other path answers 404. Stop it with a signal (SIGINT/SIGTERM).

use std::net::SocketAddr;

use anyhow::Context;
use axum::{body::Bytes, http::StatusCode, routing::post, Router};

const DEFAULT_ADDR: &str = "127.0.0.1:8090";

const USAGE: &str = "usage: bare_events [--addr HOST:PORT]   (default 127.0.0.1:8090)";

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let addr = match parse_args(std::env::args().skip(1)) {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("bare_events: {message}\n{USAGE}");
            std::process::exit(2);
        }
    };

    // Axum's default fallback already answers 404 for unknown paths.
    let app = Router::new().route("/events", post(accept_event));

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    eprintln!(
        "bare_events: listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await.context("serving HTTP")
}

/// Reads and parses the event, then accepts it without doing anything else.
async fn accept_event(body: Bytes) -> StatusCode {
    // The parsed value is dropped at once; parsing (and its allocations) is
    // the point, the same cost a real handler pays before its own work.
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// `--addr HOST:PORT` or `--addr=HOST:PORT`; `-h`/`--help` prints the usage.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<SocketAddr, String> {
    let mut addr = DEFAULT_ADDR.to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--addr" => addr = args.next().ok_or("--addr needs a value")?,
            _ => match arg.strip_prefix("--addr=") {
                Some(value) => addr = value.to_owned(),
                None => return Err(format!("unexpected argument `{arg}`")),
            },
        }
    }
    addr.parse()
        .map_err(|err| format!("--addr `{addr}` is not a HOST:PORT socket address: {err}"))
}
