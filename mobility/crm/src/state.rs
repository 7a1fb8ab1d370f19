//! The state shared by every request: the CRM's records and the mock's own
//! controls (injected faults, traffic counters).
//!
//! Both sit behind `std::sync::Mutex`es: every critical section is a few
//! map operations and none spans an `.await`, so an async lock would only
//! add cost. They are separate so that counting traffic never waits for a
//! write to the records.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::mock::{ControlToken, MockControl};
use crate::store::Store;

#[derive(Debug, Clone, Default)]
pub struct AppState {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    store: Mutex<Store>,
    mock: Mutex<MockControl>,
    /// `None`: the mock's controls are disabled.
    control_token: Option<ControlToken>,
}

// A panic while a lock is held cannot leave a record half-written (every
// write is one push or one assignment), so a poisoned lock is still sound
// to use, and the mock keeps answering.

impl AppState {
    /// Fresh, empty state; `control_token` guards the mock's controls.
    pub fn new(control_token: Option<ControlToken>) -> Self {
        Self {
            shared: Arc::new(Shared {
                control_token,
                ..Shared::default()
            }),
        }
    }

    pub fn control_token(&self) -> Option<&ControlToken> {
        self.shared.control_token.as_ref()
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn mock(&self) -> MutexGuard<'_, MockControl> {
        self.shared
            .mock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
