//! The hostile-plugin suite: plugins that attack the host from inside the
//! sandbox, run in routes on Kafka. Each hostile record is dead-lettered
//! with its context, the honest records around it are processed, and the
//! harm stays bounded in the host's memory and in time: many linear
//! memories, outputs aliasing one region, `state` growth, a sleeping WASI
//! call (on a topic-fed route and on the events API), and log floods with
//! forged lines (in both log formats).
//!
//! Bounds here are generous (a shared two-core machine): each is far below
//! what the attack took before the host bounded it.

use std::path::Path;
use std::time::{Duration, Instant};

use switchyard_tests::*;

use crate::hostile_plugins::{hostile, install, Hostility};

/// A plugins directory holding the WebAssembly-text attackers beside the
/// built `chaos` and `chaos-py` fixtures.
fn hostile_plugins_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // Fifteen memories of 15 MiB: each under a 16 MiB cap on its own,
    // 225 MiB together.
    let memories = hostile(Hostility {
        extra_memories: 15,
        grow_pages: 240,
        ..Hostility::default()
    });
    install(dir.path(), "many-memories", &memories);
    // A hundred outputs of one 900 kB region: 90 MB for the host to copy
    // (and to produce) from a plugin capped at 16 MiB.
    let aliasing = hostile(Hostility {
        alias_outputs: 100,
        alias_bytes: 900_000,
        ..Hostility::default()
    });
    install(dir.path(), "aliasing", &aliasing);
    for built in ["chaos", "chaos-py"] {
        let name = format!("{built}.wasm");
        std::os::unix::fs::symlink(plugins_dir().join(&name), dir.path().join(&name)).unwrap();
    }
    dir
}

/// One route of the suite: its plugin, the hostile records it gets
/// between two honest ones, and what the dead-letter error must name.
struct Attack {
    route: &'static str,
    plugin: &'static str,
    hostile: &'static [&'static str],
    names: &'static str,
    source: String,
    sink: String,
    dlq: String,
}

impl Attack {
    fn new(
        route: &'static str,
        plugin: &'static str,
        hostile: &'static [&'static str],
        names: &'static str,
    ) -> Attack {
        Attack {
            route,
            plugin,
            hostile,
            names,
            source: unique(&format!("{route}-in")),
            sink: unique(&format!("{route}-out")),
            dlq: unique(&format!("{route}-dlq")),
        }
    }

    fn routes_entry(&self) -> String {
        format!(
            r#"
[[routes]]
name = "{route}"
source = {{ topics = ["{source}"], group = "{group}" }}
chain = [{{ plugin = "{plugin}" }}]
sink = {{ topic = "{sink}" }}
dead_letter = {{ topic = "{dlq}" }}
memory_limit_mib = 16
call_timeout_ms = 1000
on_error = {{ max_retries = 0 }}
"#,
            route = self.route,
            source = self.source,
            group = unique("hostile"),
            plugin = self.plugin,
            sink = self.sink,
            dlq = self.dlq,
        )
    }

    fn records(&self) -> Vec<(String, String)> {
        let mut records = vec![("k".to_owned(), "ok-0".to_owned())];
        records.extend(
            self.hostile
                .iter()
                .map(|v| ("k".to_owned(), (*v).to_owned())),
        );
        records.push(("k".to_owned(), "ok-1".to_owned()));
        records
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_plugins_in_routes_are_dead_lettered_and_bounded() {
    let attacks = [
        Attack::new("memories", "many-memories", &["grow"], "memory cap"),
        Attack::new("aliasing", "aliasing", &["alias"], "outputs"),
        Attack::new(
            "state",
            "chaos",
            &["state:1024:65536", "state:1024:65536"],
            "state of",
        ),
        Attack::new("sleep", "chaos-py", &["sleep"], "deadline"),
    ];
    for attack in &attacks {
        create_topics(&[&attack.source, &attack.sink, &attack.dlq], 1).await;
    }
    let routes: String = attacks.iter().map(Attack::routes_entry).collect();
    let plugins = hostile_plugins_dir();
    let mut sy =
        Switchyard::start_custom(plugins.path(), &routes, &["--brokers", &bootstrap()], &[]);
    // The first start may compile the Python component.
    sy.wait_healthy(Duration::from_secs(180));
    let rss_before = sy.rss_kib();

    let started = Instant::now();
    for attack in &attacks {
        produce(&producer(), &attack.source, &attack.records()).await;
    }
    let results: Vec<(Vec<Record>, Vec<Record>)> = attacks
        .iter()
        .map(|attack| {
            let out = read_topic(&attack.sink, 2, Duration::from_secs(90));
            let dead = read_topic(&attack.dlq, attack.hostile.len(), Duration::from_secs(30));
            (out, dead)
        })
        .collect();
    let took = started.elapsed();
    let grown_mib = sy.rss_kib().saturating_sub(rss_before) / 1024;
    eprintln!("hostile plugins: host memory grew by {grown_mib} MiB; the records took {took:?}");

    for (attack, (out, dead)) in attacks.iter().zip(&results) {
        let values: Vec<&str> = out.iter().filter_map(|r| r.value.as_deref()).collect();
        assert_eq!(
            values,
            ["ok-0", "ok-1"],
            "route `{}`: the honest records, and only them\n{}",
            attack.route,
            sy.log_text()
        );
        assert_eq!(dead.len(), attack.hostile.len(), "route `{}`", attack.route);
        for (offset, record) in dead.iter().enumerate() {
            let headers = &record.headers;
            assert_eq!(record.value.as_deref(), Some(attack.hostile[offset]));
            assert_eq!(headers["switchyard-dlq-route"], attack.route);
            assert_eq!(headers["switchyard-dlq-source-topic"], attack.source);
            assert_eq!(
                headers["switchyard-dlq-source-offset"],
                (offset + 1).to_string()
            );
            assert!(
                headers["switchyard-dlq-plugin"].starts_with(&format!("{}@", attack.plugin)),
                "{headers:?}"
            );
            assert!(
                headers["switchyard-dlq-error"].contains(attack.names),
                "route `{}`: the error names the bound ({}): {headers:?}",
                attack.route,
                attack.names
            );
        }
    }
    // The sleep costs its deadline twice (the batch, then the record
    // alone); unbounded, it would have taken two minutes.
    assert!(took < Duration::from_secs(90), "took {took:?}");
    // Unbounded, the memories alone would stay resident at 225 MiB, and the
    // state at 128 MiB; bounded, each instance holds at most its 16 MiB and
    // the state its bound.
    assert!(grown_mib < 200, "host memory grew by {grown_mib} MiB");
    assert!(sy.is_running());
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}

/// On the events API the chain runs while the client waits, on the
/// server's own workers when it can: a Python plugin sleeping in a WASI
/// call must neither panic a worker nor hold the request past the deadline.
/// The client is told, and the next request is served.
#[tokio::test(flavor = "multi_thread")]
async fn a_sleeping_wasi_call_on_the_events_api_answers_with_the_deadline() {
    let topic = unique("sleepy-events");
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
chain = [{{ plugin = "chaos-py" }}]
call_timeout_ms = 1000
on_error = {{ max_retries = 0 }}

[[routes]]
name = "recent"
source = {{ topics = ["{topic}"] }}
sink = {{ buffer = "recent" }}
"#
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(180));
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
    for _ in 0..3 {
        let started = Instant::now();
        let slept = post(r#""sleep""#).await;
        let took = started.elapsed();
        assert_eq!(slept.status, 500, "{slept:?}\n{}", sy.log_text());
        let error = slept.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("chaos-py@") && error.contains("deadline"),
            "{error}"
        );
        assert!(took < Duration::from_secs(20), "took {took:?}");
        let fine = post(r#"{"after":"sleep"}"#).await;
        assert_eq!(fine.status, 202, "{fine:?}");
    }
    let log = sy.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(sy.is_running());
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}

/// A plugin logs one message of a megabyte, then five thousand messages,
/// each with a newline followed by a forged log line and terminal control
/// characters. In both log formats: no line of the log is forged, the flood
/// is cut to the step's rate with a count of what was suppressed, the long
/// message is cut to the size limit, and the records still flow.
#[tokio::test(flavor = "multi_thread")]
async fn log_floods_are_limited_and_cannot_forge_lines() {
    for format in ["text", "json"] {
        let (source, sink) = (unique("flood-in"), unique("flood-out"));
        create_topics(&[&source, &sink], 1).await;
        let routes = format!(
            r#"
[[routes]]
name = "flood"
source = {{ topics = ["{source}"] }}
chain = [{{ plugin = "chaos" }}]
sink = {{ topic = "{sink}" }}
"#
        );
        let mut sy = Switchyard::start_custom(
            &plugins_dir(),
            &routes,
            &["--brokers", &bootstrap()],
            &[("SWITCHYARD_LOG_FORMAT", format)],
        );
        sy.wait_healthy(Duration::from_secs(60));
        let record = |v: &str| ("k".to_owned(), v.to_owned());
        produce(
            &producer(),
            &source,
            &[record("log-size:1000000"), record("log:5000")],
        )
        .await;
        assert_eq!(read_topic(&sink, 2, Duration::from_secs(60)).len(), 2);
        // The suppressed messages are counted once their interval is over,
        // at the plugin's next message.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        produce(&producer(), &source, &[record("log:1")]).await;
        assert_eq!(read_topic(&sink, 3, Duration::from_secs(60)).len(), 3);
        assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
        check_flood_log(format, &sy.log);
    }
}

fn check_flood_log(format: &str, log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines {
        assert!(
            !line.contains("2030-01-01") || line.contains("chaos: flood"),
            "{format}: a forged line: {line:?}"
        );
        assert!(!line.contains('\u{1b}'), "{format}: a raw escape: {line:?}");
        if format == "json" {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("{format}: not a JSON line ({e}): {line:?}"));
        }
    }
    let flood = lines.iter().filter(|l| l.contains("chaos: flood")).count();
    assert!(
        (1..=500).contains(&flood),
        "{format}: {flood} of 5001 flood messages were logged"
    );
    let summary = lines
        .iter()
        .find(|l| l.contains("suppressed"))
        .unwrap_or_else(|| panic!("{format}: no count of suppressed messages:\n{text}"));
    assert!(
        summary.contains("route") && summary.contains("chaos"),
        "{summary}"
    );
    let long = lines
        .iter()
        .find(|l| l.contains("LLLL"))
        .unwrap_or_else(|| panic!("{format}: the long message is missing"));
    assert!(
        long.len() < 20_000,
        "{format}: a line of {} bytes",
        long.len()
    );
    assert!(long.contains("bytes cut"), "{format}: {long:.200}");
}
