//! `uapid-bench`: what uapid costs, in numbers (see README, "Performance").
//!
//! Sections:
//! - `tracker`: recorded ARI events (tests/fixtures/ext_call.jsonl) multiplied into
//!   synthetic calls and replayed through the tracker: events/s on one core with JSON
//!   parsing, memory per tracked call and the cost of a List page at 1k/10k/100k calls.
//!   No Asterisk needed.
//! - `pbx`: against the sandbox PBX with live SIPp calls: List latency and throughput
//!   beside ARI's `GET /channels`, action overhead (Park through uapid vs AMI Park
//!   directly), and Park/UnPark of every call at once.
//!
//! Prints a table and writes JSON (`--out FILE`, default `bench/results.json`).
//! `--quick` runs small sizes (a smoke run).

use std::collections::HashMap;

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uapid::api::list::{list, ListQuery};
use uapid::api::target::Target;
use uapid::calls::{Input, Tracker};
use uapid::config::{Directory, Settings};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time the hypervisor gave to other guests (`steal` in /proc/stat) and all CPU
/// time, in ticks, since boot. On this project's virtual machine steal comes and goes,
/// and every figure the benchmark prints is slower while it lasts.
pub fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let nums: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    (nums.get(7).copied().unwrap_or(0), nums.iter().take(8).sum())
}

/// Percent of CPU time stolen between two readings of [`cpu_ticks`].
pub fn steal_percent(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = after.1.saturating_sub(before.1);
    if total == 0 {
        return 0.0;
    }
    after.0.saturating_sub(before.0) as f64 * 100.0 / total as f64
}

/// p-th percentile (0..=100) of durations, in milliseconds.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// The repository: this package lives in its `bench/` directory.
fn repo() -> String {
    let bench = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).display().to_string()
}

// ---------------------------------------------------------------------------------------
// Tracker scale

/// The recorded call as JSON lines, and the ids to rename per synthetic call.
struct Template {
    /// The whole life of the call (created → destroyed).
    life: Vec<String>,
    /// How many of `life`'s lines bring it to answered and bridged (before hangup).
    live: usize,
    ids: Vec<String>,
}

fn template() -> Template {
    let path = format!("{}/tests/fixtures/ext_call.jsonl", repo());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut life = Vec::new();
    let mut ids = Vec::new();
    let mut live = 0;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(ev) = v.get("ari") else { continue };
        for k in ["channel", "peer", "caller"] {
            if let Some(id) = ev.get(k).and_then(|c| c.get("id")).and_then(Value::as_str) {
                if !ids.iter().any(|x| x == id) {
                    ids.push(id.to_string());
                }
            }
        }
        if let Some(id) = ev
            .get("bridge")
            .and_then(|b| b.get("id"))
            .and_then(Value::as_str)
        {
            if !ids.iter().any(|x| x == id) {
                ids.push(id.to_string());
            }
        }
        let t = ev.get("type").and_then(Value::as_str).unwrap_or("");
        if t == "ChannelHangupRequest" && live == 0 {
            live = life.len();
        }
        life.push(ev.to_string());
    }
    assert!(live > 0 && !ids.is_empty(), "the fixture has a whole call");
    Template { life, live, ids }
}

impl Template {
    /// The call's lines with every id made unique to call `n`.
    fn call(&self, n: usize, lines: usize) -> Vec<String> {
        self.life[..lines]
            .iter()
            .map(|l| {
                let mut l = l.clone();
                for id in &self.ids {
                    l = l.replace(&format!("\"{id}\""), &format!("\"{id}-{n}\""));
                }
                l
            })
            .collect()
    }
}

#[inline(never)]
fn parse_apply(t: &mut Tracker, line: &str) {
    let ev: uapid::asterisk::ari::Event = serde_json::from_str(line).expect("fixture event parses");
    t.apply(Input::AriEvent(Box::new(ev)));
}

fn new_tracker() -> Tracker {
    Tracker::new(Arc::new(
        Directory::build(&Settings::defaults().directory).expect("directory"),
    ))
}

/// Calls generated at a time: the daemon parses each message right after reading it from
/// the socket, while it is in cache; a small batch (about 340 KB of JSON) stays in cache
/// as well, where one of 1,000 calls (17 MB) would be read back from memory.
const BATCH: usize = 20;
/// CPU time this thread has run: time the core was taken away from it (other
/// processes, the hypervisor) is not in it.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack frame.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Events per second through parse + apply on this thread, by the wall clock and by the
/// thread's own CPU time.
fn events_per_second(calls: usize) -> (f64, f64, usize) {
    let tpl = template();
    let mut t = new_tracker();
    let mut spent = Duration::ZERO;
    let mut cpu = Duration::ZERO;
    let mut events = 0;
    for batch in (0..calls).collect::<Vec<_>>().chunks(BATCH) {
        let lines: Vec<String> = batch
            .iter()
            .flat_map(|&n| tpl.call(n, tpl.life.len()))
            .collect();
        let (start, cpu0) = (Instant::now(), thread_cpu());
        for l in &lines {
            parse_apply(&mut t, l);
        }
        spent += start.elapsed();
        cpu += thread_cpu() - cpu0;
        events += lines.len();
    }
    assert_eq!(t.call_count(), 0, "every synthetic call ended");
    (
        events as f64 / spent.as_secs_f64(),
        events as f64 / cpu.as_secs_f64(),
        events,
    )
}

/// In a fresh process: `n` answered calls tracked; memory and List cost.
fn tracker_size(n: usize) -> Value {
    let tpl = template();
    let base = rss_kib();
    let mut t = new_tracker();
    for i in 0..n {
        for l in tpl.call(i, tpl.live) {
            parse_apply(&mut t, &l);
        }
    }
    assert_eq!(t.call_count(), n);
    let used = rss_kib().saturating_sub(base);
    let q = ListQuery::parse(&HashMap::new()).expect("default query");
    let page = |target: &Target| {
        let mut times = Vec::new();
        for _ in 0..2000 {
            let s = Instant::now();
            let c = list(
                &t,
                target,
                None,
                &q,
                "http://127.0.0.1:8090",
                "/uapi/phoneCalls/@me/@self",
            );
            let body = serde_json::to_vec(&c).expect("serializes");
            std::hint::black_box(body);
            times.push(s.elapsed());
        }
        times.sort();
        (pct(&times, 50.0), pct(&times, 99.0))
    };
    let (admin50, admin99) = page(&Target::All);
    let (user50, user99) = page(&Target::User(12));
    json!({
        "calls": n,
        "rss_kib": used,
        "bytes_per_call": used as f64 * 1024.0 / n as f64,
        "list_admin_p50_ms": admin50, "list_admin_p99_ms": admin99,
        "list_user_p50_ms": user50, "list_user_p99_ms": user99,
    })
}

fn tracker_section(quick: bool) -> Value {
    // Repeated: the CPU this runs on is shared (see `cpu_ticks`); the median is the
    // figure, the spread is shown beside it. The rate per second of the thread's own CPU
    // time leaves out the time the core was taken away from it.
    let (reps, calls) = if quick { (2, 2_000) } else { (5, 20_000) };
    let before = cpu_ticks();
    let (mut runs, mut cpu_runs) = (Vec::new(), Vec::new());
    let mut events = 0;
    for _ in 0..reps {
        let (eps, cpu_eps, n) = events_per_second(calls);
        runs.push(eps);
        cpu_runs.push(cpu_eps);
        events = n;
    }
    let steal = steal_percent(before, cpu_ticks());
    runs.sort_by(f64::total_cmp);
    cpu_runs.sort_by(f64::total_cmp);
    let (eps, cpu_eps) = (runs[runs.len() / 2], cpu_runs[cpu_runs.len() / 2]);
    println!(
        "tracker: {events} events parsed and applied on one core, {reps} runs: median {eps:.0} events/s by the clock (slowest {:.0}, fastest {:.0}), {cpu_eps:.0} per second of the thread's CPU time (slowest {:.0}, fastest {:.0}); CPU stolen by the hypervisor meanwhile: {steal:.0}%",
        runs[0],
        runs[runs.len() - 1],
        cpu_runs[0],
        cpu_runs[cpu_runs.len() - 1],
    );
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let mut rows = Vec::new();
    for &n in sizes {
        // A child process per size: memory freed by a previous size cannot hide growth.
        let out = Command::new(std::env::current_exe().expect("own path"))
            .args(["--tracker-size", &n.to_string()])
            .output()
            .expect("run the size probe");
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("size probe: {}", String::from_utf8_lossy(&out.stderr)));
        println!(
            "tracker: {:>7} calls: {:>8.0} B/call   List page p50 admin {:.3} ms, user {:.3} ms (p99 {:.3} / {:.3})",
            n,
            v["bytes_per_call"].as_f64().unwrap_or(0.0),
            v["list_admin_p50_ms"].as_f64().unwrap_or(0.0),
            v["list_user_p50_ms"].as_f64().unwrap_or(0.0),
            v["list_admin_p99_ms"].as_f64().unwrap_or(0.0),
            v["list_user_p99_ms"].as_f64().unwrap_or(0.0),
        );
        rows.push(v);
    }
    let first = rows
        .first()
        .and_then(|r| r["list_admin_p50_ms"].as_f64())
        .unwrap_or(f64::NAN);
    let last = rows
        .last()
        .and_then(|r| r["list_admin_p50_ms"].as_f64())
        .unwrap_or(f64::NAN);
    println!(
        "tracker: List p50 at the largest size / at 1k: {:.2}x",
        last / first
    );
    json!({
        "events_per_second": eps,
        "events_per_second_runs": runs,
        "events_per_cpu_second": cpu_eps,
        "events_per_cpu_second_runs": cpu_runs,
        "cpu_steal_percent": steal,
        "events": events,
        "sizes": rows,
        "list_growth_largest_vs_1k": last / first,
        "index": "per scope (all, organization, user, extension) a BTreeSet ordered by (published, id); a page walks it from the start",
    })
}

// ---------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--tracker-events") {
        // For profilers: only the replay.
        let n: usize = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--tracker-events CALLS");
        let (eps, cpu_eps, events) = events_per_second(n);
        println!("{events} events: {eps:.0} events/s ({cpu_eps:.0} per CPU second)");
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--tracker-size") {
        let n: usize = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--tracker-size N");
        println!("{}", tracker_size(n));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| format!("{}/bench/results.json", repo()));
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());

    let machine = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())),
        "when": chrono::Local::now().to_rfc3339(),
    });
    let mut results = json!({ "machine": machine, "quick": quick });
    if only.as_deref().is_none_or(|o| o == "tracker") {
        results["tracker"] = tracker_section(quick);
    }
    if only.as_deref().is_none_or(|o| o.starts_with("pbx")) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        results["pbx"] = rt.block_on(pbx::run(quick, only.as_deref()));
    }
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut f = std::fs::File::create(&out).expect("write results");
    writeln!(
        f,
        "{}",
        serde_json::to_string_pretty(&results).expect("json")
    )
    .expect("write");
    println!("wrote {out}");
}

mod pbx {
    //! Against the sandbox PBX. Calls are SIPp phones (`docker/sandbox.sh sipp`); uapid
    //! runs as its own process (the release binary), like in production.

    use std::collections::HashMap;
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};
    use tokio::sync::{mpsc, Notify};
    use uapid::asterisk::ami::{AmiClient, AmiConfig, AmiNotice, Message};
    use uapid::asterisk::ari::AriRest;
    use uapid::calls::phone_call_id;
    use uapid::config::Settings;

    use super::{cpu_ticks, pct, repo, steal_percent};

    const UAPID: &str = "127.0.0.1:18090";

    struct Proc(Child);
    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn sandbox(args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(format!("{}/docker/sandbox.sh", repo())).args(args);
        c
    }

    /// A SIPp phone (`uas`) or caller (`uac`), quiet, killed when dropped.
    fn sipp(port: u16, rtp: u16, args: &[&str]) -> Proc {
        let sip = format!("{}/tests/sip", repo());
        let mut c = sandbox(&["sipp"]);
        c.args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mi",
            "127.0.0.1",
        ])
        .args([
            "-min_rtp_port",
            &rtp.to_string(),
            "-max_rtp_port",
            &(rtp + 999).to_string(),
        ])
        .args([
            "-nostdin",
            "-aa",
            "-trace_err",
            "-error_file",
            &format!("/tmp/uapid-bench-{port}.err"),
        ])
        .args(args.iter().map(|a| a.replace("@SIP", &sip)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        Proc(c.spawn().expect("sipp"))
    }

    fn phone(ext: &str, rtp: u16) -> Proc {
        let port: u16 = 5000 + ext.parse::<u16>().expect("ext");
        sipp(port, rtp, &["-sf", "@SIP/uas_answer.xml", "-d", "0"])
    }

    fn calls_from_210(to: &str, n: usize, port: u16, rtp: u16) -> Proc {
        let n = n.to_string();
        sipp(
            port,
            rtp,
            &[
                "-sf",
                "@SIP/uac.xml",
                "-key",
                "caller",
                "0003_210",
                "-s",
                to,
                "-m",
                &n,
                "-l",
                &n,
                "-r",
                "100",
                "127.0.0.1:5060",
            ],
        )
    }

    async fn until<T, F: std::future::Future<Output = Option<T>>>(
        what: &str,
        secs: u64,
        mut f: impl FnMut() -> F,
    ) -> T {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(Instant::now() < end, "bench: timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn hangup_all(ari: &AriRest) {
        until("every channel to hang up", 60, || async {
            let chans = ari.channels().await.ok()?;
            if chans.is_empty() {
                return Some(());
            }
            for c in chans {
                let _ = ari.hangup(&c.id).await;
            }
            None
        })
        .await
    }

    /// `n` answered calls 210 → 024: (024's leg name, 210's leg name, call id).
    async fn legs(ari: &AriRest, n: usize) -> Vec<(String, String, String)> {
        until(&format!("{n} answered calls"), 120, || async {
            let chans = ari.channels().await.ok()?;
            let up = chans.iter().filter(|c| c.state == "Up").count();
            (chans.len() == 2 * n && up == 2 * n).then_some(())
        })
        .await;
        let chans = ari.channels().await.expect("channels");
        let mut by_call: HashMap<String, (String, String)> = HashMap::new();
        for c in &chans {
            let lid = c.linkedid().unwrap_or(&c.id).to_string();
            let e = by_call.entry(lid).or_default();
            if c.name.starts_with("PJSIP/0003_024-") {
                e.0 = c.name.to_string();
            } else {
                e.1 = c.name.to_string();
            }
        }
        by_call
            .into_iter()
            .map(|(lid, (b, a))| (b, a, phone_call_id(&lid)))
            .collect()
    }

    /// Waits until uapid lists `n` calls, each as `ok` wants it: what a client sees before
    /// it acts (Asterisk's own listing can be a few events ahead of uapid's).
    async fn uapid_shows(
        http: &reqwest::Client,
        token: &str,
        n: usize,
        what: &str,
        ok: impl Fn(&[Value]) -> bool,
    ) {
        until(&format!("uapid to show {n} calls {what}"), 60, || async {
            let v: Value = http
                .get(format!(
                    "http://{UAPID}/uapi/phoneCalls/@me/@self?count=5000"
                ))
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let calls = v["entry"].as_array()?;
            let good = calls
                .iter()
                .filter(|c| c["phoneCallView"].as_array().is_some_and(|vs| ok(vs)))
                .count();
            (calls.len() == n && good == n).then_some(())
        })
        .await
    }

    /// Every view talking.
    fn all_talking(views: &[Value]) -> bool {
        !views.is_empty() && views.iter().all(|v| v["status"] == "5")
    }

    /// A TCP relay in front of Asterisk that notes when an operation passes through it:
    /// the moment the operation leaves its sender (uapid or this benchmark), before
    /// Asterisk's own work starts. Both paths of the overhead comparison go through it.
    #[derive(Clone, Default)]
    struct Tap {
        marks: Arc<Mutex<Vec<(&'static str, Instant)>>>,
    }

    /// What the tap looks for in the bytes sent to Asterisk, and the name it notes.
    const MARKS: &[(&[u8], &str)] = &[
        (b"Action: Park\r\n", "park"),
        (b"POST /ari/channels?", "unpark"),
        (b"Action: Redirect\r\n", "transfer"),
    ];

    impl Tap {
        /// Listens on a loopback port and relays every connection to `upstream`.
        async fn start(&self, upstream: &str) -> std::net::SocketAddr {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("tap listens");
            let addr = l.local_addr().expect("tap address");
            let (upstream, marks) = (upstream.to_string(), self.marks.clone());
            tokio::spawn(async move {
                while let Ok((down, _)) = l.accept().await {
                    let _ = down.set_nodelay(true);
                    let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let _ = up.set_nodelay(true);
                    let (mut dr, mut dw) = down.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    let marks = marks.clone();
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match dr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let now = Instant::now();
                            for (pat, name) in MARKS {
                                if buf[..n].windows(pat.len()).any(|w| w == *pat) {
                                    marks.lock().unwrap().push((name, now));
                                }
                            }
                            if uw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = uw.shutdown().await;
                    });
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut ur, &mut dw).await;
                    });
                }
            });
            addr
        }

        /// When the first operation `name` sent at or after `since` passed through.
        fn first(&self, name: &str, since: Instant) -> Option<Instant> {
            self.marks
                .lock()
                .unwrap()
                .iter()
                .find(|(n, t)| *n == name && *t >= since)
                .map(|(_, t)| *t)
        }
    }

    /// AMI events by (event, channel) with when they arrived.
    #[derive(Clone, Default)]
    struct Seen {
        at: Arc<Mutex<HashMap<(String, String), Instant>>>,
        notify: Arc<Notify>,
    }

    impl Seen {
        async fn wait(&self, event: &str, channel: &str, within: Duration) -> Option<Instant> {
            let key = (event.to_string(), channel.to_string());
            let end = tokio::time::Instant::now() + within;
            loop {
                let n = self.notify.notified();
                if let Some(t) = self.at.lock().unwrap().get(&key) {
                    return Some(*t);
                }
                if tokio::time::timeout_at(end, n).await.is_err() {
                    return None;
                }
            }
        }
    }

    async fn listen(settings: &Settings) -> (AmiClient, Seen, tokio::task::JoinHandle<()>) {
        let a = &settings.asterisk;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let events = ["ParkedCall", "UnParkedCall", "DialBegin"]
            .iter()
            .map(|e| e.to_string())
            .collect();
        let (ami, task) = AmiClient::spawn(
            AmiConfig {
                addr: a.ami_addr.clone(),
                user: a.ami_user.clone(),
                secret: a.ami_secret.clone(),
                events,
            },
            tx,
        );
        let seen = Seen::default();
        let s2 = seen.clone();
        tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                if let AmiNotice::Event(m) = n {
                    let now = Instant::now();
                    let ev = m.event().unwrap_or("").to_string();
                    let ch = match ev.as_str() {
                        "DialBegin" => m.get("Channel"),
                        _ => m.get("ParkeeChannel"),
                    }
                    .unwrap_or("")
                    .to_string();
                    s2.at.lock().unwrap().entry((ev, ch)).or_insert(now);
                    s2.notify.notify_waiters();
                }
            }
        });
        let mut up = ami.connected_watch();
        let _ = tokio::time::timeout(Duration::from_secs(10), up.wait_for(|c| *c)).await;
        (ami, seen, task)
    }

    /// CPU time (user + system) process `pid` has used, from /proc/<pid>/stat.
    fn cpu_time(pid: u32) -> Duration {
        static TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
        let tick = *TICK.get_or_init(|| {
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(100.0)
        });
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
        let f: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or("")
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        Duration::from_secs_f64(ticks as f64 / tick)
    }

    /// The sandbox's Asterisk process.
    fn asterisk_pid() -> u32 {
        let dir = std::env::var("UAPID_SANDBOX_DIR")
            .unwrap_or_else(|_| "/var/cache/uapid-sandbox".to_string());
        std::fs::read_to_string(format!("{dir}/asterisk.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .expect("the sandbox's asterisk.pid")
    }

    /// CPU seconds per second `pid` spends with no requests (Asterisk relays the calls'
    /// audio all along): subtracted from what a load costs it.
    async fn idle_cpu_rate(pid: u32) -> f64 {
        let (c0, t0) = (cpu_time(pid), Instant::now());
        tokio::time::sleep(Duration::from_secs(2)).await;
        (cpu_time(pid) - c0).as_secs_f64() / t0.elapsed().as_secs_f64()
    }

    /// The server a load is aimed at: its process and its CPU rate when idle.
    #[derive(Clone, Copy)]
    struct Server {
        pid: u32,
        idle_rate: f64,
    }

    /// Latency and throughput of GET `url` with `workers` concurrent clients for `secs`,
    /// and the server's CPU time per request.
    async fn load(
        http: &reqwest::Client,
        url: &str,
        auth: Option<(&str, &str)>,
        bearer: Option<&str>,
        workers: usize,
        secs: f64,
        server: Server,
    ) -> Value {
        let (cpu0, began) = (cpu_time(server.pid), Instant::now());
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let (http, url) = (http.clone(), url.to_string());
            let auth = auth.map(|(u, p)| (u.to_string(), p.to_string()));
            let bearer = bearer.map(str::to_string);
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let mut req = http.get(&url);
                    if let Some((u, p)) = &auth {
                        req = req.basic_auth(u, Some(p));
                    }
                    if let Some(b) = &bearer {
                        req = req.bearer_auth(b);
                    }
                    let t = Instant::now();
                    let resp = req.send().await.expect("request");
                    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
                    let _ = resp.bytes().await.expect("body");
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("worker"));
        }
        let cpu = (cpu_time(server.pid) - cpu0).as_secs_f64()
            - server.idle_rate * began.elapsed().as_secs_f64();
        all.sort();
        json!({
            "requests": all.len(),
            "p50_ms": pct(&all, 50.0),
            "p90_ms": pct(&all, 90.0),
            "p99_ms": pct(&all, 99.0),
            "rps": all.len() as f64 / secs,
            "server_cpu_us_per_request": (cpu.max(0.0) * 1e6 / all.len().max(1) as f64),
        })
    }

    async fn token(http: &reqwest::Client, id: &str, secret: &str) -> String {
        let v: Value = http
            .post(format!("http://{UAPID}/oauth/token.php"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    async fn put(
        http: &reqwest::Client,
        token: &str,
        id: &str,
        body: Value,
    ) -> (u16, Duration, String) {
        let t = Instant::now();
        let r = http
            .put(format!("http://{UAPID}/uapi/phoneCalls/@me/@self/{id}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("PUT");
        let st = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (st, t.elapsed(), text)
    }

    /// A 95% bootstrap interval of median(`a`) − median(`b`), in ms: how far the
    /// difference of two p50s can move by chance alone with these samples.
    fn median_difference_interval(a: &[Duration], b: &[Duration]) -> [f64; 2] {
        if a.is_empty() || b.is_empty() {
            return [f64::NAN, f64::NAN];
        }
        // xorshift64*: a fixed seed keeps the interval repeatable for the same samples.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: usize| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
        };
        let median = |v: &[Duration], next: &mut dyn FnMut(usize) -> usize| {
            let mut r: Vec<Duration> = (0..v.len()).map(|_| v[next(v.len())]).collect();
            r.sort();
            pct(&r, 50.0)
        };
        let mut diffs: Vec<f64> = (0..2000)
            .map(|_| median(a, &mut next) - median(b, &mut next))
            .collect();
        diffs.sort_by(f64::total_cmp);
        [diffs[50], diffs[1949]]
    }

    #[test]
    fn median_difference_interval_brackets_a_shift() {
        let a: Vec<Duration> = (0..101)
            .map(|i| Duration::from_micros(5_000 + i * 5))
            .collect();
        let b: Vec<Duration> = a.iter().map(|d| *d + Duration::from_millis(1)).collect();
        let [lo, hi] = median_difference_interval(&b, &a);
        assert!(lo <= 1.0 && 1.0 <= hi && hi - lo < 1.0, "{lo} {hi}");
        let [lo, hi] = median_difference_interval(&a, &a);
        assert!(lo <= 0.0 && 0.0 <= hi, "{lo} {hi}");
    }

    fn summary(v: &mut [Duration]) -> Value {
        v.sort();
        json!({ "n": v.len(), "p50_ms": pct(v, 50.0), "p90_ms": pct(v, 90.0), "p99_ms": pct(v, 99.0), "max_ms": pct(v, 100.0) })
    }

    /// `only`: `pbx-list`, `pbx-actions` or `pbx-concurrency` for one part.
    pub async fn run(quick: bool, only: Option<&str>) -> Value {
        let part = |p: &str| only.is_none_or(|o| o == "pbx" || o == p);
        // The PBX is shared with the end-to-end tests: take their lock.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("uapid-e2e.lock"))
            .expect("lock file");
        lock.lock().expect("e2e lock");
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
        let tap_ami = tap.start(&a.ami_addr).await;
        let ari_host = a
            .ari_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let tap_ari = tap.start(&ari_host).await;
        let ari_ops = AriRest::new(
            &format!("http://{tap_ari}"),
            &a.ari_user,
            a.ari_password.clone(),
        );
        let _uapid = Proc(
            Command::new(format!("{}/target/release/uapid", repo()))
                .env("UAPID_LISTEN", UAPID)
                .env("UAPID_ASTERISK__AMI_ADDR", tap_ami.to_string())
                .env("UAPID_ASTERISK__ARI_URL", format!("http://{tap_ari}"))
                .env("UAPID_ASTERISK__APP", "uapid-bench")
                .env("RUST_LOG", "uapid=warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("start target/release/uapid (cargo build --release first)"),
        );
        let uapid_pid = _uapid.0.id();
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
        let admin = token(&http, "admin-app", "admin-secret").await;
        let alice = token(&http, "alice-app", "alice-secret").await;
        let (ami, seen, _listener) = listen(&settings).await;
        let (ops, _ops_task) = AmiClient::spawn(
            AmiConfig {
                addr: tap_ami.to_string(),
                user: a.ami_user.clone(),
                secret: a.ami_secret.clone(),
                events: vec!["None".to_string()],
            },
            mpsc::unbounded_channel().0,
        );
        {
            let mut up = ops.connected_watch();
            let _ = tokio::time::timeout(Duration::from_secs(10), up.wait_for(|c| *c)).await;
        }

        // 1. List beside ARI's GET /channels, with live calls.
        let secs = if quick { 1.0 } else { 3.0 };
        let mut list_rows = Vec::new();
        let _p024 = phone("024", 30000);
        let sizes = if !part("pbx-list") {
            vec![]
        } else if quick {
            vec![10]
        } else {
            vec![10, 100]
        };
        for n in sizes {
            let _c = calls_from_210("024", n, 6210, 31000);
            legs(&ari, n).await;
            let list_url = format!("http://{UAPID}/uapi/phoneCalls/@me/@self");
            let ari_url = format!("{}/ari/channels", a.ari_url);
            let mut row = json!({ "live_calls": n });
            // Each server's CPU when nobody asks anything, with these calls up.
            let uapid_srv = Server {
                pid: uapid_pid,
                idle_rate: idle_cpu_rate(uapid_pid).await,
            };
            let asterisk_srv = Server {
                pid: asterisk_pid(),
                idle_rate: idle_cpu_rate(asterisk_pid()).await,
            };
            for workers in [1usize, 4] {
                let admin_l = load(
                    &http,
                    &list_url,
                    None,
                    Some(&admin),
                    workers,
                    secs,
                    uapid_srv,
                )
                .await;
                let user_l = load(
                    &http,
                    &list_url,
                    None,
                    Some(&alice),
                    workers,
                    secs,
                    uapid_srv,
                )
                .await;
                let ari_l = load(
                    &http,
                    &ari_url,
                    Some((&a.ari_user, a.ari_password.expose())),
                    None,
                    workers,
                    secs,
                    asterisk_srv,
                )
                .await;
                let ratio = ari_l["p50_ms"].as_f64().unwrap_or(0.0)
                    / admin_l["p50_ms"].as_f64().unwrap_or(1.0);
                println!(
                    "pbx: {n:>3} calls, {workers} client(s): List admin p50 {:.3} ms p99 {:.3} ms {:.0} req/s | user p50 {:.3} ms {:.0} req/s | ARI GET /channels p50 {:.3} ms p99 {:.3} ms {:.0} req/s | ARI p50 / List p50 = {ratio:.1}x",
                    admin_l["p50_ms"].as_f64().unwrap_or(0.0), admin_l["p99_ms"].as_f64().unwrap_or(0.0), admin_l["rps"].as_f64().unwrap_or(0.0),
                    user_l["p50_ms"].as_f64().unwrap_or(0.0), user_l["rps"].as_f64().unwrap_or(0.0),
                    ari_l["p50_ms"].as_f64().unwrap_or(0.0), ari_l["p99_ms"].as_f64().unwrap_or(0.0), ari_l["rps"].as_f64().unwrap_or(0.0),
                );
                let (list_cpu, ari_cpu) = (
                    admin_l["server_cpu_us_per_request"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                    ari_l["server_cpu_us_per_request"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                );
                println!(
                    "pbx: {n:>3} calls, {workers} client(s): server CPU per request: uapid List {list_cpu:.0} us, Asterisk GET /channels {ari_cpu:.0} us ({:.1}x)",
                    ari_cpu / list_cpu
                );
                row[format!("clients_{workers}")] = json!({ "list_admin": admin_l, "list_user": user_l, "ari_channels": ari_l, "ari_p50_over_list_p50": ratio, "ari_cpu_over_list_cpu": ari_cpu / list_cpu });
            }
            list_rows.push(row);
            hangup_all(&ari).await;
        }

        // 2. Action overhead: Park, UnPark, Transfer through uapid vs the same operation
        // sent straight to Asterisk, each timed until Asterisk reports the outcome.
        let _p211 = phone("211", 32000);
        let _p212 = phone("212", 33000);
        // Rounds of 10 calls: every call streams RTP through Asterisk, and on two cores
        // fewer streams at once leave less noise on a millisecond-sized difference.
        let rounds = if !part("pbx-actions") {
            0
        } else if quick {
            1
        } else {
            20
        };
        let per = 10;
        let mut t: HashMap<&str, Vec<Duration>> = HashMap::new();
        let actions_began = cpu_ticks();
        let wait = Duration::from_secs(20);
        for round in 0..rounds {
            let _c = calls_from_210("024", per, 6210, 31000);
            let calls = legs(&ari, per).await;
            uapid_shows(&http, &admin, per, "answered", all_talking).await;
            for (i, (leg024, leg210, id)) in calls.iter().enumerate() {
                let via = (i + round) % 2 == 0;
                let t0 = Instant::now();
                if via {
                    let (st, _, text) = put(
                        &http,
                        &admin,
                        id,
                        json!({"action":"Park","maxInParking":3600,"phoneCallViewId":"01"}),
                    )
                    .await;
                    assert_eq!(st, 202, "Park via uapid: {text}");
                } else {
                    ops.request(
                        Message::new()
                            .with("Action", "Park")
                            .with("Channel", leg024)
                            .with("TimeoutChannel", leg210)
                            .with("Timeout", "3600000"),
                    )
                    .await
                    .expect("AMI Park");
                }
                let at = seen
                    .wait("ParkedCall", leg024, wait)
                    .await
                    .expect("ParkedCall");
                t.entry(if via { "park_uapid" } else { "park_direct" })
                    .or_default()
                    .push(at - t0);
                let door = tap.first("park", t0).expect("Park passed the tap");
                t.entry(if via {
                    "park_uapid_door"
                } else {
                    "park_direct_door"
                })
                .or_default()
                .push(door - t0);
            }
            let lot = {
                let v: Value = ari.get("/bridges").await.expect("bridges");
                v.as_array()
                    .map(|b| b.iter().filter(|b| b["bridge_class"] == "parking").count())
                    .unwrap_or(0)
            };
            assert!(lot > 0, "calls parked");
            uapid_shows(&http, &admin, per, "parked", |vs| {
                vs.iter().any(|v| v.get("parked").is_some())
            })
            .await;
            // UnPark: the parked legs (024) go to 211.
            let parked: HashMap<String, String> = {
                let r = ami
                    .request(Message::new().with("Action", "ParkedCalls"))
                    .await
                    .expect("ParkedCalls");
                r.events
                    .iter()
                    .filter_map(|e| {
                        Some((
                            e.get("ParkeeChannel")?.to_string(),
                            e.get("ParkingSpace")?.to_string(),
                        ))
                    })
                    .collect()
            };
            let chans = ari.channels().await.expect("channels");
            for (i, (leg024, _, id)) in calls.iter().enumerate() {
                let via = (i + round) % 2 == 0;
                let t0 = Instant::now();
                if via {
                    let (st, _, text) = put(&http, &admin, id, json!({"action":"UnPark","sendCallTo":"0003*211","waitForPickup":20,"phoneCallViewId":"01"})).await;
                    assert_eq!(st, 202, "UnPark via uapid: {text}");
                } else {
                    let space = parked.get(leg024).expect("parked space").clone();
                    let originator = chans
                        .iter()
                        .find(|c| c.name == *leg024)
                        .map(|c| c.id.clone())
                        .unwrap_or_default();
                    ari_ops
                        .post(
                            "/channels",
                            &[
                                ("endpoint", "PJSIP/0003_211"),
                                ("context", "parkedcalls"),
                                ("extension", &space),
                                ("priority", "1"),
                                ("timeout", "20"),
                                ("originator", &originator),
                            ],
                        )
                        .await
                        .expect("ARI originate");
                }
                let at = seen
                    .wait("UnParkedCall", leg024, wait)
                    .await
                    .expect("UnParkedCall");
                t.entry(if via { "unpark_uapid" } else { "unpark_direct" })
                    .or_default()
                    .push(at - t0);
                let door = tap.first("unpark", t0).expect("originate passed the tap");
                t.entry(if via {
                    "unpark_uapid_door"
                } else {
                    "unpark_direct_door"
                })
                .or_default()
                .push(door - t0);
            }
            // Transfer: 211 hands 024 over to 212.
            until("every unparked call bridged", 60, || async {
                let b: Value = ari.get("/bridges").await.ok()?;
                let n: usize = b
                    .as_array()?
                    .iter()
                    .filter(|b| b["bridge_class"] != "parking")
                    .map(|b| b["channels"].as_array().map(Vec::len).unwrap_or(0))
                    .sum();
                (n == 2 * per).then_some(())
            })
            .await;
            uapid_shows(&http, &admin, per, "with 211 talking", |vs| {
                vs.iter()
                    .any(|v| v["extension"] == "0003*211" && v["status"] == "5")
            })
            .await;
            let chans = ari.channels().await.expect("channels");
            for (i, (leg024, _, id)) in calls.iter().enumerate() {
                let via = (i + round) % 2 == 0;
                let t0 = Instant::now();
                if via {
                    let (st, _, text) = put(&http, &admin, id, json!({"action":"Transfer","sendCallTo":"0003*212","transferFromNumber":"0003*211","transferNumber":"0003*024"})).await;
                    assert_eq!(st, 202, "Transfer via uapid: {text}");
                } else {
                    ops.request(
                        Message::new()
                            .with("Action", "Redirect")
                            .with("Channel", leg024)
                            .with("Context", "phones")
                            .with("Exten", "0003*212")
                            .with("Priority", "1"),
                    )
                    .await
                    .expect("AMI Redirect");
                    // The second step, as uapid takes it: the transferring party leaves.
                    let lid = chans
                        .iter()
                        .find(|c| c.name == *leg024)
                        .and_then(|c| c.linkedid().map(str::to_string));
                    if let Some(c) = chans.iter().find(|c| {
                        c.name.starts_with("PJSIP/0003_211-")
                            && c.linkedid().map(str::to_string) == lid
                    }) {
                        let _ = ari_ops.hangup(&c.id).await;
                    }
                }
                let at = seen
                    .wait("DialBegin", leg024, wait)
                    .await
                    .expect("DialBegin");
                t.entry(if via {
                    "transfer_uapid"
                } else {
                    "transfer_direct"
                })
                .or_default()
                .push(at - t0);
                let door = tap.first("transfer", t0).expect("Redirect passed the tap");
                t.entry(if via {
                    "transfer_uapid_door"
                } else {
                    "transfer_direct_door"
                })
                .or_default()
                .push(door - t0);
            }
            hangup_all(&ari).await;
            seen.at.lock().unwrap().clear();
            tap.marks.lock().unwrap().clear();
        }
        let mut overhead =
            json!({ "cpu_steal_percent": steal_percent(actions_began, cpu_ticks()) });
        let mut pair = |u: &str, d: &str| {
            let mut take = |k: &str| t.remove(k).unwrap_or_default();
            let (mut us, mut ds) = (take(u), take(d));
            let ci = median_difference_interval(&us, &ds);
            let (mut u, d) = (summary(&mut us), summary(&mut ds));
            u["p50_minus_direct_p50_95ci_ms"] = json!(ci);
            let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let (o50, o99) = (
                f(&u, "p50_ms") - f(&d, "p50_ms"),
                f(&u, "p99_ms") - f(&d, "p99_ms"),
            );
            (u, d, o50, o99)
        };
        for action in ["park", "unpark", "transfer"] {
            let (u, d, o50, o99) = pair(&format!("{action}_uapid"), &format!("{action}_direct"));
            let (du, dd, d50, d99) = pair(
                &format!("{action}_uapid_door"),
                &format!("{action}_direct_door"),
            );
            if rounds == 0 {
                continue;
            }
            let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let ci = |v: &Value, i: usize| {
                v["p50_minus_direct_p50_95ci_ms"][i]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            };
            println!(
                "pbx: {action:<8} until Asterisk's event: via uapid p50 {:.2} ms p99 {:.2} ms | direct p50 {:.2} ms p99 {:.2} ms | difference p50 {o50:.2} ms (95% interval {:.2} to {:.2}) p99 {o99:.2} ms (n={})",
                f(&u, "p50_ms"), f(&u, "p99_ms"), f(&d, "p50_ms"), f(&d, "p99_ms"), ci(&u, 0), ci(&u, 1), u["n"]
            );
            println!(
                "pbx: {action:<8} until the operation reaches Asterisk: via uapid p50 {:.3} ms p99 {:.3} ms | direct p50 {:.3} ms p99 {:.3} ms | uapid adds p50 {d50:.3} ms (95% interval {:.3} to {:.3}) p99 {d99:.3} ms",
                f(&du, "p50_ms"), f(&du, "p99_ms"), f(&dd, "p50_ms"), f(&dd, "p99_ms"), ci(&du, 0), ci(&du, 1)
            );
            overhead[action] = json!({
                "until_event": { "uapid": u, "direct": d, "overhead_p50_ms": o50, "overhead_p99_ms": o99 },
                "until_operation_reaches_asterisk": { "uapid": du, "direct": dd, "overhead_p50_ms": d50, "overhead_p99_ms": d99 },
            });
        }

        // 3. Every call parked at once, then every call unparked at once.
        if !part("pbx-concurrency") {
            return json!({ "list": list_rows, "action_overhead": overhead });
        }
        let n = if quick { 20 } else { 200 };
        let _c = calls_from_210("024", n, 6210, 31000);
        let calls = legs(&ari, n).await;
        uapid_shows(&http, &admin, n, "answered", all_talking).await;
        let mut concurrency = json!({ "calls": n });
        for (action, body, event) in [
            (
                "park",
                json!({"action":"Park","maxInParking":3600,"phoneCallViewId":"01"}),
                "ParkedCall",
            ),
            (
                "unpark",
                json!({"action":"UnPark","sendCallTo":"0003*211","waitForPickup":30,"phoneCallViewId":"01"}),
                "UnParkedCall",
            ),
        ] {
            let start = Instant::now();
            let reqs: Vec<_> = calls
                .iter()
                .map(|(_, _, id)| {
                    let (http, admin, id, body) =
                        (http.clone(), admin.clone(), id.clone(), body.clone());
                    tokio::spawn(async move { put(&http, &admin, &id, body).await })
                })
                .collect();
            let mut lat = Vec::new();
            let mut errors = 0;
            for r in reqs {
                let (st, d, text) = r.await.expect("request task");
                if st != 202 {
                    errors += 1;
                    println!("pbx: {action}: {st} {text}");
                }
                lat.push(d);
            }
            let mut done = 0;
            for (leg024, _, _) in &calls {
                if seen
                    .wait(event, leg024, Duration::from_secs(60))
                    .await
                    .is_some()
                {
                    done += 1;
                }
            }
            let wall = start.elapsed();
            let s = summary(&mut lat);
            println!(
                "pbx: {action} {n} calls at once: {errors} errors, {} of {n} done in {:.2} s, request p50 {:.2} ms p99 {:.2} ms",
                done, wall.as_secs_f64(), s["p50_ms"].as_f64().unwrap_or(0.0), s["p99_ms"].as_f64().unwrap_or(0.0)
            );
            concurrency[action] = json!({ "errors": errors, "done": done, "lost": n - done, "wall_s": wall.as_secs_f64(), "requests": s });
        }
        // No call dropped: every parked leg talks to a 211 leg.
        let bridged: usize = {
            let b: Value = ari.get("/bridges").await.expect("bridges");
            b.as_array()
                .map(|b| {
                    b.iter()
                        .filter(|b| {
                            b["bridge_class"] != "parking"
                                && b["channels"].as_array().is_some_and(|c| c.len() == 2)
                        })
                        .count()
                })
                .unwrap_or(0)
        };
        println!("pbx: after UnPark all: {bridged} of {n} calls bridged two-way");
        concurrency["bridged_after"] = json!(bridged);
        hangup_all(&ari).await;
        drop(ami);
        json!({ "list": list_rows, "action_overhead": overhead, "concurrency": concurrency })
    }
}

#[cfg(test)]
mod tests {
    /// The replay and the size probe run, on a few calls, and measure what they say.
    #[test]
    fn tracker_parts_run_on_a_few_calls() {
        let per_call = super::template().life.len();
        let (eps, cpu_eps, events) = super::events_per_second(40);
        assert_eq!(events, 40 * per_call);
        assert!(eps.is_finite() && eps > 0.0);
        assert!(cpu_eps.is_finite() && cpu_eps > 0.0);
        let v = super::tracker_size(200);
        assert_eq!(v["calls"], 200);
        assert!(v["list_admin_p50_ms"].as_f64().is_some_and(|t| t > 0.0));
        assert!(v["list_user_p50_ms"].as_f64().is_some_and(|t| t > 0.0));
        let (before, after) = (super::cpu_ticks(), super::cpu_ticks());
        assert!(
            after.1 >= before.1 && (0.0..=100.0).contains(&super::steal_percent(before, after))
        );
    }
}
