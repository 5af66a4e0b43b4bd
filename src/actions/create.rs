//! Create a simple call (click to call): the source phone rings first; when it answers,
//! the dialplan calls the destination (an extension or a public number) and connects
//! them.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::input::{
    phone_terminal, Body, CallDuration, CallerId, Destination, ParseCtx, WaitForPickup,
};
use super::pbx::{new_channel_id, Pbx, Ring};
use super::{ActionError, InputError};
use crate::calls::phone_call_id;
use crate::config::Extension;

/// `POST /uapi/phoneCalls/{userId}/simple`, parsed.
#[derive(Debug, Clone)]
pub struct CreateSimple {
    pub source: Extension,
    pub destination: Destination,
    pub caller_id: Option<CallerId>,
    pub wait: WaitForPickup,
    pub duration: Option<CallDuration>,
}

/// The body's first view, as a body of its own.
fn first_view(body: &Value) -> &Value {
    static NULL: Value = Value::Null;
    body.get("phoneCallView")
        .and_then(|v| v.get(0))
        .unwrap_or(&NULL)
}

impl CreateSimple {
    /// The phone that rings first, as the request names it (`extension`, else the first
    /// view's first source): the caller resolves it against what the app may use.
    pub fn requested_source(body: &Value) -> Result<String, InputError> {
        let missing = || InputError::Extension("(the phone that rings first) is required".into());
        let b = Body::new(body)?;
        if let Ok(Some(e)) = b.text("extension") {
            return Ok(e);
        }
        match Body::new(first_view(body)).map(|v| v.first("source")) {
            Ok(Ok(Some(s))) => Ok(s),
            _ => Err(missing()),
        }
    }

    /// Parses the request once its source (the resolved extension) is known. `query`:
    /// `waitForPickup`, `callDuration`.
    pub fn parse(
        body: &Value,
        query: &HashMap<String, String>,
        source: &str,
        cx: &ParseCtx,
    ) -> Result<CreateSimple, InputError> {
        let source = phone_terminal(cx, source, InputError::Extension)?;
        let view = first_view(body);
        let v = Body::new(view).ok();
        let first = |key: &str| v.and_then(|v| v.first(key).ok().flatten());
        if let Some(src) = first("source") {
            if cx.dir.resolve_extension(&src, cx.org).map(|e| &e.number) != Some(&source.number) {
                return Err(InputError::Source(
                    "must be the extension that makes the call".into(),
                ));
            }
        }
        let dest =
            first("destination").ok_or_else(|| InputError::Destination("is required".into()))?;
        let destination = Destination::parse(cx, &dest).ok_or_else(|| {
            InputError::Destination(format!(
                "{dest} is neither a known extension nor a public number"
            ))
        })?;
        if destination.number() == source.number {
            return Err(InputError::Destination("is the source itself".into()));
        }
        let caller_id = match v {
            Some(v) => CallerId::parse(&v)?,
            None => None,
        };
        let q = |k: &str| query.get(k).map(String::as_str);
        Ok(CreateSimple {
            source,
            destination,
            caller_id,
            wait: WaitForPickup::from_text(q("waitForPickup"))?,
            duration: CallDuration::from_text(q("callDuration"))?,
        })
    }

    /// Rings the source phone; when it answers, the dialplan calls the destination.
    /// Returns the id the new call will have.
    pub async fn apply(&self, pbx: &Pbx) -> Result<Arc<str>, ActionError> {
        let channel = new_channel_id();
        let ring = Ring {
            phone: &self.source,
            wait_ms: self.wait.millis(),
            caller_id: self.caller_id.as_ref(),
            channel_id: &channel,
        };
        let vars: Vec<String> = self
            .duration
            .map(|d| format!("TIMEOUT(absolute)={}", d.secs()))
            .into_iter()
            .collect();
        // The source would answer a call the dialplan then hangs up: check first.
        let context = &pbx.names().dial_context;
        let dial = self.destination.dial();
        if !pbx.dialplan_matches(context, dial).await? {
            return Err(InputError::Destination(format!(
                "{}: the PBX's dial context {context} has no extension matching {dial}",
                self.destination.number()
            ))
            .into());
        }
        pbx.ring_into_exten(ring, context, dial, &vars).await?;
        Ok(Arc::from(phone_call_id(&channel)))
    }
}
