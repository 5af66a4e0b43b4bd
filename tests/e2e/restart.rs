//! End to end: Asterisk restarts under a running uapid. uapid notices, reconnects ARI and
//! AMI with backoff, resynchronizes, and its listing is right again.
//!
//! A binary of its own: restarting the shared PBX must not cut into other tests.

use crate::helpers::*;
use crate::sipp::*;
use serde_json::Value;

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
    let _g = serial().await;
    sandbox();
    hangup_all().await;
    let u = start_uapid(test_settings()).await;
    let admin = u.api.token_for("admin-app").await;
    let path = "/uapi/phoneCalls/@me/@self";

    let p024 = phone_answering("024", 100);
    let c = dial_from_phone("210", "024", 1);
    let before = u
        .api
        .wait_calls(path, &admin, "call before the restart", |c| {
            c.len() == 1 && status_of(&c[0], "0003*024").as_deref() == Some("5")
        })
        .await;
    drop((c, p024));

    // Asterisk goes away and comes back (the runner waits until ARI and AMI answer).
    sandbox_cmd(&["stop"]);
    eventually("uapid to notice Asterisk is gone", || async {
        let (st, h) = health(&u.api).await;
        (st == 503 && h["ari"] == false && h["ami"] == false).then_some(())
    })
    .await;
    // Asterisk unreachable (its calls ended with it): creating a call answers 503 with
    // a UAPI error body, and nothing is left half-done.
    let (st, body) = u
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

    sandbox_cmd(&["start"]);
    eventually("uapid to reconnect", || async {
        let (st, _) = health(&u.api).await;
        (st == 200).then_some(())
    })
    .await;

    // The old call died with Asterisk; the listing says so.
    u.api
        .wait_calls(path, &admin, "the dead call to go", |c| c.is_empty())
        .await;

    // New calls show as before.
    let _p = phone_answering("024", 100);
    let _c = dial_from_phone("210", "024", 1);
    let after = u
        .api
        .wait_calls(path, &admin, "call after the restart", |c| {
            c.len() == 1 && status_of(&c[0], "0003*210").as_deref() == Some("5")
        })
        .await;
    assert_ne!(after[0]["id"], before[0]["id"], "a new call has a new id");
    hangup_all().await;
    u.api
        .wait_calls(path, &admin, "call gone", |c| c.is_empty())
        .await;
    u.running.shutdown().await;
}
