//! The console's performance figures at 10,000 tenants:
//!
//! 1. frame render time on a `TestBackend` (tenants view, overview), and
//!    the cost of re-filtering/sorting when the tenant list changes;
//! 2. with `--pty` (default on; `--no-pty` skips it): the real binary in a
//!    pseudo-terminal against an in-process core holding 10,000 tenants, at
//!    `--refresh 1s` with nothing changing: CPU use, bytes written to the
//!    terminal per second, and peak RSS.
//!
//! `cargo bench -p c24-console --bench render [-- --no-pty] [-- --seconds N]`

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use c24_console::action::Action;
use c24_console::app::{App, AppOptions};
use c24_console::fixtures;
use c24_console::keymap::Keymap;
use c24_console::theme::Theme;
use c24_console::views::Tab;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const TENANTS: usize = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn frames(app: &mut App, n: usize, mut between: impl FnMut(&mut App)) -> Vec<Duration> {
    let mut terminal = match Terminal::new(TestBackend::new(160, 50)) {
        Ok(t) => t,
        Err(never) => match never {},
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        between(app);
        let t = Instant::now();
        if let Err(never) = terminal.draw(|f| app.draw(f)) {
            match never {}
        }
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn report(what: &str, d: &[Duration]) {
    let mean = d.iter().sum::<Duration>() / d.len() as u32;
    println!(
        "{what:<44} mean {:>8.3} ms  p50 {:>8.3} ms  p99 {:>8.3} ms  ({} frames)",
        mean.as_secs_f64() * 1e3,
        percentile(d, 0.5).as_secs_f64() * 1e3,
        percentile(d, 0.99).as_secs_f64() * 1e3,
        d.len()
    );
}

fn render_figures() {
    let now = Instant::now();
    let t = Instant::now();
    let store = fixtures::store_at(TENANTS, false, now);
    println!(
        "store with {TENANTS} tenants built in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut app = App::new(
        store,
        Theme::default(),
        Keymap::default(),
        AppOptions::default(),
    );
    app.apply(Action::SwitchTab(Tab::Tenants));
    report(
        "tenants view, 160x50, unchanged",
        &frames(&mut app, 2000, |_| {}),
    );
    let down = KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE);
    report(
        "tenants view, 160x50, cursor moving",
        &frames(&mut app, 2000, |a| a.on_key(down)),
    );
    let sort = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::NONE);
    report(
        "tenants view, re-sorted every frame",
        &frames(&mut app, 200, |a| a.on_key(sort)),
    );
    app.apply(Action::SwitchTab(Tab::Overview));
    report("overview, 160x50", &frames(&mut app, 2000, |_| {}));
}

/// CPU ticks (utime + stime) and peak RSS (kB) of a process, from /proc.
fn proc_figures(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())?;
    Some((utime + stime, hwm))
}

async fn pty_figures(seconds: u64) -> anyhow::Result<()> {
    use c24_api::admin::tenants::CreateTenant;
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};

    let dir = tempfile::tempdir()?;
    let mut cfg = c24_chatcore::Config::embedded(dir.path());
    cfg.admin_token = Some("bench-admin".into());
    let core = c24_chatcore::start(cfg).await?;
    let admin = c24_api::client::Client::new(&core.url(), "bench-admin")?;
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for chunk in 0..32 {
        let admin = admin.clone();
        set.spawn(async move {
            for i in (chunk..TENANTS).step_by(32) {
                admin
                    .create_tenant(&CreateTenant {
                        name: format!("Tenant {i:05}"),
                        dpa_signed: i % 7 != 0,
                    })
                    .await?;
            }
            Ok::<_, c24_api::client::ClientError>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    println!(
        "created {TENANTS} tenants in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let pair = native_pty_system().openpty(PtySize {
        rows: 50,
        cols: 160,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_c24-console"));
    let url = core.url();
    cmd.args([
        "--endpoint",
        url.as_str(),
        "--token",
        "bench-admin",
        "--refresh",
        "1s",
    ]);
    cmd.env("TERM", "xterm-256color");
    cmd.env("XDG_CONFIG_HOME", dir.path());
    let mut child = pair.slave.spawn_command(cmd)?;
    drop(pair.slave);
    let pid = child
        .process_id()
        .ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let mut reader = pair.master.try_clone_reader()?;
    let mut writer = pair.master.take_writer()?;
    let bytes = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    {
        let bytes = bytes.clone();
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Ok(mut s) = seen.lock()
                    && s.len() < 4 << 20
                {
                    s.extend_from_slice(&buf[..n]);
                }
            }
        });
    }
    // Show the tenants table, wait until the 10,000 rows are in.
    writer.write_all(b"2")?;
    writer.flush()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = seen
            .lock()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default();
        if text.contains("of 10000") {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the console never showed 10000 tenants"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the first full fetches and frames settle, then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hz = 100.0; // USER_HZ on Linux
    let (cpu0, _) = proc_figures(pid).ok_or_else(|| anyhow::anyhow!("no /proc figures"))?;
    let b0 = bytes.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu1, hwm) = proc_figures(pid).ok_or_else(|| anyhow::anyhow!("no /proc figures"))?;
    let b1 = bytes.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "idle in a pty, 10000 tenants, --refresh 1s, {secs:.0} s: CPU {:.3}% of a core, {:.1} B/s to the terminal, peak RSS {:.1} MB",
        (cpu1 - cpu0) as f64 / hz / secs * 100.0,
        (b1 - b0) as f64 / secs,
        hwm as f64 / 1024.0
    );
    writer.write_all(b"q")?;
    writer.flush()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    core.shutdown().await;
    Ok(())
}

use std::io::Write as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    render_figures();
    if args.iter().any(|a| a == "--no-pty") {
        return Ok(());
    }
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(pty_figures(seconds))
}
