//! The one HTTP error type: a status plus the JSON body
//! `{"error":{"code":"...","message":"..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use c24_api::ErrorBody;

use crate::crypto::CryptoError;
use crate::store::StoreError;
use crate::tenants::Refusal;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

/// The error code of a response, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(ErrorBody::new(self.code, self.message))).into_response();
        r.extensions_mut().insert(ErrorCode(self.code));
        r
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::DpaRequired => ApiError::forbidden(
                "dpa_required",
                "this tenant has no signed data processing agreement; its channels accept no personal data",
            ),
            Refusal::Suspended => {
                ApiError::forbidden("tenant_suspended", "this tenant is suspended")
            }
            Refusal::Terminated => {
                ApiError::forbidden("tenant_terminated", "this tenant's contract has ended")
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => match what {
                "conversation" => {
                    ApiError::not_found("conversation_not_found", "no such conversation")
                }
                other => ApiError::not_found("not_found", format!("{other} not found")),
            },
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::Stale(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            StoreError::Closed => ApiError::unavailable("the server is shutting down"),
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::internal("storage error")
            }
        }
    }
}

impl From<CryptoError> for ApiError {
    fn from(e: CryptoError) -> Self {
        tracing::error!(error = %e, "crypto error");
        ApiError::internal("encryption error")
    }
}
