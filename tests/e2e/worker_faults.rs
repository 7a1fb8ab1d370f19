//! Partition workers that must not die quietly, on real Kafka: an HTTP
//! endpoint answering `503` with `Retry-After` is retried and then takes
//! every record (the wait it asks for is honoured within the route's
//! bounds, however those are set), and a worker that dies anyway shows in
//! the route's state, halted with the reason, its records' offsets kept
//! for the next start.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use switchyard_tests::*;

const TOKEN: &str = "faults-admin-token-0123456789";

fn route_state(sy: &Switchyard, name: &str) -> serde_json::Value {
    get_json(&format!("http://{}/admin/routes/{name}", sy.http))
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// What the endpoint saw: how many requests it refused, the bodies it took.
#[derive(Default)]
struct Endpoint {
    refused: usize,
    taken: Vec<String>,
}

/// `backoff_ms = max_backoff_ms`: the jittered wait is above the largest
/// backoff, and the endpoint's `Retry-After` has to fit between them.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_answer_is_honoured_and_every_record_is_delivered() {
    let seen = Arc::new(Mutex::new(Endpoint::default()));
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(seen): State<Arc<Mutex<Endpoint>>>, body: String| async move {
                    let mut seen = seen.lock().unwrap();
                    if seen.refused < 3 {
                        seen.refused += 1;
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [(axum::http::header::RETRY_AFTER, "1")],
                        );
                    }
                    seen.taken.push(body);
                    (StatusCode::OK, [(axum::http::header::RETRY_AFTER, "0")])
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let source = unique("retry-after");
    create_topics(&[&source], 1).await;
    let routes = format!(
        r#"
[[routes]]
name = "hooked"
source = {{ topics = ["{source}"], group = "{group}" }}
sink = {{ http = {{ url = "http://{addr}/hook", backoff_ms = 1000, max_backoff_ms = 1000 }} }}
"#,
        group = unique("retry-after"),
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    let records: Vec<(String, String)> = (0..3)
        .map(|n| ("k".to_owned(), format!(r#"{{"n":{n}}}"#)))
        .collect();
    produce(&producer(), &source, &records).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let taken = seen.lock().unwrap().taken.clone();
        if taken.len() == records.len() {
            let sent: Vec<String> = records.iter().map(|(_, v)| v.clone()).collect();
            assert_eq!(taken, sent, "delivered in order, once each");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} delivered; the route says {}:\n{}",
            taken.len(),
            records.len(),
            route_state(&sy, "hooked"),
            sy.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.lock().unwrap().refused, 3);
    let route = route_state(&sy, "hooked");
    assert_eq!(route["state"], "running", "{route}");
    assert_eq!(route["retries"], 3, "{route}");
    assert!(!sy.log_text().contains("panicked"), "{}", sy.log_text());
    assert_eq!(sy.terminate(Duration::from_secs(30)).code(), Some(0));
}

/// A worker that dies (here: a fault injected into the host, which debug
/// builds offer for this test) halts its route with the reason, instead of
/// leaving the route `running` with its records stuck; its records are not
/// acknowledged, so the next start delivers every one of them.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_dies_halts_its_route_with_the_reason_and_loses_nothing() {
    let (source, sink, group) = (unique("dies-in"), unique("dies-out"), unique("dies"));
    create_topics(&[&source, &sink], 1).await;
    let routes = format!(
        r#"
[[routes]]
name = "fragile"
source = {{ topics = ["{source}"], group = "{group}" }}
sink = {{ topic = "{sink}" }}
"#
    );
    let trigger = "host-fault-please";
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes,
        &["--brokers", &bootstrap()],
        &[
            ("SWITCHYARD_FAULT_WORKER_PANIC", trigger),
            ("SWITCHYARD_ADMIN_TOKEN", TOKEN),
        ],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let records: Vec<(String, String)> = ["one", trigger, "three"]
        .iter()
        .map(|v| ("k".to_owned(), v.to_string()))
        .collect();
    produce(&producer(), &source, &records).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let route = loop {
        let route = route_state(&sy, "fragile");
        if route["state"] == "halted" {
            break route;
        }
        assert!(
            Instant::now() < deadline,
            "the route says {route} after its worker died:\n{}",
            sy.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let reason = route["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "a partition worker stopped unexpectedly: {source}/0 panicked"
        )) && reason.contains("injected fault"),
        "{reason}"
    );
    assert!(sy.is_running(), "the process stays up");

    // Halted, but not before a record: there is nothing to skip. Resuming
    // starts it again; the fault, still armed, halts it again.
    let admin = |path: &str, body: Vec<u8>| {
        http_request(
            "POST",
            &format!("http://{}/admin/routes/fragile/{path}", sy.http),
            Some(TOKEN),
            body,
        )
    };
    let place = serde_json::json!({"topic": source, "partition": 0, "offset": 1});
    let (code, reply) = admin("skip", serde_json::to_vec(&place).unwrap());
    assert_eq!(code, 409, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("is halted, but not before a record"),
        "{reply}"
    );
    let deaths = |sy: &Switchyard| {
        sy.log_text()
            .matches("a partition worker stopped unexpectedly")
            .count()
    };
    let before = deaths(&sy);
    let (code, reply) = admin("resume", Vec::new());
    assert_eq!(code, 200, "{reply}");
    assert_eq!(
        reply["applied"]["restarted"],
        serde_json::json!(["fragile"])
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(deaths(&sy) > before && route_state(&sy, "fragile")["state"] == "halted") {
        assert!(Instant::now() < deadline, "{}", sy.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sy.terminate(Duration::from_secs(30)).code(), Some(0));

    // Started again without the fault: every record arrives.
    let mut again = Switchyard::start(&routes);
    again.wait_healthy(Duration::from_secs(60));
    let out = read_topic(&sink, 3, Duration::from_secs(30));
    let mut values: Vec<String> = out.into_iter().filter_map(|r| r.value).collect();
    values.sort();
    values.dedup();
    let mut sent: Vec<String> = records.into_iter().map(|(_, v)| v).collect();
    sent.sort();
    assert_eq!(values, sent, "{}", again.log_text());
}
