//! A record too big for its sink, on real Kafka: the sink topic refuses it,
//! and so does the dead-letter topic; a copy with its headers, its context
//! and its key, its value cut to an excerpt (the original size in a
//! header), goes to the dead-letter topic instead, and the route moves on.
//! Both ways a record is refused as too large are covered: by the broker
//! (a topic whose `max.message.bytes` is small) and by the client before
//! it is sent (a value over the producer's `message.max.bytes`).

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use switchyard_tests::*;

/// Create `name` with one partition and a topic setting of its own.
async fn create_topic_with(name: &str, max_message_bytes: usize) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let limit = max_message_bytes.to_string();
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("max.message.bytes", &limit);
    for result in admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .expect("create topic")
    {
        result.expect("topic created");
    }
}

/// Produce `(key, value)` records in order, values up to 3 MiB.
async fn produce_large(topic: &str, records: &[(String, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("message.max.bytes", (4 << 20).to_string())
        .create()
        .expect("producer");
    for (key, value) in records {
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(value),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_too_big_for_the_sink_and_the_dead_letter_topic_is_dead_lettered_cut() {
    let (source, sink, dlq, group) = (
        unique("big-in"),
        unique("big-out"),
        unique("big-dlq"),
        unique("big"),
    );
    // The source takes anything; the sink and the dead-letter topic take
    // records of 8 KiB at most.
    create_topic_with(&source, 4 << 20).await;
    create_topic_with(&sink, 8 << 10).await;
    create_topic_with(&dlq, 8 << 10).await;
    let routes = format!(
        r#"
[[routes]]
name = "big"
source = {{ topics = ["{source}"], group = "{group}" }}
sink = {{ topic = "{sink}" }}
dead_letter = {{ topic = "{dlq}" }}
"#
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));

    // 40 KB: the client sends it, the broker refuses it. 2 MiB: the client
    // refuses it before sending (over its 1 MB `message.max.bytes`).
    let mid: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let huge = vec![b'z'; 2 << 20];
    let small = |n: u32| format!("small-{n}").into_bytes();
    produce_large(
        &source,
        &[
            ("s1".into(), small(1)),
            ("mid".into(), mid.clone()),
            ("s2".into(), small(2)),
            ("huge".into(), huge.clone()),
            ("s3".into(), small(3)),
        ],
    )
    .await;

    // The route moves on: the small records reach the sink, once each, the
    // big ones the dead-letter topic, and the group's offset passes all
    // five. (Small records that shared a batch with `mid`, which the
    // broker refuses whole, are produced again after it; a later batch may
    // land first, so their order at the sink is not asserted.)
    let out = read_topic(&sink, 3, Duration::from_secs(60));
    let mut values: Vec<_> = out.iter().filter_map(|r| r.value.clone()).collect();
    values.sort();
    assert_eq!(
        values,
        ["small-1", "small-2", "small-3"],
        "{}",
        sy.log_text()
    );
    let dead = read_topic(&dlq, 2, Duration::from_secs(60));
    assert_eq!(dead.len(), 2, "{dead:?}\n{}", sy.log_text());
    for (key, offset, original) in [("mid", "1", &mid), ("huge", "3", &huge)] {
        let record = dead
            .iter()
            .find(|r| r.key.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no dead letter keyed {key}: {dead:?}"));
        let header = |name: &str| {
            record
                .headers
                .get(name)
                .unwrap_or_else(|| panic!("no {name} in {:?}", record.headers))
                .clone()
        };
        assert_eq!(header("switchyard-dlq-route"), "big");
        assert_eq!(header("switchyard-dlq-source-topic"), source);
        assert_eq!(header("switchyard-dlq-source-offset"), offset);
        assert_eq!(header("switchyard-dlq-error-kind"), "sink");
        let error = header("switchyard-dlq-error");
        assert!(
            error.contains(&format!("producing to `{sink}` failed")) && error.contains("too large"),
            "{error}"
        );
        assert_eq!(
            header("switchyard-dlq-value-size"),
            original.len().to_string()
        );
        let kept: usize = header("switchyard-dlq-value-cut").parse().unwrap();
        assert!(kept > 0 && kept < original.len(), "kept {kept}");
        let value = record.value.as_deref().unwrap().as_bytes();
        assert_eq!(value, &original[..kept], "the excerpt is the value's start");
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    while committed_offset(&group, &source, 0) != Some(5) {
        assert!(
            Instant::now() < deadline,
            "committed {:?}:\n{}",
            committed_offset(&group, &source, 0),
            sy.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, health) = sy.health().expect("health");
    assert_eq!(health["routes"][0]["state"], "running", "{code} {health}");
    assert_eq!(health["routes"][0]["dead_lettered"], 2, "{health}");
    assert_eq!(sy.terminate(Duration::from_secs(30)).code(), Some(0));
}
