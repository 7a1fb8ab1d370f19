//! WASI preview 2 for components from other languages (Python through
//! componentize-py), with an empty context and every wait bounded by the
//! call's deadline.
//!
//! Call deadlines are enforced by epoch interruption, which is checked in
//! WebAssembly code only: a plugin waiting inside a host call (Python's
//! `time.sleep(60)` becomes a `monotonic-clock` pollable waited on with
//! `wasi:io/poll`) is out of its reach and would hold its worker for the
//! whole wait. wasmtime-wasi's synchronous bindings wait in `poll` and
//! `pollable.block`; this module shadows both in the linker with versions
//! that give up at the call's deadline (kept in [`HostState`]) and fail
//! the call as a missed deadline.
//!
//! The other waits of WASI preview 2 cannot block here: the context has no
//! files, sockets or network (addresses are all denied, and socket creation
//! is turned off), stdin is closed and stdout and stderr discard what they
//! are given, so every stream is always ready.
//!
//! The synchronous bindings drive their futures with `block_on` on the
//! current Tokio runtime, which panics on one of the runtime's own workers:
//! a component importing WASI must run on a blocking thread (see
//! [`LoadedPlugin::imports_wasi`](super::LoadedPlugin::imports_wasi)).

use std::future::Future;
use std::time::Instant;

use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi::{WasiCtx, WasiView as _};

use super::pool::HostState;

/// The `wasi:io/poll` interface as wasmtime-wasi 48 defines it in the
/// linker (components importing any 0.2.x version resolve to it).
const WASI_IO_POLL: &str = "wasi:io/poll@0.2.12";

/// A wait in a WASI host call reached the call's deadline.
#[derive(Debug, thiserror::Error)]
#[error("a WASI call was still waiting at the call's deadline")]
pub struct WaitPastDeadline;

/// The WASI context of every plugin instance: nothing to reach.
pub fn empty_context() -> WasiCtx {
    WasiCtx::builder()
        // Addresses are all denied by default; without these, a socket
        // could still be created, and each holds a file descriptor of the
        // host's.
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Link WASI preview 2 with its waits bounded by the call's deadline.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let mut poll = linker.instance(WASI_IO_POLL)?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, HostState>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let state = store.data_mut();
            let deadline = state.call_deadline();
            let ready = until_deadline(deadline, state.ctx().table.poll(pollables))??;
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, HostState>, (pollable,): (Resource<DynPollable>,)| {
            let state = store.data_mut();
            let deadline = state.call_deadline();
            until_deadline(deadline, state.ctx().table.block(pollable))??;
            Ok(())
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Drive `wait` until it completes or `deadline` passes, whichever comes
/// first; at the deadline, the error that fails the call as a missed
/// deadline.
fn until_deadline<F: Future>(deadline: Instant, wait: F) -> wasmtime::Result<F::Output> {
    // The timer is made inside the runtime that drives it.
    in_tokio(async move { tokio::time::timeout_at(deadline.into(), wait).await })
        .map_err(|_elapsed| wasmtime::Error::new(WaitPastDeadline))
}
