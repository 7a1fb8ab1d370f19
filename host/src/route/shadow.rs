//! Shadow mode: a candidate plugin version runs beside one step of a live
//! route on the very records that step sees. Its outcomes are compared
//! with the live version's and never produced; the route's output does not
//! depend on it in any way (its failures, traps and deadlines included).
//! The candidate has its own `state` store, so it cannot disturb the live
//! step's.
//!
//! Samples of records that may hold personal data in plaintext (a step up
//! to the shadowed one has decrypted) keep no values: each value is shown
//! by its shape, with every string and number replaced by a digest under a
//! key of this shadow's own, so that a reader sees which field differs, and
//! whether two values are equal, but not what they are.

use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use super::chain::{string_leaves, WITHHELD};
use crate::plugin::bindings::{Error as PluginError, Event, Header, Outcome};
use crate::plugin::{CallError, InstancePool};

/// Differences kept for the report: enough to see what differs, bounded.
const MAX_SAMPLES: usize = 10;

/// A candidate attached to a step of a route's chain.
pub struct Shadow {
    /// Index of the step in the chain, from 0.
    pub step: usize,
    pub candidate: InstancePool,
    stats: Mutex<Stats>,
    /// The key of the digests that stand for values in samples of records
    /// in plaintext: random per shadow, so that a digest cannot be looked
    /// up in a table of likely values.
    digest_key: [u8; 32],
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
            digest_key: crate::subjects::rand_bytes(),
        }
    }

    /// Run the candidate on `input` and compare with the live `outcomes`.
    /// `plaintext`: the records may hold personal data in plaintext, so
    /// samples keep no values.
    pub fn compare(&self, input: &[Event], live: &[Result<Outcome, CallError>], plaintext: bool) {
        let candidate = self.candidate.process_isolating(input);
        let plaintext = plaintext || self.candidate.handles_plaintext();
        let mut stats = self.stats.lock().expect("shadow stats lock");
        for ((event, live), candidate) in input.iter().zip(live).zip(&candidate) {
            let (live_text, candidate_text) = (describe(live), describe(candidate));
            stats.compared += 1;
            if live_text == candidate_text {
                stats.agreed += 1;
            } else if stats.samples.len() < MAX_SAMPLES {
                let (live, candidate) = if plaintext {
                    let values = string_leaves(event.value.as_deref());
                    (
                        self.describe_masked(live, &values),
                        self.describe_masked(candidate, &values),
                    )
                } else {
                    (live_text, candidate_text)
                };
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

    /// An outcome as [`describe`] shows it, with every value replaced by
    /// its shape and digests, and `values` (the input's strings) taken out
    /// of reasons and messages.
    fn describe_masked(&self, outcome: &Result<Outcome, CallError>, values: &[String]) -> String {
        let withhold = |text: &str| {
            let mut text = text.to_owned();
            for value in values {
                if text.contains(value.as_str()) {
                    text = text.replace(value.as_str(), WITHHELD);
                }
            }
            text
        };
        let bytes = |bytes: &Option<Vec<u8>>| match bytes {
            None => "null".to_owned(),
            Some(b) => match serde_json::from_slice::<Value>(b) {
                Ok(value) => self.mask(&value).to_string(),
                Err(_) => self.digest(b),
            },
        };
        let headers = |headers: &[Header]| {
            headers
                .iter()
                .map(|h| format!("{}={}", h.key, self.digest(&h.value)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match outcome {
            Err(e) => format!("error: {}", withhold(&e.to_string())),
            Ok(Outcome::Drop) => "drop".to_owned(),
            Ok(Outcome::Reject(reasons)) => format!("reject: {}", withhold(&reasons.join("; "))),
            Ok(Outcome::Fail(PluginError::Retryable(m))) => {
                format!("fail (retryable): {}", withhold(m))
            }
            Ok(Outcome::Fail(PluginError::Fatal(m))) => format!("fail (fatal): {}", withhold(m)),
            Ok(Outcome::Emit(outputs)) => {
                let outputs: Vec<String> = outputs
                    .iter()
                    .map(|o| {
                        format!(
                            "{{target: {}, key: {}, value: {}, headers: [{}]}}",
                            o.target.as_deref().unwrap_or("default"),
                            bytes(&o.key),
                            bytes(&o.value),
                            headers(&o.headers)
                        )
                    })
                    .collect();
                format!("emit [{}]", outputs.join(", "))
            }
        }
    }

    /// `value` with its strings and numbers replaced by digests; its shape
    /// (members, lengths of arrays) kept.
    fn mask(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.digest(s.as_bytes())),
            Value::Number(n) => Value::String(self.digest(n.to_string().as_bytes())),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.mask(v)).collect()),
            Value::Object(object) => Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), self.mask(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// `#` and 8 hex digits of an HMAC of `bytes` under this shadow's key.
    fn digest(&self, bytes: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.digest_key)
            .expect("HMAC takes any key length");
        mac.update(bytes);
        format!("#{}", hex::encode(&mac.finalize().into_bytes()[..4]))
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
