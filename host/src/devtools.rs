//! `switchyard produce` and `switchyard consume`: small helpers to try a
//! route by hand, mostly against the in-memory development broker.

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::cli::{BrokerArgs, ConsumeArgs, ProduceArgs};

/// The brokers to use: given, or asked of a running switchyard.
async fn brokers(args: &BrokerArgs) -> anyhow::Result<String> {
    if let Some(b) = &args.brokers {
        return Ok(b.clone());
    }
    let url = format!("http://{}/healthz", args.http);
    let health: serde_json::Value = reqwest::get(&url)
        .await
        .with_context(|| {
            format!(
                "no --brokers given and no switchyard answers at {url} to tell its brokers \
                 (start one with `switchyard run`, or pass --brokers)"
            )
        })?
        .json()
        .await
        .with_context(|| format!("reading {url}"))?;
    health["kafka"]["brokers"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{url} did not name its brokers"))
}

pub async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let brokers = brokers(&args.brokers).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .context("creating the producer")?;
    let lines: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .collect::<Result<_, _>>()
        .context("reading stdin")?;
    let mut count = 0usize;
    let mut pending = Vec::new();
    for line in lines.iter().filter(|l| !l.is_empty()) {
        let mut record = FutureRecord::<str, str>::to(&args.topic).payload(line);
        if let Some(key) = &args.key {
            record = record.key(key);
        }
        pending.push(producer.send(record, Duration::from_secs(30)));
        count += 1;
    }
    for result in futures::future::join_all(pending).await {
        result.map_err(|(e, _)| e).context("producing")?;
    }
    eprintln!("produced {count} records to {} at {brokers}", args.topic);
    Ok(())
}

pub async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let brokers = brokers(&args.brokers).await?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set(
            "group.id",
            format!("switchyard-consume-{}", std::process::id()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the consumer")?;
    consumer.subscribe(&[&args.topic])?;
    let idle = Duration::from_secs(args.idle_timeout);
    let mut seen = 0usize;
    while args.count.is_none_or(|n| seen < n) {
        let message = match tokio::time::timeout(idle, consumer.recv()).await {
            Err(_) => break,
            Ok(m) => m.context("consuming")?,
        };
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
        if args.keys {
            let key = String::from_utf8_lossy(message.key().unwrap_or_default());
            println!("{key}\t{value}");
        } else {
            println!("{value}");
        }
        seen += 1;
    }
    eprintln!("consumed {seen} records from {}", args.topic);
    Ok(())
}
