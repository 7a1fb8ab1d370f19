//! Horizontal scale on Kafka: two switchyard instances in one consumer
//! group share a topic's partitions; one is killed (SIGKILL) mid-stream;
//! the other takes its partitions over; every record is accounted for.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use switchyard_tests::*;

/// The same route on both instances, each stamping its outputs with its
/// own name, so that the sink tells who processed what.
fn routes(source: &str, sink: &str, group: &str, instance: &str) -> String {
    format!(
        r#"
[kafka.consumer]
# A killed instance's partitions are handed over after this long.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[[routes]]
name = "scale"
source = {{ topics = ["{source}"], group = "{group}" }}
chain = [{{ plugin = "json-set", config = {{ set = {{ by = "{instance}" }} }} }}]
sink = {{ topic = "{sink}" }}
"#
    )
}

fn record(n: usize) -> (String, String) {
    (format!("k{}", n % 64), format!(r#"{{"n":{n}}}"#))
}

/// Every output on the sink now: for each input number, who processed it
/// (one entry per copy).
fn outputs(sink: &str) -> BTreeMap<u64, Vec<String>> {
    let mut by_input: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let size = topic_size(sink) as usize;
    for r in read_topic(sink, size, Duration::from_secs(60)) {
        let v = r.json();
        by_input
            .entry(v["n"].as_u64().unwrap())
            .or_default()
            .push(v["by"].as_str().unwrap().to_owned());
    }
    by_input
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_instances_partitions_are_taken_over_and_nothing_is_lost() {
    let (source, sink) = (unique("scale-in"), unique("scale-out"));
    create_topics(&[&source], 4).await;
    create_topics(&[&sink], 4).await;
    let group = unique("scale");
    let mut a = Switchyard::start(&routes(&source, &sink, &group, "a"));
    let mut b = Switchyard::start(&routes(&source, &sink, &group, "b"));
    a.wait_healthy(Duration::from_secs(60));
    b.wait_healthy(Duration::from_secs(60));

    // A steady stream: 200 records every 100 ms, 12,000 in all.
    const TOTAL: usize = 12_000;
    const STEP: usize = 200;
    let producer = producer();
    let mut sent = 0;
    let mut both_worked = false;
    let mut killed_at = None;
    let started = Instant::now();
    while sent < TOTAL {
        let batch: Vec<_> = (sent..sent + STEP).map(record).collect();
        produce(&producer, &source, &batch).await;
        sent += STEP;
        // Once both instances have done work, kill one mid-stream.
        if !both_worked && sent % 2_000 == 0 {
            let seen = outputs(&sink);
            let by: BTreeSet<&str> = seen.values().flatten().map(String::as_str).collect();
            both_worked = by.contains("a") && by.contains("b");
        }
        if both_worked && killed_at.is_none() {
            a.kill();
            killed_at = Some(sent);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed_at = killed_at.unwrap_or_else(|| {
        panic!(
            "the two instances never both processed records (partitions not shared?):\n{}\n{}",
            a.log_text(),
            b.log_text()
        )
    });
    assert!(killed_at < TOTAL * 3 / 4, "killed only at {killed_at}");

    // Every input has an output; copies only from what was in flight.
    let deadline = Instant::now() + Duration::from_secs(90);
    let by_input = loop {
        let by_input = outputs(&sink);
        if by_input.len() == TOTAL || Instant::now() > deadline {
            break by_input;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let missing: Vec<usize> = (0..TOTAL)
        .filter(|n| !by_input.contains_key(&(*n as u64)))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {TOTAL} inputs have no output, e.g. {missing:?}\n{}",
        TOTAL - by_input.len(),
        b.log_text()
    );
    let copies: usize = by_input.values().map(|c| c.len() - 1).sum();
    // What `a` had not committed when it died (auto-commit every second,
    // at 2,000 records/s), processed again by `b`.
    assert!(copies <= 6_000, "{copies} repeated outputs");
    // The survivor did the rest: everything sent well after the kill (past
    // the session timeout) was processed by `b`.
    let late = (killed_at + 2_000).min(TOTAL - STEP);
    for n in late..TOTAL {
        assert!(
            by_input[&(n as u64)].iter().any(|by| by == "b"),
            "input {n} (after the kill) not processed by the survivor"
        );
    }
    let by_a = by_input
        .values()
        .filter(|c| c.contains(&"a".to_owned()))
        .count();
    let by_b = by_input
        .values()
        .filter(|c| c.contains(&"b".to_owned()))
        .count();
    println!(
        "scale-out: {TOTAL} records in {:.1} s; `a` processed {by_a}, `b` {by_b}; `a` killed \
         after {killed_at} sent; {copies} repeated",
        started.elapsed().as_secs_f64()
    );
    assert!(by_a > 0 && by_b > 0);
    assert!(b.is_running(), "the survivor stopped:\n{}", b.log_text());
}
