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
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Route;
use crate::kafka::{KafkaSettings, LoggingContext};
use crate::plugin::bindings::{Event, Header};
use chain::Chain;
use status::{RouteEntry, RouteState};

pub type Producer = FutureProducer<LoggingContext>;
type RouteConsumer = StreamConsumer<LoggingContext>;
/// A partition worker's queue and task.
type WorkerHandle = (mpsc::Sender<Event>, JoinHandle<()>);

/// Records buffered per partition between the consumer and its worker.
const PARTITION_QUEUE: usize = 1024;
/// How long shutdown waits for in-flight records before giving up (they
/// are then redelivered after restart, never lost).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a running route needs.
pub struct RouteRuntime {
    pub route: Route,
    /// The current chain. Workers load it once per batch; a new plugin
    /// version is swapped in without stopping them.
    chain: ArcSwap<Chain>,
    pub entry: Arc<RouteEntry>,
}

impl RouteRuntime {
    pub fn new(route: Route, chain: Chain, entry: Arc<RouteEntry>) -> RouteRuntime {
        RouteRuntime {
            route,
            chain: ArcSwap::from_pointee(chain),
            entry,
        }
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

/// Run `rt` until `shutdown` is cancelled or the route halts. When the
/// health watchdog finds the consumer stuck outside its group (see
/// [`health`]), the route drains, commits and subscribes again with a new
/// consumer, without a restart.
pub async fn run(
    rt: Arc<RouteRuntime>,
    kafka: KafkaSettings,
    producer: Producer,
    shutdown: CancellationToken,
) {
    let name = rt.route.name.clone();
    // Cancelled on shutdown, or by a worker when the route halts.
    let stop = shutdown.child_token();
    loop {
        let end = session(&rt, &kafka, &producer, &stop).await;
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
                (tx, tokio::spawn(worker.run(rx)))
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
