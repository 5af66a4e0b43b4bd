//! The tracker fed by ARI: channel and bridge events (and the snapshots' channels and
//! bridges, which [`super::resync`] applies through the same upserts).

use std::sync::Arc;

use chrono::DateTime;

use super::state::*;
use super::tracker::Tracker;
use crate::asterisk::ari::model::{channel_endpoint, Bridge, CallerId, Channel, Event, Text};

impl Tracker {
    pub(super) fn apply_ari(&mut self, ev: Event) {
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
                self.hold_changed(channel, timestamp, true)
            }
            Event::ChannelUnhold { channel, timestamp } => {
                self.hold_changed(channel, timestamp, false)
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
            } => self.dialed(caller, peer, timestamp),
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

    /// A phone put its peer on hold (ChannelHold) or took it back (ChannelUnhold).
    fn hold_changed(&mut self, channel: Channel, at: Option<Time>, on: bool) {
        self.touch(&channel.id);
        let id = channel.id.clone();
        self.upsert_channel(channel, at);
        if let Some(c) = self.channels.get_mut(&id) {
            match (on, at) {
                (true, Some(at)) => {
                    c.hold.get_or_insert(at);
                }
                (true, None) => {}
                (false, _) => c.hold = None,
            }
        }
    }

    /// `caller` dialed `peer`: the peer remembers who dialed it and the number asked for.
    fn dialed(&mut self, caller: Option<Channel>, peer: Channel, at: Option<Time>) {
        self.touch(&peer.id);
        let id = peer.id.clone();
        self.upsert_channel(peer, at);
        let Some(caller) = caller else { return };
        let Some(p) = self.channels.get_mut(&id) else {
            return;
        };
        if p.dialed_by.is_none() {
            let untold = !p.linkedid_told && p.linkedid == p.id;
            p.dialed_by = Some(caller.id.clone());
            if !caller.dialplan.exten.is_empty() {
                p.dialed_number = Some(caller.dialplan.exten);
            }
            // A dialed channel inherits its caller's linkedid: until Asterisk tells it,
            // the peer joins the caller's call.
            let callers = self.channels.get(&caller.id).map(|c| c.linkedid.clone());
            match callers {
                Some(l) if untold && l != id => self.relink(&id, &l),
                _ => self.refresh_call_of(&id),
            }
        }
    }

    /// Moves a channel into the call of `linkedid`.
    pub(super) fn relink(&mut self, id: &str, linkedid: &str) {
        let (call, linkedid) = self.call_of_linkedid(linkedid);
        let Some(c) = self.channels.get_mut(id) else {
            return;
        };
        if c.linkedid == linkedid {
            return;
        }
        let old = std::mem::replace(&mut c.call, call);
        c.linkedid = linkedid;
        self.attach(id, Some(old));
    }

    /// AMI told a channel's linkedid (Newchannel, CoreShowChannel): the ARI snapshots
    /// carry none unless ari.conf asks for it. A channel uapid does not know yet keeps
    /// it for when it appears.
    pub(super) fn ami_linkedid(&mut self, uniqueid: &str, linkedid: &str) {
        let Some(c) = self.channels.get_mut(uniqueid) else {
            if !self.tombstones.contains(uniqueid) {
                if self.ami_linkedids.len() >= 65_536 {
                    self.ami_linkedids.clear();
                }
                self.ami_linkedids
                    .insert(Text::from(uniqueid), Text::from(linkedid));
            }
            return;
        };
        // Merged by bridging meanwhile (which counts as told): the older call stands. A
        // linkedid inherited from the dialing channel was a guess: Asterisk's word wins
        // (the caller may have had no linkedid told yet either).
        if c.linkedid_told {
            return;
        }
        c.linkedid_told = true;
        self.relink(uniqueid, linkedid);
    }

    pub(super) fn upsert_bridge(&mut self, b: &Bridge) {
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
        if let Some(call) = uapid_bridge_call(&b.name) {
            self.uapid_bridges.insert(Arc::from(call), b.id.clone());
        }
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

    pub(super) fn remove_bridge(&mut self, id: &str) {
        if let Some(old) = self.bridges.remove(id) {
            if let Some(call) = uapid_bridge_call(&old.name) {
                if self.uapid_bridges.get(call).is_some_and(|b| b == id) {
                    self.uapid_bridges.remove(call);
                }
            }
            for c in &old.channels {
                if let Some(ch) = self.channels.get_mut(c) {
                    if ch.bridge.as_deref() == Some(id) {
                        ch.bridge = None;
                    }
                }
            }
        }
    }

    /// Inserts or refreshes a channel from an ARI snapshot; `at` is the event's time. The
    /// snapshot is taken by value: its strings move into the state. The call is
    /// recomputed only when something it derives from changed.
    pub(super) fn upsert_channel(&mut self, ch: Channel, at: Option<Time>) {
        if self.tombstones.contains(&ch.id) {
            return;
        }
        if ch.linkedid().is_none() {
            self.linkedid_missing = true;
        }
        let snap = Snapshot::of(ch, at);
        if self.channels.contains_key(&snap.id) {
            self.update_channel(snap);
        } else {
            self.insert_channel(snap);
        }
    }

    /// A channel seen for the first time: without a linkedid, it is a call of its own.
    fn insert_channel(&mut self, s: Snapshot) {
        // The linkedid: from ARI's channelvars, else from AMI (which may have told it
        // first), else the channel's own id until Asterisk tells.
        let told = s.linkedid.or_else(|| self.ami_linkedids.remove(&s.id));
        let linkedid_told = told.is_some();
        let (call, linkedid) = self.call_of_linkedid(told.as_deref().unwrap_or(&s.id));
        let id = s.id.clone();
        let c = ChannelState {
            id: s.id,
            endpoint: channel_endpoint(&s.name).map(|(_, r)| Text::from(r)),
            name: s.name,
            state: s.state,
            caller: s.caller,
            connected: s.connected,
            exten: s.exten,
            app: s.app,
            app_data: s.app_data,
            created: s.created,
            reported_linkedid: None,
            linkedid_told,
            linkedid,
            call,
            bridge: None,
            ringing: (s.state == ChanState::Ringing).then_some(s.when),
            answered: (s.state == ChanState::Up).then_some(s.when),
            hold: None,
            held_since: None,
            recording: None,
            dialed_by: None,
            dialed_number: None,
        };
        self.channels.insert(id.clone(), c);
        self.attach(&id, None);
    }

    /// A known channel changed.
    fn update_channel(&mut self, s: Snapshot) {
        let told = s.linkedid.as_deref().map(|l| self.call_of_linkedid(l));
        let Some(c) = self.channels.get_mut(&s.id) else {
            return;
        };
        // The linkedid changes when Asterisk says so; a channel merged into an older call
        // by bridging keeps that call while the snapshots still say the old one.
        let mut moved_from = None;
        if s.linkedid.is_some() {
            c.linkedid_told = true;
        }
        if let (Some(r), Some((call, l))) = (s.linkedid, told) {
            let known = c.reported_linkedid.as_deref().unwrap_or(&c.linkedid);
            if r != known {
                if l != c.linkedid {
                    moved_from = Some(std::mem::replace(&mut c.call, call));
                    c.linkedid = l;
                }
                c.reported_linkedid = (r != c.linkedid).then_some(r);
            }
        }
        let mut changed =
            c.state != s.state || c.exten != s.exten || c.caller.number != s.caller.number;
        if c.name != s.name {
            c.endpoint = channel_endpoint(&s.name).map(|(_, r)| Text::from(r));
            c.name = s.name;
            changed = true;
        }
        c.state = s.state;
        c.caller = s.caller;
        c.connected = s.connected;
        c.exten = s.exten;
        c.app = s.app;
        c.app_data = s.app_data;
        match s.state {
            ChanState::Ringing => {
                c.ringing.get_or_insert(s.when);
            }
            ChanState::Up if c.answered.is_none() => {
                c.answered = Some(s.when);
                changed = true;
            }
            _ => {}
        }
        let (call, answered) = (c.call.clone(), c.answered);
        if moved_from.is_some() {
            self.attach(&s.id, moved_from);
        } else if changed {
            if let (Some(a), Some(cs)) = (answered, self.calls.get_mut(&call)) {
                cs.answered = Some(cs.answered.map_or(a, |x| x.min(a)));
            }
            self.refresh_call(&call);
        }
    }
}

/// What the tracker keeps of one ARI channel snapshot.
struct Snapshot {
    id: Text,
    name: Text,
    state: ChanState,
    caller: CallerId,
    connected: CallerId,
    exten: Text,
    app: Text,
    app_data: Text,
    created: Time,
    /// The time of the event that carried it (else the creation time).
    when: Time,
    linkedid: Option<Text>,
}

impl Snapshot {
    fn of(ch: Channel, at: Option<Time>) -> Snapshot {
        let Channel {
            id,
            name,
            state,
            caller,
            connected,
            dialplan,
            created,
            channelvars,
        } = ch;
        let created = created
            .or(at)
            .unwrap_or_else(|| DateTime::UNIX_EPOCH.fixed_offset());
        // Stasis' data names the application; other applications' data is not kept.
        let app_data = if dialplan.app_name == "Stasis" {
            dialplan.app_data
        } else {
            Text::default()
        };
        Snapshot {
            id,
            name,
            state: ChanState::parse(&state),
            caller,
            connected,
            exten: dialplan.exten,
            app: dialplan.app_name,
            app_data,
            created,
            when: at.unwrap_or(created),
            linkedid: channelvars.linkedid.filter(|l| !l.is_empty()),
        }
    }
}
