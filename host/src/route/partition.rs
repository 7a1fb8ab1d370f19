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
use super::status::HaltedRecord;
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
    /// The value's size, on a copy whose value was cut to an excerpt
    /// because the whole record was too large for the dead-letter topic.
    pub const VALUE_SIZE: &str = "switchyard-dlq-value-size";
    /// How many bytes of the value the copy keeps (its start).
    pub const VALUE_CUT: &str = "switchyard-dlq-value-cut";
    /// Who skipped the record, on a record an operator skipped.
    pub const SKIPPED_BY: &str = "switchyard-dlq-skipped-by";
}

/// How much of a value a dead-letter copy keeps when the whole record is
/// too large for the dead-letter topic: each in turn, until one is taken.
const EXCERPTS: [usize; 4] = [64 << 10, 8 << 10, 1 << 10, 0];

/// A record handed to the producer, awaiting acknowledgement.
struct Pending {
    event: Event,
    deliveries: Vec<DeliveryFuture>,
    /// When the deliveries are the record's dead-letter copy, not outputs:
    /// that copy in full, and how much of it was sent (see [`DeadLetter`]).
    dead_letter: Option<DeadLetter>,
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
            self.stop.clone(),
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
            self.rt.count_read(&self.topic, self.partition, &batch);
            #[cfg(debug_assertions)]
            injected_fault(&batch);
            let (batch, results) = self.run_chain(batch).await;
            let Some(results) = self.call_http_sinks(&batch, results).await else {
                // Stopped while an endpoint was being retried: nothing of
                // this batch is acknowledged, so all of it comes again.
                break 'batches;
            };
            for (event, result) in batch.into_iter().zip(results) {
                let Some((deliveries, dead_letter)) = self.deliver(&event, result).await else {
                    break 'batches;
                };
                if ack_tx
                    .send(Pending {
                        event,
                        deliveries,
                        dead_letter,
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
    /// copy (then that copy); `None` when the route halts.
    async fn deliver(
        &self,
        event: &Event,
        result: RecordResult,
    ) -> Option<(Vec<DeliveryFuture>, Option<DeadLetter>)> {
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
                        return Some((deliveries, None));
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
    ) -> Option<(Vec<DeliveryFuture>, Option<DeadLetter>)> {
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
            match send_dead_letter(&self.producer, record).await {
                Ok((delivery, dead_letter)) => {
                    self.rt.entry.counters.dead_lettered.inc();
                    return Some((vec![delivery], Some(dead_letter)));
                }
                Err(sink_failure) => {
                    halt(&self.rt, &self.stop, event, sink_failure, attempts);
                    return None;
                }
            }
        }
        halt(&self.rt, &self.stop, event, failure, attempts);
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
        .map_err(|e| sink_failure(topic, &e))?;
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

/// Halt the route before `event`: its offset is not stored, and the record
/// is kept for an operator to skip (see `control::halts`).
fn halt(
    rt: &RouteRuntime,
    stop: &CancellationToken,
    event: &Event,
    failure: Failure,
    attempts: u32,
) {
    // What anyone may read: where, and what kind of failure. The
    // failure's own text may quote the record.
    let reason = format!(
        "{}/{} offset {}: {} in {}",
        event.topic,
        event.partition,
        event.offset,
        failure.kind.as_str(),
        failure.plugin
    );
    tracing::error!(route = %rt.route.name, detail = %failure.message, "route halted before record {reason}; its offset is not committed");
    rt.entry.halt_on(
        reason,
        HaltedRecord {
            event: event.clone(),
            failure,
            attempts,
        },
    );
    stop.cancel();
}

/// A dead-letter copy handed to the producer: the copy in full, and which
/// of its forms was sent (0: whole; `n`: cut to `EXCERPTS[n - 1]` bytes).
pub(crate) struct DeadLetter {
    record: Routed,
    form: usize,
}

fn is_too_large(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge)
}

/// `record` in form `form` (see [`DeadLetter`]); `None` when that form
/// would not be smaller than the whole record.
fn dead_letter_form(record: &Routed, form: usize) -> Option<Routed> {
    use crate::plugin::bindings::Header;
    if form == 0 {
        return Some(record.clone());
    }
    let keep = *EXCERPTS.get(form - 1)?;
    let value = record.value.as_deref().unwrap_or_default();
    if value.len() <= keep {
        return None;
    }
    let mut cut = record.clone();
    cut.value = Some(value[..keep].to_vec());
    for (key, v) in [
        (dlq_headers::VALUE_SIZE, value.len()),
        (dlq_headers::VALUE_CUT, keep),
    ] {
        cut.headers.push(Header {
            key: key.to_owned(),
            value: v.to_string().into_bytes(),
        });
    }
    Some(cut)
}

/// Hand a dead-letter copy to the producer, in the first form from `form`
/// on that the producer takes: a record larger than the producer sends
/// is cut to an excerpt (its headers kept) rather than refused.
async fn send_dead_letter_from(
    producer: &Producer,
    record: Routed,
    form: usize,
) -> Result<(DeliveryFuture, DeadLetter), Failure> {
    let mut last = None;
    for form in form..=EXCERPTS.len() {
        let Some(copy) = dead_letter_form(&record, form) else {
            continue;
        };
        let topic = copy.topic().unwrap_or_default().to_owned();
        match send(
            producer,
            &topic,
            copy.key.as_deref(),
            copy.value.as_deref(),
            to_kafka_headers(&copy),
        )
        .await
        {
            Ok(delivery) => {
                if form > 0 {
                    tracing::warn!(topic, size = record.value.as_ref().map_or(0, Vec::len), kept = EXCERPTS[form - 1], "record too large for the dead-letter topic; its value is cut to an excerpt");
                }
                return Ok((delivery, DeadLetter { record, form }));
            }
            Err(e) if is_too_large(&e) => last = Some((topic, e)),
            Err(e) => return Err(sink_failure(&topic, &e)),
        }
    }
    match last {
        Some((topic, e)) => Err(sink_failure(&topic, &e)),
        None => Err(Failure {
            plugin: "switchyard".into(),
            kind: FailureKind::Sink,
            message: "the dead-letter copy has no smaller form to send".into(),
            reasons: Vec::new(),
        }),
    }
}

async fn send_dead_letter(
    producer: &Producer,
    record: Routed,
) -> Result<(DeliveryFuture, DeadLetter), Failure> {
    send_dead_letter_from(producer, record, 0).await
}

/// Write a dead-letter copy and wait until the broker has it, cutting its
/// value to an excerpt when the topic refuses the whole record as too
/// large. `Err` when it cannot be written (the producer is gone, or even
/// the smallest form is refused).
pub(crate) async fn dead_letter_delivered(
    producer: &Producer,
    route: &str,
    record: Routed,
) -> Result<(), Failure> {
    let (delivery, sent) = send_dead_letter(producer, record).await?;
    await_dead_letter(producer, route, delivery, sent).await
}

fn sink_failure(topic: &str, e: &KafkaError) -> Failure {
    Failure {
        plugin: "switchyard".into(),
        kind: FailureKind::Sink,
        message: format!("producing to `{topic}` failed: {e}"),
        reasons: Vec::new(),
    }
}

/// The original record with the failure's context in headers.
pub(crate) fn dead_letter_record(
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
/// after the last fully delivered record. A record the sink refuses as too
/// large meets the route's error policy here: dead-lettered (cut to an
/// excerpt if the dead-letter topic refuses it whole), or the route halts
/// before it.
async fn acker(
    mut pending: mpsc::Receiver<Pending>,
    consumer: Arc<RouteConsumer>,
    topic: Arc<str>,
    partition: i32,
    producer: Producer,
    rt: Arc<RouteRuntime>,
    stop: CancellationToken,
) {
    let route = &rt.route;
    let mut done: Option<i64> = None;
    while let Some(p) = pending.recv().await {
        let outputs = p.deliveries.len() as u64;
        let mut refused = None;
        for delivery in p.deliveries {
            match await_delivery(delivery, &producer, &route.name).await {
                Delivered::Acked => {}
                Delivered::Gone => {
                    // The producer is gone (shutdown): store nothing further.
                    store(&consumer, &topic, partition, done);
                    return;
                }
                Delivered::TooLarge { topic, error } => {
                    refused = Some(sink_failure(&topic, &error));
                    break;
                }
            }
        }
        let outcome = match (refused, p.dead_letter) {
            (None, None) => {
                rt.entry.counters.records_out.inc_by(outputs);
                Ok(())
            }
            (None, Some(_)) => Ok(()),
            // The dead-letter copy itself refused: a smaller form of it.
            (Some(refusal), Some(sent)) => {
                let next = sent.form + 1;
                match send_dead_letter_from(&producer, sent.record, next).await {
                    Ok((delivery, sent)) => {
                        await_dead_letter(&producer, &route.name, delivery, sent).await
                    }
                    Err(_) => Err(refusal),
                }
            }
            // An output refused: the record meets the route's policy.
            (Some(refusal), None) => match (&route.on_error, &route.dead_letter) {
                (ErrorAction::DeadLetter, Some(dlq)) => {
                    tracing::warn!(
                        route = %route.name, topic = %topic, partition, offset = p.event.offset,
                        dead_letter = %dlq.topic, "record dead-lettered: {}", refusal.message
                    );
                    let record = dead_letter_record(&route.name, &dlq.topic, &p.event, &refusal, 1);
                    match dead_letter_delivered(&producer, &route.name, record).await {
                        Ok(()) => {
                            rt.entry.counters.dead_lettered.inc();
                            Ok(())
                        }
                        Err(failure) => Err(failure),
                    }
                }
                _ => Err(refusal),
            },
        };
        if let Err(failure) = outcome {
            store(&consumer, &topic, partition, done);
            halt(&rt, &stop, &p.event, failure, 1);
            return;
        }
        done = Some(p.event.offset);
        // Store once per burst rather than per record.
        if pending.is_empty() {
            store(&consumer, &topic, partition, done);
        }
    }
    store(&consumer, &topic, partition, done);
}

/// Wait for a dead-letter copy handed to the producer, smaller forms of it
/// while the topic refuses it as too large.
async fn await_dead_letter(
    producer: &Producer,
    route: &str,
    delivery: DeliveryFuture,
    sent: DeadLetter,
) -> Result<(), Failure> {
    let (mut delivery, mut sent) = (delivery, sent);
    loop {
        match await_delivery(delivery, producer, route).await {
            Delivered::Acked => return Ok(()),
            Delivered::Gone => {
                return Err(Failure {
                    plugin: "switchyard".into(),
                    kind: FailureKind::Sink,
                    message: "the producer stopped before the dead-letter copy was acknowledged"
                        .into(),
                    reasons: Vec::new(),
                })
            }
            Delivered::TooLarge { topic, error } => {
                (delivery, sent) = send_dead_letter_from(producer, sent.record, sent.form + 1)
                    .await
                    .map_err(|_| sink_failure(&topic, &error))?;
            }
        }
    }
}

/// What became of one delivery.
enum Delivered {
    Acked,
    /// The producer is gone (shutdown).
    Gone,
    /// Refused as too large, alone (not only as part of a batch).
    TooLarge {
        topic: String,
        error: KafkaError,
    },
}

/// Wait for one delivery report; on a delivery error (after librdkafka's
/// own retries), produce the message again until it is acknowledged. A
/// message refused as too large is produced again once: the broker refuses
/// a whole batch, and a record that fits gets through on its own; refused
/// again, it is the record itself.
async fn await_delivery(delivery: DeliveryFuture, producer: &Producer, route: &str) -> Delivered {
    let mut delivery = delivery;
    let mut delay = Duration::from_millis(100);
    let mut refused_as_too_large = false;
    loop {
        match delivery.await {
            Ok(Ok(_)) => return Delivered::Acked,
            Err(_canceled) => return Delivered::Gone,
            Ok(Err((error, message))) => {
                if is_too_large(&error) {
                    if refused_as_too_large {
                        return Delivered::TooLarge {
                            topic: message.topic().to_owned(),
                            error,
                        };
                    }
                    refused_as_too_large = true;
                    tracing::debug!(route, topic = message.topic(), error = %error, "refused as too large; producing it again on its own");
                } else {
                    tracing::error!(route, topic = message.topic(), error = %error, retry_in = ?delay, "delivery failed; producing again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                match resend(producer, &message).await {
                    Ok(next) => delivery = next,
                    Err(e) if is_too_large(&e) => {
                        return Delivered::TooLarge {
                            topic: message.topic().to_owned(),
                            error: e,
                        }
                    }
                    Err(e) => {
                        tracing::error!(route, topic = message.topic(), error = %e, "cannot produce again");
                        return Delivered::Gone;
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

/// Debug builds only: a record whose value is `SWITCHYARD_FAULT_WORKER_PANIC`
/// makes its worker panic, outside the plugin sandbox, as a bug in the host
/// would. The end-to-end tests use it to prove that a worker that dies
/// shows in its route's state; release builds have no such hook.
#[cfg(debug_assertions)]
fn injected_fault(batch: &[Event]) {
    static TRIGGER: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    let trigger = TRIGGER.get_or_init(|| {
        std::env::var_os("SWITCHYARD_FAULT_WORKER_PANIC")
            .map(|v| v.into_encoded_bytes())
            .filter(|v| !v.is_empty())
    });
    if let Some(trigger) = trigger {
        if batch.iter().any(|e| e.value.as_deref() == Some(trigger)) {
            panic!("injected fault: a record asked this worker to panic (SWITCHYARD_FAULT_WORKER_PANIC)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::Header;

    fn header<'a>(record: &'a Routed, key: &str) -> Option<&'a str> {
        record
            .headers
            .iter()
            .find(|h| h.key == key)
            .map(|h| std::str::from_utf8(&h.value).unwrap())
    }

    #[test]
    fn a_dead_letter_copy_is_cut_to_ever_smaller_excerpts_keeping_its_headers() {
        let value: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let record = Routed {
            to: Destination::topic("dlq"),
            key: Some(b"k".to_vec()),
            value: Some(value.clone()),
            headers: vec![Header {
                key: dlq_headers::ROUTE.into(),
                value: b"r".to_vec(),
            }],
        };
        let whole = dead_letter_form(&record, 0).unwrap();
        assert_eq!(whole.value.as_deref(), Some(&value[..]));
        assert_eq!(header(&whole, dlq_headers::VALUE_CUT), None);
        for (form, keep) in EXCERPTS.iter().enumerate() {
            let cut = dead_letter_form(&record, form + 1).unwrap();
            assert_eq!(cut.value.as_deref(), Some(&value[..*keep]));
            assert_eq!(cut.key.as_deref(), Some(&b"k"[..]));
            assert_eq!(header(&cut, dlq_headers::ROUTE), Some("r"));
            assert_eq!(header(&cut, dlq_headers::VALUE_SIZE), Some("100000"));
            assert_eq!(
                header(&cut, dlq_headers::VALUE_CUT),
                Some(keep.to_string().as_str())
            );
        }
        assert!(dead_letter_form(&record, EXCERPTS.len() + 1).is_none());
        // A value no larger than an excerpt is not "cut" to it.
        let small = Routed {
            value: Some(vec![1; 2000]),
            ..record
        };
        assert!(dead_letter_form(&small, 1).is_none());
        assert!(dead_letter_form(&small, 2).is_none());
        assert_eq!(
            dead_letter_form(&small, 3).unwrap().value.unwrap().len(),
            1024
        );
    }
}
