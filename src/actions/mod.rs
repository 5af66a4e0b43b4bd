//! UAPI actions on live calls, as commands.
//!
//! Each action is a typed struct in its own file with a `parse` (from the UAPI body, once,
//! at the edge) and an `apply` (on a [`Ctx`]: the call's snapshot, its lock, and narrow
//! handles on the PBX and the tracker). [`Action`] gathers them. Applying follows one
//! flow: take the call's lock → snapshot the call → check its state → operate on the PBX
//! → hold the lock until the tracker shows the outcome (bounded), so the next action
//! plans on the new state. The outcome itself arrives as Asterisk's events.
//!
//! Nothing here knows HTTP: errors are [`ActionError`]s, given their UAPI code and
//! status by the HTTP layer.

mod callback;
mod conference;
mod create;
mod error;
mod hang_up;
mod input;
mod locks;
mod off_hold;
mod on_hold;
mod park;
mod pbx;
mod pickup;
pub mod reaper;
mod recording;
mod spy;
mod stasis;
mod to_voicemail;
mod transfer;
mod unpark;

use std::sync::Arc;

use serde_json::Value;

pub use callback::CreateCallback;
pub use conference::ConferenceInvite;
pub use create::{requested_extension, CreateSimple};
pub use error::{ActionError, InputError, PbxError, StateError};
pub use hang_up::HangUp;
pub use input::{Body, ParseCtx, ViewId};
pub use locks::CallGuard;
pub use off_hold::OffHold;
pub use on_hold::OnHold;
pub use park::Park;
pub use pbx::{Pbx, PbxNames};
pub use pickup::PickUp;
pub use recording::{StartRecording, StopRecording};
pub use spy::Spy;
pub use to_voicemail::TransferToVoicemail;
pub use transfer::Transfer;
pub use unpark::UnPark;

use crate::calls::{phone_call_id, CallSnapshot, Calls, Leg, LegState, Made, Note, Scope};
use crate::config::Directory;
use locks::CallLocks;

/// A PhoneCallAction (`PUT /uapi/phoneCalls/...`), parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Park(Park),
    UnPark(UnPark),
    PickUp(PickUp),
    OnHold(OnHold),
    OffHold(OffHold),
    Transfer(Transfer),
    TransferToVoicemail(TransferToVoicemail),
    StartRecording(StartRecording),
    StopRecording(StopRecording),
    /// BargeIn, Whisper or Monitor (`Spy::mode`).
    Spy(Spy),
}

impl Action {
    /// Parses the body of `PUT /uapi/phoneCalls/...`.
    pub fn parse(body: &Value, cx: &ParseCtx) -> Result<Action, InputError> {
        let b = Body::new(body)?;
        let name = match b.text("action") {
            Ok(Some(a)) => a,
            _ => return Err(InputError::NoAction),
        };
        Ok(match name.as_str() {
            "Park" => Action::Park(Park::parse(&b)?),
            "UnPark" => Action::UnPark(UnPark::parse(&b, cx)?),
            "PickUp" => Action::PickUp(PickUp::parse(&b, cx)?),
            "OnHold" => Action::OnHold(OnHold::parse(&b)?),
            "OffHold" => Action::OffHold(OffHold::parse(&b)?),
            "Transfer" => Action::Transfer(Transfer::parse(&b, cx)?),
            "TransferToVoicemail" => {
                Action::TransferToVoicemail(TransferToVoicemail::parse(&b, cx)?)
            }
            "StartRecording" => Action::StartRecording(StartRecording::parse(&b)?),
            "StopRecording" => Action::StopRecording(StopRecording::parse(&b)?),
            "BargeIn" => Action::Spy(Spy::parse(&b, cx, false, true)?),
            "Whisper" => Action::Spy(Spy::parse(&b, cx, true, false)?),
            "Monitor" => Action::Spy(Spy::parse(&b, cx, false, false)?),
            _ => return Err(InputError::UnknownAction(name)),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Action::Park(_) => "Park",
            Action::UnPark(_) => "UnPark",
            Action::PickUp(_) => "PickUp",
            Action::OnHold(_) => "OnHold",
            Action::OffHold(_) => "OffHold",
            Action::Transfer(_) => "Transfer",
            Action::TransferToVoicemail(_) => "TransferToVoicemail",
            Action::StartRecording(_) => "StartRecording",
            Action::StopRecording(_) => "StopRecording",
            Action::Spy(s) => match s.mode {
                spy::Mode::BargeIn => "BargeIn",
                spy::Mode::Whisper { .. } => "Whisper",
                spy::Mode::Monitor => "Monitor",
            },
        }
    }

    /// The view the action names, if it names one.
    pub fn view(&self) -> Option<ViewId> {
        *self.view_field()?
    }

    fn view_field(&self) -> Option<&Option<ViewId>> {
        match self {
            Action::Park(a) => Some(&a.view),
            Action::UnPark(a) => Some(&a.view),
            Action::PickUp(a) => Some(&a.view),
            Action::OnHold(a) => Some(&a.view),
            Action::OffHold(a) => Some(&a.view),
            Action::StartRecording(a) => Some(&a.view),
            Action::StopRecording(a) => Some(&a.view),
            Action::Spy(a) => Some(&a.view),
            Action::Transfer(_) | Action::TransferToVoicemail(_) => None,
        }
    }

    /// The same action with no view named: the all-calls form acts on each call from
    /// the path's extension's view.
    pub fn without_view(&self) -> Action {
        let mut a = self.clone();
        match &mut a {
            Action::Park(x) => x.view = None,
            Action::UnPark(x) => x.view = None,
            Action::PickUp(x) => x.view = None,
            Action::OnHold(x) => x.view = None,
            Action::OffHold(x) => x.view = None,
            Action::StartRecording(x) => x.view = None,
            Action::StopRecording(x) => x.view = None,
            Action::Spy(x) => x.view = None,
            Action::Transfer(_) | Action::TransferToVoicemail(_) => {}
        }
        a
    }

    async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        match self {
            Action::Park(a) => a.apply(cx).await,
            Action::UnPark(a) => a.apply(cx).await,
            Action::PickUp(a) => a.apply(cx).await,
            Action::OnHold(a) => a.apply(cx).await,
            Action::OffHold(a) => a.apply(cx).await,
            Action::Transfer(a) => a.apply(cx).await,
            Action::TransferToVoicemail(a) => a.apply(cx).await,
            Action::StartRecording(a) => a.apply(cx).await,
            Action::StopRecording(a) => a.apply(cx).await,
            Action::Spy(a) => a.apply(cx).await,
        }
    }
}

/// Refuses a leg an action would move unless it is answered and free: not parked, not
/// held and not holding.
/// Tells the tracker about a call uapid is about to make, whose first channel will be
/// `channel`: before the originate, so the call never shows without what uapid knows of
/// it. Returns the id the call will have.
fn note_made(calls: &Calls, channel: &str, made: Made) -> Arc<str> {
    let id: Arc<str> = Arc::from(phone_call_id(channel));
    calls.note(Note::Made {
        call: id.to_string(),
        made,
    });
    id
}

fn ensure_free(leg: &Leg) -> Result<(), StateError> {
    let who = || leg.party.number().to_string();
    match leg.uapid_state() {
        LegState::Free => Ok(()),
        LegState::NotAnswered => Err(StateError::NotAnswered(who())),
        LegState::Parked => Err(StateError::Parked(who())),
        LegState::Held | LegState::Holding => Err(StateError::OnHold),
        LegState::Spying => Err(StateError::Spying(who())),
    }
}

/// What an action did to one call.
#[derive(Debug, Clone)]
pub struct Done {
    pub call: Arc<str>,
}

/// What an action applies to: one call, locked, as it was when the lock was taken.
pub struct Ctx<'a> {
    pub call: CallSnapshot,
    pub guard: CallGuard,
    /// The extension of the view the action names; without one, the path's extension
    /// when it is in the call, else the call's first.
    pub view_ext: Option<String>,
    /// The extension the request's path names, if it names one.
    pub path_ext: Option<&'a str>,
    pub pbx: &'a Arc<Pbx>,
    pub calls: &'a Calls,
    pub dir: &'a Directory,
}

impl Ctx<'_> {
    fn done(&self) -> Done {
        Done {
            call: self.call.id.clone(),
        }
    }

    /// The view's extension, or the state error of a call with none.
    fn view_ext(&self) -> Result<&str, StateError> {
        self.view_ext.as_deref().ok_or(StateError::NoExtension)
    }

    /// The view's leg (the one List shows) and the party it talks to.
    fn view_and_peer(&self) -> Result<(&Leg, &Leg), StateError> {
        let ext = self.view_ext()?;
        let own = self
            .call
            .leg_of(ext)
            .ok_or_else(|| StateError::NotTalking(ext.to_string()))?;
        let peer = self.call.peer_of(own).ok_or(StateError::NoPeer)?;
        Ok((own, peer))
    }
}

/// The actions service: what the HTTP layer calls.
pub struct Actions {
    pbx: Arc<Pbx>,
    calls: Calls,
    dir: Arc<Directory>,
    locks: CallLocks,
}

impl Actions {
    pub fn new(pbx: Pbx, calls: Calls, dir: Arc<Directory>) -> Actions {
        Actions {
            pbx: Arc::new(pbx),
            calls,
            dir,
            locks: CallLocks::default(),
        }
    }

    /// The calls a request names: one by id (it must exist and be in the scope) or all
    /// of the scope.
    pub fn find(&self, scope: &Scope, id: Option<&str>) -> Result<Vec<Arc<str>>, ActionError> {
        let t = self.calls.read();
        match id {
            Some(id) => {
                let c = t
                    .call(id)
                    .filter(|c| scope.contains(c))
                    .ok_or(ActionError::NoSuchCall)?;
                Ok(vec![c.id.clone()])
            }
            None => Ok(t.scope(scope).iter().map(|(_, id)| id.clone()).collect()),
        }
    }

    /// Takes the call's lock and a snapshot of it: the context an action applies to.
    async fn context<'a>(
        &'a self,
        call: &Arc<str>,
        path_ext: Option<&'a str>,
        view: Option<ViewId>,
    ) -> Result<Ctx<'a>, ActionError> {
        let guard = self.locks.lock(call).await?;
        let snap = self.calls.snapshot(call).ok_or(ActionError::NoSuchCall)?;
        let view_ext = match view {
            Some(v) => Some(
                snap.view_extension(v.number())
                    .ok_or(ActionError::NoSuchView)?
                    .to_string(),
            ),
            None => path_ext
                .filter(|e| snap.extensions.iter().any(|x| x == e))
                .map(str::to_string),
        }
        .or_else(|| snap.extensions.first().cloned());
        Ok(Ctx {
            call: snap,
            guard,
            view_ext,
            path_ext,
            pbx: &self.pbx,
            calls: &self.calls,
            dir: &self.dir,
        })
    }

    /// Runs one action on one call.
    pub async fn act(
        &self,
        call: &Arc<str>,
        path_ext: Option<&str>,
        action: &Action,
    ) -> Result<Done, ActionError> {
        let cx = self.context(call, path_ext, action.view()).await?;
        action.apply(cx).await
    }

    /// Runs an action. With one call, its error is the answer. With every call of an
    /// extension, calls the action does not apply to are passed over; an empty result
    /// means there was nothing to act on.
    pub async fn update(
        &self,
        calls: &[Arc<str>],
        path_ext: Option<&str>,
        action: &Action,
        single: bool,
    ) -> Result<Vec<Done>, ActionError> {
        if single {
            let call = calls.first().ok_or(ActionError::NoSuchCall)?;
            return Ok(vec![self.act(call, path_ext, action).await?]);
        }
        let action = action.without_view();
        let mut done = Vec::new();
        for call in calls {
            match self.act(call, path_ext, &action).await {
                Ok(d) => done.push(d),
                Err(err) if err.is_about_the_call() => {
                    tracing::debug!(call = %call, "{} passed over: {err}", action.name())
                }
                Err(err) => return Err(err),
            }
        }
        Ok(done)
    }

    /// Click to call: returns the id the new call will have.
    pub async fn create(&self, c: &CreateSimple) -> Result<Arc<str>, ActionError> {
        c.apply(&self.pbx, &self.calls).await
    }

    /// A callback: returns the id the new call will have.
    pub async fn callback(&self, c: &CreateCallback) -> Result<Arc<str>, ActionError> {
        c.apply(&self.pbx, &self.calls).await
    }

    /// Conference invites: returns the ids of the calls made.
    pub async fn invite(&self, c: &ConferenceInvite) -> Result<Vec<Arc<str>>, ActionError> {
        c.apply(&self.pbx, &self.calls).await
    }

    /// Hangs up the calls, each through its lock like any action; returns those that
    /// had legs to hang up. With several calls, one that is busy or gone meanwhile is
    /// passed over; with one, that is the answer.
    pub async fn hang_up(
        &self,
        calls: &[Arc<str>],
        h: &HangUp,
        single: bool,
    ) -> Result<Vec<Arc<str>>, ActionError> {
        let mut done = Vec::new();
        for call in calls {
            let hung = match self.context(call, None, None).await {
                Ok(cx) => h.apply(cx).await,
                Err(e) => Err(e),
            };
            match hung {
                Ok(true) => done.push(call.clone()),
                Ok(false) => {}
                Err(e) if single || !e.is_about_the_call() => return Err(e),
                Err(e) => tracing::debug!(call = %call, "hang-up passed over: {e}"),
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
