//! Tenants: a sortable, filterable table of every tenant. Filtering and
//! sorting happen when the rows or the filter change, never per frame, and
//! only the rows on screen are built, so 10,000 tenants draw as fast as ten.

use std::cmp::Ordering;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{Component, Ctx, move_selection, scroll_offset};
use crate::action::{Action, WriteAction};
use crate::keymap::KeyCommand;
use crate::store::{Feed, RetentionState, Store, TenantRow, TenantStatus};
use crate::widgets::{panel, spark};

/// Sortable columns, in the order `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Name,
    Status,
    Rate,
    Open,
    Stored,
    Retention,
    Created,
}

impl SortBy {
    pub const ALL: [SortBy; 7] = [
        SortBy::Name,
        SortBy::Status,
        SortBy::Rate,
        SortBy::Open,
        SortBy::Stored,
        SortBy::Retention,
        SortBy::Created,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::Status => "status",
            SortBy::Rate => "msgs/s",
            SortBy::Open => "open",
            SortBy::Stored => "stored",
            SortBy::Retention => "retention",
            SortBy::Created => "created",
        }
    }

    pub fn parse(s: &str) -> Option<SortBy> {
        let s = s.trim().to_ascii_lowercase();
        let s = match s.as_str() {
            "rate" | "msgs" => "msgs/s",
            "bytes" | "size" => "stored",
            other => other,
        };
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn next(self) -> SortBy {
        let i = Self::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// Numbers sort biggest first by default, text A→Z.
    fn default_descending(self) -> bool {
        matches!(self, SortBy::Rate | SortBy::Open | SortBy::Stored)
    }

    fn compare(self, a: &TenantRow, b: &TenantRow) -> Ordering {
        let (x, y) = (&a.record, &b.record);
        let primary = match self {
            SortBy::Name => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
            SortBy::Status => x.status.cmp(&y.status),
            SortBy::Rate => x.msgs_per_s.total_cmp(&y.msgs_per_s),
            SortBy::Open => x.open_conversations.cmp(&y.open_conversations),
            SortBy::Stored => x.stored_bytes.cmp(&y.stored_bytes),
            // Overdue first when descending, so the urgent ones lead.
            SortBy::Retention => x.retention.cmp(&y.retention),
            SortBy::Created => x.created_at.cmp(&y.created_at),
        };
        primary
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| x.id.cmp(&y.id))
    }
}

#[derive(Debug)]
pub struct TenantsView {
    pub filter: String,
    pub sort: SortBy,
    pub descending: bool,
    /// Indices into `store.tenants`, filtered and sorted.
    visible: Vec<u32>,
    selected: usize,
    offset: usize,
    page: usize,
    /// The selected tenant's id, kept across re-sorts.
    selected_id: Option<String>,
    seen: Option<(u64, String, SortBy, bool)>,
}

impl Default for TenantsView {
    fn default() -> Self {
        Self {
            filter: String::new(),
            sort: SortBy::Name,
            descending: false,
            visible: Vec::new(),
            selected: 0,
            offset: 0,
            page: 10,
            selected_id: None,
            seen: None,
        }
    }
}

impl TenantsView {
    /// Rows matching the filter.
    pub fn visible_len(&self) -> usize {
        self.visible.len()
    }

    pub fn set_filter(&mut self, f: &str) {
        self.filter = f.to_string();
        self.selected = 0;
        self.offset = 0;
        self.selected_id = None;
    }

    pub fn set_sort(&mut self, by: SortBy) {
        if self.sort == by {
            self.descending = !self.descending;
        } else {
            self.sort = by;
            self.descending = by.default_descending();
        }
    }

    /// The tenant under the cursor.
    pub fn selected_row<'s>(&self, store: &'s Store) -> Option<&'s TenantRow> {
        self.visible
            .get(self.selected)
            .and_then(|&i| store.tenants.get(i as usize))
    }

    fn refilter(&mut self, store: &Store) {
        let words: Vec<String> = self
            .filter
            .split_whitespace()
            .map(|w| w.to_lowercase())
            .collect();
        let mut visible: Vec<u32> = store
            .tenants
            .iter()
            .enumerate()
            .filter(|(_, r)| words.iter().all(|w| r.haystack.contains(w.as_str())))
            .map(|(i, _)| i as u32)
            .collect();
        let by = self.sort;
        let desc = self.descending;
        visible.sort_by(|&a, &b| {
            let o = by.compare(&store.tenants[a as usize], &store.tenants[b as usize]);
            if desc { o.reverse() } else { o }
        });
        self.visible = visible;
        // Keep the cursor on the same tenant if it is still shown.
        if let Some(id) = &self.selected_id
            && let Some(pos) = self
                .visible
                .iter()
                .position(|&i| store.tenants[i as usize].record.id == *id)
        {
            self.selected = pos;
        }
        self.selected = self.selected.min(self.visible.len().saturating_sub(1));
    }

    fn write_for(&self, store: &Store, make: fn(String, String) -> WriteAction) -> Option<Action> {
        let row = self.selected_row(store)?;
        Some(Action::Write(make(row.record.id.clone(), row.name.clone())))
    }
}

fn status_style(s: TenantStatus, ctx: &Ctx) -> Style {
    match s {
        TenantStatus::Active => ctx.theme.ok,
        TenantStatus::Suspended => ctx.theme.warn,
        TenantStatus::Terminated | TenantStatus::Unknown => ctx.theme.danger,
        TenantStatus::Purged => ctx.theme.dim,
    }
}

pub fn retention_style(s: RetentionState, ctx: &Ctx) -> Style {
    match s {
        RetentionState::Overdue => ctx.theme.danger,
        RetentionState::PurgeScheduled => ctx.theme.warn,
        RetentionState::Purged => ctx.theme.dim,
        _ => ctx.theme.text,
    }
}

impl Component for TenantsView {
    fn handle_event(&mut self, cmd: KeyCommand, ctx: &Ctx) -> Option<Action> {
        let store = ctx.store;
        if let Some(sel) = move_selection(self.selected, self.visible.len(), self.page, cmd) {
            self.selected = sel;
            self.selected_id = self.selected_row(store).map(|r| r.record.id.clone());
            return None;
        }
        match cmd {
            KeyCommand::Enter => self
                .selected_row(store)
                .map(|r| Action::OpenTenant(r.record.id.clone())),
            KeyCommand::Sort => {
                let next = self.sort.next();
                self.sort = next;
                self.descending = next.default_descending();
                None
            }
            KeyCommand::SortOrder => {
                self.descending = !self.descending;
                None
            }
            KeyCommand::Back if !self.filter.is_empty() => {
                self.set_filter("");
                None
            }
            KeyCommand::Suspend => {
                self.write_for(store, |id, label| WriteAction::Suspend { id, label })
            }
            KeyCommand::Resume => {
                self.write_for(store, |id, label| WriteAction::Resume { id, label })
            }
            KeyCommand::Terminate => {
                self.write_for(store, |id, label| WriteAction::Terminate { id, label })
            }
            _ => None,
        }
    }

    fn update(&mut self, store: &Store) {
        let key = (
            store.tenants_version(),
            self.filter.clone(),
            self.sort,
            self.descending,
        );
        if self.seen.as_ref() != Some(&key) {
            if self.selected_id.is_none() {
                self.selected_id = self.selected_row(store).map(|r| r.record.id.clone());
            }
            self.refilter(store);
            self.seen = Some(key);
        }
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let store = ctx.store;
        let arrow = if self.descending { "↓" } else { "↑" };
        let title = format!(
            "Tenants · {} of {} · sort {}{}{}",
            self.visible.len(),
            store.tenants.len(),
            self.sort.as_str(),
            arrow,
            if self.filter.is_empty() {
                String::new()
            } else {
                format!(" · filter \"{}\"", self.filter)
            }
        );
        let block = panel::block(&title, store.freshness(Feed::Tenants), t);
        let inner = block.inner(area);
        f.render_widget(block, area);
        if store.tenants.is_empty() {
            let msg = match store.freshness(Feed::Tenants) {
                crate::store::Freshness::Loading => "loading tenants…",
                _ => "no tenants",
            };
            f.render_widget(Paragraph::new(Line::styled(msg, t.dim)), inner);
            return;
        }
        let wide = inner.width >= 110;
        let height = inner.height.saturating_sub(1) as usize;
        self.page = height.max(1);
        self.offset = scroll_offset(self.offset, self.selected, height);
        let header_names: Vec<&str> = if wide {
            vec![
                "NAME",
                "ID",
                "STATUS",
                "DPA",
                "CHANNELS",
                "MSGS/S",
                "TREND",
                "OPEN",
                "STORED",
                "RETENTION",
            ]
        } else {
            vec![
                "NAME",
                "STATUS",
                "DPA",
                "MSGS/S",
                "TREND",
                "OPEN",
                "STORED",
                "RETENTION",
            ]
        };
        let sorted_header = match self.sort {
            SortBy::Name => "NAME",
            SortBy::Status => "STATUS",
            SortBy::Rate => "MSGS/S",
            SortBy::Open => "OPEN",
            SortBy::Stored => "STORED",
            SortBy::Retention => "RETENTION",
            SortBy::Created => "",
        };
        let header = Row::new(header_names.iter().map(|h| {
            if *h == sorted_header {
                Cell::from(format!("{h}{arrow}"))
            } else {
                Cell::from(*h)
            }
        }))
        .style(t.header);
        let spark_w = 12usize;
        let end = (self.offset + height).min(self.visible.len());
        let rows = self.visible[self.offset.min(end)..end]
            .iter()
            .enumerate()
            .map(|(i, &idx)| {
                let r = &store.tenants[idx as usize];
                let rec = &r.record;
                let mut cells = vec![Cell::from(r.name.as_str())];
                if wide {
                    cells.push(Cell::from(Span::styled(r.short_id.as_str(), t.dim)));
                }
                cells.push(Cell::from(Span::styled(
                    rec.status.as_str(),
                    status_style(rec.status, ctx),
                )));
                cells.push(if rec.dpa_signed_at.is_some() {
                    Cell::from(Span::styled("yes", t.text))
                } else {
                    Cell::from(Span::styled("NO", t.danger))
                });
                if wide {
                    cells.push(Cell::from(r.channels));
                }
                cells.push(Cell::from(
                    Line::from(crate::format::rate(f64::from(rec.msgs_per_s))).right_aligned(),
                ));
                cells.push(Cell::from(Span::styled(
                    spark::text(&r.spark, spark_w),
                    t.spark,
                )));
                cells.push(Cell::from(
                    Line::from(rec.open_conversations.to_string()).right_aligned(),
                ));
                cells.push(Cell::from(
                    Line::from(crate::format::bytes(rec.stored_bytes)).right_aligned(),
                ));
                cells.push(Cell::from(Span::styled(
                    rec.retention.as_str(),
                    retention_style(rec.retention, ctx),
                )));
                let row = Row::new(cells);
                if self.offset + i == self.selected {
                    row.style(t.selected)
                } else {
                    row
                }
            });
        let widths: Vec<Constraint> = if wide {
            vec![
                Constraint::Min(16),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(3),
                Constraint::Length(11),
                Constraint::Length(7),
                Constraint::Length(spark_w as u16),
                Constraint::Length(5),
                Constraint::Length(10),
                Constraint::Length(15),
            ]
        } else {
            vec![
                Constraint::Min(12),
                Constraint::Length(10),
                Constraint::Length(3),
                Constraint::Length(7),
                Constraint::Length(spark_w as u16),
                Constraint::Length(5),
                Constraint::Length(10),
                Constraint::Length(15),
            ]
        };
        f.render_widget(Table::new(rows, widths).header(header), inner);
    }
}
