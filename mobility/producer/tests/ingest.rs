//! The producer's `--ingest` mode against a stand-in for Switchyard's
//! ingest API: the binary runs as a subprocess (its exit code is part of
//! what is checked), the stand-in in the test, recording every request.

use std::collections::VecDeque;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use mobility_producer::{Clock, SimOptions, Simulation};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

const ROUTE: &str = "/ingest/mobility-ingest";
const TOKEN: &str = "ingest-token-7f3a9c";
const SEED: u64 = 8;
const USERS: usize = 20;
const START: &str = "2026-01-01T00:00:00Z";

/// Decides, for one line, the reasons to reject it (none: accepted).
type Rule = fn(&Value) -> Vec<String>;

/// A request the stand-in received.
#[derive(Clone, Debug)]
struct Request {
    at: Instant,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
    status: u16,
}

impl Request {
    fn lines(&self) -> Vec<String> {
        self.body.lines().map(str::to_owned).collect()
    }
}

struct Fake {
    /// Answers to give before judging lines, one per request (after the
    /// token is checked).
    script: Mutex<VecDeque<(u16, &'static str)>>,
    rule: Rule,
    /// How long each request takes to answer.
    delay: Duration,
    started: Mutex<u64>,
    requests: Mutex<Vec<Request>>,
}

/// The stand-in: the token checked, scripted answers first, then each line
/// judged by its rule.
async fn ingest(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    *fake.started.lock().unwrap() += 1;
    let at = Instant::now();
    tokio::time::sleep(fake.delay).await;
    let get = |name| {
        headers
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let authorization = get(header::AUTHORIZATION);
    let (status, response) = if authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        let response = (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(json!({"error": "invalid bearer token"})),
        )
            .into_response();
        (401, response)
    } else if let Some((status, error)) = fake.script.lock().unwrap().pop_front() {
        let code = StatusCode::from_u16(status).unwrap();
        (
            status,
            (code, axum::Json(json!({ "error": error }))).into_response(),
        )
    } else {
        let mut rejected = Vec::new();
        let lines: Vec<&str> = body.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let reasons = (fake.rule)(&serde_json::from_str(line).unwrap());
            if !reasons.is_empty() {
                rejected.push(json!({"line": i + 1, "reasons": reasons}));
            }
        }
        let accepted = lines.len() - rejected.len();
        let answer = json!({"accepted": accepted, "rejected": rejected});
        (200, axum::Json(answer).into_response())
    };
    fake.requests.lock().unwrap().push(Request {
        at,
        authorization,
        content_type: get(header::CONTENT_TYPE),
        body,
        status,
    });
    response
}

fn accept_all(_: &Value) -> Vec<String> {
    Vec::new()
}

impl Fake {
    fn new(script: &[(u16, &'static str)], rule: Rule, delay: Duration) -> Arc<Fake> {
        Arc::new(Fake {
            script: Mutex::new(script.iter().copied().collect()),
            rule,
            delay,
            started: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
        })
    }

    /// Serves on `listener`; the endpoint's URL.
    fn serve(self: &Arc<Fake>, listener: TcpListener) -> String {
        let url = format!("http://{}{ROUTE}", listener.local_addr().unwrap());
        let app = Router::new()
            .route(ROUTE, post(ingest))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    async fn start(script: &[(u16, &'static str)], rule: Rule) -> (Arc<Fake>, String) {
        let fake = Fake::new(script, rule, Duration::ZERO);
        let url = fake.serve(TcpListener::bind("127.0.0.1:0").await.unwrap());
        (fake, url)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The lines of the requests answered 200, in order.
    fn accepted_lines(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(Request::lines)
            .collect()
    }
}

/// The first `n` events of the tests' simulation, as the producer sends
/// them.
fn expected(n: usize) -> Vec<String> {
    let start: DateTime<Utc> = START.parse().unwrap();
    Simulation::new(
        SEED,
        SimOptions {
            users: USERS,
            clock: Clock::Simulated { start },
        },
    )
    .take(n)
    .map(|e| serde_json::to_string(&e).unwrap())
    .collect()
}

/// The producer posting to `url`, with the tests' seed, users and clock
/// (at full speed unless `args` set a `--rate`) and the flags `args`;
/// nothing from the test's own environment.
fn producer(url: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mobility-producer"));
    for (name, _) in std::env::vars() {
        if name.starts_with("MOBILITY_PRODUCER_") {
            command.env_remove(name);
        }
    }
    command
        .args(["--ingest", url, "--seed", &SEED.to_string()])
        .args(["--users", &USERS.to_string(), "--start", START])
        .args(args)
        .args(if args.contains(&"--rate") {
            &[][..]
        } else {
            &["--rate", "0"]
        })
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn wait(child: Child) -> (Output, String) {
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the producer still runs after 60s")
        .unwrap();
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    (output, stderr)
}

/// Runs the producer to its end: its output and its log.
async fn run(url: &str, args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    wait(producer(url, args, env).spawn().unwrap()).await
}

fn with_token<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["--ingest-token", TOKEN], args].concat()
}

/// The summary line of a run's log.
fn done_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| l.contains(" done "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"))
}

fn sigterm(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_every_event_in_order_as_json_lines_with_the_token() {
    let (fake, url) = Fake::start(&[], accept_all).await;
    let started = Instant::now();
    // A linger far longer than the run: full batches go when full, and the
    // last one as soon as the events end, without lingering.
    let args = with_token(&["--count", "1200", "--batch-max", "500"]);
    let (output, stderr) = run(
        &url,
        &[&args[..], &["--batch-linger-ms", "60000"]].concat(),
        &[],
    )
    .await;
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    assert!(started.elapsed() < Duration::from_secs(30));

    let requests = fake.requests();
    let sizes: Vec<usize> = requests.iter().map(|r| r.lines().len()).collect();
    assert_eq!(sizes, [500, 500, 200], "{stderr}");
    for r in &requests {
        assert_eq!(r.status, 200);
        assert_eq!(
            r.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(r.content_type.as_deref(), Some("application/x-ndjson"));
        assert!(r.body.ends_with("}\n"), "each line ends with a newline");
    }
    assert_eq!(fake.accepted_lines(), expected(1200));
    let done = done_line(&stderr);
    for figure in [
        "sent=1200",
        "accepted=1200",
        "rejected=0",
        "unsent=0",
        "retries=0",
    ] {
        assert!(done.contains(figure), "{figure} in {done}");
    }
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_wait_for_the_linger_time_then_go_as_they_are() {
    let (fake, url) = Fake::start(&[], accept_all).await;
    // 10 events a second, each batch waiting 250 ms for more: two or three
    // events per batch (more only if the machine stalls), never the 500
    // allowed.
    let args = with_token(&["--count", "30", "--rate", "10", "--batch-linger-ms", "250"]);
    let (output, stderr) = run(&url, &args, &[]).await;
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    let sizes: Vec<usize> = fake.requests().iter().map(|r| r.lines().len()).collect();
    assert!(sizes.len() >= 4, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n < 15), "{sizes:?}");
    assert_eq!(fake.accepted_lines(), expected(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_503_retries_the_same_batch_losing_and_reordering_nothing() {
    let outage = [
        (503, "Kafka did not acknowledge in time"),
        (503, "the route is not running"),
        (500, "internal error"),
    ];
    let (fake, url) = Fake::start(&outage, accept_all).await;
    let args = with_token(&[
        "--count",
        "700",
        "--batch-max",
        "300",
        "--batch-linger-ms",
        "60000",
    ]);
    let (output, stderr) = run(&url, &args, &[]).await;
    assert!(output.status.success(), "{}\n{stderr}", output.status);

    let requests = fake.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 500, 200, 200, 200]);
    // The batch refused is posted again as it was, before the next one.
    for r in &requests[1..4] {
        assert_eq!(r.body, requests[0].body);
    }
    assert_eq!(requests[0].lines(), expected(300));
    assert_eq!(fake.accepted_lines(), expected(700));
    // Paused between the attempts: 200 ms, then 400, then 800, each at
    // least half of it.
    for (i, least) in [100, 200, 400].into_iter().enumerate() {
        let pause = requests[i + 1].at - requests[i].at;
        assert!(
            pause >= Duration::from_millis(least),
            "pause {i}: {pause:?}"
        );
    }
    assert!(
        stderr.contains("Kafka did not acknowledge in time"),
        "{stderr}"
    );
    let done = done_line(&stderr);
    assert!(
        done.contains("accepted=700") && done.contains("retries=3"),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_for_an_ingest_api_that_is_not_listening_yet() {
    // A free port, listened on only after a while.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}{ROUTE}");
    let child = producer(&url, &with_token(&["--count", "50"]), &[])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fake = Fake::new(&[], accept_all, Duration::ZERO);
    fake.serve(TcpListener::bind(("127.0.0.1", port)).await.unwrap());
    let (output, stderr) = wait(child).await;
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    assert_eq!(fake.accepted_lines(), expected(50));
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!done_line(&stderr).contains("retries=0"), "{stderr}");
}

/// Rejects every profile update, as if their e-mail addresses were bad.
fn reject_updates(event: &Value) -> Vec<String> {
    if event["type"] == "UserUpdated" {
        vec![
            "payload.email: not accepted".to_owned(),
            "second reason".to_owned(),
        ]
    } else {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_events_are_logged_and_counted_not_retried_and_fail_the_run() {
    let (fake, url) = Fake::start(&[], reject_updates).await;
    let (output, stderr) = run(
        &url,
        &with_token(&["--count", "400", "--batch-max", "100"]),
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{stderr}");

    let events: Vec<Value> = expected(400)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rejected: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "UserUpdated")
        .collect();
    assert!(rejected.len() >= 3, "the simulation updates profiles");
    // Every event posted once, in order, and the run went on past the
    // rejections.
    let posted: Vec<String> = fake.requests().iter().flat_map(Request::lines).collect();
    assert_eq!(posted, expected(400));
    let done = done_line(&stderr);
    let accepted = format!("accepted={}", 400 - rejected.len());
    let rejections = format!("rejected={}", rejected.len());
    assert!(
        done.contains(&accepted) && done.contains(&rejections),
        "{done}"
    );
    for event in &rejected {
        let id = event["eventId"].as_str().unwrap();
        let line = stderr
            .lines()
            .find(|l| l.contains("ERROR") && l.contains(id))
            .unwrap_or_else(|| panic!("no error for {id}:\n{stderr}"));
        assert!(
            line.contains("payload.email: not accepted") && line.contains("second reason"),
            "{line}"
        );
        // The line holds personal data in plaintext: it is not logged.
        let email = event["payload"]["email"].as_str().unwrap();
        assert!(!stderr.contains(email), "{email} logged:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_stops_the_run_with_the_error_text() {
    let (fake, url) = Fake::start(&[], accept_all).await;
    let started = Instant::now();
    let (output, stderr) = run(
        &url,
        &["--ingest-token", "not-the-token", "--count", "100"],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "retried a 401");
    assert_eq!(fake.requests().len(), 1, "retried a 401");
    assert!(
        stderr.contains("401 Unauthorized: invalid bearer token"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-token"), "{stderr}");

    // An unknown route: the stand-in's 404 has no JSON, only its status.
    let unknown = url.replace(ROUTE, "/ingest/no-such-route");
    let (output, stderr) = run(&unknown, &with_token(&["--count", "100"]), &[]).await;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("404 Not Found"), "{stderr}");
    assert_eq!(fake.requests().len(), 1);

    // Client errors of the API itself.
    let (fake, url) = Fake::start(&[(413, "the body is over 1 MiB")], accept_all).await;
    let (output, stderr) = run(&url, &with_token(&["--count", "100"]), &[]).await;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("413 Payload Too Large: the body is over 1 MiB"),
        "{stderr}"
    );
    assert_eq!(fake.requests().len(), 1);
    assert!(done_line(&stderr).contains("unsent=100"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_never_appears_in_the_logs() {
    // A retry and rejections in each run, so that those are logged too.
    let (fake, url) = Fake::start(&[(503, "not yet")], reject_updates).await;
    let everything = [("MOBILITY_PRODUCER_LOG", "trace")];
    // By flag, then from the environment.
    let (output, stderr) = run(&url, &with_token(&["--count", "200"]), &everything).await;
    assert_eq!(output.status.code(), Some(1), "rejections fail the run");
    fake.script.lock().unwrap().push_back((503, "not yet"));
    let env = [everything[0], ("MOBILITY_PRODUCER_INGEST_TOKEN", TOKEN)];
    let (_, from_env) = run(&url, &["--count", "200"], &env).await;
    assert!(fake.requests().iter().all(|r| r.status != 401));
    for log in [&stderr, &from_env] {
        // The flags are logged (at debug), and the client's traces are on.
        assert!(
            log.contains("ingest_token: Some(Token(<redacted>))"),
            "{log}"
        );
        assert!(log.contains("retrying the same batch"), "{log}");
        assert!(!log.contains(TOKEN), "the token is logged:\n{log}");
        // Nor any personal data, even at the finest level.
        for line in expected(200) {
            let event: Value = serde_json::from_str(&line).unwrap();
            if let Some(email) = event["payload"]["email"].as_str() {
                assert!(!log.contains(email), "{email} logged");
            }
        }
    }

    let help = producer(&url, &["--help"], &env[1..])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("MOBILITY_PRODUCER_INGEST_TOKEN"), "{help}");
    assert!(!help.contains(TOKEN), "{help}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigterm_stops_after_the_request_in_flight_counting_what_was_accepted() {
    // Slow answers, so that a request is in flight when the signal comes.
    let fake = Fake::new(&[], accept_all, Duration::from_millis(400));
    let url = fake.serve(TcpListener::bind("127.0.0.1:0").await.unwrap());
    let child = producer(&url, &with_token(&["--batch-max", "100"]), &[])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigterm(&child);
    let signalled = Instant::now();
    let (output, stderr) = wait(child).await;
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    assert!(signalled.elapsed() < Duration::from_secs(5));

    // Every request was answered, and nothing was sent after.
    let requests = fake.requests();
    assert!(requests.len() >= 2, "{requests:?}");
    assert_eq!(*fake.started.lock().unwrap(), requests.len() as u64);
    let accepted = fake.accepted_lines();
    assert_eq!(accepted, expected(accepted.len()));
    let done = done_line(&stderr);
    assert!(
        done.contains(&format!("accepted={} ", accepted.len())),
        "{done}"
    );
    assert!(done.contains("unconfirmed=0"), "{done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigterm_while_retrying_gives_the_batch_up_as_unconfirmed() {
    let outage = [(503, "Kafka did not acknowledge in time"); 100];
    let (fake, url) = Fake::start(&outage, accept_all).await;
    let args = with_token(&["--count", "50", "--batch-linger-ms", "60000"]);
    let child = producer(&url, &args, &[]).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigterm(&child);
    let signalled = Instant::now();
    let (output, stderr) = wait(child).await;
    // The events may or may not have been published: the run failed.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "kept retrying"
    );
    assert!(fake.requests().len() >= 2);
    assert!(fake.requests().iter().all(|r| r.status == 503));
    let done = done_line(&stderr);
    assert!(
        done.contains("accepted=0") && done.contains("unconfirmed=50"),
        "{done}"
    );
}
