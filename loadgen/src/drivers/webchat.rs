//! Web chat: one WebSocket per conversation, driven with tokio-tungstenite
//! directly (the typed `WebchatClient` is for functional tests; here every
//! frame read is timestamped the moment it arrives).
//!
//! Metrics: `connect` (TCP + TLS + WebSocket handshake), `tls_handshake`
//! (the TLS part alone, `wss://` only), `ack` (msg.send → durable ack), `storage`
//! and `network` (the ack's server timestamps split its round trip),
//! `agent` (the agent API call), `push` (agent reply → msg.new on this
//! socket), `reconnect` (drop → handshake → resume).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use c24_api::webchat::{ClientFrame, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Conversation, StepFailed, agent_reply};
use crate::metrics::{Metric, micros};
use crate::scenario::{Script, Step};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An agent's message pushed to this socket, and when it was read off it.
struct Pushed {
    at: Instant,
}

/// Pushes kept waiting for an `expect`; older ones are dropped beyond this.
const MAX_PUSHES: usize = 64;

struct Session {
    ws: Socket,
    conversation_id: Option<String>,
    last_seq: i64,
    pushes: VecDeque<Pushed>,
}

/// Small per-socket buffers: tungstenite's defaults (128 KiB read buffer,
/// allocated up front) would cost 1.3 GB for 10,000 idle visitors; chat
/// frames are small, and a larger frame only makes the buffer grow.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a visitor's socket: TCP, then TLS for `wss://` (its time returned
/// apart, as metric `tls_handshake`), then the WebSocket upgrade.
async fn connect(
    conv: &Conversation,
    timeout: Duration,
) -> Result<(Socket, Option<Duration>), StepFailed> {
    let Some(t) = conv.tenant() else {
        return Err(StepFailed::new("no_tenant"));
    };
    let url = format!(
        "{}/v1/webchat/ws?widget_key={}&visitor={}",
        conv.env.ws_base, t.channels.webchat.widget_key, conv.visitor
    );
    let tls = conv.env.tls.clone();
    match tokio::time::timeout(timeout, open(url, tls)).await {
        Err(_) => Err(StepFailed::new("connect_timeout")),
        Ok(r) => r,
    }
}

async fn open(
    url: String,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Result<(Socket, Option<Duration>), StepFailed> {
    let req = url
        .as_str()
        .into_client_request()
        .map_err(|_| StepFailed::new("ws_url"))?;
    let secure = match req.uri().scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(StepFailed::new("ws_url")),
    };
    let host = req
        .uri()
        .host()
        .ok_or_else(|| StepFailed::new("ws_url"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = req
        .uri()
        .port_u16()
        .unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|_| StepFailed::new("connect"))?;
    // Chat frames are small: do not let Nagle hold them back.
    let _ = tcp.set_nodelay(true);
    let (stream, handshake) = if secure {
        let config = tls
            .or_else(crate::tls::ClientTls::system)
            .ok_or_else(|| StepFailed::new("tls_setup"))?;
        let name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|_| StepFailed::new("tls_server_name"))?;
        let began = Instant::now();
        let s = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| StepFailed::new(tls_error_kind(&e)))?;
        (MaybeTlsStream::Rustls(s), Some(began.elapsed()))
    } else {
        (MaybeTlsStream::Plain(tcp), None)
    };
    match tokio_tungstenite::client_async_with_config(req, stream, Some(socket_config())).await {
        Ok((ws, _)) => Ok((ws, handshake)),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(StepFailed::new(format!(
            "ws_handshake_{}",
            resp.status().as_u16()
        ))),
        Err(_) => Err(StepFailed::new("connect")),
    }
}

/// `tls_untrusted_certificate` when the server's certificate did not verify
/// (give `--ca-file`), else `tls_error`.
fn tls_error_kind(e: &std::io::Error) -> &'static str {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => "tls_untrusted_certificate",
        _ => "tls_error",
    }
}

/// Records the TLS part of a connect, when there was one.
fn record_tls(conv: &Conversation, step: Option<usize>, handshake: Option<Duration>) {
    if let Some(d) = handshake {
        conv.env
            .rec
            .borrow_mut()
            .value(conv.key(Metric::TlsHandshake, step), micros(d));
    }
}

impl Session {
    /// Reads the next frame, stashing agent pushes for a later `expect`.
    async fn read(&mut self, deadline: Instant) -> Result<(Instant, ServerFrame), StepFailed> {
        loop {
            let msg = tokio::time::timeout_at(deadline.into(), self.ws.next())
                .await
                .map_err(|_| StepFailed::new("timeout"))?;
            let at = Instant::now();
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let frame: ServerFrame = serde_json::from_str(t.as_str())
                        .map_err(|_| StepFailed::new("ws_bad_frame"))?;
                    if let ServerFrame::MsgNew(m) = &frame {
                        self.last_seq = self.last_seq.max(m.seq);
                        if m.direction == "outbound" {
                            if self.pushes.len() >= MAX_PUSHES {
                                self.pushes.pop_front();
                            }
                            self.pushes.push_back(Pushed { at });
                        }
                    }
                    return Ok((at, frame));
                }
                Some(Ok(Message::Close(_))) | None => return Err(StepFailed::new("ws_closed")),
                Some(Ok(_)) => continue,
                Some(Err(_)) => return Err(StepFailed::new("ws_error")),
            }
        }
    }
}

pub async fn play(conv: &mut Conversation, script: &Script) -> Result<(), StepFailed> {
    let timeout = conv.env.plan.timeout;
    let sent = conv.start_step().await;
    let (ws, handshake) = connect(conv, timeout).await?;
    let done = Instant::now();
    conv.record(Metric::Connect, None, sent, done);
    record_tls(conv, None, handshake);
    conv.step_done(done);
    let mut s = Session {
        ws,
        conversation_id: None,
        last_seq: 0,
        pushes: VecDeque::new(),
    };
    let result = steps(conv, script, &mut s).await;
    // Close without waiting for the server's close frame: the conversation is over.
    let _ = tokio::time::timeout(Duration::from_millis(200), s.ws.close(None)).await;
    result
}

async fn steps(
    conv: &mut Conversation,
    script: &Script,
    s: &mut Session,
) -> Result<(), StepFailed> {
    // When the last agent reply was due and sent, for the push that follows it.
    let mut reply: Option<(Instant, Instant)> = None;
    for (i, step) in script.steps.iter().enumerate() {
        match step {
            Step::Think(_) | Step::At(_) => conv.pace(step),
            Step::Send {
                text,
                size,
                timeout,
                ..
            } => {
                let content = conv.message(text, size.as_ref());
                conv.seq += 1;
                let client_msg_id = format!("{}-{}", conv.visitor, conv.seq);
                let frame = ClientFrame::MsgSend {
                    client_msg_id: client_msg_id.clone(),
                    conversation_id: s.conversation_id.clone(),
                    content,
                    client_ts: None,
                };
                let text = serde_json::to_string(&frame).map_err(|_| StepFailed::new("encode"))?;
                let sent = conv.start_step().await;
                s.ws.send(Message::text(text))
                    .await
                    .map_err(|_| StepFailed::new("ws_send"))?;
                let deadline = sent + *timeout;
                loop {
                    let (at, frame) = s.read(deadline).await?;
                    match frame {
                        ServerFrame::Ack(a) if a.client_msg_id == client_msg_id => {
                            conv.record(Metric::Ack, Some(i), sent, at);
                            let rtt = micros(at.saturating_duration_since(sent));
                            let storage_ms = (a.server_commit_ts - a.server_recv_ts).max(0) as u64;
                            let storage = storage_ms.saturating_mul(1000);
                            let mut rec = conv.env.rec.borrow_mut();
                            rec.value(conv.key(Metric::Storage, Some(i)), storage);
                            rec.value(
                                conv.key(Metric::Network, Some(i)),
                                rtt.saturating_sub(storage),
                            );
                            drop(rec);
                            s.last_seq = s.last_seq.max(a.seq);
                            s.conversation_id = Some(a.conversation_id);
                            conv.step_done(at);
                            break;
                        }
                        ServerFrame::Error {
                            client_msg_id: Some(id),
                            code,
                            ..
                        } if id == client_msg_id => {
                            return Err(StepFailed::new(format!("ws_{code}")));
                        }
                        _ => {}
                    }
                }
            }
            Step::AgentReply { text, timeout } => {
                let Some(cid) = s.conversation_id.clone() else {
                    return Err(StepFailed::new("no_conversation"));
                };
                let content = conv.message(text, None);
                let due = conv.due;
                let _ = conv.start_step().await;
                // Keep reading the socket while the agent call is in flight, so
                // a push that beats the HTTP answer is timestamped when it came.
                let (sent, done) = {
                    let post = agent_reply(conv, &cid, &content, *timeout);
                    tokio::pin!(post);
                    let deadline = Instant::now() + *timeout;
                    loop {
                        tokio::select! {
                            r = &mut post => break r?,
                            r = s.read(deadline) => { r?; }
                        }
                    }
                };
                conv.record(Metric::Agent, Some(i), sent, done);
                reply = Some((due, sent));
                conv.step_done(done);
            }
            Step::Expect { timeout } => {
                let Some((due, sent)) = reply.take() else {
                    return Err(StepFailed::new("expect_without_reply"));
                };
                let _ = conv.start_step().await;
                let deadline = Instant::now() + *timeout;
                let at = loop {
                    if let Some(p) = s.pushes.pop_front() {
                        break p.at;
                    }
                    s.read(deadline).await?;
                };
                // Measured from the reply's due time (corrected) and from when it left.
                conv.env
                    .rec
                    .borrow_mut()
                    .latency(conv.key(Metric::Push, Some(i)), due, sent, at);
                conv.step_done(Instant::now().max(at));
            }
            Step::Reconnect { timeout } => {
                let sent = conv.start_step().await;
                let _ = tokio::time::timeout(Duration::from_millis(200), s.ws.close(None)).await;
                let (ws, handshake) = connect(conv, *timeout).await?;
                record_tls(conv, Some(i), handshake);
                s.ws = ws;
                if let Some(cid) = &s.conversation_id {
                    let frame = ClientFrame::Resume {
                        conversation_id: cid.clone(),
                        last_seq: s.last_seq,
                    };
                    let text =
                        serde_json::to_string(&frame).map_err(|_| StepFailed::new("encode"))?;
                    s.ws.send(Message::text(text))
                        .await
                        .map_err(|_| StepFailed::new("ws_send"))?;
                }
                let done = Instant::now();
                conv.record(Metric::Reconnect, Some(i), sent, done);
                conv.step_done(done);
            }
            // Refused by validation: generic steps have their own channels.
            Step::Http(_) | Step::Ws(_) => return Err(StepFailed::new("unsupported_step")),
        }
    }
    Ok(())
}
