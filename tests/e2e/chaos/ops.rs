//! What the chaos test does in a step: operations of the phones (dial, answer, refuse,
//! hang up) and of UAPI clients (every PUT action, DELETE, the three POSTs, List), each
//! chosen from the seed and from what its client lists at that moment.
//!
//! A client's request may be valid or deliberately not. After it answers, the operation
//! checks what the answer promises: a status UAPI documents for it (never a 500), an
//! error body with a code and a message, the exact code for input that is wrong whatever
//! the call's state, and for a 2xx its outcome in List within a bound (unless something
//! else in the same step, or a party's end, may have undone it meanwhile: that check is
//! then counted as inconclusive). A 2xx (or 504) that may end legs leaves a
//! [`License`] for the judge.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::Req;

use super::judge::{history, joins_conference, same_party, License, LicenseKind};
use super::observer::Chan;
use super::phones::{PhoneId, PUBLIC, PUBLIC_NUMBERS, SHORTS};
use super::rng::Rng;
use super::{log, Ctx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    Admin,
    Org,
    Alice,
    Bob,
}

impl Client {
    pub const ALL: [Client; 4] = [Client::Admin, Client::Org, Client::Alice, Client::Bob];

    pub fn app(self) -> &'static str {
        match self {
            Client::Admin => "admin-app",
            Client::Org => "org-app",
            Client::Alice => "alice-app",
            Client::Bob => "bob-app",
        }
    }

    /// The extensions of a user's app (None: every extension).
    fn own(self) -> Option<&'static [&'static str]> {
        match self {
            Client::Alice => Some(&["0003*210", "0003*211"]),
            Client::Bob => Some(&["0003*024"]),
            _ => None,
        }
    }

    fn may_use(self, ext: &str) -> bool {
        self.own().is_none_or(|o| o.contains(&ext))
    }
}

/// The user of an extension in the sandbox's directory.
fn user_of(ext: &str) -> &'static str {
    match short(ext) {
        "210" | "211" => "12",
        "024" => "13",
        _ => "14",
    }
}

fn short(ext: &str) -> &str {
    ext.rsplit('*').next().unwrap_or(ext)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOp {
    Action,
    Delete,
    Create,
    List,
}

#[derive(Debug, Clone)]
pub enum Op {
    Dial { from: PhoneId, number: String },
    HangUp { party: usize },
    Answer { party: usize },
    Reject { party: usize, code: u16 },
    Client { who: Client, op: ClientOp, rng: Rng },
}

impl Op {
    /// The call a phone operation touches, for the step's conflict bookkeeping.
    pub fn describe(&self) -> String {
        match self {
            Op::Dial { from, number } => format!("{} dials {number}", from.name()),
            Op::HangUp { party } => format!("hang up P{party}"),
            Op::Answer { party } => format!("answer P{party}"),
            Op::Reject { party, code } => format!("refuse P{party} with {code}"),
            Op::Client { who, op, .. } => format!("{who:?} {op:?}"),
        }
    }
}

/// What a 2xx must show in List, call by call.
#[derive(Debug, Clone)]
enum Outcome {
    /// The view of this extension shows `parked`.
    Parked(String),
    /// A view of this extension appears in the call.
    ViewAppears(String),
    /// This extension rings (PickUp: a call of its own until it picks up), or appears
    /// in the call.
    Rings(String),
    /// The view of this extension holds the other party (`holder`).
    Holding(String),
    /// The view of this extension holds nobody.
    NotHolding(String),
    /// The party of this extension is no longer on the call (status 5).
    Left(String),
    Recording(String),
    NotRecording(String),
    /// The call is gone.
    Gone,
    /// The call is listed.
    Listed,
}

/// A request chosen for a client, and what its answer means.
struct Planned {
    req: Req,
    label: String,
    action: &'static str,
    /// The call it names (None: the all-calls form).
    call: Option<String>,
    /// The extension of the path (all-calls form: each call's view).
    path_ext: Option<String>,
    /// The extension whose view acts.
    view_ext: Option<String>,
    send_to: Option<String>,
    from: Option<String>,
    /// For input that is wrong whatever the state: the 400 codes it may get.
    invalid: Option<&'static [&'static str]>,
    /// A path outside the app's reach: 403.
    forbidden: bool,
    park_secs: Option<u64>,
    duration: Option<u64>,
    /// A callback's extension: the calls made show in its view, though it has no leg.
    made_for: Option<String>,
    /// The calls the client listed before choosing.
    listing: Vec<Value>,
}

impl Planned {
    fn new(req: Req, label: String, action: &'static str, listing: &[Value]) -> Planned {
        Planned {
            req,
            label,
            action,
            call: None,
            path_ext: None,
            view_ext: None,
            send_to: None,
            from: None,
            invalid: None,
            forbidden: false,
            park_secs: None,
            duration: None,
            made_for: None,
            listing: listing.to_vec(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Views and calls as a client lists them

fn views(call: &Value) -> Vec<Value> {
    call["phoneCallView"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn view_of<'a>(call: &'a Value, ext: &str) -> Option<&'a Value> {
    call["phoneCallView"]
        .as_array()?
        .iter()
        .find(|v| v["extension"] == ext)
}

/// The call's parties: its views' extensions and the public numbers it names (other
/// values there are List's mistakes, reported by checks.rs, not sent back).
pub fn parties(call: &Value) -> Vec<String> {
    let mut out: Vec<String> = views(call)
        .iter()
        .filter_map(|v| v["extension"].as_str().map(str::to_string))
        .collect();
    for v in views(call) {
        for k in ["source", "destination"] {
            for n in v[k].as_array().into_iter().flatten() {
                let public = |n: &&str| n.len() >= 7 && n.bytes().all(|b| b.is_ascii_digit());
                if let Some(n) = n.as_str().filter(public) {
                    if !out.iter().any(|o| o == n) {
                        out.push(n.to_string());
                    }
                }
            }
        }
    }
    out
}

fn id_of(call: &Value) -> String {
    call["id"].as_str().unwrap_or_default().to_string()
}

/// Chooses a view: one satisfying `want` most of the time, when there is one.
fn choose_view(
    rng: &mut Rng,
    call: &Value,
    want: impl Fn(&Value) -> bool,
) -> Option<(usize, String)> {
    let vs = views(call);
    let good: Vec<usize> = (0..vs.len()).filter(|i| want(&vs[*i])).collect();
    let i = if !good.is_empty() && rng.chance(80) {
        *rng.pick(&good)?
    } else {
        rng.below(vs.len())?
    };
    Some((i + 1, vs[i]["extension"].as_str()?.to_string()))
}

trait Below {
    fn below(&mut self, n: usize) -> Option<usize>;
}

impl Below for Rng {
    fn below(&mut self, n: usize) -> Option<usize> {
        (n > 0).then(|| (self.next_u64() % n as u64) as usize)
    }
}

fn answered(v: &Value) -> bool {
    v["status"] == "5" && v.get("parked").is_none()
}

/// An extension number as a client may write it: full or short.
fn spelled(rng: &mut Rng, ext: &str) -> String {
    if rng.chance(50) {
        ext.to_string()
    } else {
        short(ext).to_string()
    }
}

fn any_extension(rng: &mut Rng) -> String {
    format!("0003*{}", rng.pick(&SHORTS).expect("phones"))
}

// ---------------------------------------------------------------------------------------
// Choosing a request

/// The path a client names a call by, and the path's extension if it names one.
fn call_path(
    rng: &mut Rng,
    who: Client,
    call: &Value,
    view_ext: &str,
) -> (String, Option<String>, bool) {
    let id = id_of(call);
    let exts: Vec<String> = views(call)
        .iter()
        .filter_map(|v| v["extension"].as_str().map(str::to_string))
        .filter(|e| who.may_use(e))
        .collect();
    let ext = if !view_ext.is_empty() && who.may_use(view_ext) && rng.chance(60) {
        Some(view_ext.to_string())
    } else {
        rng.pick(&exts).cloned()
    };
    // Now and then, someone else's extension: 403.
    if who.own().is_some() && rng.chance(5) {
        let other = views(call)
            .iter()
            .filter_map(|v| v["extension"].as_str().map(str::to_string))
            .find(|e| !who.may_use(e))
            .unwrap_or_else(|| "0003*212".to_string());
        return (
            format!("/uapi/phoneCalls/@me/{other}/{id}"),
            Some(other),
            true,
        );
    }
    let Some(ext) = ext.filter(|_| rng.chance(65)) else {
        let base = if rng.chance(15) {
            "/unifiedapi/phoneCalls"
        } else {
            "/uapi/phoneCalls"
        };
        return (format!("{base}/@me/@self/{id}"), None, false);
    };
    let base = if rng.chance(10) {
        "/uapi/phoneCall"
    } else {
        "/uapi/phoneCalls"
    };
    let path = match who {
        Client::Admin | Client::Org if rng.chance(50) => format!("{base}/@me/{ext}/{id}"),
        _ if who.own().is_some() && rng.chance(50) => {
            format!("{base}/@me/{}/{id}", spelled(rng, &ext))
        }
        _ => format!("{base}/{}/{}/{id}", user_of(&ext), spelled(rng, &ext)),
    };
    (path, Some(ext), false)
}

const ACTIONS: [(u64, &str); 13] = [
    (12, "Park"),
    (10, "UnPark"),
    (5, "PickUp"),
    (10, "OnHold"),
    (9, "OffHold"),
    (9, "Transfer"),
    (4, "TransferToVoicemail"),
    (7, "StartRecording"),
    (5, "StopRecording"),
    (3, "BargeIn"),
    (3, "Whisper"),
    (4, "Monitor"),
    (9, "invalid"),
];

/// An action, most of the time one the call's state allows.
fn choose_action(rng: &mut Rng, call: &Value) -> &'static str {
    if rng.chance(25) {
        return rng.weighted(&ACTIONS);
    }
    let vs = views(call);
    let any = |f: &dyn Fn(&Value) -> bool| vs.iter().any(f);
    let talking = any(&answered);
    let fits: Vec<(u64, &str)> = ACTIONS
        .iter()
        .copied()
        .filter(|(_, a)| match *a {
            "UnPark" => any(&|v| v.get("parked").is_some()),
            "PickUp" => any(&|v| v["status"] == "3"),
            "OffHold" => any(&|v| v.get("holder").is_some()),
            "StopRecording" => any(&|v| v.get("recording").is_some()),
            "invalid" => true,
            _ => talking,
        })
        .collect();
    if fits.len() == 1 {
        // Nobody talks: any action (a 409 says why).
        return rng.weighted(&ACTIONS);
    }
    rng.weighted(&fits)
}

/// The step's focus call when the client lists it, else any call it lists.
fn pick_call(rng: &mut Rng, listing: &[Value], focus: Option<&str>) -> Option<Value> {
    match focus.and_then(|f| listing.iter().find(|c| c["id"] == f)) {
        Some(c) => Some(c.clone()),
        None => rng.pick(listing).cloned(),
    }
}

fn plan_action(
    rng: &mut Rng,
    who: Client,
    listing: &[Value],
    focus: Option<&str>,
) -> Option<Planned> {
    let call = pick_call(rng, listing, focus)?;
    let action = choose_action(rng, &call);
    let mut body = json!({ "action": action });
    let mut view_ext = None;
    let mut send_to = None;
    let mut from = None;
    let mut invalid: Option<&'static [&'static str]> = None;
    let mut park_secs = None;
    let with_view = |rng: &mut Rng, body: &mut Value, want: &dyn Fn(&Value) -> bool| {
        let (n, ext) = choose_view(rng, &call, want)?;
        if rng.chance(90) {
            body["phoneCallViewId"] = json!(format!("{n:02}"));
        }
        Some(ext)
    };
    match action {
        "Park" => {
            view_ext = with_view(rng, &mut body, &|v| answered(v));
            let secs = *rng.pick(&[10u64, 12, 15, 20, 30, 60, 180])?;
            if secs != 180 || rng.chance(50) {
                body["maxInParking"] = if rng.chance(50) {
                    json!(secs)
                } else {
                    json!(secs.to_string())
                };
            }
            park_secs = Some(secs);
        }
        "UnPark" | "PickUp" => {
            let want_parked = action == "UnPark";
            view_ext = with_view(rng, &mut body, &|v| {
                if want_parked {
                    v.get("parked").is_some()
                } else {
                    v["status"] == "3"
                }
            });
            let to = any_extension(rng);
            body["sendCallTo"] = json!(spelled(rng, &to));
            send_to = Some(to);
            body["waitForPickup"] = json!(rng.range(3, 15).to_string());
            if rng.chance(30) {
                body["callerId"] = json!("John Doe <42420042>");
            }
        }
        "OnHold" => {
            view_ext = with_view(rng, &mut body, &|v| {
                answered(v) && v.get("onHold").is_none()
            })
        }
        "OffHold" => view_ext = with_view(rng, &mut body, &|v| v.get("holder").is_some()),
        "StartRecording" => {
            view_ext = with_view(rng, &mut body, &|v| {
                answered(v) && v.get("recording").is_none()
            });
            if rng.chance(50) {
                body["format"] = json!(if rng.chance(50) { "wav" } else { "wav49" });
            }
        }
        "StopRecording" => view_ext = with_view(rng, &mut body, &|v| v.get("recording").is_some()),
        "Transfer" | "TransferToVoicemail" => {
            let (_, f) = choose_view(rng, &call, answered)?;
            let f = if rng.chance(10) {
                parties(&call)
                    .into_iter()
                    .find(|p| !p.contains('*'))
                    .unwrap_or(f)
            } else {
                f
            };
            body["transferFromNumber"] = json!(if f.contains('*') {
                spelled(rng, &f)
            } else {
                f.clone()
            });
            from = Some(f);
            let to = if action == "Transfer" && rng.chance(30) {
                rng.pick(&PUBLIC_NUMBERS)?.to_string()
            } else {
                any_extension(rng)
            };
            body["sendCallTo"] = json!(if to.contains('*') {
                spelled(rng, &to)
            } else {
                to.clone()
            });
            if to.contains('*') {
                send_to = Some(to);
            }
            if rng.chance(15) {
                let others: Vec<String> = parties(&call)
                    .into_iter()
                    .filter(|p| Some(p) != from.as_ref())
                    .collect();
                if let Some(n) = rng.pick(&others) {
                    body["transferNumber"] = json!(n);
                }
            }
        }
        "BargeIn" | "Whisper" | "Monitor" => {
            view_ext = with_view(rng, &mut body, &|v| answered(v));
            let to = any_extension(rng);
            body["sendCallTo"] = json!(spelled(rng, &to));
            send_to = Some(to);
            body["waitForPickup"] = json!(rng.range(3, 15));
            if action == "Whisper" && rng.chance(50) {
                body["private"] = json!(if rng.chance(50) { "1" } else { "0" });
            }
        }
        _ => {
            let (b, codes) = invalid_body(rng, &call);
            body = b;
            invalid = Some(codes);
        }
    }
    let acting = view_ext
        .clone()
        .or_else(|| from.clone())
        .unwrap_or_default();
    let all_calls =
        invalid.is_none() && rng.chance(8) && acting.contains('*') && who.may_use(&acting);
    let (path, path_ext, forbidden) = if all_calls {
        (
            format!(
                "/uapi/phoneCalls/{}/{}",
                user_of(&acting),
                spelled(rng, &acting)
            ),
            Some(acting.clone()),
            false,
        )
    } else {
        call_path(rng, who, &call, &acting)
    };
    // Without a view named, the path's extension acts when it is in the call, else the
    // call's first (README: the action table).
    if body.get("phoneCallViewId").is_none() && view_ext.is_some() {
        view_ext = path_ext
            .clone()
            .filter(|e| view_of(&call, e).is_some())
            .or_else(|| {
                views(&call)
                    .first()
                    .and_then(|v| v["extension"].as_str().map(str::to_string))
            });
    }
    let label = format!("{who:?} PUT {path} {body}");
    let mut p = Planned::new(
        Req::put(&path).json(body),
        label,
        if invalid.is_some() { "invalid" } else { action },
        std::slice::from_ref(&call),
    );
    p.call = (!all_calls).then(|| id_of(&call));
    p.path_ext = path_ext;
    p.view_ext = view_ext;
    p.send_to = send_to;
    p.from = from;
    p.invalid = invalid;
    p.forbidden = forbidden;
    p.park_secs = park_secs;
    Some(p)
}

/// A body wrong whatever the call's state, and the 400 codes it may get.
fn invalid_body(rng: &mut Rng, call: &Value) -> (Value, &'static [&'static str]) {
    let ext = views(call)
        .first()
        .and_then(|v| v["extension"].as_str().map(str::to_string))
        .unwrap_or_else(|| "0003*210".into());
    let cases: [(Value, &'static [&'static str]); 12] = [
        (
            json!({"action":"Park","maxInParking":"5","phoneCallViewId":"01"}),
            &["pc_parktimeout_invalid"],
        ),
        (
            json!({"action":"Park","phoneCallViewId":"x1"}),
            &["pc_phonecallview_invalid"],
        ),
        (
            json!({"action":"UnPark","sendCallTo":"0003*024","waitForPickup":"0","phoneCallViewId":"01"}),
            &["pc_timeout_invalid"],
        ),
        (
            json!({"action":"UnPark","sendCallTo":"0003*211","callerId":"nobody","phoneCallViewId":"01"}),
            &["pc_callerid_invalid"],
        ),
        (
            json!({"action":"PickUp","sendCallTo":"3235742879","phoneCallViewId":"01"}),
            &["pc_sendcallto_invalid"],
        ),
        (
            json!({"action":"Transfer","sendCallTo":"12ab","transferFromNumber":ext}),
            &["pc_sendcallto_invalid"],
        ),
        (
            json!({"action":"Transfer","sendCallTo":"0003*212"}),
            &["pc_transfer_from_number_invalid"],
        ),
        (
            json!({"action":"TransferToVoicemail","sendCallTo":"3235742879","transferFromNumber":ext}),
            &["pc_sendcallto_invalid"],
        ),
        (
            json!({"action":"StartRecording","format":"mp3","phoneCallViewId":"01"}),
            &["pc_format_invalid"],
        ),
        (
            json!({"action":"Whisper","sendCallTo":"0003*212","private":"2","phoneCallViewId":"01"}),
            &["pc_private_invalid"],
        ),
        (json!({"action":"Fly"}), &["pc_action_invalid"]),
        (json!([1, 2]), &["request_invalid"]),
    ];
    let i = rng.below(cases.len()).unwrap_or(0);
    cases[i].clone()
}

fn plan_delete(
    rng: &mut Rng,
    who: Client,
    listing: &[Value],
    focus: Option<&str>,
) -> Option<Planned> {
    let call = pick_call(rng, listing, focus)?;
    let (_, ext) = choose_view(rng, &call, |_| true)?;
    let (mut path, path_ext, forbidden, one) = if rng.chance(20) && who.may_use(&ext) {
        (
            format!("/uapi/phoneCalls/{}/{}", user_of(&ext), spelled(rng, &ext)),
            Some(ext.clone()),
            false,
            false,
        )
    } else {
        let (p, e, f) = call_path(rng, who, &call, &ext);
        (p, e, f, true)
    };
    let mut invalid: Option<&'static [&'static str]> = None;
    match rng.range(0, 9) {
        0 => {
            let n = rng.pick(&parties(&call))?.clone();
            path += &format!("?phoneNumber={}", n.replace('*', "%2A"));
        }
        1 => path += &format!("?phoneNumber={}", rng.pick(&PUBLIC_NUMBERS)?),
        2 if !forbidden => {
            path += "?phoneNumber=abc";
            invalid = Some(&["phone_number_invalid"]);
        }
        _ => {}
    }
    let label = format!("{who:?} DELETE {path}");
    let mut p = Planned::new(
        Req::new(reqwest::Method::DELETE, &path),
        label,
        "DELETE",
        std::slice::from_ref(&call),
    );
    p.call = one.then(|| id_of(&call));
    p.path_ext = path_ext;
    p.invalid = invalid;
    p.forbidden = forbidden;
    Some(p)
}

fn plan_create(rng: &mut Rng, who: Client, listing: &[Value]) -> Option<Planned> {
    let mine: Vec<&str> = match who.own() {
        Some(o) => o.to_vec(),
        None => vec!["0003*210", "0003*211", "0003*024", "0003*212"],
    };
    let ext = rng.pick(&mine)?.to_string();
    let user = if who.own().is_some() && rng.chance(50) {
        "@me"
    } else {
        user_of(&ext)
    };
    let pick_dest = |rng: &mut Rng| -> String {
        if rng.chance(25) {
            rng.pick(&PUBLIC_NUMBERS).expect("numbers").to_string()
        } else {
            let others: Vec<&str> = SHORTS
                .iter()
                .copied()
                .filter(|s| *s != short(&ext))
                .collect();
            format!("0003*{}", rng.pick(&others).expect("others"))
        }
    };
    let wait = rng.range(5, 20);
    let mut duration = None;
    let mut made_for = None;
    let (path, body) = match rng.range(0, 9) {
        0..=4 => {
            let mut q = format!("?waitForPickup={wait}");
            if rng.chance(25) {
                let d = rng.range(5, 30);
                q += &format!("&callDuration={d}");
                duration = Some(d);
            }
            let body = json!({"extension": ext, "phoneCallView":[{"source":[ext], "destination":[pick_dest(rng)]}]});
            (format!("/uapi/phoneCalls/{user}/simple{q}"), body)
        }
        5..=7 => {
            let source = if rng.chance(50) {
                rng.pick(&PUBLIC_NUMBERS)?.to_string()
            } else {
                ext.clone()
            };
            let mut dest = pick_dest(rng);
            if dest == source {
                dest = "0003*212".into();
            }
            let body = json!({"extension": ext, "phoneCallView":[{"source":[source], "destination":[dest]}]});
            made_for = Some(ext.clone());
            (
                format!("/uapi/phoneCalls/{user}/callback?waitForPickup={wait}"),
                body,
            )
        }
        _ => {
            let n = rng.range(1, 2);
            let dests: Vec<String> = (0..n).map(|_| pick_dest(rng)).collect();
            let body = json!({"phoneCallView":[{"destination": dests}]});
            (format!("/uapi/phoneCalls/{user}/conferenceInvite?number=800&pin=4321&waitForPickup={wait}"), body)
        }
    };
    let label = format!("{who:?} POST {path} {body}");
    let mut p = Planned::new(Req::post(&path).json(body), label, "POST", listing);
    p.duration = duration;
    p.made_for = made_for;
    Some(p)
}

// ---------------------------------------------------------------------------------------
// Running an operation

/// Statuses a request may get at all: 500 (and anything undocumented) never. A PUT or
/// DELETE that found no call to act on gets 200 with `[]` (README, Actions).
fn documented(method: &str, status: u16) -> bool {
    match method {
        "GET" => matches!(status, 200 | 400 | 403),
        "POST" => matches!(status, 202 | 400 | 403 | 409 | 504),
        _ => matches!(status, 200 | 202 | 400 | 403 | 409 | 504),
    }
}

pub async fn run_client(
    ctx: &Ctx<'_>,
    who: Client,
    op: ClientOp,
    mut rng: Rng,
    focus: Option<String>,
    tag: &str,
) {
    let token = ctx.token(who);
    let listing = match ctx
        .api
        .get("/uapi/phoneCalls/@me/@self?count=100", token)
        .await
    {
        (200, body) => body["entry"].as_array().cloned().unwrap_or_default(),
        (st, body) => {
            ctx.fail(
                "List answers 200",
                format!("{tag} {who:?} GET @me/@self → {st} {body}"),
            );
            return;
        }
    };
    let planned = match op {
        ClientOp::Action => plan_action(&mut rng, who, &listing, focus.as_deref()),
        ClientOp::Delete => plan_delete(&mut rng, who, &listing, focus.as_deref()),
        ClientOp::Create => plan_create(&mut rng, who, &listing),
        ClientOp::List => return list_op(ctx, who, &mut rng, tag).await,
    };
    let Some(p) = planned else {
        // Nothing to act on: the all-calls form on an extension with no call.
        log(format!("{tag} {who:?}: nothing listed to act on"));
        return list_op(ctx, who, &mut rng, tag).await;
    };
    if p.action != "POST" {
        ctx.touch(tag, p.call.as_deref().unwrap_or("*"));
    }
    let req = p.req.clone().token(token);
    let sent = Instant::now();
    let (status, body) = ctx.api.request(&req).await;
    let answered = Instant::now();
    log(format!(
        "{tag} {} → {status} {} ({} ms)",
        p.label,
        short_json(&body),
        (answered - sent).as_millis()
    ));
    let method = match p.action {
        "DELETE" => "DELETE",
        "POST" => "POST",
        _ => "PUT",
    };
    ctx.count(&format!("{method} {} → {status}", p.action));
    check_status(ctx, &p, method, status, &body, tag);
    let ids = acted_ids(&p, status, &body);
    if let Some(ext) = p.made_for.as_ref().filter(|_| status == 202) {
        let mut made = ctx.made_for.lock().unwrap();
        made.extend(ids.iter().map(|id| (id.clone(), ext.clone())));
    }
    license(ctx, &p, status, &ids, sent, answered);
    if (200..300).contains(&status)
        && status != 200
        && check_outcome(ctx, &p, &ids, sent, tag).await
    {
        ctx.count("outcome shown in List");
    }
    if status == 202 {
        check_leaving(ctx, &p, &ids, sent, tag).await;
    }
}

fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!("{}…", &s[..300])
    } else {
        s
    }
}

fn check_status(ctx: &Ctx<'_>, p: &Planned, method: &str, status: u16, body: &Value, tag: &str) {
    let code = body["error"]["code"].as_str();
    if !documented(method, status) {
        ctx.fail(
            "every answer is one UAPI documents (no 500, no 502/503 with Asterisk up)",
            format!("{tag} {} → {status} {body}", p.label),
        );
        return;
    }
    if method != "GET" && status == 200 && *body != Value::Array(Vec::new()) {
        ctx.fail(
            "a 200 to an action or a hang-up means no call was there: its body is []",
            format!("{tag} {} → {status} {body}", p.label),
        );
    }
    if status >= 400 && (code.is_none() || !body["error"]["message"].is_string()) {
        ctx.fail(
            "every error has a code and a message",
            format!("{tag} {} → {status} {body}", p.label),
        );
    }
    if p.forbidden {
        if status != 403 {
            ctx.fail(
                "a path outside the app's reach is refused (403)",
                format!("{tag} {} → {status} {body}", p.label),
            );
        }
        return;
    }
    if let Some(codes) = p.invalid {
        if status != 400 || !code.is_some_and(|c| codes.contains(&c)) {
            ctx.fail(
                "input that is wrong whatever the state gets its 400 code, and nothing is done",
                format!(
                    "{tag} {} → {status} {body}; expected 400 {codes:?}",
                    p.label
                ),
            );
        }
    }
}

/// The calls a 2xx names (an object or an array of `{"id"}`).
fn acted_ids(p: &Planned, status: u16, body: &Value) -> Vec<String> {
    if status == 504 {
        // Unknown whether done: what it may have done, to every call it named.
        return match &p.call {
            Some(c) => vec![c.clone()],
            None => p.listing.iter().map(id_of).collect(),
        };
    }
    if !(200..300).contains(&status) {
        return Vec::new();
    }
    match body {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x["id"].as_str().map(str::to_string))
            .collect(),
        Value::Object(_) => body["id"]
            .as_str()
            .map(str::to_string)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn license(
    ctx: &Ctx<'_>,
    p: &Planned,
    status: u16,
    ids: &[String],
    sent: Instant,
    answered: Instant,
) {
    if !((200..300).contains(&status) || status == 504) {
        return;
    }
    let kind = |p: &Planned| -> Option<LicenseKind> {
        match p.action {
            "DELETE" => Some(LicenseKind::HangUp),
            "Park" => Some(LicenseKind::Parker(
                p.view_ext.clone().or(p.path_ext.clone())?,
            )),
            "Transfer" | "TransferToVoicemail" => Some(LicenseKind::Transferer(p.from.clone()?)),
            "PickUp" => Some(LicenseKind::PickUpLeg(p.send_to.clone()?)),
            "POST" => p
                .duration
                .map(|d| LicenseKind::Duration(Duration::from_secs(d))),
            _ => None,
        }
    };
    let Some(kind) = kind(p) else { return };
    let mut l = ctx.licenses.lock().unwrap();
    for id in ids {
        let parties = p
            .listing
            .iter()
            .find(|c| c["id"] == id.as_str())
            .map(parties)
            .unwrap_or_default();
        l.push(License {
            kind: kind.clone(),
            call: id.clone(),
            parties,
            sent,
            answered,
            what: p.label.clone(),
        });
    }
}

/// What a 2xx promises for each call it names, if anything can be checked in List.
fn outcomes(p: &Planned) -> Option<Outcome> {
    let view = p.view_ext.clone().or(p.path_ext.clone());
    Some(match p.action {
        "Park" => Outcome::Parked(view?),
        "UnPark" | "BargeIn" | "Whisper" | "Monitor" => Outcome::ViewAppears(p.send_to.clone()?),
        "PickUp" => Outcome::Rings(p.send_to.clone()?),
        "OnHold" => Outcome::Holding(view?),
        "OffHold" => Outcome::NotHolding(view?),
        "Transfer" | "TransferToVoicemail" => {
            Outcome::Left(p.from.clone().filter(|f| f.contains('*'))?)
        }
        "StartRecording" => Outcome::Recording(view?),
        "StopRecording" => Outcome::NotRecording(view?),
        "DELETE" => Outcome::Gone,
        "POST" => Outcome::Listed,
        _ => return None,
    })
}

fn holds(calls: &[Value], id: &str, o: &Outcome) -> bool {
    let call = calls.iter().find(|c| c["id"] == id);
    let v = |ext: &str| call.and_then(|c| view_of(c, ext));
    match o {
        Outcome::Parked(e) => v(e).is_some_and(|v| v.get("parked").is_some()),
        Outcome::ViewAppears(e) => v(e).is_some(),
        Outcome::Rings(e) => {
            v(e).is_some()
                || calls
                    .iter()
                    .any(|c| view_of(c, e).is_some_and(|v| v["status"] == "3"))
        }
        Outcome::Holding(e) => v(e).is_some_and(|v| v.get("holder").is_some()),
        Outcome::NotHolding(e) => call.is_none() || v(e).is_none_or(|v| v.get("holder").is_none()),
        Outcome::Left(e) => call.is_none() || v(e).is_none_or(|v| v["status"] != "5"),
        Outcome::Recording(e) => v(e).is_some_and(|v| v.get("recording").is_some()),
        Outcome::NotRecording(e) => {
            call.is_none() || v(e).is_none_or(|v| v.get("recording").is_none())
        }
        Outcome::Gone => call.is_none(),
        Outcome::Listed => call.is_some(),
    }
}

/// Polls List until each named call shows the outcome. Undone meanwhile (another
/// operation of the step on the call, a channel of the call ended other than the one the
/// action ends itself): inconclusive.
async fn check_outcome(
    ctx: &Ctx<'_>,
    p: &Planned,
    ids: &[String],
    sent: Instant,
    tag: &str,
) -> bool {
    let Some(o) = outcomes(p) else { return true };
    let admin = ctx.token(Client::Admin);
    let strict = matches!(o, Outcome::Gone);
    let leaving: Option<String> = match p.action {
        "Park" => p.view_ext.clone().or(p.path_ext.clone()),
        "Transfer" | "TransferToVoicemail" => p.from.clone(),
        _ => None,
    };
    let base: Vec<u64> = ids
        .iter()
        .map(|id| ctx.ended_in(id, leaving.as_deref()))
        .collect();
    let bound = if strict {
        Duration::from_secs(12)
    } else {
        Duration::from_secs(8)
    };
    let deadline = Instant::now() + bound;
    let mut pending: HashSet<usize> = (0..ids.len()).collect();
    let mut last;
    loop {
        let calls = ctx
            .api
            .calls("/uapi/phoneCalls/@me/@self?count=100", admin)
            .await;
        pending.retain(|i| !holds(&calls, &ids[*i], &o));
        last = calls;
        if pending.is_empty() {
            return true;
        }
        if !strict {
            let disturbed = pending.iter().any(|i| {
                ctx.ended_in(&ids[*i], leaving.as_deref()) > base[*i]
                    || ctx.conflicts(&ids[*i], tag)
            });
            if disturbed {
                log(format!(
                    "{tag} outcome {o:?} inconclusive: the call changed meanwhile"
                ));
                ctx.stats.lock().unwrap().inconclusive += 1;
                return false;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let missing: Vec<&String> = pending.iter().map(|i| &ids[*i]).collect();
    ctx.fail(
        "every 2xx's outcome shows in List",
        format!(
            "{tag} {} answered 2xx {:?} after {:?}; {o:?} not seen for {missing:?} within {bound:?}.\nLast listing: {}",
            p.label,
            ids,
            sent.elapsed(),
            serde_json::to_string_pretty(&last).unwrap_or_default()
        ),
    );
    false
}

/// Park ends the parker's leg, Transfer and TransferToVoicemail the transferring
/// party's (README, the action table): one of that party's answered legs in each call
/// ends within a bound.
async fn check_leaving(ctx: &Ctx<'_>, p: &Planned, ids: &[String], sent: Instant, tag: &str) {
    let leaving = match p.action {
        "Park" => p.view_ext.clone().or(p.path_ext.clone()),
        "Transfer" | "TransferToVoicemail" => p.from.clone(),
        _ => None,
    };
    let Some(leaving) = leaving else { return };
    for id in ids {
        let legs: Vec<String> = ctx.obs.read(|s| {
            // uapid shows the calls a conference joins as one: the acting party's leg
            // may be in any of them (an extension invited twice has two).
            let joins = |call: &str| joins_conference(s, call, false);
            let conference = joins(id);
            let in_call =
                |c: &Chan| c.in_call(id) || (conference && c.call_ids.iter().any(|k| joins(k)));
            s.chans
                .values()
                .filter(|c| in_call(c) && c.ever_up && same_party(c, &leaving))
                .filter(|c| c.created <= sent && c.destroyed.is_none_or(|d| d.0 >= sent))
                .map(|c| c.id.clone())
                .collect()
        });
        if legs.is_empty() {
            continue;
        }
        let ended = ctx
            .obs
            .wait_for(Duration::from_secs(8), |s| {
                legs.iter()
                    .any(|l| s.chan(l).is_some_and(|c| c.destroyed.is_some()))
            })
            .await;
        if ended {
            ctx.count("acting party's leg ended");
        } else {
            let hist: String = ctx
                .obs
                .read(|s| legs.iter().map(|l| history(s, l)).collect());
            ctx.fail(
                "Park ends the parker's leg; Transfer the transferring party's",
                format!(
                    "{tag} {} answered 202, and {leaving}'s leg in call {id} is still up after 8 s:\n{hist}",
                    p.label
                ),
            );
        }
    }
}

/// A List with random query parameters: a 200 with entries, or a documented 400.
async fn list_op(ctx: &Ctx<'_>, who: Client, rng: &mut Rng, tag: &str) {
    let token = ctx.token(who);
    let q = match rng.range(0, 6) {
        0 => "?count=2&startIndex=1".to_string(),
        1 => "?sortOrder=descending".to_string(),
        2 => "?fields=id,phoneCallView".to_string(),
        3 => "?filterBy=id&filterOp=present".to_string(),
        4 => "?count=0".to_string(),
        _ => String::new(),
    };
    let ext = if rng.chance(50) {
        "@self".to_string()
    } else {
        any_extension(rng)
    };
    let path = format!("/uapi/phoneCalls/@me/{ext}{q}");
    let (status, body) = ctx.api.get(&path, token).await;
    log(format!(
        "{tag} {who:?} GET {path} → {status} {}",
        short_json(&body)
    ));
    let allowed = match status {
        200 => body["entry"].is_array(),
        400 | 403 => body["error"]["code"].is_string(),
        _ => false,
    };
    if !allowed {
        ctx.fail(
            "List answers 200 or a documented error",
            format!("{tag} {who:?} GET {path} → {status} {body}"),
        );
    }
    if q == "?count=0" && status == 200 {
        ctx.fail(
            "List refuses count=0",
            format!("{tag} {who:?} GET {path} → {status} {body}"),
        );
    }
    ctx.count(&format!("GET → {status}"));
}

/// Chooses a phone operation from the parties as they are.
pub fn plan_phone(rng: &mut Rng, ctx: &Ctx<'_>, cap: usize) -> Op {
    let (live, ringing): (Vec<usize>, Vec<usize>) = ctx.phones.with(|w| {
        let live: Vec<usize> = w.live().map(|p| p.n).collect();
        let ringing = w
            .live()
            .filter(|p| p.incoming && p.state() == crate::sip_phone::CallState::Ringing)
            .map(|p| p.n)
            .collect();
        (live, ringing)
    });
    let kind = if live.len() >= cap {
        1
    } else {
        rng.weighted(&[(50, 0), (30, 1), (20, 2)])
    };
    match kind {
        1 if !live.is_empty() => Op::HangUp {
            party: *rng.pick(&live).expect("live"),
        },
        2 if !ringing.is_empty() => {
            let party = *rng.pick(&ringing).expect("ringing");
            if rng.chance(75) {
                Op::Answer { party }
            } else {
                Op::Reject { party, code: 486 }
            }
        }
        _ => {
            let from = PhoneId(rng.below(SHORTS.len() + 1).expect("phones"));
            let number = if from == PUBLIC {
                rng.pick(&SHORTS).expect("phones").to_string()
            } else if rng.chance(20) {
                rng.pick(&PUBLIC_NUMBERS).expect("numbers").to_string()
            } else if rng.chance(5) {
                "701".to_string()
            } else {
                let others: Vec<&str> = SHORTS
                    .iter()
                    .copied()
                    .filter(|s| *s != SHORTS[from.0])
                    .collect();
                rng.pick(&others).expect("others").to_string()
            };
            Op::Dial { from, number }
        }
    }
}
