//! HTTP sinks on Kafka: what an endpoint refuses is dead-lettered with its
//! answer, a spent retry budget too, a halting route keeps its offset until
//! the endpoint takes the record, redeliveries create nothing twice, and
//! `json-post` delivers each key's values in order with an idempotency key
//! that is the same on a retry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use switchyard_tests::*;

/// A route without plugins: its records are CRM operations already.
fn crm_route(name: &str, source: &str, crm: &MockCrm, extra: &str) -> String {
    format!(
        r#"
[[routes]]
name = "{name}"
source = {{ topics = ["{source}"], group = "{group}" }}
sink = {{ http = {{ url = "{url}", format = "crm-upsert", backoff_ms = 50, max_backoff_ms = 200{extra} }} }}
"#,
        group = unique("http-sink"),
        url = crm.url,
    )
}

fn user_op(id: &str, email: &str) -> String {
    json!({
        "op": "upsert", "resource": "users", "id": id,
        "set": {"Id": id, "LastName": "Lovelace", "FirstName": null, "Email": email},
        "on_create": {"LastTripDate": "0001-01-01T00:00:00Z"},
    })
    .to_string()
}

fn trip_op(id: &str, user: &str) -> String {
    json!({
        "op": "upsert", "resource": "trips", "id": id,
        "set": {"Id": id, "UserId": user, "Type": "Bus", "StartDate": "2026-01-01T08:00:00Z"},
        "on_create": {"Price": 0},
    })
    .to_string()
}

fn wait_until(what: &str, timeout: Duration, sy: &Switchyard, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}:\n{}", sy.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_dead_lettered_with_the_answer_and_redeliveries_create_nothing_twice() {
    let (source, dlq) = (unique("ops"), unique("ops-dlq"));
    create_topics(&[&source, &dlq], 1).await;
    let crm = MockCrm::start();
    let routes = format!(
        "{}dead_letter = {{ topic = \"{dlq}\" }}\n",
        crm_route("crm", &source, &crm, "")
    );
    let sy = {
        let mut sy = Switchyard::start(&routes);
        sy.wait_healthy(Duration::from_secs(60));
        sy
    };
    let key = |k: &str| k.to_owned();
    produce(
        &producer(),
        &source,
        &[
            (key("u-1"), user_op("u-1", "ada@example.com")),
            (key("u-2"), user_op("u-2", "not-an-email")),
            (key("u-1"), trip_op("t-1", "u-1")),
            (key("u-3"), "not an operation".to_owned()),
            // Replays of what was applied already: a redelivery.
            (key("u-1"), user_op("u-1", "ada@example.com")),
            (key("u-1"), trip_op("t-1", "u-1")),
            // A change of an existing record: replaced, not created.
            (key("u-1"), user_op("u-1", "ada@lovelace.dev")),
        ],
    )
    .await;

    let dead = read_topic(&dlq, 2, Duration::from_secs(30));
    assert_eq!(dead.len(), 2, "{dead:?}\n{}", sy.log_text());
    let refused = dead
        .iter()
        .find(|r| r.key.as_deref() == Some("u-2"))
        .unwrap();
    assert_eq!(refused.headers["switchyard-dlq-error-kind"], "sink");
    let error = &refused.headers["switchyard-dlq-error"];
    assert!(
        error.contains("400") && error.contains("Email: not an email address"),
        "the CRM's answer is not in the dead letter: {error}"
    );
    // The answer is quoted without what the record sent (the CRM echoes
    // the value it refused), and URLs name records by a placeholder, not
    // by their id: the record's values may be personal data, which the
    // dead-letter headers and the log must not repeat.
    assert!(
        !error.contains("not-an-email") && !error.contains("/u-2"),
        "{error}"
    );
    assert!(error.contains("<withheld: personal data>"), "{error}");
    assert!(!sy.log_text().contains("not-an-email"), "{}", sy.log_text());
    assert_eq!(
        refused.value.as_deref(),
        Some(user_op("u-2", "not-an-email").as_str())
    );
    let garbage = dead
        .iter()
        .find(|r| r.key.as_deref() == Some("u-3"))
        .unwrap();
    assert!(
        garbage.headers["switchyard-dlq-error"].contains("not a CRM operation"),
        "{:?}",
        garbage.headers
    );

    wait_until(
        "the change of u-1 applied",
        Duration::from_secs(30),
        &sy,
        || {
            crm.all("users")
                .get("u-1")
                .is_some_and(|u| u["Email"] == "ada@lovelace.dev")
        },
    );
    let users = crm.all("users");
    assert_eq!(users.keys().collect::<Vec<_>>(), ["u-1"]);
    assert_eq!(users["u-1"]["FirstName"], Value::Null);
    assert_eq!(crm.all("trips")["t-1"]["UserId"], "u-1");
    let stats = crm.stats();
    assert_eq!(
        stats["by_status"]["201"], 2,
        "each record created once: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_retry_budget_dead_letters_the_record_and_the_next_one_flows() {
    let (source, dlq) = (unique("ops"), unique("ops-dlq"));
    create_topics(&[&source, &dlq], 1).await;
    let crm = MockCrm::start();
    let routes = format!(
        "{}dead_letter = {{ topic = \"{dlq}\" }}\n",
        crm_route("crm", &source, &crm, ", retry_budget_ms = 1500")
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));

    crm.fail_for(503, 3_000);
    let started = Instant::now();
    produce(
        &producer(),
        &source,
        &[("u-1".into(), user_op("u-1", "ada@example.com"))],
    )
    .await;
    let dead = read_topic(&dlq, 1, Duration::from_secs(30));
    assert_eq!(dead.len(), 1, "{}", sy.log_text());
    let error = &dead[0].headers["switchyard-dlq-error"];
    assert!(
        error.contains("503") && error.contains("gave up after"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "dead-lettered only after {:?}",
        started.elapsed()
    );
    let retries = sy.health().unwrap().1["routes"][0]["retries"]
        .as_u64()
        .unwrap();
    assert!(retries >= 2, "{retries} retries");

    // The outage ends; the next record is delivered.
    std::thread::sleep(Duration::from_millis(3_000));
    produce(
        &producer(),
        &source,
        &[("u-2".into(), user_op("u-2", "grace@example.com"))],
    )
    .await;
    wait_until("u-2 delivered", Duration::from_secs(30), &sy, || {
        crm.all("users").contains_key("u-2")
    });
    assert!(!crm.all("users").contains_key("u-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_halting_route_keeps_its_offset_until_the_endpoint_takes_the_record() {
    let source = unique("ops");
    create_topics(&[&source], 1).await;
    let crm = MockCrm::start();
    let routes = crm_route("crm", &source, &crm, ", retry_budget_ms = 500");
    let group = routes
        .split("group = \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    produce(
        &producer(),
        &source,
        &[("u-1".into(), user_op("u-1", "ada@example.com"))],
    )
    .await;
    wait_until("u-1 delivered", Duration::from_secs(30), &sy, || {
        crm.all("users").contains_key("u-1")
    });

    // The endpoint fails for longer than the budget: the route halts
    // before the record, and its offset stays put.
    crm.fail_for(503, 600_000);
    produce(
        &producer(),
        &source,
        &[("u-2".into(), user_op("u-2", "grace@example.com"))],
    )
    .await;
    wait_until("the route halted", Duration::from_secs(30), &sy, || {
        sy.health()
            .is_some_and(|(status, h)| status == 503 && h["routes"][0]["state"] == "halted")
    });
    let reason = sy.health().unwrap().1["routes"][0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("offset 1") && reason.contains("sink in switchyard"),
        "{reason}"
    );
    assert!(sy.log_text().contains("503"), "{}", sy.log_text());
    sy.terminate(Duration::from_secs(30));
    assert_eq!(committed_offset(&group, &source, 0), Some(1));

    // The endpoint is back: a restart delivers the held record.
    let (code, _) = http_request(
        "DELETE",
        &format!("{}/_mock/faults", crm.url),
        Some(MOCK_CRM_CONTROL_TOKEN),
        Vec::new(),
    );
    assert_eq!(code, 200);
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    wait_until(
        "u-2 delivered after the restart",
        Duration::from_secs(30),
        &sy,
        || crm.all("users").contains_key("u-2"),
    );
    assert_eq!(crm.stats()["by_status"]["201"], 2);
}

/// What the test endpoint received, per key, in arrival order.
#[derive(Default)]
struct Received {
    by_key: BTreeMap<String, Vec<(String, Value)>>,
    /// Keys answered 503 once already.
    failed_once: Vec<String>,
}

#[tokio::test(flavor = "multi_thread")]
async fn json_post_delivers_each_keys_values_in_order_with_a_stable_idempotency_key() {
    // An endpoint that answers each idempotency key 503 the first time.
    let received = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(r): State<Arc<Mutex<Received>>>, headers: HeaderMap, body: String| async move {
                    let idempotency = headers["idempotency-key"].to_str().unwrap().to_owned();
                    let value: Value = serde_json::from_str(&body).unwrap();
                    let mut r = r.lock().unwrap();
                    if !r.failed_once.contains(&idempotency) {
                        r.failed_once.push(idempotency);
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let key = value["key"].as_str().unwrap().to_owned();
                    r.by_key.entry(key).or_default().push((idempotency, value));
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let source = unique("hook");
    create_topics(&[&source], 1).await;
    let routes = format!(
        r#"
[[routes]]
name = "hook"
source = {{ topics = ["{source}"], group = "{group}" }}
sink = {{ http = {{ url = "http://{addr}/hook", backoff_ms = 20, max_backoff_ms = 100, concurrency = 4 }} }}
"#,
        group = unique("hook"),
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    const PER_KEY: usize = 30;
    let keys = ["a", "b", "c", "d", "e", "f"];
    let records: Vec<(String, String)> = (0..PER_KEY)
        .flat_map(|n| {
            keys.iter()
                .map(move |k| (k.to_string(), json!({"key": k, "n": n}).to_string()))
        })
        .collect();
    produce(&producer(), &source, &records).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = received
            .lock()
            .unwrap()
            .by_key
            .values()
            .map(Vec::len)
            .sum::<usize>();
        if done == records.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} delivered:\n{}",
            records.len(),
            sy.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = received.lock().unwrap();
    for key in keys {
        let values = &received.by_key[key];
        let order: Vec<u64> = values
            .iter()
            .map(|(_, v)| v["n"].as_u64().unwrap())
            .collect();
        assert_eq!(
            order,
            (0..PER_KEY as u64).collect::<Vec<_>>(),
            "key {key} out of order"
        );
    }
    // Every value retried once, under the key it was first sent with; no
    // two values share a key.
    let mut idempotency: Vec<&String> =
        received.by_key.values().flatten().map(|(k, _)| k).collect();
    idempotency.sort();
    idempotency.dedup();
    assert_eq!(idempotency.len(), records.len());
    assert_eq!(received.failed_once.len(), records.len());
    assert!(idempotency.iter().all(|k| received.failed_once.contains(k)));
}

/// An endpoint that answers with a redirect does not get the sink's
/// credentials sent on to where it points: the redirect is not followed,
/// and the record is dead-lettered with the answer, which is read only so
/// far (a huge body does not fill the sink's memory).
#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_not_followed_and_answers_are_read_only_so_far() {
    let followed = Arc::new(Mutex::new(Vec::<String>::new()));
    let app = axum::Router::new()
        .route(
            "/hook",
            post(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, "/elsewhere")],
                    "x".repeat(4 << 20),
                )
            }),
        )
        .route(
            "/elsewhere",
            post(
                |State(seen): State<Arc<Mutex<Vec<String>>>>, headers: HeaderMap| async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    seen.lock().unwrap().push(auth);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(followed.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (source, dlq) = (unique("redirect"), unique("redirect-dlq"));
    create_topics(&[&source, &dlq], 1).await;
    let routes = format!(
        r#"
[[routes]]
name = "redirected"
source = {{ topics = ["{source}"], group = "{group}" }}
sink = {{ http = {{ url = "http://{addr}/hook", headers = {{ Authorization = "Bearer sink-secret" }} }} }}
dead_letter = {{ topic = "{dlq}" }}
"#,
        group = unique("redirected"),
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    produce(&producer(), &source, &[("k".into(), "{}".into())]).await;
    let dead = read_topic(&dlq, 1, Duration::from_secs(30));
    assert_eq!(dead.len(), 1, "{}", sy.log_text());
    let error = &dead[0].headers["switchyard-dlq-error"];
    assert!(error.contains("answered 307"), "{error}");
    assert!(error.len() < 1000, "{} bytes of error", error.len());
    assert!(
        followed.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
    assert!(!sy.log_text().contains("sink-secret"));
}
