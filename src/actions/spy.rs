//! BargeIn, Whisper and Monitor: the phone at `sendCallTo` rings (`callerId`, up to
//! `waitForPickup`); when it answers it listens in on the view's extension with
//! Asterisk's ChanSpy, which adds audio to the call without touching its bridge, so the
//! parties hear no renegotiation. BargeIn talks to both parties; Whisper talks to the
//! view's extension only (`private` 1: without hearing the call); Monitor only listens.
//! It is rung within the call (ARI originate with the spied leg as originator), so it
//! shows in List as a view of the call; it ends when the spied party's channel ends or
//! when that phone hangs up. Unanswered, the call is untouched.

use super::input::{phone_terminal, Body, CallerId, ParseCtx, ViewId, WaitForPickup};
use super::pbx::{new_channel_id, Callee, Ring};
use super::{ActionError, Ctx, Done, InputError, StateError};
use crate::calls::LegState;
use crate::config::Extension;

/// How the phone joins the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    BargeIn,
    Whisper { private: bool },
    Monitor,
}

impl Mode {
    /// ChanSpy's options: quiet, exit when the spied party hangs up (`E`) or when there
    /// is no such channel to spy on (`S`: the party hung up while the spy rang; without
    /// it ChanSpy waits for a channel of that name for ever), and how to join.
    fn options(self) -> &'static str {
        match self {
            Mode::BargeIn => "qESB",
            Mode::Whisper { private: false } => "qESw",
            Mode::Whisper { private: true } => "qESW",
            Mode::Monitor => "qES",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spy {
    pub mode: Mode,
    pub view: Option<ViewId>,
    pub send_call_to: Extension,
    pub caller_id: Option<CallerId>,
    pub wait: WaitForPickup,
}

impl Spy {
    /// BargeIn, Whisper (with `private`) or Monitor; `sendCallTo` must be a phone
    /// terminal of the request's organization.
    pub fn parse(b: &Body, cx: &ParseCtx, whisper: bool, barge: bool) -> Result<Spy, InputError> {
        let mode = if whisper {
            let private = match b
                .text("private")
                .map_err(|_| InputError::Private)?
                .as_deref()
            {
                None | Some("0") => false,
                Some("1") => true,
                Some(_) => return Err(InputError::Private),
            };
            Mode::Whisper { private }
        } else if barge {
            Mode::BargeIn
        } else {
            Mode::Monitor
        };
        let send_call_to = phone_terminal(cx, &b.send_call_to()?, InputError::SendCallTo)?;
        if cx.org.is_some_and(|o| o != send_call_to.organization) {
            return Err(InputError::SendCallTo(
                "must be a phone terminal of the same organization".into(),
            ));
        }
        Ok(Spy {
            mode,
            view: ViewId::parse(b)?,
            send_call_to,
            caller_id: CallerId::parse(b)?,
            wait: WaitForPickup::parse(b)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        let ext = cx.view_ext()?;
        let target = cx
            .call
            .leg_of(ext)
            .ok_or_else(|| StateError::NotTalking(ext.to_string()))?;
        match target.uapid_state() {
            LegState::NotAnswered => return Err(StateError::NotAnswered(ext.to_string()).into()),
            LegState::Parked => return Err(StateError::Parked(ext.to_string()).into()),
            LegState::Spying => return Err(StateError::Spying(ext.to_string()).into()),
            _ => {}
        }
        if cx
            .call
            .legs
            .iter()
            .any(|l| l.is_extension(&self.send_call_to.number))
        {
            return Err(
                InputError::SendCallTo("is already a party of this phone call".into()).into(),
            );
        }
        let names = cx.pbx.names();
        cx.pbx.require_dialplan(&names.spy_context, "s").await?;
        let channel_id = new_channel_id();
        let ring = Ring {
            callee: Callee::Phone(&self.send_call_to),
            wait_ms: self.wait.millis(),
            caller_id: self.caller_id.as_ref(),
            channel_id: &channel_id,
        };
        cx.pbx
            .ring_spy(ring, &target.id, &target.name, self.mode.options())
            .await?;
        Ok(cx.done())
    }
}
