//! Runs the mock in-process on a real socket, as an integration would reach
//! it.

use std::net::SocketAddr;

/// The control token of the mocks [`start`] starts.
#[allow(dead_code)] // not every test file uses the controls
pub const CONTROL_TOKEN: &str = "test-control-token-0123456789";

/// Starts a fresh mock (empty state) whose controls unlock with
/// [`CONTROL_TOKEN`], on an ephemeral port of the current runtime, and
/// returns its address; it runs until the test ends.
pub async fn start() -> SocketAddr {
    start_with(Some(mock_crm::ControlToken::new(CONTROL_TOKEN).unwrap())).await
}

/// [`start`], with `control_token` (none: the controls are disabled).
pub async fn start_with(control_token: Option<mock_crm::ControlToken>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding an ephemeral port");
    let address = listener.local_addr().expect("bound address");
    tokio::spawn(mock_crm::serve(
        listener,
        control_token,
        std::future::pending(),
    ));
    address
}
