//! Park and UnPark.
//!
//! Park: the party on the other side of the view goes into the PBX's parking lot (AMI
//! `Park`) with the view's extension as the parker: when `maxInParking` runs out, the lot
//! rings the parker back. The parker's own leg ends, as when a phone parks a call.
//!
//! UnPark: `sendCallTo` rings (AMI `Originate`, asynchronous); when it answers it dials
//! the lot's space and is connected to the parked call. If nobody answers within
//! `waitForPickup`, the originate fails and the parked call stays parked, untouched.

use std::sync::Arc;

use super::parse::{CallerId, ParkTimeout, WaitForPickup};
use super::{dial_string, new_channel_id, wrong_state, CallGuard, CallPlan, Done, Engine};
use crate::api::error::ApiError;
use crate::asterisk::ami::Message;
use crate::config::Extension;

pub async fn park(
    e: &Arc<Engine>,
    guard: CallGuard,
    plan: &CallPlan,
    view_ext: Option<&str>,
    timeout: ParkTimeout,
) -> Result<Done, ApiError> {
    let ext = view_ext.ok_or_else(|| wrong_state("the call has no extension to park it from"))?;
    let own = plan
        .leg_of(ext)
        .filter(|l| l.state == crate::calls::tracker::ChanState::Up)
        .ok_or_else(|| {
            wrong_state(format!(
                "{ext} is not talking on this call; only an answered call can be parked"
            ))
        })?;
    let peer = plan
        .peer_of(own)
        .ok_or_else(|| wrong_state("there is no answered party on the other side to park"))?;
    if peer.parked.is_some() {
        return Err(wrong_state("the other party is already parked"));
    }
    e.ami(
        Message::new()
            .with("Action", "Park")
            .with("Channel", &peer.name)
            .with("TimeoutChannel", &own.name)
            .with("Timeout", (timeout.0 * 1000).to_string())
            .with("Parkinglot", &e.names.parking_lot),
    )
    .await?;
    // A Dial() bridge ends the parker's leg by itself; uapid's Stasis bridge does not.
    if own.in_stasis {
        let parked = peer.id.clone();
        e.wait_until(super::SETTLE, move |t| t.parked(&parked).is_some())
            .await;
        let _ = e.ari.hangup(&own.id).await;
    }
    let parked = peer.id.clone();
    e.settle(guard, move |t| t.parked(&parked).is_some());
    Ok(Done {
        call: plan.id.clone(),
    })
}

pub async fn unpark(
    e: &Arc<Engine>,
    guard: CallGuard,
    plan: &CallPlan,
    view_ext: Option<&str>,
    send_call_to: &Extension,
    caller_id: Option<&CallerId>,
    wait: WaitForPickup,
) -> Result<Done, ApiError> {
    // The parked leg: the one this view's extension parked, else any parked leg.
    let parked = plan
        .legs
        .iter()
        .filter(|l| l.parked.is_some())
        .max_by_key(|l| {
            let p = l
                .parked
                .as_ref()
                .map(|p| p.parker_dial.as_str())
                .unwrap_or("");
            view_ext
                .and_then(|x| e.dir.extensions.get(x))
                .is_some_and(|x| p.ends_with(&format!("/{}", x.endpoint)))
        })
        .ok_or_else(|| wrong_state("the call is not parked"))?;
    let space = parked
        .parked
        .as_ref()
        .map(|p| p.space.clone())
        .unwrap_or_default();
    // Shown to the phone that unparks: the caller id asked for, else the parked party.
    let shown = match caller_id {
        Some(c) => c.to_asterisk(),
        None => super::asterisk_caller_id(&parked.caller_name, &parked.caller_number),
    };
    // ARI's originate with the parked leg as originator: the new leg shares the call's
    // linkedid from its first ring, so List shows it in the same call.
    let timeout = wait.0.to_string();
    let channel_id = new_channel_id();
    e.ari
        .post(
            "/channels",
            &[
                ("endpoint", dial_string(send_call_to).as_str()),
                ("context", &e.names.parked_context),
                ("extension", &space),
                ("priority", "1"),
                ("callerId", &shown),
                ("timeout", &timeout),
                ("originator", &parked.id),
                ("channelId", &channel_id),
            ],
        )
        .await?;
    drop(guard);
    Ok(Done {
        call: plan.id.clone(),
    })
}
