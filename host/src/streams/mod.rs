//! The streams API's store: named append-only streams, each owned by the
//! first producer that wrote to it, read by consumers that acknowledge
//! their position per event name. Everything lives in Kafka, so several
//! switchyard instances behind a load balancer give the same answers and a
//! restart loses nothing:
//!
//! ```text
//!  stream `orders`      ─► topic `<prefix>orders` (1 partition: the
//!                          offset orders the stream; an event's id
//!                          encodes its offset, see `ids`)
//!  owners               ─► topic `switchyard.streams.owners`: one claim
//!                          per (stream, producer) race; the FIRST claim
//!                          of a stream in the log wins (never compacted)
//!  consumer positions   ─► compacted topic `switchyard.streams.positions`:
//!                          key (stream, consumer, event name), value the
//!                          offset of the last acknowledged event
//! ```
//!
//! A producer's first append to an unowned stream writes a claim and waits
//! until this instance has read the owners topic past it: whichever claim
//! is first in the log owns the stream, on every instance alike.
//!
//! Every stream costs a topic, so their number is capped
//! (`streams_api.max_streams`): a new stream is claimed only while the
//! owners table, read up to the end of its log, holds fewer streams than
//! that. One instance creates its new streams one at a time, so it never
//! passes the cap; instances creating at the same moment may each pass
//! the check once, so the cap may be exceeded by at most the number of
//! instances less one. Streams already claimed are never refused.

pub mod ids;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header as KafkaHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::StreamsApiConfig;
use crate::kafka::table::{self, LogTable};
use crate::kafka::topics::{TopicAdmin, TopicSpec};
use crate::kafka::{KafkaSettings, LoggingContext};
use crate::route::Producer;

/// Header of a stream record: the event's name (so reads filter without
/// parsing the event).
pub const EVENT_NAME_HEADER: &str = "switchyard-event-name";
/// Header of a stream record: the producer that appended it.
pub const PRODUCER_HEADER: &str = "switchyard-producer";

/// How long an append or acknowledgement waits for the broker.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read waits for records the broker said it has.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads at once, each with a Kafka reader kept for reuse.
const READERS: usize = 8;

/// Why a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream belongs to another producer.
    #[error("stream owned by another producer")]
    Locked,
    /// No producer ever wrote to the stream.
    #[error("unknown stream")]
    UnknownStream,
    /// The stream has no such event (or it was deleted by retention).
    #[error("unknown event")]
    UnknownEvent,
    /// The stream's name cannot name its topic (too long, or colliding
    /// with another stream's topic).
    #[error("{0}")]
    InvalidName(String),
    /// The new stream's topic would collide with another stream's (Kafka
    /// treats `.` and `_` in topic names as the same).
    #[error(
        "stream {stream:?} would collide with stream {other:?}: Kafka treats '.' and '_' in \
         topic names as the same"
    )]
    Collides { stream: String, other: String },
    /// A new stream, and the store already holds the most it may.
    #[error("this server keeps at most {max} streams")]
    TooManyStreams { max: usize },
    /// Kafka did not answer in time, or refused.
    #[error("{0}")]
    Kafka(String),
}

impl From<anyhow::Error> for StreamError {
    fn from(e: anyhow::Error) -> Self {
        StreamError::Kafka(format!("{e:#}"))
    }
}

/// One event read from a stream.
pub struct StoredEvent {
    pub offset: i64,
    /// The event as appended: a JSON object.
    pub value: Vec<u8>,
}

pub struct StreamStore {
    kafka: KafkaSettings,
    producer: Producer,
    admin: TopicAdmin,
    topic_prefix: String,
    replication: Option<i32>,
    owners_topic: String,
    positions_topic: String,
    owners: LogTable,
    positions: LogTable,
    /// Stream topics this process has created or seen.
    topics: Mutex<HashSet<String>>,
    readers: Mutex<Vec<BaseConsumer<LoggingContext>>>,
    /// One permit per reader: bounds the readers alive at once.
    reading: tokio::sync::Semaphore,
    /// Most streams; see the module's docs.
    max_streams: usize,
    /// Held while this instance creates a stream, so that its own
    /// creations cannot pass `max_streams` together.
    creating: tokio::sync::Mutex<()>,
}

impl StreamStore {
    /// Create the owners and positions topics if needed and start reading
    /// them.
    pub async fn open(
        config: &StreamsApiConfig,
        kafka: &KafkaSettings,
        producer: Producer,
        admin: TopicAdmin,
    ) -> anyhow::Result<Arc<StreamStore>> {
        let owners_topic = config
            .owners_topic
            .clone()
            .unwrap_or_else(|| "switchyard.streams.owners".into());
        let positions_topic = config
            .positions_topic
            .clone()
            .unwrap_or_else(|| "switchyard.streams.positions".into());
        let replication = config.replication_factor;
        // Claims are few and the first of each stream must never go:
        // neither deleted by age nor compacted away by a later claim.
        admin
            .ensure(&TopicSpec {
                name: &owners_topic,
                partitions: Some(1),
                replication,
                config: &[("cleanup.policy", "delete"), ("retention.ms", "-1")],
            })
            .await?;
        admin
            .ensure(&TopicSpec {
                name: &positions_topic,
                partitions: Some(1),
                replication,
                config: &[("cleanup.policy", "compact")],
            })
            .await?;
        let owners = LogTable::open(kafka, &owners_topic, table::first_wins)?;
        let positions = LogTable::open(kafka, &positions_topic, table::last_wins)?;
        Ok(Arc::new(StreamStore {
            kafka: kafka.clone(),
            producer,
            admin,
            topic_prefix: config
                .topic_prefix
                .clone()
                .unwrap_or_else(|| "streams.".into()),
            replication,
            owners_topic,
            positions_topic,
            owners,
            positions,
            topics: Mutex::new(HashSet::new()),
            readers: Mutex::new(Vec::new()),
            reading: tokio::sync::Semaphore::new(READERS),
            max_streams: config.max_streams(),
            creating: tokio::sync::Mutex::new(()),
        }))
    }

    /// The topic of `stream`.
    pub fn topic_of(&self, stream: &str) -> String {
        format!("{}{stream}", self.topic_prefix)
    }

    /// Why `stream` cannot name a topic, if it cannot (its characters are
    /// checked by the HTTP layer).
    pub fn check_name(&self, stream: &str) -> Result<(), String> {
        check_topic_name(&self.topic_prefix, stream)
    }

    /// Append `event` (a JSON object named `event_name`) to `stream` for
    /// `producer`; returns its offset.
    pub async fn append(
        &self,
        stream: &str,
        producer: &str,
        event_name: &str,
        event: &[u8],
    ) -> Result<i64, StreamError> {
        // A known owner needs no claim (an owner never changes).
        let topic = self.topic_of(stream);
        match self.owners.get(stream) {
            Some(owner) if owner != producer => return Err(StreamError::Locked),
            Some(_) => self.ensure_topic(&topic).await?,
            None => {
                let _creating = self.creating.lock().await;
                // Every claim acknowledged anywhere, this one's rivals too.
                self.owners.sync().await?;
                let known = self.owners.get(stream).is_some();
                if !known && self.owners.read(|owners| owners.len()) >= self.max_streams {
                    return Err(StreamError::TooManyStreams {
                        max: self.max_streams,
                    });
                }
                if let Some(other) = self.colliding_stream(stream) {
                    return Err(StreamError::Collides {
                        stream: stream.to_owned(),
                        other,
                    });
                }
                // The topic before the claim: a name Kafka refuses (one
                // colliding with another stream's, `.` and `_` being the
                // same to Kafka) must not leave a claimed stream that can
                // never be written.
                self.ensure_topic(&topic).await?;
                if self.owner(stream, producer).await? != producer {
                    return Err(StreamError::Locked);
                }
            }
        }
        let headers = OwnedHeaders::new()
            .insert(KafkaHeader {
                key: EVENT_NAME_HEADER,
                value: Some(event_name),
            })
            .insert(KafkaHeader {
                key: PRODUCER_HEADER,
                value: Some(producer),
            });
        let record = FutureRecord::<str, [u8]>::to(&topic)
            .partition(0)
            .key(stream)
            .payload(event)
            .headers(headers);
        self.write(record).await
    }

    /// The events named `event_name` in `stream` after `consumer`'s
    /// acknowledged position for that name, oldest first, at most `limit`.
    pub async fn read(
        &self,
        stream: &str,
        consumer: &str,
        event_name: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StreamError> {
        self.require_stream(stream).await?;
        self.positions.sync().await?;
        let start = self
            .positions
            .get(&position_key(stream, consumer, event_name))
            .and_then(|offset| offset.parse::<i64>().ok())
            .map_or(0, |acked| acked + 1);
        let name = event_name.to_owned();
        self.scan(stream, start, limit, move |n| n == name.as_bytes())
            .await
    }

    /// Move `consumer`'s position for the name of the event at `offset`
    /// of `stream` to that event.
    pub async fn acknowledge(
        &self,
        stream: &str,
        consumer: &str,
        offset: i64,
    ) -> Result<(), StreamError> {
        self.require_stream(stream).await?;
        let event_name = self.event_name_at(stream, offset).await?;
        let key = position_key(stream, consumer, &event_name);
        let value = offset.to_string();
        let record = FutureRecord::<str, str>::to(&self.positions_topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        self.write(record).await?;
        Ok(())
    }

    /// Another stream whose topic Kafka would take for `stream`'s: the
    /// same name but for `.` against `_`.
    fn colliding_stream(&self, stream: &str) -> Option<String> {
        let same_to_kafka = |name: &str| name.replace('.', "_");
        let wanted = same_to_kafka(stream);
        self.owners.read(|owners| {
            owners
                .keys()
                .find(|other| other.as_str() != stream && same_to_kafka(other) == wanted)
                .cloned()
        })
    }

    /// The owner of `stream`, claiming it for `producer` if it has none.
    async fn owner(&self, stream: &str, producer: &str) -> Result<String, StreamError> {
        // An owner never changes once the log has one: a cached answer is
        // a final answer.
        if let Some(owner) = self.owners.get(stream) {
            return Ok(owner);
        }
        let claim = FutureRecord::<str, str>::to(&self.owners_topic)
            .partition(0)
            .key(stream)
            .payload(producer);
        let offset = self.write(claim).await?;
        self.owners.wait_past(offset).await?;
        self.owners
            .get(stream)
            .ok_or_else(|| StreamError::Kafka(format!("the claim of `{stream}` was not read back")))
    }

    async fn require_stream(&self, stream: &str) -> Result<(), StreamError> {
        if self.owners.get(stream).is_some() {
            return Ok(());
        }
        self.owners.sync().await?;
        match self.owners.get(stream) {
            Some(_) => Ok(()),
            None => Err(StreamError::UnknownStream),
        }
    }

    async fn event_name_at(&self, stream: &str, offset: i64) -> Result<String, StreamError> {
        let found = self.scan(stream, offset, 1, |_| true).await?;
        match found.into_iter().next() {
            Some(event) if event.offset == offset => {
                // `scan` keeps the name out of the value; read it again
                // from the value, which always has it.
                event_name_of(&event.value).ok_or(StreamError::UnknownEvent)
            }
            _ => Err(StreamError::UnknownEvent),
        }
    }

    /// Produce `record` and wait for the broker; its offset.
    async fn write<K, P>(&self, record: FutureRecord<'_, K, P>) -> Result<i64, StreamError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        // `send`'s own timeout bounds only the wait for room in the local
        // queue; this bounds the wait for the broker too.
        match tokio::time::timeout(WRITE_TIMEOUT, self.producer.send(record, WRITE_TIMEOUT)).await {
            Ok(Ok(delivery)) => Ok(delivery.offset),
            Ok(Err((e, _))) => Err(StreamError::Kafka(format!(
                "the broker did not acknowledge the write: {e}"
            ))),
            Err(_) => Err(StreamError::Kafka(format!(
                "the broker did not acknowledge the write within {} s",
                WRITE_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn ensure_topic(&self, topic: &str) -> Result<(), StreamError> {
        if self.topics.lock().expect("topics lock").contains(topic) {
            return Ok(());
        }
        // One partition: the offset is the order of the stream.
        let created = self
            .admin
            .ensure(&TopicSpec {
                name: topic,
                partitions: Some(1),
                replication: self.replication,
                config: &[],
            })
            .await;
        if let Err(e) = created {
            let e = format!("{e:#}");
            return Err(
                if e.contains("InvalidTopic") || e.contains("Invalid topic") {
                    StreamError::InvalidName(format!("Kafka refuses the stream's topic: {e}"))
                } else {
                    StreamError::Kafka(e)
                },
            );
        }
        self.topics
            .lock()
            .expect("topics lock")
            .insert(topic.to_owned());
        Ok(())
    }

    /// Records of `stream` from offset `start` whose event name passes
    /// `wanted`, up to `limit`, stopping at the end the broker reports now.
    async fn scan(
        &self,
        stream: &str,
        start: i64,
        limit: usize,
        wanted: impl Fn(&[u8]) -> bool + Send + 'static,
    ) -> Result<Vec<StoredEvent>, StreamError> {
        let topic = self.topic_of(stream);
        // Each reader is a Kafka client with threads and a connection:
        // reads beyond this many wait for one.
        let _turn = self
            .reading
            .acquire()
            .await
            .map_err(|_| StreamError::Kafka("the store is closing".into()))?;
        let idle = self.readers.lock().expect("readers lock").pop();
        let kafka = self.kafka.clone();
        let (reader, found) = tokio::task::spawn_blocking(move || {
            let reader = match idle {
                Some(reader) => reader,
                None => new_reader(&kafka)?,
            };
            let found = scan_blocking(&reader, &topic, start, limit, wanted);
            Ok::<_, StreamError>((reader, found))
        })
        .await
        .map_err(|e| StreamError::Kafka(format!("reading failed: {e}")))??;
        let mut idle = self.readers.lock().expect("readers lock");
        if idle.len() < READERS {
            idle.push(reader);
        }
        found
    }
}

/// A consumer for reads of stream topics (assigned per read, no group).
fn new_reader(kafka: &KafkaSettings) -> Result<BaseConsumer<LoggingContext>, StreamError> {
    let mut config = kafka.client_config();
    config
        // Required by librdkafka even for `assign`; readers never join the
        // group nor commit.
        .set("group.id", "switchyard-stream-readers")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10");
    for (key, value) in &kafka.consumer_options {
        config.set(key, value);
    }
    config
        .create_with_context(LoggingContext {
            role: "stream reader".into(),
        })
        .map_err(|e| StreamError::Kafka(format!("cannot create a Kafka reader: {e}")))
}

fn scan_blocking(
    reader: &BaseConsumer<LoggingContext>,
    topic: &str,
    start: i64,
    limit: usize,
    wanted: impl Fn(&[u8]) -> bool,
) -> Result<Vec<StoredEvent>, StreamError> {
    let kafka = |e: KafkaError| StreamError::Kafka(format!("reading `{topic}` failed: {e}"));
    let (low, end) = match reader.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
        Ok(marks) => marks,
        // Claimed but never written: an empty stream.
        Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownPartition))
        | Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition)) => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(kafka(e)),
    };
    let from = start.max(low);
    let mut found = Vec::new();
    if from >= end || limit == 0 {
        return Ok(found);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(from))
        .map_err(kafka)?;
    reader.assign(&tpl).map_err(kafka)?;
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    let mut next = from;
    while next < end && found.len() < limit {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            let _ = reader.unassign();
            return Err(StreamError::Kafka(format!(
                "reading `{topic}` timed out at offset {next} of {end}"
            )));
        }
        match reader.poll(left.min(Duration::from_millis(500))) {
            None => {}
            Some(Err(e)) => {
                let _ = reader.unassign();
                return Err(kafka(e));
            }
            Some(Ok(message)) => {
                // Left over from an earlier assignment of this reader.
                if message.topic() != topic || message.offset() < next {
                    continue;
                }
                next = message.offset() + 1;
                let name = header(&message, EVENT_NAME_HEADER).unwrap_or_default();
                if wanted(name) {
                    found.push(StoredEvent {
                        offset: message.offset(),
                        value: message.payload().unwrap_or_default().to_vec(),
                    });
                }
            }
        }
    }
    let _ = reader.unassign();
    Ok(found)
}

fn header<'m>(message: &'m impl Message, key: &str) -> Option<&'m [u8]> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
}

/// The `event.name` of a stored event.
pub fn event_name_of(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        event: Name,
    }
    #[derive(serde::Deserialize)]
    struct Name {
        name: String,
    }
    serde_json::from_slice::<Named>(value)
        .ok()
        .map(|n| n.event.name)
}

/// Why the topic of `stream` (`prefix` + `stream`) is not a valid Kafka
/// topic name, if it is not.
fn check_topic_name(prefix: &str, stream: &str) -> Result<(), String> {
    let topic = format!("{prefix}{stream}");
    if topic == "." || topic == ".." {
        return Err(format!("stream name {stream:?} is not allowed"));
    }
    // Kafka's limit on topic names.
    const MAX_TOPIC: usize = 249;
    if topic.len() > MAX_TOPIC {
        return Err(format!(
            "stream name is too long: its topic {topic:?} would have {} characters, more than \
             Kafka's {MAX_TOPIC}",
            topic.len()
        ));
    }
    Ok(())
}

fn position_key(stream: &str, consumer: &str, event_name: &str) -> String {
    serde_json::to_string(&[stream, consumer, event_name]).expect("strings are JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_must_make_valid_topic_names() {
        assert_eq!(check_topic_name("streams.", "orders"), Ok(()));
        assert_eq!(
            check_topic_name("", ".."),
            Err("stream name \"..\" is not allowed".into())
        );
        let long = "x".repeat(200);
        assert_eq!(check_topic_name(&"p".repeat(49), &long), Ok(()));
        let err = check_topic_name(&"p".repeat(50), &long).unwrap_err();
        assert!(
            err.ends_with("would have 250 characters, more than Kafka's 249"),
            "{err}"
        );
    }

    #[test]
    fn position_keys_cannot_collide() {
        assert_ne!(position_key("a/b", "c", "d"), position_key("a", "b/c", "d"));
        assert_eq!(position_key("s", "c", "n"), r#"["s","c","n"]"#);
    }

    #[test]
    fn event_names_are_read_from_the_event() {
        let event = br#"{"event":{"name":"OrderPlaced","version":1},"payload":{}}"#;
        assert_eq!(event_name_of(event).as_deref(), Some("OrderPlaced"));
        assert_eq!(event_name_of(b"{}"), None);
    }
}
