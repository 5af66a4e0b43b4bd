//! What Asterisk did, as the chaos test's own ARI application sees it: every channel
//! and bridge of the PBX (`subscribeAll`), in the order Asterisk reports them, kept
//! after they end so that a party's end can be explained afterwards.
//!
//! For each channel: its states and dialplan applications, the bridge it was last in and
//! who shared it, whom it dialed and who dialed it, its hangup requests, and when it was
//! destroyed. Two channel variables are read over ARI as the channel appears (and again
//! as it enters a bridge): `CHANNEL(pjsip,call-id)` ties a PJSIP channel to a test
//! phone's call, and `CHANNEL(linkedid)` gives the UAPI id of the call it belongs to.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use uapid::asterisk::ari::ws::{spawn_stoppable, AriNotice, AriWsConfig};
use uapid::asterisk::ari::AriRest;
use uapid::calls::phone_call_id;
use uapid::config::Settings;

use super::clock;

/// The last bridge a channel entered, and every channel that was in it with it.
#[derive(Debug, Clone)]
pub struct Stint {
    pub bridge: String,
    pub class: String,
    pub technology: String,
    pub creator: String,
    pub entered: Instant,
    pub mates: BTreeSet<String>,
}

impl Stint {
    /// A parking lot or a conference: its members do not end with each other.
    pub fn independent(&self) -> bool {
        self.class == "parking"
            || self.technology == "holding_bridge"
            || self.creator == "ConfBridge"
            || self.technology == "softmix" && self.creator != "Stasis"
    }
}

#[derive(Debug, Clone)]
pub struct Chan {
    pub id: String,
    pub name: String,
    pub created: Instant,
    pub state: String,
    pub ever_up: bool,
    /// The dialplan application now (or last), and its data.
    pub app: String,
    pub app_data: String,
    /// When its current application began.
    pub app_since: Instant,
    /// Every application it ran and its data, in order (repeats collapsed).
    pub apps: Vec<(String, String)>,
    /// The SIP Call-ID of a PJSIP channel.
    pub sip: Option<String>,
    /// UAPI ids of the calls it belonged to (from each linkedid read), oldest first.
    pub call_ids: Vec<String>,
    pub bridge: Option<String>,
    pub stint: Option<Stint>,
    /// Whether it was ever in a parking lot.
    pub parked_ever: bool,
    /// The channel whose Dial() rang this one.
    pub dialed_by: Option<String>,
    /// When a Dial() of its own last ended unanswered (BUSY, NOANSWER, ...), and how.
    pub dial_failed: Option<(Instant, String)>,
    pub hangup_requested: Option<Instant>,
    /// Whether, when its hangup began, no other live channel shared a call with it.
    pub alone_at_end: Option<bool>,
    pub destroyed: Option<(Instant, i64)>,
    /// Its events, one line each, for failure reports.
    pub log: Vec<String>,
}

impl Chan {
    fn new(id: &str, name: &str) -> Chan {
        Chan {
            id: id.to_string(),
            name: name.to_string(),
            created: Instant::now(),
            state: String::new(),
            ever_up: false,
            app: String::new(),
            app_data: String::new(),
            app_since: Instant::now(),
            apps: Vec::new(),
            sip: None,
            call_ids: Vec::new(),
            bridge: None,
            stint: None,
            parked_ever: false,
            dialed_by: None,
            dial_failed: None,
            hangup_requested: None,
            alone_at_end: None,
            destroyed: None,
            log: Vec::new(),
        }
    }

    pub fn alive(&self) -> bool {
        self.destroyed.is_none()
    }

    /// `0003*210` for `PJSIP/0003_210-0000001a`.
    pub fn extension(&self) -> Option<String> {
        let rest = self.name.strip_prefix("PJSIP/")?;
        let ep = rest.rsplit_once('-')?.0;
        let (org, short) = ep.split_once('_')?;
        Some(format!("{org}*{short}"))
    }

    pub fn is_trunk(&self) -> bool {
        self.name.starts_with("PJSIP/trunk-")
    }

    /// The other half of a Local channel (`;1` and `;2`).
    pub fn local_partner_name(&self) -> Option<String> {
        let base = self.name.strip_prefix("Local/")?;
        if let Some(b) = base.strip_suffix(";1") {
            Some(format!("Local/{b};2"))
        } else {
            base.strip_suffix(";2").map(|b| format!("Local/{b};1"))
        }
    }

    pub fn in_call(&self, id: &str) -> bool {
        self.call_ids.iter().any(|c| c == id)
    }

    fn note(&mut self, line: String) {
        if self.log.len() < 200 {
            self.log.push(format!("{:8.3} {line}", clock()));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Br {
    pub id: String,
    pub class: String,
    pub technology: String,
    pub creator: String,
    pub channels: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ObsState {
    pub chans: HashMap<String, Chan>,
    pub bridges: HashMap<String, Br>,
    /// SIP Call-ID → channel id.
    pub by_sip: HashMap<String, String>,
    /// Events applied so far.
    pub events: u64,
    pub connected: bool,
    /// Websocket losses (each one a gap in what the test saw).
    pub gaps: Vec<String>,
}

impl ObsState {
    pub fn chan(&self, id: &str) -> Option<&Chan> {
        self.chans.get(id)
    }

    pub fn by_sip(&self, sip: &str) -> Option<&Chan> {
        self.chans.get(self.by_sip.get(sip)?)
    }

    pub fn live(&self) -> impl Iterator<Item = &Chan> {
        self.chans.values().filter(|c| c.alive())
    }

    fn upsert(&mut self, ch: &Value) -> Option<&mut Chan> {
        let id = ch["id"].as_str()?;
        let name = ch["name"].as_str().unwrap_or_default();
        let c = self
            .chans
            .entry(id.to_string())
            .or_insert_with(|| Chan::new(id, name));
        if c.name != name && !name.is_empty() {
            c.name = name.to_string();
        }
        if let Some(s) = ch["state"].as_str() {
            c.state = s.to_string();
            c.ever_up |= s == "Up";
        }
        let app = ch["dialplan"]["app_name"].as_str().unwrap_or_default();
        if !app.is_empty() {
            if c.app != app {
                c.app_since = Instant::now();
            }
            c.app = app.to_string();
            c.app_data = ch["dialplan"]["app_data"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let entry = (c.app.clone(), c.app_data.clone());
            if c.apps.last() != Some(&entry) {
                c.apps.push(entry);
            }
        }
        self.chans.get_mut(id)
    }

    fn bridge_of(b: &Value) -> Br {
        let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
        Br {
            id: s("id"),
            class: s("bridge_class"),
            technology: s("technology"),
            creator: s("creator"),
            channels: b["channels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Applies one event; returns channel ids whose variables should be read again.
    fn apply(&mut self, ev: &Value) -> Vec<String> {
        self.events += 1;
        let kind = ev["type"].as_str().unwrap_or_default();
        let mut refetch = Vec::new();
        let chan = &ev["channel"];
        let line = describe(ev);
        match kind {
            "ChannelCreated" => {
                if let Some(c) = self.upsert(chan) {
                    c.created = Instant::now();
                    c.note(line);
                    refetch.push(c.id.clone());
                }
            }
            "ChannelStateChange"
            | "ChannelDialplan"
            | "ChannelConnectedLine"
            | "ChannelCallerId" => {
                if let Some(c) = self.upsert(chan) {
                    if kind != "ChannelConnectedLine" && kind != "ChannelCallerId" {
                        c.note(line);
                    }
                    if c.sip.is_none() && c.name.starts_with("PJSIP/") {
                        refetch.push(c.id.clone());
                    }
                }
            }
            "ChannelHangupRequest" => {
                let alone = self.alone(chan["id"].as_str().unwrap_or_default());
                if let Some(c) = self.upsert(chan) {
                    c.note(line);
                    if c.hangup_requested.is_none() {
                        c.hangup_requested = Some(Instant::now());
                        c.alone_at_end = Some(alone);
                    }
                }
            }
            "ChannelDestroyed" => {
                let alone = self.alone(chan["id"].as_str().unwrap_or_default());
                let cause = ev["cause"].as_i64().unwrap_or(-1);
                if let Some(c) = self.upsert(chan) {
                    c.note(line);
                    c.destroyed = Some((Instant::now(), cause));
                    c.alone_at_end.get_or_insert(alone);
                }
            }
            "ChannelEnteredBridge" => {
                let br = Self::bridge_of(&ev["bridge"]);
                let id = chan["id"].as_str().unwrap_or_default().to_string();
                for m in &br.channels {
                    if m == &id {
                        continue;
                    }
                    if let Some(mc) = self.chans.get_mut(m) {
                        if let Some(s) = mc.stint.as_mut().filter(|s| s.bridge == br.id) {
                            s.mates.insert(id.clone());
                        }
                    }
                }
                if let Some(c) = self.upsert(chan) {
                    c.note(line);
                    c.bridge = Some(br.id.clone());
                    c.parked_ever |= br.class == "parking";
                    c.stint = Some(Stint {
                        bridge: br.id.clone(),
                        class: br.class.clone(),
                        technology: br.technology.clone(),
                        creator: br.creator.clone(),
                        entered: Instant::now(),
                        mates: br.channels.iter().filter(|m| **m != id).cloned().collect(),
                    });
                }
                refetch.extend(br.channels.iter().cloned());
                self.bridges.insert(br.id.clone(), br);
            }
            "ChannelLeftBridge" => {
                let br = Self::bridge_of(&ev["bridge"]);
                if let Some(c) = self.upsert(chan) {
                    c.note(line);
                    if c.bridge.as_deref() == Some(br.id.as_str()) {
                        c.bridge = None;
                    }
                }
                self.bridges.insert(br.id.clone(), br);
            }
            "BridgeCreated" | "BridgeMerged" => {
                let br = Self::bridge_of(&ev["bridge"]);
                self.bridges.insert(br.id.clone(), br);
            }
            "BridgeDestroyed" => {
                if let Some(id) = ev["bridge"]["id"].as_str() {
                    self.bridges.remove(id);
                }
            }
            "Dial" => {
                let peer = ev["peer"]["id"].as_str().unwrap_or_default().to_string();
                let caller = ev["caller"]["id"].as_str().map(str::to_string);
                let status = ev["dialstatus"].as_str().unwrap_or_default().to_string();
                if let Some(p) = self.upsert(&ev["peer"]) {
                    p.note(line.clone());
                    if caller.is_some() {
                        p.dialed_by = caller.clone();
                    }
                }
                if caller.is_some() {
                    if let Some(c) = self.upsert(&ev["caller"]) {
                        c.note(line);
                        let failed = !matches!(
                            status.as_str(),
                            "" | "RINGING" | "PROGRESS" | "PROCEEDING" | "ANSWER"
                        );
                        if failed {
                            c.dial_failed = Some((Instant::now(), status));
                        }
                    }
                }
                refetch.push(peer);
            }
            "ChannelHold" | "ChannelUnhold" => {
                if let Some(c) = self.upsert(chan) {
                    c.note(line);
                }
            }
            _ => {}
        }
        refetch
    }

    /// Whether no other live channel shares a call with `id`.
    fn alone(&self, id: &str) -> bool {
        let Some(c) = self.chans.get(id) else {
            return true;
        };
        !self
            .live()
            .any(|o| o.id != c.id && o.call_ids.iter().any(|x| c.in_call(x)))
    }

    fn set_vars(&mut self, id: &str, sip: Option<String>, linkedid: Option<String>) {
        let Some(c) = self.chans.get_mut(id) else {
            return;
        };
        if let Some(s) = sip.filter(|s| !s.is_empty()) {
            if c.sip.is_none() {
                c.sip = Some(s.clone());
                self.by_sip.insert(s, id.to_string());
            }
        }
        if let Some(l) = linkedid.filter(|s| !s.is_empty()) {
            let call = phone_call_id(&l);
            if !c.in_call(&call) {
                c.call_ids.push(call);
            }
        }
    }
}

/// One line for an event: its type, the channel (name, state, application), the bridge.
fn describe(ev: &Value) -> String {
    let ch = |c: &Value| {
        format!(
            "{} [{} {}({})]",
            c["name"].as_str().unwrap_or_default(),
            c["state"].as_str().unwrap_or_default(),
            c["dialplan"]["app_name"].as_str().unwrap_or_default(),
            c["dialplan"]["app_data"].as_str().unwrap_or_default(),
        )
    };
    let kind = ev["type"].as_str().unwrap_or_default();
    let mut s = kind.to_string();
    if ev.get("caller").is_some() {
        s += &format!(" caller {}", ch(&ev["caller"]));
    }
    if ev.get("peer").is_some() {
        s += &format!(
            " peer {} status {:?}",
            ch(&ev["peer"]),
            ev["dialstatus"].as_str().unwrap_or_default()
        );
    }
    if ev.get("channel").is_some() {
        s += &format!(" {}", ch(&ev["channel"]));
    }
    if let Some(b) = ev.get("bridge") {
        s += &format!(
            " bridge {} {:?} {}/{}/{} members {}",
            b["id"].as_str().unwrap_or_default(),
            b["name"].as_str().unwrap_or_default(),
            b["bridge_class"].as_str().unwrap_or_default(),
            b["technology"].as_str().unwrap_or_default(),
            b["creator"].as_str().unwrap_or_default(),
            b["channels"]
        );
    }
    if let Some(c) = ev.get("cause") {
        s += &format!(" cause {c}");
    }
    if let Some(soft) = ev.get("soft") {
        s += &format!(" soft {soft}");
    }
    s
}

/// The test's ARI application and the picture it keeps.
pub struct Observer {
    pub state: Arc<Mutex<ObsState>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    changes: watch::Receiver<u64>,
}

impl Observer {
    /// Connects the application and waits (bounded) until Asterisk delivers its events.
    pub async fn start() -> Observer {
        let s = Settings::defaults();
        let app = format!("uapid-chaos-{}", std::process::id());
        let rest = AriRest::new(
            &s.asterisk.ari_url,
            &s.asterisk.ari_user,
            s.asterisk.ari_password.clone(),
        );
        let cfg = AriWsConfig {
            base_url: s.asterisk.ari_url.clone(),
            user: s.asterisk.ari_user.clone(),
            password: s.asterisk.ari_password.clone(),
            app: app.clone(),
            keepalive: Default::default(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let (_connected, ws_task) = spawn_stoppable(cfg, rest.clone(), tx, stop_rx);
        let state = Arc::new(Mutex::new(ObsState::default()));
        let (changed_tx, changes) = watch::channel(0u64);
        let task = tokio::spawn(consume(
            rx,
            state.clone(),
            rest.clone(),
            app.clone(),
            changed_tx,
            ws_task,
        ));
        let obs = Observer {
            state,
            stop,
            task,
            changes,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !obs.read(|s| s.connected) {
            assert!(
                Instant::now() < deadline,
                "the chaos test's ARI application did not connect"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        obs
    }

    pub fn read<R>(&self, f: impl FnOnce(&ObsState) -> R) -> R {
        f(&self.state.lock().unwrap())
    }

    /// Waits until `f` holds, or `bound` has passed (then false). Wakes on each event.
    pub async fn wait_for(&self, bound: Duration, mut f: impl FnMut(&ObsState) -> bool) -> bool {
        let mut rx = self.changes.clone();
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if self.read(&mut f) {
                return true;
            }
            let step = tokio::time::sleep(Duration::from_millis(50));
            tokio::select! {
                _ = rx.changed() => {}
                _ = step => {}
                _ = tokio::time::sleep_until(deadline) => return self.read(&mut f),
            }
        }
    }

    /// Reads a channel's variables again now (e.g. its linkedid after a bridge).
    pub async fn refresh(&self, id: &str) {
        let rest = uapid_rest();
        let (sip, linkedid) = read_vars(&rest, id).await;
        self.state.lock().unwrap().set_vars(id, sip, linkedid);
    }

    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
}

impl Drop for Observer {
    /// A failed test still closes its websocket (cleanly, while uapid stops).
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn uapid_rest() -> AriRest {
    crate::helpers::ari()
}

async fn read_var(rest: &AriRest, id: &str, var: &str) -> Option<String> {
    let v: Value = rest
        .get(&format!("/channels/{id}/variable?variable={var}"))
        .await
        .ok()?;
    v["value"].as_str().map(str::to_string)
}

async fn read_vars(rest: &AriRest, id: &str) -> (Option<String>, Option<String>) {
    let sip = read_var(rest, id, "CHANNEL(pjsip,call-id)").await;
    let linkedid = read_var(rest, id, "CHANNEL(linkedid)").await;
    (sip, linkedid)
}

async fn consume(
    mut rx: mpsc::UnboundedReceiver<AriNotice>,
    state: Arc<Mutex<ObsState>>,
    rest: AriRest,
    app: String,
    changed: watch::Sender<u64>,
    ws_task: tokio::task::JoinHandle<()>,
) {
    while let Some(n) = rx.recv().await {
        match n {
            AriNotice::Connected => {
                // Only the events uapid reads (ChannelVarset would be most of the rest).
                let _ = rest.set_event_filter(&app).await;
                let mut s = state.lock().unwrap();
                if s.events > 0 {
                    s.gaps.push(format!("{:.3}: reconnected", clock()));
                }
                s.connected = true;
            }
            AriNotice::Disconnected(why) => {
                let mut s = state.lock().unwrap();
                s.connected = false;
                s.gaps.push(format!("{:.3}: {why}", clock()));
            }
            AriNotice::Text(t) => {
                let Ok(ev) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                let refetch = state.lock().unwrap().apply(&ev);
                for id in refetch {
                    let (rest, state) = (rest.clone(), state.clone());
                    tokio::spawn(async move {
                        let (sip, linkedid) = read_vars(&rest, &id).await;
                        state.lock().unwrap().set_vars(&id, sip, linkedid);
                    });
                }
                changed.send_modify(|n| *n += 1);
            }
        }
    }
    ws_task.abort();
}
