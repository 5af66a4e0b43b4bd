//! The PhoneCallAction body, parsed once into typed values that carry their UAPI error
//! code. Numbers are accepted as JSON numbers or numeric strings ("30" or 30); unknown
//! fields are ignored, as UAPI clients send extra ones.

use serde_json::Value;

use crate::api::error::ApiError;
use crate::config::{
    looks_like_extension, looks_like_phone_number, Directory, Extension, ExtensionKind,
};

/// A view of a call: "01", "02", ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewId(pub usize);

/// Seconds in the parking lot before the call rings the parker back: 10..3600.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkTimeout(pub u64);

/// Seconds to wait for a phone to answer: > 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitForPickup(pub u64);

/// `Name <number>` (the number may start with +).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId {
    pub name: String,
    pub number: String,
}

impl CallerId {
    /// As Asterisk takes it: `"Name" <number>`.
    pub fn to_asterisk(&self) -> String {
        super::asterisk_caller_id(&self.name, &self.number)
    }
}

/// Where a transfer sends the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Extension(Extension),
    Public(String),
}

/// Where a number leads: a known extension (full, or short in `org`), else a public
/// number; `None` for anything else.
pub fn destination(dir: &Directory, raw: &str, org: Option<u64>) -> Option<Destination> {
    match dir.resolve_extension(raw, org) {
        Some(e) => Some(Destination::Extension(e.clone())),
        None if crate::config::looks_like_public_number(raw) => {
            Some(Destination::Public(raw.to_string()))
        }
        None => None,
    }
}

impl Destination {
    pub fn number(&self) -> &str {
        match self {
            Destination::Extension(e) => &e.number,
            Destination::Public(n) => n,
        }
    }
}

pub const DEFAULT_PARK_TIMEOUT: u64 = 180;
pub const DEFAULT_WAIT_FOR_PICKUP: u64 = 25;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Park {
        view: Option<ViewId>,
        timeout: ParkTimeout,
    },
    UnPark {
        view: Option<ViewId>,
        send_call_to: Extension,
        caller_id: Option<CallerId>,
        wait: WaitForPickup,
    },
    PickUp {
        view: Option<ViewId>,
        send_call_to: Extension,
        caller_id: Option<CallerId>,
        wait: WaitForPickup,
    },
    OnHold {
        view: Option<ViewId>,
    },
    OffHold {
        view: Option<ViewId>,
    },
    Transfer {
        send_call_to: Destination,
        from: String,
        number: Option<String>,
    },
    TransferToVoicemail {
        send_call_to: Extension,
        from: Option<String>,
        number: Option<String>,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Park { .. } => "Park",
            Action::UnPark { .. } => "UnPark",
            Action::PickUp { .. } => "PickUp",
            Action::OnHold { .. } => "OnHold",
            Action::OffHold { .. } => "OffHold",
            Action::Transfer { .. } => "Transfer",
            Action::TransferToVoicemail { .. } => "TransferToVoicemail",
        }
    }

    /// The same action with no view named (the all-calls form picks each call's view of
    /// the path's extension).
    pub fn without_view(&self) -> Action {
        let mut a = self.clone();
        match &mut a {
            Action::Park { view, .. }
            | Action::UnPark { view, .. }
            | Action::PickUp { view, .. }
            | Action::OnHold { view }
            | Action::OffHold { view } => *view = None,
            Action::Transfer { .. } | Action::TransferToVoicemail { .. } => {}
        }
        a
    }

    pub fn view(&self) -> Option<ViewId> {
        match self {
            Action::Park { view, .. }
            | Action::UnPark { view, .. }
            | Action::PickUp { view, .. }
            | Action::OnHold { view }
            | Action::OffHold { view } => *view,
            Action::Transfer { .. } | Action::TransferToVoicemail { .. } => None,
        }
    }
}

/// A field as text: JSON strings as they are, numbers written out; `None` when absent or null.
fn text(body: &Value, key: &str) -> Option<Result<String, ()>> {
    match body.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(Ok(s.trim().to_string())),
        Value::Number(n) => Some(Ok(n.to_string())),
        _ => Some(Err(())),
    }
}

/// A whole number from a JSON number or a numeric string.
fn number(
    body: &Value,
    key: &str,
    code: &'static str,
    what: &str,
) -> Result<Option<u64>, ApiError> {
    let bad = || ApiError::bad_request(code, format!("{key} must be {what}"));
    match text(body, key) {
        None => Ok(None),
        Some(Err(())) => Err(bad()),
        Some(Ok(s)) if s.is_empty() => Ok(None),
        Some(Ok(s)) => s.parse::<u64>().map(Some).map_err(|_| bad()),
    }
}

pub fn parse_view(body: &Value) -> Result<Option<ViewId>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "pc_phonecallview_invalid",
            "phoneCallViewId must be a view id such as \"01\"",
        )
    };
    match text(body, "phoneCallViewId") {
        None => Ok(None),
        Some(Err(())) => Err(bad()),
        Some(Ok(s)) => match s.parse::<usize>() {
            Ok(n) if n >= 1 && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(ViewId(n)))
            }
            _ => Err(bad()),
        },
    }
}

pub fn parse_caller_id(body: &Value) -> Result<Option<CallerId>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "pc_callerid_invalid",
            "callerId must be written like: John Doe <+3334444>",
        )
    };
    let s = match text(body, "callerId") {
        None => return Ok(None),
        Some(Err(())) => return Err(bad()),
        Some(Ok(s)) if s.is_empty() => return Ok(None),
        Some(Ok(s)) => s,
    };
    let (name, rest) = s.split_once('<').ok_or_else(bad)?;
    let number = rest.strip_suffix('>').ok_or_else(bad)?.trim();
    let name = name.trim().trim_matches('"').trim();
    if !looks_like_phone_number(number) && !looks_like_extension(number) {
        return Err(bad());
    }
    if name.len() > 80 || name.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        return Err(bad());
    }
    Ok(Some(CallerId {
        name: name.to_string(),
        number: number.to_string(),
    }))
}

fn parse_wait(body: &Value) -> Result<WaitForPickup, ApiError> {
    let what = "a whole number of seconds greater than 0 (at most 3600)";
    match number(body, "waitForPickup", "pc_timeout_invalid", what)? {
        None => Ok(WaitForPickup(DEFAULT_WAIT_FOR_PICKUP)),
        Some(n) if (1..=3600).contains(&n) => Ok(WaitForPickup(n)),
        Some(_) => Err(ApiError::bad_request(
            "pc_timeout_invalid",
            format!("waitForPickup must be {what}"),
        )),
    }
}

/// A phone terminal of the directory, resolved in `org` (short numbers) or in full.
pub fn phone_terminal<'d>(
    dir: &'d Directory,
    raw: &str,
    org: Option<u64>,
    code: &'static str,
    field: &str,
) -> Result<&'d Extension, ApiError> {
    let bad = |why: &str| ApiError::bad_request(code, format!("{field} {why}"));
    if !looks_like_extension(raw) {
        return Err(bad("must be the number of a phone terminal extension"));
    }
    let ext = dir
        .resolve_extension(raw, org)
        .ok_or_else(|| bad("is not a known extension"))?;
    if ext.kind != ExtensionKind::PhoneTerminal {
        return Err(bad("must be a phone terminal extension"));
    }
    Ok(ext)
}

/// Parses the body of `PUT /uapi/phoneCalls/...`. `org` is the organization the
/// request speaks in (for short numbers) and `same_org` what TransferToVoicemail's
/// target must belong to.
pub fn parse_action(dir: &Directory, body: &Value, org: Option<u64>) -> Result<Action, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "request_invalid",
            "the body must be a JSON PhoneCallAction object",
        ));
    }
    let action = match text(body, "action") {
        Some(Ok(a)) if !a.is_empty() => a,
        _ => {
            return Err(ApiError::bad_request(
                "pc_action_invalid",
                "action is required",
            ))
        }
    };
    let view = parse_view(body)?;
    match action.as_str() {
        "Park" => {
            let what = "a whole number of seconds from 10 to 3600";
            let timeout = match number(body, "maxInParking", "pc_parktimeout_invalid", what)? {
                None => DEFAULT_PARK_TIMEOUT,
                Some(n) if (10..=3600).contains(&n) => n,
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "pc_parktimeout_invalid",
                        format!("maxInParking must be {what}"),
                    ))
                }
            };
            Ok(Action::Park {
                view,
                timeout: ParkTimeout(timeout),
            })
        }
        "UnPark" | "PickUp" => {
            let raw = match text(body, "sendCallTo") {
                Some(Ok(s)) if !s.is_empty() => s,
                _ => {
                    return Err(ApiError::bad_request(
                        "pc_sendcallto_invalid",
                        "sendCallTo is required",
                    ))
                }
            };
            let send_call_to =
                phone_terminal(dir, &raw, org, "pc_sendcallto_invalid", "sendCallTo")?.clone();
            let caller_id = parse_caller_id(body)?;
            let wait = parse_wait(body)?;
            Ok(if action == "UnPark" {
                Action::UnPark {
                    view,
                    send_call_to,
                    caller_id,
                    wait,
                }
            } else {
                Action::PickUp {
                    view,
                    send_call_to,
                    caller_id,
                    wait,
                }
            })
        }
        "OnHold" => Ok(Action::OnHold { view }),
        "OffHold" => Ok(Action::OffHold { view }),
        "Transfer" => {
            let raw = match text(body, "sendCallTo") {
                Some(Ok(s)) if !s.is_empty() => s,
                _ => {
                    return Err(ApiError::bad_request(
                        "pc_sendcallto_invalid",
                        "sendCallTo is required",
                    ))
                }
            };
            let send_call_to = destination(dir, &raw, org).ok_or_else(|| {
                ApiError::bad_request(
                    "pc_sendcallto_invalid",
                    format!("sendCallTo {raw} is neither a known extension nor a public number"),
                )
            })?;
            let from = match text(body, "transferFromNumber") {
                Some(Ok(s)) if looks_like_extension(&s) || looks_like_phone_number(&s) => s,
                _ => {
                    return Err(ApiError::bad_request(
                        "pc_transfer_from_number_invalid",
                        "transferFromNumber must be the phone number of the party that transfers the call",
                    ))
                }
            };
            let number = transfer_number(body)?;
            Ok(Action::Transfer {
                send_call_to,
                from,
                number,
            })
        }
        "TransferToVoicemail" => {
            let raw = match text(body, "sendCallTo") {
                Some(Ok(s)) if !s.is_empty() => s,
                _ => {
                    return Err(ApiError::bad_request(
                        "pc_sendcallto_invalid",
                        "sendCallTo is required",
                    ))
                }
            };
            let ext = phone_terminal(dir, &raw, org, "pc_sendcallto_invalid", "sendCallTo")?;
            if ext.mailbox.is_none() {
                return Err(ApiError::bad_request(
                    "pc_sendcallto_invalid",
                    format!("extension {} has no mailbox", ext.number),
                ));
            }
            if org.is_some_and(|o| o != ext.organization) {
                return Err(ApiError::bad_request(
                    "pc_sendcallto_invalid",
                    "sendCallTo must be an extension of the same organization",
                ));
            }
            let from = match text(body, "transferFromNumber") {
                None => None,
                Some(Ok(s)) if s.is_empty() => None,
                Some(Ok(s)) if looks_like_extension(&s) || looks_like_phone_number(&s) => Some(s),
                _ => {
                    return Err(ApiError::bad_request(
                        "pc_transfer_from_number_invalid",
                        "transferFromNumber must be a phone number",
                    ))
                }
            };
            let number = transfer_number(body)?;
            Ok(Action::TransferToVoicemail {
                send_call_to: ext.clone(),
                from,
                number,
            })
        }
        "StartRecording" | "StopRecording" | "BargeIn" | "Whisper" | "Monitor" => {
            Err(ApiError::new(
                axum::http::StatusCode::NOT_IMPLEMENTED,
                "request_not_implemented",
                format!("{action} is not implemented by this server yet"),
            ))
        }
        other => Err(ApiError::bad_request(
            "pc_action_invalid",
            format!("{other:?} is not a PhoneCall action"),
        )),
    }
}

fn transfer_number(body: &Value) -> Result<Option<String>, ApiError> {
    match text(body, "transferNumber") {
        None => Ok(None),
        Some(Ok(s)) if s.is_empty() => Ok(None),
        Some(Ok(s)) if looks_like_extension(&s) || looks_like_phone_number(&s) => Ok(Some(s)),
        _ => Err(ApiError::bad_request(
            "pc_transfer_number_invalid",
            "transferNumber must be the phone number of the party being transferred",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use serde_json::json;

    fn dir() -> Directory {
        Directory::build(&Settings::defaults().directory).unwrap()
    }

    fn code(r: Result<Action, ApiError>) -> &'static str {
        r.unwrap_err().code
    }

    #[test]
    fn seed_bodies_parse_verbatim() {
        let d = dir();
        let park = parse_action(
            &d,
            &json!({"action":"Park","maxInParking":"30","phoneCallViewId":"01"}),
            Some(3),
        )
        .unwrap();
        assert_eq!(
            park,
            Action::Park {
                view: Some(ViewId(1)),
                timeout: ParkTimeout(30)
            }
        );
        let unpark = parse_action(
            &d,
            &json!({"action":"UnPark","sendCallTo":"0003*024","callerId":"John Doe <42420042>","waitForPickup":"20","phoneCallViewId":"01"}),
            Some(3),
        )
        .unwrap();
        match unpark {
            Action::UnPark {
                send_call_to,
                caller_id,
                wait,
                view,
            } => {
                assert_eq!(send_call_to.number, "0003*024");
                assert_eq!(
                    caller_id,
                    Some(CallerId {
                        name: "John Doe".into(),
                        number: "42420042".into()
                    })
                );
                assert_eq!(wait, WaitForPickup(20));
                assert_eq!(view, Some(ViewId(1)));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_action(&d, &json!({"action":"PickUp","sendCallTo":"0003*024","callerId":"John Doe <42420042>","waitForPickup":"20" ,"phoneCallViewId":"01"}), Some(3)).unwrap(),
            Action::PickUp { .. }
        ));
        assert_eq!(
            parse_action(
                &d,
                &json!({"action":"OffHold","phoneCallViewId":"01"}),
                Some(3)
            )
            .unwrap(),
            Action::OffHold {
                view: Some(ViewId(1))
            }
        );
        let t = parse_action(&d, &json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"0003*024","transferNumber":"0003*210"}), Some(3)).unwrap();
        assert_eq!(
            t,
            Action::Transfer {
                send_call_to: Destination::Public("3235742879".into()),
                from: "0003*024".into(),
                number: Some("0003*210".into())
            }
        );
    }

    #[test]
    fn numbers_as_json_numbers_and_defaults() {
        let d = dir();
        assert_eq!(
            parse_action(
                &d,
                &json!({"action":"Park","maxInParking":180,"phoneCallViewId":1}),
                None
            )
            .unwrap(),
            Action::Park {
                view: Some(ViewId(1)),
                timeout: ParkTimeout(180)
            }
        );
        assert_eq!(
            parse_action(&d, &json!({"action":"Park","phoneCallViewId":"02"}), None).unwrap(),
            Action::Park {
                view: Some(ViewId(2)),
                timeout: ParkTimeout(180)
            }
        );
        match parse_action(
            &d,
            &json!({"action":"UnPark","sendCallTo":"024","phoneCallViewId":"01"}),
            Some(3),
        )
        .unwrap()
        {
            Action::UnPark {
                wait, caller_id, ..
            } => {
                assert_eq!(wait, WaitForPickup(25));
                assert_eq!(caller_id, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_error_code() {
        let d = dir();
        let p = |v: Value| parse_action(&d, &v, Some(3));
        assert_eq!(
            code(p(
                json!({"action":"Park","maxInParking":"9","phoneCallViewId":"01"})
            )),
            "pc_parktimeout_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"Park","maxInParking":"3601","phoneCallViewId":"01"})
            )),
            "pc_parktimeout_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"Park","maxInParking":"soon","phoneCallViewId":"01"})
            )),
            "pc_parktimeout_invalid"
        );
        assert_eq!(
            code(p(json!({"action":"Park","phoneCallViewId":"x1"}))),
            "pc_phonecallview_invalid"
        );
        assert_eq!(
            code(p(json!({"action":"Park","phoneCallViewId":"00"}))),
            "pc_phonecallview_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"UnPark","sendCallTo":"0003*024","waitForPickup":"0"})
            )),
            "pc_timeout_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"UnPark","sendCallTo":"0003*024","waitForPickup":"-3"})
            )),
            "pc_timeout_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"UnPark","sendCallTo":"0003*024","callerId":"John"})
            )),
            "pc_callerid_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"UnPark","sendCallTo":"0003*024","callerId":"John <abc>"})
            )),
            "pc_callerid_invalid"
        );
        assert_eq!(
            code(p(json!({"action":"UnPark","sendCallTo":"0003*999"}))),
            "pc_sendcallto_invalid"
        );
        assert_eq!(
            code(p(json!({"action":"UnPark","sendCallTo":"3235742879"}))),
            "pc_sendcallto_invalid"
        );
        assert_eq!(code(p(json!({"action":"PickUp"}))), "pc_sendcallto_invalid");
        assert_eq!(
            code(p(
                json!({"action":"Transfer","sendCallTo":"abc","transferFromNumber":"0003*024"})
            )),
            "pc_sendcallto_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"Transfer","sendCallTo":"0003*999","transferFromNumber":"0003*024"})
            )),
            "pc_sendcallto_invalid"
        );
        assert_eq!(
            code(p(json!({"action":"Transfer","sendCallTo":"3235742879"}))),
            "pc_transfer_from_number_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"x"})
            )),
            "pc_transfer_from_number_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"0003*024","transferNumber":"me"})
            )),
            "pc_transfer_number_invalid"
        );
        assert_eq!(
            code(p(
                json!({"action":"TransferToVoicemail","sendCallTo":"3235742879"})
            )),
            "pc_sendcallto_invalid"
        );
        assert_eq!(code(p(json!({"action":"Dance"}))), "pc_action_invalid");
        assert_eq!(code(p(json!({"nothing":1}))), "pc_action_invalid");
        assert_eq!(code(p(json!([1, 2]))), "request_invalid");
        assert_eq!(
            p(json!({"action":"Whisper","sendCallTo":"024"}))
                .unwrap_err()
                .status,
            501
        );
    }
}
