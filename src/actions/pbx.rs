//! The narrow handle actions have on the PBX: the few operations uapid performs, each
//! named for what it does, over a pool of AMI sessions and ARI's REST interface.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::PbxError;
use super::input::CallerId;
use crate::asterisk::ami::{AmiClient, AmiReply, Message};
use crate::asterisk::ari::AriRest;
use crate::config::{AsteriskSettings, Extension};
use crate::dialplan::Line;

/// The dialplan contexts and names uapid relies on (see README, "What uapid needs").
#[derive(Debug, Clone)]
pub struct PbxNames {
    pub app: String,
    pub dial_context: String,
    pub stasis_context: String,
    pub voicemail_context: String,
    pub spy_context: String,
    pub conference_context: String,
    pub dial_helper_context: String,
    pub recordings_dir: String,
    pub parking_lot: String,
    pub parked_context: String,
}

impl PbxNames {
    pub fn from_settings(a: &AsteriskSettings) -> PbxNames {
        PbxNames {
            app: a.app.clone(),
            dial_context: a.dial_context.clone(),
            stasis_context: a.stasis_context.clone(),
            voicemail_context: a.voicemail_context.clone(),
            spy_context: a.spy_context.clone(),
            conference_context: a.conference_context.clone(),
            dial_helper_context: a.dial_helper_context.clone(),
            recordings_dir: a.recordings_dir.clone(),
            parking_lot: a.parking_lot.clone(),
            parked_context: a.parked_context.clone(),
        }
    }
}

/// Who an originate rings.
#[derive(Clone, Copy)]
pub enum Callee<'a> {
    /// A phone terminal, rung directly at its endpoint.
    Phone(&'a Extension),
    /// A number, dialed through the PBX's dial context as its own calls are (a Local
    /// channel), so the PBX's routes and trunks apply.
    Number(&'a str),
}

/// A phone to ring for an originate: who, how long, and what it shows.
pub struct Ring<'a> {
    pub callee: Callee<'a>,
    pub wait_ms: u64,
    pub caller_id: Option<&'a CallerId>,
    /// The id the new channel gets (also its call's linkedid).
    pub channel_id: &'a str,
}

pub struct Pbx {
    /// The AMI session that carries the events; its link is the PBX link.
    events: AmiClient,
    /// Dialplan look-ups that matched, and when (see [`Pbx::dialplan_matches`]).
    matched: Mutex<HashMap<(String, String), Instant>>,
    /// Held while the lot's context is looked up ([`Pbx::is_lot_context`]).
    lot_lookup: tokio::sync::Mutex<()>,
    /// Every AMI session actions may use (`events` first).
    pool: Vec<AmiClient>,
    next: AtomicUsize,
    ari: AriRest,
    names: PbxNames,
    /// The dialplan uapid installs (see `crate::dialplan`).
    own_dialplan: Vec<Line>,
}

impl Pbx {
    /// `pool`: the AMI sessions, the one that carries the events first.
    pub fn new(
        pool: Vec<AmiClient>,
        ari: AriRest,
        names: PbxNames,
        own_dialplan: Vec<Line>,
    ) -> Pbx {
        let events = pool.first().expect("one AMI session").clone();
        Pbx {
            own_dialplan,
            events,
            matched: Mutex::default(),
            lot_lookup: tokio::sync::Mutex::new(()),
            pool,
            next: AtomicUsize::new(0),
            ari,
            names,
        }
    }

    pub fn names(&self) -> &PbxNames {
        &self.names
    }

    /// The channel an originate to `callee` creates.
    fn dial_string(&self, callee: Callee<'_>) -> String {
        match callee {
            Callee::Phone(ext) => format!("PJSIP/{}", ext.endpoint),
            Callee::Number(n) => format!("Local/{n}@{}", self.names.dial_context),
        }
    }

    /// An AMI action that must succeed, on the next connected session of the pool (the
    /// events' session when that one is down, so the action fails as the link is down).
    async fn ami(&self, action: Message) -> Result<AmiReply, PbxError> {
        Ok(self.pick_ami().request(action).await?)
    }

    fn pick_ami(&self) -> &AmiClient {
        if !self.events.is_connected() || self.pool.is_empty() {
            return &self.events;
        }
        let n = self.pool.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.pool[(start + i) % n])
            .find(|c| c.is_connected())
            .unwrap_or(&self.events)
    }

    /// Whether `context` has an extension matching `exten` (AMI ShowDialPlan, which
    /// follows includes and patterns). When the AMI user may not read the dialplan,
    /// uapid cannot tell and says yes (`uapid doctor` reports it).
    async fn lookup(&self, context: &str, exten: &str) -> Result<bool, PbxError> {
        let show = Message::new()
            .with("Action", "ShowDialPlan")
            .with("Context", context)
            .with("Extension", exten);
        match self.ami(show).await {
            Ok(reply) => Ok(reply
                .events
                .iter()
                .any(|e| e.event() == Some("ListDialplan"))),
            Err(PbxError::Refused(m)) if m.starts_with("Did not find") => Ok(false),
            Err(PbxError::Refused(m)) if m.to_ascii_lowercase().contains("permission") => {
                tracing::warn!(
                    "the AMI user may not read the dialplan: destinations are not checked"
                );
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the dial context matches a destination, so that nobody is sent to a
    /// number the dialplan would hang up. A match is remembered for ten seconds.
    pub async fn dialplan_matches(&self, context: &str, exten: &str) -> Result<bool, PbxError> {
        const REMEMBER: Duration = Duration::from_secs(10);
        let key = (context.to_string(), exten.to_string());
        {
            let m = self.matched.lock().unwrap_or_else(|e| e.into_inner());
            if m.get(&key).is_some_and(|at| at.elapsed() < REMEMBER) {
                return Ok(true);
            }
        }
        let found = self.lookup(context, exten).await?;
        if found {
            let mut m = self.matched.lock().unwrap_or_else(|e| e.into_inner());
            m.retain(|_, at| at.elapsed() < REMEMBER);
            m.insert(key, Instant::now());
        }
        Ok(found)
    }

    /// Whether `context` is the parking lot's context: the lot made the extension of
    /// `space` when it parked the call, so once one space was found there the context is
    /// known to be the lot's (for a minute). UnParks of 200 calls at once would
    /// otherwise each wait for a look-up of their own.
    pub async fn is_lot_context(&self, context: &str, space: &str) -> Result<bool, PbxError> {
        const REMEMBER: Duration = Duration::from_secs(60);
        let key = (context.to_string(), String::new());
        let known = || {
            let m = self.matched.lock().unwrap_or_else(|e| e.into_inner());
            m.get(&key).is_some_and(|at| at.elapsed() < REMEMBER)
        };
        if known() {
            return Ok(true);
        }
        // One look-up at a time: UnParks arriving together wait for the first one's
        // answer instead of each asking Asterisk.
        let _one = self.lot_lookup.lock().await;
        if known() {
            return Ok(true);
        }
        let found = self.lookup(context, space).await?;
        if found {
            let mut m = self.matched.lock().unwrap_or_else(|e| e.into_inner());
            m.insert(key, Instant::now());
        }
        Ok(found)
    }

    /// Fails unless `context` has `exten` now (not remembered: a dialplan reload wipes
    /// what uapid installed, and a Redirect into a missing context hangs the call up).
    /// uapid's own contexts are installed again when missing.
    pub async fn require_dialplan(&self, context: &str, exten: &str) -> Result<(), PbxError> {
        if self.lookup(context, exten).await? {
            return Ok(());
        }
        if self.own_dialplan.iter().any(|l| l.context == context) {
            crate::dialplan::install(self.pick_ami(), &self.own_dialplan).await?;
            if self.lookup(context, exten).await? {
                tracing::info!(
                    "uapid's dialplan was missing (a dialplan reload?); installed again"
                );
                return Ok(());
            }
        }
        Err(PbxError::Failed(format!(
            "the PBX's dialplan has no {exten} in context {context}; nothing was done (see uapid doctor)"
        )))
    }

    /// Parks `parkee` in the lot; on timeout the lot rings back `parker`'s dial string.
    pub async fn park(&self, parkee: &str, parker: &str, timeout_ms: u64) -> Result<(), PbxError> {
        self.ami(
            Message::new()
                .with("Action", "Park")
                .with("Channel", parkee)
                .with("TimeoutChannel", parker)
                .with("Timeout", timeout_ms.to_string())
                .with("Parkinglot", &self.names.parking_lot),
        )
        .await
        .map(drop)
    }

    /// Sends `channel` (and `extra` with it, in one step) to `context`/`exten`, priority 1.
    pub async fn redirect(
        &self,
        channel: &str,
        extra: Option<&str>,
        context: &str,
        exten: &str,
    ) -> Result<(), PbxError> {
        let mut m = Message::new()
            .with("Action", "Redirect")
            .with("Channel", channel);
        if let Some(x) = extra {
            m = m.with("ExtraChannel", x);
        }
        let m = m
            .with("Context", context)
            .with("Exten", exten)
            .with("Priority", "1");
        self.ami(m).await.map(drop)
    }

    /// Sets a channel variable.
    pub async fn set_var(&self, channel: &str, name: &str, value: &str) -> Result<(), PbxError> {
        self.ami(
            Message::new()
                .with("Action", "Setvar")
                .with("Channel", channel)
                .with("Variable", name)
                .with("Value", value),
        )
        .await
        .map(drop)
    }

    /// Rings a phone (asynchronously); when it answers it runs `app(data)`.
    pub async fn ring_into_app(
        &self,
        ring: Ring<'_>,
        app: &str,
        data: &str,
    ) -> Result<(), PbxError> {
        let m = self
            .originate(&ring)
            .with("Application", app)
            .with("Data", data);
        self.ami(m).await.map(drop)
    }

    /// Rings a phone (asynchronously); when it answers it dials `exten` in `context`.
    /// `vars` are set on the new channel.
    pub async fn ring_into_exten(
        &self,
        ring: Ring<'_>,
        context: &str,
        exten: &str,
        vars: &[String],
    ) -> Result<(), PbxError> {
        let mut m = self
            .originate(&ring)
            .with("Context", context)
            .with("Exten", exten)
            .with("Priority", "1");
        for v in vars {
            m = m.with("Variable", v);
        }
        self.ami(m).await.map(drop)
    }

    fn originate(&self, ring: &Ring<'_>) -> Message {
        let mut m = Message::new()
            .with("Action", "Originate")
            .with("Channel", self.dial_string(ring.callee))
            .with("Timeout", ring.wait_ms.to_string())
            .with("ChannelId", ring.channel_id)
            .with("Async", "true");
        if let Some(c) = ring.caller_id {
            m = m.with("CallerID", c.to_asterisk());
        }
        m
    }

    /// Rings a phone over ARI with `originator` as the new channel's originator (so it
    /// joins that channel's call from its first ring); on answer it dials `exten` in
    /// `context`.
    pub async fn ring_beside(
        &self,
        ring: Ring<'_>,
        originator: &str,
        context: &str,
        exten: &str,
    ) -> Result<(), PbxError> {
        self.ari_originate(ring, originator, context, exten, serde_json::json!({}))
            .await
    }

    /// ARI's originate: `ring` in the call of `originator`, into `context`/`exten`,
    /// with channel `variables` (a JSON object).
    async fn ari_originate(
        &self,
        ring: Ring<'_>,
        originator: &str,
        context: &str,
        exten: &str,
        variables: serde_json::Value,
    ) -> Result<(), PbxError> {
        let endpoint = self.dial_string(ring.callee);
        let timeout = (ring.wait_ms / 1000).max(1).to_string();
        let shown = ring.caller_id.map(CallerId::to_asterisk);
        let mut q: Vec<(&str, &str)> = vec![
            ("endpoint", &endpoint),
            ("context", context),
            ("extension", exten),
            ("priority", "1"),
            ("timeout", &timeout),
            ("originator", originator),
            ("channelId", ring.channel_id),
        ];
        if let Some(s) = &shown {
            q.push(("callerId", s));
        }
        let body = serde_json::json!({ "variables": variables });
        Ok(self.ari.post_json("/channels", &q, &body).await?)
    }

    /// Starts recording a channel, both directions mixed, into `file` (its extension
    /// names the format: `.wav`, or `.wav49`, which Asterisk writes as `.WAV`).
    pub async fn start_recording(&self, channel: &str, file: &str) -> Result<(), PbxError> {
        let m = Message::new()
            .with("Action", "MixMonitor")
            .with("Channel", channel)
            .with("File", file);
        self.ami(m).await.map(drop)
    }

    /// Stops the recording of a channel.
    pub async fn stop_recording(&self, channel: &str) -> Result<(), PbxError> {
        let m = Message::new()
            .with("Action", "StopMixMonitor")
            .with("Channel", channel);
        self.ami(m).await.map(drop)
    }

    /// Rings a phone over ARI, in the call of `originator`; on answer it runs uapid's
    /// spy context: ChanSpy on `target` (a channel name) with `options`.
    pub async fn ring_spy(
        &self,
        ring: Ring<'_>,
        originator: &str,
        target: &str,
        options: &str,
    ) -> Result<(), PbxError> {
        let vars = serde_json::json!({ "UAPID_SPY": target, "UAPID_SPY_OPTS": options });
        self.ari_originate(ring, originator, &self.names.spy_context, "s", vars)
            .await
    }

    /// Hangs a channel up; `false` when it was already gone.
    pub async fn hang_up(&self, channel: &str) -> Result<bool, PbxError> {
        match self.ari.hangup(channel).await {
            Ok(()) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a mixing bridge named `name`; returns its id.
    pub async fn create_bridge(&self, name: &str) -> Result<String, PbxError> {
        let v = self
            .ari
            .post("/bridges", &[("type", "mixing"), ("name", name)])
            .await?;
        v.get("id")
            .and_then(|i| i.as_str())
            .map(str::to_string)
            .ok_or_else(|| PbxError::Failed("ARI created a bridge without an id".into()))
    }

    /// Adds channels (ids, comma-separated) to a bridge.
    pub async fn bridge_add(&self, bridge: &str, channels: &str) -> Result<(), PbxError> {
        let path = format!("/bridges/{bridge}/addChannel");
        self.ari.post(&path, &[("channel", channels)]).await?;
        Ok(())
    }

    pub async fn bridge_remove(&self, bridge: &str, channel: &str) -> Result<(), PbxError> {
        let path = format!("/bridges/{bridge}/removeChannel");
        self.ari.post(&path, &[("channel", channel)]).await?;
        Ok(())
    }

    pub async fn destroy_bridge(&self, bridge: &str) -> Result<(), PbxError> {
        Ok(self.ari.delete(&format!("/bridges/{bridge}"), &[]).await?)
    }

    /// Plays music on hold to a channel (in uapid's Stasis application).
    pub async fn start_moh(&self, channel: &str) -> Result<(), PbxError> {
        self.ari
            .post(&format!("/channels/{channel}/moh"), &[])
            .await?;
        Ok(())
    }

    /// Stops the music on hold of a channel; a channel with no music is fine.
    pub async fn stop_moh(&self, channel: &str) -> Result<(), PbxError> {
        match self
            .ari
            .delete(&format!("/channels/{channel}/moh"), &[])
            .await
        {
            Err(e) if e.status() != Some(409) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// A fresh id for a channel uapid creates (also its call's linkedid).
pub fn new_channel_id() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS gives random bytes");
    let mut id = String::with_capacity(22);
    id.push_str("uapid-");
    for x in b {
        id.push_str(&format!("{x:02x}"));
    }
    id
}
