//! The end-to-end tests, in one binary: uapid started in-process against the sandbox
//! Asterisk (docker/sandbox.sh), with real SIP calls made by SIPp and by a SIP/RTP test
//! phone of our own. The tests share one PBX, so they run one at a time.
//!
//! - `helpers`: the sandbox, the serial lock, uapid, the UAPI client, ARI checks
//! - `sipp`: SIPp phones and callers; `sip_phone`: the test phone, whose RTP says who
//!   hears whom
//! - the tests: `list` (List PhoneCalls and who may see it), `actions` (the actions, seen
//!   in Asterisk and in List), `media` (the same actions, judged by the RTP), `phone`
//!   (the test phone against Asterisk), `restart` (Asterisk restarts under uapid),
//!   `contract` (recording, barge-in, whisper, monitor, callback, conference invites),
//!   `safety` (sequences that once lost calls; two uapids; a frozen Asterisk),
//!   `tokens` (no PBX: tokens across a kill -9, the connection limits, hyper's answers),
//!   `doctor` (`uapid doctor` and `directory import` against the sandbox and against a
//!   second, deliberately incomplete Asterisk: `broken_pbx`)

mod broken_pbx;
mod helpers;
mod sip_phone;
mod sipp;

mod actions;
mod chaos;
mod contract;
mod doctor;
mod list;
mod media;
mod phone;
mod restart;
mod safety;
mod tokens;
