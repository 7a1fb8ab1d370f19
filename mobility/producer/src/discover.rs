//! Finding the Kafka cluster through a running Switchyard: its `/healthz`
//! names the brokers it uses (the in-memory development broker included),
//! so the producer needs no configuration next to a Switchyard.

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

/// The pause between attempts while Switchyard is not up yet.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// The Kafka bootstrap servers of the Switchyard whose HTTP API listens at
/// `addr` (`host:port`), from `GET http://{addr}/healthz`.
///
/// Switchyard may be starting alongside, so this retries for up to `wait`
/// (at least one attempt). `/healthz` answers 503 until every route runs,
/// but still names the brokers, so any answer naming them will do.
pub async fn switchyard_brokers(addr: &str, wait: Duration) -> anyhow::Result<String> {
    let url = format!("http://{addr}/healthz");
    let client = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .build()
        .context("creating the HTTP client")?;
    let deadline = Instant::now() + wait;
    let mut waiting_logged = false;
    loop {
        let error = match ask(&client, &url).await {
            Ok(brokers) => return Ok(brokers),
            Err(e) => e,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(error.context(format!(
                "no --brokers given, and no Switchyard at {url} named its Kafka brokers within \
                 {}s (start Switchyard, or pass --brokers HOST:PORT)",
                wait.as_secs()
            )));
        }
        if !waiting_logged {
            tracing::info!(%url, error = %format!("{error:#}"), "waiting up to {}s for Switchyard to name its Kafka brokers", wait.as_secs());
            waiting_logged = true;
        }
        tokio::time::sleep(RETRY_EVERY.min(deadline - now)).await;
    }
}

/// One attempt: the brokers `url` names, or why it did not.
async fn ask(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let response = client.get(url).send().await.context("no answer")?;
    let status = response.status();
    let health: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("the answer ({status}) is not JSON"))?;
    match health["kafka"]["brokers"].as_str() {
        Some(brokers) if !brokers.is_empty() => Ok(brokers.to_owned()),
        _ => anyhow::bail!("the answer ({status}) names no kafka.brokers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Answers every request on `listener` with `status` and `body`.
    fn serve(listener: TcpListener, status: &'static str, body: &'static str) {
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut request = [0; 4096];
                let _ = conn.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            }
        });
    }

    const HEALTH: &str = r#"{"status":"unavailable","kafka":{"brokers":"127.0.0.1:39092","embedded":true},"routes":[]}"#;

    #[tokio::test]
    async fn reads_the_brokers_even_while_routes_start() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        serve(listener, "503 Service Unavailable", HEALTH);
        let brokers = switchyard_brokers(&addr, Duration::ZERO).await.unwrap();
        assert_eq!(brokers, "127.0.0.1:39092");
    }

    #[tokio::test]
    async fn waits_for_a_switchyard_starting_alongside() {
        // Take a free port, and only listen on it after a while.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            serve(
                TcpListener::bind(("127.0.0.1", port)).await.unwrap(),
                "200 OK",
                HEALTH,
            );
        });
        let brokers = switchyard_brokers(&addr, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(brokers, "127.0.0.1:39092");
    }

    #[tokio::test]
    async fn gives_up_after_the_wait_naming_the_url() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let err = switchyard_brokers(&addr, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "gave up after {:?}",
            started.elapsed()
        );
        let message = format!("{err:#}");
        assert!(
            message.contains(&format!("http://{addr}/healthz")),
            "{message}"
        );
        assert!(message.contains("--brokers"), "{message}");
    }

    #[tokio::test]
    async fn an_answer_without_brokers_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        serve(listener, "200 OK", r#"{"status":"ok"}"#);
        let err = switchyard_brokers(&addr, Duration::ZERO).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("names no kafka.brokers"),
            "{err:#}"
        );
    }
}
