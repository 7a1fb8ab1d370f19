//! The driver's own Kafka clients: topic creation, the bulk loader, the
//! paced producer's client and the sink reader.

use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::records;

pub async fn create_topics(brokers: &str, names: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the admin client")?;
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&topics, &options).await? {
        if let Err((topic, code)) = result {
            bail!("creating topic {topic}: {code}");
        }
    }
    Ok(())
}

/// The producer of the driver's records. `linger_ms` 1 for the paced
/// producer (its part of the measured latency stays small and the same for
/// every target), more for the bulk loader.
pub fn producer(brokers: &str, linger_ms: u32) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.kbytes", "262144")
        .create()
        .context("creating the driver's producer")
}

/// Hand record `i` to the producer, on partition `i % partitions` (so that
/// every partition gets the same share), waiting while its queue is full.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    i: u64,
    sent_us: u64,
) -> anyhow::Result<DeliveryFuture> {
    let key = records::key(i);
    let value = records::value(i, sent_us);
    let mut record = FutureRecord::to(topic)
        .partition((i % partitions as u64) as i32)
        .key(key.as_bytes())
        .payload(&value);
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((e, _)) => bail!("producing to {topic}: {e}"),
        }
    }
}

/// Write `count` records to `topic` as fast as the broker takes them.
pub async fn preload(
    brokers: &str,
    topic: &str,
    partitions: i32,
    count: u64,
) -> anyhow::Result<()> {
    let producer = producer(brokers, 50)?;
    let mut deliveries = Vec::with_capacity(count as usize);
    for i in 0..count {
        deliveries.push(send(&producer, topic, partitions, i, 0).await?);
    }
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => bail!("preloading {topic}: {e}"),
            Err(_) => bail!("preloading {topic}: the producer went away"),
        }
    }
    Ok(())
}

/// A consumer of every partition of `topic` from its start, outside any
/// group (assigned, nothing committed): it reads what the target produced.
pub fn sink_reader(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}.reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the sink reader")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl).context("assigning the sink")?;
    Ok(consumer)
}

/// How many records `topic` holds (sum of its partitions' high
/// watermarks; the benchmark's topics are never truncated).
pub async fn record_count(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<i64> {
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()?;
        let mut total = 0;
        for p in 0..partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            total += high - low;
        }
        Ok(total)
    })
    .await?
}
