//! Tracker scale: recorded ARI events (tests/fixtures/ext_call.jsonl) multiplied into
//! synthetic calls and replayed through the tracker: events/s on one core with JSON
//! parsing, memory per tracked call and the cost of a List page at 1k/10k/100k calls.
//! No Asterisk needed.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use uapid::calls::{Input, Tracker};

use crate::listing::{new_tracker, Pages, Scope};
use crate::machine::{cpu_ticks, rss_kib, steal_percent, thread_cpu};
use crate::repo;
use crate::results::{TrackerFigures, TrackerSize};
use crate::stats::pct;

/// The recorded call as JSON lines, and the ids to rename per synthetic call.
pub struct Template {
    /// The whole life of the call (created → destroyed).
    pub life: Vec<String>,
    /// How many of `life`'s lines bring it to answered and bridged (before hangup).
    live: usize,
    ids: Vec<String>,
}

pub fn template() -> Template {
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

/// Calls generated at a time: the daemon parses each message right after reading it from
/// the socket, while it is in cache; a small batch (about 340 KB of JSON) stays in cache
/// as well, where one of 1,000 calls (17 MB) would be read back from memory.
const BATCH: usize = 20;

/// Events per second through parse + apply on this thread, by the wall clock and by the
/// thread's own CPU time.
pub fn events_per_second(calls: usize) -> (f64, f64, usize) {
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

/// p50 and p99 of 2,000 List pages of `scope`'s calls, built and serialized. The JSON
/// is freed inside the time, the built page after it (as the figures have always been
/// taken).
fn page_times(t: &Tracker, scope: &Scope) -> (f64, f64) {
    let pages = Pages::default();
    let mut times = Vec::new();
    for _ in 0..2000 {
        let s = Instant::now();
        let page = pages.page(t, scope);
        let body = page.to_json();
        std::hint::black_box(body);
        times.push(s.elapsed());
        drop(page);
    }
    times.sort();
    (pct(&times, 50.0), pct(&times, 99.0))
}

/// In a fresh process: `n` answered calls tracked; memory and List cost.
pub fn tracker_size(n: usize) -> TrackerSize {
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
    let (admin50, admin99) = page_times(&t, &Scope::all());
    let (user50, user99) = page_times(&t, &Scope::user(12));
    TrackerSize {
        calls: n,
        rss_kib: used,
        bytes_per_call: used as f64 * 1024.0 / n as f64,
        list_admin_p50_ms: admin50,
        list_admin_p99_ms: admin99,
        list_user_p50_ms: user50,
        list_user_p99_ms: user99,
    }
}

/// The replay, repeated: the CPU this runs on is shared (see `cpu_ticks`); the median is
/// the figure, the spread is shown beside it. The rate per second of the thread's own
/// CPU time leaves out the time the core was taken away from it. The sizes are left for
/// [`section`] to fill in.
fn replay(quick: bool) -> TrackerFigures {
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
    TrackerFigures {
        events_per_second: eps,
        events_per_second_runs: runs,
        events_per_cpu_second: cpu_eps,
        events_per_cpu_second_runs: cpu_runs,
        cpu_steal_percent: steal,
        events,
        sizes: Vec::new(),
        list_growth_largest_vs_1k: f64::NAN,
        index: INDEX,
    }
}

/// [`tracker_size`] in a child process per size: memory freed by a previous size cannot
/// hide growth.
fn size_probe(n: usize) -> TrackerSize {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args(["--tracker-size", &n.to_string()])
        .output()
        .expect("run the size probe");
    let v: TrackerSize = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("size probe: {}", String::from_utf8_lossy(&out.stderr)));
    println!(
        "tracker: {:>7} calls: {:>8.0} B/call   List page p50 admin {:.3} ms, user {:.3} ms (p99 {:.3} / {:.3})",
        n,
        v.bytes_per_call,
        v.list_admin_p50_ms,
        v.list_user_p50_ms,
        v.list_admin_p99_ms,
        v.list_user_p99_ms,
    );
    v
}

/// How the List index works, written beside the figures.
const INDEX: &str = "per scope (all, organization, user, extension) a BTreeSet ordered by (published, id); a page walks it from the start";

pub fn section(quick: bool) -> TrackerFigures {
    let mut figures = replay(quick);
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let rows: Vec<TrackerSize> = sizes.iter().map(|&n| size_probe(n)).collect();
    let p50 = |r: Option<&TrackerSize>| r.map_or(f64::NAN, |r| r.list_admin_p50_ms);
    let (first, last) = (p50(rows.first()), p50(rows.last()));
    println!(
        "tracker: List p50 at the largest size / at 1k: {:.2}x",
        last / first
    );
    figures.sizes = rows;
    figures.list_growth_largest_vs_1k = last / first;
    figures
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
        assert_eq!(v.calls, 200);
        assert!(v.list_admin_p50_ms > 0.0);
        assert!(v.list_user_p50_ms > 0.0);
        // What the size probe's child prints, its parent reads back.
        let line = serde_json::to_string(&v).expect("json");
        let back: crate::results::TrackerSize = serde_json::from_str(&line).expect("reads back");
        assert_eq!((back.calls, back.rss_kib), (v.calls, v.rss_kib));
    }
}
