//! The tracker and projection on event sequences recorded from the sandbox PBX
//! (`tests/fixtures/*.jsonl`, made by `tests/fixtures/record.sh`).

use std::sync::Arc;

use serde_json::Value;

use super::{phone_call, PhoneCall};
use super::{phone_call_id, Input, Scope, Tracker};
use crate::config::{Directory, Settings};
use crate::record::read_fixture;

fn tracker() -> Tracker {
    Tracker::new(
        Arc::new(Directory::build(&Settings::defaults().directory).unwrap()),
        "uapid",
    )
}

fn fixture(name: &str) -> Vec<Input> {
    let path = format!("{}/tests/fixtures/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    read_fixture(&text).unwrap()
}

fn calls(t: &Tracker) -> Vec<PhoneCall> {
    t.scope(&Scope::All)
        .iter()
        .filter_map(|(_, id)| t.call(id))
        .map(|c| phone_call(t, c, "http://x"))
        .collect()
}

fn json(c: &PhoneCall) -> Value {
    serde_json::to_value(c).unwrap()
}

fn status(c: &PhoneCall, ext: &str) -> Option<String> {
    c.phone_call_view
        .iter()
        .find(|v| v.extension == ext)
        .map(|v| v.status.clone())
}

/// Replays a fixture; after each input, records a summary of the calls when it changed.
fn replay<T: PartialEq + std::fmt::Debug>(
    name: &str,
    summary: impl Fn(&Tracker) -> T,
) -> (Tracker, Vec<T>) {
    let mut t = tracker();
    let mut seen: Vec<T> = Vec::new();
    for input in fixture(name) {
        t.apply(input);
        let s = summary(&t);
        if seen.last() != Some(&s) {
            seen.push(s);
        }
    }
    (t, seen)
}

fn statuses(t: &Tracker, a: &str, b: &str) -> Vec<(Option<String>, Option<String>)> {
    calls(t)
        .iter()
        .map(|c| (status(c, a), status(c, b)))
        .collect()
}

fn s(x: &str) -> Option<String> {
    Some(x.to_string())
}

#[test]
fn extension_call_goes_trying_ringing_answered_gone() {
    let (t, seen) = replay("ext_call", |t| statuses(t, "0003*211", "0003*212"));
    assert_eq!(
        seen,
        vec![
            vec![],
            vec![(s("2"), None)],   // 211 dialed, the dialplan runs
            vec![(s("2"), s("2"))], // INVITE sent to 212
            vec![(s("4"), s("3"))], // 212 rings
            vec![(s("5"), s("5"))], // answered, bridged
            vec![(s("5"), None)],   // 212's leg is gone, 211's is ending
            vec![],                 // hung up
        ]
    );
    assert_eq!(t.call_count(), 0);
    assert!(t.synced());
}

#[test]
fn extension_call_shape_while_answered() {
    let mut t = tracker();
    let mut answered: Option<PhoneCall> = None;
    for input in fixture("ext_call") {
        t.apply(input);
        if let Some(c) = calls(&t)
            .into_iter()
            .find(|c| status(c, "0003*211").as_deref() == Some("5"))
        {
            answered.get_or_insert(c);
        }
    }
    let c = json(&answered.expect("the call was answered"));
    assert_eq!(c["extension"], "0003*211");
    assert_eq!(c["ownerId"], "3");
    assert_eq!(c["ownerName"], "Default Organization");
    assert!(c["answered"].as_str().unwrap().ends_with("+00:00"));
    let views = c["phoneCallView"].as_array().unwrap();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0]["id"], "01");
    assert_eq!(views[0]["extension"], "0003*211");
    assert_eq!(views[0]["callerId"], "Dave Diaz <0003*212>");
    assert_eq!(views[1]["id"], "02");
    assert_eq!(views[1]["callerId"], "Carol Chen <0003*211>");
    for v in views {
        assert_eq!(v["flow"], "2");
        assert_eq!(v["source"], serde_json::json!(["0003*211"]));
        assert_eq!(v["destination"], serde_json::json!(["0003*212"]));
        assert!(v.get("parked").is_none() && v.get("holder").is_none());
    }
    let id = c["id"].as_str().unwrap();
    assert_eq!(id.len(), 20);
    assert!(c["link"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/uapi/phoneCalls/12/0003*211/{id}")));
}

#[test]
fn outbound_public_call() {
    let (_, seen) = replay("public_out", |t| {
        calls(t)
            .iter()
            .map(|c| {
                let v = &c.phone_call_view[0];
                (
                    c.phone_call_view.len(),
                    v.status.clone(),
                    v.flow.clone(),
                    v.destination.clone(),
                )
            })
            .collect::<Vec<_>>()
    });
    let dest = vec!["3235742879".to_string()];
    assert!(
        seen.contains(&vec![(1, "4".into(), "4".into(), dest.clone())]),
        "{seen:?}"
    );
    assert!(
        seen.contains(&vec![(1, "5".into(), "4".into(), dest)]),
        "{seen:?}"
    );
    assert_eq!(seen.last().unwrap().len(), 0);
}

#[test]
fn inbound_public_call() {
    let (_, seen) = replay("public_in", |t| {
        calls(t)
            .iter()
            .filter(|c| !c.phone_call_view.is_empty())
            .map(|c| {
                let v = &c.phone_call_view[0];
                (
                    c.extension.clone(),
                    v.status.clone(),
                    v.flow.clone(),
                    v.source.clone(),
                    v.caller_id.clone(),
                )
            })
            .collect::<Vec<_>>()
    });
    let ringing = seen
        .iter()
        .flatten()
        .find(|x| x.1 == "3")
        .expect("212 rang");
    assert_eq!(
        ringing.0.as_deref(),
        Some("0003*212"),
        "the called extension is charged"
    );
    assert_eq!(ringing.2, "8");
    assert_eq!(ringing.3, vec!["3235742879".to_string()]);
    assert!(ringing.4.as_deref().unwrap().contains("<3235742879>"));
    assert!(seen.iter().flatten().any(|x| x.1 == "5"));
}

#[test]
fn parked_call_shows_parker_then_rings_back() {
    let mut t = tracker();
    let mut parked_view = None;
    let mut ring_back = None;
    let mut ids = std::collections::HashSet::new();
    for input in fixture("park_timeout") {
        t.apply(input);
        for c in calls(&t) {
            ids.insert(c.id.clone());
            if let Some(v) = c.phone_call_view.iter().find(|v| v.parked.is_some()) {
                parked_view.get_or_insert(v.clone());
            }
            if parked_view.is_some() && status(&c, "0003*211").as_deref() == Some("3") {
                ring_back.get_or_insert(c.clone());
            }
        }
    }
    let v = parked_view.expect("a view showed the parked call");
    assert_eq!(v.extension, "0003*211");
    assert_eq!(v.parked_pos.as_deref(), Some("701"));
    assert_eq!(v.parked_by.as_deref(), Some("0003*211"));
    assert_eq!(v.status, "5");
    let rb = ring_back.expect("the timeout rang the parker back");
    assert!(
        rb.phone_call_view.iter().all(|v| v.parked.is_none()),
        "no longer parked: {rb:?}"
    );
    assert_eq!(
        ids.len(),
        1,
        "the call kept one id through park and callback: {ids:?}"
    );
    assert_eq!(t.call_count(), 0);
}

#[test]
fn pickup_moves_the_call_to_the_picking_phone() {
    // 211 calls 210; 212 picks it up (PickupChan). Asterisk sends a ChannelDialplan for
    // 210's leg after its ChannelDestroyed: the leg must stay gone.
    let (t, seen) = replay("pickup", |t| {
        calls(t)
            .iter()
            .map(|c| {
                let mut v: Vec<(String, String)> = c
                    .phone_call_view
                    .iter()
                    .map(|v| (v.extension.clone(), v.status.clone()))
                    .collect();
                v.sort();
                v
            })
            .collect::<Vec<_>>()
    });
    let s = |e: &str, st: &str| (e.to_string(), st.to_string());
    assert!(
        seen.contains(&vec![vec![s("0003*210", "3"), s("0003*211", "4")]]),
        "{seen:?}"
    );
    assert!(
        seen.contains(&vec![vec![s("0003*211", "5"), s("0003*212", "5")]]),
        "211 and 212 on one call once picked up: {seen:?}"
    );
    assert!(
        seen.iter()
            .flatten()
            .flatten()
            .filter(|(e, _)| e == "0003*210")
            .count()
            > 0
            && !seen
                .last()
                .unwrap()
                .iter()
                .flatten()
                .any(|(e, _)| e == "0003*210"),
        "210 gone after the pickup"
    );
    assert_eq!(t.call_count(), 0);
}

#[test]
fn snapshot_brings_back_a_call_in_progress() {
    let mut t = tracker();
    let mut first = None;
    for input in fixture("snapshot") {
        t.apply(input);
        if first.is_none() && t.synced() {
            first = calls(&t).into_iter().next();
        }
    }
    let c = first.expect("the snapshot held a call");
    assert_eq!(status(&c, "0003*211").as_deref(), Some("5"));
    assert_eq!(status(&c, "0003*212").as_deref(), Some("5"));
    assert!(c.answered.is_some(), "answer time from CDR(answer,u)");
    assert_eq!(t.call_count(), 0);
}

#[test]
fn reconnect_to_a_restarted_asterisk_forgets_dead_calls() {
    let mut t = tracker();
    for input in fixture("ext_call") {
        let up = matches!(&input, Input::AriEvent(e) if matches!(**e, crate::asterisk::ari::Event::ChannelEnteredBridge { .. }));
        t.apply(input);
        if up && t.call_count() == 1 {
            break;
        }
    }
    assert_eq!(t.call_count(), 1);
    t.apply(Input::AriDisconnected("test".into()));
    t.apply(Input::AriConnected);
    assert!(!t.synced());
    t.apply(Input::AriSnapshot {
        channels: vec![],
        bridges: vec![],
    });
    assert!(t.synced());
    assert_eq!(t.call_count(), 0);
    assert!(t.channels().next().is_none() && t.bridges().next().is_none());
}

#[test]
fn a_stale_snapshot_does_not_revive_a_hung_up_channel() {
    // Take the snapshot fixture's channels as a snapshot that was in flight while they
    // were destroyed: their ChannelDestroyed events, applied first, must win.
    let inputs = fixture("snapshot");
    let (mut channels, mut bridges) = (vec![], vec![]);
    let mut destroyed = vec![];
    for i in inputs {
        match i {
            Input::AriSnapshot {
                channels: c,
                bridges: b,
            } => {
                channels = c;
                bridges = b;
            }
            Input::AriEvent(e)
                if matches!(*e, crate::asterisk::ari::Event::ChannelDestroyed { .. }) =>
            {
                destroyed.push(e)
            }
            _ => {}
        }
    }
    assert_eq!(channels.len(), 2);
    let mut t = tracker();
    t.apply(Input::AriConnected);
    for e in destroyed {
        t.apply(Input::AriEvent(e));
    }
    t.apply(Input::AriSnapshot { channels, bridges });
    assert_eq!(t.call_count(), 0);
}

#[test]
fn every_fixture_ends_empty_and_replays_the_same_twice() {
    for name in [
        "ext_call",
        "public_out",
        "public_in",
        "park_timeout",
        "snapshot",
    ] {
        let (t, a) = replay(name, |t| calls(t).iter().map(json).collect::<Vec<_>>());
        assert_eq!(t.call_count(), 0, "{name}");
        let (_, b) = replay(name, |t| calls(t).iter().map(json).collect::<Vec<_>>());
        assert_eq!(a, b, "{name} replays deterministically");
    }
}

/// An ARI channel event, as Asterisk would send it.
fn chan_event(kind: &str, id: &str, name: &str, state: &str, linkedid: &str) -> Input {
    let ev = serde_json::json!({
        "type": kind, "timestamp": "2026-11-30T10:00:00.000+0000",
        "channel": {"id": id, "name": name, "state": state,
            "creationtime": "2026-11-30T10:00:00.000+0000",
            "caller": {"name": "", "number": ""}, "dialplan": {"exten": "s", "app_name": "Dial", "app_data": ""},
            "channelvars": {"CHANNEL(linkedid)": linkedid}}
    });
    Input::AriEvent(Box::new(serde_json::from_value(ev).unwrap()))
}

/// For every call and view: the leg an action acts on (the snapshot's `leg_of`) is the
/// leg List's view shows (its status is that leg's).
fn same_leg_for_list_and_actions(t: &Tracker) {
    use crate::calls::ChanState;
    // The view's status as its leg's state makes it (where the state alone decides).
    let expected_status = |state: ChanState, other: &dyn Fn(ChanState) -> bool| match state {
        ChanState::Ringing => "3",
        ChanState::Ring if other(ChanState::Ringing) => "4",
        ChanState::Ring if other(ChanState::Up) => "5",
        ChanState::Ring => "2",
        _ => "",
    };
    for (_, id) in t.scope(&Scope::All) {
        let call = t.call(id).unwrap();
        let snap = crate::calls::CallSnapshot::take(t, id).unwrap();
        let listed = phone_call(t, call, "http://x");
        for ext in &call.extensions {
            let shown = t.view_leg(call, ext).map(|c| c.id.to_string());
            let acted = snap.leg_of(ext).map(|l| l.id.clone());
            assert_eq!(shown, acted, "call {id}, view of {ext}");
            let (Some(leg), Some(st)) = (snap.leg_of(ext), status(&listed, ext)) else {
                continue;
            };
            let other = |st: ChanState| {
                snap.legs
                    .iter()
                    .any(|l| !l.is_extension(ext) && l.state == st)
            };
            let want = expected_status(leg.state, &other);
            if !want.is_empty() {
                assert_eq!(st, want, "call {id}: view of {ext} shows leg {}", leg.id);
            }
        }
    }
}

#[test]
fn list_and_actions_pick_the_same_leg_for_a_view() {
    // Two legs of one extension in one call: one dialing out (Ring), one just created
    // (Down). List shows the more advanced one, and an action must act on that one.
    let mut t = tracker();
    t.apply(chan_event(
        "ChannelCreated",
        "1.1",
        "PJSIP/0003_024-01",
        "Up",
        "1.1",
    ));
    t.apply(chan_event(
        "ChannelCreated",
        "1.2",
        "PJSIP/0003_210-02",
        "Down",
        "1.1",
    ));
    t.apply(chan_event(
        "ChannelCreated",
        "1.3",
        "PJSIP/0003_210-03",
        "Ring",
        "1.1",
    ));
    t.apply(chan_event(
        "ChannelCreated",
        "1.4",
        "PJSIP/0003_210-04",
        "Down",
        "1.1",
    ));
    let call = t.scope(&Scope::All).iter().next().unwrap().1.clone();
    let snap = crate::calls::CallSnapshot::take(&t, &call).unwrap();
    assert_eq!(snap.leg_of("0003*210").map(|l| l.id.as_str()), Some("1.3"));
    same_leg_for_list_and_actions(&t);
    // And after every step of every recorded sequence.
    for name in [
        "ext_call",
        "park_timeout",
        "pickup",
        "public_in",
        "public_out",
        "snapshot",
    ] {
        let mut t = tracker();
        for input in fixture(name) {
            t.apply(input);
            same_leg_for_list_and_actions(&t);
        }
    }
}

#[test]
fn channels_made_in_the_same_millisecond_keep_their_order() {
    use super::state::creation_order;
    use std::cmp::Ordering::Less;
    let t = crate::asterisk::ari::model::parse_time("2026-11-30T10:00:00.000+0000").unwrap();
    assert_eq!(
        creation_order((&t, "1795352031.9"), (&t, "1795352031.10")),
        Less
    );
    assert_eq!(
        creation_order((&t, "1795352031.99"), (&t, "1795352032.1")),
        Less
    );
    let later = t + chrono::Duration::milliseconds(1);
    assert_eq!(creation_order((&t, "9.9"), (&later, "1.1")), Less);
}

/// An ARI channel event without a linkedid (ari.conf without channelvars).
fn bare_event(kind: &str, id: &str, name: &str) -> Input {
    let ev = serde_json::json!({
        "type": kind, "timestamp": "2026-11-30T10:00:00.000+0000",
        "channel": {"id": id, "name": name, "state": "Ring",
            "creationtime": "2026-11-30T10:00:00.000+0000",
            "caller": {"name": "", "number": ""}, "dialplan": {"exten": "024", "app_name": "Dial", "app_data": ""}}
    });
    Input::AriEvent(Box::new(serde_json::from_value(ev).unwrap()))
}

fn ami_newchannel(uniqueid: &str, linkedid: &str) -> Input {
    let m = crate::asterisk::ami::Message::new()
        .with("Event", "Newchannel")
        .with("Uniqueid", uniqueid)
        .with("Linkedid", linkedid);
    let at = crate::asterisk::ari::model::parse_time("2026-11-30T10:00:00.000+0000").unwrap();
    Input::AmiEvent(m, at)
}

#[test]
fn without_channelvars_calls_group_by_what_ami_and_dial_tell() {
    let mut t = tracker();
    let count = |t: &Tracker| t.scope(&Scope::All).len();
    // ARI first, then the Dial event: the dialed leg joins its caller's call.
    t.apply(bare_event("ChannelCreated", "2.1", "PJSIP/0003_210-01"));
    t.apply(bare_event("ChannelCreated", "2.2", "PJSIP/0003_024-02"));
    assert_eq!(count(&t), 2, "two channels, nothing told yet");
    let dial = serde_json::json!({"type":"Dial","timestamp":"2026-11-30T10:00:00.000+0000","dialstatus":"",
        "caller":{"id":"2.1","name":"PJSIP/0003_210-01","state":"Ring","dialplan":{"exten":"024"}},
        "peer":{"id":"2.2","name":"PJSIP/0003_024-02","state":"Ringing"}});
    t.apply(Input::AriEvent(Box::new(
        serde_json::from_value(dial).unwrap(),
    )));
    assert_eq!(count(&t), 1, "the dialed leg is in its caller's call");
    // AMI first: the linkedid waits for the channel.
    t.apply(ami_newchannel("3.2", "3.1"));
    t.apply(bare_event("ChannelCreated", "3.1", "PJSIP/0003_211-03"));
    t.apply(bare_event("ChannelCreated", "3.2", "PJSIP/0003_212-04"));
    assert_eq!(count(&t), 2);
    // AMI after ARI: the channel moves into its call.
    t.apply(bare_event("ChannelCreated", "4.2", "PJSIP/trunk-05"));
    assert_eq!(count(&t), 3);
    t.apply(ami_newchannel("4.2", "3.1"));
    assert_eq!(count(&t), 2);
    let call = t.call(&phone_call_id("3.1")).unwrap();
    assert_eq!(call.channels.len(), 3);
    assert_eq!(call.id.as_ref(), phone_call_id("3.1"));
}

#[test]
fn a_call_uapid_makes_shows_its_parties_before_asterisk_tells_them() {
    use super::{Made, Note, Party};
    let ends = |t: &Tracker| -> (Vec<String>, Vec<String>) {
        let v = &calls(t)[0].phone_call_view[0];
        (v.source.clone(), v.destination.clone())
    };
    let pair = |a: &str, b: &str| (vec![a.to_string()], vec![b.to_string()]);
    // Before the first party answers, an originated channel's dialplan is at "s".
    let ringing = || {
        chan_event(
            "ChannelCreated",
            "5.1",
            "PJSIP/0003_211-01",
            "Ringing",
            "5.1",
        )
    };
    let mut t = tracker();
    t.apply(ringing());
    let alone = (vec!["0003*211".to_string()], Vec::new());
    assert_eq!(
        ends(&t),
        alone,
        "Asterisk alone tells no number (its exten is \"s\")"
    );
    // uapid tells what it will dial, before or after the channel shows.
    let note = |source: Option<Party>| {
        Input::Note(Note::Made {
            call: phone_call_id("5.1"),
            made: Made {
                // A callback's view is its owner's.
                owner: source.as_ref().map(|_| "0003*210".to_string()),
                source,
                dials: Some("0003*024".into()),
            },
        })
    };
    t.apply(note(None));
    assert_eq!(ends(&t), pair("0003*211", "0003*024"));
    let mut t = tracker();
    t.apply(note(None));
    t.apply(ringing());
    assert_eq!(ends(&t), pair("0003*211", "0003*024"));
    // A callback rings its source through a Local channel, which is no one.
    let mut t = tracker();
    t.apply(note(Some(Party::Public("4155550100".into()))));
    t.apply(chan_event(
        "ChannelCreated",
        "5.1",
        "Local/4155550100@phones-01;1",
        "Down",
        "5.1",
    ));
    assert_eq!(ends(&t), pair("4155550100", "0003*024"));
}

#[test]
fn a_call_left_alone_keeps_the_number_it_dialed() {
    let dest = |t: &Tracker| calls(t)[0].phone_call_view[0].destination.clone();
    let mut t = tracker();
    let caller = |kind: &str, exten: &str| {
        let ev = serde_json::json!({
            "type": kind, "timestamp": "2026-11-30T10:00:00.000+0000",
            "channel": {"id": "6.1", "name": "PJSIP/0003_210-01", "state": "Up",
                "creationtime": "2026-11-30T10:00:00.000+0000",
                "caller": {"name": "", "number": "210"}, "dialplan": {"exten": exten},
                "channelvars": {"CHANNEL(linkedid)": "6.1"}}
        });
        Input::AriEvent(Box::new(serde_json::from_value(ev).unwrap()))
    };
    t.apply(caller("ChannelCreated", "211"));
    let dial = serde_json::json!({"type":"Dial","timestamp":"2026-11-30T10:00:00.000+0000","dialstatus":"",
        "caller":{"id":"6.1","name":"PJSIP/0003_210-01","state":"Up","dialplan":{"exten":"211"}},
        "peer":{"id":"6.2","name":"PJSIP/0003_211-02","state":"Ringing"}});
    t.apply(chan_event(
        "ChannelCreated",
        "6.2",
        "PJSIP/0003_211-02",
        "Ringing",
        "6.1",
    ));
    t.apply(Input::AriEvent(Box::new(
        serde_json::from_value(dial).unwrap(),
    )));
    assert_eq!(dest(&t), vec!["0003*211"]);
    // 211 leaves (a transfer to voicemail, say); 210 runs on at "s" of another context.
    t.apply(chan_event(
        "ChannelDestroyed",
        "6.2",
        "PJSIP/0003_211-02",
        "Up",
        "6.1",
    ));
    t.apply(caller("ChannelDialplan", "s"));
    assert_eq!(dest(&t), vec!["0003*211"], "not the dialplan's \"s\"");
}

#[test]
fn a_channel_made_beside_a_merged_leg_joins_the_merged_call() {
    let mut t = tracker();
    let ids = |t: &Tracker| -> Vec<String> {
        let mut v: Vec<String> = calls(t).iter().map(|c| c.id.clone()).collect();
        v.sort();
        v
    };
    t.apply(chan_event(
        "ChannelCreated",
        "7.1",
        "PJSIP/0003_210-01",
        "Up",
        "7.1",
    ));
    t.apply(chan_event(
        "ChannelCreated",
        "8.1",
        "PJSIP/0003_211-02",
        "Up",
        "8.1",
    ));
    assert_eq!(ids(&t).len(), 2);
    // Two calls' legs talk in one bridge (a pickup, a conference): one call, the oldest.
    let bridge = serde_json::json!({"type":"ChannelEnteredBridge","timestamp":"2026-11-30T10:00:01.000+0000",
        "bridge":{"id":"b1","technology":"simple_bridge","bridge_class":"basic","name":"","channels":["7.1","8.1"]},
        "channel":{"id":"8.1","name":"PJSIP/0003_211-02","state":"Up"}});
    t.apply(Input::AriEvent(Box::new(
        serde_json::from_value(bridge).unwrap(),
    )));
    let merged = ids(&t);
    assert_eq!(merged, vec![phone_call_id("7.1")]);
    // A spy rung with 211's leg as originator carries 211's first linkedid.
    t.apply(chan_event(
        "ChannelCreated",
        "9.1",
        "PJSIP/0003_212-03",
        "Ringing",
        "8.1",
    ));
    assert_eq!(ids(&t), merged, "the spy is in the merged call");
    // AMI's listing after a reconnect tells the merged leg's first linkedid again.
    t.apply(ami_newchannel("8.1", "8.1"));
    assert_eq!(ids(&t), merged);
}

#[test]
fn a_leg_dialed_by_a_channel_without_a_linkedid_yet_joins_the_call_asterisk_tells() {
    let mut t = tracker();
    let count = |t: &Tracker| t.scope(&Scope::All).len();
    // A callback: Local;1 and Local;2 show before AMI tells their linkedid; ;2 dials out.
    t.apply(bare_event(
        "ChannelCreated",
        "uapid-1",
        "Local/4155550100@phones-01;1",
    ));
    t.apply(bare_event(
        "ChannelCreated",
        "uapid-1;2",
        "Local/4155550100@phones-01;2",
    ));
    t.apply(bare_event("ChannelCreated", "9.5", "PJSIP/trunk-05"));
    let dial = serde_json::json!({"type":"Dial","timestamp":"2026-11-30T10:00:00.000+0000","dialstatus":"",
        "caller":{"id":"uapid-1;2","name":"Local/4155550100@phones-01;2","state":"Ring","dialplan":{"exten":"4155550100"}},
        "peer":{"id":"9.5","name":"PJSIP/trunk-05","state":"Ringing"}});
    t.apply(Input::AriEvent(Box::new(
        serde_json::from_value(dial).unwrap(),
    )));
    // AMI tells the truth afterwards: all three are one call.
    t.apply(ami_newchannel("uapid-1;2", "uapid-1"));
    t.apply(ami_newchannel("9.5", "uapid-1"));
    assert_eq!(count(&t), 1);
    let call = t.call(&phone_call_id("uapid-1")).unwrap();
    assert_eq!(call.channels.len(), 3);
}
