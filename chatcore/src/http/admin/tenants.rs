//! `/admin/v1/tenants`: create, list and read tenants.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use c24_api::admin::tenants::{
    ChannelCredentials, ChannelsPublic, CreateTenant, EmailCredentials, EmailPublic, Tenant,
    TenantCreated, TenantList, WebchatCredentials, WhatsAppCredentials, WhatsAppPublic,
};

use crate::clock::rfc3339;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{AdminAuth, JsonBody};
use crate::store::WriteOp;
use crate::tenants::{self, TenantEntry};

const MAX_NAME: usize = 200;

pub fn view(t: &TenantEntry) -> Tenant {
    let s = t.state();
    Tenant {
        id: t.id.clone(),
        name: t.name.clone(),
        dpa_signed: s.dpa_signed_at.is_some(),
        dpa_signed_at: s.dpa_signed_at.map(rfc3339),
        status: s.status,
        created_at: rfc3339(t.created_at),
        channels: ChannelsPublic {
            webchat: true,
            whatsapp: WhatsAppPublic {
                phone_number_id: t.phone_number_id.clone(),
            },
            email: EmailPublic {
                address: t.email_address.clone(),
            },
        },
    }
}

/// `POST /admin/v1/tenants`: 201 with the credentials, shown this once.
pub async fn create(
    State(app): State<AppState>,
    _admin: AdminAuth,
    JsonBody(req): JsonBody<CreateTenant>,
) -> Result<(StatusCode, Json<TenantCreated>), ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME} characters"),
        ));
    }
    let now = app.clock.now_ms();
    let (record, entry, creds) = tenants::issue(
        &app.kek,
        name,
        req.dpa_signed.then_some(now),
        now,
        app.at_rest_encryption,
    )?;
    let (api_hash, widget_hash) = (record.api_key_hash.clone(), record.widget_key_hash.clone());
    app.store
        .write(WriteOp::CreateTenant(Box::new(record)))
        .await?;
    let created = TenantCreated {
        id: entry.id.clone(),
        name: entry.name.clone(),
        dpa_signed: req.dpa_signed,
        api_key: creds.api_key,
        channels: ChannelCredentials {
            webchat: WebchatCredentials {
                widget_key: creds.widget_key,
            },
            whatsapp: WhatsAppCredentials {
                phone_number_id: entry.phone_number_id.clone(),
                app_secret: entry.secrets.app_secret.clone(),
                verify_token: entry.secrets.verify_token.clone(),
            },
            email: EmailCredentials {
                address: entry.email_address.clone(),
                signing_key: entry.secrets.signing_key.clone(),
            },
        },
        status: entry.state().status,
        created_at: rfc3339(entry.created_at),
    };
    tracing::info!(tenant = %entry.id, "tenant created");
    app.tenants.insert(entry, api_hash, widget_hash);
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /admin/v1/tenants`.
pub async fn list(State(app): State<AppState>, _admin: AdminAuth) -> Json<TenantList> {
    Json(TenantList {
        items: app.tenants.all().iter().map(|t| view(t)).collect(),
        next: None,
    })
}

/// `GET /admin/v1/tenants/{id}`.
pub async fn show(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    app.tenants
        .get(&id)
        .map(|t| Json(view(&t)))
        .ok_or_else(|| ApiError::not_found("tenant_not_found", "no such tenant"))
}
