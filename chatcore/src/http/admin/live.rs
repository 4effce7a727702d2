//! Live figures from memory: `GET /admin/v1/throughput`, `GET /admin/v1/overview`,
//! and the Server-Sent Events stream `GET /admin/v1/events` (a throughput
//! tick every second plus every tenant, retention and registry change).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
pub use c24_api::admin::overview::{Overview, TenantCounts};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::QueryParams;
use crate::stats::Throughput;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThroughputParams {
    /// `60s`, `5m`, `1h`, `24h` (default `60s`).
    window: Option<String>,
    /// Only this tenant's traffic.
    tenant: Option<String>,
}

/// Live throughput over a window, per channel and direction.
#[utoipa::path(
    get,
    path = "/admin/v1/throughput",
    tag = "admin",
    operation_id = "throughput",
    params(ThroughputParams),
    responses(
        (status = 200, description = "The window's series and latencies.", body = Throughput),
        (status = 400, description = "`invalid_query`: window unparsable or outside 1s to 24h, or the query does not parse.", body = c24_api::ErrorBody),
        crate::http::openapi::TenantNotFound,
    ),
)]
pub async fn throughput(
    State(app): State<AppState>,
    QueryParams(q): QueryParams<ThroughputParams>,
) -> Result<Json<Throughput>, ApiError> {
    let window = match q.window.as_deref() {
        None => Duration::from_secs(60),
        Some(w) => c24_api::units::parse_duration(w)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("window: {e}")))?,
    };
    if window < Duration::from_secs(1) || window > Duration::from_secs(86_400) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "window must be from 1s to 24h",
        ));
    }
    if let Some(t) = &q.tenant
        && app.tenants.get(t).is_none()
    {
        return Err(ApiError::not_found("tenant_not_found", "no such tenant"));
    }
    let mut figures = app.stats.throughput(
        window.as_millis() as i64,
        q.tenant.as_deref(),
        app.clock.now_ms(),
    );
    // Several nodes on one database: the platform (or tenant) is all of them.
    crate::cluster::add_other_nodes(&app, &mut figures, q.tenant.as_deref()).await;
    Ok(Json(figures))
}

/// Tenants by status, recounted only when a tenant was created or changed
/// (the directory's version), so the overview stays cheap at 10,000 tenants.
fn tenant_counts(app: &AppState) -> TenantCounts {
    let version = app.tenants.version();
    if let Ok(c) = app.tenant_counts.lock()
        && let Some((v, counts)) = c.as_ref()
        && *v == version
    {
        return counts.clone();
    }
    let mut tenants = TenantCounts::default();
    // Unordered and without cloning states: this runs every second.
    for t in app.tenants.all_unordered() {
        t.with_state(|s| {
            tenants.total += 1;
            match s.status.as_str() {
                "active" => tenants.active += 1,
                "suspended" => tenants.suspended += 1,
                "terminated" => tenants.terminated += 1,
                _ => tenants.purged += 1,
            }
            if s.dpa_signed_at.is_none() {
                tenants.without_dpa += 1;
            }
        });
    }
    if let Ok(mut c) = app.tenant_counts.lock() {
        *c = Some((version, tenants.clone()));
    }
    tenants
}

pub async fn build_overview(app: &AppState) -> Overview {
    let now = app.clock.now_ms();
    let tenants = tenant_counts(app);
    let retention_overdue = app
        .purge
        .latest_report
        .lock()
        .ok()
        .and_then(|r| {
            r.as_ref()
                .map(|r| r.categories.iter().map(|c| c.overdue).sum())
        })
        .unwrap_or(0);
    let (registry_pending, registry_flagged, registry_awaiting_approval) = {
        let e = app.registry.entries.lock().await;
        (
            e.iter()
                .filter(|s| {
                    s.status == crate::registry::Status::Proposed || s.pending_change.is_some()
                })
                .count(),
            e.iter().filter(|s| !s.flags.is_empty()).count(),
            e.iter().filter(|s| s.awaits_approval()).count(),
        )
    };
    let dsr_overdue = app.compliance.dsr_overdue(now, |id| {
        app.tenants
            .get(id)
            .is_none_or(|t| t.with_state(|s| s.status == "terminated" || s.status == "purged"))
    });
    let mut live = app.stats.overview(now);
    // Several nodes on one database: the platform is all of them.
    crate::cluster::add_other_nodes_to_overview(app, &mut live, now).await;
    Overview {
        live,
        tenants,
        retention_overdue,
        registry_pending,
        registry_flagged,
        registry_awaiting_approval,
        dsr_overdue,
        incidents_open: Some(app.compliance.incidents_open()),
        now: crate::clock::rfc3339(now),
    }
}

/// Platform totals; also sent every second as the `throughput.tick` event.
#[utoipa::path(
    get,
    path = "/admin/v1/overview",
    tag = "admin",
    operation_id = "overview",
    responses((status = 200, description = "Platform totals.", body = Overview)),
)]
pub async fn overview(State(app): State<AppState>) -> Json<Overview> {
    Json(build_overview(&app).await)
}

/// Publishes a `throughput.tick` with the overview every second, and
/// prunes the live figures every minute.
pub async fn ticker(app: AppState) {
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        ticks += 1;
        if ticks.is_multiple_of(60) {
            // Frees pages no window can show and tenants idle for a day.
            app.stats.prune(app.clock.now_ms());
        }
        let o = build_overview(&app).await;
        let now = app.clock.now_ms();
        app.events.publish(
            "throughput.tick",
            now,
            serde_json::to_value(&o).unwrap_or_default(),
        );
    }
}

/// `GET /admin/v1/events`: `event: <kind>` / `data: {"kind","at","data"}`.
///
/// Server-Sent Events: each `data:` is one `Event` (see the components) as
/// JSON; kinds are `throughput.tick` (every second, the `Overview`),
/// `tenant.changed`, `retention.purged`, `registry.changed`,
/// `dsr.changed`, `incident.changed`, `consent.changed`, `clock.advanced`,
/// and `lagged` (`{"skipped":N}`) when the reader fell behind.
#[utoipa::path(
    get,
    path = "/admin/v1/events",
    tag = "admin",
    operation_id = "events",
    responses((status = 200, description = "An endless text/event-stream of Event objects.", body = String, content_type = "text/event-stream")),
)]
pub async fn events(
    State(app): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let mut rx = app.events.subscribe();
    let mut shutdown = app.shutdown.clone();
    let stream = async_stream(move |tx| async move {
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = shutdown.changed() => return,
            };
            let sse = match ev {
                Ok(ev) => SseEvent::default()
                    .event(ev.kind)
                    .json_data(&ev)
                    .unwrap_or_else(|_| SseEvent::default().comment("unencodable event")),
                Err(RecvError::Lagged(n)) => SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"skipped\":{n}}}")),
                Err(RecvError::Closed) => return,
            };
            if tx.send(Ok(sse)).await.is_err() {
                return;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A stream fed by a task (avoids a macro crate for one generator).
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
