//! A visitor's web-chat client over WebSocket (`GET /v1/webchat/ws`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::ClientError;
use crate::ErrorBody;
use crate::webchat::{Ack, ClientFrame, ServerFrame};

fn ws_err(e: impl std::fmt::Display) -> ClientError {
    ClientError::WebSocket {
        status: None,
        code: None,
        message: e.to_string(),
    }
}

/// One visitor socket.
pub struct WebchatClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WebchatClient {
    /// `ws_base` is e.g. `ws://127.0.0.1:8080`. A refused handshake gives
    /// `ClientError::WebSocket` with the HTTP status and the error code.
    pub async fn connect(
        ws_base: &str,
        widget_key: &str,
        visitor: &str,
    ) -> Result<Self, ClientError> {
        let url = format!(
            "{}/v1/webchat/ws?widget_key={}&visitor={}",
            ws_base.trim_end_matches('/'),
            widget_key,
            visitor
        );
        let req = url.into_client_request().map_err(ws_err)?;
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Self { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp.body().as_deref().unwrap_or_default();
                let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
                Err(ClientError::WebSocket {
                    status: Some(status),
                    code: parsed.as_ref().map(|b| b.error.code.clone()),
                    message: parsed
                        .map(|b| b.error.message)
                        .unwrap_or_else(|| format!("handshake refused with {status}")),
                })
            }
            Err(e) => Err(ws_err(e)),
        }
    }

    /// Sends a typed frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        let text = serde_json::to_string(frame).map_err(ws_err)?;
        self.send_text(text).await
    }

    /// Sends raw text (for malformed-input tests).
    pub async fn send_text(&mut self, text: String) -> Result<(), ClientError> {
        self.ws.send(Message::text(text)).await.map_err(ws_err)
    }

    /// The next server frame, waiting at most `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<ServerFrame, ClientError> {
        loop {
            let msg = tokio::time::timeout(timeout, self.ws.next())
                .await
                .map_err(|_| ClientError::Timeout("a server frame"))?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).map_err(ws_err);
                }
                Some(Ok(Message::Close(_))) | None => return Err(ws_err("connection closed")),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ws_err(e)),
            }
        }
    }

    /// Sends one message and waits for its ack (pushes that arrive first are returned too).
    pub async fn send_message(
        &mut self,
        client_msg_id: &str,
        conversation_id: Option<&str>,
        content: &str,
        timeout: Duration,
    ) -> Result<(Ack, Vec<ServerFrame>), ClientError> {
        self.send(&ClientFrame::MsgSend {
            client_msg_id: client_msg_id.to_string(),
            conversation_id: conversation_id.map(str::to_string),
            content: content.to_string(),
            client_ts: None,
        })
        .await?;
        let mut other = Vec::new();
        loop {
            match self.next(timeout).await? {
                ServerFrame::Ack(a) if a.client_msg_id == client_msg_id => return Ok((a, other)),
                ServerFrame::Error {
                    client_msg_id: Some(id),
                    code,
                    message,
                } if id == client_msg_id => {
                    return Err(ClientError::WebSocket {
                        status: None,
                        code: Some(code),
                        message,
                    });
                }
                f => other.push(f),
            }
        }
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
