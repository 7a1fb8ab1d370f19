//! Bad input gets a clear error naming what is wrong: routes files,
//! plugins that do not implement the world, unreachable brokers, poison
//! records.

use std::time::Duration;

use switchyard_tests::*;

/// Each `tests/ui/invalid/*.toml` starts with `# expect: TEXT`; switchyard
/// must exit non-zero before touching Kafka, naming the file and TEXT.
#[test]
fn invalid_routes_files_are_refused_with_the_reason() {
    let dir = workspace().join("tests/ui/invalid");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an `# expect:` line", path.display()));
        // Plugins resolve against the built ones.
        let staged = tempfile::tempdir().unwrap();
        let config = staged.path().join(path.file_name().unwrap());
        std::fs::write(
            &config,
            format!(
                "plugins_dir = {:?}\n{text}",
                plugins_dir().display().to_string()
            ),
        )
        .unwrap();
        let (code, stderr) = run_to_exit(
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--brokers",
                "127.0.0.1:1",
                "--http",
                &free_addr(),
            ],
            Duration::from_secs(60),
        );
        assert_ne!(code, Some(0), "{}: accepted\n{stderr}", path.display());
        assert!(
            stderr.contains(expect),
            "{}: stderr lacks {expect:?}:\n{stderr}",
            path.display()
        );
        assert!(
            stderr.contains(config.file_name().unwrap().to_str().unwrap())
                || stderr.contains("route `"),
            "{}: the error names neither the file nor the route:\n{stderr}",
            path.display()
        );
        cases += 1;
    }
    assert!(cases >= 5, "only {cases} cases found in {}", dir.display());
}

#[test]
fn missing_routes_file_is_named() {
    let (code, stderr) = run_to_exit(
        &[
            "run",
            "--config",
            "/nonexistent/routes.toml",
            "--http",
            &free_addr(),
        ],
        Duration::from_secs(30),
    );
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("cannot read routes file /nonexistent/routes.toml"),
        "{stderr}"
    );
}

/// Put `bytes` in a plugins dir as `bad.wasm` with a route using it, run
/// switchyard, and return its exit code and stderr.
fn run_with_plugin(bytes: &[u8]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.wasm"), bytes).unwrap();
    let config = dir.path().join("routes.toml");
    std::fs::write(
        &config,
        r#"
plugins_dir = "."

[[routes]]
name = "bad"
source = { topics = ["in"] }
chain = [{ plugin = "bad" }]
sink = { topic = "out" }
"#,
    )
    .unwrap();
    run_to_exit(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--brokers",
            "127.0.0.1:1",
            "--http",
            &free_addr(),
        ],
        Duration::from_secs(60),
    )
}

#[test]
fn component_without_the_transform_export_is_refused_naming_it() {
    let module = wat::parse_str("(module)").unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .encode()
        .unwrap();
    let (code, stderr) = run_with_plugin(&component);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("missing export `switchyard:plugin/transform@0.1.0`"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.wasm"), "names the file: {stderr}");
}

#[test]
fn core_module_and_garbage_are_refused() {
    let (code, stderr) = run_with_plugin(&wat::parse_str("(module)").unwrap());
    assert_ne!(code, Some(0));
    assert!(stderr.contains("not a WebAssembly component"), "{stderr}");

    let (code, stderr) = run_with_plugin(b"half a plugin");
    assert_ne!(code, Some(0));
    assert!(stderr.contains("not a WebAssembly component"), "{stderr}");
}

#[test]
fn unreachable_broker_is_reported_and_retried_without_crashing() {
    // Nothing listens on port 1.
    let routes = r#"
[[routes]]
name = "lonely"
source = { topics = ["in"] }
chain = [{ plugin = "json-set", config = { set = { a = 1 } } }]
sink = { topic = "out" }
"#;
    let mut sy = Switchyard::start_with(routes, &["--brokers", "127.0.0.1:1"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut retries = 0;
    while std::time::Instant::now() < deadline && retries < 2 {
        retries = sy
            .log_text()
            .matches("cannot reach the Kafka brokers")
            .count();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        retries >= 2,
        "expected repeated reports:\n{}",
        sy.log_text()
    );
    assert!(sy.is_running(), "switchyard gave up:\n{}", sy.log_text());
    let (code, body) = sy.health().expect("HTTP answers while Kafka is away");
    assert_eq!(code, 503);
    assert_eq!(body["routes"][0]["state"], "connecting", "{body}");
    assert!(
        body["routes"][0]["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1"),
        "{body}"
    );
    assert_eq!(sy.terminate(Duration::from_secs(30)).code(), Some(0));
}

/// A record the first plugin rejects goes to the dead-letter topic once,
/// with its original content and context headers; later records flow.
#[tokio::test(flavor = "multi_thread")]
async fn poison_record_is_dead_lettered_once_and_later_records_flow() {
    let (source, sink, dlq) = (
        unique("poison-in"),
        unique("poison-out"),
        unique("poison-dlq"),
    );
    create_topics(&[&source, &sink, &dlq], 1).await;
    let mut records: Vec<(String, String)> = (0..10)
        .map(|i| ("k".to_owned(), format!(r#"{{"name":"n{i}"}}"#)))
        .collect();
    records.insert(4, ("k".into(), "not json".into()));
    produce(&producer(), &source, &records).await;

    let routes = format!(
        r#"
[[routes]]
name = "poison"
source = {{ topics = ["{source}"] }}
chain = [{{ plugin = "json-set", config = {{ set = {{ ok = true }} }} }}]
sink = {{ topic = "{sink}" }}
dead_letter = {{ topic = "{dlq}" }}
"#
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    let out = read_topic(&sink, 10, Duration::from_secs(60));
    assert_eq!(out.len(), 10, "the records after the poison one flow");
    let dead = read_topic(&dlq, 2, Duration::from_secs(5));
    assert_eq!(dead.len(), 1, "dead-lettered exactly once: {dead:?}");
    let d = &dead[0];
    assert_eq!(d.value.as_deref(), Some("not json"));
    assert_eq!(d.key.as_deref(), Some("k"));
    assert_eq!(d.headers["switchyard-dlq-source-topic"], source);
    assert_eq!(d.headers["switchyard-dlq-source-partition"], "0");
    assert_eq!(d.headers["switchyard-dlq-source-offset"], "4");
    assert_eq!(d.headers["switchyard-dlq-error-kind"], "rejected");
    assert!(d.headers["switchyard-dlq-plugin"].starts_with("json-set@"));
    assert!(
        d.headers["switchyard-dlq-error"].contains("not valid JSON"),
        "{:?}",
        d.headers
    );
    let (_, health) = sy.health().unwrap();
    assert_eq!(health["routes"][0]["dead_lettered"], 1, "{health}");
    assert_eq!(health["routes"][0]["rejected"], 1, "{health}");
    assert_eq!(health["routes"][0]["records_out"], 10, "{health}");

    // The same counts on /metrics, the plugin's call latency, and the
    // consumer lag once librdkafka's statistics (every 5 s) have come.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (code, text) = get_text(&format!("http://{}/metrics", sy.http));
        assert_eq!(code, 200);
        if text.contains(r#"switchyard_consumer_lag{route="poison""#) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no consumer lag yet:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for line in [
        r#"switchyard_records_in_total{route="poison"} 11"#.to_owned(),
        r#"switchyard_records_out_total{route="poison"} 10"#.to_owned(),
        r#"switchyard_records_rejected_total{route="poison"} 1"#.to_owned(),
        r#"switchyard_records_dead_lettered_total{route="poison"} 1"#.to_owned(),
        format!(r#"switchyard_consumer_lag{{route="poison",topic="{source}",partition="0"}} 0"#),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }
    assert!(
        metrics
            .contains(r#"switchyard_plugin_call_seconds_count{route="poison",plugin="json-set"}"#),
        "{metrics}"
    );
    assert_eq!(sy.terminate(Duration::from_secs(30)).code(), Some(0));
}

/// With no dead-letter topic the route halts before a failing record:
/// `/healthz` says why, and the committed offset stays on that record so
/// nothing is skipped.
#[tokio::test(flavor = "multi_thread")]
async fn halt_policy_stops_before_the_failing_record_and_keeps_its_offset() {
    let (source, sink, group) = (unique("halt-in"), unique("halt-out"), unique("halt-group"));
    create_topics(&[&source, &sink], 1).await;
    let records: Vec<(String, String)> = ["a", "b", "fatal", "c"]
        .iter()
        .map(|v| ("k".to_owned(), v.to_string()))
        .collect();
    produce(&producer(), &source, &records).await;
    let routes = format!(
        r#"
[[routes]]
name = "halting"
source = {{ topics = ["{source}"], group = "{group}" }}
chain = [{{ plugin = "chaos" }}]
sink = {{ topic = "{sink}" }}
"#
    );
    let mut sy = Switchyard::start(&routes);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let body = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "never halted:\n{}",
            sy.log_text()
        );
        if let Some((503, body)) = sy.health() {
            if body["routes"][0]["state"] == "halted" {
                break body;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Where and what kind, for anyone; the plugin's own words (which may
    // quote the record) in the log and for the admin token's holder.
    let reason = body["routes"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("offset 2") && reason.contains("in chaos@"),
        "{reason}"
    );
    assert!(!body.to_string().contains("never works"), "{body}");
    assert!(sy.log_text().contains("chaos: never works"));
    assert!(
        sy.is_running(),
        "a halted route does not take the process down"
    );
    assert_eq!(sy.terminate(Duration::from_secs(30)).code(), Some(0));

    let out = read_topic(&sink, 3, Duration::from_secs(5));
    let values: Vec<_> = out.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(
        values,
        ["a", "b"],
        "nothing after the failing record was written"
    );
    assert_eq!(committed_offset(&group, &source, 0), Some(2));
}
