//! The events API over real sockets on real Kafka: the examples of the
//! event-API document as written (202, the output shape, `data: null`),
//! every refusal with its status (400 with every reason, 413, 415, 503,
//! bad `limit`), what 202 promises (the event is on the topic), the order
//! and limits of `GET /events`, and the public listener; reads behind a
//! bearer token, the refusal to start with open reads beyond loopback, and
//! a configurable largest `limit`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::*;

const TOKEN: &str = "events-admin-token-0123456789";

struct Api {
    sy: Switchyard,
    /// The public listener: the event APIs only.
    public: String,
    topic: String,
}

async fn start() -> Api {
    start_with_partitions(2).await
}

/// With `partitions` on the events topic: one makes the processing order
/// the order of posting.
async fn start_with_partitions(partitions: i32) -> Api {
    let topic = unique("user-events");
    create_topics(&[&topic], partitions).await;
    let public = free_addr();
    let routes = format!(
        r#"
[http]
public = "{public}"

[events_api]
ingest_route = "events-ingest"
recent_buffer = "recent"
max_body_bytes = 1024

[[routes]]
name = "events-ingest"
source = {{ http = true }}
sink = {{ topic = "{topic}" }}
[[routes.chain]]
plugin = "validate"
config.fields.userId = {{ required = true, type = "string", min_length = 1 }}
config.fields.type = {{ required = true, type = "string", one_of = ["login", "logout", "purchase"] }}
config.fields.timestamp = {{ type = "string", format = "rfc3339", default = "now" }}
config.fields.data = {{ type = "object", nullable = true, default_null = true }}

[[routes]]
name = "events-recent"
source = {{ topics = ["{topic}"], group = "{group}" }}
sink = {{ buffer = "recent", capacity = 50 }}
"#,
        group = unique("challenge-consumer"),
    );
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes,
        &["--brokers", &bootstrap()],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    sy.wait_healthy(Duration::from_secs(60));
    Api { sy, public, topic }
}

async fn post(api: &Api, body: &str) -> Reply {
    call(
        "POST",
        &format!("http://{}/events", api.public),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

async fn recent(api: &Api, query: &str) -> Reply {
    call(
        "GET",
        &format!("http://{}/events{query}", api.public),
        &[],
        b"",
    )
    .await
}

/// `GET /events?limit=N` until it holds `n` events.
async fn wait_for_recent(api: &Api, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // All of them, so that an extra one shows.
        let reply = recent(api, "?limit=1000").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let events = reply.json().as_array().unwrap().clone();
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events in GET /events\n{}",
            events.len(),
            api.sy.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_examples_work_as_written() {
    let api = start().await;
    // The two curl examples of the document.
    let login = post(&api, r#"{"userId":"u1","type":"login"}"#).await;
    assert_eq!(login.status, 202, "{login:?}");
    assert_eq!(login.json(), json!({"status": "accepted"}));
    let purchase = post(
        &api,
        r#"{"userId":"u2","type":"purchase","data":{"amount":99.9}}"#,
    )
    .await;
    assert_eq!(purchase.status, 202, "{purchase:?}");

    // 202 means on the broker: a plain consumer reads both, validated
    // (server time filled in), keyed by user.
    let on_topic = read_topic(&api.topic, 2, Duration::from_secs(30));
    let mut by_user: Vec<(String, Value)> = on_topic
        .iter()
        .map(|r| (r.key.clone().unwrap_or_default(), r.json()))
        .collect();
    by_user.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(by_user[0].0, "u1");
    assert_eq!(by_user[1].0, "u2");
    for (_, event) in &by_user {
        let stamp = event["timestamp"].as_str().expect("timestamp filled in");
        assert!(stamp.ends_with('Z') && stamp.len() == 24, "{stamp}");
    }

    // GET /events: the processed events, newest first, in the document's
    // shape, `data` null when none was given.
    let events = wait_for_recent(&api, 2).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["userId"], "u2");
    assert_eq!(events[0]["data"], json!({"amount": 99.9}));
    assert_eq!(events[1]["userId"], "u1");
    assert_eq!(events[1]["type"], "login");
    assert_eq!(events[1]["data"], Value::Null);
    let mut keys: Vec<&str> = events[1]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["data", "timestamp", "type", "userId"]);

    // A timestamp given is kept as given.
    let given = post(
        &api,
        r#"{"userId":"u3","type":"logout","timestamp":"2025-11-06T18:00:00Z"}"#,
    )
    .await;
    assert_eq!(given.status, 202);
    let events = wait_for_recent(&api, 3).await;
    assert_eq!(events[0]["timestamp"], "2025-11-06T18:00:00Z");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_nothing_is_published() {
    let api = start().await;
    let url = format!("http://{}/events", api.public);
    let json_type = [("Content-Type", "application/json")];

    // Invalid events: 400 with every reason.
    let invalid = post(&api, r#"{"type":"signup","timestamp":"yesterday"}"#).await;
    assert_eq!(invalid.status, 400, "{invalid:?}");
    assert_eq!(
        invalid.json(),
        json!({
            "error": "invalid event",
            "reasons": [
                "type: must be one of login, logout, purchase (got \"signup\")",
                "timestamp: must be an RFC 3339 timestamp (got \"yesterday\")",
                "userId: required",
            ]
        })
    );
    let missing = post(&api, r#"{"type":"login"}"#).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["reasons"], json!(["userId: required"]));
    let not_object = post(&api, "[1,2]").await;
    assert_eq!(not_object.status, 400);
    assert_eq!(
        not_object.json()["reasons"],
        json!(["value is not a JSON object: found an array"])
    );

    // Malformed JSON: 400 naming where.
    let malformed = post(&api, r#"{"userId":"#).await;
    assert_eq!(malformed.status, 400);
    let error = malformed.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with("malformed JSON: EOF while parsing"),
        "{error}"
    );

    // Wrong or missing content type: 415.
    let text = call("POST", &url, &[("Content-Type", "text/plain")], b"{}").await;
    assert_eq!(text.status, 415);
    assert_eq!(
        text.json()["error"],
        "Content-Type must be application/json (got text/plain)"
    );
    let none = call("POST", &url, &[], br#"{"userId":"u1","type":"login"}"#).await;
    assert_eq!(none.status, 415);
    assert_eq!(
        none.json()["error"],
        "Content-Type must be application/json (none given)"
    );

    // Too large (the limit here is 1024 bytes): 413, declared or streamed.
    let big = format!(
        r#"{{"userId":"u1","type":"login","data":{{"x":"{}"}}}}"#,
        "a".repeat(2000)
    );
    let too_large = call("POST", &url, &json_type, big.as_bytes()).await;
    assert_eq!(too_large.status, 413);
    assert_eq!(
        too_large.json()["error"],
        "the body is larger than the limit of 1024 bytes"
    );

    // A chunked body (no Content-Length) is cut off at the limit too.
    let chunked = post_chunked(&api.public, &big).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    assert!(
        chunked.contains(r#"{"error":"the body is larger than the limit of 1024 bytes"}"#),
        "{chunked}"
    );

    // A charset parameter is fine.
    let charset = call(
        "POST",
        &url,
        &[("Content-Type", "application/json; charset=utf-8")],
        br#"{"userId":"ok","type":"login"}"#,
    )
    .await;
    assert_eq!(charset.status, 202, "{charset:?}");

    // Bad limits: 400 naming the value.
    for bad in ["abc", "0", "1001", "-1", "2.5"] {
        let reply = recent(&api, &format!("?limit={bad}")).await;
        assert_eq!(reply.status, 400, "limit={bad}: {reply:?}");
        assert_eq!(
            reply.json()["error"],
            format!("limit must be a whole number from 1 to 1000 (got {bad:?})")
        );
    }

    // Of all that, only the one valid event reached the topic.
    let events = wait_for_recent(&api, 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["userId"], "ok");
    assert_eq!(topic_size(&api.topic), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn recent_events_are_newest_first_bounded_and_limited() {
    // One partition: the route processes the events in the order posted.
    let api = start_with_partitions(1).await;
    // 60 events into a buffer of 50.
    for i in 0..60 {
        let reply = post(&api, &format!(r#"{{"userId":"u{i}","type":"login"}}"#)).await;
        assert_eq!(reply.status, 202, "{reply:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = recent(&api, "?limit=1000").await.json();
        if all[0]["userId"] == "u59" {
            break;
        }
        assert!(Instant::now() < deadline, "{all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The 50 most recent, newest first.
    let all = recent(&api, "?limit=1000").await.json();
    let users: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["userId"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (10..60).rev().map(|i| format!("u{i}")).collect();
    assert_eq!(users, expected);
    // Without a limit: 20.
    assert_eq!(recent(&api, "").await.json().as_array().unwrap().len(), 20);
    assert_eq!(
        recent(&api, "?limit=3")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_ingest_route_answers_503_then_serves_again() {
    let api = start().await;
    let admin = format!("http://{}/admin/routes/events-ingest", api.sy.http);
    let auth = format!("Bearer {TOKEN}");
    let paused = call(
        "POST",
        &format!("{admin}/pause"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(paused.status, 200, "{paused:?}");
    let refused = post(&api, r#"{"userId":"u1","type":"login"}"#).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(
        refused.json()["error"],
        "route `events-ingest` is not running"
    );
    let resumed = call(
        "POST",
        &format!("{admin}/resume"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(resumed.status, 200, "{resumed:?}");
    let accepted = post(&api, r#"{"userId":"u1","type":"login"}"#).await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    assert_eq!(topic_size(&api.topic), 1);

    // The public listener serves the event APIs and their docs, not the
    // admin API, health or metrics; the main listener serves both.
    for path in ["/admin/routes", "/healthz", "/metrics"] {
        let reply = call("GET", &format!("http://{}{path}", api.public), &[], b"").await;
        assert_eq!(reply.status, 404, "{path} on the public listener");
    }
    let on_main = call("GET", &format!("http://{}/events", api.sy.http), &[], b"").await;
    assert_eq!(on_main.status, 200);
    // The ingest route counts what it took and refused.
    let routes = call(
        "GET",
        &format!("http://{}/admin/routes", api.sy.http),
        &[],
        b"",
    )
    .await;
    let ingest = routes.json()["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "events-ingest")
        .cloned()
        .unwrap();
    assert_eq!(ingest["records_in"], 1, "{ingest}");
    assert_eq!(ingest["records_out"], 1, "{ingest}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_failures_on_an_event_are_500_or_503_and_publish_nothing() {
    let topic = unique("chaos-events");
    create_topics(&[&topic], 1).await;
    let routes = format!(
        r#"
[events_api]
ingest_route = "ingest"
recent_buffer = "recent"

[[routes]]
name = "ingest"
source = {{ http = true }}
sink = {{ topic = "{topic}" }}
chain = [{{ plugin = "chaos" }}]
call_timeout_ms = 200
on_error = {{ max_retries = 0 }}

[[routes]]
name = "recent"
source = {{ topics = ["{topic}"] }}
sink = {{ buffer = "recent" }}
"#
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    let url = format!("http://{}/events", sy.http);
    let post = |body: &'static str| {
        let url = url.clone();
        async move {
            call(
                "POST",
                &url,
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
            .await
        }
    };
    // A trap and a missed deadline: the server's fault, 500, logged.
    let trap = post(r#""panic""#).await;
    assert_eq!(trap.status, 500, "{trap:?}");
    assert!(
        trap.json()["error"].as_str().unwrap().contains("chaos@"),
        "{trap:?}"
    );
    let endless = post(r#""loop""#).await;
    assert_eq!(endless.status, 500, "{endless:?}");
    assert!(
        endless.json()["error"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{endless:?}"
    );
    // A transient failure: 503, try again.
    let retry = post(r#""retry""#).await;
    assert_eq!(retry.status, 503, "{retry:?}");
    assert!(retry.json()["error"]
        .as_str()
        .unwrap()
        .contains("chaos: try again"));
    // A drop is accepted and publishes nothing.
    assert_eq!(post(r#""drop""#).await.status, 202);
    // The route still serves; only this last event reached the topic.
    assert_eq!(post(r#""fine""#).await.status, 202);
    let records = read_topic(&topic, 1, Duration::from_secs(20));
    assert_eq!(records[0].value.as_deref(), Some(r#""fine""#));
    assert_eq!(topic_size(&topic), 1);
}

/// `POST /events` with `body` sent in 256-byte chunks, over a raw socket
/// (no `Content-Length`); the whole answer.
async fn post_chunked(addr: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(256) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            std::str::from_utf8(chunk).unwrap()
        ));
    }
    request.push_str("0\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = socket.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A routes file with the events API, `events_api` settings added to its
/// table and `public` as the public listener.
fn events_routes(topic: &str, public: &str, events_api: &str) -> String {
    format!(
        r#"
[http]
public = "{public}"

[events_api]
ingest_route = "events-ingest"
recent_buffer = "recent"
{events_api}

[[routes]]
name = "events-ingest"
source = {{ http = true }}
sink = {{ topic = "{topic}" }}

[[routes]]
name = "events-recent"
source = {{ topics = ["{topic}"], group = "{group}" }}
sink = {{ buffer = "recent", capacity = 50 }}
"#,
        group = unique("readers"),
    )
}

const READ_TOKEN: &str = "events-read-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn reads_need_a_bearer_token_when_read_tokens_are_set() {
    let topic = unique("read-tokens");
    create_topics(&[&topic], 1).await;
    let public = free_addr();
    let routes = events_routes(
        &topic,
        &public,
        r#"read_tokens = [{ "$env" = "EVENTS_READ_TOKEN" }, "a-second-token-for-a-rotation"]"#,
    );
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes,
        &["--brokers", &bootstrap()],
        &[("EVENTS_READ_TOKEN", READ_TOKEN)],
    );
    sy.wait_healthy(Duration::from_secs(60));
    // Posting stays open.
    let posted = call(
        "POST",
        &format!("http://{public}/events"),
        &[("Content-Type", "application/json")],
        br#"{"userId":"u1","type":"login"}"#,
    )
    .await;
    assert_eq!(posted.status, 202, "{posted:?}");

    let url = format!("http://{public}/events");
    let bearer = format!("Bearer {READ_TOKEN}");
    // Without a token, with a wrong one, with another scheme: 401, saying
    // how to authenticate, on both listeners.
    for (listener, auth) in [
        (&public, None),
        (&sy.http, None),
        (&public, Some("Bearer not-the-read-token-at-all")),
        (&public, Some("Basic ZGVtbzpkZW1vLXBhc3N3b3Jk")),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let reply = call("GET", &format!("http://{listener}/events"), &headers, b"").await;
        assert_eq!(reply.status, 401, "{auth:?}: {reply:?}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer", "{reply:?}");
        let expected = if auth.is_some_and(|a| a.starts_with("Bearer")) {
            "the bearer token is not valid"
        } else {
            "GET /events needs `Authorization: Bearer <read token>`"
        };
        assert_eq!(reply.json()["error"], expected, "{reply:?}");
    }
    // With either token: the events.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = call("GET", &url, &[("Authorization", &bearer)], b"").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        if reply.json().as_array().unwrap().len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = call(
        "GET",
        &url,
        &[("Authorization", "bearer a-second-token-for-a-rotation")],
        b"",
    )
    .await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.json()[0]["userId"], "u1");
    // The token is checked before the query: a bad limit of an
    // unauthenticated client is a 401, not a hint.
    let unauthenticated = call("GET", &format!("{url}?limit=abc"), &[], b"").await;
    assert_eq!(unauthenticated.status, 401);
    // Tokens never reach the log.
    assert!(!sy.log_text().contains(READ_TOKEN), "{}", sy.log_text());
    assert!(sy.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn open_reads_beyond_loopback_refuse_to_start_unless_declared_public() {
    let topic = unique("exposed");
    let exposed = format!("0.0.0.0:{}", free_addr().rsplit(':').next().unwrap());
    // The public listener beyond loopback, reads open: refused, naming
    // both ways out, before anything else starts.
    let staged = tempfile::tempdir().unwrap();
    let config = staged.path().join("routes.toml");
    let write = |text: &str| {
        std::fs::write(
            &config,
            format!(
                "plugins_dir = {:?}\n{text}",
                plugins_dir().display().to_string()
            ),
        )
        .unwrap()
    };
    write(&events_routes(&topic, &exposed, ""));
    let run = |http: &str| {
        run_to_exit(
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--brokers",
                "127.0.0.1:1",
                "--http",
                http,
            ],
            Duration::from_secs(60),
        )
    };
    let (code, stderr) = run(&free_addr());
    assert_ne!(code, Some(0), "{stderr}");
    for needle in [
        format!("GET /events would be open to anyone who reaches {exposed}"),
        "`events_api.read_tokens = [".to_owned(),
        "`events_api.public_reads = true`".to_owned(),
    ] {
        assert!(stderr.contains(&needle), "lacks {needle:?}:\n{stderr}");
    }
    // The main listener serves the events API too: the same beyond
    // loopback (with an admin token, which that listener needs there).
    write(&events_routes(&topic, &free_addr(), ""));
    std::fs::write(
        staged.path().join("admin-token"),
        "an-admin-token-0123456789",
    )
    .unwrap();
    let main_exposed = format!("0.0.0.0:{}", free_addr().rsplit(':').next().unwrap());
    let (code, stderr) = run_to_exit(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--brokers",
            "127.0.0.1:1",
            "--http",
            &main_exposed,
            "--admin-token-file",
            staged.path().join("admin-token").to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("anyone who reaches {main_exposed}")),
        "{stderr}"
    );
    // Tokens and `public_reads = true` together contradict each other.
    write(&events_routes(
        &topic,
        &exposed,
        "public_reads = true\nread_tokens = [\"a-read-token-0123456789\"]",
    ));
    let (code, stderr) = run(&free_addr());
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "`events_api.public_reads = true` and `events_api.read_tokens` contradict each other"
        ),
        "{stderr}"
    );

    // Declared public on purpose: it starts, says so, and serves.
    create_topics(&[&topic], 1).await;
    let mut sy = Switchyard::start(&events_routes(&topic, &exposed, "public_reads = true"));
    sy.wait_healthy(Duration::from_secs(60));
    let port = exposed.rsplit(':').next().unwrap();
    let reply = call("GET", &format!("http://127.0.0.1:{port}/events"), &[], b"").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        sy.log_text()
            .contains("GET /events is open to anyone who reaches"),
        "{}",
        sy.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_largest_limit_is_configurable_and_named_when_exceeded() {
    let topic = unique("max-limit");
    create_topics(&[&topic], 1).await;
    let public = free_addr();
    let mut sy = Switchyard::start(&events_routes(&topic, &public, "max_limit = 50"));
    sy.wait_healthy(Duration::from_secs(60));
    let ok = call("GET", &format!("http://{public}/events?limit=50"), &[], b"").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    for bad in ["51", "1000"] {
        let reply = call(
            "GET",
            &format!("http://{public}/events?limit={bad}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(reply.status, 400, "{reply:?}");
        assert_eq!(
            reply.json()["error"],
            format!("limit must be a whole number from 1 to 50 (got {bad:?})")
        );
    }
    // The document says the same.
    let spec = call("GET", &format!("http://{public}/openapi.json"), &[], b"")
        .await
        .json();
    let limit = spec["paths"]["/events"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .cloned()
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], 50, "{limit}");
    assert!(
        limit["description"].as_str().unwrap().contains("1 to 50"),
        "{limit}"
    );
}
