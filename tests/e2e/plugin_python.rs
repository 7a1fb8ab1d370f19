//! A plugin written in Python (`plugins/python/tag-py`, built with
//! componentize-py) against the same world as the Rust plugins: in process
//! through a `Chain`, through a real Kafka route after the Rust `json-set`,
//! and inside the sandbox (no filesystem, no environment).

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard::plugin::bindings::Event;
use switchyard::plugin::pool::Limits;
use switchyard::plugin::{InstancePool, PluginRuntime};
use switchyard::route::chain::{Chain, Destination, FailureKind};
use switchyard_tests::*;

/// The memory cap the Python plugin runs with (see
/// docs/writing-a-plugin.md, "Plugins in other languages").
const MEMORY_MIB: u64 = 64;

fn tag_py_chain(cache: &std::path::Path, config: &str) -> Chain {
    let runtime = PluginRuntime::new(cache.to_owned()).unwrap();
    let path = plugins_dir().join("tag-py.wasm");
    assert!(
        path.is_file(),
        "{} not built: run scripts/build-plugins.sh",
        path.display()
    );
    let plugin = runtime.load(&path).unwrap();
    let limits = Limits {
        call_timeout: Duration::from_secs(5),
        memory_bytes: (MEMORY_MIB as usize) << 20,
    };
    let pool = InstancePool::new(runtime, plugin, config.into(), "python", limits).unwrap();
    Chain::new(vec![pool], Destination::topic("out"), &BTreeMap::new())
}

fn event(offset: i64, value: Option<&str>) -> Event {
    Event {
        key: Some(format!("k{offset}").into_bytes()),
        value: value.map(|v| v.as_bytes().to_vec()),
        headers: vec![],
        topic: "t".into(),
        partition: 0,
        offset,
        timestamp_ms: None,
    }
}

fn json_of(value: &Option<Vec<u8>>) -> serde_json::Value {
    serde_json::from_slice(value.as_deref().expect("a value")).expect("JSON value")
}

#[test]
fn python_plugin_tags_json_rejects_non_json_and_passes_tombstones() {
    let cache = tempfile::tempdir().unwrap();
    let chain = tag_py_chain(cache.path(), r#"{"field": "lang"}"#);
    let results = chain.run(&[
        event(0, Some(r#"{"a":1}"#)),
        event(1, Some("not json")),
        event(2, None),
        event(3, Some("[1,2]")),
    ]);
    let out = results[0].as_ref().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic().unwrap(), "out");
    assert_eq!(out[0].key.as_deref(), Some(&b"k0"[..]), "key kept");
    assert_eq!(
        json_of(&out[0].value),
        serde_json::json!({"a": 1, "lang": "python"})
    );

    let reject = results[1].as_ref().unwrap_err();
    assert_eq!(reject.kind, FailureKind::Rejected);
    assert!(reject.message.contains("not JSON"), "{reject:?}");

    let tombstone = results[2].as_ref().unwrap();
    assert_eq!(tombstone.len(), 1);
    assert_eq!(tombstone[0].value, None, "tombstone passed through");
    assert_eq!(tombstone[0].key.as_deref(), Some(&b"k2"[..]));

    let not_object = results[3].as_ref().unwrap_err();
    assert_eq!(not_object.kind, FailureKind::Rejected);
    assert!(
        not_object.message.contains("not an object"),
        "{not_object:?}"
    );
}

#[test]
fn python_plugin_refuses_a_bad_config() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(cache.path().to_owned()).unwrap();
    let plugin = runtime.load(&plugins_dir().join("tag-py.wasm")).unwrap();
    let limits = Limits {
        call_timeout: Duration::from_secs(5),
        memory_bytes: (MEMORY_MIB as usize) << 20,
    };
    let err = InstancePool::new(runtime, plugin, r#"{"nope": 1}"#.into(), "python", limits)
        .err()
        .expect("config refused");
    assert!(
        err.to_string().contains("unknown config keys: nope"),
        "{err}"
    );
}

#[test]
fn python_plugin_cannot_read_files_or_the_environment() {
    let cache = tempfile::tempdir().unwrap();
    let chain = tag_py_chain(cache.path(), r#"{"probe_sandbox": true}"#);
    let results = chain.run(&[event(0, Some("{}"))]);
    let out = results[0].as_ref().unwrap();
    let sandbox = &json_of(&out[0].value)["sandbox"];
    let file = sandbox["file"].as_str().unwrap();
    assert!(
        file.starts_with("error:"),
        "/etc/passwd was readable: {sandbox}"
    );
    assert!(
        sandbox["listdir"]
            .as_str()
            .is_some_and(|s| s.starts_with("error:")),
        "/ was listable: {sandbox}"
    );
    assert_eq!(sandbox["env"], serde_json::json!({}), "{sandbox}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_set_then_python_plugin_through_a_kafka_route() {
    let source = unique("py-in");
    let sink = unique("py-out");
    let dlq = unique("py-dlq");
    let group = unique("py-group");
    create_topics(&[&source, &sink, &dlq], 2).await;
    const N: usize = 200;
    let mut records: Vec<(String, String)> = (0..N)
        .map(|i| {
            let key = format!("key-{}", i % 10);
            let value = serde_json::json!({"key": key, "seq": i / 10});
            (key, value.to_string())
        })
        .collect();
    records.push(("bad".into(), "not json".into()));
    produce(&producer(), &source, &records).await;

    let routes = format!(
        r#"
[[routes]]
name = "python"
source = {{ topics = ["{source}"], group = "{group}" }}
memory_limit_mib = {MEMORY_MIB}
chain = [
  {{ plugin = "json-set", config = {{ set = {{ stage = "enriched" }} }} }},
  {{ plugin = "tag-py" }},
]
sink = {{ topic = "{sink}" }}
dead_letter = {{ topic = "{dlq}" }}
"#
    );
    let mut sy = Switchyard::start(&routes);
    // The first start compiles the 18 MB component (seconds).
    sy.wait_healthy(Duration::from_secs(120));
    let out = read_topic(&sink, N, Duration::from_secs(120));
    assert_eq!(out.len(), N, "{}", sy.log_text());
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &out {
        let v = r.json();
        assert_eq!(v["stage"], "enriched", "json-set applied: {v}");
        assert_eq!(v["tagged_by"], "python", "tag-py applied: {v}");
        let key = v["key"].as_str().unwrap().to_owned();
        assert_eq!(r.key.as_deref(), Some(key.as_str()));
        let chain = &r.headers["switchyard-chain"];
        assert!(
            chain.starts_with("json-set@") && chain.contains(",tag-py@"),
            "{chain}"
        );
        per_key
            .entry(key)
            .or_default()
            .push(v["seq"].as_u64().unwrap());
    }
    for (key, seqs) in per_key {
        assert_eq!(seqs, (0..(N / 10) as u64).collect::<Vec<_>>(), "{key}");
    }
    let dead = read_topic(&dlq, 1, Duration::from_secs(60));
    assert_eq!(dead.len(), 1, "the non-JSON record is dead-lettered");
    assert_eq!(dead[0].value.as_deref(), Some("not json"));
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}
