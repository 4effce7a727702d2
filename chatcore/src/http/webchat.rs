//! Web chat over WebSocket: `GET /v1/webchat/ws?widget_key=KEY&visitor=ID`.
//!
//! Frames are read in order and queued to the writer in order, without
//! waiting for earlier commits, so a visitor may pipeline; acks go out in
//! the same order once each message is durable. Pushes (agent replies) are
//! interleaved as they arrive.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use c24_api::webchat::{Ack, ClientFrame, MAX_FRAME_BYTES, MsgNew, ServerFrame};
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::AppState;
use super::error::ApiError;
use super::extract::QueryParams;
use crate::crypto::{BlindKind, TenantCipher};
use crate::ingress::{self, Accounting, Direction, Incoming, Thread};
use crate::push::Push;
use crate::store::{Channel, PendingWrite, StoreError, WriteOp, WriteOutcome};
use crate::tenants::TenantEntry;

/// Frames above this size are refused at the protocol level (connection
/// closed); between [`MAX_FRAME_BYTES`] and this they get an error frame.
const HARD_FRAME_LIMIT: usize = 16 * 1024 * 1024;
const MAX_VISITOR_ID: usize = 128;
const MAX_CLIENT_MSG_ID: usize = 128;
/// Messages replayed per `resume`.
const RESUME_LIMIT: u32 = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsParams {
    /// The tenant's public widget key.
    #[param(required = true)]
    widget_key: Option<String>,
    /// The visitor's own stable id, 1 to 128 characters.
    #[param(required = true)]
    visitor: Option<String>,
}

/// Opens a visitor's web-chat socket.
///
/// After the upgrade every frame is JSON text: the widget sends
/// `ClientFrame`s (`msg.send`, `ping`, `resume`), the core answers with
/// `ServerFrame`s (`ack` once a message is durable, `msg.new` pushes,
/// `pong`, `error`); both are in the components. Frames over 64 KiB get an
/// `error` frame, over 16 MiB the socket is closed.
#[utoipa::path(
    get,
    path = "/v1/webchat/ws",
    tag = "webchat",
    operation_id = "webchatSocket",
    params(WsParams),
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket is open."),
        (status = 400, description = "`invalid_visitor`: visitor missing or over 128 characters; `websocket_required`: not a WebSocket upgrade request; `invalid_query`: the query string does not parse.", body = c24_api::ErrorBody),
        (status = 401, description = "`unauthorized`: widget_key missing or unknown.", body = c24_api::ErrorBody),
        (status = 403, description = crate::http::openapi::D_ADMIT_PERSON, body = c24_api::ErrorBody),
    ),
)]
pub async fn upgrade(
    State(app): State<AppState>,
    QueryParams(q): QueryParams<WsParams>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let key = q
        .widget_key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::unauthorized("unauthorized", "widget_key is required"))?;
    let tenant = app
        .tenants
        .by_widget_key(&key)
        .ok_or_else(|| ApiError::unauthorized("unauthorized", "unknown widget_key"))?;
    let visitor = q
        .visitor
        .filter(|v| !v.is_empty() && v.len() <= MAX_VISITOR_ID)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_visitor",
                format!("visitor is required, 1 to {MAX_VISITOR_ID} characters"),
            )
        })?;
    let cipher = tenant.admit()?;
    // A restricted visitor is refused at the handshake (and per message, below).
    app.compliance.admit(
        &tenant.id,
        &cipher.blind_index(BlindKind::VisitorId, &visitor),
    )?;
    let ws = ws.map_err(|e| ApiError::bad_request("websocket_required", e.body_text()))?;
    Ok(ws
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| session(app, tenant, visitor, socket)))
}

/// What the socket is waiting on, in send order.
enum Pending {
    Ack {
        client_msg_id: String,
        rx: PendingWrite,
        acct: Box<Accounting>,
    },
    /// An immediate answer (error, pong) that must not overtake earlier acks.
    Ready(ServerFrame),
}

async fn resolve(p: Pending) -> ServerFrame {
    match p {
        Pending::Ready(f) => f,
        Pending::Ack {
            client_msg_id,
            rx,
            acct,
        } => match rx.await {
            Ok(Ok(WriteOutcome::Message(m))) => ServerFrame::Ack({
                acct.committed(&m);
                Ack {
                    client_msg_id,
                    message_id: m.message_id,
                    conversation_id: m.conversation_id,
                    seq: m.seq,
                    server_recv_ts: m.received_at,
                    server_commit_ts: m.committed_at,
                }
            }),
            Ok(Err(e)) => error_frame(Some(client_msg_id), &ApiError::from(e)),
            Ok(Ok(_)) | Err(_) => {
                error_frame(Some(client_msg_id), &ApiError::from(StoreError::Closed))
            }
        },
    }
}

fn error_frame(client_msg_id: Option<String>, e: &ApiError) -> ServerFrame {
    ServerFrame::Error {
        client_msg_id,
        code: e.code.to_string(),
        message: e.message.clone(),
    }
}

fn to_text(frame: &ServerFrame) -> Utf8Bytes {
    match serde_json::to_string(frame) {
        Ok(s) => s.into(),
        Err(_) => {
            r#"{"type":"error","client_msg_id":null,"code":"internal","message":"encoding"}"#.into()
        }
    }
}

struct Session {
    app: AppState,
    tenant: Arc<TenantEntry>,
    visitor: String,
    socket_id: u64,
    push_tx: mpsc::Sender<Push>,
    subscribed: Vec<String>,
}

impl Session {
    /// Follows the conversation's pushes; the socket has had it up to `seen`
    /// (see [`crate::push::PushHub::subscribe`]).
    fn subscribe(&mut self, conversation_id: &str, seen: i64) {
        if !self.subscribed.iter().any(|c| c == conversation_id) {
            self.app
                .hub
                .subscribe(conversation_id, self.socket_id, &self.push_tx, seen);
            self.subscribed.push(conversation_id.to_string());
        }
    }

    fn cipher(&self) -> Result<Arc<TenantCipher>, ApiError> {
        self.tenant.admit().map_err(ApiError::from)
    }

    /// Validates and queues a visitor message; the ack follows its commit.
    async fn send(
        &self,
        client_msg_id: String,
        conversation_id: Option<String>,
        content: String,
    ) -> Pending {
        let received = std::time::Instant::now();
        let fail = |e: ApiError, id: String| Pending::Ready(error_frame(Some(id), &e));
        if client_msg_id.is_empty() || client_msg_id.len() > MAX_CLIENT_MSG_ID {
            return fail(
                ApiError::bad_request(
                    "invalid_frame",
                    format!("client_msg_id must be 1 to {MAX_CLIENT_MSG_ID} characters"),
                ),
                client_msg_id,
            );
        }
        if content.is_empty() {
            return fail(
                ApiError::bad_request("invalid_frame", "content must not be empty"),
                client_msg_id,
            );
        }
        let cipher = match self.cipher() {
            Ok(c) => c,
            Err(e) => return fail(e, client_msg_id),
        };
        let now = self.app.clock.now_ms();
        let dedupe = format!("{}\u{0}{}", self.visitor, client_msg_id);
        let sealed = ingress::seal(
            &cipher,
            Incoming {
                tenant_id: &self.tenant.id,
                channel: Channel::Webchat,
                contact_kind: BlindKind::VisitorId,
                contact_ident: &self.visitor,
                contact_name: None,
                thread: match conversation_id {
                    Some(id) => Thread::Existing(id),
                    None => Thread::New,
                },
                dedupe: Some((BlindKind::WebchatClientMsg, dedupe)),
                conversation_scoped_dedupe: true,
                body: &content,
                subject: None,
                received_at: now,
                own_message_id: None,
            },
        );
        let (op, encrypt_ns) = match sealed {
            // Restricted while the socket was open: refused, nothing stored.
            Ok(m)
                if self
                    .app
                    .compliance
                    .is_restricted(&self.tenant.id, &m.contact.ident_bi) =>
            {
                return fail(crate::compliance::restricted_error(), client_msg_id);
            }
            Ok(m) => {
                let ns = m.encrypt_ns;
                (WriteOp::Inbound(Box::new(m)), ns)
            }
            Err(e) => return fail(ApiError::from(e), client_msg_id),
        };
        let acct = Box::new(Accounting {
            app: self.app.clone(),
            tenant: self.tenant.clone(),
            channel: Channel::Webchat,
            direction: Direction::Inbound,
            bytes: content.len() as i64,
            encrypt_ns,
            received,
        });
        match self.app.store.submit(op).await {
            Ok(rx) => Pending::Ack {
                client_msg_id,
                rx,
                acct,
            },
            Err(e) => fail(ApiError::from(e), client_msg_id),
        }
    }

    /// Replays messages after `last_seq` and subscribes to the conversation.
    async fn resume(&mut self, conversation_id: String, last_seq: i64) -> Vec<ServerFrame> {
        let not_found = || {
            vec![error_frame(
                None,
                &ApiError::not_found("conversation_not_found", "no such conversation"),
            )]
        };
        let cipher = match self.cipher() {
            Ok(c) => c,
            Err(e) => return vec![error_frame(None, &e)],
        };
        let conv = match self.app.store.conversation(&conversation_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return not_found(),
            Err(e) => return vec![error_frame(None, &ApiError::from(e))],
        };
        let me = cipher.blind_index(BlindKind::VisitorId, &self.visitor);
        if conv.tenant_id != self.tenant.id || conv.contact_bi != me || conv.channel != "webchat" {
            return not_found();
        }
        self.subscribe(&conversation_id, last_seq);
        // Pushes to this socket wait while the replay is read, so none
        // repeats or overtakes it; replies committed meanwhile are pushed
        // right after (read from the store, in seq order).
        let had = self.app.hub.hold(&conversation_id, self.socket_id);
        let rows = self
            .app
            .store
            .messages(&conversation_id, last_seq, RESUME_LIMIT)
            .await;
        let replayed = rows
            .as_ref()
            .ok()
            .and_then(|r| r.last())
            .map_or(last_seq, |m| m.seq);
        self.app
            .hub
            .set_seen(&conversation_id, self.socket_id, had.max(replayed));
        let rows = match rows {
            Ok(r) => r,
            Err(e) => return vec![error_frame(None, &ApiError::from(e))],
        };
        if let Err(e) =
            crate::push::push_replies(&self.app, &self.tenant.id, &conversation_id, i64::MAX, None)
                .await
        {
            tracing::warn!(error = %e, "pushing replies after a resume failed");
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match ingress::open_body(&cipher, &self.tenant.id, &r.id, &r.body_ct) {
                Ok(content) => out.push(ServerFrame::MsgNew(MsgNew {
                    conversation_id: r.conversation_id,
                    message_id: r.id,
                    seq: r.seq,
                    direction: r.direction,
                    content,
                    created_ts: r.received_at,
                })),
                Err(e) => out.push(error_frame(None, &ApiError::from(e))),
            }
        }
        out
    }
}

async fn session(app: AppState, tenant: Arc<TenantEntry>, visitor: String, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (push_tx, mut push_rx) = mpsc::channel::<Push>(256);
    let mut shutdown = app.shutdown.clone();
    let mut s = Session {
        socket_id: app.hub.socket_id(),
        app,
        tenant,
        visitor,
        push_tx,
        subscribed: Vec::new(),
    };
    let mut pending = FuturesOrdered::new();
    loop {
        tokio::select! {
            // Replies, acks and a resume's replay go out before pushes
            // queued meanwhile (a push after a resume's replay, never before).
            biased;
            Some(frame) = pending.next(), if !pending.is_empty() => {
                match &frame {
                    ServerFrame::Ack(a) => {
                        let id = a.conversation_id.clone();
                        s.subscribe(&id, a.seq);
                    }
                    ServerFrame::Error { code, .. } => {
                        s.app.stats.record_error(Channel::Webchat, code, s.app.clock.now_ms());
                    }
                    _ => {}
                }
                if sink.send(Message::Text(to_text(&frame))).await.is_err() {
                    break;
                }
            }
            incoming = stream.next() => {
                let Some(Ok(msg)) = incoming else { break };
                match msg {
                    Message::Text(text) => {
                        for p in handle_text(&mut s, text.as_str()).await {
                            pending.push_back(resolve(p));
                        }
                    }
                    Message::Binary(_) => pending.push_back(resolve(Pending::Ready(error_frame(
                        None,
                        &ApiError::bad_request("invalid_frame", "frames are JSON text"),
                    )))),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            Some(push) = push_rx.recv() => {
                if sink.send(Message::Text(push.as_ref().into())).await.is_err() {
                    break;
                }
            }
            _ = shutdown.changed() => {
                // Acks for what was already queued still go out.
                while let Some(frame) = pending.next().await {
                    let _ = sink.send(Message::Text(to_text(&frame))).await;
                }
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
    for c in &s.subscribed {
        s.app.hub.unsubscribe(c, s.socket_id);
    }
}

async fn handle_text(s: &mut Session, text: &str) -> Vec<Pending> {
    if text.len() > MAX_FRAME_BYTES {
        return vec![Pending::Ready(error_frame(
            None,
            &ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "frame_too_large",
                format!("frames are at most {MAX_FRAME_BYTES} bytes"),
            ),
        ))];
    }
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            return vec![Pending::Ready(error_frame(
                client_msg_id_of(text),
                &ApiError::bad_request("invalid_frame", format!("malformed frame: {e}")),
            ))];
        }
    };
    match frame {
        ClientFrame::MsgSend {
            client_msg_id,
            conversation_id,
            content,
            client_ts: _,
        } => vec![s.send(client_msg_id, conversation_id, content).await],
        ClientFrame::Ping { ts } => vec![Pending::Ready(ServerFrame::Pong { ts })],
        ClientFrame::Resume {
            conversation_id,
            last_seq,
        } => s
            .resume(conversation_id, last_seq)
            .await
            .into_iter()
            .map(Pending::Ready)
            .collect(),
    }
}

/// Best effort: the client_msg_id of a frame that failed to parse.
fn client_msg_id_of(text: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("client_msg_id")?
        .as_str()
        .map(str::to_string)
}
