//! PickUp: a call ringing at the view's extension is answered at `sendCallTo` instead.
//!
//! `sendCallTo` rings (`PickupChan` on the ringing channel when it answers); it then takes
//! the call over and the original phone stops ringing. If nobody answers within
//! `waitForPickup`, nothing changes.

use super::input::{phone_terminal, Body, CallerId, ParseCtx, ViewId, WaitForPickup};
use super::pbx::{new_channel_id, Callee, Ring};
use super::{ActionError, Ctx, Done, InputError, StateError};
use crate::calls::{ChanState, Made};
use crate::config::Extension;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickUp {
    pub view: Option<ViewId>,
    pub send_call_to: Extension,
    pub caller_id: Option<CallerId>,
    pub wait: WaitForPickup,
}

impl PickUp {
    pub fn parse(b: &Body, cx: &ParseCtx) -> Result<PickUp, InputError> {
        Ok(PickUp {
            view: ViewId::parse(b)?,
            send_call_to: phone_terminal(cx, &b.send_call_to()?, InputError::SendCallTo)?,
            caller_id: CallerId::parse(b)?,
            wait: WaitForPickup::parse(b)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        let ext = cx.view_ext()?;
        let ringing = cx
            .call
            .legs
            .iter()
            .find(|l| l.is_extension(ext) && l.state == ChanState::Ringing)
            .ok_or_else(|| StateError::NotRinging(ext.to_string()))?;
        if self.send_call_to.number == ext {
            return Err(InputError::SendCallTo(
                "is the extension the call already rings at".into(),
            )
            .into());
        }
        // Shown to the phone that picks up: the caller id asked for, else the caller's.
        let caller = cx
            .call
            .legs
            .iter()
            .find(|l| l.id != ringing.id && l.state != ChanState::Ringing)
            .map(|c| CallerId::of_party(&c.caller_name, &c.caller_number));
        let shown = self.caller_id.clone().or(caller);
        let channel_id = new_channel_id();
        let ring = Ring {
            callee: Callee::Phone(&self.send_call_to),
            wait_ms: self.wait.millis(),
            caller_id: shown.as_ref(),
            channel_id: &channel_id,
        };
        // The picking phone's call shows, until it picks up, the extension it picks from.
        let made = Made {
            dials: Some(ext.into()),
            ..Made::default()
        };
        super::note_made(cx.calls, &channel_id, made);
        cx.pbx
            .ring_into_app(ring, "PickupChan", &ringing.name)
            .await?;
        Ok(cx.done())
    }
}
