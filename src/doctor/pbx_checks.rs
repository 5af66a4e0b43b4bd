//! The PBX against uapid's settings: the parking lot and its context, and each
//! directory entry's endpoint, dial number and mailbox; the trunks.

use std::collections::HashSet;

use super::ami_checks::Allowed;
use super::link::DoctorAmi;
use super::{Check, Section};
use crate::config::{AsteriskSettings, Directory, Extension, ExtensionKind};
use crate::inventory::{self, ReadError, Refusal};

/// Why a read the doctor needed did not happen, as a line that is not checked.
fn not_read(what: String, action: &str, classes: &str, e: &ReadError) -> Check {
    match e {
        ReadError::Refused(Refusal::Denied) => Check::skip(
            what,
            format!("{action} needs write class {classes}, which the AMI user lacks"),
        ),
        e => Check::skip(what, format!("{action}: {e}")),
    }
}

/// The lot exists, and its context has its first space (what UnPark dials).
pub(super) async fn parking(ami: &DoctorAmi, a: &AsteriskSettings, allowed: &Allowed) -> Section {
    let mut checks = Vec::new();
    let lot_what = format!("parking lot {}", a.parking_lot);
    let lot = match inventory::parking_lots(ami).await {
        Ok(lots) => match lots.iter().find(|l| l.name == a.parking_lot) {
            Some(l) => {
                let spaces = format!("spaces {}-{}", l.start_space, l.stop_space);
                checks.push(Check::ok(lot_what, spaces));
                Some(l.clone())
            }
            None => {
                let names: Vec<&str> = lots.iter().map(|l| l.name.as_str()).collect();
                checks.push(Check::miss(
                    lot_what,
                    format!("no such lot (the PBX has: {})", list_or_none(&names)),
                    format!(
                        "add a [{}] lot to res_parking.conf (parkext, parkpos, context = {}), \
                         or set asterisk.parking_lot to a lot the PBX has",
                        a.parking_lot, a.parked_context
                    ),
                ));
                None
            }
        },
        Err(ReadError::Refused(Refusal::Unknown)) => {
            checks.push(Check::miss(
                lot_what,
                "Asterisk has no parking (res_parking is not loaded)",
                "load res_parking.so and configure a lot in res_parking.conf",
            ));
            None
        }
        Err(e) => {
            checks.push(not_read(lot_what, "Parkinglots", "call", &e));
            None
        }
    };
    checks.push(parked_context(ami, a, allowed, lot.as_ref()).await);
    Section {
        title: "Parking".into(),
        checks,
    }
}

async fn parked_context(
    ami: &DoctorAmi,
    a: &AsteriskSettings,
    allowed: &Allowed,
    lot: Option<&inventory::ParkingLot>,
) -> Check {
    let what = format!("parked context {}", a.parked_context);
    let Some(lot) = lot else {
        return Check::skip(what, "no lot to check it against");
    };
    if !allowed.contains("ShowDialPlan") {
        return Check::skip(what, "ShowDialPlan is not allowed");
    }
    let space = Some(lot.start_space.as_str()).filter(|s| !s.is_empty());
    let fix = format!(
        "set `context = {}` in the [{}] lot of res_parking.conf, or asterisk.parked_context \
         to the lot's context",
        a.parked_context, a.parking_lot
    );
    match inventory::dialplan(ami, &a.parked_context, space).await {
        Ok(lines) if lines.is_empty() => Check::miss(
            what,
            match space {
                Some(s) => format!("has no space {s}: UnPark would find nobody"),
                None => "no such context".to_string(),
            },
            fix,
        ),
        Ok(lines) => {
            let lot_registrar = format!("res_parking/{}", a.parking_lot);
            match space {
                Some(s) if lines.iter().any(|l| l.registrar == lot_registrar) => {
                    Check::ok(what, format!("has the lot's space {s}"))
                }
                Some(s) => Check::warn(
                    what,
                    format!("has a space {s}, but not the lot's (another lot's context?)"),
                    fix,
                ),
                None => Check::ok(what, "exists"),
            }
        }
        Err(e) => not_read(what, "ShowDialPlan", "config or reporting", &e),
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// What the directory checks read from the PBX once.
struct Known {
    endpoints: Result<HashSet<String>, ReadError>,
    mailboxes: Result<HashSet<String>, ReadError>,
}

/// Each extension's endpoint, dial number and mailbox; each trunk's endpoint.
pub(super) async fn directory(
    ami: &DoctorAmi,
    a: &AsteriskSettings,
    d: &Directory,
    allowed: &Allowed,
) -> Section {
    let known = Known {
        endpoints: inventory::endpoints(ami)
            .await
            .map(|es| es.into_iter().map(|e| e.name).collect()),
        mailboxes: inventory::mailboxes(ami)
            .await
            .map(|ms| ms.iter().map(|m| m.address()).collect()),
    };
    let mut exts: Vec<&Extension> = d.extensions.values().collect();
    exts.sort_by(|x, y| x.number.cmp(&y.number));
    let mut checks = Vec::new();
    for e in exts {
        if !e.endpoint.is_empty() {
            checks.push(endpoint(&known, &e.endpoint, Some(&e.number)));
        }
        if e.kind != ExtensionKind::Conference {
            checks.push(dial(ami, a, allowed, e).await);
        }
        if let Some(m) = &e.mailbox {
            checks.push(mailbox(&known, m, &e.number));
        }
    }
    let mut trunks: Vec<&str> = d.trunks().collect();
    trunks.sort_unstable();
    for t in trunks {
        checks.push(endpoint(&known, t, None));
    }
    Section {
        title: format!("Directory (dial context {})", a.dial_context),
        checks,
    }
}

/// `ext`: the extension it rings (`None`: a trunk).
fn endpoint(known: &Known, name: &str, ext: Option<&str>) -> Check {
    let what = match ext {
        Some(n) => format!("{n} endpoint {name}"),
        None => format!("trunk endpoint {name}"),
    };
    match &known.endpoints {
        Ok(names) if names.contains(name) => Check::ok(what, "exists"),
        Ok(_) => Check::miss(
            what,
            "no such PJSIP endpoint",
            match ext {
                Some(n) => format!(
                    "add endpoint {name} to pjsip.conf, or set `endpoint` of extension {n} \
                     to the PJSIP endpoint that rings it"
                ),
                None => format!("add endpoint {name} to pjsip.conf, or correct directory.trunks"),
            },
        ),
        Err(e) => not_read(what, "PJSIPShowEndpoints", "system", e),
    }
}

async fn dial(ami: &DoctorAmi, a: &AsteriskSettings, allowed: &Allowed, e: &Extension) -> Check {
    let what = format!("{} dial {}", e.number, e.dial);
    if !allowed.contains("ShowDialPlan") {
        return Check::skip(what, "ShowDialPlan is not allowed");
    }
    match inventory::dialplan(ami, &a.dial_context, Some(&e.dial)).await {
        Ok(lines) => {
            match lines.first() {
                Some(l) => Check::ok(
                    what,
                    format!(
                        "{} matches {} in {} ({})",
                        a.dial_context, l.extension, l.context, l.application
                    ),
                ),
                None => {
                    Check::miss(
                        what,
                        format!(
                            "context {} has no {}: transfers and calls to it would fail",
                            a.dial_context, e.dial
                        ),
                        format!(
                    "make context {} dial {} (e.g. `exten => {},1,Dial(PJSIP/{})`), or set \
                     `dial` of extension {} to the number the PBX knows it by",
                    a.dial_context,
                    e.dial,
                    e.dial,
                    if e.endpoint.is_empty() { "..." } else { &e.endpoint },
                    e.number
                ),
                    )
                }
            }
        }
        Err(err) => not_read(what, "ShowDialPlan", "config or reporting", &err),
    }
}

fn mailbox(known: &Known, mailbox: &str, number: &str) -> Check {
    let what = format!("{number} mailbox {mailbox}");
    let (bx, ctx) = mailbox.split_once('@').unwrap_or((mailbox, "default"));
    let address = format!("{bx}@{ctx}");
    match &known.mailboxes {
        Ok(boxes) if boxes.contains(&address) => Check::ok(what, "exists"),
        Ok(_) => Check::miss(
            what,
            "no such voicemail box",
            format!(
                "add `{bx} => <pin>,<name>` under [{ctx}] in voicemail.conf, or correct \
                 `mailbox` of extension {number} (`<box>@<voicemail context>`)"
            ),
        ),
        Err(ReadError::Refused(Refusal::Unknown)) => Check::miss(
            what,
            "Asterisk has no voicemail (app_voicemail is not loaded)",
            "load app_voicemail.so",
        ),
        Err(e) => not_read(what, "VoicemailUsersList", "call or reporting", e),
    }
}
