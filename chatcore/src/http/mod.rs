//! The HTTP surface: shared state and every route, assembled in [`router`].
//!
//! One module per surface: [`webchat`] (WebSocket), [`whatsapp`] (Meta
//! webhook), [`email`] (inbound mail), [`agent`] (the tenant's agent API),
//! [`admin`] (operators), [`health`]. Bad input is answered by [`error`] and
//! [`extract`] with the JSON error body. [`openapi`] documents all of it,
//! served at `GET /admin/v1/openapi.json`.

pub mod admin;
pub mod agent;
pub mod email;
pub mod error;
pub mod extract;
pub mod guard;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod webchat;
pub mod whatsapp;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::access::AccessList;
use crate::clock::Clock;
use crate::crypto::Kek;
use crate::events::EventBus;
use crate::push::PushHub;
use crate::replay::ReplayCache;
use crate::store::Store;
use crate::tenants::TenantDirectory;
use error::ApiError;

pub struct AppInner {
    pub store: Arc<dyn Store>,
    pub tenants: Arc<TenantDirectory>,
    pub kek: Arc<Kek>,
    pub clock: Arc<dyn Clock>,
    pub hub: Arc<PushHub>,
    pub events: EventBus,
    pub stats: Arc<crate::stats::LiveStats>,
    /// Conversations active in the last 24 h, per tenant; refreshed in the background.
    pub open_conversations: std::sync::RwLock<std::collections::HashMap<String, i64>>,
    pub email_replay: ReplayCache,
    pub access: AccessList,
    pub at_rest_encryption: bool,
    pub dev_clock: bool,
    pub notice_days: u32,
    pub purge_interval: std::time::Duration,
    pub backup_dir: Option<std::path::PathBuf>,
    pub purge: crate::retention::PurgeState,
    pub registry: admin::subprocessors::RegistryState,
    /// Recent tenant-listing orders (see `admin::tenants::ListCache`).
    pub tenant_lists: admin::tenants::ListCache,
    /// Tenants by status at a directory version (see `admin::live`).
    pub tenant_counts: std::sync::Mutex<Option<(u64, c24_api::admin::overview::TenantCounts)>>,
    /// Restricted identifiers, open data-subject requests and incidents.
    pub compliance: crate::compliance::ComplianceState,
    /// Rows in the traffic trace: counted at start, then on commit and
    /// purge, so the retention report never scans the table.
    pub trace_rows: std::sync::atomic::AtomicI64,
    /// The writer records the traffic trace.
    pub traffic_trace: bool,
    /// The listener serves TLS (for absolute URLs).
    pub tls: bool,
    /// Flips to `true` when the server begins to stop; sockets close on it.
    pub shutdown: watch::Receiver<bool>,
}

/// Shared state behind `State`.
#[derive(Clone)]
pub struct AppState(pub Arc<AppInner>);

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// Every route of the chat core.
pub fn router(state: AppState) -> Router {
    let json_limit = DefaultBodyLimit::max(extract::JSON_LIMIT);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(admin::router(state.clone()))
        // Outside the admin guard: the document holds no data.
        .route("/admin/v1/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/webchat/ws", get(webchat::upgrade))
        .route(
            "/v1/whatsapp/{tenant_id}/webhook",
            get(whatsapp::verify)
                .post(whatsapp::notify)
                .layer(DefaultBodyLimit::max(whatsapp::BODY_LIMIT)),
        )
        .route(
            "/v1/email/{tenant_id}/inbound",
            post(email::inbound).layer(DefaultBodyLimit::max(c24_api::email::MAX_MESSAGE_BYTES)),
        )
        .route("/v1/conversations", get(agent::list_conversations))
        .route(
            "/v1/conversations/{id}/messages",
            get(agent::list_messages).post(agent::post_message),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_ingress_errors,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(json_limit)
        .with_state(state)
}

/// Counts refused ingress requests per channel and code, for the live figures.
async fn count_ingress_errors(
    axum::extract::State(app): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let channel = match req.uri().path() {
        p if p.starts_with("/v1/webchat/") => Some(crate::store::Channel::Webchat),
        p if p.starts_with("/v1/whatsapp/") => Some(crate::store::Channel::Whatsapp),
        p if p.starts_with("/v1/email/") => Some(crate::store::Channel::Email),
        _ => None,
    };
    let resp = next.run(req).await;
    if let (Some(ch), Some(code)) = (channel, resp.extensions().get::<error::ErrorCode>()) {
        app.stats.record_error(ch, code.0, app.clock.now_ms());
    }
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
