//! What every request passes through before its handler, and every answer after it:
//! uapid's own limits on the URI, the headers and the body (size and time), each refused
//! with a UAPI error; and the guarantee that every error carries the UAPI JSON body, also
//! those axum's extractors answer on their own (a path that is not UTF-8, say).
//!
//! hyper's own limits are set higher than these (see `server.rs`), so a request over
//! uapid's limits reaches this layer and gets a JSON answer; the few heads hyper still
//! refuses itself are rewritten to JSON in `server.rs`.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::error::ApiError;
use super::Shared;

/// The length of the request target as it came: `[scheme://authority]path[?query]`.
fn uri_len(uri: &axum::http::Uri) -> usize {
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let path = uri.path_and_query().map_or(0, |p| p.as_str().len());
    scheme + authority + path
}

pub(crate) async fn guard(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let l = &s.limits;
    let keep_alive = HeaderValue::from_str(&format!("timeout={}", l.keep_alive_secs)).ok();
    let mut resp = match checked(&s, req).await {
        Ok(req) => json_errors(next.run(req).await).await,
        Err(e) => e.into_response(),
    };
    // Tells clients how long an idle connection stays open, so that they stop using it
    // before uapid closes it.
    if let Some(v) = keep_alive {
        resp.headers_mut().insert("keep-alive", v);
    }
    resp
}

/// The request within the limits, its body read whole.
async fn checked(s: &Shared, req: Request) -> Result<Request, ApiError> {
    let l = &s.limits;
    if uri_len(req.uri()) > l.max_uri_bytes {
        return Err(ApiError::of_status(
            StatusCode::URI_TOO_LONG,
            format!("the request URI is longer than {} bytes", l.max_uri_bytes),
        ));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > l.max_header_bytes {
        return Err(ApiError::of_status(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request headers exceed {} bytes", l.max_header_bytes),
        ));
    }
    let too_large = || {
        ApiError::of_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} bytes", l.max_body_bytes),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > l.max_body_bytes as u64) {
        return Err(too_large());
    }
    if req.body().size_hint().exact() == Some(0) {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let max = l.max_body_bytes;
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::of_status(
                    StatusCode::BAD_REQUEST,
                    format!("the request body could not be read: {e}"),
                )
            })?;
            if buf.len() + chunk.len() > max {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    let timeout = std::time::Duration::from_secs(l.body_timeout_secs);
    let bytes = tokio::time::timeout(timeout, read).await.map_err(|_| {
        ApiError::of_status(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                l.body_timeout_secs
            ),
        )
    })??;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// An error answer without the UAPI body (axum's extractors answer in plain text) gets
/// one, its code from the status and its message from the text.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut fixed = ApiError::of_status(status, message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            fixed.headers_mut().insert(name, v.clone());
        }
    }
    fixed
}
