//! End-to-end benchmark of switchyard against a bare Kafka client, in one
//! invocation, on one broker and machine (`scripts/bench-e2e.sh` builds
//! everything, starts Kafka and runs this).
//!
//! Targets, each consuming a 4-partition topic of 512-byte JSON records in
//! a fresh consumer group and producing to a sink topic:
//!
//! - (a) `passthrough`: bare rust-rdkafka, switchyard's client settings;
//! - (b) switchyard with a chain of `noop` plugins;
//! - (c) switchyard with validate → redact → project.
//!
//! Throughput: N records are loaded into the input topic first; the target
//! is started on them, and its rate is N - 1 over the span between the
//! first and the last output's Kafka timestamp (the target's producer
//! stamps each record when the target hands it over, so startup, group
//! join and plugin compilation are outside the window, and so is the sink
//! reader's own fetch delay). Latency: records are produced at a fixed rate, each carrying
//! its send time; the sink reader subtracts it from the time it reads the
//! output. The rate is half of (a)'s measured throughput, the same for
//! every target. Targets run in turns (a, b, c, a, b, c, ...) so that all
//! see the same machine.
//!
//! The report (Markdown) goes to stdout, progress to stderr.

mod kafka;
mod records;
mod target;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;

use target::{Binaries, RunTopics, Running, Target};

#[derive(Parser, Debug)]
#[command(about = "End-to-end benchmark: switchyard against a bare Kafka client")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long)]
    brokers: String,
    /// The switchyard binary (release build).
    #[arg(long)]
    switchyard: PathBuf,
    /// The `passthrough` binary.
    #[arg(long)]
    passthrough: PathBuf,
    /// Directory holding noop.wasm, validate.wasm, redact.wasm, project.wasm.
    #[arg(long)]
    plugins_dir: PathBuf,
    /// Logs, generated routes files and the compile cache go here.
    #[arg(long)]
    work_dir: PathBuf,
    /// Records loaded for each throughput run.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Runs of each target, for throughput and for latency.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// No-op steps in target (b)'s chain.
    #[arg(long, default_value_t = 3)]
    noop_steps: usize,
    /// Targets to run, in this order each round.
    #[arg(long, value_delimiter = ',', default_value = "a,b,c", value_parser = Target::parse)]
    targets: Vec<Target>,
    /// Records/s of the latency runs [default: half of (a)'s throughput].
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds at the rate before the measured window, once the target
    /// answers.
    #[arg(long, default_value_t = 5)]
    warmup_secs: u64,
    /// Seconds of the measured window of a latency run.
    #[arg(long, default_value_t = 20)]
    latency_secs: u64,
    /// Give up a run when no output came for this long.
    #[arg(long, default_value_t = 120)]
    stall_secs: u64,
    /// After the measured runs, one more throughput run of each target with
    /// `perf record` attached from its first output to its last, written to
    /// this directory as perf-<target>.data.
    #[arg(long)]
    profile_dir: Option<PathBuf>,
    /// Records loaded for the profiled runs (more than `records`, for
    /// enough samples).
    #[arg(long, default_value_t = 600_000)]
    profile_records: u64,
    /// `perf record` options of the profiled runs.
    #[arg(long, default_value = "-F 1999 -g")]
    perf_args: String,
}

/// Microseconds on the driver's clock (monotonic; the paced producer and
/// the sink reader are in this process, so no clocks are compared).
fn now_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

struct Throughput {
    target: Target,
    round: usize,
    records_per_s: f64,
    span: Duration,
    /// CPUs the target kept busy (CPU seconds / seconds).
    cpus: Option<f64>,
    load: String,
}

struct Latency {
    target: Target,
    round: usize,
    rate: f64,
    /// Sorted, microseconds.
    samples: Vec<u64>,
    /// Measured records sent.
    sent: u64,
    cpus: Option<f64>,
    load: String,
}

impl Latency {
    /// The `p` percentile in milliseconds, over every measured record sent:
    /// one that never reached the sink (the target fell behind the rate)
    /// counts as infinitely late.
    fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.samples, self.sent, p).map_or(f64::INFINITY, |us| us as f64 / 1000.0)
    }

    fn missing(&self) -> u64 {
        self.sent.saturating_sub(self.samples.len() as u64)
    }
}

/// The nearest-rank percentile of `total` values of which `samples` are the
/// smallest, sorted; `None` when the rank falls beyond them.
fn percentile(samples: &[u64], total: u64, p: f64) -> Option<u64> {
    let total = total.max(samples.len() as u64);
    if total == 0 {
        return Some(0);
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as usize;
    samples.get(rank - 1).copied()
}

fn fmt_ms(ms: f64) -> String {
    if ms.is_finite() {
        format!("{ms:.2}")
    } else {
        "behind".into()
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn log(message: impl AsRef<str>) {
    eprintln!("bench: {}", message.as_ref());
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    now_us();
    std::fs::create_dir_all(&args.work_dir)?;
    for plugin in ["noop", "validate", "redact", "project"] {
        let path = args.plugins_dir.join(format!("{plugin}.wasm"));
        if !path.is_file() {
            bail!("{} is missing (scripts/build-plugins.sh)", path.display());
        }
    }
    let bins = Binaries {
        switchyard: args.switchyard.clone(),
        passthrough: args.passthrough.clone(),
        // Absolute: the routes files are written elsewhere, and a relative
        // `plugins_dir` is resolved against the routes file's folder.
        plugins_dir: std::fs::canonicalize(&args.plugins_dir)
            .with_context(|| format!("{}", args.plugins_dir.display()))?,
        noop_steps: args.noop_steps,
        work_dir: args.work_dir.clone(),
        brokers: args.brokers.clone(),
    };
    // Topic names unique to this invocation, so that a reused broker's
    // earlier topics never mix in.
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let prefix = format!("bench.e2e.{id}");

    let input = format!("{prefix}.load");
    kafka::create_topics(&args.brokers, &[&input], args.partitions).await?;
    log(format!("loading {} records into {input}", args.records));
    let t0 = Instant::now();
    kafka::preload(&args.brokers, &input, args.partitions, args.records).await?;
    log(format!("loaded in {:.1} s", t0.elapsed().as_secs_f64()));

    let mut throughput = Vec::new();
    for round in 1..=args.rounds {
        for &target in &args.targets {
            let run = format!("tput-{}-{round}", target.letter());
            let result = throughput_run(&args, &bins, target, &prefix, &input, &run, None).await?;
            log(format!(
                "{run}: {:.0} records/s over {:.2} s, target CPUs {}, load {}",
                result.records_per_s,
                result.span.as_secs_f64(),
                fmt_cpus(result.cpus),
                result.load
            ));
            throughput.push(Throughput { round, ..result });
        }
    }

    let bare_rates: Vec<f64> = throughput
        .iter()
        .filter(|t| t.target == Target::Bare)
        .map(|t| t.records_per_s)
        .collect();
    let rate = match args.rate {
        Some(r) => r as f64,
        None if !bare_rates.is_empty() => (median(bare_rates) / 2.0).round(),
        None => bail!("without target a, give the latency runs' --rate"),
    };

    let mut latency = Vec::new();
    for round in 1..=args.rounds {
        for &target in &args.targets {
            let run = format!("lat-{}-{round}", target.letter());
            let result = latency_run(&args, &bins, target, &prefix, &run, rate).await?;
            log(format!(
                "{run}: {} of {} records at {:.0}/s, p50 {} ms, p99 {} ms, max {} ms, \
                 target CPUs {}, load {}",
                result.samples.len(),
                result.sent,
                result.rate,
                fmt_ms(result.percentile_ms(50.0)),
                fmt_ms(result.percentile_ms(99.0)),
                fmt_ms(result.percentile_ms(100.0)),
                fmt_cpus(result.cpus),
                result.load
            ));
            latency.push(Latency { round, ..result });
        }
    }

    if let Some(dir) = &args.profile_dir {
        std::fs::create_dir_all(dir)?;
        let input = format!("{prefix}.profile-load");
        kafka::create_topics(&args.brokers, &[&input], args.partitions).await?;
        log(format!(
            "loading {} records into {input}",
            args.profile_records
        ));
        kafka::preload(&args.brokers, &input, args.partitions, args.profile_records).await?;
        for &target in &args.targets {
            let run = format!("profile-{}", target.letter());
            let data = dir.join(format!("perf-{}.data", target.letter()));
            let result = throughput_run(
                &args,
                &bins,
                target,
                &prefix,
                &input,
                &run,
                Some(data.clone()),
            )
            .await?;
            log(format!(
                "{run} (perf attached, not in the figures): {:.0} records/s, target CPUs {}; {}",
                result.records_per_s,
                fmt_cpus(result.cpus),
                data.display()
            ));
        }
    }

    print_report(&args, &throughput, &latency, rate);
    Ok(())
}

fn fmt_cpus(cpus: Option<f64>) -> String {
    cpus.map_or_else(|| "?".into(), |c| format!("{c:.2}"))
}

fn run_topics(prefix: &str, run: &str, input: &str) -> RunTopics {
    RunTopics {
        input: input.to_owned(),
        sink: format!("{prefix}.{run}.out"),
        dead_letter: format!("{prefix}.{run}.dlq"),
        group: format!("{prefix}.{run}"),
    }
}

/// Start `target` on the loaded `input` in a fresh group; time its
/// outputs on the sink from the first to the last. With `perf`, `perf
/// record` is attached to the target over that window.
async fn throughput_run(
    args: &Args,
    bins: &Binaries,
    target: Target,
    prefix: &str,
    input: &str,
    run: &str,
    perf: Option<PathBuf>,
) -> anyhow::Result<Throughput> {
    let topics = run_topics(prefix, run, input);
    kafka::create_topics(
        &args.brokers,
        &[&topics.sink, &topics.dead_letter],
        args.partitions,
    )
    .await?;
    let expected = kafka::record_count(&args.brokers, input, args.partitions).await? as u64;
    // The reader is assigned before the target starts, so it sees every
    // output as it arrives.
    let reader = kafka::sink_reader(&args.brokers, &topics.sink, args.partitions)?;
    let load = target::load_average();
    let mut running = bins.start(target, &topics, run)?;
    let pid = running.pid();

    let stall = Duration::from_secs(args.stall_secs);
    let mut count = 0u64;
    // Producer timestamps (ms) of the earliest and the latest output.
    let mut stamps: Option<(i64, i64)> = None;
    let mut first: Option<(Instant, Option<f64>)> = None;
    let mut last_progress = Instant::now();
    let mut profiler: Option<Running> = None;
    let (t_first, cpu_first) = loop {
        match tokio::time::timeout(Duration::from_secs(1), reader.recv()).await {
            Ok(Ok(message)) => {
                count += 1;
                let Some(at) = message.timestamp().to_millis() else {
                    bail!("{run}: an output without a timestamp");
                };
                stamps = Some(stamps.map_or((at, at), |(lo, hi)| (lo.min(at), hi.max(at))));
                last_progress = Instant::now();
                if first.is_none() {
                    first = Some((Instant::now(), target::cpu_seconds(pid)));
                    if let Some(data) = &perf {
                        profiler = Some(start_perf(args, pid, data, &bins.work_dir, run)?);
                    }
                }
                if count == expected {
                    break first.expect("set at the first record");
                }
            }
            Ok(Err(e)) => log(format!("{run}: sink reader: {e}")),
            Err(_elapsed) => {
                running.check_alive()?;
                if last_progress.elapsed() > stall {
                    bail!(
                        "{run}: {count} of {expected} outputs, none for {stall:?}; log: {}",
                        running.log.display()
                    );
                }
            }
        }
    };
    let t_last = Instant::now();
    let cpu_last = target::cpu_seconds(pid);
    if let Some(mut perf) = profiler.take() {
        // perf writes its file on SIGINT.
        target::signal(perf.pid(), "INT");
        perf.stop(Duration::from_secs(60));
    }
    let wall = t_last - t_first;
    let (lo, hi) = stamps.expect("set at the first record");
    // At least a millisecond: the timestamps' resolution.
    let span = Duration::from_millis((hi - lo).max(1) as u64);

    // Anything beyond the expected count would be a duplicate.
    let mut extra = 0;
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), reader.recv()).await {
        extra += 1;
    }
    running.stop(Duration::from_secs(20));
    if extra > 0 {
        bail!("{run}: {extra} outputs beyond the {expected} inputs");
    }
    check_dead_letters(args, &topics, target, run).await?;
    Ok(Throughput {
        target,
        round: 0,
        // The first output opens the window: N - 1 outputs after it.
        records_per_s: (expected - 1) as f64 / span.as_secs_f64(),
        span,
        // Over the reader's window, which holds the target's (and runs a
        // little past it): a lower bound of the CPUs it kept busy.
        cpus: cpu_first
            .zip(cpu_last)
            .map(|(a, b)| (b - a) / wall.as_secs_f64()),
        load,
    })
}

fn start_perf(
    args: &Args,
    pid: u32,
    data: &std::path::Path,
    work_dir: &std::path::Path,
    run: &str,
) -> anyhow::Result<Running> {
    let log_path = work_dir.join(format!("{run}.perf.log"));
    let out = std::fs::File::create(&log_path)?;
    let err = out.try_clone()?;
    let child = std::process::Command::new("perf")
        .arg("record")
        .args(args.perf_args.split_whitespace())
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(data)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("starting perf record")?;
    Ok(Running::new(child, format!("perf of {run}"), log_path))
}

async fn check_dead_letters(
    args: &Args,
    topics: &RunTopics,
    target: Target,
    run: &str,
) -> anyhow::Result<()> {
    if target == Target::Bare {
        return Ok(());
    }
    let dead = kafka::record_count(&args.brokers, &topics.dead_letter, args.partitions).await?;
    if dead > 0 {
        bail!(
            "{run}: {dead} records dead-lettered to {}: the chain's config does not fit the records",
            topics.dead_letter
        );
    }
    Ok(())
}

/// What the paced producer and the sink reader of a latency run share.
struct Pacing {
    /// The reader saw an output: the target is up.
    answered: AtomicBool,
    /// Send time (µs) from which records are measured; `u64::MAX` until
    /// the warm-up is over.
    measure_from: AtomicU64,
    /// Set when the producer is done: records measured, and when.
    done: Mutex<Option<(u64, Instant)>>,
    /// Target CPU seconds at the start and the end of the window.
    cpu: Mutex<(Option<f64>, Option<f64>)>,
    /// Achieved send rate over the window.
    rate: Mutex<f64>,
}

/// Start `target` on an empty topic, wait until it answers, produce at
/// `rate` for the warm-up and the measured window, and collect each
/// measured record's latency.
async fn latency_run(
    args: &Args,
    bins: &Binaries,
    target: Target,
    prefix: &str,
    run: &str,
    rate: f64,
) -> anyhow::Result<Latency> {
    let input = format!("{prefix}.{run}.in");
    let topics = run_topics(prefix, run, &input);
    kafka::create_topics(
        &args.brokers,
        &[&input, &topics.sink, &topics.dead_letter],
        args.partitions,
    )
    .await?;
    let reader = kafka::sink_reader(&args.brokers, &topics.sink, args.partitions)?;
    let load = target::load_average();
    let mut running = bins.start(target, &topics, run)?;
    let pid = running.pid();

    let pacing = Arc::new(Pacing {
        answered: AtomicBool::new(false),
        measure_from: AtomicU64::new(u64::MAX),
        done: Mutex::new(None),
        cpu: Mutex::new((None, None)),
        rate: Mutex::new(0.0),
    });
    let producer_task = tokio::spawn(paced_producer(
        args.brokers.clone(),
        input.clone(),
        args.partitions,
        rate,
        Duration::from_secs(args.warmup_secs),
        Duration::from_secs(args.latency_secs),
        pid,
        pacing.clone(),
    ));

    let samples = read_latencies(args, &reader, &pacing, &mut running, run).await;
    let producer_result = producer_task.await?;
    running.stop(Duration::from_secs(20));
    let samples = samples?;
    producer_result?;
    check_dead_letters(args, &topics, target, run).await?;

    let sent = pacing
        .done
        .lock()
        .expect("not poisoned")
        .map_or(0, |(n, _)| n);
    if (samples.len() as u64) < sent {
        // Reported (percentiles beyond what arrived are "behind"), not an
        // error: a target slower than the rate is a finding.
        log(format!(
            "{run}: only {} of {sent} measured records reached the sink within 30 s of the last send",
            samples.len()
        ));
    }
    let (cpu_from, cpu_until) = *pacing.cpu.lock().expect("not poisoned");
    let window = args.latency_secs as f64;
    let achieved = *pacing.rate.lock().expect("not poisoned");
    Ok(Latency {
        target,
        round: 0,
        rate: achieved,
        samples,
        sent,
        cpus: cpu_from.zip(cpu_until).map(|(a, b)| (b - a) / window),
        load,
    })
}

/// The sink reader of a latency run: every measured record's receive time
/// minus its send time, sorted.
async fn read_latencies(
    args: &Args,
    reader: &StreamConsumer,
    pacing: &Pacing,
    running: &mut Running,
    run: &str,
) -> anyhow::Result<Vec<u64>> {
    let expected_secs = args.warmup_secs + args.latency_secs;
    let mut samples = Vec::new();
    let started = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_millis(200), reader.recv()).await {
            Ok(Ok(message)) => {
                let received = now_us();
                pacing.answered.store(true, Ordering::SeqCst);
                let from = pacing.measure_from.load(Ordering::SeqCst);
                match message.payload().and_then(records::sent_us) {
                    Some(sent) if sent >= from => samples.push(received.saturating_sub(sent)),
                    Some(_) => {}
                    None => bail!("{run}: an output without a send time"),
                }
            }
            Ok(Err(e)) => log(format!("{run}: sink reader: {e}")),
            Err(_elapsed) => running.check_alive()?,
        }
        let done = *pacing.done.lock().expect("not poisoned");
        match done {
            Some((sent, _)) if samples.len() as u64 >= sent => break,
            Some((_, at)) if at.elapsed() > Duration::from_secs(30) => break,
            None if started.elapsed()
                > Duration::from_secs(expected_secs + 2 * args.stall_secs) =>
            {
                bail!("{run}: the paced producer did not finish")
            }
            _ => {}
        }
    }
    samples.sort_unstable();
    Ok(samples)
}

/// Produce one record every 100 ms until the target answers, then `rate`
/// records/s (a burst each millisecond) for `warmup` and `window`; records
/// sent in `window` are the measured ones.
#[allow(clippy::too_many_arguments)]
async fn paced_producer(
    brokers: String,
    topic: String,
    partitions: i32,
    rate: f64,
    warmup: Duration,
    window: Duration,
    pid: u32,
    pacing: Arc<Pacing>,
) -> anyhow::Result<()> {
    let producer = kafka::producer(&brokers, 1)?;
    let mut i = 0u64;
    let probing = Instant::now();
    while !pacing.answered.load(Ordering::SeqCst) {
        if probing.elapsed() > Duration::from_secs(120) {
            *pacing.done.lock().expect("not poisoned") = Some((0, Instant::now()));
            bail!("the target did not answer within 120 s");
        }
        drop(kafka::send(&producer, &topic, partitions, i, now_us()).await?);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let start = Instant::now();
    let measure_at = start + warmup;
    let end = measure_at + window;
    let tick = Duration::from_millis(1);
    let mut next = start;
    let mut paced = 0u64;
    let mut measured = 0u64;
    let mut from: Option<(u64, Instant)> = None;
    loop {
        next += tick;
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        if from.is_none() && now >= measure_at {
            // Strictly after every earlier send time.
            let at = now_us() + 1;
            pacing.measure_from.store(at, Ordering::SeqCst);
            pacing.cpu.lock().expect("not poisoned").0 = target::cpu_seconds(pid);
            from = Some((at, now));
        }
        let due = ((now - start).as_secs_f64() * rate) as u64;
        while paced < due {
            let sent = now_us();
            drop(kafka::send(&producer, &topic, partitions, i, sent).await?);
            if from.is_some_and(|(at, _)| sent >= at) {
                measured += 1;
            }
            i += 1;
            paced += 1;
        }
    }
    if let Some((_, at)) = from {
        *pacing.rate.lock().expect("not poisoned") = measured as f64 / at.elapsed().as_secs_f64();
    }
    pacing.cpu.lock().expect("not poisoned").1 = target::cpu_seconds(pid);
    *pacing.done.lock().expect("not poisoned") = Some((measured, Instant::now()));
    Ok(())
}

fn print_report(args: &Args, throughput: &[Throughput], latency: &[Latency], rate: f64) {
    let describe = |t: Target| t.describe(args.noop_steps);
    println!("### Runs, in the order they ran\n");
    println!(
        "Throughput: {} records loaded, then the target started on a fresh group; \
         records/s between the first and the last output's producer timestamp.\n",
        args.records
    );
    println!("| run | target | records/s | window s | target CPUs | load (1 min) |");
    println!("|---|---|---|---|---|---|");
    for t in throughput {
        println!(
            "| {} | ({}) {} | {:.0} | {:.2} | {} | {} |",
            t.round,
            t.target.letter(),
            describe(t.target),
            t.records_per_s,
            t.span.as_secs_f64(),
            fmt_cpus(t.cpus),
            t.load
        );
    }
    println!(
        "\nLatency: {rate:.0} records/s offered, {} s warm-up then {} s measured; \
         send to sink-read time, per record.\n",
        args.warmup_secs, args.latency_secs
    );
    println!(
        "| run | target | records/s | measured | late (> 30 s) | p50 ms | p99 ms | p99.9 ms | max ms | target CPUs | load (1 min) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for l in latency {
        println!(
            "| {} | ({}) {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            l.round,
            l.target.letter(),
            describe(l.target),
            l.rate,
            l.samples.len(),
            l.missing(),
            fmt_ms(l.percentile_ms(50.0)),
            fmt_ms(l.percentile_ms(99.0)),
            fmt_ms(l.percentile_ms(99.9)),
            fmt_ms(l.percentile_ms(100.0)),
            fmt_cpus(l.cpus),
            l.load
        );
    }

    let tput = |t: Target| {
        median(
            throughput
                .iter()
                .filter(|r| r.target == t)
                .map(|r| r.records_per_s)
                .collect(),
        )
    };
    let lat = |t: Target, p: f64| {
        median(
            latency
                .iter()
                .filter(|r| r.target == t)
                .map(|r| r.percentile_ms(p))
                .collect(),
        )
    };
    println!("\n### Summary (medians over {} rounds)\n", args.rounds);
    println!("| target | records/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for &t in &args.targets {
        println!(
            "| ({}) {} | {:.0} | {} | {} |",
            t.letter(),
            describe(t),
            tput(t),
            fmt_ms(lat(t, 50.0)),
            fmt_ms(lat(t, 99.0))
        );
    }
    let has = |t: Target| args.targets.contains(&t);
    if has(Target::Bare) {
        let a = tput(Target::Bare);
        let a_p99 = lat(Target::Bare, 99.0);
        let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
        println!();
        if has(Target::Noop) {
            let r = tput(Target::Noop) / a;
            println!(
                "- b/a throughput: {r:.2} (target ≥ 0.9: {})",
                verdict(r >= 0.9)
            );
        }
        if has(Target::Chain) {
            let r = tput(Target::Chain) / a;
            println!(
                "- c/a throughput: {r:.2} (target ≥ 0.7: {})",
                verdict(r >= 0.7)
            );
            let p = lat(Target::Chain, 99.0) / a_p99;
            let shown = if p.is_finite() {
                format!("{p:.2}")
            } else {
                "(c fell behind the rate)".into()
            };
            println!(
                "- c p99 / a p99 at {rate:.0} records/s: {shown} (target ≤ 1.25: {})",
                verdict(p <= 1.25)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_count_records_that_never_arrived_as_late() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 100, 50.0), Some(50));
        assert_eq!(percentile(&samples, 100, 99.0), Some(99));
        assert_eq!(percentile(&samples, 100, 100.0), Some(100));
        // 100 of 200 arrived: the median is the slowest that did, p99 is
        // beyond them.
        assert_eq!(percentile(&samples, 200, 50.0), Some(100));
        assert_eq!(percentile(&samples, 200, 99.0), None);
        assert_eq!(percentile(&[], 0, 99.0), Some(0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
