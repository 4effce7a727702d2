//! `GET /metrics`: Prometheus text format. Platform-level figures only (no
//! tenant labels), so it needs no token; everything comes from memory.
//!
//! With several nodes on one database every figure here stays this node's
//! own, unlike the admin API's, which sum the nodes: Prometheus scrapes
//! each node and sums across them itself (`sum without (instance)`),
//! so a node adding the others' counts would count every message once per
//! node. `c24_node_info{node}` names the node (its id in the published
//! figures; `single` on SQLite), to join a scrape target to it.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::stats::PromSample;

/// `c24_node_info`'s `node` with one node (SQLite).
pub const SINGLE_NODE: &str = "single";

/// Prometheus text exposition (version 0.0.4): platform figures only.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    responses((
        status = 200,
        description = "Prometheus text format: ingest counters and latencies, tenants by status, retention and purge figures, all of this node only (c24_node_info names it). No tenant labels, so no token.",
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
    extra.push(node_info(app.store.node_id()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.stats.render_prometheus(&extra, now),
    )
}

/// `c24_node_info{node}`: this node's id among several on one database
/// (`node_id`), or [`SINGLE_NODE`].
fn node_info(node_id: Option<&str>) -> PromSample {
    PromSample::gauge(
        "c24_node_info",
        "This node (always 1): every other figure here is this node's own, to be summed over the nodes by the query.",
        1.0,
    )
    .label("node", node_id.unwrap_or(SINGLE_NODE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_info_names_the_node() {
        let one = node_info(None);
        assert_eq!((one.name.as_str(), one.value), ("c24_node_info", 1.0));
        assert_eq!(one.labels, [("node".to_string(), SINGLE_NODE.to_string())]);
        let pg = node_info(Some("4f1c"));
        assert_eq!(pg.labels, [("node".to_string(), "4f1c".to_string())]);
        let text = crate::stats::LiveStats::new(0).render_prometheus(&[pg], 0);
        assert!(
            text.contains("# TYPE c24_node_info gauge\nc24_node_info{node=\"4f1c\"} 1\n"),
            "{text}"
        );
    }
}
