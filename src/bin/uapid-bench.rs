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

/// p-th percentile (0..=100) of durations, in milliseconds.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn repo() -> String {
    env!("CARGO_MANIFEST_DIR").to_string()
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

fn parse_apply(t: &mut Tracker, line: &str) {
    let ev: uapid::asterisk::ari::Event = serde_json::from_str(line).expect("fixture event parses");
    t.apply(Input::AriEvent(Box::new(ev)));
}

fn new_tracker() -> Tracker {
    Tracker::new(Arc::new(
        Directory::build(&Settings::defaults().directory).expect("directory"),
    ))
}

/// Events per second through parse + apply, on this thread.
fn events_per_second(calls: usize) -> (f64, usize) {
    let tpl = template();
    let mut t = new_tracker();
    let mut spent = Duration::ZERO;
    let mut events = 0;
    for batch in (0..calls).collect::<Vec<_>>().chunks(1000) {
        let lines: Vec<String> = batch
            .iter()
            .flat_map(|&n| tpl.call(n, tpl.life.len()))
            .collect();
        let start = Instant::now();
        for l in &lines {
            parse_apply(&mut t, l);
        }
        spent += start.elapsed();
        events += lines.len();
    }
    assert_eq!(t.call_count(), 0, "every synthetic call ended");
    (events as f64 / spent.as_secs_f64(), events)
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
    let (eps, events) = events_per_second(if quick { 2_000 } else { 20_000 });
    println!("tracker: {events} events parsed and applied on one core: {eps:.0} events/s");
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
        let (eps, events) = events_per_second(n);
        println!("{events} events: {eps:.0} events/s");
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
    if only.as_deref().is_none_or(|o| o == "pbx") {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        results["pbx"] = rt.block_on(pbx::run(quick));
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
    use serde_json::{json, Value};

    pub async fn run(_quick: bool) -> Value {
        json!(null)
    }
}
