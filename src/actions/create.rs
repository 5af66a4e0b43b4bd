//! Creating calls: a simple call (click to call), a callback and conference invites
//! (`callback.rs`, `conference.rs`). What they share: the body's first view, the query's
//! waits and flags, and how a call is rung and then sent on through uapid's dial helper
//! (which shows the destination `callerDestination` before dialing it in the PBX's dial
//! context).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::input::{
    phone_terminal, Body, CallDuration, CallerId, Destination, ParseCtx, WaitForPickup,
};
use super::pbx::{new_channel_id, Callee, Pbx, Ring};
use super::{ActionError, InputError};
use crate::calls::{Calls, Made, Party};
use crate::config::Extension;

/// The body's first view, as a body of its own.
pub(super) fn first_view(body: &Value) -> &Value {
    static NULL: Value = Value::Null;
    body.get("phoneCallView")
        .and_then(|v| v.get(0))
        .unwrap_or(&NULL)
}

/// The phone a create request is made for, as it names it (`extension`, else the first
/// view's first source): the caller resolves it against what the app may use.
pub fn requested_extension(body: &Value) -> Result<String, InputError> {
    let missing = || InputError::Extension("(the phone the call is made for) is required".into());
    let b = Body::new(body)?;
    if let Ok(Some(e)) = b.text("extension") {
        return Ok(e);
    }
    match Body::new(first_view(body)).map(|v| v.first("source")) {
        Ok(Ok(Some(s))) => Ok(s),
        _ => Err(missing()),
    }
}

/// What every create request may say besides its parties.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub wait: WaitForPickup,
    pub duration: Option<CallDuration>,
    /// Shown to the phone rung first.
    pub caller_id: Option<CallerId>,
    /// Shown to the destination.
    pub caller_destination: Option<CallerId>,
}

/// `0`/`1`/`true`/`false`, absent: false.
fn flag(query: &HashMap<String, String>, key: &'static str) -> Result<bool, InputError> {
    match query.get(key).map(|v| v.trim()) {
        None | Some("") | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(_) => Err(InputError::Flag(key)),
    }
}

impl Options {
    /// From the query (`waitForPickup`, `callDuration`, `video`, `allowPublicTransfer`)
    /// and the first view (`callerId`, `callerDestination`).
    pub fn parse(body: &Value, query: &HashMap<String, String>) -> Result<Options, InputError> {
        let q = |k: &str| query.get(k).map(String::as_str);
        let (caller_id, caller_destination) = match Body::new(first_view(body)) {
            Ok(v) => (
                CallerId::parse(&v)?,
                CallerId::parse_field(&v, "callerDestination")?,
            ),
            Err(_) => (None, None),
        };
        // Accepted and checked, and otherwise left to the PBX: uapid sets up no media of
        // its own (the phones and the PBX negotiate video as for any call), and whether
        // a created call may be transferred to a public number is the PBX's policy.
        flag(query, "video")?;
        flag(query, "allowPublicTransfer")?;
        Ok(Options {
            wait: WaitForPickup::from_text(q("waitForPickup"))?,
            duration: CallDuration::from_text(q("callDuration"))?,
            caller_id,
            caller_destination,
        })
    }
}

/// `POST /uapi/phoneCalls/{userId}/simple`, parsed.
#[derive(Debug, Clone)]
pub struct CreateSimple {
    pub source: Extension,
    pub destination: Destination,
    pub options: Options,
}

impl CreateSimple {
    /// Parses the request once its source (the resolved extension) is known.
    pub fn parse(
        body: &Value,
        query: &HashMap<String, String>,
        source: &str,
        cx: &ParseCtx,
    ) -> Result<CreateSimple, InputError> {
        let source = phone_terminal(cx, source, InputError::Extension)?;
        let v = Body::new(first_view(body)).ok();
        let first = |key: &str| v.and_then(|v| v.first(key).ok().flatten());
        if let Some(src) = first("source") {
            if cx.dir.resolve_extension(&src, cx.org).map(|e| &e.number) != Some(&source.number) {
                return Err(InputError::Source(
                    "must be the extension that makes the call".into(),
                ));
            }
        }
        let destination = destination(cx, first("destination"))?;
        if destination.number() == source.number {
            return Err(InputError::Destination("is the source itself".into()));
        }
        Ok(CreateSimple {
            source,
            destination,
            options: Options::parse(body, query)?,
        })
    }

    /// Rings the source phone; when it answers, the dialplan calls the destination.
    /// Returns the id the new call will have.
    pub async fn apply(&self, pbx: &Pbx, calls: &Calls) -> Result<Arc<str>, ActionError> {
        let made = Made {
            source: Some(Party::Extension(self.source.number.clone())),
            ..Made::default()
        };
        ring_then_dial(
            pbx,
            calls,
            made,
            Callee::Phone(&self.source),
            &self.destination,
            &self.options,
        )
        .await
    }
}

/// A destination of the body: a known extension or a public number.
pub(super) fn destination(cx: &ParseCtx, raw: Option<String>) -> Result<Destination, InputError> {
    let dest = raw.ok_or_else(|| InputError::Destination("is required".into()))?;
    Destination::parse(cx, &dest).ok_or_else(|| {
        InputError::Destination(format!(
            "{dest} is neither a known extension nor a public number"
        ))
    })
}

/// Fails with `pc_destination_invalid` unless the dial context matches the number.
pub(super) async fn check_destination(pbx: &Pbx, d: &Destination) -> Result<(), ActionError> {
    let context = &pbx.names().dial_context;
    if pbx.dialplan_matches(context, d.dial()).await? {
        return Ok(());
    }
    Err(InputError::Destination(format!(
        "{}: the PBX's dial context {context} has no extension matching {}",
        d.number(),
        d.dial()
    ))
    .into())
}

/// Rings `first`; when it answers, it goes through uapid's dial helper (which sets the
/// caller id the destination sees) to the destination in the dial context. Returns the
/// id the new call will have.
pub(super) async fn ring_then_dial(
    pbx: &Pbx,
    calls: &Calls,
    mut made: Made,
    first: Callee<'_>,
    destination: &Destination,
    o: &Options,
) -> Result<Arc<str>, ActionError> {
    // The first party would answer a call the dialplan then hangs up: check first.
    check_destination(pbx, destination).await?;
    let names = pbx.names();
    pbx.require_dialplan(&names.dial_helper_context, destination.dial())
        .await?;
    let channel = new_channel_id();
    let ring = Ring {
        callee: first,
        wait_ms: o.wait.millis(),
        caller_id: o.caller_id.as_ref(),
        channel_id: &channel,
    };
    let mut vars = vec![format!("UAPID_DIAL_CONTEXT={}", names.dial_context)];
    if let Some(c) = &o.caller_destination {
        vars.push(format!("UAPID_CALLER_DEST={}", c.to_asterisk()));
    }
    if let Some(d) = o.duration {
        vars.push(format!("TIMEOUT(absolute)={}", d.secs()));
    }
    // As List shows it: the UAPI number (a PBX may dial an extension by another).
    made.dials = Some(destination.number().into());
    let id = super::note_made(calls, &channel, made);
    pbx.ring_into_exten(ring, &names.dial_helper_context, destination.dial(), &vars)
        .await?;
    Ok(id)
}
