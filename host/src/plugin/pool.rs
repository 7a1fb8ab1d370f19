//! Ready instances of one plugin, configured for one step of one route,
//! and the host side of the imports a plugin may call.
//!
//! Instantiating and running `init` costs far more than a `process` call, so
//! instances are kept in a pool and reused. An instance that traps (a
//! panic, a missed deadline, the memory cap) is poisoned by wasmtime and is
//! dropped, never returned to the pool; the next call gets a fresh one.
//!
//! Every instance runs within the bounds of the sandbox: a deadline per
//! call (epoch interruption in WebAssembly code, the call's deadline in
//! WASI waits, see [`super::wasi`]), one memory cap over all its linear
//! memories and bounded core instances and tables ([`super::limits`]), at
//! most as many bytes handed to the host in one go as that cap (wasmtime's
//! hostcall fuel, counted before the host allocates; past it the call fails
//! as a broken contract naming the cap), and a bounded `state` and `log`
//! per route step ([`super::state`], [`super::log`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::histogram::Histogram;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{switchyard::plugin as imports, Event, Outcome, Plugin};
use super::limits::{SandboxLimiter, MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES};
use super::log::StepLog;
use super::runtime::{LoadedPlugin, EPOCH_TICK};
use super::state::StepState;
use super::wasi::{self, WaitPastDeadline};
use super::PluginRuntime;
use crate::metrics::{self, PluginLabels};
use crate::subjects::crypto::{CryptoError, DataKey, KeyId, Token};
use crate::subjects::keys::{KeyStore, StoreError};

/// The route a pool serves, as the host's imports see it.
#[derive(Debug, Clone)]
pub struct RouteScope {
    /// The route's name, in logs and metrics.
    pub name: Arc<str>,
    /// The scope `subjects.encrypt` binds tokens to: the topic the route
    /// writes to (see [`crate::subjects::crypto`]). Tokens are read back only
    /// from batches of that topic.
    pub writes_to: Arc<str>,
}

impl RouteScope {
    pub fn new(name: &str, writes_to: &str) -> RouteScope {
        RouteScope {
            name: name.into(),
            writes_to: writes_to.into(),
        }
    }
}

/// A bare name (tests, `plugin test`): the route writes to a topic of that
/// name.
impl From<&str> for RouteScope {
    fn from(name: &str) -> RouteScope {
        RouteScope::new(name, name)
    }
}

impl From<&String> for RouteScope {
    fn from(name: &String) -> RouteScope {
        RouteScope::from(name.as_str())
    }
}

/// Per-store data: what the host imports can see.
pub struct HostState {
    limiter: SandboxLimiter,
    /// When the current call must be over: WASI waits give up then.
    deadline: Instant,
    log: Arc<StepLog>,
    state: Arc<StepState>,
    /// The scope tokens made here are bound to.
    writes_to: Arc<str>,
    /// The topic of the batch being processed: the only scope whose tokens
    /// `decrypt` opens during this call.
    reading: String,
    /// Set once `decrypt` has handed this step plaintext.
    plaintext_seen: Arc<AtomicBool>,
    /// WASI preview 2, for plugins whose toolchain imports it (Python via
    /// componentize-py): an empty context, so no preopened directories, no
    /// network, no environment variables or arguments; stdin is closed and
    /// stdout/stderr are discarded. Rust plugins import no WASI and never
    /// touch it.
    wasi: WasiCtx,
    table: ResourceTable,
    subjects: Option<Arc<KeyStore>>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Why a plugin call did not produce outcomes.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// `init` refused the route's configuration.
    #[error("plugin `{plugin}` refused its configuration: {message}")]
    Init { plugin: String, message: String },
    /// The call ran past its deadline and was interrupted.
    #[error("plugin `{plugin}` exceeded its {timeout:?} deadline")]
    Deadline { plugin: String, timeout: Duration },
    /// The instance trapped (panic, memory cap, out-of-bounds access...).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap { plugin: String, message: String },
    /// The plugin broke the contract, e.g. returned the wrong number of
    /// outcomes, or handed the host more than a call may.
    #[error("plugin `{plugin}` broke the contract: {message}")]
    Contract { plugin: String, message: String },
}

/// Limits applied to every instance of a pool.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub call_timeout: Duration,
    pub memory_bytes: usize,
}

struct Instance {
    store: Store<HostState>,
    bindings: Plugin,
}

/// Instances of one plugin for one route step.
pub struct InstancePool {
    runtime: PluginRuntime,
    plugin: LoadedPlugin,
    config_json: String,
    route: RouteScope,
    limits: Limits,
    state: Arc<StepState>,
    log: Arc<StepLog>,
    /// Whether any instance of this step has decrypted a token: from then
    /// on, the records past this step hold personal data in plaintext.
    plaintext_seen: Arc<AtomicBool>,
    idle: Mutex<Vec<Instance>>,
    /// `switchyard_plugin_call_seconds` of this route and plugin.
    call_seconds: Histogram,
}

fn call_histogram(route: &str, plugin: &str) -> Histogram {
    let labels = PluginLabels {
        route: route.to_owned(),
        plugin: plugin.to_owned(),
    };
    metrics::global()
        .plugin_call_seconds
        .get_or_create(&labels)
        .clone()
}

/// Idle instances kept per pool; more are created under parallel load and
/// dropped when returned to a full pool.
const MAX_IDLE: usize = 16;

impl InstancePool {
    /// A pool for `plugin` with `config_json` handed to `init`. Creates one
    /// instance at once, so a configuration the plugin refuses is reported
    /// before the route starts.
    pub fn new(
        runtime: PluginRuntime,
        plugin: LoadedPlugin,
        config_json: String,
        route: impl Into<RouteScope>,
        limits: Limits,
    ) -> Result<InstancePool, CallError> {
        let route = route.into();
        let pool = InstancePool {
            runtime,
            call_seconds: call_histogram(&route.name, &plugin.name),
            log: Arc::new(StepLog::new(
                route.name.clone(),
                plugin.name.as_str().into(),
            )),
            plugin,
            config_json,
            route,
            limits,
            state: Arc::default(),
            plaintext_seen: Arc::default(),
            idle: Mutex::new(Vec::new()),
        };
        let first = pool.instantiate()?;
        pool.put(first);
        Ok(pool)
    }

    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }

    /// Whether this step has been handed plaintext by `subjects.decrypt`:
    /// what it and later steps see may then be a subject's personal data.
    pub fn handles_plaintext(&self) -> bool {
        self.plaintext_seen.load(Ordering::Relaxed)
    }

    /// A pool of `plugin` run in shadow beside this one: same configuration
    /// and limits, but a `state` store of its own, so that the candidate
    /// cannot disturb what the live step remembers. Its call latency is
    /// recorded as plugin `NAME (shadow)`.
    pub fn shadow_of(&self, plugin: LoadedPlugin) -> Result<InstancePool, CallError> {
        let label = format!("{} (shadow)", plugin.name);
        let pool = InstancePool {
            runtime: self.runtime.clone(),
            call_seconds: call_histogram(&self.route.name, &label),
            log: Arc::new(StepLog::new(self.route.name.clone(), label.into())),
            plugin,
            config_json: self.config_json.clone(),
            route: self.route.clone(),
            limits: self.limits,
            state: Arc::default(),
            plaintext_seen: Arc::default(),
            idle: Mutex::new(Vec::new()),
        };
        let first = pool.instantiate()?;
        pool.put(first);
        Ok(pool)
    }

    /// A pool of `plugin` (a new version of this pool's plugin) for the
    /// same route step: same configuration, limits and `state` store, so a
    /// version swap keeps what the step remembered. Instantiates and
    /// `init`s one instance first, so a version that refuses the step's
    /// configuration is refused here, while this pool keeps serving.
    pub fn with_version(&self, plugin: LoadedPlugin) -> Result<InstancePool, CallError> {
        let pool = InstancePool {
            runtime: self.runtime.clone(),
            call_seconds: self.call_seconds.clone(),
            log: self.log.clone(),
            plugin,
            config_json: self.config_json.clone(),
            route: self.route.clone(),
            limits: self.limits,
            state: self.state.clone(),
            plaintext_seen: self.plaintext_seen.clone(),
            idle: Mutex::new(Vec::new()),
        };
        let first = pool.instantiate()?;
        pool.put(first);
        Ok(pool)
    }

    fn instantiate(&self) -> Result<Instance, CallError> {
        let state = HostState {
            limiter: SandboxLimiter::new(self.limits.memory_bytes),
            deadline: Instant::now(),
            log: self.log.clone(),
            state: self.state.clone(),
            writes_to: self.route.writes_to.clone(),
            reading: String::new(),
            plaintext_seen: self.plaintext_seen.clone(),
            wasi: wasi::empty_context(),
            table: ResourceTable::new(),
            subjects: self.runtime.subjects().cloned(),
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limiter);
        // What the host may allocate for what the instance hands it in one
        // go (a call's outputs, one import call's arguments): no more than
        // the instance may hold in its memory, however its lists alias.
        store.set_hostcall_fuel(self.limits.memory_bytes);
        store.epoch_deadline_trap();
        self.start_call(&mut store);
        let bindings = self
            .plugin
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.classify(e))?;
        self.start_call(&mut store);
        match bindings
            .switchyard_plugin_transform()
            .call_init(&mut store, &self.config_json)
        {
            Ok(Ok(())) => Ok(Instance { store, bindings }),
            Ok(Err(message)) => Err(CallError::Init {
                plugin: self.plugin.name.clone(),
                message,
            }),
            Err(e) => Err(self.classify(e)),
        }
    }

    fn deadline_ticks(&self) -> u64 {
        let ticks = self.limits.call_timeout.as_millis() / EPOCH_TICK.as_millis();
        // One extra tick: the current one may be about to end.
        (ticks as u64).max(1) + 1
    }

    /// Set the deadline of a call about to start: in epoch ticks for
    /// WebAssembly code, as an instant for WASI waits.
    fn start_call(&self, store: &mut Store<HostState>) {
        store.set_epoch_deadline(self.deadline_ticks());
        store.data_mut().deadline = Instant::now() + self.limits.call_timeout;
    }

    fn classify(&self, error: wasmtime::Error) -> CallError {
        let plugin = self.plugin.name.clone();
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
            || error.downcast_ref::<WaitPastDeadline>().is_some()
        {
            return CallError::Deadline {
                plugin,
                timeout: self.limits.call_timeout,
            };
        }
        let message = format!("{error:#}");
        // wasmtime's error for exhausted hostcall fuel is a private type:
        // known by its text (wasmtime is pinned; the sandbox tests would
        // see a change).
        if message.contains("fuel allocated for hostcalls has been exhausted") {
            return CallError::Contract {
                plugin,
                message: format!(
                    "it handed the host more than {} MiB at once: the outputs of one call (keys, \
                     values, headers, targets and reasons, and their counts, as the host would \
                     hold them), or the arguments of one import call; the cap is the instance's \
                     memory cap (`memory_limit_mib`)",
                    self.limits.memory_bytes >> 20
                ),
            };
        }
        if message.contains("resource limit exceeded") {
            return CallError::Trap {
                plugin,
                message: format!(
                    "{message}: the sandbox allows a plugin instance at most \
                     {MAX_CORE_INSTANCES} core instances, {MAX_MEMORIES} linear memories and \
                     {MAX_TABLES} tables"
                ),
            };
        }
        CallError::Trap { plugin, message }
    }

    fn take(&self) -> Result<Instance, CallError> {
        let idle = self.idle.lock().expect("pool lock").pop();
        match idle {
            Some(instance) => Ok(instance),
            None => self.instantiate(),
        }
    }

    fn put(&self, instance: Instance) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(instance);
        }
    }

    /// Run `process` on one instance. Exactly one outcome per event, or an
    /// error for the whole batch.
    pub fn process(&self, batch: &[Event]) -> Result<Vec<Outcome>, CallError> {
        let mut instance = self.take()?;
        self.start_call(&mut instance.store);
        // A batch comes from one partition of one topic: its tokens are
        // read in that topic's scope.
        let reading = batch.first().map_or("", |e| e.topic.as_str());
        let state = instance.store.data_mut();
        if state.reading != reading {
            state.reading.clear();
            state.reading.push_str(reading);
        }
        let started = std::time::Instant::now();
        let result = instance
            .bindings
            .switchyard_plugin_transform()
            .call_process(&mut instance.store, batch);
        self.call_seconds.observe(started.elapsed().as_secs_f64());
        self.log.report_if_due();
        match result {
            Ok(outcomes) => {
                self.put(instance);
                if outcomes.len() != batch.len() {
                    return Err(CallError::Contract {
                        plugin: self.plugin.name.clone(),
                        message: format!(
                            "returned {} outcomes for a batch of {} records",
                            outcomes.len(),
                            batch.len()
                        ),
                    });
                }
                Ok(outcomes)
            }
            // The instance is dropped here: after a trap its store is
            // poisoned.
            Err(e) => Err(self.classify(e)),
        }
    }
}

impl InstancePool {
    /// Like [`InstancePool::process`], one result per record: when the
    /// batch call fails as a whole (a trap, a deadline), each record is run
    /// alone so that only the record that causes it fails.
    pub fn process_isolating(&self, batch: &[Event]) -> Vec<Result<Outcome, CallError>> {
        match self.process(batch) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) if batch.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(
                    plugin = %self.plugin.version_tag(),
                    batch = batch.len(),
                    error = %e,
                    "batch call failed; retrying its records one by one to isolate the cause"
                );
                batch
                    .iter()
                    .map(|event| {
                        self.process(std::slice::from_ref(event))
                            .map(|mut o| o.pop().expect("one outcome per record"))
                    })
                    .collect()
            }
        }
    }
}

impl imports::types::Host for HostState {}

impl imports::log::Host for HostState {
    fn log(&mut self, level: imports::log::Level, message: String) {
        self.log.log(level, &message);
    }
}

impl imports::clock::Host for HostState {
    fn now_ms(&mut self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

impl imports::state::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.state.get(&key)
    }

    /// Traps past a bound of the step's state (see [`super::state`]).
    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        Ok(self.state.set(key, value)?)
    }

    fn delete(&mut self, key: String) {
        self.state.delete(&key);
    }
}

impl HostState {
    /// When the current call must be over.
    pub(crate) fn call_deadline(&self) -> Instant {
        self.deadline
    }
}

/// The `subjects` import: keys stay in the host; plugins get tokens,
/// references and pseudonyms.
impl imports::subjects::Host for HostState {
    fn encrypt(
        &mut self,
        subject: String,
        field: String,
        plaintext: Vec<u8>,
    ) -> Result<String, SubjectError> {
        let (id, key) = self.subject_key(&subject)?;
        Ok(key.encrypt(&id, &self.writes_to, &field, &plaintext))
    }

    fn decrypt(&mut self, token: String, field: String) -> Result<Option<Vec<u8>>, SubjectError> {
        let keys = self.key_store()?;
        let token = Token::parse(&token).map_err(|e| SubjectError::Invalid(e.to_string()))?;
        if self.reading.is_empty() || self.reading.starts_with(HTTP_SOURCE_PREFIX) {
            // Tokens are made by switchyard for a topic; one that arrives
            // over HTTP was lifted from somewhere, and is never opened.
            return Err(SubjectError::Invalid(format!(
                "{field}: tokens are not read from records received over HTTP"
            )));
        }
        let Some(key) = keys.key_by_id(&token.key).map_err(retryable)? else {
            return Ok(None);
        };
        let plaintext = key
            .decrypt(&token, &self.reading, &field)
            .map_err(|e: CryptoError| SubjectError::Invalid(format!("{field}: {e}")))?;
        self.plaintext_seen.store(true, Ordering::Relaxed);
        Ok(Some(plaintext))
    }

    fn key_ref(&mut self, subject: String) -> Result<String, SubjectError> {
        Ok(self.subject_key(&subject)?.0.key_ref())
    }

    fn pseudonym(&mut self, subject: String) -> Result<String, SubjectError> {
        Ok(self.subject_key(&subject)?.1.pseudonym())
    }
}

type SubjectError = imports::subjects::SubjectError;

/// The topic of records that arrived over HTTP starts with this (see
/// [`crate::route::ingest`]); no Kafka topic can, as `:` is not allowed in
/// topic names.
pub const HTTP_SOURCE_PREFIX: &str = "http:";

fn retryable(e: StoreError) -> SubjectError {
    SubjectError::Retryable(e.to_string())
}

impl HostState {
    fn key_store(&self) -> Result<&KeyStore, SubjectError> {
        self.subjects.as_deref().ok_or_else(|| {
            SubjectError::Unavailable(
                "subject encryption is not configured on this switchyard: add a [subjects] \
                 table with a master key to the routes file"
                    .into(),
            )
        })
    }

    fn subject_key(&self, subject: &str) -> Result<(KeyId, DataKey), SubjectError> {
        if subject.is_empty() {
            return Err(SubjectError::Invalid("the subject id is empty".into()));
        }
        let keys = self.key_store()?;
        if self.reading.starts_with(HTTP_SOURCE_PREFIX) {
            // A client's record: new subjects are rationed.
            keys.key_for_client(subject).map_err(retryable)
        } else {
            keys.key_for(subject).map_err(retryable)
        }
    }
}
