//! Calls: the tracker (pure state fed by Asterisk's events), the facts derived from it,
//! its projection to UAPI's PhoneCall and PhoneCallView, and the handle others read it by.

mod ari_events;
pub mod handle;
mod parking;
pub mod projection;
mod resync;
pub mod scope;
pub mod snapshot;
pub mod state;
pub mod tracker;

pub use handle::Calls;
pub use projection::{phone_call, self_link, PhoneCall, PhoneCallView};
pub use scope::Scope;
pub use snapshot::{CallSnapshot, Leg, LegState};
pub use state::{
    phone_call_id, uapid_bridge_call, uapid_bridge_name, CallState, ChanState, Input, Made, Note,
    Party, HOLD_VAR, RECORDING_VAR,
};
pub use tracker::Tracker;

#[cfg(test)]
mod tests;
