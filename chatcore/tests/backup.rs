//! `c24-core backup` while the server runs, and `c24-core restore`: a
//! restored backup reads back, except for a tenant whose key was destroyed
//! after the backup was taken.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c24_api::admin::tenants::CreateTenant;
use c24_api::client::Client;
use c24_api::client::webchat::WebchatClient;

const TOKEN: &str = "backup-test-admin";
const TOTP: &str = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ";
const WAIT: Duration = Duration::from_secs(10);

struct Proc(Child, String);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn core(dir: &Path) -> anyhow::Result<Proc> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_c24-core"))
        .args(["--listen", "127.0.0.1:0", "--admin-token", TOKEN])
        .args(["--admin-totp-secret", TOTP, "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("stdout"))?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("c24-core listening on ")
        .ok_or_else(|| anyhow::anyhow!("unexpected {line:?}"))?
        .to_string();
    Ok(Proc(child, url))
}

fn stop(mut p: Proc) -> anyhow::Result<()> {
    let pid = p.0.id().to_string();
    anyhow::ensure!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()?
            .success()
    );
    let deadline = Instant::now() + WAIT;
    while p.0.try_wait()?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn cli(args: &[&str], dir: &Path) -> anyhow::Result<(bool, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_c24-core"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

fn files_containing(dir: &Path, needle: &[u8]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_file()
            && std::fs::read(&p)?
                .windows(needle.len())
                .any(|w| w == needle)
        {
            hits.push(p);
        }
    }
    Ok(hits)
}

#[tokio::test]
async fn restored_backup_cannot_decrypt_a_tenant_shredded_since() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let backups = tempfile::tempdir()?;
    let p = core(dir.path())?;
    let admin = Client::new(&p.1, TOKEN)?;
    let ws = p.1.replacen("http", "ws", 1);
    let mut convs = Vec::new();
    let mut tenants = Vec::new();
    for name in ["Leaving", "Staying"] {
        let t = admin
            .create_tenant(&CreateTenant {
                name: name.into(),
                dpa_signed: true,
            })
            .await?;
        let mut v = WebchatClient::connect(&ws, &t.channels.webchat.widget_key, "v").await?;
        let (ack, _) = v
            .send_message("c1", None, &format!("{name}-backed-up-text"), WAIT)
            .await?;
        v.close().await;
        convs.push(ack.conversation_id);
        tenants.push(t);
    }

    // While the server runs.
    let (ok, out) = cli(
        &[
            "backup",
            "--out",
            backups.path().to_str().unwrap_or_default(),
        ],
        dir.path(),
    )?;
    assert!(ok, "{out}");
    let files = std::fs::read_dir(backups.path())?.count();
    assert_eq!(files, 1);
    assert!(files_containing(backups.path(), b"Leaving-backed-up-text")?.is_empty());
    assert!(files_containing(backups.path(), b"Staying-backed-up-text")?.is_empty());

    // Terminate and shred the first tenant after the backup.
    let totp = c24_chatcore::access::totp(TOTP).map_err(anyhow::Error::msg)?;
    let now = c24_chatcore::access::unix_now();
    admin.terminate(&tenants[0].id, &totp.generate(now)).await?;
    admin
        .destroy_key(&tenants[0].id, &totp.generate(now + 30))
        .await?;
    stop(p)?;

    let backup = std::fs::read_dir(backups.path())?
        .next()
        .ok_or_else(|| anyhow::anyhow!("no backup"))??
        .path();
    let (ok, out) = cli(
        &["restore", "--from", backup.to_str().unwrap_or_default()],
        dir.path(),
    )?;
    assert!(ok, "{out}");

    let p = core(dir.path())?;
    let admin = Client::new(&p.1, TOKEN)?;
    let gone = admin.messages(&convs[0], 10, None).await.err();
    assert_eq!(gone.as_ref().and_then(|e| e.code()), Some("key_destroyed"));
    let kept = admin.messages(&convs[1], 10, None).await?;
    assert_eq!(kept.items[0].content, "Staying-backed-up-text");
    assert_eq!(admin.tenant(&tenants[0].id).await?.status, "purged");

    // A damaged backup is refused and changes nothing.
    let bad = backups.path().join("bad.c24bak");
    std::fs::write(&bad, b"C24BAK1\n{}\n")?;
    stop(p)?;
    let (ok, out) = cli(
        &["restore", "--from", bad.to_str().unwrap_or_default()],
        dir.path(),
    )?;
    assert!(!ok && out.contains("damaged"), "{out}");
    let p = core(dir.path())?;
    let admin = Client::new(&p.1, TOKEN)?;
    assert_eq!(admin.messages(&convs[1], 10, None).await?.items.len(), 1);
    Ok(())
}
