//! End to end: Asterisk restarts under a running uapid. uapid notices, reconnects ARI and
//! AMI with backoff, resynchronizes, and its listing is right again.
//!
//! The test holds the PBX ([`TestApp`]) while Asterisk is down, so no other test (of this
//! binary or another process) runs meanwhile; if it fails with Asterisk down, Asterisk is
//! started again before the PBX is released.

use crate::helpers::*;
use crate::sipp::*;
use serde_json::Value;

/// Asterisk stopped; started again by [`AsteriskStopped::start`], or when dropped.
struct AsteriskStopped(bool);

impl AsteriskStopped {
    fn now() -> AsteriskStopped {
        sandbox_cmd(&["stop"]);
        AsteriskStopped(true)
    }

    /// Starts Asterisk (the runner waits until ARI and AMI answer).
    fn start(mut self) {
        self.0 = false;
        sandbox_cmd(&["start"]);
    }
}

impl Drop for AsteriskStopped {
    fn drop(&mut self) {
        if self.0 {
            // The test failed meanwhile: no assertion here (a panic while panicking aborts).
            let _ = std::process::Command::new("bash")
                .args([&sandbox_script(), "start"])
                .status();
        }
    }
}

async fn health(api: &Api) -> (u16, Value) {
    let resp = api
        .http
        .get(format!("{}/health", api.base))
        .send()
        .await
        .expect("health");
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn asterisk_restart_is_survived() {
    let app = TestApp::spawn().await;
    let admin = app.api.token_for("admin-app").await;
    let path = "/uapi/phoneCalls/@me/@self";

    let p024 = phone_answering("024", 100);
    let c = dial_from_phone("210", "024", 1);
    let before = app
        .api
        .wait_calls(path, &admin, "call before the restart", |c| {
            c.len() == 1 && status_of(&c[0], "0003*024").as_deref() == Some("5")
        })
        .await;
    drop((c, p024));

    // Asterisk goes away and comes back (the runner waits until ARI and AMI answer).
    let asterisk = AsteriskStopped::now();
    eventually("uapid to notice Asterisk is gone", || async {
        let (st, h) = health(&app.api).await;
        (st == 503 && h["ari"] == false && h["ami"] == false).then_some(())
    })
    .await;
    // Asterisk unreachable (its calls ended with it): creating a call answers 503 with
    // a UAPI error body, and nothing is left half-done.
    let (st, body) = app
        .api
        .send(
            reqwest::Method::POST,
            "/uapi/phoneCalls/12/simple",
            &admin,
            Some(serde_json::json!({"extension":"0003*210","phoneCallView":[{"destination":["0003*024"]}]})),
        )
        .await;
    assert_eq!(st, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{body}"
    );

    asterisk.start();
    eventually("uapid to reconnect", || async {
        let (st, _) = health(&app.api).await;
        (st == 200).then_some(())
    })
    .await;

    // The old call died with Asterisk; the listing says so.
    app.api
        .wait_calls(path, &admin, "the dead call to go", |c| c.is_empty())
        .await;

    // New calls show as before.
    let _p = phone_answering("024", 100);
    let _c = dial_from_phone("210", "024", 1);
    let after = app
        .api
        .wait_calls(path, &admin, "call after the restart", |c| {
            c.len() == 1 && status_of(&c[0], "0003*210").as_deref() == Some("5")
        })
        .await;
    assert_ne!(after[0]["id"], before[0]["id"], "a new call has a new id");
    hangup_all().await;
    app.api
        .wait_calls(path, &admin, "call gone", |c| c.is_empty())
        .await;
}
