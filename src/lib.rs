//! uapid: VoipNow's UnifiedAPI PhoneCalls interface for an ordinary Asterisk PBX.
//!
//! [`start`] wires the parts and is what both `main` and the tests run:
//!
//! ```text
//! Asterisk ──ARI websocket + AMI events──▶ links ──▶ tracker task (single owner)
//!                                                          │ Calls (readers)
//! HTTP client ──▶ api (auth, routes, errors) ──▶ actions (commands) ──▶ Asterisk
//! ```

pub(crate) mod actions;
pub mod api;
pub mod asterisk;
pub mod calls;
pub mod config;
pub mod dialplan;
pub mod doctor;
pub mod import;
pub mod inventory;
mod links;
pub mod record;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use actions::{Actions, Pbx, PbxNames};
use calls::Calls;
use config::{Directory, Settings};

/// A running uapid.
pub struct Running {
    pub addr: SocketAddr,
    pub calls: Calls,
    server: axum_server::Handle<SocketAddr>,
    stop_ws: watch::Sender<bool>,
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
        self.calls
            .wait_until(within, |t| t.ari_up && t.ami_up && t.synced())
            .await
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
    #[error(
        "the ARI application {0} is already in use on this PBX (another uapid?): \
         give each uapid an asterisk.app of its own"
    )]
    AppInUse(String),
}

/// Starts uapid: Asterisk links, the tracker, and the HTTP server on `settings.listen`.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let directory = Arc::new(Directory::build(&settings.directory)?);
    settings.limits.check()?;
    // Before anything connects anywhere: a key that cannot be had stops the start.
    let token_key = settings.token_key()?;
    let a = &settings.asterisk;
    // Two uapids on one ARI application would take it from each other in turn: refuse
    // to start on one in use. (An unreachable PBX cannot say; the links then retry.)
    let probe = a.ari_rest();
    if asterisk::ari::ws::app_registered(&probe, &a.app).await == Some(true) {
        return Err(StartError::AppInUse(a.app.clone()));
    }
    let (calls, inputs, tracker_task) = Calls::spawn(directory.clone(), &a.app);
    let links = links::start(a, inputs);
    let mut tasks = links.tasks;
    tasks.push(tracker_task);

    // Actions, and the reaper that ends legs left alone in uapid's Stasis bridges.
    let own_dialplan = dialplan::lines(a);
    let pbx = Pbx::new(
        links.ami_pool,
        links.ari,
        PbxNames::from_settings(a),
        own_dialplan,
    );
    let actions = Arc::new(Actions::new(pbx, calls.clone(), directory.clone()));
    tasks.push(tokio::spawn(actions::reaper::run(actions.clone())));

    // The start-up check (`uapid doctor`'s checks, on a session of its own): logs what
    // the PBX's admin still must do. It only logs.
    if settings.startup_check {
        tasks.push(tokio::spawn(doctor::log_at_startup(
            a.clone(),
            directory.clone(),
        )));
    }

    let bound = server::bind(settings.listen)?;
    let addr = bound.addr;
    let state = Arc::new(api::AppState {
        calls: calls.clone(),
        tokens: api::auth::Tokens::new(
            &token_key,
            Duration::from_secs(settings.token_ttl_secs),
            &directory,
        ),
        throttle: api::throttle::Throttle::new(api::throttle::ThrottleLimits {
            per_client: settings.limits.token_failures_per_client,
            per_address: settings.limits.token_failures_per_address,
            window: Duration::from_secs(settings.limits.token_failure_window_secs),
        }),
        limits: settings.limits.clone(),
        directory,
        base_url: settings.base_url(addr),
        actions,
    });
    let handle = axum_server::Handle::new();
    let router = api::router(state);
    let tls = settings.tls.as_ref();
    tasks.push(server::serve(bound, router, tls, &settings.limits, handle.clone()).await?);
    tracing::info!(%addr, tls = settings.tls.is_some(), "uapid listening");
    Ok(Running {
        addr,
        calls,
        server: handle,
        stop_ws: links.stop_ws,
        ws_task: links.ws_task,
        tasks,
    })
}
