//! `mobility-producer`: the mobility platform's internal events, produced
//! non-stop to Kafka, posted to Switchyard's ingest API (`--ingest`, so
//! that personal data reaches Kafka only encrypted), or printed as JSON
//! Lines (`--print`).
//!
//! Where the events go is a [`Sink`]; this file reads the flags, runs the
//! simulation at its pace and hands each event to the sink chosen.

use std::collections::BTreeMap;
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use clap::{CommandFactory, Parser};
use mobility_producer::{discover, Clock, SimOptions, Simulation};
use reqwest::header::HeaderValue;
use reqwest::Url;
use tokio::sync::mpsc;
use tokio::time::Instant;

use sink::{Done, Ingest, IngestOptions, Kafka, Outcome, Print, Progress, Signals, Sink};

mod sink;

/// Generates the mobility platform's internal events (users registering,
/// travelling, paying, being refunded) and produces them to Kafka, or posts
/// them to Switchyard's ingest API.
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
    /// Post the events to this endpoint of Switchyard's ingest API
    /// (`http://HOST:PORT/ingest/ROUTE`) instead of producing them to Kafka:
    /// the route encrypts the personal fields per data subject before it
    /// publishes the events, so personal data reaches Kafka only encrypted.
    #[arg(
        long,
        env = "MOBILITY_PRODUCER_INGEST",
        value_name = "URL",
        value_parser = parse_ingest_url,
        // `--print` too, in `Args::check`.
        conflicts_with = "brokers",
        requires = "ingest_token"
    )]
    ingest: Option<Url>,
    /// Bearer token of the ingest API, required with `--ingest`. It is never
    /// logged or shown.
    #[arg(
        long,
        env = "MOBILITY_PRODUCER_INGEST_TOKEN",
        value_name = "TOKEN",
        // `--help` would otherwise show the variable's value.
        hide_env_values = true,
        value_parser = parse_token
    )]
    ingest_token: Option<Token>,
    /// The most events in one request to the ingest API (a request also
    /// stays within the API's 1 MiB).
    #[arg(
        long,
        env = "MOBILITY_PRODUCER_BATCH_MAX",
        value_name = "N",
        default_value_t = 500,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    batch_max: u32,
    /// How long, in milliseconds, a request to the ingest API waits for more
    /// events after its first before it is sent. With `--rate 0` batches
    /// fill at once.
    #[arg(
        long,
        env = "MOBILITY_PRODUCER_BATCH_LINGER_MS",
        value_name = "MS",
        default_value_t = 50
    )]
    batch_linger_ms: u64,
    /// Events per second; 0 sends them as fast as the producer takes them.
    #[arg(long, env = "MOBILITY_PRODUCER_RATE", default_value_t = 20.0, value_parser = parse_rate)]
    rate: f64,
    /// Stop after this many events, exiting once all are acknowledged
    /// (accepted, with `--ingest`). Without it, run until stopped (Ctrl-C or
    /// SIGTERM).
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

impl Args {
    /// What clap cannot check: `--print` is a flag, and clap counts a flag
    /// set to false in the environment as given, so that
    /// `MOBILITY_PRODUCER_PRINT=false` would conflict with `--ingest`.
    fn check(self) -> Result<Args, clap::Error> {
        if self.print && self.ingest.is_some() {
            return Err(Args::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "--ingest cannot be used with --print",
            ));
        }
        Ok(self)
    }
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

fn parse_ingest_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| {
        format!("not a URL such as http://127.0.0.1:5000/ingest/mobility-ingest: {e}")
    })?;
    match url.scheme() {
        "http" => {}
        // This build's HTTP client has no TLS: an https URL would fail on
        // every attempt, and be retried for ever.
        "https" => return Err("only http:// URLs are supported".to_owned()),
        other => return Err(format!("{other}: not an http:// URL")),
    }
    // They would go as Basic credentials beside the bearer token.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not supported (see --ingest-token)".to_owned());
    }
    Ok(url)
}

/// Never fails: clap's errors quote the value they refuse, so the token is
/// checked later, by [`Token::authorization`], whose errors do not.
fn parse_token(s: &str) -> Result<Token, std::convert::Infallible> {
    Ok(Token(s.to_owned()))
}

/// The ingest API's bearer token. Its `Debug` shows nothing of it, so that
/// the debug output of the flags cannot leak it.
#[derive(Clone)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// The `Authorization` header, marked sensitive so that the HTTP
    /// client's own debug output does not show it either.
    fn authorization(&self) -> anyhow::Result<HeaderValue> {
        anyhow::ensure!(!self.0.trim().is_empty(), "--ingest-token is empty");
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0))
            .ok()
            .context("--ingest-token is not a valid HTTP header value (printable ASCII only)")?;
        value.set_sensitive(true);
        Ok(value)
    }
}

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
    let args = Args::parse().check().unwrap_or_else(|e| e.exit());
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
fn signals() -> Signals {
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

async fn run(args: Args, mut signals: Signals) -> anyhow::Result<Summary> {
    tracing::debug!(?args, "flags");
    // Checked before anything runs.
    let ingest = match (args.ingest, &args.ingest_token) {
        (Some(url), Some(token)) => Some(IngestOptions {
            url,
            authorization: token.authorization()?,
            batch_max: args.batch_max as usize,
            linger: Duration::from_millis(args.batch_linger_ms),
        }),
        (Some(_), None) => anyhow::bail!("--ingest needs --ingest-token"),
        (None, _) => None,
    };
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
    let (rate, count) = (args.rate, args.count);
    if args.print {
        return Ok(produce(sim, Print::new(), rate, count, &mut signals).await);
    }
    if let Some(options) = ingest {
        tracing::info!(
            url = %options.url,
            batch_max = options.batch_max,
            linger_ms = options.linger.as_millis() as u64,
            "posting to Switchyard's ingest API"
        );
        let sink = Ingest::new(options)?;
        return Ok(produce(sim, sink, rate, count, &mut signals).await);
    }
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
    let sink = Kafka::new(&brokers, args.topic)?;
    Ok(produce(sim, sink, rate, count, &mut signals).await)
}

/// A seed for a run without `--seed`: the clock's nanoseconds.
fn seed_from_clock() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_nanos() as u64
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
    /// Events generated and taken by the sink.
    sent: u64,
    outcome: Outcome,
}

impl Summary {
    fn exit_code(&self) -> ExitCode {
        if self.outcome.succeeded(self.sent) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Logs a progress line, with the rate since the last one.
fn log_progress(sink: &impl Sink, sim: &Simulation, sent: u64, sent_before: &mut u64) {
    let rate = (sent - *sent_before) as f64 / PROGRESS_EVERY.as_secs_f64();
    *sent_before = sent;
    sink.log_progress(&Progress {
        sent,
        rate,
        users: sim.users(),
    });
}

async fn produce<S: Sink>(
    mut sim: Simulation,
    mut sink: S,
    rate: f64,
    count: Option<u64>,
    signals: &mut Signals,
) -> Summary {
    let started = Instant::now();
    let mut pacer = Pacer::new(rate);
    let mut progress = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut by_type: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut sent, mut sent_before) = (0u64, 0u64);
    let mut signalled = false;
    'events: while count.is_none_or(|n| sent < n) {
        tokio::select! {
            biased;
            Some(()) = signals.recv() => {
                tracing::info!("stopping on a signal");
                signalled = true;
                break;
            }
            _ = progress.tick() => {
                log_progress(&sink, &sim, sent, &mut sent_before);
                continue;
            }
            () = pacer.tick() => {}
        }
        let event = sim.next_event();
        // Waiting for the sink to take it (room among the records in
        // flight, the ingest API retrying), still heed signals and log
        // progress.
        let taken = loop {
            tokio::select! {
                biased;
                Some(()) = signals.recv() => {
                    tracing::info!("stopping on a signal");
                    signalled = true;
                    break 'events;
                }
                _ = progress.tick() => log_progress(&sink, &sim, sent, &mut sent_before),
                taken = sink.send(&event) => break taken,
            }
        };
        if !taken {
            break;
        }
        sent += 1;
        *by_type.entry(event.event.type_name()).or_default() += 1;
    }
    let users = sim.users();
    let elapsed_secs = started.elapsed().as_secs_f64();
    let outcome = sink.finish(sent, signalled, signals).await;
    S::log_done(
        &outcome,
        &Done {
            sent,
            users,
            elapsed_secs,
            by_type: &by_type,
        },
    );
    Summary { sent, outcome }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;
    use mobility_contracts::Envelope;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

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
        let sink = Kafka::new(&brokers, TOPIC.to_owned()).unwrap();
        let summary = produce(simulation(), sink, 0.0, Some(500), &mut signals).await;
        assert_eq!(
            summary,
            Summary {
                sent: 500,
                outcome: Outcome {
                    delivered: 500,
                    ..Outcome::default()
                }
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
        let sink = Kafka::new(&cluster.bootstrap_servers(), TOPIC.to_owned()).unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            signal.send(()).unwrap();
        });
        let summary = produce(simulation(), sink, 100.0, None, &mut signals).await;
        assert!(summary.sent > 10 && summary.sent < 400, "{summary:?}");
        assert_eq!(summary.outcome.delivered, summary.sent, "{summary:?}");
        assert_eq!(
            (summary.outcome.failed, summary.outcome.unconfirmed),
            (0, 0)
        );
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
        let sink = Kafka::new(&cluster.bootstrap_servers(), TOPIC.to_owned()).unwrap();
        let summary = produce(simulation(), sink, 100.0, Some(1_000), &mut signals).await;
        assert!(summary.outcome.failed > 0, "{summary:?}");
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
        assert_eq!((summary.sent, summary.outcome.delivered), (40, 40));

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

    #[test]
    fn ingest_flags_are_checked() {
        let parse = |args: &[&str]| {
            Args::try_parse_from([&["mobility-producer"], args].concat()).and_then(Args::check)
        };
        let url = "http://127.0.0.1:5000/ingest/mobility-ingest";
        let args = parse(&["--ingest", url, "--ingest-token", "s3cret"]).unwrap();
        assert_eq!(args.ingest.as_ref().map(Url::as_str), Some(url));
        assert_eq!((args.batch_max, args.batch_linger_ms), (500, 50));
        let args = parse(&[
            "--ingest",
            url,
            "--ingest-token",
            "s3cret",
            "--batch-max",
            "20",
            "--batch-linger-ms",
            "0",
        ])
        .unwrap();
        assert_eq!((args.batch_max, args.batch_linger_ms), (20, 0));

        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["--ingest", url]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        for other in [&["--brokers", "localhost:9092"][..], &["--print"]] {
            let args = [&["--ingest", url, "--ingest-token", "t"], other].concat();
            assert_eq!(
                kind(&args),
                clap::error::ErrorKind::ArgumentConflict,
                "{other:?}"
            );
        }
        for bad in [
            "https://127.0.0.1:5000/ingest/x",
            "ftp://127.0.0.1/ingest/x",
            "http://user:pw@127.0.0.1:5000/ingest/x",
            "127.0.0.1:5000/ingest/x",
        ] {
            assert!(
                parse(&["--ingest", bad, "--ingest-token", "t"]).is_err(),
                "{bad}"
            );
        }
        assert!(parse(&["--ingest", url, "--ingest-token", "t", "--batch-max", "0"]).is_err());
    }

    #[test]
    fn the_token_is_never_shown() {
        let args = Args::try_parse_from([
            "mobility-producer",
            "--ingest",
            "http://127.0.0.1:5000/ingest/mobility-ingest",
            "--ingest-token",
            "s3cret-t0ken",
        ])
        .unwrap();
        let debug = format!("{args:?} {args:#?}");
        assert!(!debug.contains("s3cret-t0ken"), "{debug}");
        assert!(
            debug.contains("ingest_token: Some(Token(<redacted>))"),
            "{debug}"
        );

        let token = args.ingest_token.unwrap();
        let header = token.authorization().unwrap();
        assert_eq!(header.to_str().unwrap(), "Bearer s3cret-t0ken");
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("s3cret"));

        for bad in ["", "  ", "line\nbreak"] {
            let error = format!("{:#}", Token(bad.to_owned()).authorization().unwrap_err());
            assert!(error.contains("--ingest-token"), "{error}");
            assert!(bad.trim().is_empty() || !error.contains(bad), "{error}");
        }
    }
}
