//! The admin API (`/admin/v1/...`), one module per resource. Every route
//! here passes [`guard::admin_guard`](super::guard::admin_guard), which
//! enforces the role table and audits writes.

pub mod audit;
pub mod clock;
pub mod retention;
pub mod tenants;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use super::AppState;
use super::guard::admin_guard;

pub fn router(state: AppState) -> Router<AppState> {
    let mut r = Router::new();
    // Without --dev-clock the route does not exist at all (404).
    if state.dev_clock {
        r = r.route("/admin/v1/clock/advance", post(clock::advance));
    }
    r.route(
        "/admin/v1/tenants",
        post(tenants::create).get(tenants::list),
    )
    .route("/admin/v1/tenants/{id}", get(tenants::show))
    .route("/admin/v1/tenants/{id}/sign-dpa", post(tenants::sign_dpa))
    .route("/admin/v1/tenants/{id}/suspend", post(tenants::suspend))
    .route("/admin/v1/tenants/{id}/resume", post(tenants::resume))
    .route("/admin/v1/tenants/{id}/terminate", post(tenants::terminate))
    .route(
        "/admin/v1/tenants/{id}/destroy-key",
        post(tenants::destroy_key),
    )
    .route("/admin/v1/audit", get(audit::list))
    .route("/admin/v1/retention", get(retention::report))
    .route("/admin/v1/retention/purge", post(retention::purge))
    .route_layer(from_fn_with_state(state, admin_guard))
}
