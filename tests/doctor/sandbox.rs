//! What the doctor's tests need of the sandbox PBX, through processes and uapid's public
//! API only: starting it, the end-to-end lock, hanging every channel up, SIPp phones
//! (scenarios in tests/sip/), and a small UAPI client.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use uapid::asterisk::ari::AriRest;
use uapid::config::{Secret, Settings};

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// How long any wait may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// Starts the sandbox PBX once per test binary (a no-op when it already runs).
pub fn sandbox() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let st = Command::new("bash")
            .arg(format!("{REPO}/docker/sandbox.sh"))
            .arg("start")
            .status()
            .expect("run docker/sandbox.sh");
        assert!(st.success(), "docker/sandbox.sh start failed");
    });
}

/// The end-to-end tests' lock (`/tmp/uapid-e2e.lock`): one user of the sandbox at a time,
/// across processes. Held until dropped.
pub struct Lock(#[allow(dead_code)] std::fs::File);

pub fn lock() -> Lock {
    static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("uapid-e2e.lock"))
        .expect("lock file");
    file.lock().expect("take the e2e lock");
    Lock(file)
}

fn ari() -> AriRest {
    Settings::defaults().asterisk.ari_rest()
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
        assert!(Instant::now() < deadline, "channels left: {}", chans.len());
        for c in chans {
            let _ = ari.hangup(&c.id).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A SIPp process inside the sandbox; killed when dropped.
pub struct Sipp(Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a UDP socket is bound to 127.0.0.1:`port` (from /proc/net/udp).
fn udp_bound(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| {
        t.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
    })
}

/// Runs SIPp on 127.0.0.1:`port` with RTP ports from `rtp`; returns once it listens.
fn sipp(port: u16, rtp: u16, args: &[&str]) -> Sipp {
    let child = Command::new("bash")
        .arg(format!("{REPO}/docker/sandbox.sh"))
        .arg("sipp")
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mi",
            "127.0.0.1",
        ])
        .args(["-min_rtp_port", &rtp.to_string()])
        .args(["-max_rtp_port", &(rtp + 19).to_string()])
        .args(["-nostdin", "-aa"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp");
    let s = Sipp(child);
    let deadline = Instant::now() + WAIT;
    while !udp_bound(port) {
        assert!(Instant::now() < deadline, "sipp did not bind port {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
    s
}

/// RTP ports of this process's SIPps, apart from the end-to-end tests' (20000-59999).
fn rtp_base(n: u16) -> u16 {
    61000 + (std::process::id() % 10) as u16 * 200 + n * 20
}

/// Sandbox phone `short` (its SIP port is 5000 + its number) answers after `ring_ms`.
pub fn phone_answering(short: &str, ring_ms: u64) -> Sipp {
    let port = 5000 + short.parse::<u16>().expect("a number");
    let scenario = format!("{REPO}/tests/sip/uas_answer.xml");
    sipp(
        port,
        rtp_base(0),
        &["-sf", &scenario, "-d", &ring_ms.to_string()],
    )
}

/// Phone `short` (endpoint 0003_<short>) calls `to`, from a free port.
pub fn dial_from_phone(short: &str, to: &str) -> Sipp {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let scenario = format!("{REPO}/tests/sip/uac.xml");
    let caller = format!("0003_{short}");
    let args = ["-sf", &scenario, "-key", "caller", &caller, "-s", to];
    let mut args = args.to_vec();
    args.extend(["-m", "1", "127.0.0.1:5060"]);
    sipp(port, rtp_base(1), &args)
}

/// A UAPI client of one running uapid.
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(addr: std::net::SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    pub async fn token(&self, client_id: &str, secret: &Secret) -> String {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.expose()),
            ("type", "unifiedapi"),
        ];
        let url = format!("{}/oauth/token.php", self.base);
        let resp = self.http.post(url).form(&form).send().await.expect("token");
        let body: Value = resp.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// Polls the listing of `path` until `pred` holds for its entries.
    pub async fn wait_calls(
        &self,
        path: &str,
        token: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = format!("{}{path}", self.base);
            let resp = self
                .http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("GET");
            let body: Value = resp.json().await.expect("list JSON");
            let entries = body["entry"].as_array().cloned().unwrap_or_default();
            if pred(&entries) {
                return entries;
            }
            assert!(Instant::now() < deadline, "timed out; last listing: {body}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The status of `ext`'s view of a listed call.
pub fn status_of(call: &Value, ext: &str) -> Option<String> {
    call["phoneCallView"]
        .as_array()?
        .iter()
        .find(|v| v["extension"] == ext)
        .and_then(|v| v["status"].as_str())
        .map(str::to_string)
}
