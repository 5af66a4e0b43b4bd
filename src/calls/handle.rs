//! The tracker shared: one task owns it and applies every [`Input`] in order; HTTP
//! requests and actions read it through a [`Calls`] handle, wait for it to change, and
//! send it uapid's own notes through the same queue as Asterisk's events.

use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::snapshot::CallSnapshot;
use super::state::{Input, Note};
use super::tracker::Tracker;
use crate::config::Directory;

/// A reader's handle on the tracker.
#[derive(Clone)]
pub struct Calls {
    tracker: Arc<RwLock<Tracker>>,
    changes: watch::Receiver<u64>,
    inputs: mpsc::UnboundedSender<Input>,
}

impl Calls {
    /// Starts the tracker's task (`app`: uapid's Stasis application). Returns the
    /// handle, the queue Asterisk's events go into, and the task.
    pub fn spawn(
        dir: Arc<Directory>,
        app: &str,
    ) -> (Calls, mpsc::UnboundedSender<Input>, JoinHandle<()>) {
        let tracker = Arc::new(RwLock::new(Tracker::new(dir, app)));
        let (inputs, rx) = mpsc::unbounded_channel();
        let (changes_tx, changes) = watch::channel(0u64);
        let task = tokio::spawn(run(tracker.clone(), rx, changes_tx));
        let calls = Calls {
            tracker,
            changes,
            inputs: inputs.clone(),
        };
        (calls, inputs, task)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Tracker> {
        self.tracker.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of one call as an action sees it.
    pub fn snapshot(&self, call: &str) -> Option<CallSnapshot> {
        CallSnapshot::take(&self.read(), call)
    }

    /// Tells the tracker something uapid did that Asterisk does not report.
    pub fn note(&self, n: Note) {
        let _ = self.inputs.send(Input::Note(n));
    }

    /// A receiver that changes after each batch of inputs applied.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Waits until `pred` holds on the tracker (checked after each change), at most
    /// `within`; says whether it held.
    pub async fn wait_until(&self, within: Duration, pred: impl Fn(&Tracker) -> bool) -> bool {
        let mut changes = self.changes.clone();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if pred(&self.read()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return pred(&self.read()),
            }
        }
    }
}

/// The single owner of the tracker: applies inputs in order, a batch per write lock, and
/// tells waiters (`changes`) after each batch.
async fn run(
    tracker: Arc<RwLock<Tracker>>,
    mut rx: mpsc::UnboundedReceiver<Input>,
    changes: watch::Sender<u64>,
) {
    while let Some(first) = rx.recv().await {
        let mut t = tracker.write().unwrap_or_else(|e| e.into_inner());
        t.apply(first);
        for _ in 0..512 {
            match rx.try_recv() {
                Ok(i) => t.apply(i),
                Err(_) => break,
            }
        }
        drop(t);
        changes.send_modify(|v| *v = v.wrapping_add(1));
    }
}
