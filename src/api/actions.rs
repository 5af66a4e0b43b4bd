//! The PhoneCalls resource's writing side: `PUT` (an action), `POST .../simple` (click to
//! call) and `DELETE` (hang up). Bodies are read as bytes and parsed here, so a body that
//! is not JSON gets a UAPI error like any other bad input.

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
use crate::actions::calls::{self, SimpleCall};
use crate::actions::parse::{self, DEFAULT_WAIT_FOR_PICKUP};
use crate::config::{looks_like_phone_number, Account};

fn account(
    s: &Shared,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Account, ApiError> {
    s.tokens
        .authenticate(headers, q.get("accessRequestToken").map(String::as_str))
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("request_invalid", format!("the body is not JSON: {e}")))
}

/// `{"id","extension","link":{"self"}}` of a call acted on.
fn acted(s: &Shared, call: &str, target: &Target) -> Value {
    let t = s.tracker.read().unwrap_or_else(|e| e.into_inner());
    let ext = match target {
        Target::Extension(e) => Some(e.clone()),
        _ => None,
    }
    .or_else(|| t.call(call).and_then(|c| c.extensions.first().cloned()));
    let user = ext
        .as_ref()
        .and_then(|e| s.directory.extensions.get(e))
        .map(|e| e.user.to_string())
        .unwrap_or_else(|| "@me".into());
    let ext_text = ext.clone().unwrap_or_else(|| "@self".into());
    json!({
        "id": call,
        "extension": ext,
        "link": { "self": format!("{}/uapi/phoneCalls/{user}/{ext_text}/{call}", s.base_url) },
    })
}

/// The organization a request speaks in, for short extension numbers.
fn request_org(s: &Shared, account: Account, target: &Target) -> Option<u64> {
    match target {
        Target::Extension(e) => s.directory.extensions.get(e).map(|x| x.organization),
        Target::User(u) => s.directory.users.get(u).map(|u| u.organization),
        Target::Organization(o) => Some(*o),
        Target::All => s.directory.account_organization(account),
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
    let (account, target, call) = super::addressed(s, headers, q, user, ext, call)?;
    let action = parse::parse_action(
        &s.directory,
        &json_body(body)?,
        request_org(s, account, &target),
    )?;
    let calls = calls::find_calls(&s.engine, &target, call)?;
    let path_ext = match &target {
        Target::Extension(e) => Some(e.as_str()),
        _ => None,
    };
    let done = calls::update(&s.engine, &calls, path_ext, &action, call.is_some()).await?;
    if done.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let items: Vec<Value> = done.iter().map(|d| acted(s, &d.call, &target)).collect();
    let is_park = matches!(action, parse::Action::Park { .. });
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
    let number = match q
        .get("phoneNumber")
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        None => None,
        Some(n) if looks_like_phone_number(n) || crate::config::looks_like_extension(n) => {
            Some(n.to_string())
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "phone_number_invalid",
                "phoneNumber must be a phone number",
            ))
        }
    };
    let mut calls = calls::find_calls(&s.engine, &target, call)?;
    if let Some(n) = &number {
        // Only the calls with that number among their parties.
        calls.retain(|c| {
            s.engine
                .plan(c)
                .is_some_and(|p| p.leg_by_number(&s.directory, n).is_some())
        });
    }
    let done = calls::hang_up(&s.engine, &calls).await?;
    if done.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let items: Vec<Value> = done.iter().map(|c| acted(s, c, &target)).collect();
    Ok((StatusCode::ACCEPTED, Json(Value::Array(items))).into_response())
}

pub async fn create_simple(
    State(s): State<Shared>,
    Path(user): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = account(&s, &headers, &q)?;
    let body = json_body(&body)?;
    let field = |v: &Value| match v {
        Value::String(x) => Some(x.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let view = body
        .get("phoneCallView")
        .and_then(|v| v.get(0))
        .cloned()
        .unwrap_or(Value::Null);
    let first = |key: &str| {
        view.get(key)
            .and_then(|a| a.get(0).or(Some(a)))
            .and_then(field)
    };
    // The source: `extension`, or the view's first source.
    let ext_raw = body
        .get("extension")
        .and_then(field)
        .or_else(|| first("source"))
        .ok_or_else(|| {
            ApiError::bad_request(
                "extension_invalid",
                "extension (the phone that rings first) is required",
            )
        })?;
    let target = target::resolve(&s.directory, account, &user, &ext_raw)?;
    let Target::Extension(source) = &target else {
        return Err(ApiError::bad_request(
            "extension_invalid",
            "extension must be one phone terminal",
        ));
    };
    let org = request_org(&s, account, &target);
    let source =
        parse::phone_terminal(&s.directory, source, org, "extension_invalid", "extension")?.clone();
    if let Some(src) = first("source") {
        if s.directory.resolve_extension(&src, org).map(|e| &e.number) != Some(&source.number) {
            return Err(ApiError::bad_request(
                "pc_source_invalid",
                "source must be the extension that makes the call",
            ));
        }
    }
    let dest = first("destination")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("pc_destination_invalid", "destination is required")
        })?;
    let destination = parse::destination(&s.directory, &dest, org)
        .map(|d| d.number().to_string())
        .ok_or_else(|| {
            ApiError::bad_request(
                "pc_destination_invalid",
                format!("destination {dest} is neither a known extension nor a public number"),
            )
        })?;
    if destination == source.number {
        return Err(ApiError::bad_request(
            "pc_destination_invalid",
            "the destination is the source itself",
        ));
    }
    let caller_id = parse::parse_caller_id(&view)?;
    let num = |key: &str, code: &'static str, lo: u64, hi: u64| -> Result<Option<u64>, ApiError> {
        match q.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::bad_request(
                    code,
                    format!("{key} must be a whole number from {lo} to {hi}"),
                )),
            },
        }
    };
    let wait =
        num("waitForPickup", "pc_timeout_invalid", 1, 3600)?.unwrap_or(DEFAULT_WAIT_FOR_PICKUP);
    let duration = num("callDuration", "pc_callduration_invalid", 1, 86_400)?;
    let call = SimpleCall {
        source: source.clone(),
        destination,
        caller_id,
        wait: parse::WaitForPickup(wait),
        duration,
    };
    let id = calls::create_simple(&s.engine, &call).await?;
    let item = json!({
        "id": &*id,
        "extension": source.number,
        "link": { "self": format!("{}/uapi/phoneCalls/{}/{}/{}", s.base_url, source.user, source.number, id) },
    });
    Ok((StatusCode::ACCEPTED, Json(json!([item]))).into_response())
}
