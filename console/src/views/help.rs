//! Help: generated from the keymap in force (so a rebound key shows as
//! rebound), plus the `:` commands and what the data-age labels mean.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx};
use crate::action::Action;
use crate::keymap::{Group, KeyCommand};
use crate::widgets::panel;

/// The `:` commands, for the help screen and the completion.
pub const COMMANDS_HELP: &[(&str, &str)] = &[
    (
        "overview, tenants, throughput, retention, subprocessors, audit",
        "switch view",
    ),
    ("tenant NAME|ID", "open a tenant"),
    ("filter TEXT", "filter the tenants table"),
    (
        "sort COLUMN",
        "name, status, msgs/s, open, stored, retention, created",
    ),
    ("ctx NAME", "switch to a context of the config file"),
    (
        "suspend, resume, terminate, purge, approve",
        "the write actions (with --write)",
    ),
    ("help", "this screen"),
    ("q, quit", "quit"),
];

#[derive(Debug, Default)]
pub struct HelpView;

impl Component for HelpView {
    fn handle_event(&mut self, cmd: KeyCommand, _ctx: &Ctx) -> Option<Action> {
        match cmd {
            KeyCommand::Back | KeyCommand::Help => Some(Action::ToggleHelp),
            _ => None,
        }
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let block = panel::plain("Help · Esc or ? closes", t);
        let inner = block.inner(area);
        f.render_widget(block, area);
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(inner);
        let help = ctx.keymap.help();
        let mut columns: [Vec<Line>; 2] = [Vec::new(), Vec::new()];
        for (group, lines) in &help {
            // Balanced so both columns fit the screen at 120×36.
            let col = match group {
                Group::General | Group::Navigation | Group::Write => 0,
                Group::Tables => 1,
            };
            let out = &mut columns[col];
            out.push(Line::styled(group.title(), t.header));
            for (keys, desc) in lines {
                out.push(Line::from(vec![
                    Span::styled(format!("  {keys:<18}"), t.accent),
                    Span::styled(*desc, t.text),
                ]));
            }
            out.push(Line::default());
        }
        let right_col = &mut columns[1];
        right_col.push(Line::styled("Commands (:)", t.header));
        for (cmd, desc) in COMMANDS_HELP {
            right_col.push(Line::from(vec![
                Span::styled(format!("  {cmd}"), t.accent),
                Span::styled(format!("  {desc}"), t.dim),
            ]));
        }
        right_col.push(Line::default());
        right_col.push(Line::styled("Data age", t.header));
        right_col.push(Line::styled(
            "  ● fresh: confirmed within its refresh interval",
            t.text,
        ));
        right_col.push(Line::styled(
            "  ◌ stale AGE: older than expected or core unreachable",
            t.text,
        ));
        if !ctx.write {
            right_col.push(Line::default());
            right_col.push(Line::styled(
                "Read-only: start with --write to enable actions.",
                t.dim,
            ));
        }
        let [a, b] = columns;
        f.render_widget(Paragraph::new(a), left);
        f.render_widget(Paragraph::new(b), right);
    }
}
