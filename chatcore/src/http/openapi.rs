//! The OpenAPI 3.1 document of the whole HTTP surface, served without a
//! token at `GET /admin/v1/openapi.json` (it describes routes, holds no data).
//!
//! Generated, never written by hand: operations come from the handlers'
//! `#[utoipa::path]` annotations, schemas from the `c24-api` wire types.
//! [`document`] then adds what the admin guard does, from the table that
//! drives it ([`ADMIN_ROUTES`]), so the two cannot drift: per admin
//! operation the bearer requirement, `x-c24-role`, `x-c24-totp`,
//! `x-c24-tenant-key`, the `X-C24-TOTP` header and the guard's own
//! 401/403/500 answers. Last, every error response gets `x-c24-error-codes`:
//! the backticked `error.code` values its description names, so a client
//! (and the e2e test) can tell which codes each status carries.
//!
//! `/admin/v1/clock/advance` is documented although it exists only with
//! `--dev-clock` (`x-c24-dev-clock-only`).

use axum::Json;
use utoipa::ToSchema;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder};

use super::guard::{ADMIN_ROUTES, RouteSpec, TOTP_HEADER};
use super::{admin, agent, email, health, metrics, webchat, whatsapp};
use crate::access::Role;

/// Title of the document.
pub const TITLE: &str = "c24 chat core";
/// Name of the bearer security scheme.
pub const BEARER: &str = "bearer";

// Shared response descriptions. Each error description names, in
// backticks, every `error.code` that status can carry (and nothing else in
// backticks): [`document`] turns them into `x-c24-error-codes`.

/// 500 of every handler that reads or writes storage.
pub const D_INTERNAL: &str = "`internal`: a storage or encryption error.";
/// 503 of every handler that writes through the group-commit writer.
pub const D_UNAVAILABLE: &str = "`unavailable`: the server is shutting down.";
/// 413 of every JSON-body route (64 KiB).
pub const D_TOO_LARGE: &str = "`payload_too_large`: the body is over 64 KiB.";
/// 401 of the agent API.
pub const D_BEARER: &str = "`unauthorized`: no bearer token, or one the core does not know.";
/// 403 of ingress for a tenant that may not receive personal data now.
pub const D_ADMIT: &str = "`dpa_required`: the tenant has no signed DPA; `tenant_suspended`; \
     `tenant_terminated` (also once its key is destroyed).";
/// 403 of ingress: [`D_ADMIT`], or a person whose processing is restricted.
pub const D_ADMIT_PERSON: &str = "`dpa_required`: the tenant has no signed DPA; \
     `tenant_suspended`; `tenant_terminated` (also once its key is destroyed); \
     `processing_restricted`: a data-subject request restricted (or objected to) processing of \
     this person's data; nothing is stored.";

// Shared error responses: a handler's `responses(...)` lists its own
// successes and errors, then the sets below that it shares with others
// (utoipa merges them by status). The variants only describe responses.

/// 500 and 503 of a handler that writes through the group-commit writer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum WriteErrors {
    #[response(status = 500, description = D_INTERNAL)]
    Internal(c24_api::ErrorBody),
    #[response(status = 503, description = D_UNAVAILABLE)]
    Unavailable(c24_api::ErrorBody),
}

/// [`WriteErrors`] of a route taking a JSON body (64 KiB) it parses strictly.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum JsonWriteErrors {
    #[response(
        status = 400,
        description = "`invalid_json`: malformed body or unknown field."
    )]
    InvalidJson(c24_api::ErrorBody),
    #[response(status = 413, description = D_TOO_LARGE)]
    TooLarge(c24_api::ErrorBody),
    #[response(status = 500, description = D_INTERNAL)]
    Internal(c24_api::ErrorBody),
    #[response(status = 503, description = D_UNAVAILABLE)]
    Unavailable(c24_api::ErrorBody),
}

/// [`WriteErrors`] of a route taking a body (64 KiB) whose 400 is its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum BodyWriteErrors {
    #[response(status = 413, description = D_TOO_LARGE)]
    TooLarge(c24_api::ErrorBody),
    #[response(status = 500, description = D_INTERNAL)]
    Internal(c24_api::ErrorBody),
    #[response(status = 503, description = D_UNAVAILABLE)]
    Unavailable(c24_api::ErrorBody),
}

/// 404 of a route under `/tenants/{id}` (or naming a tenant) whose only
/// 404 is the tenant.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum TenantNotFound {
    #[response(status = 404, description = "`tenant_not_found`: no such tenant.")]
    TenantNotFound(c24_api::ErrorBody),
}

/// 403 of a route a tenant key may call for its own tenant only.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ForeignTenantKey {
    #[response(
        status = 403,
        description = "`forbidden`: a tenant key for another tenant."
    )]
    Forbidden(c24_api::ErrorBody),
}

/// The `{id}` path parameter of the routes under `/admin/v1/tenants/{id}`
/// (documentation only: the handlers take `Path<String>`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct TenantIdPath {
    /// The tenant's id.
    id: String,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(ToSchema)]
pub struct Health {
    /// `ok` (liveness) or `ready` (readiness).
    pub status: String,
}

/// 200 answer of `GET /readyz`.
#[derive(ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// A WAL truncation owed after an erasure or a key destruction is not
    /// done yet (a reader holds an old snapshot); it is retried every 250ms
    /// and at start, and does not make the node unready.
    pub wal_truncation_pending: bool,
}

/// 200 answer to a WhatsApp notification, once every message is durable.
#[derive(ToSchema)]
pub struct WhatsAppReceipt {
    /// Messages newly stored.
    pub stored: usize,
    /// Messages already stored before (Meta retries), not stored again.
    pub duplicates: usize,
    /// Delivery statuses received (counted, not stored).
    pub statuses: usize,
    /// Where each message of the notification landed, in order (so an agent
    /// can answer in the conversation).
    pub messages: Vec<WhatsAppStored>,
}

/// One message of a WhatsApp notification, as stored.
#[derive(ToSchema)]
pub struct WhatsAppStored {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
    /// Already stored before (a Meta retry).
    pub duplicate: bool,
}

/// 201 (new) or 200 (duplicate `Message-ID`) answer to an inbound email.
#[derive(ToSchema)]
pub struct EmailReceipt {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
    /// The message was stored before; nothing was written.
    pub duplicate: bool,
}

/// `GET /admin/v1/subprocessors/feed.json`: a JSON Feed 1.1 of registry changes.
#[derive(ToSchema)]
pub struct JsonFeed {
    /// `https://jsonfeed.org/version/1.1`.
    pub version: String,
    pub title: String,
    pub description: String,
    pub home_page_url: String,
    pub feed_url: String,
    pub language: String,
    /// Newest first.
    pub items: Vec<JsonFeedItem>,
}

/// One registry event (announced, change announced, approved, effective, retired).
#[derive(ToSchema)]
pub struct JsonFeedItem {
    /// `{entry id}:{history index}`, stable.
    pub id: String,
    pub title: String,
    pub content_text: String,
    /// RFC 3339.
    pub date_published: String,
    /// The category and the event.
    pub tags: Vec<String>,
    /// Machine-readable facts, so a reader need not parse the prose.
    #[schema(rename = "_c24")]
    pub c24: JsonFeedC24,
}

/// The `_c24` extension of a feed item.
#[derive(ToSchema)]
pub struct JsonFeedC24 {
    pub subprocessor_id: String,
    pub event: String,
    pub status: c24_api::admin::subprocessors::Status,
    /// RFC 3339.
    pub effective_at: String,
    pub flags: Vec<String>,
    pub objection_count: usize,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        description = "The c24 chat core: channel ingress (web chat, WhatsApp, email), the agent \
            API and the admin API. Every error answer is `{\"error\":{\"code\",\"message\"}}` \
            (`ErrorBody`); each error response lists its codes in `x-c24-error-codes`. An \
            unknown path answers 404 `not_found`, a known path with another method 405 \
            `method_not_allowed`. Admin operations carry `x-c24-role` (least staff role), \
            `x-c24-totp` (a TOTP code in `X-C24-TOTP` is needed) and `x-c24-tenant-key` (a \
            tenant's api key may call it)."
    ),
    paths(
        health::healthz,
        health::readyz,
        metrics::metrics,
        serve,
        webchat::upgrade,
        whatsapp::verify,
        whatsapp::notify,
        email::inbound,
        agent::list_conversations,
        agent::list_messages,
        agent::post_message,
        admin::tenants::create,
        admin::tenants::list,
        admin::tenants::show,
        admin::tenants::conversations,
        admin::tenants::sign_dpa,
        admin::tenants::suspend,
        admin::tenants::resume,
        admin::tenants::terminate,
        admin::tenants::destroy_key,
        admin::live::throughput,
        admin::live::overview,
        admin::live::events,
        admin::retention::report,
        admin::retention::purge,
        admin::traffic::trace,
        admin::subprocessors::list,
        admin::subprocessors::announce,
        admin::subprocessors::feed,
        admin::subprocessors::change,
        admin::subprocessors::approve,
        admin::subprocessors::retire,
        admin::subprocessors::object,
        admin::audit::list,
        admin::clock::advance,
        admin::dsr::file,
        admin::dsr::list,
        admin::dsr::show,
        admin::dsr::extend,
        admin::dsr::complete,
        admin::dsr::export,
        admin::consents::record,
        admin::consents::withdraw,
        admin::consents::list,
        admin::incidents::record,
        admin::incidents::list,
        admin::incidents::show,
        admin::incidents::notify,
    ),
    components(schemas(
        c24_api::webchat::ClientFrame,
        c24_api::webchat::ServerFrame,
        c24_api::admin::events::Event,
    )),
    tags(
        (name = "health", description = "Probes; no token."),
        (name = "meta", description = "This document and the Prometheus metrics; no token."),
        (name = "webchat", description = "The visitor's web-chat WebSocket."),
        (name = "whatsapp", description = "WhatsApp Cloud API webhook."),
        (name = "email", description = "Inbound email, signed by the tenant's mail relay."),
        (name = "agent", description = "A tenant's agents read conversations and reply."),
        (name = "admin", description = "Operators: tenants, live figures, retention, \
            sub-processor registry, audit log, data-subject requests, breach records, \
            consent records, traffic trace."),
    )
)]
struct ApiDoc;

/// `GET /admin/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/admin/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "This document (OpenAPI 3.1).", body = Object)),
)]
pub async fn serve() -> Json<OpenApi> {
    Json(document())
}

/// The OpenAPI document of every route [`super::router`] serves.
pub fn document() -> OpenApi {
    let mut doc = <ApiDoc as utoipa::OpenApi>::openapi();
    doc.info.title = TITLE.to_string();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A staff token (bootstrap admin or --tokens-file) or a tenant's api_key.",
                    ))
                    .build(),
            ),
        );
    for spec in ADMIN_ROUTES {
        if let Some(op) = operation_mut(&mut doc, spec.method, spec.path) {
            apply_guard(op, spec);
        }
    }
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            for (status, resp) in op.responses.responses.iter_mut() {
                let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
                if let (true, RefOr::T(r)) = (is_error, resp) {
                    let codes = error_codes(&r.description);
                    r.extensions
                        .get_or_insert_with(Extensions::default)
                        .insert("x-c24-error-codes".into(), codes.into());
                }
            }
        }
    }
    doc
}

fn operation_mut<'a>(doc: &'a mut OpenApi, method: &str, path: &str) -> Option<&'a mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match method {
        "GET" => item.get.as_mut(),
        "POST" => item.post.as_mut(),
        "PUT" => item.put.as_mut(),
        "DELETE" => item.delete.as_mut(),
        "PATCH" => item.patch.as_mut(),
        _ => None,
    }
}

/// What [`super::guard::admin_guard`] adds to an admin operation.
fn apply_guard(op: &mut Operation, spec: &RouteSpec) {
    op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    let ext = op.extensions.get_or_insert_with(Extensions::default);
    ext.insert("x-c24-role".into(), spec.role.as_str().into());
    ext.insert("x-c24-totp".into(), spec.mfa.into());
    ext.insert("x-c24-tenant-key".into(), spec.tenant_key.into());

    let mut needs = format!(
        "Needs a staff token with the {} role or higher",
        spec.role.as_str()
    );
    if spec.tenant_key {
        needs.push_str(", or a tenant's own api key");
    }
    if spec.mfa {
        needs.push_str(", and a current TOTP code in `X-C24-TOTP` (a privileged write)");
    }
    needs.push('.');
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{needs}"),
        _ => needs,
    });

    if spec.mfa {
        let header: Parameter = ParameterBuilder::new()
            .name(TOTP_HEADER)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(
                "The current 6-digit TOTP code of this token's enrolled secret; each code is \
                 accepted once.",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        op.parameters.get_or_insert_with(Vec::new).push(header);
    }

    let mut unauthorized = D_BEARER.to_string();
    if spec.mfa {
        unauthorized.push_str(
            " `mfa_required`: no `X-C24-TOTP` code; `mfa_invalid`: the code is wrong, expired \
             or already used; `mfa_not_enrolled`: this token has no TOTP secret.",
        );
    }
    add_error(op, "401", &unauthorized);
    // Every staff role reaches viewer routes, and a tenant key may call
    // tenant-key routes: only then can the guard not refuse.
    if !spec.tenant_key || spec.role > Role::Viewer {
        let who = if spec.tenant_key {
            format!("a staff role below {}", spec.role.as_str())
        } else if spec.role > Role::Viewer {
            format!(
                "a tenant api key, or a staff role below {}",
                spec.role.as_str()
            )
        } else {
            "a tenant api key (staff only)".to_string()
        };
        add_error(op, "403", &format!("`forbidden`: {who}."));
    }
    if spec.method != "GET" || spec.audit_read {
        add_error(
            op,
            "500",
            "`internal`: the audit log could not be written (every admin write is audited \
             before it is answered).",
        );
    }
}

/// Adds an `ErrorBody` response, or appends to the one the handler documents.
fn add_error(op: &mut Operation, status: &str, description: &str) {
    match op.responses.responses.get_mut(status) {
        Some(RefOr::T(r)) => {
            if !r.description.contains(description) {
                r.description = format!("{} From the admin guard: {description}", r.description);
            }
        }
        _ => {
            let r: Response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            op.responses
                .responses
                .insert(status.to_string(), RefOr::T(r));
        }
    }
}

/// The backticked `snake_case` words of a description, in order, once each.
fn error_codes(description: &str) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for (i, part) in description.split('`').enumerate() {
        let code_like = !part.is_empty()
            && part.starts_with(|c: char| c.is_ascii_lowercase())
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if i % 2 == 1 && code_like && !codes.iter().any(|c| c == part) {
            codes.push(part.to_string());
        }
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_the_backticked_words() {
        assert_eq!(
            error_codes("`a_b`: x; `X-C24-TOTP` `c1`, `a_b` and `hub.mode`"),
            vec!["a_b", "c1"]
        );
    }

    #[test]
    fn every_admin_route_is_documented_with_its_guard() {
        let mut doc = document();
        for spec in ADMIN_ROUTES {
            let op = operation_mut(&mut doc, spec.method, spec.path)
                .unwrap_or_else(|| panic!("{} {} is not documented", spec.method, spec.path));
            let ext = op.extensions.as_ref().expect("extensions");
            assert_eq!(ext.get("x-c24-role"), Some(&spec.role.as_str().into()));
            assert!(op.responses.responses.contains_key("401"));
        }
    }
}
