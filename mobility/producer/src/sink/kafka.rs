//! Records produced to a Kafka topic, keyed by the user's id (so one
//! user's events stay in order on one partition), the value the event's
//! JSON envelope, with the headers `event-type` and `content-type`.
//!
//! The producer is idempotent and every acknowledgement is awaited before
//! the run ends. The first delivery error stops producing and makes the
//! run fail, rather than going on past a hole in the users' life cycles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mobility_contracts::Envelope;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use tokio::sync::mpsc;

use super::{per_second, Done, Outcome, Progress, Signals, Sink};

/// How many records may wait for their acknowledgement at once; beyond,
/// producing waits.
const IN_FLIGHT: usize = 10_000;

pub struct Kafka {
    producer: FutureProducer,
    topic: String,
    /// To the task counting acknowledgements.
    deliveries: mpsc::Sender<DeliveryFuture>,
    acks: Arc<Acks>,
    acker: tokio::task::JoinHandle<()>,
}

/// Outcomes of the deliveries so far.
#[derive(Default)]
struct Acks {
    acknowledged: AtomicU64,
    failed: AtomicU64,
}

impl Kafka {
    pub fn new(brokers: &str, topic: String) -> anyhow::Result<Kafka> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", "mobility-producer")
            // No duplicates or reordering when the producer retries.
            .set("enable.idempotence", "true")
            .create()
            .context("creating the Kafka producer")?;
        let (deliveries, rx) = mpsc::channel(IN_FLIGHT);
        let acks = Arc::new(Acks::default());
        let acker = tokio::spawn(acknowledge(rx, acks.clone()));
        Ok(Kafka {
            producer,
            topic,
            deliveries,
            acks,
            acker,
        })
    }
}

impl Sink for Kafka {
    /// False once a delivery failed.
    async fn send(&mut self, event: &Envelope) -> bool {
        if self.acks.failed.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let json = serde_json::to_string(event).expect("an envelope always serialises");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "event-type",
                value: Some(event.event.type_name()),
            })
            .insert(Header {
                key: "content-type",
                value: Some("application/json"),
            });
        let mut record = FutureRecord::to(&self.topic)
            .key(event.user_id.as_bytes())
            .payload(json.as_bytes())
            .headers(headers);
        // Room for the acknowledgement first: waiting for it is the one
        // wait that may be cut short (by a signal) before the record is
        // handed to the producer, so that no record is produced without
        // its acknowledgement being awaited.
        let Ok(room) = self.deliveries.reserve().await else {
            return false;
        };
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    room.send(delivery);
                    return true;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Not taken: dropping it on a signal loses nothing that
                    // was produced.
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => {
                    tracing::error!(error = %e, "producing an event");
                    self.acks.failed.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
    }

    fn log_progress(&self, run: &Progress) {
        tracing::info!(
            sent = run.sent,
            acknowledged = self.acks.acknowledged.load(Ordering::Relaxed),
            rate = per_second(run.rate),
            users = run.users,
            "progress"
        );
    }

    /// Waits for every acknowledgement, unless a signal says to give up.
    async fn finish(self, sent: u64, _signalled: bool, signals: &mut Signals) -> Outcome {
        let Kafka {
            producer,
            deliveries,
            acks,
            mut acker,
            ..
        } = self;
        drop(deliveries);
        let known = acks.acknowledged.load(Ordering::Relaxed) + acks.failed.load(Ordering::Relaxed);
        let waiting = sent.saturating_sub(known);
        if waiting > 0 {
            tracing::info!(
                waiting,
                "waiting for the acknowledgements (a second Ctrl-C or SIGTERM gives up)"
            );
        }
        let abandoned = tokio::select! {
            _ = &mut acker => false,
            Some(()) = signals.recv() => {
                tracing::warn!("giving up on the acknowledgements still awaited");
                acker.abort();
                true
            }
        };
        drop(producer);
        let (acknowledged, failed) = (
            acks.acknowledged.load(Ordering::Relaxed),
            acks.failed.load(Ordering::Relaxed),
        );
        Outcome {
            delivered: acknowledged,
            failed,
            unconfirmed: if abandoned {
                sent.saturating_sub(acknowledged + failed)
            } else {
                0
            },
            ..Outcome::default()
        }
    }

    fn log_done(outcome: &Outcome, run: &Done<'_>) {
        tracing::info!(
            sent = run.sent,
            acknowledged = outcome.delivered,
            failed = outcome.failed,
            users = run.users,
            elapsed = format!("{:.1}s", run.elapsed_secs),
            rate = run.rate(),
            by_type = ?run.by_type,
            "done"
        );
    }
}

/// Counts the outcome of every delivery, in the order sent.
async fn acknowledge(mut deliveries: mpsc::Receiver<DeliveryFuture>, acks: Arc<Acks>) {
    while let Some(delivery) = deliveries.recv().await {
        match delivery.await {
            Ok(Ok(_)) => {
                acks.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err((e, _))) => {
                tracing::error!(error = %e, "an event was not delivered");
                acks.failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                tracing::error!("the producer closed before an event's delivery was known");
                acks.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
