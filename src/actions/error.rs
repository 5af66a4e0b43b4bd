//! What can go wrong with an action, in the domain's terms: bad input, a call in the
//! wrong state, the PBX failing. The HTTP layer gives each its UAPI code and status, in
//! one place (the HTTP layer's error module).

use crate::asterisk::ami::AmiError;
use crate::asterisk::ari::AriError;

/// A request that cannot be acted on as written. Each variant is one UAPI error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body must be a JSON PhoneCallAction object")]
    NotAnObject,
    #[error("action is required")]
    NoAction,
    #[error("{0:?} is not a PhoneCall action")]
    UnknownAction(String),
    #[error("phoneCallViewId must be a view id such as \"01\"")]
    View,
    #[error("maxInParking must be a whole number of seconds from 10 to 3600")]
    ParkTimeout,
    #[error("{0} must be a whole number of seconds greater than 0 (at most 3600)")]
    WaitForPickup(&'static str),
    #[error("callerId must be written like: John Doe <+3334444>")]
    CallerId,
    #[error("callDuration must be a whole number of seconds from 1 to 86400")]
    CallDuration,
    #[error("sendCallTo {0}")]
    SendCallTo(String),
    #[error("transferFromNumber {0}")]
    TransferFrom(String),
    #[error("transferNumber {0}")]
    TransferNumber(String),
    #[error("extension {0}")]
    Extension(String),
    #[error("source {0}")]
    Source(String),
    #[error("destination {0}")]
    Destination(String),
    #[error("phoneNumber must be a phone number")]
    PhoneNumber,
    #[error("format must be wav or wav49")]
    Format,
    #[error("private must be 0 or 1")]
    Private,
    #[error("{0} must be true or false (1 or 0)")]
    Flag(&'static str),
    #[error("conference {0}")]
    Conference(String),
    #[error("pin is not the conference's PIN")]
    Pin,
}

/// The call is not in a state the action accepts (nothing was done).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the call has no extension to act from")]
    NoExtension,
    #[error("{0} is not talking on this call")]
    NotTalking(String),
    #[error("there is no answered party on the other side")]
    NoPeer,
    #[error("{0} has not answered")]
    NotAnswered(String),
    #[error("{0} is parked: unpark it first")]
    Parked(String),
    #[error("the call is on hold: take it off hold first")]
    OnHold,
    /// uapid holds one pair of a call at a time (its hold bridge is the call's): a call
    /// that joins several pairs (a conference) has another on hold.
    #[error("another party of this call is on hold: one hold at a time per call")]
    OtherOnHold,
    #[error("the call is not parked")]
    NotParked,
    #[error("the call is not ringing at {0}")]
    NotRinging(String),
    #[error("the call is not on hold")]
    NotOnHold,
    #[error("a party hung up while the call was being taken over")]
    HungUp,
    #[error("{0} only listens in on this call")]
    Spying(String),
    #[error("the call is already being recorded for this view")]
    AlreadyRecording,
    #[error("the call is not being recorded for this view")]
    NotRecording,
}

/// The PBX did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PbxError {
    /// Asterisk could not be reached: nothing was sent, nothing was done.
    #[error("Asterisk is unreachable: {0}")]
    Unreachable(String),
    /// The step was sent and its answer did not come in time: whether Asterisk did it is
    /// unknown (List shows the truth when Asterisk reports it).
    #[error("the outcome is unknown: {0}")]
    Unconfirmed(String),
    /// Asterisk refused the step (AMI error response).
    #[error("Asterisk refused the operation: {0}")]
    Refused(String),
    /// The channel or bridge changed under the step (ARI 404, 409, 422).
    #[error("the call changed meanwhile: {0}")]
    Changed(String),
    /// Anything else (an unexpected answer, a step that did not take effect).
    #[error("{0}")]
    Failed(String),
}

impl From<AmiError> for PbxError {
    fn from(e: AmiError) -> PbxError {
        match e {
            AmiError::NotConnected => PbxError::Unreachable(e.to_string()),
            AmiError::NoAnswer(_) => PbxError::Unconfirmed(e.to_string()),
            AmiError::Refused(m) => PbxError::Refused(m),
        }
    }
}

impl From<AriError> for PbxError {
    fn from(e: AriError) -> PbxError {
        match e {
            AriError::Unreachable(_) => PbxError::Unreachable(e.to_string()),
            AriError::NoAnswer(_) => PbxError::Unconfirmed(e.to_string()),
            AriError::Status {
                status: 404 | 409 | 422,
                ..
            } => PbxError::Changed(e.to_string()),
            // An originate beside a channel that hung up meanwhile (Asterisk 22 answers
            // 400 "Provided originator channel was not found").
            AriError::Status {
                status: 400,
                ref message,
            } if message.contains("originator channel was not found") => {
                PbxError::Changed(e.to_string())
            }
            other => PbxError::Failed(other.to_string()),
        }
    }
}

/// Why an action on a call was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Pbx(#[from] PbxError),
    #[error("phoneCallId does not reference a phone call this app can act on")]
    NoSuchCall,
    #[error("phoneCallViewId does not reference a view of this phone call")]
    NoSuchView,
    #[error("another action is in progress on this phone call; try again when it is done")]
    Busy,
}

impl ActionError {
    /// Whether the error is about this call alone (the all-calls form passes over such a
    /// call and goes on), rather than about the PBX as a whole.
    pub fn is_about_the_call(&self) -> bool {
        !matches!(
            self,
            ActionError::Pbx(
                PbxError::Unreachable(_) | PbxError::Unconfirmed(_) | PbxError::Failed(_)
            )
        )
    }
}

impl From<AmiError> for ActionError {
    fn from(e: AmiError) -> ActionError {
        ActionError::Pbx(e.into())
    }
}

impl From<AriError> for ActionError {
    fn from(e: AriError) -> ActionError {
        ActionError::Pbx(e.into())
    }
}
