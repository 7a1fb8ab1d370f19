//! The one-command platform start (`make run`, i.e. `scripts/run.sh`) with
//! the shipped routes file, in development mode (the in-memory broker,
//! nothing else to start): switchyard, the mock CRM and the event producer
//! come up together; the event API document's examples work as written on
//! `localhost:5000`, and so does the streams API; the producer's events
//! reach the CRM and the public stream; SIGTERM stops everything.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::*;

/// `scripts/run.sh` with the binaries the test command built; stopped
/// (SIGTERM, as Ctrl-C would) when dropped.
struct Platform {
    child: Option<Child>,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Platform {
    fn start() -> Platform {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("platform.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(workspace().join("scripts/run.sh"))
            .env("SWITCHYARD_BIN_DIR", workspace().join("target/debug"))
            .env("MOBILITY_RATE", "50")
            .env(
                "SWITCHYARD_CACHE_DIR",
                workspace().join("target/test-cache"),
            )
            // The shipped file names `target/plugins`, where the test
            // command builds the plugins.
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("scripts/run.sh");
        Platform {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for the script (which waits for all three).
    fn stop(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the platform did not stop within {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop(Duration::from_secs(60));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_one_command_platform_serves_the_event_apis_and_syncs_the_crm() {
    let mut platform = Platform::start();
    let deadline = Instant::now() + Duration::from_secs(90);
    let health = loop {
        if let Some((200, health)) = get_json("http://127.0.0.1:8080/healthz") {
            break health;
        }
        assert!(
            Instant::now() < deadline,
            "switchyard not healthy:\n{}",
            platform.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health["kafka"]["embedded"], true, "{health}");
    assert!(platform.log_text().contains("DEVELOPMENT MODE"));
    let running: Vec<&str> = health["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for route in [
        "demo",
        "events-ingest",
        "events-recent",
        "crm-sync",
        "public-stream",
    ] {
        assert!(running.contains(&route), "{route} not running: {health}");
    }

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
        assert!(
            Instant::now() < deadline,
            "{events:?}\n{}",
            platform.log_text()
        );
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

    // The producer's events reach the CRM through `crm-sync`: users (and
    // soon trips) appear, with the contract's fields.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let users = get_json("http://127.0.0.1:5050/users").map(|(_, v)| v);
        let trips = get_json("http://127.0.0.1:5050/trips").map(|(_, v)| v);
        let count = |v: &Option<Value>| v.as_ref().and_then(Value::as_array).map_or(0, Vec::len);
        if count(&users) > 0 && count(&trips) > 0 {
            let user = &users.unwrap()[0];
            for field in [
                "Id",
                "LastName",
                "FirstName",
                "Email",
                "LastTripType",
                "LastTripId",
                "LastTripDate",
            ] {
                assert!(user.get(field).is_some(), "{field} missing: {user}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no users and trips in the CRM:\n{}",
            platform.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ... and the public stream through `public-stream`.
    let public = Command::new(workspace().join("target/debug/switchyard"))
        .args(["consume", "mobility.public.v1", "-n", "3"])
        .output()
        .unwrap();
    assert!(
        public.status.success(),
        "{}",
        String::from_utf8_lossy(&public.stderr)
    );
    let lines = String::from_utf8(public.stdout).unwrap();
    for line in lines.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["specversion"], "1.0", "{event}");
        assert!(
            event["subject"].as_str().unwrap().starts_with("sy:ps:"),
            "{event}"
        );
    }
    assert_eq!(lines.lines().count(), 3, "{lines}");

    let status = platform.stop(Duration::from_secs(60));
    assert!(status.success(), "{status}\n{}", platform.log_text());
    assert!(
        platform.log_text().contains("switchyard stopped"),
        "switchyard did not drain and stop:\n{}",
        platform.log_text()
    );
}
