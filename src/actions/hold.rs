//! OnHold and OffHold, for calls made by the ordinary dialplan as well as uapid's own.
//!
//! A call bridged by `Dial()` cannot be changed over ARI, so OnHold first moves both legs
//! into uapid's Stasis application in one step (AMI `Redirect` with `ExtraChannel` into
//! the Stasis context, which runs `Stasis(<app>)`), then keeps them in an ARI mixing
//! bridge named `uapid-<call id>`. Hold takes the held party out of the bridge and plays
//! it music on hold; OffHold stops the music and puts it back. From then on uapid does
//! what `Dial()` did: when one party leaves, [`reap`] ends the leg left alone.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::{wrong_state, CallGuard, CallPlan, Done, Engine, Leg};
use crate::api::error::ApiError;
use crate::asterisk::ami::Message;
use crate::calls::tracker::{ChanState, Note, Tracker};

fn bridge_name(call: &str) -> String {
    format!("uapid-{call}")
}

/// The id of the call's uapid bridge, if Asterisk has it.
fn call_bridge(t: &Tracker, call: &str) -> Option<String> {
    let name = bridge_name(call);
    t.bridges()
        .find(|b| b.name == name)
        .map(|b| b.id.to_string())
}

/// The call's uapid bridge: the one Asterisk has, or a new mixing bridge.
async fn ensure_bridge(e: &Engine, call: &str) -> Result<String, ApiError> {
    let existing = {
        let t = e.tracker.read().unwrap_or_else(|e| e.into_inner());
        call_bridge(&t, call)
    };
    if let Some(b) = existing {
        return Ok(b);
    }
    let name = bridge_name(call);
    let v = e
        .ari
        .post("/bridges", &[("type", "mixing"), ("name", &name)])
        .await?;
    v.get("id")
        .and_then(|i| i.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "pc_operation_failed",
                "ARI created a bridge without an id",
            )
        })
}

/// Moves both legs into uapid's Stasis application (if they are not there yet) and into
/// the call's mixing bridge. Returns the bridge id.
async fn take_into_stasis(
    e: &Engine,
    plan: &CallPlan,
    a: &Leg,
    b: &Leg,
) -> Result<String, ApiError> {
    if !(a.in_stasis && b.in_stasis) {
        e.ami(
            Message::new()
                .with("Action", "Redirect")
                .with("Channel", &a.name)
                .with("ExtraChannel", &b.name)
                .with("Context", &e.names.stasis_context)
                .with("Exten", &e.names.app)
                .with("Priority", "1"),
        )
        .await?;
        let (ai, bi, app) = (a.id.clone(), b.id.clone(), e.names.app.clone());
        let arrived = e
            .wait_until(super::SETTLE, move |t| {
                (t.in_stasis(&ai, &app) || t.channel(&ai).is_none())
                    && (t.in_stasis(&bi, &app) || t.channel(&bi).is_none())
            })
            .await;
        let t = e.tracker.read().unwrap_or_else(|e| e.into_inner());
        if t.channel(&a.id).is_none() || t.channel(&b.id).is_none() {
            return Err(wrong_state(
                "a party hung up while the call was being taken over",
            ));
        }
        if !arrived {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "pc_operation_failed",
                format!(
                    "the call did not reach the Stasis application {} through context {}; check the PBX's dialplan",
                    e.names.app, e.names.stasis_context
                ),
            ));
        }
    }
    ensure_bridge(e, &plan.id).await
}

pub async fn on_hold(
    e: &Arc<Engine>,
    guard: CallGuard,
    plan: &CallPlan,
    view_ext: Option<&str>,
) -> Result<Done, ApiError> {
    let ext = view_ext.ok_or_else(|| wrong_state("the call has no extension to hold it from"))?;
    let own = plan
        .leg_of(ext)
        .filter(|l| l.state == ChanState::Up)
        .ok_or_else(|| wrong_state(format!("{ext} is not talking on this call")))?;
    let peer = plan
        .peer_of(own)
        .ok_or_else(|| wrong_state("there is no answered party on the other side"))?;
    if peer.held_by_uapid || own.held_by_uapid {
        return Err(wrong_state("the call is already on hold"));
    }
    if peer.parked.is_some() {
        return Err(wrong_state("the other party is parked"));
    }
    let bridge = take_into_stasis(e, plan, own, peer).await?;
    // The holder stays in the bridge; the held party leaves it and hears music.
    let result: Result<(), ApiError> = async {
        e.ari
            .post(
                &format!("/bridges/{bridge}/addChannel"),
                &[("channel", &own.id)],
            )
            .await?;
        let in_bridge = {
            let t = e.tracker.read().unwrap_or_else(|e| e.into_inner());
            t.channel(&peer.id).and_then(|c| c.bridge.as_deref()) == Some(bridge.as_str())
        };
        if in_bridge {
            e.ari
                .post(
                    &format!("/bridges/{bridge}/removeChannel"),
                    &[("channel", &peer.id)],
                )
                .await?;
        }
        e.ari
            .post(&format!("/channels/{}/moh", peer.id), &[])
            .await?;
        Ok(())
    }
    .await;
    if let Err(err) = result {
        // Put them back talking, whatever step failed.
        let _ = e
            .ari
            .delete(&format!("/channels/{}/moh", peer.id), &[])
            .await;
        let _ = e
            .ari
            .post(
                &format!("/bridges/{bridge}/addChannel"),
                &[("channel", &format!("{},{}", own.id, peer.id))],
            )
            .await;
        return Err(err);
    }
    e.note(Note::Held {
        held: peer.id.clone(),
        holder: own.id.clone(),
        at: chrono::Local::now().fixed_offset(),
    });
    let held = peer.id.clone();
    e.settle(guard, move |t| {
        t.channel(&held)
            .is_none_or(|c| c.bridge.is_none() && c.held_by_uapid.is_some())
    });
    Ok(Done {
        call: plan.id.clone(),
    })
}

pub async fn off_hold(
    e: &Arc<Engine>,
    guard: CallGuard,
    plan: &CallPlan,
    _view_ext: Option<&str>,
) -> Result<Done, ApiError> {
    let held = plan
        .legs
        .iter()
        .find(|l| l.held_by_uapid)
        .ok_or_else(|| wrong_state("the call is not on hold"))?;
    let bridge = ensure_bridge(e, &plan.id).await?;
    match e
        .ari
        .delete(&format!("/channels/{}/moh", held.id), &[])
        .await
    {
        Ok(()) => {}
        Err(err) if err.status() == Some(409) => {}
        Err(err) => return Err(err.into()),
    }
    e.ari
        .post(
            &format!("/bridges/{bridge}/addChannel"),
            &[("channel", &held.id)],
        )
        .await?;
    e.note(Note::Unheld {
        channel: held.id.clone(),
    });
    let (id, b) = (held.id.clone(), bridge.clone());
    e.settle(guard, move |t| {
        t.channel(&id)
            .is_none_or(|c| c.bridge.as_deref() == Some(&b))
    });
    Ok(Done {
        call: plan.id.clone(),
    })
}

/// Legs uapid already asked Asterisk to end (so it asks once).
#[derive(Default)]
pub struct Reaper {
    asked: Mutex<HashSet<String>>,
}

/// What `Dial()` would have done for calls uapid took into Stasis: a leg left alone in
/// its call (the other party hung up, was parked or transferred away) is hung up, and
/// uapid's empty bridges are destroyed. Calls with an action in progress are left alone.
pub async fn reap(e: &Engine, reaper: &Reaper) {
    let (orphans, empty_bridges) = {
        let t = e.tracker.read().unwrap_or_else(|e| e.into_inner());
        let mut orphans = Vec::new();
        for ch in t.channels() {
            if !t.in_stasis(&ch.id, &e.names.app) || e.is_busy(&ch.call) {
                continue;
            }
            let alone = t
                .call(&ch.call)
                .is_none_or(|c| c.channels.iter().all(|x| *x == ch.id));
            if alone {
                orphans.push(ch.id.to_string());
            }
        }
        let empty: Vec<String> = t
            .bridges()
            .filter(|b| b.channels.is_empty())
            .filter(|b| {
                b.name
                    .strip_prefix("uapid-")
                    .is_some_and(|call| !e.is_busy(call))
            })
            .map(|b| b.id.to_string())
            .collect();
        let mut asked = reaper.asked.lock().unwrap_or_else(|e| e.into_inner());
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
        if let Err(err) = e.ari.hangup(&id).await {
            tracing::debug!("reap {id}: {err}");
        }
    }
    for id in empty_bridges {
        if let Err(err) = e.ari.delete(&format!("/bridges/{id}"), &[]).await {
            tracing::debug!("reap bridge {id}: {err}");
        }
    }
}
