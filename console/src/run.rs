//! The interactive loop and the one-shot snapshot, wired to a core.
//!
//! The loop owns the terminal: alternate screen and raw mode, restored on
//! quit, on panic (a hook), on SIGTERM, SIGHUP and SIGINT. It draws only
//! when the store or the UI changed (never on a timer alone), at most
//! `--fps` times a second, each frame wrapped in synchronized output
//! (DEC mode 2026) so a slow SSH link never shows half a frame.

use std::io::{BufWriter, Stdout, Write};
use std::time::{Duration, Instant};

use c24_api::client::Client;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event};
use ratatui::crossterm::terminal::{
    BeginSynchronizedUpdate, Clear, ClearType, EndSynchronizedUpdate, EnterAlternateScreen,
    LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::crossterm::{cursor, execute, queue};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::{App, Effect};
use crate::config::ConfigFile;
use crate::snapshot::SnapshotView;
use crate::source::{Command, SourceMsg, Sources, write};
use crate::store::{Feed, Store};

/// What can stop the console.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    #[error("{0}")]
    Snapshot(String),
}

/// Where the console is pointed.
#[derive(Debug, Clone)]
pub struct Target {
    pub client: Client,
    pub endpoint: String,
    pub context: Option<String>,
}

/// How the loop behaves.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    pub refresh: Duration,
    pub fps: u32,
    pub redact: bool,
}

/// Applies one message from the background tasks.
pub fn apply(app: &mut App, msg: SourceMsg, sources: &Sources) {
    let now = Instant::now();
    let s = &mut app.store;
    match msg {
        SourceMsg::StreamUp(up) => s.set_stream_up(up, now),
        SourceMsg::Poll(p) => s.set_poll(p, now),
        SourceMsg::Overview(o) => s.set_overview(&o, now),
        SourceMsg::Throughput(t) => s.set_throughput(&t, now),
        SourceMsg::TenantsPage {
            records,
            first,
            last,
        } => s.tenants_page(records, first, last, now),
        SourceMsg::TenantsIdle => s.tenants_idle(now),
        SourceMsg::Detail(t, tp, convs) => s.set_detail(*t, &tp, convs, now),
        SourceMsg::Retention(r) => s.set_retention(*r, now),
        SourceMsg::Registry(r) => s.set_registry(*r, now),
        SourceMsg::Audit(a) => s.set_audit(a, now),
        SourceMsg::Dsrs {
            items,
            open,
            failed,
        } => s.set_dsrs(items, open, failed, now),
        SourceMsg::Incidents(i) => s.set_incidents(i, now),
        SourceMsg::Consents {
            items,
            withdrawals,
            failed,
        } => s.set_consents(items, withdrawals, failed, now),
        SourceMsg::Event(e) => s.push_event(&e, now),
        SourceMsg::FeedError(f, e) => s.feed_failed(f, e, now),
        SourceMsg::Outcome(o) => {
            s.set_outcome(o);
            sources.send(Command::RefreshAll);
        }
    }
}

type Term = Terminal<CrosstermBackend<BufWriter<Stdout>>>;

/// Leaves the alternate screen and raw mode; safe to call twice.
pub fn restore_terminal() {
    let _ = disable_raw_mode();
    let mut out = std::io::stdout();
    let _ = execute!(
        out,
        EndSynchronizedUpdate,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = out.flush();
}

/// Restores the terminal when dropped (normal return, error, unwinding).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn enter_terminal() -> std::io::Result<(TerminalGuard, Term)> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        hook(info);
    }));
    enable_raw_mode()?;
    let guard = TerminalGuard;
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout());
    // Cleared here rather than with `Terminal::clear`, which asks the
    // terminal for the cursor position (a round trip over SSH).
    execute!(
        out,
        EnterAlternateScreen,
        cursor::Hide,
        Clear(ClearType::All)
    )?;
    let terminal = Terminal::new(CrosstermBackend::new(out))?;
    Ok((guard, terminal))
}

fn draw(terminal: &mut Term, app: &mut App) -> std::io::Result<()> {
    queue!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    terminal.draw(|f| app.draw(f))?;
    queue!(terminal.backend_mut(), EndSynchronizedUpdate)?;
    terminal.backend_mut().flush()
}

/// Connects to a context of the config file.
pub fn context_target(config: &ConfigFile, name: &str) -> Result<Target, String> {
    let ctx = config.context(name).map_err(|e| e.to_string())?;
    let token = ctx.resolve_token(name).map_err(|e| e.to_string())?;
    let client = Client::new(&ctx.endpoint, &token).map_err(|e| e.to_string())?;
    Ok(Target {
        client,
        endpoint: ctx.endpoint.clone(),
        context: Some(name.to_string()),
    })
}

/// Runs the interactive console until the user quits or a signal arrives.
/// A lost connection never ends it.
pub async fn interactive(
    mut app: App,
    mut target: Target,
    opts: LoopOptions,
    config: ConfigFile,
) -> Result<(), RunError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<SourceMsg>();
    let mut sources = Sources::spawn(target.client.clone(), opts.refresh, tx.clone());

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    let (guard, mut terminal) = enter_terminal()?;

    // Input: a thread blocked in `read` (no polling, no CPU while idle).
    let (key_tx, mut key_rx) = mpsc::unbounded_channel::<Event>();
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if key_tx.send(ev).is_err() {
                break;
            }
        }
    });

    let frame_min = Duration::from_secs_f64(1.0 / f64::from(opts.fps.max(1)));
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drawn: Option<(u64, u64)> = None;
    let mut force = true;
    let mut last_draw: Option<Instant> = None;
    loop {
        let want = (app.store.version(), app.ui_version());
        let mut next_frame = None;
        if force || drawn != Some(want) {
            let now = Instant::now();
            match last_draw {
                Some(t) if now.duration_since(t) < frame_min => next_frame = Some(t + frame_min),
                _ => {
                    tracing::trace!(store = want.0, ui = want.1, ?drawn, "draw");
                    draw(&mut terminal, &mut app)?;
                    drawn = Some(want);
                    force = false;
                    last_draw = Some(now);
                }
            }
        }
        let frame_wait = async {
            match next_frame {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(msg) = rx.recv() => {
                apply(&mut app, msg, &sources);
                while let Ok(m) = rx.try_recv() {
                    apply(&mut app, m, &sources);
                }
            }
            Some(ev) = key_rx.recv() => {
                match ev {
                    Event::Key(k) => app.on_key(k),
                    Event::Resize(..) => force = true,
                    _ => {}
                }
                for effect in app.take_effects() {
                    match effect {
                        Effect::Focus(id) => sources.send(Command::Focus(id)),
                        Effect::Refresh => sources.send(Command::RefreshAll),
                        Effect::Write(action, totp) => {
                            write::spawn(target.client.clone(), action, totp, tx.clone());
                        }
                        Effect::SwitchContext(name) => match context_target(&config, &name) {
                            Ok(t) => {
                                target = t;
                                sources = Sources::spawn(target.client.clone(), opts.refresh, tx.clone());
                                app.reset_for_context(
                                    Store::new(opts.refresh, opts.redact),
                                    target.endpoint.clone(),
                                    target.context.clone(),
                                );
                            }
                            Err(e) => app.apply(crate::action::Action::Status(e)),
                        },
                    }
                }
                if app.should_quit() {
                    break;
                }
            }
            _ = ticker.tick() => app.tick(Instant::now()),
            _ = frame_wait => {}
            _ = sigterm.recv() => break,
            _ = sighup.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    drop(sources);
    drop(terminal);
    drop(guard);
    Ok(())
}

/// Waits (at most `deadline`) until the feeds a view needs are loaded,
/// then renders it once as text.
pub async fn snapshot(
    mut app: App,
    target: Target,
    view: SnapshotView,
    refresh: Duration,
    width: u16,
    height: Option<u16>,
    deadline: Duration,
) -> Result<String, RunError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<SourceMsg>();
    let sources = Sources::spawn(target.client.clone(), refresh, tx.clone());
    let until = Instant::now() + deadline;
    let mut focused: Option<String> = None;
    let mut shown = false;
    loop {
        let mut needed: Vec<Feed> = view.feeds().to_vec();
        if focused.is_some() {
            needed.push(Feed::Detail);
        }
        if app.store.loaded(&needed) {
            if !shown {
                let id = view.show(&mut app).map_err(RunError::Snapshot)?;
                shown = true;
                if let Some(id) = id {
                    sources.send(Command::Focus(Some(id.clone())));
                    focused = Some(id);
                    continue;
                }
            }
            break;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if !shown {
                // Render what there is: the panels say what is missing.
                let _ = view.show(&mut app);
            }
            break;
        }
        if let Ok(Some(m)) = tokio::time::timeout(left, rx.recv()).await {
            apply(&mut app, m, &sources);
        }
    }
    app.tick(Instant::now());
    let h = height.unwrap_or_else(|| match view {
        SnapshotView::Tab(crate::views::Tab::Tenants) => {
            (app.store.tenants.len() as u16).saturating_add(10).max(40)
        }
        _ => 40,
    });
    let buf = crate::snapshot::render(&mut app, width, h);
    let text = crate::snapshot::to_text(&buf);
    drop(sources);
    if !app.store.loaded(view.feeds()) {
        let why = app
            .store
            .first_error()
            .unwrap_or_else(|| "no answer in time".into());
        return Err(RunError::Snapshot(format!(
            "{text}\nc24-console: the core at {} did not deliver this view's data: {why}",
            target.endpoint
        )));
    }
    Ok(text)
}
