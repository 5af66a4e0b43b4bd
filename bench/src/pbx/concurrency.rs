//! Part 3: every call parked at once through uapid, then every call unparked at once,
//! and whether any call was lost.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::calls::{all_talking, hangup_all, legs, uapid_shows, Call};
use super::http::put;
use super::sandbox::calls_from_210;
use super::Pbx;
use crate::results::{AllAtOnce, Concurrency};
use crate::stats::summary;

impl Pbx {
    pub(super) async fn concurrency(&self, quick: bool) -> Concurrency {
        let n = if quick { 20 } else { 200 };
        let _c = calls_from_210("024", n, 6210, 31000);
        let calls = legs(&self.ari, n).await;
        uapid_shows(&self.http, &self.admin, n, "answered", all_talking).await;
        let park = json!({"action":"Park","maxInParking":3600,"phoneCallViewId":"01"});
        let park = self
            .all_at_once(&calls, n, "park", park, "ParkedCall")
            .await;
        let unpark = json!({"action":"UnPark","sendCallTo":"0003*211","waitForPickup":30,"phoneCallViewId":"01"});
        let unpark = self
            .all_at_once(&calls, n, "unpark", unpark, "UnParkedCall")
            .await;
        // No call dropped: every parked leg talks to a 211 leg.
        let bridged: usize = {
            let b: Value = self.ari.get("/bridges").await.expect("bridges");
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
        hangup_all(&self.ari).await;
        Concurrency {
            calls: n,
            park,
            unpark,
            bridged_after: bridged,
        }
    }

    /// `action` (the UAPI `body`) on the `n` calls at once; done when Asterisk reports
    /// `event` for each.
    async fn all_at_once(
        &self,
        calls: &[Call],
        n: usize,
        action: &str,
        body: Value,
        event: &str,
    ) -> AllAtOnce {
        let start = Instant::now();
        let reqs: Vec<_> = calls
            .iter()
            .map(|c| {
                let (http, admin, id, body) = (
                    self.http.clone(),
                    self.admin.clone(),
                    c.id.clone(),
                    body.clone(),
                );
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
        for c in calls {
            if self
                .seen
                .wait(event, &c.leg024, Duration::from_secs(60))
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
            done, wall.as_secs_f64(), s.p50_ms, s.p99_ms
        );
        AllAtOnce {
            errors,
            done,
            lost: n - done,
            wall_s: wall.as_secs_f64(),
            requests: s,
        }
    }
}
