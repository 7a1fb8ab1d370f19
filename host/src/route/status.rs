//! What each route is doing, for `/healthz`, the logs and operators.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;

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
    /// Stopped by its error policy; `reason` names the record and error.
    Halted { reason: String },
    /// Shut down cleanly.
    Stopped,
}

/// Counters of one route, updated on the hot path without locks.
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Source records taken from the consumer.
    pub records_in: AtomicU64,
    /// Output records acknowledged by the broker (sink and named outputs).
    pub records_out: AtomicU64,
    /// Source records that produced no output.
    pub dropped: AtomicU64,
    /// Source records written to the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Retries of retryable failures.
    pub retries: AtomicU64,
}

impl RouteCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A route's entry on the board.
#[derive(Debug)]
pub struct RouteEntry {
    pub state: RwLock<RouteState>,
    pub counters: RouteCounters,
    /// `switchyard-chain` value: plugin versions of the running chain.
    chain: RwLock<String>,
}

impl RouteEntry {
    pub fn set(&self, state: RouteState) {
        *self.state.write().expect("state lock") = state;
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
    pub records_out: u64,
    pub dropped: u64,
    pub dead_lettered: u64,
    pub retries: u64,
}

impl StatusBoard {
    /// Register a route (in state `Starting`) and get its entry.
    pub fn register(&self, name: &str, chain: String) -> Arc<RouteEntry> {
        let entry = Arc::new(RouteEntry {
            state: RwLock::new(RouteState::Starting),
            counters: RouteCounters::default(),
            chain: RwLock::new(chain),
        });
        self.routes
            .write()
            .expect("board lock")
            .insert(name.to_owned(), entry.clone());
        entry
    }

    /// True when every registered route is running.
    pub fn all_running(&self) -> bool {
        self.routes
            .read()
            .expect("board lock")
            .values()
            .all(|r| r.state() == RouteState::Running)
    }

    pub fn report(&self) -> Vec<RouteReport> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.routes
            .read()
            .expect("board lock")
            .iter()
            .map(|(name, r)| RouteReport {
                name: name.clone(),
                state: r.state(),
                chain: r.chain(),
                records_in: load(&r.counters.records_in),
                records_out: load(&r.counters.records_out),
                dropped: load(&r.counters.dropped),
                dead_lettered: load(&r.counters.dead_lettered),
                retries: load(&r.counters.retries),
            })
            .collect()
    }
}
