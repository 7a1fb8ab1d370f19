//! Internal event contracts of the mobility platform, version 1.
//!
//! Every event is one JSON document: an [`Envelope`] (who, when, which
//! event) around the event's payload, for example
//!
//! ```json
//! {"eventId": "…", "version": 1, "occurredAt": "2026-01-01T10:20:00Z",
//!  "userId": "…", "type": "TripEnded", "payload": {"tripId": "…", …}}
//! ```
//!
//! The Rust types here are the single source of the contract: the JSON
//! Schemas checked in under `docs/schemas/internal/` are generated from them
//! ([`schemas`], the `mobility-schemas` binary), and the list of personal
//! fields ([`personal_pointers`]) is read back from those schemas, so code,
//! schemas and documentation cannot drift apart.
//!
//! Versioning: a breaking change (a field removed, renamed, retyped or made
//! required, an enum value removed) is a new version, published alongside
//! this one; adding an optional field keeps the version. Consumers should
//! therefore ignore fields they do not know, and this crate does so too.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod schema;
mod timestamp;

pub use schema::{schema_files, schemas};

/// The version of the contracts this crate describes: every envelope it
/// writes carries it, and it reads no other.
pub const VERSION: u32 = 1;

/// The name of every event type, as the envelope's `type` carries it.
pub const EVENT_TYPES: &[&str] = &[
    "UserRegistered",
    "UserUpdated",
    "TripStarted",
    "TripEnded",
    "PaymentCaptured",
    "RefundIssued",
];

/// One event of the mobility platform: the envelope every event shares,
/// with the event's type and payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "MobilityEvent", title = "MobilityEvent")]
pub struct Envelope {
    /// Unique id of this event (a UUID); a consumer seeing an id twice is
    /// seeing a redelivery of the same event.
    #[schemars(extend("format" = "uuid"))]
    pub event_id: String,
    /// Version of the event contracts the event follows: always 1 here.
    #[serde(deserialize_with = "deserialize_version")]
    #[schemars(schema_with = "schema::version")]
    pub version: u32,
    /// When the event happened on the platform: RFC 3339 in UTC with `Z`,
    /// whole seconds (e.g. `2026-01-01T10:20:00Z`).
    #[serde(with = "timestamp")]
    #[schemars(with = "DateTime<Utc>")]
    pub occurred_at: DateTime<Utc>,
    /// The user the event is about (a UUID); also the Kafka record key, so
    /// that one user's events stay in order.
    #[schemars(extend("format" = "uuid", "x-personal" = true))]
    pub user_id: String,
    /// The event's type and payload.
    #[serde(flatten)]
    pub event: Event,
}

impl Envelope {
    /// An envelope of the current [`VERSION`]. `occurred_at` is cut to whole
    /// seconds, as the contract carries them.
    pub fn new(
        event_id: impl Into<String>,
        occurred_at: DateTime<Utc>,
        user_id: impl Into<String>,
        event: Event,
    ) -> Envelope {
        Envelope {
            event_id: event_id.into(),
            version: VERSION,
            occurred_at: timestamp::whole_seconds(occurred_at),
            user_id: user_id.into(),
            event,
        }
    }
}

/// Rejects documents of another contract version: their fields may mean
/// something else, so reading them as version 1 would be wrong.
fn deserialize_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let version = u32::deserialize(d)?;
    if version == VERSION {
        Ok(version)
    } else {
        Err(serde::de::Error::custom(format_args!(
            "unsupported event version {version}: this reader knows version {VERSION}"
        )))
    }
}

/// The event's type (`type`) and its payload (`payload`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "payload")]
pub enum Event {
    /// A person created an account: the first event about any user.
    UserRegistered(UserRegistered),
    /// A registered user changed their profile; the payload is the whole
    /// profile after the change.
    UserUpdated(UserUpdated),
    /// A user started a trip. A user has at most one trip in progress.
    TripStarted(TripStarted),
    /// A user's trip ended and was priced. The user's next event is the
    /// `PaymentCaptured` for this trip.
    TripEnded(TripEnded),
    /// The price of an ended trip was charged to the user.
    PaymentCaptured(PaymentCaptured),
    /// A captured payment was refunded, in full or in part; at most once
    /// per payment.
    RefundIssued(RefundIssued),
}

impl Event {
    /// The event's type, as the envelope's `type` carries it (one of
    /// [`EVENT_TYPES`]).
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::UserRegistered(_) => "UserRegistered",
            Event::UserUpdated(_) => "UserUpdated",
            Event::TripStarted(_) => "TripStarted",
            Event::TripEnded(_) => "TripEnded",
            Event::PaymentCaptured(_) => "PaymentCaptured",
            Event::RefundIssued(_) => "RefundIssued",
        }
    }
}

/// The payload of `UserRegistered`: the profile the user registered with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRegistered {
    /// Given name; null when the user did not give one.
    #[schemars(extend("x-personal" = true))]
    pub first_name: Option<String>,
    /// Family name.
    #[schemars(extend("x-personal" = true))]
    pub last_name: String,
    /// E-mail address, unique per user.
    #[schemars(email, extend("x-personal" = true))]
    pub email: String,
    /// Mobile number in E.164 form (e.g. `+37061234567`); null when the
    /// user did not give one.
    #[schemars(regex(pattern = r"^\+[1-9][0-9]{6,14}$"), extend("x-personal" = true))]
    pub phone: Option<String>,
}

/// The payload of `UserUpdated`: the user's whole profile after the change
/// (not only the changed fields), so a consumer can overwrite what it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserUpdated {
    /// Given name; null when the user has none on file.
    #[schemars(extend("x-personal" = true))]
    pub first_name: Option<String>,
    /// Family name.
    #[schemars(extend("x-personal" = true))]
    pub last_name: String,
    /// E-mail address, unique per user.
    #[schemars(email, extend("x-personal" = true))]
    pub email: String,
    /// Mobile number in E.164 form (e.g. `+37061234567`); null when the
    /// user has none on file.
    #[schemars(regex(pattern = r"^\+[1-9][0-9]{6,14}$"), extend("x-personal" = true))]
    pub phone: Option<String>,
}

/// The payload of `TripStarted`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TripStarted {
    /// Id of the trip (a UUID), repeated by its `TripEnded` and payment.
    #[schemars(extend("format" = "uuid"))]
    pub trip_id: String,
    /// How the user travels.
    pub trip_type: TripType,
    /// Name of the stop or place the trip starts at; null when there is
    /// none, as is usual for free-floating vehicles (scooters, bikes, shared
    /// cars), which start wherever they were parked.
    #[schemars(extend("x-personal" = true))]
    pub from: Option<String>,
    /// When the trip started (equal to the envelope's `occurredAt`).
    #[serde(with = "timestamp")]
    #[schemars(with = "DateTime<Utc>")]
    pub started_at: DateTime<Utc>,
}

/// The payload of `TripEnded`: where the trip ended and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TripEnded {
    /// Id of the trip, as its `TripStarted` gave it.
    #[schemars(extend("format" = "uuid"))]
    pub trip_id: String,
    /// How the user travelled, as its `TripStarted` gave it.
    pub trip_type: TripType,
    /// Name of the stop or place the trip ends at; null when there is none
    /// (usual for free-floating vehicles).
    #[schemars(extend("x-personal" = true))]
    pub to: Option<String>,
    /// When the trip ended (equal to the envelope's `occurredAt`).
    #[serde(with = "timestamp")]
    #[schemars(with = "DateTime<Utc>")]
    pub ended_at: DateTime<Utc>,
    /// Price of the trip in `currency`, with two decimals.
    #[schemars(range(min = 0))]
    pub price: f64,
    /// Currency of `price`.
    pub currency: Currency,
    /// Distance travelled, in kilometres.
    #[schemars(range(min = 0))]
    pub distance_km: f64,
}

/// The payload of `PaymentCaptured`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCaptured {
    /// Id of the payment (a UUID), repeated by any refund of it.
    #[schemars(extend("format" = "uuid"))]
    pub payment_id: String,
    /// The ended trip this payment is for.
    #[schemars(extend("format" = "uuid"))]
    pub trip_id: String,
    /// Amount charged in `currency`, with two decimals: the trip's price.
    #[schemars(range(min = 0))]
    pub amount: f64,
    /// Currency of `amount`.
    pub currency: Currency,
    /// How the user paid.
    pub method: PaymentMethod,
}

/// The payload of `RefundIssued`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundIssued {
    /// Id of the refund (a UUID).
    #[schemars(extend("format" = "uuid"))]
    pub refund_id: String,
    /// The captured payment refunded.
    #[schemars(extend("format" = "uuid"))]
    pub payment_id: String,
    /// The trip that payment was for.
    #[schemars(extend("format" = "uuid"))]
    pub trip_id: String,
    /// Amount refunded in `currency`, with two decimals; at most the
    /// payment's amount.
    #[schemars(range(min = 0))]
    pub amount: f64,
    /// Currency of `amount`, that of the payment.
    pub currency: Currency,
    /// Why the refund was issued.
    pub reason: RefundReason,
}

/// How a trip is made: scheduled public transport (`Bus`, `Tram`, `Train`,
/// `Metro`), a `Taxi`, or a free-floating vehicle picked up and left
/// anywhere (`Scooter`, `Bike`, `CarSharing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TripType {
    Bus,
    Tram,
    Train,
    Metro,
    Taxi,
    Scooter,
    Bike,
    CarSharing,
}

impl TripType {
    /// Every trip type.
    pub const ALL: [TripType; 8] = [
        TripType::Bus,
        TripType::Tram,
        TripType::Train,
        TripType::Metro,
        TripType::Taxi,
        TripType::Scooter,
        TripType::Bike,
        TripType::CarSharing,
    ];

    /// True for vehicles without stops, picked up and left anywhere
    /// (`Scooter`, `Bike`, `CarSharing`): their trips usually have no named
    /// `from` or `to`.
    pub fn is_free_floating(self) -> bool {
        matches!(
            self,
            TripType::Scooter | TripType::Bike | TripType::CarSharing
        )
    }
}

/// A currency, as an ISO 4217 code. Version 1 of the platform charges in
/// euros (`EUR`) only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Currency {
    #[serde(rename = "EUR")]
    Eur,
}

/// How a payment was made: by (debit or credit) `Card`, `ApplePay`,
/// `GooglePay`, or from the `Wallet`, the user's prepaid balance in the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PaymentMethod {
    Card,
    ApplePay,
    GooglePay,
    Wallet,
}

/// Why a refund was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RefundReason {
    /// The trip was cancelled after it was charged.
    TripCancelled,
    /// The user was charged more than the trip cost.
    Overcharge,
    /// A disruption of the service spoiled the trip.
    ServiceDisruption,
    /// A gesture of goodwill, e.g. after a complaint.
    Goodwill,
}

/// The JSON Pointers of the personal fields (those identifying or locating a
/// person) of the event type `type_name`: the envelope's first, then the
/// payload's, each in alphabetical order, e.g. `["/userId", "/payload/to"]`
/// for `TripEnded`. Empty for a type that is not one of [`EVENT_TYPES`]
/// (every known type has at least `/userId`).
///
/// Read from the generated schemas' `"x-personal": true` markers, so the
/// list is always what the schemas say.
pub fn personal_pointers(type_name: &str) -> Vec<String> {
    static POINTERS: LazyLock<BTreeMap<String, Vec<String>>> =
        LazyLock::new(schema::personal_pointers_by_type);
    POINTERS.get(type_name).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::{json, Value};

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap()
    }

    const USER: &str = "3b9e6c1e-1d6f-4f5e-9a53-0d7c2f1e8b42";
    const TRIP: &str = "9c1d2e3f-4a5b-4c6d-8e7f-1a2b3c4d5e6f";
    const PAYMENT: &str = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";

    /// One event of every type, in the order of `EVENT_TYPES`.
    fn examples() -> Vec<Envelope> {
        let events = vec![
            Event::UserRegistered(UserRegistered {
                first_name: Some("Ieva".into()),
                last_name: "Kazlauskas".into(),
                email: "ieva.kazlauskas.1@example.com".into(),
                phone: None,
            }),
            Event::UserUpdated(UserUpdated {
                first_name: None,
                last_name: "Kazlauskas".into(),
                email: "ieva.kazlauskas.1@example.org".into(),
                phone: Some("+37061234567".into()),
            }),
            Event::TripStarted(TripStarted {
                trip_id: TRIP.into(),
                trip_type: TripType::Scooter,
                from: None,
                started_at: at(10, 0),
            }),
            Event::TripEnded(TripEnded {
                trip_id: TRIP.into(),
                trip_type: TripType::Scooter,
                to: Some("Old Town".into()),
                ended_at: at(10, 20),
                price: 3.15,
                currency: Currency::Eur,
                distance_km: 2.5,
            }),
            Event::PaymentCaptured(PaymentCaptured {
                payment_id: PAYMENT.into(),
                trip_id: TRIP.into(),
                amount: 3.15,
                currency: Currency::Eur,
                method: PaymentMethod::ApplePay,
            }),
            Event::RefundIssued(RefundIssued {
                refund_id: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9".into(),
                payment_id: PAYMENT.into(),
                trip_id: TRIP.into(),
                amount: 1.0,
                currency: Currency::Eur,
                reason: RefundReason::ServiceDisruption,
            }),
        ];
        (0..)
            .zip(events)
            .map(|(i, event)| {
                Envelope::new(
                    format!("7f0c0000-0000-4000-8000-00000000000{i}"),
                    at(10, 20),
                    USER,
                    event,
                )
            })
            .collect()
    }

    #[test]
    fn the_wire_format_is_the_documented_one() {
        let trip_ended = &examples()[3];
        assert_eq!(
            serde_json::to_value(trip_ended).unwrap(),
            json!({
                "eventId": "7f0c0000-0000-4000-8000-000000000003",
                "type": "TripEnded",
                "version": 1,
                "occurredAt": "2026-01-01T10:20:00Z",
                "userId": USER,
                "payload": {
                    "tripId": TRIP,
                    "tripType": "Scooter",
                    "to": "Old Town",
                    "endedAt": "2026-01-01T10:20:00Z",
                    "price": 3.15,
                    "currency": "EUR",
                    "distanceKm": 2.5
                }
            })
        );
        let text = serde_json::to_string(trip_ended).unwrap();
        assert!(text.contains(r#""price":3.15"#), "{text}");
        // Nullable fields are written, as null.
        let registered = serde_json::to_value(&examples()[0]).unwrap();
        assert_eq!(registered["payload"]["phone"], Value::Null);
        assert!(registered["payload"]
            .as_object()
            .unwrap()
            .contains_key("phone"));
    }

    #[test]
    fn every_event_round_trips() {
        for envelope in examples() {
            let json = serde_json::to_string(&envelope).unwrap();
            let back: Envelope = serde_json::from_str(&json).unwrap();
            assert_eq!(back, envelope, "{json}");
        }
    }

    #[test]
    fn fractions_of_a_second_are_not_carried() {
        let t = at(10, 20) + chrono::Duration::microseconds(123_456);
        let envelope = Envelope::new("e", t, "u", examples()[0].event.clone());
        assert_eq!(envelope.occurred_at, at(10, 20));
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["occurredAt"], "2026-01-01T10:20:00Z");
    }

    #[test]
    fn type_names_are_the_serialised_types_in_order() {
        let names: Vec<&str> = examples().iter().map(|e| e.event.type_name()).collect();
        assert_eq!(names, EVENT_TYPES);
        for envelope in examples() {
            let json = serde_json::to_value(&envelope).unwrap();
            assert_eq!(json["type"], envelope.event.type_name());
        }
    }

    #[test]
    fn other_versions_are_refused() {
        let mut json = serde_json::to_value(&examples()[0]).unwrap();
        json["version"] = json!(2);
        let err = serde_json::from_value::<Envelope>(json).unwrap_err();
        assert!(
            err.to_string().contains("unsupported event version 2"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_ignored_so_optional_additions_keep_the_version() {
        let mut json = serde_json::to_value(&examples()[3]).unwrap();
        json["traceId"] = json!("abc");
        json["payload"]["co2Grams"] = json!(120);
        let envelope: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(envelope, examples()[3]);
    }

    #[test]
    fn unknown_types_and_enum_values_are_refused() {
        let mut json = serde_json::to_value(&examples()[3]).unwrap();
        json["payload"]["tripType"] = json!("Hovercraft");
        assert!(serde_json::from_value::<Envelope>(json).is_err());
        let mut json = serde_json::to_value(&examples()[3]).unwrap();
        json["type"] = json!("TripPaused");
        assert!(serde_json::from_value::<Envelope>(json).is_err());
    }

    #[test]
    fn personal_fields_are_the_ones_identifying_or_locating_a_person() {
        let profile = [
            "/userId",
            "/payload/email",
            "/payload/firstName",
            "/payload/lastName",
            "/payload/phone",
        ];
        let expected: [(&str, &[&str]); 6] = [
            ("UserRegistered", &profile),
            ("UserUpdated", &profile),
            ("TripStarted", &["/userId", "/payload/from"]),
            ("TripEnded", &["/userId", "/payload/to"]),
            ("PaymentCaptured", &["/userId"]),
            ("RefundIssued", &["/userId"]),
        ];
        for (type_name, pointers) in expected {
            assert_eq!(personal_pointers(type_name), pointers, "{type_name}");
        }
        assert!(personal_pointers("NoSuchEvent").is_empty());
    }

    #[test]
    fn personal_pointers_point_into_real_events() {
        for envelope in examples() {
            let json = serde_json::to_value(&envelope).unwrap();
            for pointer in personal_pointers(envelope.event.type_name()) {
                assert!(json.pointer(&pointer).is_some(), "{pointer} not in {json}");
            }
        }
    }

    /// `value` has every field `schema` requires and no other, at the top
    /// and in the payload; `const`s and `$ref`s to enums are honoured.
    fn assert_fits(schema: &Value, object: &Value, value: &Value, at: &str) {
        let properties = object["properties"].as_object().unwrap();
        let fields = value.as_object().unwrap();
        for name in object["required"].as_array().unwrap() {
            assert!(
                fields.contains_key(name.as_str().unwrap()),
                "{at}: {name} missing"
            );
        }
        for (name, field) in fields {
            let property = properties
                .get(name)
                .unwrap_or_else(|| panic!("{at}/{name}: not in the schema"));
            if let Some(c) = property.get("const") {
                assert_eq!(field, c, "{at}/{name}");
            }
            if let Some(r) = property["$ref"].as_str() {
                let def = schema.pointer(r.strip_prefix('#').unwrap()).unwrap();
                if def.get("properties").is_some() {
                    assert_fits(schema, def, field, &format!("{at}/{name}"));
                } else if let Some(values) = def["enum"].as_array() {
                    assert!(
                        values.contains(field),
                        "{at}/{name}: {field} not in {values:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn events_fit_their_schemas() {
        let schemas: BTreeMap<String, Value> = schemas().into_iter().collect();
        for envelope in examples() {
            let file = format!("{}.v1.json", envelope.event.type_name());
            let json = serde_json::to_value(&envelope).unwrap();
            assert_fits(&schemas[&file], &schemas[&file], &json, &file);
        }
    }

    #[test]
    fn each_type_has_a_schema_and_the_union_has_them_all() {
        let schemas: BTreeMap<String, Value> = schemas().into_iter().collect();
        let union = &schemas["mobility-event.v1.json"];
        assert_eq!(
            union["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(union["oneOf"].as_array().unwrap().len(), EVENT_TYPES.len());
        for type_name in EVENT_TYPES {
            let schema = &schemas[&format!("{type_name}.v1.json")];
            assert_eq!(
                schema["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
            assert_eq!(schema["title"], *type_name);
            assert_eq!(schema["properties"]["type"]["const"], *type_name);
            assert_eq!(schema["properties"]["version"]["const"], 1);
            assert_eq!(
                schema["properties"]["payload"]["$ref"],
                format!("#/$defs/{type_name}")
            );
            let required = schema["required"].as_array().unwrap();
            for field in [
                "eventId",
                "type",
                "version",
                "occurredAt",
                "userId",
                "payload",
            ] {
                assert!(
                    required.contains(&json!(field)),
                    "{type_name}: {field} not required"
                );
            }
            assert!(schema.get("oneOf").is_none());
            // Only the definitions the type uses.
            let defs = schema["$defs"].as_object().unwrap();
            assert!(defs.contains_key(*type_name));
            for other in EVENT_TYPES.iter().filter(|t| *t != type_name) {
                assert!(
                    !defs.contains_key(*other),
                    "{type_name} carries the definition of {other}"
                );
            }
        }
        let trip_ended = &schemas["TripEnded.v1.json"]["$defs"];
        assert!(trip_ended.get("TripType").is_some() && trip_ended.get("Currency").is_some());
        assert!(schemas["UserRegistered.v1.json"]["$defs"]
            .get("TripType")
            .is_none());
    }
}
