//! Which calls a request acts on, and the actions on whole calls: update (one call or
//! every call of an extension), create a simple call (click to call), hang up.

use std::sync::Arc;

use super::parse::{Action, CallerId, WaitForPickup};
use super::{dial_string, new_channel_id, no_such_call, Done, Engine};
use crate::api::error::ApiError;
use crate::api::target::Target;
use crate::asterisk::ami::Message;
use crate::calls::phone_call_id;
use crate::config::Extension;

/// The calls a request names: one by id (it must exist and be in reach) or all of a target.
pub fn find_calls(
    e: &Engine,
    target: &Target,
    id: Option<&str>,
) -> Result<Vec<Arc<str>>, ApiError> {
    let t = e.tracker.read().unwrap_or_else(|e| e.into_inner());
    let scope = target.scope();
    match id {
        Some(id) => {
            let c = t
                .call(id)
                .filter(|c| t.in_scope(c, scope))
                .ok_or_else(no_such_call)?;
            Ok(vec![c.id.clone()])
        }
        None => Ok(t.scope(scope).iter().map(|(_, id)| id.clone()).collect()),
    }
}

/// Runs an action. With one call, its error is the answer. With every call of an
/// extension, calls the action does not apply to are passed over; an empty result means
/// there was nothing to act on.
pub async fn update(
    e: &Arc<Engine>,
    calls: &[Arc<str>],
    path_ext: Option<&str>,
    action: &Action,
    single: bool,
) -> Result<Vec<Done>, ApiError> {
    if single {
        let call = calls.first().ok_or_else(no_such_call)?;
        return Ok(vec![e.act(call, path_ext, action).await?]);
    }
    let action = action.without_view();
    let mut done = Vec::new();
    for call in calls {
        match e.act(call, path_ext, &action).await {
            Ok(d) => done.push(d),
            Err(err) if err.status.is_client_error() => {
                tracing::debug!(call = %call, "{} passed over: {}", action.name(), err.message)
            }
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// A click-to-call request, parsed.
#[derive(Debug, Clone)]
pub struct SimpleCall {
    pub source: Extension,
    /// What the dialplan dials: a full extension number or a public number.
    pub destination: String,
    pub caller_id: Option<CallerId>,
    pub wait: WaitForPickup,
    pub duration: Option<u64>,
}

/// Rings the source phone; when it answers, the dialplan calls the destination. Returns
/// the id the new call will have.
pub async fn create_simple(e: &Engine, call: &SimpleCall) -> Result<Arc<str>, ApiError> {
    let channel = new_channel_id();
    let mut originate = Message::new()
        .with("Action", "Originate")
        .with("Channel", dial_string(&call.source))
        .with("Context", &e.names.dial_context)
        .with("Exten", &call.destination)
        .with("Priority", "1")
        .with("Timeout", (call.wait.0 * 1000).to_string())
        .with("ChannelId", &channel)
        .with("Async", "true");
    if let Some(c) = &call.caller_id {
        originate = originate.with("CallerID", c.to_asterisk());
    }
    if let Some(d) = call.duration {
        originate = originate.with("Variable", format!("TIMEOUT(absolute)={d}"));
    }
    e.ami(originate).await?;
    Ok(Arc::from(phone_call_id(&channel)))
}

/// Hangs up every leg of the calls; returns those that had legs to hang up.
pub async fn hang_up(e: &Engine, calls: &[Arc<str>]) -> Result<Vec<Arc<str>>, ApiError> {
    let mut done = Vec::new();
    for call in calls {
        let legs: Vec<String> = e
            .plan(call)
            .map(|p| p.legs.into_iter().map(|l| l.id).collect())
            .unwrap_or_default();
        let mut any = false;
        for leg in legs {
            match e.ari.hangup(&leg).await {
                Ok(()) => any = true,
                Err(err) if err.status() == Some(404) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if any {
            done.push(call.clone());
        }
    }
    Ok(done)
}
