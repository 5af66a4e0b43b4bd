//! Create a callback call: the PBX calls the source (a public number, through its dial
//! context and trunk) first; when it answers, the destination is called and connected.
//! Both may be public numbers, so the call is tied to the requesting user's extension
//! (`extension`): it shows in that extension's view.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::create::{destination, first_view, ring_then_dial, Options};
use super::input::{phone_terminal, Body, Destination, ParseCtx};
use super::pbx::{Callee, Pbx};
use super::{ActionError, InputError};
use crate::calls::{Calls, Made};
use crate::config::Extension;

/// `POST /uapi/phoneCalls/{userId}/callback`, parsed.
#[derive(Debug, Clone)]
pub struct CreateCallback {
    /// The user's extension the call is made for.
    pub owner: Extension,
    /// Called first.
    pub source: Destination,
    pub destination: Destination,
    pub options: Options,
}

impl CreateCallback {
    /// Parses the request once the extension it is made for is known.
    pub fn parse(
        body: &Value,
        query: &HashMap<String, String>,
        owner: &str,
        cx: &ParseCtx,
    ) -> Result<CreateCallback, InputError> {
        let owner = phone_terminal(cx, owner, InputError::Extension)?;
        let v = Body::new(first_view(body)).ok();
        let first = |key: &str| v.and_then(|v| v.first(key).ok().flatten());
        let raw = first("source").ok_or_else(|| InputError::Source("is required".into()))?;
        let source = Destination::parse(cx, &raw).ok_or_else(|| {
            InputError::Source(format!(
                "{raw} is neither a known extension nor a public number"
            ))
        })?;
        let destination = destination(cx, first("destination"))?;
        if destination == source {
            return Err(InputError::Destination("is the source itself".into()));
        }
        Ok(CreateCallback {
            owner,
            source,
            destination,
            options: Options::parse(body, query)?,
        })
    }

    /// Calls the source, then the destination. Returns the id the new call will have.
    pub async fn apply(&self, pbx: &Pbx, calls: &Calls) -> Result<Arc<str>, ActionError> {
        super::create::check_destination(pbx, &self.source)
            .await
            .map_err(|e| match e {
                ActionError::Input(InputError::Destination(m)) => InputError::Source(m).into(),
                e => e,
            })?;
        let made = Made {
            owner: Some(self.owner.number.clone()),
            source: Some(self.source.party()),
            dials: None,
        };
        ring_then_dial(
            pbx,
            calls,
            made,
            Callee::Number(self.source.dial()),
            &self.destination,
            &self.options,
        )
        .await
    }
}
