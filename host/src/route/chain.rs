//! Running a batch of source records through a route's plugin chain.
//!
//! Plugin `i`'s untargeted outputs become plugin `i + 1`'s input (keeping the
//! source record's topic, partition, offset and timestamp); outputs with a
//! named `target` leave the chain at once for that named output. What the
//! last plugin emits untargeted goes to the route's sink. If any plugin
//! rejects or fails on anything derived from a source record, that source
//! record as a whole fails and none of its outputs are written.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::buffer::RecentBuffer;
use super::http_sink::HttpSink;
use super::shadow::Shadow;
use crate::plugin::bindings::{Error as PluginError, Event, Header, Outcome, Output};
use crate::plugin::{CallError, InstancePool, LoadedPlugin};

/// Where an output goes.
#[derive(Clone)]
pub enum Destination {
    Topic(Arc<str>),
    /// A route's buffer sink (see [`super::buffer`]).
    Buffer {
        name: Arc<str>,
        buffer: Arc<RecentBuffer>,
    },
    /// A route's HTTP sink (see [`super::http_sink`]).
    Http(Arc<HttpSink>),
}

impl Destination {
    pub fn topic(topic: &str) -> Destination {
        Destination::Topic(topic.into())
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Topic(topic) => write!(f, "topic `{topic}`"),
            Destination::Buffer { name, .. } => write!(f, "buffer `{name}`"),
            Destination::Http(sink) => write!(f, "HTTP sink {}", sink.shown_url()),
        }
    }
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A record ready to be produced.
#[derive(Debug, Clone)]
pub struct Routed {
    pub to: Destination,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
}

impl Routed {
    /// The topic this output goes to; `None` for a buffer.
    pub fn topic(&self) -> Option<&str> {
        match &self.to {
            Destination::Topic(topic) => Some(topic),
            Destination::Buffer { .. } | Destination::Http(_) => None,
        }
    }
}

/// Why a source record failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// `name@hash` of the plugin that failed, or `switchyard` for the host.
    pub plugin: String,
    pub kind: FailureKind,
    pub message: String,
    /// A rejection's reasons, each as the plugin gave it (`message` joins
    /// them with `; `); empty for other failures.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The plugin rejected the record as invalid.
    Rejected,
    /// The plugin reported a transient failure.
    Retryable,
    /// The plugin reported a permanent failure.
    Fatal,
    /// The instance trapped or missed its deadline.
    Trap,
    /// The plugin broke the contract (unknown output, wrong outcome count).
    Contract,
    /// The record could not be handed to the producer.
    Sink,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Rejected => "rejected",
            FailureKind::Retryable => "retryable",
            FailureKind::Fatal => "fatal",
            FailureKind::Trap => "trap",
            FailureKind::Contract => "contract",
            FailureKind::Sink => "sink",
        }
    }
}

/// What became of one source record.
pub type RecordResult = Result<Vec<Routed>, Failure>;

/// A route's chain: its instance pools and where outputs go. Immutable: a
/// new plugin version makes a new chain (see [`Chain::with_version`]).
pub struct Chain {
    steps: Vec<Step>,
    sink: Destination,
    outputs: BTreeMap<String, Destination>,
    /// Header stamped on every output: which plugin versions made it.
    chain_header: Header,
    /// A candidate version compared with one step, if an operator attached
    /// one.
    shadow: Option<Arc<Shadow>>,
}

struct Step {
    /// Shared with the chains made from this one by a swap of another step.
    pool: Arc<InstancePool>,
    tag: String,
}

/// Header naming the plugin chain (name and content hash of each plugin)
/// that produced an output record.
pub const CHAIN_HEADER: &str = "switchyard-chain";

impl Chain {
    pub fn new(
        pools: Vec<InstancePool>,
        sink: Destination,
        outputs: &BTreeMap<String, String>,
    ) -> Chain {
        let outputs = outputs
            .iter()
            .map(|(name, topic)| (name.clone(), Destination::topic(topic)))
            .collect();
        Chain::from_pools(
            pools.into_iter().map(Arc::new).collect(),
            sink,
            outputs,
            None,
        )
    }

    fn from_pools(
        pools: Vec<Arc<InstancePool>>,
        sink: Destination,
        outputs: BTreeMap<String, Destination>,
        shadow: Option<Arc<Shadow>>,
    ) -> Chain {
        let steps: Vec<Step> = pools
            .into_iter()
            .map(|pool| Step {
                tag: pool.plugin().version_tag(),
                pool,
            })
            .collect();
        let chain_tag = steps
            .iter()
            .map(|s| s.tag.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Chain {
            steps,
            sink,
            outputs,
            chain_header: Header {
                key: CHAIN_HEADER.to_owned(),
                value: chain_tag.into_bytes(),
            },
            shadow,
        }
    }

    /// This chain with every step that runs a plugin named `plugin.name`
    /// moved to `plugin` (keeping each step's configuration and state);
    /// `None` if no step runs it. Each new pool is instantiated and
    /// `init`-ed first: on an error this chain is untouched.
    pub fn with_version(&self, plugin: &LoadedPlugin) -> Result<Option<Chain>, CallError> {
        if !self.uses(&plugin.name) {
            return Ok(None);
        }
        let pools = self
            .steps
            .iter()
            .map(|step| {
                if step.pool.plugin().name == plugin.name {
                    step.pool.with_version(plugin.clone()).map(Arc::new)
                } else {
                    Ok(step.pool.clone())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A shadow stays attached across a swap of any step.
        Ok(Some(Chain::from_pools(
            pools,
            self.sink.clone(),
            self.outputs.clone(),
            self.shadow.clone(),
        )))
    }

    /// This chain with `shadow` attached (replacing any other), or with
    /// none.
    pub fn with_shadow(&self, shadow: Option<Arc<Shadow>>) -> Chain {
        Chain::from_pools(
            self.steps.iter().map(|s| s.pool.clone()).collect(),
            self.sink.clone(),
            self.outputs.clone(),
            shadow,
        )
    }

    pub fn shadow(&self) -> Option<&Arc<Shadow>> {
        self.shadow.as_ref()
    }

    /// Where the last step's untargeted outputs go.
    pub fn sink(&self) -> &Destination {
        &self.sink
    }

    /// How many steps the chain has.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// The pool of step `index` (from 0), if there is one.
    pub fn step_pool(&self, index: usize) -> Option<&InstancePool> {
        self.steps.get(index).map(|s| s.pool.as_ref())
    }

    /// The `name@hash` of step `index` (from 0).
    pub fn step_version(&self, index: usize) -> Option<&str> {
        self.steps.get(index).map(|s| s.tag.as_str())
    }

    /// Whether a step of this chain runs the plugin named `name`.
    /// The plugin versions of the chain's steps, in order.
    pub fn plugins(&self) -> Vec<LoadedPlugin> {
        self.steps.iter().map(|s| s.pool.plugin().clone()).collect()
    }

    pub fn uses(&self, name: &str) -> bool {
        self.steps.iter().any(|s| s.pool.plugin().name == name)
    }

    /// The `switchyard-chain` header value, e.g. `a@0123456789ab,b@...`.
    pub fn versions(&self) -> &str {
        std::str::from_utf8(&self.chain_header.value).unwrap_or_default()
    }

    /// Run `events` (from one partition, in offset order) through the chain.
    /// Returns one result per event, in order.
    pub fn run(&self, events: &[Event]) -> Vec<RecordResult> {
        let mut done: Vec<Vec<Routed>> = vec![Vec::new(); events.len()];
        let mut failed: Vec<Option<Failure>> = vec![None; events.len()];

        // Records flowing into the current step, each with the index of the
        // source record it derives from.
        let mut origin: Vec<usize> = (0..events.len()).collect();
        let mut owned: Option<Vec<Event>> = None;

        for (i, step) in self.steps.iter().enumerate() {
            let input: &[Event] = owned.as_deref().unwrap_or(events);
            if input.is_empty() {
                break;
            }
            let last = i + 1 == self.steps.len();
            let outcomes = step.pool.process_isolating(input);
            // Once a step up to here has decrypted, what this step sees may
            // be a subject's personal data in plaintext.
            let plaintext = self.steps[..=i].iter().any(|s| s.pool.handles_plaintext());
            if let Some(shadow) = self.shadow.as_ref().filter(|s| s.step == i) {
                shadow.compare(input, &outcomes, plaintext);
            }
            let mut next_events = Vec::new();
            let mut next_origin = Vec::new();
            for ((outcome, event), &src) in outcomes.into_iter().zip(input).zip(&origin) {
                if failed[src].is_some() {
                    continue;
                }
                let fail = |kind, message| {
                    Some(Failure {
                        plugin: step.tag.clone(),
                        kind,
                        message,
                        reasons: Vec::new(),
                    })
                };
                match outcome {
                    Err(e) => failed[src] = fail(call_error_kind(&e), e.to_string()),
                    Ok(Outcome::Drop) => {}
                    Ok(Outcome::Reject(reasons)) => {
                        failed[src] = Some(Failure {
                            plugin: step.tag.clone(),
                            kind: FailureKind::Rejected,
                            message: reasons.join("; "),
                            reasons,
                        })
                    }
                    Ok(Outcome::Fail(PluginError::Retryable(m))) => {
                        failed[src] = fail(FailureKind::Retryable, m)
                    }
                    Ok(Outcome::Fail(PluginError::Fatal(m))) => {
                        failed[src] = fail(FailureKind::Fatal, m)
                    }
                    Ok(Outcome::Emit(outputs)) => {
                        for output in outputs {
                            match output.target.as_deref() {
                                Some(name) => match self.outputs.get(name) {
                                    Some(topic) => done[src].push(self.routed(topic, output)),
                                    None => {
                                        failed[src] = fail(
                                            FailureKind::Contract,
                                            format!(
                                                "emitted to unknown output `{name}` (the route \
                                                 declares: {})",
                                                self.output_names()
                                            ),
                                        );
                                        break;
                                    }
                                },
                                None if last => done[src].push(self.routed(&self.sink, output)),
                                None => {
                                    next_events.push(derived(event, output));
                                    next_origin.push(src);
                                }
                            }
                        }
                    }
                }
                if plaintext {
                    if let Some(failure) = &mut failed[src] {
                        withhold_decrypted(failure, &events[src], event);
                    }
                }
            }
            owned = Some(next_events);
            origin = next_origin;
        }

        // An empty chain copies every record to the sink.
        if self.steps.is_empty() {
            for (event, out) in events.iter().zip(done.iter_mut()) {
                out.push(Routed {
                    to: self.sink.clone(),
                    key: event.key.clone(),
                    value: event.value.clone(),
                    headers: event.headers.clone(),
                });
            }
        }

        done.into_iter()
            .zip(failed)
            .map(|(outputs, failure)| match failure {
                Some(f) => Err(f),
                None => Ok(outputs),
            })
            .collect()
    }

    fn routed(&self, to: &Destination, output: Output) -> Routed {
        let mut headers = output.headers;
        headers.push(self.chain_header.clone());
        Routed {
            to: to.clone(),
            key: output.key,
            value: output.value,
            headers,
        }
    }

    fn output_names(&self) -> String {
        if self.outputs.is_empty() {
            return "none".into();
        }
        self.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Take out of `failure`'s text the values its record holds in plaintext
/// at the failing step (`input`) that it did not hold as it was read
/// (`source`): what decrypting revealed. A plugin's reasons may quote what
/// it was given (`must be one of ... (got "...")`), and the text goes to
/// the dead-letter topic's headers, the log and the route's status, none of
/// which crypto-shredding reaches. Best effort: a value changed before it
/// was quoted (upper-cased, cut) is not recognised, which is why plugins
/// should never quote values they did not check for personal data.
fn withhold_decrypted(failure: &mut Failure, source: &Event, input: &Event) {
    let mut revealed = string_leaves(input.value.as_deref());
    if revealed.is_empty() {
        return;
    }
    let read = string_leaves(source.value.as_deref());
    revealed.retain(|v| !read.contains(v));
    // Longest first, so that a value inside another goes with it.
    revealed.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let withhold = |text: &mut String| {
        for value in &revealed {
            if text.contains(value.as_str()) {
                *text = text.replace(value.as_str(), WITHHELD);
            }
        }
    };
    withhold(&mut failure.message);
    failure.reasons.iter_mut().for_each(withhold);
}

/// What replaces a value a failure's text may not show.
pub const WITHHELD: &str = "<withheld: personal data>";

/// The strings of a JSON value, at least three characters long (shorter
/// ones would take words out of the text around them), each also as JSON
/// escapes it; empty for a value that is not JSON.
pub(crate) fn string_leaves(value: Option<&[u8]>) -> Vec<String> {
    fn walk(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if s.chars().count() >= 3 => {
                let escaped = serde_json::to_string(s).unwrap_or_default();
                let escaped = escaped.trim_matches('"');
                if escaped != s {
                    into.push(escaped.to_owned());
                }
                into.push(s.clone());
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, into)),
            serde_json::Value::Object(object) => object.values().for_each(|v| walk(v, into)),
            _ => {}
        }
    }
    let mut leaves = Vec::new();
    if let Some(parsed) = value.and_then(|v| serde_json::from_slice(v).ok()) {
        walk(&parsed, &mut leaves);
    }
    leaves
}

fn call_error_kind(e: &CallError) -> FailureKind {
    match e {
        CallError::Init { .. } | CallError::Deadline { .. } | CallError::Trap { .. } => {
            FailureKind::Trap
        }
        CallError::Contract { .. } => FailureKind::Contract,
    }
}

/// An output of one plugin as the input of the next: the output's content
/// with the source record's coordinates.
fn derived(source: &Event, output: Output) -> Event {
    Event {
        key: output.key,
        value: output.value,
        headers: output.headers,
        topic: source.topic.clone(),
        partition: source.partition,
        offset: source.offset,
        timestamp_ms: source.timestamp_ms,
    }
}
