//! Transfer (blind): the transferred party is sent into the dialing context with
//! `sendCallTo` as the number (an extension, or a public number that goes out through
//! the trunk); the transferring party leaves the call.

use super::input::{Body, Destination, ParseCtx, PartyNumber};
use super::{ensure_free, ActionError, Ctx, Done, InputError, StateError};
use crate::calls::{CallSnapshot, Leg};
use crate::config::Directory;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub send_call_to: Destination,
    pub from: PartyNumber,
    pub number: Option<PartyNumber>,
}

impl Transfer {
    pub fn parse(b: &Body, cx: &ParseCtx) -> Result<Transfer, InputError> {
        let raw = b.send_call_to()?;
        let send_call_to = Destination::parse(cx, &raw).ok_or_else(|| {
            InputError::SendCallTo(format!(
                "{raw} is neither a known extension nor a public number"
            ))
        })?;
        let from = PartyNumber::field(b, "transferFromNumber", InputError::TransferFrom)?
            .ok_or_else(|| {
                InputError::TransferFrom("is required: the party that transfers the call".into())
            })?;
        Ok(Transfer {
            send_call_to,
            from,
            number: PartyNumber::field(b, "transferNumber", InputError::TransferNumber)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        let (from_leg, moved) = parties(&cx.call, cx.dir, &self.from, self.number.as_ref())?;
        if let Destination::Extension(x) = &self.send_call_to {
            if moved.is_extension(&x.number) {
                return Err(InputError::SendCallTo("is the party being transferred".into()).into());
            }
        }
        // Nobody is sent to a number the dial context would hang up.
        let context = &cx.pbx.names().dial_context;
        let dial = self.send_call_to.dial();
        if !cx.pbx.dialplan_matches(context, dial).await? {
            return Err(InputError::SendCallTo(format!(
                "{}: the PBX's dial context {context} has no extension matching {dial}",
                self.send_call_to.number()
            ))
            .into());
        }
        redirect_and_leave(&cx, moved, from_leg, context, dial).await?;
        let from_id = from_leg.id.clone();
        let done = cx.done();
        cx.guard
            .settle(cx.calls, move |t| t.channel(&from_id).is_none());
        Ok(done)
    }
}

/// The two parties of a transfer: who hands over (`from`) and who is transferred (the
/// party `number` names, else `from`'s peer).
pub fn parties<'c>(
    call: &'c CallSnapshot,
    dir: &Directory,
    from: &PartyNumber,
    number: Option<&PartyNumber>,
) -> Result<(&'c Leg, &'c Leg), ActionError> {
    let from_leg = call.leg_by_number(dir, from.as_str()).ok_or_else(|| {
        InputError::TransferFrom(format!(
            "{} is not a party of this phone call",
            from.as_str()
        ))
    })?;
    let moved = match number {
        Some(n) => {
            let leg = call.leg_by_number(dir, n.as_str()).ok_or_else(|| {
                InputError::TransferNumber(format!(
                    "{} is not a party of this phone call",
                    n.as_str()
                ))
            })?;
            if leg.id == from_leg.id || leg.party == from_leg.party {
                return Err(InputError::TransferNumber(
                    "names the same party as transferFromNumber".into(),
                )
                .into());
            }
            leg
        }
        None => call.peer_of(from_leg).ok_or(StateError::NoPeer)?,
    };
    // The transferred party moves and the transferring one leaves: both must be free.
    ensure_free(moved)?;
    ensure_free(from_leg)?;
    Ok((from_leg, moved))
}

/// Sends `moved` to `context`/`exten`, then ends the transferring party's leg.
pub async fn redirect_and_leave(
    cx: &Ctx<'_>,
    moved: &Leg,
    from: &Leg,
    context: &str,
    exten: &str,
) -> Result<(), ActionError> {
    cx.pbx.redirect(&moved.name, None, context, exten).await?;
    // A Dial() bridge ends the other leg by itself; a Stasis bridge does not.
    if let Err(err) = cx.pbx.hang_up(&from.id).await {
        tracing::warn!(channel = %from.name, "transfer: the transferring leg could not be hung up: {err}");
    }
    Ok(())
}
