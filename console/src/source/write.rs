//! The `--write` actions: one request each, run as a task so the UI never
//! waits; the outcome comes back as [`SourceMsg::Outcome`].

use c24_api::admin::subprocessors::Status;
use c24_api::client::{Client, ClientError};
use tokio::sync::mpsc;

use super::SourceMsg;
use crate::action::WriteAction;
use crate::store::Outcome;

/// Runs `action` (with `totp` where the API requires one) and reports.
pub fn spawn(
    client: Client,
    action: WriteAction,
    totp: Option<String>,
    tx: mpsc::UnboundedSender<SourceMsg>,
) {
    tokio::spawn(async move {
        let outcome = perform(&client, &action, totp.as_deref()).await;
        let _ = tx.send(SourceMsg::Outcome(outcome));
    });
}

pub async fn perform(client: &Client, action: &WriteAction, totp: Option<&str>) -> Outcome {
    let totp = totp.unwrap_or("");
    let result: Result<String, ClientError> = match action {
        WriteAction::Suspend { id, label } => client
            .suspend(id)
            .await
            .map(|t| format!("{label} is now {}", t.status)),
        WriteAction::Resume { id, label } => client
            .resume(id)
            .await
            .map(|t| format!("{label} is now {}", t.status)),
        WriteAction::Terminate { id, label } => client.terminate(id, totp).await.map(|t| {
            format!(
                "{label} terminated; data due for deletion {}",
                t.purge_after
                    .as_deref()
                    .map(crate::format::date_time_str)
                    .unwrap_or_else(|| "(no date)".into())
            )
        }),
        WriteAction::Purge => client.purge(totp).await.map(|r| {
            format!(
                "purge run: {} rows deleted, {} keys destroyed in {} ms",
                r.rows_deleted,
                r.keys_destroyed.len(),
                r.duration_ms
            )
        }),
        WriteAction::ApproveSubprocessor {
            id,
            label,
            announced_at,
        } => client
            .approve_reviewed_subprocessor(id, announced_at, totp)
            .await
            .map(|sp| {
                let when = sp
                    .pending_change
                    .as_ref()
                    .map(|c| c.effective_at.as_str())
                    .or((sp.status == Status::Proposed).then_some(sp.effective_at.as_str()));
                match when {
                    Some(at) => format!(
                        "{label} approved; takes effect {}",
                        crate::format::date_time_str(at)
                    ),
                    None => format!(
                        "{label} approved and now in effect ({})",
                        sp.status.as_str()
                    ),
                }
            }),
    };
    match result {
        Ok(text) => Outcome { ok: true, text },
        Err(e) => Outcome {
            ok: false,
            text: format!("{} failed: {}", action.verb(), explain(&e)),
        },
    }
}

/// What an error means to the person at the keyboard.
fn explain(e: &ClientError) -> String {
    match e.code() {
        Some("mfa_invalid") => "the TOTP code was wrong or already used".into(),
        Some("mfa_required") => "this action needs a TOTP code".into(),
        Some("mfa_not_enrolled") => "this token has no TOTP secret enrolled".into(),
        Some("forbidden") => "this token's role may not do that".into(),
        Some("nothing_to_approve") => "nothing waits for approval there any more".into(),
        _ => match e {
            ClientError::Api {
                status,
                code,
                message,
            } => format!("{status} {code}: {message}"),
            other => super::describe(other),
        },
    }
}
