//! Runs the mock in-process on a real socket, as an integration would reach
//! it.

use std::net::SocketAddr;

/// Starts a fresh mock (empty state) on an ephemeral port of the current
/// runtime and returns its address; it runs until the test ends.
pub async fn start() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding an ephemeral port");
    let address = listener.local_addr().expect("bound address");
    tokio::spawn(mock_crm::serve(listener, std::future::pending()));
    address
}
