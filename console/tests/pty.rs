//! End to end in a real pseudo-terminal: the `c24-console` binary against
//! a chat core started in-process (`c24_chatcore::start`) on 127.0.0.1.
//! It starts, shows the tenants, filters them, drills into one, survives
//! the core being stopped and restarted on the same port and data dir
//! (stale marker, then recovery), and leaves the terminal restored on quit.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c24_api::admin::tenants::CreateTenant;
use c24_api::client::Client;
use c24_chatcore::{Config, Running};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const TOKEN: &str = "pty-test-admin-token";
const ROWS: u16 = 36;
const COLS: u16 = 120;
const WAIT: Duration = Duration::from_secs(30);

async fn start_core(dir: &Path, listen: Option<SocketAddr>) -> anyhow::Result<Running> {
    let mut cfg = Config::embedded(dir);
    cfg.admin_token = Some(TOKEN.into());
    if let Some(addr) = listen {
        cfg.listen = addr;
    }
    Ok(c24_chatcore::start(cfg).await?)
}

/// The console's screen, as a terminal emulator sees it, plus every byte.
struct Screen {
    parser: vt100::Parser,
    raw: Vec<u8>,
}

struct Console {
    screen: Arc<Mutex<Screen>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Console {
    fn spawn(args: &[&str]) -> anyhow::Result<Console> {
        let pair = native_pty_system().openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })?;
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_c24-console"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("NO_COLOR");
        cmd.env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("c24-console-pty-test-no-config"),
        );
        let child = pair.slave.spawn_command(cmd)?;
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader()?;
        let writer = pair.master.take_writer()?;
        let screen = Arc::new(Mutex::new(Screen {
            parser: vt100::Parser::new(ROWS, COLS, 0),
            raw: Vec::new(),
        }));
        let s = screen.clone();
        std::thread::spawn(move || {
            let _master = pair.master;
            let mut buf = [0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut s) = s.lock() {
                            s.parser.process(&buf[..n]);
                            s.raw.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
        });
        Ok(Console {
            screen,
            writer,
            child,
        })
    }

    fn contents(&self) -> String {
        self.screen
            .lock()
            .map(|s| s.parser.screen().contents())
            .unwrap_or_default()
    }

    fn raw(&self) -> Vec<u8> {
        self.screen
            .lock()
            .map(|s| s.raw.clone())
            .unwrap_or_default()
    }

    /// Polls the screen until `pred` holds, failing after [`WAIT`].
    async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.contents();
            if pred(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn keys(&mut self, s: &str) {
        self.writer
            .write_all(s.as_bytes())
            .expect("writing to the pty");
        self.writer.flush().expect("flushing the pty");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_pty_survives_a_core_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let core = start_core(dir.path(), None).await?;
    let addr = core.addr();
    let url = core.url();
    let admin = Client::new(&url, TOKEN)?;
    for (name, dpa) in [
        ("Acme Retail", true),
        ("Bakkerij de Vries", true),
        ("Nordic Ferries", false),
    ] {
        admin
            .create_tenant(&CreateTenant {
                name: name.into(),
                dpa_signed: dpa,
            })
            .await?;
    }

    let mut c = Console::spawn(&["--endpoint", &url, "--token", TOKEN, "--refresh", "200ms"])?;
    c.wait_for("the overview", |s| {
        s.contains("Platform") && s.contains("● live")
    })
    .await;

    // The seeded tenants.
    c.keys("2");
    c.wait_for("the tenants", |s| {
        s.contains("Tenants · 3 of 3") && s.contains("Acme Retail") && s.contains("Nordic Ferries")
    })
    .await;

    // Filter.
    c.keys("/nordic");
    let s = c
        .wait_for("the filtered list", |s| s.contains("1 of 3"))
        .await;
    assert!(!s.contains("Acme Retail"), "{s}");
    c.keys("\r");

    // Drill down, with a breadcrumb.
    c.keys("\r");
    c.wait_for("the tenant detail", |s| {
        s.contains("Tenants › Nordic Ferries") && s.contains("NOT SIGNED")
    })
    .await;

    // The core goes away: data is kept and marked stale.
    core.shutdown().await;
    let s = c
        .wait_for("the stale marker", |s| {
            s.contains("core unreachable") && s.contains("stale")
        })
        .await;
    assert!(
        s.contains("Nordic Ferries"),
        "the data stays on screen: {s}"
    );

    // Back on the same port and data dir: recovery.
    let core = start_core(dir.path(), Some(addr)).await?;
    c.wait_for("recovery", |s| {
        s.contains("● live") && !s.contains("stale") && s.contains("Nordic Ferries")
    })
    .await;

    // Back to the list, then quit.
    c.keys("\x7f");
    c.wait_for("the list again", |s| s.contains("Tenants · 1 of 3"))
        .await;
    c.keys("q");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = c.child.try_wait()? {
            break st;
        }
        assert!(Instant::now() < deadline, "the console did not quit");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    // Wait until the reader has seen the last bytes (the pty closes on exit).
    let deadline = Instant::now() + WAIT;
    loop {
        let raw = c.raw();
        let text = String::from_utf8_lossy(&raw);
        if text.contains("\x1b[?1049l") {
            let entered = text.rfind("\x1b[?1049h").unwrap_or(0);
            let left = text.rfind("\x1b[?1049l").unwrap_or(0);
            assert!(
                left > entered,
                "the alternate screen was left after it was entered"
            );
            assert!(
                text[left..].contains("\x1b[?25h")
                    || text[..left].rfind("\x1b[?25h").is_some_and(|p| p > entered),
                "the cursor is shown again"
            );
            // Every frame is wrapped in synchronized output.
            let begins = text.matches("\x1b[?2026h").count();
            let ends = text.matches("\x1b[?2026l").count();
            assert!(
                begins > 0 && ends >= begins,
                "synchronized output: {begins} begins, {ends} ends"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alternate screen was never left"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    core.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_no_terminal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let core = start_core(dir.path(), None).await?;
    let url = core.url();
    let admin = Client::new(&url, TOKEN)?;
    admin
        .create_tenant(&CreateTenant {
            name: "Acme Retail".into(),
            dpa_signed: true,
        })
        .await?;
    let bin = env!("CARGO_BIN_EXE_c24-console");
    let out = tokio::process::Command::new(bin)
        .args([
            "--endpoint",
            &url,
            "--token",
            TOKEN,
            "--snapshot",
            "tenants",
            "--width",
            "100",
        ])
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Acme Retail"), "{text}");
    assert!(!text.contains('\x1b'), "a snapshot is plain text");
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");

    // Not a terminal and no --snapshot: a clear message, not a garbled screen.
    let out = tokio::process::Command::new(bin)
        .args(["--endpoint", &url, "--token", TOKEN])
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a terminal") && err.contains("--snapshot"),
        "{err}"
    );

    // An unreachable core: the snapshot says so and fails.
    core.shutdown().await;
    let out = tokio::process::Command::new(bin)
        .args([
            "--endpoint",
            &url,
            "--token",
            TOKEN,
            "--snapshot",
            "overview",
        ])
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .await?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not deliver"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sighup_restore_the_terminal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let core = start_core(dir.path(), None).await?;
    let url = core.url();
    for signal in ["-TERM", "-HUP"] {
        let mut c = Console::spawn(&["--endpoint", &url, "--token", TOKEN])?;
        c.wait_for("the overview", |s| s.contains("Platform")).await;
        let pid = c
            .child
            .process_id()
            .ok_or_else(|| anyhow::anyhow!("no pid"))?;
        let st = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()?;
        assert!(st.success());
        let deadline = Instant::now() + WAIT;
        while c.child.try_wait()?.is_none() {
            assert!(
                Instant::now() < deadline,
                "{signal}: the console did not stop"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let raw = c.raw();
            let text = String::from_utf8_lossy(&raw);
            let entered = text.rfind("\x1b[?1049h");
            let left = text.rfind("\x1b[?1049l");
            if let (Some(e), Some(l)) = (entered, left)
                && l > e
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{signal}: the alternate screen was not left"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    core.shutdown().await;
    Ok(())
}
