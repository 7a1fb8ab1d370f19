//! Trips: how often each trip type is taken, how far, at what price, and
//! where scheduled trips start and end.

use mobility_contracts::TripType;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Named stops and places. Scheduled trips and taxis run between them; a
/// free-floating vehicle is now and then picked up or left at one (a
/// mobility hub).
pub(crate) const STOPS: &[&str] = &[
    "Central Station",
    "Old Town",
    "Cathedral Square",
    "Airport",
    "University Campus",
    "Riverside",
    "Market Hall",
    "Business Park",
    "City Hospital",
    "Stadium",
    "Harbour",
    "Museum Quarter",
    "North Terminal",
    "Green Park",
];

/// How a trip type is used and priced: a price of `base + per_km × km`,
/// kept within `[min_price, max_price]`.
struct Tariff {
    /// Relative frequency among trips.
    weight: u32,
    min_km: f64,
    max_km: f64,
    base: f64,
    per_km: f64,
    min_price: f64,
    max_price: f64,
}

fn tariff(trip_type: TripType) -> Tariff {
    let t = |weight, min_km, max_km, base, per_km, min_price, max_price| Tariff {
        weight,
        min_km,
        max_km,
        base,
        per_km,
        min_price,
        max_price,
    };
    match trip_type {
        // Zoned public transport: a ticket of 1.00 up to 2.50.
        TripType::Bus => t(24, 0.8, 12.0, 1.0, 0.12, 1.0, 2.5),
        TripType::Tram => t(14, 0.8, 9.0, 1.0, 0.12, 1.0, 2.5),
        TripType::Metro => t(14, 1.0, 18.0, 1.5, 0.08, 1.5, 3.0),
        TripType::Train => t(8, 8.0, 90.0, 2.5, 0.11, 2.5, 15.0),
        TripType::Taxi => t(10, 1.5, 28.0, 3.5, 1.2, 5.0, 40.0),
        // Free-floating vehicles: an unlock fee and a price by distance.
        TripType::Scooter => t(14, 0.3, 6.0, 1.0, 0.9, 1.0, 10.0),
        TripType::Bike => t(9, 0.5, 10.0, 0.5, 0.25, 0.5, 5.0),
        TripType::CarSharing => t(7, 2.0, 60.0, 4.0, 0.4, 4.0, 30.0),
    }
}

/// A trip type, by how often each is taken.
pub(crate) fn random_type(rng: &mut ChaCha8Rng) -> TripType {
    *TripType::ALL
        .choose_weighted(rng, |t| tariff(*t).weight)
        .expect("trip weights are positive")
}

/// Where a trip of `trip_type` starts or ends, other than `not` (a trip
/// does not end where it started): a named stop, or, mostly, none for a
/// free-floating vehicle.
pub(crate) fn random_place(
    rng: &mut ChaCha8Rng,
    trip_type: TripType,
    not: Option<&str>,
) -> Option<String> {
    if trip_type.is_free_floating() && !rng.random_bool(0.15) {
        return None;
    }
    let stops: Vec<&str> = STOPS.iter().copied().filter(|s| Some(*s) != not).collect();
    stops.choose(rng).map(|s| (*s).to_owned())
}

/// The distance (km) and price (EUR) of a trip of `trip_type`, both with
/// two decimals. Short trips are more common than long ones.
pub(crate) fn random_distance_and_price(rng: &mut ChaCha8Rng, trip_type: TripType) -> (f64, f64) {
    let t = tariff(trip_type);
    let u: f64 = rng.random();
    let km = round2(t.min_km + (t.max_km - t.min_km) * u * u);
    let price = round2((t.base + t.per_km * km).clamp(t.min_price, t.max_price));
    (km, price)
}

/// `x` rounded to two decimals (cents, or tens of metres).
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
