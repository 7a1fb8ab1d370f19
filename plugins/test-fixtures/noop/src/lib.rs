//! `noop`: emits every record unchanged (same key, value and headers) to
//! the default target. A chain of these costs what the host and the
//! component boundary cost per step and nothing else: the benchmarks use
//! it to separate that from the work real plugins do. Not for production
//! routes.
//!
//! Config: anything (it is not read).

use switchyard_guest::json::emit;
use switchyard_guest::{export_plugin, Event, Outcome, Plugin};

struct Noop;

impl Plugin for Noop {
    const NAME: &'static str = "noop";
    type Config = ();

    fn configure(_config: &str) -> Result<(), String> {
        Ok(())
    }

    fn process(_config: &(), event: Event) -> Outcome {
        // Moved, not copied: the bytes the host wrote into this instance's
        // memory go back as they are.
        emit(event.key, event.value, event.headers)
    }
}

export_plugin!(Noop);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_guest::{Header, Output};

    #[test]
    fn emits_the_record_unchanged() {
        let mut event = switchyard_guest::test_event(Some(b"k"), Some(b"not even json"));
        event.headers.push(Header {
            key: "h".into(),
            value: b"v".to_vec(),
        });
        let outcome = Noop::process(&(), event);
        let Outcome::Emit(outputs) = outcome else {
            panic!("expected emit, got {outcome:?}");
        };
        assert_eq!(outputs.len(), 1);
        let Output {
            target,
            key,
            value,
            headers,
        } = &outputs[0];
        assert_eq!(target, &None);
        assert_eq!(key.as_deref(), Some(&b"k"[..]));
        assert_eq!(value.as_deref(), Some(&b"not even json"[..]));
        assert_eq!(headers.len(), 1);
        assert_eq!(
            (headers[0].key.as_str(), &headers[0].value[..]),
            ("h", &b"v"[..])
        );
    }

    #[test]
    fn passes_tombstones() {
        let outcome = Noop::process(&(), switchyard_guest::test_event(Some(b"k"), None));
        let Outcome::Emit(outputs) = outcome else {
            panic!("expected emit, got {outcome:?}");
        };
        assert_eq!(outputs[0].value, None);
    }
}
