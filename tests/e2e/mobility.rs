//! The mobility platform end to end on Kafka: the event producer posts a
//! fixed, seeded set of internal events to the shipped `mobility-ingest`
//! route, which encrypts their personal fields per user; the shipped
//! `crm-sync` route keeps the mock CRM in sync through the HTTP sink, and
//! the shipped `public-stream` route publishes the public stream. What the
//! CRM holds and what the topics carry are checked against an independent
//! computation over the producer's events (it is deterministic, so the
//! same seed printed gives them in plaintext).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::*;

use crate::platform::{self, Topics, NO_TRIP_YET};

const ROUTES: &[&str] = &["mobility-ingest", "crm-sync", "public-stream"];

/// The internal topic as written: one record per event, each keyed by its
/// user's key reference (the same for a user's events, different between
/// users), with no personal value in plaintext.
fn check_internal_topic(topic: &str, events: &[Value]) {
    let records = read_topic(topic, events.len(), Duration::from_secs(60));
    assert_eq!(records.len(), events.len(), "internal topic");
    let user_of: BTreeMap<&str, &str> = events
        .iter()
        .map(|e| {
            (
                e["eventId"].as_str().unwrap(),
                e["userId"].as_str().unwrap(),
            )
        })
        .collect();
    let mut key_of_user: BTreeMap<&str, String> = BTreeMap::new();
    for r in &records {
        let event = r.json();
        let user = user_of[event["eventId"].as_str().unwrap()];
        let key = r.key.clone().expect("a key");
        assert!(key.starts_with("sy:key:"), "{key}");
        assert_eq!(
            key_of_user.entry(user).or_insert(key.clone()),
            &key,
            "one key per user"
        );
        assert!(
            event["userId"].as_str().unwrap().starts_with("sy:v2:"),
            "{event}"
        );
    }
    let keys: BTreeSet<&String> = key_of_user.values().collect();
    assert_eq!(keys.len(), key_of_user.len(), "users share a key");
    platform::assert_absent(topic, &platform::personal_values(events));
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
/// The pseudonym comes from the user's key, which only switchyard holds:
/// `subject` holds the user's id here, and the comparison checks that each
/// user has one pseudonym of its own.
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
                "type": kind, "time": e["occurredAt"], "subject": e["userId"],
                "datacontenttype": "application/json", "data": data,
            }),
        );
    }
    out
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
    let sy = platform::start(
        &platform::shipped_routes(&topics, ROUTES, 60_000),
        Some(&crm),
    );

    const COUNT: usize = 800;
    const SEED: u64 = 20261201;
    platform::produce_via_ingest(&sy, COUNT, SEED);
    let events = platform::printed_events(COUNT, SEED);
    check_internal_topic(&topics.internal, &events);
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
    let mut pseudonym_of: BTreeMap<String, String> = BTreeMap::new();
    for (id, expected) in &want {
        let got = have
            .get(id)
            .unwrap_or_else(|| panic!("public event {id} missing"));
        let user = expected["subject"].as_str().unwrap().to_owned();
        let subject = got["subject"].as_str().unwrap().to_owned();
        assert!(subject.starts_with("sy:ps:"), "{got}");
        assert_eq!(
            pseudonym_of.entry(user).or_insert(subject.clone()),
            &subject,
            "one pseudonym per user"
        );
        let mut expected = expected.clone();
        expected["subject"] = json!(subject);
        assert!(
            same(&expected, got),
            "public event {id}:\nwant {expected}\nhave {got}"
        );
    }
    let pseudonyms: BTreeSet<&String> = pseudonym_of.values().collect();
    assert_eq!(
        pseudonyms.len(),
        pseudonym_of.len(),
        "users share a pseudonym"
    );
    assert_valid_public(&have.values().cloned().collect::<Vec<_>>());

    // No personal value anywhere on the public topic: not in keys, values
    // or headers.
    let personal = platform::personal_values(&events);
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
    let sy = platform::start(
        &platform::shipped_routes(&topics, ROUTES, 120_000),
        Some(&crm),
    );

    // The CRM answers 503 for four seconds, from before the first event.
    crm.fail_for(503, 4_000);
    const COUNT: usize = 300;
    const SEED: u64 = 77;
    platform::produce_via_ingest(&sy, COUNT, SEED);
    let events = platform::printed_events(COUNT, SEED);
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
