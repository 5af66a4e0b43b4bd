//! Calls: the tracker (pure state fed by Asterisk's events) and its projection to UAPI's
//! PhoneCall and PhoneCallView.

pub mod projection;
pub mod tracker;

pub use projection::{phone_call, PhoneCall, PhoneCallView};
pub use tracker::{phone_call_id, CallState, Input, Scope, Tracker};

#[cfg(test)]
mod tests;
