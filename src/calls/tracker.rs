//! The tracker: every channel, bridge and parked call on the PBX, and the calls they make.
//!
//! A pure state machine: [`Tracker::apply`] takes one [`Input`] (an ARI event, an AMI
//! event, a snapshot, a connection change) and updates the state; it does no I/O and
//! reads no clock. One task owns it (see `crate::run`); everything else reads it.
//!
//! A call is the set of channels that share Asterisk's linkedid. Its UAPI id is derived
//! from that linkedid alone ([`phone_call_id`]), so it is the same after uapid restarts.
//! Indexes keep the calls ordered by `published` per extension, user and organization,
//! so a page of a listing costs the same whether 1 000 or 100 000 calls are tracked.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::DateTime;
// Keys are ids Asterisk makes, not input an attacker picks: a fast hasher is safe here.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::asterisk::ami::Message;
pub use crate::asterisk::ari::model::Time;
use crate::asterisk::ari::model::{channel_endpoint, Bridge, CallerId, Channel, Event, Text};
use crate::config::Directory;

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
    AriDisconnected,
    /// AMI logged in (again): a ParkedCalls listing will follow.
    AmiConnected,
    /// An AMI event and when uapid received it (AMI events carry no time of their own).
    AmiEvent(Message, Time),
    AmiDisconnected,
    /// What uapid itself did and Asterisk does not report.
    Note(Note),
}

/// uapid's own facts about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// `held` hears music on hold, put there by `holder`.
    Held {
        held: String,
        holder: String,
        at: Time,
    },
    /// `channel` is no longer held by uapid.
    Unheld { channel: String },
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
    /// The linkedid Asterisk last reported, when it differs from `linkedid`: the channel
    /// was bridged into an older call and Asterisk's snapshots have not caught up.
    reported_linkedid: Option<Text>,
    /// The UAPI id of the call this channel belongs to.
    pub call: Arc<str>,
    pub bridge: Option<Text>,
    pub ringing: Option<Time>,
    pub answered: Option<Time>,
    /// Since when this channel holds its peer (ChannelHold, or uapid's OnHold).
    pub hold: Option<Time>,
    /// Since when uapid keeps this channel on hold (music on hold), and who holds it.
    pub held_by_uapid: Option<(Time, String)>,
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
    origin_set: bool,
    pub dialed: Text,
    pub answered: Option<Time>,
    /// Extensions involved, in order of appearance (their views, "01", "02", ...).
    pub extensions: Vec<String>,
    users: Vec<u64>,
    orgs: Vec<u64>,
}

impl CallState {
    pub fn key(&self) -> OrderKey {
        (self.published.timestamp_micros(), self.id.clone())
    }
}

/// A read scope over the calls (what a listing iterates).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    Organization(u64),
    User(u64),
    Extension(&'a str),
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

/// What a resynchronization has seen since it began.
#[derive(Debug, Default)]
struct Resync {
    touched: HashSet<Text>,
    gone: HashSet<Text>,
    bridges_touched: HashSet<Text>,
    bridges_gone: HashSet<Text>,
}

#[derive(Debug)]
pub struct Tracker {
    dir: Arc<Directory>,
    channels: HashMap<Text, ChannelState>,
    bridges: HashMap<Text, BridgeState>,
    parked: HashMap<Text, ParkedState>,
    calls: HashMap<Arc<str>, CallState>,
    all: BTreeSet<OrderKey>,
    by_ext: HashMap<String, BTreeSet<OrderKey>>,
    by_user: HashMap<u64, BTreeSet<OrderKey>>,
    by_org: HashMap<u64, BTreeSet<OrderKey>>,
    resync: Option<Resync>,
    /// Channels and bridges recently destroyed: Asterisk can send an event for a channel
    /// after its ChannelDestroyed (seen with PickupChan), which must not bring it back.
    tombstones: HashSet<Text>,
    tombstone_order: std::collections::VecDeque<Text>,
    /// Parked entries not yet confirmed by the ParkedCalls listing after an AMI login.
    parked_unconfirmed: Option<HashSet<Text>>,
    pub ari_up: bool,
    pub ami_up: bool,
    /// An ARI snapshot has been applied since the last connect.
    ari_synced: bool,
    /// Whether channel snapshots carry the linkedid (ari.conf channelvars).
    pub linkedid_missing: bool,
}

static EMPTY: BTreeSet<OrderKey> = BTreeSet::new();

impl Tracker {
    pub fn new(dir: Arc<Directory>) -> Tracker {
        Tracker {
            dir,
            channels: HashMap::default(),
            bridges: HashMap::default(),
            parked: HashMap::default(),
            calls: HashMap::default(),
            all: BTreeSet::new(),
            by_ext: HashMap::default(),
            by_user: HashMap::default(),
            by_org: HashMap::default(),
            resync: None,
            tombstones: HashSet::default(),
            tombstone_order: std::collections::VecDeque::new(),
            parked_unconfirmed: None,
            ari_up: false,
            ami_up: false,
            ari_synced: false,
            linkedid_missing: false,
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    pub fn channel(&self, id: &str) -> Option<&ChannelState> {
        self.channels.get(id)
    }

    pub fn channels(&self) -> impl Iterator<Item = &ChannelState> {
        self.channels.values()
    }

    pub fn bridge(&self, id: &str) -> Option<&BridgeState> {
        self.bridges.get(id)
    }

    pub fn bridges(&self) -> impl Iterator<Item = &BridgeState> {
        self.bridges.values()
    }

    pub fn parked(&self, uniqueid: &str) -> Option<&ParkedState> {
        self.parked.get(uniqueid)
    }

    pub fn call(&self, id: &str) -> Option<&CallState> {
        self.calls.get(id)
    }

    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The calls of a scope, ordered by published time.
    pub fn scope(&self, scope: Scope<'_>) -> &BTreeSet<OrderKey> {
        match scope {
            Scope::All => &self.all,
            Scope::Organization(o) => self.by_org.get(&o).unwrap_or(&EMPTY),
            Scope::User(u) => self.by_user.get(&u).unwrap_or(&EMPTY),
            Scope::Extension(e) => self.by_ext.get(e).unwrap_or(&EMPTY),
        }
    }

    /// Whether a call belongs to a scope.
    pub fn in_scope(&self, call: &CallState, scope: Scope<'_>) -> bool {
        match scope {
            Scope::All => true,
            Scope::Organization(o) => call.orgs.contains(&o),
            Scope::User(u) => call.users.contains(&u),
            Scope::Extension(e) => call.extensions.iter().any(|x| x == e),
        }
    }

    /// Who a channel is, from its endpoint and the directory.
    pub fn party_of(&self, ch: &ChannelState) -> Party {
        let Some(ep) = ch.endpoint.as_deref() else {
            return Party::Other(ch.name.to_string());
        };
        if let Some(ext) = self.dir.extension_by_endpoint(ep) {
            return Party::Extension(ext.number.clone());
        }
        if self.dir.is_trunk(ep) {
            // Calling in: the caller's number; called out: the number dialed.
            let n = match (&ch.dialed_by, &ch.dialed_number) {
                (None, _) => ch.caller.number.clone(),
                (Some(_), Some(n)) => n.clone(),
                (Some(_), None) => ch.exten.clone(),
            };
            return Party::Public(n.to_string());
        }
        Party::Other(ch.name.to_string())
    }

    pub fn apply(&mut self, input: Input) {
        match input {
            Input::AriConnected => {
                self.ari_up = true;
                self.ari_synced = false;
                self.resync = Some(Resync::default());
            }
            Input::AriDisconnected => {
                self.ari_up = false;
            }
            Input::AriEvent(ev) => self.apply_ari(*ev),
            Input::AriSnapshot { channels, bridges } => self.apply_snapshot(channels, bridges),
            Input::AmiConnected => {
                self.ami_up = true;
                self.parked_unconfirmed = Some(self.parked.keys().cloned().collect());
            }
            Input::AmiDisconnected => self.ami_up = false,
            Input::AmiEvent(m, at) => self.apply_ami(&m, at),
            Input::Note(n) => self.apply_note(n),
        }
    }

    fn apply_note(&mut self, n: Note) {
        match n {
            Note::Held { held, holder, at } => {
                if let Some(c) = self.channels.get_mut(held.as_str()) {
                    c.held_by_uapid = Some((at, holder.clone()));
                }
                if let Some(c) = self.channels.get_mut(holder.as_str()) {
                    c.hold.get_or_insert(at);
                }
            }
            Note::Unheld { channel } => {
                let holder = self
                    .channels
                    .get_mut(channel.as_str())
                    .and_then(|c| c.held_by_uapid.take())
                    .map(|(_, h)| h);
                if let Some(c) = holder.and_then(|h| self.channels.get_mut(h.as_str())) {
                    c.hold = None;
                }
            }
        }
    }

    /// Whether a channel runs in the Stasis application `app` (uapid's ARI app).
    pub fn in_stasis(&self, channel: &str, app: &str) -> bool {
        self.channels.get(channel).is_some_and(|c| {
            c.app == "Stasis" && c.app_data.split(',').next().map(str::trim) == Some(app)
        })
    }

    /// How many destroyed ids are remembered.
    const TOMBSTONES: usize = 65_536;

    fn bury(&mut self, id: &str) {
        if self.tombstones.insert(Text::from(id)) {
            self.tombstone_order.push_back(Text::from(id));
            if self.tombstone_order.len() > Self::TOMBSTONES {
                if let Some(old) = self.tombstone_order.pop_front() {
                    self.tombstones.remove(&old);
                }
            }
        }
    }

    fn touch(&mut self, id: &str) {
        if let Some(r) = &mut self.resync {
            r.touched.insert(Text::from(id));
        }
    }

    fn apply_ari(&mut self, ev: Event) {
        match ev {
            Event::ChannelCreated { channel, timestamp }
            | Event::ChannelStateChange { channel, timestamp }
            | Event::ChannelDialplan { channel, timestamp }
            | Event::ChannelCallerId { channel, timestamp }
            | Event::ChannelConnectedLine { channel, timestamp }
            | Event::ChannelHangupRequest { channel, timestamp }
            | Event::StasisStart {
                channel, timestamp, ..
            }
            | Event::StasisEnd { channel, timestamp } => {
                self.touch(&channel.id);
                self.upsert_channel(channel, timestamp);
            }
            Event::ChannelHold { channel, timestamp } => {
                self.touch(&channel.id);
                let (id, at) = (channel.id.clone(), timestamp);
                self.upsert_channel(channel, at);
                if let (Some(c), Some(at)) = (self.channels.get_mut(&id), at) {
                    c.hold.get_or_insert(at);
                }
            }
            Event::ChannelUnhold { channel, timestamp } => {
                self.touch(&channel.id);
                let id = channel.id.clone();
                self.upsert_channel(channel, timestamp);
                if let Some(c) = self.channels.get_mut(&id) {
                    c.hold = None;
                }
            }
            Event::ChannelDestroyed { channel, .. } => {
                if let Some(r) = &mut self.resync {
                    r.gone.insert(channel.id.clone());
                }
                self.bury(&channel.id);
                self.remove_channel(&channel.id);
            }
            Event::Dial {
                caller,
                peer,
                timestamp,
                ..
            } => {
                self.touch(&peer.id);
                let id = peer.id.clone();
                self.upsert_channel(peer, timestamp);
                let Some(caller) = caller else { return };
                let Some(p) = self.channels.get_mut(&id) else {
                    return;
                };
                if p.dialed_by.is_none() {
                    p.dialed_by = Some(caller.id);
                    if !caller.dialplan.exten.is_empty() {
                        p.dialed_number = Some(caller.dialplan.exten);
                    }
                    self.refresh_call_of(&id);
                }
            }
            Event::ChannelEnteredBridge {
                bridge,
                channel,
                timestamp,
            }
            | Event::ChannelLeftBridge {
                bridge,
                channel,
                timestamp,
            } => {
                if let Some(ch) = channel {
                    self.touch(&ch.id);
                    self.upsert_channel(ch, timestamp);
                }
                self.upsert_bridge(&bridge);
            }
            Event::BridgeCreated { bridge, .. } => self.upsert_bridge(&bridge),
            Event::BridgeMerged {
                bridge,
                bridge_from,
                ..
            } => {
                self.remove_bridge(&bridge_from.id);
                self.upsert_bridge(&bridge);
            }
            Event::BridgeDestroyed { bridge, .. } => {
                if let Some(r) = &mut self.resync {
                    r.bridges_gone.insert(bridge.id.clone());
                }
                self.bury(&bridge.id);
                self.remove_bridge(&bridge.id);
            }
            Event::ApplicationReplaced { .. } | Event::Other => {}
        }
    }

    fn upsert_bridge(&mut self, b: &Bridge) {
        if self.tombstones.contains(&b.id) {
            return;
        }
        if let Some(r) = &mut self.resync {
            r.bridges_touched.insert(b.id.clone());
        }
        // Members leaving or entering: keep each channel's `bridge` in step.
        if let Some(old) = self.bridges.get(&b.id) {
            for c in &old.channels {
                if !b.channels.contains(c) {
                    if let Some(ch) = self.channels.get_mut(c) {
                        if ch.bridge.as_deref() == Some(&b.id) {
                            ch.bridge = None;
                        }
                    }
                }
            }
        }
        for c in &b.channels {
            if let Some(ch) = self.channels.get_mut(c) {
                ch.bridge = Some(b.id.clone());
            }
        }
        // A bridge snapshot may still list a channel already destroyed.
        let channels = b
            .channels
            .iter()
            .filter(|c| !self.tombstones.contains(*c))
            .cloned()
            .collect();
        self.bridges.insert(
            b.id.clone(),
            BridgeState {
                id: b.id.clone(),
                class: b.bridge_class.clone(),
                technology: b.technology.clone(),
                name: b.name.clone(),
                channels,
            },
        );
        self.merge_bridged(&b.id);
    }

    fn remove_bridge(&mut self, id: &str) {
        if let Some(old) = self.bridges.remove(id) {
            for c in &old.channels {
                if let Some(ch) = self.channels.get_mut(c) {
                    if ch.bridge.as_deref() == Some(id) {
                        ch.bridge = None;
                    }
                }
            }
        }
    }

    /// Inserts or refreshes a channel from an ARI snapshot; `at` is the event's time.
    /// Inserts or refreshes a channel from an ARI snapshot; `at` is the event's time. The
    /// snapshot is taken by value: its strings move into the state. The call is
    /// recomputed only when something it derives from changed.
    fn upsert_channel(&mut self, ch: Channel, at: Option<Time>) {
        if self.tombstones.contains(&ch.id) {
            return;
        }
        let state = ChanState::parse(&ch.state);
        if ch.linkedid().is_none() {
            self.linkedid_missing = true;
        }
        let Channel {
            id,
            name,
            caller,
            connected,
            dialplan,
            created,
            channelvars,
            ..
        } = ch;
        let created = created
            .or(at)
            .unwrap_or_else(|| DateTime::UNIX_EPOCH.fixed_offset());
        let when = at.unwrap_or(created);
        // Stasis' data names the application; other applications' data is not kept.
        let app_data = if dialplan.app_name == "Stasis" {
            dialplan.app_data
        } else {
            Text::default()
        };
        let reported = channelvars.linkedid.filter(|l| !l.is_empty());

        let Some(c) = self.channels.get_mut(&id) else {
            // New: without a linkedid, the channel is a call of its own.
            let linkedid = reported.unwrap_or_else(|| id.clone());
            let call: Arc<str> = Arc::from(phone_call_id(&linkedid));
            let c = ChannelState {
                id: id.clone(),
                endpoint: channel_endpoint(&name).map(|(_, r)| Text::from(r)),
                name,
                state,
                caller,
                connected,
                exten: dialplan.exten,
                app: dialplan.app_name,
                app_data,
                created,
                reported_linkedid: None,
                linkedid,
                call,
                bridge: None,
                ringing: (state == ChanState::Ringing).then_some(when),
                answered: (state == ChanState::Up).then_some(when),
                hold: None,
                held_by_uapid: None,
                dialed_by: None,
                dialed_number: None,
            };
            self.channels.insert(id.clone(), c);
            self.attach(&id, None);
            return;
        };

        // The linkedid changes when Asterisk says so; a channel merged into an older call
        // by bridging keeps that call while the snapshots still say the old one.
        let mut moved_from = None;
        if let Some(r) = reported {
            let known = c.reported_linkedid.as_deref().unwrap_or(&c.linkedid);
            if r != known {
                if r != c.linkedid {
                    let call: Arc<str> = Arc::from(phone_call_id(&r));
                    moved_from = Some(std::mem::replace(&mut c.call, call));
                    c.linkedid = r.clone();
                }
                c.reported_linkedid = (r != c.linkedid).then_some(r);
            }
        }
        let mut changed =
            c.state != state || c.exten != dialplan.exten || c.caller.number != caller.number;
        if c.name != name {
            c.endpoint = channel_endpoint(&name).map(|(_, r)| Text::from(r));
            c.name = name;
            changed = true;
        }
        c.state = state;
        c.caller = caller;
        c.connected = connected;
        c.exten = dialplan.exten;
        c.app = dialplan.app_name;
        c.app_data = app_data;
        match state {
            ChanState::Ringing => {
                c.ringing.get_or_insert(when);
            }
            ChanState::Up if c.answered.is_none() => {
                c.answered = Some(when);
                changed = true;
            }
            _ => {}
        }
        let (call, answered) = (c.call.clone(), c.answered);
        if moved_from.is_some() {
            self.attach(&id, moved_from);
        } else if changed {
            if let (Some(a), Some(cs)) = (answered, self.calls.get_mut(&call)) {
                cs.answered = Some(cs.answered.map_or(a, |x| x.min(a)));
            }
            self.refresh_call(&call);
        }
    }

    /// Puts a channel into the call its `call` field names (creating the call), taking it
    /// out of `old_call` when that differs.
    fn attach(&mut self, id: &str, old_call: Option<Arc<str>>) {
        let Some(c) = self.channels.get(id) else {
            return;
        };
        let (call_id, linkedid, created, answered) =
            (c.call.clone(), c.linkedid.clone(), c.created, c.answered);
        if let Some(old) = old_call.filter(|o| *o != call_id) {
            if let Some(oc) = self.calls.get_mut(&old) {
                oc.channels.retain(|x| x != id);
            }
            self.refresh_call(&old);
        }
        let call = self
            .calls
            .entry(call_id.clone())
            .or_insert_with(|| CallState {
                id: call_id.clone(),
                linkedid,
                channels: Vec::new(),
                published: created,
                origin: Party::Other(String::new()),
                origin_set: false,
                dialed: Text::default(),
                answered: None,
                extensions: Vec::new(),
                users: Vec::new(),
                orgs: Vec::new(),
            });
        if !call.channels.iter().any(|x| x == id) {
            call.channels.push(Text::from(id));
        }
        if let Some(a) = answered {
            call.answered = Some(call.answered.map_or(a, |x| x.min(a)));
        }
        self.refresh_call(&call_id);
    }

    /// Channels of different calls talking in one bridge become one call, the oldest,
    /// as Asterisk's linkedid propagation makes them (its snapshots show it only later).
    /// A parking lot's holding bridge joins nothing.
    fn merge_bridged(&mut self, bridge: &str) {
        let Some(b) = self.bridges.get(bridge) else {
            return;
        };
        if b.class == "parking" || b.technology == "holding_bridge" {
            return;
        }
        let members = b.channels.clone();
        let oldest = members
            .iter()
            .filter_map(|c| self.channels.get(c))
            .filter_map(|c| self.calls.get(&c.call))
            .min_by(|x, y| x.published.cmp(&y.published).then_with(|| x.id.cmp(&y.id)))
            .map(|c| (c.id.clone(), c.linkedid.clone()));
        let Some((call, linkedid)) = oldest else {
            return;
        };
        for m in members {
            let Some(ch) = self.channels.get_mut(&m) else {
                continue;
            };
            if ch.call == call {
                continue;
            }
            let old = std::mem::replace(&mut ch.call, call.clone());
            ch.linkedid = linkedid.clone();
            self.attach(&m, Some(old));
        }
    }

    fn remove_channel(&mut self, id: &str) {
        let Some(c) = self.channels.remove(id) else {
            return;
        };
        if let Some(b) = c.bridge.as_ref().and_then(|b| self.bridges.get_mut(b)) {
            b.channels.retain(|x| x != id);
        }
        self.parked.remove(id);
        if let Some(call) = self.calls.get_mut(&c.call) {
            call.channels.retain(|x| x != id);
        }
        self.refresh_call(&c.call);
    }

    /// Recomputes a call's derived facts (origin, extensions, indexes) after a change.
    fn refresh_call(&mut self, id: &Arc<str>) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let old_key = call.key();

        if call.channels.is_empty() {
            let call = self.calls.remove(id).expect("present");
            self.unindex(&old_key, &call.extensions, &call.users, &call.orgs);
            return;
        }

        // Channels oldest first; the oldest started the call.
        let mut chans: Vec<&ChannelState> = call
            .channels
            .iter()
            .filter_map(|c| self.channels.get(c))
            .collect();
        chans.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        let ordered: Vec<Text> = chans.iter().map(|c| c.id.clone()).collect();
        let first = chans[0];
        let (origin, dialed, published) = if !call.origin_set {
            (self.party_of(first), first.exten.clone(), first.created)
        } else if ordered.len() == 1 && first.id == call.linkedid {
            // Still alone: what it dials may still change as the dialplan runs.
            (call.origin.clone(), first.exten.clone(), call.published)
        } else {
            (call.origin.clone(), call.dialed.clone(), call.published)
        };

        let mut exts: Vec<String> = Vec::new();
        let push = |n: &str, exts: &mut Vec<String>| {
            if !exts.iter().any(|e| e == n) {
                exts.push(n.to_string());
            }
        };
        if let Party::Extension(n) = &origin {
            push(n, &mut exts);
        }
        for c in &chans {
            // The extension a channel belongs to (as `party_of` finds it, without a copy).
            let ext = c
                .endpoint
                .as_deref()
                .and_then(|ep| self.dir.extension_by_endpoint(ep));
            if let Some(x) = ext {
                push(&x.number, &mut exts);
            }
            if let Some(p) = self.parked.get(&c.id) {
                if let Some(n) = self.parker_extension(p) {
                    push(&n, &mut exts);
                }
            }
        }
        let mut users = Vec::new();
        let mut orgs = Vec::new();
        for e in &exts {
            if let Some(x) = self.dir.extensions.get(e) {
                if !users.contains(&x.user) {
                    users.push(x.user);
                }
                if !orgs.contains(&x.organization) {
                    orgs.push(x.organization);
                }
            }
        }

        let call = self.calls.get_mut(id).expect("present");
        call.channels = ordered;
        call.origin = origin;
        call.origin_set = true;
        call.dialed = dialed;
        call.published = published;
        let new_key = call.key();
        if new_key != old_key || exts != call.extensions || users != call.users || orgs != call.orgs
        {
            let old_exts = std::mem::take(&mut call.extensions);
            let old_users = std::mem::take(&mut call.users);
            let old_orgs = std::mem::take(&mut call.orgs);
            self.unindex(&old_key, &old_exts, &old_users, &old_orgs);
            self.index(&new_key, &exts, &users, &orgs);
        } else if !self.all.contains(&new_key) {
            self.index(&new_key, &exts, &users, &orgs);
        }
        let call = self.calls.get_mut(id).expect("present");
        call.extensions = exts;
        call.users = users;
        call.orgs = orgs;
    }

    fn index(&mut self, key: &OrderKey, exts: &[String], users: &[u64], orgs: &[u64]) {
        self.all.insert(key.clone());
        for e in exts {
            self.by_ext
                .entry(e.clone())
                .or_default()
                .insert(key.clone());
        }
        for u in users {
            self.by_user.entry(*u).or_default().insert(key.clone());
        }
        for o in orgs {
            self.by_org.entry(*o).or_default().insert(key.clone());
        }
    }

    fn unindex(&mut self, key: &OrderKey, exts: &[String], users: &[u64], orgs: &[u64]) {
        self.all.remove(key);
        for e in exts {
            if let Some(s) = self.by_ext.get_mut(e) {
                s.remove(key);
                if s.is_empty() {
                    self.by_ext.remove(e);
                }
            }
        }
        for u in users {
            if let Some(s) = self.by_user.get_mut(u) {
                s.remove(key);
                if s.is_empty() {
                    self.by_user.remove(u);
                }
            }
        }
        for o in orgs {
            if let Some(s) = self.by_org.get_mut(o) {
                s.remove(key);
                if s.is_empty() {
                    self.by_org.remove(o);
                }
            }
        }
    }

    /// The extension that parked a call, from the lot's callback dial string.
    pub fn parker_extension(&self, p: &ParkedState) -> Option<String> {
        let (_, ep) = p.parker_dial.split_once('/')?;
        let ep = ep.split(['/', '@', '-']).next()?;
        self.dir.extension_by_endpoint(ep).map(|e| e.number.clone())
    }

    /// Whether the picture is whole: ARI's snapshot applied, AMI's parked list read.
    pub fn synced(&self) -> bool {
        self.ari_synced && self.parked_unconfirmed.is_none()
    }

    fn apply_snapshot(&mut self, channels: Vec<Channel>, bridges: Vec<Bridge>) {
        self.ari_synced = true;
        let r = self.resync.take().unwrap_or_default();
        let seen: HashSet<Text> = channels.iter().map(|c| c.id.clone()).collect();
        let stale: Vec<Text> = self
            .channels
            .keys()
            .filter(|id| !seen.contains(*id) && !r.touched.contains(*id))
            .cloned()
            .collect();
        for id in stale {
            self.remove_channel(&id);
        }
        let bridge_seen: HashSet<Text> = bridges.iter().map(|b| b.id.clone()).collect();
        let stale: Vec<Text> = self
            .bridges
            .keys()
            .filter(|id| !bridge_seen.contains(*id) && !r.bridges_touched.contains(*id))
            .cloned()
            .collect();
        for id in stale {
            self.remove_bridge(&id);
        }
        // Channels first (their creation time gives `answered` its best guess when the
        // channel is already up), then the bridges they sit in.
        let mut channels = channels;
        channels.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        for ch in channels {
            if r.gone.contains(&ch.id) || r.touched.contains(&ch.id) {
                continue;
            }
            let answered_var = ch
                .answered_var()
                .and_then(|s| parse_answer_time(s, ch.created));
            let at = answered_var.or(ch.created);
            self.upsert_channel(ch, at);
        }
        for b in &bridges {
            if r.bridges_gone.contains(&b.id) || r.bridges_touched.contains(&b.id) {
                continue;
            }
            self.upsert_bridge(b);
        }
    }

    fn apply_ami(&mut self, m: &Message, at: Time) {
        let Some(event) = m.event() else { return };
        match event {
            "ParkedCall" | "ParkedCallSwap" => {
                let Some(uid) = m.get("ParkeeUniqueid") else {
                    return;
                };
                let duration: i64 = m
                    .get("ParkingDuration")
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0);
                let p = ParkedState {
                    uniqueid: uid.to_string(),
                    linkedid: m.get("ParkeeLinkedid").unwrap_or(uid).to_string(),
                    space: m.get("ParkingSpace").unwrap_or("").to_string(),
                    lot: m.get("Parkinglot").unwrap_or("").to_string(),
                    parker_dial: m.get("ParkerDialString").unwrap_or("").to_string(),
                    since: at - chrono::Duration::seconds(duration),
                    timeout_secs: m.get("ParkingTimeout").and_then(|d| d.parse().ok()),
                };
                if let Some(u) = &mut self.parked_unconfirmed {
                    u.remove(uid);
                }
                let since = self.parked.get(uid).map(|old| old.since.min(p.since));
                let mut p = p;
                if let Some(s) = since {
                    p.since = s;
                }
                self.parked.insert(Text::from(uid), p);
                self.refresh_call_of(uid);
            }
            "UnParkedCall" | "ParkedCallTimeOut" | "ParkedCallGiveUp" => {
                if let Some(uid) = m.get("ParkeeUniqueid") {
                    if self.parked.remove(uid).is_some() {
                        self.refresh_call_of(uid);
                    }
                }
            }
            "ParkedCallsComplete" => {
                if let Some(unconfirmed) = self.parked_unconfirmed.take() {
                    for uid in unconfirmed {
                        self.parked.remove(&uid);
                        self.refresh_call_of(&uid);
                    }
                }
            }
            _ => {}
        }
    }

    fn refresh_call_of(&mut self, channel_id: &str) {
        if let Some(call) = self.channels.get(channel_id).map(|c| c.call.clone()) {
            self.refresh_call(&call);
        }
    }
}

/// Reads the answer time variable (`2026-11-22 12:34:56` in the PBX's zone, or epoch
/// seconds) using the zone of the channel's creation time.
fn parse_answer_time(value: &str, creation: Option<Time>) -> Option<Time> {
    let offset = *creation?.offset();
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs <= 0.0 {
            return None;
        }
        return DateTime::from_timestamp(secs as i64, 0).map(|t| t.with_timezone(&offset));
    }
    let naive = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").ok()?;
    naive.and_local_timezone(offset).single()
}
