//! End to end, the rest of the PhoneCalls contract: recording (checked in the file
//! Asterisk writes), BargeIn, Whisper and Monitor (checked in the audio: who hears whom),
//! callback and conference invites, and the caller id a created call's destination sees.
//!
//! Asterisk mixes audio (ChanSpy, MixMonitor, ConfBridge): a mix of two phones' markers
//! is neither marker. So each check mutes all but one phone, and the phone that should
//! hear it then hears that one marker pure.

use std::time::Duration;

use crate::helpers::*;
use crate::media::{answered, answered_id, put_ok, HEARD, IN_FLIGHT};
use crate::sip_phone::*;
use serde_json::{json, Value};

const ALICE_ALL: &str = "/uapi/phoneCalls/@me/@self";

/// Waits until `listener` hears [`HEARD`] more packets of `marker`.
async fn hears(listener: &Call, marker: u8) {
    let n = listener.heard_from(marker);
    listener.wait_heard(marker, n + HEARD, WAIT).await;
}

/// Over the time `witness` takes to hear [`HEARD`] more packets of `witness_marker`,
/// `deaf` hears (almost) nothing of `marker`: the positive witness that time passed
/// with audio flowing.
async fn never_hears(deaf: &Call, marker: u8, witness: &Call, witness_marker: u8) {
    let before = deaf.heard_from(marker);
    hears(witness, witness_marker).await;
    let got = deaf.heard_from(marker) - before;
    assert!(
        got <= IN_FLIGHT,
        "{} heard {got} packets of {marker:#04x} while {} heard {witness_marker:#04x}",
        deaf.describe(),
        witness.describe()
    );
}

/// Mutes every call but `speaker`.
fn only(speaker: &Call, all: &[&Call]) {
    for c in all {
        c.mute(!std::ptr::eq(*c, speaker));
    }
}

/// What a phone hears when Asterisk mixes two phones' markers: their samples added.
fn mix(a: u8, b: u8) -> u8 {
    let sum = i32::from(alaw_to_pcm(a)) + i32::from(alaw_to_pcm(b));
    pcm_to_alaw(sum.clamp(-32768, 32767) as i16)
}

/// The phones of a spy test, with markers loud enough that every mix of two of them is
/// a marker of its own (the sandbox's default markers are too quiet to tell apart).
struct Spied {
    id: String,
    c210: Call,
    c024: Call,
    p212: Phone,
    m212: u8,
    _phones: (Phone, Phone),
}

async fn phone_with(ext: &str, marker: u8) -> Phone {
    let port = 5000 + ext.parse::<u16>().expect("numeric extension");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    Phone::bind_at(addr, &format!("0003_{ext}"), marker).await
}

/// A call 210 → 024, answered and talking, and 212's phone answering what rings it.
async fn spied_call(app: &TestApp, alice: &str) -> Spied {
    let (m210, m024, m212) = (pcm_to_alaw(1000), pcm_to_alaw(-3000), pcm_to_alaw(5000));
    let markers = [
        m210,
        m024,
        m212,
        mix(m210, m024),
        mix(m210, m212),
        mix(m024, m212),
    ];
    for (i, m) in markers.iter().enumerate() {
        assert!(
            !markers[..i].contains(m),
            "markers and mixes must differ: {markers:02x?}"
        );
    }
    let p210 = phone_with("210", m210).await;
    let mut p024 = phone_with("024", m024).await;
    let (c210, c024) = answered(&p210, &mut p024, "024").await;
    let id = answered_id(app, alice).await;
    let p212 = phone_with("212", m212).await;
    p212.auto_answer(Some(Duration::from_millis(100)));
    Spied {
        id,
        c210,
        c024,
        p212,
        m212,
        _phones: (p210, p024),
    }
}

/// A call 210 → 024, answered and talking, with the sandbox's markers.
struct Setup {
    id: String,
    c210: Call,
    c024: Call,
    // The phones of the call (dropping a phone hangs its calls up).
    _phones: (Phone, Phone),
}

async fn talking_call(app: &TestApp, alice: &str) -> Setup {
    let p210 = Phone::bind("210").await;
    let mut p024 = Phone::bind("024").await;
    let (c210, c024) = answered(&p210, &mut p024, "024").await;
    let id = answered_id(app, alice).await;
    Setup {
        id,
        c210,
        c024,
        _phones: (p210, p024),
    }
}

/// Asks for a spy action on view 01 (210) from 212; returns 212's answered call.
async fn spy(app: &TestApp, alice: &str, s: &mut Spied, body: serde_json::Value) -> Call {
    let path = format!("/uapi/phoneCalls/12/0003*210/{}", s.id);
    put_ok(app, alice, &path, body).await;
    let c212 = s.p212.next_call(WAIT).await;
    c212.wait_answered(WAIT).await;
    c212
}

#[tokio::test]
async fn barge_in_talks_to_both_and_hears_both() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let mut s = spied_call(&app, &alice).await;
    let body = json!({"action":"BargeIn","phoneCallViewId":"01","sendCallTo":"0003*212","callerId":"Boss <555>","waitForPickup":"20"});
    let c212 = spy(&app, &alice, &mut s, body).await;
    let (m210, m024) = (s.c210.marker(), s.c024.marker());
    // The barger is a view of the call.
    app.api
        .wait_calls(ALICE_ALL, &alice, "212 in the call", |c| {
            c.len() == 1 && status_of(&c[0], "0003*212").as_deref() == Some("5")
        })
        .await;
    // Everyone hears the other two.
    hears(&c212, mix(m210, m024)).await;
    hears(&s.c210, mix(m024, s.m212)).await;
    hears(&s.c024, mix(m210, s.m212)).await;
    // The barger hangs up: the parties go on, hearing each other alone.
    c212.hangup();
    hears(&s.c210, m024).await;
    hears(&s.c024, m210).await;
}

#[tokio::test]
async fn whisper_is_heard_by_the_view_extension_only() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let mut s = spied_call(&app, &alice).await;
    let body = json!({"action":"Whisper","phoneCallViewId":"01","sendCallTo":"0003*212","private":"0","waitForPickup":"20"});
    let c212 = spy(&app, &alice, &mut s, body).await;
    let (m210, m024) = (s.c210.marker(), s.c024.marker());
    // 210 hears 024 and the whisper; 024 hears 210 alone, never the whisper; the
    // whisperer hears the call.
    hears(&s.c210, mix(m024, s.m212)).await;
    hears(&c212, mix(m210, m024)).await;
    never_hears(&s.c024, mix(m210, s.m212), &s.c210, mix(m024, s.m212)).await;
    hears(&s.c024, m210).await;
}

#[tokio::test]
async fn private_whisper_does_not_hear_the_call_and_monitor_is_heard_by_nobody() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let mut s = spied_call(&app, &alice).await;
    let body = json!({"action":"Whisper","phoneCallViewId":"01","sendCallTo":"0003*212","private":"1","waitForPickup":"20"});
    let c212 = spy(&app, &alice, &mut s, body).await;
    let (m210, m024) = (s.c210.marker(), s.c024.marker());
    hears(&s.c210, mix(m024, s.m212)).await;
    // Private: while 210 hears the whisper, the whisperer hears nothing of the call.
    for heard in [m210, m024, mix(m210, m024)] {
        never_hears(&c212, heard, &s.c210, mix(m024, s.m212)).await;
    }
    c212.hangup();
    c212.wait_ended(WAIT).await;
    app.api
        .wait_calls(ALICE_ALL, &alice, "212 gone from the call", |c| {
            c.len() == 1 && view(&c[0], "0003*212").is_none()
        })
        .await;

    // Monitor: 212 hears both parties; the parties hear each other alone.
    let body = json!({"action":"Monitor","phoneCallViewId":"01","sendCallTo":"0003*212","waitForPickup":"20"});
    let c212 = spy(&app, &alice, &mut s, body).await;
    hears(&c212, mix(m210, m024)).await;
    never_hears(&s.c210, mix(m024, s.m212), &s.c210, m024).await;
    never_hears(&s.c024, mix(m210, s.m212), &s.c024, m210).await;
}

/// A 16-bit sample as G.711 A-law encodes it (what Asterisk sends a PCMA phone).
fn pcm_to_alaw(pcm: i16) -> u8 {
    let (sign, mag) = if pcm >= 0 {
        (0x80u8, i32::from(pcm))
    } else {
        (0u8, -i32::from(pcm) - 1)
    };
    let mag = (mag >> 3).min(0x0fff);
    let (exp, mant) = if mag < 32 {
        (0u8, (mag >> 1) as u8)
    } else {
        let exp = (31 - (mag as u32).leading_zeros()) as u8 - 4;
        (exp, ((mag >> exp) & 0x0f) as u8)
    };
    (sign | (exp << 4) | mant) ^ 0x55
}

/// The A-law marker byte as the 16-bit sample Asterisk decodes it to.
fn alaw_to_pcm(a: u8) -> i16 {
    let a = a ^ 0x55;
    let exp = (a >> 4) & 7;
    let mant = i16::from(a & 0x0f);
    let mag = if exp == 0 {
        (mant << 4) + 8
    } else {
        ((mant << 4) + 0x108) << (exp - 1)
    };
    if a & 0x80 != 0 {
        mag
    } else {
        -mag
    }
}

/// The 16-bit samples of a PCM WAV file.
fn wav_samples(bytes: &[u8]) -> Vec<i16> {
    let data = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("a WAV data chunk");
    bytes[data + 8..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[tokio::test]
async fn recording_holds_both_parties_and_stops_when_asked() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let Setup {
        id,
        c210,
        c024,
        _phones: _keep,
    } = talking_call(&app, &alice).await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"StartRecording","phoneCallViewId":"01","format":"wav"}),
    )
    .await;
    app.api
        .wait_calls(ALICE_ALL, &alice, "the view recording", |c| {
            c.len() == 1 && view(&c[0], "0003*210").is_some_and(|v| v["recording"].is_string())
        })
        .await;
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"StartRecording","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("pc_recording_active"))
    );
    // One party at a time, each heard by the other (so it is in the mix).
    let all = [&c210, &c024];
    only(&c210, &all);
    hears(&c024, c210.marker()).await;
    only(&c024, &all);
    hears(&c210, c024.marker()).await;
    put_ok(
        &app,
        &alice,
        &path,
        json!({"action":"StopRecording","phoneCallViewId":"01"}),
    )
    .await;
    app.api
        .wait_calls(ALICE_ALL, &alice, "recording stopped", |c| {
            c.len() == 1 && view(&c[0], "0003*210").is_some_and(|v| v.get("recording").is_none())
        })
        .await;
    // The file, named for the call and the view, with both parties' audio in it.
    let dir = format!("{}/var/spool/asterisk/monitor/uapid", sandbox_root());
    let prefix = format!("{id}-0003_210-");
    let file = eventually("the recording's file", || async {
        std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                n.starts_with(&prefix) && n.ends_with(".wav")
            })
    })
    .await;
    let samples = wav_samples(&std::fs::read(&file).expect("read the recording"));
    for (who, marker) in [("210", c210.marker()), ("024", c024.marker())] {
        let v = alaw_to_pcm(marker);
        let n = samples.iter().filter(|s| **s == v).count();
        assert!(
            n >= 160 * 25,
            "{}: {n} samples of {who}'s marker ({v}) of {}",
            file.display(),
            samples.len()
        );
    }
    let (st, body) = app
        .api
        .put(
            &path,
            &alice,
            json!({"action":"StopRecording","phoneCallViewId":"01"}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("pc_recording_inactive"))
    );
}

#[tokio::test]
async fn callback_calls_the_source_first_and_lists_under_the_extension() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let mut public = Phone::bind_public().await;
    let mut p024 = Phone::bind("024").await;
    let (st, body) = app
        .api
        .send(
            reqwest::Method::POST,
            "/uapi/phoneCalls/@me/callback?waitForPickup=20",
            &alice,
            Some(json!({"extension":"0003*210","phoneCallView":[{"source":["3235742879"],"destination":["024"],"callerDestination":"Callback <4242>"}]})),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    let id = body[0]["id"].as_str().expect("an id").to_string();
    // The source rings first; 024 only once it answered.
    let src = public.next_call(WAIT).await;
    assert_eq!(p024.incoming(), 0, "024 rang before the source answered");
    src.answer();
    let dst = p024.next_call(WAIT).await;
    dst.answer();
    crate::media::assert_talking(&src, &dst).await;
    // Listed under 0003*210 (alice's), with the same id; 024 sees callerDestination.
    let calls = app
        .api
        .wait_calls(ALICE_ALL, &alice, "the callback listed", |c| {
            c.iter().any(|c| c["id"] == id.as_str())
        })
        .await;
    let call = calls.iter().find(|c| c["id"] == id.as_str()).unwrap();
    assert!(view(call, "0003*210").is_some(), "{call}");
    let bob = app.api.token_for("bob-app").await;
    app.api
        .wait_calls(
            "/uapi/phoneCalls/@me/@self",
            &bob,
            "024 sees Callback",
            |c| {
                c.iter().any(|c| {
                    view(c, "0003*024").is_some_and(|v| v["callerId"] == "Callback <4242>")
                })
            },
        )
        .await;
    // 024's other party is a Local channel (the callback's first leg): hold and off
    // hold through it, and the two talk again.
    let path = format!("/uapi/phoneCalls/@me/0003*024/{id}");
    put_ok(&app, &bob, &path, json!({"action":"OnHold"})).await;
    app.api
        .wait_calls(ALICE_ALL, &bob, "024 holding", |c| {
            c.iter()
                .any(|c| view(c, "0003*024").is_some_and(|v| v.get("holder").is_some()))
        })
        .await;
    put_ok(&app, &bob, &path, json!({"action":"OffHold"})).await;
    crate::media::assert_talking(&src, &dst).await;
}

#[tokio::test]
async fn conference_invite_puts_each_invited_phone_into_the_room() {
    let app = TestApp::spawn().await;
    let admin = app.api.token_for("admin-app").await;
    let p024 = Phone::bind("024").await;
    let p211 = Phone::bind("211").await;
    p024.auto_answer(Some(Duration::from_millis(100)));
    p211.auto_answer(Some(Duration::from_millis(100)));
    let (mut p024, mut p211) = (p024, p211);
    let bad = app
        .api
        .send(
            reqwest::Method::POST,
            "/uapi/phoneCalls/@me/conferenceInvite?number=0003*800&pin=1",
            &admin,
            Some(json!({"phoneCallView":[{"destination":["024","211"]}]})),
        )
        .await;
    assert_eq!(
        (bad.0, bad.1["error"]["code"].as_str()),
        (400, Some("pc_pin_invalid"))
    );
    let (st, body) = app
        .api
        .send(
            reqwest::Method::POST,
            "/uapi/phoneCalls/@me/conferenceInvite?number=0003*800&pin=4321&waitForPickup=20",
            &admin,
            Some(json!({"phoneCallView":[{"destination":["024","211"]}]})),
        )
        .await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
    let c024 = p024.next_call(WAIT).await;
    let c211 = p211.next_call(WAIT).await;
    c024.wait_answered(WAIT).await;
    c211.wait_answered(WAIT).await;
    // In the room: each hears the other.
    let all = [&c024, &c211];
    only(&c024, &all);
    hears(&c211, c024.marker()).await;
    only(&c211, &all);
    hears(&c024, c211.marker()).await;
    // One call in List, both phones on it.
    let calls = app
        .api
        .wait_calls(ALICE_ALL, &admin, "one conference call", |c| {
            c.len() == 1
                && status_of(&c[0], "0003*024").as_deref() == Some("5")
                && status_of(&c[0], "0003*211").as_deref() == Some("5")
        })
        .await;

    // 024 puts the room on hold; the call's hold is taken, so 211 may not hold too
    // (both holders would share uapid's one hold bridge of the call).
    let id = calls[0]["id"].as_str().expect("an id").to_string();
    let at = |ext: &str| format!("/uapi/phoneCalls/@me/{ext}/{id}");
    put_ok(&app, &admin, &at("0003*024"), json!({"action":"OnHold"})).await;
    let holding = |ext: &'static str| {
        move |c: &[Value]| {
            c.len() == 1 && view(&c[0], ext).is_some_and(|v| v.get("holder").is_some())
        }
    };
    app.api
        .wait_calls(ALICE_ALL, &admin, "024 holding", holding("0003*024"))
        .await;
    let (st, body) = app
        .api
        .put(&at("0003*211"), &admin, json!({"action":"OnHold"}))
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("pc_phonecall_state_invalid")),
        "{body}"
    );
    // Off hold: the room is back together.
    put_ok(&app, &admin, &at("0003*024"), json!({"action":"OffHold"})).await;
    app.api
        .wait_calls(ALICE_ALL, &admin, "nobody holding", |c| {
            c.len() == 1 && !holding("0003*024")(c) && !holding("0003*211")(c)
        })
        .await;
    only(&c024, &all);
    hears(&c211, c024.marker()).await;
    only(&c211, &all);
    hears(&c024, c211.marker()).await;
}

#[test]
fn g711_a_law_as_asterisk_codes_it() {
    for (pcm, alaw) in [
        (1000, 0xfa),
        (-3000, 0x12),
        (5000, 0x86),
        (0, 0xd5),
        (-1, 0x55),
    ] {
        assert_eq!(pcm_to_alaw(pcm), alaw, "{pcm}");
    }
    for (pcm, alaw) in [(32767, 0xaa), (-32768, 0x2a)] {
        assert_eq!(pcm_to_alaw(pcm), alaw, "{pcm}");
    }
    for (alaw, pcm) in [
        (0xd2, 120),
        (0x18, -3776),
        (0xd4, 24),
        (0x55, -8),
        (0xaa, 32256),
    ] {
        assert_eq!(alaw_to_pcm(alaw), pcm, "{alaw:#04x}");
    }
}

#[tokio::test]
async fn a_spy_answered_after_the_spied_party_hung_up_is_hung_up() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let p210 = Phone::bind("210").await;
    let mut p024 = Phone::bind("024").await;
    let (c210, _c024) = answered(&p210, &mut p024, "024").await;
    let id = answered_id(&app, &alice).await;
    let mut p212 = Phone::bind("212").await;
    let path = format!("/uapi/phoneCalls/12/0003*210/{id}");
    let body = json!({"action":"Monitor","phoneCallViewId":"01","sendCallTo":"0003*212","waitForPickup":"20"});
    put_ok(&app, &alice, &path, body).await;
    let c212 = p212.next_call(WAIT).await;
    c212.wait_ringing(WAIT).await;
    // The spied party hangs up while the spy rings; the spy answers after that.
    c210.hangup();
    c210.wait_ended(WAIT).await;
    c212.answer();
    c212.wait_answered(WAIT).await;
    // Nothing to listen to: the PBX hangs the spy up rather than keep it waiting.
    assert!(
        matches!(c212.wait_ended(WAIT).await, End::HungUpThere),
        "the spy is hung up"
    );
}
