//! The first invariant: no party hung up that no request or phone hung up.
//!
//! A test phone's answered call that the PBX ended (`End::HungUpThere`) must be explained
//! by what Asterisk reported about its channel (observer.rs) and by the requests uapid
//! accepted (a [`License`] for each 2xx, or 504, that may end a leg):
//!
//! - a DELETE of its call; a Park whose parker it was; a Transfer or TransferToVoicemail
//!   it made (transferFromNumber); a created call's `callDuration` running out;
//! - a channel it shared its last bridge with (not a parking lot, not a conference)
//!   ended, itself explained (as `Dial()` ends a call when one side hangs up), or the
//!   channel whose Dial() rang it ended;
//! - its own Dial() ended unanswered (a transferred party, the lot calling the parker
//!   back, an unpark or a click-to-call whose callee did not answer);
//! - it spied (ChanSpy) on a channel that ended; it ran a dialplan application that ends
//!   calls by itself (VoiceMail, ParkedCall, PickupChan), and was not bridged since;
//! - it was left alone in uapid's Stasis application, the last of its call;
//! - a PickUp's leg answered with nothing left to pick up;
//! - a test phone hung it up, or it was never answered.
//!
//! An explanation through another channel (its bridge's other side, its caller, the
//! channel it spied on, the rest of its call) holds only if that channel's end began
//! first and is itself explained: two channels ended by mistake do not explain each
//! other. Anything else is a lost call.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::sip_phone::End;

use super::observer::{Chan, ObsState};

#[derive(Debug, Clone)]
pub enum LicenseKind {
    /// DELETE: every leg of the call.
    HangUp,
    /// Park: the parker's leg (the view's extension).
    Parker(String),
    /// Transfer, TransferToVoicemail: the transferring party's leg (an extension number
    /// or a public number).
    Transferer(String),
    /// A created call's `callDuration`: every leg, once it has run out.
    Duration(Duration),
    /// PickUp: the leg rung at `sendCallTo` (a call of its own until it picks up), when
    /// there is nothing left to pick up once it answers.
    PickUpLeg(String),
}

/// What a request uapid accepted allows to end.
#[derive(Debug, Clone)]
pub struct License {
    pub kind: LicenseKind,
    /// The UAPI id of the call.
    pub call: String,
    /// The call's parties as the client listed them (extensions, public numbers): for
    /// channels whose call id the test could not read, and conference rooms, whose
    /// parties join one call from calls of their own.
    pub parties: Vec<String>,
    pub sent: Instant,
    pub answered: Instant,
    /// The request, for reports.
    pub what: String,
}

/// Whether channel `c` is the party `number` names (an extension, full or short, or a
/// public number: any trunk channel).
pub fn same_party(c: &Chan, number: &str) -> bool {
    let public = !number.contains('*') && number.len() >= 7;
    match c.extension() {
        Some(x) => x == number || (!public && x.rsplit('*').next() == Some(number)),
        None => c.is_trunk() && public,
    }
}

impl License {
    fn covers(&self, obs: &ObsState, c: &Chan, destroyed: Instant) -> bool {
        // The legs it acted on existed when uapid answered (give or take the observer's
        // lag); a created call's legs and a pickup's leg come after.
        let made_after = matches!(
            self.kind,
            LicenseKind::PickUpLeg(_) | LicenseKind::Duration(_)
        );
        if !made_after
            && (c.created > self.answered + Duration::from_secs(1) || destroyed < self.sent)
        {
            return false;
        }
        if let LicenseKind::PickUpLeg(to) = &self.kind {
            let rung =
                c.created >= self.sent && c.created <= self.answered + Duration::from_secs(1);
            let picked_nothing = c.stint.is_none() && last_app(c).is_none_or(|a| a == "PickupChan");
            return rung && picked_nothing && same_party(c, to);
        }
        // uapid shows the calls a conference joins as one call: hanging it up hangs up
        // every invite's legs (the room has one, in the sandbox).
        let joins = |call: &str| joins_conference(obs, call, false);
        let same_room = || {
            matches!(self.kind, LicenseKind::HangUp)
                && joins(&self.call)
                && c.call_ids.iter().any(|k| joins(k))
        };
        let in_call = c.in_call(&self.call)
            || ((c.call_ids.is_empty() || in_conference(obs, c))
                && self.parties.iter().any(|p| same_party(c, p)))
            || same_room();
        if !in_call {
            return false;
        }
        match &self.kind {
            LicenseKind::HangUp => true,
            LicenseKind::Parker(ext) => same_party(c, ext),
            LicenseKind::Transferer(n) => same_party(c, n),
            LicenseKind::Duration(d) => destroyed + Duration::from_secs(1) >= self.sent + *d,
            LicenseKind::PickUpLeg(_) => false,
        }
    }
}

/// Whether a channel of call `call` (one that is `live`, if asked) talks in a conference
/// room: uapid shows the calls a conference joins as one call.
pub fn joins_conference(obs: &ObsState, call: &str, live: bool) -> bool {
    obs.chans
        .values()
        .any(|x| (!live || x.alive()) && x.in_call(call) && in_conference(obs, x))
}

/// Whether a channel talks in a conference room: it runs ConfBridge, or it is bridged
/// with a Local channel whose other half does (a conference invite). Parties in one room
/// are one call in uapid, though each keeps the linkedid of its own invite.
pub fn in_conference(obs: &ObsState, c: &Chan) -> bool {
    let runs = |x: &Chan| x.apps.iter().any(|(a, _)| a == "ConfBridge");
    let via_local = |m: &String| {
        obs.chan(m)
            .and_then(Chan::local_partner_name)
            .and_then(|p| obs.chans.values().find(|x| x.name == p))
            .is_some_and(runs)
    };
    runs(c)
        || c.stint.as_ref().is_some_and(|s| {
            s.creator == "ConfBridge"
                || s.mates
                    .iter()
                    .any(|m| obs.chan(m).is_some_and(runs) || via_local(m))
        })
}

/// The last application a channel ran that was not the dialplan's `Hangup()` or a dial's
/// outgoing leg.
fn last_app(c: &Chan) -> Option<&str> {
    last_app_and_data(c).map(|(a, _)| a)
}

fn last_app_and_data(c: &Chan) -> Option<(&str, &str)> {
    c.apps
        .iter()
        .rev()
        .map(|(a, d)| (a.as_str(), d.as_str()))
        .find(|(a, _)| !matches!(*a, "Hangup" | "AppDial" | "AppDial2" | ""))
}

/// Applications that end the call by themselves when they are done or fail.
const SELF_ENDING: [&str; 3] = ["VoiceMail", "ParkedCall", "PickupChan"];

pub struct Judge<'a> {
    pub obs: &'a ObsState,
    pub licenses: &'a [License],
    /// How each test party ended, by SIP Call-ID.
    pub ends: &'a HashMap<String, End>,
}

impl Judge<'_> {
    /// Why channel `id` ended, if something explains it; `seen` guards cycles (two
    /// channels may not explain each other).
    pub fn explain(&self, id: &str, seen: &mut Vec<String>) -> Option<String> {
        if seen.iter().any(|s| s == id) {
            return None;
        }
        seen.push(id.to_string());
        let r = self.explain_inner(id, seen);
        seen.pop();
        r
    }

    fn explain_inner(&self, id: &str, seen: &mut Vec<String>) -> Option<String> {
        let c = self.obs.chan(id)?;
        let (destroyed, _) = c.destroyed?;
        if !c.ever_up {
            return Some(format!("{} was never answered", c.name));
        }
        if let Some(e) = c.sip.as_deref().and_then(|s| self.ends.get(s)) {
            if matches!(
                e,
                End::HungUpHere | End::CancelledHere | End::RejectedHere(_)
            ) {
                return Some(format!("{}: its phone hung up ({e:?})", c.name));
            }
        }
        if let Some(l) = self
            .licenses
            .iter()
            .find(|l| l.covers(self.obs, c, destroyed))
        {
            return Some(format!("{}: {:?} by {}", c.name, l.kind, l.what));
        }
        if let Some(partner) = c.local_partner_name() {
            let p = self.obs.chans.values().find(|x| x.name == partner);
            if let Some(p) = p.filter(|p| p.destroyed.is_some()) {
                if let Some(why) = self.explain(&p.id.clone(), seen) {
                    return Some(format!("{}: its other half ended: {why}", c.name));
                }
            }
        }
        // Another channel ended first, and its end is explained. "First" within half a
        // second: Asterisk publishes a hangup request after setting it, so the thread of
        // a channel that reacts (a ChanSpy, a Dial()) may report its own end before.
        let ended_first = |other: &str| {
            self.obs.chan(other).is_some_and(|o| {
                o.destroyed.is_some()
                    && first_end(o)
                        .zip(first_end(c))
                        .is_some_and(|(o, c)| o <= c + Duration::from_millis(500))
            })
        };
        if let Some(s) = c.stint.as_ref().filter(|s| !s.independent()) {
            for m in s.mates.iter().filter(|m| ended_first(m)) {
                if let Some(why) = self.explain(m, seen) {
                    return Some(format!("{}: bridged with one that ended: {why}", c.name));
                }
            }
        }
        if let Some(k) = c.dialed_by.as_deref().filter(|k| ended_first(k)) {
            if let Some(why) = self.explain(k, seen) {
                return Some(format!("{}: its caller ended: {why}", c.name));
            }
        }
        if let Some((at, status)) = &c.dial_failed {
            if c.stint.as_ref().is_none_or(|s| s.entered < *at) {
                return Some(format!("{}: its Dial() ended {status}", c.name));
            }
        }
        if let Some(("ChanSpy", data)) = last_app_and_data(c) {
            let target = data.split(',').next().unwrap_or_default();
            let spied = self.obs.chans.values().find(|x| x.name == target);
            if let Some(t) = spied.filter(|t| ended_first(&t.id)) {
                if let Some(why) = self.explain(&t.id.clone(), seen) {
                    return Some(format!("{}: the channel it spied on ended: {why}", c.name));
                }
            }
        }
        // Unless it was bridged since (then the bridge's other side explains it).
        if let Some(app) = last_app(c).filter(|a| SELF_ENDING.contains(a)) {
            if c.stint.as_ref().is_none_or(|s| s.entered < c.app_since) {
                return Some(format!("{}: {app}() ended it", c.name));
            }
        }
        // What Dial() would have done: the last of its call, the others' ends explained.
        if last_app(c) == Some("Stasis") && c.alone_at_end == Some(true) {
            let others: Vec<String> = self
                .obs
                .chans
                .values()
                .filter(|o| o.id != c.id && o.call_ids.iter().any(|x| c.in_call(x)))
                .filter(|o| ended_first(&o.id))
                .map(|o| o.id.clone())
                .collect();
            for o in others {
                if let Some(why) = self.explain(&o, seen) {
                    return Some(format!(
                        "{}: left alone in uapid's Stasis application after {why}",
                        c.name
                    ));
                }
            }
        }
        None
    }
}

/// When a channel's end began: its first hangup request, else its destruction.
fn first_end(c: &Chan) -> Option<Instant> {
    c.hangup_requested.or(c.destroyed.map(|d| d.0))
}

/// A channel's history and its last bridge's members' histories, for a report.
pub fn history(obs: &ObsState, id: &str) -> String {
    let Some(c) = obs.chan(id) else {
        return format!("(no channel {id})\n");
    };
    let mut s = format!(
        "channel {} ({}), sip {:?}, calls {:?}, apps {:?}, alone at end {:?}\n",
        c.name, c.id, c.sip, c.call_ids, c.apps, c.alone_at_end
    );
    for l in &c.log {
        s += &format!("    {l}\n");
    }
    let mut related: Vec<&str> = c
        .stint
        .iter()
        .flat_map(|st| st.mates.iter().map(String::as_str))
        .collect();
    related.extend(c.dialed_by.as_deref());
    let named = |name: &str| {
        obs.chans
            .values()
            .find(|x| x.name == name)
            .map(|x| x.id.as_str())
    };
    if let Some(("ChanSpy", data)) = last_app_and_data(c) {
        related.extend(named(data.split(',').next().unwrap_or_default()));
    }
    if let Some(p) = c.local_partner_name() {
        related.extend(named(&p));
    }
    for m in related {
        if let Some(mc) = obs.chan(m) {
            s += &format!(
                "  related {} ({}), calls {:?}\n",
                mc.name, mc.id, mc.call_ids
            );
            for l in &mc.log {
                s += &format!("      {l}\n");
            }
        }
    }
    s
}
