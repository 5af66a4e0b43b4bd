//! Part 1: uapid's List beside ARI's `GET /channels`, with live calls: latency,
//! throughput and each server's CPU time per request.

use serde_json::{json, Value};

use super::calls::{hangup_all, legs};
use super::http::{load, Server};
use super::sandbox::{asterisk_pid, calls_from_210};
use super::{Pbx, UAPID};

impl Pbx {
    pub(super) async fn list(&self, quick: bool) -> Vec<Value> {
        let secs = if quick { 1.0 } else { 3.0 };
        let sizes = if quick { vec![10] } else { vec![10, 100] };
        let mut rows = Vec::new();
        for n in sizes {
            rows.push(self.list_row(n, secs).await);
        }
        rows
    }

    /// With `n` live calls, by 1 and by 4 clients at once.
    async fn list_row(&self, n: usize, secs: f64) -> Value {
        let _c = calls_from_210("024", n, 6210, 31000);
        legs(&self.ari, n).await;
        let mut row = json!({ "live_calls": n });
        // Each server's CPU when nobody asks anything, with these calls up.
        let uapid = Server::idle(self.uapid_pid).await;
        let asterisk = Server::idle(asterisk_pid()).await;
        for workers in [1usize, 4] {
            row[format!("clients_{workers}")] =
                self.list_vs_ari(n, workers, secs, uapid, asterisk).await;
        }
        hangup_all(&self.ari).await;
        row
    }

    async fn list_vs_ari(
        &self,
        n: usize,
        workers: usize,
        secs: f64,
        uapid: Server,
        asterisk: Server,
    ) -> Value {
        let a = &self.settings.asterisk;
        let list_url = format!("http://{UAPID}/uapi/phoneCalls/@me/@self");
        let ari_url = format!("{}/ari/channels", a.ari_url);
        let http = &self.http;
        let admin_l = load(
            http,
            &list_url,
            None,
            Some(&self.admin),
            workers,
            secs,
            uapid,
        )
        .await;
        let user_l = load(
            http,
            &list_url,
            None,
            Some(&self.alice),
            workers,
            secs,
            uapid,
        )
        .await;
        let ari_auth = Some((a.ari_user.as_str(), a.ari_password.expose()));
        let ari_l = load(http, &ari_url, ari_auth, None, workers, secs, asterisk).await;
        let ratio =
            ari_l["p50_ms"].as_f64().unwrap_or(0.0) / admin_l["p50_ms"].as_f64().unwrap_or(1.0);
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
        json!({ "list_admin": admin_l, "list_user": user_l, "ari_channels": ari_l, "ari_p50_over_list_p50": ratio, "ari_cpu_over_list_cpu": ari_cpu / list_cpu })
    }
}
