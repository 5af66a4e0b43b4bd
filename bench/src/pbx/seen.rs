//! Asterisk's own word that an action is done: the AMI events `ParkedCall`,
//! `UnParkedCall` and `DialBegin`, noted by channel with when they arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use uapid::asterisk::ami::{AmiClient, AmiNotice};
use uapid::config::Settings;

use super::ami_config;

/// AMI events by (event, channel) with when they arrived.
#[derive(Clone, Default)]
pub struct Seen {
    at: Arc<Mutex<HashMap<(String, String), Instant>>>,
    notify: Arc<Notify>,
}

impl Seen {
    /// When `event` for `channel` arrived, waiting for it up to `within`.
    pub async fn wait(&self, event: &str, channel: &str, within: Duration) -> Option<Instant> {
        let key = (event.to_string(), channel.to_string());
        let end = tokio::time::Instant::now() + within;
        loop {
            let n = self.notify.notified();
            if let Some(t) = self.at.lock().unwrap().get(&key) {
                return Some(*t);
            }
            if tokio::time::timeout_at(end, n).await.is_err() {
                return None;
            }
        }
    }

    /// Forgets every event.
    pub fn clear(&self) {
        self.at.lock().unwrap().clear();
    }

    fn note(&self, event: String, channel: String, now: Instant) {
        self.at
            .lock()
            .unwrap()
            .entry((event, channel))
            .or_insert(now);
        self.notify.notify_waiters();
    }
}

/// An AMI session straight to Asterisk that notes the events in [`Seen`]; also used for
/// queries (`ParkedCalls`).
pub async fn listen(settings: &Settings) -> (AmiClient, Seen, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let events = ["ParkedCall", "UnParkedCall", "DialBegin"];
    let config = ami_config(settings, &settings.asterisk.ami_addr, &events);
    let (ami, task) = AmiClient::spawn(config, tx);
    let seen = Seen::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            if let AmiNotice::Event(m) = n {
                let now = Instant::now();
                let ev = m.event().unwrap_or("").to_string();
                let ch = match ev.as_str() {
                    "DialBegin" => m.get("Channel"),
                    _ => m.get("ParkeeChannel"),
                }
                .unwrap_or("")
                .to_string();
                s2.note(ev, ch, now);
            }
        }
    });
    let mut up = ami.connected_watch();
    let _ = tokio::time::timeout(Duration::from_secs(10), up.wait_for(|c| *c)).await;
    (ami, seen, task)
}
