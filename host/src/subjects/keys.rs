//! The subject key store: every subject's data keys, wrapped by the master
//! key, in a compacted single-partition Kafka topic that every switchyard
//! instance reads back into memory (see [`crate::kafka::table`]).
//!
//! A key record is keyed by its key id, its value names the subject only
//! by its index (an HMAC of the id), never by the id:
//!
//! ```json
//! {"v": 1, "subject": "<index, base64url>", "wrapped": "<nonce + sealed key, base64url>", "created_ms": 1764590400000}
//! ```
//!
//! - **New subject**: a key is made, written, and read back; if two
//!   instances made one at once, the first in the log is the subject's
//!   key for both (the other stays unused and is erased with it).
//! - **Erasure**: a tombstone per key id. Every instance drops the key as
//!   soon as its reader passes the tombstone; compaction then removes the
//!   wrapped key from the brokers' disks.
//! - **Decrypting** a token whose key this instance has not seen waits for
//!   the reader to catch up with the topic first (the key may have been made
//!   on another instance a moment ago); a key still unknown then is treated
//!   as erased.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};

use super::crypto::{DataKey, KeyId, KeyRing, SubjectIndex};
use crate::kafka::table::LogTable;
use crate::kafka::KafkaSettings;
use crate::route::Producer;

/// How long a write to the key topic may take before the caller is told
/// to try again.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the key store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key topic could not be written or read in time.
    #[error("the subject key store is unavailable: {0}")]
    Unavailable(String),
}

/// A key record as stored.
#[derive(Debug, Serialize, Deserialize)]
struct KeyRecord {
    v: u32,
    subject: String,
    wrapped: String,
    created_ms: i64,
}

/// What the key topic says, folded in log order.
#[derive(Default)]
pub struct KeyTable {
    /// Live keys: id -> (subject index, wrapped key).
    by_id: HashMap<KeyId, (SubjectIndex, Vec<u8>)>,
    /// A subject's live key ids, first written first.
    by_subject: HashMap<SubjectIndex, Vec<KeyId>>,
    /// Key ids tombstoned since this instance started reading.
    erased: HashSet<KeyId>,
    /// Tombstoned since [`KeyStore::take_erased`] last looked: erasures
    /// made on any instance, for this one to purge its own memory of.
    newly_erased: Vec<KeyId>,
}

impl KeyTable {
    fn fold(table: &mut KeyTable, key: String, value: Option<String>) {
        let Some(id) = KeyId::decode(&key) else {
            tracing::warn!(key = %key, "ignoring a record of the key topic with a key that is not a key id");
            return;
        };
        match value {
            None => {
                if let Some((index, _)) = table.by_id.remove(&id) {
                    if let Some(ids) = table.by_subject.get_mut(&index) {
                        ids.retain(|i| *i != id);
                        if ids.is_empty() {
                            table.by_subject.remove(&index);
                        }
                    }
                }
                if table.erased.insert(id) {
                    table.newly_erased.push(id);
                }
            }
            Some(text) => {
                let parsed = serde_json::from_str::<KeyRecord>(&text).ok().and_then(|r| {
                    Some((
                        SubjectIndex::decode(&r.subject)?,
                        URL_SAFE_NO_PAD.decode(&r.wrapped).ok()?,
                    ))
                });
                let Some((index, wrapped)) = parsed else {
                    tracing::warn!(key = %key, "ignoring a record of the key topic that is not a key record");
                    return;
                };
                if table.by_id.insert(id, (index, wrapped)).is_none() {
                    table.by_subject.entry(index).or_default().push(id);
                }
                table.erased.remove(&id);
            }
        }
    }

    fn lookup(&self, id: &KeyId) -> Lookup {
        match self.by_id.get(id) {
            Some((index, wrapped)) => Lookup::Live(*index, wrapped.clone()),
            None if self.erased.contains(id) => Lookup::Erased,
            None => Lookup::Unknown,
        }
    }

    /// The subject's key: the first live one written.
    fn current(&self, index: &SubjectIndex) -> Option<(KeyId, &[u8])> {
        let id = *self.by_subject.get(index)?.first()?;
        Some((id, &self.by_id.get(&id)?.1))
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// What the table knows of a key id.
enum Lookup {
    Live(SubjectIndex, Vec<u8>),
    Erased,
    /// Never seen by this instance (not yet, or compacted away).
    Unknown,
}

/// Where the keys are kept.
enum Backing {
    /// The key topic, shared by every instance.
    Kafka {
        table: LogTable<KeyTable>,
        topic: String,
        producer: Producer,
    },
    /// This process's memory only (`switchyard plugin test`): keys vanish
    /// with the process.
    Memory(std::sync::Mutex<KeyTable>),
}

/// Subjects' data keys. Blocking methods: they are called from plugin
/// imports, which are not async; each blocks for at most a few seconds.
pub struct KeyStore {
    ring: KeyRing,
    backing: Backing,
}

/// One of a subject's keys, as erasure reports it.
#[derive(Debug, Clone)]
pub struct ErasedKey {
    pub id: KeyId,
    /// The subject's pseudonym under this key, computed before the key went.
    pub pseudonym: String,
}

impl KeyStore {
    /// The store on the key topic `topic` (which must exist), read to its
    /// end before this returns.
    pub async fn open(
        ring: KeyRing,
        kafka: &KafkaSettings,
        topic: &str,
        producer: Producer,
    ) -> anyhow::Result<KeyStore> {
        let table = LogTable::open(kafka, topic, KeyTable::fold)?;
        // A topic just created may not be known to every broker yet.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Err(e) = table.sync().await {
            if std::time::Instant::now() > deadline {
                return Err(e);
            }
            tracing::debug!(topic, error = %e, "the key topic is not readable yet; retrying");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(KeyStore {
            ring,
            backing: Backing::Kafka {
                table,
                topic: topic.to_owned(),
                producer,
            },
        })
    }

    /// A store in this process's memory only.
    pub fn in_memory(ring: KeyRing) -> KeyStore {
        KeyStore {
            ring,
            backing: Backing::Memory(Default::default()),
        }
    }

    fn read<R>(&self, f: impl FnOnce(&KeyTable) -> R) -> R {
        match &self.backing {
            Backing::Kafka { table, .. } => table.read(f),
            Backing::Memory(table) => f(&table.lock().expect("key table lock")),
        }
    }

    /// The subject's current key, made if it has none.
    pub fn key_for(&self, subject: &str) -> Result<(KeyId, DataKey), StoreError> {
        let index = self.ring.subject_index(subject);
        if let Some(found) = self.current(&index) {
            return Ok(found);
        }
        let id = KeyId::random();
        let wrapped = self.ring.wrap(&id, &index, &DataKey::random());
        self.write(&id, Some((&index, &wrapped)))?;
        // Whichever key is first in the log is the subject's, here and on
        // every other instance.
        self.current(&index)
            .ok_or_else(|| StoreError::Unavailable("a key just written is not in the table".into()))
    }

    fn current(&self, index: &SubjectIndex) -> Option<(KeyId, DataKey)> {
        let (id, wrapped) = self.read(|t| t.current(index).map(|(id, w)| (id, w.to_vec())))?;
        match self.ring.unwrap(&id, index, &wrapped) {
            Ok(key) => Some((id, key)),
            Err(_) => {
                tracing::error!(key_id = %id.encode(), "a key of the key store does not open under this master key; it is ignored");
                None
            }
        }
    }

    /// The key `id`, if it exists; `None` once erased (or never known).
    pub fn key_by_id(&self, id: &KeyId) -> Result<Option<DataKey>, StoreError> {
        let live = match self.read(|t| t.lookup(id)) {
            Lookup::Live(index, wrapped) => Some((index, wrapped)),
            // Erased while this instance was reading: no need to ask.
            Lookup::Erased => None,
            Lookup::Unknown => {
                // Perhaps made elsewhere a moment ago: read to the end first.
                if let Backing::Kafka { table, .. } = &self.backing {
                    table
                        .sync_blocking()
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                }
                match self.read(|t| t.lookup(id)) {
                    Lookup::Live(index, wrapped) => Some((index, wrapped)),
                    Lookup::Erased | Lookup::Unknown => None,
                }
            }
        };
        Ok(live.and_then(|(index, wrapped)| self.ring.unwrap(id, &index, &wrapped).ok()))
    }

    /// Destroy every key of `subject`: returns what was destroyed, with the
    /// pseudonyms the keys gave (for tombstones keyed by them). A subject
    /// without keys gives an empty list.
    pub fn erase(&self, subject: &str) -> Result<Vec<ErasedKey>, StoreError> {
        if let Backing::Kafka { table, .. } = &self.backing {
            table
                .sync_blocking()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        let index = self.ring.subject_index(subject);
        let keys: Vec<(KeyId, Vec<u8>)> = self.read(|t| {
            t.by_subject
                .get(&index)
                .into_iter()
                .flatten()
                .filter_map(|id| Some((*id, t.by_id.get(id)?.1.clone())))
                .collect()
        });
        let mut erased = Vec::with_capacity(keys.len());
        for (id, wrapped) in keys {
            let pseudonym = self
                .ring
                .unwrap(&id, &index, &wrapped)
                .map(|key| key.pseudonym())
                .unwrap_or_default();
            self.write(&id, None)?;
            erased.push(ErasedKey { id, pseudonym });
        }
        Ok(erased)
    }

    /// Ids of the keys `subject` has now, on any instance.
    pub fn key_ids(&self, subject: &str) -> Result<Vec<KeyId>, StoreError> {
        if let Backing::Kafka { table, .. } = &self.backing {
            table
                .sync_blocking()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        let index = self.ring.subject_index(subject);
        Ok(self.read(|t| t.by_subject.get(&index).cloned().unwrap_or_default()))
    }

    /// The key ids erased (on any instance) since the last call.
    pub fn take_erased(&self) -> Vec<KeyId> {
        let take = |t: &mut KeyTable| std::mem::take(&mut t.newly_erased);
        match &self.backing {
            Backing::Kafka { table, .. } => table.write(take),
            Backing::Memory(table) => take(&mut table.lock().expect("key table lock")),
        }
    }

    /// Number of live keys this instance knows.
    pub fn len(&self) -> usize {
        self.read(KeyTable::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write a key record (or a tombstone) and wait until this instance's
    /// table has it.
    fn write(&self, id: &KeyId, key: Option<(&SubjectIndex, &[u8])>) -> Result<(), StoreError> {
        let value = key.map(|(index, wrapped)| {
            serde_json::to_string(&KeyRecord {
                v: 1,
                subject: index.encode(),
                wrapped: URL_SAFE_NO_PAD.encode(wrapped),
                created_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
            })
            .expect("a key record serialises")
        });
        let key_text = id.encode();
        match &self.backing {
            Backing::Memory(table) => {
                KeyTable::fold(&mut table.lock().expect("key table lock"), key_text, value);
                Ok(())
            }
            Backing::Kafka {
                table,
                topic,
                producer,
            } => {
                let mut record = FutureRecord::<str, str>::to(topic)
                    .key(&key_text)
                    .partition(0);
                if let Some(value) = &value {
                    record = record.payload(value);
                }
                let delivery = producer.send_result(record).map_err(|(e, _)| {
                    StoreError::Unavailable(format!("writing to `{topic}`: {e}"))
                })?;
                // The delivery is completed by the producer's own thread, so
                // waiting on it needs no async runtime.
                let (_, offset) = wait_for(delivery, WRITE_TIMEOUT)
                    .map_err(|e| StoreError::Unavailable(format!("writing to `{topic}`: {e}")))?;
                table
                    .wait_past_blocking(offset)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))
            }
        }
    }
}

/// Block until `delivery` completes or `timeout` passes.
fn wait_for(
    delivery: rdkafka::producer::DeliveryFuture,
    timeout: Duration,
) -> Result<(i32, i64), String> {
    // A thread of its own, so that the wait can end at `timeout` (the
    // delivery itself ends at the producer's message timeout at the
    // latest). Writes are rare: a new subject, an erasure.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(futures::executor::block_on(delivery));
    });
    let outcome = rx.recv_timeout(timeout);
    match outcome {
        Ok(Ok(Ok(delivered))) => Ok((delivered.partition, delivered.offset)),
        Ok(Ok(Err((e, _)))) => Err(e.to_string()),
        Ok(Err(_)) => Err("the producer is shutting down".into()),
        Err(_) => Err(format!("not acknowledged within {} s", timeout.as_secs())),
    }
}

/// The key store shared by the host's plugin imports, the admin API and the
/// HTTP APIs.
pub type SharedKeyStore = Arc<KeyStore>;

#[cfg(test)]
mod tests {
    use super::super::crypto::MasterKey;
    use super::*;

    #[test]
    fn a_subject_keeps_its_key_until_erased_then_gets_a_new_one() {
        let store = KeyStore::in_memory(KeyRing::new(&MasterKey::random()));
        let (first, key) = store.key_for("u-1").unwrap();
        let (again, _) = store.key_for("u-1").unwrap();
        assert_eq!(first, again);
        assert_ne!(store.key_for("u-2").unwrap().0, first);
        let token = key.encrypt(&first, "t", "/email", b"\"ada@example.com\"");

        let erased = store.erase("u-1").unwrap();
        assert_eq!(erased.len(), 1);
        assert_eq!(erased[0].id, first);
        assert_eq!(erased[0].pseudonym, key.pseudonym());
        assert!(store.key_by_id(&first).unwrap().is_none());
        // Its old tokens cannot be opened any more; a new lifetime begins.
        let parsed = super::super::crypto::Token::parse(&token).unwrap();
        assert!(store.key_by_id(&parsed.key).unwrap().is_none());
        let (fresh, _) = store.key_for("u-1").unwrap();
        assert_ne!(fresh, first);
        // Erasing again, or a subject never seen, is not an error.
        assert_eq!(store.erase("u-1").unwrap().len(), 1);
        assert!(store.erase("u-1").unwrap().is_empty());
        assert!(store.erase("nobody").unwrap().is_empty());
        assert!(store
            .key_by_id(&store.key_for("u-2").unwrap().0)
            .unwrap()
            .is_some());
    }

    #[test]
    fn the_first_key_written_for_a_subject_wins() {
        let ring = KeyRing::new(&MasterKey::random());
        let index = ring.subject_index("u-1");
        let mut table = KeyTable::default();
        let (a, b) = (KeyId::random(), KeyId::random());
        for id in [a, b] {
            let record = serde_json::json!({
                "v": 1, "subject": index.encode(),
                "wrapped": URL_SAFE_NO_PAD.encode(ring.wrap(&id, &index, &DataKey::random())),
                "created_ms": 0,
            });
            KeyTable::fold(&mut table, id.encode(), Some(record.to_string()));
        }
        assert_eq!(table.current(&index).unwrap().0, a);
        KeyTable::fold(&mut table, a.encode(), None);
        assert_eq!(table.current(&index).unwrap().0, b);
        assert!(table.erased.contains(&a));
        // Records that are not key records change nothing.
        KeyTable::fold(&mut table, "not-a-key-id".into(), Some("{}".into()));
        KeyTable::fold(&mut table, KeyId::random().encode(), Some("garbage".into()));
        assert_eq!(table.len(), 1);
    }
}
