//! WhatsApp: Meta's webhook notifications, one text message each, signed
//! with the tenant's app secret (`X-Hub-Signature-256`). Metric `http`:
//! POST → 200, which the core sends only after the commit. The answer names
//! the conversation, so `agent_reply` answers in it (metric `agent`).

use std::time::Instant;

use c24_api::whatsapp::{Notification, SIGNATURE_HEADER, signature_header};

use super::{Conversation, StepFailed, agent_reply_step, http_error_kind, unix_now, visible_step};
use crate::metrics::Metric;
use crate::scenario::{Script, Step};

pub async fn play(conv: &mut Conversation, script: &Script) -> Result<(), StepFailed> {
    let Some(t) = conv.tenant().cloned() else {
        return Err(StepFailed::new("no_tenant"));
    };
    let url = format!("{}/v1/whatsapp/{}/webhook", conv.env.http_base, t.id);
    let from = conv.phone();
    let name = format!("Visitor {}", conv.number);
    let mut conversation_id: Option<String> = None;
    for (i, step) in script.steps.iter().enumerate() {
        match step {
            Step::Think(_) | Step::At(_) => conv.pace(step),
            Step::Send {
                text,
                size,
                timeout,
                visible,
                ..
            } => {
                conv.wait_due().await;
                let body_text = conv.message(text, size.as_ref());
                conv.seq += 1;
                let wamid = format!("wamid.{}-{}", conv.visitor, conv.seq);
                let n = Notification::text_message(
                    &t.channels.whatsapp.phone_number_id,
                    &from,
                    &name,
                    &wamid,
                    unix_now(),
                    &body_text,
                );
                let body = serde_json::to_vec(&n).map_err(|_| StepFailed::new("encode"))?;
                let sig = signature_header(&t.channels.whatsapp.app_secret, &body);
                let req = conv
                    .env
                    .http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header(SIGNATURE_HEADER, sig)
                    .body(body)
                    .timeout(*timeout);
                let sent = conv.start_step().await;
                let resp = req
                    .send()
                    .await
                    .map_err(|e| StepFailed::new(http_error_kind(&e)))?;
                let status = resp.status().as_u16();
                let body = resp.bytes().await.unwrap_or_default();
                let done = Instant::now();
                if status != 200 {
                    return Err(StepFailed::new(format!("http_{status}")));
                }
                conv.record(Metric::Http, Some(i), sent, done);
                let answer = serde_json::from_slice::<serde_json::Value>(&body).ok();
                if conversation_id.is_none()
                    && let Some(v) = &answer
                {
                    conversation_id = v["messages"][0]["conversation_id"]
                        .as_str()
                        .map(str::to_string);
                }
                let done = if *visible {
                    let v = answer.unwrap_or_default();
                    let m = &v["messages"][0];
                    visible_step(
                        conv,
                        &m["conversation_id"],
                        &m["message_id"],
                        sent,
                        *timeout,
                        i,
                    )
                    .await?
                } else {
                    done
                };
                conv.step_done(done);
            }
            Step::AgentReply { text, timeout } => {
                agent_reply_step(conv, conversation_id.as_deref(), text, *timeout, i).await?;
            }
            // Refused by validation: WhatsApp replies go to Meta, not to a
            // socket this generator could read.
            Step::Expect { .. } | Step::Reconnect { .. } | Step::Http(_) | Step::Ws(_) => {
                return Err(StepFailed::new("unsupported_step"));
            }
        }
    }
    Ok(())
}
