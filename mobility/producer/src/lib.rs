//! The mobility platform's internal events, simulated: a seeded,
//! deterministic model of a MaaS backend ([`Simulation`]) whose users
//! register, update their profiles, travel, pay and are now and then
//! refunded, following the platform's life cycle rules; and how the
//! `mobility-producer` binary finds the Kafka cluster next to a Switchyard
//! ([`discover`]).
//!
//! The events are the `mobility-contracts` types, so what the producer
//! writes is what the contracts (and their JSON Schemas) describe.
//!
//! ```
//! use mobility_producer::{Clock, SimOptions, Simulation};
//!
//! let start = "2026-01-01T00:00:00Z".parse().unwrap();
//! let clock = Clock::Simulated { start };
//! let sim = Simulation::new(1, SimOptions { users: 100, clock });
//! let lines: Vec<String> = sim
//!     .take(10)
//!     .map(|event| serde_json::to_string(&event).unwrap())
//!     .collect();
//! assert!(lines[0].contains(r#""type":"UserRegistered""#));
//! ```

pub mod discover;
mod people;
mod sim;
mod trips;

pub use sim::{Clock, SimOptions, Simulation};
