//! UAPI errors: every failure answers `{"error":{"code","message"}}` with its HTTP status.
//!
//! This is the one place where a domain error gets its UAPI code and status: each code is
//! spelled once, in [`Code::as_str`], and each domain error is mapped once, in the `From`
//! impls below.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::actions::{ActionError, InputError, PbxError, StateError};

/// Every UAPI error code uapid answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    AccessDenied,
    InvalidClient,
    UnsupportedGrantType,
    InvalidRequest,
    PermissionDenied,
    UserInvalid,
    ExtensionInvalid,
    PhoneCallInvalid,
    PhoneCallViewInvalid,
    CountInvalid,
    StartIndexInvalid,
    FilterInvalid,
    SortOrderInvalid,
    FieldsInvalid,
    ResourceNotFound,
    RequestNotImplemented,
    RequestInvalid,
    ActionInvalid,
    ParkTimeoutInvalid,
    TimeoutInvalid,
    CallerIdInvalid,
    CallDurationInvalid,
    SendCallToInvalid,
    TransferFromNumberInvalid,
    TransferNumberInvalid,
    SourceInvalid,
    DestinationInvalid,
    PhoneNumberInvalid,
    StateInvalid,
    RecordingActive,
    RecordingInactive,
    FormatInvalid,
    PrivateInvalid,
    ConferenceInvalid,
    PinInvalid,
    Busy,
    OperationFailed,
    OperationUnconfirmed,
    ServiceUnavailable,
    InternalServerError,
    // Failures of the HTTP exchange itself, before any UAPI input is read.
    RequestTimeout,
    RequestTooLarge,
    UriTooLong,
    UnsupportedMediaType,
    TooManyRequests,
    HeadersTooLarge,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::AccessDenied => "access_denied",
            Code::InvalidClient => "invalid_client",
            Code::UnsupportedGrantType => "unsupported_grant_type",
            Code::InvalidRequest => "invalid_request",
            Code::PermissionDenied => "permission_denied",
            Code::UserInvalid => "user_invalid",
            Code::ExtensionInvalid => "extension_invalid",
            Code::PhoneCallInvalid => "pc_phonecall_invalid",
            Code::PhoneCallViewInvalid => "pc_phonecallview_invalid",
            Code::CountInvalid => "count_invalid",
            Code::StartIndexInvalid => "start_index_invalid",
            Code::FilterInvalid => "filter_invalid",
            Code::SortOrderInvalid => "sort_order_invalid",
            Code::FieldsInvalid => "fields_invalid",
            Code::ResourceNotFound => "resource_not_found",
            Code::RequestNotImplemented => "request_not_implemented",
            Code::RequestInvalid => "request_invalid",
            Code::ActionInvalid => "pc_action_invalid",
            Code::ParkTimeoutInvalid => "pc_parktimeout_invalid",
            Code::TimeoutInvalid => "pc_timeout_invalid",
            Code::CallerIdInvalid => "pc_callerid_invalid",
            Code::CallDurationInvalid => "pc_callduration_invalid",
            Code::SendCallToInvalid => "pc_sendcallto_invalid",
            Code::TransferFromNumberInvalid => "pc_transfer_from_number_invalid",
            Code::TransferNumberInvalid => "pc_transfer_number_invalid",
            Code::SourceInvalid => "pc_source_invalid",
            Code::DestinationInvalid => "pc_destination_invalid",
            Code::PhoneNumberInvalid => "phone_number_invalid",
            Code::StateInvalid => "pc_phonecall_state_invalid",
            Code::RecordingActive => "pc_recording_active",
            Code::RecordingInactive => "pc_recording_inactive",
            Code::FormatInvalid => "pc_format_invalid",
            Code::PrivateInvalid => "pc_private_invalid",
            Code::ConferenceInvalid => "pc_conference_invalid",
            Code::PinInvalid => "pc_pin_invalid",
            Code::Busy => "pc_phonecall_busy",
            Code::OperationFailed => "pc_operation_failed",
            Code::OperationUnconfirmed => "pc_operation_unconfirmed",
            Code::ServiceUnavailable => "service_unavailable",
            Code::InternalServerError => "internal_server_error",
            Code::RequestTimeout => "request_timeout",
            Code::RequestTooLarge => "request_too_large",
            Code::UriTooLong => "request_uri_too_long",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::TooManyRequests => "too_many_requests",
            Code::HeadersTooLarge => "request_headers_too_large",
        }
    }

    /// The code of an answer known only by its HTTP status: what axum's extractors and
    /// hyper answer on their own (a path that is not UTF-8, a body over the limit, a
    /// request head hyper cannot parse). Every such answer gets its UAPI body from here.
    pub fn for_status(status: StatusCode) -> Code {
        match status.as_u16() {
            401 => Code::AccessDenied,
            403 => Code::PermissionDenied,
            404 => Code::ResourceNotFound,
            405 | 501 => Code::RequestNotImplemented,
            408 => Code::RequestTimeout,
            413 => Code::RequestTooLarge,
            414 => Code::UriTooLong,
            415 => Code::UnsupportedMediaType,
            429 => Code::TooManyRequests,
            431 => Code::HeadersTooLarge,
            503 => Code::ServiceUnavailable,
            400..=499 => Code::RequestInvalid,
            _ => Code::InternalServerError,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    /// Seconds after which the client may try again (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The error of an HTTP status alone (see [`Code::for_status`]).
    pub fn of_status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, Code::for_status(status), message)
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    fn body(&self) -> Vec<u8> {
        let body = json!({ "error": { "code": self.code.as_str(), "message": self.message } });
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The whole HTTP/1.1 answer as bytes, closing the connection: for the places below
    /// the router (a connection over the cap, a request head hyper refused).
    pub fn to_http1(&self) -> Vec<u8> {
        let body = self.body();
        let mut out = format!(
            "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            self.status,
            body.len()
        );
        if let Some(secs) = self.retry_after {
            out.push_str(&format!("retry-after: {secs}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&body);
        out
    }

    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, Code::AccessDenied, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, Code::PermissionDenied, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Code::ResourceNotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::InternalServerError,
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> ApiError {
        let code = match &e {
            InputError::NotJson(_) | InputError::NotAnObject | InputError::Flag(_) => {
                Code::RequestInvalid
            }
            InputError::NoAction | InputError::UnknownAction(_) => Code::ActionInvalid,
            InputError::View => Code::PhoneCallViewInvalid,
            InputError::ParkTimeout => Code::ParkTimeoutInvalid,
            InputError::WaitForPickup(_) => Code::TimeoutInvalid,
            InputError::CallerId => Code::CallerIdInvalid,
            InputError::CallDuration => Code::CallDurationInvalid,
            InputError::SendCallTo(_) => Code::SendCallToInvalid,
            InputError::TransferFrom(_) => Code::TransferFromNumberInvalid,
            InputError::TransferNumber(_) => Code::TransferNumberInvalid,
            InputError::Extension(_) => Code::ExtensionInvalid,
            InputError::Source(_) => Code::SourceInvalid,
            InputError::Destination(_) => Code::DestinationInvalid,
            InputError::PhoneNumber => Code::PhoneNumberInvalid,
            InputError::Format => Code::FormatInvalid,
            InputError::Private => Code::PrivateInvalid,
            InputError::Conference(_) => Code::ConferenceInvalid,
            InputError::Pin => Code::PinInvalid,
        };
        ApiError::bad_request(code, e.to_string())
    }
}

impl From<PbxError> for ApiError {
    fn from(e: PbxError) -> ApiError {
        let (status, code) = match &e {
            PbxError::Unreachable(_) => (StatusCode::SERVICE_UNAVAILABLE, Code::ServiceUnavailable),
            PbxError::Unconfirmed(_) => (StatusCode::GATEWAY_TIMEOUT, Code::OperationUnconfirmed),
            PbxError::Refused(_) | PbxError::Changed(_) => {
                (StatusCode::CONFLICT, Code::OperationFailed)
            }
            PbxError::Failed(_) => (StatusCode::BAD_GATEWAY, Code::OperationFailed),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> ApiError {
        let message = e.to_string();
        match e {
            ActionError::Input(i) => i.into(),
            ActionError::Pbx(p) => p.into(),
            ActionError::State(s) => {
                let code = match s {
                    StateError::AlreadyRecording => Code::RecordingActive,
                    StateError::NotRecording => Code::RecordingInactive,
                    _ => Code::StateInvalid,
                };
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ActionError::NoSuchCall => ApiError::bad_request(Code::PhoneCallInvalid, message),
            ActionError::NoSuchView => ApiError::bad_request(Code::PhoneCallViewInvalid, message),
            ActionError::Busy => ApiError::new(StatusCode::CONFLICT, Code::Busy, message),
        }
    }
}
