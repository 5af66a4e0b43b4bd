//! The calls on the PBX: waiting until they are as a step needs them, their legs, and
//! hanging them all up.

use std::time::{Duration, Instant};

use serde_json::Value;
use uapid::asterisk::ari::AriRest;
use uapid::calls::phone_call_id;

use super::UAPID;

/// One answered call 210 → 024.
pub struct Call {
    /// 024's leg (the channel's name).
    pub leg024: String,
    /// 210's leg.
    pub leg210: String,
    /// uapid's phoneCallId.
    pub id: String,
}

/// Polls `f` every 50 ms until it gives a value; panics after `secs`.
pub async fn until<T, F: std::future::Future<Output = Option<T>>>(
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

pub async fn hangup_all(ari: &AriRest) {
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

/// Waits for `n` answered calls 210 → 024, and names their legs.
pub async fn legs(ari: &AriRest, n: usize) -> Vec<Call> {
    until(&format!("{n} answered and bridged calls"), 120, || async {
        let chans = ari.channels().await.ok()?;
        let up = chans.iter().filter(|c| c.state == "Up").count();
        let bridges = ari.bridges().await.ok()?;
        let paired = bridges.iter().filter(|b| b.channels.len() == 2).count();
        (chans.len() == 2 * n && up == 2 * n && paired == n).then_some(())
    })
    .await;
    // Each call's two legs share a Dial() bridge; 210's leg started the call, so its
    // id is the call's linkedid (the sandbox's ARI carries no channelvars, as on a PBX
    // nobody configured for uapid).
    let chans = ari.channels().await.expect("channels");
    let bridges = ari.bridges().await.expect("bridges");
    let name = |id: &str| {
        chans
            .iter()
            .find(|c| c.id == id)
            .map(|c| (c.id.to_string(), c.name.to_string()))
    };
    bridges
        .iter()
        .filter(|b| b.channels.len() == 2)
        .filter_map(|b| {
            let (a, z) = (name(&b.channels[0])?, name(&b.channels[1])?);
            let (leg024, leg210) = if a.1.starts_with("PJSIP/0003_024-") {
                (a, z)
            } else {
                (z, a)
            };
            Some(Call {
                leg024: leg024.1,
                id: phone_call_id(&leg210.0),
                leg210: leg210.1,
            })
        })
        .collect()
}

/// Waits until uapid lists `n` calls, each as `ok` wants it: what a client sees before
/// it acts (Asterisk's own listing can be a few events ahead of uapid's).
pub async fn uapid_shows(
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
pub fn all_talking(views: &[Value]) -> bool {
    !views.is_empty() && views.iter().all(|v| v["status"] == "5")
}
