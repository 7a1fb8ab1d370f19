//! The sandbox and failure outcomes, in process with the `chaos` fixture:
//! traps are isolated to their record, deadlines interrupt, memory is
//! capped, and an instance that trapped is replaced by a fresh one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use switchyard::plugin::bindings::Event;
use switchyard::plugin::pool::Limits;
use switchyard::plugin::{InstancePool, PluginRuntime};
use switchyard::route::chain::{Chain, FailureKind, RecordResult};
use switchyard_tests::plugins_dir;

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
    Chain::new(vec![pool], "out", &outputs)
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
    assert_eq!(&*results[4].as_ref().unwrap()[0].topic, "audit-topic");
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
