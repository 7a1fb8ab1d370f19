//! `mock-crm`: serves the in-memory mock of the CRM's REST API.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// An in-memory mock of the CRM's REST API (users and trips), with an API
/// explorer. Data lives in memory only and is lost on exit.
#[derive(Debug, Parser)]
#[command(name = "mock-crm", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "MOCK_CRM_LISTEN", default_value = "127.0.0.1:5050")]
    listen: SocketAddr,
    /// Token (16 characters or more) that unlocks fault injection and reset
    /// (`Authorization: Bearer <token>`); without one they are disabled.
    /// Prefer the variable: a flag shows in the process list.
    #[arg(long, env = "MOCK_CRM_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Levels in `tracing-subscriber`'s `EnvFilter` syntax, `info` by default.
    let filter = EnvFilter::try_from_env("MOCK_CRM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let control_token = args
        .control_token
        .as_deref()
        .map(mock_crm::ControlToken::new)
        .transpose()
        .context("--control-token (MOCK_CRM_CONTROL_TOKEN)")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::warn!(
        "THIS IS A MOCK CRM: users and trips are kept in memory only and are LOST when it exits"
    );
    tracing::info!(
        "listening on http://{address}; API explorer at http://{address}{}",
        mock_crm::EXPLORER_PATH
    );
    if control_token.is_none() {
        tracing::info!(
            "no control token: fault injection and reset are disabled \
             (set MOCK_CRM_CONTROL_TOKEN to use them)"
        );
    }
    mock_crm::serve(listener, control_token, shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("stopped; all data dropped");
    Ok(())
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "no SIGTERM handler; stop with Ctrl-C");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
