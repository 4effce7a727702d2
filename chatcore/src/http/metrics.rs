//! `GET /metrics`: Prometheus text format. Platform-level figures only (no
//! tenant labels), so it needs no token; everything comes from memory.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::stats::PromSample;

/// Prometheus text exposition (version 0.0.4): platform figures only.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    responses((
        status = 200,
        description = "Prometheus text format: ingest counters and latencies, tenants by status, retention and purge figures. No tenant labels, so no token.",
        body = String,
        content_type = "text/plain",
    )),
)]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    use std::sync::atomic::Ordering::Relaxed;
    let now = app.clock.now_ms();
    let mut extra = Vec::new();
    let mut by_status = std::collections::BTreeMap::<String, f64>::new();
    for t in app.tenants.all_unordered() {
        *by_status.entry(t.state().status).or_default() += 1.0;
    }
    for status in ["active", "suspended", "terminated", "purged"] {
        extra.push(
            PromSample::gauge(
                "c24_tenants",
                "Tenants by lifecycle status.",
                by_status.get(status).copied().unwrap_or(0.0),
            )
            .label("status", status),
        );
    }
    if let Some(r) = app.purge.latest_report.lock().ok().and_then(|r| r.clone()) {
        for c in &r.categories {
            extra.push(
                PromSample::gauge(
                    "c24_retention_overdue_records",
                    "Records past their purge_after, by retention category.",
                    c.overdue as f64,
                )
                .label("category", c.category.clone()),
            );
            extra.push(
                PromSample::gauge(
                    "c24_retention_records",
                    "Records held, by retention category.",
                    c.records as f64,
                )
                .label("category", c.category.clone()),
            );
        }
    }
    extra.push(PromSample::counter(
        "c24_purge_runs_total",
        "Purge runs since start.",
        app.purge.runs.load(Relaxed) as f64,
    ));
    extra.push(PromSample::counter(
        "c24_purge_rows_deleted_total",
        "Rows deleted by purge runs since start.",
        app.purge.rows.load(Relaxed) as f64,
    ));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.stats.render_prometheus(&extra, now),
    )
}
