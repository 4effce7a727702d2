//! `POST /admin/v1/clock/advance {"seconds": N}`: moves the dev clock
//! forward, so retention and deadlines can be shown in seconds. Exists only
//! with `--dev-clock`; otherwise the route answers 404.

use axum::Json;
use axum::extract::State;
use c24_api::admin::clock::{Advance, ClockNow};

use crate::clock::rfc3339;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::JsonBody;

/// Moves the dev clock forward (only with `--dev-clock`).
///
/// Exists only when the core runs with `--dev-clock`; otherwise this path
/// answers 404 `not_found` like any unknown route.
#[utoipa::path(
    post,
    path = "/admin/v1/clock/advance",
    tag = "admin",
    operation_id = "advanceClock",
    request_body = Advance,
    extensions(("x-c24-dev-clock-only" = json!(true))),
    responses(
        (status = 200, description = "The clock after the move.", body = ClockNow),
        (status = 400, description = "`invalid_json`: malformed body or unknown field; `invalid_seconds`: seconds is not positive.", body = c24_api::ErrorBody),
        (status = 404, description = "`not_found`: the core runs without --dev-clock, so the route does not exist.", body = c24_api::ErrorBody),
        (status = 413, description = crate::http::openapi::D_TOO_LARGE, body = c24_api::ErrorBody),
    ),
)]
pub async fn advance(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<Advance>,
) -> Result<Json<ClockNow>, ApiError> {
    if !app.dev_clock {
        return Err(ApiError::not_found("not_found", "no such route"));
    }
    if req.seconds <= 0 {
        return Err(ApiError::bad_request(
            "invalid_seconds",
            "seconds must be positive: the clock only moves forward",
        ));
    }
    let now = app
        .clock
        .advance(req.seconds.saturating_mul(1000))
        .ok_or_else(|| ApiError::not_found("not_found", "no such route"))?;
    app.events.publish(
        "clock.advanced",
        now,
        serde_json::json!({"seconds": req.seconds}),
    );
    Ok(Json(ClockNow {
        now: rfc3339(now),
        now_ms: now,
    }))
}
