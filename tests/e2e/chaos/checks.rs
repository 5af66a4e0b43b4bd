//! The invariants checked after each step and at the end, besides each operation's own:
//!
//! - every party's end is explained (judge.rs);
//! - phones and Asterisk agree: an answered party has a live channel, and a channel
//!   Asterisk ended has ended at its phone;
//! - List agrees with Asterisk's channels and bridges (checked over ARI, with a bounded
//!   settle: a disagreement must persist across fresh reads to count);
//! - at the end, once everything is hung up: no channel, no uapid bridge, no call.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use uapid::asterisk::ari::Channel;
use uapid::calls::phone_call_id;

use crate::sip_phone::{CallState, End};

use super::judge::{history, in_conference, joins_conference, Judge};
use super::ops::Client;
use super::{log, Ctx};

/// Judges every party that ended since the last call (judge.rs).
pub async fn judge_ends(ctx: &Ctx<'_>) {
    let todo: Vec<(String, String, End)> = ctx.phones.with(|w| {
        w.parties
            .iter_mut()
            .filter(|p| !p.judged)
            .filter_map(|p| {
                let (e, _) = p.ended?;
                p.judged = true;
                Some((p.label(), p.call.sip_call_id().to_string(), e))
            })
            .collect()
    });
    for (label, sip, end) in todo {
        if end != End::HungUpThere {
            ctx.count(match end {
                End::HungUpHere | End::CancelledHere | End::RejectedHere(_) => "end: by its phone",
                _ => "end: never answered",
            });
            continue;
        }
        let mapped = ctx
            .obs
            .wait_for(Duration::from_secs(10), |s| {
                s.by_sip(&sip).is_some_and(|c| c.destroyed.is_some())
            })
            .await;
        if !mapped {
            let seen = ctx.obs.read(|s| s.by_sip(&sip).map(|c| c.name.clone()));
            log(format!(
                "{label}: ended, but its channel ({seen:?}) was not seen ending"
            ));
            ctx.fail(
                "phones and Asterisk agree",
                format!("{label} was hung up by the PBX, but Asterisk did not report its channel ({seen:?}) ending within 10 s"),
            );
            continue;
        }
        let ends = ctx.ends();
        let licenses = ctx.licenses.lock().unwrap().clone();
        let mut why = None;
        ctx.obs
            .wait_for(Duration::from_secs(6), |s| {
                let Some(c) = s.by_sip(&sip) else {
                    return false;
                };
                let j = Judge {
                    obs: s,
                    licenses: &licenses,
                    ends: &ends,
                };
                why = j.explain(&c.id, &mut Vec::new());
                why.is_some()
            })
            .await;
        match why {
            Some(w) => {
                log(format!("{label}: ended because {w}"));
                ctx.count(&format!("end: {}", category(&w)));
            }
            None => {
                let (hist, calls) = ctx.obs.read(|s| {
                    let c = s.by_sip(&sip).expect("mapped");
                    (history(s, &c.id), c.call_ids.clone())
                });
                let related: Vec<String> = licenses
                    .iter()
                    .filter(|l| calls.contains(&l.call))
                    .map(|l| format!("  {:?} of {} by {}", l.kind, l.call, l.what))
                    .collect();
                ctx.fail(
                    "no party hung up that no request or phone hung up (a lost call)",
                    format!(
                        "{label} was hung up by the PBX and nothing explains it.\n{hist}licenses on its calls {calls:?}:\n{}",
                        related.join("\n")
                    ),
                );
            }
        }
    }
}

/// The kind of an explanation, for the statistics.
fn category(why: &str) -> &'static str {
    let keys = [
        ("HangUp", "DELETE"),
        ("Parker", "Park (the parker)"),
        ("Transferer", "Transfer (the transferring party)"),
        ("Duration", "callDuration"),
        ("PickUpLeg", "PickUp's leg, nothing to pick up"),
        ("other half", "a Local channel's other half"),
        ("bridged with", "the other side of its bridge"),
        ("its caller ended", "its caller"),
        ("Dial() ended", "its Dial() unanswered"),
        ("spied", "the spied channel"),
        ("VoiceMail", "VoiceMail()"),
        ("ParkedCall", "ParkedCall()"),
        ("PickupChan", "PickupChan()"),
        ("left alone", "left alone in uapid's Stasis"),
        ("never answered", "never answered"),
        ("its phone", "its phone"),
    ];
    keys.iter()
        .find(|(k, _)| why.contains(k))
        .map_or("other", |(_, c)| c)
}

/// Each answered party has a live channel; each party whose channel ended has ended.
pub async fn phones_agree(ctx: &Ctx<'_>) {
    let answered: Vec<(String, String, String)> = ctx.phones.with(|w| {
        w.live()
            .filter(|p| p.state() == CallState::Answered)
            .map(|p| (p.label(), p.call.sip_call_id().to_string(), p.phone.name()))
            .collect()
    });
    for (label, sip, phone) in answered {
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            let ended = ctx.phones.with(|w| {
                w.parties.iter().any(|p| {
                    p.call.sip_call_id() == sip && !matches!(p.state(), CallState::Answered)
                })
            });
            let chan = ctx
                .obs
                .read(|s| s.by_sip(&sip).map(|c| (c.id.clone(), c.alive())));
            if ended || chan.as_ref().is_some_and(|(_, alive)| *alive) {
                break;
            }
            if Instant::now() > deadline {
                let what = match chan {
                    Some((id, _)) => format!(
                        "{label} is still answered at its phone, but Asterisk ended its channel:\n{}",
                        ctx.obs.read(|s| history(s, &id))
                    ),
                    None => format!("{label} is answered at its phone, but no channel of Asterisk has its SIP Call-ID {sip}"),
                };
                ctx.fail("phones and Asterisk agree", what);
                break;
            }
            // A channel whose Call-ID was not read yet (read again).
            let unread: Vec<String> = ctx.obs.read(|s| {
                s.live()
                    .filter(|c| c.sip.is_none() && c.name.starts_with("PJSIP/"))
                    .filter(|c| c.name.contains(&phone) || phone == "public" && c.is_trunk())
                    .map(|c| c.id.clone())
                    .collect()
            });
            for id in unread {
                ctx.obs.refresh(&id).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What Asterisk shows, read twice around a List, with each channel's call id read fresh.
struct Reading {
    before: Vec<Channel>,
    after: Vec<Channel>,
    fresh: HashMap<String, String>,
    list: Vec<Value>,
    bridges: Vec<uapid::asterisk::ari::Bridge>,
}

async fn read_all(ctx: &Ctx<'_>) -> Option<Reading> {
    let before = ctx.ari.channels().await.ok()?;
    let mut fresh = HashMap::new();
    for c in &before {
        let v: Result<Value, _> = ctx
            .ari
            .get(&format!(
                "/channels/{}/variable?variable=CHANNEL(linkedid)",
                c.id
            ))
            .await;
        if let Some(l) = v.ok().and_then(|v| v["value"].as_str().map(str::to_string)) {
            fresh.insert(c.id.to_string(), phone_call_id(&l));
        }
    }
    let list = admin_list(ctx).await;
    let bridges = ctx.ari.bridges().await.ok()?;
    let after = ctx.ari.channels().await.ok()?;
    Some(Reading {
        before,
        after,
        fresh,
        list,
        bridges,
    })
}

fn extension_of(name: &str) -> Option<String> {
    let rest = name.strip_prefix("PJSIP/")?;
    let ep = rest.rsplit_once('-')?.0;
    let (org, short) = ep.split_once('_')?;
    Some(format!("{org}*{short}"))
}

/// What does not agree in one reading.
fn disagreements(ctx: &Ctx<'_>, r: &Reading) -> Vec<String> {
    let mut out = Vec::new();
    let after: HashMap<&str, &Channel> = r.after.iter().map(|c| (c.id.as_str(), c)).collect();
    let stable: Vec<&Channel> = r
        .before
        .iter()
        .filter(|c| after.get(c.id.as_str()).is_some_and(|a| a.state == c.state))
        .collect();
    let listed: HashSet<&str> = r.list.iter().filter_map(|c| c["id"].as_str()).collect();
    let views: Vec<(&str, &Value)> = r
        .list
        .iter()
        .flat_map(|c| {
            let id = c["id"].as_str().unwrap_or_default();
            c["phoneCallView"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |v| (id, v))
        })
        .collect();
    let in_conference = |id: &str| {
        ctx.obs
            .read(|s| s.chan(id).is_some_and(|c| in_conference(s, c)))
    };
    // uapid shows the calls a conference joins as one: a channel of such a call may be
    // out of the room (its Local partner on hold, say) and still in that one call.
    let in_room = |call: &str| ctx.obs.read(|s| joins_conference(s, call, true));
    for c in &stable {
        let Some(ext) = extension_of(&c.name) else {
            continue;
        };
        if !views.iter().any(|(_, v)| v["extension"] == ext.as_str()) {
            out.push(format!(
                "Asterisk's channel {} ({}) of {ext} is in no listed call's views",
                c.name, c.state
            ));
        }
        if let Some(call) = r.fresh.get(c.id.as_str()) {
            if !listed.contains(call.as_str()) && !in_conference(&c.id) && !in_room(call) {
                out.push(format!(
                    "Asterisk's channel {} ({}) belongs to call {call}, which List does not show",
                    c.name, c.state
                ));
            }
        }
    }
    let all: Vec<&Channel> = r.before.iter().chain(r.after.iter()).collect();
    let made_for = ctx.made_for.lock().unwrap().clone();
    for (id, v) in &views {
        let ext = v["extension"].as_str().unwrap_or_default();
        let status = v["status"].as_str().unwrap_or_default();
        // A callback's extension sees how the call it asked for stands, with no leg.
        let owner = made_for.get(*id).is_some_and(|e| e == ext);
        let live = matches!(status, "2" | "3" | "4" | "5") && v.get("parked").is_none() && !owner;
        if live
            && !all
                .iter()
                .any(|c| extension_of(&c.name).as_deref() == Some(ext))
        {
            out.push(format!(
                "call {id}: the view of {ext} shows status {status}, but Asterisk has no channel of {ext}"
            ));
        }
    }
    for id in &listed {
        let has = all.iter().any(|c| {
            r.fresh.get(c.id.as_str()).map(String::as_str) == Some(*id)
                || ctx
                    .obs
                    .read(|s| s.chan(&c.id).is_some_and(|o| o.in_call(id)))
                || in_conference(&c.id)
        });
        if !has {
            out.push(format!(
                "call {id} is listed, but Asterisk has no channel of it"
            ));
        }
    }
    for b in &r.bridges {
        let Some(call) = b.name.strip_prefix("uapid-") else {
            continue;
        };
        if !b.channels.is_empty() && !listed.contains(call) && !in_room(call) {
            out.push(format!(
                "uapid's bridge {} holds {:?}, but List has no call {call}",
                b.name, b.channels
            ));
        }
    }
    out
}

/// Sources and destinations a view shows that are not phone numbers (digits, `*`, `#`,
/// a leading `+`): e.g. a channel's name.
fn not_numbers(list: &[Value]) -> Vec<String> {
    let number =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || "*#+".contains(c));
    let mut out = Vec::new();
    for call in list {
        for v in call["phoneCallView"].as_array().into_iter().flatten() {
            for k in ["source", "destination"] {
                for n in v[k].as_array().into_iter().flatten() {
                    let n = n.as_str().unwrap_or_default();
                    if !number(n) {
                        out.push(format!(
                            "call {} view {} ({}): {k} {n:?}",
                            call["id"], v["id"], v["extension"]
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Every call, as the admin's app lists it.
async fn admin_list(ctx: &Ctx<'_>) -> Vec<Value> {
    let path = "/uapi/phoneCalls/@me/@self?count=100";
    ctx.api.calls(path, ctx.token(Client::Admin)).await
}

/// List agrees with Asterisk; a disagreement must last `settle` to count.
pub async fn list_agrees(ctx: &Ctx<'_>, settle: Duration) {
    let deadline = Instant::now() + settle;
    loop {
        let Some(r) = read_all(ctx).await else {
            ctx.fail(
                "ARI answers",
                "ARI did not answer a read of channels or bridges".into(),
            );
            return;
        };
        let odd = not_numbers(&r.list);
        if !odd.is_empty() {
            let calls: Vec<&Value> = r
                .list
                .iter()
                .filter(|c| {
                    odd.iter()
                        .any(|o| o.contains(c["id"].as_str().unwrap_or("-")))
                })
                .collect();
            ctx.fail(
                "List shows phone numbers as sources and destinations",
                format!(
                    "{}\nthose calls in List:\n{}",
                    odd.join("\n"),
                    serde_json::to_string_pretty(&calls).unwrap_or_default()
                ),
            );
            return;
        }
        let problems = disagreements(ctx, &r);
        if problems.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let chans: Vec<String> = r
                .after
                .iter()
                .map(|c| {
                    format!(
                        "  {} {} {}({}) call {:?}",
                        c.name,
                        c.state,
                        c.dialplan.app_name,
                        c.dialplan.app_data,
                        r.fresh.get(c.id.as_str())
                    )
                })
                .collect();
            let bridges: Vec<String> = r
                .bridges
                .iter()
                .map(|b| {
                    format!(
                        "  {} {:?} {}/{} {:?}",
                        b.id, b.name, b.bridge_class, b.technology, b.channels
                    )
                })
                .collect();
            ctx.fail(
                "List agrees with Asterisk's channels and bridges",
                format!(
                    "for {settle:?}:\n  {}\nAsterisk's channels:\n{}\nbridges:\n{}\nList:\n{}",
                    problems.join("\n  "),
                    chans.join("\n"),
                    bridges.join("\n"),
                    serde_json::to_string_pretty(&r.list).unwrap_or_default()
                ),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Once every party has hung up and every call was deleted: no channel, no uapid
/// bridge, no call is left (bounded).
pub async fn nothing_left(ctx: &Ctx<'_>, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let chans = ctx.ari.channels().await.unwrap_or_default();
        let bridges = ctx.ari.bridges().await.unwrap_or_default();
        let ours: Vec<_> = bridges
            .iter()
            .filter(|b| b.name.starts_with("uapid-") || !b.channels.is_empty())
            .collect();
        let list = admin_list(ctx).await;
        if chans.is_empty() && ours.is_empty() && list.is_empty() {
            return;
        }
        // Anything still ringing the phones is refused as it comes.
        ctx.phones.with(|w| {
            let live: Vec<usize> = w.live().map(|p| p.n).collect();
            for n in live {
                w.hang_up(n);
            }
        });
        if Instant::now() > deadline {
            ctx.fail(
                "no channel or bridge is left once all hang up",
                format!(
                    "after {bound:?}: channels {:?}; bridges {:?}; calls {}",
                    chans
                        .iter()
                        .map(|c| format!("{} {} {}", c.name, c.state, c.dialplan.app_name))
                        .collect::<Vec<_>>(),
                    ours.iter()
                        .map(|b| format!("{} {:?} {:?}", b.name, b.bridge_class, b.channels))
                        .collect::<Vec<_>>(),
                    serde_json::to_string(&list).unwrap_or_default()
                ),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
