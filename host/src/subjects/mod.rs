//! Data subjects' personal data, encrypted per subject so that it can be
//! erased from Kafka on request (crypto-shredding); see `docs/gdpr.md`.
//!
//! ```text
//!  plugin (redact: encrypt, pseudonymize; decrypt) ──imports──► KeyStore ◄── key topic (compacted)
//!                                                                  ▲
//!  DELETE /admin/subjects/{id} ──► Subjects::erase ────────────────┘ destroy the keys (and
//!        suppress the subject's later data), then tombstones on the configured topics, purge
//!        of buffers, the subject's records overwritten at HTTP sinks that hold copies (a CRM),
//!        an audit record, a report
//! ```
//!
//! - [`crypto`]: the master key, data keys, tokens, pseudonyms.
//! - [`keys`]: where the keys live, shared by every instance.

pub mod crypto;
pub mod keys;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{AfterErasure, EraseKey, EraseTopic};
use crate::route::buffer::Buffers;
use crate::route::http_sink::{HttpSink, Overwritten};
use crate::route::Producer;
use crypto::{KeyId, Token};
use keys::{KeyStore, StoreError};

/// Default topic of the subject keys.
pub const DEFAULT_KEYS_TOPIC: &str = "switchyard.subjects.keys";
/// Default topic of the erasure audit records.
pub const DEFAULT_AUDIT_TOPIC: &str = "switchyard.subjects.audit";
/// Default place of a record's subject id, for purging buffers.
pub const DEFAULT_SUBJECT_FIELD: &str = "/userId";

/// Settings of the key topic. Compaction is what removes an erased key
/// from the brokers' disks: these bound how long that takes (see
/// `docs/gdpr.md`).
pub const KEYS_TOPIC_CONFIG: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    // Roll segments hourly so that a tombstone's segment becomes cleanable.
    ("segment.ms", "3600000"),
    // Compact any segment with a tombstone at most a day after it.
    ("max.compaction.lag.ms", "86400000"),
    ("min.cleanable.dirty.ratio", "0.01"),
    // Tombstones stay a day, for readers that were away.
    ("delete.retention.ms", "86400000"),
];
/// Check the settings of an existing key topic: `Err` if they would lose
/// keys (anything but compaction deletes every subject's key once it is
/// old enough: all their data unreadable), else the settings that differ
/// from [`KEYS_TOPIC_CONFIG`] and what that costs, to warn about.
pub fn check_keys_topic(
    topic: &str,
    settings: &std::collections::HashMap<String, String>,
) -> Result<Vec<String>, String> {
    let policy = settings.get("cleanup.policy").map_or("", String::as_str);
    let policies: Vec<&str> = policy.split(',').map(str::trim).collect();
    if policies != ["compact"] {
        return Err(format!(
            "the key topic `{topic}` has `cleanup.policy={policy}`: it must be `compact` alone, or \
             the brokers delete subjects' keys as they age and their data can never be read \
             again. Fix it with `kafka-configs.sh --alter --entity-type topics --entity-name \
             {topic} --add-config cleanup.policy=compact` (or start with another \
             `subjects.keys_topic`)"
        ));
    }
    Ok(KEYS_TOPIC_CONFIG
        .iter()
        .filter(|(key, _)| *key != "cleanup.policy")
        .filter_map(|(key, wanted)| {
            let have = settings.get(*key).map_or("(unset)", String::as_str);
            (have != *wanted).then(|| {
                format!(
                    "`{key}` is {have}, not {wanted}: erased keys may stay on the brokers' \
                     disks longer than docs/gdpr.md says"
                )
            })
        })
        .collect())
}

/// The bound the key topic's settings give: `segment.ms` plus
/// `max.compaction.lag.ms`.
pub const ERASURE_COMPLETE_WITHIN: Duration = Duration::from_secs(25 * 3600);

/// Subject encryption as configured: the key store and what erasure must
/// reach.
pub struct Subjects {
    pub keys: Arc<KeyStore>,
    pub audit_topic: String,
    pub keys_topic: String,
    pub subject_field: String,
    pub erase_topics: Vec<EraseTopic>,
    pub after_erasure: AfterErasure,
}

/// What an erasure did.
#[derive(Debug, Serialize)]
pub struct ErasureReport {
    pub erasure_id: String,
    pub erased_at: String,
    /// The subject's data keys destroyed (0 for a subject never seen or
    /// erased before).
    pub keys_destroyed: usize,
    /// The references its records were keyed by.
    pub key_refs: Vec<String>,
    pub tombstones: Vec<TombstoneReport>,
    /// Records removed from each in-memory buffer.
    pub buffers_purged: BTreeMap<String, usize>,
    /// The subject's records overwritten at the endpoints of HTTP sinks
    /// that keep copies (a CRM), per route and kind of record.
    pub downstream: Vec<Overwritten>,
    /// Whether the subject's later data is made unreadable (see
    /// `subjects.after_erasure`).
    pub suppressed: bool,
    pub audit: AuditReport,
    /// Keep this to prove the erasure later: the audit record holds only
    /// `digest`, the SHA-256 of `salt` followed by the subject id.
    pub receipt: Receipt,
    /// When the destroyed keys are gone from the brokers' disks too.
    pub complete_by: String,
}

#[derive(Debug, Serialize)]
pub struct TombstoneReport {
    pub topic: String,
    pub key: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Serialize)]
pub struct AuditReport {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Serialize)]
pub struct Receipt {
    pub salt: String,
    pub digest: String,
}

/// The audit record of one erasure: no personal data.
#[derive(Debug, Serialize)]
struct AuditRecord<'a> {
    event: &'static str,
    erasure_id: &'a str,
    erased_at: &'a str,
    keys_destroyed: usize,
    tombstones: usize,
    buffer_records_purged: usize,
    downstream_records_overwritten: usize,
    downstream_failures: usize,
    suppressed: bool,
    subject_digest: &'a str,
}

/// Why an erasure did not finish. Whatever it did before is kept (keys
/// destroyed stay destroyed); erasing again completes it.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing to `{topic}` failed: {message}")]
    Write { topic: String, message: String },
}

impl Subjects {
    /// Erase `subject`: destroy its keys (every copy of its encrypted data
    /// becomes unreadable) and, as configured, suppress its later data;
    /// write tombstones keyed by what its records were keyed by, purge it
    /// from in-memory buffers, overwrite its records at the endpoints of
    /// `sinks` that hold copies, and record the erasure. Safe to repeat; a
    /// subject never seen is not an error.
    pub async fn erase(
        self: &Arc<Self>,
        subject: &str,
        producer: &Producer,
        buffers: &Buffers,
        sinks: &[Arc<HttpSink>],
    ) -> Result<ErasureReport, EraseError> {
        let erasure_id = uuid::Uuid::new_v4().to_string();
        let now = format_time(chrono::Utc::now());
        let this = self.clone();
        let owned = subject.to_owned();
        let suppress = self.after_erasure == AfterErasure::Suppress;
        let erased = tokio::task::spawn_blocking(move || this.keys.erase(&owned, suppress))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;

        let ids: Vec<KeyId> = erased.iter().map(|k| k.id).collect();
        let field = self.subject_field.clone();
        let key_refs: Vec<String> = ids.iter().map(KeyId::key_ref).collect();
        let buffers_purged = buffers.purge(|key, value| {
            if key.is_some_and(|k| key_refs.iter().any(|r| r.as_bytes() == k)) {
                return true;
            }
            let Ok(value) = serde_json::from_str::<serde_json::Value>(value) else {
                return false;
            };
            match value.pointer(&field) {
                Some(serde_json::Value::String(s)) => {
                    s == subject || Token::parse(s).is_ok_and(|t| ids.contains(&t.key))
                }
                Some(serde_json::Value::Number(n)) => n.to_string() == subject,
                _ => false,
            }
        });

        let mut tombstones = Vec::new();
        for erase in &self.erase_topics {
            for key in &erased {
                let record_key = match erase.key {
                    EraseKey::KeyRef => key.id.key_ref(),
                    EraseKey::Pseudonym => key.pseudonym.clone(),
                };
                let (partition, offset) = write(producer, &erase.topic, &record_key, None).await?;
                tombstones.push(TombstoneReport {
                    topic: erase.topic.clone(),
                    key: record_key,
                    partition,
                    offset,
                });
            }
        }

        // After the keys: nothing decrypted from now on can bring the data
        // back (HTTP sinks also skip outputs of erased subjects).
        let mut downstream = Vec::new();
        for sink in sinks.iter().filter(|s| s.erases()) {
            downstream.extend(sink.erase(subject).await);
        }

        let salt: [u8; 16] = rand_bytes();
        let digest = hex::encode(
            Sha256::new()
                .chain_update(salt)
                .chain_update(subject)
                .finalize(),
        );
        let audit = AuditRecord {
            event: "subject-erased",
            erasure_id: &erasure_id,
            erased_at: &now,
            keys_destroyed: erased.len(),
            tombstones: tombstones.len(),
            buffer_records_purged: buffers_purged.values().sum(),
            downstream_records_overwritten: downstream.iter().map(|d| d.records).sum(),
            downstream_failures: downstream.iter().filter(|d| d.error.is_some()).count(),
            suppressed: suppress,
            subject_digest: &digest,
        };
        let audit_json = serde_json::to_string(&audit).expect("an audit record serialises");
        let (partition, offset) =
            write(producer, &self.audit_topic, &erasure_id, Some(&audit_json)).await?;
        tracing::info!(
            erasure_id = %erasure_id,
            keys_destroyed = erased.len(),
            tombstones = tombstones.len(),
            downstream_records_overwritten = audit.downstream_records_overwritten,
            "data subject erased"
        );
        if audit.downstream_failures > 0 {
            tracing::error!(
                erasure_id = %erasure_id,
                failures = audit.downstream_failures,
                "an erasure could not overwrite every copy at an HTTP sink's endpoint; erase again \
                 to complete it"
            );
        }
        Ok(ErasureReport {
            erasure_id: erasure_id.clone(),
            erased_at: now,
            keys_destroyed: erased.len(),
            key_refs: erased.iter().map(|k| k.id.key_ref()).collect(),
            tombstones,
            buffers_purged,
            downstream,
            suppressed: suppress,
            audit: AuditReport {
                topic: self.audit_topic.clone(),
                partition,
                offset,
            },
            receipt: Receipt {
                salt: hex::encode(salt),
                digest,
            },
            complete_by: format_time(
                chrono::Utc::now()
                    + chrono::Duration::from_std(ERASURE_COMPLETE_WITHIN).expect("a day fits"),
            ),
        })
    }
}

/// Purge this instance's buffers of records keyed by key references of
/// subjects erased anywhere (an erasure made on another instance reaches
/// this one through the key topic), until `stop`.
pub async fn purge_erased_from_buffers(
    keys: Arc<KeyStore>,
    buffers: Buffers,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let erased = keys.take_erased();
        if erased.is_empty() {
            continue;
        }
        let refs: Vec<String> = erased.iter().map(KeyId::key_ref).collect();
        let purged: usize = buffers
            .purge(|key, _| key.is_some_and(|k| refs.iter().any(|r| r.as_bytes() == k)))
            .values()
            .sum();
        if purged > 0 {
            tracing::info!(
                keys = erased.len(),
                records = purged,
                "purged erased subjects' records from buffers"
            );
        }
    }
}

async fn write(
    producer: &Producer,
    topic: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(i32, i64), EraseError> {
    let mut record = FutureRecord::<str, str>::to(topic).key(key);
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map(|delivered| (delivered.partition, delivered.offset))
        .map_err(|(e, _)| EraseError::Write {
            topic: topic.to_owned(),
            message: e.to_string(),
        })
}

/// `N` bytes from the operating system's random source.
pub(crate) fn rand_bytes<const N: usize>() -> [u8; N] {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut bytes = [0u8; N];
    chacha20poly1305::aead::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// RFC 3339 in UTC, to the second.
fn format_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `switchyard subjects fingerprint`: print the fingerprint of the master
/// key in the environment variable `env`, or in `file`.
pub fn fingerprint_command(env: &str, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
        None => std::env::var(env)
            .map_err(|_| anyhow::anyhow!("the environment variable `{env}` is not set"))?,
    };
    let key = crypto::MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", key.fingerprint());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_key_topic_that_deletes_keys_is_refused_and_looser_settings_named() {
        let shipped = settings(super::KEYS_TOPIC_CONFIG);
        assert_eq!(super::check_keys_topic("k", &shipped), Ok(vec![]));
        for policy in ["delete", "compact,delete", ""] {
            let mut s = shipped.clone();
            s.insert("cleanup.policy".into(), policy.into());
            let e = super::check_keys_topic("k", &s).unwrap_err();
            assert!(e.contains(&format!("`cleanup.policy={policy}`")), "{e}");
        }
        let mut s = shipped.clone();
        s.insert("max.compaction.lag.ms".into(), "9223372036854775807".into());
        let warnings = super::check_keys_topic("k", &s).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("`max.compaction.lag.ms` is 9223372036854775807"));
    }
}
