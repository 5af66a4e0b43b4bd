//! The values a request carries, parsed once at the edge into types that cannot hold an
//! invalid value; inside, nothing re-validates. Numbers are accepted as JSON numbers or
//! numeric strings ("30" or 30); unknown fields are ignored, as UAPI clients send extra
//! ones.

use serde_json::Value;

use super::error::InputError;
use crate::calls::Party;
use crate::config::{
    looks_like_extension, looks_like_phone_number, looks_like_public_number, Directory, Extension,
    ExtensionKind,
};

/// What parsing needs besides the body: the directory, and the organization the request
/// speaks in (short extension numbers are read in it).
#[derive(Clone, Copy)]
pub struct ParseCtx<'a> {
    pub dir: &'a Directory,
    pub org: Option<u64>,
}

/// A field that should hold text or a number holds something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotText;

/// A PhoneCallAction (or a create request's view): a JSON object.
#[derive(Clone, Copy)]
pub struct Body<'a>(&'a Value);

impl<'a> Body<'a> {
    pub fn new(v: &'a Value) -> Result<Body<'a>, InputError> {
        if v.is_object() {
            Ok(Body(v))
        } else {
            Err(InputError::NotAnObject)
        }
    }

    /// A field as text: strings trimmed, numbers written out; `None` when absent, null
    /// or empty; `Err` for arrays, objects and booleans.
    pub fn text(&self, key: &str) -> Result<Option<String>, NotText> {
        let s = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(NotText),
        };
        Ok((!s.is_empty()).then_some(s))
    }

    /// A whole number from a JSON number or a numeric string.
    fn number(&self, key: &str) -> Result<Option<u64>, NotText> {
        match self.text(key)? {
            None => Ok(None),
            Some(s) => s.parse::<u64>().map(Some).map_err(|_| NotText),
        }
    }

    /// The first element of an array field, or the field itself when it is not an array.
    pub fn first(&self, key: &str) -> Result<Option<String>, NotText> {
        match self.0.get(key) {
            Some(Value::Array(a)) => match a.first() {
                None => Ok(None),
                Some(v) => Body(&serde_json::json!({ "v": v })).text("v"),
            },
            _ => self.text(key),
        }
    }

    /// `sendCallTo`, which every action that names one requires.
    pub fn send_call_to(&self) -> Result<String, InputError> {
        match self.text("sendCallTo") {
            Ok(Some(s)) => Ok(s),
            _ => Err(InputError::SendCallTo("is required".into())),
        }
    }
}

/// A view of a call: "01", "02", ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewId(u16);

impl ViewId {
    /// `phoneCallViewId`, when given.
    pub fn parse(b: &Body) -> Result<Option<ViewId>, InputError> {
        let Some(s) = b.text("phoneCallViewId").map_err(|_| InputError::View)? else {
            return Ok(None);
        };
        match s.parse::<u16>() {
            Ok(n) if n >= 1 && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(ViewId(n)))
            }
            _ => Err(InputError::View),
        }
    }

    /// 1 for "01".
    pub fn number(self) -> usize {
        usize::from(self.0)
    }
}

/// Seconds in the parking lot before the call rings the parker back: 10..3600.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkTimeout(u64);

impl ParkTimeout {
    pub const DEFAULT: ParkTimeout = ParkTimeout(180);

    pub fn parse(b: &Body) -> Result<ParkTimeout, InputError> {
        match b.number("maxInParking") {
            Ok(None) => Ok(Self::DEFAULT),
            Ok(Some(n)) if (10..=3600).contains(&n) => Ok(ParkTimeout(n)),
            _ => Err(InputError::ParkTimeout),
        }
    }

    pub fn millis(self) -> u64 {
        self.0 * 1000
    }
}

/// Seconds to wait for a phone to answer: 1..3600.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitForPickup(u64);

impl Default for WaitForPickup {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl WaitForPickup {
    pub const DEFAULT: WaitForPickup = WaitForPickup(25);

    /// From the body's `waitForPickup`.
    pub fn parse(b: &Body) -> Result<WaitForPickup, InputError> {
        let text = b
            .text("waitForPickup")
            .map_err(|_| InputError::WaitForPickup("waitForPickup"))?;
        Self::from_text(text.as_deref())
    }

    /// From a query parameter's text.
    pub fn from_text(text: Option<&str>) -> Result<WaitForPickup, InputError> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(Self::DEFAULT),
            Some(t) => match t.parse::<u64>() {
                Ok(n) if (1..=3600).contains(&n) => Ok(WaitForPickup(n)),
                _ => Err(InputError::WaitForPickup("waitForPickup")),
            },
        }
    }

    pub fn millis(self) -> u64 {
        self.0 * 1000
    }
}

/// The total length of a created call, in seconds: 1..86400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallDuration(u64);

impl CallDuration {
    pub fn from_text(text: Option<&str>) -> Result<Option<CallDuration>, InputError> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => match t.parse::<u64>() {
                Ok(n) if (1..=86_400).contains(&n) => Ok(Some(CallDuration(n))),
                _ => Err(InputError::CallDuration),
            },
        }
    }

    pub fn secs(self) -> u64 {
        self.0
    }
}

/// `Name <number>` (the number may start with +).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId {
    name: String,
    number: String,
}

impl CallerId {
    /// `callerId`, when given.
    pub fn parse(b: &Body) -> Result<Option<CallerId>, InputError> {
        Self::parse_field(b, "callerId")
    }

    /// A caller id field, when given.
    pub fn parse_field(b: &Body, key: &str) -> Result<Option<CallerId>, InputError> {
        match b.text(key).map_err(|_| InputError::CallerId)? {
            None => Ok(None),
            Some(s) => CallerId::from_text(&s).map(Some),
        }
    }

    pub fn from_text(s: &str) -> Result<CallerId, InputError> {
        let bad = || InputError::CallerId;
        let (name, rest) = s.split_once('<').ok_or_else(bad)?;
        let number = rest.strip_suffix('>').ok_or_else(bad)?.trim();
        let name = name.trim().trim_matches('"').trim();
        if !looks_like_phone_number(number) && !looks_like_extension(number) {
            return Err(bad());
        }
        if name.len() > 80 || name.chars().any(|c| c.is_control() || c == '<' || c == '>') {
            return Err(bad());
        }
        Ok(CallerId {
            name: name.to_string(),
            number: number.to_string(),
        })
    }

    /// A caller id of a party of a call, as the tracker knows it.
    pub fn of_party(name: &str, number: &str) -> CallerId {
        CallerId {
            name: name.to_string(),
            number: number.to_string(),
        }
    }

    /// As Asterisk takes it: `"Name" <number>`.
    pub fn to_asterisk(&self) -> String {
        format!("\"{}\" <{}>", self.name.replace('"', ""), self.number)
    }
}

/// Where a call is sent: a known extension, or a public number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Extension(Extension),
    Public(String),
}

impl Destination {
    /// A known extension (full, or short in the request's organization), else a public
    /// number; `None` for anything else.
    pub fn parse(cx: &ParseCtx, raw: &str) -> Option<Destination> {
        match cx.dir.resolve_extension(raw, cx.org) {
            Some(e) => Some(Destination::Extension(e.clone())),
            None if looks_like_public_number(raw) => Some(Destination::Public(raw.to_string())),
            None => None,
        }
    }

    /// The UAPI number: the extension's full number, or the public number.
    pub fn number(&self) -> &str {
        match self {
            Destination::Extension(e) => &e.number,
            Destination::Public(n) => n,
        }
    }

    /// The party it is, as List shows it.
    pub fn party(&self) -> Party {
        match self {
            Destination::Extension(e) => Party::Extension(e.number.clone()),
            Destination::Public(n) => Party::Public(n.clone()),
        }
    }

    /// What the PBX's dial context dials to reach it: the extension's dial number (its
    /// short number unless configured), or the public number.
    pub fn dial(&self) -> &str {
        match self {
            Destination::Extension(e) => &e.dial,
            Destination::Public(n) => n,
        }
    }
}

/// A phone terminal of the directory, named in full or by its short number. `err` makes
/// the error of the field it came from.
pub fn phone_terminal(
    cx: &ParseCtx,
    raw: &str,
    err: fn(String) -> InputError,
) -> Result<Extension, InputError> {
    if !looks_like_extension(raw) {
        return Err(err(
            "must be the number of a phone terminal extension".into()
        ));
    }
    let ext = cx
        .dir
        .resolve_extension(raw, cx.org)
        .ok_or_else(|| err("is not a known extension".into()))?;
    if ext.kind != ExtensionKind::PhoneTerminal {
        return Err(err("must be a phone terminal extension".into()));
    }
    Ok(ext.clone())
}

/// The number of a party of a call: an extension (full or short) or a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyNumber(String);

impl PartyNumber {
    pub fn parse(s: &str) -> Option<PartyNumber> {
        let s = s.trim();
        (looks_like_extension(s) || looks_like_phone_number(s)).then(|| PartyNumber(s.to_string()))
    }

    /// An optional body field; `err` makes the field's error.
    pub fn field(
        b: &Body,
        key: &str,
        err: fn(String) -> InputError,
    ) -> Result<Option<PartyNumber>, InputError> {
        let bad = || err("must be the phone number of a party of the call".into());
        match b.text(key).map_err(|_| bad())? {
            None => Ok(None),
            Some(s) => PartyNumber::parse(&s).map(Some).ok_or_else(bad),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
