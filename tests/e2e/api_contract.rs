//! The OpenAPI documents tell the truth, checked by Schemathesis: from each
//! document it generates requests, valid and invalid, sends them to the
//! running server over real sockets and checks every answer against the
//! document (`--checks all`): statuses, content types, bodies and headers
//! as documented, valid requests accepted, invalid ones refused, secured
//! operations refusing requests without credentials, no server errors.
//!
//! Against switchyard's event APIs (the shipped events routes on Kafka, the
//! streams API), with reads open as in development and behind a read token
//! as in production, and against the mock CRM. Schemathesis is pinned
//! (scripts/schemathesis-requirements.txt) and installed by
//! `scripts/setup.sh --with-kafka` into `target/schemathesis`; few examples
//! per operation keep each run to seconds.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_tests::*;

use crate::platform;

/// Examples per operation and phase: enough to cover each operation's
/// shapes, few enough for the whole file to run in about a minute.
const MAX_EXAMPLES: &str = "20";
/// The longest one Schemathesis run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

const STREAMS_USER: &str = "contract";
const STREAMS_PASSWORD: &str = "contract-password";
const READ_TOKEN: &str = "contract-read-token-0123456789";

/// The `st` command of the pinned Schemathesis.
fn schemathesis() -> PathBuf {
    let st = std::env::var_os("SWITCHYARD_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/schemathesis/bin/st"));
    assert!(
        st.is_file(),
        "{} not found: `scripts/setup.sh --with-kafka` installs Schemathesis (the test command runs it)",
        st.display()
    );
    st
}

/// `st run` on the document at `spec` with the configuration `config` (a
/// `schemathesis.toml`) and `args`; panics with Schemathesis' report
/// unless it finds nothing.
fn check_document(spec: &str, config: &str, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let report = dir.path().join("report.txt");
    let mut child = Command::new(schemathesis())
        .arg("--config-file")
        .arg(&config_file)
        .args([
            "run",
            spec,
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
        ])
        .args(["--no-color", "--generation-database", "none"])
        .args(["--request-timeout", "20"])
        .args(args)
        // Its caches and reports stay out of the repository.
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&report).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
        .spawn()
        .expect("st");
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Schemathesis still running after {RUN_TIMEOUT:?} on {spec}:\n{}",
                std::fs::read_to_string(&report).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = format!(
        "{}{}",
        std::fs::read_to_string(&report).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default()
    );
    assert!(
        status.success(),
        "Schemathesis found that {spec} does not describe its server ({status}):\n{output}"
    );
    println!("{output}");
}

/// switchyard with the shipped events routes, the streams API on a public
/// listener and, when `read_token` is given, reads of `GET /events` behind
/// it: the public listener's address and the process.
async fn start_switchyard(read_token: Option<&str>) -> (String, Switchyard) {
    let topics = platform::Topics::create("contract").await;
    let shipped = platform::shipped_routes(&topics, &["events-ingest", "events-recent"], 1000);
    let mut routes: toml::Table = toml::from_str(&shipped).unwrap();
    let public = free_addr();
    let tag = unique("contract");
    let extra: toml::Table = toml::from_str(&format!(
        r#"
[http]
public = "{public}"

[streams_api]
credentials = [{{ user = "{STREAMS_USER}", password = "{STREAMS_PASSWORD}" }}]
topic_prefix = "{tag}.stream."
owners_topic = "{tag}.owners"
positions_topic = "{tag}.positions"
# Every stream is a topic: the fuzzer may make this many, then gets 403.
max_streams = 20
"#
    ))
    .unwrap();
    routes.extend(extra);
    if let Some(token) = read_token {
        routes["events_api"]
            .as_table_mut()
            .unwrap()
            .insert("read_tokens".into(), vec![token.to_owned()].into());
    }
    let sy = platform::start(&toml::to_string(&routes).unwrap(), None);
    (public, sy)
}

/// What every run against switchyard shares: its credentials, and the
/// statuses a valid request may get for reasons of state that no schema
/// can state.
fn switchyard_config(read_token: Option<&str>) -> String {
    let bearer = read_token
        .map(|token| format!("\n[auth.openapi.bearer]\nbearer = \"{token}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[auth.openapi.basic]
username = "{STREAMS_USER}"
password = "{STREAMS_PASSWORD}"
{bearer}
# The defaults, and 423: a valid append to a stream another producer owns
# is refused by the single-writer lock.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "423", "429", "5xx"]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_apis_answer_as_their_document_says_with_reads_open() {
    let (public, sy) = start_switchyard(None).await;
    let spec = format!("http://{public}/openapi.json");
    let config = switchyard_config(None);
    tokio::task::spawn_blocking(move || check_document(&spec, &config, &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}\nswitchyard's log:\n{}", sy.log_text()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_apis_answer_as_their_document_says_with_reads_behind_a_token() {
    let (public, sy) = start_switchyard(Some(READ_TOKEN)).await;
    let spec = format!("http://{public}/openapi.json");
    let config = switchyard_config(Some(READ_TOKEN));
    tokio::task::spawn_blocking(move || check_document(&spec, &config, &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}\nswitchyard's log:\n{}", sy.log_text()));
}

#[test]
fn the_mock_crm_answers_as_its_document_says() {
    let mut crm = MockCrm::start();
    let spec = format!("{}/openapi.json", crm.url);
    // The CRM's API and the counters, without the control token. A trip
    // names its user, who must be registered: a valid trip of another user
    // is refused with 400, which no schema can state.
    let config = r#"
[[operations]]
include-path = ["/trips", "/trips/{id}"]
include-method = "POST"

[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"#;
    check_document(
        &spec,
        config,
        &["--exclude-path-regex", "^/_mock/(faults|reset)$"],
    );
    // The controls, with the token (and, checked by `ignored_auth`, without
    // it), alone: a fault they inject fails the CRM's API on purpose.
    let config = format!("[auth.openapi.control_token]\nbearer = \"{MOCK_CRM_CONTROL_TOKEN}\"\n");
    check_document(&spec, &config, &["--include-path-regex", "^/_mock/"]);
    crm.service.assert_running();
}
