//! Transfer (blind) and TransferToVoicemail.
//!
//! The transferred party is sent (AMI `Redirect`) into the dialplan: the dialing context
//! with `sendCallTo` as the number (an extension, or a public number that goes out
//! through the trunk), or the voicemail context with the mailbox in `UAPID_MAILBOX`.
//! The transferring party leaves the call.

use std::sync::Arc;

use super::parse::Destination;
use super::{wrong_state, CallGuard, CallPlan, Done, Engine, Leg};
use crate::api::error::ApiError;
use crate::asterisk::ami::Message;
use crate::calls::tracker::ChanState;
use crate::config::Extension;

/// The two parties of a transfer: who hands over (`from`) and who is transferred.
fn parties<'p>(
    e: &Engine,
    plan: &'p CallPlan,
    from: &str,
    number: Option<&str>,
) -> Result<(&'p Leg, &'p Leg), ApiError> {
    let from_leg = plan.leg_by_number(&e.dir, from).ok_or_else(|| {
        ApiError::bad_request(
            "pc_transfer_from_number_invalid",
            format!("transferFromNumber {from} is not a party of this phone call"),
        )
    })?;
    let moved = match number {
        Some(n) => {
            let leg = plan.leg_by_number(&e.dir, n).ok_or_else(|| {
                ApiError::bad_request(
                    "pc_transfer_number_invalid",
                    format!("transferNumber {n} is not a party of this phone call"),
                )
            })?;
            if leg.id == from_leg.id || leg.party == from_leg.party {
                return Err(ApiError::bad_request(
                    "pc_transfer_number_invalid",
                    "transferNumber and transferFromNumber name the same party",
                ));
            }
            leg
        }
        None => plan.peer_of(from_leg).ok_or_else(|| {
            wrong_state(format!("{from} has no party on the other side to transfer"))
        })?,
    };
    if moved.state != ChanState::Up {
        return Err(wrong_state("the party to transfer has not answered"));
    }
    if moved.parked.is_some() {
        return Err(wrong_state(
            "the party to transfer is parked; unpark it instead",
        ));
    }
    Ok((from_leg, moved))
}

/// Sends `moved` to `context`/`exten`, then ends the transferring party's leg.
async fn redirect_and_leave(
    e: &Engine,
    moved: &Leg,
    from: &Leg,
    context: &str,
    exten: &str,
) -> Result<(), ApiError> {
    e.ami(
        Message::new()
            .with("Action", "Redirect")
            .with("Channel", &moved.name)
            .with("Context", context)
            .with("Exten", exten)
            .with("Priority", "1"),
    )
    .await?;
    // A Dial() bridge ends the other leg by itself; a Stasis bridge does not.
    match e.ari.hangup(&from.id).await {
        Ok(()) => Ok(()),
        Err(err) if err.status() == Some(404) => Ok(()),
        Err(err) => {
            tracing::warn!(channel = %from.name, "transfer: the transferring leg could not be hung up: {err}");
            Ok(())
        }
    }
}

pub async fn transfer(
    e: &Arc<Engine>,
    guard: CallGuard,
    plan: &CallPlan,
    send_call_to: &Destination,
    from: &str,
    number: Option<&str>,
) -> Result<Done, ApiError> {
    let (from_leg, moved) = parties(e, plan, from, number)?;
    if let Destination::Extension(x) = send_call_to {
        if moved.is_extension(&x.number) {
            return Err(ApiError::bad_request(
                "pc_sendcallto_invalid",
                "sendCallTo is the party being transferred",
            ));
        }
    }
    redirect_and_leave(
        e,
        moved,
        from_leg,
        &e.names.dial_context,
        send_call_to.number(),
    )
    .await?;
    let from_id = from_leg.id.clone();
    e.settle(guard, move |t| t.channel(&from_id).is_none());
    Ok(Done {
        call: plan.id.clone(),
    })
}

pub async fn to_voicemail(
    e: &Arc<Engine>,
    guard: CallGuard,
    plan: &CallPlan,
    path_ext: Option<&str>,
    send_call_to: &Extension,
    from: Option<&str>,
    number: Option<&str>,
) -> Result<Done, ApiError> {
    // Without transferFromNumber, the path's extension hands over.
    let from = match from {
        Some(f) => f.to_string(),
        None => path_ext
            .filter(|x| plan.extensions.iter().any(|e| e == x))
            .or_else(|| plan.extensions.first().map(String::as_str))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "pc_transfer_from_number_invalid",
                    "transferFromNumber is required for this call",
                )
            })?
            .to_string(),
    };
    let (from_leg, moved) = parties(e, plan, &from, number)?;
    let mailbox = send_call_to.mailbox.as_deref().unwrap_or_default();
    e.ami(
        Message::new()
            .with("Action", "Setvar")
            .with("Channel", &moved.name)
            .with("Variable", "UAPID_MAILBOX")
            .with("Value", mailbox),
    )
    .await?;
    redirect_and_leave(e, moved, from_leg, &e.names.voicemail_context, "s").await?;
    let (moved_id, from_id) = (moved.id.clone(), from_leg.id.clone());
    e.settle(guard, move |t| {
        t.channel(&from_id).is_none() && t.channel(&moved_id).is_none_or(|c| c.app == "VoiceMail")
    });
    Ok(Done {
        call: plan.id.clone(),
    })
}
