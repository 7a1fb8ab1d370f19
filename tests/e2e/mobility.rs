//! The mobility platform end to end on Kafka: the event producer writes a
//! fixed, seeded set of internal events; the shipped `crm-sync` route keeps
//! the mock CRM in sync through the HTTP sink, and the shipped
//! `public-stream` route publishes the public stream. What the CRM holds
//! and what the public topic carries are checked against an independent
//! computation over the events read back from the internal topic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::*;

use crate::plugin_redact::hmac_sha256;

const SUBJECT_KEY: &str = "mobility-test-subject-key-0123456789abcdef";
/// The new user's `LastTripDate` before any trip (see switchyard.toml).
const NO_TRIP_YET: &str = "0001-01-01T00:00:00Z";

/// Topic names of one test run.
struct Topics {
    internal: String,
    public: String,
    crm_dlq: String,
    public_dlq: String,
}

impl Topics {
    async fn create(tag: &str) -> Topics {
        let topics = Topics {
            internal: unique(&format!("{tag}-internal")),
            public: unique(&format!("{tag}-public")),
            crm_dlq: unique(&format!("{tag}-crm-dlq")),
            public_dlq: unique(&format!("{tag}-public-dlq")),
        };
        create_topics(&[&topics.internal], 4).await;
        create_topics(&[&topics.public, &topics.crm_dlq, &topics.public_dlq], 1).await;
        topics
    }
}

/// The shipped routes file's `crm-sync` and `public-stream` routes, as they
/// are, with this run's topics, groups and CRM address: the mappings under
/// test are the ones `make run` uses.
fn shipped_mobility_routes(t: &Topics, retry_budget_ms: u64) -> String {
    let shipped = std::fs::read_to_string(workspace().join("switchyard.toml")).unwrap();
    let file: toml::Table = toml::from_str(&shipped).unwrap();
    let group = unique("mobility");
    let mut routes = Vec::new();
    for route in file["routes"].as_array().unwrap() {
        let mut route = route.as_table().unwrap().clone();
        let name = route["name"].as_str().unwrap().to_owned();
        let (public_sink, dead_letters) = match name.as_str() {
            "crm-sync" => (None, &t.crm_dlq),
            "public-stream" => (Some(&t.public), &t.public_dlq),
            _ => continue,
        };
        route.insert(
            "source".into(),
            toml::Value::Table(
                toml::from_str(&format!(
                    "topics = [{:?}]\ngroup = \"{group}-{name}\"",
                    t.internal
                ))
                .unwrap(),
            ),
        );
        route.insert(
            "dead_letter".into(),
            toml::Value::Table(toml::from_str(&format!("topic = {dead_letters:?}")).unwrap()),
        );
        let sink = route["sink"].as_table_mut().unwrap();
        match public_sink {
            Some(public) => {
                sink.insert("topic".into(), toml::Value::String(public.clone()));
            }
            None => {
                // The CRM's address stays the shipped environment reference.
                let http = sink["http"].as_table_mut().unwrap();
                http.insert(
                    "retry_budget_ms".into(),
                    toml::Value::Integer(retry_budget_ms as i64),
                );
            }
        }
        routes.push(toml::Value::Table(route));
    }
    assert_eq!(routes.len(), 2, "switchyard.toml lacks a mobility route");
    let mut out = toml::Table::new();
    out.insert("routes".into(), toml::Value::Array(routes));
    toml::to_string(&out).unwrap()
}

/// Start switchyard with the mobility routes and wait until it is healthy.
fn start_router(t: &Topics, crm: &MockCrm, retry_budget_ms: u64) -> Switchyard {
    let routes = shipped_mobility_routes(t, retry_budget_ms);
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes,
        &["--brokers", &bootstrap()],
        &[
            ("MOBILITY_SUBJECT_KEY", SUBJECT_KEY),
            ("MOBILITY_CRM_URL", &crm.url),
        ],
    );
    sy.wait_healthy(Duration::from_secs(90));
    sy
}

/// Run the producer for `count` events of `seed` and wait for it to exit.
fn produce_events(topic: &str, count: usize, seed: u64) {
    let (count, seed) = (count.to_string(), seed.to_string());
    let mut producer = Service::start(
        "mobility-producer",
        &[
            "--brokers",
            &bootstrap(),
            "--topic",
            topic,
            "--count",
            &count,
            "--seed",
            &seed,
            "--users",
            "30",
            "--rate",
            "0",
            "--start",
            "2026-01-01T08:00:00Z",
        ],
        &[],
    );
    let status = producer.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "producer: {status}\n{}",
        producer.log_text()
    );
}

/// The produced events, read back with a plain consumer, in per-user order
/// (partition order; the topic is keyed by user).
fn internal_events(topic: &str, count: usize) -> Vec<Record> {
    let mut records = read_topic(topic, count, Duration::from_secs(60));
    assert_eq!(records.len(), count, "internal topic");
    records.sort_by_key(|r| (r.partition, r.offset));
    for r in &records {
        assert_eq!(
            r.key.as_deref(),
            r.json()["userId"].as_str(),
            "records are keyed by user"
        );
    }
    records
}

/// What the CRM must hold after `events`, computed from the events alone:
/// (users, trips) by id.
fn expected_crm(events: &[Value]) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let mut users: BTreeMap<String, Value> = BTreeMap::new();
    let mut trips: BTreeMap<String, Value> = BTreeMap::new();
    for e in events {
        let user = e["userId"].as_str().unwrap().to_owned();
        let p = &e["payload"];
        match e["type"].as_str().unwrap() {
            "UserRegistered" => {
                let previous = users.insert(
                    user.clone(),
                    json!({
                        "Id": user, "FirstName": p["firstName"], "LastName": p["lastName"],
                        "Email": p["email"], "LastTripType": null, "LastTripId": null,
                        "LastTripDate": NO_TRIP_YET,
                    }),
                );
                assert!(previous.is_none(), "{user} registered twice");
            }
            "UserUpdated" => {
                let u = users.get_mut(&user).expect("updated before registering");
                u["FirstName"] = p["firstName"].clone();
                u["LastName"] = p["lastName"].clone();
                u["Email"] = p["email"].clone();
            }
            "TripStarted" => {
                let trip = p["tripId"].as_str().unwrap().to_owned();
                trips.insert(
                    trip.clone(),
                    json!({
                        "Id": trip, "UserId": user, "From": p["from"], "To": null, "Price": 0,
                        "StartDate": p["startedAt"], "EndDate": null, "Type": p["tripType"],
                    }),
                );
                let u = users.get_mut(&user).expect("a trip before registering");
                u["LastTripType"] = p["tripType"].clone();
                u["LastTripId"] = json!(trip);
                u["LastTripDate"] = p["startedAt"].clone();
            }
            "TripEnded" => {
                let t = trips
                    .get_mut(p["tripId"].as_str().unwrap())
                    .expect("a trip ended before it started");
                t["To"] = p["to"].clone();
                t["Price"] = p["price"].clone();
                t["EndDate"] = p["endedAt"].clone();
            }
            _ => {}
        }
    }
    (users, trips)
}

/// JSON values equal, numbers compared as numbers (`0` is `0.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

fn same_records(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(id, v)| b.get(id).is_some_and(|w| same(v, w)))
}

/// Wait until the CRM holds exactly `users` and `trips`; on timeout, panic
/// naming the first difference.
fn wait_for_crm(
    crm: &MockCrm,
    sy: &Switchyard,
    users: &BTreeMap<String, Value>,
    trips: &BTreeMap<String, Value>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        // Empty while the CRM answers with an injected fault.
        let have_users = crm.try_all("users").unwrap_or_default();
        let have_trips = crm.try_all("trips").unwrap_or_default();
        if same_records(users, &have_users) && same_records(trips, &have_trips) {
            return;
        }
        if Instant::now() > deadline {
            let first_difference =
                |want: &BTreeMap<String, Value>, have: &BTreeMap<String, Value>| {
                    want.iter()
                        .find(|(id, v)| !have.get(*id).is_some_and(|w| same(v, w)))
                        .map(|(id, v)| format!("{id}: want {v}, have {:?}", have.get(id)))
                        .or_else(|| {
                            have.keys()
                                .find(|id| !want.contains_key(*id))
                                .map(|id| format!("{id}: not expected"))
                        })
                };
            panic!(
                "the CRM did not converge: {} of {} users, {} of {} trips\nusers: {:?}\ntrips: \
                 {:?}\nswitchyard:\n{}",
                have_users.len(),
                users.len(),
                have_trips.len(),
                trips.len(),
                first_difference(users, &have_users),
                first_difference(trips, &have_trips),
                sy.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The public event each internal event must become (by event id), from
/// the public schema's rules: CloudEvents, subject the user's pseudonym.
fn expected_public(events: &[Value]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in events {
        let p = &e["payload"];
        let (kind, data) = match e["type"].as_str().unwrap() {
            "UserRegistered" => ("mobility.user.registered.v1", json!({})),
            "TripStarted" => (
                "mobility.trip.started.v1",
                json!({"tripId": p["tripId"], "mode": p["tripType"], "startedAt": p["startedAt"]}),
            ),
            "TripEnded" => (
                "mobility.trip.ended.v1",
                json!({"tripId": p["tripId"], "mode": p["tripType"], "endedAt": p["endedAt"],
                       "price": p["price"], "currency": p["currency"], "distanceKm": p["distanceKm"]}),
            ),
            "PaymentCaptured" => (
                "mobility.payment.captured.v1",
                json!({"paymentId": p["paymentId"], "tripId": p["tripId"], "amount": p["amount"],
                       "currency": p["currency"], "method": p["method"]}),
            ),
            "RefundIssued" => (
                "mobility.refund.issued.v1",
                json!({"refundId": p["refundId"], "paymentId": p["paymentId"], "tripId": p["tripId"],
                       "amount": p["amount"], "currency": p["currency"], "reason": p["reason"]}),
            ),
            "UserUpdated" => continue,
            other => panic!("an event type this test does not know: {other}"),
        };
        let id = e["eventId"].as_str().unwrap().to_owned();
        out.insert(
            id.clone(),
            json!({
                "specversion": "1.0", "id": id, "source": "urn:mobility:platform",
                "type": kind, "time": e["occurredAt"], "subject": subject(e["userId"].as_str().unwrap()),
                "datacontenttype": "application/json", "data": data,
            }),
        );
    }
    out
}

/// The pseudonym of a user: the redact plugin's keyed hash of the id's
/// JSON text, computed independently.
fn subject(user: &str) -> String {
    format!(
        "hmac:{}",
        hmac_sha256(SUBJECT_KEY.as_bytes(), format!("{user:?}").as_bytes())
    )
}

/// Every value of a field the internal contracts mark personal, in these
/// events (from the checked-in schemas' `x-personal` markers).
fn personal_values(events: &[Value]) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    for e in events {
        let kind = e["type"].as_str().unwrap();
        for pointer in personal_pointers(kind) {
            if let Some(Value::String(s)) = e.pointer(&pointer) {
                values.insert(s.clone());
            }
        }
    }
    values
}

/// JSON Pointers of the fields marked `"x-personal": true` in the
/// checked-in schema of `kind`.
fn personal_pointers(kind: &str) -> Vec<String> {
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
        let target = reference.trim_start_matches('#');
        if let Some(target) = root.pointer(target) {
            collect_personal(root, target, at, found);
        }
    }
    if schema["x-personal"] == json!(true) && !found.iter().any(|p| p == at) {
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

/// Check every public event against the published schema.
fn assert_valid_public(events: &[Value]) {
    let path = workspace().join("docs/schemas/public/mobility-public.v1.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    for event in events {
        let errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{event} does not match {}: {errors:?}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn produced_events_keep_the_crm_in_sync_and_feed_the_public_stream() {
    let topics = Topics::create("mobility").await;
    let crm = MockCrm::start();
    let sy = start_router(&topics, &crm, 60_000);

    const COUNT: usize = 800;
    produce_events(&topics.internal, COUNT, 20261201);
    let records = internal_events(&topics.internal, COUNT);
    let events: Vec<Value> = records.iter().map(Record::json).collect();
    let kinds: BTreeSet<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in [
        "UserRegistered",
        "UserUpdated",
        "TripStarted",
        "TripEnded",
        "PaymentCaptured",
    ] {
        assert!(
            kinds.contains(kind),
            "the seeded run has no {kind}: {kinds:?}"
        );
    }

    // The CRM: every user and trip, every field.
    let (users, trips) = expected_crm(&events);
    assert!(
        users.len() >= 20 && trips.len() >= 100,
        "{} users, {} trips",
        users.len(),
        trips.len()
    );
    wait_for_crm(&crm, &sy, &users, &trips, Duration::from_secs(120));
    // Each record was created once (a redelivery replaces, never creates).
    let stats = crm.stats();
    assert_eq!(
        stats["by_status"]["201"].as_u64(),
        Some((users.len() + trips.len()) as u64),
        "{stats}"
    );

    // The public stream: every expected event, nothing else, valid
    // against the published schema, keyed by subject.
    let want = expected_public(&events);
    let public = read_topic(&topics.public, want.len(), Duration::from_secs(60));
    let have: BTreeMap<String, Value> = public
        .iter()
        .map(|r| {
            let v = r.json();
            assert_eq!(
                r.key.as_deref(),
                v["subject"].as_str(),
                "keyed by subject: {v}"
            );
            (v["id"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(
        public.len(),
        want.len(),
        "one public event per public internal event"
    );
    for (id, expected) in &want {
        let got = have
            .get(id)
            .unwrap_or_else(|| panic!("public event {id} missing"));
        assert!(
            same(expected, got),
            "public event {id}:\nwant {expected}\nhave {got}"
        );
    }
    assert_valid_public(&have.values().cloned().collect::<Vec<_>>());

    // No personal value anywhere on the public topic: not in keys, values
    // or headers.
    let personal = personal_values(&events);
    assert!(
        personal.len() > 3 * users.len(),
        "{} personal values",
        personal.len()
    );
    for r in &public {
        let text = format!("{:?} {:?} {:?}", r.key, r.value, r.headers);
        for value in &personal {
            assert!(
                !text.contains(value.as_str()),
                "personal value {value:?} on the public topic: {text}"
            );
        }
    }

    // Nothing was dead-lettered.
    assert_eq!(topic_size(&topics.crm_dlq), 0);
    assert_eq!(topic_size(&topics.public_dlq), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_crm_converges_after_an_outage_with_nothing_lost_or_duplicated() {
    let topics = Topics::create("crm-outage").await;
    let crm = MockCrm::start();
    let sy = start_router(&topics, &crm, 120_000);

    // The CRM answers 503 for four seconds, from before the first event.
    crm.fail_for(503, 4_000);
    const COUNT: usize = 300;
    produce_events(&topics.internal, COUNT, 77);
    let events: Vec<Value> = internal_events(&topics.internal, COUNT)
        .iter()
        .map(Record::json)
        .collect();
    let (users, trips) = expected_crm(&events);
    wait_for_crm(&crm, &sy, &users, &trips, Duration::from_secs(120));

    let stats = crm.stats();
    assert_eq!(
        stats["by_status"]["201"].as_u64(),
        Some((users.len() + trips.len()) as u64),
        "each record created exactly once: {stats}"
    );
    let metrics = get_text(&format!("http://{}/metrics", sy.http)).1;
    // The route did meet the outage (the test's own reads do not count
    // here).
    let retried = metrics.lines().any(|l| {
        l.starts_with("switchyard_http_sink_requests_total{route=\"crm-sync\",status=\"503\"}")
    });
    assert!(retried, "no 503 counted in /metrics:\n{metrics}");
    assert_eq!(topic_size(&topics.crm_dlq), 0, "nothing dead-lettered");
}
