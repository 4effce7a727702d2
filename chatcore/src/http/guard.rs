//! The admin API's gate: one table says which role (and whether a second
//! factor) each admin route needs; one middleware enforces it and writes
//! every admin write — allowed or refused — to the audit log (and the few
//! reads marked `audit_read`, such as a data-subject export's download).

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::extract::{Principal, resolve};
use crate::access::{MfaRefusal, Role, unix_now};
use crate::store::{AuditRecord, WriteOp};

/// Header carrying the TOTP code for privileged writes.
pub const TOTP_HEADER: &str = "X-C24-TOTP";
/// Access and system logs are kept 90 days.
pub const AUDIT_RETENTION_MS: i64 = 90 * 86_400_000;

/// What one admin route requires.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    /// Least staff role allowed.
    pub role: Role,
    /// A privileged write: also needs a TOTP code.
    pub mfa: bool,
    /// A tenant's own api key may call it too (acting for that tenant).
    pub tenant_key: bool,
    /// A read that is audited like a write (it hands out decrypted
    /// personal data, or consumes something).
    pub audit_read: bool,
}

const fn r(method: &'static str, path: &'static str, role: Role, mfa: bool) -> RouteSpec {
    RouteSpec {
        method,
        path,
        role,
        mfa,
        tenant_key: false,
        audit_read: false,
    }
}

/// Every admin route. The README's table of privileged writes is this list.
pub const ADMIN_ROUTES: &[RouteSpec] = &[
    r("GET", "/admin/v1/tenants", Role::Viewer, false),
    r("POST", "/admin/v1/tenants", Role::Operator, false),
    r("GET", "/admin/v1/tenants/{id}", Role::Viewer, false),
    // Metadata only (no content, no contact): a viewer may see it.
    r(
        "GET",
        "/admin/v1/tenants/{id}/conversations",
        Role::Viewer,
        false,
    ),
    r(
        "POST",
        "/admin/v1/tenants/{id}/sign-dpa",
        Role::Operator,
        false,
    ),
    r(
        "POST",
        "/admin/v1/tenants/{id}/suspend",
        Role::Operator,
        false,
    ),
    r(
        "POST",
        "/admin/v1/tenants/{id}/resume",
        Role::Operator,
        false,
    ),
    r(
        "POST",
        "/admin/v1/tenants/{id}/terminate",
        Role::Admin,
        true,
    ),
    r(
        "POST",
        "/admin/v1/tenants/{id}/destroy-key",
        Role::Admin,
        true,
    ),
    r("GET", "/admin/v1/throughput", Role::Viewer, false),
    r("GET", "/admin/v1/overview", Role::Viewer, false),
    r("GET", "/admin/v1/events", Role::Viewer, false),
    r("GET", "/admin/v1/retention", Role::Viewer, false),
    r("POST", "/admin/v1/retention/purge", Role::Operator, true),
    // The traffic trace: no content or identifier, but every tenant's
    // traffic shape, and timing patterns are still pseudonymous data:
    // operator (not viewer), and each export is audited.
    RouteSpec {
        audit_read: true,
        ..r("GET", "/admin/v1/traffic/trace", Role::Operator, false)
    },
    r("GET", "/admin/v1/subprocessors", Role::Viewer, false),
    r("POST", "/admin/v1/subprocessors", Role::Admin, true),
    r(
        "POST",
        "/admin/v1/subprocessors/{id}/changes",
        Role::Admin,
        true,
    ),
    r(
        "POST",
        "/admin/v1/subprocessors/{id}/approve",
        Role::Admin,
        true,
    ),
    r(
        "POST",
        "/admin/v1/subprocessors/{id}/retire",
        Role::Admin,
        true,
    ),
    RouteSpec {
        tenant_key: true,
        ..r(
            "POST",
            "/admin/v1/subprocessors/{id}/objections",
            Role::Operator,
            false,
        )
    },
    RouteSpec {
        tenant_key: true,
        ..r(
            "GET",
            "/admin/v1/subprocessors/feed.json",
            Role::Viewer,
            false,
        )
    },
    r("GET", "/admin/v1/audit", Role::Viewer, false),
    // Data-subject requests: the controller (its own api key) or staff for it.
    RouteSpec {
        tenant_key: true,
        ..r("POST", "/admin/v1/tenants/{id}/dsr", Role::Operator, false)
    },
    RouteSpec {
        tenant_key: true,
        ..r("GET", "/admin/v1/tenants/{id}/dsr", Role::Viewer, false)
    },
    RouteSpec {
        tenant_key: true,
        ..r(
            "GET",
            "/admin/v1/tenants/{id}/dsr/{dsr_id}",
            Role::Viewer,
            false,
        )
    },
    RouteSpec {
        tenant_key: true,
        ..r(
            "POST",
            "/admin/v1/tenants/{id}/dsr/{dsr_id}/extend",
            Role::Operator,
            false,
        )
    },
    // Executing a request (an erasure deletes for good) is staff's, with a
    // second factor; a tenant key has none, so it may not.
    r(
        "POST",
        "/admin/v1/tenants/{id}/dsr/{dsr_id}/complete",
        Role::Operator,
        true,
    ),
    // Decrypted personal data, and the download deletes it: operator at
    // least (the handler also holds it to the role that filed the
    // request), and audited although it is a GET.
    RouteSpec {
        tenant_key: true,
        audit_read: true,
        ..r(
            "GET",
            "/admin/v1/tenants/{id}/dsr/{dsr_id}/export",
            Role::Operator,
            false,
        )
    },
    RouteSpec {
        tenant_key: true,
        ..r(
            "POST",
            "/admin/v1/tenants/{id}/consents",
            Role::Operator,
            false,
        )
    },
    RouteSpec {
        tenant_key: true,
        ..r(
            "POST",
            "/admin/v1/tenants/{id}/consents/{consent_id}/withdraw",
            Role::Operator,
            false,
        )
    },
    RouteSpec {
        tenant_key: true,
        ..r(
            "GET",
            "/admin/v1/tenants/{id}/consents",
            Role::Viewer,
            false,
        )
    },
    // Breach records: platform staff only.
    r("POST", "/admin/v1/incidents", Role::Operator, false),
    r("GET", "/admin/v1/incidents", Role::Viewer, false),
    r("GET", "/admin/v1/incidents/{id}", Role::Viewer, false),
    r(
        "POST",
        "/admin/v1/incidents/{id}/notifications",
        Role::Operator,
        false,
    ),
    r("POST", "/admin/v1/clock/advance", Role::Admin, false),
];

pub fn spec(method: &Method, path: &str) -> Option<&'static RouteSpec> {
    ADMIN_ROUTES
        .iter()
        .find(|s| s.path == path && s.method == method.as_str())
}

async fn check(
    app: &AppState,
    spec: &RouteSpec,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let who = resolve(app, headers)?;
    match &who {
        Principal::Tenant(_) if spec.tenant_key => return Ok(who),
        Principal::Tenant(_) => {
            return Err(ApiError::forbidden(
                "forbidden",
                "a tenant api key may not use this admin route",
            ));
        }
        Principal::Staff(s) if s.role < spec.role => {
            return Err(ApiError::forbidden(
                "forbidden",
                format!(
                    "this route needs the {} role; this token has {}",
                    spec.role.as_str(),
                    s.role.as_str()
                ),
            ));
        }
        Principal::Staff(s) if spec.mfa => {
            let code = headers.get(TOTP_HEADER).and_then(|v| v.to_str().ok());
            // Once across every node on the database, not only this one.
            app.access
                .check_totp_shared(app.store.as_ref(), s.idx, code, unix_now())
                .await
                .map_err(|r| match r {
                    MfaRefusal::Missing => ApiError::unauthorized(
                        "mfa_required",
                        "this privileged write needs a TOTP code in X-C24-TOTP",
                    ),
                    MfaRefusal::Invalid => ApiError::unauthorized(
                        "mfa_invalid",
                        "the TOTP code is wrong, expired or already used",
                    ),
                    MfaRefusal::NotEnrolled => ApiError::unauthorized(
                        "mfa_not_enrolled",
                        "this token has no TOTP secret enrolled; privileged writes need one",
                    ),
                    MfaRefusal::Unavailable => {
                        ApiError::unavailable("the second factor cannot be checked now; retry")
                    }
                })?;
        }
        Principal::Staff(_) => {}
    }
    Ok(who)
}

/// Enforces [`ADMIN_ROUTES`] and audits every admin write.
pub async fn admin_guard(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let Some(spec) = path.as_deref().and_then(|p| spec(req.method(), p)) else {
        return next.run(req).await;
    };
    let target = req.uri().path().to_string();
    let checked = check(&app, spec, req.headers()).await;
    let actor = match &checked {
        Ok(p) => p.actor(),
        Err(_) => match resolve(&app, req.headers()) {
            Ok(p) => p.actor(),
            Err(_) => ("anonymous".to_string(), "none"),
        },
    };
    let response = match checked {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    };
    if spec.method == "GET" && !spec.audit_read {
        return response;
    }
    let status = response.status();
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .map(|c| c.0)
        .unwrap_or("ok");
    let now = app.clock.now_ms();
    let record = AuditRecord {
        id: 0,
        at: now,
        actor: actor.0,
        role: actor.1.to_string(),
        action: format!("{} {}", spec.method, spec.path),
        target,
        status: status.as_u16(),
        outcome: code.to_string(),
        purge_after: now + AUDIT_RETENTION_MS,
    };
    // The write is answered only once its audit entry is durable.
    if let Err(e) = app.store.write(WriteOp::Audit(Box::new(record))).await {
        tracing::error!(error = %e, "audit write failed");
        return ApiError::internal("the audit log could not be written").into_response();
    }
    response
}
