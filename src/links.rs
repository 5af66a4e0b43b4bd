//! uapid's links to Asterisk: the ARI events websocket and the AMI sessions, and the
//! tasks that turn what they hear into the tracker's inputs, in order.
//!
//! ```text
//! ARI websocket ──▶ forward_ari ──┐ (each connect: event filter, then a snapshot)
//!                                 ├──▶ tracker task (single owner) ──▶ Calls (readers)
//! AMI session   ──▶ forward_ami ──┘ (each login: the ParkedCalls listing)
//! ```

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::asterisk::ami::client::TRACKED_EVENTS;
use crate::asterisk::ami::{AmiClient, AmiNotice, Message};
use crate::asterisk::ari::ws::AriNotice;
use crate::asterisk::ari::{AriRest, Bridge, Channel, Event};
use crate::calls::{Input, Note, HOLD_VAR, RECORDING_VAR};
use crate::config::AsteriskSettings;

/// The links, once started.
pub(crate) struct Links {
    /// AMI sessions for actions; the first also carries the events.
    pub ami_pool: Vec<AmiClient>,
    pub ari: AriRest,
    /// Set to true to close the ARI websocket cleanly.
    pub stop_ws: watch::Sender<bool>,
    pub ws_task: JoinHandle<()>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Connects to Asterisk; what it hears goes to `inputs` (the tracker's queue).
pub(crate) fn start(a: &AsteriskSettings, inputs: mpsc::UnboundedSender<Input>) -> Links {
    let ari = a.ari_rest();
    let mut tasks = Vec::new();

    // AMI: notices → inputs, stamped with the time they arrived.
    let (ami_tx, ami_rx) = mpsc::unbounded_channel();
    let (ami, ami_task) = AmiClient::spawn(a.ami(TRACKED_EVENTS), ami_tx);
    tasks.push(ami_task);
    tasks.push(tokio::spawn(forward_ami(
        ami_rx,
        inputs.clone(),
        ami.clone(),
    )));
    // The dialplan uapid needs, installed at each login and kept (see crate::dialplan).
    tasks.push(tokio::spawn(crate::dialplan::keep(
        ami.clone(),
        crate::dialplan::lines(a),
        Duration::from_secs(5),
    )));

    // ARI: websocket notices → parsed inputs; each connect triggers a snapshot.
    let (ari_tx, ari_rx) = mpsc::unbounded_channel();
    let (stop_ws, stop) = watch::channel(false);
    let (_ari_up, ws_task) =
        crate::asterisk::ari::ws::spawn_stoppable(a.ari_events(&a.app), ari.clone(), ari_tx, stop);
    let resync = Resync {
        rest: ari.clone(),
        ami: ami.clone(),
        out: inputs,
        app: a.app.clone(),
    };
    tasks.push(tokio::spawn(forward_ari(ari_rx, resync)));

    // More sessions for actions only: their events are filtered out at the PBX.
    let mut ami_pool = vec![ami];
    for _ in 1..a.ami_sessions.max(1) {
        let (client, task) = AmiClient::spawn(a.ami(&["uapid-none"]), mpsc::unbounded_channel().0);
        ami_pool.push(client);
        tasks.push(task);
    }
    Links {
        ami_pool,
        ari,
        stop_ws,
        ws_task,
        tasks,
    }
}

/// What a resynchronization needs.
#[derive(Clone)]
struct Resync {
    rest: AriRest,
    ami: AmiClient,
    out: mpsc::UnboundedSender<Input>,
    app: String,
}

async fn forward_ari(mut rx: mpsc::UnboundedReceiver<AriNotice>, r: Resync) {
    let mut snapshot: Option<JoinHandle<()>> = None;
    while let Some(n) = rx.recv().await {
        match n {
            AriNotice::Text(text) => match serde_json::from_str::<Event>(&text) {
                Ok(Event::Other) => {}
                Ok(ev) => {
                    let _ = r.out.send(Input::AriEvent(Box::new(ev)));
                }
                Err(e) => tracing::debug!("unreadable ARI event: {e}"),
            },
            AriNotice::Connected => {
                let _ = r.out.send(Input::AriConnected);
                if let Some(s) = snapshot.take() {
                    s.abort();
                }
                snapshot = Some(tokio::spawn(r.clone().run()));
            }
            AriNotice::Disconnected(why) => {
                let _ = r.out.send(Input::AriDisconnected(why));
            }
        }
    }
}

impl Resync {
    /// After an ARI connect: narrows the events to those uapid reads, takes the snapshot
    /// of every channel and bridge (retried a few times), then reads back when uapid's
    /// holds began.
    async fn run(self) {
        if let Err(e) = self.rest.set_event_filter(&self.app).await {
            tracing::debug!("ARI event filter not set: {e}");
        }
        for attempt in 0..20u32 {
            match tokio::try_join!(self.rest.channels(), self.rest.bridges()) {
                Ok((channels, bridges)) => {
                    let held = self.unbridged_in_app(&channels, &bridges);
                    let all: Vec<(String, String)> = channels
                        .iter()
                        .map(|c| (c.id.to_string(), c.name.to_string()))
                        .collect();
                    // Answered before uapid started, and ari.conf gives no answer time.
                    let up: Vec<(String, String)> = channels
                        .iter()
                        .filter(|c| c.state == "Up" && c.answered_var().is_none())
                        .map(|c| (c.id.to_string(), c.name.to_string()))
                        .collect();
                    let _ = self.out.send(Input::AriSnapshot { channels, bridges });
                    self.read_back(held, all).await;
                    self.answer_times(up).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!("ARI snapshot failed (attempt {attempt}): {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Channels in uapid's application and in no bridge: those uapid may hold (the
    /// tracker decides; this only finds whose hold time to read).
    fn unbridged_in_app(&self, channels: &[Channel], bridges: &[Bridge]) -> Vec<(String, String)> {
        channels
            .iter()
            .filter(|c| {
                c.dialplan.app_name == "Stasis"
                    && c.dialplan.app_data.split(',').next() == Some(self.app.as_str())
                    && !bridges.iter().any(|b| b.channels.contains(&c.id))
            })
            .map(|c| (c.id.to_string(), c.name.to_string()))
            .collect()
    }

    /// Reads back what uapid keeps on channels (AMI Getvar works on any channel): when
    /// its holds began (`held`: the channels it may hold), and its recordings (`all`).
    async fn read_back(&self, held: Vec<(String, String)>, all: Vec<(String, String)>) {
        if all.is_empty() {
            return;
        }
        let mut up = self.ami.connected_watch();
        let _ = tokio::time::timeout(Duration::from_secs(5), up.wait_for(|c| *c)).await;
        for (id, name) in held {
            let Some(v) = self.getvar(&name, HOLD_VAR).await else {
                continue;
            };
            if let Some(at) = v.trim().parse::<i64>().ok().and_then(local_time) {
                let _ = self.out.send(Input::Note(Note::Held { channel: id, at }));
            }
        }
        for (id, name) in all {
            let Some(v) = self.getvar(&name, RECORDING_VAR).await else {
                continue;
            };
            let Some((secs, ext)) = v.trim().split_once(',') else {
                continue;
            };
            if let Some(at) = secs.parse::<i64>().ok().and_then(local_time) {
                let extension = ext.to_string();
                let _ = self.out.send(Input::Note(Note::Recording {
                    channel: id,
                    extension,
                    at,
                }));
            }
        }
    }

    /// When channels already up were answered: the CDR knows (AMI Getvar evaluates
    /// `CDR(answer,u)` on the channel). Without it the creation time stands in.
    async fn answer_times(&self, up: Vec<(String, String)>) {
        for (id, name) in up {
            let Some(v) = self.getvar(&name, "CDR(answer,u)").await else {
                continue;
            };
            let secs = v.trim().parse::<f64>().ok().filter(|s| *s > 0.0);
            if let Some(at) = secs.and_then(|s| local_time(s as i64)) {
                let _ = self
                    .out
                    .send(Input::Note(Note::Answered { channel: id, at }));
            }
        }
    }

    async fn getvar(&self, channel: &str, var: &str) -> Option<String> {
        let get = Message::new()
            .with("Action", "Getvar")
            .with("Channel", channel)
            .with("Variable", var);
        let reply = self.ami.request(get).await.ok()?;
        reply.response.get("Value").map(str::to_string)
    }
}

/// Unix seconds as a time in the machine's zone.
fn local_time(secs: i64) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let at = chrono::DateTime::from_timestamp(secs, 0)?;
    Some(at.with_timezone(&chrono::Local).fixed_offset())
}

async fn forward_ami(
    mut rx: mpsc::UnboundedReceiver<AmiNotice>,
    out: mpsc::UnboundedSender<Input>,
    ami: AmiClient,
) {
    while let Some(n) = rx.recv().await {
        match n {
            AmiNotice::Connected => {
                let _ = out.send(Input::AmiConnected);
                // The listings' events reach the tracker through this same stream, in
                // order: what is parked, and each channel's linkedid.
                let ami = ami.clone();
                tokio::spawn(async move {
                    for list in ["ParkedCalls", "CoreShowChannels"] {
                        let action = Message::new().with("Action", list);
                        if let Err(e) = ami.send(action).await {
                            tracing::warn!("AMI {list} failed: {e}");
                        }
                    }
                });
            }
            AmiNotice::Event(m) => {
                let now = chrono::Local::now().fixed_offset();
                let _ = out.send(Input::AmiEvent(m, now));
            }
            AmiNotice::Disconnected(why) => {
                let _ = out.send(Input::AmiDisconnected(why));
            }
        }
    }
}
