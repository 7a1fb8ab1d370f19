//! Buffer sinks: a route may keep its most recent outputs in memory instead
//! of producing them to a topic, for an HTTP API to read (`GET /events`).
//!
//! A buffer is bounded: past its capacity the oldest record goes. It is
//! not durable (a restart empties it), and on a consumer-group rebalance a
//! record may be added twice, as records may be redelivered at least once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

/// One buffer: the most recent outputs of a route, as JSON values.
pub struct RecentBuffer {
    inner: Mutex<Ring>,
}

struct Ring {
    capacity: usize,
    items: VecDeque<Box<RawValue>>,
}

impl RecentBuffer {
    fn new(capacity: usize) -> RecentBuffer {
        RecentBuffer {
            inner: Mutex::new(Ring {
                capacity,
                items: VecDeque::with_capacity(capacity.min(4096)),
            }),
        }
    }

    /// Keep `value`. A value that is not JSON is kept as a JSON string of
    /// its text, so that readers always get JSON; a tombstone as `null`.
    pub fn push(&self, value: Option<&[u8]>) {
        let item = as_json(value);
        let mut ring = self.ring();
        if ring.items.len() == ring.capacity {
            ring.items.pop_front();
        }
        ring.items.push_back(item);
    }

    /// Up to `limit` records, the most recent first.
    pub fn recent(&self, limit: usize) -> Vec<Box<RawValue>> {
        self.ring()
            .items
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.ring().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set_capacity(&self, capacity: usize) {
        let mut ring = self.ring();
        ring.capacity = capacity;
        while ring.items.len() > capacity {
            ring.items.pop_front();
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent
        // (every change is one push or pop), so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn as_json(value: Option<&[u8]>) -> Box<RawValue> {
    let Some(bytes) = value else {
        return RawValue::from_string("null".into()).expect("null is JSON");
    };
    if let Ok(raw) = serde_json::from_slice::<&RawValue>(bytes) {
        return raw.to_owned();
    }
    let text = serde_json::to_string(&String::from_utf8_lossy(bytes)).expect("a string is JSON");
    RawValue::from_string(text).expect("a JSON string is JSON")
}

/// Every buffer of the process, by name. Buffers outlive route restarts (a
/// route rebuilt by a config change keeps what its buffer holds).
#[derive(Clone, Default)]
pub struct Buffers {
    by_name: Arc<Mutex<BTreeMap<String, Arc<RecentBuffer>>>>,
}

impl Buffers {
    /// The buffer `name`, made if new, resized if its capacity changed.
    pub fn open(&self, name: &str, capacity: usize) -> Arc<RecentBuffer> {
        let mut by_name = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = by_name
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(RecentBuffer::new(capacity)));
        buffer.set_capacity(capacity);
        buffer.clone()
    }

    /// The buffer `name`, if a route has opened it.
    pub fn get(&self, name: &str) -> Option<Arc<RecentBuffer>> {
        let by_name = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        by_name.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(b: &RecentBuffer, limit: usize) -> Vec<String> {
        b.recent(limit).iter().map(|r| r.get().to_owned()).collect()
    }

    #[test]
    fn keeps_the_most_recent_newest_first() {
        let b = Buffers::default().open("x", 3);
        for i in 0..5 {
            b.push(Some(format!("{{\"n\":{i}}}").as_bytes()));
        }
        assert_eq!(texts(&b, 10), [r#"{"n":4}"#, r#"{"n":3}"#, r#"{"n":2}"#]);
        assert_eq!(texts(&b, 2), [r#"{"n":4}"#, r#"{"n":3}"#]);
    }

    #[test]
    fn non_json_values_become_strings_and_tombstones_null() {
        let b = Buffers::default().open("x", 3);
        b.push(Some(b"not \"json\""));
        b.push(None);
        assert_eq!(texts(&b, 2), ["null", r#""not \"json\"""#]);
    }

    #[test]
    fn reopening_keeps_contents_and_applies_the_new_capacity() {
        let buffers = Buffers::default();
        let b = buffers.open("x", 3);
        for i in 0..3 {
            b.push(Some(i.to_string().as_bytes()));
        }
        let again = buffers.open("x", 2);
        assert_eq!(texts(&again, 10), ["2", "1"]);
        assert!(buffers.get("y").is_none());
    }
}
