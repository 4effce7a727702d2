//! Inbound email: raw RFC 5322 messages POSTed to the core, signed with the
//! tenant's signing key over `timestamp "." body`. Each message has its own
//! Message-ID (a signature is accepted once), replies carry `In-Reply-To` and
//! `References` so the core threads them. Metric `http`: POST → 201 (after
//! the commit); `agent` for agent replies to the thread.

use std::time::Instant;

use c24_api::email::{CONTENT_TYPE, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header};

use super::{Conversation, StepFailed, agent_reply_step, http_error_kind, unix_now, visible_step};
use crate::metrics::Metric;
use crate::scenario::{Script, Step};

/// The raw message. `references` are the earlier Message-IDs of the thread.
pub fn raw_message(
    from_name: &str,
    from_addr: &str,
    to: &str,
    subject: &str,
    message_id: &str,
    references: &[String],
    body: &str,
) -> String {
    let date = chrono::Utc::now().to_rfc2822();
    let mut m = String::with_capacity(body.len() + 512);
    m.push_str(&format!("From: {from_name} <{from_addr}>\r\n"));
    m.push_str(&format!("To: <{to}>\r\n"));
    m.push_str(&format!("Subject: {subject}\r\n"));
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!("Message-ID: <{message_id}>\r\n"));
    if let Some(last) = references.last() {
        m.push_str(&format!("In-Reply-To: <{last}>\r\n"));
        let refs: Vec<String> = references.iter().map(|r| format!("<{r}>")).collect();
        m.push_str(&format!("References: {}\r\n", refs.join(" ")));
    }
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str(body);
    m.push_str("\r\n");
    m
}

/// Keeps header values on one line.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

pub async fn play(conv: &mut Conversation, script: &Script) -> Result<(), StepFailed> {
    let Some(t) = conv.tenant().cloned() else {
        return Err(StepFailed::new("no_tenant"));
    };
    let url = format!("{}/v1/email/{}/inbound", conv.env.http_base, t.id);
    let from_addr = format!("{}@loadgen.invalid", conv.visitor);
    let from_name = format!("Visitor {}", conv.number);
    let mut thread: Vec<String> = Vec::new();
    let mut subject: Option<String> = None;
    let mut conversation_id: Option<String> = None;
    for (i, step) in script.steps.iter().enumerate() {
        match step {
            Step::Think(_) | Step::At(_) => conv.pace(step),
            Step::Send {
                text,
                size,
                subject: subj,
                timeout,
                visible,
            } => {
                conv.wait_due().await;
                let body_text = conv.message(text, size.as_ref());
                if subject.is_none() {
                    let s = match subj {
                        Some(tpl) => conv.render(tpl),
                        None => format!("Vraag {}", conv.number),
                    };
                    subject = Some(one_line(&s));
                }
                let subject_line = match (&subject, thread.is_empty()) {
                    (Some(s), true) => s.clone(),
                    (Some(s), false) => format!("Re: {s}"),
                    (None, _) => String::new(),
                };
                conv.seq += 1;
                let message_id = format!("{}.{}@loadgen.invalid", conv.visitor, conv.seq);
                let raw = raw_message(
                    &from_name,
                    &from_addr,
                    &t.channels.email.address,
                    &subject_line,
                    &message_id,
                    &thread,
                    &body_text,
                );
                thread.push(message_id);
                let ts = unix_now().to_string();
                let sig = signature_header(&t.channels.email.signing_key, &ts, raw.as_bytes());
                let req = conv
                    .env
                    .http
                    .post(&url)
                    .header("content-type", CONTENT_TYPE)
                    .header(TIMESTAMP_HEADER, ts)
                    .header(SIGNATURE_HEADER, sig)
                    .body(raw)
                    .timeout(*timeout);
                let sent = conv.start_step().await;
                let resp = req
                    .send()
                    .await
                    .map_err(|e| StepFailed::new(http_error_kind(&e)))?;
                let status = resp.status().as_u16();
                let body = resp.bytes().await.unwrap_or_default();
                let done = Instant::now();
                match status {
                    201 => {}
                    200 => return Err(StepFailed::new("duplicate")),
                    s => return Err(StepFailed::new(format!("http_{s}"))),
                }
                conv.record(Metric::Http, Some(i), sent, done);
                let answer = serde_json::from_slice::<serde_json::Value>(&body).ok();
                if conversation_id.is_none()
                    && let Some(v) = &answer
                {
                    conversation_id = v
                        .get("conversation_id")
                        .and_then(|c| c.as_str())
                        .map(str::to_string);
                }
                let done = if *visible {
                    let v = answer.unwrap_or_default();
                    visible_step(
                        conv,
                        &v["conversation_id"],
                        &v["message_id"],
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
            Step::Expect { .. } | Step::Reconnect { .. } | Step::Http(_) | Step::Ws(_) => {
                return Err(StepFailed::new("unsupported_step"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_threading_headers() {
        let refs = vec!["a@x".to_string(), "b@x".to_string()];
        let m = raw_message("V", "v@x", "t@y", "Re: Hoi", "c@x", &refs, "body");
        assert!(m.contains("In-Reply-To: <b@x>\r\n"));
        assert!(m.contains("References: <a@x> <b@x>\r\n"));
        assert!(m.contains("Message-ID: <c@x>\r\n"));
        assert!(m.ends_with("\r\n\r\nbody\r\n"));
    }
}
