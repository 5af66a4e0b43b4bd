//! The PhoneCalls resource's writing side: `PUT` (an action), `POST .../simple` (click to
//! call) and `DELETE` (hang up). Bodies are read as bytes and parsed here, so a body that
//! is not JSON gets a UAPI error like any other bad input; the actions themselves parse
//! their fields (`crate::actions`).

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
use crate::actions::{Action, CreateSimple, HangUp, InputError, ParseCtx};
use crate::calls::{self_link, Scope};

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
        return Ok(StatusCode::NO_CONTENT.into_response());
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
    let calls = s.actions.find(&target.scope, call)?;
    let done = s.actions.hang_up(&calls, &hang_up, call.is_some()).await?;
    if done.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let items: Vec<Value> = done.iter().map(|c| acted(s, c, &target.scope)).collect();
    Ok((StatusCode::ACCEPTED, Json(Value::Array(items))).into_response())
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
    // The phone that rings first must be one the app may use: resolved like a path.
    let source = CreateSimple::requested_source(&body)?;
    let target = target::resolve(&s.directory, account, &user, &source)?;
    let Scope::Extension(source) = &target.scope else {
        return Err(InputError::Extension("must be one phone terminal".into()).into());
    };
    let cx = ParseCtx {
        dir: &s.directory,
        org: target.org,
    };
    let create = CreateSimple::parse(&body, &q, source, &cx)?;
    let id = s.actions.create(&create).await?;
    let src = &create.source;
    let link = self_link(&s.base_url, &src.user.to_string(), &src.number, &id);
    let item = json!({ "id": &*id, "extension": src.number, "link": link });
    Ok((StatusCode::ACCEPTED, Json(json!([item]))).into_response())
}
