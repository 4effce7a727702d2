//! The app's key handling on fixed data, without a terminal or a network:
//! filter, sort, drill-down, the command line with completion, contexts,
//! and the write flow (confirmation, TOTP prompt, effect).

use std::collections::HashMap;

use c24_console::action::WriteAction;
use c24_console::app::{App, AppOptions, Effect, Mode};
use c24_console::fixtures;
use c24_console::keymap::Keymap;
use c24_console::snapshot::{render, to_text};
use c24_console::theme::Theme;
use c24_console::views::Tab;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn app(write: bool, keymap: Keymap) -> App {
    App::new(
        fixtures::store(false),
        Theme::default(),
        keymap,
        AppOptions {
            write,
            endpoint: "http://127.0.0.1:8080".into(),
            context: Some("local".into()),
            contexts: vec!["local".into(), "prod".into()],
            demo_totp_secret: None,
        },
    )
}

fn key(a: &mut App, code: KeyCode) {
    a.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn typed(a: &mut App, s: &str) {
    for c in s.chars() {
        key(a, KeyCode::Char(c));
    }
}

fn screen(a: &mut App) -> String {
    to_text(&render(a, 120, 36))
}

#[test]
fn filter_sort_and_drill_down() {
    let mut a = app(false, Keymap::default());
    typed(&mut a, "2");
    assert_eq!(a.tab, Tab::Tenants);
    let s = screen(&mut a);
    assert!(s.contains("12 of 12"), "{s}");

    typed(&mut a, "/health");
    let s = screen(&mut a);
    assert!(s.contains("1 of 12") && s.contains("Lumen Health"), "{s}");
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.mode, Mode::Normal);

    key(&mut a, KeyCode::Enter);
    assert!(a.detail_open);
    assert_eq!(
        a.take_effects(),
        vec![Effect::Focus(Some(fixtures::tenant_id(4)))]
    );
    let s = screen(&mut a);
    assert!(s.contains("Tenants › Lumen Health"), "{s}");

    key(&mut a, KeyCode::Esc);
    assert!(!a.detail_open);
    assert_eq!(a.take_effects(), vec![Effect::Focus(None)]);
    // Esc again clears the filter.
    key(&mut a, KeyCode::Esc);
    assert!(screen(&mut a).contains("12 of 12"));

    // `s` cycles the sort column; the header shows it.
    typed(&mut a, "ss");
    let s = screen(&mut a);
    assert!(s.contains("sort msgs/s↓") && s.contains("MSGS/S↓"), "{s}");
}

#[test]
fn command_line_completes_and_switches_context() {
    let mut a = app(false, Keymap::default());
    typed(&mut a, ":ov");
    key(&mut a, KeyCode::Tab);
    assert!(matches!(&a.mode, Mode::Command { input, .. } if input == "overview"));
    key(&mut a, KeyCode::Esc);

    typed(&mut a, ":ctx ");
    key(&mut a, KeyCode::Tab);
    assert!(matches!(&a.mode, Mode::Command { input, .. } if input == "ctx local"));
    key(&mut a, KeyCode::Tab);
    assert!(matches!(&a.mode, Mode::Command { input, .. } if input == "ctx prod"));
    let s = screen(&mut a);
    assert!(s.contains("[ctx prod]"), "the candidates are shown: {s}");
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.take_effects(), vec![Effect::SwitchContext("prod".into())]);

    typed(&mut a, ":tenant nordic");
    key(&mut a, KeyCode::Enter);
    assert!(a.detail_open);
    assert_eq!(
        a.take_effects(),
        vec![Effect::Focus(Some(fixtures::tenant_id(2)))]
    );

    typed(&mut a, ":bogus");
    key(&mut a, KeyCode::Enter);
    assert!(screen(&mut a).contains("unknown command \"bogus\""));

    typed(&mut a, ":q");
    key(&mut a, KeyCode::Enter);
    assert!(a.should_quit());
}

#[test]
fn writes_ask_for_confirmation_and_a_totp_code() {
    let mut a = app(true, Keymap::default());
    typed(&mut a, "2");
    // The first row (by name) is Acme Retail.
    typed(&mut a, "S");
    assert!(
        matches!(&a.mode, Mode::Confirm(WriteAction::Suspend { label, .. }) if label == "Acme Retail")
    );
    typed(&mut a, "y");
    assert!(matches!(
        a.take_effects().as_slice(),
        [Effect::Write(WriteAction::Suspend { .. }, None)]
    ));

    typed(&mut a, "T");
    typed(&mut a, "y");
    assert!(matches!(&a.mode, Mode::Totp { .. }));
    assert!(screen(&mut a).contains("TOTP code:"));
    typed(&mut a, "12a34");
    key(&mut a, KeyCode::Enter);
    assert!(
        matches!(&a.mode, Mode::Totp { input, .. } if input == "1234"),
        "digits only, six needed"
    );
    typed(&mut a, "56");
    key(&mut a, KeyCode::Enter);
    match a.take_effects().as_slice() {
        [Effect::Write(WriteAction::Terminate { id, .. }, Some(code))] => {
            assert_eq!(id, &fixtures::tenant_id(0));
            assert_eq!(code, "123456");
        }
        other => panic!("{other:?}"),
    }

    typed(&mut a, "Tn");
    assert!(a.take_effects().is_empty(), "cancelled");
}

#[test]
fn approving_a_subprocessor_change_asks_for_confirmation_and_a_totp_code() {
    let mut a = app(true, Keymap::default());
    typed(&mut a, "5");
    let s = screen(&mut a);
    assert!(s.contains("1 awaiting approval"), "{s}");
    assert!(
        s.contains("awaiting approval") && s.contains("approved by ada"),
        "{s}"
    );
    assert!(s.contains("A approves the selected entry"), "{s}");
    // The first entry (AWS) has nothing waiting: no write, a hint instead.
    typed(&mut a, "A");
    assert_eq!(a.mode, Mode::Normal);
    assert!(screen(&mut a).contains("nothing waits for approval on Amazon Web Services"));
    // Atlas Translate, the last row, waits for an approval.
    typed(&mut a, "G");
    typed(&mut a, "A");
    assert!(
        matches!(&a.mode, Mode::Confirm(WriteAction::ApproveSubprocessor { label, .. }) if label == "Atlas Translate"),
        "{:?}",
        a.mode
    );
    assert!(screen(&mut a).contains("Approve the pending sub-processor change for Atlas"));
    typed(&mut a, "y");
    assert!(matches!(&a.mode, Mode::Totp { .. }));
    typed(&mut a, "654321");
    key(&mut a, KeyCode::Enter);
    match a.take_effects().as_slice() {
        [Effect::Write(WriteAction::ApproveSubprocessor { id, .. }, Some(code))] => {
            assert_eq!(id, "sp-atlas");
            assert_eq!(code, "654321");
        }
        other => panic!("{other:?}"),
    }
    // Also from the command line, for the selected entry.
    typed(&mut a, ":approve");
    key(&mut a, KeyCode::Enter);
    assert!(matches!(
        &a.mode,
        Mode::Confirm(WriteAction::ApproveSubprocessor { .. })
    ));
    key(&mut a, KeyCode::Esc);
    // The help lists the key.
    typed(&mut a, "?");
    let s = screen(&mut a);
    assert!(s.contains("approve a sub-processor change (TOTP)"), "{s}");
}

#[test]
fn read_only_refuses_writes() {
    let mut a = app(false, Keymap::default());
    typed(&mut a, "2S");
    assert_eq!(a.mode, Mode::Normal);
    assert!(screen(&mut a).contains("read-only: start with --write to suspend"));
}

#[test]
fn rebound_keys_work_and_show_in_help() {
    let mut o = HashMap::new();
    o.insert("down".to_string(), vec!["n".to_string()]);
    o.insert("help".to_string(), vec!["F1".to_string().to_lowercase()]);
    let mut a = app(false, Keymap::with_overrides(&o).unwrap_or_default());
    typed(&mut a, "2n");
    key(&mut a, KeyCode::Enter);
    // The second row by name is Bakkerij de Vries.
    assert_eq!(
        a.take_effects(),
        vec![Effect::Focus(Some(fixtures::tenant_id(1)))]
    );
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::F(1));
    assert!(a.help_open);
    let s = screen(&mut a);
    assert!(s.contains("n                 move down"), "{s}");
    assert!(s.contains("F1                this help"), "{s}");
}

#[test]
fn seven_opens_compliance() {
    let mut a = app(false, Keymap::default());
    typed(&mut a, "7");
    assert_eq!(a.tab, Tab::Compliance);
    let s = screen(&mut a);
    assert!(
        s.contains("Data-subject requests") && s.contains("! overdue 2d 3h"),
        "{s}"
    );
    typed(&mut a, "1");
    typed(&mut a, ":compliance");
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.tab, Tab::Compliance);
}
