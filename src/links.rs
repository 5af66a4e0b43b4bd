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
use crate::asterisk::ari::{AriRest, Event};
use crate::calls::Input;
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

    // ARI: websocket notices → parsed inputs; each connect triggers a snapshot.
    let (ari_tx, ari_rx) = mpsc::unbounded_channel();
    let (stop_ws, stop) = watch::channel(false);
    let (_ari_up, ws_task) =
        crate::asterisk::ari::ws::spawn_stoppable(a.ari_events(&a.app), ari.clone(), ari_tx, stop);
    tasks.push(tokio::spawn(forward_ari(
        ari_rx,
        inputs.clone(),
        ari.clone(),
        a.app.clone(),
    )));

    // AMI: notices → inputs, stamped with the time they arrived.
    let (ami_tx, ami_rx) = mpsc::unbounded_channel();
    let (ami, ami_task) = AmiClient::spawn(a.ami(TRACKED_EVENTS), ami_tx);
    tasks.push(ami_task);
    tasks.push(tokio::spawn(forward_ami(ami_rx, inputs, ami.clone())));

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

async fn forward_ari(
    mut rx: mpsc::UnboundedReceiver<AriNotice>,
    out: mpsc::UnboundedSender<Input>,
    rest: AriRest,
    app: String,
) {
    let mut snapshot: Option<JoinHandle<()>> = None;
    while let Some(n) = rx.recv().await {
        match n {
            AriNotice::Text(text) => match serde_json::from_str::<Event>(&text) {
                Ok(Event::Other) => {}
                Ok(ev) => {
                    let _ = out.send(Input::AriEvent(Box::new(ev)));
                }
                Err(e) => tracing::debug!("unreadable ARI event: {e}"),
            },
            AriNotice::Connected => {
                let _ = out.send(Input::AriConnected);
                if let Some(s) = snapshot.take() {
                    s.abort();
                }
                snapshot = Some(tokio::spawn(resync(rest.clone(), out.clone(), app.clone())));
            }
            AriNotice::Disconnected(why) => {
                let _ = out.send(Input::AriDisconnected(why));
            }
        }
    }
}

/// After an ARI connect: narrows the events to those uapid reads, then takes the
/// snapshot of every channel and bridge (retried a few times).
async fn resync(rest: AriRest, out: mpsc::UnboundedSender<Input>, app: String) {
    if let Err(e) = rest.set_event_filter(&app).await {
        tracing::debug!("ARI event filter not set: {e}");
    }
    for attempt in 0..20u32 {
        match tokio::try_join!(rest.channels(), rest.bridges()) {
            Ok((channels, bridges)) => {
                let _ = out.send(Input::AriSnapshot { channels, bridges });
                return;
            }
            Err(e) => {
                tracing::warn!("ARI snapshot failed (attempt {attempt}): {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
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
                // The listing's events reach the tracker through this same stream, in order.
                let ami = ami.clone();
                tokio::spawn(async move {
                    let action = Message::new().with("Action", "ParkedCalls");
                    if let Err(e) = ami.send(action).await {
                        tracing::warn!("AMI ParkedCalls failed: {e}");
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
