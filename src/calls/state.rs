//! The tracker's state types: channels, bridges, parked calls and the calls they make,
//! and what the tracker is fed.

use std::sync::Arc;

use crate::asterisk::ami::Message;
pub use crate::asterisk::ari::model::Time;
use crate::asterisk::ari::model::{Bridge, CallerId, Channel, Event, Text};

/// What the tracker is fed.
#[derive(Debug)]
pub enum Input {
    /// The ARI websocket (re)connected: a snapshot will follow.
    AriConnected,
    AriEvent(Box<Event>),
    /// `GET /channels` and `GET /bridges`, taken after `AriConnected`.
    AriSnapshot {
        channels: Vec<Channel>,
        bridges: Vec<Bridge>,
    },
    /// The ARI websocket is gone (why).
    AriDisconnected(String),
    /// AMI logged in (again): a ParkedCalls listing will follow.
    AmiConnected,
    /// An AMI event and when uapid received it (AMI events carry no time of their own).
    AmiEvent(Message, Time),
    /// The AMI session that carries the events is gone (why).
    AmiDisconnected(String),
    /// What uapid itself did and Asterisk does not report.
    Note(Note),
}

/// uapid's own facts about a call that Asterisk does not report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// uapid put `channel` on hold at `at` (the fact itself is read from Asterisk's
    /// bridges: see `Tracker::held_by_uapid`; the note gives its time).
    Held { channel: String, at: Time },
    /// `channel` is no longer held by uapid.
    Unheld { channel: String },
    /// uapid started recording `channel` (MixMonitor) for `extension`'s view at `at`.
    Recording {
        channel: String,
        extension: String,
        at: Time,
    },
    /// uapid stopped the recording of `channel`.
    NotRecording { channel: String },
    /// When `channel` was answered, read back after a restart (`CDR(answer)`).
    Answered { channel: String, at: Time },
    /// uapid is making the call `call` (its UAPI id; told before the originate, so the
    /// call may not show yet).
    Made { call: String, made: Made },
}

/// What uapid knows of a call it made, which Asterisk does not tell until later or never.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Made {
    /// The extension the call was made for (a callback's or a conference invite's, whose
    /// parties may all be public numbers): the call shows in its view while it lasts.
    pub owner: Option<String>,
    /// The party the call starts from, until its channel shows (a callback's source is
    /// rung through a Local channel first).
    pub source: Option<Party>,
    /// What it dials once its first party answers, as a UAPI number (an extension's
    /// full number or a public number): until another party shows, its destination.
    pub dials: Option<Text>,
}

/// A recording running on a channel (MixMonitor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub since: Time,
    /// The extension whose view started it, when uapid started it.
    pub extension: Option<String>,
}

/// Asterisk's channel states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChanState {
    Down,
    Reserved,
    OffHook,
    Dialing,
    Ring,
    Ringing,
    Up,
    Busy,
    Other,
}

impl ChanState {
    pub fn parse(s: &str) -> ChanState {
        match s {
            "Down" => ChanState::Down,
            "Rsrvd" => ChanState::Reserved,
            "OffHook" => ChanState::OffHook,
            "Dialing" | "Dialing Offhook" => ChanState::Dialing,
            "Ring" => ChanState::Ring,
            "Ringing" => ChanState::Ringing,
            "Up" => ChanState::Up,
            "Busy" => ChanState::Busy,
            _ => ChanState::Other,
        }
    }
}

/// One channel as uapid knows it.
#[derive(Debug, Clone)]
pub struct ChannelState {
    pub id: Text,
    pub name: Text,
    pub state: ChanState,
    pub caller: CallerId,
    pub connected: CallerId,
    pub exten: Text,
    /// The dialplan application running now (`Dial`, `Stasis`, ...) and its data.
    pub app: Text,
    pub app_data: Text,
    pub created: Time,
    /// The PJSIP (or other technology's) resource, e.g. `0003_210`.
    pub endpoint: Option<Text>,
    pub linkedid: Text,
    /// Whether Asterisk told the linkedid (ARI channelvars or AMI), rather than uapid
    /// taking the channel's own id for it until it learns.
    pub(super) linkedid_told: bool,
    /// The linkedid Asterisk last reported, when it differs from `linkedid`: the channel
    /// was bridged into an older call and Asterisk's snapshots have not caught up.
    pub(super) reported_linkedid: Option<Text>,
    /// The UAPI id of the call this channel belongs to.
    pub call: Arc<str>,
    pub bridge: Option<Text>,
    pub ringing: Option<Time>,
    pub answered: Option<Time>,
    /// Since when this channel holds its peer (ChannelHold, or uapid's OnHold).
    pub hold: Option<Time>,
    /// The recording running on this channel, if any (boxed: few channels have one,
    /// and every channel pays for the field).
    pub recording: Option<Box<Recording>>,
    /// Since when uapid keeps this channel on hold (from uapid's note; after a restart,
    /// from the channel variable uapid set), when it does.
    pub held_since: Option<Time>,
    /// The channel that dialed this one (ARI Dial event).
    pub dialed_by: Option<Text>,
    /// The number the dialing channel asked for, when this channel was dialed.
    pub dialed_number: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct BridgeState {
    pub id: Text,
    pub class: Text,
    pub technology: Text,
    pub name: Text,
    pub channels: Vec<Text>,
}

/// A channel waiting in a parking lot (from AMI).
#[derive(Debug, Clone)]
pub struct ParkedState {
    pub uniqueid: String,
    pub linkedid: String,
    pub space: String,
    pub lot: String,
    /// The dial string the lot calls back on timeout, e.g. `PJSIP/0003_210`.
    pub parker_dial: String,
    pub since: Time,
    pub timeout_secs: Option<u64>,
}

/// Orders calls by published time, then id.
pub type OrderKey = (i64, Arc<str>);

/// Who a party of a call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    /// A directory extension (full UAPI number).
    Extension(String),
    /// A public number, reached through (or calling in from) a trunk.
    Public(String),
    /// Anything else (Local channels, unknown endpoints).
    Other(String),
}

impl Party {
    pub fn number(&self) -> &str {
        match self {
            Party::Extension(n) | Party::Public(n) | Party::Other(n) => n,
        }
    }
}

/// One call: the channels sharing a linkedid.
#[derive(Debug, Clone)]
pub struct CallState {
    pub id: Arc<str>,
    pub linkedid: Text,
    /// Channel ids, oldest first.
    pub channels: Vec<Text>,
    pub published: Time,
    /// The party that started the call, and the number it dialed.
    pub origin: Party,
    pub(super) origin_set: bool,
    /// Whether another channel joined the first: what it dialed is settled then (alone
    /// again after a transfer, its dialplan position is not a number it dialed).
    pub(super) dialed_set: bool,
    pub dialed: Text,
    pub answered: Option<Time>,
    /// Extensions involved, in order of appearance (their views, "01", "02", ...).
    pub extensions: Vec<String>,
    pub(super) users: Vec<u64>,
    pub(super) orgs: Vec<u64>,
}

impl CallState {
    pub fn key(&self) -> OrderKey {
        (self.published.timestamp_micros(), self.id.clone())
    }

    /// The organization the call belongs to: its first extension's.
    pub fn organization(&self) -> Option<u64> {
        self.orgs.first().copied()
    }
}

/// The order channels were made in: by creation time, then by uniqueid. Asterisk's
/// uniqueids are `<epoch>.<sequence>`, compared as numbers (as text, `.10` would sort
/// before `.9`); creation times have millisecond precision, so channels a Dial() makes
/// often tie on them.
pub fn creation_order(a: (&Time, &str), b: (&Time, &str)) -> std::cmp::Ordering {
    fn seq(id: &str) -> Option<(u64, u64)> {
        let (epoch, n) = id.split_once('.')?;
        Some((epoch.parse().ok()?, n.parse().ok()?))
    }
    a.0.cmp(b.0).then_with(|| match (seq(a.1), seq(b.1)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.1.cmp(b.1),
    })
}

/// The name of the mixing bridge uapid keeps a call's legs in once it took them into its
/// Stasis application (for hold). The name ties the bridge to its call, so a restarted
/// uapid finds it again.
pub fn uapid_bridge_name(call: &str) -> String {
    format!("uapid-{call}")
}

/// The channel variable uapid sets on a party it holds: when the hold began (Unix
/// seconds), read back after a restart.
pub const HOLD_VAR: &str = "UAPID_HOLD_AT";

/// The channel variable uapid sets on a channel it records: `<Unix seconds>,<extension>`
/// (emptied when it stops), read back after a restart.
pub const RECORDING_VAR: &str = "UAPID_RECORDING";

/// The call a uapid bridge belongs to, from its name.
pub fn uapid_bridge_call(name: &str) -> Option<&str> {
    name.strip_prefix("uapid-")
}

/// Deterministic, alphanumeric UAPI id of the call with this linkedid (20 hex digits).
pub fn phone_call_id(linkedid: &str) -> String {
    let fnv = |basis: u64| {
        linkedid.bytes().fold(basis, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let a = fnv(0xcbf2_9ce4_8422_2325);
    let b = fnv(0x6c62_272e_07bb_0142);
    format!("{a:016x}{:04x}", b & 0xffff)
}
