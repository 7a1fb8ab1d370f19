//! The shipped routes file's mobility platform, run on test topics: the
//! routes under test are the ones `make run` uses, with only topic names,
//! consumer groups and the CRM's address changed.

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::*;

pub const MASTER_KEY: &str = "6d6f62696c6974792d746573742d6d61737465722d6b65792d30313233343536";
pub const INGEST_TOKEN: &str = "mobility-test-ingest-token";
pub const ADMIN_TOKEN: &str = "mobility-test-admin-token-0123";
/// The new user's `LastTripDate` before any trip (see switchyard.toml).
pub const NO_TRIP_YET: &str = "0001-01-01T00:00:00Z";
/// The start of the producer's simulated clock in the tests.
const START: &str = "2026-01-01T08:00:00Z";

/// The topics of one test run, standing for the shipped ones.
pub struct Topics {
    pub internal: String,
    pub public: String,
    pub crm_dlq: String,
    pub public_dlq: String,
    pub user_events: String,
    pub keys: String,
    pub audit: String,
}

impl Topics {
    pub async fn create(tag: &str) -> Topics {
        let name = |what: &str| unique(&format!("{tag}-{what}"));
        let t = Topics {
            internal: name("internal"),
            public: name("public"),
            crm_dlq: name("crm-dlq"),
            public_dlq: name("public-dlq"),
            user_events: name("user-events"),
            keys: name("keys"),
            audit: name("audit"),
        };
        create_topics(&[&t.internal], 4).await;
        create_topics(&[&t.public, &t.crm_dlq, &t.public_dlq, &t.user_events], 1).await;
        t
    }

    /// Every topic the platform writes, for reading back.
    pub fn all(&self) -> Vec<&str> {
        vec![
            &self.internal,
            &self.public,
            &self.crm_dlq,
            &self.public_dlq,
            &self.user_events,
            &self.keys,
            &self.audit,
        ]
    }
}

/// The shipped routes `names`, with what they need of the rest of the file
/// (`[subjects]`, and `[ingest_api]` or `[events_api]` when one of their
/// routes is among them), on `t`'s topics.
pub fn shipped_routes(t: &Topics, names: &[&str], retry_budget_ms: u64) -> String {
    let mut shipped = std::fs::read_to_string(workspace().join("switchyard.toml")).unwrap();
    for (from, to) in [
        ("mobility.internal", &t.internal),
        ("mobility.public.v1", &t.public),
        ("mobility.crm.dlq", &t.crm_dlq),
        ("mobility.public.dlq", &t.public_dlq),
        ("user-events", &t.user_events),
    ] {
        shipped = shipped.replace(&format!("\"{from}\""), &format!("{to:?}"));
    }
    let file: toml::Table = toml::from_str(&shipped).unwrap();
    let group = unique("platform");
    let mut routes = Vec::new();
    for route in file["routes"].as_array().unwrap() {
        let mut route = route.as_table().unwrap().clone();
        let name = route["name"].as_str().unwrap().to_owned();
        if !names.contains(&name.as_str()) {
            continue;
        }
        let source = route["source"].as_table_mut().unwrap();
        if source.contains_key("topics") {
            source.insert("group".into(), format!("{group}-{name}").into());
        }
        if let Some(http) = route["sink"].get_mut("http").and_then(|h| h.as_table_mut()) {
            http.insert("retry_budget_ms".into(), (retry_budget_ms as i64).into());
        }
        routes.push(toml::Value::Table(route));
    }
    assert_eq!(
        routes.len(),
        names.len(),
        "switchyard.toml lacks one of {names:?}"
    );
    let mut out = toml::Table::new();
    let mut subjects = file["subjects"].as_table().unwrap().clone();
    subjects.insert("keys_topic".into(), t.keys.clone().into());
    subjects.insert("audit_topic".into(), t.audit.clone().into());
    out.insert("subjects".into(), subjects.into());
    if names.contains(&"mobility-ingest") {
        out.insert("ingest_api".into(), file["ingest_api"].clone());
    }
    if names.contains(&"events-ingest") {
        out.insert("events_api".into(), file["events_api"].clone());
    }
    if !routes.is_empty() {
        out.insert("routes".into(), toml::Value::Array(routes));
    }
    toml::to_string(&out).unwrap()
}

/// Start switchyard with `routes` (see [`shipped_routes`]), the secrets
/// they reference, and an admin token; wait until it is healthy.
pub fn start(routes: &str, crm: Option<&MockCrm>) -> Switchyard {
    let crm_url = crm.map_or_else(|| "http://127.0.0.1:9".to_owned(), |c| c.url.clone());
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        routes,
        &["--brokers", &bootstrap()],
        &[
            ("SWITCHYARD_MASTER_KEY", MASTER_KEY),
            ("MOBILITY_INGEST_TOKEN", INGEST_TOKEN),
            ("MOBILITY_CRM_URL", &crm_url),
            ("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    sy.wait_healthy(Duration::from_secs(90));
    sy
}

fn producer_args(count: usize, seed: u64) -> Vec<String> {
    [
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
        "--users",
        "30",
        "--rate",
        "0",
        "--start",
        START,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Run the producer for `count` events of `seed` through `sy`'s ingest API
/// and wait for it to exit.
pub fn produce_via_ingest(sy: &Switchyard, count: usize, seed: u64) {
    let url = format!("http://{}/ingest/mobility-ingest", sy.http);
    let mut args = vec!["--ingest".to_owned(), url];
    args.extend(producer_args(count, seed));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut producer = Service::start(
        "mobility-producer",
        &args,
        &[("MOBILITY_PRODUCER_INGEST_TOKEN", INGEST_TOKEN)],
    );
    let status = producer.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "producer: {status}\n{}\nswitchyard:\n{}",
        producer.log_text(),
        sy.log_text()
    );
}

/// The events the producer makes for `count` and `seed`, in plaintext (it
/// is deterministic): what the test computes its expectations from.
pub fn printed_events(count: usize, seed: u64) -> Vec<Value> {
    let mut args = vec!["--print".to_owned()];
    args.extend(producer_args(count, seed));
    let output = std::process::Command::new(workspace_bin("mobility-producer"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), count);
    events
}

/// JSON Pointers of the fields marked `"x-personal": true` in the
/// checked-in schema of the internal event type `kind`.
pub fn personal_pointers(kind: &str) -> Vec<String> {
    let path = workspace().join(format!("docs/schemas/internal/{kind}.v1.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut found = Vec::new();
    collect_personal(&schema, &schema, "", &mut found);
    assert!(
        found.iter().any(|p| p == "/userId"),
        "{}: userId is not marked personal ({found:?})",
        path.display()
    );
    found
}

fn collect_personal(root: &Value, schema: &Value, at: &str, found: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        if let Some(target) = root.pointer(reference.trim_start_matches('#')) {
            collect_personal(root, target, at, found);
        }
    }
    if schema["x-personal"] == Value::Bool(true) && !found.iter().any(|p| p == at) {
        found.push(at.to_owned());
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for branch in schema[key].as_array().into_iter().flatten() {
            collect_personal(root, branch, at, found);
        }
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            collect_personal(root, property, &format!("{at}/{name}"), found);
        }
    }
}

/// Every string value of a field the contracts mark personal, in `events`.
pub fn personal_values(events: &[Value]) -> std::collections::BTreeSet<String> {
    let mut values = std::collections::BTreeSet::new();
    for e in events {
        for pointer in personal_pointers(e["type"].as_str().unwrap()) {
            if let Some(Value::String(s)) = e.pointer(&pointer) {
                values.insert(s.clone());
            }
        }
    }
    values
}

/// Panic if any of `values` appears in any key, value or header of `topic`.
pub fn assert_absent(topic: &str, values: &std::collections::BTreeSet<String>) -> usize {
    let records = read_topic(topic, usize::MAX, Duration::from_secs(3));
    for r in &records {
        let text = format!("{:?} {:?} {:?}", r.key, r.value, r.headers);
        for value in values {
            assert!(
                !text.contains(value.as_str()),
                "{value:?} in plaintext on `{topic}`: {text}"
            );
        }
    }
    records.len()
}
