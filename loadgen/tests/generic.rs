//! Generic channels (`http` and `ws` steps) against servers that are not a
//! c24 core: the built-in sink, a small JSON echo WebSocket server written
//! here, and a capturing TCP server that shows the built-in WhatsApp driver
//! and an equivalent generic `http` step send byte-identical requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use c24_loadgen::command;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::{count, run_scenario as run};

/// The built-in sink on this runtime, answering 200 to everything.
async fn start_sink() -> std::net::SocketAddr {
    let listener = c24_loadgen::sink::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(c24_loadgen::sink::serve(listener, None));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_steps_drive_the_sink() {
    let addr = start_sink().await;
    let src = r#"name = "gh"
duration = "1s"
grace = "3s"
[[stages]]
rate = 5
duration = "1s"
[[script]]
channel = "http"
steps = [
  { http = "POST", url = "{target}/hook/{n}", headers = { "content-type" = "application/json", "x-seq" = "{seq}" }, text = "hoi {visitor}", size = "300B", body = '{{"t":"{text|json}","at":{timestamp}}}', sign = { secret = "s3cret", over = "{timestamp}.{body}", header = "x-signature", encoding = "base64" } },
  { think = "10ms" },
  { http = "GET", url = "{target}/status?v={visitor}" },
]
[thresholds]
"http.http.count" = "== 10"
"errors.count" = "== 0"
"#;
    let (exit, r) = run(src, Some(format!("http://{addr}"))).await;
    assert_eq!(exit, c24_loadgen::Exit::Passed, "{r:#?}");
    let s = &r.scenarios[0];
    assert_eq!((s.started, s.completed, s.failed), (5, 5, 0), "{s:?}");
    assert_eq!(count(&r, "http", "http"), 10);
    // Both steps keep their own histograms, and every sample has a latency.
    let steps: Vec<_> = r
        .latency
        .iter()
        .filter(|e| e.channel == "http")
        .map(|e| (e.step, e.step_kind.clone(), e.count))
        .collect();
    assert_eq!(
        steps,
        vec![
            (Some(0), Some("http".into()), 5),
            (Some(2), Some("http".into()), 5)
        ]
    );
    assert!(r.latency.iter().all(|e| e.corrected.max > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_step_status_mismatch_counts_as_an_error() {
    let addr = start_sink().await;
    // The sink answers 200; this step wants 201.
    let src = r#"name = "gh"
duration = "1s"
grace = "3s"
[[stages]]
rate = 3
duration = "1s"
[[script]]
channel = "http"
steps = [{ http = "POST", url = "{target}/x", body = "b", status = 201 }]
"#;
    let (_, r) = run(src, Some(format!("http://{addr}"))).await;
    assert_eq!(r.scenarios[0].failed, 3);
    assert_eq!(count(&r, "http", "http"), 0);
    let kinds: Vec<_> = r
        .errors
        .iter()
        .map(|e| (e.kind.as_str(), e.count))
        .collect();
    assert_eq!(kinds, vec![("http_200", 3)]);
}

/// Frames and connections the echo server saw.
#[derive(Default)]
struct EchoStats {
    connections: AtomicU64,
    frames: AtomicU64,
}

/// A JSON echo server: for every frame `{"id": X, ...}` it first sends an
/// unrelated frame, then `{"type":"echo","re":{"id":X},"len":N}`.
async fn echo_server() -> (std::net::SocketAddr, Arc<EchoStats>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(EchoStats::default());
    let st = stats.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let st = st.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(t) = msg else { continue };
                    st.frames.fetch_add(1, Ordering::SeqCst);
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    let noise =
                        serde_json::json!({ "type": "typing", "re": { "id": "someone-else" } });
                    let reply = serde_json::json!({ "type": "echo", "re": { "id": v["id"] }, "len": t.len() });
                    if ws.send(Message::text(noise.to_string())).await.is_err()
                        || ws.send(Message::text(reply.to_string())).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_steps_measure_send_to_matching_reply() {
    let (addr, stats) = echo_server().await;
    let src = format!(
        r#"name = "gw"
duration = "1s"
grace = "3s"
[[stages]]
rate = 4
duration = "1s"
[[script]]
channel = "ws"
steps = [
  {{ ws = '{{{{"type":"say","id":"{{visitor}}-{{seq}}","text":"{{text|json}}"}}}}', url = "ws://{addr}/chat?u={{visitor}}", text = "hallo \"{{n}}\"", size = "200B", correlate = "/id", reply_correlate = "/re/id" }},
  {{ think = "5ms" }},
  {{ ws = '{{{{"type":"say","id":"{{uuid}}"}}}}', url = "ws://{addr}/chat?u={{visitor}}", correlate = "/id", reply_correlate = "/re/id" }},
  {{ ws = '{{{{"type":"say","id":"{{uuid}}"}}}}', url = "ws://{addr}/chat?u={{visitor}}", correlate = "/id", reply_correlate = "/re/id" }},
]
[thresholds]
"ws.reply.count" = "== 12"
"#
    );
    let (exit, r) = run(&src, None).await;
    assert_eq!(exit, c24_loadgen::Exit::Passed, "{r:#?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // One socket per conversation (the URL stays the same), three exchanges each.
    assert_eq!(count(&r, "ws", "connect"), 4);
    assert_eq!(count(&r, "ws", "reply"), 12);
    assert_eq!(stats.connections.load(Ordering::SeqCst), 4);
    assert_eq!(stats.frames.load(Ordering::SeqCst), 12);
    // No core was needed: the scenario names its own URLs.
    assert!(r.server.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_replies_that_do_not_match_time_out() {
    let (addr, stats) = echo_server().await;
    // The echo carries the id at /re/id, never at /id: no reply matches.
    let src = format!(
        r#"name = "gw"
duration = "1s"
grace = "3s"
[[stages]]
rate = 2
duration = "1s"
[[script]]
channel = "ws"
steps = [{{ ws = '{{{{"id":"{{uuid}}"}}}}', url = "ws://{addr}/", correlate = "/id", timeout = "300ms" }}]
"#
    );
    let (_, r) = run(&src, None).await;
    assert_eq!(count(&r, "ws", "reply"), 0);
    assert_eq!(stats.frames.load(Ordering::SeqCst), 2);
    let kinds: Vec<_> = r
        .errors
        .iter()
        .map(|e| (e.kind.as_str(), e.count))
        .collect();
    assert_eq!(kinds, vec![("timeout", 2)]);
}

/// A raw HTTP/1.1 server that answers `/healthz` and records every other
/// request exactly as it arrived on the socket.
async fn capturing_server() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Read one request: head, then content-length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 4096];
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request: Vec<u8> = buf.drain(..head_end + len).collect();
                    let body = if head.starts_with("get /healthz") {
                        r#"{"status":"ok"}"#
                    } else {
                        s.lock().unwrap().push(request);
                        r#"{"messages":[{"conversation_id":"c1"}]}"#
                    };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if tcp.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

const TENANT: &str = r#"[{"id":"t_capture","name":"capture","dpa_signed":true,"api_key":"k","channels":{"webchat":{"widget_key":"w"},"whatsapp":{"phone_number_id":"1065403522","app_secret":"app-secret-1","verify_token":"v"},"email":{"address":"in@capture.invalid","signing_key":"sk"}},"status":"active","created_at":"2026-12-01T00:00:00Z"}]"#;

/// Runs the real binary against `addr` with the clock frozen.
async fn run_binary(dir: &std::path::Path, name: &str, src: &str, addr: std::net::SocketAddr) {
    let file = dir.join(name);
    std::fs::write(&file, src).unwrap();
    let mut cmd = support::bin();
    cmd.args(["run", "--live", "quiet", "--threads", "1", "--target"])
        .arg(format!("http://{addr}"))
        .arg(&file)
        .env(c24_loadgen::drivers::FROZEN_CLOCK_ENV, "1764579600");
    let out = support::output_blocking(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_whatsapp_and_generic_http_send_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tenants.json"), TENANT).unwrap();
    let head = r#"duration = "1s"
grace = "3s"
[tenants]
credentials = "tenants.json"
[[stages]]
rate = 2
duration = "1s"
"#;
    let builtin = format!(
        r#"name = "wa"
{head}
[[script]]
channel = "whatsapp"
steps = [{{ send = "Hallo \"{{n}}\" — bestelling", size = "120B" }}, {{ send = "tweede {{seq}}" }}]
"#
    );
    let body = r#"{{"object":"whatsapp_business_account","entry":[{{"id":"0","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":null,"phone_number_id":"{tenant.whatsapp.phone_number_id}"}},"contacts":[{{"profile":{{"name":"Visitor {n}"}},"wa_id":"{phone}"}}],"messages":[{{"id":"wamid.{visitor}-{seq}","from":"{phone}","timestamp":"{timestamp}","type":"text","text":{{"body":"{text|json}"}},"context":null}}],"statuses":[]}}}}]}}]}}"#;
    let step = |text: &str, size: &str| {
        format!(
            r#"{{ http = "POST", url = "{{target}}/v1/whatsapp/{{tenant.id}}/webhook", text = "{text}"{size}, headers = {{ "content-type" = "application/json" }}, body = '{body}', sign = {{ secret = "{{tenant.whatsapp.app_secret}}", over = "{{body}}", header = "X-Hub-Signature-256", encoding = "hex", prefix = "sha256=" }}, status = 200 }}"#
        )
    };
    let generic = format!(
        r#"name = "wa"
{head}
[[script]]
channel = "http"
steps = [{}, {}]
"#,
        step(r#"Hallo \"{n}\" — bestelling"#, r#", size = "120B""#),
        step("tweede {seq}", "")
    );

    // One server for both runs, so even the Host line is the same.
    let (addr, seen) = capturing_server().await;
    run_binary(dir.path(), "builtin.toml", &builtin, addr).await;
    let mut a = std::mem::take(&mut *seen.lock().unwrap());
    run_binary(dir.path(), "generic.toml", &generic, addr).await;
    let mut b = std::mem::take(&mut *seen.lock().unwrap());
    // Two conversations run concurrently: compare in a stable order.
    a.sort();
    b.sort();
    assert_eq!(a.len(), 4, "two conversations × two messages");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            String::from_utf8_lossy(x),
            String::from_utf8_lossy(y),
            "the requests differ"
        );
    }
    assert_eq!(a, b);
    let first = String::from_utf8_lossy(&a[0]).to_string();
    assert!(
        first.starts_with("POST /v1/whatsapp/t_capture/webhook HTTP/1.1\r\n"),
        "{first}"
    );
    assert!(first.contains("x-hub-signature-256: sha256="), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_generic_scenario_is_accepted_by_a_real_core() {
    // Meta's and the c24 email signing schemes written as generic steps:
    // the embedded core verifies both signatures and stores every message.
    let req = support::quiet_request(support::repo_file("scenarios/generic-http.toml"), None, 2);
    let done = command::run(&req).await.expect("the run completes");
    let r = &done.report;
    assert_eq!(done.exit, c24_loadgen::Exit::Passed, "{}", done.summary);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let started: u64 = r.scenarios.iter().map(|s| s.started).sum();
    assert_eq!(count(r, "http", "http"), started);
    let stored = |ch: &str| {
        r.server
            .as_ref()
            .and_then(|s| s.per_channel.iter().find(|c| c.channel == ch))
            .map(|c| c.messages)
            .unwrap_or(0)
    };
    let meta = r
        .scenarios
        .iter()
        .find(|s| s.name == "meta")
        .unwrap()
        .started;
    let mail = r
        .scenarios
        .iter()
        .find(|s| s.name == "mail")
        .unwrap()
        .started;
    assert_eq!(stored("whatsapp"), meta);
    assert_eq!(stored("email"), mail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_is_stamped_when_it_is_sent_not_when_the_last_step_ended() {
    // The second request is due 2.5 s after the first ended; its
    // `{timestamp}` (and so its signature) must be from then, or a replayed
    // message minutes after the last would arrive with an expired signature.
    let (addr, seen) = capturing_server().await;
    let src = r#"name = "stamp"
duration = "1s"
grace = "5s"
[[stages]]
rate = 1
duration = "1s"
[[script]]
channel = "http"
steps = [
  { http = "POST", url = "{target}/a", headers = { "x-ts" = "{timestamp}" }, body = "a" },
  { think = "2500ms" },
  { http = "POST", url = "{target}/b", headers = { "x-ts" = "{timestamp}" }, body = "b" },
]
"#;
    let (exit, r) = run(src, Some(format!("http://{addr}"))).await;
    assert_eq!(exit, c24_loadgen::Exit::Passed, "{r:#?}");
    let stamps: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|req| {
            String::from_utf8_lossy(req)
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("x-ts:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
        })
        .collect();
    assert_eq!(stamps.len(), 2, "{stamps:?}");
    assert!(
        stamps[1] >= stamps[0] + 2,
        "second stamped too early: {stamps:?}"
    );
}
