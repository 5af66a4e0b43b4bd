//! Calls uapid takes into its own Stasis application, for hold.
//!
//! A call bridged by `Dial()` cannot be changed over ARI, so uapid first moves both legs
//! into its Stasis application in one step (AMI `Redirect` with `ExtraChannel` into the
//! Stasis context, which runs `Stasis(<app>)`), then keeps them in an ARI mixing bridge
//! named `uapid-<call id>`. From then on uapid does what `Dial()` did: when one party
//! leaves, the reaper ends the leg left alone (`super::reaper`).

use super::locks::SETTLE;
use super::{Ctx, PbxError, StateError};
use crate::calls::{uapid_bridge_name, Leg};

/// The call's uapid bridge: the one Asterisk has, or a new mixing bridge.
pub async fn ensure_bridge(cx: &Ctx<'_>) -> Result<String, PbxError> {
    let existing = cx
        .calls
        .read()
        .uapid_bridge(&cx.call.id)
        .map(|b| b.id.to_string());
    match existing {
        Some(b) => Ok(b),
        None => cx.pbx.create_bridge(&uapid_bridge_name(&cx.call.id)).await,
    }
}

/// Moves both legs into uapid's Stasis application (if they are not there yet) and into
/// the call's mixing bridge. Returns the bridge id.
pub async fn take_into_stasis(
    cx: &Ctx<'_>,
    a: &Leg,
    b: &Leg,
) -> Result<String, super::ActionError> {
    if !(a.in_stasis && b.in_stasis) {
        let names = cx.pbx.names();
        cx.pbx
            .require_dialplan(&names.stasis_context, &names.app)
            .await?;
        cx.pbx
            .redirect(&a.name, Some(&b.name), &names.stasis_context, &names.app)
            .await?;
        let (ai, bi, app) = (a.id.clone(), b.id.clone(), names.app.clone());
        let arrived = cx
            .calls
            .wait_until(SETTLE, move |t| {
                (t.in_stasis(&ai, &app) || t.channel(&ai).is_none())
                    && (t.in_stasis(&bi, &app) || t.channel(&bi).is_none())
            })
            .await;
        let gone = {
            let t = cx.calls.read();
            t.channel(&a.id).is_none() || t.channel(&b.id).is_none()
        };
        if gone {
            return Err(StateError::HungUp.into());
        }
        if !arrived {
            return Err(PbxError::Failed(format!(
                "the call did not reach the Stasis application {} through context {}; check the PBX's dialplan",
                names.app, names.stasis_context
            ))
            .into());
        }
    }
    Ok(ensure_bridge(cx).await?)
}
