//! Resynchronization: after each ARI connect, the snapshot of every channel and bridge
//! replaces what the tracker believed, except what live events have already told it
//! since the connect (they are newer than the snapshot).

use chrono::DateTime;
use rustc_hash::FxHashSet as HashSet;

use super::state::*;
use super::tracker::Tracker;
use crate::asterisk::ari::model::{Bridge, Channel, Text};

/// What a resynchronization has seen since it began.
#[derive(Debug, Default)]
pub(super) struct Resync {
    pub touched: HashSet<Text>,
    pub gone: HashSet<Text>,
    pub bridges_touched: HashSet<Text>,
    pub bridges_gone: HashSet<Text>,
}

impl Tracker {
    pub(super) fn apply_snapshot(&mut self, channels: Vec<Channel>, bridges: Vec<Bridge>) {
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
        channels.sort_by(|a, b| {
            let epoch = DateTime::UNIX_EPOCH.fixed_offset();
            let at = |c: &Channel| c.created.unwrap_or(epoch);
            creation_order((&at(a), &a.id), (&at(b), &b.id))
        });
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
