//! Part 2: action overhead. Park, UnPark and Transfer through uapid vs the same
//! operation sent straight to Asterisk, each timed until Asterisk reports the outcome
//! and until the operation passes the tap. One helper, [`Pbx::time_each`], times all
//! three; what differs between them is in [`Action`] and in the direct operation.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uapid::asterisk::ami::Message;
use uapid::asterisk::ari::{Bridge, Channel};

use super::calls::{all_talking, hangup_all, legs, uapid_shows, until, Call};
use super::http::put;
use super::sandbox::calls_from_210;
use super::Pbx;
use crate::machine::{cpu_ticks, steal_percent};
use crate::results::{ActionFigures, ActionOverhead, Comparison};
use crate::stats::{median_difference_interval, summary};

/// How long an action may take to show in Asterisk's events.
const WAIT: Duration = Duration::from_secs(20);

/// Calls per round: every call streams RTP through Asterisk, and on two cores fewer
/// streams at once leave less noise on a millisecond-sized difference.
const PER: usize = 10;

/// One of the timed actions.
struct Action {
    /// Its name in the table and the results, and the tap's mark for it.
    name: &'static str,
    /// The UAPI action, for messages.
    uapi: &'static str,
    /// The UAPI request's body.
    body: fn() -> Value,
    /// The AMI event that reports it done for the 024 leg.
    event: &'static str,
    /// The direct operation as the tap sees it, for messages.
    direct: &'static str,
}

const PARK: Action = Action {
    name: "park",
    uapi: "Park",
    body: || json!({"action":"Park","maxInParking":3600,"phoneCallViewId":"01"}),
    event: "ParkedCall",
    direct: "Park",
};

/// The parked legs (024) go to 211.
const UNPARK: Action = Action {
    name: "unpark",
    uapi: "UnPark",
    body: || json!({"action":"UnPark","sendCallTo":"0003*211","waitForPickup":20,"phoneCallViewId":"01"}),
    event: "UnParkedCall",
    direct: "originate",
};

/// 211 hands 024 over to 212.
const TRANSFER: Action = Action {
    name: "transfer",
    uapi: "Transfer",
    body: || json!({"action":"Transfer","sendCallTo":"0003*212","transferFromNumber":"0003*211","transferNumber":"0003*024"}),
    event: "DialBegin",
    direct: "Redirect",
};

/// Times from an action's start, on one path (via uapid or direct).
#[derive(Default)]
struct Timings {
    /// Until Asterisk's event.
    event: Vec<Duration>,
    /// Until the operation passed the tap.
    tap: Vec<Duration>,
}

/// One action's times on both paths.
#[derive(Default)]
struct Samples {
    uapid: Timings,
    direct: Timings,
}

#[derive(Default)]
struct AllSamples {
    park: Samples,
    unpark: Samples,
    transfer: Samples,
}

impl Pbx {
    /// `rounds` rounds of [`PER`] calls; each call takes every action once, half of the
    /// calls through uapid and half directly, alternating by round.
    pub(super) async fn action_overhead(&self, rounds: usize) -> ActionOverhead {
        let mut all = AllSamples::default();
        let began = cpu_ticks();
        for round in 0..rounds {
            self.action_round(round, &mut all).await;
        }
        let cpu_steal_percent = steal_percent(began, cpu_ticks());
        let figures = |action: &Action, s: Samples| {
            let f = ActionFigures {
                until_event: compare(s.uapid.event, s.direct.event),
                until_operation_reaches_asterisk: compare(s.uapid.tap, s.direct.tap),
            };
            (rounds > 0).then(|| {
                print_action(action.name, &f);
                f
            })
        };
        ActionOverhead {
            cpu_steal_percent,
            park: figures(&PARK, all.park),
            unpark: figures(&UNPARK, all.unpark),
            transfer: figures(&TRANSFER, all.transfer),
        }
    }

    async fn action_round(&self, round: usize, all: &mut AllSamples) {
        let _c = calls_from_210("024", PER, 6210, 31000);
        let calls = legs(&self.ari, PER).await;
        uapid_shows(&self.http, &self.admin, PER, "answered", all_talking).await;
        self.time_each(&PARK, &calls, round, &mut all.park, |c| self.park_direct(c))
            .await;
        let lot = {
            let v: Value = self.ari.get("/bridges").await.expect("bridges");
            v.as_array()
                .map(|b| b.iter().filter(|b| b["bridge_class"] == "parking").count())
                .unwrap_or(0)
        };
        assert!(lot > 0, "calls parked");
        uapid_shows(&self.http, &self.admin, PER, "parked", |vs| {
            vs.iter().any(|v| v.get("parked").is_some())
        })
        .await;
        let parked = self.parking_spaces().await;
        let chans = self.ari.channels().await.expect("channels");
        let unpark = |c| self.unpark_direct(c, &parked, &chans);
        self.time_each(&UNPARK, &calls, round, &mut all.unpark, unpark)
            .await;
        self.all_bridged().await;
        uapid_shows(&self.http, &self.admin, PER, "with 211 talking", |vs| {
            vs.iter()
                .any(|v| v["extension"] == "0003*211" && v["status"] == "5")
        })
        .await;
        let chans = self.ari.channels().await.expect("channels");
        let bridges = self.ari.bridges().await.expect("bridges");
        let transfer = |c| self.transfer_direct(c, &chans, &bridges);
        self.time_each(&TRANSFER, &calls, round, &mut all.transfer, transfer)
            .await;
        hangup_all(&self.ari).await;
        self.seen.clear();
        self.tap.clear();
    }

    /// The timing helper: `action` on each of `calls`, through uapid or with `direct`
    /// (alternating by call and by round); the time until Asterisk's event and until the
    /// operation passed the tap, into `s`.
    async fn time_each<'c, F: Future<Output = ()>>(
        &self,
        action: &Action,
        calls: &'c [Call],
        round: usize,
        s: &mut Samples,
        direct: impl Fn(&'c Call) -> F,
    ) {
        for (i, c) in calls.iter().enumerate() {
            let via = (i + round).is_multiple_of(2);
            let t0 = Instant::now();
            if via {
                let (st, _, text) = put(&self.http, &self.admin, &c.id, (action.body)()).await;
                assert_eq!(st, 202, "{} via uapid: {text}", action.uapi);
            } else {
                direct(c).await;
            }
            let at = self
                .seen
                .wait(action.event, &c.leg024, WAIT)
                .await
                .expect(action.event);
            let passed = self
                .tap
                .first(action.name, t0)
                .unwrap_or_else(|| panic!("{} passed the tap", action.direct));
            let path = if via { &mut s.uapid } else { &mut s.direct };
            path.event.push(at - t0);
            path.tap.push(passed - t0);
        }
    }

    async fn park_direct(&self, c: &Call) {
        self.ops
            .request(
                Message::new()
                    .with("Action", "Park")
                    .with("Channel", &c.leg024)
                    .with("TimeoutChannel", &c.leg210)
                    .with("Timeout", "3600000"),
            )
            .await
            .expect("AMI Park");
    }

    /// An ARI originate from 211 into the call's parking space, as uapid's UnPark does.
    async fn unpark_direct(&self, c: &Call, parked: &HashMap<String, String>, chans: &[Channel]) {
        let space = parked.get(&c.leg024).expect("parked space").clone();
        let originator = chans
            .iter()
            .find(|ch| ch.name == *c.leg024)
            .map(|ch| ch.id.clone())
            .unwrap_or_default();
        self.ari_ops
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

    /// AMI Redirect of 024 to 212, then the second step as uapid takes it: the
    /// transferring party (211) leaves.
    async fn transfer_direct(&self, c: &Call, chans: &[Channel], bridges: &[Bridge]) {
        let leg024 = chans
            .iter()
            .find(|ch| ch.name == *c.leg024)
            .map(|ch| ch.id.clone());
        let peer211 = bridges
            .iter()
            .find(|b| leg024.as_ref().is_some_and(|l| b.channels.contains(l)))
            .and_then(|b| {
                b.channels.iter().find(|id| {
                    chans
                        .iter()
                        .any(|ch| ch.id == **id && ch.name.starts_with("PJSIP/0003_211-"))
                })
            })
            .cloned();
        self.ops
            .request(
                Message::new()
                    .with("Action", "Redirect")
                    .with("Channel", &c.leg024)
                    .with("Context", "phones")
                    .with("Exten", "212")
                    .with("Priority", "1"),
            )
            .await
            .expect("AMI Redirect");
        // 211's leg: the one bridged with 024 (found before the Redirect took 024 out).
        if let Some(id) = &peer211 {
            let _ = self.ari_ops.hangup(id).await;
        }
    }

    /// The parking space of each parked leg, by the leg's name.
    async fn parking_spaces(&self) -> HashMap<String, String> {
        let r = self
            .ami
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
    }

    /// Waits until every unparked call is bridged two-way again (with 211).
    async fn all_bridged(&self) {
        until("every unparked call bridged", 60, || async {
            let b: Value = self.ari.get("/bridges").await.ok()?;
            let n: usize = b
                .as_array()?
                .iter()
                .filter(|b| b["bridge_class"] != "parking")
                .map(|b| b["channels"].as_array().map(Vec::len).unwrap_or(0))
                .sum();
            (n == 2 * PER).then_some(())
        })
        .await;
    }
}

/// The samples via uapid and direct summarized, the uapid side with the 95% interval
/// of the p50 difference (drawn from the samples in the order they were taken).
fn compare(mut us: Vec<Duration>, mut ds: Vec<Duration>) -> Comparison {
    let ci = median_difference_interval(&us, &ds);
    let (mut uapid, direct) = (summary(&mut us), summary(&mut ds));
    uapid.p50_minus_direct_p50_95ci_ms = Some(ci);
    Comparison {
        overhead_p50_ms: uapid.p50_ms - direct.p50_ms,
        overhead_p99_ms: uapid.p99_ms - direct.p99_ms,
        uapid,
        direct,
    }
}

fn print_action(action: &str, f: &ActionFigures) {
    let (e, o) = (&f.until_event, &f.until_operation_reaches_asterisk);
    let ci = |c: &Comparison| {
        c.uapid
            .p50_minus_direct_p50_95ci_ms
            .unwrap_or([f64::NAN; 2])
    };
    let (eci, oci) = (ci(e), ci(o));
    println!(
        "pbx: {action:<8} until Asterisk's event: via uapid p50 {:.2} ms p99 {:.2} ms | direct p50 {:.2} ms p99 {:.2} ms | difference p50 {:.2} ms (95% interval {:.2} to {:.2}) p99 {:.2} ms (n={})",
        e.uapid.p50_ms, e.uapid.p99_ms, e.direct.p50_ms, e.direct.p99_ms, e.overhead_p50_ms, eci[0], eci[1], e.overhead_p99_ms, e.uapid.n
    );
    println!(
        "pbx: {action:<8} until the operation reaches Asterisk: via uapid p50 {:.3} ms p99 {:.3} ms | direct p50 {:.3} ms p99 {:.3} ms | uapid adds p50 {:.3} ms (95% interval {:.3} to {:.3}) p99 {:.3} ms",
        o.uapid.p50_ms, o.uapid.p99_ms, o.direct.p50_ms, o.direct.p99_ms, o.overhead_p50_ms, oci[0], oci[1], o.overhead_p99_ms
    );
}
