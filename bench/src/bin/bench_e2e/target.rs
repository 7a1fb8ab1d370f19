//! The three targets and their processes: the bare passthrough, switchyard
//! with a chain of no-op plugins, switchyard with validate → redact →
//! project.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// (a) `passthrough`: rust-rdkafka alone.
    Bare,
    /// (b) switchyard with `noop_steps` no-op plugins.
    Noop,
    /// (c) switchyard with validate → redact → project.
    Chain,
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        match s {
            "a" => Ok(Target::Bare),
            "b" => Ok(Target::Noop),
            "c" => Ok(Target::Chain),
            _ => Err(format!("unknown target {s:?} (a, b or c)")),
        }
    }

    pub fn letter(self) -> &'static str {
        match self {
            Target::Bare => "a",
            Target::Noop => "b",
            Target::Chain => "c",
        }
    }

    pub fn describe(self, noop_steps: usize) -> String {
        match self {
            Target::Bare => "bare rust-rdkafka passthrough".into(),
            Target::Noop => format!("switchyard, {noop_steps} × noop"),
            Target::Chain => "switchyard, validate → redact → project".into(),
        }
    }
}

/// What is needed to start any target.
pub struct Binaries {
    pub switchyard: PathBuf,
    pub passthrough: PathBuf,
    pub plugins_dir: PathBuf,
    pub noop_steps: usize,
    /// Logs, routes files, the compile cache.
    pub work_dir: PathBuf,
    pub brokers: String,
}

/// The topics and group of one run.
pub struct RunTopics {
    pub input: String,
    pub sink: String,
    pub dead_letter: String,
    pub group: String,
}

/// A started target, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Running {
    child: Option<Child>,
    pub name: String,
    pub log: PathBuf,
}

impl Running {
    pub fn new(child: Child, name: String, log: PathBuf) -> Running {
        Running {
            child: Some(child),
            name,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fail with the log's tail if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if let Some(status) = child.try_wait()? {
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 30)
            );
        }
        Ok(())
    }

    /// SIGTERM, and SIGKILL after `grace`: switchyard drains and commits on
    /// SIGTERM, which takes a moment.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "bench: {} still running after {grace:?}: SIGKILL",
            self.name
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(20));
    }
}

/// Send `SIGNAME` to `pid` (one process, by its id).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Binaries {
    /// Start `target` on `topics`; `run` names its log and routes file.
    pub fn start(&self, target: Target, topics: &RunTopics, run: &str) -> anyhow::Result<Running> {
        let log = self.work_dir.join(format!("{run}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut command = match target {
            Target::Bare => {
                let mut c = Command::new(&self.passthrough);
                c.args(["--brokers", &self.brokers])
                    .args(["--input", &topics.input])
                    .args(["--output", &topics.sink])
                    .args(["--group", &topics.group]);
                c
            }
            Target::Noop | Target::Chain => {
                let routes = self.work_dir.join(format!("{run}.routes.toml"));
                std::fs::write(&routes, self.routes_file(target, topics)?)
                    .with_context(|| format!("writing {}", routes.display()))?;
                let http = free_local_port()?;
                let mut c = Command::new(&self.switchyard);
                c.arg("run")
                    .arg("--config")
                    .arg(&routes)
                    .args(["--brokers", &self.brokers])
                    .args(["--http", &http])
                    // A cache of its own: the first run compiles the plugins,
                    // later runs load them (startup is not measured).
                    .env("SWITCHYARD_CACHE_DIR", self.work_dir.join("components"))
                    .env("NO_COLOR", "1");
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {run}"))?;
        Ok(Running::new(child, run.to_owned(), log))
    }

    /// The routes file of a switchyard target: one route, default tuning
    /// (batches of up to 256 records), a dead-letter topic so that a record
    /// a plugin refuses is counted instead of halting the route.
    fn routes_file(&self, target: Target, topics: &RunTopics) -> anyhow::Result<String> {
        let plugins_dir = self.plugins_dir.to_str().context("plugins dir not UTF-8")?;
        if plugins_dir.contains(['"', '\\']) {
            bail!("the plugins dir must not contain '\"' or '\\'");
        }
        let mut file = format!(
            r#"plugins_dir = "{plugins_dir}"

[[routes]]
name = "bench"
source = {{ topics = ["{input}"], group = "{group}", start_from = "earliest" }}
sink = {{ topic = "{sink}" }}
dead_letter = {{ topic = "{dlq}" }}
"#,
            input = topics.input,
            group = topics.group,
            sink = topics.sink,
            dlq = topics.dead_letter,
        );
        match target {
            Target::Bare => unreachable!("the passthrough has no routes file"),
            Target::Noop => {
                for _ in 0..self.noop_steps {
                    file.push_str("\n[[routes.chain]]\nplugin = \"noop\"\n");
                }
            }
            Target::Chain => file.push_str(CHAIN),
        }
        Ok(file)
    }
}

/// Target (c)'s chain, configured for the benchmark's records (see
/// `records.rs`): check the internal event's shape; hash the user and
/// device ids and drop the other personal fields; project onto a small
/// CloudEvents-like public form keyed by the hashed user. The public form
/// keeps the send time, which the latency measurement reads.
const CHAIN: &str = r#"
[[routes.chain]]
plugin = "validate"
config.fields.eventId = { required = true, type = "string", min_length = 1 }
config.fields.type = { required = true, type = "string", one_of = ["TripStarted", "TripEnded"] }
config.fields.occurredAt = { required = true, type = "string", format = "rfc3339" }
config.fields.userId = { required = true, type = "string", min_length = 1 }
config.fields.sentAtUs = { required = true, type = "integer" }
config.fields.payload = { required = true, type = "object" }

[[routes.chain]]
plugin = "redact"
config.hash_key = "bench-only-hmac-key-0123456789abcdef"
config.rules = [
  { path = "userId", action = "hash" },
  { path = "payload.deviceId", action = "hash" },
  { path = "payload.firstName", action = "drop" },
  { path = "payload.lastName", action = "drop" },
  { path = "payload.email", action = "drop" },
  { path = "payload.phone", action = "drop" },
  { path = "payload.from", action = "drop" },
  { path = "payload.to", action = "drop" },
  { path = "payload.note", action = "drop" },
]

[[routes.chain]]
plugin = "project"
config.key = "/userId"
config.envelope.specversion = { value = "1.0" }
config.envelope.id = "/eventId"
config.envelope.source = { value = "urn:bench:mobility" }
config.envelope.time = "/occurredAt"
config.envelope.subject = "/userId"
config.types.TripStarted.type = { value = "mobility.trip.started.v1" }
config.types.TripStarted.data = { object = { tripId = "/payload/tripId", mode = "/payload/tripType", sentAtUs = "/sentAtUs" } }
config.types.TripEnded.type = { value = "mobility.trip.ended.v1" }
config.types.TripEnded.data = { object = { tripId = "/payload/tripId", mode = "/payload/tripType", price = "/payload/price", sentAtUs = "/sentAtUs" } }
"#;

/// A loopback port nobody listens on now (the small race until switchyard
/// binds it is harmless here: a clash fails the run loudly).
fn free_local_port() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// CPU time (user + system) `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is the first, utime the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ, 100 on every Linux this runs on.
    Some(ticks as f64 / 100.0)
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
