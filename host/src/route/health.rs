//! A route's health as Kafka sees it, and the watchdog that rejoins a
//! consumer which stopped making progress.
//!
//! Every route read from Kafka has a monitor, running while the route runs
//! and while it is paused. The monitor has its own client in the route's
//! consumer group (it never joins the group: it only reads), and on each
//! check asks the cluster:
//!
//! - the source topics' metadata: is Kafka reachable, does each topic exist;
//! - each partition's end offset (high watermark) and the group's committed
//!   offset: the lag, true whether the route runs, is paused or has no
//!   partition assigned (`switchyard_consumer_lag`);
//! - from the route's own consumer, which partitions it holds and where it
//!   reads.
//!
//! A route has a *problem* when Kafka cannot be reached, a source topic does
//! not exist, or records wait (lag > 0) and the group's committed offset
//! does not move. A problem that lasts `[health] stall_after_s` makes the
//! route *stalled*, which makes the instance unready (`/readyz`).
//!
//! The watchdog: when a running route has no partition assigned while
//! records wait, or holds a partition whose records it does not even fetch,
//! for `stall_after_s`, or when a source topic it waited for appears, it
//! asks the route to rejoin: the route drains, commits, and subscribes again
//! with a new consumer. A partition whose records are fetched but never
//! acknowledged (a failing sink or dead-letter topic) is reported, not
//! rejoined: a new consumer would fail the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::status::{RouteEntry, RouteState};
use crate::config::{Route, StartFrom};
use crate::kafka::{KafkaSettings, LoggingContext};
use crate::metrics::PartitionLabels;

/// How long a problem may last before the route counts as stalled.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30);

/// How long each request of a check may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The health settings (`[health]` in the routes file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    pub stall_after: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            stall_after: DEFAULT_STALL_AFTER,
        }
    }
}

impl HealthSettings {
    /// Time between two checks: often enough to see a stall well within
    /// `stall_after`, seldom enough to cost the cluster nothing.
    fn interval(&self) -> Duration {
        (self.stall_after / 5).clamp(Duration::from_secs(1), Duration::from_secs(5))
    }

    /// How long Kafka may stay unreachable from a route's clients before
    /// they are replaced by new ones.
    fn reconnect_after(&self) -> Duration {
        (self.stall_after * 2).max(Duration::from_secs(6))
    }
}

/// One source partition, as the last check saw it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionHealth {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset (the next record to process), if any.
    pub committed: Option<i64>,
    /// The partition's end offset (high watermark).
    pub end: i64,
    /// Records between the committed offset and the end.
    pub lag: i64,
    /// Held by this instance's consumer.
    pub assigned: bool,
}

/// A route's health, as `/healthz`, `/readyz` and `/admin/routes` show it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HealthReport {
    /// The last check reached Kafka.
    pub kafka_reachable: bool,
    /// Partitions this instance's consumer holds.
    pub assigned_partitions: usize,
    /// Records waiting, over every source partition.
    pub lag: i64,
    /// What keeps the route from making progress, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// How long the problem has lasted, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem_for_s: Option<u64>,
    /// The problem has lasted `stall_after_s` or longer.
    pub stalled: bool,
    /// How many times the watchdog had the route rejoin its group.
    pub rejoins: u64,
    pub partitions: Vec<PartitionHealth>,
}

/// What the route's consumer holds, published by the route for its monitor.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// `(topic, partition)` → the consumer's fetch position, if known.
    pub partitions: BTreeMap<(String, i32), Option<i64>>,
}

/// Shared between a route, its monitor and the HTTP handlers.
#[derive(Debug, Default)]
pub struct Health {
    report: Mutex<Option<HealthReport>>,
    /// Set by the running route; `None` while it has no consumer.
    held: Mutex<Option<Held>>,
    /// Notified by the watchdog: the route should rejoin its group.
    pub rejoin: Notify,
}

impl Health {
    /// The last check's report; `None` before the first.
    pub fn report(&self) -> Option<HealthReport> {
        self.report.lock().expect("health lock").clone()
    }

    /// True when the last check found the route stalled.
    pub fn stalled(&self) -> bool {
        self.report
            .lock()
            .expect("health lock")
            .as_ref()
            .is_some_and(|r| r.stalled)
    }

    pub fn set_held(&self, held: Option<Held>) {
        *self.held.lock().expect("health lock") = held;
    }

    fn held(&self) -> Option<Held> {
        self.held.lock().expect("health lock").clone()
    }

    fn set_report(&self, report: HealthReport) {
        *self.report.lock().expect("health lock") = Some(report);
    }
}

/// What one check read from the cluster.
struct Observation {
    /// Source topics that do not exist.
    missing: Vec<String>,
    partitions: Vec<PartitionHealth>,
}

/// The monitor of one route: runs until `stop` is cancelled.
pub async fn monitor(
    route: Route,
    entry: Arc<RouteEntry>,
    kafka: KafkaSettings,
    settings: HealthSettings,
    stop: CancellationToken,
) {
    let connect = || match super::create_offset_reader(&route, &kafka, "health") {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            tracing::error!(route = %route.name, error = %e, "cannot create the health monitor's Kafka client");
            None
        }
    };
    let Some(mut client) = connect() else { return };
    let mut state = MonitorState::default();
    let mut ticker = tokio::time::interval(settings.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Since when the checks have not reached Kafka.
    let mut unreachable_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let probe = client.clone();
        let probe_route = route.clone();
        let observed = tokio::task::spawn_blocking(move || observe(&probe, &probe_route))
            .await
            .expect("health check panicked");
        let now = Instant::now();
        if observed.is_ok() {
            unreachable_since = None;
        } else if now.duration_since(*unreachable_since.get_or_insert(now))
            >= settings.reconnect_after()
        {
            // A client whose connections did not come back from a broker
            // that was frozen or restarted can stay stuck while new
            // clients get through: start over with new ones, for the
            // checks and for the route.
            tracing::warn!(
                route = %route.name,
                "Kafka unreachable from this route's clients for {} s: connecting again with new clients",
                settings.reconnect_after().as_secs()
            );
            if let Some(fresh) = connect() {
                let old = std::mem::replace(&mut client, fresh);
                tokio::task::spawn_blocking(move || drop(old));
            }
            if matches!(entry.state(), RouteState::Running) {
                state.rejoin(&entry, now);
            }
            unreachable_since = Some(now);
        }
        let report = state.assess(&route, &entry, observed, settings, now);
        state.publish_lag(&route.name, &report.partitions);
        entry.health.set_report(report);
    }
    state.clear_lag();
}

/// Ask the cluster about the route's source topics (blocking).
fn observe(client: &BaseConsumer<LoggingContext>, route: &Route) -> Result<Observation, String> {
    let mut missing = Vec::new();
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for topic in &route.topics {
        let metadata = client
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| format!("cannot reach Kafka: {e}"))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            missing.push(topic.clone());
            continue;
        };
        match t.error().map(RDKafkaErrorCode::from) {
            None => {}
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                missing.push(topic.clone());
                continue;
            }
            Some(e) => return Err(format!("cannot read topic `{topic}`: {e}")),
        }
        if t.partitions().is_empty() {
            missing.push(topic.clone());
            continue;
        }
        for p in t.partitions() {
            let (low, high) = client
                .fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)
                .map_err(|e| format!("cannot read the end of `{topic}`/{}: {e}", p.id()))?;
            tpl.add_partition(topic, p.id());
            ends.push((topic.clone(), p.id(), low, high));
        }
    }
    let committed = if tpl.count() > 0 {
        client
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .map_err(|e| format!("cannot read the group's committed offsets: {e}"))?
    } else {
        TopicPartitionList::new()
    };
    let partitions = ends
        .into_iter()
        .map(|(topic, partition, low, high)| {
            let committed =
                committed
                    .find_partition(&topic, partition)
                    .and_then(|p| match p.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
            let lag = match committed {
                Some(c) => (high - c).max(0),
                // Nothing committed yet: from the start of the partition,
                // or from its end.
                None => match route.start_from {
                    StartFrom::Earliest => (high - low).max(0),
                    StartFrom::Latest => 0,
                },
            };
            PartitionHealth {
                topic,
                partition,
                committed,
                end: high,
                lag,
                assigned: false,
            }
        })
        .collect();
    Ok(Observation {
        missing,
        partitions,
    })
}

/// What a monitor remembers between checks.
#[derive(Default)]
struct MonitorState {
    /// Per partition: the last committed offset seen, and since when
    /// records wait without it moving.
    waiting: BTreeMap<(String, i32), (Option<i64>, Instant)>,
    /// The current problem and since when it lasts.
    problem: Option<(ProblemKind, String, Instant)>,
    /// Topics missing at the last check.
    missing: BTreeSet<String>,
    rejoins: u64,
    /// When the watchdog last asked for a rejoin.
    last_rejoin: Option<Instant>,
    /// The lag series published, to remove when the monitor ends.
    published: Vec<PartitionLabels>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProblemKind {
    Unreachable,
    MissingTopic,
    /// Records wait while this instance holds no partition.
    Unassigned,
    /// Records wait on a held partition the consumer does not fetch.
    NotFetching,
    /// Records fetched but not acknowledged (a failing sink?).
    NotAcknowledged,
    /// Records wait, and the route has no consumer.
    NoProgress,
}

impl MonitorState {
    fn assess(
        &mut self,
        route: &Route,
        entry: &RouteEntry,
        observed: Result<Observation, String>,
        settings: HealthSettings,
        now: Instant,
    ) -> HealthReport {
        let running = matches!(entry.state(), RouteState::Running);
        let held = if running { entry.health.held() } else { None };
        let mut report = HealthReport::default();
        match observed {
            Err(e) => {
                // Progress is measured again from when Kafka answers: the
                // consumer needs a moment to rejoin after an outage.
                self.waiting.clear();
                self.set_problem(ProblemKind::Unreachable, e, now);
            }
            Ok(mut o) => {
                report.kafka_reachable = true;
                for p in &mut o.partitions {
                    p.assigned = held.as_ref().is_some_and(|h| {
                        h.partitions.contains_key(&(p.topic.clone(), p.partition))
                    });
                }
                let appeared: Vec<&String> = self
                    .missing
                    .iter()
                    .filter(|t| !o.missing.contains(t))
                    .collect();
                if running && !appeared.is_empty() {
                    tracing::info!(route = %route.name, topics = ?appeared, "source topic now exists: subscribing again");
                    self.rejoin(entry, now);
                }
                self.missing = o.missing.iter().cloned().collect();
                report.assigned_partitions = o.partitions.iter().filter(|p| p.assigned).count();
                report.lag = o.partitions.iter().map(|p| p.lag).sum();
                match self.problem_of(&o, held.as_ref(), report.assigned_partitions, settings, now)
                {
                    Some((kind, text, since)) => {
                        self.set_problem(kind, text, now);
                        if let Some((_, _, at)) = &mut self.problem {
                            *at = (*at).min(since);
                        }
                    }
                    None => self.problem = None,
                }
                report.partitions = o.partitions;
            }
        }
        if let Some((kind, text, since)) = &self.problem {
            let lasted = now.duration_since(*since);
            report.problem = Some(text.clone());
            report.problem_for_s = Some(lasted.as_secs());
            report.stalled = lasted >= settings.stall_after;
            let rejoinable = matches!(kind, ProblemKind::Unassigned | ProblemKind::NotFetching);
            let recently = self
                .last_rejoin
                .is_some_and(|at| now.duration_since(at) < settings.stall_after);
            if running && report.stalled && rejoinable && !recently {
                tracing::warn!(route = %route.name, problem = %text, "route stalled: rejoining its consumer group");
                self.rejoin(entry, now);
            }
        }
        report.rejoins = self.rejoins;
        report
    }

    /// What keeps the route from progressing, from what the cluster says:
    /// its kind, its text, and since when it lasts.
    fn problem_of(
        &mut self,
        o: &Observation,
        held: Option<&Held>,
        assigned: usize,
        settings: HealthSettings,
        now: Instant,
    ) -> Option<(ProblemKind, String, Instant)> {
        self.waiting.retain(|(topic, partition), _| {
            o.partitions
                .iter()
                .any(|p| &p.topic == topic && p.partition == *partition)
        });
        let mut stuck: Option<(&PartitionHealth, Instant)> = None;
        for p in &o.partitions {
            let key = (p.topic.clone(), p.partition);
            if p.lag == 0 {
                self.waiting.remove(&key);
                continue;
            }
            let since = match self.waiting.get(&key) {
                Some((committed, since)) if *committed == p.committed => *since,
                _ => now,
            };
            self.waiting.insert(key, (p.committed, since));
            if now.duration_since(since) < settings.stall_after {
                continue;
            }
            // A partition another instance of the group holds is that
            // instance's concern, unless this one holds nothing.
            let ours = held.is_none() || assigned == 0 || p.assigned;
            if ours && stuck.is_none_or(|(_, s)| since < s) {
                stuck = Some((p, since));
            }
        }
        if !o.missing.is_empty() {
            return Some((
                ProblemKind::MissingTopic,
                format!("waiting for topic {}", o.missing.join(", ")),
                now,
            ));
        }
        let (p, since) = stuck?;
        let (kind, what) = match held {
            None => (
                ProblemKind::NoProgress,
                "the route is not consuming".to_owned(),
            ),
            Some(_) if assigned == 0 => (
                ProblemKind::Unassigned,
                "no partition is assigned to this instance".to_owned(),
            ),
            Some(h) => {
                let position = h
                    .partitions
                    .get(&(p.topic.clone(), p.partition))
                    .copied()
                    .flatten();
                // Where processing starts: the committed offset, or
                // before any commit, where the lag counts from.
                let from = p.committed.unwrap_or(p.end - p.lag);
                match position {
                    Some(pos) if pos > from => (
                        ProblemKind::NotAcknowledged,
                        format!(
                            "records up to offset {} were taken but not acknowledged \
                             (is a sink or dead-letter topic failing?)",
                            pos - 1
                        ),
                    ),
                    _ => (
                        ProblemKind::NotFetching,
                        "the consumer fetches nothing".to_owned(),
                    ),
                }
            }
        };
        Some((
            kind,
            format!(
                "no progress on {}/{} for {} s while {} records wait: {what}",
                p.topic,
                p.partition,
                now.duration_since(since).as_secs(),
                p.lag
            ),
            since,
        ))
    }

    fn set_problem(&mut self, kind: ProblemKind, text: String, now: Instant) {
        match &mut self.problem {
            Some((k, t, _)) if *k == kind => *t = text,
            _ => self.problem = Some((kind, text, now)),
        }
    }

    fn rejoin(&mut self, entry: &RouteEntry, now: Instant) {
        self.rejoins += 1;
        self.last_rejoin = Some(now);
        entry.health.rejoin.notify_one();
    }

    /// Set `switchyard_consumer_lag` for each partition of `route`.
    fn publish_lag(&mut self, route: &str, partitions: &[PartitionHealth]) {
        let lag = &crate::metrics::global().consumer_lag;
        for p in partitions {
            let labels = PartitionLabels {
                route: route.to_owned(),
                topic: p.topic.clone(),
                partition: p.partition,
            };
            lag.get_or_create(&labels).set(p.lag);
            if !self.published.contains(&labels) {
                self.published.push(labels);
            }
        }
    }

    /// Remove the route's lag series (the route is gone or rebuilt).
    fn clear_lag(&mut self) {
        let lag = &crate::metrics::global().consumer_lag;
        for labels in self.published.drain(..) {
            lag.remove(&labels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::route::status::StatusBoard;
    use std::path::Path;

    fn route() -> Route {
        let text = r#"
            [[routes]]
            name = "r"
            source = { topics = ["in"] }
            sink = { topic = "out" }
        "#;
        Config::parse(text, Path::new("x.toml"))
            .unwrap()
            .resolve(Path::new("x.toml"))
            .unwrap()
            .remove(0)
    }

    fn settings() -> HealthSettings {
        HealthSettings {
            stall_after: Duration::from_secs(10),
        }
    }

    fn partition(committed: Option<i64>, end: i64) -> PartitionHealth {
        PartitionHealth {
            topic: "in".into(),
            partition: 0,
            committed,
            end,
            lag: 0,
            assigned: false,
        }
    }

    fn observed(committed: Option<i64>, end: i64) -> Result<Observation, String> {
        let mut p = partition(committed, end);
        p.lag = end - committed.unwrap_or(0);
        Ok(Observation {
            missing: Vec::new(),
            partitions: vec![p],
        })
    }

    fn running_entry() -> Arc<RouteEntry> {
        let entry = StatusBoard::default().register("r", String::new());
        entry.set(RouteState::Running);
        entry
    }

    #[test]
    fn kafka_unreachable_stalls_the_route_once_it_lasts() {
        let (route, entry) = (route(), running_entry());
        let mut state = MonitorState::default();
        let t0 = Instant::now();
        let first = state.assess(
            &route,
            &entry,
            Err("cannot reach Kafka: x".into()),
            settings(),
            t0,
        );
        assert_eq!(first.problem.as_deref(), Some("cannot reach Kafka: x"));
        assert!(!first.stalled && !first.kafka_reachable);
        let later = state.assess(
            &route,
            &entry,
            Err("cannot reach Kafka: y".into()),
            settings(),
            t0 + Duration::from_secs(11),
        );
        assert!(later.stalled, "{later:?}");
        assert_eq!(later.problem_for_s, Some(11));
        let back = state.assess(
            &route,
            &entry,
            observed(Some(5), 5),
            settings(),
            t0 + Duration::from_secs(12),
        );
        assert!(!back.stalled && back.problem.is_none(), "{back:?}");
    }

    #[test]
    fn a_missing_topic_is_named_and_its_appearance_asks_for_a_rejoin() {
        let (route, entry) = (route(), running_entry());
        let mut state = MonitorState::default();
        let t0 = Instant::now();
        let missing = Ok(Observation {
            missing: vec!["in".into()],
            partitions: Vec::new(),
        });
        let report = state.assess(&route, &entry, missing, settings(), t0);
        assert_eq!(report.problem.as_deref(), Some("waiting for topic in"));
        assert_eq!(report.rejoins, 0);
        let report = state.assess(
            &route,
            &entry,
            observed(None, 3),
            settings(),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(report.rejoins, 1, "{report:?}");
        assert_eq!(report.lag, 3);
    }

    #[test]
    fn records_waiting_with_no_partition_assigned_stall_and_rejoin() {
        let (route, entry) = (route(), running_entry());
        entry.health.set_held(Some(Held::default()));
        let mut state = MonitorState::default();
        let t0 = Instant::now();
        let report = state.assess(&route, &entry, observed(Some(10), 50), settings(), t0);
        assert!(report.problem.is_none(), "not yet: {report:?}");
        let report = state.assess(
            &route,
            &entry,
            observed(Some(10), 60),
            settings(),
            t0 + Duration::from_secs(10),
        );
        assert!(report.stalled, "{report:?}");
        let problem = report.problem.unwrap();
        assert!(problem.contains("no partition is assigned"), "{problem}");
        assert!(problem.contains("50 records wait"), "{problem}");
        assert_eq!(report.rejoins, 1);
        // Progress clears it.
        let report = state.assess(
            &route,
            &entry,
            observed(Some(20), 60),
            settings(),
            t0 + Duration::from_secs(11),
        );
        assert!(report.problem.is_none(), "{report:?}");
    }

    #[test]
    fn records_taken_but_not_acknowledged_are_reported_not_rejoined() {
        let (route, entry) = (route(), running_entry());
        let mut held = Held::default();
        held.partitions.insert(("in".into(), 0), Some(40));
        entry.health.set_held(Some(held));
        let mut state = MonitorState::default();
        let t0 = Instant::now();
        state.assess(&route, &entry, observed(Some(10), 50), settings(), t0);
        let report = state.assess(
            &route,
            &entry,
            observed(Some(10), 50),
            settings(),
            t0 + Duration::from_secs(10),
        );
        assert!(report.stalled, "{report:?}");
        assert_eq!(report.assigned_partitions, 1);
        assert!(report
            .problem
            .unwrap()
            .contains("taken but not acknowledged"));
        assert_eq!(report.rejoins, 0);

        // The same before the group ever committed: the records taken
        // count from where the lag does.
        let mut state = MonitorState::default();
        state.assess(&route, &entry, observed(None, 50), settings(), t0);
        let report = state.assess(
            &route,
            &entry,
            observed(None, 50),
            settings(),
            t0 + Duration::from_secs(10),
        );
        assert!(
            report
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("records up to offset 39 were taken")),
            "{report:?}"
        );
        assert_eq!(report.rejoins, 0);
    }

    #[test]
    fn a_paused_route_has_true_lag_and_no_rejoin() {
        let route = route();
        let entry = StatusBoard::default().register("r", String::new());
        entry.set(RouteState::Paused);
        let mut state = MonitorState::default();
        let t0 = Instant::now();
        state.assess(&route, &entry, observed(Some(0), 1000), settings(), t0);
        let report = state.assess(
            &route,
            &entry,
            observed(Some(0), 1000),
            settings(),
            t0 + Duration::from_secs(30),
        );
        assert_eq!(report.lag, 1000);
        assert_eq!(report.rejoins, 0);
        assert!(
            entry.health.report().is_none(),
            "the monitor publishes, not assess"
        );
    }

    #[test]
    fn stall_after_must_be_positive() {
        let text = "[health]\nstall_after_s = 0\n";
        let config = Config::parse(text, Path::new("x.toml")).unwrap();
        assert!(config
            .health
            .settings()
            .unwrap_err()
            .contains("stall_after_s"));
        let config = Config::parse("[health]\nstall_after_s = 7\n", Path::new("x.toml")).unwrap();
        assert_eq!(
            config.health.settings().unwrap().stall_after,
            Duration::from_secs(7)
        );
        assert!(Config::parse("[health]\nstall_after = 7\n", Path::new("x.toml")).is_err());
    }
}
