//! End to end: the PhoneCall actions on calls made by the sandbox's ordinary dialplan,
//! with the seeds' example bodies verbatim. Outcomes are checked in Asterisk (bridges, over
//! ARI) and in uapid's List; the media checks live in media.rs.

use crate::helpers::*;
use crate::sipp::*;
use serde_json::{json, Value};
use std::time::Duration;

const ALICE_ALL: &str = "/uapi/phoneCalls/@me/@self";

/// Starts uapid and a call from `from` (SIPp) to `to`, answered; returns the call's id.
async fn answered_call(app: &TestApp, token: &str, from: &str, to: &str) -> (String, Vec<Sipp>) {
    let mut agents = Vec::new();
    if to.len() > 6 {
        agents.push(public_answering(100));
    } else {
        agents.push(phone_answering(to, 100));
    }
    agents.push(dial_from_phone(from, to, 1));
    let calls = app
        .api
        .wait_calls(ALICE_ALL, token, "the call answered", |c| {
            c.len() == 1
                && c[0]["phoneCallView"].as_array().is_some_and(|v| {
                    v.iter()
                        .all(|v| v["status"] == "5" && v.get("answered").is_some())
                })
                && c[0].get("answered").is_some()
        })
        .await;
    (calls[0]["id"].as_str().unwrap().to_string(), agents)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn park_seed_example_then_unpark_seed_example() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let (id, _agents) = answered_call(&app, &alice, "210", "3235742879").await;

    // Seed 001, verbatim.
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"Park","maxInParking":"30","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body[0]["id"], id.as_str());
    assert_eq!(body[0]["extension"], "0003*210");
    assert!(body[0]["link"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/uapi/phoneCalls/12/0003*210/{id}")));

    let calls = app
        .api
        .wait_calls(ALICE_ALL, &alice, "the public party parked", |c| {
            c.len() == 1 && view(&c[0], "0003*210").is_some_and(|v| v.get("parked").is_some())
        })
        .await;
    let v = view(&calls[0], "0003*210").unwrap();
    assert_eq!(calls[0]["id"], id.as_str(), "same call");
    assert_eq!(v["parkedPos"], "701");
    assert_eq!(v["parkedBy"], "0003*210");
    assert_eq!(v["destination"], json!(["3235742879"]));
    // In Asterisk: the trunk's leg sits in the parking lot's bridge; 210's leg is gone.
    eventually("the trunk leg in the parking bridge", || async {
        let trunk = channels_named("PJSIP/trunk-").await;
        let bridges = ari().bridges().await.unwrap();
        let parked = bridges.iter().any(|b| {
            b.bridge_class == "parking" && trunk.iter().any(|c| b.channels.contains(&c.id))
        });
        (parked && channels_named("PJSIP/0003_210-").await.is_empty()).then_some(())
    })
    .await;

    // Wrong state: parking it again, holding it.
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"Park","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(
        (st, code(&body)),
        (409, "pc_phonecall_state_invalid"),
        "{body}"
    );

    // Seed 000, verbatim: 0003*024 rings showing the callerId asked for, answers, and
    // talks to the parked party.
    let _bob = phone_answering("024", 2500);
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"UnPark","sendCallTo":"0003*024","callerId":"John Doe <42420042>","waitForPickup":"20","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["extension"], "0003*210");
    let calls = app
        .api
        .wait_calls(ALICE_ALL, &alice, "024 ringing in the parked call", |c| {
            c.len() == 1 && status_of(&c[0], "0003*024").as_deref() == Some("3")
        })
        .await;
    assert_eq!(
        calls[0]["id"],
        id.as_str(),
        "the unparking phone rings within the same call"
    );
    assert_eq!(
        view(&calls[0], "0003*024").unwrap()["callerId"],
        "John Doe <42420042>"
    );
    wait_bridged("PJSIP/0003_024-", "PJSIP/trunk-").await;
    let calls = app
        .api
        .wait_calls(
            ALICE_ALL,
            &alice,
            "024 connected to the unparked call",
            |c| {
                c.len() == 1
                    && status_of(&c[0], "0003*024").as_deref() == Some("5")
                    && c[0]["phoneCallView"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|v| v.get("parked").is_none())
            },
        )
        .await;
    assert_eq!(
        calls[0]["id"],
        id.as_str(),
        "the unparked call keeps its id"
    );
    // UnPark of a call that is not parked.
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"UnPark","sendCallTo":"0003*211","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(
        (st, code(&body)),
        (409, "pc_phonecall_state_invalid"),
        "{body}"
    );
    hangup_all().await;
    app.api
        .wait_calls(ALICE_ALL, &alice, "calls gone", |c| c.is_empty())
        .await;
}

#[tokio::test]
async fn park_timeout_rings_the_parker_and_unanswered_unpark_leaves_it_parked() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let (id, _agents) = answered_call(&app, &alice, "210", "024").await;
    let _back = phone_ringing("210"); // 210's phone, for the lot's callback
    let path = format!("/uapi/phoneCalls/@me/0003*210/{id}");
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"Park","maxInParking":10,"phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    app.api
        .wait_calls(ALICE_ALL, &alice, "parked", |c| {
            c.len() == 1 && view(&c[0], "0003*210").is_some_and(|v| v["parkedPos"].is_string())
        })
        .await;

    // Nobody answers at 211 within 2 s: the call stays parked, untouched.
    let ringer = phone_ringing("211");
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"UnPark","sendCallTo":"211","waitForPickup":2,"phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    eventually("211 to ring", || async {
        (!channels_named("PJSIP/0003_211-").await.is_empty()).then_some(())
    })
    .await;
    eventually("211 to give up", || async {
        channels_named("PJSIP/0003_211-")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    drop(ringer);
    let calls = app.api.calls(ALICE_ALL, &alice).await;
    assert_eq!(calls.len(), 1);
    assert!(
        view(&calls[0], "0003*210").unwrap()["parked"].is_string(),
        "still parked: {}",
        calls[0]
    );

    // maxInParking runs out: the lot rings 210 back.
    let calls = app
        .api
        .wait_calls(ALICE_ALL, &alice, "the parker rung back", |c| {
            c.len() == 1 && status_of(&c[0], "0003*210").as_deref() == Some("3")
        })
        .await;
    assert_eq!(calls[0]["id"], id.as_str());
    assert!(view(&calls[0], "0003*210").unwrap().get("parked").is_none());
    hangup_all().await;
}

#[tokio::test]
async fn pickup_seed_example() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let _alice_phone = phone_ringing("210");
    let _bob_phone = phone_answering("024", 200);
    let _carol = dial_from_phone("211", "210", 1);
    let calls = app
        .api
        .wait_calls("/uapi/phoneCalls/@me/210", &alice, "210 ringing", |c| {
            c.len() == 1 && status_of(&c[0], "0003*210").as_deref() == Some("3")
        })
        .await;
    let id = calls[0]["id"].as_str().unwrap().to_string();
    let path = format!("/uapi/phoneCalls/@me/0003*210/{id}");
    // The view "01" is 211's (the caller); PickUp names the ringing extension's view.
    let view_210 = view(&calls[0], "0003*210").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(view_210, "02");
    let (st, body) = app
        .api
        .put(&path, &alice, json!({"action":"PickUp","sendCallTo":"0003*024","callerId":"John Doe <42420042>","waitForPickup":"20","phoneCallViewId":"01"}))
        .await;
    // View 01 is not ringing: a clear error, nothing touched.
    assert_eq!(
        (st, code(&body)),
        (409, "pc_phonecall_state_invalid"),
        "{body}"
    );
    let (st, body) = app
        .api
        .put(&path, &alice, json!({"action":"PickUp","sendCallTo":"0003*024","callerId":"John Doe <42420042>","waitForPickup":"20","phoneCallViewId":view_210}))
        .await;
    assert_eq!(st, 202, "{body}");
    wait_bridged("PJSIP/0003_024-", "PJSIP/0003_211-").await;
    eventually("210 to stop ringing", || async {
        channels_named("PJSIP/0003_210-")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let calls = app
        .api
        .wait_calls(ALICE_ALL, &alice, "024 on the call", |c| {
            c.len() == 1 && status_of(&c[0], "0003*024").as_deref() == Some("5")
        })
        .await;
    assert_eq!(
        calls[0]["id"],
        id.as_str(),
        "picked up, the call keeps its id"
    );
    let again = json!({"action":"PickUp","sendCallTo":"0003*212","phoneCallViewId":"01"});
    app.api
        .assert_errors(&[
            // 210 is no longer on the call: addressing the call through 210 finds nothing.
            (
                Req::put(&path).token(&alice).json(again.clone()),
                400,
                "pc_phonecall_invalid",
            ),
            // PickUp of a call that no longer rings.
            (
                Req::put(format!("/uapi/phoneCalls/@me/@self/{id}"))
                    .token(&alice)
                    .json(again),
                409,
                "pc_phonecall_state_invalid",
            ),
        ])
        .await;
    hangup_all().await;
}

#[tokio::test]
async fn hold_and_offhold_a_dialplan_call() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let (id, _agents) = answered_call(&app, &alice, "210", "024").await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"OffHold","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(
        (st, code(&body)),
        (409, "pc_phonecall_state_invalid"),
        "not on hold yet: {body}"
    );

    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"OnHold","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    let calls = app
        .api
        .wait_calls(ALICE_ALL, &alice, "on hold", |c| {
            c.len() == 1 && view(&c[0], "0003*024").is_some_and(|v| v.get("onHold").is_some())
        })
        .await;
    assert_eq!(calls[0]["id"], id.as_str());
    assert_eq!(view(&calls[0], "0003*210").unwrap()["holder"], "1");
    assert!(view(&calls[0], "0003*024").unwrap().get("holder").is_none());
    assert!(
        !bridged("PJSIP/0003_210-", "PJSIP/0003_024-").await,
        "held: no longer bridged"
    );
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"OnHold","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(
        (st, code(&body)),
        (409, "pc_phonecall_state_invalid"),
        "{body}"
    );

    // Seed 003, verbatim body.
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({ "action": "OffHold", "phoneCallViewId": "01" }),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["id"], id.as_str());
    wait_bridged("PJSIP/0003_210-", "PJSIP/0003_024-").await;
    let calls = app
        .api
        .wait_calls(ALICE_ALL, &alice, "off hold", |c| {
            c.len() == 1
                && c[0]["phoneCallView"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|v| v.get("onHold").is_none() && v["status"] == "5")
        })
        .await;
    assert_eq!(calls[0]["id"], id.as_str());

    // One side hangs up: uapid ends the other, as Dial() would have.
    let bob = channels_named("PJSIP/0003_024-").await;
    ari().hangup(&bob[0].id).await.unwrap();
    app.api
        .wait_calls(ALICE_ALL, &alice, "the whole call to end", |c| c.is_empty())
        .await;
    eventually("no channel left", || async {
        ari().channels().await.unwrap().is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn transfer_seed_example_to_a_public_number() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let (id, _agents) = answered_call(&app, &alice, "210", "024").await;
    let _public = public_answering(200);
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    // Error cases first: nothing changes.
    let put = |body: Value| Req::put(&path).token(&alice).json(body);
    app.api
        .assert_errors(&[
            (
                put(json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"0003*212"})),
                400,
                "pc_transfer_from_number_invalid",
            ),
            (
                put(json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"0003*024","transferNumber":"0003*211"})),
                400,
                "pc_transfer_number_invalid",
            ),
            (
                put(json!({"action":"Transfer","sendCallTo":"x1","transferFromNumber":"0003*024"})),
                400,
                "pc_sendcallto_invalid",
            ),
        ])
        .await;
    assert!(
        bridged("PJSIP/0003_210-", "PJSIP/0003_024-").await,
        "the call is untouched"
    );

    // Seed 004, verbatim: 024 hands 210 over to the public number and leaves.
    let (st, body) = app
        .api
        .put(&path, &alice, json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"0003*024","transferNumber":"0003*210"}))
        .await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["id"], id.as_str());
    wait_bridged("PJSIP/0003_210-", "PJSIP/trunk-").await;
    assert!(
        channels_named("PJSIP/0003_024-").await.is_empty(),
        "the transferring party left"
    );
    let calls = app
        .api
        .wait_calls(ALICE_ALL, &alice, "210 talking to the public number", |c| {
            c.len() == 1
                && status_of(&c[0], "0003*210").as_deref() == Some("5")
                && view(&c[0], "0003*024").is_none()
        })
        .await;
    assert_eq!(calls[0]["id"], id.as_str());
    hangup_all().await;
}

#[tokio::test]
async fn transfer_to_voicemail_leaves_a_message() {
    let app = TestApp::spawn().await;
    let inbox = format!(
        "{}/var/spool/asterisk/voicemail/0003/211/INBOX",
        std::process::Command::new("bash")
            .args([&format!("{REPO}/docker/sandbox.sh"), "root"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap()
    );
    let count = || {
        std::fs::read_dir(&inbox)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
                    .count()
            })
            .unwrap_or(0)
    };
    let before = count();
    let alice = app.api.token_for("alice-app").await;
    let (id, _agents) = answered_call(&app, &alice, "210", "024").await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    // A public number has no mailbox.
    app.api
        .assert_errors(&[(
            Req::put(&path)
                .token(&alice)
                .json(json!({"action":"TransferToVoicemail","sendCallTo":"3235742879"})),
            400,
            "pc_sendcallto_invalid",
        )])
        .await;
    let (st, body) = app
        .api
        .put(&path, &alice, json!({"action":"TransferToVoicemail","sendCallTo":"0003*211","transferFromNumber":"0003*024"}))
        .await;
    assert_eq!(st, 202, "{body}");
    eventually("210 in VoiceMail", || async {
        channels_named("PJSIP/0003_210-")
            .await
            .iter()
            .any(|c| c.dialplan.app_name == "VoiceMail")
            .then_some(())
    })
    .await;
    assert!(
        channels_named("PJSIP/0003_024-").await.is_empty(),
        "024 left"
    );
    // 210's phone keeps sending its tone; hang up after the beep and some audio. The
    // greeting ("the person at extension 2 1 1 is unavailable", then the instructions)
    // lasts about 21 s before the beep: the recording's file appears after it.
    eventually_within(
        "the recording to start after the greeting",
        Duration::from_secs(45),
        || async {
            let dir = std::fs::read_dir(format!("{inbox}/../tmp")).ok()?;
            dir.filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == "wav"))
                .then_some(())
        },
    )
    .await;
    // Let it record past minsecs (1 s): wait until the message's tmp file grows.
    eventually("audio to be recorded", || async {
        let dir = std::fs::read_dir(format!("{inbox}/../tmp")).ok()?;
        let bytes: u64 = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        (bytes > 8000).then_some(())
    })
    .await;
    hangup_all().await;
    eventually("a message file in 211's inbox", || async {
        (count() > before).then_some(())
    })
    .await;
}

#[tokio::test]
async fn simple_call_and_hangup() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let _phone = phone_answering("210", 300);
    let _public = public_answering(200);
    let body = json!({"extension":"0003*210","phoneCallView":[{"source":["0003*210"],"destination":["3235742879"],"callerId":"John Doe <4242425>"}]});
    let (st, resp) = app
        .api
        .send(
            reqwest::Method::POST,
            "/uapi/phoneCalls/@me/simple?waitForPickup=20",
            &alice,
            Some(body),
        )
        .await;
    assert_eq!(st, 202, "{resp}");
    let id = resp[0]["id"].as_str().unwrap().to_string();
    let calls = app
        .api
        .wait_calls(ALICE_ALL, &alice, "the click-to-call connected", |c| {
            c.len() == 1
                && c[0]["id"] == id.as_str()
                && status_of(&c[0], "0003*210").as_deref() == Some("5")
                && view(&c[0], "0003*210").unwrap()["destination"] == json!(["3235742879"])
        })
        .await;
    assert_eq!(view(&calls[0], "0003*210").unwrap()["flow"], "4");
    wait_bridged("PJSIP/0003_210-", "PJSIP/trunk-").await;

    // Bad input creates nothing.
    let simple = "/uapi/phoneCalls/@me/simple";
    let post = |path: &str, body: Value| Req::post(path).token(&alice).json(body);
    let to_024 = json!({"extension":"0003*210","phoneCallView":[{"destination":["0003*024"]}]});
    app.api
        .assert_errors(&[
            // Bob's phone.
            (
                post(simple, json!({"extension":"0003*024","phoneCallView":[{"destination":["211"]}]})),
                403,
                "permission_denied",
            ),
            (
                post(simple, json!({"extension":"0003*210","phoneCallView":[{"destination":["x1"]}]})),
                400,
                "pc_destination_invalid",
            ),
            (
                post(simple, json!({"extension":"0003*999","phoneCallView":[{"destination":["0003*024"]}]})),
                400,
                "extension_invalid",
            ),
            (
                post(simple, json!({"extension":"0003*210","phoneCallView":[{"source":["0003*211"],"destination":["0003*024"]}]})),
                400,
                "pc_source_invalid",
            ),
            (
                post(simple, json!({"extension":"0003*210","phoneCallView":[{"destination":["0003*024"],"callerId":"nobody"}]})),
                400,
                "pc_callerid_invalid",
            ),
            (
                post(&format!("{simple}?waitForPickup=0"), to_024.clone()),
                400,
                "pc_timeout_invalid",
            ),
            (
                post(&format!("{simple}?callDuration=0"), to_024),
                400,
                "pc_callduration_invalid",
            ),
        ])
        .await;

    // Hang up by id; then nothing is left to hang up.
    let path = format!("/uapi/phoneCalls/@me/0003*210/{id}");
    let (st, resp) = app
        .api
        .send(reqwest::Method::DELETE, &path, &alice, None)
        .await;
    assert_eq!(st, 202, "{resp}");
    assert_eq!(resp[0]["id"], id.as_str());
    app.api
        .wait_calls(ALICE_ALL, &alice, "gone", |c| c.is_empty())
        .await;
    // Nothing left to hang up: 200 with an empty array (clients parse every 2xx).
    let (st, body) = app
        .api
        .send(
            reqwest::Method::DELETE,
            "/uapi/phoneCalls/@me/0003*210",
            &alice,
            None,
        )
        .await;
    assert_eq!((st, body), (200, json!([])));
}

#[tokio::test]
async fn all_calls_form_conflicts_and_bad_input() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let bob = app.api.token_for("bob-app").await;

    // No call to act on: 200 with an empty array.
    let (st, body) = app
        .api
        .put(
            "/uapi/phoneCalls/@me/0003*210",
            &alice,
            json!({"action":"Park"}),
        )
        .await;
    assert_eq!((st, body), (200, json!([])));
    let (id, _agents) = answered_call(&app, &alice, "210", "024").await;
    let path = format!("/uapi/phoneCalls/@me/0003*210/{id}");

    // Bad input: the UAPI error, the call untouched.
    let put = || Req::put(&path).token(&alice);
    app.api
        .assert_errors(&[
            (
                put().json(json!({"action":"Park","maxInParking":"5","phoneCallViewId":"01"})),
                400,
                "pc_parktimeout_invalid",
            ),
            (
                put().json(json!({"action":"Park","phoneCallViewId":"07"})),
                400,
                "pc_phonecallview_invalid",
            ),
            (
                put().json(json!({"action":"UnPark","sendCallTo":"0003*024","waitForPickup":"0","phoneCallViewId":"01"})),
                400,
                "pc_timeout_invalid",
            ),
            (
                put().json(json!({"action":"UnPark","sendCallTo":"0003*024","callerId":"nobody","phoneCallViewId":"01"})),
                400,
                "pc_callerid_invalid",
            ),
            (
                put().json(json!({"action":"PickUp","sendCallTo":"3235742879","phoneCallViewId":"01"})),
                400,
                "pc_sendcallto_invalid",
            ),
            (put().json(json!({"action":"Fly"})), 400, "pc_action_invalid"),
            (
                put().json(json!({"action":"StartRecording","format":"mp3","phoneCallViewId":"01"})),
                400,
                "pc_format_invalid",
            ),
            (
                put().json(json!({"action":"StopRecording","phoneCallViewId":"01"})),
                409,
                "pc_recording_inactive",
            ),
            (
                put().json(json!({"action":"Monitor","sendCallTo":"0003*024","phoneCallViewId":"01"})),
                400,
                "pc_sendcallto_invalid",
            ),
            (put().raw("{not json"), 400, "request_invalid"),
            (put().json(json!([1, 2])), 400, "request_invalid"),
            (
                Req::put("/uapi/phoneCalls/@me/0003*210/deadbeef")
                    .token(&alice)
                    .json(json!({"action":"OnHold","phoneCallViewId":"01"})),
                400,
                "pc_phonecall_invalid",
            ),
            // Someone else's extension.
            (
                Req::put(format!("/uapi/phoneCalls/@me/0003*024/{id}"))
                    .token(&alice)
                    .json(json!({"action":"OnHold","phoneCallViewId":"01"})),
                403,
                "permission_denied",
            ),
        ])
        .await;
    assert!(
        bridged("PJSIP/0003_210-", "PJSIP/0003_024-").await,
        "the call is untouched"
    );

    // Two conflicting actions at once: one wins, the other gets a clear error.
    let hold = json!({"action":"OnHold","phoneCallViewId":"01"});
    let bob_path = format!("/uapi/phoneCalls/@me/0003*024/{id}");
    let ((s1, b1), (s2, b2)) = tokio::join!(
        app.api.put(&path, &alice, hold.clone()),
        app.api.put(
            &bob_path,
            &bob,
            json!({"action":"OnHold","phoneCallViewId":"02"})
        )
    );
    let mut statuses = [s1, s2];
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{b1} / {b2}");
    let loser = if s1 == 409 { &b1 } else { &b2 };
    assert!(
        ["pc_phonecall_busy", "pc_phonecall_state_invalid"].contains(&code(loser)),
        "{loser}"
    );
    app.api
        .wait_calls(ALICE_ALL, &alice, "one hold", |c| {
            c.len() == 1
                && c[0]["phoneCallView"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|v| v.get("holder").is_some())
                    .count()
                    == 1
        })
        .await;

    // The all-calls form: every call of 210 off hold, an array back.
    let (st, resp) = app
        .api
        .put(
            "/uapi/phoneCalls/@me/0003*210",
            &alice,
            json!({"action":"OffHold"}),
        )
        .await;
    assert_eq!(st, 202, "{resp}");
    assert_eq!(resp[0]["id"], id.as_str());
    wait_bridged("PJSIP/0003_210-", "PJSIP/0003_024-").await;
    hangup_all().await;
}

/// A client that sends UnPark as soon as Park answers gets its UnPark: if uapid has not
/// yet seen the park in Asterisk's events, the UnPark waits for it rather than failing
/// (the unit test `a_working_action_makes_others_busy_a_settling_one_makes_them_wait`
/// pins that down; on an idle PBX the event usually wins the race).
#[tokio::test]
async fn unpark_sent_right_after_park_waits_for_the_park() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let (id, _agents) = answered_call(&app, &alice, "210", "3235742879").await;
    let _bob = phone_answering("024", 2500);
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"Park","maxInParking":"30","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"UnPark","sendCallTo":"0003*024","waitForPickup":"20","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["id"], id.as_str());
    wait_bridged("PJSIP/trunk-", "PJSIP/0003_024-").await;
}
