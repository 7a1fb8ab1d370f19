//! Loading plugins through the compile cache, and running chains in
//! process (no broker needed).

use std::collections::BTreeMap;

use switchyard::plugin::bindings::Event;
use switchyard::plugin::cache::CacheOutcome;
use switchyard::plugin::pool::Limits;
use switchyard::plugin::{CallError, InstancePool, PluginRuntime};
use switchyard::route::chain::{Chain, Destination, FailureKind};
use switchyard_tests::plugins_dir;

fn limits() -> Limits {
    Limits {
        call_timeout: std::time::Duration::from_secs(5),
        memory_bytes: 64 << 20,
    }
}

fn event(offset: i64, value: &str) -> Event {
    Event {
        key: Some(b"k".to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![],
        topic: "t".into(),
        partition: 0,
        offset,
        timestamp_ms: Some(1),
    }
}

#[test]
fn a_restart_loads_the_precompiled_artefact_instead_of_compiling() {
    let cache = tempfile::tempdir().unwrap();
    let path = plugins_dir().join("json-set.wasm");
    let first = PluginRuntime::new(cache.path().to_owned())
        .unwrap()
        .load(&path)
        .unwrap();
    assert_eq!(first.cache, CacheOutcome::Compiled);
    // A new runtime stands for a new process.
    let second = PluginRuntime::new(cache.path().to_owned())
        .unwrap()
        .load(&path)
        .unwrap();
    assert_eq!(second.cache, CacheOutcome::Hit);
    assert_eq!(first.hash, second.hash);
    let artefacts = std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(artefacts, 1, "one artefact, keyed by content");
}

fn pool(runtime: &PluginRuntime, name: &str, config: &str) -> Result<InstancePool, CallError> {
    let plugin = runtime
        .load(&plugins_dir().join(format!("{name}.wasm")))
        .unwrap();
    InstancePool::new(runtime.clone(), plugin, config.into(), "test", limits())
}

#[test]
fn a_chain_passes_outputs_along_and_fails_only_the_bad_record() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(cache.path().to_owned()).unwrap();
    let chain = Chain::new(
        vec![
            pool(&runtime, "json-set", r#"{"set":{"stage":1}}"#).unwrap(),
            pool(&runtime, "uppercase", r#"{"fields":["name"]}"#).unwrap(),
        ],
        Destination::topic("out"),
        &BTreeMap::new(),
    );
    let results = chain.run(&[
        event(0, r#"{"name":"ada"}"#),
        event(1, "[1,2]"),
        event(2, r#"{"name":"bob"}"#),
    ]);
    assert_eq!(results.len(), 3);

    let first = results[0].as_ref().unwrap();
    assert_eq!(first.len(), 1);
    let value: serde_json::Value =
        serde_json::from_slice(first[0].value.as_ref().unwrap()).unwrap();
    assert_eq!(value, serde_json::json!({"name":"ADA","stage":1}));
    assert_eq!(first[0].topic().unwrap(), "out");
    assert_eq!(first[0].key.as_deref(), Some(&b"k"[..]));
    assert!(first[0].headers.iter().any(|h| h.key == "switchyard-chain"));

    let failure = results[1].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Rejected);
    assert!(failure.plugin.starts_with("json-set@"), "{failure:?}");

    assert!(results[2].is_ok(), "records after a rejected one still run");
}

#[test]
fn a_refused_configuration_is_reported_with_the_plugins_reason() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(cache.path().to_owned()).unwrap();
    let err = pool(&runtime, "json-set", r#"{"nope":1}"#)
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(text.contains("refused its configuration"), "{text}");
    assert!(
        text.contains("set"),
        "the plugin's reason names the field: {text}"
    );
}
