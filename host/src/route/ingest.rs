//! HTTP-sourced routes: a request's body is one record, run through the
//! route's current chain while the client waits, and its outputs produced;
//! the request succeeds once the broker has acknowledged every one of
//! them. Nothing is dead-lettered: a record the chain refuses was never
//! accepted, and the client is told why.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::chain::{Chain, Failure, FailureKind, Routed};
use super::partition::produce_all;
use super::status::RouteState;
use super::{Producer, RouteRuntime};
use crate::plugin::bindings::{Event, Header};
use crate::plugin::pool::HTTP_SOURCE_PREFIX;
use crate::subjects::crypto::token_pointers;

/// How long a request waits for the broker before it is told to retry.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an ingested record was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A plugin rejected the record: every reason it gave.
    #[error("rejected: {}", .0.join("; "))]
    Rejected(Vec<String>),
    /// The route is paused or stopped; try again later.
    #[error("route `{0}` is not running")]
    NotRunning(String),
    /// The broker did not acknowledge in time, or a plugin failed
    /// transiently: the record may or may not be stored; retry.
    #[error("{0}")]
    Unavailable(String),
    /// A plugin failed on the record (trap, deadline, broken contract).
    #[error("{0}")]
    Failed(String),
}

/// Workers that may run a plugin chain in place at once.
static INLINE_SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::sync::Semaphore::new((workers / 2).max(1))
});

/// Source coordinates of HTTP records: the route's name as the topic, a
/// per-process sequence as the offset (plugins see them in `event`).
static SEQUENCE: AtomicI64 = AtomicI64::new(0);

/// Run one record through `rt`'s chain and produce its outputs, waiting for
/// the broker. Returns the outputs as produced.
pub async fn ingest(
    rt: &RouteRuntime,
    producer: &Producer,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<Header>,
) -> Result<Vec<Routed>, IngestError> {
    let route = &rt.route.name;
    if rt.entry.state() != RouteState::Running {
        return Err(IngestError::NotRunning(route.clone()));
    }
    let counters = &rt.entry.counters;
    if let Some(refusal) = refuse_tokens(&value) {
        counters.records_in.inc();
        counters.rejected.inc();
        return Err(refusal);
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let event = Event {
        topic: format!("{HTTP_SOURCE_PREFIX}{route}"),
        partition: 0,
        offset: SEQUENCE.fetch_add(1, Ordering::Relaxed),
        timestamp_ms: Some(now_ms),
        key,
        value: Some(value),
        headers,
    };
    counters.records_in.inc();
    let chain = rt.chain();
    let inline = runs_on_async_workers(&chain);
    let run = move || {
        chain
            .run(std::slice::from_ref(&event))
            .pop()
            .expect("one result per record")
    };
    // A plugin call on one event takes microseconds; handing each request
    // to the blocking pool and back cost more CPU than the call (context
    // switches, measured under load). So the call runs on the request's
    // worker, but on at most half of the workers at once: a runaway plugin
    // (held until its call deadline) cannot stall the server's other work.
    // Chains with a plugin that imports WASI always go to the blocking
    // pool: WASI calls block on the runtime, which panics on its workers.
    let slot = if inline {
        INLINE_SLOTS.try_acquire().ok()
    } else {
        None
    };
    let result = match slot {
        Some(_slot) => run(),
        None => tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| IngestError::Failed(format!("the plugin chain panicked: {e}")))?,
    };
    let outputs = match result {
        Ok(outputs) => outputs,
        Err(failure) => return Err(refusal(rt, failure)),
    };
    if outputs.is_empty() {
        counters.dropped.inc();
        return Ok(outputs);
    }
    let deliveries = produce_all(producer, &outputs)
        .await
        .map_err(|f| IngestError::Unavailable(f.message))?;
    acknowledged(deliveries).await?;
    counters.records_out.inc_by(outputs.len() as u64);
    Ok(outputs)
}

/// Whether `chain` may run on one of the runtime's async workers: only if
/// none of its plugins (the shadow candidate included) imports WASI, whose
/// calls block on the runtime (see [`LoadedPlugin::imports_wasi`]).
///
/// [`LoadedPlugin::imports_wasi`]: crate::plugin::LoadedPlugin::imports_wasi
fn runs_on_async_workers(chain: &Chain) -> bool {
    let steps = (0..chain.step_count()).filter_map(|i| chain.step_pool(i));
    let shadow = chain.shadow().map(|s| &s.candidate);
    !steps.chain(shadow).any(|pool| pool.plugin().imports_wasi)
}

/// What one record of a batch became.
pub type BatchResult = Result<(), IngestError>;

/// Run `values` (one record each, in order) through `rt`'s chain, in
/// batches of the route's `batch_size`, produce what each emits in order,
/// and wait for the broker to acknowledge all of it. Records the chain
/// refuses are reported and not published; the others are. `Err` when the
/// post as a whole could not be published (the broker, a paused route):
/// nothing of it is known to be stored, and it may be posted again.
pub async fn ingest_batch(
    rt: &RouteRuntime,
    producer: &Producer,
    values: Vec<Vec<u8>>,
) -> Result<Vec<BatchResult>, IngestError> {
    let route = &rt.route.name;
    if rt.entry.state() != RouteState::Running {
        return Err(IngestError::NotRunning(route.clone()));
    }
    let counters = &rt.entry.counters;
    counters.records_in.inc_by(values.len() as u64);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let first = SEQUENCE.fetch_add(values.len() as i64, Ordering::Relaxed);
    let mut outcome: Vec<BatchResult> = Vec::with_capacity(values.len());
    // Each record's place in `outcome`, for those that go on to the chain.
    let mut events: Vec<(usize, Event)> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        if let Some(refusal) = refuse_tokens(&value) {
            counters.rejected.inc();
            outcome.push(Err(refusal));
            continue;
        }
        outcome.push(Ok(()));
        events.push((
            i,
            Event {
                topic: format!("{HTTP_SOURCE_PREFIX}{route}"),
                partition: 0,
                offset: first + i as i64,
                timestamp_ms: Some(now_ms),
                key: None,
                value: Some(value),
                headers: Vec::new(),
            },
        ));
    }
    let mut deliveries = Vec::new();
    let mut published = 0;
    // The route's batch size bounds what one plugin call is handed, however
    // many records one post holds.
    let batch_size = rt.route.tuning.batch_size().max(1);
    let mut pending = events.into_iter().peekable();
    while pending.peek().is_some() {
        let (places, batch): (Vec<usize>, Vec<Event>) = pending.by_ref().take(batch_size).unzip();
        let chain = rt.chain();
        // A batch is real work for the plugins: off the request's worker.
        let results = tokio::task::spawn_blocking(move || chain.run(&batch))
            .await
            .map_err(|e| IngestError::Failed(format!("the plugin chain panicked: {e}")))?;
        for (place, result) in places.into_iter().zip(results) {
            match result {
                Ok(outputs) => {
                    if outputs.is_empty() {
                        counters.dropped.inc();
                    }
                    published += outputs.len();
                    deliveries.extend(
                        produce_all(producer, &outputs)
                            .await
                            .map_err(|f| IngestError::Unavailable(f.message))?,
                    );
                }
                Err(failure) => match refusal(rt, failure) {
                    // Transient trouble with one record fails the post: the
                    // client posts it again.
                    e @ IngestError::Unavailable(_) => return Err(e),
                    e => outcome[place] = Err(e),
                },
            }
        }
    }
    acknowledged(deliveries).await?;
    counters.records_out.inc_by(published as u64);
    Ok(outcome)
}

/// Tokens found in a record received over HTTP (at most this many named).
const MAX_TOKENS_NAMED: usize = 10;

/// A record from an HTTP client that holds switchyard tokens is refused,
/// naming where: tokens are made by switchyard for the topic they are
/// written to, so one in a client's record was lifted from somewhere (a
/// topic, another record), and passing it on would let a later route
/// decrypt it for whoever posted it.
fn refuse_tokens(value: &[u8]) -> Option<IngestError> {
    let found = token_pointers(value, MAX_TOKENS_NAMED);
    if found.is_empty() {
        return None;
    }
    Some(IngestError::Rejected(
        found
            .into_iter()
            .map(|at| {
                format!(
                    "{at}: holds a switchyard token (sy:v…); tokens are made by switchyard and \
                     are not accepted from clients"
                )
            })
            .collect(),
    ))
}

/// What a failed record means for the client.
fn refusal(rt: &RouteRuntime, failure: Failure) -> IngestError {
    match failure.kind {
        FailureKind::Rejected => {
            rt.entry.counters.rejected.inc();
            IngestError::Rejected(failure.reasons)
        }
        FailureKind::Retryable | FailureKind::Sink => IngestError::Unavailable(format!(
            "{} failed transiently: {}",
            failure.plugin, failure.message
        )),
        _ => IngestError::Failed(format!("{} failed: {}", failure.plugin, failure.message)),
    }
}

/// Wait, at most [`DELIVERY_TIMEOUT`], for the broker to acknowledge
/// every delivery.
async fn acknowledged(
    deliveries: Vec<rdkafka::producer::DeliveryFuture>,
) -> Result<(), IngestError> {
    let all = async {
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(format!("the broker refused the record: {e}")),
                Err(_) => return Err("the producer is shutting down".to_owned()),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(DELIVERY_TIMEOUT, all).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(IngestError::Unavailable(e)),
        Err(_) => Err(IngestError::Unavailable(format!(
            "the broker did not acknowledge within {} s",
            DELIVERY_TIMEOUT.as_secs()
        ))),
    }
}
