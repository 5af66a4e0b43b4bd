//! What `Dial()` would have done for calls uapid took into its Stasis application: a leg
//! uapid left alone (see `Tracker::left_alone`: in uapid's application, not parked, the
//! last channel of its call, e.g. after the other party hung up or was transferred away)
//! is hung up, and uapid's empty bridges are destroyed. Each goes through the call's lock:
//! a call an action works on is left to that action.

use std::collections::HashSet;
use std::sync::Arc;

use super::Actions;
use crate::calls::uapid_bridge_call;

/// Runs after each change of the tracker, until the tracker's task ends.
pub async fn run(actions: Arc<Actions>) {
    let mut changes = actions.calls.changes();
    let mut asked = HashSet::new();
    loop {
        // After each change, and every second: a leg passed over because its call was
        // busy is looked at again once the call is free.
        tokio::select! {
            c = changes.changed() => if c.is_err() { return },
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        reap(&actions, &mut asked).await;
    }
}

/// One pass. `asked`: legs and bridges uapid already asked Asterisk to end (so it asks
/// once).
async fn reap(a: &Actions, asked: &mut HashSet<String>) {
    let (orphans, empty_bridges) = {
        let t = a.calls.read();
        let orphans: Vec<(Arc<str>, String)> = t
            .channels()
            .filter(|ch| t.left_alone(ch))
            .map(|ch| (ch.call.clone(), ch.id.to_string()))
            .collect();
        let empty: Vec<(Arc<str>, String)> = t
            .bridges()
            .filter(|b| b.channels.is_empty())
            .filter_map(|b| Some((Arc::from(uapid_bridge_call(&b.name)?), b.id.to_string())))
            .collect();
        asked.retain(|id| t.channel(id).is_some() || t.bridge(id).is_some());
        let mut fresh = |v: Vec<(Arc<str>, String)>| -> Vec<(Arc<str>, String)> {
            v.into_iter()
                .filter(|(_, id)| asked.insert(id.clone()))
                .collect()
        };
        (fresh(orphans), fresh(empty))
    };
    for (call, id) in orphans {
        // Through the call's lock like any change: a call an action works on is left to it.
        let Some(_guard) = a.locks.try_lock(&call) else {
            asked.remove(&id);
            continue;
        };
        tracing::info!(channel = %id, "hanging up a leg left alone in uapid's Stasis application");
        if let Err(err) = a.pbx.hang_up(&id).await {
            tracing::debug!("reap {id}: {err}");
        }
    }
    for (call, id) in empty_bridges {
        let Some(_guard) = a.locks.try_lock(&call) else {
            asked.remove(&id);
            continue;
        };
        if let Err(err) = a.pbx.destroy_bridge(&id).await {
            tracing::debug!("reap bridge {id}: {err}");
        }
    }
}
