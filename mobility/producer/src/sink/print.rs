//! JSON Lines on stdout (`--print`).

use std::io::Write;

use mobility_contracts::Envelope;

use super::{per_second, Done, Outcome, Progress, Signals, Sink};

/// Writes each event as one JSON line; stdout is line-buffered, so each
/// event shows at once.
pub struct Print {
    out: std::io::Stdout,
    /// A write failed for another reason than the reader going away.
    error: bool,
}

impl Print {
    pub fn new() -> Print {
        Print {
            out: std::io::stdout(),
            error: false,
        }
    }
}

impl Sink for Print {
    async fn send(&mut self, event: &Envelope) -> bool {
        let json = serde_json::to_string(event).expect("an envelope always serialises");
        match writeln!(self.out, "{json}") {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::info!("stdout closed: stopping");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "writing to stdout");
                self.error = true;
                false
            }
        }
    }

    fn log_progress(&self, run: &Progress) {
        tracing::info!(
            sent = run.sent,
            rate = per_second(run.rate),
            users = run.users,
            "progress"
        );
    }

    async fn finish(self, sent: u64, _signalled: bool, _signals: &mut Signals) -> Outcome {
        Outcome {
            delivered: sent,
            error: self.error,
            ..Outcome::default()
        }
    }

    fn log_done(_outcome: &Outcome, run: &Done<'_>) {
        tracing::info!(
            sent = run.sent,
            users = run.users,
            elapsed = format!("{:.1}s", run.elapsed_secs),
            rate = run.rate(),
            by_type = ?run.by_type,
            "done"
        );
    }
}
