//! The simulated MaaS backend: users who register, travel, pay and are now
//! and then refunded, one event at a time.
//!
//! Everything random comes from one ChaCha8 generator seeded by the caller
//! (ids included), so a seed names an exact sequence of events: a run can
//! be replayed, and tests can pin what they see. The simulated clock draws
//! from a second stream of the same seed, so the live and the simulated
//! clock give the same events, only at other times.

use std::collections::VecDeque;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use mobility_contracts::{
    Currency, Envelope, Event, PaymentCaptured, PaymentMethod, RefundIssued, RefundReason,
    TripEnded, TripStarted, TripType, UserRegistered, UserUpdated,
};
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::people::{self, Profile};
use crate::trips;

/// Where the events' `occurredAt` comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock, cut to whole seconds.
    Live,
    /// Simulated time: the first event at `start` (cut to whole seconds),
    /// each next one 1 to 5 seconds later, drawn from the seed.
    Simulated { start: DateTime<Utc> },
}

/// How a [`Simulation`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// The population: new users register (while others already travel)
    /// until there are this many. At least 1.
    pub users: usize,
    pub clock: Clock,
}

impl Default for SimOptions {
    /// 100 users on the live clock.
    fn default() -> SimOptions {
        SimOptions {
            users: 100,
            clock: Clock::Live,
        }
    }
}

/// The simulation: [`Simulation::next_event`] (or the iterator, which never
/// ends) gives the platform's next event.
///
/// The life cycle it follows:
/// - a user's first event is `UserRegistered`; `UserUpdated` carries the
///   whole profile after one change;
/// - a user has at most one trip in progress; `TripStarted` comes before
///   its `TripEnded`, and the user's next event after `TripEnded` is the
///   `PaymentCaptured` of that trip, for its price;
/// - a `RefundIssued` now and then, only for one of the user's last few
///   captured payments, at most once per payment, for at most its amount.
pub struct Simulation {
    rng: ChaCha8Rng,
    clock: SimClock,
    target_users: usize,
    users: Vec<User>,
    /// Users whose trip ended and whose next event is its payment, oldest
    /// first.
    unpaid: VecDeque<usize>,
}

/// How many of a user's latest payments may still be refunded.
const REFUND_WINDOW: usize = 3;

struct User {
    id: String,
    /// The user's place in the order of registration, from 1; keeps e-mail
    /// addresses unique.
    number: usize,
    profile: Profile,
    /// The payment method the user mostly pays with.
    method: PaymentMethod,
    trip: Option<Trip>,
    unpaid: Option<Unpaid>,
    /// Captured payments not refunded yet, oldest first.
    refundable: VecDeque<Captured>,
}

struct Trip {
    id: String,
    trip_type: TripType,
    from: Option<String>,
}

struct Unpaid {
    trip_id: String,
    price: f64,
}

struct Captured {
    payment_id: String,
    trip_id: String,
    amount: f64,
}

/// The clock of the events: the wall clock, or simulated time stepping
/// with its own random stream.
struct SimClock {
    /// The time of the next event; `None` on the wall clock.
    next: Option<DateTime<Utc>>,
    rng: ChaCha8Rng,
}

impl SimClock {
    fn new(seed: u64, clock: Clock) -> SimClock {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let next = match clock {
            Clock::Live => None,
            Clock::Simulated { start } => Some(start.trunc_subsecs(0)),
        };
        SimClock { next, rng }
    }

    fn tick(&mut self) -> DateTime<Utc> {
        match &mut self.next {
            None => Utc::now().trunc_subsecs(0),
            Some(next) => {
                let now = *next;
                *next = now + TimeDelta::seconds(self.rng.random_range(1..=5));
                now
            }
        }
    }
}

impl Simulation {
    /// A simulation of `opts.users` users, its events fixed by `seed`.
    ///
    /// # Panics
    /// If `opts.users` is 0.
    pub fn new(seed: u64, opts: SimOptions) -> Simulation {
        assert!(opts.users > 0, "a simulation needs at least one user");
        Simulation {
            rng: ChaCha8Rng::seed_from_u64(seed),
            clock: SimClock::new(seed, opts.clock),
            target_users: opts.users,
            users: Vec::with_capacity(opts.users),
            unpaid: VecDeque::new(),
        }
    }

    /// How many users have registered so far.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// The platform's next event.
    pub fn next_event(&mut self) -> Envelope {
        let at = self.clock.tick();
        let event_id = self.new_id();
        let (user, event) = self.step(at);
        Envelope::new(event_id, at, self.users[user].id.clone(), event)
    }

    /// Whose event comes next, and which.
    fn step(&mut self, at: DateTime<Utc>) -> (usize, Event) {
        // Payments follow their trip within a few events.
        if !self.unpaid.is_empty() && self.rng.random_bool(0.5) {
            let user = self.unpaid.pop_front().expect("not empty");
            return (user, self.capture(user));
        }
        // The fewer users so far, the likelier a registration (up to every
        // other event): the population fills up fast while the first users
        // already travel, then the last ones trickle in.
        let missing = 1.0 - self.users.len() as f64 / self.target_users as f64;
        if self.users.is_empty() || self.rng.random_bool(missing / 2.0) {
            return self.register();
        }
        let user = self.rng.random_range(0..self.users.len());
        if self.users[user].unpaid.is_some() {
            self.unpaid.retain(|u| *u != user);
            return (user, self.capture(user));
        }
        let roll = self.rng.random_range(0..100);
        let event = if roll < 8 {
            self.update(user)
        } else if self.users[user].trip.is_some() {
            self.end_trip(user, at)
        } else if roll < 12 && !self.users[user].refundable.is_empty() {
            self.refund(user)
        } else {
            self.start_trip(user, at)
        };
        (user, event)
    }

    fn register(&mut self) -> (usize, Event) {
        let number = self.users.len() + 1;
        let id = self.new_id();
        let profile = people::new_profile(&mut self.rng, number);
        let method = self.random_method();
        let event = Event::UserRegistered(UserRegistered {
            first_name: profile.first_name.clone(),
            last_name: profile.last_name.clone(),
            email: profile.email.clone(),
            phone: profile.phone.clone(),
        });
        self.users.push(User {
            id,
            number,
            profile,
            method,
            trip: None,
            unpaid: None,
            refundable: VecDeque::new(),
        });
        (self.users.len() - 1, event)
    }

    fn update(&mut self, user: usize) -> Event {
        let u = &mut self.users[user];
        u.profile = people::changed_profile(&mut self.rng, &u.profile, u.number);
        Event::UserUpdated(UserUpdated {
            first_name: u.profile.first_name.clone(),
            last_name: u.profile.last_name.clone(),
            email: u.profile.email.clone(),
            phone: u.profile.phone.clone(),
        })
    }

    fn start_trip(&mut self, user: usize, at: DateTime<Utc>) -> Event {
        let trip_id = self.new_id();
        let trip_type = trips::random_type(&mut self.rng);
        let from = trips::random_place(&mut self.rng, trip_type, None);
        self.users[user].trip = Some(Trip {
            id: trip_id.clone(),
            trip_type,
            from: from.clone(),
        });
        Event::TripStarted(TripStarted {
            trip_id,
            trip_type,
            from,
            started_at: at,
        })
    }

    fn end_trip(&mut self, user: usize, at: DateTime<Utc>) -> Event {
        let trip = self.users[user].trip.take().expect("a trip in progress");
        let to = trips::random_place(&mut self.rng, trip.trip_type, trip.from.as_deref());
        let (distance_km, price) = trips::random_distance_and_price(&mut self.rng, trip.trip_type);
        self.users[user].unpaid = Some(Unpaid {
            trip_id: trip.id.clone(),
            price,
        });
        self.unpaid.push_back(user);
        Event::TripEnded(TripEnded {
            trip_id: trip.id,
            trip_type: trip.trip_type,
            to,
            ended_at: at,
            price,
            currency: Currency::Eur,
            distance_km,
        })
    }

    fn capture(&mut self, user: usize) -> Event {
        let payment_id = self.new_id();
        let method = if self.rng.random_bool(0.9) {
            self.users[user].method
        } else {
            self.random_method()
        };
        let u = &mut self.users[user];
        let unpaid = u.unpaid.take().expect("an ended trip to pay");
        u.refundable.push_back(Captured {
            payment_id: payment_id.clone(),
            trip_id: unpaid.trip_id.clone(),
            amount: unpaid.price,
        });
        if u.refundable.len() > REFUND_WINDOW {
            u.refundable.pop_front();
        }
        Event::PaymentCaptured(PaymentCaptured {
            payment_id,
            trip_id: unpaid.trip_id,
            amount: unpaid.price,
            currency: Currency::Eur,
            method,
        })
    }

    fn refund(&mut self, user: usize) -> Event {
        let refund_id = self.new_id();
        let which = self.rng.random_range(0..self.users[user].refundable.len());
        let payment = self.users[user]
            .refundable
            .remove(which)
            .expect("an index within the list");
        let reasons = [
            (RefundReason::TripCancelled, 2),
            (RefundReason::Overcharge, 3),
            (RefundReason::ServiceDisruption, 3),
            (RefundReason::Goodwill, 2),
        ];
        let reason = reasons
            .choose_weighted(&mut self.rng, |r| r.1)
            .expect("positive weights")
            .0;
        // A cancelled trip is refunded in full, a disruption in full or by
        // half, an overcharge or a goodwill gesture in part.
        let share = match reason {
            RefundReason::TripCancelled => 1.0,
            RefundReason::ServiceDisruption => *[0.5, 1.0].choose(&mut self.rng).expect("two"),
            RefundReason::Overcharge => self.rng.random_range(0.1..0.5),
            RefundReason::Goodwill => self.rng.random_range(0.1..0.3),
        };
        let amount = trips::round2(payment.amount * share).clamp(0.01, payment.amount);
        Event::RefundIssued(RefundIssued {
            refund_id,
            payment_id: payment.payment_id,
            trip_id: payment.trip_id,
            amount,
            currency: Currency::Eur,
            reason,
        })
    }

    fn random_method(&mut self) -> PaymentMethod {
        let methods = [
            (PaymentMethod::Card, 45),
            (PaymentMethod::ApplePay, 20),
            (PaymentMethod::GooglePay, 15),
            (PaymentMethod::Wallet, 20),
        ];
        methods
            .choose_weighted(&mut self.rng, |m| m.1)
            .expect("positive weights")
            .0
    }

    /// A random (version 4) UUID made of the generator's bytes.
    fn new_id(&mut self) -> String {
        let mut bytes = [0; 16];
        self.rng.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

impl Iterator for Simulation {
    type Item = Envelope;

    /// The next event; never `None`.
    fn next(&mut self) -> Option<Envelope> {
        Some(self.next_event())
    }
}

#[cfg(test)]
mod tests;
