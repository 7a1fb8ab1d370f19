//! One partition of a route: the worker that batches records through the
//! chain and hands outputs to the producer, and the acker that stores the
//! partition's offset once the broker has acknowledged them.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::chain::{Destination, Failure, FailureKind, RecordResult, Routed};
use super::http_sink;
use super::status::RouteState;
use super::{Producer, RouteConsumer, RouteRuntime};
use crate::config::ErrorAction;
use crate::plugin::bindings::Event;

/// Records whose outputs may be in flight at once, per partition (public
/// for the benchmark's baseline, which keeps the same window).
pub const ACK_WINDOW: usize = 4096;

/// Context headers on a dead-lettered record.
pub mod dlq_headers {
    pub const SOURCE_TOPIC: &str = "switchyard-dlq-source-topic";
    pub const SOURCE_PARTITION: &str = "switchyard-dlq-source-partition";
    pub const SOURCE_OFFSET: &str = "switchyard-dlq-source-offset";
    pub const PLUGIN: &str = "switchyard-dlq-plugin";
    pub const ERROR_KIND: &str = "switchyard-dlq-error-kind";
    pub const ERROR: &str = "switchyard-dlq-error";
    pub const ATTEMPTS: &str = "switchyard-dlq-attempts";
    pub const ROUTE: &str = "switchyard-dlq-route";
}

/// A record handed to the producer, awaiting acknowledgement.
struct Pending {
    offset: i64,
    deliveries: Vec<DeliveryFuture>,
    /// The deliveries are the record's dead-letter copy, not outputs.
    dead_lettered: bool,
}

pub(super) struct Worker {
    pub rt: Arc<RouteRuntime>,
    pub topic: Arc<str>,
    pub partition: i32,
    pub producer: Producer,
    pub consumer: Arc<RouteConsumer>,
    /// Cancelled to halt the whole route.
    pub stop: CancellationToken,
}

impl Worker {
    pub async fn run(self, mut records: mpsc::Receiver<Event>) {
        let (ack_tx, ack_rx) = mpsc::channel(ACK_WINDOW);
        let acker = tokio::spawn(acker(
            ack_rx,
            self.consumer.clone(),
            self.topic.clone(),
            self.partition,
            self.producer.clone(),
            self.rt.clone(),
        ));
        let batch_size = self.rt.route.tuning.batch_size();
        'batches: while let Some(first) = records.recv().await {
            let mut batch = Vec::with_capacity(batch_size.min(records.len() + 1));
            batch.push(first);
            while batch.len() < batch_size {
                match records.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            self.rt.entry.counters.records_in.inc_by(batch.len() as u64);
            let (batch, results) = self.run_chain(batch).await;
            let Some(results) = self.call_http_sinks(&batch, results).await else {
                // Stopped while an endpoint was being retried: nothing of
                // this batch is acknowledged, so all of it comes again.
                break 'batches;
            };
            for (event, result) in batch.iter().zip(results) {
                let Some((deliveries, dead_lettered)) = self.deliver(event, result).await else {
                    break 'batches;
                };
                if ack_tx
                    .send(Pending {
                        offset: event.offset,
                        deliveries,
                        dead_lettered,
                    })
                    .await
                    .is_err()
                {
                    break 'batches;
                }
            }
        }
        drop(ack_tx);
        let _ = acker.await;
    }

    async fn run_chain(&self, batch: Vec<Event>) -> (Vec<Event>, Vec<RecordResult>) {
        // One chain for the whole batch: a swap takes effect at the next.
        let chain = self.rt.chain();
        tokio::task::spawn_blocking(move || {
            let results = chain.run(&batch);
            (batch, results)
        })
        .await
        .expect("plugin chain panicked")
    }

    /// Deliver the outputs bound for HTTP sinks (see [`http_sink`]).
    async fn call_http_sinks(
        &self,
        batch: &[Event],
        results: Vec<RecordResult>,
    ) -> Option<Vec<RecordResult>> {
        http_sink::deliver_batch(
            batch,
            results,
            &self.stop,
            &self.rt.entry.counters.retries,
            self.rt.route.on_error == ErrorAction::Halt,
        )
        .await
    }

    /// Produce what became of one record: its outputs, or its dead-letter
    /// copy (then `true`); `None` when the route halts.
    async fn deliver(
        &self,
        event: &Event,
        result: RecordResult,
    ) -> Option<(Vec<DeliveryFuture>, bool)> {
        let mut result = result;
        let mut attempts = 1;
        loop {
            let failure = match result {
                Ok(outputs) => match self.produce_all(&outputs).await {
                    Ok(deliveries) => {
                        let counters = &self.rt.entry.counters;
                        if outputs.is_empty() {
                            counters.dropped.inc();
                        }
                        // Outputs kept in a buffer or taken by an HTTP sink
                        // are out already; the acker counts the others once
                        // acknowledged.
                        let buffered = outputs.len() - deliveries.len();
                        counters.records_out.inc_by(buffered as u64);
                        return Some((deliveries, false));
                    }
                    Err(failure) => failure,
                },
                Err(failure) => failure,
            };
            if failure.kind == FailureKind::Retryable && attempts <= self.rt.route.max_retries {
                let delay = self.rt.route.backoff * 2u32.saturating_pow(attempts - 1);
                tracing::warn!(
                    route = %self.rt.route.name, topic = %self.topic, partition = self.partition,
                    offset = event.offset, plugin = %failure.plugin, attempt = attempts, retry_in = ?delay,
                    "retryable failure: {}", failure.message
                );
                self.rt.entry.counters.retries.inc();
                tokio::time::sleep(delay).await;
                attempts += 1;
                let (again, results) = self.run_chain(vec![event.clone()]).await;
                let mut results = self.call_http_sinks(&again, results).await?;
                result = results.pop().expect("one result per record");
                continue;
            }
            return self.apply_policy(event, failure, attempts).await;
        }
    }

    async fn apply_policy(
        &self,
        event: &Event,
        failure: Failure,
        attempts: u32,
    ) -> Option<(Vec<DeliveryFuture>, bool)> {
        let route = &self.rt.route;
        if failure.kind == FailureKind::Rejected {
            self.rt.entry.counters.rejected.inc();
        }
        let dead_letter = match (route.on_error, &route.dead_letter) {
            (ErrorAction::DeadLetter, Some(dlq)) => Some(dlq),
            _ => None,
        };
        if let Some(dlq) = dead_letter {
            tracing::warn!(
                route = %route.name, topic = %self.topic, partition = self.partition, offset = event.offset,
                plugin = %failure.plugin, kind = failure.kind.as_str(), dead_letter = %dlq.topic,
                "record dead-lettered: {}", failure.message
            );
            let record = dead_letter_record(&route.name, &dlq.topic, event, &failure, attempts);
            match self.produce_all(std::slice::from_ref(&record)).await {
                Ok(deliveries) => {
                    self.rt.entry.counters.dead_lettered.inc();
                    return Some((deliveries, true));
                }
                Err(sink_failure) => {
                    return self.halt(event, &sink_failure);
                }
            }
        }
        self.halt(event, &failure)
    }

    fn halt(&self, event: &Event, failure: &Failure) -> Option<(Vec<DeliveryFuture>, bool)> {
        // What anyone may read: where, and what kind of failure. The
        // failure's own text may quote the record.
        let reason = format!(
            "{}/{} offset {}: {} in {}",
            self.topic,
            self.partition,
            event.offset,
            failure.kind.as_str(),
            failure.plugin
        );
        tracing::error!(route = %self.rt.route.name, detail = %failure.message, "route halted before record {reason}; its offset is not committed");
        self.rt.entry.set(RouteState::Halted {
            reason,
            detail: Some(failure.message.clone()),
        });
        self.stop.cancel();
        None
    }

    /// Hand every output to the producer, in order. A full local queue
    /// is waited out; any other refusal fails the record.
    async fn produce_all(&self, outputs: &[Routed]) -> Result<Vec<DeliveryFuture>, Failure> {
        produce_all(&self.producer, outputs).await
    }
}

/// Hand every output to its destination, in order: topics through the
/// producer (a full local queue is waited out, any other refusal fails the
/// record), buffers at once. Returns the deliveries to await.
pub(crate) async fn produce_all(
    producer: &Producer,
    outputs: &[Routed],
) -> Result<Vec<DeliveryFuture>, Failure> {
    let mut deliveries = Vec::with_capacity(outputs.len());
    for output in outputs {
        let topic = match &output.to {
            Destination::Topic(topic) => topic,
            Destination::Buffer { buffer, .. } => {
                buffer.push(output.key.as_deref(), output.value.as_deref());
                continue;
            }
            // Delivered before the record reached here (see
            // `http_sink::deliver_batch`).
            Destination::Http(_) => continue,
        };
        let headers = to_kafka_headers(output);
        let future = send(
            producer,
            topic,
            output.key.as_deref(),
            output.value.as_deref(),
            headers,
        )
        .await
        .map_err(|e| Failure {
            plugin: "switchyard".into(),
            kind: FailureKind::Sink,
            message: format!("producing to `{topic}` failed: {e}"),
            reasons: Vec::new(),
        })?;
        deliveries.push(future);
    }
    Ok(deliveries)
}

fn to_kafka_headers(output: &Routed) -> OwnedHeaders {
    output.headers.iter().fold(
        OwnedHeaders::new_with_capacity(output.headers.len()),
        |hs, h| {
            hs.insert(KafkaHeader {
                key: &h.key,
                value: Some(&h.value),
            })
        },
    )
}

/// Enqueue one record, waiting while librdkafka's local queue is full.
async fn send(
    producer: &Producer,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: OwnedHeaders,
) -> Result<DeliveryFuture, KafkaError> {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
    record.key = key;
    record.payload = value;
    loop {
        match producer.send_result(record) {
            Ok(future) => return Ok(future),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// The original record with the failure's context in headers.
fn dead_letter_record(
    route: &str,
    topic: &str,
    event: &Event,
    failure: &Failure,
    attempts: u32,
) -> Routed {
    use crate::plugin::bindings::Header;
    use dlq_headers::*;
    let mut headers = event.headers.clone();
    let context = [
        (ROUTE, route.to_owned()),
        (SOURCE_TOPIC, event.topic.clone()),
        (SOURCE_PARTITION, event.partition.to_string()),
        (SOURCE_OFFSET, event.offset.to_string()),
        (PLUGIN, failure.plugin.clone()),
        (ERROR_KIND, failure.kind.as_str().to_owned()),
        (ERROR, failure.message.clone()),
        (ATTEMPTS, attempts.to_string()),
    ];
    headers.extend(context.into_iter().map(|(key, value)| Header {
        key: key.to_owned(),
        value: value.into_bytes(),
    }));
    Routed {
        to: Destination::topic(topic),
        key: event.key.clone(),
        value: event.value.clone(),
        headers,
    }
}

/// Await each record's deliveries in offset order and store the offset
/// after the last fully delivered record.
async fn acker(
    mut pending: mpsc::Receiver<Pending>,
    consumer: Arc<RouteConsumer>,
    topic: Arc<str>,
    partition: i32,
    producer: Producer,
    rt: Arc<RouteRuntime>,
) {
    let mut done: Option<i64> = None;
    while let Some(p) = pending.recv().await {
        let outputs = p.deliveries.len() as u64;
        for delivery in p.deliveries {
            if !await_delivery(delivery, &producer, &rt.route.name).await {
                // The producer is gone (shutdown): store nothing further.
                store(&consumer, &topic, partition, done);
                return;
            }
        }
        if !p.dead_lettered {
            rt.entry.counters.records_out.inc_by(outputs);
        }
        done = Some(p.offset);
        // Store once per burst rather than per record.
        if pending.is_empty() {
            store(&consumer, &topic, partition, done);
        }
    }
    store(&consumer, &topic, partition, done);
}

/// Wait for one delivery report; on a delivery error (after librdkafka's
/// own retries), produce the message again until it is acknowledged.
async fn await_delivery(delivery: DeliveryFuture, producer: &Producer, route: &str) -> bool {
    let mut delivery = delivery;
    let mut delay = Duration::from_millis(100);
    loop {
        match delivery.await {
            Ok(Ok(_)) => return true,
            Err(_canceled) => return false,
            Ok(Err((error, message))) => {
                tracing::error!(route, topic = message.topic(), error = %error, retry_in = ?delay, "delivery failed; producing again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                match resend(producer, &message).await {
                    Ok(next) => delivery = next,
                    Err(e) => {
                        tracing::error!(route, topic = message.topic(), error = %e, "cannot produce again");
                        return false;
                    }
                }
            }
        }
    }
}

async fn resend(producer: &Producer, message: &OwnedMessage) -> Result<DeliveryFuture, KafkaError> {
    let headers = message.headers().cloned().unwrap_or_default();
    send(
        producer,
        message.topic(),
        message.key(),
        message.payload(),
        headers,
    )
    .await
}

fn store(consumer: &RouteConsumer, topic: &str, partition: i32, done: Option<i64>) {
    let Some(offset) = done else { return };
    let mut tpl = TopicPartitionList::new();
    if tpl
        .add_partition_offset(topic, partition, Offset::Offset(offset + 1))
        .is_ok()
    {
        if let Err(e) = consumer.store_offsets(&tpl) {
            // Typically the partition was revoked by a rebalance; its new
            // owner resumes from the last commit (at-least-once).
            tracing::debug!(topic, partition, offset, error = %e, "offset not stored");
        }
    }
}
