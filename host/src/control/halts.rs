//! The ways on for a route halted before a record: start it again (the
//! record is read again, with the current chain: after a fix), or skip
//! exactly that record, which an operator names by its place. A skip
//! writes the record to the route's dead-letter topic (when it has one),
//! commits the group's offset past it, so that every replica of the route
//! moves on, logs who skipped what and counts it.

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::ControlPlane;
use crate::plugin::bindings::Header;
use crate::route::partition::{dead_letter_delivered, dead_letter_record, dlq_headers};
use crate::route::status::{RecordPlace, RouteState};

/// Why a skip was refused. Nothing was written or committed.
#[derive(Debug, thiserror::Error)]
pub enum SkipError {
    #[error("no route named `{0}`")]
    NoRoute(String),
    /// The route is not halted before a record, or before another one, or
    /// the group's offset cannot be moved (a replica still consumes).
    #[error("{0}")]
    Conflict(String),
    /// Kafka could not be read, or did not take the dead-letter copy.
    #[error("{0}")]
    Kafka(String),
}

/// What a skip did.
#[derive(Debug, Serialize)]
pub struct Skipped {
    pub route: String,
    pub skipped: RecordPlace,
    /// Who skipped it: the credential the request presented.
    pub by: String,
    /// Where its copy went, if the route has a dead-letter topic.
    pub dead_letter: Option<serde_json::Value>,
    /// The group's committed offset of the partition now.
    pub committed: i64,
}

impl ControlPlane {
    /// Skip the record route `name` halted before, which `place` must name
    /// exactly, on behalf of `by`; the route then starts again.
    pub async fn skip_record(
        &self,
        name: &str,
        place: RecordPlace,
        by: &str,
    ) -> Result<Skipped, SkipError> {
        let _one_change_at_a_time = self.inner.changes.lock().await;
        let rt = self
            .route(name)
            .ok_or_else(|| SkipError::NoRoute(name.to_owned()))?;
        let halted_on = match rt.entry.state() {
            RouteState::Halted {
                halted_on: Some(on),
                ..
            } => on,
            RouteState::Halted { reason, .. } => {
                return Err(SkipError::Conflict(format!(
                    "route `{name}` is halted, but not before a record ({reason}); there is \
                     nothing to skip: resume it (POST /admin/routes/{name}/resume)"
                )))
            }
            state => {
                let state = serde_json::to_value(&state)
                    .ok()
                    .and_then(|v| v["state"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                return Err(SkipError::Conflict(format!(
                    "route `{name}` is not halted (it is {state}); there is no record to skip"
                )));
            }
        };
        if halted_on != place {
            return Err(SkipError::Conflict(format!(
                "route `{name}` halted on {halted_on}, not on {place}: a skip names exactly the \
                 record the halt reported (GET /admin/routes/{name}, `halted_on`)"
            )));
        }
        let Some(halted) = rt.entry.halted_record() else {
            return Err(SkipError::Conflict(format!(
                "route `{name}` is no longer halted on {place}"
            )));
        };

        // The group may have moved past it already (another replica).
        let reader = crate::route::create_offset_reader(&rt.route, &self.inner.deps.kafka, "skip")
            .map_err(|e| SkipError::Kafka(format!("cannot reach the consumer group: {e}")))?;
        let reader = std::sync::Arc::new(reader);
        let (topic, partition, offset) = (place.topic.clone(), place.partition, place.offset);
        let group = rt.route.group.clone();
        let committed = {
            let reader = reader.clone();
            let topic = topic.clone();
            tokio::task::spawn_blocking(move || {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&topic, partition);
                reader
                    .committed_offsets(tpl, std::time::Duration::from_secs(10))
                    .map(
                        |c| match c.find_partition(&topic, partition).map(|p| p.offset()) {
                            Some(Offset::Offset(o)) => Some(o),
                            _ => None,
                        },
                    )
            })
            .await
            .expect("reading offsets panicked")
            .map_err(|e| {
                SkipError::Kafka(format!(
                    "cannot read the committed offsets of group `{group}`: {e}"
                ))
            })?
        };
        if committed.is_some_and(|c| c > offset) {
            return Err(SkipError::Conflict(format!(
                "group `{group}` has already moved past {place} (committed offset {}); the \
                 route starts again by itself",
                committed.unwrap_or_default()
            )));
        }

        // The copy first: a commit that came first and a copy that then
        // failed would lose the record.
        let dead_letter = match &rt.route.dead_letter {
            Some(dlq) => {
                let mut record = dead_letter_record(
                    &rt.route.name,
                    &dlq.topic,
                    &halted.event,
                    &halted.failure,
                    halted.attempts,
                );
                record.headers.push(Header {
                    key: dlq_headers::SKIPPED_BY.to_owned(),
                    value: by.as_bytes().to_vec(),
                });
                dead_letter_delivered(&self.inner.deps.producer, name, record)
                    .await
                    .map_err(|f| {
                        SkipError::Kafka(format!(
                            "the record was not skipped: its dead-letter copy was not written: {}",
                            f.message
                        ))
                    })?;
                Some(serde_json::json!({ "topic": dlq.topic }))
            }
            None => None,
        };

        let next = offset + 1;
        {
            let reader = reader.clone();
            let topic = topic.clone();
            tokio::task::spawn_blocking(move || {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&topic, partition, Offset::Offset(next))?;
                reader.commit(&tpl, CommitMode::Sync)
            })
            .await
            .expect("committing panicked")
            .map_err(|e| {
                SkipError::Conflict(format!(
                    "the offset of group `{group}` was not moved past {place} (a replica may \
                     still be consuming the partition; every replica must be halted on it): {e}"
                ))
            })?;
        }

        let dlq_topic = rt.route.dead_letter.as_ref().map(|d| d.topic.as_str());
        tracing::warn!(
            route = %name, by = %by, topic = %topic, partition, offset,
            dead_letter = %dlq_topic.unwrap_or("none"), committed = next,
            "record skipped by an operator"
        );
        rt.entry.counters.skipped.inc();
        rt.entry.set(RouteState::Starting);
        rt.request_restart();
        Ok(Skipped {
            route: name.to_owned(),
            skipped: place,
            by: by.to_owned(),
            dead_letter,
            committed: next,
        })
    }
}
