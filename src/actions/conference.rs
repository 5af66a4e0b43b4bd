//! Conference invites: the PBX calls each phone number of the body's destinations and,
//! when it answers, puts it into the conference room (`number`, a conference extension
//! of the directory; `pin` must be its PIN when it has one). uapid's own conference
//! context runs `ConfBridge(<room>)`, so the invited do not have to enter the PIN.
//! Parties in one room become one call (Asterisk's linkedid follows the oldest), so the
//! ids returned, one per invite, converge on the first to join.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::create::{first_view, Options};
use super::input::{Body, Destination, ParseCtx};
use super::pbx::{new_channel_id, Callee, Pbx, Ring};
use super::{ActionError, InputError};
use crate::calls::{Calls, Made};
use crate::config::{Extension, ExtensionKind};

/// At most this many invites in one request.
const MAX_INVITES: usize = 20;

/// `POST /uapi/phoneCalls/{userId}/conferenceInvite`, parsed.
#[derive(Debug, Clone)]
pub struct ConferenceInvite {
    /// The user's extension the invites are made for, when the request names one.
    pub owner: Option<Extension>,
    pub conference: Extension,
    pub invited: Vec<Destination>,
    pub options: Options,
}

impl ConferenceInvite {
    pub fn parse(
        body: &Value,
        query: &HashMap<String, String>,
        owner: Option<Extension>,
        cx: &ParseCtx,
    ) -> Result<ConferenceInvite, InputError> {
        let number = query
            .get("number")
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| InputError::Conference("number (the conference) is required".into()))?;
        let conference = cx
            .dir
            .resolve_extension(number, cx.org)
            .filter(|e| e.kind == ExtensionKind::Conference)
            .ok_or_else(|| {
                InputError::Conference(format!("{number} is not a conference of this organization"))
            })?
            .clone();
        if let Some(pin) = &conference.pin {
            let given = query.get("pin").map(|p| p.trim()).unwrap_or("");
            if !crate::config::same_secret(pin.expose(), given) {
                return Err(InputError::Pin);
            }
        }
        let invited = destinations(body, cx)?;
        Ok(ConferenceInvite {
            owner,
            conference,
            invited,
            options: Options::parse(body, query)?,
        })
    }

    /// Rings each invited number; on answer it joins the room. Returns the calls' ids.
    pub async fn apply(&self, pbx: &Pbx, calls: &Calls) -> Result<Vec<Arc<str>>, ActionError> {
        for d in &self.invited {
            super::create::check_destination(pbx, d).await?;
        }
        let names = pbx.names();
        let room = &self.conference.dial;
        pbx.require_dialplan(&names.conference_context, room)
            .await?;
        let mut ids = Vec::new();
        for d in &self.invited {
            let channel = new_channel_id();
            let ring = Ring {
                callee: Callee::Number(d.dial()),
                wait_ms: self.options.wait.millis(),
                caller_id: self.options.caller_id.as_ref(),
                channel_id: &channel,
            };
            // The call shows its owner and the room from its first ring.
            let made = Made {
                owner: self.owner.as_ref().map(|o| o.number.clone()),
                source: Some(d.party()),
                dials: Some(self.conference.number.as_str().into()),
            };
            let id = super::note_made(calls, &channel, made);
            pbx.ring_into_exten(ring, &names.conference_context, room, &[])
                .await?;
            ids.push(id);
        }
        Ok(ids)
    }
}

/// The body's first view's destinations: extensions or public numbers, 1 to 20.
fn destinations(body: &Value, cx: &ParseCtx) -> Result<Vec<Destination>, InputError> {
    let view = first_view(body);
    let list: Vec<Value> = match view.get("destination") {
        Some(Value::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
        None => Vec::new(),
    };
    if list.is_empty() || list.len() > MAX_INVITES {
        return Err(InputError::Destination(format!(
            "must list 1 to {MAX_INVITES} phone numbers to invite"
        )));
    }
    let mut out: Vec<Destination> = Vec::new();
    for v in &list {
        let raw = Body::new(&serde_json::json!({ "d": v }))
            .ok()
            .and_then(|b| b.text("d").ok().flatten())
            .ok_or_else(|| InputError::Destination("must be phone numbers".into()))?;
        let d = Destination::parse(cx, &raw).ok_or_else(|| {
            InputError::Destination(format!(
                "{raw} is neither a known extension nor a public number"
            ))
        })?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}
