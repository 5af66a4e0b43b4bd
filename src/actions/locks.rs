//! One lock per call: actions on a call run one at a time.
//!
//! An action that finds the lock taken by one that is still working is told the call is
//! busy. After its operation is accepted, an action keeps the lock a little longer, until
//! the tracker shows the outcome ([`CallLocks::settle`], bounded by [`SETTLE`]); one that
//! arrives meanwhile waits its turn and then plans on that outcome, as a PBX user expects
//! of a Park followed at once by an UnPark.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::ActionError;
use crate::calls::{Calls, Tracker};

/// How long an action waits for Asterisk to show what it did, before it reports.
pub const SETTLE: Duration = Duration::from_secs(5);

/// One call's lock, and whether its holder only waits for Asterisk to show its outcome.
#[derive(Default, Clone)]
struct CallLock {
    mutex: Arc<tokio::sync::Mutex<()>>,
    settling: Arc<AtomicBool>,
}

/// The lock of one call, held while an action works on it.
pub struct CallGuard {
    _held: tokio::sync::OwnedMutexGuard<()>,
    settling: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct CallLocks {
    locks: Mutex<HashMap<Arc<str>, CallLock>>,
}

impl CallLocks {
    /// Takes the call's lock, waiting (bounded) while its holder only settles.
    pub async fn lock(&self, call: &Arc<str>) -> Result<CallGuard, ActionError> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, l| Arc::strong_count(&l.mutex) > 1 || l.mutex.try_lock().is_err());
            locks.entry(call.clone()).or_default().clone()
        };
        let guard = |held| CallGuard {
            _held: held,
            settling: lock.settling.clone(),
        };
        if let Ok(held) = lock.mutex.clone().try_lock_owned() {
            return Ok(guard(held));
        }
        if lock.settling.load(Ordering::Acquire) {
            if let Ok(held) = tokio::time::timeout(SETTLE, lock.mutex.clone().lock_owned()).await {
                return Ok(guard(held));
            }
        }
        Err(ActionError::Busy)
    }

    /// The call's lock if nobody holds it now (no waiting).
    pub fn try_lock(&self, call: &Arc<str>) -> Option<CallGuard> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(call.clone()).or_default().clone()
        };
        let held = lock.mutex.clone().try_lock_owned().ok()?;
        Some(CallGuard {
            _held: held,
            settling: lock.settling.clone(),
        })
    }

    /// Whether some action holds the call's lock now.
    #[cfg(test)]
    pub fn is_busy(&self, call: &str) -> bool {
        let locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.get(call).is_some_and(|l| l.mutex.try_lock().is_err())
    }
}

impl CallGuard {
    /// Holds the call's lock until `pred` holds on the tracker (bounded by [`SETTLE`]),
    /// in the background, so the next action on the call plans on this one's outcome.
    pub fn settle(self, calls: &Calls, pred: impl Fn(&Tracker) -> bool + Send + 'static) {
        self.settle_then(calls, pred, |_| async {});
    }

    /// Like [`settle`](Self::settle), then runs `then` (told whether `pred` held)
    /// before the lock is released: the last step of an action that waits for
    /// Asterisk to show the first.
    pub fn settle_then<F, Fut>(
        self,
        calls: &Calls,
        pred: impl Fn(&Tracker) -> bool + Send + 'static,
        then: F,
    ) where
        F: FnOnce(bool) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        self.settling.store(true, Ordering::Release);
        let calls = calls.clone();
        tokio::spawn(async move {
            let shown = calls.wait_until(SETTLE, pred).await;
            then(shown).await;
            self.settling.store(false, Ordering::Release);
            drop(self);
        });
    }
}
