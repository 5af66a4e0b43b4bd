//! What `Dial()` would have done for calls uapid took into its Stasis application: a leg
//! left alone in its call (the other party hung up, was parked or transferred away) is
//! hung up, and uapid's empty bridges are destroyed. Calls with an action in progress are
//! left alone.

use std::collections::HashSet;
use std::sync::Arc;

use super::stasis::bridge_call;
use super::Actions;

/// Runs after each change of the tracker, until the tracker's task ends.
pub async fn run(actions: Arc<Actions>) {
    let mut changes = actions.calls.changes();
    let mut asked = HashSet::new();
    while changes.changed().await.is_ok() {
        reap(&actions, &mut asked).await;
    }
}

/// One pass. `asked`: legs and bridges uapid already asked Asterisk to end (so it asks
/// once).
async fn reap(a: &Actions, asked: &mut HashSet<String>) {
    let (orphans, empty_bridges) = {
        let t = a.calls.read();
        let app = &a.pbx.names().app;
        let orphans: Vec<String> = t
            .channels()
            .filter(|ch| t.in_stasis(&ch.id, app) && !a.locks.is_busy(&ch.call))
            .filter(|ch| {
                t.call(&ch.call)
                    .is_none_or(|c| c.channels.iter().all(|x| *x == ch.id))
            })
            .map(|ch| ch.id.to_string())
            .collect();
        let empty: Vec<String> = t
            .bridges()
            .filter(|b| b.channels.is_empty())
            .filter(|b| bridge_call(&b.name).is_some_and(|call| !a.locks.is_busy(call)))
            .map(|b| b.id.to_string())
            .collect();
        asked.retain(|id| t.channel(id).is_some() || t.bridge(id).is_some());
        let orphans: Vec<String> = orphans
            .into_iter()
            .filter(|id| asked.insert(id.clone()))
            .collect();
        let empty: Vec<String> = empty
            .into_iter()
            .filter(|id| asked.insert(id.clone()))
            .collect();
        (orphans, empty)
    };
    for id in orphans {
        tracing::info!(channel = %id, "hanging up a leg left alone in uapid's Stasis application");
        if let Err(err) = a.pbx.hang_up(&id).await {
            tracing::debug!("reap {id}: {err}");
        }
    }
    for id in empty_bridges {
        if let Err(err) = a.pbx.destroy_bridge(&id).await {
            tracing::debug!("reap bridge {id}: {err}");
        }
    }
}
