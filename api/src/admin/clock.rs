//! The dev clock (`POST /admin/v1/clock/advance`, only with `--dev-clock`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    pub seconds: i64,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ClockNow {
    /// RFC 3339.
    pub now: String,
    pub now_ms: i64,
}
