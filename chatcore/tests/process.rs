//! The real `c24-core` binary: it prints its address, stops cleanly on
//! SIGTERM, logs JSON on request, and loses no acknowledged message when
//! killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c24_api::admin::tenants::CreateTenant;
use c24_api::client::Client;
use c24_api::client::webchat::WebchatClient;
use c24_api::webchat::{ClientFrame, ServerFrame};

const TOKEN: &str = "process-test-admin";
const WAIT: Duration = Duration::from_secs(10);

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, extra: &[&str]) -> anyhow::Result<Proc> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_c24-core"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("c24-core listening on ")
        .ok_or_else(|| anyhow::anyhow!("unexpected first line {line:?}"))?
        .to_string();
    Ok(Proc { child, url })
}

fn signal(p: &Proc, sig: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .args([sig, &p.child.id().to_string()])
        .status()?
        .success();
    anyhow::ensure!(ok, "kill {sig} failed");
    Ok(())
}

/// Polls until the process exits, up to a deadline.
fn wait_exit(p: &mut Proc, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = p.child.try_wait()? {
            return Ok(status);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "process did not exit in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ws(url: &str) -> String {
    url.replacen("http", "ws", 1)
}

#[tokio::test]
async fn prints_address_serves_probes_and_stops_on_sigterm() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut p = spawn(dir.path(), &[])?;
    assert!(p.url.starts_with("http://127.0.0.1:"));
    for probe in ["healthz", "readyz"] {
        let r = reqwest::get(format!("{}/{probe}", p.url)).await?;
        assert_eq!(r.status(), 200, "{probe}");
    }
    signal(&p, "-TERM")?;
    let status = wait_exit(&mut p, WAIT)?;
    assert!(status.success(), "exit status {status}");
    Ok(())
}

#[tokio::test]
async fn json_logs_carry_no_personal_data() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut p = spawn(dir.path(), &["--log-format", "json"])?;
    let admin = Client::new(&p.url, TOKEN)?;
    let t = admin
        .create_tenant(&CreateTenant {
            name: "Logs".into(),
            dpa_signed: true,
        })
        .await?;
    let mut v = WebchatClient::connect(
        &ws(&p.url),
        &t.channels.webchat.widget_key,
        "visitor-in-logs",
    )
    .await?;
    v.send_message("c1", None, "body-in-logs", WAIT).await?;
    v.close().await;
    signal(&p, "-TERM")?;
    wait_exit(&mut p, WAIT)?;
    let stderr = p
        .child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = 0;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        assert!(v.get("level").is_some(), "{line}");
        assert!(!line.contains("body-in-logs") && !line.contains("visitor-in-logs"));
        lines += 1;
    }
    assert!(lines > 0);
    Ok(())
}

/// Parses `v{i}-{n}` back to `n`.
fn seq_of(client_msg_id: &str) -> anyhow::Result<usize> {
    Ok(client_msg_id
        .rsplit('-')
        .next()
        .ok_or_else(|| anyhow::anyhow!("bad id"))?
        .parse()?)
}

#[tokio::test]
async fn sigkill_loses_no_acknowledged_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut p = spawn(dir.path(), &[])?;
    let admin = Client::new(&p.url, TOKEN)?;
    let t = admin
        .create_tenant(&CreateTenant {
            name: "Durable".into(),
            dpa_signed: true,
        })
        .await?;
    let key = t.channels.webchat.widget_key.clone();

    // (message_id, content) of every acknowledged message.
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..4 {
        let mut v = WebchatClient::connect(&ws(&p.url), &key, &format!("v{i}")).await?;
        let (a, _) = v
            .send_message(&format!("v{i}-0"), None, &format!("v{i} m0"), WAIT)
            .await?;
        acked.push((a.message_id, format!("v{i} m0")));
        sockets.push((v, a.conversation_id));
    }
    // Four visitors pipeline messages; the server is killed mid-stream.
    const PER_SOCKET: usize = 400;
    for (i, (v, conv)) in sockets.iter_mut().enumerate() {
        for n in 1..=PER_SOCKET {
            v.send(&ClientFrame::MsgSend {
                client_msg_id: format!("v{i}-{n}"),
                conversation_id: Some(conv.clone()),
                content: format!("v{i} m{n}"),
                client_ts: None,
            })
            .await?;
        }
    }
    let mut collected = 0;
    'outer: for (i, (v, _)) in sockets.iter_mut().enumerate() {
        for _ in 0..PER_SOCKET / 2 {
            match v.next(WAIT).await? {
                ServerFrame::Ack(a) => {
                    let n = seq_of(&a.client_msg_id)?;
                    acked.push((a.message_id, format!("v{i} m{n}")));
                    collected += 1;
                }
                other => anyhow::bail!("unexpected {other:?}"),
            }
            if collected >= 600 {
                break 'outer;
            }
        }
    }
    signal(&p, "-KILL")?;
    wait_exit(&mut p, WAIT)?;
    // Acks already on the wire count as acknowledged too.
    for (i, (v, _)) in sockets.iter_mut().enumerate() {
        while let Ok(ServerFrame::Ack(a)) = v.next(Duration::from_millis(200)).await {
            let n = seq_of(&a.client_msg_id)?;
            acked.push((a.message_id, format!("v{i} m{n}")));
        }
    }
    drop(sockets);
    assert!(acked.len() >= 600);

    let p2 = spawn(dir.path(), &[])?;
    let api = Client::new(&p2.url, &t.api_key)?;
    let mut stored = std::collections::HashMap::new();
    for c in api.conversations().await?.items {
        let mut after = None;
        loop {
            let page = api.messages(&c.id, 1000, after.as_deref()).await?;
            for m in page.items {
                stored.insert(m.id, m.content);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    for (id, content) in &acked {
        assert_eq!(
            stored.get(id),
            Some(content),
            "acknowledged message {id} lost"
        );
    }
    Ok(())
}
