//! Parsing of the seeds' bodies, and the call locks. Every error case of the bodies is
//! checked end to end (body → UAPI code) by the HTTP layer's router tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::input::{Destination, ParkTimeout, PartyNumber, WaitForPickup};
use super::locks::CallLocks;
use super::*;
use crate::config::Settings;

fn dir() -> Directory {
    Directory::build(&Settings::defaults().directory).unwrap()
}

fn parse(d: &Directory, v: Value) -> Result<Action, InputError> {
    Action::parse(
        &v,
        &ParseCtx {
            dir: d,
            org: Some(3),
        },
    )
}

#[test]
fn seed_bodies_parse_verbatim() {
    let d = dir();
    let park = parse(
        &d,
        json!({"action":"Park","maxInParking":"30","phoneCallViewId":"01"}),
    );
    let Ok(Action::Park(p)) = park else {
        panic!("{park:?}")
    };
    assert_eq!(p.view.map(ViewId::number), Some(1));
    assert_eq!(p.timeout.millis(), 30_000);

    let unpark = parse(
        &d,
        json!({"action":"UnPark","sendCallTo":"0003*024","callerId":"John Doe <42420042>","waitForPickup":"20","phoneCallViewId":"01"}),
    );
    let Ok(Action::UnPark(u)) = unpark else {
        panic!("{unpark:?}")
    };
    assert_eq!(u.send_call_to.number, "0003*024");
    assert_eq!(
        u.caller_id.map(|c| c.to_asterisk()).as_deref(),
        Some("\"John Doe\" <42420042>")
    );
    assert_eq!(u.wait.millis(), 20_000);
    assert_eq!(u.view.map(ViewId::number), Some(1));

    let pickup = json!({"action":"PickUp","sendCallTo":"0003*024","callerId":"John Doe <42420042>","waitForPickup":"20" ,"phoneCallViewId":"01"});
    assert!(matches!(parse(&d, pickup), Ok(Action::PickUp(_))));
    let off = parse(&d, json!({"action":"OffHold","phoneCallViewId":"01"}));
    assert!(matches!(off, Ok(Action::OffHold(OffHold { view: Some(v) })) if v.number() == 1));
    let t = parse(
        &d,
        json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"0003*024","transferNumber":"0003*210"}),
    );
    let Ok(Action::Transfer(t)) = t else {
        panic!("{t:?}")
    };
    assert_eq!(t.send_call_to, Destination::Public("3235742879".into()));
    assert_eq!(t.from.as_str(), "0003*024");
    assert_eq!(t.number.as_ref().map(PartyNumber::as_str), Some("0003*210"));
}

#[test]
fn numbers_as_json_numbers_and_defaults() {
    let d = dir();
    let Ok(Action::Park(p)) = parse(
        &d,
        json!({"action":"Park","maxInParking":180,"phoneCallViewId":1}),
    ) else {
        panic!()
    };
    assert_eq!(
        (p.view.map(ViewId::number), p.timeout),
        (Some(1), ParkTimeout::DEFAULT)
    );
    let Ok(Action::Park(p)) = parse(&d, json!({"action":"Park","phoneCallViewId":"02"})) else {
        panic!()
    };
    assert_eq!(
        (p.view.map(ViewId::number), p.timeout),
        (Some(2), ParkTimeout::DEFAULT)
    );
    let Ok(Action::UnPark(u)) = parse(
        &d,
        json!({"action":"UnPark","sendCallTo":"024","phoneCallViewId":"01"}),
    ) else {
        panic!()
    };
    assert_eq!((u.wait, u.caller_id), (WaitForPickup::DEFAULT, None));
    assert_eq!(
        u.send_call_to.number, "0003*024",
        "a short number in the organization"
    );
}

#[test]
fn the_all_calls_form_drops_the_view() {
    let d = dir();
    let a = parse(&d, json!({"action":"OnHold","phoneCallViewId":"02"})).unwrap();
    assert_eq!(a.view().map(ViewId::number), Some(2));
    assert_eq!(a.without_view().view(), None);
}

#[tokio::test]
async fn a_working_action_makes_others_busy_a_settling_one_makes_them_wait() {
    let (calls, inputs, _task) = crate::calls::Calls::spawn(Arc::new(dir()), "uapid");
    let locks = Arc::new(CallLocks::default());
    let call: Arc<str> = Arc::from("c1");
    let first = locks.lock(&call).await.expect("free");
    assert_eq!(locks.lock(&call).await.err(), Some(ActionError::Busy));
    assert!(locks.is_busy(&call));

    // The first action's operation is done; it waits for the PBX to show it.
    let shown = Arc::new(AtomicBool::new(false));
    let s2 = shown.clone();
    first.settle(&calls, move |_| s2.load(Ordering::SeqCst));
    let (l2, c2) = (locks.clone(), call.clone());
    let mut next = tokio::spawn(async move { l2.lock(&c2).await.map(|_| ()) });
    // Still waiting: the outcome has not shown yet.
    assert!(tokio::time::timeout(Duration::from_millis(50), &mut next)
        .await
        .is_err());
    shown.store(true, Ordering::SeqCst);
    // Any input makes the tracker tell its waiters that something changed.
    inputs
        .send(crate::calls::Input::AmiDisconnected("test".into()))
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .expect("the waiting action gets the lock once the outcome shows")
        .expect("task");
    assert!(got.is_ok());
    // Another call was never locked.
    assert!(locks.lock(&Arc::from("c2")).await.is_ok());
}

#[test]
fn ari_answers_map_to_what_they_say_of_the_call() {
    use crate::asterisk::ari::AriError;
    let status = |status: u16, message: &str| {
        PbxError::from(AriError::Status {
            status,
            message: message.into(),
        })
    };
    assert!(matches!(
        status(404, "Channel not found"),
        PbxError::Changed(_)
    ));
    // A spy or UnPark originated beside a party that hung up meanwhile.
    let gone = status(400, "Provided originator channel was not found");
    assert!(matches!(gone, PbxError::Changed(_)), "{gone:?}");
    assert!(matches!(
        status(400, "Invalid endpoint"),
        PbxError::Failed(_)
    ));
}
