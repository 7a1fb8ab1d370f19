//! The sandbox and failure outcomes with the `chaos` fixture: in process,
//! traps are isolated to their record, deadlines interrupt, memory is
//! capped, and an instance that trapped is replaced by a fresh one; then the
//! same through a route on Kafka, with the dead-letter topic.
//!
//! Then each bound a hostile plugin meets, in process: the memory cap
//! counts every linear memory of an instance, core instances, memories and
//! tables are bounded, a call's outputs are capped, `state` is bounded, a
//! blocking WASI call ends at the call's deadline, and a file that is not a
//! plugin is named for what it is. `hostile.rs` runs the same plugins in
//! routes on Kafka.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use switchyard::plugin::bindings::Event;
use switchyard::plugin::pool::Limits;
use switchyard::plugin::{CallError, InstancePool, PluginRuntime};
use switchyard::route::chain::{Chain, Destination, FailureKind, RecordResult};
use switchyard_tests::*;

use crate::hostile_plugins::{hostile, with_extra_instances, Hostility};

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

const MIB: usize = 1 << 20;

/// Limits of the in-process tests of hostile plugins: a 16 MiB memory cap
/// and a deadline long enough for a Python instance to start on a busy
/// machine.
fn hostile_limits() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(1000),
        memory_bytes: 16 * MIB,
    }
}

/// A runtime whose compile cache is the one the test processes share, so
/// that the 18 MB Python components are compiled once per build.
fn shared_runtime() -> PluginRuntime {
    PluginRuntime::new(workspace().join("target/test-cache")).unwrap()
}

/// A one-step chain of `bytes` (a component) under `limits`.
fn chain_of(bytes: &[u8], limits: Limits) -> Result<Chain, CallError> {
    let runtime = shared_runtime();
    let plugin = runtime
        .load_bytes("hostile", std::path::Path::new("hostile.wasm"), bytes)
        .unwrap();
    let pool = InstancePool::new(runtime, plugin, "{}".into(), "hostile", limits)?;
    Ok(Chain::new(
        vec![pool],
        Destination::topic("out"),
        &BTreeMap::new(),
    ))
}

/// A one-step chain of the built plugin `name`.
fn built_chain(name: &str, limits: Limits) -> Chain {
    let runtime = shared_runtime();
    let plugin = runtime
        .load(&plugins_dir().join(format!("{name}.wasm")))
        .unwrap();
    let pool = InstancePool::new(runtime, plugin, "{}".into(), "hostile", limits).unwrap();
    Chain::new(vec![pool], Destination::topic("out"), &BTreeMap::new())
}

fn values(result: &RecordResult) -> Vec<Vec<u8>> {
    result
        .as_ref()
        .unwrap_or_else(|f| panic!("the record failed: {f:?}"))
        .iter()
        .map(|r| r.value.clone().unwrap_or_default())
        .collect()
}

/// Each linear memory of the instance below stays under the 16 MiB cap (the
/// cap wasmtime's per-memory limit enforced); twelve of them would hold
/// 144 MiB. The cap is the instance's: the growth traps, naming it.
#[test]
fn the_memory_cap_counts_every_linear_memory_of_an_instance() {
    let component = hostile(Hostility {
        extra_memories: 12,
        grow_pages: 192, // 12 MiB each
        ..Hostility::default()
    });
    let chain = chain_of(&component, hostile_limits()).unwrap();
    let results = chain.run(&events(&["ok-0", "grow", "ok-1"]));
    assert_eq!(values(&results[0]), [b"ok-0".to_vec()]);
    let failure = results[1]
        .as_ref()
        .err()
        .unwrap_or_else(|| panic!("12 memories of 12 MiB each were granted under a 16 MiB cap"));
    assert_eq!(failure.kind, FailureKind::Trap, "{failure:?}");
    assert!(
        failure.message.contains("memory cap") && failure.message.contains("memory_limit_mib"),
        "names the cap: {failure:?}"
    );
    assert_eq!(values(&results[2]), [b"ok-1".to_vec()]);
}

/// Core instances, memories and table elements of one plugin instance are
/// bounded at instantiation, each refusal naming its bound; the same
/// plugin without the extras runs.
#[test]
fn core_instances_memories_and_tables_of_an_instance_are_bounded() {
    let plain = hostile(Hostility::default());
    let chain = chain_of(&plain, hostile_limits()).unwrap();
    assert_eq!(values(&chain.run(&events(&["x"]))[0]), [b"x".to_vec()]);

    let cases = [
        ("(module)", 500, "instance"),
        ("(module (memory 0))", 40, "memor"),
        ("(module (table 5000000 funcref))", 1, "table"),
    ];
    for (module, count, named) in cases {
        let component = with_extra_instances(&plain, module, count);
        let err = chain_of(&component, hostile_limits())
            .err()
            .unwrap_or_else(|| panic!("{count} x {module} was instantiated"));
        let text = err.to_string();
        assert!(
            matches!(err, CallError::Trap { .. }) && text.contains(named),
            "{count} x {module}: {text}"
        );
        assert!(text.contains("sandbox"), "says which bound: {text}");
    }
}

/// A hundred outputs pointing at one 1 MiB region: 100 MiB for the host to
/// copy from a plugin capped at 16 MiB. The call fails as a breach of the
/// contract naming the cap on a call's outputs, and only that record fails.
#[test]
fn outputs_aliasing_one_region_are_capped_per_call() {
    let component = hostile(Hostility {
        alias_outputs: 100,
        alias_bytes: MIB as u32,
        ..Hostility::default()
    });
    let chain = chain_of(&component, hostile_limits()).unwrap();
    let results = chain.run(&events(&["ok-0", "alias", "ok-1"]));
    assert_eq!(values(&results[0]), [b"ok-0".to_vec()]);
    let failure = match &results[1] {
        Ok(outputs) => panic!(
            "the host copied {} outputs, {} MiB in all",
            outputs.len(),
            outputs
                .iter()
                .map(|o| o.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
                / MIB
        ),
        Err(failure) => failure,
    };
    assert_eq!(failure.kind, FailureKind::Contract, "{failure:?}");
    assert!(
        failure.message.contains("outputs") && failure.message.contains("16 MiB"),
        "names the cap: {failure:?}"
    );
    assert_eq!(values(&results[2]), [b"ok-1".to_vec()]);
}

/// `state` is bounded per step: in total, per key and per value. A `set`
/// past a bound traps naming it; values that fit are stored, and a step
/// whose state is full still runs records that store nothing new.
#[test]
fn state_is_bounded_per_step() {
    let chain = built_chain("chaos", hostile_limits());
    let results = chain.run(&events(&[
        "state:4:1000",
        "state:1024:65536",
        "state-key:4096",
        "state:1:2097152",
        "plain",
    ]));
    assert_eq!(values(&results[0]), [b"state:4:1000".to_vec()]);
    for (result, named) in results[1..4].iter().zip(["state of", "key of", "value of"]) {
        let failure = result
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("state took it all ({named})"));
        assert_eq!(failure.kind, FailureKind::Trap, "{failure:?}");
        assert!(
            failure.message.contains("state") && failure.message.contains(named),
            "names the bound ({named}): {failure:?}"
        );
    }
    assert_eq!(values(&results[4]), [b"plain".to_vec()]);
}

/// A Python plugin calling `time.sleep(60)` waits in a WASI host call,
/// where epoch interruption cannot reach it: the host ends the wait at the
/// call's deadline. The worker is free again and the next record runs.
#[test]
fn a_blocking_wasi_call_ends_at_the_call_deadline() {
    let chain = built_chain("chaos-py", hostile_limits());
    let started = Instant::now();
    let results = chain.run(&events(&["sleep"]));
    let elapsed = started.elapsed();
    let failure = results[0].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Trap, "{failure:?}");
    assert!(
        failure.message.contains("exceeded its 1s deadline"),
        "{failure:?}"
    );
    // Without a bound the call would take the full minute; the margin is
    // for a busy machine.
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    let after = chain.run(&events(&["print", "after"]));
    assert_eq!(
        values(&after[0]),
        [b"print".to_vec()],
        "stdout is discarded"
    );
    assert_eq!(values(&after[1]), [b"after".to_vec()]);
}

/// The sandbox has no network: not even a socket can be opened (each would
/// hold one of the host's file descriptors).
#[test]
fn a_python_plugin_cannot_open_a_socket() {
    let chain = built_chain("chaos-py", hostile_limits());
    let failure = chain.run(&events(&["socket"])).pop().unwrap().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Rejected, "{failure:?}");
    assert!(
        failure.message.contains("Error"),
        "the plugin reports the refusal: {failure:?}"
    );
}

/// Bytes that are not a plugin are named for what they are, each with what
/// to do: not WebAssembly at all, a core module, a component that does not
/// implement the world.
#[test]
fn a_file_that_is_not_a_plugin_is_named_for_what_it_is() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(cache.path().to_owned()).unwrap();
    let load = |bytes: &[u8]| {
        let err = runtime
            .load_bytes("upload", std::path::Path::new("upload.wasm"), bytes)
            .err()
            .expect("refused");
        format!("{err:#}")
    };

    // 30 MB of random bytes, as an upload of the wrong file would be.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u8> = (0..30_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let text = load(&random);
    assert!(text.contains("not WebAssembly at all"), "{text}");
    assert!(!text.contains("core module"), "{text}");
    assert!(text.contains("not a WebAssembly component"), "{text}");

    let text = load(&wat::parse_str("(module)").unwrap());
    assert!(text.contains("a core WebAssembly module"), "{text}");
    assert!(
        text.contains("switchyard plugin build"),
        "says what to do: {text}"
    );

    let mut truncated = hostile(Hostility::default());
    truncated.truncate(truncated.len() / 2);
    let text = load(&truncated);
    assert!(text.contains("truncated or corrupt"), "{text}");

    let empty_component = wit_component::ComponentEncoder::default()
        .module(&wat::parse_str("(module)").unwrap())
        .unwrap()
        .encode()
        .unwrap();
    let text = load(&empty_component);
    assert!(
        text.contains("does not implement the world")
            && text.contains("missing export `switchyard:plugin/transform@0.1.0`"),
        "{text}"
    );
}
