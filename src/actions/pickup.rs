//! PickUp: a call ringing at the view's extension is answered at `sendCallTo` instead.
//!
//! `sendCallTo` rings (AMI `Originate` running `PickupChan` on the ringing channel); when
//! it answers, it takes the call over and the original phone stops ringing. If nobody
//! answers within `waitForPickup`, nothing changes.

use std::sync::Arc;

use super::parse::{CallerId, WaitForPickup};
use super::{dial_string, new_channel_id, wrong_state, CallGuard, CallPlan, Done, Engine};
use crate::api::error::ApiError;
use crate::asterisk::ami::Message;
use crate::calls::tracker::ChanState;
use crate::config::Extension;

pub async fn pickup(
    e: &Arc<Engine>,
    guard: CallGuard,
    plan: &CallPlan,
    view_ext: Option<&str>,
    send_call_to: &Extension,
    caller_id: Option<&CallerId>,
    wait: WaitForPickup,
) -> Result<Done, ApiError> {
    let ext = view_ext.ok_or_else(|| wrong_state("the call does not ring at an extension"))?;
    let ringing = plan
        .legs
        .iter()
        .find(|l| l.is_extension(ext) && l.state == ChanState::Ringing)
        .ok_or_else(|| wrong_state(format!("the call is not ringing at {ext}")))?;
    if send_call_to.number == ext {
        return Err(ApiError::bad_request(
            "pc_sendcallto_invalid",
            "sendCallTo is the extension the call already rings at",
        ));
    }
    // Shown to the phone that picks up: the caller id asked for, else the caller's.
    let caller = plan
        .legs
        .iter()
        .find(|l| l.id != ringing.id && l.state != ChanState::Ringing);
    let shown = match (caller_id, caller) {
        (Some(c), _) => Some(c.to_asterisk()),
        (None, Some(c)) => Some(super::asterisk_caller_id(&c.caller_name, &c.caller_number)),
        (None, None) => None,
    };
    let mut originate = Message::new()
        .with("Action", "Originate")
        .with("Channel", dial_string(send_call_to))
        .with("Application", "PickupChan")
        .with("Data", &ringing.name)
        .with("Timeout", (wait.0 * 1000).to_string())
        .with("ChannelId", new_channel_id())
        .with("Async", "true");
    if let Some(s) = shown {
        originate = originate.with("CallerID", s);
    }
    e.ami(originate).await?;
    drop(guard);
    Ok(Done {
        call: plan.id.clone(),
    })
}
