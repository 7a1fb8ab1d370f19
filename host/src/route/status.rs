//! What each route is doing, for `/healthz`, the logs and operators.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};

use super::chain::Failure;
use super::health::{Health, HealthReport};
use crate::metrics::{self, RouteLabels};
use crate::plugin::bindings::Event;

/// Where a source record is: the place a route halted on, and what an
/// operator names to skip it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordPlace {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for RecordPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// The record a route halted before, kept so that an operator can skip it
/// (it goes to the dead-letter topic with the failure that halted it).
#[derive(Debug, Clone)]
pub struct HaltedRecord {
    pub event: Event,
    pub failure: Failure,
    pub attempts: u32,
}

/// Lifecycle of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RouteState {
    /// Loading plugins, creating clients.
    Starting,
    /// Waiting for the brokers; `error` is the last failure.
    Connecting { error: String },
    /// Subscribed and processing.
    Running,
    /// Stopped by its error policy or a fault. `reason` says where and in
    /// general terms (the record's place, the kind of failure, the plugin);
    /// `detail`, the failure's own text (a plugin's reasons may quote the
    /// record), is shown only to holders of the admin token.
    Halted {
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// The record the route halted before, when it halted on one: what
        /// `POST /admin/routes/NAME/skip` must name.
        #[serde(skip_serializing_if = "Option::is_none")]
        halted_on: Option<RecordPlace>,
    },
    /// Paused by an operator: consumes nothing until resumed.
    Paused,
    /// Shut down cleanly.
    Stopped,
}

impl RouteState {
    /// The state's name, as in the reports and `switchyard_route_state`.
    pub fn name(&self) -> &'static str {
        match self {
            RouteState::Starting => "starting",
            RouteState::Connecting { .. } => "connecting",
            RouteState::Running => "running",
            RouteState::Halted { .. } => "halted",
            RouteState::Paused => "paused",
            RouteState::Stopped => "stopped",
        }
    }

    /// Every state's name.
    pub const NAMES: [&'static str; 6] = [
        "starting",
        "connecting",
        "running",
        "halted",
        "paused",
        "stopped",
    ];
}

/// Counters of one route, updated on the hot path without locks. They are
/// the route's Prometheus counters (see [`crate::metrics`]).
#[derive(Debug)]
pub struct RouteCounters {
    /// Source records taken from the consumer, each once: a record read
    /// again counts in `replayed`.
    pub records_in: Counter,
    /// Source records read again by this process: after a halted route
    /// started again, or a partition that came back after a rebalance.
    /// (A record another replica had read is not known here.)
    pub replayed: Counter,
    /// Output records acknowledged by the broker (sink and named outputs).
    pub records_out: Counter,
    /// Source records that produced no output.
    pub dropped: Counter,
    /// Source records a plugin rejected (dead-lettered or halting).
    pub rejected: Counter,
    /// Source records written to the dead-letter topic.
    pub dead_lettered: Counter,
    /// Retries of retryable failures.
    pub retries: Counter,
    /// Source records an operator skipped (`POST .../skip`).
    pub skipped: Counter,
}

impl RouteCounters {
    fn for_route(route: &str) -> RouteCounters {
        let m = metrics::global();
        let labels = RouteLabels {
            route: route.to_owned(),
        };
        RouteCounters {
            records_in: m.records_in.get_or_create(&labels).clone(),
            replayed: m.replayed.get_or_create(&labels).clone(),
            records_out: m.records_out.get_or_create(&labels).clone(),
            dropped: m.dropped.get_or_create(&labels).clone(),
            rejected: m.rejected.get_or_create(&labels).clone(),
            dead_lettered: m.dead_lettered.get_or_create(&labels).clone(),
            retries: m.retries.get_or_create(&labels).clone(),
            skipped: m.skipped.get_or_create(&labels).clone(),
        }
    }
}

/// A route's entry on the board.
#[derive(Debug)]
pub struct RouteEntry {
    pub state: RwLock<RouteState>,
    pub counters: RouteCounters,
    /// `switchyard-chain` value: plugin versions of the running chain.
    chain: RwLock<String>,
    /// The record the route halted before, while it is halted on one.
    halted_record: Mutex<Option<HaltedRecord>>,
    /// The route's health as Kafka sees it (see [`super::health`]).
    pub health: Health,
}

impl RouteEntry {
    pub fn set(&self, state: RouteState) {
        let mut current = self.state.write().expect("state lock");
        if !matches!(
            state,
            RouteState::Halted {
                halted_on: Some(_),
                ..
            }
        ) {
            *self.halted_record.lock().expect("halt lock") = None;
        }
        *current = state;
    }

    /// Halt before `record`, at `reason` (see [`RouteState::Halted`]).
    pub fn halt_on(&self, reason: String, record: HaltedRecord) {
        let mut current = self.state.write().expect("state lock");
        let place = RecordPlace {
            topic: record.event.topic.clone(),
            partition: record.event.partition,
            offset: record.event.offset,
        };
        // An earlier record of the same partition halted it first (the
        // acker, behind the worker): that is the one to skip, not this.
        if let RouteState::Halted {
            halted_on: Some(first),
            ..
        } = &*current
        {
            if first.topic == place.topic
                && first.partition == place.partition
                && first.offset < place.offset
            {
                return;
            }
        }
        let detail = Some(record.failure.message.clone());
        *self.halted_record.lock().expect("halt lock") = Some(record);
        *current = RouteState::Halted {
            reason,
            detail,
            halted_on: Some(place),
        };
    }

    /// The record the route is halted before, if it is halted on one.
    pub fn halted_record(&self) -> Option<HaltedRecord> {
        let _state = self.state.read().expect("state lock");
        self.halted_record.lock().expect("halt lock").clone()
    }

    pub fn state(&self) -> RouteState {
        self.state.read().expect("state lock").clone()
    }

    pub fn chain(&self) -> String {
        self.chain.read().expect("chain lock").clone()
    }

    pub fn set_chain(&self, versions: &str) {
        versions.clone_into(&mut self.chain.write().expect("chain lock"));
    }
}

/// Every route's status.
#[derive(Debug, Default, Clone)]
pub struct StatusBoard {
    routes: Arc<RwLock<BTreeMap<String, Arc<RouteEntry>>>>,
}

/// A snapshot of one route, as `/healthz` shows it.
#[derive(Debug, Serialize)]
pub struct RouteReport {
    pub name: String,
    #[serde(flatten)]
    pub state: RouteState,
    pub chain: String,
    pub records_in: u64,
    pub records_replayed: u64,
    pub records_out: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub dead_lettered: u64,
    pub retries: u64,
    pub skipped: u64,
    /// From the route's health monitor; absent before its first check and
    /// for routes fed by HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthReport>,
}

impl StatusBoard {
    /// Register a route (in state `Starting`) and get its entry.
    pub fn register(&self, name: &str, chain: String) -> Arc<RouteEntry> {
        let entry = Arc::new(RouteEntry {
            state: RwLock::new(RouteState::Starting),
            counters: RouteCounters::for_route(name),
            chain: RwLock::new(chain),
            halted_record: Mutex::new(None),
            health: Health::default(),
        });
        self.routes
            .write()
            .expect("board lock")
            .insert(name.to_owned(), entry.clone());
        entry
    }

    /// True when every registered route is running (and not stalled), or
    /// paused on purpose.
    pub fn all_running(&self) -> bool {
        self.routes
            .read()
            .expect("board lock")
            .values()
            .all(|r| match r.state() {
                RouteState::Running => !r.health.stalled(),
                RouteState::Paused => true,
                _ => false,
            })
    }

    /// Why this instance should not be sent traffic: a route still starting
    /// or connecting, or one that runs but cannot make progress (stalled).
    /// A route halted by its error policy or paused by an operator is on
    /// purpose, and does not count. Empty: ready.
    pub fn unready_reasons(&self) -> Vec<String> {
        let routes = self.routes.read().expect("board lock");
        let mut reasons = Vec::new();
        for (name, r) in routes.iter() {
            match r.state() {
                RouteState::Starting => reasons.push(format!("route `{name}` is starting")),
                RouteState::Connecting { error } => {
                    reasons.push(format!("route `{name}` is connecting: {error}"))
                }
                RouteState::Running => {
                    if let Some(report) = r.health.report().filter(|h| h.stalled) {
                        let problem = report.problem.unwrap_or_default();
                        reasons.push(format!("route `{name}` makes no progress: {problem}"));
                    }
                }
                RouteState::Halted { .. } | RouteState::Paused | RouteState::Stopped => {}
            }
        }
        reasons
    }

    /// Set `switchyard_route_state` (1 for each route's state, 0 for the
    /// others) and `switchyard_route_stalled`.
    pub fn publish_states(&self) {
        let m = metrics::global();
        for (name, r) in self.routes.read().expect("board lock").iter() {
            let state = r.state();
            for s in RouteState::NAMES {
                let labels = metrics::RouteStateLabels {
                    route: name.clone(),
                    state: s.to_owned(),
                };
                m.route_state
                    .get_or_create(&labels)
                    .set(i64::from(s == state.name()));
            }
            let labels = RouteLabels {
                route: name.clone(),
            };
            m.route_stalled
                .get_or_create(&labels)
                .set(i64::from(r.health.stalled()));
        }
    }

    /// Take a deleted route off the board.
    pub fn remove(&self, name: &str) {
        self.routes.write().expect("board lock").remove(name);
        let m = metrics::global();
        for s in RouteState::NAMES {
            m.route_state.remove(&metrics::RouteStateLabels {
                route: name.to_owned(),
                state: s.to_owned(),
            });
        }
        m.route_stalled.remove(&RouteLabels {
            route: name.to_owned(),
        });
    }

    /// Every route as anyone may see it: without the details of a halt,
    /// which may quote a record.
    pub fn report(&self) -> Vec<RouteReport> {
        let mut reports = self.report_with_details();
        for report in &mut reports {
            if let RouteState::Halted { detail, .. } = &mut report.state {
                *detail = None;
            }
        }
        reports
    }

    /// Every route, with the details of a halt: for the admin token's
    /// holder.
    pub fn report_with_details(&self) -> Vec<RouteReport> {
        let load = |c: &Counter| c.get();
        self.routes
            .read()
            .expect("board lock")
            .iter()
            .map(|(name, r)| RouteReport {
                name: name.clone(),
                state: r.state(),
                chain: r.chain(),
                records_in: load(&r.counters.records_in),
                records_replayed: load(&r.counters.replayed),
                records_out: load(&r.counters.records_out),
                dropped: load(&r.counters.dropped),
                rejected: load(&r.counters.rejected),
                dead_lettered: load(&r.counters.dead_lettered),
                retries: load(&r.counters.retries),
                skipped: load(&r.counters.skipped),
                health: r.health.report(),
            })
            .collect()
    }
}
