//! Kafka faults on a broker of the test's own (its own port and state
//! directory, so that freezing or stopping it disturbs no other test): a
//! broker frozen past the consumer group's session timeout, a broker
//! stopped and started again, a source topic created after its route, a
//! sink topic that does not exist (on a broker that creates none).
//! Each time nothing is lost, the fault shows in `/readyz` (503 with the
//! reason), `/admin/routes` and `/metrics` while it lasts, and the route
//! recovers without a restart of switchyard.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use switchyard_tests::*;

const ADMIN_TOKEN: &str = "kafka-faults-admin-token-0123456789";

/// Seconds a route may make no progress before the instance is unready.
const STALL_AFTER_S: u64 = 3;

/// A single-node Apache Kafka broker started by `scripts/kafka.sh` on a
/// free port with its own state directory; stopped and removed on drop.
struct Broker {
    port: u16,
    state: tempfile::TempDir,
    /// Whether the broker creates a topic on first use.
    auto_create: bool,
}

impl Broker {
    fn start() -> Broker {
        Broker::start_creating_topics(true)
    }

    fn start_creating_topics(auto_create: bool) -> Broker {
        let broker = Broker {
            port: free_port_pair(),
            state: tempfile::tempdir().expect("state dir"),
            auto_create,
        };
        broker.script("start", false);
        broker
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn script(&self, command: &str, keep_state: bool) {
        let out = Command::new(workspace().join("scripts/kafka.sh"))
            .arg(command)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_STATE_DIR", self.state.path())
            .env("KAFKA_KEEP_STATE", if keep_state { "1" } else { "0" })
            .env("KAFKA_AUTO_CREATE_TOPICS", self.auto_create.to_string())
            .env("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "kafka.sh {command} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The broker's pid, while it runs.
    fn pid(&self) -> Option<String> {
        let file: PathBuf = self.state.path().join("kafka.pid");
        std::fs::read_to_string(file)
            .ok()
            .map(|p| p.trim().to_owned())
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the broker runs");
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// SIGSTOP: the broker holds its connections but answers nothing.
    fn freeze(&self) {
        self.signal("-STOP");
    }

    fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Stop the broker, keeping its data.
    fn stop_keeping_data(&self) {
        self.script("stop", true);
    }

    /// Start it again on the same port and data.
    fn start_again(&self) {
        self.script("start", true);
    }

    async fn create_topics(&self, names: &[&str], partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("admin client");
        let topics: Vec<NewTopic> = names
            .iter()
            .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
            .collect();
        for r in admin
            .create_topics(&topics, &AdminOptions::new())
            .await
            .expect("create topics")
        {
            r.expect("topic created");
        }
    }

    /// Produce `values` (keyed by themselves) and wait for every delivery.
    async fn produce(&self, topic: &str, values: &[String]) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        let deliveries: Vec<_> = values
            .iter()
            .map(|v| {
                producer
                    .send_result(FutureRecord::to(topic).key(v).payload(v))
                    .expect("enqueued")
            })
            .collect();
        for d in deliveries {
            d.await.expect("producer alive").expect("delivered");
        }
    }

    /// The distinct values in `topic` (every partition from the start),
    /// read until `expected` are seen or `timeout` passes.
    fn distinct_values(&self, topic: &str, expected: usize, timeout: Duration) -> BTreeSet<String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut seen = BTreeSet::new();
        while seen.len() < expected && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                if let Some(v) = m.payload() {
                    seen.insert(String::from_utf8_lossy(v).into_owned());
                }
            }
        }
        seen
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // A frozen broker cannot stop.
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
        }
        let _ = Command::new(workspace().join("scripts/kafka.sh"))
            .arg("stop")
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_STATE_DIR", self.state.path())
            .env("KAFKA_STOP_TIMEOUT", "5")
            .output();
    }
}

/// A free port whose successor (the KRaft controller's) is free too.
fn free_port_pair() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        if port < 65535 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// One route, `source` to `sink`, with a short session timeout so that a
/// freeze of a few seconds outlasts it.
fn routes(source: &str, sink: &str, group: &str) -> String {
    format!(
        r#"
[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[health]
stall_after_s = {STALL_AFTER_S}

[[routes]]
name = "faults"
source = {{ topics = ["{source}"], group = "{group}" }}
chain = [ {{ plugin = "noop" }} ]
sink = {{ topic = "{sink}" }}
"#
    )
}

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

fn readyz(sy: &Switchyard) -> Option<(u16, serde_json::Value)> {
    get_json(&format!("http://{}/readyz", sy.http))
}

/// Wait until `/readyz` answers 503 naming the route; returns the body.
fn wait_unready(sy: &Switchyard, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((code, body)) = readyz(sy) {
            if code == 503
                && body["reasons"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r.as_str().unwrap().contains("`faults`")))
            {
                return body;
            }
            last = Some((code, body));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "/readyz did not turn 503 within {timeout:?}; last answer {last:?}\n{}",
        sy.log_text()
    );
}

fn wait_ready(sy: &Switchyard, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        match readyz(sy) {
            Some((200, _)) => return,
            other => last = other,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "/readyz not 200 within {timeout:?}; last answer {last:?}\n{}",
        sy.log_text()
    );
}

/// The route's entry in `GET /admin/routes`.
fn admin_route(sy: &Switchyard) -> serde_json::Value {
    let (code, body) = get_json(&format!("http://{}/admin/routes", sy.http)).expect("answer");
    assert_eq!(code, 200, "{body}");
    body["routes"][0].clone()
}

fn metrics(sy: &Switchyard) -> String {
    let (code, text) = get_text(&format!("http://{}/metrics", sy.http));
    assert_eq!(code, 200, "{text}");
    text
}

/// The value of the series `name{labels}` (labels as exposed, in order).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Everything produced arrives at the sink (once or more).
fn assert_all_arrived(broker: &Broker, sink: &str, produced: &[String], sy: &Switchyard) {
    let seen = broker.distinct_values(sink, produced.len(), Duration::from_secs(30));
    let missing: Vec<&String> = produced.iter().filter(|v| !seen.contains(*v)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} records missing at the sink, e.g. {:?}\n{}",
        missing.len(),
        produced.len(),
        &missing[..missing.len().min(5)],
        sy.log_text()
    );
}

/// How long records may take to arrive after a fault clears. Generous: a
/// broker thawed on a busy machine may take a while to serve its groups
/// again.
const RECOVERY: Duration = Duration::from_secs(120);

/// Wait until the sink holds `count` distinct values; how long it took.
fn wait_delivered(broker: &Broker, sink: &str, count: usize, sy: &Switchyard) -> Duration {
    let start = Instant::now();
    let seen = broker.distinct_values(sink, count, RECOVERY);
    assert!(
        seen.len() >= count,
        "only {} of {count} records reached the sink within {RECOVERY:?}; the route: {}\n{}",
        seen.len(),
        get_json(&format!("http://{}/admin/routes", sy.http))
            .map(|(_, body)| body.to_string())
            .unwrap_or_default(),
        sy.log_text()
    );
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_frozen_past_the_session_timeout_is_reported_and_the_route_resumes() {
    let broker = Broker::start();
    let (source, sink, group) = (
        unique("freeze-in"),
        unique("freeze-out"),
        unique("freeze-g"),
    );
    broker.create_topics(&[&source, &sink], 2).await;
    let mut sy = Switchyard::start_with(
        &routes(&source, &sink, &group),
        &["--brokers", &broker.bootstrap()],
    );
    sy.wait_healthy(Duration::from_secs(60));

    let before = values("before", 100);
    broker.produce(&source, &before).await;
    wait_delivered(&broker, &sink, before.len(), &sy);

    // Frozen well past the 6 s session timeout.
    broker.freeze();
    let frozen_at = Instant::now();
    let body = wait_unready(&sy, Duration::from_secs(20));
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("Kafka"), "the reason names Kafka: {body}");
    let route = admin_route(&sy);
    assert_eq!(route["health"]["stalled"], true, "{route}");
    assert_eq!(route["health"]["kafka_reachable"], false, "{route}");
    let text = metrics(&sy);
    assert_eq!(
        metric(&text, "switchyard_route_stalled{route=\"faults\"}"),
        Some(1.0),
        "{text}"
    );
    let left = Duration::from_secs(12).saturating_sub(frozen_at.elapsed());
    std::thread::sleep(left);
    broker.thaw();

    let after = values("after", 100);
    broker.produce(&source, &after).await;
    let took = wait_delivered(&broker, &sink, before.len() + after.len(), &sy);
    eprintln!("records produced after the thaw reached the sink within {took:?}");
    wait_ready(&sy, Duration::from_secs(30));
    assert!(
        sy.log_text().contains("session timed out") || sy.log_text().contains("SESSTMOUT"),
        "the freeze outlasted the session:\n{}",
        sy.log_text()
    );
    let all: Vec<String> = before.into_iter().chain(after).collect();
    assert_all_arrived(&broker, &sink, &all, &sy);
    let route = admin_route(&sy);
    assert_eq!(route["state"], "running", "{route}");
    assert_eq!(route["health"]["stalled"], false, "{route}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_stopped_and_started_again_is_reported_and_the_route_resumes() {
    let broker = Broker::start();
    let (source, sink, group) = (unique("down-in"), unique("down-out"), unique("down-g"));
    broker.create_topics(&[&source, &sink], 2).await;
    let mut sy = Switchyard::start_with(
        &routes(&source, &sink, &group),
        &["--brokers", &broker.bootstrap()],
    );
    sy.wait_healthy(Duration::from_secs(60));

    let before = values("before", 100);
    broker.produce(&source, &before).await;
    wait_delivered(&broker, &sink, before.len(), &sy);

    broker.stop_keeping_data();
    let body = wait_unready(&sy, Duration::from_secs(20));
    assert!(body["reasons"].to_string().contains("Kafka"), "{body}");
    let text = metrics(&sy);
    assert_eq!(
        metric(&text, "switchyard_route_stalled{route=\"faults\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "switchyard_route_state{route=\"faults\",state=\"running\"}"
        ),
        Some(1.0),
        "{text}"
    );
    broker.start_again();

    let after = values("after", 100);
    broker.produce(&source, &after).await;
    let took = wait_delivered(&broker, &sink, before.len() + after.len(), &sy);
    eprintln!("records produced after the restart reached the sink within {took:?}");
    wait_ready(&sy, Duration::from_secs(30));
    let all: Vec<String> = before.into_iter().chain(after).collect();
    assert_all_arrived(&broker, &sink, &all, &sy);
    // True lag, from the group's committed offsets: none left.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let route = admin_route(&sy);
        if route["health"]["lag"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "lag never reached 0: {route}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_waits_for_its_topic_and_consumes_once_it_is_created() {
    let broker = Broker::start();
    let (source, sink, group) = (unique("late-in"), unique("late-out"), unique("late-g"));
    broker.create_topics(&[&sink], 1).await;
    let sy = Switchyard::start_custom(
        &plugins_dir(),
        &routes(&source, &sink, &group),
        &["--brokers", &broker.bootstrap()],
        &[("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)],
    );

    let body = wait_unready(&sy, Duration::from_secs(60));
    assert!(
        body["reasons"]
            .to_string()
            .contains(&format!("waiting for topic {source}")),
        "{body}"
    );
    let route = admin_route(&sy);
    assert_eq!(
        route["health"]["problem"],
        format!("waiting for topic {source}"),
        "{route}"
    );

    broker.create_topics(&[&source], 2).await;
    let records = values("late", 100);
    broker.produce(&source, &records).await;
    let took = wait_delivered(&broker, &sink, records.len(), &sy);
    eprintln!("records of the new topic reached the sink within {took:?}");
    wait_ready(&sy, Duration::from_secs(30));
    assert_all_arrived(&broker, &sink, &records, &sy);
    let text = metrics(&sy);
    assert_eq!(
        metric(
            &text,
            "switchyard_route_state{route=\"faults\",state=\"running\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains("switchyard_build_info{version="), "{text}");
    assert!(text.contains("switchyard_start_time_seconds "), "{text}");

    // Paused by an operator: the lag stays true (from the group's
    // committed offsets) and the instance stays ready.
    let (code, body) = http_request(
        "POST",
        &format!("http://{}/admin/routes/faults/pause", sy.http),
        Some(ADMIN_TOKEN),
        b"{}".to_vec(),
    );
    assert_eq!(code, 200, "{body}");
    let waiting = values("paused", 40);
    broker.produce(&source, &waiting).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics(&sy);
        let lag: f64 = text
            .lines()
            .filter(|l| l.starts_with("switchyard_consumer_lag{route=\"faults\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let route = admin_route(&sy);
        if lag == 40.0 && route["health"]["lag"] == 40 {
            assert_eq!(route["state"], "paused", "{route}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lag while paused: metric {lag}, route {route}\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, body) = readyz(&sy).expect("answer");
    assert_eq!(code, 200, "a paused route keeps the instance ready: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_sink_topic_is_reported_and_the_route_delivers_once_it_exists() {
    let broker = Broker::start_creating_topics(false);
    let (source, sink, group) = (
        unique("nosink-in"),
        unique("nosink-out"),
        unique("nosink-g"),
    );
    broker.create_topics(&[&source], 1).await;
    let mut sy = Switchyard::start_with(
        &routes(&source, &sink, &group),
        &["--brokers", &broker.bootstrap()],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let records = values("held", 50);
    broker.produce(&source, &records).await;

    // Taken from the source, never acknowledged by the sink: not ready,
    // saying so, for as long as it lasts.
    let body = wait_unready(&sy, Duration::from_secs(60));
    assert!(
        body["reasons"].to_string().contains("not acknowledged"),
        "{body}"
    );
    let route = admin_route(&sy);
    assert_eq!(route["health"]["stalled"], true, "{route}");
    assert_eq!(
        metric(&metrics(&sy), "switchyard_route_stalled{route=\"faults\"}"),
        Some(1.0)
    );

    // The topic made: every record arrives, and the instance is ready
    // again, with no restart.
    broker.create_topics(&[&sink], 1).await;
    let took = wait_delivered(&broker, &sink, records.len(), &sy);
    eprintln!("held records reached the new sink topic within {took:?}");
    assert_all_arrived(&broker, &sink, &records, &sy);
    wait_ready(&sy, Duration::from_secs(30));
    assert!(sy.is_running());
}
