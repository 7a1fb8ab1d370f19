//! The `state` import's storage: one store per route step, shared by the
//! step's instances, in the host's memory.
//!
//! A plugin's linear memory is capped, but what it hands to `state.set`
//! lives in the host, beyond that cap, for as long as the step runs. So the
//! store is bounded: in entries, in bytes (keys and values, plus what the
//! host spends per entry), and per key and per value. A `set` that would go
//! past a bound traps, naming it: the call fails (the record is
//! dead-lettered with its context, or the route halts), rather than the
//! plugin going on believing that something was stored. Entries stored
//! before the trap stay; `state` is not transactional.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most entries of one step's state.
pub const MAX_ENTRIES: usize = 100_000;
/// Most bytes of one step's state: keys, values and [`ENTRY_OVERHEAD`] per
/// entry.
pub const MAX_BYTES: usize = 32 << 20;
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// What the host spends per entry besides its key and value (the map's
/// slot and two allocations), counted against [`MAX_BYTES`] so that many
/// tiny entries cannot slip under it.
pub const ENTRY_OVERHEAD: usize = 64;

/// Why a `set` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateLimitExceeded {
    #[error(
        "state.set refused: a key of {len} bytes is longer than the {MAX_KEY_BYTES} bytes a \
         key may have"
    )]
    KeyTooLong { len: usize },
    #[error(
        "state.set refused: a value of {len} bytes is larger than the {MAX_VALUE_BYTES} bytes \
         (1 MiB) a value may have"
    )]
    ValueTooLarge { len: usize },
    #[error(
        "state.set refused: the step's state of {entries} entries and {bytes} bytes would grow \
         past its bound of {MAX_ENTRIES} entries and {MAX_BYTES} bytes (32 MiB, counting {ENTRY_OVERHEAD} \
         bytes per entry); delete entries it no longer needs"
    )]
    Full { entries: usize, bytes: usize },
}

/// One route step's `state`.
#[derive(Debug, Default)]
pub struct StepState {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, Vec<u8>>,
    /// Keys, values and overhead of every entry.
    bytes: usize,
}

fn entry_bytes(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl StepState {
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.lock().expect("state lock").map.get(key).cloned()
    }

    /// Store `value` under `key`, replacing any previous value, unless that
    /// would take the state past a bound.
    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), StateLimitExceeded> {
        if key.len() > MAX_KEY_BYTES {
            return Err(StateLimitExceeded::KeyTooLong { len: key.len() });
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(StateLimitExceeded::ValueTooLarge { len: value.len() });
        }
        let mut entries = self.inner.lock().expect("state lock");
        let replaced = entries.map.get(&key).map(|old| entry_bytes(&key, old));
        let count = entries.map.len() + usize::from(replaced.is_none());
        let bytes = entries.bytes - replaced.unwrap_or(0) + entry_bytes(&key, &value);
        if count > MAX_ENTRIES || bytes > MAX_BYTES {
            return Err(StateLimitExceeded::Full {
                entries: entries.map.len(),
                bytes: entries.bytes,
            });
        }
        entries.bytes = bytes;
        entries.map.insert(key, value);
        Ok(())
    }

    pub fn delete(&self, key: &str) {
        let mut entries = self.inner.lock().expect("state lock");
        if let Some(old) = entries.map.remove(key) {
            entries.bytes -= entry_bytes(key, &old);
        }
    }

    /// Entries and bytes (as counted against [`MAX_BYTES`]) held now.
    pub fn usage(&self) -> (usize, usize) {
        let entries = self.inner.lock().expect("state lock");
        (entries.map.len(), entries.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_a_value_counts_only_the_difference() {
        let state = StepState::default();
        state.set("k".into(), vec![0; 1000]).unwrap();
        state.set("k".into(), vec![0; 10]).unwrap();
        assert_eq!(state.usage(), (1, 1 + 10 + ENTRY_OVERHEAD));
        state.delete("k");
        assert_eq!(state.usage(), (0, 0));
        state.delete("k");
        assert_eq!(state.get("k"), None);
    }

    #[test]
    fn keys_and_values_past_their_bounds_are_refused() {
        let state = StepState::default();
        assert_eq!(
            state.set("k".repeat(MAX_KEY_BYTES + 1), vec![]),
            Err(StateLimitExceeded::KeyTooLong {
                len: MAX_KEY_BYTES + 1
            })
        );
        assert_eq!(
            state.set("k".into(), vec![0; MAX_VALUE_BYTES + 1]),
            Err(StateLimitExceeded::ValueTooLarge {
                len: MAX_VALUE_BYTES + 1
            })
        );
        state
            .set("k".repeat(MAX_KEY_BYTES), vec![0; MAX_VALUE_BYTES])
            .unwrap();
        assert_eq!(state.usage().0, 1);
    }

    #[test]
    fn a_full_state_refuses_new_bytes_but_takes_replacements_that_fit() {
        let state = StepState::default();
        let value = vec![0; MAX_VALUE_BYTES];
        let mut stored = 0;
        let refusal = loop {
            match state.set(format!("{stored}"), value.clone()) {
                Ok(()) => stored += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(stored, 31, "32 MiB less the keys and overheads");
        let text = refusal.to_string();
        assert!(text.contains("state of 31 entries"), "{text}");
        assert!(text.contains("delete entries"), "says what to do: {text}");
        // A smaller value under an existing key fits; so does a new entry
        // once another is gone.
        state.set("0".into(), vec![1; 10]).unwrap();
        state.set("new".into(), vec![1; 10]).unwrap();
        assert_eq!(state.get("0"), Some(vec![1; 10]));
    }

    #[test]
    fn the_entry_count_is_bounded_too() {
        let state = StepState::default();
        for i in 0..MAX_ENTRIES {
            state.set(i.to_string(), Vec::new()).unwrap();
        }
        assert!(matches!(
            state.set("one more".into(), Vec::new()),
            Err(StateLimitExceeded::Full { .. })
        ));
        state.set("0".into(), vec![1]).unwrap();
    }
}
