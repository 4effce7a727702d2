//! The admin API (`/admin/v1/...`), one module per resource. Every route
//! here passes [`guard::admin_guard`](super::guard::admin_guard), which
//! enforces the role table and audits writes.

pub mod audit;
pub mod clock;
pub mod consents;
pub mod dsr;
pub mod incidents;
pub mod live;
pub mod retention;
pub mod subprocessors;
pub mod tenants;
pub mod traffic;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use super::AppState;
use super::guard::admin_guard;

pub fn router(state: AppState) -> Router<AppState> {
    let mut r = Router::new()
        .route(
            "/admin/v1/tenants",
            post(tenants::create).get(tenants::list),
        )
        .route("/admin/v1/tenants/{id}", get(tenants::show))
        .route(
            "/admin/v1/tenants/{id}/conversations",
            get(tenants::conversations),
        )
        .route("/admin/v1/tenants/{id}/sign-dpa", post(tenants::sign_dpa))
        .route("/admin/v1/tenants/{id}/suspend", post(tenants::suspend))
        .route("/admin/v1/tenants/{id}/resume", post(tenants::resume))
        .route("/admin/v1/tenants/{id}/terminate", post(tenants::terminate))
        .route(
            "/admin/v1/tenants/{id}/destroy-key",
            post(tenants::destroy_key),
        )
        .route("/admin/v1/throughput", get(live::throughput))
        .route("/admin/v1/overview", get(live::overview))
        .route("/admin/v1/events", get(live::events))
        .route("/admin/v1/retention", get(retention::report))
        .route("/admin/v1/traffic/trace", get(traffic::trace))
        .route("/admin/v1/retention/purge", post(retention::purge))
        .route(
            "/admin/v1/subprocessors",
            get(subprocessors::list).post(subprocessors::announce),
        )
        .route(
            "/admin/v1/subprocessors/feed.json",
            get(subprocessors::feed),
        )
        .route(
            "/admin/v1/subprocessors/{id}/changes",
            post(subprocessors::change),
        )
        .route(
            "/admin/v1/subprocessors/{id}/approve",
            post(subprocessors::approve),
        )
        .route(
            "/admin/v1/subprocessors/{id}/retire",
            post(subprocessors::retire),
        )
        .route(
            "/admin/v1/subprocessors/{id}/objections",
            post(subprocessors::object),
        )
        .route("/admin/v1/audit", get(audit::list))
        .route("/admin/v1/tenants/{id}/dsr", post(dsr::file).get(dsr::list))
        .route("/admin/v1/tenants/{id}/dsr/{dsr_id}", get(dsr::show))
        .route(
            "/admin/v1/tenants/{id}/dsr/{dsr_id}/extend",
            post(dsr::extend),
        )
        .route(
            "/admin/v1/tenants/{id}/dsr/{dsr_id}/complete",
            post(dsr::complete),
        )
        .route(
            "/admin/v1/tenants/{id}/dsr/{dsr_id}/export",
            get(dsr::export),
        )
        .route(
            "/admin/v1/tenants/{id}/consents",
            post(consents::record).get(consents::list),
        )
        .route(
            "/admin/v1/tenants/{id}/consents/{consent_id}/withdraw",
            post(consents::withdraw),
        )
        .route(
            "/admin/v1/incidents",
            post(incidents::record).get(incidents::list),
        )
        .route("/admin/v1/incidents/{id}", get(incidents::show))
        .route(
            "/admin/v1/incidents/{id}/notifications",
            post(incidents::notify),
        );
    // Without --dev-clock the route does not exist at all (404).
    if state.dev_clock {
        r = r.route("/admin/v1/clock/advance", post(clock::advance));
    }
    r.route_layer(from_fn_with_state(state, admin_guard))
}
