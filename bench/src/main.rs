//! `uapid-bench`: what uapid costs, in numbers (see README, "Performance").
//!
//! Sections:
//! - `tracker` ([`tracker`]): recorded ARI events replayed through the tracker as many
//!   synthetic calls: events/s on one core, memory per call, the cost of a List page.
//!   No Asterisk needed.
//! - `pbx` ([`pbx`]): against the sandbox PBX with live SIPp calls: List beside ARI's
//!   `GET /channels`, action overhead (through uapid vs directly), and Park/UnPark of
//!   every call at once.
//!
//! Prints a table and writes JSON (`--out FILE`, default `bench/results.json`).
//! `--quick` runs small sizes (a smoke run); `--only tracker|pbx|pbx-list|pbx-actions|
//! pbx-concurrency` runs one part.

mod listing;
mod machine;
mod pbx;
mod results;
mod stats;
mod tap;
mod tracker;

use std::io::Write;

use results::Results;

/// The repository: this package lives in its `bench/` directory.
fn repo() -> String {
    let bench = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).display().to_string()
}

/// The value after `flag` on the command line.
fn value_of(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--tracker-events") {
        // For profilers: only the replay.
        let n: usize = value_of(&args, "--tracker-events")
            .and_then(|n| n.parse().ok())
            .expect("--tracker-events CALLS");
        let (eps, cpu_eps, events) = tracker::events_per_second(n);
        println!("{events} events: {eps:.0} events/s ({cpu_eps:.0} per CPU second)");
        return;
    }
    if args.iter().any(|a| a == "--tracker-size") {
        // The size probe's child process (see `tracker::section`).
        let n: usize = value_of(&args, "--tracker-size")
            .and_then(|n| n.parse().ok())
            .expect("--tracker-size N");
        let size = tracker::tracker_size(n);
        println!("{}", serde_json::to_string(&size).expect("json"));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let out = value_of(&args, "--out").unwrap_or_else(|| format!("{}/bench/results.json", repo()));
    let only = value_of(&args, "--only");

    let mut results = Results {
        machine: machine::describe(),
        quick,
        tracker: None,
        pbx: None,
    };
    if only.as_deref().is_none_or(|o| o == "tracker") {
        results.tracker = Some(tracker::section(quick));
    }
    if only.as_deref().is_none_or(|o| o.starts_with("pbx")) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        results.pbx = Some(rt.block_on(pbx::run(quick, only.as_deref())));
    }
    write(&out, &results);
    println!("wrote {out}");
}

/// Writes `results` as pretty JSON. It goes through `serde_json::Value`, whose objects
/// keep their keys sorted: the file lists them in the same order from run to run (and
/// as before the results were typed), so two runs diff line by line.
fn write(out: &str, results: &Results) {
    if let Some(dir) = std::path::Path::new(out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let value = serde_json::to_value(results).expect("json");
    let mut f = std::fs::File::create(out).expect("write results");
    writeln!(f, "{}", serde_json::to_string_pretty(&value).expect("json")).expect("write");
}
