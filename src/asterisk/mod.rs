//! Thin typed clients for the parts of Asterisk uapid uses: ARI (REST and the events
//! websocket) and AMI (actions and events).

pub mod ami;
pub mod ari;
