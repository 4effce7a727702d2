//! The generic `ws` channel: any JSON WebSocket protocol a scenario
//! describes. A step sends a frame (a template) and waits for the reply
//! whose value at a JSON pointer equals the sent frame's correlation value,
//! so send → matching-reply latency is measured without knowing the
//! protocol. Metrics `connect` (handshake, when a step opens a socket) and
//! `reply`.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Conversation, Extra, StepFailed};
use crate::metrics::Metric;
use crate::scenario::{Script, Step, WsStep};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Open {
    url: String,
    ws: Socket,
}

pub async fn play(conv: &mut Conversation, script: &Script) -> Result<(), StepFailed> {
    let mut open: Option<Open> = None;
    let result = steps(conv, script, &mut open).await;
    if let Some(mut o) = open {
        // The conversation is over: close without waiting for the peer's close.
        let _ = tokio::time::timeout(Duration::from_millis(200), o.ws.close(None)).await;
    }
    result
}

async fn steps(
    conv: &mut Conversation,
    script: &Script,
    open: &mut Option<Open>,
) -> Result<(), StepFailed> {
    for (i, step) in script.steps.iter().enumerate() {
        match step {
            Step::Think(_) | Step::At(_) => conv.pace(step),
            Step::Ws(w) => exchange(conv, w, i, open).await?,
            // Refused by validation.
            _ => return Err(StepFailed::new("unsupported_step")),
        }
    }
    Ok(())
}

async fn connect(conv: &mut Conversation, w: &WsStep, url: &str) -> Result<Socket, StepFailed> {
    let mut req = url
        .into_client_request()
        .map_err(|_| StepFailed::new("ws_bad_url"))?;
    for (name, value) in &w.headers {
        let value = conv.render(value);
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| StepFailed::new("ws_bad_header"))?;
        let value = HeaderValue::from_str(&value).map_err(|_| StepFailed::new("ws_bad_header"))?;
        req.headers_mut().insert(name, value);
    }
    match tokio::time::timeout(w.timeout, tokio_tungstenite::connect_async(req)).await {
        Err(_) => Err(StepFailed::new("connect_timeout")),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => Err(StepFailed::new(
            format!("ws_handshake_{}", resp.status().as_u16()),
        )),
        Ok(Err(_)) => Err(StepFailed::new("connect")),
    }
}

/// The value a reply must carry to match, if the step correlates.
pub fn correlation(frame: &str, pointer: &str) -> Result<Value, StepFailed> {
    let v: Value = serde_json::from_str(frame).map_err(|_| StepFailed::new("ws_frame_not_json"))?;
    v.pointer(pointer)
        .cloned()
        .ok_or_else(|| StepFailed::new("ws_no_correlation_field"))
}

/// Whether a received text frame is the reply: its value at `pointer`
/// equals `want` (frames that are not JSON never match).
pub fn matches(frame: &str, pointer: &str, want: &Value) -> bool {
    serde_json::from_str::<Value>(frame)
        .ok()
        .is_some_and(|v| v.pointer(pointer) == Some(want))
}

async fn exchange(
    conv: &mut Conversation,
    w: &WsStep,
    step: usize,
    open: &mut Option<Open>,
) -> Result<(), StepFailed> {
    let text = w.text.as_ref().map(|t| conv.message(t, w.size.as_ref()));
    let url = conv.render(&w.url);
    let frame = conv.render_with(
        &w.frame,
        &Extra {
            text: text.as_deref(),
            ..Extra::default()
        },
    );
    conv.seq += 1;
    let want = match &w.correlate {
        Some(p) => Some(correlation(&frame, p)?),
        None => None,
    };
    let reply_pointer = w.reply_correlate.as_ref().or(w.correlate.as_ref());

    if open.as_ref().is_none_or(|o| o.url != url) {
        if let Some(mut old) = open.take() {
            let _ = tokio::time::timeout(Duration::from_millis(200), old.ws.close(None)).await;
        }
        let sent = conv.start_step().await;
        let ws = connect(conv, w, &url).await?;
        let done = Instant::now();
        conv.record(Metric::Connect, Some(step), sent, done);
        conv.step_done(done);
        *open = Some(Open { url, ws });
    }
    let Some(o) = open.as_mut() else {
        return Err(StepFailed::new("ws_closed"));
    };
    let sent = conv.start_step().await;
    o.ws.send(Message::text(frame))
        .await
        .map_err(|_| StepFailed::new("ws_send"))?;
    if !w.await_reply {
        conv.step_done(Instant::now());
        return Ok(());
    }
    let deadline = sent + w.timeout;
    let at = loop {
        let msg = tokio::time::timeout_at(deadline.into(), o.ws.next())
            .await
            .map_err(|_| StepFailed::new("timeout"))?;
        let at = Instant::now();
        let body = match msg {
            Some(Ok(Message::Text(t))) => t.as_str().to_string(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Close(_))) | None => return Err(StepFailed::new("ws_closed")),
            Some(Ok(_)) => continue,
            Some(Err(_)) => return Err(StepFailed::new("ws_error")),
        };
        match (&want, reply_pointer) {
            (Some(want), Some(p)) => {
                if matches(&body, p, want) {
                    break at;
                }
            }
            // No correlation: the next frame is the reply.
            _ => break at,
        }
    };
    conv.record(Metric::Reply, Some(step), sent, at);
    conv.step_done(at);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_match_on_the_pointer_value() {
        let want = correlation(r#"{"type":"say","id":"a-1","text":"hi"}"#, "/id").unwrap();
        assert!(matches(
            r#"{"type":"echo","re":{"id":"a-1"}}"#,
            "/re/id",
            &want
        ));
        assert!(!matches(r#"{"re":{"id":"a-2"}}"#, "/re/id", &want));
        assert!(!matches("not json", "/re/id", &want));
        assert_eq!(
            correlation(r#"{"x":1}"#, "/id").unwrap_err().kind,
            "ws_no_correlation_field"
        );
    }
}
