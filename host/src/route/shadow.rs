//! Shadow mode: a candidate plugin version runs beside one step of a live
//! route on the very records that step sees. Its outcomes are compared
//! with the live version's and never produced; the route's output does not
//! depend on it in any way (its failures, traps and deadlines included).
//! The candidate has its own `state` store, so it cannot disturb the live
//! step's.

use std::sync::Mutex;

use serde::Serialize;

use crate::plugin::bindings::{Error as PluginError, Event, Outcome};
use crate::plugin::{CallError, InstancePool};

/// Differences kept for the report: enough to see what differs, bounded.
const MAX_SAMPLES: usize = 10;

/// A candidate attached to a step of a route's chain.
pub struct Shadow {
    /// Index of the step in the chain, from 0.
    pub step: usize,
    pub candidate: InstancePool,
    stats: Mutex<Stats>,
}

#[derive(Default)]
struct Stats {
    compared: u64,
    agreed: u64,
    samples: Vec<Difference>,
}

/// One record on which the candidate and the live version differ.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Difference {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub live: String,
    pub candidate: String,
}

/// What the admin API shows of a shadow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShadowReport {
    /// The step, from 1 as in the routes file.
    pub step: usize,
    pub live: String,
    pub candidate: String,
    pub compared: u64,
    pub agreed: u64,
    pub differed: u64,
    /// `agreed / compared`; `None` before the first record.
    pub agreement_rate: Option<f64>,
    /// The first differences seen, at most ten.
    pub samples: Vec<Difference>,
}

impl Shadow {
    pub fn new(step: usize, candidate: InstancePool) -> Shadow {
        Shadow {
            step,
            candidate,
            stats: Mutex::new(Stats::default()),
        }
    }

    /// Run the candidate on `input` and compare with the live `outcomes`.
    pub fn compare(&self, input: &[Event], live: &[Result<Outcome, CallError>]) {
        let candidate = self.candidate.process_isolating(input);
        let mut stats = self.stats.lock().expect("shadow stats lock");
        for ((event, live), candidate) in input.iter().zip(live).zip(&candidate) {
            let (live, candidate) = (describe(live), describe(candidate));
            stats.compared += 1;
            if live == candidate {
                stats.agreed += 1;
            } else if stats.samples.len() < MAX_SAMPLES {
                stats.samples.push(Difference {
                    topic: event.topic.clone(),
                    partition: event.partition,
                    offset: event.offset,
                    live,
                    candidate,
                });
            }
        }
    }

    /// The report; `live` is the live step's version tag.
    pub fn report(&self, live: String) -> ShadowReport {
        let stats = self.stats.lock().expect("shadow stats lock");
        ShadowReport {
            step: self.step + 1,
            live,
            candidate: self.candidate.plugin().version_tag(),
            compared: stats.compared,
            agreed: stats.agreed,
            differed: stats.compared - stats.agreed,
            agreement_rate: (stats.compared > 0)
                .then(|| stats.agreed as f64 / stats.compared as f64),
            samples: stats.samples.clone(),
        }
    }
}

/// An outcome as text: compared for equality, and shown in samples.
/// Values, keys and headers are shown as UTF-8 (lossily), so a person can
/// read the difference.
fn describe(outcome: &Result<Outcome, CallError>) -> String {
    let text = |bytes: &Option<Vec<u8>>| match bytes {
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
        None => "null".to_owned(),
    };
    match outcome {
        Err(e) => format!("error: {e}"),
        Ok(Outcome::Drop) => "drop".to_owned(),
        Ok(Outcome::Reject(reasons)) => format!("reject: {}", reasons.join("; ")),
        Ok(Outcome::Fail(PluginError::Retryable(m))) => format!("fail (retryable): {m}"),
        Ok(Outcome::Fail(PluginError::Fatal(m))) => format!("fail (fatal): {m}"),
        Ok(Outcome::Emit(outputs)) => {
            let outputs: Vec<String> = outputs
                .iter()
                .map(|o| {
                    let headers: Vec<String> = o
                        .headers
                        .iter()
                        .map(|h| format!("{}={:?}", h.key, String::from_utf8_lossy(&h.value)))
                        .collect();
                    format!(
                        "{{target: {}, key: {}, value: {}, headers: [{}]}}",
                        o.target.as_deref().unwrap_or("default"),
                        text(&o.key),
                        text(&o.value),
                        headers.join(", ")
                    )
                })
                .collect();
            format!("emit [{}]", outputs.join(", "))
        }
    }
}
