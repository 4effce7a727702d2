//! One tenant, behind `Enter` in the tenants table: identity and DPA,
//! usage, retention dates, per-channel throughput charts (both
//! directions), its newest conversations (metadata only: channel, open or
//! idle, message count, last activity) and the sub-processor objections it
//! has raised.

use c24_api::admin::throughput::Direction;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};

use super::{Component, Ctx};
use crate::action::{Action, WriteAction};
use crate::format;
use crate::keymap::KeyCommand;
use crate::store::{CHANNELS, DetailConversations, Feed, RetentionState};
use crate::widgets::panel;

#[derive(Debug, Default)]
pub struct TenantDetailView;

impl Component for TenantDetailView {
    fn handle_event(&mut self, cmd: KeyCommand, ctx: &Ctx) -> Option<Action> {
        let d = ctx.store.detail.as_ref()?;
        let label = d
            .tenant
            .as_ref()
            .map(|t| ctx.store.redactor().tenant_name(&t.id, &t.name))
            .unwrap_or_else(|| ctx.store.redactor().tenant_id(&d.id));
        let id = d.id.clone();
        match cmd {
            KeyCommand::Back => Some(Action::Back),
            KeyCommand::Suspend => Some(Action::Write(WriteAction::Suspend { id, label })),
            KeyCommand::Resume => Some(Action::Write(WriteAction::Resume { id, label })),
            KeyCommand::Terminate => Some(Action::Write(WriteAction::Terminate { id, label })),
            _ => None,
        }
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let s = ctx.store;
        let r = s.redactor();
        let fresh = s.freshness(Feed::Detail);
        let Some(d) = &s.detail else {
            f.render_widget(
                Paragraph::new("no tenant selected").block(panel::plain("Tenant", t)),
                area,
            );
            return;
        };
        let [info, charts, bottom] = Layout::vertical([
            Constraint::Length(9),
            Constraint::Min(9),
            Constraint::Length(6),
        ])
        .areas(area);
        let [conversations, objections] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(bottom);
        let [ident, usage, retention] = Layout::horizontal([
            Constraint::Percentage(40),
            Constraint::Percentage(25),
            Constraint::Percentage(35),
        ])
        .areas(info);
        let kv = |k: &str, v: String, style| {
            Line::from(vec![
                Span::styled(format!("{k:<15}"), t.dim),
                Span::styled(v, style),
            ])
        };
        let Some(tn) = &d.tenant else {
            f.render_widget(
                Paragraph::new(Line::styled("loading…", t.dim))
                    .block(panel::block("Tenant", fresh, t)),
                area,
            );
            return;
        };
        let status_style = match tn.status {
            crate::store::TenantStatus::Active => t.ok,
            crate::store::TenantStatus::Suspended => t.warn,
            _ => t.danger,
        };
        let lines = vec![
            kv("name", r.tenant_name(&tn.id, &tn.name), t.header),
            kv("id", r.tenant_id(&tn.id), t.text),
            kv("status", tn.status.as_str().into(), status_style),
            match tn.dpa_signed_at {
                Some(at) => kv(
                    "DPA",
                    format!("signed {}", format::date_time_ms(at)),
                    t.text,
                ),
                None => kv("DPA", "NOT SIGNED: ingress refused".into(), t.danger),
            },
            kv("created", format::date_time_ms(tn.created_at), t.text),
            kv("whatsapp", r.ident(&tn.phone_number_id), t.text),
            kv("email", r.ident(&tn.email_address), t.text),
        ];
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Tenant", fresh, t)),
            ident,
        );
        let lines = vec![
            kv("msgs/s", format::rate(f64::from(tn.msgs_per_s)), t.accent),
            kv("open conv.", tn.open_conversations.to_string(), t.text),
            kv("conversations", tn.conversations.to_string(), t.text),
            kv("messages", tn.stored_messages.to_string(), t.text),
            kv("stored", format::bytes(tn.stored_bytes), t.text),
        ];
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Usage", fresh, t)),
            usage,
        );
        let now = s.core_now;
        let mut lines = vec![kv(
            "state",
            tn.retention.as_str().into(),
            super::tenants::retention_style(tn.retention, ctx),
        )];
        if let Some(at) = tn.terminated_at {
            lines.push(kv("terminated", format::date_time_ms(at), t.text));
        }
        if let Some(p) = tn.purge_after {
            let when = match (
                chrono::DateTime::<chrono::Utc>::from_timestamp_millis(p),
                now,
            ) {
                (Some(p), Some(now)) => {
                    format!("{} ({})", format::date_time(&p), format::relative(&p, &now))
                }
                _ => format::date_time_ms(p),
            };
            let style = if tn.retention == RetentionState::Overdue {
                t.danger
            } else {
                t.text
            };
            lines.push(kv("purge after", when, style));
        }
        if let Some(k) = tn.key_destroyed_at {
            lines.push(kv("key destroyed", format::date_time_ms(k), t.dim));
        }
        if tn.terminated_at.is_none() {
            lines.push(kv(
                "end-user data",
                "kept until termination + 30 d".into(),
                t.dim,
            ));
        }
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Retention", fresh, t)),
            retention,
        );

        // Charts: one row per channel, inbound and outbound side by side.
        let block = panel::block("Throughput · last 60 s", fresh, t);
        let inner = block.inner(charts);
        f.render_widget(block, charts);
        let rows = Layout::vertical([Constraint::Ratio(1, 3); 3]).split(inner);
        for (i, ch) in CHANNELS.iter().enumerate() {
            let Some(row) = rows.get(i).copied() else {
                continue;
            };
            let [inb, outb] =
                Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(row);
            for (dir, a) in [(Direction::Inbound, inb), (Direction::Outbound, outb)] {
                let series = d.throughput.as_ref().and_then(|tp| tp.series_of(ch, dir));
                let rate = series.map(|s| s.rate.as_str()).unwrap_or("–");
                let [label, spark] =
                    Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(a);
                f.render_widget(
                    Paragraph::new(Line::from(vec![
                        Span::styled(format!("{ch} {} ", dir.as_str()), t.header),
                        Span::styled(format!("{rate} msg/s"), t.accent),
                    ])),
                    label,
                );
                let data: &[u64] = series.map(|s| s.counts.as_slice()).unwrap_or(&[]);
                let data = crate::widgets::spark::right_aligned(data, spark.width as usize);
                f.render_widget(Sparkline::default().data(&data).style(t.spark), spark);
            }
        }

        let lines: Vec<Line> = match &d.conversations {
            DetailConversations::Loading => vec![Line::styled("loading…", t.dim)],
            DetailConversations::Unavailable => {
                vec![Line::styled("not available from this core", t.dim)]
            }
            DetailConversations::Rows(list) if list.is_empty() => {
                vec![Line::styled("no conversations", t.dim)]
            }
            DetailConversations::Rows(list) => list
                .iter()
                .map(|c| {
                    let n = c.id.len();
                    let short = if r.on {
                        r.ident(&c.id)
                    } else {
                        format!("…{}", &c.id[n.saturating_sub(8)..])
                    };
                    let when = match (
                        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(c.last_activity_at),
                        now,
                    ) {
                        // The core's clock as last seen may lag the
                        // newest activity by a second: not "in <1m".
                        (Some(at), Some(now)) if at >= now => "just now".to_string(),
                        (Some(at), Some(now)) => format::relative(&at, &now),
                        _ => format::date_time_ms(c.last_activity_at),
                    };
                    Line::from(vec![
                        Span::styled(format!("{short:<13}"), t.dim),
                        Span::styled(format!("{:<9}", c.channel), t.text),
                        Span::styled(
                            format!("{:<5}", if c.open { "open" } else { "idle" }),
                            if c.open { t.ok } else { t.dim },
                        ),
                        Span::styled(format!("{:>5} msgs  ", c.message_count), t.text),
                        Span::styled(when, t.dim),
                    ])
                })
                .collect(),
        };
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Conversations · newest", fresh, t)),
            conversations,
        );

        let mut lines = Vec::new();
        if let Some(reg) = &s.registry {
            for e in &reg.items {
                for o in e.objections.iter().filter(|o| o.tenant_id == tn.id) {
                    lines.push(Line::from(vec![
                        Span::styled(format!("{} ", e.name), t.header),
                        Span::styled(format!("({}) ", e.status.as_str()), t.dim),
                        Span::styled(
                            format!(
                                "objected {}: {}",
                                format::date_time_str(&o.at),
                                o.reason.as_deref().unwrap_or("no reason given")
                            ),
                            t.text,
                        ),
                    ]));
                }
            }
        }
        if lines.is_empty() {
            lines.push(Line::styled("no objections to sub-processors", t.dim));
        }
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Objections", s.freshness(Feed::Registry), t)),
            objections,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::action::Action;
    use crate::app::{App, AppOptions};
    use crate::fixtures;
    use crate::keymap::Keymap;
    use crate::snapshot::{render, to_text};
    use crate::store::{DetailConversations, TenantRecord};
    use crate::theme::{Theme, ThemeName};
    use crate::views::Tab;

    /// The detail of tenant 0 with its conversations panel in `convs`.
    fn detail_text(convs: DetailConversations) -> String {
        let now = Instant::now();
        let mut store = fixtures::store_at(12, false, now);
        fixtures::focus_tenant(&mut store, 0, now);
        let mut tp = fixtures::throughput();
        tp.tenant = Some(fixtures::tenant_id(0));
        store.set_detail(TenantRecord::from(fixtures::tenant(0)), &tp, convs, now);
        let mut app = App::new(
            store,
            Theme::for_env(ThemeName::Dark, false),
            Keymap::default(),
            AppOptions {
                write: false,
                endpoint: "http://127.0.0.1:8080".into(),
                context: None,
                contexts: vec!["local".into()],
                demo_totp_secret: None,
            },
        );
        app.apply(Action::SwitchTab(Tab::Tenants));
        app.detail_open = true;
        to_text(&render(&mut app, 120, 36))
    }

    #[test]
    fn a_core_without_the_conversations_route_still_shows_the_rest() {
        let with = detail_text(DetailConversations::Rows(fixtures::conversations(0)));
        let without = detail_text(DetailConversations::Unavailable);
        assert!(
            without.contains("not available from this core"),
            "{without}"
        );
        assert!(!with.contains("not available from this core"), "{with}");
        // Everything outside the conversations panel is drawn as before.
        let name = fixtures::tenant(0).name;
        assert!(without.contains(&name), "{without}");
        for label in ["open conv.", "Conversations · newest"] {
            assert!(without.contains(label), "{label}: {without}");
        }
        assert!(
            with.contains("webchat") && with.contains("12 msgs"),
            "{with}"
        );
    }
}
