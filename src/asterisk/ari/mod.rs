//! The Asterisk REST Interface: typed objects and events ([`model`]), REST ([`rest`]) and
//! the events websocket ([`ws`]).

pub mod model;
pub mod rest;
pub mod ws;

pub use model::{Bridge, Channel, Event};
pub use rest::{AriError, AriRest};
