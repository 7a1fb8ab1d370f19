//! The ingest API over real sockets on Kafka: JSON Lines through an
//! HTTP-fed route's chain, published in order and acknowledged; refused
//! lines named with their reasons; every refusal of a request with its
//! status (401, 404, 413, 415, 400, 503).

use std::time::Duration;

use serde_json::json;
use switchyard_tests::*;

const TOKEN: &str = "ingest-test-token-0123456789";
const ADMIN: &str = "ingest-test-admin-token-0123";

fn routes(topic: &str) -> String {
    format!(
        r#"
[ingest_api]
routes = ["in"]
tokens = [{{ "$env" = "INGEST_TEST_TOKEN" }}]
max_body_bytes = 2048

[[routes]]
name = "in"
source = {{ http = true }}
sink = {{ topic = "{topic}" }}
[[routes.chain]]
plugin = "validate"
config.fields.id = {{ required = true, type = "integer" }}

[[routes]]
name = "plain"
source = {{ http = true }}
sink = {{ topic = "{topic}" }}
"#
    )
}

async fn post(sy: &Switchyard, route: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    call(
        "POST",
        &format!("http://{}/ingest/{route}", sy.http),
        headers,
        body.as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_are_published_in_order_and_refusals_are_named() {
    let topic = unique("ingest");
    create_topics(&[&topic], 1).await;
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes(&topic),
        &["--brokers", &bootstrap()],
        &[
            ("INGEST_TEST_TOKEN", TOKEN),
            ("SWITCHYARD_ADMIN_TOKEN", ADMIN),
        ],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let auth = format!("Bearer {TOKEN}");
    let ndjson = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-ndjson"),
    ];

    let body = "{\"id\":1}\n{\"id\":\"two\"}\n\n{\"id\":3}\nnot json\n";
    let reply = post(&sy, "in", &ndjson, body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let answer = reply.json();
    assert_eq!(answer["accepted"], 2, "{answer}");
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{answer}");
    assert_eq!(rejected[0]["line"], 2);
    assert!(
        rejected[0]["reasons"][0].as_str().unwrap().contains("id"),
        "{answer}"
    );
    assert_eq!(rejected[1]["line"], 5);
    // 200 means on the broker: both accepted lines are there, in order.
    let records = read_topic(&topic, 2, Duration::from_secs(10));
    let ids: Vec<i64> = records
        .iter()
        .map(|r| r.json()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3]);

    // Refusals of the request, nothing published by any of them.
    let cases: Vec<(u16, Reply)> = vec![
        (
            401,
            post(
                &sy,
                "in",
                &[("Content-Type", "application/x-ndjson")],
                "{\"id\":9}\n",
            )
            .await,
        ),
        (
            401,
            post(
                &sy,
                "in",
                &[
                    ("Authorization", "Bearer wrong-token-0123456789"),
                    ("Content-Type", "application/x-ndjson"),
                ],
                "{\"id\":9}\n",
            )
            .await,
        ),
        (404, post(&sy, "plain", &ndjson, "{\"id\":9}\n").await),
        (
            415,
            post(
                &sy,
                "in",
                &[
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/json"),
                ],
                "{\"id\":9}",
            )
            .await,
        ),
        (
            413,
            post(
                &sy,
                "in",
                &ndjson,
                &format!("{}\n", json!({"id": 9, "pad": "x".repeat(4096)})),
            )
            .await,
        ),
        (400, post(&sy, "in", &ndjson, "\n\n").await),
    ];
    for (status, reply) in &cases {
        assert_eq!(reply.status, *status, "{reply:?}");
        assert!(reply.json()["error"].is_string(), "{reply:?}");
    }
    assert_eq!(cases[0].1.headers["www-authenticate"], "Bearer");
    assert_eq!(topic_size(&topic), 2);

    // A paused route is a 503 (post again later), then serves again.
    let admin = format!("http://{}/admin/routes/in", sy.http);
    let (status, _) = http_request("POST", &format!("{admin}/pause"), Some(ADMIN), Vec::new());
    assert_eq!(status, 200);
    let paused = post(&sy, "in", &ndjson, "{\"id\":4}\n").await;
    assert_eq!(paused.status, 503, "{paused:?}");
    let (status, _) = http_request("POST", &format!("{admin}/resume"), Some(ADMIN), Vec::new());
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = post(&sy, "in", &ndjson, "{\"id\":4}\n").await;
        if reply.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{reply:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!sy.log_text().contains(TOKEN), "the token was logged");
}

/// One post of many lines is run through the chain in batches of the
/// route's `batch_size`, as records read from Kafka are: no plugin call is
/// handed more than that, whatever the client sends. Counted from the
/// plugin's call histogram on `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn a_post_reaches_plugins_in_batches_of_the_routes_batch_size() {
    let topic = unique("ingest-batches");
    create_topics(&[&topic], 1).await;
    let routes = format!(
        r#"
[ingest_api]
routes = ["batched"]
tokens = [{{ "$env" = "INGEST_TEST_TOKEN" }}]

[[routes]]
name = "batched"
source = {{ http = true }}
sink = {{ topic = "{topic}" }}
batch_size = 10
[[routes.chain]]
plugin = "validate"
config.fields.id = {{ required = true, type = "integer" }}
"#
    );
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes,
        &["--brokers", &bootstrap()],
        &[("INGEST_TEST_TOKEN", TOKEN)],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let body: String = (0..95).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    let auth = format!("Bearer {TOKEN}");
    let reply = post(
        &sy,
        "batched",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
        ],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["accepted"], 95, "{reply:?}");
    let (_, metrics) = get_text(&format!("http://{}/metrics", sy.http));
    let calls: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("switchyard_plugin_call_seconds_count")
                && l.contains("route=\"batched\"")
                && l.contains("plugin=\"validate\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no call count in:\n{metrics}"));
    // The first instance's `init` is no `process` call: 95 records in
    // batches of 10 are 10 calls.
    assert_eq!(calls, 10, "{metrics}");
    assert_eq!(read_topic(&topic, 95, Duration::from_secs(30)).len(), 95);
}
