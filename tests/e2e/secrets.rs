//! Secrets over the admin API and in the routes file: what a holder of the
//! admin token can reach through a route it creates, the Kafka client's
//! own secrets kept out of the file, and an admin token rotated without a
//! restart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::json;
use switchyard_tests::*;

const TOKEN: &str = "secrets-test-admin-token-0123";

/// A route created through the admin API may not send switchyard's own
/// secrets (the admin token, the master key) or a file to an endpoint of
/// its creator's choosing: refused, naming each reference, and nothing is
/// sent.
#[tokio::test(flavor = "multi_thread")]
async fn routes_sent_to_the_admin_api_cannot_reference_switchyards_own_secrets_or_files() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let capture = seen.clone();
    let app = axum::Router::new().route(
        "/steal",
        post(move |headers: HeaderMap| {
            let capture = capture.clone();
            async move {
                let leaked = headers
                    .get("x-leak")
                    .map(|v| v.to_str().unwrap_or_default().to_owned())
                    .unwrap_or_default();
                capture.lock().unwrap().push(leaked);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let source = unique("steal-in");
    create_topics(&[&source], 1).await;
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        "",
        &["--brokers", &bootstrap()],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), "file-secret").unwrap();
    for (leak, expect) in [
        (
            json!({"$env": "SWITCHYARD_ADMIN_TOKEN"}),
            "holds one of switchyard's own secrets",
        ),
        (
            json!({"$file": secret_file.path().to_str().unwrap()}),
            "may not read files",
        ),
        (
            json!({"$env": "HOME"}),
            "list it in `secrets.api_env` in the routes file",
        ),
    ] {
        let route = json!({
            "name": unique("steal"),
            "source": {"topics": [source]},
            "sink": {"http": {"url": format!("http://{addr}/steal"), "headers": {"X-Leak": leak}}},
        });
        let (code, body) = http_request(
            "POST",
            &format!("http://{}/admin/routes", sy.http),
            Some(TOKEN),
            serde_json::to_vec(&route).unwrap(),
        );
        assert_eq!(code, 400, "{leak} was accepted: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("`sink.http.headers.X-Leak` references") && error.contains(expect),
            "{error}"
        );
    }
    produce(&producer(), &source, &[("k".into(), "{}".into())]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    let (_, routes) = http_request(
        "GET",
        &format!("http://{}/admin/routes", sy.http),
        None,
        vec![],
    );
    assert_eq!(routes["routes"], json!([]), "{routes}");
    assert!(!sy.log_text().contains(TOKEN));
}

/// The admin token file is read again when it changes: the new token works
/// within seconds and the old one no longer does; a file emptied by
/// mistake disables the admin endpoints rather than keeping the old token.
#[test]
fn a_rotated_admin_token_file_is_in_force_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    let (old, new) = ("old-admin-token-0123456789", "new-admin-token-0123456789");
    std::fs::write(&file, old).unwrap();
    let mut sy = Switchyard::start_with(
        "",
        &[
            "--brokers",
            &bootstrap(),
            "--admin-token-file",
            file.to_str().unwrap(),
        ],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let pause = |token: &str| {
        http_request(
            "POST",
            &format!("http://{}/admin/routes/none/pause", sy.http),
            Some(token),
            vec![],
        )
        .0
    };
    // 404: past the credentials check (there is no such route).
    assert_eq!(pause(old), 404);
    assert_eq!(pause(new), 401);
    std::fs::write(&file, format!("{new}\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pause(new) != 404 {
        assert!(Instant::now() < deadline, "{}", sy.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(pause(old), 401);
    std::fs::write(&file, "short").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pause(new) != 403 {
        assert!(Instant::now() < deadline, "{}", sy.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = sy.log_text();
    assert!(log.contains("at least 16 characters"), "{log}");
    assert!(!log.contains(old) && !log.contains(new) && !log.contains("short\""));
}

/// A Kafka client property may be a secret reference (a SASL password,
/// say): read at start, never written in the routes file.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_properties_may_be_secret_references() {
    let (source, sink) = (unique("kprops-in"), unique("kprops-out"));
    create_topics(&[&source, &sink], 1).await;
    let routes = format!(
        r#"
[kafka.options]
"client.id" = {{ "$env" = "SWITCHYARD_TEST_CLIENT_ID" }}
[kafka.consumer]
"session.timeout.ms" = 10000

[[routes]]
name = "copy"
source = {{ topics = ["{source}"] }}
sink = {{ topic = "{sink}" }}
"#
    );
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes,
        &["--brokers", &bootstrap()],
        &[("SWITCHYARD_TEST_CLIENT_ID", "client-from-a-secret")],
    );
    sy.wait_healthy(Duration::from_secs(60));
    produce(&producer(), &source, &[("k".into(), "v".into())]).await;
    assert_eq!(read_topic(&sink, 1, Duration::from_secs(30)).len(), 1);
    assert!(!sy.log_text().contains("client-from-a-secret"));
}
