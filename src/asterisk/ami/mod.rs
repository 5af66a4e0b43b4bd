//! The Asterisk Manager Interface: framing ([`codec`]) and the session ([`client`]).

pub mod client;
pub mod codec;

pub use client::{AmiClient, AmiConfig, AmiError, AmiNotice, AmiReply};
pub use codec::Message;
