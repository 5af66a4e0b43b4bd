//! Part 1: uapid's List beside ARI's `GET /channels`, with live calls: latency,
//! throughput and each server's CPU time per request.

use super::calls::{hangup_all, legs};
use super::http::{load, Server};
use super::sandbox::{asterisk_pid, calls_from_210};
use super::{Pbx, UAPID};
use crate::results::{ListRow, ListVsAri};

impl Pbx {
    pub(super) async fn list(&self, quick: bool) -> Vec<ListRow> {
        let secs = if quick { 1.0 } else { 3.0 };
        let sizes = if quick { vec![10] } else { vec![10, 100] };
        let mut rows = Vec::new();
        for n in sizes {
            rows.push(self.list_row(n, secs).await);
        }
        rows
    }

    /// With `n` live calls, by 1 and by 4 clients at once.
    async fn list_row(&self, n: usize, secs: f64) -> ListRow {
        let _c = calls_from_210("024", n, 6210, 31000);
        legs(&self.ari, n).await;
        // Each server's CPU when nobody asks anything, with these calls up.
        let uapid = Server::idle(self.uapid_pid).await;
        let asterisk = Server::idle(asterisk_pid()).await;
        let row = ListRow {
            live_calls: n,
            clients_1: self.list_vs_ari(n, 1, secs, uapid, asterisk).await,
            clients_4: self.list_vs_ari(n, 4, secs, uapid, asterisk).await,
        };
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
    ) -> ListVsAri {
        let a = &self.settings.asterisk;
        let list_url = format!("http://{UAPID}/uapi/phoneCalls/@me/@self");
        let ari_url = format!("{}/ari/channels", a.ari_url);
        let http = &self.http;
        let admin = load(
            http,
            &list_url,
            None,
            Some(&self.admin),
            workers,
            secs,
            uapid,
        )
        .await;
        let user = load(
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
        let ari = load(http, &ari_url, ari_auth, None, workers, secs, asterisk).await;
        let ratio = ari.p50_ms / admin.p50_ms;
        println!(
            "pbx: {n:>3} calls, {workers} client(s): List admin p50 {:.3} ms p99 {:.3} ms {:.0} req/s | user p50 {:.3} ms {:.0} req/s | ARI GET /channels p50 {:.3} ms p99 {:.3} ms {:.0} req/s | ARI p50 / List p50 = {ratio:.1}x",
            admin.p50_ms, admin.p99_ms, admin.rps,
            user.p50_ms, user.rps,
            ari.p50_ms, ari.p99_ms, ari.rps,
        );
        let (list_cpu, ari_cpu) = (
            admin.server_cpu_us_per_request,
            ari.server_cpu_us_per_request,
        );
        println!(
            "pbx: {n:>3} calls, {workers} client(s): server CPU per request: uapid List {list_cpu:.0} us, Asterisk GET /channels {ari_cpu:.0} us ({:.1}x)",
            ari_cpu / list_cpu
        );
        ListVsAri {
            list_admin: admin,
            list_user: user,
            ari_channels: ari,
            ari_p50_over_list_p50: ratio,
            ari_cpu_over_list_cpu: ari_cpu / list_cpu,
        }
    }
}
