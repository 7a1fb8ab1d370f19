//! A halted route on two replicas, on real Kafka, and both ways on: one bad
//! record halts the route on the instance that meets it, its partition
//! moves to the other, which halts on the same record; then resuming after
//! a fix, or skipping exactly that record (dead-lettered, audited), moves
//! every replica on, with every record accounted for in an output or the
//! dead-letter topic. Every refusal of the skip endpoint is named.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::*;

const TOKEN: &str = "halted-admin-token-0123456789";

/// The route on both replicas: `chaos` fails (fatally) on the record whose
/// value is `fatal` and emits every other record unchanged; with `halt`,
/// the route stops before it.
fn routes(source: &str, sink: &str, group: &str, dead_letter: Option<&str>) -> String {
    let dead_letter = dead_letter
        .map(|dlq| format!("dead_letter = {{ topic = \"{dlq}\" }}\n"))
        .unwrap_or_default();
    format!(
        r#"
[kafka.consumer]
# A replica that leaves hands its partitions over quickly.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[[routes]]
name = "orders"
source = {{ topics = ["{source}"], group = "{group}" }}
chain = [{{ plugin = "chaos" }}]
sink = {{ topic = "{sink}" }}
{dead_letter}on_error = {{ policy = "halt" }}
"#
    )
}

fn start(plugins: &Path, routes: &str) -> Switchyard {
    let mut sy = Switchyard::start_custom(
        plugins,
        routes,
        &["--brokers", &bootstrap()],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    sy.wait_healthy(Duration::from_secs(60));
    sy
}

fn route_of(sy: &Switchyard, name: &str) -> Value {
    let (code, body) = http_request(
        "GET",
        &format!("http://{}/admin/routes/{name}", sy.http),
        Some(TOKEN),
        Vec::new(),
    );
    assert_eq!(code, 200, "{body}");
    body
}

fn wait_for(what: &str, timeout: Duration, logs: &[&Switchyard], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs.iter().map(|sy| sy.log_text()).collect();
            panic!("{what}:\n{}", logs.join("\n---- next instance ----\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn post(sy: &Switchyard, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    http_request(
        "POST",
        &format!("http://{}{path}", sy.http),
        token,
        body.to_vec(),
    )
}

/// Good records `g0..g{n}` around one `fatal` record (key `bad`), spread
/// over the partitions by key.
fn records(good: usize) -> Vec<(String, String)> {
    let mut records: Vec<(String, String)> = (0..good / 2)
        .map(|n| (format!("k{}", n % 8), format!("g{n}")))
        .collect();
    records.push(("bad".into(), "fatal".into()));
    records.extend((good / 2..good).map(|n| (format!("k{}", n % 8), format!("g{n}"))));
    records
}

/// Where the `fatal` record is in `source`.
fn bad_record(source: &str, total: usize) -> Value {
    let bad = read_topic(source, total, Duration::from_secs(30))
        .into_iter()
        .find(|r| r.value.as_deref() == Some("fatal"))
        .expect("the bad record is in the source topic");
    json!({"topic": source, "partition": bad.partition, "offset": bad.offset})
}

fn values_on(topic: &str) -> BTreeSet<String> {
    let size = topic_size(topic) as usize;
    read_topic(topic, size, Duration::from_secs(30))
        .into_iter()
        .filter_map(|r| r.value)
        .collect()
}

/// Both replicas halt on the same record; resuming one before the fix
/// halts it again; after the fix (a new plugin version) resuming one moves
/// it on, and the other, halted on the record the group has now committed
/// past, starts again by itself. Every record reaches the sink.
#[tokio::test(flavor = "multi_thread")]
async fn both_replicas_halt_on_a_bad_record_and_resume_after_a_fix_moves_both_on() {
    let (source, sink, group) = (unique("halt2-in"), unique("halt2-out"), unique("halt2"));
    create_topics(&[&source], 2).await;
    create_topics(&[&sink], 1).await;
    // One plugins directory for both replicas (a shared volume): the fix
    // uploaded to one is seen by the other.
    let plugins = tempfile::tempdir().unwrap();
    for plugin in ["chaos", "noop"] {
        std::fs::copy(
            plugins_dir().join(format!("{plugin}.wasm")),
            plugins.path().join(format!("{plugin}.wasm")),
        )
        .unwrap();
    }
    let routes = routes(&source, &sink, &group, None);
    let a = start(plugins.path(), &routes);
    let b = start(plugins.path(), &routes);

    let input = records(60);
    produce(&producer(), &source, &input).await;
    let bad = bad_record(&source, input.len());

    // Both halt, each on that record, saying which.
    wait_for(
        "both replicas halt on the bad record",
        Duration::from_secs(60),
        &[&a, &b],
        || {
            [&a, &b]
                .iter()
                .all(|sy| route_of(sy, "orders")["state"] == "halted")
        },
    );
    for sy in [&a, &b] {
        let route = route_of(sy, "orders");
        assert_eq!(route["halted_on"], bad, "{route}");
        assert!(
            route["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("offset {}", bad["offset"])),
            "{route}"
        );
    }

    // Resuming before the fix: the route starts again from its committed
    // offset, meets the record again, and halts again.
    let halts = |sy: &Switchyard| sy.log_text().matches("route halted before record").count();
    let before = halts(&a);
    let (code, body) = post(&a, "/admin/routes/orders/resume", Some(TOKEN), b"");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied"]["restarted"], json!(["orders"]), "{body}");
    wait_for(
        "a resumed route halts again on the same record",
        Duration::from_secs(60),
        &[&a],
        || halts(&a) > before && route_of(&a, "orders")["state"] == "halted",
    );
    // The record read again is counted as such, not as a new one.
    let again = route_of(&a, "orders");
    assert!(again["records_replayed"].as_u64().unwrap() >= 1, "{again}");

    // The fix: a version of `chaos` that emits every record.
    let fixed = std::fs::read(plugins.path().join("noop.wasm")).unwrap();
    let (code, body) = http_request(
        "PUT",
        &format!("http://{}/admin/plugins/chaos", a.http),
        Some(TOKEN),
        fixed,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(&a, "/admin/routes/orders/resume", Some(TOKEN), b"");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied"]["restarted"], json!(["orders"]), "{body}");

    // Nothing lost: every record, the one that halted both included.
    let expected: BTreeSet<String> = input.iter().map(|(_, v)| v.clone()).collect();
    wait_for(
        "every record reaches the sink and both replicas run",
        Duration::from_secs(90),
        &[&a, &b],
        || {
            values_on(&sink).is_superset(&expected)
                && [&a, &b]
                    .iter()
                    .all(|sy| route_of(sy, "orders")["state"] == "running")
        },
    );
    assert!(
        b.log_text().contains("has moved past the record"),
        "the other replica did not say why it started again:\n{}",
        b.log_text()
    );
    assert!(route_of(&b, "orders").get("halted_on").is_none());
}

/// Skipping names the exact record the route halted on: it goes to the
/// dead-letter topic with its context and who skipped it, the audit log
/// says so, the group's offset moves past it, and both replicas run again.
/// Anything else is refused, naming why.
#[tokio::test(flavor = "multi_thread")]
async fn skipping_the_halted_record_dead_letters_it_audits_it_and_moves_both_replicas_on() {
    let (source, sink, dlq, other_in, other_out, group) = (
        unique("skip-in"),
        unique("skip-out"),
        unique("skip-dlq"),
        unique("skip-other-in"),
        unique("skip-other-out"),
        unique("skip"),
    );
    create_topics(&[&source], 2).await;
    create_topics(&[&sink, &dlq, &other_in, &other_out], 1).await;
    let routes = format!(
        "{}\n[[routes]]\nname = \"calm\"\nsource = {{ topics = [\"{other_in}\"], group = \"{}\" }}\n\
         sink = {{ topic = \"{other_out}\" }}\n",
        routes(&source, &sink, &group, Some(&dlq)),
        unique("calm"),
    );
    let a = start(&plugins_dir(), &routes);
    let b = start(&plugins_dir(), &routes);

    let input = records(40);
    produce(&producer(), &source, &input).await;
    let bad = bad_record(&source, input.len());
    wait_for(
        "both replicas halt on the bad record",
        Duration::from_secs(60),
        &[&a, &b],
        || {
            [&a, &b]
                .iter()
                .all(|sy| route_of(sy, "orders")["halted_on"] == bad)
        },
    );

    // Refusals, each named; none moves anything.
    let skip = "/admin/routes/orders/skip";
    let body = |v: &Value| serde_json::to_vec(v).unwrap();
    let (code, reply) = post(&a, skip, None, &body(&bad));
    assert_eq!(code, 401, "{reply}");
    let (code, reply) = post(&a, "/admin/routes/nope/skip", Some(TOKEN), &body(&bad));
    assert_eq!(code, 404, "{reply}");
    assert_eq!(reply["error"], "no route named `nope`");
    for (bad_body, says) in [
        (b"not json".to_vec(), "the body must be"),
        (body(&json!({"topic": source})), "missing field `partition`"),
        (
            body(&json!({"topic": source, "partition": 0, "offset": "1"})),
            "invalid type",
        ),
        (
            body(&json!({"topic": source, "partition": 0, "offset": 1, "force": true})),
            "unknown field `force`",
        ),
    ] {
        let (code, reply) = post(&a, skip, Some(TOKEN), &bad_body);
        assert_eq!(code, 400, "{reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(says), "{error}");
    }
    let mut wrong = bad.clone();
    wrong["offset"] = json!(bad["offset"].as_i64().unwrap() + 1);
    let (code, reply) = post(&a, skip, Some(TOKEN), &body(&wrong));
    assert_eq!(code, 409, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "halted on {}/{} offset {}",
            source, bad["partition"], bad["offset"]
        )),
        "{error}"
    );
    let (code, reply) = post(&a, "/admin/routes/calm/skip", Some(TOKEN), &body(&bad));
    assert_eq!(code, 409, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("is not halted"),
        "{reply}"
    );
    assert!(
        values_on(&dlq).is_empty(),
        "a refusal dead-lettered something"
    );

    // The skip itself.
    let (code, reply) = post(&a, skip, Some(TOKEN), &body(&bad));
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["skipped"], bad, "{reply}");
    assert_eq!(reply["by"], "admin-token", "{reply}");
    assert_eq!(reply["dead_letter"]["topic"], dlq, "{reply}");
    assert_eq!(
        reply["committed"],
        json!(bad["offset"].as_i64().unwrap() + 1),
        "{reply}"
    );
    // Not halted on it any more: the same skip again is refused.
    let (code, reply) = post(&a, skip, Some(TOKEN), &body(&bad));
    assert_eq!(code, 409, "{reply}");

    // Every record accounted for: the good ones at the sink, the skipped
    // one in the dead-letter topic with its context and who skipped it.
    let good: BTreeSet<String> = input
        .iter()
        .filter(|(_, v)| v != "fatal")
        .map(|(_, v)| v.clone())
        .collect();
    wait_for(
        "every good record reaches the sink and both replicas run",
        Duration::from_secs(90),
        &[&a, &b],
        || {
            values_on(&sink).is_superset(&good)
                && [&a, &b]
                    .iter()
                    .all(|sy| route_of(sy, "orders")["state"] == "running")
        },
    );
    assert!(!values_on(&sink).contains("fatal"));
    let dead = read_topic(&dlq, 2, Duration::from_secs(5));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let dead = &dead[0];
    assert_eq!(dead.key.as_deref(), Some("bad"));
    assert_eq!(dead.value.as_deref(), Some("fatal"));
    let header = |name: &str| dead.headers.get(name).map(String::as_str);
    assert_eq!(header("switchyard-dlq-route"), Some("orders"));
    assert_eq!(header("switchyard-dlq-source-topic"), Some(source.as_str()));
    assert_eq!(
        header("switchyard-dlq-source-partition"),
        Some(bad["partition"].to_string().as_str())
    );
    assert_eq!(
        header("switchyard-dlq-source-offset"),
        Some(bad["offset"].to_string().as_str())
    );
    assert_eq!(header("switchyard-dlq-error-kind"), Some("fatal"));
    assert_eq!(header("switchyard-dlq-skipped-by"), Some("admin-token"));
    // The audit trail: who skipped what, in the log of the instance asked.
    let audit = a
        .log_text()
        .lines()
        .find(|l| l.contains("record skipped by an operator"))
        .unwrap_or_else(|| panic!("no audit line:\n{}", a.log_text()))
        .to_owned();
    for part in [
        "by=admin-token".to_owned(),
        format!("topic={source}"),
        format!("partition={}", bad["partition"]),
        format!("offset={}", bad["offset"]),
        format!("dead_letter={dlq}"),
    ] {
        assert!(audit.contains(&part), "{part} missing from: {audit}");
    }
    assert!(
        b.log_text().contains("has moved past the record"),
        "{}",
        b.log_text()
    );
}
