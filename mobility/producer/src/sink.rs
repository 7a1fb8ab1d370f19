//! The binary's sinks, where the events go: stdout ([`Print`]), Kafka ([`Kafka`]) or
//! Switchyard's ingest API ([`Ingest`]). The producing loop drives every
//! sink the same way, through [`Sink`]; what differs (acknowledgements,
//! batches, retries) stays inside each one.

use std::collections::BTreeMap;

use mobility_contracts::Envelope;
use tokio::sync::mpsc;

mod ingest;
mod kafka;
mod print;

pub use ingest::{Ingest, IngestOptions};
pub use kafka::Kafka;
pub use print::Print;

/// Each Ctrl-C or SIGTERM received.
pub type Signals = mpsc::UnboundedReceiver<()>;

/// A destination for the events.
pub trait Sink {
    /// Hands `event` on; false once the sink takes no more (its output
    /// closed, or it failed in a way that must stop the run).
    ///
    /// Cancel-safe: cancelled (the run is stopping), the event was not
    /// taken, so nothing is sent that the run does not account for.
    async fn send(&mut self, event: &Envelope) -> bool;

    /// Logs the progress line: the run's figures and the sink's own.
    fn log_progress(&self, run: &Progress);

    /// Waits for the outcome of the `sent` events taken. `signalled`: the
    /// run stops on a signal rather than at its end. Further signals cut
    /// the wait short.
    async fn finish(self, sent: u64, signalled: bool, signals: &mut Signals) -> Outcome;

    /// Logs the summary line of a run into this sink.
    fn log_done(outcome: &Outcome, run: &Done<'_>);
}

/// The run's figures on a progress line.
pub struct Progress {
    pub sent: u64,
    /// Events per second since the last progress line.
    pub rate: f64,
    pub users: usize,
}

/// The run's figures on the summary line.
pub struct Done<'a> {
    pub sent: u64,
    pub users: usize,
    pub elapsed_secs: f64,
    pub by_type: &'a BTreeMap<&'static str, u64>,
}

impl Done<'_> {
    /// The mean rate, for the log.
    pub fn rate(&self) -> String {
        per_second(self.sent as f64 / self.elapsed_secs.max(1e-3))
    }
}

/// A rate as logged.
pub fn per_second(rate: f64) -> String {
    format!("{rate:.1}/s")
}

/// What became of the events a sink took.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Confirmed: written to stdout, acknowledged by the broker, or
    /// accepted by the ingest API (which answers once the broker
    /// acknowledged them).
    pub delivered: u64,
    /// Refused for good: delivery errors, lines the ingest API rejected.
    pub failed: u64,
    /// Sent, but of unknown fate: the run gave up waiting for them, so some
    /// may have been published and some not.
    pub unconfirmed: u64,
    /// Taken but never sent (still waiting for their batch when the run
    /// stopped, or in a request refused as a whole), so certainly not
    /// published.
    pub unsent: u64,
    /// Requests repeated after a failure.
    pub retries: u64,
    /// The sink stopped the run on an error of its own (its configuration,
    /// its output), not of an event.
    pub error: bool,
}

impl Outcome {
    /// Whether the run did what it was asked: nothing failed or left in
    /// doubt, every event accounted for. Events not sent because the run
    /// was stopped were never handed to anyone, so they do not count
    /// against it.
    pub fn succeeded(&self, sent: u64) -> bool {
        self.failed == 0
            && self.unconfirmed == 0
            && !self.error
            && self.delivered + self.unsent >= sent
    }
}
