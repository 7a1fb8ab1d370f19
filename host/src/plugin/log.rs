//! The `log` import: a plugin's messages in the host's log, with the route
//! and plugin names attached, and bounded so that a plugin cannot flood or
//! forge the log.
//!
//! - **One line per message**: control characters (newlines, carriage
//!   returns, terminal escapes) and the Unicode line separators are written
//!   as escapes (`\n`, `\u{1b}`), so a message cannot end its log line and
//!   start one that looks like the host's.
//! - **Size**: a message longer than [`MAX_MESSAGE_BYTES`] is cut there,
//!   saying how many bytes were cut.
//! - **Rate**: each route step may log [`MAX_MESSAGES_PER_INTERVAL`]
//!   messages per [`INTERVAL`] (all its instances together); the rest are
//!   counted, and the count is logged once the interval is over (at the
//!   step's next message or call), and when the step is dropped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bindings::switchyard::plugin::log::Level;

/// Longest message written, in bytes (before escaping).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Messages a route step may log per [`INTERVAL`].
pub const MAX_MESSAGES_PER_INTERVAL: u32 = 100;
/// The rate limit's window.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The log of one route step: its names and its rate limit.
#[derive(Debug)]
pub struct StepLog {
    route: Arc<str>,
    plugin: Arc<str>,
    window: Mutex<Window>,
    /// Whether messages were suppressed and not yet reported: a cheap
    /// check after every call.
    pending: AtomicBool,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

impl StepLog {
    pub fn new(route: Arc<str>, plugin: Arc<str>) -> StepLog {
        StepLog {
            route,
            plugin,
            window: Mutex::new(Window {
                started: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
            pending: AtomicBool::new(false),
        }
    }

    /// Write `message` at `level`, or count it if the step has used up its
    /// messages for this interval.
    pub fn log(&self, level: Level, message: &str) {
        let now = Instant::now();
        let (allowed, report) = {
            let mut window = self.window.lock().expect("log window lock");
            let report = self.roll(&mut window, now);
            let allowed = window.logged < MAX_MESSAGES_PER_INTERVAL;
            if allowed {
                window.logged += 1;
            } else {
                window.suppressed += 1;
                self.pending.store(true, Ordering::Relaxed);
            }
            (allowed, report)
        };
        if let Some((suppressed, over)) = report {
            self.report(suppressed, over);
        }
        if allowed {
            self.write(level, &one_line(message, MAX_MESSAGE_BYTES));
        }
    }

    /// Log the count of suppressed messages if their interval is over.
    /// Cheap when nothing was suppressed.
    pub fn report_if_due(&self) {
        if !self.pending.load(Ordering::Relaxed) {
            return;
        }
        let report = {
            let mut window = self.window.lock().expect("log window lock");
            self.roll(&mut window, Instant::now())
        };
        if let Some((suppressed, over)) = report {
            self.report(suppressed, over);
        }
    }

    /// Start a new window if the current one is over; what it suppressed,
    /// and over how long, if anything.
    fn roll(&self, window: &mut Window, now: Instant) -> Option<(u64, Duration)> {
        let over = now.duration_since(window.started);
        if over < INTERVAL {
            return None;
        }
        let suppressed = std::mem::take(&mut window.suppressed);
        window.started = now;
        window.logged = 0;
        self.pending.store(false, Ordering::Relaxed);
        (suppressed > 0).then_some((suppressed, over))
    }

    fn report(&self, suppressed: u64, over: Duration) {
        tracing::warn!(
            route = %self.route,
            plugin = %self.plugin,
            suppressed,
            "plugin log messages suppressed: {suppressed} in the last {:.1} s, past the step's \
             {MAX_MESSAGES_PER_INTERVAL} per {} s",
            over.as_secs_f64(),
            INTERVAL.as_secs()
        );
    }

    fn write(&self, level: Level, message: &str) {
        let (route, plugin) = (&*self.route, &*self.plugin);
        match level {
            Level::Trace => tracing::trace!(route, plugin, "{message}"),
            Level::Debug => tracing::debug!(route, plugin, "{message}"),
            Level::Info => tracing::info!(route, plugin, "{message}"),
            Level::Warn => tracing::warn!(route, plugin, "{message}"),
            Level::Error => tracing::error!(route, plugin, "{message}"),
        }
    }
}

impl Drop for StepLog {
    fn drop(&mut self) {
        let window = self.window.get_mut().expect("log window lock");
        if window.suppressed > 0 {
            let (suppressed, over) = (window.suppressed, window.started.elapsed());
            self.report(suppressed, over);
        }
    }
}

/// `message` on one line and at most `max_bytes` long (cut at a character
/// boundary, saying how much was cut): control characters and the Unicode
/// line and paragraph separators escaped as Rust writes them (`\n`,
/// `\u{1b}`). Everything else, backslashes and quotes included, is kept as
/// the plugin wrote it.
pub fn one_line(message: &str, max_bytes: usize) -> String {
    let kept = &message[..message.floor_char_boundary(max_bytes)];
    let mut line = String::with_capacity(kept.len() + 32);
    for c in kept.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    let cut = message.len() - kept.len();
    if cut > 0 {
        let _ = write!(line, "… ({cut} bytes cut)");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line() {
        let line = one_line("a\nb\r\u{1b}[2Kc\td\u{2028}e\u{85}f", 100);
        assert_eq!(line, r"a\nb\r\u{1b}[2Kc\td\u{2028}e\u{85}f");
        assert!(!line.chars().any(char::is_control));
    }

    #[test]
    fn text_is_kept_as_written() {
        let text = r#"{"path":"C:\dir","name":"Zoë 🚲"}"#;
        assert_eq!(one_line(text, 100), text);
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let line = one_line(&"é".repeat(10), 5);
        assert_eq!(line, "éé… (16 bytes cut)");
    }

    #[test]
    fn messages_past_the_rate_are_counted_and_reported_once_the_interval_is_over() {
        let log = StepLog::new("r".into(), "p".into());
        for _ in 0..MAX_MESSAGES_PER_INTERVAL + 7 {
            log.log(Level::Trace, "m");
        }
        {
            let window = log.window.lock().unwrap();
            assert_eq!(
                (window.logged, window.suppressed),
                (MAX_MESSAGES_PER_INTERVAL, 7)
            );
        }
        assert!(log.pending.load(Ordering::Relaxed));
        // Not yet over: nothing reported, nothing reset.
        log.report_if_due();
        assert_eq!(log.window.lock().unwrap().suppressed, 7);
        log.window.lock().unwrap().started -= INTERVAL;
        log.report_if_due();
        let window = log.window.lock().unwrap();
        assert_eq!((window.logged, window.suppressed), (0, 0));
        assert!(!log.pending.load(Ordering::Relaxed));
    }
}
