//! End to end, what keeps the calls uapid touches: sequences that once lost a call
//! (hold then park; a transfer to a number the dialplan lacks; a hold across a uapid
//! restart), two uapids on one ARI application, and a frozen Asterisk.

use crate::helpers::*;
use crate::media::{answered, answered_id, assert_talking, put_ok};
use crate::sip_phone::*;
use serde_json::json;

const ALICE_ALL: &str = "/uapi/phoneCalls/@me/@self";

/// A call 210 → 024, answered and talking, and its id.
async fn talking(app: &TestApp, alice: &str) -> (String, Call, Call, Phone, Phone) {
    let p210 = Phone::bind("210").await;
    let mut p024 = Phone::bind("024").await;
    let (c210, c024) = answered(&p210, &mut p024, "024").await;
    let id = answered_id(app, alice).await;
    (id, c210, c024, p210, p024)
}

/// uapid's bridges on the PBX (for holds), by name.
async fn uapid_bridges() -> Vec<String> {
    ari()
        .bridges()
        .await
        .expect("ARI bridges")
        .into_iter()
        .filter(|b| b.name.starts_with("uapid-"))
        .map(|b| b.name.to_string())
        .collect()
}

#[tokio::test]
async fn hold_offhold_then_park_keeps_the_parked_party() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let (id, c210, c024, _p210, _p024) = talking(&app, &alice).await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"OnHold","phoneCallViewId":"01"}),
    )
    .await;
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"OffHold","phoneCallViewId":"01"}),
    )
    .await;
    assert_talking(&c210, &c024).await;
    // Both legs now run in uapid's Stasis application: once parked, 024 is the only
    // leg left there, which the reaper once took for a leg left alone.
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"Park","phoneCallViewId":"01"}),
    )
    .await;
    assert_eq!(
        c210.wait_ended(WAIT).await,
        End::HungUpThere,
        "the parker's leg ends"
    );
    // The witness that the reaper has looked since: it destroyed the emptied bridge.
    eventually("uapid's emptied bridge destroyed", || async {
        uapid_bridges().await.is_empty().then_some(())
    })
    .await;
    app.api
        .wait_calls(ALICE_ALL, &alice, "024 parked", |c| {
            c.len() == 1 && c[0].to_string().contains("\"parkedPos\"")
        })
        .await;
    assert_eq!(
        c024.state(),
        CallState::Answered,
        "the parked party is still there"
    );
    assert_eq!(channels_named("PJSIP/0003_024-").await.len(), 1);
}

#[tokio::test]
async fn transfer_to_a_number_the_dialplan_lacks_moves_nobody() {
    // 211 is known to the PBX's dial context as 9211 here: no pattern matches it.
    let app = TestApp::spawn_with(|s| {
        let e = s
            .directory
            .extensions
            .iter_mut()
            .find(|e| e.number == "0003*211");
        e.expect("0003*211 in the directory").dial = Some("9211".into());
    })
    .await;
    let alice = app.api.token_for("alice-app").await;
    let (id, c210, c024, _p210, _p024) = talking(&app, &alice).await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    for to in ["0003*211", "0123456"] {
        let (st, body) = app
            .api
            .put(
                &path,
                &alice,
                json!({"action":"Transfer","sendCallTo":to,"transferFromNumber":"0003*210"}),
            )
            .await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (400, Some("pc_sendcallto_invalid")),
            "{to}: {body}"
        );
    }
    // Nothing moved: they still talk.
    assert_talking(&c210, &c024).await;
    let calls = app.api.calls(ALICE_ALL, &alice).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(status_of(&calls[0], "0003*024").as_deref(), Some("5"));
}

#[tokio::test]
async fn a_hold_outlives_a_uapid_restart() {
    let mut app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let (id, c210, c024, _p210, _p024) = talking(&app, &alice).await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"OnHold","phoneCallViewId":"01"}),
    )
    .await;
    let before = app
        .api
        .wait_calls(ALICE_ALL, &alice, "on hold", |c| {
            c.len() == 1 && view(&c[0], "0003*210").is_some_and(|v| v["holder"] == "1")
        })
        .await;
    app.restart_uapid().await;
    let alice = app.api.token_for("alice-app").await;
    // The new uapid reads the hold from Asterisk: the same views, the same time.
    let after = app
        .api
        .wait_calls(ALICE_ALL, &alice, "on hold after the restart", |c| {
            c.len() == 1 && view(&c[0], "0003*210").is_some_and(|v| v["holder"] == "1")
        })
        .await;
    for ext in ["0003*210", "0003*024"] {
        let (b, a) = (
            view(&before[0], ext).unwrap(),
            view(&after[0], ext).unwrap(),
        );
        assert_eq!(b["onHold"], a["onHold"], "{ext}: {b} / {a}");
    }
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"OffHold","phoneCallViewId":"01"}),
    )
    .await;
    assert_talking(&c210, &c024).await;
}

#[tokio::test]
async fn a_second_uapid_on_the_same_application_refuses_to_start() {
    let app = TestApp::spawn().await;
    let mut twin = app.settings().clone();
    twin.listen = "127.0.0.1:0".parse().expect("addr");
    match uapid::start(twin).await {
        Err(uapid::StartError::AppInUse(name)) => assert_eq!(name, app.settings().asterisk.app),
        Err(e) => panic!("expected AppInUse, got {e}"),
        Ok(r) => {
            r.shutdown().await;
            panic!("a second uapid started on the same ARI application");
        }
    }
    // The first still serves.
    let (st, _) = app.api.get("/health", "").await;
    assert_eq!(st, 200);
}

/// Asterisk's process, stopped (SIGSTOP) until dropped.
struct Frozen(i32);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// The sandbox Asterisk's pid, from `sandbox.sh status` ("running (pid N); ...").
fn asterisk_pid() -> i32 {
    let out = std::process::Command::new("bash")
        .arg(sandbox_script())
        .arg("status")
        .output()
        .expect("sandbox status");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let pid = text
        .split("pid ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    pid.unwrap_or_else(|| panic!("no pid in: {text}"))
}

#[tokio::test]
async fn a_frozen_asterisk_shows_in_health_and_an_unanswered_action_says_so() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let (id, _c210, c024, _p210, _p024) = talking(&app, &alice).await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    let frozen = Frozen(asterisk_pid());
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &frozen.0.to_string()])
        .status()
        .expect("kill")
        .success());
    // Within the keepalive's bound, /health names the silent link.
    let body = eventually("/health 503 naming a keepalive", || async {
        let (st, body) = app.api.get("/health", "").await;
        (st == 503 && body["problems"].to_string().contains("keepalive")).then_some(body)
    })
    .await;
    eprintln!("frozen: {body}");
    // An action now is not answered: uapid says it did nothing (503) or that the
    // outcome is unknown (504), never that it was done.
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"Park","phoneCallViewId":"01"}),
        )
        .await;
    assert!(
        matches!(
            (st, body["error"]["code"].as_str()),
            (503, Some("service_unavailable")) | (504, Some("pc_operation_unconfirmed"))
        ),
        "{st} {body}"
    );
    drop(frozen);
    eventually("/health 200 again", || async {
        (app.api.get("/health", "").await.0 == 200).then_some(())
    })
    .await;
    // List shows the truth, whichever it is: parked in the lot, or still talking.
    eventually("List agrees with the parking lot", || async {
        let in_lot = ari()
            .bridges()
            .await
            .ok()?
            .iter()
            .any(|b| b.bridge_class == "parking" && !b.channels.is_empty());
        let calls = app.api.calls(ALICE_ALL, &alice).await;
        let listed = calls
            .iter()
            .any(|c| c.to_string().contains("\"parkedPos\""));
        (in_lot == listed).then_some(())
    })
    .await;
    assert_ne!(
        c024.state(),
        CallState::Ended(End::HungUpThere),
        "024 was not lost"
    );
}
