//! What a run writes to `bench/results.json`. The README's figures are read from it, so
//! the names here are the file's keys; a part that did not run is left out.

use serde::{Deserialize, Serialize};

#[derive(Serialize)]
pub struct Results {
    pub machine: Machine,
    /// A `--quick` (smoke) run: small sizes.
    pub quick: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracker: Option<TrackerFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pbx: Option<PbxFigures>,
}

/// The machine a run was made on, and when it started.
#[derive(Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: Option<String>,
    pub when: String,
}

// ---------------------------------------------------------------------------------------
// Tracker

#[derive(Serialize)]
pub struct TrackerFigures {
    /// The median of the replays, by the clock.
    pub events_per_second: f64,
    /// Every replay, slowest first.
    pub events_per_second_runs: Vec<f64>,
    /// The median by the thread's own CPU time.
    pub events_per_cpu_second: f64,
    pub events_per_cpu_second_runs: Vec<f64>,
    /// CPU stolen by the hypervisor during the replays.
    pub cpu_steal_percent: f64,
    /// Events in one replay.
    pub events: usize,
    pub sizes: Vec<TrackerSize>,
    /// List p50 (admin) at the largest size over the same at 1k calls.
    pub list_growth_largest_vs_1k: f64,
    /// How the List index works, in words.
    pub index: &'static str,
}

/// `calls` answered calls in the tracker: memory and the cost of a List page. The size
/// probe's child process prints it, the parent reads it back.
#[derive(Serialize, Deserialize)]
pub struct TrackerSize {
    pub calls: usize,
    pub rss_kib: u64,
    pub bytes_per_call: f64,
    pub list_admin_p50_ms: f64,
    pub list_admin_p99_ms: f64,
    pub list_user_p50_ms: f64,
    pub list_user_p99_ms: f64,
}

// ---------------------------------------------------------------------------------------
// PBX

#[derive(Serialize)]
pub struct PbxFigures {
    /// Empty when the list part did not run.
    pub list: Vec<ListRow>,
    pub action_overhead: ActionOverhead,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
}

/// List beside ARI's `GET /channels` with `live_calls` calls up.
#[derive(Serialize)]
pub struct ListRow {
    pub live_calls: usize,
    pub clients_1: ListVsAri,
    pub clients_4: ListVsAri,
}

#[derive(Serialize)]
pub struct ListVsAri {
    pub list_admin: Load,
    pub list_user: Load,
    pub ari_channels: Load,
    pub ari_p50_over_list_p50: f64,
    pub ari_cpu_over_list_cpu: f64,
}

/// GETs for a while by some clients at once.
#[derive(Serialize)]
pub struct Load {
    pub requests: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub rps: f64,
    /// The server's CPU time per request, less its idle rate.
    pub server_cpu_us_per_request: f64,
}

/// Count and percentiles of some timings, in milliseconds.
#[derive(Serialize)]
pub struct Summary {
    pub n: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// On the uapid side of a comparison: the 95% bootstrap interval of its p50 minus
    /// the direct p50.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_minus_direct_p50_95ci_ms: Option<[f64; 2]>,
}

/// The actions through uapid vs directly; an action is left out when no round ran.
#[derive(Serialize)]
pub struct ActionOverhead {
    pub cpu_steal_percent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub park: Option<ActionFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpark: Option<ActionFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<ActionFigures>,
}

#[derive(Serialize)]
pub struct ActionFigures {
    pub until_event: Comparison,
    pub until_operation_reaches_asterisk: Comparison,
}

/// The same timing via uapid and direct; what uapid adds at p50 and p99.
#[derive(Serialize)]
pub struct Comparison {
    pub uapid: Summary,
    pub direct: Summary,
    pub overhead_p50_ms: f64,
    pub overhead_p99_ms: f64,
}

/// Park all at once, then UnPark all at once.
#[derive(Serialize)]
pub struct Concurrency {
    pub calls: usize,
    pub park: AllAtOnce,
    pub unpark: AllAtOnce,
    /// Calls bridged two-way after UnPark all.
    pub bridged_after: usize,
}

#[derive(Serialize)]
pub struct AllAtOnce {
    /// Requests not answered 202.
    pub errors: usize,
    /// Calls whose event came.
    pub done: usize,
    pub lost: usize,
    pub wall_s: f64,
    pub requests: Summary,
}
