//! uapid: VoipNow's UnifiedAPI PhoneCalls interface for an ordinary Asterisk PBX.
//!
//! [`start`] wires the parts and is what both `main` and the tests run:
//!
//! ```text
//! Asterisk ──ARI websocket + AMI events──▶ forwarders ──▶ tracker task (single owner)
//!                                                              │ RwLock (readers)
//! HTTP client ──▶ api (auth, parse, errors) ──▶ projection of the tracker's state
//! ```

pub mod actions;
pub mod api;
pub mod asterisk;
pub mod calls;
pub mod config;
pub mod record;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use asterisk::ami::{AmiClient, AmiConfig, AmiNotice};
use asterisk::ari::ws::{AriNotice, AriWsConfig};
use asterisk::ari::{AriRest, Event};
use calls::{Input, Tracker};
use config::{Directory, Settings};

/// A running uapid.
pub struct Running {
    pub addr: SocketAddr,
    pub tracker: Arc<RwLock<Tracker>>,
    pub ami: AmiClient,
    pub ari: AriRest,
    server: axum_server::Handle<SocketAddr>,
    stop_ws: tokio::sync::watch::Sender<bool>,
    ws_task: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops serving (open requests get a moment to finish) and drops the Asterisk links.
    pub async fn shutdown(self) {
        self.server.graceful_shutdown(Some(Duration::from_secs(5)));
        // Close the ARI websocket cleanly before anything else goes.
        self.stop_ws.send_replace(true);
        let mut ws = self.ws_task;
        if tokio::time::timeout(Duration::from_secs(3), &mut ws)
            .await
            .is_err()
        {
            ws.abort();
        }
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Waits until both ARI and AMI are connected and the first snapshot is applied.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            {
                let t = self.tracker.read().unwrap_or_else(|e| e.into_inner());
                if t.ari_up && t.ami_up && t.synced() {
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

/// Starts uapid: Asterisk links, the tracker, and the HTTP server on `settings.listen`.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let directory = Arc::new(Directory::build(&settings.directory)?);
    let tracker = Arc::new(RwLock::new(Tracker::new(directory.clone())));
    let a = &settings.asterisk;
    let ari = AriRest::new(&a.ari_url, &a.ari_user, a.ari_password.clone());

    let (input_tx, input_rx) = mpsc::unbounded_channel::<Input>();
    let (changes_tx, changes) = tokio::sync::watch::channel(0u64);
    let mut tasks = vec![tokio::spawn(run_tracker(
        tracker.clone(),
        input_rx,
        changes_tx,
    ))];

    // ARI: websocket notices → parsed inputs; each connect triggers a snapshot.
    let (ari_tx, ari_rx) = mpsc::unbounded_channel();
    let ws_cfg = AriWsConfig {
        base_url: a.ari_url.clone(),
        user: a.ari_user.clone(),
        password: a.ari_password.clone(),
        app: a.app.clone(),
    };
    let (stop_ws, stop) = tokio::sync::watch::channel(false);
    let (_ari_up, ws_task) = asterisk::ari::ws::spawn_stoppable(ws_cfg, ari_tx, stop);
    tasks.push(tokio::spawn(forward_ari(
        ari_rx,
        input_tx.clone(),
        ari.clone(),
        a.app.clone(),
    )));

    // AMI: notices → inputs, stamped with the time they arrived.
    let (ami_tx, ami_rx) = mpsc::unbounded_channel();
    let (ami, ami_task) = AmiClient::spawn(
        AmiConfig {
            addr: a.ami_addr.clone(),
            user: a.ami_user.clone(),
            secret: a.ami_secret.clone(),
            events: asterisk::ami::client::TRACKED_EVENTS
                .iter()
                .map(|e| e.to_string())
                .collect(),
        },
        ami_tx,
    );
    tasks.push(ami_task);
    tasks.push(tokio::spawn(forward_ami(
        ami_rx,
        input_tx.clone(),
        ami.clone(),
    )));

    // More sessions for actions only: their events are filtered out at the PBX.
    let mut ami_pool = vec![ami.clone()];
    for _ in 1..a.ami_sessions.max(1) {
        let (client, task) = AmiClient::spawn(
            AmiConfig {
                addr: a.ami_addr.clone(),
                user: a.ami_user.clone(),
                secret: a.ami_secret.clone(),
                events: vec!["uapid-none".to_string()],
            },
            mpsc::unbounded_channel().0,
        );
        ami_pool.push(client);
        tasks.push(task);
    }

    // Actions, and the reaper that ends legs left alone in uapid's Stasis bridges.
    let engine = Arc::new(actions::Engine::new(
        ami_pool,
        ari.clone(),
        tracker.clone(),
        changes.clone(),
        input_tx,
        directory.clone(),
        actions::PbxNames::from_settings(a),
    ));
    tasks.push(tokio::spawn(run_reaper(engine.clone(), changes)));

    let listener =
        std::net::TcpListener::bind(settings.listen).map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: settings.listen,
        source,
    })?;
    let state = Arc::new(api::AppState {
        directory,
        tracker: tracker.clone(),
        tokens: api::auth::TokenStore::new(Duration::from_secs(settings.token_ttl_secs)),
        base_url: settings.base_url(addr),
        engine,
    });
    let make = api::router(state).into_make_service();
    let handle = axum_server::Handle::new();
    let server = match &settings.tls {
        None => {
            // TCP_NODELAY: a response leaves as soon as it is written.
            let srv = axum_server::from_tcp(listener)
                .map_err(|source| StartError::Listen { addr, source })?
                .acceptor(axum_server::accept::NoDelayAcceptor::new())
                .handle(handle.clone());
            tokio::spawn(async move {
                if let Err(e) = srv.serve(make).await {
                    tracing::error!("HTTP server: {e}");
                }
            })
        }
        Some(tls) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let cfg = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(|e| StartError::Tls(format!("{}: {e}", tls.cert.display())))?;
            let tls = axum_server::tls_rustls::RustlsAcceptor::new(cfg)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            let srv = axum_server::from_tcp(listener)
                .map_err(|source| StartError::Listen { addr, source })?
                .acceptor(tls)
                .handle(handle.clone());
            tokio::spawn(async move {
                if let Err(e) = srv.serve(make).await {
                    tracing::error!("HTTPS server: {e}");
                }
            })
        }
    };
    tasks.push(server);
    tracing::info!(%addr, tls = settings.tls.is_some(), "uapid listening");
    Ok(Running {
        addr,
        tracker,
        ami,
        ari,
        server: handle,
        stop_ws,
        ws_task,
        tasks,
    })
}

/// The single owner of the tracker: applies inputs in order, a batch per write lock, and
/// tells waiters (`changes`) after each batch.
async fn run_tracker(
    tracker: Arc<RwLock<Tracker>>,
    mut rx: mpsc::UnboundedReceiver<Input>,
    changes: tokio::sync::watch::Sender<u64>,
) {
    let mut linkedid_warned = false;
    while let Some(first) = rx.recv().await {
        let mut t = tracker.write().unwrap_or_else(|e| e.into_inner());
        t.apply(first);
        for _ in 0..512 {
            match rx.try_recv() {
                Ok(i) => t.apply(i),
                Err(_) => break,
            }
        }
        let missing = t.linkedid_missing;
        drop(t);
        changes.send_modify(|v| *v = v.wrapping_add(1));
        if missing && !linkedid_warned {
            linkedid_warned = true;
            tracing::warn!(
                "ARI channel snapshots carry no linkedid: add `channelvars = CHANNEL(linkedid)` to ari.conf [general]"
            );
        }
    }
}

async fn run_reaper(engine: Arc<actions::Engine>, mut changes: tokio::sync::watch::Receiver<u64>) {
    let reaper = actions::hold::Reaper::default();
    while changes.changed().await.is_ok() {
        actions::hold::reap(&engine, &reaper).await;
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
                let (rest, out, app) = (rest.clone(), out.clone(), app.clone());
                snapshot = Some(tokio::spawn(async move {
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
                }));
            }
            AriNotice::Disconnected => {
                let _ = out.send(Input::AriDisconnected);
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
                    let action = asterisk::ami::Message::new().with("Action", "ParkedCalls");
                    if let Err(e) = ami.send(action).await {
                        tracing::warn!("AMI ParkedCalls failed: {e}");
                    }
                });
            }
            AmiNotice::Event(m) => {
                let now = chrono::Local::now().fixed_offset();
                let _ = out.send(Input::AmiEvent(m, now));
            }
            AmiNotice::Disconnected => {
                let _ = out.send(Input::AmiDisconnected);
            }
        }
    }
}
