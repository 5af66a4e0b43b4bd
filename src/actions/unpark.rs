//! UnPark: `sendCallTo` rings; when it answers it dials the lot's space and is connected
//! to the parked call. If nobody answers within `waitForPickup`, the parked call stays
//! parked, untouched.

use super::input::{phone_terminal, Body, CallerId, ParseCtx, ViewId, WaitForPickup};
use super::pbx::{new_channel_id, Callee, Ring};
use super::{ActionError, Ctx, Done, InputError, PbxError, StateError};
use crate::config::Extension;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnPark {
    pub view: Option<ViewId>,
    pub send_call_to: Extension,
    pub caller_id: Option<CallerId>,
    pub wait: WaitForPickup,
}

impl UnPark {
    pub fn parse(b: &Body, cx: &ParseCtx) -> Result<UnPark, InputError> {
        Ok(UnPark {
            view: ViewId::parse(b)?,
            send_call_to: phone_terminal(cx, &b.send_call_to()?, InputError::SendCallTo)?,
            caller_id: CallerId::parse(b)?,
            wait: WaitForPickup::parse(b)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        // The parked leg: the one this view's extension parked, else any parked leg.
        let parked = cx
            .call
            .legs
            .iter()
            .filter(|l| l.parked.is_some())
            .max_by_key(|l| l.parked_by.is_some() && l.parked_by == cx.view_ext)
            .ok_or(StateError::NotParked)?;
        let space = parked
            .parked
            .as_ref()
            .map(|p| p.space.as_str())
            .unwrap_or("");
        // Shown to the phone that unparks: the caller id asked for, else the parked party.
        let shown = self
            .caller_id
            .clone()
            .unwrap_or_else(|| CallerId::of_party(&parked.caller_name, &parked.caller_number));
        // Rung with the parked leg as originator: the new leg shares the call's linkedid
        // from its first ring, so List shows it in the same call.
        let channel_id = new_channel_id();
        let ring = Ring {
            callee: Callee::Phone(&self.send_call_to),
            wait_ms: self.wait.millis(),
            caller_id: Some(&shown),
            channel_id: &channel_id,
        };
        // The lot made the space's extension when it parked the call: what this checks is
        // that the configured context is the lot's.
        let context = &cx.pbx.names().parked_context;
        if !cx.pbx.is_lot_context(context, space).await? {
            return Err(PbxError::Failed(format!(
                "the parking space {space} is not in context {context} (asterisk.parked_context); nothing was done"
            ))
            .into());
        }
        cx.pbx.ring_beside(ring, &parked.id, context, space).await?;
        Ok(cx.done())
    }
}
