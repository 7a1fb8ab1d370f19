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
    items: VecDeque<Item>,
}

/// A kept record: its key (what erasure finds a subject's records by), and
/// its value as JSON.
struct Item {
    key: Option<Box<[u8]>>,
    value: Box<RawValue>,
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

    /// Keep `value`, keyed by `key`. A value that is not JSON is kept as a
    /// JSON string of its text, so that readers always get JSON. A
    /// tombstone (no value) removes the records of its key instead, as
    /// compaction would: an erased subject's tombstone empties the buffer
    /// of it.
    pub fn push(&self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(value) = value else {
            if let Some(key) = key {
                self.ring()
                    .items
                    .retain(|item| item.key.as_deref() != Some(key));
            }
            return;
        };
        let item = Item {
            key: key.map(Box::from),
            value: as_json(value),
        };
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
            .map(|item| item.value.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.ring().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remove every record for which `doomed` (given its key and JSON
    /// text) is true; how many were removed.
    fn purge(&self, doomed: &impl Fn(Option<&[u8]>, &str) -> bool) -> usize {
        let mut ring = self.ring();
        let before = ring.items.len();
        ring.items
            .retain(|item| !doomed(item.key.as_deref(), item.value.get()));
        before - ring.items.len()
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

fn as_json(bytes: &[u8]) -> Box<RawValue> {
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

    /// Remove the records `doomed` picks (given each one's key and JSON
    /// text) from every buffer: how many from each (subject erasure).
    pub fn purge(&self, doomed: impl Fn(Option<&[u8]>, &str) -> bool) -> BTreeMap<String, usize> {
        let by_name = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        by_name
            .iter()
            .map(|(name, buffer)| (name.clone(), buffer.purge(&doomed)))
            .collect()
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
            b.push(None, Some(format!("{{\"n\":{i}}}").as_bytes()));
        }
        assert_eq!(texts(&b, 10), [r#"{"n":4}"#, r#"{"n":3}"#, r#"{"n":2}"#]);
        assert_eq!(texts(&b, 2), [r#"{"n":4}"#, r#"{"n":3}"#]);
    }

    #[test]
    fn non_json_values_become_strings_and_tombstones_remove_their_key() {
        let b = Buffers::default().open("x", 5);
        b.push(None, Some(b"not \"json\""));
        b.push(Some(b"k"), Some(b"1"));
        b.push(Some(b"j"), Some(b"2"));
        b.push(Some(b"k"), Some(b"3"));
        b.push(Some(b"k"), None);
        b.push(None, None);
        assert_eq!(texts(&b, 5), ["2", r#""not \"json\"""#]);
    }

    #[test]
    fn purging_removes_only_the_picked_records_and_counts_them() {
        let buffers = Buffers::default();
        let a = buffers.open("a", 10);
        let b = buffers.open("b", 10);
        for user in ["u1", "u2", "u1"] {
            a.push(None, Some(format!("{{\"userId\":\"{user}\"}}").as_bytes()));
        }
        b.push(None, Some(br#"{"userId":"u2"}"#));
        b.push(Some(b"k-9"), Some(br#"{"userId":"u9"}"#));
        let purged = buffers.purge(|key, text| text.contains("\"u1\"") || key == Some(b"k-9"));
        assert_eq!(purged, BTreeMap::from([("a".into(), 2), ("b".into(), 1)]));
        assert_eq!(texts(&a, 10), [r#"{"userId":"u2"}"#]);
        assert_eq!(texts(&b, 10), [r#"{"userId":"u2"}"#]);
    }

    #[test]
    fn reopening_keeps_contents_and_applies_the_new_capacity() {
        let buffers = Buffers::default();
        let b = buffers.open("x", 3);
        for i in 0..3 {
            b.push(None, Some(i.to_string().as_bytes()));
        }
        let again = buffers.open("x", 2);
        assert_eq!(texts(&again, 10), ["2", "1"]);
        assert!(buffers.get("y").is_none());
    }
}
