//! A table kept in a single-partition Kafka topic and read back into
//! memory by every instance: the way several switchyard processes share
//! small state (stream owners, consumer positions, subject keys) without a
//! database.
//!
//! Each instance tails the topic from its beginning into a map, folding
//! records in log order. The log is the same for everyone, so every
//! instance that has read up to an offset holds the same map. Reads that
//! must see every write acknowledged anywhere call [`LogTable::sync`]
//! first: it asks the broker for the topic's end and waits until the tail
//! has read that far. (The record before the end is always there to be
//! read: the last record is in the active segment, which compaction never
//! touches, and no transactions write markers to these topics.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::kafka::{KafkaSettings, LoggingContext};

/// How a record changes the state: `(state, key, value)`; `None` is a
/// tombstone.
pub type Fold<T> = fn(&mut T, String, Option<String>);

/// First record of a key wins; later ones are ignored.
pub fn first_wins(map: &mut HashMap<String, String>, key: String, value: Option<String>) {
    if let Some(value) = value {
        map.entry(key).or_insert(value);
    }
}

/// Last record of a key wins; a tombstone removes the key.
pub fn last_wins(map: &mut HashMap<String, String>, key: String, value: Option<String>) {
    match value {
        Some(value) => map.insert(key, value),
        None => map.remove(&key),
    };
}

/// How long [`LogTable::sync`] waits for the tail to catch up.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

pub struct LogTable<T = HashMap<String, String>> {
    topic: String,
    state: Arc<Mutex<T>>,
    /// The next offset the tail will read: everything before it is in
    /// `state`.
    next: watch::Receiver<i64>,
    /// The same, for waiters that are not async.
    read: Arc<(Mutex<i64>, Condvar)>,
    consumer: Arc<BaseConsumer<LoggingContext>>,
    stop: Arc<AtomicBool>,
}

impl<T: Default + Send + 'static> LogTable<T> {
    /// Start tailing `topic` (partition 0) from its beginning.
    pub fn open(kafka: &KafkaSettings, topic: &str, fold: Fold<T>) -> anyhow::Result<LogTable<T>> {
        let mut config = kafka.client_config();
        config
            // Required by librdkafka even for `assign`; this consumer never
            // joins the group nor commits.
            .set("group.id", "switchyard-tables")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // The tail should see a write as soon as it is acknowledged.
            .set("fetch.wait.max.ms", "20")
            .set("fetch.error.backoff.ms", "50");
        for (key, value) in &kafka.consumer_options {
            config.set(key, value);
        }
        let consumer: BaseConsumer<LoggingContext> =
            config.create_with_context(LoggingContext {
                role: format!("table {topic}"),
            })?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let consumer = Arc::new(consumer);
        let state = Arc::new(Mutex::new(T::default()));
        let (next_tx, next) = watch::channel(0);
        let read = Arc::new((Mutex::new(0), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tail = Tail {
            consumer: consumer.clone(),
            state: state.clone(),
            next: next_tx,
            read: read.clone(),
            fold,
            stop: stop.clone(),
            topic: topic.to_owned(),
        };
        std::thread::Builder::new()
            .name(format!("table-{topic}"))
            .spawn(move || tail.run())?;
        Ok(LogTable {
            topic: topic.to_owned(),
            state,
            next,
            read,
            consumer,
            stop,
        })
    }

    /// Look at the state as far as the tail has read.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.state.lock().expect("table lock"))
    }

    /// Change the state locally: for bookkeeping the fold leaves for its
    /// readers (what changed since they last looked), not for the table's
    /// contents, which only the log changes.
    pub fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.state.lock().expect("table lock"))
    }

    /// [`LogTable::sync`] for callers that are not async (plugin imports):
    /// blocks the thread.
    pub fn sync_blocking(&self) -> anyhow::Result<()> {
        let (_, end) = self
            .consumer
            .fetch_watermarks(&self.topic, 0, Duration::from_secs(5))?;
        self.wait_past_blocking(end - 1)
    }

    /// [`LogTable::wait_past`] for callers that are not async: blocks the
    /// thread.
    pub fn wait_past_blocking(&self, offset: i64) -> anyhow::Result<()> {
        let (next, changed) = &*self.read;
        let deadline = Instant::now() + SYNC_TIMEOUT;
        let mut seen = next.lock().expect("table position lock");
        while *seen <= offset {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                anyhow::bail!(
                    "the reader of `{}` did not reach offset {offset} within {} s",
                    self.topic,
                    SYNC_TIMEOUT.as_secs()
                );
            }
            seen = changed
                .wait_timeout(seen, left)
                .expect("table position lock")
                .0;
        }
        Ok(())
    }

    /// Wait until the tail has read every record the broker had
    /// acknowledged when this was called.
    pub async fn sync(&self) -> anyhow::Result<()> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let (_, end) = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&topic, 0, Duration::from_secs(5))
        })
        .await??;
        self.wait_past(end - 1).await
    }

    /// Wait until the tail has read offset `offset` (of a write this
    /// process just made).
    pub async fn wait_past(&self, offset: i64) -> anyhow::Result<()> {
        let mut next = self.next.clone();
        let caught_up = next.wait_for(|&next| next > offset);
        let result = tokio::time::timeout(SYNC_TIMEOUT, caught_up)
            .await
            .map(|seen| seen.map(drop));
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => anyhow::bail!("the reader of `{}` stopped", self.topic),
            Err(_) => anyhow::bail!(
                "the reader of `{}` did not reach offset {offset} within {} s",
                self.topic,
                SYNC_TIMEOUT.as_secs()
            ),
        }
    }
}

impl LogTable<HashMap<String, String>> {
    /// The value of `key` as far as the tail has read.
    pub fn get(&self, key: &str) -> Option<String> {
        self.read(|map| map.get(key).cloned())
    }
}

impl<T> Drop for LogTable<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Tail<T> {
    consumer: Arc<BaseConsumer<LoggingContext>>,
    state: Arc<Mutex<T>>,
    next: watch::Sender<i64>,
    read: Arc<(Mutex<i64>, Condvar)>,
    fold: Fold<T>,
    stop: Arc<AtomicBool>,
    topic: String,
}

impl<T> Tail<T> {
    fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(message)) => {
                    let text =
                        |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                    // A record without a key changes nothing, but counts
                    // as read.
                    if let Some(key) = text(message.key()) {
                        let mut state = self.state.lock().expect("table lock");
                        (self.fold)(&mut state, key, text(message.payload()));
                    }
                    self.next.send_replace(message.offset() + 1);
                    let (next, changed) = &*self.read;
                    *next.lock().expect("table position lock") = message.offset() + 1;
                    changed.notify_all();
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.topic, error = %e, "reading a table topic failed; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}
