//! `[tenants] channels`: scripts on other channels are refused, and the
//! credentials of channels the tenants did not get are withheld from the
//! run (the core has no per-tenant channel switch; the generator is where
//! the restriction holds). Against the embedded core, with a generic `http`
//! step that reports the credentials it can see to a capturing server.

use std::sync::{Arc, Mutex};

use c24_loadgen::command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

mod support;

/// Answers 200 to anything and keeps each request's first line.
async fn request_lines() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                s.lock()
                    .unwrap()
                    .push(text.lines().next().unwrap_or_default().to_string());
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn run(src: &str) -> Result<command::Finished, command::Failure> {
    support::run_text(src, None, 1).await
}

fn scenario(channels: &str, addr: std::net::SocketAddr) -> String {
    format!(
        r#"name = "tc"
duration = "1s"
grace = "3s"
[tenants]
provision = 1
{channels}
[[scenario]]
name = "chat"
stages = [{{ rate = 2, duration = "1s" }}]
script = [{{ channel = "webchat", steps = [{{ send = "hoi" }}] }}]
[[scenario]]
name = "probe"
stages = [{{ rate = 1, duration = "1s" }}]
script = [{{ channel = "http", steps = [{{ http = "GET", url = "http://{addr}/creds?widget={{tenant.webchat.widget_key}}&wa={{tenant.whatsapp.app_secret}}&pn={{tenant.whatsapp.phone_number_id}}&mail={{tenant.email.signing_key}}" }}] }}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_get_only_the_listed_channels() {
    let (addr, seen) = request_lines().await;
    let done = run(&scenario("channels = [\"webchat\"]", addr))
        .await
        .expect("runs");
    assert_eq!(done.exit, c24_loadgen::Exit::Passed, "{}", done.summary);
    let lines = seen.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    // The web-chat key is there (and web chat worked: the run passed) ...
    assert!(!line.contains("widget=&"), "{line}");
    // ... the WhatsApp and email secrets are not.
    assert!(line.contains("&wa=&pn=&mail= HTTP/1.1"), "{line}");

    // Without the restriction every credential is handed over.
    let (addr, seen) = request_lines().await;
    let done = run(&scenario("", addr)).await.expect("runs");
    assert_eq!(done.exit, c24_loadgen::Exit::Passed, "{}", done.summary);
    let line = seen.lock().unwrap()[0].clone();
    assert!(!line.contains("wa=&") && !line.contains("mail= "), "{line}");
}

#[tokio::test]
async fn a_script_on_an_unlisted_channel_is_refused_before_anything_runs() {
    let src = r#"name = "tc"
duration = "1s"
[tenants]
provision = 1
channels = ["email"]
[[stages]]
rate = 1
duration = "1s"
[[script]]
channel = "whatsapp"
steps = [{ send = "x" }]
"#;
    let Err(e) = run(src).await else {
        panic!("must be refused")
    };
    assert_eq!(e.exit(), c24_loadgen::Exit::Invalid);
    let text = e.to_string();
    assert!(
        text.contains("s.toml:10: script[0].channel: the tenants get only email"),
        "{text}"
    );
}
