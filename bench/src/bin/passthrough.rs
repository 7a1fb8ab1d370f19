//! The baseline of the end-to-end benchmark: a bare rust-rdkafka
//! consume-then-produce passthrough, with the guarantees a route gives and
//! the Kafka client settings switchyard uses, and nothing else.
//!
//! ```text
//!  consumer group ─► one partition queue per partition (split off the
//!                    consumer, each read by its own task, in parallel)
//!                      record ─► producer.send (key, value and headers
//!                                borrowed from the consumed record)
//!                      delivery futures, in offset order ─► acker task:
//!                      awaits them, then stores offset + 1 ─► auto-commit
//! ```
//!
//! It is meant as the fairest bare client, not a strawman: no copy of a
//! record in Rust (librdkafka copies the payload into its own produce
//! queue, as it does for switchyard), partitions in parallel, offsets
//! stored once per burst of acknowledgements. What it leaves out compared
//! with switchyard is exactly what switchyard adds: the plugin chain, the
//! per-record copy into an owned event, per-partition queues between the
//! consumer and the workers, the chain header, counters and metrics.
//!
//! usage: passthrough --brokers HOST:PORT --input TOPIC --output TOPIC --group GROUP
//!
//! Runs until SIGTERM or Ctrl-C, then commits synchronously and exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
// Records whose deliveries may be in flight at once, per partition: as many
// as a route's.
use switchyard::route::partition::ACK_WINDOW;
use tokio::sync::mpsc;

#[derive(Parser, Debug)]
#[command(about = "Bare Kafka consume-then-produce passthrough (benchmark baseline)")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long)]
    brokers: String,
    /// Topic to consume.
    #[arg(long)]
    input: String,
    /// Topic to produce every record to, unchanged.
    #[arg(long)]
    output: String,
    /// Consumer group.
    #[arg(long)]
    group: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let consumer = Arc::new(create_consumer(&args)?);
    let producer = create_producer(&args)?;

    let partitions = partition_count(&consumer, &args.input).await?;
    // Split every partition off the consumer before the first poll, so that
    // each partition's records reach only its own task.
    let mut tasks = Vec::with_capacity(partitions);
    for partition in 0..partitions as i32 {
        let queue = consumer
            .split_partition_queue(&args.input, partition)
            .with_context(|| format!("splitting off {}/{partition}", args.input))?;
        let (ack_tx, ack_rx) = mpsc::channel(ACK_WINDOW);
        tasks.push(tokio::spawn(acker(
            ack_rx,
            consumer.clone(),
            args.input.clone(),
            partition,
        )));
        let producer = producer.clone();
        let output = args.output.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let message = match queue.recv().await {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("passthrough: consume error: {e}");
                        continue;
                    }
                };
                let offset = message.offset();
                let delivery = match send(&producer, &output, &message).await {
                    Ok(d) => d,
                    Err(e) => {
                        eprintln!("passthrough: cannot produce: {e}");
                        std::process::exit(1);
                    }
                };
                // Dropped before the next await: a borrowed message must
                // not outlive the poll that returned it by much, it pins
                // librdkafka's fetch buffer.
                drop(message);
                if ack_tx.send((offset, delivery)).await.is_err() {
                    return;
                }
            }
        }));
    }

    consumer.subscribe(&[&args.input]).context("subscribing")?;
    eprintln!(
        "passthrough: {} ({partitions} partitions) -> {}, group {}",
        args.input, args.output, args.group
    );

    // The consumer's own queue serves the group's events (rebalances,
    // commits); with every partition split off, a record never comes here.
    let serve = async {
        loop {
            match consumer.recv().await {
                Ok(m) => bail!(
                    "a record of {}/{} reached the consumer's main queue",
                    m.topic(),
                    m.partition()
                ),
                Err(e) => eprintln!("passthrough: consumer error: {e}"),
            }
        }
    };
    tokio::select! {
        result = serve => result?,
        _ = shutdown_signal() => {}
    }

    for task in &tasks {
        task.abort();
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => eprintln!("passthrough: final commit failed: {e}"),
    }
    Ok(())
}

/// The consumer settings of a switchyard route, without its statistics (a
/// metrics feature).
fn create_consumer(args: &Args) -> anyhow::Result<StreamConsumer> {
    let mut config = ClientConfig::new();
    for (key, value) in switchyard::kafka::ROUTE_CONSUMER_SETTINGS {
        config.set(*key, *value);
    }
    config
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the consumer")
}

/// The producer settings of switchyard's routes.
fn create_producer(args: &Args) -> anyhow::Result<FutureProducer> {
    let mut config = ClientConfig::new();
    for (key, value) in switchyard::kafka::PRODUCER_SETTINGS {
        config.set(*key, *value);
    }
    config
        .set("bootstrap.servers", &args.brokers)
        .set(
            "linger.ms",
            switchyard::kafka::ROUTE_PRODUCER_LINGER_MS.to_string(),
        )
        .create()
        .context("creating the producer")
}

async fn partition_count(consumer: &Arc<StreamConsumer>, topic: &str) -> anyhow::Result<usize> {
    let probe = consumer.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = probe
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .with_context(|| format!("fetching the metadata of {topic}"))?;
        let partitions = metadata
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if partitions == 0 {
            bail!("topic {topic} has no partitions (does it exist?)");
        }
        Ok(partitions)
    })
    .await?
}

/// Enqueue `message` to `topic`, waiting while librdkafka's local queue is
/// full (as switchyard does).
async fn send(
    producer: &FutureProducer,
    topic: &str,
    message: &BorrowedMessage<'_>,
) -> Result<DeliveryFuture, KafkaError> {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic);
    record.key = message.key();
    record.payload = message.payload();
    // `detach` copies; the benchmark's records carry no headers, so this
    // costs nothing there.
    if let Some(headers) = message.headers().filter(|h| h.count() > 0) {
        record = record.headers(headers.detach());
    }
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

/// Await deliveries in offset order; store the offset after the last
/// delivered record once per burst (when nothing more is waiting).
async fn acker(
    mut pending: mpsc::Receiver<(i64, DeliveryFuture)>,
    consumer: Arc<StreamConsumer>,
    topic: String,
    partition: i32,
) {
    while let Some((offset, delivery)) = pending.recv().await {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => {
                // The benchmark counts every record on the sink: a lost one
                // must fail the run, not shift its figures.
                eprintln!("passthrough: delivery of {topic}/{partition}@{offset} failed: {e}");
                std::process::exit(1);
            }
            Err(_canceled) => return,
        }
        if pending.is_empty() {
            let mut tpl = TopicPartitionList::new();
            if tpl
                .add_partition_offset(&topic, partition, Offset::Offset(offset + 1))
                .is_ok()
            {
                if let Err(e) = consumer.store_offsets(&tpl) {
                    eprintln!("passthrough: offset not stored: {e}");
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
