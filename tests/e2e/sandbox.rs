//! The sandbox and failure outcomes with the `chaos` fixture: in process,
//! traps are isolated to their record, deadlines interrupt, memory is
//! capped, and an instance that trapped is replaced by a fresh one; then the
//! same through a route on Kafka, with the dead-letter topic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use switchyard::plugin::bindings::Event;
use switchyard::plugin::pool::Limits;
use switchyard::plugin::{InstancePool, PluginRuntime};
use switchyard::route::chain::{Chain, Destination, FailureKind, RecordResult};
use switchyard_tests::*;

const DEADLINE: Duration = Duration::from_millis(200);

fn chaos_chain(cache: &std::path::Path) -> Chain {
    let runtime = PluginRuntime::new(cache.to_owned()).unwrap();
    let plugin = runtime.load(&plugins_dir().join("chaos.wasm")).unwrap();
    let limits = Limits {
        call_timeout: DEADLINE,
        memory_bytes: 16 << 20,
    };
    let pool = InstancePool::new(runtime, plugin, "{}".into(), "sandbox", limits).unwrap();
    let outputs = BTreeMap::from([("audit".to_owned(), "audit-topic".to_owned())]);
    Chain::new(vec![pool], Destination::topic("out"), &outputs)
}

fn events(values: &[&str]) -> Vec<Event> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Event {
            key: None,
            value: Some(v.as_bytes().to_vec()),
            headers: vec![],
            topic: "t".into(),
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
        })
        .collect()
}

fn failure_kind(result: &RecordResult) -> Option<FailureKind> {
    result.as_ref().err().map(|f| f.kind)
}

#[test]
fn a_trap_fails_only_its_record_and_the_next_call_gets_a_fresh_instance() {
    let cache = tempfile::tempdir().unwrap();
    let chain = chaos_chain(cache.path());
    let results = chain.run(&events(&["a", "panic", "b"]));
    assert!(results[0].is_ok());
    let failure = results[1].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Trap);
    assert!(failure.message.contains("trapped"), "{failure:?}");
    assert!(results[2].is_ok(), "the record after the trap still runs");
    // The poisoned instance was thrown away; the pool still serves.
    let again = chain.run(&events(&["c"]));
    assert_eq!(
        again[0].as_ref().unwrap()[0].value.as_deref(),
        Some(&b"c"[..])
    );
}

#[test]
fn an_endless_loop_is_interrupted_at_its_deadline() {
    let cache = tempfile::tempdir().unwrap();
    let chain = chaos_chain(cache.path());
    let started = Instant::now();
    let results = chain.run(&events(&["loop"]));
    let elapsed = started.elapsed();
    let failure = results[0].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Trap);
    assert!(
        failure.message.contains("exceeded its 200ms deadline"),
        "{failure:?}"
    );
    // Without interruption the call would never return; the bound is loose
    // so that a busy machine does not fail it.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(chain.run(&events(&["after"]))[0].is_ok());
}

#[test]
fn unbounded_memory_growth_hits_the_cap_and_processing_goes_on() {
    let cache = tempfile::tempdir().unwrap();
    let chain = chaos_chain(cache.path());
    let results = chain.run(&events(&["grow", "fine"]));
    let failure = results[0].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Trap);
    assert!(
        failure.message.contains("memory"),
        "names the memory cap: {failure:?}"
    );
    assert!(results[1].is_ok(), "the next record runs");
}

#[test]
fn outcomes_map_to_failure_kinds_and_outputs() {
    let cache = tempfile::tempdir().unwrap();
    let chain = chaos_chain(cache.path());
    let results = chain.run(&events(&[
        "retry",
        "fatal",
        "reject",
        "drop",
        "to:audit",
        "to:nowhere",
    ]));
    assert_eq!(failure_kind(&results[0]), Some(FailureKind::Retryable));
    assert_eq!(failure_kind(&results[1]), Some(FailureKind::Fatal));
    let reject = results[2].as_ref().unwrap_err();
    assert_eq!(reject.kind, FailureKind::Rejected);
    assert_eq!(
        reject.message, "first reason; second reason",
        "every reason kept"
    );
    assert!(
        results[3].as_ref().unwrap().is_empty(),
        "drop emits nothing"
    );
    assert_eq!(
        results[4].as_ref().unwrap()[0].topic().unwrap(),
        "audit-topic"
    );
    let unknown = results[5].as_ref().unwrap_err();
    assert_eq!(unknown.kind, FailureKind::Contract);
    assert!(
        unknown.message.contains("unknown output `nowhere`"),
        "{unknown:?}"
    );
    assert!(
        unknown.message.contains("audit"),
        "lists the declared outputs: {unknown:?}"
    );
}

/// Through a route on Kafka: an endless loop and unbounded memory growth
/// each dead-letter their record with its context, the records after them
/// flow, and twenty runaway allocations leave the host's memory bounded.
#[tokio::test(flavor = "multi_thread")]
async fn runaway_plugins_in_a_route_are_dead_lettered_and_the_route_goes_on() {
    let (source, sink, dlq) = (
        unique("sandbox-in"),
        unique("sandbox-out"),
        unique("sandbox-dlq"),
    );
    create_topics(&[&source, &sink, &dlq], 1).await;
    let routes = format!(
        r#"
[[routes]]
name = "sandboxed"
source = {{ topics = ["{source}"] }}
chain = [{{ plugin = "chaos" }}]
sink = {{ topic = "{sink}" }}
dead_letter = {{ topic = "{dlq}" }}
call_timeout_ms = {}
memory_limit_mib = 16
"#,
        DEADLINE.as_millis()
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    let rss_before = sy.rss_kib();

    let record = |v: &str| ("k".to_owned(), v.to_owned());
    let started = Instant::now();
    produce(
        &producer(),
        &source,
        &[record("ok-0"), record("loop"), record("ok-1")],
    )
    .await;
    let out = read_topic(&sink, 2, Duration::from_secs(60));
    let loop_done = started.elapsed();
    assert_eq!(
        out.iter()
            .map(|r| r.value.clone().unwrap())
            .collect::<Vec<_>>(),
        ["ok-0", "ok-1"],
        "the record after the loop is processed"
    );
    // The loop costs its deadline, once per attempt (the whole batch, then
    // the record alone); the margin covers Kafka round trips.
    assert!(
        loop_done < 2 * DEADLINE + Duration::from_secs(5),
        "took {loop_done:?}"
    );

    let mut growing: Vec<(String, String)> = Vec::new();
    for i in 0..20 {
        growing.push(record("grow"));
        growing.push(record(&format!("ok-{}", i + 2)));
    }
    produce(&producer(), &source, &growing).await;
    let out = read_topic(&sink, 22, Duration::from_secs(120));
    assert_eq!(out.len(), 22, "every record after a runaway one flows");
    let dead = read_topic(&dlq, 21, Duration::from_secs(30));
    assert_eq!(dead.len(), 21, "the loop and the twenty growths, once each");
    let looped = &dead[0];
    assert_eq!(looped.value.as_deref(), Some("loop"));
    assert_eq!(looped.headers["switchyard-dlq-source-topic"], source);
    assert_eq!(looped.headers["switchyard-dlq-source-offset"], "1");
    assert_eq!(looped.headers["switchyard-dlq-error-kind"], "trap");
    assert!(looped.headers["switchyard-dlq-plugin"].starts_with("chaos@"));
    assert!(
        looped.headers["switchyard-dlq-error"].contains("exceeded its 200ms deadline"),
        "{:?}",
        looped.headers
    );
    for grown in &dead[1..] {
        assert_eq!(grown.value.as_deref(), Some("grow"));
        assert!(
            grown.headers["switchyard-dlq-error"].contains("memory"),
            "{:?}",
            grown.headers
        );
    }
    // Each runaway instance hit its 16 MiB cap and was thrown away: twenty
    // of them leave the host no more than a small multiple of one cap.
    let grown_kib = sy.rss_kib().saturating_sub(rss_before);
    assert!(
        grown_kib < 128 * 1024,
        "host memory grew by {grown_kib} KiB"
    );
    assert_eq!(sy.terminate(Duration::from_secs(30)).code(), Some(0));
}
