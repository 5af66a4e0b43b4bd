//! End to end over real sockets, with no PBX (uapid serves HTTP while its links to
//! Asterisk retry, and these requests need none): tokens that outlive a `kill -9`, the
//! connection limits (header timeout, idle timeout, the cap) and the UAPI body of the
//! answers hyper gives by itself.
//!
//! Every wait is bounded and ends on what the server does (an answer, the socket
//! closing); none sleeps to prove that something did not happen.
//!
//! The `#[ignore]`d tests are measurements (issue 9): run them in release mode,
//! `cargo test --release --test e2e tokens:: -- --ignored --nocapture --test-threads 1`.
//! They start the `uapid` binary (or the one `UAPID_BIN` names, to compare builds).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use uapid::config::Settings;

/// How long any wait here may take before the test fails.
const BOUND: Duration = Duration::from_secs(10);

/// A directory of the test's own, removed when it ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let mut n = [0u8; 8];
    getrandom::fill(&mut n).unwrap();
    let d = std::env::temp_dir().join(format!("uapid-{name}-{:x}", u64::from_le_bytes(n)));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// Settings for a uapid on a free loopback port, its PBX unreachable, its token key in
/// `state`.
fn settings(state: &Path) -> Settings {
    let mut s = Settings::defaults();
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.asterisk.ari_url = "http://127.0.0.1:9".into();
    s.asterisk.ami_addr = "127.0.0.1:9".into();
    s.state_dir = Some(state.to_path_buf());
    s
}

/// An answer read off a socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The head, lowercased.
    head: String,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }
}

/// Reads one answer (head, then `content-length` bytes of body).
async fn read_answer<R: AsyncRead + Unpin>(s: &mut R) -> Option<Answer> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head.get(9..12)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    while buf.len() < end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[end..end + len]).unwrap_or(Value::Null);
    Some(Answer { status, head, body })
}

/// Sends `request` and reads the answer at the same time (the server may answer and
/// close before it has read the whole request).
async fn exchange(addr: SocketAddr, request: Vec<u8>) -> Answer {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&request).await;
        w
    });
    let answer = tokio::time::timeout(BOUND, read_answer(&mut r))
        .await
        .expect("an answer in time")
        .expect("an answer");
    drop(writer.await);
    answer
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{extra}\r\n").into_bytes()
}

/// A token over HTTP.
async fn token(addr: SocketAddr, client: &str, secret: &str) -> (u16, Value) {
    let form = format!(
        "grant_type=client_credentials&client_id={client}&client_secret={secret}&type=unifiedapi"
    );
    let req = format!(
        "POST /oauth/token.php HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
        form.len()
    );
    let a = exchange(addr, req.into_bytes()).await;
    (a.status, a.body)
}

async fn list(addr: SocketAddr, token: &str) -> Answer {
    let auth = format!("authorization: Bearer {token}\r\n");
    exchange(addr, get("/uapi/phoneCalls/@me/@self/", &auth)).await
}

/// Waits until the server closes `s` (end of stream or reset); returns how long it took.
async fn closed_within<R: AsyncRead + Unpin>(s: &mut R, bound: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(bound, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| t0.elapsed())
}

// ---------------------------------------------------------------------------------------
// Tokens across a kill -9

/// The `uapid` binary, running.
struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uapid_bin() -> String {
    std::env::var("UAPID_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_uapid").to_string())
}

/// Starts the binary with `config`; its address comes from its log.
fn spawn_uapid(config: &Path) -> Daemon {
    let mut cmd = Command::new(uapid_bin());
    cmd.arg("--config")
        .arg(config)
        .env("RUST_LOG", "uapid=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // A measurement may give the daemon fewer descriptors (soft and hard limit).
    if let Some(n) = std::env::var("MEASURE_NOFILE")
        .ok()
        .and_then(|n| n.parse::<libc::rlim_t>().ok())
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("spawn uapid");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Reads the log to its end, so the daemon never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let plain = strip_ansi(&line);
            if std::env::var_os("UAPID_LOG").is_some() {
                eprintln!("uapid: {plain}");
            }
            if plain.contains("uapid listening") {
                if let Some(a) = plain.split("addr=").nth(1) {
                    let a = a.split_whitespace().next().unwrap_or("");
                    let _ = tx.send(a.parse::<SocketAddr>().ok());
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(BOUND)
        .ok()
        .flatten()
        .expect("uapid says where it listens");
    Daemon { child, addr }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A configuration file for the binary: loopback, no PBX, the key in `state`, and the
/// directory's apps with alice-app's secret as given.
fn write_config(dir: &Path, state: &Path, alice_secret: &str) -> PathBuf {
    let path = dir.join("uapid.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        r#"listen = "127.0.0.1:0"
state_dir = "{}"

[asterisk]
ari_url = "http://127.0.0.1:9"
ami_addr = "127.0.0.1:9"

[[directory.apps]]
client_id = "admin-app"
secret = "admin-secret"
account = "admin"

[[directory.apps]]
client_id = "org-app"
secret = "org-secret"
account = "organization:3"

[[directory.apps]]
client_id = "alice-app"
secret = "{alice_secret}"
account = "user:12"

[[directory.apps]]
client_id = "bob-app"
secret = "bob-secret"
account = "user:13"
"#,
        state.display()
    )
    .unwrap();
    path
}

#[tokio::test]
async fn a_token_outlives_kill_9_but_not_a_changed_secret() {
    let dir = temp_dir("restart");
    let state = dir.join("state");
    let config = write_config(&dir, &state, "alice-secret");

    let first = spawn_uapid(&config);
    let (st, body) = token(first.addr, "alice-app", "alice-secret").await;
    assert_eq!(st, 200, "{body}");
    let alice = body["access_token"].as_str().unwrap().to_string();
    let (st, body) = token(first.addr, "bob-app", "bob-secret").await;
    assert_eq!(st, 200, "{body}");
    let bob = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(list(first.addr, &alice).await.status, 200);
    let key = state.join("token.key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is the daemon's alone");
    drop(first); // SIGKILL, then reaped

    let second = spawn_uapid(&config);
    let a = list(second.addr, &alice).await;
    assert_eq!(a.status, 200, "the same token after kill -9: {:?}", a.body);
    assert!(a.body["entry"].is_array());
    drop(second);

    // alice-app's secret changed: its tokens end, bob-app's do not.
    let config = write_config(&dir, &state, "alice-rotated");
    let third = spawn_uapid(&config);
    let a = list(third.addr, &alice).await;
    assert_eq!((a.status, a.code()), (401, "access_denied"), "{:?}", a.body);
    assert_eq!(list(third.addr, &bob).await.status, 200);
    let (st, _) = token(third.addr, "alice-app", "alice-rotated").await;
    assert_eq!(st, 200);
    drop(third);
}

// ---------------------------------------------------------------------------------------
// Connection limits

#[tokio::test]
async fn a_slow_head_is_cut_at_the_header_timeout() {
    let dir = temp_dir("slowloris");
    let mut s = settings(&dir);
    s.limits.header_timeout_secs = 1;
    s.limits.keep_alive_secs = 30;
    let running = uapid::start(s).await.unwrap();
    let mut c = TcpStream::connect(running.addr).await.unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // A header line every 200 ms, never the end of the head.
    let (mut r, mut w) = c.into_split();
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if w.write_all(format!("x-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return i;
            }
        }
        unreachable!()
    });
    let took = closed_within(&mut r, BOUND)
        .await
        .expect("the server closes a head that never ends");
    assert!(took < Duration::from_secs(5), "{took:?}");
    trickle.abort();
    running.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_keep_alive() {
    let dir = temp_dir("idle");
    let mut s = settings(&dir);
    s.limits.keep_alive_secs = 1;
    s.limits.header_timeout_secs = 30;
    s.limits.body_timeout_secs = 2;
    let running = uapid::start(s).await.unwrap();
    let addr = running.addr;

    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let took = closed_within(&mut silent, BOUND).await;
    assert!(took.is_some(), "a silent connection is closed");

    // One that asked once: answered (and told the timeout), then closed when idle.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&get("/health", "")).await.unwrap();
    let a = read_answer(&mut c).await.expect("an answer");
    assert_eq!(a.header("keep-alive"), Some("timeout=1"));
    let took = closed_within(&mut c, BOUND)
        .await
        .expect("closed when idle");
    assert!(
        took >= Duration::from_millis(500),
        "not before its time: {took:?}"
    );

    // A request in progress is not idle: its body, which never comes, gets the body
    // timeout's 408 (after 2 s), not the keep-alive's close (after 1 s).
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(
        b"PUT /uapi/phoneCalls/@me/@self HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n{",
    )
    .await
    .unwrap();
    let a = tokio::time::timeout(BOUND, read_answer(&mut c))
        .await
        .unwrap()
        .expect("an answer, not a close");
    assert_eq!(
        (a.status, a.code()),
        (408, "request_timeout"),
        "{:?}",
        a.body
    );
    running.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_503() {
    let dir = temp_dir("cap");
    let mut s = settings(&dir);
    s.limits.max_connections = 3;
    s.limits.max_connections_per_address = 0;
    s.limits.keep_alive_secs = 30;
    s.limits.header_timeout_secs = 30;
    let running = uapid::start(s).await.unwrap();
    let addr = running.addr;

    // Three connections, each known to be served (one answer each, kept alive).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&get("/served", "")).await.unwrap();
        let a = read_answer(&mut c).await.expect("served");
        assert_eq!(a.code(), "resource_not_found", "{:?}", a.body);
        held.push(c);
    }
    // The fourth: a clean 503 with the UAPI body, then the end of the connection.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&get("/served", "")).await.unwrap();
    let a = tokio::time::timeout(BOUND, read_answer(&mut c))
        .await
        .unwrap()
        .expect("an answer");
    assert_eq!(
        (a.status, a.code()),
        (503, "service_unavailable"),
        "{:?}",
        a.body
    );
    assert_eq!(a.header("retry-after"), Some("1"));
    assert!(closed_within(&mut c, BOUND).await.is_some());

    // One closes: a new connection is served again (the server notices the close
    // shortly after; try until it has).
    drop(held.pop());
    let t0 = Instant::now();
    loop {
        let a = exchange(addr, get("/served", "")).await;
        if a.code() == "resource_not_found" {
            break;
        }
        assert_eq!(a.code(), "service_unavailable");
        assert!(t0.elapsed() < BOUND, "still refused");
        tokio::task::yield_now().await;
    }
    running.shutdown().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let dir = temp_dir("per-address");
    let mut s = settings(&dir);
    s.limits.max_connections = 100;
    s.limits.max_connections_per_address = 2;
    s.limits.keep_alive_secs = 30;
    let running = uapid::start(s).await.unwrap();
    let addr = running.addr;
    let from = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        async move {
            let sock = TcpSocket::new_v4().unwrap();
            sock.bind(SocketAddr::new(ip, 0)).unwrap();
            let mut c = sock.connect(addr).await.unwrap();
            c.write_all(&get("/served", "")).await.unwrap();
            let a = read_answer(&mut c).await.expect("an answer");
            (a, c)
        }
    };
    let (a1, _c1) = from("127.0.0.1").await;
    let (a2, _c2) = from("127.0.0.1").await;
    assert_eq!(
        (a1.code(), a2.code()),
        ("resource_not_found", "resource_not_found")
    );
    let (a3, _c3) = from("127.0.0.1").await;
    assert_eq!((a3.status, a3.code()), (503, "service_unavailable"));
    let (a4, _c4) = from("127.0.0.2").await;
    assert_eq!(a4.code(), "resource_not_found", "another address is served");
    running.shutdown().await;
}

/// Oversized requests over a real socket: uapid's own limits answer in the router's
/// guard; hyper's (its buffer, 100 header lines, a head it cannot parse) are rewritten.
/// Every answer has the UAPI body.
#[tokio::test]
async fn oversized_and_broken_heads_get_uapi_bodies() {
    let dir = temp_dir("heads");
    let running = uapid::start(settings(&dir)).await.unwrap();
    let addr = running.addr;
    let l = uapid::config::Limits::default();
    let many_lines: String = (0..150).map(|i| format!("x-{i}: y\r\n")).collect();
    let big_body = "x".repeat(l.max_body_bytes + 1);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a URI over max_uri_bytes",
            get(&format!("/health?{}", "a".repeat(l.max_uri_bytes)), ""),
            414,
            "request_uri_too_long",
        ),
        (
            "headers over max_header_bytes",
            get("/health", &format!("x-pad: {}\r\n", "p".repeat(l.max_header_bytes))),
            431,
            "request_headers_too_large",
        ),
        (
            "a head over hyper's buffer",
            get("/health", &format!("x-pad: {}\r\n", "p".repeat(512 * 1024))),
            431,
            "request_headers_too_large",
        ),
        (
            "a URI over hyper's buffer",
            get(&format!("/health?{}", "a".repeat(512 * 1024)), ""),
            431,
            "request_headers_too_large",
        ),
        (
            "150 header lines",
            get("/health", &many_lines),
            431,
            "request_headers_too_large",
        ),
        (
            "not HTTP",
            b"HELLO THERE\r\n\r\n".to_vec(),
            400,
            "request_invalid",
        ),
        (
            "a body over max_body_bytes",
            format!(
                "PUT /uapi/phoneCalls/@me/@self HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{big_body}",
                big_body.len()
            )
            .into_bytes(),
            413,
            "request_too_large",
        ),
        (
            "a path that is not UTF-8",
            get("/uapi/phoneCalls/%FF/@self", ""),
            400,
            "request_invalid",
        ),
    ];
    for (what, req, status, code) in cases {
        let a = exchange(addr, req).await;
        assert_eq!((a.status, a.code()), (status, code), "{what}: {a:?}");
        assert!(a.body["error"]["message"].is_string(), "{what}");
        assert_eq!(a.header("content-type"), Some("application/json"), "{what}");
    }
    running.shutdown().await;
}

/// Whatever ends a connection (a head cut at the header timeout, an idle one), its place
/// under the cap comes back.
#[tokio::test]
async fn a_closed_connection_gives_its_place_back() {
    let dir = temp_dir("probe");
    let mut s = settings(&dir);
    s.limits.max_connections = 3;
    s.limits.max_connections_per_address = 0;
    s.limits.header_timeout_secs = 1;
    s.limits.keep_alive_secs = 1;
    let running = uapid::start(s).await.unwrap();
    let addr = running.addr;
    for kind in ["slow head", "idle", "silent"] {
        let mut cs = Vec::new();
        for _ in 0..3 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            match kind {
                "slow head" => c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap(),
                "idle" => {
                    c.write_all(&get("/x", "")).await.unwrap();
                    read_answer(&mut c).await.unwrap();
                }
                _ => {}
            }
            cs.push(c);
        }
        // uapid closes each (header timeout, idle, idle), and each gives its place back:
        // the next connection is served.
        for c in &mut cs {
            assert!(closed_within(c, BOUND).await.is_some(), "{kind}: closed");
        }
        let t0 = Instant::now();
        loop {
            let a = exchange(addr, get("/x", "")).await;
            if a.code() == "resource_not_found" {
                break;
            }
            assert_eq!(a.code(), "service_unavailable", "{kind}");
            assert!(t0.elapsed() < BOUND, "{kind}: the places did not come back");
            tokio::task::yield_now().await;
        }
    }
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Measurements (issue 9). Not run by default: `--ignored`, in release mode.

/// A daemon for a measurement: the binary with default limits, no PBX.
fn measured_daemon(name: &str) -> (Daemon, TempDir) {
    let dir = temp_dir(name);
    let config = write_config(&dir, &dir.join("state"), "alice-secret");
    (spawn_uapid(&config), dir)
}

/// One kept-alive connection making requests one after the other.
struct Client {
    s: TcpStream,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        Client { s }
    }

    async fn ask(&mut self, req: &[u8]) -> Option<Answer> {
        self.s.write_all(req).await.ok()?;
        read_answer(&mut self.s).await
    }
}

fn token_request(client: &str, secret: &str) -> Vec<u8> {
    let form = format!(
        "grant_type=client_credentials&client_id={client}&client_secret={secret}&type=unifiedapi"
    );
    format!(
        "POST /oauth/token.php HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
        form.len()
    )
    .into_bytes()
}

/// Lists with `token` for `secs` seconds on one connection → (requests/s, p50, p99 in ms,
/// non-200 answers).
async fn list_for(addr: SocketAddr, token: &str, secs: f64) -> (f64, f64, f64, usize) {
    let mut c = Client::connect(addr).await;
    let req = get(
        "/uapi/phoneCalls/@me/@self/",
        &format!("authorization: Bearer {token}\r\n"),
    );
    let mut lat = Vec::new();
    let mut bad = 0;
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        match c.ask(&req).await {
            Some(a) if a.status == 200 => {}
            Some(_) => bad += 1,
            None => {
                bad += 1;
                c = Client::connect(addr).await;
            }
        }
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let n = lat.len();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((n as f64 * p) as usize).min(n - 1)];
    (
        n as f64 / t0.elapsed().as_secs_f64(),
        pct(0.5),
        pct(0.99),
        bad,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn measure_list_while_tokens_are_issued() {
    let (d, dir) = measured_daemon("m-tokens");
    let addr = d.addr;
    let (_, body) = token(addr, "alice-app", "alice-secret").await;
    let alice = body["access_token"].as_str().unwrap().to_string();
    let before = list_for(addr, &alice, 5.0).await;
    println!(
        "List alone: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
        before.0, before.1, before.2
    );

    // Four connections issue tokens (another app) until 150,000 (or MEASURE_TOKENS) or
    // 90 s, while one lists.
    let target: usize = std::env::var("MEASURE_TOKENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150_000);
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let issued = issued.clone();
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let req = token_request("bob-app", "bob-secret");
                while issued.load(std::sync::atomic::Ordering::Relaxed) < target
                    && t0.elapsed() < Duration::from_secs(90)
                {
                    match c.ask(&req).await {
                        Some(a) if a.status == 200 => {
                            issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => c = Client::connect(addr).await,
                    }
                }
            })
        })
        .collect();
    let mut during = Vec::new();
    while !flooders.iter().all(|f| f.is_finished()) {
        during.push(list_for(addr, &alice, 5.0).await);
    }
    let took = t0.elapsed().as_secs_f64();
    let n = issued.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{n} tokens issued in {took:.1} s ({:.0}/s) on 4 connections",
        n as f64 / took
    );
    for (i, m) in during.iter().enumerate() {
        println!(
            "  List during the flood, {}-{} s: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} not 200",
            i * 5,
            i * 5 + 5,
            m.0,
            m.1,
            m.2,
            m.3
        );
    }
    let after = list_for(addr, &alice, 5.0).await;
    println!(
        "List after {n} tokens: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
        after.0, after.1, after.2
    );
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())) {
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS"))
            .unwrap_or("");
        println!("uapid's memory after the flood: {rss}");
    }
    drop((d, dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn measure_wrong_secret_tries() {
    let (d, dir) = measured_daemon("m-brute");
    let addr = d.addr;
    let (_, body) = token(addr, "bob-app", "bob-secret").await;
    let bob = body["access_token"].as_str().unwrap().to_string();
    let secs = 10.0;
    let t0 = Instant::now();
    let tries: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let (mut refused, mut throttled, mut other) = (0u64, 0u64, 0u64);
                let mut retry_after = None;
                while t0.elapsed().as_secs_f64() < secs {
                    let req =
                        token_request("alice-app", &format!("guess-{i}-{refused}-{throttled}"));
                    match c.ask(&req).await {
                        Some(a) if a.status == 401 => refused += 1,
                        Some(a) if a.status == 429 => {
                            throttled += 1;
                            retry_after = a.header("retry-after").map(str::to_string);
                        }
                        Some(_) => other += 1,
                        None => c = Client::connect(addr).await,
                    }
                }
                (refused, throttled, other, retry_after)
            })
        })
        .collect();
    // Meanwhile, another app's token keeps working.
    let listing = list_for(addr, &bob, secs - 1.0).await;
    let mut totals = (0, 0, 0);
    let mut retry = None;
    for t in tries {
        let (r, th, o, ra) = t.await.unwrap();
        totals = (totals.0 + r, totals.1 + th, totals.2 + o);
        retry = retry.or(ra);
    }
    let took = t0.elapsed().as_secs_f64();
    println!(
        "wrong secrets for alice-app over {took:.1} s on 4 connections: {} answered 401 \
         (checked), {} answered 429 ({:.0}/s, Retry-After {:?}), {} other",
        totals.0,
        totals.1,
        totals.1 as f64 / took,
        retry,
        totals.2
    );
    let (st, body) = token(addr, "alice-app", "alice-secret").await;
    println!(
        "alice-app with its right secret now: {st} {}",
        body["error"]["code"]
    );
    println!(
        "bob-app's List meanwhile: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} not 200",
        listing.0, listing.1, listing.2, listing.3
    );
    drop((d, dir));
}

/// Raises this process's descriptor limit (the client side of the measurement).
fn raise_own_fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
    #[allow(clippy::unnecessary_cast)]
    let cur = r.rlim_cur as u64;
    cur
}

/// Connects from 127.0.0.`host`.
async fn connect_from(addr: SocketAddr, host: u8) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from(([127, 0, 0, host], 0)))?;
    sock.connect(addr).await
}

/// A fresh client from an address of its own: how long its answer takes, and which.
async fn newcomer(addr: SocketAddr) -> String {
    let t = Instant::now();
    let fut = async {
        let mut s = connect_from(addr, 250).await.ok()?;
        s.write_all(&get("/served", "")).await.ok()?;
        read_answer(&mut s).await
    };
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(Some(a)) => format!(
            "answered {} {} in {:.1} ms ({})",
            a.status,
            a.code(),
            t.elapsed().as_secs_f64() * 1e3,
            if a.code() == "resource_not_found" {
                "served"
            } else {
                "refused"
            }
        ),
        Ok(None) => "closed without an answer".into(),
        Err(_) => "no answer within 10 s".into(),
    }
}

/// How a flood's connections ended: answered 503 (over a cap), closed at once without
/// an answer (over a cap, beyond the refusals under way), closed later (served, then cut
/// by a timeout) → the seconds after opening, or still open at the end.
#[derive(Default)]
struct Ends {
    refused_503: usize,
    dropped: usize,
    cut_after: Vec<f64>,
    open: usize,
}

impl Ends {
    fn add(&mut self, end: (Option<f64>, bool)) {
        match end {
            (Some(_), true) => self.refused_503 += 1,
            (Some(t), false) if t < 1.0 => self.dropped += 1,
            (Some(t), false) => self.cut_after.push(t),
            (None, _) => self.open += 1,
        }
    }

    fn report(mut self, what: &str, bound: u64) {
        self.cut_after.sort_by(f64::total_cmp);
        let n = self.cut_after.len();
        let cut = if n > 0 {
            format!(
                ", closed by uapid after p50 {:.1} s, max {:.1} s",
                self.cut_after[n / 2],
                self.cut_after[n - 1]
            )
        } else {
            String::new()
        };
        println!(
            "{what}: {} answered 503 and closed, {} closed at once without an answer, \
             {n} served{cut}; {} still open after {bound} s",
            self.refused_503, self.dropped, self.open
        );
    }
}

/// Reads `r` until it closes or `bound` passes → (seconds since `opened`, whether a 503
/// came first).
async fn watch<R: AsyncRead + Unpin>(
    mut r: R,
    opened: Instant,
    bound: Duration,
) -> (Option<f64>, bool) {
    let mut buf = [0u8; 4096];
    let mut got_503 = false;
    let closed = tokio::time::timeout_at((opened + bound).into(), async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got_503 |= buf[..n].starts_with(b"HTTP/1.1 503"),
            }
        }
    })
    .await
    .is_ok();
    (closed.then(|| opened.elapsed().as_secs_f64()), got_503)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn measure_slowloris_and_idle_connections() {
    let fds = raise_own_fd_limit();
    let (d, dir) = measured_daemon("m-conns");
    let addr = d.addr;

    // 3,000 slowloris connections from 30 addresses: a head begun, then a header line
    // every second, never the end.
    let t0 = Instant::now();
    let mut slow = Vec::new();
    for i in 0..3000u32 {
        let host = 10 + (i % 30) as u8;
        let Ok(mut s) = connect_from(addr, host).await else {
            continue;
        };
        let opened = Instant::now();
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n").await;
        slow.push(tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let trickle = tokio::spawn(async move {
                for i in 0..120 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if w.write_all(format!("x-{i}: y\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
            let end = watch(r, opened, Duration::from_secs(70)).await;
            trickle.abort();
            end
        }));
    }
    println!(
        "{} slowloris connections opened in {:.1} s (descriptors here: {fds})",
        slow.len(),
        t0.elapsed().as_secs_f64()
    );
    println!("a new client meanwhile: {}", newcomer(addr).await);
    let mut ends = Ends::default();
    for h in slow {
        ends.add(h.await.unwrap());
    }
    ends.report("slowloris", 70);
    println!("a new client after: {}", newcomer(addr).await);

    // 15,000 idle connections from 60 addresses (the client needs a descriptor for each).
    let want = 15_000u32.min(fds.saturating_sub(500) as u32);
    let t0 = Instant::now();
    let mut idle = Vec::new();
    let mut failed = 0;
    for i in 0..want {
        match connect_from(addr, 100 + (i % 60) as u8).await {
            Ok(s) => {
                let opened = Instant::now();
                idle.push(tokio::spawn(watch(s, opened, Duration::from_secs(60))));
            }
            Err(_) => failed += 1,
        }
    }
    println!(
        "{} idle connections opened in {:.1} s ({failed} failed to connect)",
        idle.len(),
        t0.elapsed().as_secs_f64()
    );
    println!("a new client meanwhile: {}", newcomer(addr).await);
    let mut ends = Ends::default();
    for h in idle {
        ends.add(h.await.unwrap());
    }
    ends.report("idle", 60);
    println!("a new client after: {}", newcomer(addr).await);
    drop((d, dir));
}
