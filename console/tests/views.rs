//! Snapshot tests of every view on a `TestBackend`, drawn from fixed store
//! data, in the normal theme, with `--redact`, and under `NO_COLOR`.
//! Normal and NO_COLOR snapshots hold the buffer with its styles; redact
//! snapshots hold the text (what a screenshot would leak).

use std::time::Instant;

use c24_console::action::{Action, WriteAction};
use c24_console::app::{App, AppOptions};
use c24_console::fixtures;
use c24_console::keymap::Keymap;
use c24_console::snapshot::{render, to_text};
use c24_console::store::Store;
use c24_console::theme::{Theme, ThemeName};
use c24_console::views::Tab;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

const W: u16 = 120;
const H: u16 = 36;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    Redact,
    NoColor,
}

fn app(mode: Mode, store: Store) -> App {
    let theme = Theme::for_env(ThemeName::Dark, mode == Mode::NoColor);
    App::new(
        store,
        theme,
        Keymap::default(),
        AppOptions {
            write: false,
            endpoint: "http://127.0.0.1:8080".into(),
            context: None,
            contexts: vec!["local".into(), "prod".into()],
            demo_totp_secret: None,
        },
    )
}

/// The app in front of `view` ("tenant_detail" opens the first tenant).
fn app_showing(view: &str, mode: Mode) -> App {
    let now = Instant::now();
    let mut store = fixtures::store_at(12, mode == Mode::Redact, now);
    if view == "tenant_detail" {
        fixtures::focus_tenant(&mut store, 0, now);
    }
    let mut a = app(mode, store);
    match view {
        "help" => a.apply(Action::ToggleHelp),
        "tenant_detail" => {
            a.apply(Action::SwitchTab(Tab::Tenants));
            // Open the detail the way Enter does, without a second focus.
            a.detail_open = true;
        }
        other => {
            let tab = Tab::parse(other).unwrap_or(Tab::Overview);
            a.apply(Action::SwitchTab(tab));
        }
    }
    a
}

const VIEWS: [&str; 9] = [
    "overview",
    "tenants",
    "tenant_detail",
    "throughput",
    "retention",
    "subprocessors",
    "audit",
    "compliance",
    "help",
];

fn assert_no_colour(buf: &Buffer) {
    for cell in &buf.content {
        assert!(
            matches!(cell.fg, Color::Reset) && matches!(cell.bg, Color::Reset),
            "a coloured cell under NO_COLOR: {cell:?}"
        );
    }
}

#[test]
fn every_view_in_every_mode() {
    for view in VIEWS {
        for (mode, suffix) in [
            (Mode::Normal, "normal"),
            (Mode::Redact, "redact"),
            (Mode::NoColor, "no_color"),
        ] {
            let mut a = app_showing(view, mode);
            let buf = render(&mut a, W, H);
            let name = format!("{view}_{suffix}");
            match mode {
                Mode::Redact => insta::assert_snapshot!(name, to_text(&buf)),
                Mode::NoColor => {
                    assert_no_colour(&buf);
                    insta::assert_debug_snapshot!(name, buf);
                }
                Mode::Normal => insta::assert_debug_snapshot!(name, buf),
            }
        }
    }
}

#[test]
fn redaction_hides_every_tenant_name_and_id() {
    for view in VIEWS {
        let mut a = app_showing(view, Mode::Redact);
        let text = to_text(&render(&mut a, W, H));
        for i in 0..12 {
            let t = fixtures::tenant(i);
            assert!(
                !text.contains(&t.name),
                "{view} shows {:?} under --redact",
                t.name
            );
            assert!(
                !text.contains(&t.id[20..]),
                "{view} shows the id of {:?}",
                t.name
            );
            assert!(
                !text.contains(&t.channels.email.address[..12]),
                "{view} shows an email address"
            );
        }
    }
}

#[test]
fn selection_stays_visible_without_colour() {
    let mut a = app_showing("tenants", Mode::NoColor);
    let buf = render(&mut a, W, H);
    // The first data row (below the header) is selected.
    let y = (0..H)
        .find(|&y| {
            (0..W)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .contains("Acme Retail")
        })
        .unwrap_or(0);
    let cell = &buf[(5, y)];
    assert!(cell.modifier.contains(Modifier::REVERSED), "{cell:?}");
    assert!(cell.modifier.contains(Modifier::BOLD), "{cell:?}");
}

#[test]
fn too_small_a_terminal_says_so() {
    let mut a = app_showing("overview", Mode::Normal);
    let text = to_text(&render(&mut a, 79, 24));
    assert!(text.contains("Terminal too small: 79×24"), "{text}");
    let text = to_text(&render(&mut a, 80, 23));
    assert!(text.contains("too small"), "{text}");
    // Exactly 80×24 draws the view.
    let text = to_text(&render(&mut a, 80, 24));
    assert!(text.contains("Platform"), "{text}");
    insta::assert_snapshot!("overview_80x24", text);
    let mut t = app_showing("tenants", Mode::Normal);
    insta::assert_snapshot!("tenants_80x24", to_text(&render(&mut t, 80, 24)));
}

#[test]
fn stale_data_is_marked_and_kept() {
    let now = Instant::now();
    let mut store = fixtures::store_at(12, false, now);
    store.set_poll(
        c24_console::store::PollState::Unreachable {
            attempt: 3,
            retry_s: 4,
            error: "connection refused".into(),
        },
        now + std::time::Duration::from_secs(12),
    );
    let mut a = app(Mode::Normal, store);
    a.apply(Action::SwitchTab(Tab::Tenants));
    let text = to_text(&render(&mut a, W, H));
    assert!(
        text.contains("core unreachable (connection refused)"),
        "{text}"
    );
    assert!(text.contains("stale 12s"), "{text}");
    assert!(text.contains("Acme Retail"), "the old rows stay: {text}");
}

#[test]
fn confirmation_popup_and_read_only_refusal() {
    let mut a = app_showing("tenants", Mode::Normal);
    a.apply(Action::Write(WriteAction::Purge));
    let text = to_text(&render(&mut a, W, H));
    assert!(
        text.contains("read-only: start with --write to purge"),
        "{text}"
    );

    let mut store = fixtures::store(false);
    store.tick(Instant::now());
    let mut w = App::new(
        store,
        Theme::default(),
        Keymap::default(),
        AppOptions {
            write: true,
            ..Default::default()
        },
    );
    w.apply(Action::SwitchTab(Tab::Retention));
    w.apply(Action::Write(WriteAction::Purge));
    let text = to_text(&render(&mut w, W, H));
    assert!(text.contains("Run a purge now?"), "{text}");
    assert!(text.contains("a TOTP code is asked next"), "{text}");
}

#[test]
fn open_incidents_show_a_dash_when_not_tracked_and_zero_when_none() {
    let now = Instant::now();
    let mut store = fixtures::store_at(12, false, now);
    let mut o = fixtures::overview();
    o.incidents_open = None;
    store.set_overview(&o, now);
    let mut a = app(Mode::Normal, store);
    let text = to_text(&render(&mut a, W, H));
    let panel: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("Open incidents"))
        .take(3)
        .collect();
    let panel = panel.join("\n");
    assert!(panel.contains("open             —"), "{panel}");
    assert!(panel.contains("not tracked by this core"), "{panel}");

    o.incidents_open = Some(0);
    a.store.set_overview(&o, now);
    let text = to_text(&render(&mut a, W, H));
    assert!(text.contains("open             0"), "{text}");
    assert!(!text.contains("not tracked by this core"), "{text}");
}
