//! TransferToVoicemail: the transferred party is sent to the voicemail context, which
//! runs `VoiceMail(${UAPID_MAILBOX},u)` with the mailbox of `sendCallTo`, and can leave a
//! message. The transferring party leaves the call.

use super::input::{phone_terminal, Body, ParseCtx, PartyNumber};
use super::transfer::{parties, redirect_and_leave};
use super::{ActionError, Ctx, Done, InputError};
use crate::config::Extension;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferToVoicemail {
    /// A phone terminal of the request's organization, with a mailbox.
    pub send_call_to: Extension,
    pub from: Option<PartyNumber>,
    pub number: Option<PartyNumber>,
}

impl TransferToVoicemail {
    pub fn parse(b: &Body, cx: &ParseCtx) -> Result<TransferToVoicemail, InputError> {
        let ext = phone_terminal(cx, &b.send_call_to()?, InputError::SendCallTo)?;
        if ext.mailbox.is_none() {
            return Err(InputError::SendCallTo(format!(
                "{} has no mailbox",
                ext.number
            )));
        }
        if cx.org.is_some_and(|o| o != ext.organization) {
            return Err(InputError::SendCallTo(
                "must be an extension of the same organization".into(),
            ));
        }
        Ok(TransferToVoicemail {
            send_call_to: ext,
            from: PartyNumber::field(b, "transferFromNumber", InputError::TransferFrom)?,
            number: PartyNumber::field(b, "transferNumber", InputError::TransferNumber)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        // Without transferFromNumber, the path's extension hands over (else the first).
        let from = match &self.from {
            Some(f) => f.clone(),
            None => cx
                .path_ext
                .filter(|x| cx.call.extensions.iter().any(|e| e == x))
                .or_else(|| cx.call.extensions.first().map(String::as_str))
                .and_then(PartyNumber::parse)
                .ok_or_else(|| InputError::TransferFrom("is required for this call".into()))?,
        };
        let (from_leg, moved) = parties(&cx.call, cx.dir, &from, self.number.as_ref())?;
        let context = &cx.pbx.names().voicemail_context;
        cx.pbx.require_dialplan(context, "s").await?;
        let mailbox = self.send_call_to.mailbox.as_deref().unwrap_or_default();
        cx.pbx
            .set_var(&moved.name, "UAPID_MAILBOX", mailbox)
            .await?;
        redirect_and_leave(&cx, moved, from_leg, context, "s").await?;
        let (moved_id, from_id) = (moved.id.clone(), from_leg.id.clone());
        let done = cx.done();
        cx.guard.settle(cx.calls, move |t| {
            t.channel(&from_id).is_none()
                && t.channel(&moved_id).is_none_or(|c| c.app == "VoiceMail")
        });
        Ok(done)
    }
}
