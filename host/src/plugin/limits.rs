//! What one plugin instance may take from the host: memory, tables, core
//! instances, and the bytes a call hands back.
//!
//! A component is not one linear memory: it may instantiate many core
//! modules, each with memories and tables of its own (a Python component
//! has several). wasmtime's `StoreLimits::memory_size` caps each linear
//! memory separately, so a component with twenty memories could take twenty
//! times the route's `memory_limit_mib`. [`SandboxLimiter`] is the store's
//! resource limiter instead: it sums every linear memory of the store
//! against the cap, sums every table's elements (wasmtime keeps a pointer
//! per element on the host), and bounds how many core instances, memories
//! and tables a store may create at all.
//!
//! Growing past a bound traps with a message naming the bound, as a failed
//! `memory.grow` did before: a guest rarely survives an allocation failure
//! anyway, and the trap says why.

use wasmtime::ResourceLimiter;

// What the bundled plugins use, measured: a Rust plugin creates one to
// three core instances, one linear memory (about 1 MiB) and one table of
// under a hundred elements; the Python component (componentize-py 0.25)
// fourteen core instances, one linear memory of about 12.5 MiB and two
// tables of 5,775 elements in all. The bounds leave ample room for
// components built otherwise.

/// Core module instances one plugin instance may create.
pub const MAX_CORE_INSTANCES: usize = 100;

/// Linear memories one plugin instance may create, all counted against its
/// one memory cap.
pub const MAX_MEMORIES: usize = 16;

/// Tables one plugin instance may create.
pub const MAX_TABLES: usize = 16;

/// Table elements, summed over every table of a plugin instance. The host
/// keeps a pointer per element: at most 2 MiB.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 18;

/// The resource limiter of a plugin instance's store.
#[derive(Debug)]
pub struct SandboxLimiter {
    memory_cap: usize,
    /// Bytes of every linear memory of the store, as granted.
    memory_bytes: usize,
    /// Linear memories created so far.
    memories: usize,
    /// Elements of every table of the store, as granted.
    table_elements: usize,
    /// A growth granted but not yet known to have happened: undone if
    /// wasmtime reports that it failed.
    pending_memory: usize,
    pending_table: usize,
}

/// The kind of growth refused, for the trap's message.
#[derive(Debug, thiserror::Error)]
pub enum LimitExceeded {
    #[error(
        "memory cap: the instance's {memories} linear memories would hold {wanted} bytes, \
         past its cap of {cap} bytes ({cap_mib} MiB, the route's `memory_limit_mib`)",
        cap_mib = cap >> 20
    )]
    Memory {
        wanted: usize,
        cap: usize,
        memories: usize,
    },
    #[error(
        "table cap: the instance's tables would hold {wanted} elements, past the sandbox's \
         {MAX_TABLE_ELEMENTS}"
    )]
    TableElements { wanted: usize },
}

impl SandboxLimiter {
    /// A limiter capping the sum of all linear memories at `memory_cap`
    /// bytes.
    pub fn new(memory_cap: usize) -> SandboxLimiter {
        SandboxLimiter {
            memory_cap,
            memory_bytes: 0,
            memories: 0,
            table_elements: 0,
            pending_memory: 0,
            pending_table: 0,
        }
    }

    /// Bytes of linear memory the store holds now, over all its memories.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Linear memories the store has created.
    pub fn memories(&self) -> usize {
        self.memories
    }

    /// Table elements the store holds now, over all its tables.
    pub fn table_elements(&self) -> usize {
        self.table_elements
    }
}

impl ResourceLimiter for SandboxLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The memory's own declared maximum: `memory.grow` fails (-1) as
        // the specification says.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let created = current == 0;
        let growth = desired.saturating_sub(current);
        let wanted = self.memory_bytes.saturating_add(growth);
        if wanted > self.memory_cap {
            return Err(LimitExceeded::Memory {
                wanted,
                cap: self.memory_cap,
                memories: self.memories + usize::from(created),
            }
            .into());
        }
        if created {
            self.memories += 1;
        }
        self.memory_bytes = wanted;
        self.pending_memory = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_bytes -= std::mem::take(&mut self.pending_memory);
        // As a failed growth within the cap is the host failing to map
        // memory, not the guest misbehaving, say so with a trap rather than
        // hand the guest a -1 it may not expect.
        Err(error.context("the host could not grow the instance's memory"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let growth = desired.saturating_sub(current);
        let wanted = self.table_elements.saturating_add(growth);
        if wanted > MAX_TABLE_ELEMENTS {
            return Err(LimitExceeded::TableElements { wanted }.into());
        }
        self.table_elements = wanted;
        self.pending_table = growth;
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.table_elements -= std::mem::take(&mut self.pending_table);
        Err(error.context("the host could not grow the instance's table"))
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 64 << 10;

    #[test]
    fn memories_are_summed_against_one_cap() {
        let mut limiter = SandboxLimiter::new(4 * PAGE);
        assert!(limiter.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(limiter.memory_growing(0, PAGE, None).unwrap());
        assert_eq!((limiter.memories(), limiter.memory_bytes()), (2, 3 * PAGE));
        // The second memory growing by two pages would make five in all.
        let err = limiter.memory_growing(PAGE, 3 * PAGE, None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("memory cap"), "{text}");
        assert!(text.contains("2 linear memories"), "{text}");
        assert!(text.contains("memory_limit_mib"), "{text}");
        assert_eq!(limiter.memory_bytes(), 3 * PAGE, "nothing granted");
        assert!(limiter.memory_growing(PAGE, 2 * PAGE, None).unwrap());
        assert_eq!(limiter.memory_bytes(), 4 * PAGE);
    }

    #[test]
    fn a_growth_that_failed_is_given_back() {
        let mut limiter = SandboxLimiter::new(4 * PAGE);
        assert!(limiter.memory_growing(0, 3 * PAGE, None).unwrap());
        assert!(limiter
            .memory_grow_failed(wasmtime::Error::msg("mmap failed"))
            .is_err());
        assert_eq!(limiter.memory_bytes(), 0);
        assert!(limiter.memory_growing(0, 4 * PAGE, None).unwrap());
    }

    #[test]
    fn a_declared_maximum_fails_the_growth_without_a_trap() {
        let mut limiter = SandboxLimiter::new(16 * PAGE);
        assert!(!limiter
            .memory_growing(PAGE, 3 * PAGE, Some(2 * PAGE))
            .unwrap());
        assert_eq!(limiter.memory_bytes(), 0);
    }

    #[test]
    fn table_elements_are_summed_over_tables() {
        let mut limiter = SandboxLimiter::new(PAGE);
        assert!(limiter
            .table_growing(0, MAX_TABLE_ELEMENTS - 10, None)
            .unwrap());
        assert!(limiter.table_growing(0, 10, None).unwrap());
        let err = limiter.table_growing(0, 1, None).unwrap_err();
        assert!(err.to_string().contains("table cap"), "{err}");
    }
}
