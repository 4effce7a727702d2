//! Extractors that answer bad input with our JSON error body instead of
//! axum's plain-text rejections: size-limited bodies, strict JSON, queries,
//! and the bearer principal.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::tenants::TenantEntry;
use std::sync::Arc;

/// Largest JSON body on the admin and agent APIs.
pub const JSON_LIMIT: usize = 64 * 1024;

/// The raw body, up to the route's `DefaultBodyLimit`.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the body is larger than this endpoint accepts",
                    )
                } else {
                    ApiError::bad_request("bad_body", e.body_text())
                }
            })
    }
}

/// A JSON body; malformed or unknown-field input is a 400 `invalid_json`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
    }
}

/// A query string; a bad one is a 400 `invalid_query`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(q)
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request("invalid_query", e))
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(q: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?,
    )
    .map(|axum::extract::Query(v)| v)
    .map_err(|e| e.body_text())
}

/// Who is calling, from `Authorization: Bearer ...`.
#[derive(Clone)]
pub enum Principal {
    /// The bootstrap admin token.
    Admin,
    /// A tenant's api key.
    Tenant(Arc<TenantEntry>),
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "unauthorized",
                "missing bearer token (Authorization: Bearer ...)",
            )
        })?;
        if state.is_admin_token(token) {
            return Ok(Principal::Admin);
        }
        state
            .tenants
            .by_api_key(token)
            .map(Principal::Tenant)
            .ok_or_else(|| ApiError::unauthorized("unauthorized", "unknown or revoked token"))
    }
}

/// The admin principal only.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "unauthorized",
                "missing bearer token (Authorization: Bearer ...)",
            )
        })?;
        if state.is_admin_token(token) {
            Ok(AdminAuth)
        } else if state.tenants.by_api_key(token).is_some() {
            Err(ApiError::forbidden(
                "forbidden",
                "this token may not use the admin API",
            ))
        } else {
            Err(ApiError::unauthorized(
                "unauthorized",
                "unknown or revoked token",
            ))
        }
    }
}
