//! Park: the party on the other side of the view goes into the PBX's parking lot (AMI
//! `Park`) with the view's extension as the parker: when `maxInParking` runs out, the lot
//! rings the parker back. The parker's own leg ends, as when a phone parks a call.

use super::input::{Body, ParkTimeout, ViewId};
use super::{ensure_free, ActionError, Ctx, Done, InputError};

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
        let (own, peer) = cx.view_and_peer()?;
        // The parker's leg ends and the other goes to the lot: both must be free.
        for leg in [own, peer] {
            ensure_free(leg)?;
        }
        cx.pbx
            .park(&peer.name, &own.name, self.timeout.millis())
            .await?;
        // The parker's leg ends, as when a phone parks a call. A Dial() bridge usually
        // ends it by itself, uapid's Stasis bridge never does, and under load Asterisk
        // was seen to leave it up, alone in the Dial() bridge: once the park shows,
        // uapid ends it if it is still there.
        let (parked, parker) = (peer.id.clone(), own.id.clone());
        let pbx = cx.pbx.clone();
        let calls = cx.calls.clone();
        let done = cx.done();
        cx.guard.settle_then(
            cx.calls,
            move |t| t.parked(&parked).is_some(),
            move |shown| async move {
                let still_there = calls.read().channel(&parker).is_some();
                if shown && still_there {
                    if let Err(e) = pbx.hang_up(&parker).await {
                        tracing::debug!("park: the parker's leg: {e}");
                    }
                }
            },
        );
        Ok(done)
    }
}
