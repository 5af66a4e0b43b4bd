//! Against the sandbox PBX with live SIPp calls (`docker/sandbox.sh sipp`): List
//! latency and throughput beside ARI's `GET /channels`, action overhead (Park, UnPark,
//! Transfer through uapid vs the same operation sent directly) and Park/UnPark of every
//! call at once. uapid runs as its own process (the release binary), like in production.

mod actions;
mod calls;
mod concurrency;
mod http;
mod list;
mod sandbox;
mod seen;

use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;
use uapid::asterisk::ami::{AmiClient, AmiConfig};
use uapid::asterisk::ari::AriRest;
use uapid::config::Settings;

use self::calls::{hangup_all, until};
use self::sandbox::{e2e_lock, phone, sandbox, Proc};
use self::seen::{listen, Seen};
use crate::repo;
use crate::results::PbxFigures;
use crate::tap::Tap;

/// Where the benchmark runs uapid.
const UAPID: &str = "127.0.0.1:18090";

/// `only`: `pbx-list`, `pbx-actions` or `pbx-concurrency` for one part.
pub async fn run(quick: bool, only: Option<&str>) -> PbxFigures {
    let part = |p: &str| only.is_none_or(|o| o == "pbx" || o == p);
    let pbx = Pbx::start().await;

    // 1. List beside ARI's GET /channels, with live calls.
    let _p024 = phone("024", 30000);
    let list = if part("pbx-list") {
        pbx.list(quick).await
    } else {
        Vec::new()
    };

    // 2. Action overhead: Park, UnPark, Transfer through uapid vs the same operation
    // sent straight to Asterisk, each timed until Asterisk reports the outcome.
    let _p211 = phone("211", 32000);
    let _p212 = phone("212", 33000);
    let rounds = if !part("pbx-actions") {
        0
    } else if quick {
        1
    } else {
        20
    };
    let action_overhead = pbx.action_overhead(rounds).await;

    // 3. Every call parked at once, then every call unparked at once.
    let concurrency = if part("pbx-concurrency") {
        Some(pbx.concurrency(quick).await)
    } else {
        None
    };
    PbxFigures {
        list,
        action_overhead,
        concurrency,
    }
}

/// The PBX with uapid in front of it, and what the parts measure with.
struct Pbx {
    settings: Settings,
    /// ARI straight to Asterisk: setting calls up and checking on them.
    ari: AriRest,
    /// ARI through the tap: the direct operations.
    ari_ops: AriRest,
    tap: Tap,
    http: reqwest::Client,
    /// Tokens for uapid: an admin app and alice's (a user's) app.
    admin: String,
    alice: String,
    /// AMI straight to Asterisk: the events in `seen`, and queries.
    ami: AmiClient,
    seen: Seen,
    /// AMI through the tap: the direct operations.
    ops: AmiClient,
    uapid_pid: u32,
    _uapid: Proc,
    /// Dropped last: the lock is let go once uapid has stopped.
    _lock: std::fs::File,
}

impl Pbx {
    async fn start() -> Pbx {
        let lock = e2e_lock();
        assert!(
            sandbox(&["start"]).status().expect("sandbox").success(),
            "sandbox start"
        );
        let settings = Settings::defaults();
        let a = &settings.asterisk;
        let ari = AriRest::new(&a.ari_url, &a.ari_user, a.ari_password.clone());
        hangup_all(&ari).await;

        // uapid and the direct operations reach Asterisk through the tap.
        let tap = Tap::default();
        let tap_ami = tap.start(&a.ami_addr).await.to_string();
        let ari_host = a
            .ari_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let tap_ari = format!("http://{}", tap.start(&ari_host).await);
        let ari_ops = AriRest::new(&tap_ari, &a.ari_user, a.ari_password.clone());
        let uapid = start_uapid(&tap_ami, &tap_ari);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        until("uapid healthy", 30, || async {
            let r = http
                .get(format!("http://{UAPID}/health"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        let admin = http::token(&http, "admin-app", "admin-secret").await;
        let alice = http::token(&http, "alice-app", "alice-secret").await;
        let (ami, seen, _listener) = listen(&settings).await;
        let ops = ops_session(&settings, &tap_ami).await;
        Pbx {
            uapid_pid: uapid.0.id(),
            _uapid: uapid,
            _lock: lock,
            settings,
            ari,
            ari_ops,
            tap,
            http,
            admin,
            alice,
            ami,
            seen,
            ops,
        }
    }
}

/// The release binary of uapid, on [`UAPID`], reaching Asterisk through the tap.
fn start_uapid(tap_ami: &str, tap_ari: &str) -> Proc {
    Proc(
        Command::new(format!("{}/target/release/uapid", repo()))
            .env("UAPID_LISTEN", UAPID)
            .env("UAPID_ASTERISK__AMI_ADDR", tap_ami)
            .env("UAPID_ASTERISK__ARI_URL", tap_ari)
            .env("UAPID_ASTERISK__APP", "uapid-bench")
            .env("RUST_LOG", "uapid=warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start target/release/uapid (cargo build --release first)"),
    )
}

/// An AMI session through the tap for the direct operations, with no events.
async fn ops_session(settings: &Settings, tap_ami: &str) -> AmiClient {
    let config = ami_config(settings, tap_ami, &["None"]);
    let (ops, _task) = AmiClient::spawn(config, mpsc::unbounded_channel().0);
    let mut up = ops.connected_watch();
    let _ = tokio::time::timeout(Duration::from_secs(10), up.wait_for(|c| *c)).await;
    ops
}

/// An AMI session to `addr` as the settings' user, asking for `events`: the one place the
/// benchmark fills in the library's `AmiConfig`.
fn ami_config(settings: &Settings, addr: &str, events: &[&str]) -> AmiConfig {
    let a = &settings.asterisk;
    AmiConfig {
        addr: addr.to_string(),
        user: a.ami_user.clone(),
        secret: a.ami_secret.clone(),
        events: events.iter().map(|e| e.to_string()).collect(),
        keepalive: a.keepalive(),
    }
}
