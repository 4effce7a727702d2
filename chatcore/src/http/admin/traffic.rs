//! `GET /admin/v1/traffic/trace?from=&to=`: the traffic trace as JSONL, for
//! `c24-loadgen replay`. The rules (what is recorded, pseudonyms, retention)
//! live in [`crate::traffic`]; this module streams the export.
//!
//! The answer is streamed a page at a time: the next page is read only when
//! the previous one has been taken by the connection, so an export of any
//! range holds one page in memory, never the range.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use c24_api::admin::traffic::TRACE_CONTENT_TYPE;
use serde::Deserialize;

use crate::clock::Millis;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::QueryParams;
use crate::store::{TraceBatch, TraceCursor};
use crate::traffic::{self, Pseudonymizer};

/// Stored batches read per step of the stream (a batch is one group commit,
/// at most a few thousand messages).
const PAGE: u32 = 4;

/// Query of `GET /admin/v1/traffic/trace`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TraceParams {
    /// Start of the range, inclusive (RFC 3339).
    from: Option<String>,
    /// End of the range, exclusive (RFC 3339).
    to: Option<String>,
}

/// Where the stream stands.
struct Cursor {
    app: AppState,
    pseudonyms: Arc<Pseudonymizer>,
    from: Millis,
    to: Millis,
    /// A page read but not yet written.
    page: Option<Vec<TraceBatch>>,
    /// The key of the last row written.
    after: Option<TraceCursor>,
    done: bool,
}

fn unreadable(b: &TraceBatch) -> ApiError {
    ApiError::internal(format!(
        "traffic trace batch {} is not in a format this build reads",
        b.id
    ))
}

/// One page as JSON lines; an error if a batch cannot be read.
fn lines(pseudonyms: &Pseudonymizer, batches: &[TraceBatch]) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    for b in batches {
        let Some(entries) = traffic::decode_entries(&b.entries) else {
            // Never written by this build: the export would be silently
            // short, so it fails instead (replay needs all of the range).
            tracing::error!(batch = b.id, "unreadable traffic trace batch");
            return Err(unreadable(b));
        };
        out.reserve(entries.len() * 170);
        for e in &entries {
            serde_json::to_writer(&mut out, &pseudonyms.record(b.at, e))
                .map_err(|e| ApiError::internal(format!("encoding a trace record: {e}")))?;
            out.push(b'\n');
        }
    }
    Ok(Bytes::from(out))
}

/// The next chunk of the body, reading a page when the last one is written.
async fn next_chunk(mut c: Cursor) -> Option<(Result<Bytes, std::io::Error>, Cursor)> {
    if c.done {
        return None;
    }
    let rows = match c.page.take() {
        Some(rows) => rows,
        None => match c.app.store.traffic_trace(c.from, c.to, c.after, PAGE).await {
            Ok(rows) => rows,
            Err(e) => {
                // Headers are sent: the only way left to say "incomplete"
                // is to end the body with an error (the connection aborts).
                tracing::error!(error = %e, "traffic trace export failed mid-stream");
                c.done = true;
                return Some((Err(std::io::Error::other(e.to_string())), c));
            }
        },
    };
    if rows.len() < PAGE as usize {
        c.done = true;
    }
    c.after = rows.last().map(|r| (r.at, r.id));
    if rows.is_empty() {
        return None;
    }
    // As a storage error mid-stream: the body ends with an error, so the
    // client sees an incomplete export, never a short one that looks whole.
    let chunk = lines(&c.pseudonyms, &rows).map_err(|e| {
        c.done = true;
        std::io::Error::other(e.message)
    });
    Some((chunk, c))
}

/// The traffic trace of `[from, to)`, ordered by time, one JSON record per
/// line: time, tenant, channel, a pseudonymous conversation id (HMAC under
/// a key drawn for this export: stable within it, unlinkable across
/// exports), direction and body size. No content, no identifier.
#[utoipa::path(
    get,
    path = "/admin/v1/traffic/trace",
    tag = "admin",
    operation_id = "trafficTrace",
    params(TraceParams),
    responses(
        (status = 200, description = "JSON Lines (`application/x-ndjson`): one `TraceRecord` per line, ordered by `at`, streamed.", body = c24_api::admin::traffic::TraceRecord, content_type = "application/x-ndjson"),
        (status = 400, description = "`invalid_query`: from or to missing, not RFC 3339, not in order, or an unknown parameter.", body = c24_api::ErrorBody),
        (status = 500, description = crate::http::openapi::D_INTERNAL, body = c24_api::ErrorBody),
    ),
)]
pub async fn trace(
    State(app): State<AppState>,
    QueryParams(q): QueryParams<TraceParams>,
) -> Result<Response, ApiError> {
    let (from, to) = traffic::parse_range(q.from.as_deref(), q.to.as_deref())
        .map_err(|m| ApiError::bad_request("invalid_query", m))?;
    let pseudonyms = Arc::new(Pseudonymizer::new()?);
    // The first page before the headers, so a storage fault is still a
    // proper JSON 500.
    let first = app.store.traffic_trace(from, to, None, PAGE).await?;
    if let Some(b) = first
        .iter()
        .find(|b| traffic::decode_entries(&b.entries).is_none())
    {
        tracing::error!(batch = b.id, "unreadable traffic trace batch");
        return Err(unreadable(b));
    }
    let cursor = Cursor {
        app,
        pseudonyms,
        from,
        to,
        page: Some(first),
        after: None,
        done: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(cursor, next_chunk));
    Ok((
        [
            (header::CONTENT_TYPE, TRACE_CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, entries: Vec<u8>) -> TraceBatch {
        TraceBatch {
            id,
            at: 1_764_582_202_000,
            entries,
        }
    }

    #[test]
    fn an_unreadable_batch_fails_the_page_instead_of_being_skipped() {
        let p = Pseudonymizer::new().unwrap();
        let mut good = traffic::entries_start();
        traffic::push_entry(
            &mut good,
            &traffic::Entry {
                tenant_id: "0196bbbb00000000000000000000000b".into(),
                conversation_id: "0196aaaa00000000000000000000000a".into(),
                channel: c24_api::Channel::Webchat,
                direction: c24_api::admin::throughput::Direction::Inbound,
                size: 3,
            },
        );
        let ok = lines(&p, &[batch(1, good.clone())]).unwrap();
        assert_eq!(ok.iter().filter(|&&b| b == b'\n').count(), 1);
        let e = lines(&p, &[batch(1, good), batch(2, vec![9, 9])]).unwrap_err();
        assert!(e.message.contains("batch 2"), "{}", e.message);
    }
}
