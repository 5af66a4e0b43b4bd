//! The harness of the end-to-end tests: the sandbox PBX (started once if needed), a uapid
//! started in-process, a UAPI client, and what Asterisk shows over ARI.
//!
//! Every wait is bounded and polls for a condition; nothing sleeps in place of an event.
//! Tests run one at a time ([`serial`]) because they share one Asterisk.

use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use uapid::asterisk::ari::AriRest;
use uapid::config::{Secret, Settings};

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// How long any wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn sandbox_script() -> String {
    format!("{REPO}/docker/sandbox.sh")
}

/// Starts the sandbox PBX once per test binary (a no-op when it already runs).
pub fn sandbox() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let st = Command::new("bash")
            .arg(sandbox_script())
            .arg("start")
            .status()
            .expect("run docker/sandbox.sh");
        assert!(st.success(), "docker/sandbox.sh start failed");
    });
}

/// Runs a sandbox subcommand (e.g. `restart`) and asserts it succeeded.
pub fn sandbox_cmd(args: &[&str]) {
    let st = Command::new("bash")
        .arg(sandbox_script())
        .args(args)
        .status()
        .expect("run docker/sandbox.sh");
    assert!(st.success(), "docker/sandbox.sh {args:?} failed");
}

/// Held while a test uses the shared PBX.
pub struct Serial {
    _file: std::fs::File,
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

/// One end-to-end test at a time on this machine: an async lock within the binary (a
/// failed test does not poison it), and a file lock across processes, so test binaries
/// run by several developers or tools at once do not share phones.
pub async fn serial() -> Serial {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = LOCK.lock().await;
    let path = std::env::temp_dir().join("uapid-e2e.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("lock file");
    let file = tokio::task::spawn_blocking(move || file.lock().map(|_| file))
        .await
        .expect("lock task")
        .expect("lock the e2e lock file");
    Serial {
        _file: file,
        _guard: guard,
    }
}

pub fn ari() -> AriRest {
    let s = Settings::defaults();
    AriRest::new(
        &s.asterisk.ari_url,
        &s.asterisk.ari_user,
        s.asterisk.ari_password.clone(),
    )
}

/// Hangs up every channel on the PBX and waits until none is left.
pub async fn hangup_all() {
    let ari = ari();
    let deadline = Instant::now() + WAIT;
    loop {
        let chans = ari.channels().await.expect("ARI answers");
        if chans.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "channels still up: {:?}",
            chans.iter().map(|c| &c.name).collect::<Vec<_>>()
        );
        for c in chans {
            let _ = ari.hangup(&c.id).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `f` until it returns `Some`, at most [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(what, WAIT, f).await
}

/// Polls `f` until it returns `Some`, at most `bound` (for waits the PBX makes long on
/// purpose, such as a voicemail greeting).
pub async fn eventually_within<T, F, Fut>(what: &str, bound: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------
// uapid and a UAPI client

static NEXT_APP: AtomicU16 = AtomicU16::new(0);

/// Settings for a test instance: a free port, and an ARI app name of its own.
pub fn test_settings() -> Settings {
    let mut s = Settings::defaults();
    s.listen = "127.0.0.1:0".parse().expect("addr");
    s.asterisk.app = format!(
        "uapid-test-{}-{}",
        std::process::id(),
        NEXT_APP.fetch_add(1, Ordering::Relaxed)
    );
    if let Ok(n) = std::env::var("UAPID_TEST_AMI_SESSIONS") {
        s.asterisk.ami_sessions = n.parse().expect("a number");
    }
    s
}

pub struct Uapid {
    pub running: uapid::Running,
    pub api: Api,
}

/// Starts uapid and waits until it has a whole picture of the PBX.
pub async fn start_uapid(settings: Settings) -> Uapid {
    let running = uapid::start(settings.clone()).await.expect("uapid starts");
    if running.wait_connected(Duration::from_secs(10)).await {
        let api = Api::new(&format!("http://{}", running.addr));
        return Uapid { running, api };
    }
    running.shutdown().await;
    // Asterisk 22's ARI has been seen to stop accepting websockets after a client's
    // connection closed during a write. That is the PBX's fault, not uapid's: say so,
    // restart the sandbox, and try once more.
    assert!(
        !ari_websocket_answers().await,
        "uapid did not connect to Asterisk, though Asterisk accepts ARI websockets"
    );
    eprintln!("e2e: Asterisk's ARI no longer accepts websockets; restarting the sandbox PBX");
    sandbox_cmd(&["restart"]);
    let running = uapid::start(settings).await.expect("uapid starts");
    assert!(
        running.wait_connected(WAIT).await,
        "uapid did not connect to Asterisk, even after a sandbox restart"
    );
    let api = Api::new(&format!("http://{}", running.addr));
    Uapid { running, api }
}

/// Whether Asterisk completes an ARI websocket handshake within 3 s.
pub async fn ari_websocket_answers() -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect("127.0.0.1:8088")
            .await
            .ok()?;
        let req = "GET /ari/events?app=uapid-probe HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                   Authorization: Basic dWFwaWQ6dWFwaWQtc2VjcmV0\r\nConnection: Upgrade\r\n\
                   Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"HTTP/1.1 101"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), probe).await,
        Ok(Some(true))
    )
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    /// `POST /oauth/token.php` → (status, body).
    pub async fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/oauth/token.php", self.base))
            .form(form)
            .send()
            .await
            .expect("token request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A token for one of the directory's apps.
    pub async fn token(&self, client_id: &str, secret: &Secret) -> String {
        let (status, body) = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret.expose()),
                ("type", "unifiedapi"),
            ])
            .await;
        assert_eq!(status, 200, "token for {client_id}: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A token for an app of the default directory, by client id.
    pub async fn token_for(&self, client_id: &str) -> String {
        let s = Settings::defaults();
        let app = s
            .directory
            .apps
            .iter()
            .find(|a| a.client_id == client_id)
            .expect("known app");
        self.token(client_id, &app.secret).await
    }

    /// GET a path with a bearer token → (status, body).
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Any method with a JSON body → (status, body; Null when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    /// GET a listing that must succeed; returns its `entry` array.
    pub async fn calls(&self, path: &str, token: &str) -> Vec<Value> {
        let (status, body) = self.get(path, token).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body["entry"].as_array().cloned().unwrap_or_default()
    }

    /// Polls a listing until `pred` holds for its entries.
    pub async fn wait_calls(
        &self,
        path: &str,
        token: &str,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let entries = self.calls(path, token).await;
            if pred(&entries) {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last listing of {path}: {}",
                serde_json::to_string_pretty(&entries).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The channels of Asterisk whose names start with `prefix` (e.g. `PJSIP/0003_210-`).
pub async fn channels_named(prefix: &str) -> Vec<uapid::asterisk::ari::Channel> {
    ari()
        .channels()
        .await
        .expect("ARI channels")
        .into_iter()
        .filter(|c| c.name.starts_with(prefix))
        .collect()
}

/// Whether Asterisk has a bridge holding one channel of each prefix (checked over ARI).
pub async fn bridged(a: &str, b: &str) -> bool {
    let chans = ari().channels().await.expect("ARI channels");
    let ids = |p: &str| {
        chans
            .iter()
            .filter(|c| c.name.starts_with(p))
            .map(|c| c.id.clone())
            .collect::<Vec<_>>()
    };
    let (ia, ib) = (ids(a), ids(b));
    ari()
        .bridges()
        .await
        .expect("ARI bridges")
        .iter()
        .any(|br| {
            br.channels.iter().any(|c| ia.contains(c)) && br.channels.iter().any(|c| ib.contains(c))
        })
}

/// Waits until Asterisk bridges a channel of `a` with one of `b`.
pub async fn wait_bridged(a: &str, b: &str) {
    eventually(&format!("{a} bridged with {b} in Asterisk"), || async {
        bridged(a, b).await.then_some(())
    })
    .await
}

/// The view of `ext` in a PhoneCall.
pub fn view<'a>(call: &'a Value, ext: &str) -> Option<&'a Value> {
    call["phoneCallView"]
        .as_array()?
        .iter()
        .find(|v| v["extension"] == ext)
}

/// The status of `ext`'s view, as the string UAPI sends.
pub fn status_of(call: &Value, ext: &str) -> Option<String> {
    view(call, ext)
        .and_then(|v| v["status"].as_str())
        .map(str::to_string)
}
