//! OnHold: the view's extension holds the other party. Both legs are taken into uapid's
//! Stasis application and bridge ([`super::stasis`]); the held party leaves the bridge
//! and hears music on hold, the holder stays.

use super::input::{Body, ViewId};
use super::stasis::take_into_stasis;
use super::{ensure_free, ActionError, Ctx, Done, InputError, PbxError, StateError};
use crate::calls::{Leg, Note, HOLD_VAR};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnHold {
    pub view: Option<ViewId>,
}

impl OnHold {
    pub fn parse(b: &Body) -> Result<OnHold, InputError> {
        Ok(OnHold {
            view: ViewId::parse(b)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        let (own, peer) = cx.view_and_peer()?;
        // Both legs move: each must be answered and free (not parked, not on hold).
        for leg in [own, peer] {
            ensure_free(leg)?;
        }
        let others = |l: &&Leg| l.id != own.id && l.id != peer.id;
        if cx
            .call
            .legs
            .iter()
            .filter(others)
            .any(|l| l.held_by_uapid || l.holding)
        {
            return Err(StateError::OtherOnHold.into());
        }
        let bridge = take_into_stasis(&cx, own, peer).await?;
        if let Err(err) = hold(&cx, &bridge, own, peer).await {
            // Put them back talking, whatever step failed.
            let _ = cx.pbx.stop_moh(&peer.id).await;
            let both = format!("{},{}", own.id, peer.id);
            let _ = cx.pbx.bridge_add(&bridge, &both).await;
            return Err(err.into());
        }
        let at = chrono::Local::now().fixed_offset();
        cx.calls.note(Note::Held {
            channel: peer.id.clone(),
            at,
        });
        // Kept on the channel, so a restarted uapid reads when the hold began.
        let _ = cx
            .pbx
            .set_var(&peer.name, HOLD_VAR, &at.timestamp().to_string())
            .await;
        let held = peer.id.clone();
        let done = cx.done();
        cx.guard.settle(cx.calls, move |t| {
            t.channel(&held).is_none_or(|c| t.held_by_uapid(c))
        });
        Ok(done)
    }
}

/// The holder in the bridge; the held party out of it, hearing music.
async fn hold(cx: &Ctx<'_>, bridge: &str, own: &Leg, peer: &Leg) -> Result<(), PbxError> {
    cx.pbx.bridge_add(bridge, &own.id).await?;
    let in_bridge = cx
        .calls
        .read()
        .channel(&peer.id)
        .and_then(|c| c.bridge.as_deref())
        == Some(bridge);
    if in_bridge {
        cx.pbx.bridge_remove(bridge, &peer.id).await?;
    }
    cx.pbx.start_moh(&peer.id).await
}
