//! Extractors that answer bad input with our JSON error body instead of
//! axum's plain-text rejections: size-limited bodies, strict JSON, queries,
//! and the bearer principal.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::access::Role;
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

/// A staff member, identified by a token of the access list.
#[derive(Debug, Clone)]
pub struct Staff {
    /// Index in the access list (for TOTP replay tracking).
    pub idx: usize,
    pub name: String,
    pub role: Role,
}

/// Who is calling, from `Authorization: Bearer ...`.
#[derive(Clone)]
pub enum Principal {
    /// A staff token (bootstrap admin or `--tokens-file`).
    Staff(Staff),
    /// A tenant's api key.
    Tenant(Arc<TenantEntry>),
}

impl Principal {
    /// For the audit log: who, and with which role.
    pub fn actor(&self) -> (String, &'static str) {
        match self {
            Principal::Staff(s) => (s.name.clone(), s.role.as_str()),
            Principal::Tenant(t) => (format!("tenant:{}", t.id), "tenant"),
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Resolves the caller from the request headers.
pub fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized(
            "unauthorized",
            "missing bearer token (Authorization: Bearer ...)",
        )
    })?;
    if let Some((idx, t)) = state.access.find(token) {
        return Ok(Principal::Staff(Staff {
            idx,
            name: t.name.clone(),
            role: t.role,
        }));
    }
    state
        .tenants
        .by_api_key(token)
        .map(Principal::Tenant)
        .ok_or_else(|| ApiError::unauthorized("unauthorized", "unknown or revoked token"))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The admin guard has resolved it already on admin routes.
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        resolve(state, &parts.headers)
    }
}
