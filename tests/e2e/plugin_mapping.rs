//! The bundled mapping plugins through real routes on Kafka: one stream of
//! internal mobility events feeds a CRM route (`crm-map`) and a public
//! stream route (`redact`, then `project`). Checks every output document,
//! per-user order, the dead-lettered record with its reasons, and that no
//! personal value reaches the public topic.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::*;

use crate::plugin_redact::hmac_sha256;

const HASH_KEY: &str = "mapping-test-key-0123456789abcdef0123456789";

/// What each person is, and so what must never appear on the public topic.
const PERSONAL: &[&str] = &[
    "u-1",
    "u-2",
    "Ada",
    "Lovelace",
    "ada@example.com",
    "ada@lovelace.dev",
    "Hopper",
    "grace@example.com",
    "+37060000001",
];

fn routes(t: &Topics) -> String {
    let Topics {
        internal,
        crm_ops,
        public,
        crm_dlq,
        public_dlq,
        ..
    } = t;
    let group = unique("mapping");
    format!(
        r#"
[[routes]]
name = "crm"
source = {{ topics = ["{internal}"], group = "{group}-crm" }}
sink = {{ topic = "{crm_ops}" }}
dead_letter = {{ topic = "{crm_dlq}" }}

[[routes.chain]]
plugin = "crm-map"
config.events.UserRegistered = [
  {{ resource = "users", id = "/userId", set = {{ Id = "/userId", FirstName = {{ path = "/payload/firstName", default = "" }}, LastName = "/payload/lastName", Email = "/payload/email" }}, on_create = {{ LastTripType = {{ value = "" }}, LastTripDate = {{ value = "0001-01-01T00:00:00Z" }} }} }},
]
config.events.UserUpdated = [
  {{ resource = "users", id = "/userId", set = {{ Email = "/payload/email" }} }},
]
config.events.TripStarted = [
  {{ resource = "trips", id = "/payload/tripId", set = {{ Id = "/payload/tripId", UserId = "/userId", From = "/payload/from", Type = "/payload/tripType", StartDate = "/payload/startedAt" }}, on_create = {{ Price = {{ value = 0 }} }} }},
]
config.events.TripEnded = [
  {{ resource = "trips", id = "/payload/tripId", set = {{ To = "/payload/to", Price = "/payload/price", EndDate = "/payload/endedAt" }} }},
  {{ resource = "users", id = "/userId", set = {{ LastTripType = "/payload/tripType", LastTripId = "/payload/tripId", LastTripDate = "/payload/endedAt" }} }},
]

[[routes]]
name = "public"
source = {{ topics = ["{internal}"], group = "{group}-public" }}
sink = {{ topic = "{public}" }}
dead_letter = {{ topic = "{public_dlq}" }}

[[routes.chain]]
plugin = "redact"
config.hash_key = {{ "$env" = "MAPPING_TEST_HASH_KEY" }}
config.rules = [
  {{ path = "userId", action = "hash" }},
  {{ path = "payload.email", action = "drop" }},
  {{ path = "payload.phone", action = "drop" }},
  {{ path = "payload.firstName", action = "drop" }},
  {{ path = "payload.lastName", action = "drop" }},
]

[[routes.chain]]
plugin = "project"
config.key = "/userId"
config.envelope = {{ specversion = {{ value = "1.0" }}, id = "/eventId", source = {{ value = "urn:mobility" }}, time = "/occurredAt", subject = "/userId" }}
config.types.UserRegistered = {{ type = {{ value = "mobility.user.registered.v1" }} }}
config.types.TripStarted = {{ type = {{ value = "mobility.trip.started.v1" }}, data = {{ object = {{ tripId = "/payload/tripId", mode = "/payload/tripType" }} }} }}
config.types.TripEnded = {{ type = {{ value = "mobility.trip.ended.v1" }}, data = {{ object = {{ tripId = "/payload/tripId", mode = "/payload/tripType", price = "/payload/price", endedAt = "/payload/endedAt" }} }} }}
"#
    )
}

struct Topics {
    internal: String,
    crm_ops: String,
    public: String,
    crm_dlq: String,
    public_dlq: String,
}

/// The internal events, keyed by user, in the order produced.
fn internal_events() -> Vec<(String, Value)> {
    let event = |n: u32, user: &str, kind: &str, payload: Value| {
        let value = json!({
            "eventId": format!("e-{n}"),
            "type": kind,
            "occurredAt": format!("2026-11-25T10:00:{n:02}Z"),
            "userId": user,
            "payload": payload,
        });
        (user.to_owned(), value)
    };
    vec![
        event(
            1,
            "u-1",
            "UserRegistered",
            json!({"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "phone": "+37060000001"}),
        ),
        event(
            2,
            "u-2",
            "UserRegistered",
            json!({"lastName": "Hopper", "email": "grace@example.com"}),
        ),
        event(
            3,
            "u-1",
            "TripStarted",
            json!({"tripId": "t-1", "tripType": "Bus", "from": "Old Town", "startedAt": "2026-11-25T10:00:03Z"}),
        ),
        event(
            4,
            "u-1",
            "TripEnded",
            json!({"tripId": "t-1", "tripType": "Bus", "to": "Airport", "price": 1.50, "endedAt": "2026-11-25T10:20:00Z"}),
        ),
        event(
            5,
            "u-1",
            "PaymentCaptured",
            json!({"paymentId": "p-1", "amount": 1.50}),
        ),
        event(
            6,
            "u-2",
            "TripStarted",
            json!({"tripId": "t-2", "tripType": "Taxi", "from": "Station", "startedAt": "2026-11-25T10:00:06Z"}),
        ),
        // No `endedAt`: neither route can map it.
        event(
            7,
            "u-2",
            "TripEnded",
            json!({"tripId": "t-2", "tripType": "Taxi", "to": "Port", "price": 9}),
        ),
        event(
            8,
            "u-1",
            "UserUpdated",
            json!({"email": "ada@lovelace.dev"}),
        ),
    ]
}

fn upsert(resource: &str, id: &str, set: Value, on_create: Value) -> Value {
    json!({"op": "upsert", "resource": resource, "id": id, "set": set, "on_create": on_create})
}

/// The CRM operations each user's events must become, in order.
fn expected_crm_operations() -> BTreeMap<String, Vec<Value>> {
    let new_user = json!({"LastTripType": "", "LastTripDate": "0001-01-01T00:00:00Z"});
    BTreeMap::from([
        (
            "u-1".to_owned(),
            vec![
                upsert(
                    "users",
                    "u-1",
                    json!({"Id": "u-1", "FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}),
                    new_user.clone(),
                ),
                upsert(
                    "trips",
                    "t-1",
                    json!({"Id": "t-1", "UserId": "u-1", "From": "Old Town", "Type": "Bus", "StartDate": "2026-11-25T10:00:03Z"}),
                    json!({"Price": 0}),
                ),
                upsert(
                    "trips",
                    "t-1",
                    json!({"To": "Airport", "Price": 1.50, "EndDate": "2026-11-25T10:20:00Z"}),
                    json!({}),
                ),
                upsert(
                    "users",
                    "u-1",
                    json!({"LastTripType": "Bus", "LastTripId": "t-1", "LastTripDate": "2026-11-25T10:20:00Z"}),
                    json!({}),
                ),
                upsert(
                    "users",
                    "u-1",
                    json!({"Email": "ada@lovelace.dev"}),
                    json!({}),
                ),
            ],
        ),
        (
            "u-2".to_owned(),
            vec![
                upsert(
                    "users",
                    "u-2",
                    json!({"Id": "u-2", "FirstName": "", "LastName": "Hopper", "Email": "grace@example.com"}),
                    new_user,
                ),
                upsert(
                    "trips",
                    "t-2",
                    json!({"Id": "t-2", "UserId": "u-2", "From": "Station", "Type": "Taxi", "StartDate": "2026-11-25T10:00:06Z"}),
                    json!({"Price": 0}),
                ),
            ],
        ),
    ])
}

/// The public events each subject's events must become, in order.
fn expected_public_events() -> BTreeMap<String, Vec<Value>> {
    let subject = |user: &str| {
        format!(
            "hmac:{}",
            hmac_sha256(HASH_KEY.as_bytes(), format!("{user:?}").as_bytes())
        )
    };
    let public = |n: u32, user: &str, kind: &str, data: Option<Value>| {
        let mut v = json!({
            "specversion": "1.0",
            "id": format!("e-{n}"),
            "source": "urn:mobility",
            "time": format!("2026-11-25T10:00:{n:02}Z"),
            "subject": subject(user),
            "type": kind,
        });
        if let Some(data) = data {
            v["data"] = data;
        }
        v
    };
    BTreeMap::from([
        (
            subject("u-1"),
            vec![
                public(1, "u-1", "mobility.user.registered.v1", None),
                public(
                    3,
                    "u-1",
                    "mobility.trip.started.v1",
                    Some(json!({"tripId": "t-1", "mode": "Bus"})),
                ),
                public(
                    4,
                    "u-1",
                    "mobility.trip.ended.v1",
                    Some(
                        json!({"tripId": "t-1", "mode": "Bus", "price": 1.50, "endedAt": "2026-11-25T10:20:00Z"}),
                    ),
                ),
            ],
        ),
        (
            subject("u-2"),
            vec![
                public(2, "u-2", "mobility.user.registered.v1", None),
                public(
                    6,
                    "u-2",
                    "mobility.trip.started.v1",
                    Some(json!({"tripId": "t-2", "mode": "Taxi"})),
                ),
            ],
        ),
    ])
}

/// `records` grouped by key, each group's values in the order read (a key
/// lives on one partition, so that is the order written).
fn by_key(records: &[Record]) -> BTreeMap<String, Vec<Value>> {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in records {
        let key = r.key.clone().expect("every output is keyed");
        groups.entry(key).or_default().push(r.json());
    }
    groups
}

#[tokio::test(flavor = "multi_thread")]
async fn crm_operations_and_public_events_from_one_internal_stream() {
    let t = Topics {
        internal: unique("mobility-internal"),
        crm_ops: unique("crm-ops"),
        public: unique("mobility-public"),
        crm_dlq: unique("crm-dlq"),
        public_dlq: unique("public-dlq"),
    };
    create_topics(
        &[
            &t.internal,
            &t.crm_ops,
            &t.public,
            &t.crm_dlq,
            &t.public_dlq,
        ],
        2,
    )
    .await;
    // The hash key comes from the environment, not the routes file.
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes(&t),
        &["--brokers", &bootstrap()],
        &[("MAPPING_TEST_HASH_KEY", HASH_KEY)],
    );
    sy.wait_healthy(Duration::from_secs(60));

    let events: Vec<(String, String)> = internal_events()
        .into_iter()
        .map(|(key, value)| (key, value.to_string()))
        .collect();
    produce(&producer(), &t.internal, &events).await;

    let wait = Duration::from_secs(60);
    let crm = read_topic(&t.crm_ops, 7, wait);
    assert_eq!(
        by_key(&crm),
        expected_crm_operations(),
        "CRM operations per user"
    );

    let public = read_topic(&t.public, 5, wait);
    assert_eq!(
        by_key(&public),
        expected_public_events(),
        "public events per subject"
    );
    for record in &public {
        let text = record.value.as_deref().unwrap_or_default();
        for personal in PERSONAL {
            assert!(!text.contains(personal), "{personal:?} leaked into {text}");
        }
        let internal_headers: Vec<&String> = record
            .headers
            .keys()
            .filter(|name| !name.starts_with("switchyard-"))
            .collect();
        assert!(
            internal_headers.is_empty(),
            "headers leaked: {internal_headers:?}"
        );
    }

    // The unmappable trip end: dead-lettered by both routes, with reasons.
    for (dlq, plugin, reason) in [
        (
            &t.crm_dlq,
            "crm-map@",
            "TripEnded -> trips.set: missing /payload/endedAt (needed for EndDate); \
             TripEnded -> users.set: missing /payload/endedAt (needed for LastTripDate)",
        ),
        (
            &t.public_dlq,
            "project@",
            "TripEnded: missing /payload/endedAt (needed for data.endedAt)",
        ),
    ] {
        let dead = read_topic(dlq, 1, wait);
        assert_eq!(dead.len(), 1, "one dead letter on {dlq}: {dead:?}");
        let dead = &dead[0];
        assert_eq!(dead.json(), internal_events()[6].1, "the original record");
        assert!(
            dead.headers["switchyard-dlq-plugin"].starts_with(plugin),
            "{dead:?}"
        );
        assert_eq!(dead.headers["switchyard-dlq-error-kind"], "rejected");
        assert_eq!(dead.headers["switchyard-dlq-error"], reason);
    }
    assert!(!sy.log_text().contains(HASH_KEY), "the key is never logged");
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}
