//! AMI: the version, the user's permissions for each action uapid sends and for the
//! events it reads, and the modules behind the applications uapid's dialplan runs.

use std::collections::HashSet;
use std::time::Duration;

use super::link::DoctorAmi;
use super::{Check, Section};
use crate::asterisk::ami::Message;
use crate::config::{AsteriskSettings, Directory, ExtensionKind};
use crate::inventory::{self, ReadError, Refusal};

/// An AMI action uapid sends, and how to try it harmlessly.
struct Needed {
    action: &'static str,
    /// The write classes any one of which allows it (as Asterisk 22's ListCommands says).
    classes: &'static [&'static str],
    /// What uapid uses it for.
    used_for: &'static str,
    /// The module that provides it.
    module: &'static str,
    /// Headers that make the try harmless (none: a required parameter is left out).
    probe: &'static [(&'static str, &'static str)],
    /// Whether uapid works without it (only less well).
    optional: bool,
}

const fn needed(
    action: &'static str,
    classes: &'static [&'static str],
    used_for: &'static str,
    module: &'static str,
) -> Needed {
    Needed {
        action,
        classes,
        used_for,
        module,
        probe: &[],
        optional: false,
    }
}

/// Every AMI action uapid sends (`Ping` needs no class).
const ACTIONS: &[Needed] = &[
    needed("Park", &["call"], "Park", "res_parking.so"),
    needed(
        "ParkedCalls",
        &["call"],
        "reading the parked calls at each connect",
        "res_parking.so",
    ),
    needed(
        "Redirect",
        &["call"],
        "OnHold, Transfer, TransferToVoicemail",
        "(core)",
    ),
    needed(
        "Setvar",
        &["call"],
        "marking held and recorded channels",
        "(core)",
    ),
    needed(
        "Getvar",
        &["call", "reporting"],
        "reading those marks back after a restart",
        "(core)",
    ),
    needed(
        "Originate",
        &["originate"],
        "PickUp, creating calls",
        "(core)",
    ),
    Needed {
        probe: &[("Context", "uapid-doctor-no-such-context")],
        ..needed(
            "ShowDialPlan",
            &["config", "reporting"],
            "checking a destination before sending a call there",
            "(core)",
        )
    },
    needed(
        "DialplanExtensionAdd",
        &["system"],
        "installing uapid's own dialplan",
        "pbx_config.so",
    ),
    needed(
        "MixMonitor",
        &["system"],
        "StartRecording",
        "app_mixmonitor.so",
    ),
    needed(
        "StopMixMonitor",
        &["system", "call"],
        "StopRecording",
        "app_mixmonitor.so",
    ),
    Needed {
        optional: true,
        ..needed(
            "Filter",
            &["system"],
            "narrowing its events to those uapid reads; without it, it gets them all",
            "(core)",
        )
    },
];

/// The AMI actions the user may send (of those tried).
pub(super) type Allowed = HashSet<&'static str>;

pub(super) struct Permissions {
    pub section: Section,
    pub allowed: Allowed,
}

fn add_class(user: &str, line: &str, classes: &[&str]) -> String {
    let mut names = format!("`{}`", classes[0]);
    for c in &classes[1..] {
        names.push_str(&format!(" (or `{c}`)"));
    }
    format!("add {names} to the `{line} =` line of [{user}] in manager.conf, then `manager reload`")
}

fn load_module(module: &str) -> String {
    format!("load {module} (`module load {module}`; and no `noload => {module}` in modules.conf)")
}

/// Tries each action uapid sends with a parameter left out: Asterisk checks the
/// user's classes first, so "Permission denied" means the user may not, an unknown
/// action means its module is not loaded, and any other error means it may.
pub(super) async fn permissions(ami: &DoctorAmi, a: &AsteriskSettings) -> Permissions {
    let mut checks = Vec::new();
    let mut allowed = Allowed::new();
    for n in ACTIONS {
        let what = format!("write {}: {}", n.classes.join("|"), n.action);
        let mut probe = Message::new().with("Action", n.action);
        for (k, v) in n.probe {
            probe = probe.with(k, v);
        }
        let answer = ami.request(probe).await.map_err(ReadError::from);
        let check = match answer {
            Ok(_) | Err(ReadError::Refused(Refusal::Other(_))) => {
                allowed.insert(n.action);
                Check::ok(what, format!("allowed, for {}", n.used_for))
            }
            Err(ReadError::Refused(Refusal::Denied)) => {
                let fix = add_class(&a.ami_user, "write", n.classes);
                let seen = format!("permission denied (needed for {})", n.used_for);
                if n.optional {
                    Check::warn(what, seen, fix)
                } else {
                    Check::miss(what, seen, fix)
                }
            }
            Err(ReadError::Refused(Refusal::Unknown)) => Check::miss(
                what,
                format!(
                    "no such action: its module is not loaded (needed for {})",
                    n.used_for
                ),
                load_module(n.module),
            ),
            Err(e @ ReadError::Link(_)) => Check::skip(what, e.to_string()),
        };
        checks.push(check);
    }
    checks.push(read_call(ami, a, &allowed).await);
    Permissions {
        section: Section {
            title: format!("AMI permissions ([{}] in manager.conf)", a.ami_user),
            checks,
        },
        allowed,
    }
}

/// uapid reads parking and originate events, all of class `call`. An originate to an
/// endpoint that does not exist creates no channel and rings nothing; Asterisk answers
/// it with an `OriginateResponse` (Failure) event, which reaches this session only if
/// the user may read `call` events. (Asterisk logs one error line: "Unable to create
/// PJSIP channel - endpoint 'uapid-doctor-probe-...' was not found".)
async fn read_call(ami: &DoctorAmi, a: &AsteriskSettings, allowed: &Allowed) -> Check {
    let what = "read call: parking and originate events";
    if !allowed.contains("Originate") {
        return Check::skip(what, "tried with an originate, which the user may not send");
    }
    let mut tag = [0u8; 6];
    if getrandom::fill(&mut tag).is_err() {
        tag = [0; 6];
    }
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let channel = format!("PJSIP/uapid-doctor-probe-{hex}");
    let originate = Message::new()
        .with("Action", "Originate")
        .with("Channel", &channel)
        .with("Application", "Hangup")
        .with("Timeout", "1000")
        .with("Async", "true");
    if let Err(e) = ami.request(originate).await {
        return Check::skip(what, format!("the probe originate failed: {e}"));
    }
    let came = ami
        .wait_event(Duration::from_secs(3), |m| {
            m.event() == Some("OriginateResponse") && m.get("Channel") == Some(channel.as_str())
        })
        .await;
    if came {
        Check::ok(what, "an OriginateResponse came back")
    } else {
        Check::miss(
            what,
            "no OriginateResponse within 3 s: uapid would not see calls parked or picked up",
            add_class(&a.ami_user, "read", &["call"]),
        )
    }
}

/// Asterisk's version: AMI `CoreSettings`, else what ARI said.
pub(super) async fn version(ami: &DoctorAmi, from_ari: Option<&str>) -> Check {
    let what = "Asterisk version";
    let v = match inventory::version(ami).await {
        Ok(v) if !v.is_empty() => v,
        _ => match from_ari {
            Some(v) => v.to_string(),
            None => return Check::skip(what, "neither AMI CoreSettings nor ARI said"),
        },
    };
    match inventory::major_version(&v) {
        Some(m) if m >= 22 => Check::ok(what, v),
        _ => Check::warn(
            what,
            v,
            "uapid is tested with Asterisk 22; an older one may lack what it relies on",
        ),
    }
}

/// A module uapid's dialplan or actions need, and for what.
struct Module {
    name: &'static str,
    used_for: &'static str,
}

/// The modules behind the applications uapid's dialplan runs (AMI `ModuleCheck`).
pub(super) async fn modules(ami: &DoctorAmi, d: &Directory) -> Section {
    let mut wanted = vec![
        Module {
            name: "chan_pjsip.so",
            used_for: "the phones' and trunks' channels",
        },
        Module {
            name: "res_parking.so",
            used_for: "Park, UnPark",
        },
        Module {
            name: "app_stasis.so",
            used_for: "Stasis() for OnHold",
        },
        Module {
            name: "app_mixmonitor.so",
            used_for: "StartRecording, StopRecording",
        },
        Module {
            name: "app_chanspy.so",
            used_for: "ChanSpy() for BargeIn, Whisper, Monitor",
        },
    ];
    let exts = || d.extensions.values();
    if exts().any(|e| e.mailbox.is_some()) {
        wanted.push(Module {
            name: "app_voicemail.so",
            used_for: "VoiceMail() for TransferToVoicemail",
        });
    }
    if exts().any(|e| e.kind == ExtensionKind::Conference) {
        wanted.push(Module {
            name: "app_confbridge.so",
            used_for: "ConfBridge() for conference invites",
        });
    }
    let mut checks = Vec::new();
    for m in wanted {
        let what = format!("module {}", m.name);
        let ask = Message::new()
            .with("Action", "ModuleCheck")
            .with("Module", m.name);
        let check = match ami.request(ask).await.map_err(ReadError::from) {
            Ok(_) => Check::ok(what, format!("loaded: {}", m.used_for)),
            Err(ReadError::Refused(Refusal::Denied)) => Check::skip(
                what,
                "ModuleCheck needs write class `system`, which the user lacks",
            ),
            Err(ReadError::Refused(Refusal::Other(msg))) if msg.contains("not loaded") => {
                Check::miss(
                    what,
                    format!("not loaded: no {}", m.used_for),
                    load_module(m.name),
                )
            }
            Err(e) => Check::skip(what, e.to_string()),
        };
        checks.push(check);
    }
    Section {
        title: "Modules".into(),
        checks,
    }
}
