//! Records through a route on real Kafka: transformed, in order per key,
//! and at-least-once across SIGKILL and SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use switchyard_tests::*;

/// The demo chain: stamp a field, then uppercase `name`.
fn routes(source: &str, sink: &str, dlq: &str, group: &str) -> String {
    format!(
        r#"
[kafka.consumer]
# A killed instance's partitions are handed over after this long.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[[routes]]
name = "e2e"
source = {{ topics = ["{source}"], group = "{group}" }}
chain = [
  {{ plugin = "json-set", config = {{ set = {{ stage = "enriched" }} }} }},
  {{ plugin = "uppercase", config = {{ fields = ["name"] }} }},
]
sink = {{ topic = "{sink}" }}
dead_letter = {{ topic = "{dlq}" }}
"#
    )
}

struct Topics {
    source: String,
    sink: String,
    dlq: String,
    group: String,
}

async fn topics(name: &str) -> Topics {
    let t = Topics {
        source: unique(&format!("{name}-in")),
        sink: unique(&format!("{name}-out")),
        dlq: unique(&format!("{name}-dlq")),
        group: unique(&format!("{name}-group")),
    };
    create_topics(&[&t.source, &t.sink, &t.dlq], 4).await;
    t
}

/// `count` records over `keys` keys; each value carries its key and its
/// sequence number within that key.
fn keyed_records(count: usize, keys: usize, from: usize) -> Vec<(String, String)> {
    (from..from + count)
        .map(|i| {
            let key = format!("key-{}", i % keys);
            let seq = i / keys;
            let value = serde_json::json!({"name": format!("user {key}"), "key": key, "seq": seq});
            (key, value.to_string())
        })
        .collect()
}

/// `(key, seq)` of every output record, checking each is transformed.
fn check_transformed(records: &[Record]) -> Vec<(String, u64)> {
    records
        .iter()
        .map(|r| {
            let v = r.json();
            let key = v["key"].as_str().expect("key field").to_owned();
            assert_eq!(v["stage"], "enriched", "first plugin applied: {v}");
            assert_eq!(
                v["name"],
                format!("user {key}").to_uppercase(),
                "second plugin applied: {v}"
            );
            assert_eq!(r.key.as_deref(), Some(key.as_str()), "record key kept");
            let chain = &r.headers["switchyard-chain"];
            assert!(
                chain.starts_with("json-set@") && chain.contains(",uppercase@"),
                "chain header names both plugins: {chain}"
            );
            (key, v["seq"].as_u64().expect("seq"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_keyed_records_arrive_transformed_and_in_order_per_key() {
    let t = topics("order").await;
    const N: usize = 10_000;
    const KEYS: usize = 50;
    produce(&producer(), &t.source, &keyed_records(N, KEYS, 0)).await;

    let mut sy = Switchyard::start(&routes(&t.source, &t.sink, &t.dlq, &t.group));
    sy.wait_healthy(Duration::from_secs(60));
    let out = read_topic(&t.sink, N, Duration::from_secs(120));
    assert_eq!(
        out.len(),
        N,
        "every record arrives exactly once in a clean run"
    );

    // Per key, in the order read (each key lives in one partition): the
    // sequence numbers 0, 1, 2, ... with no gap, repeat or swap.
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, seq) in check_transformed(&out) {
        per_key.entry(key).or_default().push(seq);
    }
    assert_eq!(per_key.len(), KEYS);
    for (key, seqs) in per_key {
        let expected: Vec<u64> = (0..(N / KEYS) as u64).collect();
        assert_eq!(seqs, expected, "order of {key}");
    }
    assert_eq!(topic_size(&t.dlq), 0, "nothing dead-lettered");
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}

/// Produce `total` records in slices while a switchyard runs, SIGKILL it
/// mid-stream, start another on the same group, and account for every
/// record.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_stream_loses_nothing() {
    let t = topics("crash").await;
    let config = routes(&t.source, &t.sink, &t.dlq, &t.group);
    const TOTAL: usize = 20_000;
    const KEYS: usize = 40;
    let producer = producer();

    let mut first = Switchyard::start(&config);
    first.wait_healthy(Duration::from_secs(60));
    // Feed the first half, then kill as soon as outputs are flowing and
    // the first half is not done yet.
    let half = keyed_records(TOTAL / 2, KEYS, 0);
    let feeder = {
        let producer = producer.clone();
        let source = t.source.clone();
        tokio::spawn(async move {
            for chunk in half.chunks(500) {
                produce(&producer, &source, chunk).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while topic_size(&t.sink) < 2_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress:\n{}",
            first.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let at_kill = topic_size(&t.sink);
    feeder.await.unwrap();
    produce(
        &producer,
        &t.source,
        &keyed_records(TOTAL / 2, KEYS, TOTAL / 2),
    )
    .await;
    assert!(
        (at_kill as usize) < TOTAL,
        "the kill came after the stream was done ({at_kill} outputs)"
    );

    let mut second = Switchyard::start(&config);
    second.wait_healthy(Duration::from_secs(60));
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut unique = BTreeSet::new();
    while unique.len() < TOTAL && std::time::Instant::now() < deadline {
        out = read_topic(
            &t.sink,
            topic_size(&t.sink) as usize,
            Duration::from_secs(30),
        );
        unique = check_transformed(&out).into_iter().collect();
        if unique.len() < TOTAL {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let expected: BTreeSet<(String, u64)> = (0..TOTAL)
        .map(|i| (format!("key-{}", i % KEYS), (i / KEYS) as u64))
        .collect();
    let missing: Vec<_> = expected.difference(&unique).take(5).collect();
    assert!(
        missing.is_empty(),
        "records lost, e.g. {missing:?}\n{}",
        second.log_text()
    );
    let duplicates = out.len() - unique.len();
    println!(
        "sigkill: {TOTAL} records, {at_kill} outputs at the kill, {duplicates} duplicates \
         redelivered from the uncommitted window"
    );
    assert_eq!(topic_size(&t.dlq), 0, "nothing dead-lettered");
    assert_eq!(second.terminate(Duration::from_secs(60)).code(), Some(0));
}

/// SIGTERM mid-stream drains and commits: a restart then neither loses
/// nor repeats anything.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_commits_so_a_restart_repeats_nothing() {
    let t = topics("drain").await;
    let config = routes(&t.source, &t.sink, &t.dlq, &t.group);
    const TOTAL: usize = 10_000;
    const KEYS: usize = 20;
    let producer = producer();

    let mut first = Switchyard::start(&config);
    first.wait_healthy(Duration::from_secs(60));
    let records = keyed_records(TOTAL, KEYS, 0);
    let feeder = {
        let producer = producer.clone();
        let source = t.source.clone();
        tokio::spawn(async move {
            for chunk in records.chunks(500) {
                produce(&producer, &source, chunk).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    while topic_size(&t.sink) < 1_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = first.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "clean exit:\n{}", first.log_text());
    assert!(
        first.log_text().contains("offsets committed"),
        "{}",
        first.log_text()
    );
    feeder.await.unwrap();

    let mut second = Switchyard::start(&config);
    second.wait_healthy(Duration::from_secs(60));
    let out = read_topic(&t.sink, TOTAL, Duration::from_secs(120));
    // Give a duplicate, if any, time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let size = topic_size(&t.sink) as usize;
    let unique: BTreeSet<_> = check_transformed(&out).into_iter().collect();
    assert_eq!(unique.len(), TOTAL, "nothing lost");
    assert_eq!(size, TOTAL, "nothing repeated after a clean shutdown");
    assert_eq!(second.terminate(Duration::from_secs(60)).code(), Some(0));
}
