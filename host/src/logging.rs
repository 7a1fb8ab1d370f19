//! Log setup: human-readable lines on stderr, or JSON with
//! `SWITCHYARD_LOG_FORMAT=json`; levels from `SWITCHYARD_LOG`
//! (default `info`), in `tracing-subscriber`'s `EnvFilter` syntax.
//!
//! One event is one line in both formats, whatever its text holds: logs
//! carry text that plugins and clients chose (a plugin's log messages, the
//! reasons it rejects a record with), and a newline in it must not start a
//! line that reads like the host's. JSON escapes control characters by
//! itself; in the text format, [`OneLinePerEvent`] escapes carriage returns
//! and any newline but the one that ends the event (tracing-subscriber
//! already escapes terminal escape sequences). Colours only on a terminal:
//! a log file or a collector gets plain text.

use std::io::{IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("SWITCHYARD_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().with_writer(std::io::stderr).init();
    } else {
        builder.with_writer(OneLinePerEvent(std::io::stderr)).init();
    }
}

/// A writer for the text format that keeps each event on one line: every
/// `\r`, and every `\n` but a final one, is written as `\r` or `\n` escaped.
/// tracing-subscriber formats an event whole and hands it over in one
/// `write_all`, so the final newline of a buffer is the event's end.
#[derive(Debug, Clone, Copy)]
pub struct OneLinePerEvent<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLinePerEvent<M> {
    type Writer = OneLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLine(self.0.make_writer())
    }
}

/// See [`OneLinePerEvent`].
#[derive(Debug)]
pub struct OneLine<W>(W);

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        if !body.iter().any(|&b| b == b'\n' || b == b'\r') {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &byte in body {
            match byte {
                b'\n' => line.extend_from_slice(br"\n"),
                b'\r' => line.extend_from_slice(br"\r"),
                _ => line.push(byte),
            }
        }
        line.extend_from_slice(end);
        self.0.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = OneLine(Vec::new());
        for chunk in chunks {
            out.write_all(chunk).unwrap();
        }
        out.0
    }

    #[test]
    fn an_event_with_newlines_stays_on_one_line() {
        assert_eq!(
            through(&[b"INFO rejected: bad\n2030-01-01 INFO forged\r\n"]),
            b"INFO rejected: bad\\n2030-01-01 INFO forged\\r\n"
        );
    }

    #[test]
    fn plain_events_pass_unchanged() {
        assert_eq!(
            through(&[b"INFO one\n", b"INFO two\n"]),
            b"INFO one\nINFO two\n"
        );
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    const FORGING: &str = "bad\n2030-01-01T00:00:00Z  INFO switchyard: forged\r\u{1b}[2K";

    fn lines(buffer: &Buffer) -> Vec<String> {
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn both_formats_write_an_event_on_one_line() {
        let text = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(OneLinePerEvent(text.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(reason = FORGING, "record rejected: {FORGING}");
        });
        let text = lines(&text);
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(!text[0].contains(['\r', '\u{1b}']), "{text:?}");

        let json = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(json.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(reason = FORGING, "record rejected: {FORGING}");
        });
        let json = lines(&json);
        assert_eq!(json.len(), 1, "{json:?}");
        let event: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
        assert_eq!(
            event["fields"]["message"],
            format!("record rejected: {FORGING}")
        );
    }
}
