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
//! - **Suppression** (the default after an erasure): a record keyed
//!   `suppressed:<subject index>` names a *dead key id* for the subject,
//!   one that never had a stored key. The subject's data that arrives later
//!   is encrypted under that id with a key nobody keeps, so every reader
//!   finds it erased; any key of the subject written after the marker (a
//!   race with another instance) is treated as erased too:
//!
//!   ```json
//!   {"v": 1, "dead_key": "<key id>", "since_ms": 1764590400000}
//!   ```
//! - **Master keys**: a record keyed `ring:<fingerprint>` holds the store's
//!   index key sealed under the master key of that fingerprint (see
//!   [`super::crypto`]); key records name the master key that wrapped them
//!   (`"mk"`). A start under a master key that opens neither is refused,
//!   naming both fingerprints: data read under the wrong key would look
//!   erased. To rotate, an instance is given the new key as `master_key`
//!   and the old one in `other_master_keys`: at start it rewraps every key
//!   under the new one (records marked `"rewrap": true`). A rewrap never
//!   brings back a key erased before it: the fold ignores a rewrap of a
//!   key id it has seen tombstoned, and the next start writes the
//!   tombstone again so that compaction keeps it last.
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

use super::crypto::{DataKey, KeyId, KeyRing, MasterKey, SubjectIndex};
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
    /// Too many new subjects from clients over HTTP at once: the same call
    /// succeeds a moment later.
    #[error(
        "too many new data subjects from clients ({0} per second at most, \
         `subjects.new_subjects_per_second`); send it again in a moment"
    )]
    TooManyNewSubjects(u32),
}

/// Default of `subjects.new_subjects_per_second`.
pub const DEFAULT_NEW_SUBJECTS_PER_SECOND: u32 = 100;

/// A key record as stored.
#[derive(Debug, Serialize, Deserialize)]
struct KeyRecord {
    v: u32,
    subject: String,
    wrapped: String,
    created_ms: i64,
    /// Fingerprint of the master key that wrapped it (absent in records
    /// written before fingerprints were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mk: Option<String>,
    /// The same key, wrapped again under another master key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rewrap: bool,
}

/// The key of a ring record starts with this, then the master key's
/// fingerprint.
const RING_PREFIX: &str = "ring:";

/// A ring record: the store's index key sealed under one master key.
#[derive(Debug, Serialize, Deserialize)]
struct RingRecord {
    v: u32,
    index_key: String,
    created_ms: i64,
}

/// The key of a suppression record starts with this; key ids never do
/// (they are base64url without `:`).
const SUPPRESSED_PREFIX: &str = "suppressed:";

/// A suppression record as stored.
#[derive(Debug, Serialize, Deserialize)]
struct SuppressionRecord {
    v: u32,
    dead_key: String,
    since_ms: i64,
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
    /// Subjects erased whose later data is made unreadable: their dead key
    /// id.
    suppressed: HashMap<SubjectIndex, KeyId>,
    /// The index key sealed under each master key, by fingerprint.
    rings: HashMap<String, Vec<u8>>,
    /// Fingerprint of the master key each live key says it was wrapped
    /// with.
    wrapped_with: HashMap<KeyId, String>,
    /// Rewraps of keys tombstoned before them, ignored: their tombstone is
    /// written again at the next start.
    stale_rewraps: Vec<KeyId>,
}

impl KeyTable {
    fn fold(table: &mut KeyTable, key: String, value: Option<String>) {
        if let Some(index) = key.strip_prefix(SUPPRESSED_PREFIX) {
            return table.fold_suppression(&key, index, value);
        }
        if let Some(fingerprint) = key.strip_prefix(RING_PREFIX) {
            return table.fold_ring(&key, fingerprint, value);
        }
        let Some(id) = KeyId::decode(&key) else {
            tracing::warn!(key = %key, "ignoring a record of the key topic with a key that is not a key id");
            return;
        };
        match value {
            None => {
                table.wrapped_with.remove(&id);
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
                        r.mk,
                        r.rewrap,
                    ))
                });
                let Some((index, wrapped, mk, rewrap)) = parsed else {
                    tracing::warn!(key = %key, "ignoring a record of the key topic that is not a key record");
                    return;
                };
                if rewrap && table.erased.contains(&id) {
                    // Erased before the rewrap reached the log: it stays
                    // erased. (After compaction a rewrap may be the first
                    // record of its key id a reader sees: that is the key.)
                    table.stale_rewraps.push(id);
                    return;
                }
                if table.suppressed.contains_key(&index) {
                    // Made after the subject's erasure (by an instance that
                    // had not read it yet): as erased as the rest.
                    if table.erased.insert(id) {
                        table.newly_erased.push(id);
                    }
                    return;
                }
                if table.by_id.insert(id, (index, wrapped)).is_none() {
                    table.by_subject.entry(index).or_default().push(id);
                }
                match mk {
                    Some(mk) => table.wrapped_with.insert(id, mk),
                    None => table.wrapped_with.remove(&id),
                };
                table.erased.remove(&id);
            }
        }
    }

    fn fold_suppression(&mut self, key: &str, index: &str, value: Option<String>) {
        let Some(index) = SubjectIndex::decode(index) else {
            tracing::warn!(key = %key, "ignoring a suppression record without a subject index");
            return;
        };
        let Some(text) = value else {
            // Lifted: the subject's later data gets keys again.
            self.suppressed.remove(&index);
            return;
        };
        let Some(dead) = serde_json::from_str::<SuppressionRecord>(&text)
            .ok()
            .and_then(|r| KeyId::decode(&r.dead_key))
        else {
            tracing::warn!(key = %key, "ignoring a record of the key topic that is not a suppression record");
            return;
        };
        // Whatever keys the subject still has are erased with it.
        for id in self.by_subject.remove(&index).unwrap_or_default() {
            self.by_id.remove(&id);
            if self.erased.insert(id) {
                self.newly_erased.push(id);
            }
        }
        self.erased.insert(dead);
        self.suppressed.insert(index, dead);
    }

    fn fold_ring(&mut self, key: &str, fingerprint: &str, value: Option<String>) {
        let Some(text) = value else {
            self.rings.remove(fingerprint);
            return;
        };
        let Some(sealed) = serde_json::from_str::<RingRecord>(&text)
            .ok()
            .and_then(|r| URL_SAFE_NO_PAD.decode(r.index_key).ok())
        else {
            tracing::warn!(key = %key, "ignoring a record of the key topic that is not a ring record");
            return;
        };
        self.rings.insert(fingerprint.to_owned(), sealed);
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
    Memory(Box<std::sync::Mutex<KeyTable>>),
}

/// Subjects' data keys. Blocking methods: they are called from plugin
/// imports, which are not async; each blocks for at most a few seconds.
pub struct KeyStore {
    /// The ring of the master key this instance wraps new keys with.
    ring: KeyRing,
    /// Rings of the master keys being rotated away from: keys written by
    /// instances that still wrap with them open too.
    older: Vec<KeyRing>,
    backing: Backing,
    /// How fast clients may bring new subjects, and that number.
    new_subjects: (governor::DefaultDirectRateLimiter, u32),
}

fn new_subject_limiter(per_second: u32) -> (governor::DefaultDirectRateLimiter, u32) {
    let rate = std::num::NonZeroU32::new(per_second).unwrap_or(std::num::NonZeroU32::MIN);
    (
        governor::RateLimiter::direct(governor::Quota::per_second(rate)),
        rate.get(),
    )
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
        masters: &MasterKeys,
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
        let opening = table.read(|t| Opening::plan(t, masters, topic))?;
        let store = KeyStore {
            ring: opening.ring,
            older: opening.older,
            backing: Backing::Kafka {
                table,
                topic: topic.to_owned(),
                producer,
            },
            new_subjects: new_subject_limiter(DEFAULT_NEW_SUBJECTS_PER_SECOND),
        };
        // Writes block on the broker's answer: off the async workers.
        let (store, rewrapped) = tokio::task::spawn_blocking(move || {
            store
                .finish_opening(opening.ring_records, opening.rewrap)
                .map(|n| (store, n))
        })
        .await??;
        if rewrapped > 0 {
            tracing::warn!(
                topic,
                master_key = %masters.current.fingerprint(),
                "rewrapped {rewrapped} subject keys under the master key; once every instance \
                 runs with it, remove the old key from `subjects.other_master_keys`"
            );
        }
        Ok(store)
    }

    /// Write what opening needs written: ring records of master keys the
    /// store does not know yet, keys rewrapped under the current master
    /// key, and tombstones again for rewraps that came after an erasure.
    /// The number of keys rewrapped.
    fn finish_opening(
        &self,
        ring_records: Vec<(String, Vec<u8>)>,
        rewrap: Vec<(KeyId, SubjectIndex, Vec<u8>)>,
    ) -> Result<usize, StoreError> {
        for (fingerprint, sealed) in ring_records {
            let record = RingRecord {
                v: 1,
                index_key: URL_SAFE_NO_PAD.encode(sealed),
                created_ms: now_ms(),
            };
            let value = serde_json::to_string(&record).expect("a ring record serialises");
            self.write_record(&format!("{RING_PREFIX}{fingerprint}"), Some(value))?;
        }
        let rewrapped = rewrap.len();
        for (id, index, wrapped) in rewrap {
            self.write_key(&id, Some((&index, &wrapped)), true)?;
        }
        let stale = self.read(|t| t.stale_rewraps.clone());
        for id in stale {
            self.write(&id, None)?;
        }
        Ok(rewrapped)
    }

    /// This store with clients allowed `per_second` new subjects (see
    /// [`KeyStore::key_for_client`]).
    pub fn with_new_subjects_per_second(mut self, per_second: u32) -> KeyStore {
        self.new_subjects = new_subject_limiter(per_second);
        self
    }

    /// A store in this process's memory only.
    pub fn in_memory(ring: KeyRing) -> KeyStore {
        KeyStore {
            ring,
            older: Vec::new(),
            backing: Backing::Memory(Default::default()),
            new_subjects: new_subject_limiter(DEFAULT_NEW_SUBJECTS_PER_SECOND),
        }
    }

    fn read<R>(&self, f: impl FnOnce(&KeyTable) -> R) -> R {
        match &self.backing {
            Backing::Kafka { table, .. } => table.read(f),
            Backing::Memory(table) => f(&table.lock().expect("key table lock")),
        }
    }

    /// The subject's current key, made if it has none. For a suppressed
    /// subject, its dead key id with a key nobody keeps: what is encrypted
    /// with it can never be read.
    pub fn key_for(&self, subject: &str) -> Result<(KeyId, DataKey), StoreError> {
        self.key_for_limited(subject, false)
    }

    /// [`KeyStore::key_for`] for a record a client sent over HTTP: a new
    /// subject counts against the rate of new subjects clients may bring.
    pub fn key_for_client(&self, subject: &str) -> Result<(KeyId, DataKey), StoreError> {
        self.key_for_limited(subject, true)
    }

    fn key_for_limited(
        &self,
        subject: &str,
        limited: bool,
    ) -> Result<(KeyId, DataKey), StoreError> {
        let index = self.ring.subject_index(subject);
        if let Some(dead) = self.read(|t| t.suppressed.get(&index).copied()) {
            return Ok((dead, DataKey::random()));
        }
        if let Some(found) = self.current(&index)? {
            return Ok(found);
        }
        let (limiter, per_second) = &self.new_subjects;
        if limited && limiter.check().is_err() {
            return Err(StoreError::TooManyNewSubjects(*per_second));
        }
        let id = KeyId::random();
        let wrapped = self.ring.wrap(&id, &index, &DataKey::random());
        self.write(&id, Some((&index, &wrapped)))?;
        // Whichever key is first in the log is the subject's, here and on
        // every other instance.
        self.current(&index)?
            .ok_or_else(|| StoreError::Unavailable("a key just written is not in the table".into()))
    }

    fn current(&self, index: &SubjectIndex) -> Result<Option<(KeyId, DataKey)>, StoreError> {
        let Some((id, wrapped)) = self.read(|t| t.current(index).map(|(id, w)| (id, w.to_vec())))
        else {
            return Ok(None);
        };
        self.unwrap(&id, index, &wrapped).map(|key| Some((id, key)))
    }

    /// Open a wrapped key with the current master key or an older one. A
    /// key that opens under none is an error, never a key taken as erased:
    /// what it encrypted would be dropped as if its subject were gone.
    fn unwrap(
        &self,
        id: &KeyId,
        index: &SubjectIndex,
        wrapped: &[u8],
    ) -> Result<DataKey, StoreError> {
        std::iter::once(&self.ring)
            .chain(&self.older)
            .find_map(|ring| ring.unwrap(id, index, wrapped).ok())
            .ok_or_else(|| {
                let written_with = self
                    .read(|t| t.wrapped_with.get(id).cloned())
                    .unwrap_or_else(|| "unknown".into());
                tracing::error!(
                    key_id = %id.encode(),
                    written_with = %written_with,
                    master_key = %self.ring.fingerprint(),
                    "a subject key does not open under this instance's master keys"
                );
                StoreError::Unavailable(format!(
                    "the subject key {} was wrapped with master key {written_with}, which this \
                     instance does not have (its master key is {}): give it in \
                     `subjects.other_master_keys`",
                    id.encode(),
                    self.ring.fingerprint()
                ))
            })
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
        live.map(|(index, wrapped)| self.unwrap(id, &index, &wrapped))
            .transpose()
    }

    /// Whether the key `id` is known to be erased (on any instance whose
    /// erasure this one has read). A key never seen is not.
    pub fn is_erased(&self, id: &KeyId) -> bool {
        self.read(|t| matches!(t.lookup(id), Lookup::Erased))
    }

    /// Whether `subject`'s later data is made unreadable.
    pub fn is_suppressed(&self, subject: &str) -> bool {
        let index = self.ring.subject_index(subject);
        self.read(|t| t.suppressed.contains_key(&index))
    }

    /// Destroy every key of `subject`: returns what was destroyed, with the
    /// pseudonyms the keys gave (for tombstones keyed by them). A subject
    /// without keys gives an empty list. With `suppress`, the subject's
    /// later data is made unreadable too (see the module docs).
    pub fn erase(&self, subject: &str, suppress: bool) -> Result<Vec<ErasedKey>, StoreError> {
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
        let erased: Vec<ErasedKey> = keys
            .into_iter()
            .map(|(id, wrapped)| ErasedKey {
                id,
                pseudonym: self
                    .unwrap(&id, &index, &wrapped)
                    .map(|key| key.pseudonym())
                    .unwrap_or_default(),
            })
            .collect();
        // The marker first: from it on, every instance treats the
        // subject's keys, and any made in a race, as erased.
        if suppress && !self.read(|t| t.suppressed.contains_key(&index)) {
            let record = SuppressionRecord {
                v: 1,
                dead_key: KeyId::random().encode(),
                since_ms: now_ms(),
            };
            let value = serde_json::to_string(&record).expect("a suppression record serialises");
            self.write_record(
                &format!("{SUPPRESSED_PREFIX}{}", index.encode()),
                Some(value),
            )?;
        }
        // Tombstones, so that compaction removes the wrapped keys.
        for key in &erased {
            self.write(&key.id, None)?;
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
        self.write_key(id, key, false)
    }

    fn write_key(
        &self,
        id: &KeyId,
        key: Option<(&SubjectIndex, &[u8])>,
        rewrap: bool,
    ) -> Result<(), StoreError> {
        let value = key.map(|(index, wrapped)| {
            serde_json::to_string(&KeyRecord {
                v: 1,
                subject: index.encode(),
                wrapped: URL_SAFE_NO_PAD.encode(wrapped),
                created_ms: now_ms(),
                mk: Some(self.ring.fingerprint().to_owned()),
                rewrap,
            })
            .expect("a key record serialises")
        });
        self.write_record(&id.encode(), value)
    }

    /// Write a record of the key topic and wait until this instance's table
    /// has it.
    fn write_record(&self, key_text: &str, value: Option<String>) -> Result<(), StoreError> {
        let key_text = key_text.to_owned();
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

/// The master keys an instance is given: the one it wraps new keys with,
/// and during a rotation the ones it rotates away from.
pub struct MasterKeys {
    pub current: MasterKey,
    pub others: Vec<MasterKey>,
}

/// Why a key store does not open under the master keys given. Both
/// sides are named by fingerprint, never by key.
#[derive(Debug, thiserror::Error)]
#[error(
    "the master key {given} does not open the subject key store `{topic}`: {why}. Start with \
     the master key the store was written with as `subjects.master_key`; to rotate to a new \
     one, give the new key as `subjects.master_key` and the old one in \
     `subjects.other_master_keys` (docs/production.md, \"Rotating the master key\"). \
     Nothing was read or written"
)]
pub struct WrongMasterKey {
    given: String,
    topic: String,
    why: String,
}

/// How a store opens under the master keys given: the rings to use, and
/// what to write first.
struct Opening {
    ring: KeyRing,
    older: Vec<KeyRing>,
    /// Ring records missing for master keys given: fingerprint, sealed
    /// index key.
    ring_records: Vec<(String, Vec<u8>)>,
    /// Keys that open only under an older master key, wrapped again under
    /// the current one.
    rewrap: Vec<(KeyId, SubjectIndex, Vec<u8>)>,
}

impl Opening {
    fn plan(
        table: &KeyTable,
        masters: &MasterKeys,
        topic: &str,
    ) -> Result<Opening, WrongMasterKey> {
        let all: Vec<&MasterKey> = std::iter::once(&masters.current)
            .chain(&masters.others)
            .collect();
        let given = all
            .iter()
            .map(|m| m.fingerprint())
            .collect::<Vec<_>>()
            .join(", ");
        let wrong = |why: String| WrongMasterKey {
            given: given.clone(),
            topic: topic.to_owned(),
            why,
        };
        let mut store_prints: Vec<&str> = table.rings.keys().map(String::as_str).collect();
        store_prints.sort_unstable();
        // The store's index key: from a ring record one of the keys opens,
        // or (a store from before ring records) derived from the master key
        // its keys open under, or (a new store) from the current key.
        let index = if !table.rings.is_empty() {
            let sealed = all
                .iter()
                .find_map(|m| Some((*m, table.rings.get(&m.fingerprint())?)));
            let Some((master, sealed)) = sealed else {
                return Err(wrong(format!(
                    "it was written with master key {}",
                    store_prints.join(", ")
                )));
            };
            KeyRing::unwrap_index_key(master, sealed).map_err(|_| {
                wrong(format!(
                    "its index key sealed under master key {} does not open (tampered with?)",
                    master.fingerprint()
                ))
            })?
        } else {
            match table.by_id.iter().next() {
                None => KeyRing::index_key_of(&masters.current),
                Some((id, (index, wrapped))) => all
                    .iter()
                    .map(|m| KeyRing::new(m))
                    .find(|ring| ring.unwrap(id, index, wrapped).is_ok())
                    .map(|ring| ring.index_key())
                    .ok_or_else(|| {
                        wrong(
                            "its keys were written with another master key (before \
                             fingerprints were kept)"
                                .into(),
                        )
                    })?,
            }
        };
        let ring = KeyRing::with_index(&masters.current, index.clone());
        let older: Vec<KeyRing> = masters
            .others
            .iter()
            .map(|m| KeyRing::with_index(m, index.clone()))
            .collect();
        // Every live key must open: under the current key, or an older one
        // (then it is wrapped again under the current one).
        let mut rewrap = Vec::new();
        let mut unopened: Vec<&str> = Vec::new();
        for (id, (subject, wrapped)) in &table.by_id {
            if ring.unwrap(id, subject, wrapped).is_ok() {
                continue;
            }
            match older
                .iter()
                .find_map(|r| r.unwrap(id, subject, wrapped).ok())
            {
                Some(key) => rewrap.push((*id, *subject, ring.wrap(id, subject, &key))),
                None => unopened.push(table.wrapped_with.get(id).map_or("unknown", String::as_str)),
            }
        }
        if !unopened.is_empty() {
            let count = unopened.len();
            unopened.sort_unstable();
            unopened.dedup();
            return Err(wrong(format!(
                "{count} of its {} keys were wrapped with master key {}",
                table.by_id.len(),
                unopened.join(", ")
            )));
        }
        let ring_records = std::iter::once(&ring)
            .chain(&older)
            .filter(|r| !table.rings.contains_key(r.fingerprint()))
            .map(|r| (r.fingerprint().to_owned(), r.wrap_index_key()))
            .collect();
        Ok(Opening {
            ring,
            older,
            ring_records,
            rewrap,
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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

        let erased = store.erase("u-1", false).unwrap();
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
        assert_eq!(store.erase("u-1", false).unwrap().len(), 1);
        assert!(store.erase("u-1", false).unwrap().is_empty());
        assert!(store.erase("nobody", false).unwrap().is_empty());
        assert!(store
            .key_by_id(&store.key_for("u-2").unwrap().0)
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_suppressed_subject_gets_a_dead_key_and_keys_made_in_a_race_die_too() {
        let ring = KeyRing::new(&MasterKey::random());
        let index = ring.subject_index("u-1");
        let store = KeyStore::in_memory(ring);
        let (first, _) = store.key_for("u-1").unwrap();
        assert!(!store.is_suppressed("u-1"));
        let erased = store.erase("u-1", true).unwrap();
        assert_eq!(erased.len(), 1);
        assert!(store.is_suppressed("u-1") && !store.is_suppressed("u-2"));
        assert!(store.is_erased(&first));
        // Later data: always the same dead id, never a key that opens.
        let (dead, key) = store.key_for("u-1").unwrap();
        assert_ne!(dead, first);
        assert_eq!(store.key_for("u-1").unwrap().0, dead);
        assert!(store.is_erased(&dead));
        assert!(store.key_by_id(&dead).unwrap().is_none());
        let token = key.encrypt(&dead, "t", "/email", b"\"x\"");
        let parsed = super::super::crypto::Token::parse(&token).unwrap();
        assert!(store.key_by_id(&parsed.key).unwrap().is_none());
        assert!(store.key_ids("u-1").unwrap().is_empty());
        // A key another instance wrote after the marker is as erased.
        let late = KeyId::random();
        let record = serde_json::json!({
            "v": 1, "subject": index.encode(),
            "wrapped": URL_SAFE_NO_PAD.encode(store.ring.wrap(&late, &index, &DataKey::random())),
            "created_ms": 0,
        });
        store
            .write_record(&late.encode(), Some(record.to_string()))
            .unwrap();
        assert!(store.is_erased(&late));
        assert_eq!(store.key_for("u-1").unwrap().0, dead);
        // Erasing again: nothing more to destroy, the same dead id.
        assert!(store.erase("u-1", true).unwrap().is_empty());
        assert_eq!(store.key_for("u-1").unwrap().0, dead);
        // Others are untouched.
        let (other, _) = store.key_for("u-2").unwrap();
        assert!(store.key_by_id(&other).unwrap().is_some());
    }

    /// A store in memory over `table`, opened as [`KeyStore::open`] opens
    /// one on Kafka.
    fn reopen(table: KeyTable, masters: &MasterKeys) -> Result<KeyStore, String> {
        let opening = Opening::plan(&table, masters, "keys").map_err(|e| e.to_string())?;
        let store = KeyStore {
            ring: opening.ring,
            older: opening.older,
            backing: Backing::Memory(Box::new(std::sync::Mutex::new(table))),
            new_subjects: new_subject_limiter(DEFAULT_NEW_SUBJECTS_PER_SECOND),
        };
        store
            .finish_opening(opening.ring_records, opening.rewrap)
            .map_err(|e| e.to_string())?;
        Ok(store)
    }

    fn into_table(store: KeyStore) -> KeyTable {
        match store.backing {
            Backing::Memory(table) => table.into_inner().unwrap(),
            Backing::Kafka { .. } => unreachable!("tests keep keys in memory"),
        }
    }

    fn only(key: &MasterKey) -> MasterKeys {
        MasterKeys {
            current: key.clone(),
            others: vec![],
        }
    }

    #[test]
    fn a_store_opens_only_under_its_master_key_and_rotates_to_a_new_one() {
        let (old, new) = (MasterKey::random(), MasterKey::random());
        let store = reopen(KeyTable::default(), &only(&old)).unwrap();
        let (id, key) = store.key_for("u-1").unwrap();
        let table = into_table(store);
        assert!(table.rings.contains_key(&old.fingerprint()));
        assert_eq!(table.wrapped_with[&id], old.fingerprint());

        // Another key alone: refused, both named.
        let refused = Opening::plan(&table, &only(&new), "keys")
            .err()
            .unwrap()
            .to_string();
        assert!(refused.contains(&new.fingerprint()), "{refused}");
        assert!(refused.contains(&old.fingerprint()), "{refused}");
        assert!(refused.contains("other_master_keys"), "{refused}");

        // Rotation: the old key's keys are wrapped again under the new one,
        // and the subject keeps its index and key.
        let rotating = MasterKeys {
            current: new.clone(),
            others: vec![old.clone()],
        };
        let store = reopen(table, &rotating).unwrap();
        let (again, same) = store.key_for("u-1").unwrap();
        assert_eq!((again, same.pseudonym()), (id, key.pseudonym()));
        let table = into_table(store);
        assert_eq!(table.wrapped_with[&id], new.fingerprint());
        assert!(table.rings.contains_key(&new.fingerprint()));

        // The new key alone opens everything; the old one alone no longer.
        let store = reopen(table, &only(&new)).unwrap();
        assert_eq!(
            store.key_by_id(&id).unwrap().map(|k| k.pseudonym()),
            Some(key.pseudonym())
        );
        let table = into_table(store);
        let refused = Opening::plan(&table, &only(&old), "keys")
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("1 of its 1 keys were wrapped with master key")
                && refused.contains(&new.fingerprint()),
            "{refused}"
        );
    }

    #[test]
    fn a_store_from_before_ring_records_opens_under_the_key_it_was_made_with() {
        let (old, new) = (MasterKey::random(), MasterKey::random());
        // Keys as they were written before ring records and fingerprints.
        let ring = KeyRing::new(&old);
        let mut table = KeyTable::default();
        let (id, index) = (KeyId::random(), ring.subject_index("u-1"));
        let record = serde_json::json!({
            "v": 1, "subject": index.encode(),
            "wrapped": URL_SAFE_NO_PAD.encode(ring.wrap(&id, &index, &DataKey::random())),
            "created_ms": 0,
        });
        KeyTable::fold(&mut table, id.encode(), Some(record.to_string()));
        let refused = Opening::plan(&table, &only(&new), "keys")
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("before fingerprints were kept"),
            "{refused}"
        );
        let store = reopen(table, &only(&old)).unwrap();
        assert_eq!(store.key_for("u-1").unwrap().0, id);
        assert!(into_table(store).rings.contains_key(&old.fingerprint()));
    }

    #[test]
    fn a_key_that_opens_under_no_master_key_is_an_error_never_an_erasure() {
        let (mine, theirs) = (MasterKey::random(), MasterKey::random());
        let store = reopen(KeyTable::default(), &only(&mine)).unwrap();
        // Another instance, with a key this one lacks, writes a key after
        // this one started.
        let index = store.ring.subject_index("u-9");
        let foreign = KeyRing::with_index(&theirs, store.ring.index_key());
        let id = KeyId::random();
        let record = serde_json::json!({
            "v": 1, "subject": index.encode(),
            "wrapped": URL_SAFE_NO_PAD.encode(foreign.wrap(&id, &index, &DataKey::random())),
            "created_ms": 0, "mk": theirs.fingerprint(),
        });
        store
            .write_record(&id.encode(), Some(record.to_string()))
            .unwrap();
        let error = store.key_by_id(&id).unwrap_err().to_string();
        assert!(error.contains(&theirs.fingerprint()), "{error}");
        let error = store.key_for("u-9").unwrap_err().to_string();
        assert!(error.contains("subjects.other_master_keys"), "{error}");
    }

    #[test]
    fn a_rewrap_never_brings_back_a_key_erased_before_it() {
        let master = MasterKey::random();
        let store = reopen(KeyTable::default(), &only(&master)).unwrap();
        let (id, _) = store.key_for("u-1").unwrap();
        let index = store.ring.subject_index("u-1");
        let rewrapped = store.ring.wrap(&id, &index, &DataKey::random());
        // Erased on another instance between this one's read and its
        // rewrap.
        store.erase("u-1", false).unwrap();
        store
            .write_key(&id, Some((&index, &rewrapped)), true)
            .unwrap();
        assert!(store.key_by_id(&id).unwrap().is_none());
        assert!(store.is_erased(&id));
        // The next start writes its tombstone again, last in the log.
        let store = reopen(into_table(store), &only(&master)).unwrap();
        assert!(store.key_by_id(&id).unwrap().is_none());
        assert!(store.key_ids("u-1").unwrap().is_empty());
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
