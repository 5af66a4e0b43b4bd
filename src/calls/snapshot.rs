//! A call as an action sees it: a copy of the tracker's facts about one call, taken under
//! the read lock, so an action plans without holding the lock across Asterisk round trips.
//! Every fact here comes from the tracker's own rules (leg ranking, parker, extension of
//! a channel), so an action acts on the legs List shows.

use std::sync::Arc;

use super::state::{ChanState, ParkedState, Party, Recording};
use super::tracker::Tracker;
use crate::config::Directory;

/// One leg of a call.
#[derive(Debug, Clone)]
pub struct Leg {
    pub id: String,
    pub name: String,
    pub party: Party,
    pub state: ChanState,
    pub bridge: Option<String>,
    pub parked: Option<ParkedState>,
    /// The extension that parked this leg, when it is parked.
    pub parked_by: Option<String>,
    /// Whether the leg runs in uapid's own Stasis application.
    pub in_stasis: bool,
    /// uapid keeps this leg on hold (music, out of the call's bridge).
    pub held_by_uapid: bool,
    /// This leg holds another party of the call.
    pub holding: bool,
    /// This leg listens in on another (BargeIn, Whisper, Monitor: ChanSpy).
    pub spying: bool,
    /// The recording running on this leg.
    pub recording: Option<Recording>,
    pub caller_name: String,
    pub caller_number: String,
}

impl Leg {
    pub fn is_extension(&self, number: &str) -> bool {
        matches!(&self.party, Party::Extension(n) if n == number)
    }

    /// What uapid's own state of the leg is, for the actions that accept or refuse it.
    pub fn uapid_state(&self) -> LegState {
        if self.parked.is_some() {
            LegState::Parked
        } else if self.spying {
            LegState::Spying
        } else if self.held_by_uapid {
            LegState::Held
        } else if self.holding {
            LegState::Holding
        } else if self.state != ChanState::Up {
            LegState::NotAnswered
        } else {
            LegState::Free
        }
    }
}

/// A leg as the actions see it: what uapid (or the lot) does with it now. Every action
/// checks the state of every leg it will touch, when it plans (under the call's lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// Answered and talking: an action may move it.
    Free,
    /// Not answered (ringing, dialing).
    NotAnswered,
    /// Waiting in the parking lot.
    Parked,
    /// Held by uapid: out of the call's bridge, hearing music.
    Held,
    /// Holding the other party (in the call's uapid bridge).
    Holding,
    /// Listening in on the call (BargeIn, Whisper, Monitor).
    Spying,
}

/// One call: its extensions (the views, "01" first), its legs and, per view, the leg
/// that speaks for it.
#[derive(Debug, Clone)]
pub struct CallSnapshot {
    pub id: Arc<str>,
    pub extensions: Vec<String>,
    pub legs: Vec<Leg>,
    /// The organization the call belongs to (its first extension's).
    pub organization: Option<u64>,
    /// For each extension (same order), the index in `legs` of its view's leg.
    view_legs: Vec<Option<usize>>,
}

impl CallSnapshot {
    /// Copies a call out of the tracker.
    pub fn take(t: &Tracker, call: &str) -> Option<CallSnapshot> {
        let c = t.call(call)?;
        let legs: Vec<Leg> = c
            .channels
            .iter()
            .filter_map(|id| t.channel(id))
            .map(|ch| {
                let parked = t.parked(&ch.id).cloned();
                Leg {
                    id: ch.id.to_string(),
                    name: ch.name.to_string(),
                    party: t.party_of(ch),
                    state: ch.state,
                    bridge: ch.bridge.as_ref().map(|b| b.to_string()),
                    parked_by: parked
                        .as_ref()
                        .and_then(|p| t.parker_extension(p))
                        .map(str::to_string),
                    parked,
                    in_stasis: t.in_uapid(ch),
                    held_by_uapid: t.held_by_uapid(ch),
                    holding: t.holding(ch),
                    spying: ch.app == "ChanSpy",
                    recording: ch.recording.as_deref().cloned(),
                    caller_name: ch.caller.name.to_string(),
                    caller_number: ch.caller.number.to_string(),
                }
            })
            .collect();
        let view_legs = c
            .extensions
            .iter()
            .map(|e| {
                let ch = t.view_leg(c, e)?;
                legs.iter().position(|l| l.id == ch.id.as_str())
            })
            .collect();
        Some(CallSnapshot {
            id: c.id.clone(),
            extensions: c.extensions.clone(),
            legs,
            organization: c.organization(),
            view_legs,
        })
    }

    /// The extension of view `n` (1 for "01").
    pub fn view_extension(&self, n: usize) -> Option<&str> {
        self.extensions.get(n.checked_sub(1)?).map(String::as_str)
    }

    /// The leg that speaks for `ext`'s view: the one List shows.
    pub fn leg_of(&self, ext: &str) -> Option<&Leg> {
        let i = self.extensions.iter().position(|e| e == ext)?;
        self.legs.get((*self.view_legs.get(i)?)?)
    }

    /// The party `leg` talks to: the one in its bridge, else the other answered leg (a
    /// phone listening in is nobody's party).
    pub fn peer_of(&self, leg: &Leg) -> Option<&Leg> {
        let other = |l: &&Leg| l.id != leg.id && l.party != leg.party && !l.spying;
        if let Some(b) = &leg.bridge {
            if let Some(p) = self
                .legs
                .iter()
                .filter(other)
                .find(|l| l.bridge.as_ref() == Some(b))
            {
                return Some(p);
            }
        }
        self.legs
            .iter()
            .filter(other)
            .find(|l| l.state == ChanState::Up && l.parked.is_none())
    }

    /// The recording `ext`'s view shows (one started for that view, or of unknown
    /// origin), and the leg it runs on.
    pub fn recording_for(&self, ext: &str) -> Option<&Leg> {
        self.legs.iter().find(|l| {
            l.recording
                .as_ref()
                .is_some_and(|r| r.extension.as_deref().is_none_or(|e| e == ext))
        })
    }

    /// The leg of a party named by number (full or short extension, or public number).
    pub fn leg_by_number(&self, dir: &Directory, number: &str) -> Option<&Leg> {
        let ext = dir
            .resolve_extension(number, self.organization)
            .map(|e| e.number.as_str());
        let same_public = |n: &str| n.trim_start_matches('+') == number.trim_start_matches('+');
        let matches = |l: &&Leg| match (&l.party, ext) {
            (Party::Extension(n), Some(e)) => n == e,
            (Party::Public(n), _) => same_public(n),
            _ => false,
        };
        let rank = |l: &&Leg| u8::from(l.state == ChanState::Up);
        self.legs.iter().filter(matches).max_by_key(rank)
    }
}
