//! The PhoneCalls resource's writing side: `PUT` (an action), `POST .../simple` (click to
//! call) and `DELETE` (hang up). Bodies are read as bytes and parsed here, so a body that
//! is not JSON gets a UAPI error like any other bad input; the actions themselves parse
//! their fields (`crate::actions`).
//!
//! Every success carries a JSON body, since clients parse one on every 2xx: `202` with
//! the calls acted on, or `200` with `[]` when there was none.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::target::{self, Target};
use super::Shared;
use std::sync::Arc;

use crate::actions::{
    requested_extension, Action, ActionError, Body, ConferenceInvite, CreateCallback, CreateSimple,
    HangUp, InputError, ParseCtx,
};
use crate::calls::{self_link, Scope};
use crate::config::Account;

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| InputError::NotJson(e.to_string()).into())
}

/// `{"id","extension","link":{"self"}}` of a call acted on: its extension is the path's,
/// else the call's first.
fn acted(s: &Shared, call: &str, scope: &Scope) -> Value {
    let ext = match scope {
        Scope::Extension(e) => Some(e.clone()),
        _ => None,
    }
    .or_else(|| {
        let t = s.calls.read();
        t.call(call).and_then(|c| c.extensions.first().cloned())
    });
    let user = ext
        .as_ref()
        .and_then(|e| s.directory.extensions.get(e))
        .map_or_else(|| "@me".into(), |e| e.user.to_string());
    let link = self_link(&s.base_url, &user, ext.as_deref().unwrap_or("@self"), call);
    json!({ "id": call, "extension": ext, "link": link })
}

/// No call to act on: `200` with an empty array (not an empty `204`, which clients that
/// parse every 2xx as JSON cannot read).
fn no_call() -> Response {
    (StatusCode::OK, Json(json!([]))).into_response()
}

fn path_extension(target: &Target) -> Option<&str> {
    match &target.scope {
        Scope::Extension(e) => Some(e),
        _ => None,
    }
}

pub async fn update_calls(
    State(s): State<Shared>,
    Path((user, ext)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    update(&s, &user, &ext, None, &q, &headers, &body).await
}

pub async fn update_call(
    State(s): State<Shared>,
    Path((user, ext, call)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    update(&s, &user, &ext, Some(&call), &q, &headers, &body).await
}

async fn update(
    s: &Shared,
    user: &str,
    ext: &str,
    call: Option<&str>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let (_, target, call) = super::addressed(s, headers, q, user, ext, call)?;
    let cx = ParseCtx {
        dir: &s.directory,
        org: target.org,
    };
    let action = Action::parse(&json_body(body)?, &cx)?;
    let calls = s.actions.find(&target.scope, call)?;
    let path_ext = path_extension(&target);
    let done = s
        .actions
        .update(&calls, path_ext, &action, call.is_some())
        .await?;
    if done.is_empty() {
        return Ok(no_call());
    }
    let items: Vec<Value> = done
        .iter()
        .map(|d| acted(s, &d.call, &target.scope))
        .collect();
    let is_park = matches!(action, Action::Park(_));
    let body = if call.is_some() && !is_park {
        items[0].clone()
    } else {
        Value::Array(items)
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

pub async fn delete_calls(
    State(s): State<Shared>,
    Path((user, ext)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete(&s, &user, &ext, None, &q, &headers).await
}

pub async fn delete_call(
    State(s): State<Shared>,
    Path((user, ext, call)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete(&s, &user, &ext, Some(&call), &q, &headers).await
}

async fn delete(
    s: &Shared,
    user: &str,
    ext: &str,
    call: Option<&str>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (_, target, call) = super::addressed(s, headers, q, user, ext, call)?;
    let hang_up = HangUp::parse(q.get("phoneNumber").map(String::as_str))?;
    // A call already gone, before or while it is hung up (or never in reach, which List
    // does not reveal either): nothing to hang up.
    let calls = match s.actions.find(&target.scope, call) {
        Ok(calls) => calls,
        Err(ActionError::NoSuchCall) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let done = match s.actions.hang_up(&calls, &hang_up, call.is_some()).await {
        Ok(done) => done,
        Err(ActionError::NoSuchCall) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if done.is_empty() {
        return Ok(no_call());
    }
    let items: Vec<Value> = done.iter().map(|c| acted(s, c, &target.scope)).collect();
    Ok((StatusCode::ACCEPTED, Json(Value::Array(items))).into_response())
}

/// The extension a create request is made for, resolved like a path for the account
/// (so it must be one the app may use), and the parsing context it speaks in.
fn made_for(
    s: &Shared,
    account: Account,
    user: &str,
    ext: &str,
) -> Result<(String, Option<u64>), ApiError> {
    let target = target::resolve(&s.directory, account, user, ext)?;
    let Scope::Extension(number) = target.scope else {
        return Err(InputError::Extension("must be one phone terminal".into()).into());
    };
    Ok((number, target.org))
}

/// `202` with the calls created: `[{"id","extension","link"}]`.
fn created(s: &Shared, ext: &crate::config::Extension, ids: &[Arc<str>]) -> Response {
    let items: Vec<Value> = ids
        .iter()
        .map(|id| {
            let link = self_link(&s.base_url, &ext.user.to_string(), &ext.number, id);
            json!({ "id": &**id, "extension": ext.number, "link": link })
        })
        .collect();
    (StatusCode::ACCEPTED, Json(Value::Array(items))).into_response()
}

pub async fn create_simple(
    State(s): State<Shared>,
    Path(user): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = super::authenticate(&s, &headers, &q)?;
    let body = json_body(&body)?;
    let requested = requested_extension(&body)?;
    let (source, org) = made_for(&s, account, &user, &requested)?;
    let cx = ParseCtx {
        dir: &s.directory,
        org,
    };
    let create = CreateSimple::parse(&body, &q, &source, &cx)?;
    let id = s.actions.create(&create).await?;
    Ok(created(&s, &create.source, &[id]))
}

pub async fn create_callback(
    State(s): State<Shared>,
    Path(user): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = super::authenticate(&s, &headers, &q)?;
    let body = json_body(&body)?;
    let requested = Body::new(&body)?
        .text("extension")
        .ok()
        .flatten()
        .ok_or_else(|| {
            InputError::Extension("(the phone the call is made for) is required".into())
        })?;
    let (owner, org) = made_for(&s, account, &user, &requested)?;
    let cx = ParseCtx {
        dir: &s.directory,
        org,
    };
    let create = CreateCallback::parse(&body, &q, &owner, &cx)?;
    let id = s.actions.callback(&create).await?;
    Ok(created(&s, &create.owner, &[id]))
}

pub async fn create_conference_invite(
    State(s): State<Shared>,
    Path(user): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = super::authenticate(&s, &headers, &q)?;
    let body = json_body(&body)?;
    let requested = Body::new(&body)?.text("extension").ok().flatten();
    // Made for the body's extension when it names one, else for the path's user.
    let (owner, org) = match &requested {
        Some(ext) => {
            let (n, org) = made_for(&s, account, &user, ext)?;
            (s.directory.extensions.get(&n).cloned(), org)
        }
        None => {
            let target = target::resolve(&s.directory, account, &user, "@self")?;
            (None, target.org)
        }
    };
    let cx = ParseCtx {
        dir: &s.directory,
        org,
    };
    let invite = ConferenceInvite::parse(&body, &q, owner, &cx)?;
    let ids = s.actions.invite(&invite).await?;
    let ext = invite.owner.as_ref().unwrap_or(&invite.conference);
    Ok(created(&s, ext, &ids))
}
