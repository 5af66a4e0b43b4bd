//! End to end, in the media: after each PhoneCall action on a call made by the sandbox's
//! ordinary dialplan between test phones (sip_phone.rs), the right parties hear
//! each other's marker and the wrong ones hear nothing of each other. actions.rs
//! checks the same actions in Asterisk and in List; here the RTP is the judge.

use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::sip_phone::*;
use serde_json::{json, Value};

const ALICE_ALL: &str = "/uapi/phoneCalls/@me/@self";
/// Packets that prove audio flows: 1 s of 20 ms packets.
pub(crate) const HEARD: u64 = 50;
/// Packets allowed in flight when audio changes course.
pub(crate) const IN_FLIGHT: u64 = 5;

/// Waits until `a` and `b` have each heard [`HEARD`] more packets of the other's marker
/// than when called.
pub(crate) async fn both_hear_more(a: &Call, b: &Call) {
    let (na, nb) = (a.heard_from(b.marker()), b.heard_from(a.marker()));
    a.wait_heard(b.marker(), na + HEARD, WAIT).await;
    b.wait_heard(a.marker(), nb + HEARD, WAIT).await;
}

/// `a` and `b` hear each other: each gets [`HEARD`] new packets of the other's marker,
/// then, over [`HEARD`] more, nothing but that marker (no music, no third party).
pub(crate) async fn assert_talking(a: &Call, b: &Call) {
    let t = Instant::now();
    both_hear_more(a, b).await;
    let (sa, sb) = (a.rtp(), b.rtp());
    both_hear_more(a, b).await;
    for (c, before, far) in [(a, sa, b.marker()), (b, sb, a.marker())] {
        let now = c.rtp();
        let marker = |s: &RtpStats| s.heard.get(&far).copied().unwrap_or(0);
        let foreign = (now.received - before.received) - (marker(&now) - marker(&before));
        assert!(
            foreign <= IN_FLIGHT,
            "{} hears more than {far:#04x}: {before:?} then {now:?}",
            c.describe()
        );
    }
    eprintln!(
        "{} <-> {} talking after {:?}",
        a.describe(),
        b.describe(),
        t.elapsed()
    );
}

/// How many packets of `marker` `call` heard since `before`.
pub(crate) fn heard_since(call: &Call, before: &RtpStats, marker: u8) -> u64 {
    call.heard_from(marker) - before.heard.get(&marker).copied().unwrap_or(0)
}

/// `caller` dials `number`, `callee` answers; both calls once answered and talking.
pub(crate) async fn answered(caller: &Phone, callee: &mut Phone, number: &str) -> (Call, Call) {
    let out = caller.dial(number);
    let inc = callee.next_call(WAIT).await;
    inc.answer();
    out.wait_answered(WAIT).await;
    assert_talking(&out, &inc).await;
    (out, inc)
}

/// Waits until List shows one call, every view answered; returns its id.
pub(crate) async fn answered_id(app: &TestApp, token: &str) -> String {
    let calls = app
        .api
        .wait_calls(ALICE_ALL, token, "one answered call", |c| {
            c.len() == 1
                && c[0]["phoneCallView"]
                    .as_array()
                    .is_some_and(|v| v.iter().all(|v| v["status"] == "5"))
        })
        .await;
    calls[0]["id"].as_str().expect("call id").to_string()
}

/// PUTs an action that must be accepted (202).
pub(crate) async fn put_ok(app: &TestApp, token: &str, path: &str, body: Value) {
    let t = Instant::now();
    let (st, resp) = app.api.put(path, token, body.clone()).await;
    assert_eq!(st, 202, "{body} → {resp}");
    eprintln!("{} accepted in {:?}", body["action"], t.elapsed());
}

#[tokio::test]
async fn unparked_call_talks_to_the_unparking_phone() {
    let app = TestApp::spawn().await;
    let t = Instant::now();
    let alice = app.api.token_for("alice-app").await;
    let p210 = Phone::bind("210").await;
    let mut p024 = Phone::bind("024").await;
    let mut p211 = Phone::bind("211").await;
    let (c210, c024) = answered(&p210, &mut p024, "024").await;
    let id = answered_id(&app, &alice).await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");

    // Park the other side of 210's view: 024 waits in the lot with music; 210 hears the
    // space announced, then its leg ends. Neither hears the other any more.
    let (b210, b024) = (c210.rtp(), c024.rtp());
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"Park","maxInParking":"30","phoneCallViewId":"01"}),
    )
    .await;
    assert_eq!(c210.wait_ended(WAIT).await, End::HungUpThere);
    c024.wait_rtp("parking music", WAIT, |s| s.other >= b024.other + HEARD)
        .await;
    let (heard_by_024, heard_by_210) = (
        heard_since(&c024, &b024, c210.marker()),
        heard_since(&c210, &b210, c024.marker()),
    );
    assert!(
        heard_by_024 <= IN_FLIGHT && heard_by_210 <= IN_FLIGHT,
        "parked: 024 heard {heard_by_024} of 210, 210 heard {heard_by_210} of 024"
    );
    assert_eq!(c024.state(), CallState::Answered, "024 stays on the call");
    eprintln!("parked: 210 {:?}, 024 {:?}", c210.rtp(), c024.rtp());

    // UnPark to 211: 211 rings, answers, and 211 and 024 hear each other.
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"UnPark","sendCallTo":"0003*211","callerId":"John Doe <42420042>","waitForPickup":"20","phoneCallViewId":"01"}),
    )
    .await;
    let c211 = p211.next_call(WAIT).await;
    c211.answer();
    assert_talking(&c211, &c024).await;
    assert_eq!(c211.heard_from(c210.marker()), 0);

    c211.hangup();
    assert_eq!(c024.wait_ended(WAIT).await, End::HungUpThere);
    eprintln!("unpark test: {:?}", t.elapsed());
}

#[tokio::test]
async fn picked_up_call_talks_to_the_picking_phone() {
    let app = TestApp::spawn().await;
    let t = Instant::now();
    let alice = app.api.token_for("alice-app").await;
    let mut p210 = Phone::bind("210").await;
    let mut p024 = Phone::bind("024").await;
    let p211 = Phone::bind("211").await;
    p024.auto_answer(Some(Duration::ZERO));

    // 211 calls 210, whose phone rings and is not answered.
    let c211 = p211.dial("210");
    let c210 = p210.next_call(WAIT).await;
    c211.wait_ringing(WAIT).await;
    let calls = app
        .api
        .wait_calls("/uapi/phoneCalls/@me/210", &alice, "210 ringing", |c| {
            c.len() == 1 && status_of(&c[0], "0003*210").as_deref() == Some("3")
        })
        .await;
    let id = calls[0]["id"].as_str().unwrap();
    let view_210 = view(&calls[0], "0003*210").unwrap()["id"].clone();

    put_ok(
        &app,
        &alice,
        &format!("/uapi/phoneCalls/@me/0003*210/{id}"),
        json!({"action":"PickUp","sendCallTo":"0003*024","callerId":"John Doe <42420042>","waitForPickup":"20","phoneCallViewId":view_210}),
    )
    .await;
    let c024 = p024.next_call(WAIT).await;
    assert_eq!(c210.wait_ended(WAIT).await, End::CancelledThere);
    c211.wait_answered(WAIT).await;
    assert_talking(&c211, &c024).await;
    assert_eq!(c210.rtp().received, 0, "210 never got audio");

    c024.hangup();
    assert_eq!(c211.wait_ended(WAIT).await, End::HungUpThere);
    eprintln!("pickup test: {:?}", t.elapsed());
}

#[tokio::test]
async fn held_party_hears_music_and_offhold_reconnects() {
    let app = TestApp::spawn().await;
    let t = Instant::now();
    let alice = app.api.token_for("alice-app").await;
    let p210 = Phone::bind("210").await;
    let mut p024 = Phone::bind("024").await;
    let (c210, c024) = answered(&p210, &mut p024, "024").await;
    let id = answered_id(&app, &alice).await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");

    // 210 holds 024: 024 hears music and no more of 210; 210 hears no more of 024.
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"OnHold","phoneCallViewId":"01"}),
    )
    .await;
    let (h210, h024) = (c210.rtp(), c024.rtp());
    let during = c024
        .wait_rtp("music on hold", WAIT, |s| s.other >= h024.other + 2 * HEARD)
        .await;
    let leaked_to_024 = heard_since(&c024, &h024, c210.marker());
    let leaked_to_210 = heard_since(&c210, &h210, c024.marker());
    assert!(
        leaked_to_024 <= IN_FLIGHT && leaked_to_210 <= IN_FLIGHT,
        "on hold, 024 heard {leaked_to_024} packets of 210 ({during:?}), \
         210 heard {leaked_to_210} of 024 ({:?})",
        c210.rtp()
    );
    eprintln!("on hold: 024 {during:?}, 210 {:?}", c210.rtp());
    assert_eq!(
        (c210.state(), c024.state()),
        (CallState::Answered, CallState::Answered)
    );

    // OffHold: they hear each other again, and the music has stopped.
    put_ok(
        &app,
        &alice,
        &path,
        json!({ "action": "OffHold", "phoneCallViewId": "01" }),
    )
    .await;
    assert_talking(&c210, &c024).await;

    // 024 hangs up: uapid ends 210's leg, left alone in its Stasis bridge.
    c024.hangup();
    assert_eq!(c210.wait_ended(WAIT).await, End::HungUpThere);
    app.api
        .wait_calls(ALICE_ALL, &alice, "the call to end", |c| c.is_empty())
        .await;
    eprintln!("hold test: {:?}", t.elapsed());
}

#[tokio::test]
async fn transferred_party_talks_to_the_public_number() {
    let app = TestApp::spawn().await;
    let t = Instant::now();
    let alice = app.api.token_for("alice-app").await;
    let p210 = Phone::bind("210").await;
    let mut p024 = Phone::bind("024").await;
    let mut public = Phone::bind_public().await;
    public.auto_answer(Some(Duration::from_millis(200)));
    let (c210, c024) = answered(&p210, &mut p024, "024").await;
    let id = answered_id(&app, &alice).await;

    // 024 hands 210 over to the public number and leaves.
    put_ok(
        &app,
        &alice,
        &format!("/uapi/phoneCalls/12/0003*210/{id}"),
        json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"0003*024","transferNumber":"0003*210"}),
    )
    .await;
    assert_eq!(c024.wait_ended(WAIT).await, End::HungUpThere);
    let cpub = public.next_call(WAIT).await;
    assert_talking(&c210, &cpub).await;
    assert_eq!(cpub.heard_from(c024.marker()), 0);

    c210.hangup();
    assert_eq!(cpub.wait_ended(WAIT).await, End::HungUpThere);
    eprintln!("transfer test: {:?}", t.elapsed());
}

#[tokio::test]
async fn simple_call_rings_the_source_then_the_destination() {
    let app = TestApp::spawn().await;
    let t = Instant::now();
    let alice = app.api.token_for("alice-app").await;
    let mut p210 = Phone::bind("210").await;
    let mut p024 = Phone::bind("024").await;

    let body = json!({"extension":"0003*210","phoneCallView":[{"source":["0003*210"],"destination":["0003*024"]}]});
    let (st, resp) = app
        .api
        .send(
            reqwest::Method::POST,
            "/uapi/phoneCalls/@me/simple",
            &alice,
            Some(body),
        )
        .await;
    assert_eq!(st, 202, "{resp}");

    // 210 rings first; 024 only once 210 has answered.
    let c210 = p210.next_call(WAIT).await;
    assert_eq!(c210.state(), CallState::Ringing);
    // The witness that 024 is not rung early: Asterisk shows 210's channel Ringing (the
    // phone's 180 has come back through it), as the only channel on the PBX, and still
    // held by the originate's dialer (application AppDial2): it has not entered the
    // dialplan, where Dial() calls 024, and no other channel runs any dialplan. So nothing
    // on the PBX can ring 024 before 210 answers, and 024's phone has had no INVITE.
    let chans = eventually("210's channel ringing in Asterisk", || async {
        let chans = ari().channels().await.expect("ARI channels");
        chans
            .iter()
            .any(|c| c.name.starts_with("PJSIP/0003_210-") && c.state == "Ringing")
            .then_some(chans)
    })
    .await;
    let seen: Vec<_> = chans
        .iter()
        .map(|c| format!("{} {} {}", c.name, c.state, c.dialplan.app_name))
        .collect();
    assert!(
        chans.len() == 1 && chans[0].dialplan.app_name == "AppDial2",
        "210's ringing channel alone, outside the dialplan: {seen:?}"
    );
    assert_eq!(p024.incoming(), 0, "024 got an INVITE before 210 answered");
    assert!(
        channels_named("PJSIP/0003_024-").await.is_empty(),
        "024 rings before 210 answered"
    );
    c210.answer();
    let c024 = p024.next_call(WAIT).await;
    assert_eq!(c024.state(), CallState::Ringing);
    c210.wait_rtp("ringback while 024 rings", WAIT, |s| s.other >= 10)
        .await;
    c024.answer();
    assert_talking(&c210, &c024).await;

    c210.hangup();
    assert_eq!(c024.wait_ended(WAIT).await, End::HungUpThere);
    eprintln!("simple call test: {:?}", t.elapsed());
}
