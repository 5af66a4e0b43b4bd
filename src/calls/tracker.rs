//! The tracker: every channel, bridge and parked call on the PBX, and the calls they make.
//!
//! A pure state machine: [`Tracker::apply`] takes one [`Input`] (an ARI event, an AMI
//! event, a snapshot, a connection change) and updates the state; it does no I/O and
//! reads no clock. One task owns it (see `crate::links`); everything else reads it.
//!
//! A call is the set of channels that share Asterisk's linkedid. Its UAPI id is derived
//! from that linkedid alone ([`phone_call_id`]), so it is the same after uapid restarts.
//! Indexes keep the calls ordered by `published` per extension, user and organization,
//! so a page of a listing costs the same whether 1 000 or 100 000 calls are tracked.
//!
//! The tracker's methods are split by what feeds them: [`super::ari_events`] (ARI's
//! channel and bridge events), [`super::parking`] (AMI's parking events) and
//! [`super::resync`] (the snapshots taken on connect). This file holds the state, the
//! calls' bookkeeping, and the facts derived from the state that everyone else reads.

use std::collections::BTreeSet;
use std::sync::Arc;

// Keys are ids Asterisk makes, not input an attacker picks: a fast hasher is safe here.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::resync::Resync;
use super::scope::{Index, Keys, Scope};
use super::state::*;
use crate::asterisk::ari::model::Text;
use crate::config::{Directory, Extension};

/// How a call started (see [`Tracker::refresh_call`]).
struct Start {
    origin: Party,
    published: Time,
    dialed: Text,
    dialed_set: bool,
}

#[derive(Debug)]
pub struct Tracker {
    dir: Arc<Directory>,
    /// uapid's Stasis application.
    app: Text,
    /// The uapid bridge of each call that has one (see [`uapid_bridge_name`]).
    pub(super) uapid_bridges: HashMap<Arc<str>, Text>,
    /// What uapid knows of the calls it made (`Note::Made`), by call id.
    made: HashMap<Arc<str>, Made>,
    /// Calls merged into another by bridging, by their linkedid: a channel made later
    /// with that linkedid (a spy beside a merged leg) joins the call it went into, while
    /// that call lasts (an entry is checked when read, not removed when the call ends).
    merged: HashMap<Text, (Arc<str>, Text)>,
    /// Linkedids AMI told for channels ARI has not shown yet.
    pub(super) ami_linkedids: HashMap<Text, Text>,
    pub(super) channels: HashMap<Text, ChannelState>,
    pub(super) bridges: HashMap<Text, BridgeState>,
    pub(super) parked: HashMap<Text, ParkedState>,
    pub(super) calls: HashMap<Arc<str>, CallState>,
    index: Index,
    pub(super) resync: Option<Resync>,
    /// Channels and bridges recently destroyed: Asterisk can send an event for a channel
    /// after its ChannelDestroyed (seen with PickupChan), which must not bring it back.
    pub(super) tombstones: HashSet<Text>,
    tombstone_order: std::collections::VecDeque<Text>,
    /// Parked entries not yet confirmed by the ParkedCalls listing after an AMI login.
    pub(super) parked_unconfirmed: Option<HashSet<Text>>,
    pub ari_up: bool,
    pub ami_up: bool,
    /// Why each link is down, while it is.
    pub ari_down: Option<String>,
    pub ami_down: Option<String>,
    /// An ARI snapshot has been applied since the last connect.
    pub(super) ari_synced: bool,
    /// Whether channel snapshots carry the linkedid (ari.conf channelvars).
    pub linkedid_missing: bool,
}

/// How far a channel has come, for choosing the leg that speaks for an extension's view:
/// answered over ringing over dialing over the rest. List and the actions both use it
/// (through [`Tracker::view_leg`]), so an action acts on the leg List shows.
pub fn leg_rank(state: ChanState) -> u8 {
    match state {
        ChanState::Up => 4,
        ChanState::Ringing => 3,
        ChanState::Ring => 2,
        _ => 1,
    }
}

impl Tracker {
    /// A tracker for the directory's extensions; `app` is uapid's Stasis application.
    pub fn new(dir: Arc<Directory>, app: &str) -> Tracker {
        Tracker {
            dir,
            app: Text::from(app),
            uapid_bridges: HashMap::default(),
            made: HashMap::default(),
            merged: HashMap::default(),
            ami_linkedids: HashMap::default(),
            channels: HashMap::default(),
            bridges: HashMap::default(),
            parked: HashMap::default(),
            calls: HashMap::default(),
            index: Index::default(),
            resync: None,
            tombstones: HashSet::default(),
            tombstone_order: std::collections::VecDeque::new(),
            parked_unconfirmed: None,
            ari_up: false,
            ami_up: false,
            ari_down: Some("not connected yet".into()),
            ami_down: Some("not connected yet".into()),
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
    pub fn scope(&self, scope: &Scope) -> &BTreeSet<OrderKey> {
        self.index.get(scope)
    }

    /// The directory extension a channel rings or calls from (by its endpoint).
    pub fn extension_of(&self, ch: &ChannelState) -> Option<&Extension> {
        self.dir.extension_by_endpoint(ch.endpoint.as_deref()?)
    }

    /// Who a channel is, from its endpoint and the directory.
    pub fn party_of(&self, ch: &ChannelState) -> Party {
        if let Some(ext) = self.extension_of(ch) {
            return Party::Extension(ext.number.clone());
        }
        match ch.endpoint.as_deref() {
            Some(ep) if self.dir.is_trunk(ep) => {
                // Calling in: the caller's number; called out: the number dialed.
                let n = match (&ch.dialed_by, &ch.dialed_number) {
                    (None, _) => ch.caller.number.clone(),
                    (Some(_), Some(n)) => n.clone(),
                    (Some(_), None) => ch.exten.clone(),
                };
                Party::Public(n.to_string())
            }
            _ => Party::Other(ch.name.to_string()),
        }
    }

    /// The channel that speaks for `ext`'s view of a call: its most advanced leg.
    pub fn view_leg(&self, call: &CallState, ext: &str) -> Option<&ChannelState> {
        call.channels
            .iter()
            .filter_map(|c| self.channels.get(c))
            .filter(|c| self.extension_of(c).is_some_and(|x| x.number == ext))
            .max_by_key(|c| leg_rank(c.state))
    }

    /// The extension that parked a call, from the lot's callback dial string
    /// (`PJSIP/0003_210`, possibly with a suffix).
    pub fn parker_extension(&self, p: &ParkedState) -> Option<&str> {
        let (_, ep) = p.parker_dial.split_once('/')?;
        let ep = ep.split(['/', '@', '-']).next()?;
        self.dir
            .extension_by_endpoint(ep)
            .map(|e| e.number.as_str())
    }

    /// Whether a channel runs in the Stasis application `app`.
    pub fn in_stasis(&self, channel: &str, app: &str) -> bool {
        self.channels.get(channel).is_some_and(|c| {
            c.app == "Stasis" && c.app_data.split(',').next().map(str::trim) == Some(app)
        })
    }

    /// Whether a channel runs in uapid's own Stasis application (uapid took it in).
    pub fn in_uapid(&self, ch: &ChannelState) -> bool {
        self.in_stasis(&ch.id, &self.app)
    }

    /// The call's uapid bridge, if Asterisk has it.
    pub fn uapid_bridge(&self, call: &str) -> Option<&BridgeState> {
        self.bridges.get(self.uapid_bridges.get(call)?)
    }

    /// Whether uapid holds this channel: answered, in uapid's application, out of every
    /// bridge (hearing music) while its call's uapid bridge still has the other party.
    /// Derived from what Asterisk shows, so a restarted uapid sees it too.
    pub fn held_by_uapid(&self, ch: &ChannelState) -> bool {
        ch.state == ChanState::Up
            && ch.bridge.is_none()
            && !self.parked.contains_key(&ch.id)
            && self.in_uapid(ch)
            && self
                .uapid_bridge(&ch.call)
                .is_some_and(|b| b.channels.iter().any(|c| *c != ch.id))
    }

    /// Whether this channel holds another party of its call (it is in the call's uapid
    /// bridge while another party is held by uapid).
    pub fn holding(&self, ch: &ChannelState) -> bool {
        let Some(b) = &ch.bridge else { return false };
        self.uapid_bridges.get(&ch.call) == Some(b)
            && self.call(&ch.call).is_some_and(|c| {
                c.channels
                    .iter()
                    .filter_map(|x| self.channels.get(x))
                    .any(|x| x.id != ch.id && self.held_by_uapid(x))
            })
    }

    /// Since when uapid holds a channel (`None` when it does not). After a uapid
    /// restart, until the time is read back, the answer time stands in.
    pub fn uapid_hold_since(&self, ch: &ChannelState) -> Option<Time> {
        self.held_by_uapid(ch)
            .then(|| ch.held_since.or(ch.answered).unwrap_or(ch.created))
    }

    /// When the recording that `ext`'s view shows began: one uapid started for that
    /// view, or one of unknown origin (shown on every view), on a channel of the call.
    pub fn recording_for(&self, call: &CallState, ext: &str) -> Option<Time> {
        call.channels
            .iter()
            .filter_map(|c| self.channels.get(c)?.recording.as_ref())
            .filter(|r| r.extension.as_deref().is_none_or(|e| e == ext))
            .map(|r| r.since)
            .min()
    }

    /// The extension uapid created the call for (a callback, a conference invite).
    pub fn owner_of(&self, call: &str) -> Option<&str> {
        self.made.get(call)?.owner.as_deref()
    }

    /// Whether uapid left this channel alone, so that it must end it as Dial() would
    /// have: it runs in uapid's application, is not parked (a parked call waits in the
    /// lot, whoever left) and no other channel is left in its call.
    pub fn left_alone(&self, ch: &ChannelState) -> bool {
        self.in_uapid(ch)
            && !self.parked.contains_key(&ch.id)
            && self
                .call(&ch.call)
                .is_none_or(|c| c.channels.iter().all(|x| *x == ch.id))
    }

    /// Whether the picture is whole: ARI's snapshot applied, AMI's parked list read.
    pub fn synced(&self) -> bool {
        self.ari_synced && self.parked_unconfirmed.is_none()
    }

    pub fn apply(&mut self, input: Input) {
        match input {
            Input::AriConnected => {
                self.ari_up = true;
                self.ari_down = None;
                self.ari_synced = false;
                self.resync = Some(Resync::default());
            }
            Input::AriDisconnected(why) => {
                self.ari_up = false;
                self.ari_down = Some(why);
            }
            Input::AriEvent(ev) => self.apply_ari(*ev),
            Input::AriSnapshot { channels, bridges } => self.apply_snapshot(channels, bridges),
            Input::AmiConnected => {
                self.ami_up = true;
                self.ami_down = None;
                self.parked_unconfirmed = Some(self.parked.keys().cloned().collect());
            }
            Input::AmiDisconnected(why) => {
                self.ami_up = false;
                self.ami_down = Some(why);
            }
            Input::AmiEvent(m, at) => self.apply_ami(&m, at),
            Input::Note(n) => self.apply_note(n),
        }
    }

    fn apply_note(&mut self, n: Note) {
        match n {
            Note::Held { channel, at } => {
                if let Some(c) = self.channels.get_mut(channel.as_str()) {
                    c.held_since = Some(at);
                }
            }
            Note::Unheld { channel } => {
                if let Some(c) = self.channels.get_mut(channel.as_str()) {
                    c.held_since = None;
                }
            }
            Note::Recording {
                channel,
                extension,
                at,
            } => {
                if let Some(c) = self.channels.get_mut(channel.as_str()) {
                    let since = c.recording.as_ref().map_or(at, |r| r.since.min(at));
                    c.recording = Some(Box::new(Recording {
                        since,
                        extension: Some(extension),
                    }));
                }
            }
            Note::Made { call, made } => {
                // Bounded: an originate that never made its call leaves its entry.
                if self.made.len() >= 65_536 {
                    self.made.retain(|c, _| self.calls.contains_key(c));
                }
                let call: Arc<str> = Arc::from(call);
                self.made.insert(call.clone(), made);
                self.refresh_call(&call);
            }
            Note::Answered { channel, at } => {
                let Some(c) = self.channels.get_mut(channel.as_str()) else {
                    return;
                };
                c.answered = Some(at);
                let call = c.call.clone();
                let first = self.calls.get(&call).and_then(|cs| {
                    cs.channels
                        .iter()
                        .filter_map(|x| self.channels.get(x)?.answered)
                        .min()
                });
                if let Some(cs) = self.calls.get_mut(&call) {
                    cs.answered = first;
                }
            }
            Note::NotRecording { channel } => {
                if let Some(c) = self.channels.get_mut(channel.as_str()) {
                    c.recording = None;
                }
            }
        }
    }

    /// How many destroyed ids are remembered.
    const TOMBSTONES: usize = 65_536;

    pub(super) fn bury(&mut self, id: &str) {
        if self.tombstones.insert(Text::from(id)) {
            self.tombstone_order.push_back(Text::from(id));
            if self.tombstone_order.len() > Self::TOMBSTONES {
                if let Some(old) = self.tombstone_order.pop_front() {
                    self.tombstones.remove(&old);
                }
            }
        }
    }

    pub(super) fn touch(&mut self, id: &str) {
        if let Some(r) = &mut self.resync {
            r.touched.insert(Text::from(id));
        }
    }

    /// Puts a channel into the call its `call` field names (creating the call), taking it
    /// out of `old_call` when that differs.
    pub(super) fn attach(&mut self, id: &str, old_call: Option<Arc<str>>) {
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
                dialed_set: false,
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

    /// The call a channel with `linkedid` belongs to, and the linkedid it has there: its
    /// own, unless its call was merged into another.
    pub(super) fn call_of_linkedid(&self, linkedid: &str) -> (Arc<str>, Text) {
        match self.merged.get(linkedid) {
            Some((call, l)) if self.calls.contains_key(call) => (call.clone(), l.clone()),
            _ => (Arc::from(phone_call_id(linkedid)), Text::from(linkedid)),
        }
    }

    /// Channels of different calls talking in one bridge make their calls one, the
    /// oldest, as Asterisk's linkedid propagation makes them (its snapshots show it only
    /// later). A parking lot's holding bridge joins nothing.
    pub(super) fn merge_bridged(&mut self, bridge: &str) {
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
        // Whole calls join, not only the bridged legs: a call whose Local channel enters
        // a conference brings the phone on the Local channel's other side with it.
        let joining: Vec<Arc<str>> = members
            .iter()
            .filter_map(|m| self.channels.get(m))
            .map(|c| c.call.clone())
            .filter(|c| *c != call)
            .collect();
        // Bounded: entries of ended calls go when the map is full.
        if self.merged.len() >= 65_536 {
            self.merged
                .retain(|_, (into, _)| self.calls.contains_key(into));
        }
        for old_call in joining {
            if let Some(old) = self.calls.get(&old_call) {
                let entry = (call.clone(), linkedid.clone());
                for into in self.merged.values_mut().filter(|(c, _)| *c == old_call) {
                    *into = entry.clone();
                }
                self.merged.insert(old.linkedid.clone(), entry);
            }
            let chans = self
                .calls
                .get(&old_call)
                .map(|c| c.channels.clone())
                .unwrap_or_default();
            for m in chans {
                let Some(ch) = self.channels.get_mut(&m) else {
                    continue;
                };
                if ch.call == call {
                    continue;
                }
                let old = std::mem::replace(&mut ch.call, call.clone());
                ch.linkedid = linkedid.clone();
                ch.linkedid_told = true;
                self.attach(&m, Some(old));
            }
        }
    }

    pub(super) fn remove_channel(&mut self, id: &str) {
        self.ami_linkedids.remove(id);
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
    pub(super) fn refresh_call(&mut self, id: &Arc<str>) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let old_key = call.key();
        if call.channels.is_empty() {
            self.drop_call(id);
            return;
        }

        // Channels oldest first; the oldest started the call.
        let mut chans: Vec<&ChannelState> = call
            .channels
            .iter()
            .filter_map(|c| self.channels.get(c))
            .collect();
        chans.sort_by(|a, b| creation_order((&a.created, &a.id), (&b.created, &b.id)));
        let ordered: Vec<Text> = chans.iter().map(|c| c.id.clone()).collect();
        let start = self.start_of(id, call, &chans);
        let owner = self.made.get(id).and_then(|m| m.owner.as_ref());
        let (exts, users, orgs) = self.involved(&start.origin, owner, &chans);

        let call = self.calls.get_mut(id).expect("present");
        call.channels = ordered;
        call.origin = start.origin;
        call.origin_set = true;
        call.dialed_set = start.dialed_set;
        call.dialed = start.dialed;
        call.published = start.published;
        let new_key = call.key();
        let changed = new_key != old_key
            || exts != call.extensions
            || users != call.users
            || orgs != call.orgs;
        if changed {
            self.index.remove(&old_key, keys(call));
        }
        if changed || !self.index.contains(&new_key) {
            let k = Keys {
                exts: &exts,
                users: &users,
                orgs: &orgs,
            };
            self.index.insert(&new_key, k);
        }
        call.extensions = exts;
        call.users = users;
        call.orgs = orgs;
    }

    /// A call whose last channel went: out of the indexes, with what uapid knew of it.
    fn drop_call(&mut self, id: &Arc<str>) {
        let Some(call) = self.calls.remove(id) else {
            return;
        };
        self.index.remove(&call.key(), keys(&call));
        self.made.remove(id);
    }

    /// How a call started: who started it, when, and the number it dialed. `chans` are
    /// its channels, oldest first.
    fn start_of(&self, id: &str, call: &CallState, chans: &[&ChannelState]) -> Start {
        let first = chans[0];
        let made = self.made.get(id);
        // The party that started the call: the oldest channel that is someone (a Local
        // channel uapid originated through the dial context is no one, until the
        // channel it dials shows; until then, the source uapid was asked for). Looked
        // for again while the party found has no number (a trunk channel shows before
        // the Dial event that tells what it dials).
        let someone = || {
            chans
                .iter()
                .map(|c| self.party_of(c))
                .find(|p| !matches!(p, Party::Other(_)))
                .or_else(|| made.and_then(|m| m.source.clone()))
        };
        let no_one = |p: &Party| matches!(p, Party::Other(_)) || p.number().is_empty();
        let mut origin = match call.origin_set {
            true => call.origin.clone(),
            false => self.party_of(first),
        };
        if no_one(&origin) {
            origin = someone().unwrap_or(origin);
        }
        // What the first channel dials, while it is alone: its dialplan may still
        // change it; a call uapid made rings its first party before its dialplan starts.
        let dialed = match (call.dialed_set, made.and_then(|m| m.dials.clone())) {
            (true, _) => call.dialed.clone(),
            (false, Some(n)) => n,
            (false, None) => first.exten.clone(),
        };
        Start {
            origin,
            published: match call.origin_set {
                true => call.published,
                false => first.created,
            },
            dialed,
            dialed_set: call.dialed_set || chans.len() > 1,
        }
    }

    /// The extensions a call involves (its views, in order of appearance: the origin,
    /// the extension uapid made it for, each channel's, and the parker of a parked
    /// channel), and their users and organizations.
    fn involved(
        &self,
        origin: &Party,
        owner: Option<&String>,
        chans: &[&ChannelState],
    ) -> (Vec<String>, Vec<u64>, Vec<u64>) {
        let mut exts: Vec<String> = Vec::new();
        let mut push = |n: &str| {
            if !exts.iter().any(|e| e == n) {
                exts.push(n.to_string());
            }
        };
        if let Party::Extension(n) = origin {
            push(n);
        }
        if let Some(n) = owner {
            push(n);
        }
        for c in chans {
            if let Some(x) = self.extension_of(c) {
                push(&x.number);
            }

            if let Some(n) = self
                .parked
                .get(&c.id)
                .and_then(|p| self.parker_extension(p))
            {
                push(n);
            }
        }
        let mut users = Vec::new();
        let mut orgs = Vec::new();
        for x in exts.iter().filter_map(|e| self.dir.extensions.get(e)) {
            if !users.contains(&x.user) {
                users.push(x.user);
            }
            if !orgs.contains(&x.organization) {
                orgs.push(x.organization);
            }
        }
        (exts, users, orgs)
    }

    pub(super) fn refresh_call_of(&mut self, channel_id: &str) {
        if let Some(call) = self.channels.get(channel_id).map(|c| c.call.clone()) {
            self.refresh_call(&call);
        }
    }
}

/// What a call is indexed under.
fn keys(call: &CallState) -> Keys<'_> {
    Keys {
        exts: &call.extensions,
        users: &call.users,
        orgs: &call.orgs,
    }
}
