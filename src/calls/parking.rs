//! The tracker fed by AMI: the parking lot's events (ARI reports none), the
//! ParkedCalls listing that follows each AMI login, recordings (MixMonitor), and each
//! channel's linkedid (Newchannel, and the CoreShowChannels listing after each login),
//! which ARI's snapshots carry only when ari.conf asks for it.

use super::state::*;
use super::tracker::Tracker;
use crate::asterisk::ami::Message;
use crate::asterisk::ari::model::Text;

impl Tracker {
    pub(super) fn apply_ami(&mut self, m: &Message, at: Time) {
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
            "Newchannel" | "CoreShowChannel" => {
                if let (Some(u), Some(l)) = (m.get("Uniqueid"), m.get("Linkedid")) {
                    if !l.is_empty() {
                        self.ami_linkedid(u, l);
                    }
                }
            }
            "MixMonitorStart" => {
                if let Some(c) = m.get("Uniqueid").and_then(|u| self.channels.get_mut(u)) {
                    c.recording.get_or_insert(Box::new(Recording {
                        since: at,
                        extension: None,
                    }));
                }
            }
            "MixMonitorStop" => {
                if let Some(c) = m.get("Uniqueid").and_then(|u| self.channels.get_mut(u)) {
                    c.recording = None;
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
}
