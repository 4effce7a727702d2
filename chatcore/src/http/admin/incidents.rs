//! `/admin/v1/incidents`: personal-data breach records (platform staff
//! only) — record, list, read, and record each notification, which stops
//! its clock. The clocks are [`crate::incidents`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use c24_api::admin::incidents::{
    CreateIncident, Incident, IncidentList, NotifyTarget, RecordNotification,
};
use serde::Deserialize;

use crate::compliance::{add_months, invalid_field, parse_time, text_field, text_list};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{JsonBody, Principal, QueryParams};
use crate::http::page;
use crate::incidents::{IncidentDoc, NotificationDoc, RETENTION_MONTHS};
use crate::store::{IncidentRecord, StoreError, WriteOp};

const MAX_TEXT: usize = 10_000;
const MAX_ITEM: usize = 200;
const MAX_ITEMS: usize = 100;
const MAX_TENANTS: usize = 10_000;

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn not_found() -> ApiError {
    ApiError::not_found("incident_not_found", "no such incident")
}

async fn load(app: &AppState, id: &str) -> Result<IncidentDoc, ApiError> {
    Ok(load_versioned(app, id).await?.0)
}

/// The record as stored now, with its version (for [`save`]).
async fn load_versioned(app: &AppState, id: &str) -> Result<(IncidentDoc, i64), ApiError> {
    let r = app.store.incident(id).await?.ok_or_else(not_found)?;
    let d = IncidentDoc::parse(&r.doc)
        .map_err(|e| ApiError::internal(format!("a stored incident record is unreadable: {e}")))?;
    Ok((d, r.version))
}

/// Stores the record if it is still at `version` (0: a new one), else
/// `Ok(false)`: another node or request wrote it first, nothing written.
async fn save(app: &AppState, id: &str, d: &IncidentDoc, version: i64) -> Result<bool, ApiError> {
    let doc = serde_json::to_string(d)
        .map_err(|e| ApiError::internal(format!("encoding an incident: {e}")))?;
    match app
        .store
        .write(WriteOp::PutIncident(Box::new(IncidentRecord {
            id: id.to_string(),
            aware_at: d.aware_at,
            doc,
            purge_after: d.purge_after,
            version,
        })))
        .await
    {
        Ok(_) => {}
        Err(StoreError::Stale(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    app.compliance.track_incident(id, d.next_deadline());
    Ok(true)
}

fn publish(app: &AppState, id: &str, d: &IncidentDoc, change: &str, now: i64) {
    let v = d.view(id, now);
    app.events.publish(
        "incident.changed",
        now,
        serde_json::json!({"id": id, "change": change, "open": v.open, "overdue": v.overdue}),
    );
}

/// Records a personal-data breach and starts its clocks.
#[utoipa::path(
    post,
    path = "/admin/v1/incidents",
    tag = "admin",
    operation_id = "recordIncident",
    request_body = CreateIncident,
    responses(
        (status = 201, description = "Recorded, with its clocks.", body = Incident),
        (status = 422, description = "`invalid_field`: aware_at unparsable or in the future, or a text empty or too long; `unknown_tenant`: an affected tenant does not exist.", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
    ),
)]
pub async fn record(
    State(app): State<AppState>,
    who: Principal,
    JsonBody(req): JsonBody<CreateIncident>,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let now = app.clock.now_ms();
    let aware_at = match req.aware_at.as_deref() {
        None => now,
        Some(s) => {
            let at = parse_time(s)
                .ok_or_else(|| invalid_field("aware_at must be an RFC 3339 timestamp or null"))?;
            if at > now {
                return Err(invalid_field("aware_at must not be in the future"));
            }
            at
        }
    };
    let nature = text_field("nature", &req.nature, MAX_TEXT)?;
    let consequences = text_field("consequences", &req.consequences, MAX_TEXT)?;
    let measures = text_field("measures", &req.measures, MAX_TEXT)?;
    let categories = text_list("categories", &req.categories, MAX_ITEM, MAX_ITEMS, true)?;
    let affected = text_list(
        "affected_tenants",
        &req.affected_tenants,
        MAX_ITEM,
        MAX_TENANTS,
        false,
    )?;
    if let Some(unknown) = affected.iter().find(|t| app.tenants.get(t).is_none()) {
        return Err(unprocessable(
            "unknown_tenant",
            format!("affected tenant {unknown} does not exist"),
        ));
    }
    let purge_after = add_months(aware_at, RETENTION_MONTHS)
        .ok_or_else(|| invalid_field("aware_at is out of range"))?;
    let doc = IncidentDoc {
        aware_at,
        recorded_at: now,
        recorded_by: who.actor().0,
        nature,
        categories,
        records: req.records,
        subjects: req.subjects,
        affected_tenants: affected,
        consequences,
        measures,
        platform_is_controller: req.platform_is_controller,
        high_risk: req.high_risk,
        notifications: Vec::new(),
        purge_after,
    };
    let id = crate::ingress::new_id();
    // Held so that a reload for another node's change does not miss this one.
    let serial = app.compliance.lock.lock().await;
    if !save(&app, &id, &doc, 0).await? {
        return Err(ApiError::internal("a new incident's id is taken"));
    }
    drop(serial);
    tracing::warn!(incident = %id, tenants = doc.affected_tenants.len(), "personal-data breach recorded");
    publish(&app, &id, &doc, "recorded", now);
    Ok((StatusCode::CREATED, Json(doc.view(&id, now))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// Cursor from the previous page's `next`.
    cursor: Option<String>,
}

/// Breach records, newest first, each with its clocks.
#[utoipa::path(
    get,
    path = "/admin/v1/incidents",
    tag = "admin",
    operation_id = "listIncidents",
    params(ListParams),
    responses(
        (status = 200, description = "A page of incidents.", body = IncidentList),
        (status = 400, description = "`invalid_query`: bad limit or query string.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn list(
    State(app): State<AppState>,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<IncidentList>, ApiError> {
    let limit = page::limit(q.limit)?;
    let rows = app.store.incidents(limit, q.cursor).await?;
    let now = app.clock.now_ms();
    let next = page::next_cursor(&rows, limit, |r| r.id.clone());
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let d = IncidentDoc::parse(&r.doc).map_err(|e| {
            ApiError::internal(format!("a stored incident record is unreadable: {e}"))
        })?;
        items.push(d.view(&r.id, now));
    }
    Ok(Json(IncidentList { items, next }))
}

/// One breach record with its clocks.
#[utoipa::path(
    get,
    path = "/admin/v1/incidents/{id}",
    tag = "admin",
    operation_id = "getIncident",
    params(("id" = String, Path, description = "The incident's id.")),
    responses(
        (status = 200, description = "The incident.", body = Incident),
        (status = 404, description = "`incident_not_found`: no such incident.", body = c24_api::ErrorBody),
        crate::http::openapi::WriteErrors,
    ),
)]
pub async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    let d = load(&app, &id).await?;
    Ok(Json(d.view(&id, app.clock.now_ms())))
}

/// Records that a notification was sent now, stopping its clock.
#[utoipa::path(
    post,
    path = "/admin/v1/incidents/{id}/notifications",
    tag = "admin",
    operation_id = "recordIncidentNotification",
    params(("id" = String, Path, description = "The incident's id.")),
    request_body = RecordNotification,
    responses(
        (status = 201, description = "Recorded; the incident with its clocks.", body = Incident),
        (status = 404, description = "`incident_not_found`: no such incident.", body = c24_api::ErrorBody),
        (status = 409, description = "`already_notified`: this clock's notification is recorded already; `conflict`: the record was changed concurrently twice, nothing changed.", body = c24_api::ErrorBody),
        (status = 422, description = "`invalid_field`: tenant_id missing for a controller, or given for another target; `no_such_clock`: the tenant is not affected, the platform is not the controller (authority), or the risk is not high (subjects).", body = c24_api::ErrorBody),
        crate::http::openapi::JsonWriteErrors,
    ),
)]
pub async fn notify(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RecordNotification>,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    match (req.to, &req.tenant_id) {
        (NotifyTarget::Controller, None) => {
            return Err(invalid_field(
                "a controller notification names its tenant_id",
            ));
        }
        (NotifyTarget::Authority | NotifyTarget::Subjects, Some(_)) => {
            return Err(invalid_field(
                "tenant_id is for a controller notification only",
            ));
        }
        _ => {}
    }
    let _serial = crate::compliance::serial(&app).await?;
    // Read from the store, changed, written back only if still at the
    // version read; a write that lost to another node's is redone once on
    // a fresh read (both notifications then stand), a second loss is 409 `conflict`.
    let mut attempt = 1;
    let (d, now) = loop {
        let (mut d, version) = load_versioned(&app, &id).await?;
        let clock = d.clock_for(req.to, req.tenant_id.as_deref()).ok_or_else(|| {
            unprocessable(
                "no_such_clock",
                match req.to {
                    NotifyTarget::Controller => "that tenant is not affected by this incident",
                    NotifyTarget::Authority => {
                        "the platform is not the controller here: the controllers notify the authority"
                    }
                    NotifyTarget::Subjects => "the risk is not recorded as high",
                },
            )
        })?;
        if clock.notified.is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_notified",
                "this notification is recorded already",
            ));
        }
        let now = app.clock.now_ms();
        d.notifications.push(NotificationDoc {
            to: req.to,
            tenant_id: req.tenant_id.clone(),
            at: now,
            by: who.actor().0,
        });
        if save(&app, &id, &d, version).await? {
            break (d, now);
        }
        if attempt == 2 {
            return Err(StoreError::Stale("incident").into());
        }
        attempt += 1;
    };
    publish(&app, &id, &d, "notified", now);
    Ok((StatusCode::CREATED, Json(d.view(&id, now))))
}
