//! Part 2: action overhead. Park, UnPark and Transfer through uapid vs the same
//! operation sent straight to Asterisk, each timed until Asterisk reports the outcome
//! and until the operation passes the tap.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uapid::asterisk::ami::Message;

use super::calls::{all_talking, hangup_all, legs, uapid_shows, until, Call};
use super::http::put;
use super::sandbox::calls_from_210;
use super::Pbx;
use crate::machine::{cpu_ticks, steal_percent};
use crate::stats::{median_difference_interval, summary};

type Samples = HashMap<&'static str, Vec<Duration>>;

/// How long an action may take to show in Asterisk's events.
const WAIT: Duration = Duration::from_secs(20);

/// Calls per round: every call streams RTP through Asterisk, and on two cores fewer
/// streams at once leave less noise on a millisecond-sized difference.
const PER: usize = 10;

impl Pbx {
    /// `rounds` rounds of [`PER`] calls; each call takes every action once, half of the
    /// calls through uapid and half directly, alternating by round.
    pub(super) async fn action_overhead(&self, rounds: usize) -> Value {
        let mut t = Samples::new();
        let began = cpu_ticks();
        for round in 0..rounds {
            self.action_round(round, &mut t).await;
        }
        let mut overhead = json!({ "cpu_steal_percent": steal_percent(began, cpu_ticks()) });
        for action in ["park", "unpark", "transfer"] {
            let (u, d, o50, o99) = pair(
                &mut t,
                &format!("{action}_uapid"),
                &format!("{action}_direct"),
            );
            let (du, dd, d50, d99) = pair(
                &mut t,
                &format!("{action}_uapid_door"),
                &format!("{action}_direct_door"),
            );
            if rounds == 0 {
                continue;
            }
            print_action(action, (&u, &d, o50, o99), (&du, &dd, d50, d99));
            overhead[action] = json!({
                "until_event": { "uapid": u, "direct": d, "overhead_p50_ms": o50, "overhead_p99_ms": o99 },
                "until_operation_reaches_asterisk": { "uapid": du, "direct": dd, "overhead_p50_ms": d50, "overhead_p99_ms": d99 },
            });
        }
        overhead
    }

    async fn action_round(&self, round: usize, t: &mut Samples) {
        let _c = calls_from_210("024", PER, 6210, 31000);
        let calls = legs(&self.ari, PER).await;
        uapid_shows(&self.http, &self.admin, PER, "answered", all_talking).await;
        self.park_each(&calls, round, t).await;
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
        // UnPark: the parked legs (024) go to 211.
        self.unpark_each(&calls, round, t).await;
        // Transfer: 211 hands 024 over to 212.
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
        uapid_shows(&self.http, &self.admin, PER, "with 211 talking", |vs| {
            vs.iter()
                .any(|v| v["extension"] == "0003*211" && v["status"] == "5")
        })
        .await;
        self.transfer_each(&calls, round, t).await;
        hangup_all(&self.ari).await;
        self.seen.clear();
        self.tap.clear();
    }

    async fn park_each(&self, calls: &[Call], round: usize, t: &mut Samples) {
        for (i, c) in calls.iter().enumerate() {
            let via = (i + round).is_multiple_of(2);
            let t0 = Instant::now();
            if via {
                let (st, _, text) = put(
                    &self.http,
                    &self.admin,
                    &c.id,
                    json!({"action":"Park","maxInParking":3600,"phoneCallViewId":"01"}),
                )
                .await;
                assert_eq!(st, 202, "Park via uapid: {text}");
            } else {
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
            let at = self
                .seen
                .wait("ParkedCall", &c.leg024, WAIT)
                .await
                .expect("ParkedCall");
            t.entry(if via { "park_uapid" } else { "park_direct" })
                .or_default()
                .push(at - t0);
            let door = self.tap.first("park", t0).expect("Park passed the tap");
            t.entry(if via {
                "park_uapid_door"
            } else {
                "park_direct_door"
            })
            .or_default()
            .push(door - t0);
        }
    }

    async fn unpark_each(&self, calls: &[Call], round: usize, t: &mut Samples) {
        let parked: HashMap<String, String> = {
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
        };
        let chans = self.ari.channels().await.expect("channels");
        for (i, c) in calls.iter().enumerate() {
            let via = (i + round).is_multiple_of(2);
            let t0 = Instant::now();
            if via {
                let (st, _, text) = put(&self.http, &self.admin, &c.id, json!({"action":"UnPark","sendCallTo":"0003*211","waitForPickup":20,"phoneCallViewId":"01"})).await;
                assert_eq!(st, 202, "UnPark via uapid: {text}");
            } else {
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
            let at = self
                .seen
                .wait("UnParkedCall", &c.leg024, WAIT)
                .await
                .expect("UnParkedCall");
            t.entry(if via { "unpark_uapid" } else { "unpark_direct" })
                .or_default()
                .push(at - t0);
            let door = self
                .tap
                .first("unpark", t0)
                .expect("originate passed the tap");
            t.entry(if via {
                "unpark_uapid_door"
            } else {
                "unpark_direct_door"
            })
            .or_default()
            .push(door - t0);
        }
    }

    async fn transfer_each(&self, calls: &[Call], round: usize, t: &mut Samples) {
        let chans = self.ari.channels().await.expect("channels");
        for (i, c) in calls.iter().enumerate() {
            let via = (i + round).is_multiple_of(2);
            let t0 = Instant::now();
            if via {
                let (st, _, text) = put(&self.http, &self.admin, &c.id, json!({"action":"Transfer","sendCallTo":"0003*212","transferFromNumber":"0003*211","transferNumber":"0003*024"})).await;
                assert_eq!(st, 202, "Transfer via uapid: {text}");
            } else {
                self.ops
                    .request(
                        Message::new()
                            .with("Action", "Redirect")
                            .with("Channel", &c.leg024)
                            .with("Context", "phones")
                            .with("Exten", "0003*212")
                            .with("Priority", "1"),
                    )
                    .await
                    .expect("AMI Redirect");
                // The second step, as uapid takes it: the transferring party leaves.
                let lid = chans
                    .iter()
                    .find(|ch| ch.name == *c.leg024)
                    .and_then(|ch| ch.linkedid().map(str::to_string));
                if let Some(ch) = chans.iter().find(|ch| {
                    ch.name.starts_with("PJSIP/0003_211-")
                        && ch.linkedid().map(str::to_string) == lid
                }) {
                    let _ = self.ari_ops.hangup(&ch.id).await;
                }
            }
            let at = self
                .seen
                .wait("DialBegin", &c.leg024, WAIT)
                .await
                .expect("DialBegin");
            t.entry(if via {
                "transfer_uapid"
            } else {
                "transfer_direct"
            })
            .or_default()
            .push(at - t0);
            let door = self
                .tap
                .first("transfer", t0)
                .expect("Redirect passed the tap");
            t.entry(if via {
                "transfer_uapid_door"
            } else {
                "transfer_direct_door"
            })
            .or_default()
            .push(door - t0);
        }
    }
}

/// The samples `u` (via uapid) and `d` (direct) summarized, the uapid side with the 95%
/// interval of the p50 difference; the differences of p50 and of p99.
fn pair(t: &mut Samples, u: &str, d: &str) -> (Value, Value, f64, f64) {
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
}

fn print_action(
    action: &str,
    (u, d, o50, o99): (&Value, &Value, f64, f64),
    (du, dd, d50, d99): (&Value, &Value, f64, f64),
) {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let ci = |v: &Value, i: usize| {
        v["p50_minus_direct_p50_95ci_ms"][i]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    println!(
        "pbx: {action:<8} until Asterisk's event: via uapid p50 {:.2} ms p99 {:.2} ms | direct p50 {:.2} ms p99 {:.2} ms | difference p50 {o50:.2} ms (95% interval {:.2} to {:.2}) p99 {o99:.2} ms (n={})",
        f(u, "p50_ms"), f(u, "p99_ms"), f(d, "p50_ms"), f(d, "p99_ms"), ci(u, 0), ci(u, 1), u["n"]
    );
    println!(
        "pbx: {action:<8} until the operation reaches Asterisk: via uapid p50 {:.3} ms p99 {:.3} ms | direct p50 {:.3} ms p99 {:.3} ms | uapid adds p50 {d50:.3} ms (95% interval {:.3} to {:.3}) p99 {d99:.3} ms",
        f(du, "p50_ms"), f(du, "p99_ms"), f(dd, "p50_ms"), f(dd, "p99_ms"), ci(du, 0), ci(du, 1)
    );
}
