//! The routes file `make run` starts, in development mode (the in-memory
//! broker, nothing else to start): the event API document's examples work
//! as written, on `localhost:5000`, and so does the streams API.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_routes_file_serves_the_event_apis_on_port_5000() {
    let shipped = std::fs::read_to_string(workspace().join("switchyard.toml")).unwrap();
    // Only `plugins_dir` changes: the test's own copy lives elsewhere.
    let routes: String = shipped
        .lines()
        .filter(|l| !l.starts_with("plugins_dir"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes,
        &[],
        &[("SWITCHYARD_STREAMS_PASSWORD", "demo-password")],
    );
    sy.wait_healthy(Duration::from_secs(60));
    assert!(sy.log_text().contains("DEVELOPMENT MODE"));

    // As written in the document.
    let json_type = [("Content-Type", "application/json")];
    let first = call(
        "POST",
        "http://localhost:5000/events",
        &json_type,
        br#"{"userId":"u1","type":"login"}"#,
    )
    .await;
    assert_eq!(first.status, 202, "{first:?}");
    let second = call(
        "POST",
        "http://localhost:5000/events",
        &json_type,
        br#"{"userId":"u2","type":"purchase","data":{"amount":99.9}}"#,
    )
    .await;
    assert_eq!(second.status, 202, "{second:?}");
    let invalid = call(
        "POST",
        "http://localhost:5000/events",
        &json_type,
        br#"{"userId":"u1","type":"signup"}"#,
    )
    .await;
    assert_eq!(invalid.status, 400, "{invalid:?}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let reply = call("GET", "http://localhost:5000/events?limit=10", &[], b"").await;
        assert_eq!(reply.status, 200);
        let events = reply.json().as_array().unwrap().clone();
        if events.len() == 2 {
            break events;
        }
        assert!(Instant::now() < deadline, "{events:?}\n{}", sy.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The document's output shape, `data` null when not given.
    let u1 = events.iter().find(|e| e["userId"] == "u1").unwrap();
    assert_eq!(u1["type"], "login");
    assert_eq!(u1["data"], Value::Null);
    assert!(u1["timestamp"].as_str().unwrap().ends_with('Z'));

    // Swagger UI, as the document has it.
    let swagger = call("GET", "http://localhost:5000/swagger", &[], b"").await;
    assert_eq!(swagger.status, 200, "{swagger:?}");
    assert!(swagger.text.contains("swagger-ui"), "{}", swagger.text);

    // The streams API, with the demo user, on the development broker.
    let auth = "Basic ZGVtbzpkZW1vLXBhc3N3b3Jk"; // demo:demo-password
    let event = json!({
        "event": {"name": "OrderPlaced", "version": 1},
        "system": {"id": "alv123", "name": "codello alvine", "time": "2017-09-06 13:58:12", "timezone": "Europe/Berlin"},
        "trigger": {"type": "system", "name": "/path/to/script.php"},
        "payload": {},
    })
    .to_string();
    let url = "http://localhost:5000/api/v1/streams/orders/events";
    let appended = call(
        "POST",
        url,
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
            ("X-Producer-ID", "shop"),
        ],
        event.as_bytes(),
    )
    .await;
    assert_eq!(appended.status, 200, "{appended:?}");
    let read = call(
        "GET",
        &format!("{url}?eventName=OrderPlaced&limit=10"),
        &[("Authorization", auth), ("X-Consumer-ID", "billing")],
        b"",
    )
    .await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json()[0]["eventId"], appended.json());
}
