//! Running a route: consume its source topics, run each partition's records
//! through the plugin chain, produce the outputs, and store offsets only
//! once they are safe.
//!
//! ```text
//!  consumer ──► partition worker (one per partition, in parallel)
//!                 batch ─► chain (blocking pool) ─► producer.send ─┐
//!                                                                  ▼
//!               acker (one per partition): awaits deliveries in offset
//!               order, then stores offset + 1 ─► auto-commit / final commit
//! ```
//!
//! At-least-once: an offset is stored only when every output of its record
//! and of every earlier record of its partition has been acknowledged by
//! the broker. The acker awaits deliveries strictly in offset order, so the
//! stored offset can never pass a record whose outputs are still in flight.

pub mod buffer;
pub mod chain;
pub mod health;
pub mod http_sink;
pub mod ingest;
pub mod partition;
pub mod shadow;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Route;
use crate::kafka::{KafkaSettings, LoggingContext};
use crate::plugin::bindings::{Event, Header};
use chain::Chain;
use status::{RecordPlace, RouteEntry, RouteState};

pub type Producer = FutureProducer<LoggingContext>;
type RouteConsumer = StreamConsumer<LoggingContext>;
/// A partition worker's queue and task.
type WorkerHandle = (mpsc::Sender<Event>, JoinHandle<()>);

/// Records buffered per partition between the consumer and its worker.
const PARTITION_QUEUE: usize = 1024;
/// How long shutdown waits for in-flight records before giving up (they
/// are then redelivered after restart, never lost).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a route halted on a record asks whether its consumer group
/// has moved past it (another replica delivered or skipped it).
const HALTED_POLL: Duration = Duration::from_secs(2);

/// Everything a running route needs.
pub struct RouteRuntime {
    pub route: Route,
    /// The current chain. Workers load it once per batch; a new plugin
    /// version is swapped in without stopping them.
    chain: ArcSwap<Chain>,
    pub entry: Arc<RouteEntry>,
    /// Counts operators' requests to start a halted route again.
    restarts: watch::Sender<u64>,
    /// The highest offset read of each partition, to tell records read
    /// again from new ones.
    read_up_to: std::sync::Mutex<HashMap<(Arc<str>, i32), i64>>,
}

impl RouteRuntime {
    pub fn new(route: Route, chain: Chain, entry: Arc<RouteEntry>) -> RouteRuntime {
        RouteRuntime {
            route,
            chain: ArcSwap::from_pointee(chain),
            entry,
            restarts: watch::Sender::new(0),
            read_up_to: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Count a batch of `topic`/`partition` (in offset order) as read:
    /// records past the highest offset read before in `records_in`, the
    /// others in `replayed`.
    pub(crate) fn count_read(&self, topic: &Arc<str>, partition: i32, batch: &[Event]) {
        let Some(last) = batch.last() else { return };
        let mut read = self.read_up_to.lock().expect("read lock");
        let up_to = read.entry((topic.clone(), partition)).or_insert(-1);
        let again = batch.iter().take_while(|e| e.offset <= *up_to).count();
        *up_to = (*up_to).max(last.offset);
        drop(read);
        let counters = &self.entry.counters;
        counters.replayed.inc_by(again as u64);
        counters.records_in.inc_by((batch.len() - again) as u64);
    }

    /// Start the route again if it is halted (it re-reads from its group's
    /// committed offset, with the current chain); false if it is not.
    pub fn restart_if_halted(&self) -> bool {
        if !matches!(self.entry.state(), RouteState::Halted { .. }) {
            return false;
        }
        self.request_restart();
        true
    }

    /// Ask the route, halted, to start again.
    pub fn request_restart(&self) {
        self.restarts.send_modify(|n| *n += 1);
    }

    /// The chain the next batch runs on.
    pub fn chain(&self) -> Arc<Chain> {
        self.chain.load_full()
    }

    /// Make `chain` the one the next batch runs on. Batches already running
    /// finish on the chain they loaded.
    pub fn swap_chain(&self, chain: Chain) {
        self.entry.set_chain(chain.versions());
        self.chain.store(Arc::new(chain));
    }
}

/// How a consumer's session ended.
enum SessionEnd {
    /// Shutdown, or the route halted.
    Stopped,
    /// The health watchdog asked for a new consumer.
    Rejoin,
}

/// Run `rt` until `shutdown` is cancelled. When the route halts, it waits,
/// halted, for a way on: an operator's resume or skip (see
/// [`RouteRuntime::restart_if_halted`]), or, halted on a record, its
/// consumer group moving past that record (another replica delivered or
/// skipped it); then it starts again from the group's committed offsets.
pub async fn run(
    rt: Arc<RouteRuntime>,
    kafka: KafkaSettings,
    producer: Producer,
    shutdown: CancellationToken,
) {
    loop {
        let requests = *rt.restarts.borrow();
        run_once(&rt, &kafka, &producer, &shutdown).await;
        if shutdown.is_cancelled() || !matches!(rt.entry.state(), RouteState::Halted { .. }) {
            return;
        }
        if !wait_for_a_way_on(&rt, &kafka, &shutdown, requests).await {
            return;
        }
        rt.entry.set(RouteState::Starting);
    }
}

/// Wait, halted, until the route may start again (true) or `shutdown`.
async fn wait_for_a_way_on(
    rt: &RouteRuntime,
    kafka: &KafkaSettings,
    shutdown: &CancellationToken,
    requests: u64,
) -> bool {
    let name = &rt.route.name;
    let halted_on = match rt.entry.state() {
        RouteState::Halted { halted_on, .. } => halted_on,
        _ => None,
    };
    // Reads the group's committed offsets; joins no group.
    let offsets = match &halted_on {
        Some(_) => match create_offset_reader(&rt.route, kafka, "offsets") {
            Ok(reader) => Some(Arc::new(reader)),
            Err(e) => {
                tracing::warn!(route = %name, error = %e, "cannot watch the group's offsets while halted");
                None
            }
        },
        None => None,
    };
    let mut requested = rt.restarts.subscribe();
    let mut poll = tokio::time::interval(HALTED_POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            asked = async { requested.wait_for(|n| *n != requests).await.is_ok() } => {
                if asked {
                    tracing::info!(route = %name, "route starting again at an operator's request");
                    return true;
                }
            }
            _ = poll.tick(), if offsets.is_some() => {
                let (Some(reader), Some(place)) = (&offsets, &halted_on) else { continue };
                if let Some(committed) = committed_offset(reader.clone(), place.clone()).await {
                    if committed > place.offset {
                        tracing::info!(
                            route = %name, topic = %place.topic, partition = place.partition,
                            offset = place.offset, committed,
                            "the consumer group has moved past the record this route halted on \
                             (another replica delivered or skipped it); starting again"
                        );
                        return true;
                    }
                }
            }
        }
    }
}

/// A client of the route's consumer group that only reads and commits
/// offsets: it subscribes to nothing, so it joins no group and takes no
/// partition from the replicas. `role` names it in the log (the health
/// monitor, the halted route's watch, a skip).
pub(crate) fn create_offset_reader(
    route: &Route,
    kafka: &KafkaSettings,
    role: &str,
) -> Result<BaseConsumer<LoggingContext>, KafkaError> {
    let mut config = kafka.client_config();
    config
        .set("group.id", &route.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for (key, value) in &kafka.consumer_options {
        config.set(key, value);
    }
    config.create_with_context(LoggingContext {
        role: format!("route:{}:{role}", route.name),
    })
}

/// The group's committed offset of `place`'s partition, if it has one.
async fn committed_offset(
    reader: Arc<BaseConsumer<LoggingContext>>,
    place: RecordPlace,
) -> Option<i64> {
    tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&place.topic, place.partition);
        let committed = reader.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
        match committed
            .find_partition(&place.topic, place.partition)?
            .offset()
        {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        }
    })
    .await
    .ok()
    .flatten()
}

/// Run `rt` once, until `shutdown` is cancelled or the route halts.
async fn run_once(
    rt: &Arc<RouteRuntime>,
    kafka: &KafkaSettings,
    producer: &Producer,
    shutdown: &CancellationToken,
) {
    let name = rt.route.name.clone();
    // Cancelled on shutdown, or by a worker when the route halts.
    let stop = shutdown.child_token();
    loop {
        let end = session(rt, kafka, producer, &stop).await;
        rt.entry.health.set_held(None);
        match end {
            Some(SessionEnd::Rejoin) if !stop.is_cancelled() => {
                tracing::warn!(route = %name, "rejoining the consumer group with a new consumer");
            }
            _ => break,
        }
    }
    if !matches!(rt.entry.state(), RouteState::Halted { .. }) {
        rt.entry.set(RouteState::Stopped);
    }
    tracing::info!(route = %name, "route stopped");
}

/// One consumer's life: create, subscribe, consume until stopped or asked
/// to rejoin, then drain and commit. `None` when it could not start.
async fn session(
    rt: &Arc<RouteRuntime>,
    kafka: &KafkaSettings,
    producer: &Producer,
    stop: &CancellationToken,
) -> Option<SessionEnd> {
    let name = &rt.route.name;
    let consumer = match create_consumer(&rt.route, kafka) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(route = %name, error = %e, "cannot create the Kafka consumer");
            rt.entry.set(RouteState::Halted {
                reason: format!("cannot create the Kafka consumer: {e}"),
                detail: None,
                halted_on: None,
            });
            return None;
        }
    };

    if !wait_for_brokers(rt, &consumer, kafka, stop).await {
        return None;
    }
    let topics: Vec<&str> = rt.route.topics.iter().map(String::as_str).collect();
    if let Err(e) = consumer.subscribe(&topics) {
        tracing::error!(route = %name, error = %e, "cannot subscribe");
        rt.entry.set(RouteState::Halted {
            reason: format!("cannot subscribe to {topics:?}: {e}"),
            detail: None,
            halted_on: None,
        });
        return None;
    }
    rt.entry.set(RouteState::Running);
    tracing::info!(route = %name, topics = ?topics, group = %rt.route.group, chain = %rt.chain().versions(), "route running");

    // Keyed by topic, then partition, so that finding a record's worker
    // borrows the topic name instead of allocating a key per record.
    let mut workers: HashMap<String, HashMap<i32, WorkerHandle>> = HashMap::new();
    // What the consumer holds, for the health monitor.
    let mut held_tick = tokio::time::interval(Duration::from_secs(1));
    held_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut end = SessionEnd::Stopped;
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            _ = rt.entry.health.rejoin.notified() => {
                end = SessionEnd::Rejoin;
                break;
            }
            _ = held_tick.tick() => {
                rt.entry.health.set_held(Some(held(&consumer)));
                continue;
            }
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(route = %name, error = %e, "consume error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let event = to_event(&message);
        drop(message);
        if !workers.contains_key(&event.topic) {
            workers.insert(event.topic.clone(), HashMap::new());
        }
        let partitions = workers.get_mut(&event.topic).expect("inserted above");
        let tx = &partitions
            .entry(event.partition)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(PARTITION_QUEUE);
                let worker = partition::Worker {
                    rt: rt.clone(),
                    topic: event.topic.as_str().into(),
                    partition: event.partition,
                    producer: producer.clone(),
                    consumer: consumer.clone(),
                    stop: stop.clone(),
                };
                (tx, spawn_worker(worker, rx))
            })
            .0;
        tokio::select! {
            _ = stop.cancelled() => break,
            sent = tx.send(event) => if sent.is_err() {
                // The worker ended: the route is halting.
                break;
            },
        }
    }

    // Drain: close every queue, let workers finish what they hold and
    // ackers store their offsets, then commit once, synchronously.
    let handles: Vec<JoinHandle<()>> = workers
        .into_values()
        .flat_map(HashMap::into_values)
        .map(|(_, h)| h)
        .collect();
    tracing::info!(route = %name, partitions = handles.len(), "draining in-flight records");
    if tokio::time::timeout(DRAIN_TIMEOUT, futures::future::join_all(handles))
        .await
        .is_err()
    {
        tracing::warn!(route = %name, "drain timed out; unfinished records will be redelivered");
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!(route = %name, "offsets committed"),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
            tracing::info!(route = %name, "offsets committed (nothing new since the last auto-commit)")
        }
        Err(e) => tracing::warn!(route = %name, error = %e, "final commit failed"),
    }
    if matches!(end, SessionEnd::Rejoin) {
        // Closing a consumer leaves its group and may wait on the
        // coordinator (a rebalance in progress after an outage): off the
        // runtime's threads, without holding up the next consumer.
        tokio::task::spawn_blocking(move || drop(consumer));
    }
    Some(end)
}

/// The partitions `consumer` holds and its fetch position in each.
fn held(consumer: &RouteConsumer) -> health::Held {
    let mut held = health::Held::default();
    let Ok(assignment) = consumer.assignment() else {
        return held;
    };
    let positions = consumer.position().ok();
    for e in assignment.elements() {
        let position = positions
            .as_ref()
            .and_then(|p| p.find_partition(e.topic(), e.partition()))
            .and_then(|p| match p.offset() {
                rdkafka::Offset::Offset(o) => Some(o),
                _ => None,
            });
        held.partitions
            .insert((e.topic().to_owned(), e.partition()), position);
    }
    held
}

/// Spawn a partition worker, watched: a worker that dies (a panic, a bug
/// in the host) halts its route with the reason, rather than leaving the
/// route `running` with its partition stuck. What the worker held is not
/// acknowledged, so it is read again when the route starts again.
fn spawn_worker(worker: partition::Worker, records: mpsc::Receiver<Event>) -> JoinHandle<()> {
    let rt = worker.rt.clone();
    let stop = worker.stop.clone();
    let place = format!("{}/{}", worker.topic, worker.partition);
    let task = tokio::spawn(worker.run(records));
    tokio::spawn(async move {
        let Err(e) = task.await else { return };
        let why = if e.is_panic() {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|m| (*m).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            format!("panicked: {message}")
        } else {
            "was cancelled".to_owned()
        };
        let reason = format!("a partition worker stopped unexpectedly: {place} {why}");
        tracing::error!(route = %rt.route.name, "route halted: {reason}; the records it held are not committed and are read again when the route starts again");
        rt.entry.set(RouteState::Halted {
            reason,
            detail: None,
            halted_on: None,
        });
        stop.cancel();
    })
}

fn create_consumer(route: &Route, kafka: &KafkaSettings) -> Result<RouteConsumer, KafkaError> {
    let mut config = kafka.client_config();
    for (key, value) in crate::kafka::ROUTE_CONSUMER_SETTINGS {
        config.set(*key, *value);
    }
    config
        .set("group.id", &route.group)
        .set("auto.offset.reset", route.start_from.as_librdkafka());
    for (key, value) in &kafka.consumer_options {
        config.set(key, value);
    }
    config.create_with_context(LoggingContext {
        role: format!("route:{}", route.name),
    })
}

/// Fetch cluster metadata until it succeeds, backing off; false if stopped
/// first. An unreachable cluster is reported, never fatal.
async fn wait_for_brokers(
    rt: &RouteRuntime,
    consumer: &Arc<RouteConsumer>,
    kafka: &KafkaSettings,
    stop: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_secs(1);
    loop {
        let probe = consumer.clone();
        let result = tokio::task::spawn_blocking(move || {
            probe
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|_| ())
        })
        .await
        .expect("metadata probe panicked");
        match result {
            Ok(()) => return true,
            Err(e) => {
                tracing::error!(
                    route = %rt.route.name,
                    brokers = %kafka.brokers,
                    error = %e,
                    retry_in = ?delay,
                    "cannot reach the Kafka brokers; retrying"
                );
                rt.entry.set(RouteState::Connecting {
                    error: format!("cannot reach Kafka at {}: {e}", kafka.brokers),
                });
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// The plugin-facing copy of a consumed record.
fn to_event<M: Message>(message: &M) -> Event {
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    key: h.key.to_owned(),
                    value: h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Event {
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
    }
}
