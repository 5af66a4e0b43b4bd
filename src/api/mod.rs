//! The HTTP face of uapid (axum): OAuth tokens, the PhoneCalls resource, health.

pub(crate) mod actions;
pub(crate) mod auth;
pub(crate) mod error;
pub(crate) mod guard;
pub mod list;
pub(crate) mod target;
pub(crate) mod throttle;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::actions::Actions;
use crate::calls::Calls;
use crate::config::{Account, Directory, Limits};
use auth::Tokens;
use error::{ApiError, Code};
use throttle::{Asker, Throttle};

/// What every handler shares.
pub(crate) struct AppState {
    pub directory: Arc<Directory>,
    pub calls: Calls,
    pub tokens: Tokens,
    pub throttle: Throttle,
    pub limits: Limits,
    pub base_url: String,
    pub actions: Arc<Actions>,
}

pub(crate) type Shared = Arc<AppState>;

/// The router. Every path is also served with a trailing slash, under `/uapi/phoneCalls`,
/// the singular `/uapi/phoneCall` some examples use, and the older `/unifiedapi/phoneCalls`.
pub(crate) fn router(state: Shared) -> Router {
    let mut r = Router::new()
        .route("/oauth/token.php", post(token))
        .route("/health", get(health));
    for prefix in [
        "/uapi/phoneCalls",
        "/uapi/phoneCall",
        "/unifiedapi/phoneCalls",
    ] {
        for slash in ["", "/"] {
            r = r
                .route(
                    &format!("{prefix}/{{user}}/{{ext}}{slash}"),
                    get(list_calls)
                        .put(actions::update_calls)
                        .delete(actions::delete_calls),
                )
                .route(
                    &format!("{prefix}/{{user}}/{{ext}}/{{call}}{slash}"),
                    get(list_call)
                        .put(actions::update_call)
                        .delete(actions::delete_call),
                )
                .route(
                    &format!("{prefix}/{{user}}/simple{slash}"),
                    post(actions::create_simple),
                )
                .route(
                    &format!("{prefix}/{{user}}/callback{slash}"),
                    post(actions::create_callback),
                )
                .route(
                    &format!("{prefix}/{{user}}/conferenceInvite{slash}"),
                    post(actions::create_conference_invite),
                );
        }
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

async fn not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::RequestNotImplemented,
        "this method is not available on this resource",
    )
}

#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl TokenRequest {
    /// The request's fields: form-encoded as OAuth has them (also with no content type),
    /// or a JSON object.
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, ApiError> {
        let ctype = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let bad = |e: &dyn std::fmt::Display| {
            ApiError::bad_request(Code::InvalidRequest, format!("the token request: {e}"))
        };
        match ctype.as_deref() {
            None | Some("application/x-www-form-urlencoded") => {
                serde_urlencoded::from_bytes(body).map_err(|e| bad(&e))
            }
            Some("application/json") => serde_json::from_slice(body).map_err(|e| bad(&e)),
            Some(other) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::UnsupportedMediaType,
                format!(
                    "a token request is form-encoded (application/x-www-form-urlencoded), not {other}"
                ),
            )),
        }
    }
}

/// The address a request came from, when the server gave it (not in-process tests).
pub(crate) struct Peer(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Peer(addr.map(|c| c.0.ip())))
    }
}

async fn token(
    State(s): State<Shared>,
    Peer(addr): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = TokenRequest::parse(&headers, &body)?;
    match req.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                Code::UnsupportedGrantType,
                format!("grant_type {other:?} is not supported; use client_credentials"),
            ))
        }
        None => {
            return Err(ApiError::bad_request(
                Code::InvalidRequest,
                "grant_type is required",
            ))
        }
    }
    if let Some(kind) = req.kind.as_deref() {
        if kind != "unifiedapi" {
            return Err(ApiError::bad_request(
                Code::InvalidRequest,
                "type must be unifiedapi",
            ));
        }
    }
    let (Some(id), Some(secret)) = (req.client_id.as_deref(), req.client_secret.as_deref()) else {
        return Err(ApiError::bad_request(
            Code::InvalidRequest,
            "client_id and client_secret are required",
        ));
    };
    let who = Asker {
        known_client: s.tokens.knows(id).then_some(id),
        addr,
    };
    let now = Instant::now();
    // A throttled app or address is refused even with the right secret.
    if let Err(wait) = s.throttle.check(who, now) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::TooManyRequests,
            format!("too many failed token requests; try again in {wait} s"),
        )
        .retry_after(wait));
    }
    let issued = match s.tokens.issue(id, secret, auth::unix_now()) {
        Ok(issued) => issued,
        Err(why) => {
            s.throttle.failed(who, why, now);
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::InvalidClient,
                "unknown client or wrong secret",
            ));
        }
    };
    Ok(Json(json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    }))
    .into_response())
}

/// 200 when both links to Asterisk are up (each answers its keepalives), else 503 with
/// what is wrong in `problems`.
async fn health(State(s): State<Shared>) -> Response {
    let t = s.calls.read();
    let problems: Vec<String> = [("ARI", &t.ari_down), ("AMI", &t.ami_down)]
        .into_iter()
        .filter_map(|(link, why)| why.as_ref().map(|w| format!("{link}: {w}")))
        .collect();
    let body = json!({
        "ari": t.ari_up,
        "ami": t.ami_up,
        "calls": t.call_count(),
        // Calls are grouped by linkedid: from ARI's channelvars, or from AMI.
        "linkedid": !t.linkedid_missing || t.ami_up,
        "problems": problems,
    });
    let status = if t.ari_up && t.ami_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn list_calls(
    State(s): State<Shared>,
    Path((user, ext)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    do_list(&s, &user, &ext, None, &q, &headers)
}

async fn list_call(
    State(s): State<Shared>,
    Path((user, ext, call)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    do_list(&s, &user, &ext, Some(&call), &q, &headers)
}

/// The account of a request: its token, from the header or `accessRequestToken`.
pub(crate) fn authenticate(
    s: &AppState,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Account, ApiError> {
    s.tokens
        .authenticate(headers, q.get("accessRequestToken").map(String::as_str))
}

/// What every PhoneCalls request starts with: who asks, which calls `{userId}/{extension}`
/// name for them, and the `phoneCallId`, checked.
pub(crate) fn addressed<'c>(
    s: &AppState,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    user: &str,
    ext: &str,
    call: Option<&'c str>,
) -> Result<(Account, target::Target, Option<&'c str>), ApiError> {
    let account = authenticate(s, headers, q)?;
    let target = target::resolve(&s.directory, account, user, ext)?;
    let call = call.map(target::parse_phone_call_id).transpose()?;
    Ok((account, target, call))
}

fn do_list(
    s: &AppState,
    user: &str,
    ext: &str,
    call: Option<&str>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (_, target, call) = addressed(s, headers, q, user, ext, call)?;
    let query = list::ListQuery::parse(q)?;
    let path = match call {
        Some(c) => format!("/uapi/phoneCalls/{user}/{ext}/{c}"),
        None => format!("/uapi/phoneCalls/{user}/{ext}"),
    };
    let body = {
        let t = s.calls.read();
        let page = list::list(&t, &target.scope, call, &query, &s.base_url, &path);
        serde_json::to_vec(&page).map_err(|e| ApiError::internal(e.to_string()))?
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests;
