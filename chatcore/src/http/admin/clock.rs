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
