//! Park: the party on the other side of the view goes into the PBX's parking lot (AMI
//! `Park`) with the view's extension as the parker: when `maxInParking` runs out, the lot
//! rings the parker back. The parker's own leg ends, as when a phone parks a call.

use super::input::{Body, ParkTimeout, ViewId};
use super::locks::SETTLE;
use super::{ensure_free, ActionError, Ctx, Done, InputError, StateError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Park {
    pub view: Option<ViewId>,
    pub timeout: ParkTimeout,
}

impl Park {
    pub fn parse(b: &Body) -> Result<Park, InputError> {
        Ok(Park {
            view: ViewId::parse(b)?,
            timeout: ParkTimeout::parse(b)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        let ext = cx.view_ext()?;
        let own = cx
            .call
            .leg_of(ext)
            .ok_or_else(|| StateError::NotTalking(ext.to_string()))?;
        let peer = cx.call.peer_of(own).ok_or(StateError::NoPeer)?;
        // The parker's leg ends and the other goes to the lot: both must be free.
        for leg in [own, peer] {
            ensure_free(leg)?;
        }
        cx.pbx
            .park(&peer.name, &own.name, self.timeout.millis())
            .await?;
        // A Dial() bridge ends the parker's leg by itself; uapid's Stasis bridge does not.
        if own.in_stasis {
            let parked = peer.id.clone();
            cx.calls
                .wait_until(SETTLE, move |t| t.parked(&parked).is_some())
                .await;
            let _ = cx.pbx.hang_up(&own.id).await;
        }
        let parked = peer.id.clone();
        let done = cx.done();
        cx.guard
            .settle(cx.calls, move |t| t.parked(&parked).is_some());
        Ok(done)
    }
}
