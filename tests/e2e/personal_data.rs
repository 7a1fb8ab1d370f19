//! Attacks on personal data through the shipped routes, on Apache Kafka:
//! what an anonymous client of the public listener, a reader or writer of
//! a topic, or a reader of the admin API's open endpoints can get of a
//! data subject's plaintext. Each test is an attack that once worked.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::*;

use crate::platform::{self, Topics, INGEST_TOKEN};

/// A user's registration, as the internal contracts have it.
fn registration(user: &str, email: &str) -> Value {
    json!({
        "eventId": unique("evt"), "version": 1, "occurredAt": "2026-01-01T09:00:00Z",
        "userId": user, "type": "UserRegistered",
        "payload": {"firstName": "Victoria", "lastName": "Victim", "email": email, "phone": "+37060009999"},
    })
}

async fn ingest(sy: &Switchyard, events: &[Value]) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let reply = call(
        "POST",
        &format!("http://{}/ingest/mobility-ingest", sy.http),
        &[
            ("Authorization", &format!("Bearer {INGEST_TOKEN}")),
            ("Content-Type", "application/x-ndjson"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

async fn post_event(sy: &Switchyard, event: &Value) -> Reply {
    call(
        "POST",
        &format!("http://{}/events", sy.http),
        &[("Content-Type", "application/json")],
        event.to_string().as_bytes(),
    )
    .await
}

async fn recent_events(sy: &Switchyard) -> String {
    let reply = call(
        "GET",
        &format!("http://{}/events?limit=1000", sy.http),
        &[],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.text
}

/// The attack as it was reported: take an encrypted field from
/// `mobility.internal`, post it to the public events API inside an event of
/// one's own, and read it back decrypted from `GET /events`. Every variant
/// is refused at the door, naming the field; and nothing posted makes the
/// victim's plaintext appear in `GET /events`.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_lifted_from_a_topic_is_refused_by_the_events_api_and_never_decrypted() {
    let t = Topics::create("lift").await;
    let routes = platform::shipped_routes(
        &t,
        &["mobility-ingest", "events-ingest", "events-recent"],
        60_000,
    );
    let sy = platform::start(&routes, None);

    let victim = unique("victim");
    let email = format!("{victim}@example.com");
    ingest(&sy, &[registration(&victim, &email)]).await;
    let internal = read_topic(&t.internal, 1, Duration::from_secs(30));
    let record = internal[0].json();
    let email_token = record["payload"]["email"].as_str().unwrap().to_owned();
    let id_token = record["userId"].as_str().unwrap().to_owned();
    assert!(email_token.starts_with("sy:v"), "{record}");

    let attacks = [
        // As reported: an unknown field at the token's own place.
        (
            json!({"userId": "x", "type": "login", "payload": {"email": email_token}}),
            "/payload/email",
        ),
        // Inside `data`, which the events API passes on.
        (
            json!({"userId": "x", "type": "login", "data": {"email": email_token}}),
            "/data/email",
        ),
        // The victim's own id token as the user id.
        (json!({"userId": id_token, "type": "login"}), "/userId"),
        // Both, so that the record is the victim's in every respect.
        (
            json!({"userId": id_token, "type": "login", "payload": {"email": email_token}}),
            "/userId",
        ),
        // Escaped, so that the bytes do not show the token's prefix.
        (
            json!({"userId": "x", "type": "login", "data": {"e": email_token}}),
            "/data/e",
        ),
    ];
    for (i, (attack, pointer)) in attacks.iter().enumerate() {
        let reply = if i == attacks.len() - 1 {
            let text = attack.to_string().replace("sy:v", "\\u0073y:v");
            call(
                "POST",
                &format!("http://{}/events", sy.http),
                &[("Content-Type", "application/json")],
                text.as_bytes(),
            )
            .await
        } else {
            post_event(&sy, attack).await
        };
        assert_eq!(reply.status, 400, "attack {i} was accepted: {reply:?}");
        let reasons = reply.json()["reasons"].to_string();
        assert!(
            reasons.contains(pointer) && reasons.contains("token"),
            "attack {i}: {reasons}"
        );
    }

    // An event with a field the event document does not have is taken,
    // without the field (as the document's own server deserialises it).
    let extra = unique("extra");
    let reply = post_event(
        &sy,
        &json!({"userId": extra, "type": "login", "comment": "kept out"}),
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");

    // A plain event after the attacks: once it shows, everything posted
    // before it has been processed.
    let marker = unique("marker");
    let ok = post_event(&sy, &json!({"userId": marker, "type": "login"})).await;
    assert_eq!(ok.status, 202, "{ok:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let shown = loop {
        let shown = recent_events(&sy).await;
        if shown.contains(&marker) {
            break shown;
        }
        assert!(Instant::now() < deadline, "{}", sy.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!shown.contains(&email), "the victim's email: {shown}");
    assert!(!shown.contains(&victim), "the victim's id: {shown}");
    assert!(
        shown.contains(&extra) && !shown.contains("kept out"),
        "{shown}"
    );
    // The events API keeps the event document's four fields only.
    let events: Vec<Value> = serde_json::from_str(&shown).unwrap();
    for event in &events {
        let mut fields: Vec<&String> = event.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["data", "timestamp", "type", "userId"], "{event}");
    }
}

/// A writer of a topic copies a token into a record of another topic, at
/// the same field: the host's scope binding refuses to open it there, and
/// on records received over HTTP decrypting is refused outright. Runs the
/// bundled `redact` and `decrypt` on one in-memory key store.
#[test]
fn a_token_opens_only_in_the_topic_its_route_wrote_it_to() {
    use std::sync::Arc;
    use switchyard::plugin::bindings::{Event, Outcome};
    use switchyard::plugin::pool::{Limits, RouteScope};
    use switchyard::plugin::{InstancePool, PluginRuntime};
    use switchyard::subjects::crypto::{KeyRing, MasterKey};
    use switchyard::subjects::keys::KeyStore;

    let keys = KeyStore::in_memory(KeyRing::new(&MasterKey::random()));
    let runtime = PluginRuntime::new(workspace().join("target/test-cache"))
        .unwrap()
        .with_subjects(Arc::new(keys));
    let limits = Limits {
        call_timeout: Duration::from_secs(5),
        memory_bytes: 64 << 20,
    };
    let load = |name: &str| {
        runtime
            .load(&plugins_dir().join(format!("{name}.wasm")))
            .unwrap()
    };
    let redact = InstancePool::new(
        runtime.clone(),
        load("redact"),
        json!({"subject_field": "userId", "key": "subject-ref",
               "rules": [{"path": "email", "action": "encrypt"}]})
        .to_string(),
        RouteScope::new("ingest", "made-for"),
        limits,
    )
    .unwrap();
    let decrypt = InstancePool::new(
        runtime.clone(),
        load("decrypt"),
        json!({"fields": ["/email"]}).to_string(),
        "reader",
        limits,
    )
    .unwrap();
    let event = |topic: &str, key: Option<Vec<u8>>, value: Vec<u8>| Event {
        key,
        value: Some(value),
        headers: Vec::new(),
        topic: topic.to_owned(),
        partition: 0,
        offset: 0,
        timestamp_ms: None,
    };
    let one = |pool: &InstancePool, e: Event| pool.process(&[e]).unwrap().pop().unwrap();
    let Outcome::Emit(mut out) = one(
        &redact,
        event(
            "http:ingest",
            None,
            br#"{"userId":"u-1","email":"u1@example.com"}"#.to_vec(),
        ),
    ) else {
        panic!("redact did not emit");
    };
    let sealed = out.remove(0);
    let (key, value) = (sealed.key, sealed.value.unwrap());
    assert!(!String::from_utf8_lossy(&value).contains("u1@example.com"));

    // Read from the topic it was written to: it opens.
    match one(&decrypt, event("made-for", key.clone(), value.clone())) {
        Outcome::Emit(out) => assert_eq!(
            serde_json::from_slice::<Value>(out[0].value.as_deref().unwrap()).unwrap()["email"],
            "u1@example.com"
        ),
        other => panic!("{other:?}"),
    }
    // Copied into another topic, same field, same key: refused.
    match one(&decrypt, event("elsewhere", key.clone(), value.clone())) {
        Outcome::Reject(reasons) => assert!(
            reasons.len() == 1
                && reasons[0].starts_with("/email: the token (sy:v...) does not decrypt here")
                && reasons[0].contains("another field or topic"),
            "{reasons:?}"
        ),
        other => panic!("{other:?}"),
    }
    // Received over HTTP: never opened.
    match one(&decrypt, event("http:events-ingest", key, value)) {
        Outcome::Reject(reasons) => assert!(
            reasons[0].contains("tokens are not read from records received over HTTP"),
            "{reasons:?}"
        ),
        other => panic!("{other:?}"),
    }
}

fn text_of(sy: &Switchyard, path: &str, token: Option<&str>) -> (u16, String) {
    let (code, body) = http_request("GET", &format!("http://{}{path}", sy.http), token, vec![]);
    (code, body.to_string())
}

/// A shadow attached after `decrypt` compares records that hold personal
/// data in plaintext. Its report needs the admin token, and even then its
/// samples show where the outcomes differ, not the values.
#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_report_needs_the_token_and_keeps_no_plaintext() {
    let t = Topics::create("shadow-pii").await;
    let crm = MockCrm::start();
    let routes = platform::shipped_routes(&t, &["mobility-ingest", "crm-sync"], 60_000);
    let sy = platform::start(&routes, Some(&crm));
    let admin = |method: &str, path: &str, body: Vec<u8>| {
        http_request(
            method,
            &format!("http://{}{path}", sy.http),
            Some(platform::ADMIN_TOKEN),
            body,
        )
    };
    // A candidate for crm-map (step 2) that emits what it is given: the
    // decrypted event, so the two differ on every record.
    let noop = std::fs::read(plugins_dir().join("noop.wasm")).unwrap();
    let (code, body) = admin("PUT", "/admin/candidates/crm-map-next", noop);
    assert_eq!(code, 201, "{body}");
    let (code, body) = admin(
        "POST",
        "/admin/routes/crm-sync/shadow",
        serde_json::to_vec(&json!({"candidate": "crm-map-next", "step": 2})).unwrap(),
    );
    assert_eq!(code, 200, "{body}");

    let victim = unique("victim");
    let email = format!("{victim}@example.com");
    ingest(&sy, &[registration(&victim, &email)]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let (code, report) = text_of(
            &sy,
            "/admin/routes/crm-sync/shadow",
            Some(platform::ADMIN_TOKEN),
        );
        assert_eq!(code, 200, "{report}");
        let parsed: Value = serde_json::from_str(&report).unwrap();
        if parsed["differed"].as_u64() >= Some(1)
            && !parsed["samples"].as_array().unwrap().is_empty()
        {
            break report;
        }
        assert!(Instant::now() < deadline, "{report}\n{}", sy.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for plain in [victim.as_str(), email.as_str(), "Victoria", "Victim"] {
        assert!(
            !report.contains(plain),
            "{plain:?} in the shadow report: {report}"
        );
    }
    // Still useful: the sample says what differs.
    assert!(report.contains("emit"), "{report}");

    // Without the token, or with another, nothing.
    let (code, body) = text_of(&sy, "/admin/routes/crm-sync/shadow", None);
    assert_eq!(code, 401, "{body}");
    let (code, body) = text_of(
        &sy,
        "/admin/routes/crm-sync/shadow",
        Some("not-the-admin-token-0"),
    );
    assert_eq!(code, 401, "{body}");
}

/// A route that halts on a record a plugin rejected: the reason, which may
/// quote the record, is shown to the admin token's holder only; `/healthz`
/// and the open route list say where and why in general terms.
#[tokio::test(flavor = "multi_thread")]
async fn halt_reasons_on_open_reads_do_not_quote_records() {
    let (source, sink) = (unique("halt-in"), unique("halt-out"));
    create_topics(&[&source, &sink], 1).await;
    let routes = format!(
        r#"
[[routes]]
name = "strict"
source = {{ topics = ["{source}"] }}
sink = {{ topic = "{sink}" }}
[[routes.chain]]
plugin = "validate"
config.fields.type = {{ required = true, type = "string", one_of = ["login"] }}
"#
    );
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes,
        &["--brokers", &bootstrap()],
        &[("SWITCHYARD_ADMIN_TOKEN", platform::ADMIN_TOKEN)],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let secret = unique("private-value");
    produce(
        &producer(),
        &source,
        &[("k".to_owned(), json!({"type": secret}).to_string())],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, health) = text_of(&sy, "/healthz", None);
        if code == 503 && health.contains("halted") {
            assert!(!health.contains(&secret), "{health}");
            assert!(
                health.contains("offset 0") && health.contains("validate@"),
                "{health}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{health}\n{}", sy.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in ["/admin/routes", "/admin/routes/strict"] {
        let (code, open) = text_of(&sy, path, None);
        assert_eq!(code, 200, "{open}");
        assert!(!open.contains(&secret), "{path}: {open}");
        let (code, full) = text_of(&sy, path, Some(platform::ADMIN_TOKEN));
        assert_eq!(code, 200, "{full}");
        assert!(
            full.contains(&secret),
            "{path}: the admin sees the reason: {full}"
        );
    }
}

/// A plugin after `decrypt` that quotes what it was given in a rejection
/// (validate: `must be one of ... (got "...")`): the dead-letter topic's
/// readers get the reason without the decrypted value in it.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letter_reasons_do_not_quote_what_decrypt_revealed() {
    let t = Topics::create("dlq-pii").await;
    let dlq = unique("dlq-pii-dlq");
    let out = unique("dlq-pii-out");
    create_topics(&[&dlq, &out], 1).await;
    let shipped = platform::shipped_routes(&t, &["mobility-ingest"], 60_000);
    let routes = format!(
        r#"{shipped}
[[routes]]
name = "picky"
source = {{ topics = ["{internal}"], group = "{group}" }}
sink = {{ topic = "{out}" }}
dead_letter = {{ topic = "{dlq}" }}
[[routes.chain]]
plugin = "decrypt"
config = {{ fields = ["/userId", "/payload/email"] }}
[[routes.chain]]
plugin = "validate"
config.fields.userId = {{ one_of = ["nobody"] }}
"#,
        internal = t.internal,
        group = unique("picky"),
    );
    let sy = platform::start(&routes, None);
    let victim = unique("victim");
    let email = format!("{victim}@example.com");
    ingest(&sy, &[registration(&victim, &email)]).await;
    let dead = read_topic(&dlq, 1, Duration::from_secs(60));
    assert_eq!(dead.len(), 1, "{}", sy.log_text());
    let text = format!(
        "{:?} {:?} {:?}",
        dead[0].key, dead[0].value, dead[0].headers
    );
    assert!(
        !text.contains(&victim),
        "the victim's id on the dead-letter topic: {text}"
    );
    let error = &dead[0].headers["switchyard-dlq-error"];
    assert!(
        error.starts_with("userId: must be one of nobody (got "),
        "{error}"
    );
    assert!(
        !sy.log_text().contains(&victim),
        "the victim's id in the log"
    );
}

/// The CRM keeps its own copy of a user, and its API has no delete. Erasing
/// the user overwrites the copy (name, email, where trips began and ended)
/// and says so in the report; what the user's source sends afterwards is
/// not synced any more; another user is untouched.
#[tokio::test(flavor = "multi_thread")]
async fn erasure_overwrites_the_crm_copy_and_stops_syncing_the_subject() {
    let t = Topics::create("crm-erase").await;
    let crm = MockCrm::start();
    let routes = platform::shipped_routes(&t, &["mobility-ingest", "crm-sync"], 60_000);
    let sy = platform::start(&routes, Some(&crm));
    let (victim, kept) = (unique("victim"), unique("kept"));
    let trip = |user: &str, id: &str, from: &str| {
        json!({
            "eventId": unique("evt"), "version": 1, "occurredAt": "2026-01-01T09:00:01Z",
            "userId": user, "type": "TripStarted",
            "payload": {"tripId": id, "tripType": "Bus", "from": from, "startedAt": "2026-01-01T09:00:01Z"},
        })
    };
    let (victim_trip, kept_trip) = (unique("trip"), unique("trip"));
    ingest(
        &sy,
        &[
            registration(&victim, &format!("{victim}@example.com")),
            registration(&kept, &format!("{kept}@example.com")),
            trip(&victim, &victim_trip, "Victim Street 1"),
            trip(&kept, &kept_trip, "Kept Street 2"),
        ],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !crm
        .try_all("trips")
        .is_some_and(|trips| trips.contains_key(&victim_trip) && trips.contains_key(&kept_trip))
    {
        assert!(Instant::now() < deadline, "{}", sy.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        crm.all("users")[&victim]["Email"],
        format!("{victim}@example.com")
    );

    let reply = call(
        "DELETE",
        &format!("http://{}/admin/subjects/{victim}", sy.http),
        &[(
            "Authorization",
            &format!("Bearer {}", platform::ADMIN_TOKEN),
        )],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let report = reply.json();
    assert_eq!(report["suppressed"], true, "{report}");
    let downstream = report["downstream"].as_array().unwrap();
    let records = |resource: &str| {
        downstream
            .iter()
            .find(|d| d["resource"] == resource)
            .unwrap_or_else(|| panic!("no {resource} in {report}"))
            .clone()
    };
    assert_eq!(records("users")["records"], 1, "{report}");
    assert_eq!(records("trips")["records"], 1, "{report}");
    assert_eq!(records("users")["route"], "crm-sync", "{report}");
    assert!(downstream.iter().all(|d| d["error"].is_null()), "{report}");

    let erased = &crm.all("users")[&victim];
    assert_eq!(erased["FirstName"], Value::Null, "{erased}");
    assert_eq!(erased["LastName"], "(erased)", "{erased}");
    assert_eq!(erased["Email"], "erased@erased.invalid", "{erased}");
    let trips = crm.all("trips");
    assert_eq!(trips[&victim_trip]["From"], Value::Null);
    assert_eq!(trips[&kept_trip]["From"], "Kept Street 2");
    assert_eq!(
        crm.all("users")[&kept]["Email"],
        format!("{kept}@example.com")
    );

    // The platform still sends the user's events: they are not synced.
    let dropped_before = route_counter(&sy, "crm-sync", "dropped");
    let update = json!({
        "eventId": unique("evt"), "version": 1, "occurredAt": "2026-01-01T10:00:00Z",
        "userId": victim, "type": "UserUpdated",
        "payload": {"firstName": "Back", "lastName": "Again", "email": format!("{victim}@new.example.com")},
    });
    ingest(&sy, &[update]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while route_counter(&sy, "crm-sync", "dropped") <= dropped_before {
        assert!(Instant::now() < deadline, "{}", sy.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let still = &crm.all("users")[&victim];
    assert_eq!(
        still["LastName"], "(erased)",
        "synced after the erasure: {still}"
    );
    assert_eq!(still["Email"], "erased@erased.invalid", "{still}");
}

/// A counter of a route, from the open route list.
fn route_counter(sy: &Switchyard, route: &str, counter: &str) -> u64 {
    let (_, routes) = get_json(&format!("http://{}/admin/routes/{route}", sy.http)).unwrap();
    routes[counter].as_u64().unwrap_or_default()
}

/// Every new user id posted to the events API becomes a key kept until it
/// is erased. An anonymous client posting made-up ids as fast as it can is
/// held to `subjects.new_subjects_per_second`: the rest are refused with
/// 503 (and can be posted again), known users still get through, and the
/// key store does not grow faster than the limit.
#[tokio::test(flavor = "multi_thread")]
async fn new_subjects_from_clients_are_rationed() {
    let t = Topics::create("ration").await;
    let shipped = platform::shipped_routes(&t, &["events-ingest", "events-recent"], 60_000);
    let routes = shipped.replace("[subjects]\n", "[subjects]\nnew_subjects_per_second = 5\n");
    assert!(routes.contains("new_subjects_per_second = 5"), "{routes}");
    let sy = platform::start(&routes, None);
    let known = unique("known");
    let first = post_event(&sy, &json!({"userId": known, "type": "login"})).await;
    assert_eq!(first.status, 202, "{first:?}");
    let started = Instant::now();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..60 {
        let reply = post_event(&sy, &json!({"userId": unique("made-up"), "type": "login"})).await;
        match reply.status {
            202 => accepted += 1,
            503 => {
                refused += 1;
                assert!(reply.text.contains("new_subjects_per_second"), "{reply:?}");
            }
            other => panic!("{other}: {reply:?}"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    assert!(refused > 0, "60 new users in {seconds:.1} s, none refused");
    assert!(
        (accepted as f64) <= 5.0 + 5.0 * seconds + 1.0,
        "{accepted} new users in {seconds:.1} s"
    );
    // A user the store knows is not a new subject.
    let again = post_event(&sy, &json!({"userId": known, "type": "logout"})).await;
    assert_eq!(again.status, 202, "{again:?}");
}
