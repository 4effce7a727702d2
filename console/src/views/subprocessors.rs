//! Sub-processors: the registry (category, location, safeguard,
//! compliance flags, approval), pending changes with a countdown to their
//! effective date, their approval and objection counts, and the selected
//! entry's history. With `--write`, the selected entry's pending change can
//! be approved (confirmation and TOTP, like every privileged write).

use c24_api::admin::subprocessors::{Approval, Status, SubProcessor};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{Component, Ctx, move_selection, scroll_offset};
use crate::action::{Action, WriteAction};
use crate::format;
use crate::keymap::KeyCommand;
use crate::store::Feed;
use crate::widgets::panel;

#[derive(Debug, Default)]
pub struct SubprocessorsView {
    selected: usize,
    offset: usize,
    page: usize,
}

fn pending(e: &SubProcessor) -> Option<&str> {
    if e.status == Status::Proposed {
        Some(e.effective_at.as_str())
    } else {
        e.pending_change.as_ref().map(|c| c.effective_at.as_str())
    }
}

/// The approval of what is pending on an entry: the change's if one is
/// announced, else the proposal's; `None` when nothing is pending.
fn pending_approval(e: &SubProcessor) -> Option<(Approval, Option<&str>)> {
    match (&e.pending_change, e.status) {
        (Some(c), _) if e.status != Status::Proposed || c.approval == Approval::Pending => {
            Some((c.approval, c.approved_by.as_deref()))
        }
        (_, Status::Proposed) => Some((
            e.approval.unwrap_or(Approval::Pending),
            e.approved_by.as_deref(),
        )),
        _ => None,
    }
}

impl SubprocessorsView {
    /// The entry under the cursor.
    pub fn selected_entry<'a>(&self, store: &'a crate::store::Store) -> Option<&'a SubProcessor> {
        store.registry.as_ref()?.items.get(self.selected)
    }

    /// The approve action for the selected entry, or why there is none.
    pub fn approve_selected(&self, store: &crate::store::Store) -> Action {
        match self.selected_entry(store) {
            Some(e) if e.awaits_approval() => Action::Write(WriteAction::ApproveSubprocessor {
                id: e.id.clone(),
                label: e.name.clone(),
                announced_at: reviewed_announcement(e),
            }),
            Some(e) => Action::Status(format!("nothing waits for approval on {}", e.name)),
            None => Action::Status("select a sub-processor first".into()),
        }
    }
}

/// What an approval of `e` covers, as the view shows it: the pending change
/// if one waits for approval, else the proposed entry.
fn reviewed_announcement(e: &SubProcessor) -> String {
    match e.pending_change.as_ref() {
        Some(c) if c.approval == c24_api::admin::subprocessors::Approval::Pending => {
            c.announced_at.clone()
        }
        _ => e.announced_at.clone(),
    }
}

impl Component for SubprocessorsView {
    fn handle_event(&mut self, cmd: KeyCommand, ctx: &Ctx) -> Option<Action> {
        if cmd == KeyCommand::Approve {
            return Some(self.approve_selected(ctx.store));
        }
        let len = ctx
            .store
            .registry
            .as_ref()
            .map(|r| r.items.len())
            .unwrap_or(0);
        if let Some(s) = move_selection(self.selected, len, self.page, cmd) {
            self.selected = s;
        }
        None
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let s = ctx.store;
        let fresh = s.freshness(Feed::Registry);
        let now = s.core_now;
        let [table, bottom] =
            Layout::vertical([Constraint::Min(8), Constraint::Length(9)]).areas(area);
        let [changes, history] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(bottom);
        let items: &[SubProcessor] = s
            .registry
            .as_ref()
            .map(|r| r.items.as_slice())
            .unwrap_or(&[]);
        self.selected = self.selected.min(items.len().saturating_sub(1));
        let height = table.height.saturating_sub(3) as usize;
        self.page = height.max(1);
        self.offset = scroll_offset(self.offset, self.selected, height);
        let header = Row::new(
            [
                "NAME",
                "CATEGORY",
                "LOCATION",
                "SAFEGUARD",
                "STATUS",
                "APPROVAL",
                "COMPLIANCE",
                "OBJ.",
            ]
            .map(Cell::from),
        )
        .style(t.header);
        let rows = items
            .iter()
            .enumerate()
            .skip(self.offset)
            .take(height)
            .map(|(i, e)| {
                let flags = if e.flags.is_empty() {
                    Cell::from(Span::styled("ok", t.ok))
                } else {
                    Cell::from(Span::styled(e.flags.join(", "), t.danger))
                };
                let status = match e.status {
                    Status::Proposed => Span::styled("proposed", t.warn),
                    Status::Active if e.pending_change.is_some() => {
                        Span::styled("change pending", t.warn)
                    }
                    Status::Active => Span::styled("active", t.text),
                    Status::Retired => Span::styled("retired", t.dim),
                };
                let approval = match pending_approval(e) {
                    Some((Approval::Pending, _)) => Span::styled("pending", t.danger),
                    Some((Approval::Approved, _)) => Span::styled("approved", t.ok),
                    None => Span::styled("—", t.dim),
                };
                let row = Row::new(vec![
                    Cell::from(e.name.as_str()),
                    Cell::from(e.category.as_str()),
                    Cell::from(e.location.as_str()),
                    Cell::from(e.safeguard.as_str()),
                    Cell::from(status),
                    Cell::from(approval),
                    flags,
                    Cell::from(Span::styled(
                        e.objection_count.to_string(),
                        if e.objection_count > 0 {
                            t.warn
                        } else {
                            t.text
                        },
                    )),
                ]);
                if i == self.selected {
                    row.style(t.selected)
                } else {
                    row
                }
            });
        let widths = [
            Constraint::Fill(3),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Length(14),
            Constraint::Length(8),
            Constraint::Length(26),
            Constraint::Length(4),
        ];
        let title = match &s.registry {
            Some(r) => format!(
                "Sub-processor registry · {} entries · {} pending · {} awaiting approval · {} flagged · notice {} days",
                r.items.len(),
                r.pending,
                r.awaiting_approval,
                r.flagged,
                r.notice_days
            ),
            None => "Sub-processor registry".into(),
        };
        f.render_widget(
            Table::new(rows, widths)
                .header(header)
                .block(panel::block(&title, fresh, t)),
            table,
        );

        let mut lines = Vec::new();
        for e in items {
            let Some(eff) = pending(e) else { continue };
            let countdown = match (format::parse_time(eff), now) {
                (Some(eff), Some(now)) => format!(
                    "effective {} ({})",
                    format::date(&eff),
                    format::relative(&eff, &now)
                ),
                _ => format!("effective {}", format::date_time_str(eff)),
            };
            let what = if e.status == Status::Proposed {
                "new"
            } else {
                "change"
            };
            let approval = match pending_approval(e) {
                Some((Approval::Approved, by)) => Span::styled(
                    match by {
                        Some(by) => format!("  approved by {} ·", s.redactor().ident(by)),
                        None => "  approved ·".into(),
                    },
                    t.ok,
                ),
                _ => Span::styled("  awaiting approval ·", t.danger),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("{} ", e.name), t.header),
                Span::styled(format!("({what}) "), t.dim),
                Span::styled(countdown, t.warn),
            ]));
            let reasons: Vec<String> = e
                .objections
                .iter()
                .map(|o| {
                    s.tenant_row(&o.tenant_id)
                        .map(|r| r.name.clone())
                        .unwrap_or_else(|| s.redactor().tenant_id(&o.tenant_id))
                })
                .collect();
            lines.push(Line::from(vec![
                approval,
                Span::styled(
                    format!(" {} objection(s)", e.objection_count),
                    if e.objection_count > 0 {
                        t.danger
                    } else {
                        t.dim
                    },
                ),
                Span::styled(
                    if reasons.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", reasons.join(", "))
                    },
                    t.text,
                ),
            ]));
        }
        if lines.is_empty() {
            lines.push(Line::styled("no pending changes", t.dim));
        } else if ctx.write {
            lines.push(Line::styled(
                format!(
                    "{} approves the selected entry's pending change (TOTP)",
                    ctx.keymap.keys_label(KeyCommand::Approve)
                ),
                t.dim,
            ));
        }
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Pending changes", fresh, t)),
            changes,
        );

        let mut lines = Vec::new();
        let title = match items.get(self.selected) {
            Some(e) => {
                lines.push(Line::from(vec![
                    Span::styled("purpose ", t.dim),
                    Span::styled(e.purpose.as_str(), t.text),
                ]));
                for h in e.history.iter().rev() {
                    lines.push(Line::from(vec![
                        Span::styled(format!("{} ", format::date_time_str(&h.at)), t.dim),
                        Span::styled(h.event.as_str(), t.text),
                        Span::styled(
                            h.effective_at
                                .as_deref()
                                .map(|e| format!(" (effective {})", format::date_time_str(e)))
                                .unwrap_or_default(),
                            t.dim,
                        ),
                    ]));
                }
                format!("History · {}", e.name)
            }
            None => "History".into(),
        };
        f.render_widget(
            Paragraph::new(lines).block(panel::block(&title, fresh, t)),
            history,
        );
    }
}
