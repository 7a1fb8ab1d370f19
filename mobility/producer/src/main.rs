//! `mobility-producer`: the mobility platform's internal events, produced
//! non-stop to Kafka (or printed as JSON Lines with `--print`).
//!
//! Records are keyed by the user's id, so one user's events stay in order
//! on one partition; the value is the event's JSON envelope, with the
//! headers `event-type` and `content-type`. The producer is idempotent and
//! waits for every acknowledgement before it exits. The first delivery
//! error stops producing and makes the run fail, rather than going on past
//! a hole in the users' life cycles. It creates nothing on the broker: the
//! topic is the router's or the operator's to create.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use clap::Parser;
use mobility_contracts::Envelope;
use mobility_producer::{discover, Clock, SimOptions, Simulation};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Generates the mobility platform's internal events (users registering,
/// travelling, paying, being refunded) and produces them to Kafka.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Kafka bootstrap servers (`HOST:PORT[,HOST:PORT...]`). Without it, the
    /// brokers of the Switchyard at `--switchyard` are used.
    #[arg(long, env = "MOBILITY_PRODUCER_BROKERS", value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// HTTP address of a running Switchyard, asked for its Kafka brokers
    /// (`GET /healthz`) when `--brokers` is not given.
    #[arg(
        long,
        env = "MOBILITY_PRODUCER_SWITCHYARD",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:8080"
    )]
    switchyard: String,
    /// How long to wait, in seconds, for that Switchyard to answer (it may
    /// be starting alongside).
    #[arg(long, env = "MOBILITY_PRODUCER_WAIT_SECS", default_value_t = 60)]
    wait_secs: u64,
    /// Topic to produce the events to. It is not created: create it, or let
    /// the broker's auto-creation do so on the first record.
    #[arg(
        long,
        env = "MOBILITY_PRODUCER_TOPIC",
        default_value = "mobility.internal"
    )]
    topic: String,
    /// Events per second; 0 sends them as fast as the producer takes them.
    #[arg(long, env = "MOBILITY_PRODUCER_RATE", default_value_t = 20.0, value_parser = parse_rate)]
    rate: f64,
    /// Stop after this many events, exiting once all are acknowledged.
    /// Without it, run until stopped (Ctrl-C or SIGTERM).
    #[arg(long, env = "MOBILITY_PRODUCER_COUNT", value_name = "N")]
    count: Option<u64>,
    /// Seed of the simulation: the same seed gives the same events. Without
    /// it, one is taken from the clock and logged, so a run can be
    /// replayed.
    #[arg(long, env = "MOBILITY_PRODUCER_SEED")]
    seed: Option<u64>,
    /// Size of the user population: users register until there are this
    /// many.
    #[arg(
        long,
        env = "MOBILITY_PRODUCER_USERS",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    users: u32,
    /// Simulate the clock from this RFC 3339 time (each event 1 to 5
    /// seconds after the previous, fixed by the seed) instead of stamping
    /// events with the wall clock.
    #[arg(long, env = "MOBILITY_PRODUCER_START", value_name = "RFC3339", value_parser = parse_start)]
    start: Option<DateTime<Utc>>,
    /// Write the events to stdout as JSON Lines instead of producing them to
    /// Kafka (no broker needed).
    #[arg(long, env = "MOBILITY_PRODUCER_PRINT")]
    print: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!("{s:?} is not a number of events per second (>= 0)")),
    }
}

fn parse_start(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(0))
        .map_err(|e| {
            format!("{s:?} is not an RFC 3339 date-time such as 2026-01-01T00:00:00Z: {e}")
        })
}

/// How many records may wait for their acknowledgement at once; beyond,
/// producing waits.
const IN_FLIGHT: usize = 10_000;
/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MOBILITY_PRODUCER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args, signals()).await {
        Ok(summary) => summary.exit_code(),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Each Ctrl-C or SIGTERM received: the first stops producing, a second
/// one gives up waiting for acknowledgements.
fn signals() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        loop {
            #[cfg(unix)]
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    rx
}

async fn run(args: Args, mut signals: mpsc::UnboundedReceiver<()>) -> anyhow::Result<Summary> {
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    let clock = match args.start {
        Some(start) => Clock::Simulated { start },
        None => Clock::Live,
    };
    tracing::info!(
        seed,
        users = args.users,
        rate = args.rate,
        ?clock,
        "simulating (replay with --seed {seed})"
    );
    let sim = Simulation::new(
        seed,
        SimOptions {
            users: args.users as usize,
            clock,
        },
    );
    let sink = if args.print {
        Sink::Print(std::io::stdout())
    } else {
        let brokers = match args.brokers {
            Some(brokers) => brokers,
            None => {
                let wait = Duration::from_secs(args.wait_secs);
                tokio::select! {
                    brokers = discover::switchyard_brokers(&args.switchyard, wait) => brokers?,
                    Some(()) = signals.recv() => {
                        tracing::info!("stopped on a signal before producing anything");
                        return Ok(Summary::default());
                    }
                }
            }
        };
        tracing::info!(%brokers, topic = %args.topic, "producing to Kafka");
        Sink::kafka(&brokers, args.topic)?
    };
    Ok(produce(sim, sink, args.rate, args.count, &mut signals).await)
}

/// A seed for a run without `--seed`: the clock's nanoseconds.
fn seed_from_clock() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_nanos() as u64
}

/// Where the events go.
enum Sink {
    /// JSON Lines; stdout is line-buffered, so each event shows at once.
    Print(std::io::Stdout),
    Kafka {
        producer: FutureProducer,
        topic: String,
        /// To the task counting acknowledgements.
        deliveries: mpsc::Sender<DeliveryFuture>,
        acks: Arc<Acks>,
        acker: tokio::task::JoinHandle<()>,
    },
}

/// Outcomes of the deliveries so far.
#[derive(Default)]
struct Acks {
    acknowledged: AtomicU64,
    failed: AtomicU64,
}

impl Sink {
    fn kafka(brokers: &str, topic: String) -> anyhow::Result<Sink> {
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
        Ok(Sink::Kafka {
            producer,
            topic,
            deliveries,
            acks,
            acker,
        })
    }

    /// Hands `event` on; false once the sink can take no more (stdout
    /// closed, or a delivery failed). Cancel-safe: cancelled, the event was
    /// not produced.
    async fn send(&mut self, event: &Envelope) -> bool {
        let json = serde_json::to_string(event).expect("an envelope always serialises");
        match self {
            Sink::Print(out) => match writeln!(out, "{json}") {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    tracing::info!("stdout closed: stopping");
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing to stdout");
                    false
                }
            },
            Sink::Kafka {
                producer,
                topic,
                deliveries,
                acks,
                ..
            } => {
                if acks.failed.load(Ordering::Relaxed) > 0 {
                    return false;
                }
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "event-type",
                        value: Some(event.event.type_name()),
                    })
                    .insert(Header {
                        key: "content-type",
                        value: Some("application/json"),
                    });
                let mut record = FutureRecord::to(topic)
                    .key(event.user_id.as_bytes())
                    .payload(json.as_bytes())
                    .headers(headers);
                // Room for the acknowledgement first: waiting for it is the
                // one wait that may be cut short (by a signal) before the
                // record is handed to the producer, so that no record is
                // produced without its acknowledgement being awaited.
                let Ok(room) = deliveries.reserve().await else {
                    return false;
                };
                loop {
                    match producer.send_result(record) {
                        Ok(delivery) => {
                            room.send(delivery);
                            return true;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            // Not taken: dropping it on a signal loses
                            // nothing that was produced.
                            record = back;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err((e, _)) => {
                            tracing::error!(error = %e, "producing an event");
                            acks.failed.fetch_add(1, Ordering::Relaxed);
                            return false;
                        }
                    }
                }
            }
        }
    }

    fn acknowledged(&self, sent: u64) -> u64 {
        match self {
            Sink::Print(_) => sent,
            Sink::Kafka { acks, .. } => acks.acknowledged.load(Ordering::Relaxed),
        }
    }

    /// Waits for every delivery, unless a signal says to give up; returns
    /// (acknowledged, failed, abandoned).
    async fn finish(
        self,
        sent: u64,
        signals: &mut mpsc::UnboundedReceiver<()>,
    ) -> (u64, u64, bool) {
        match self {
            Sink::Print(_) => (sent, 0, false),
            Sink::Kafka {
                producer,
                deliveries,
                acks,
                mut acker,
                ..
            } => {
                drop(deliveries);
                let known =
                    acks.acknowledged.load(Ordering::Relaxed) + acks.failed.load(Ordering::Relaxed);
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
                (
                    acks.acknowledged.load(Ordering::Relaxed),
                    acks.failed.load(Ordering::Relaxed),
                    abandoned,
                )
            }
        }
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

/// Paces the events at a rate.
struct Pacer {
    /// `None`: no pacing.
    every: Option<Duration>,
    next: Instant,
}

/// Running further behind than this (a stalled broker, a stopped
/// terminal), the pacer starts afresh rather than bursting to catch up.
const MAX_LAG: Duration = Duration::from_secs(1);

impl Pacer {
    fn new(rate: f64) -> Pacer {
        Pacer {
            every: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            next: Instant::now(),
        }
    }

    /// Returns when the next event is due. Cancel-safe: dropped before it
    /// returns, it leaves the schedule as it was.
    async fn tick(&mut self) {
        let Some(every) = self.every else {
            // Let signals and progress in even at full speed.
            tokio::task::yield_now().await;
            return;
        };
        let now = Instant::now();
        if self.next + MAX_LAG < now {
            self.next = now;
        }
        tokio::time::sleep_until(self.next).await;
        self.next += every;
    }
}

/// What a run did.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    sent: u64,
    acknowledged: u64,
    failed: u64,
    /// Stopped waiting for acknowledgements on a second signal.
    abandoned: bool,
}

impl Summary {
    fn exit_code(&self) -> ExitCode {
        if self.failed > 0 || self.abandoned || self.acknowledged < self.sent {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

async fn produce(
    mut sim: Simulation,
    mut sink: Sink,
    rate: f64,
    count: Option<u64>,
    signals: &mut mpsc::UnboundedReceiver<()>,
) -> Summary {
    let started = Instant::now();
    let mut pacer = Pacer::new(rate);
    let mut progress = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut by_type: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut sent, mut sent_at_last_progress) = (0u64, 0u64);
    while count.is_none_or(|n| sent < n) {
        tokio::select! {
            biased;
            Some(()) = signals.recv() => {
                tracing::info!("stopping on a signal");
                break;
            }
            _ = progress.tick() => {
                let recent = (sent - sent_at_last_progress) as f64 / PROGRESS_EVERY.as_secs_f64();
                sent_at_last_progress = sent;
                tracing::info!(sent, acknowledged = sink.acknowledged(sent), rate = format!("{recent:.1}/s"), users = sim.users(), "progress");
                continue;
            }
            () = pacer.tick() => {}
        }
        let event = sim.next_event();
        // Waiting for room among the records in flight, still heed signals.
        let accepted = tokio::select! {
            biased;
            Some(()) = signals.recv() => {
                tracing::info!("stopping on a signal");
                break;
            }
            accepted = sink.send(&event) => accepted,
        };
        if !accepted {
            break;
        }
        sent += 1;
        *by_type.entry(event.event.type_name()).or_default() += 1;
    }
    let users = sim.users();
    let elapsed = started.elapsed().as_secs_f64();
    let (acknowledged, failed, abandoned) = sink.finish(sent, signals).await;
    tracing::info!(
        sent,
        acknowledged,
        failed,
        users,
        elapsed = format!("{elapsed:.1}s"),
        rate = format!("{:.1}/s", sent as f64 / elapsed.max(1e-3)),
        ?by_type,
        "done"
    );
    Summary {
        sent,
        acknowledged,
        failed,
        abandoned,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;

    const TOPIC: &str = "mobility.internal";
    const PARTITIONS: i32 = 3;

    fn simulation() -> Simulation {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Simulation::new(
            8,
            SimOptions {
                users: 20,
                clock: Clock::Simulated { start },
            },
        )
    }

    fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
        cluster
    }

    /// (key, event-type header, content-type header, value) of the first
    /// `n` records of each partition, in partition order.
    type Record = (String, String, String, String);

    fn consume(brokers: &str, n: usize) -> Vec<Vec<Record>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "producer-test")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            assignment
                .add_partition_offset(TOPIC, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let mut partitions = vec![Vec::new(); PARTITIONS as usize];
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while partitions.iter().map(Vec::len).sum::<usize>() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "only {partitions:?} consumed"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.unwrap();
            let headers = message.headers().expect("headers");
            let header = |key: &str| {
                let h = headers
                    .iter()
                    .find(|h| h.key == key)
                    .unwrap_or_else(|| panic!("no {key} header"));
                String::from_utf8(h.value.unwrap().to_vec()).unwrap()
            };
            partitions[message.partition() as usize].push((
                String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
                header("event-type"),
                header("content-type"),
                String::from_utf8(message.payload().unwrap().to_vec()).unwrap(),
            ));
        }
        partitions
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn produces_every_event_keyed_by_user_with_headers() {
        let cluster = cluster();
        let brokers = cluster.bootstrap_servers();
        let (_signal, mut signals) = mpsc::unbounded_channel();
        let sink = Sink::kafka(&brokers, TOPIC.to_owned()).unwrap();
        let summary = produce(simulation(), sink, 0.0, Some(500), &mut signals).await;
        assert_eq!(
            summary,
            Summary {
                sent: 500,
                acknowledged: 500,
                failed: 0,
                abandoned: false
            }
        );

        let partitions = tokio::task::spawn_blocking(move || consume(&brokers, 500))
            .await
            .unwrap();
        let expected: Vec<Envelope> = simulation().take(500).collect();
        // One user's events in the order they happened, on one partition.
        let mut expected_by_user: HashMap<&str, Vec<String>> = HashMap::new();
        for e in &expected {
            expected_by_user
                .entry(&e.user_id)
                .or_default()
                .push(serde_json::to_string(e).unwrap());
        }
        let mut seen_by_user: HashMap<String, (usize, Vec<String>)> = HashMap::new();
        for (partition, records) in partitions.iter().enumerate() {
            for (key, event_type, content_type, value) in records {
                let envelope: Envelope = serde_json::from_str(value).unwrap();
                assert_eq!(*key, envelope.user_id);
                assert_eq!(event_type, envelope.event.type_name());
                assert_eq!(content_type, "application/json");
                let (p, values) = seen_by_user
                    .entry(key.clone())
                    .or_insert((partition, Vec::new()));
                assert_eq!(*p, partition, "a user's events on two partitions");
                values.push(value.clone());
            }
        }
        assert_eq!(seen_by_user.len(), expected_by_user.len());
        for (user, values) in expected_by_user {
            assert_eq!(seen_by_user[user].1, values, "events of {user}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_signal_stops_producing_and_waits_for_the_acknowledgements() {
        let cluster = cluster();
        let (signal, mut signals) = mpsc::unbounded_channel();
        let sink = Sink::kafka(&cluster.bootstrap_servers(), TOPIC.to_owned()).unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            signal.send(()).unwrap();
        });
        let summary = produce(simulation(), sink, 100.0, None, &mut signals).await;
        assert!(summary.sent > 10 && summary.sent < 400, "{summary:?}");
        assert_eq!(summary.acknowledged, summary.sent, "{summary:?}");
        assert_eq!((summary.failed, summary.abandoned), (0, false));
        assert_eq!(summary.exit_code(), ExitCode::SUCCESS);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_delivery_error_stops_producing_and_fails_the_run() {
        let cluster = cluster();
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
        );
        let (_signal, mut signals) = mpsc::unbounded_channel();
        let sink = Sink::kafka(&cluster.bootstrap_servers(), TOPIC.to_owned()).unwrap();
        let summary = produce(simulation(), sink, 100.0, Some(1_000), &mut signals).await;
        assert!(summary.failed > 0, "{summary:?}");
        assert!(
            summary.sent < 1_000,
            "kept producing after the error: {summary:?}"
        );
        assert_eq!(summary.exit_code(), ExitCode::FAILURE);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn without_brokers_it_produces_to_those_of_the_switchyard() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let cluster = cluster();
        let health = format!(
            r#"{{"status":"ok","kafka":{{"brokers":"{}","embedded":true}},"routes":[]}}"#,
            cluster.bootstrap_servers()
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let switchyard = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = [0; 4096];
            let n = conn.read(&mut request).await.unwrap();
            assert!(request[..n].starts_with(b"GET /healthz "));
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{health}",
                health.len()
            );
            conn.write_all(response.as_bytes()).await.unwrap();
        });
        let args = Args::try_parse_from([
            "mobility-producer",
            "--switchyard",
            &switchyard,
            "--count",
            "40",
            "--rate",
            "0",
            "--seed",
            "8",
            "--users",
            "20",
            "--start",
            "2026-01-01T00:00:00Z",
        ])
        .unwrap();
        let (_signal, signals) = mpsc::unbounded_channel();
        let summary = run(args, signals).await.unwrap();
        assert_eq!((summary.sent, summary.acknowledged), (40, 40));

        let brokers = cluster.bootstrap_servers();
        let partitions = tokio::task::spawn_blocking(move || consume(&brokers, 40))
            .await
            .unwrap();
        let mut produced: Vec<String> = partitions.into_iter().flatten().map(|r| r.3).collect();
        let mut expected: Vec<String> = simulation()
            .take(40)
            .map(|e| serde_json::to_string(&e).unwrap())
            .collect();
        produced.sort();
        expected.sort();
        assert_eq!(produced, expected);
    }

    #[tokio::test]
    async fn the_pacer_keeps_the_rate() {
        let mut pacer = Pacer::new(200.0);
        let started = Instant::now();
        for _ in 0..100 {
            pacer.tick().await;
        }
        // The first event at once, then one every 5 ms.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(99 * 5), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(99 * 5 + 300), "{elapsed:?}");
        // After a stall it starts afresh, instead of bursting to catch up.
        tokio::time::sleep(MAX_LAG + Duration::from_millis(500)).await;
        let resumed = Instant::now();
        for _ in 0..10 {
            pacer.tick().await;
        }
        assert!(
            resumed.elapsed() >= Duration::from_millis(9 * 5),
            "{:?}",
            resumed.elapsed()
        );
    }

    #[test]
    fn flags_are_checked() {
        let parse = |args: &[&str]| Args::try_parse_from([&["mobility-producer"], args].concat());
        let args = parse(&[]).unwrap();
        assert_eq!(
            (args.topic.as_str(), args.rate, args.users, args.wait_secs),
            ("mobility.internal", 20.0, 100, 60)
        );
        assert_eq!(args.switchyard, "127.0.0.1:8080");
        let args = parse(&["--start", "2026-01-01T02:00:00.5+02:00", "--rate", "0"]).unwrap();
        assert_eq!(
            args.start,
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(args.rate, 0.0);
        assert!(parse(&["--rate", "-1"]).is_err());
        assert!(parse(&["--users", "0"]).is_err());
        assert!(parse(&["--start", "yesterday"]).is_err());
    }
}
