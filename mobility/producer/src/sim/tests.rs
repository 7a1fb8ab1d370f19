//! The life cycle rules, checked by replaying long runs of several seeds
//! against a model of what each user may do next.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::TimeZone;

use super::*;

const SEEDS: [u64; 4] = [1, 2, 42, 0xDEAD_BEEF];
const EVENTS: usize = 10_000;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn simulated(seed: u64, users: usize) -> Simulation {
    Simulation::new(
        seed,
        SimOptions {
            users,
            clock: Clock::Simulated { start: start() },
        },
    )
}

/// What the events so far say about one user.
#[derive(Default)]
struct Seen {
    registered: bool,
    profile: Option<(Option<String>, String, String, Option<String>)>,
    /// The trip in progress: id, type, where it started.
    trip: Option<(String, TripType, Option<String>)>,
    /// The ended trip whose payment must be the user's next event.
    unpaid: Option<(String, f64)>,
    /// Payment id → (trip id, amount, refunded).
    payments: HashMap<String, (String, f64, bool)>,
}

fn assert_cents(what: &str, x: f64) {
    assert!(x >= 0.0 && x.is_finite(), "{what} = {x}");
    assert!(
        ((x * 100.0).round() - x * 100.0).abs() < 1e-6,
        "{what} = {x} has more than two decimals"
    );
}

fn assert_uuid_v4(what: &str, id: &str) {
    let parsed = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{what} {id:?}: {e}"));
    assert_eq!(parsed.get_version_num(), 4, "{what} {id}");
    assert_eq!(
        parsed.hyphenated().to_string(),
        id,
        "{what} is not a lower-case hyphenated UUID"
    );
}

/// Checks every rule over `events`; returns how many of each type it saw.
fn check(events: &[Envelope], target_users: usize) -> BTreeMap<&'static str, usize> {
    let mut users: HashMap<&str, Seen> = HashMap::new();
    let mut event_ids = HashSet::new();
    let mut ids = HashSet::new();
    let mut emails: HashMap<String, &str> = HashMap::new();
    let mut counts = BTreeMap::new();
    let mut places = (0usize, 0usize);
    for (i, e) in events.iter().enumerate() {
        let at = format!("event {i} ({})", serde_json::to_string(e).unwrap());
        *counts.entry(e.event.type_name()).or_default() += 1;
        assert!(
            event_ids.insert(e.event_id.clone()),
            "{at}: event id repeats"
        );
        assert_uuid_v4("eventId", &e.event_id);
        assert_uuid_v4("userId", &e.user_id);
        assert_eq!(e.version, 1);
        let seen = users.entry(&e.user_id).or_default();
        if let Some((trip_id, price)) = &seen.unpaid {
            match &e.event {
                Event::PaymentCaptured(p) => {
                    assert_eq!(&p.trip_id, trip_id, "{at}: paid another trip");
                    assert_eq!(p.amount, *price, "{at}: amount is not the trip's price");
                }
                _ => panic!("{at}: the user's next event after TripEnded must be its payment"),
            }
        }
        if !seen.registered {
            assert!(
                matches!(e.event, Event::UserRegistered(_)),
                "{at}: the first event of a user must be UserRegistered"
            );
        }
        match &e.event {
            Event::UserRegistered(r) => {
                assert!(!seen.registered, "{at}: registered twice");
                seen.registered = true;
                seen.profile = Some((
                    r.first_name.clone(),
                    r.last_name.clone(),
                    r.email.clone(),
                    r.phone.clone(),
                ));
                assert!(
                    emails.insert(r.email.clone(), &e.user_id).is_none(),
                    "{at}: e-mail taken"
                );
            }
            Event::UserUpdated(u) => {
                let after = (
                    u.first_name.clone(),
                    u.last_name.clone(),
                    u.email.clone(),
                    u.phone.clone(),
                );
                let before = seen.profile.replace(after.clone()).expect("registered");
                assert_ne!(before, after, "{at}: an update that changes nothing");
                // Unique per user: another user's address is never taken
                // (the user's own earlier one may come back).
                let owner = emails.entry(u.email.clone()).or_insert(&e.user_id);
                assert_eq!(*owner, e.user_id, "{at}: e-mail of another user");
            }
            Event::TripStarted(t) => {
                assert!(seen.trip.is_none(), "{at}: a second trip in progress");
                assert!(ids.insert(t.trip_id.clone()), "{at}: trip id reused");
                assert_uuid_v4("tripId", &t.trip_id);
                assert_eq!(t.started_at, e.occurred_at, "{at}");
                seen.trip = Some((t.trip_id.clone(), t.trip_type, t.from.clone()));
                check_place(&at, t.trip_type, t.from.as_deref(), &mut places);
            }
            Event::TripEnded(t) => {
                let (trip_id, trip_type, from) = seen
                    .trip
                    .take()
                    .unwrap_or_else(|| panic!("{at}: no trip in progress"));
                if t.to.is_some() {
                    assert_ne!(t.to, from, "{at}: a trip ends where it started");
                }
                assert_eq!(t.trip_id, trip_id, "{at}");
                assert_eq!(t.trip_type, trip_type, "{at}");
                assert_eq!(t.ended_at, e.occurred_at, "{at}");
                assert_eq!(t.currency, Currency::Eur);
                assert_cents("price", t.price);
                assert_cents("distanceKm", t.distance_km);
                let (min, max) = price_range(t.trip_type);
                assert!(
                    (min..=max).contains(&t.price),
                    "{at}: {:?} price outside {min}..={max}",
                    t.trip_type
                );
                assert!(t.distance_km > 0.0, "{at}");
                check_place(&at, t.trip_type, t.to.as_deref(), &mut places);
                seen.unpaid = Some((t.trip_id.clone(), t.price));
            }
            Event::PaymentCaptured(p) => {
                let (trip_id, _) = seen
                    .unpaid
                    .take()
                    .unwrap_or_else(|| panic!("{at}: nothing to pay"));
                assert!(ids.insert(p.payment_id.clone()), "{at}: payment id reused");
                assert_uuid_v4("paymentId", &p.payment_id);
                assert_eq!(p.currency, Currency::Eur);
                assert_cents("amount", p.amount);
                seen.payments
                    .insert(p.payment_id.clone(), (trip_id, p.amount, false));
            }
            Event::RefundIssued(r) => {
                assert!(ids.insert(r.refund_id.clone()), "{at}: refund id reused");
                assert_uuid_v4("refundId", &r.refund_id);
                let (trip_id, amount, refunded) = seen
                    .payments
                    .get_mut(&r.payment_id)
                    .unwrap_or_else(|| panic!("{at}: refund of a payment the user never made"));
                assert!(!*refunded, "{at}: second refund of a payment");
                *refunded = true;
                assert_eq!(&r.trip_id, trip_id, "{at}");
                assert_eq!(r.currency, Currency::Eur);
                assert_cents("amount", r.amount);
                assert!(
                    r.amount > 0.0 && r.amount <= *amount,
                    "{at}: refund of more than the payment {amount}"
                );
            }
        }
    }
    assert!(
        users.len() <= target_users,
        "{} users for a target of {target_users}",
        users.len()
    );
    // Free-floating trips mostly have no named place, scheduled ones always.
    let (free_floating, free_floating_unnamed) = places;
    assert!(
        free_floating_unnamed * 10 >= free_floating * 7,
        "only {free_floating_unnamed} of {free_floating} free-floating places unnamed"
    );
    counts
}

fn check_place(at: &str, trip_type: TripType, place: Option<&str>, places: &mut (usize, usize)) {
    if let Some(place) = place {
        assert!(trips::STOPS.contains(&place), "{at}: unknown place {place}");
    }
    if trip_type.is_free_floating() {
        places.0 += 1;
        places.1 += usize::from(place.is_none());
    } else {
        assert!(
            place.is_some(),
            "{at}: a {trip_type:?} trip without a named stop"
        );
    }
}

/// The fares the platform charges, in EUR.
fn price_range(trip_type: TripType) -> (f64, f64) {
    match trip_type {
        TripType::Bus | TripType::Tram => (1.0, 2.5),
        TripType::Metro => (1.5, 3.0),
        TripType::Train => (2.5, 15.0),
        TripType::Taxi => (5.0, 40.0),
        TripType::Scooter => (1.0, 10.0),
        TripType::Bike => (0.5, 5.0),
        TripType::CarSharing => (4.0, 30.0),
    }
}

#[test]
fn long_runs_follow_the_life_cycle() {
    for seed in SEEDS {
        let mut sim = simulated(seed, 100);
        let events: Vec<Envelope> = sim.by_ref().take(EVENTS).collect();
        let counts = check(&events, 100);
        assert_eq!(
            sim.users(),
            100,
            "seed {seed}: the population reaches its target"
        );
        for t in mobility_contracts::EVENT_TYPES {
            assert!(
                counts.get(t).copied().unwrap_or(0) > 0,
                "seed {seed}: no {t} in {counts:?}"
            );
        }
        let trips = counts["TripEnded"];
        assert!(
            counts["RefundIssued"] * 100 <= trips * 10,
            "seed {seed}: refunds are occasional: {counts:?}"
        );
        assert!(
            counts["UserUpdated"] * 100 <= EVENTS * 10,
            "seed {seed}: {counts:?}"
        );
        assert!(
            trips * 100 >= EVENTS * 25,
            "seed {seed}: mostly trips: {counts:?}"
        );
    }
}

#[test]
fn every_trip_type_is_taken() {
    let types: HashSet<TripType> = simulated(3, 100)
        .take(EVENTS)
        .filter_map(|e| match e.event {
            Event::TripStarted(t) => Some(t.trip_type),
            _ => None,
        })
        .collect();
    assert_eq!(types.len(), TripType::ALL.len(), "{types:?}");
}

#[test]
fn small_and_single_user_populations_follow_the_life_cycle() {
    for users in [1, 2, 5] {
        let events: Vec<Envelope> = simulated(9, users).take(2_000).collect();
        check(&events, users);
    }
}

#[test]
fn the_simulated_clock_steps_a_few_seconds_per_event() {
    let events: Vec<Envelope> = simulated(5, 100).take(1_000).collect();
    assert_eq!(events[0].occurred_at, start());
    for pair in events.windows(2) {
        let gap = pair[1].occurred_at - pair[0].occurred_at;
        assert!((1..=5).contains(&gap.num_seconds()), "a gap of {gap}");
    }
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["occurredAt"], "2026-01-01T00:00:00Z");
}

#[test]
fn the_same_seed_gives_the_same_events_byte_for_byte() {
    let run = |seed| -> Vec<String> {
        simulated(seed, 100)
            .take(2_000)
            .map(|e| serde_json::to_string(&e).unwrap())
            .collect()
    };
    assert_eq!(run(17), run(17));
    let (a, b) = (run(17), run(18));
    assert_ne!(a[0], b[0]);
    assert!(
        a.iter().zip(&b).filter(|(x, y)| x == y).count() == 0,
        "seeds 17 and 18 share events"
    );
}

#[test]
fn the_clock_changes_only_the_times() {
    let strip_times = |e: Envelope| {
        let mut v = serde_json::to_value(e).unwrap();
        let payload = v["payload"].as_object_mut().unwrap();
        payload.remove("startedAt");
        payload.remove("endedAt");
        v.as_object_mut().unwrap().remove("occurredAt");
        v
    };
    let live: Vec<_> = Simulation::new(23, SimOptions::default())
        .take(500)
        .map(strip_times)
        .collect();
    let simulated: Vec<_> = simulated(23, 100).take(500).map(strip_times).collect();
    assert_eq!(live, simulated);
}

#[test]
fn the_live_clock_is_now_in_whole_seconds() {
    let before = Utc::now().trunc_subsecs(0);
    let e = Simulation::new(1, SimOptions::default()).next_event();
    let after = Utc::now();
    assert!(
        before <= e.occurred_at && e.occurred_at <= after,
        "{}",
        e.occurred_at
    );
    assert_eq!(e.occurred_at.timestamp_subsec_nanos(), 0);
}

#[test]
fn events_round_trip_through_json() {
    for e in simulated(31, 50).take(3_000) {
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            serde_json::from_str::<Envelope>(&json).unwrap(),
            e,
            "{json}"
        );
    }
}
