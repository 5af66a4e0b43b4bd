//! The harness of the end-to-end tests: the sandbox PBX (started once if needed), a uapid
//! started in-process, a UAPI client, and what Asterisk shows over ARI.
//!
//! Every wait is bounded and polls for a condition; nothing sleeps in place of an event.
//! Tests run one at a time ([`Pbx`]) because they share one Asterisk.

use std::net::SocketAddr;
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

/// The sandbox's root filesystem on this machine (files Asterisk writes are below it).
pub fn sandbox_root() -> String {
    let out = Command::new("bash")
        .arg(sandbox_script())
        .arg("root")
        .output()
        .expect("run docker/sandbox.sh root");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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
struct Serial {
    _file: std::fs::File,
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

/// One end-to-end test at a time on this machine: an async lock within the binary (a
/// failed test does not poison it), and a file lock across processes, so test binaries
/// run by several developers or tools at once do not share phones.
async fn serial() -> Serial {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = LOCK.lock().await;
    let path = std::env::temp_dir().join("uapid-e2e.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("lock file");
    let t = Instant::now();
    let file = tokio::task::spawn_blocking(move || file.lock().map(|_| file))
        .await
        .expect("lock task")
        .expect("lock the e2e lock file");
    if t.elapsed() > Duration::from_secs(1) {
        eprintln!(
            "e2e: waited {:?} for {} (another process used the PBX)",
            t.elapsed(),
            path.display()
        );
    }
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
/// `UAPID_TEST_AMI_SESSIONS` sets `asterisk.ami_sessions`.
fn test_settings() -> Settings {
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

/// The shared PBX, to one test alone: the serial lock held (until dropped), the sandbox
/// up, and every channel of earlier tests (or other processes) hung up.
pub struct Pbx {
    _serial: Serial,
}

impl Pbx {
    pub async fn take() -> Pbx {
        let serial = serial().await;
        sandbox();
        hangup_all().await;
        Pbx { _serial: serial }
    }
}

/// One test's uapid: the PBX to itself ([`Pbx`]), a uapid started in-process with
/// settings of its own and connected to Asterisk, and a UAPI client for it.
///
/// uapid runs on a thread and tokio runtime of its own, so dropping a `TestApp` can shut
/// it down completely, by blocking on that thread, even from inside the test's runtime
/// (and when the test panicked). The PBX is released after uapid has stopped.
pub struct TestApp {
    pub api: Api,
    settings: Settings,
    // Fields drop in this order: uapid stops, then the lock is released.
    uapid: Option<Uapid>,
    _pbx: Pbx,
}

impl TestApp {
    /// uapid with the test settings.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// uapid with the test settings as `custom` changes them (TLS, token lifetime, ...).
    pub async fn spawn_with(custom: impl FnOnce(&mut Settings)) -> TestApp {
        let pbx = Pbx::take().await;
        let mut settings = test_settings();
        custom(&mut settings);
        let uapid = start_uapid(settings.clone()).await;
        TestApp {
            api: Api::new(&uapid.base_url(&settings)),
            settings,
            uapid: Some(uapid),
            _pbx: pbx,
        }
    }

    /// The settings this test's uapid runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Where uapid listens.
    pub fn addr(&self) -> SocketAddr {
        self.uapid.as_ref().expect("uapid runs").addr
    }

    /// Stops uapid and starts a new one with the same settings (and ARI app name), as
    /// an operator restarting the daemon would; the PBX stays this test's. Tokens of the
    /// old one are not valid any more.
    pub async fn restart_uapid(&mut self) {
        if let Some(old) = self.uapid.take() {
            old.stop().await;
        }
        let uapid = start_uapid(self.settings.clone()).await;
        self.api = Api::new(&uapid.base_url(&self.settings));
        self.uapid = Some(uapid);
    }
}

/// A uapid on a thread and runtime of its own. Dropping it stops it and waits until it
/// has (the runtime's end cancels whatever `shutdown` left).
struct Uapid {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Uapid {
    /// Starts uapid and waits until it is connected to Asterisk with the first snapshot
    /// applied; None (once it has stopped again) if that takes longer than `within`.
    async fn start(settings: Settings, within: Duration) -> Option<Uapid> {
        use tokio::sync::oneshot;
        let (ready_tx, ready_rx) = oneshot::channel::<Option<SocketAddr>>();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("uapid".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("uapid's runtime");
                rt.block_on(async move {
                    let running = uapid::start(settings).await.expect("uapid starts");
                    if !running.wait_connected(within).await {
                        running.shutdown().await;
                        let _ = ready_tx.send(None);
                        return;
                    }
                    let _ = ready_tx.send(Some(running.addr));
                    // Until stopped, or the Uapid dropped.
                    let _ = stop_rx.await;
                    running.shutdown().await;
                });
            })
            .expect("uapid thread");
        let mut u = Uapid {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stop: Some(stop),
            thread: Some(thread),
        };
        match ready_rx.await {
            Ok(Some(addr)) => {
                u.addr = addr;
                Some(u)
            }
            Ok(None) => {
                u.stop().await;
                None
            }
            Err(_) => panic!("uapid's thread ended before uapid was up (its panic is above)"),
        }
    }

    fn base_url(&self, settings: &Settings) -> String {
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops uapid and waits for its thread without blocking the caller's runtime.
    async fn stop(mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || t.join())
                .await
                .expect("join task");
            assert!(joined.is_ok(), "uapid's thread panicked (see above)");
        }
    }
}

impl Drop for Uapid {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            // Blocks this thread, not uapid's: its runtime runs on its own thread.
            if t.join().is_err() {
                eprintln!("e2e: uapid's thread panicked while stopping");
            }
        }
    }
}

/// Starts uapid and waits until it has a whole picture of the PBX.
async fn start_uapid(settings: Settings) -> Uapid {
    if let Some(u) = Uapid::start(settings.clone(), Duration::from_secs(10)).await {
        return u;
    }
    // Asterisk 22's ARI has been seen to stop accepting websockets after a client's
    // connection closed during a write. That is the PBX's fault, not uapid's: say so,
    // restart the sandbox, and try once more.
    assert!(
        !ari_websocket_answers().await,
        "uapid did not connect to Asterisk, though Asterisk accepts ARI websockets"
    );
    eprintln!("e2e: Asterisk's ARI no longer accepts websockets; restarting the sandbox PBX");
    sandbox_cmd(&["restart"]);
    Uapid::start(settings, WAIT)
        .await
        .expect("uapid did not connect to Asterisk, even after a sandbox restart")
}

/// Whether Asterisk completes an ARI websocket handshake within 3 s.
async fn ari_websocket_answers() -> bool {
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

    /// Sends `req` → (status, body; Null when empty or not JSON).
    pub async fn request(&self, req: &Req) -> (u16, Value) {
        let mut r = self
            .http
            .request(req.method.clone(), format!("{}{}", self.base, req.path));
        if let Some(t) = &req.token {
            r = r.bearer_auth(t);
        }
        r = match &req.body {
            Body::Empty => r,
            Body::Json(v) => r.json(v),
            Body::Raw(text) => r.body(*text),
        };
        let resp = r.send().await.unwrap_or_else(|e| panic!("{req}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Walks a table of requests that must fail: each must get its status and a UAPI
    /// error body with its code and a message. A row that does not is printed with what
    /// came back.
    pub async fn assert_errors(&self, rows: &[(Req, u16, &str)]) {
        for (i, (req, status, code)) in rows.iter().enumerate() {
            let (st, body) = self.request(req).await;
            let error = &body["error"];
            assert_eq!(
                (st, error["code"].as_str(), error["message"].is_string()),
                (*status, Some(*code), true),
                "row {i}: {req} → {st} {body}"
            );
        }
    }

    /// GET a path with a bearer token → (status, body).
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.request(&Req::get(path).token(token)).await
    }

    /// Any method with a JSON body → (status, body; Null when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = Req::new(method, path).token(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.request(&req).await
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

/// A request to uapid, as a row of an error table prints it.
#[derive(Debug, Clone)]
pub struct Req {
    method: reqwest::Method,
    path: String,
    /// The bearer token; None: no Authorization header.
    token: Option<String>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Empty,
    Json(Value),
    /// Sent as it is (e.g. not JSON at all).
    Raw(&'static str),
}

impl Req {
    pub fn new(method: reqwest::Method, path: impl Into<String>) -> Req {
        Req {
            method,
            path: path.into(),
            token: None,
            body: Body::Empty,
        }
    }

    pub fn get(path: impl Into<String>) -> Req {
        Req::new(reqwest::Method::GET, path)
    }

    pub fn put(path: impl Into<String>) -> Req {
        Req::new(reqwest::Method::PUT, path)
    }

    pub fn post(path: impl Into<String>) -> Req {
        Req::new(reqwest::Method::POST, path)
    }

    pub fn token(mut self, token: &str) -> Req {
        self.token = Some(token.to_string());
        self
    }

    pub fn json(mut self, body: Value) -> Req {
        self.body = Body::Json(body);
        self
    }

    pub fn raw(mut self, body: &'static str) -> Req {
        self.body = Body::Raw(body);
        self
    }
}

impl std::fmt::Display for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        match &self.body {
            Body::Empty => {}
            Body::Json(v) => write!(f, " {v}")?,
            Body::Raw(text) => write!(f, " {text:?}")?,
        }
        match self.token.as_deref() {
            None => write!(f, " (no token)"),
            // Enough of a token to tell which one it was.
            Some(t) => write!(f, " (token {})", t.get(..12).unwrap_or(t)),
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
