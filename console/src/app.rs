//! The app: which view is in front, the input mode (normal, filter,
//! command line, confirmation, TOTP prompt), the store, and the wiring
//! from keys to [`Action`]s to effects. Effects that need the network
//! (follow a tenant, refresh, a write, another context) are queued as
//! [`Effect`]s for the runner; the app itself never waits on anything.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Tabs, Wrap};

use crate::action::{Action, WriteAction};
use crate::keymap::{KeyCommand, Keymap};
use crate::store::{Link, Store};
use crate::theme::Theme;
use crate::views::audit::AuditView;
use crate::views::compliance::ComplianceView;
use crate::views::help::HelpView;
use crate::views::overview::OverviewView;
use crate::views::retention::RetentionView;
use crate::views::subprocessors::SubprocessorsView;
use crate::views::tenant_detail::TenantDetailView;
use crate::views::tenants::{SortBy, TenantsView};
use crate::views::throughput::ThroughputView;
use crate::views::{Component, Ctx, Tab};
use crate::widgets::{panel, popup};

/// The smallest terminal the views are laid out for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// What the runner must do on the app's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Focus(Option<String>),
    Refresh,
    Write(WriteAction, Option<String>),
    SwitchContext(String),
}

/// The input mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Filter {
        input: String,
    },
    Command {
        input: String,
        completion: Option<(Vec<String>, usize)>,
    },
    Confirm(WriteAction),
    Totp {
        action: WriteAction,
        input: String,
    },
}

/// Codes for the demo's fixed TOTP secret, shown in the prompt so a demo
/// needs no authenticator app. Only ever set by `--demo`.
pub struct DemoTotp {
    pub secret: String,
    totp: totp_rs::TOTP,
    last_step: Option<u64>,
}

impl DemoTotp {
    pub fn new(secret: &str) -> Option<Self> {
        let totp = c24_chatcore::access::totp(secret).ok()?;
        Some(Self {
            secret: secret.to_string(),
            totp,
            last_step: None,
        })
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// A code the core accepts now: this step's, or the next one's if this
    /// step's was used already (each step is good once).
    pub fn code(&self) -> String {
        let now_step = Self::now() / 30;
        let step = match self.last_step {
            Some(s) if s >= now_step => s + 1,
            _ => now_step,
        };
        self.totp.generate(step * 30)
    }

    fn used(&mut self, code: &str) {
        let now_step = Self::now() / 30;
        for step in [now_step, now_step + 1] {
            if self.totp.generate(step * 30) == code {
                self.last_step = Some(step);
            }
        }
    }
}

/// Startup settings the app shows or obeys.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    pub write: bool,
    pub endpoint: String,
    pub context: Option<String>,
    pub contexts: Vec<String>,
    pub demo_totp_secret: Option<String>,
}

pub struct App {
    pub store: Store,
    pub theme: Theme,
    pub keymap: Keymap,
    pub tab: Tab,
    pub detail_open: bool,
    pub help_open: bool,
    pub mode: Mode,
    pub opts: AppOptions,
    overview: OverviewView,
    pub tenants: TenantsView,
    detail: TenantDetailView,
    throughput: ThroughputView,
    retention: RetentionView,
    subprocessors: SubprocessorsView,
    audit: AuditView,
    compliance: ComplianceView,
    help: HelpView,
    demo_totp: Option<DemoTotp>,
    status: Option<String>,
    effects: Vec<Effect>,
    quit: bool,
    /// Bumped by every key handled (the runner redraws on it).
    ui_version: u64,
}

impl App {
    pub fn new(store: Store, theme: Theme, keymap: Keymap, opts: AppOptions) -> Self {
        let demo_totp = opts.demo_totp_secret.as_deref().and_then(DemoTotp::new);
        Self {
            store,
            theme,
            keymap,
            tab: Tab::Overview,
            detail_open: false,
            help_open: false,
            mode: Mode::Normal,
            opts,
            overview: OverviewView,
            tenants: TenantsView::default(),
            detail: TenantDetailView,
            throughput: ThroughputView,
            retention: RetentionView,
            subprocessors: SubprocessorsView::default(),
            audit: AuditView::default(),
            compliance: ComplianceView::default(),
            help: HelpView,
            demo_totp,
            status: None,
            effects: Vec::new(),
            quit: false,
            ui_version: 0,
        }
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    pub fn ui_version(&self) -> u64 {
        self.ui_version
    }

    /// The effects queued since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// After a context switch: a new endpoint, an empty store.
    pub fn reset_for_context(&mut self, store: Store, endpoint: String, context: Option<String>) {
        self.store = store;
        self.opts.endpoint = endpoint;
        self.opts.context = context;
        self.detail_open = false;
        self.tenants = TenantsView::default();
        self.ui_version += 1;
    }

    // --- keys -------------------------------------------------------------

    pub fn on_key(&mut self, ev: KeyEvent) {
        if ev.kind == KeyEventKind::Release {
            return;
        }
        self.ui_version += 1;
        // Keys act on the rows as they are now, drawn or not.
        self.tenants.update(&self.store);
        self.status = None;
        self.store.clear_outcome();
        let mode = std::mem::replace(&mut self.mode, Mode::Normal);
        self.mode = match mode {
            Mode::Normal => {
                self.on_normal_key(&ev);
                // `on_normal_key` may have opened another mode.
                std::mem::replace(&mut self.mode, Mode::Normal)
            }
            Mode::Filter { input } => self.on_filter_key(&ev, input),
            Mode::Command { input, completion } => self.on_command_key(&ev, input, completion),
            Mode::Confirm(action) => match ev.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    if action.needs_totp() {
                        Mode::Totp {
                            action,
                            input: String::new(),
                        }
                    } else {
                        self.effects.push(Effect::Write(action, None));
                        self.status = Some("sent…".into());
                        Mode::Normal
                    }
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    self.status = Some("cancelled".into());
                    Mode::Normal
                }
                _ => Mode::Confirm(action),
            },
            Mode::Totp { action, mut input } => match ev.code {
                KeyCode::Char(c) if c.is_ascii_digit() && input.len() < 8 => {
                    input.push(c);
                    Mode::Totp { action, input }
                }
                KeyCode::Backspace => {
                    input.pop();
                    Mode::Totp { action, input }
                }
                KeyCode::Enter if input.len() >= 6 => {
                    if let Some(d) = &mut self.demo_totp {
                        d.used(&input);
                    }
                    self.effects.push(Effect::Write(action, Some(input)));
                    self.status = Some("sent…".into());
                    Mode::Normal
                }
                KeyCode::Esc => {
                    self.status = Some("cancelled".into());
                    Mode::Normal
                }
                _ => Mode::Totp { action, input },
            },
        };
    }

    fn on_normal_key(&mut self, ev: &KeyEvent) {
        let Some(cmd) = self.keymap.command(ev) else {
            return;
        };
        let action = match cmd {
            KeyCommand::Quit => Some(Action::Quit),
            KeyCommand::Help => Some(Action::ToggleHelp),
            KeyCommand::Command => Some(Action::OpenCommand),
            KeyCommand::Refresh => Some(Action::Refresh),
            KeyCommand::Filter => Some(Action::OpenFilter),
            KeyCommand::Tab1 => Some(Action::SwitchTab(Tab::Overview)),
            KeyCommand::Tab2 => Some(Action::SwitchTab(Tab::Tenants)),
            KeyCommand::Tab3 => Some(Action::SwitchTab(Tab::Throughput)),
            KeyCommand::Tab4 => Some(Action::SwitchTab(Tab::Retention)),
            KeyCommand::Tab5 => Some(Action::SwitchTab(Tab::Subprocessors)),
            KeyCommand::Tab6 => Some(Action::SwitchTab(Tab::Audit)),
            KeyCommand::Tab7 => Some(Action::SwitchTab(Tab::Compliance)),
            KeyCommand::NextTab => Some(Action::SwitchTab(self.tab.next())),
            KeyCommand::PrevTab => Some(Action::SwitchTab(self.tab.prev())),
            KeyCommand::Back if self.help_open => Some(Action::ToggleHelp),
            _ => self.dispatch(cmd),
        };
        if let Some(a) = action {
            self.apply(a);
        }
    }

    fn dispatch(&mut self, cmd: KeyCommand) -> Option<Action> {
        let store = &self.store;
        let ctx = Ctx {
            store,
            theme: &self.theme,
            keymap: &self.keymap,
            write: self.opts.write,
        };
        if self.help_open {
            return self.help.handle_event(cmd, &ctx);
        }
        match self.tab {
            Tab::Overview => self.overview.handle_event(cmd, &ctx),
            Tab::Tenants if self.detail_open => self.detail.handle_event(cmd, &ctx),
            Tab::Tenants => self.tenants.handle_event(cmd, &ctx),
            Tab::Throughput => self.throughput.handle_event(cmd, &ctx),
            Tab::Retention => self.retention.handle_event(cmd, &ctx),
            Tab::Subprocessors => self.subprocessors.handle_event(cmd, &ctx),
            Tab::Audit => self.audit.handle_event(cmd, &ctx),
            Tab::Compliance => self.compliance.handle_event(cmd, &ctx),
        }
    }

    /// Carries out an action.
    pub fn apply(&mut self, a: Action) {
        match a {
            Action::Quit => self.quit = true,
            Action::SwitchTab(t) => {
                self.help_open = false;
                if self.detail_open && t != Tab::Tenants {
                    self.close_detail();
                }
                self.tab = t;
            }
            Action::OpenTenant(id) => {
                self.help_open = false;
                self.tab = Tab::Tenants;
                self.detail_open = true;
                self.store.focus(Some(&id));
                self.effects.push(Effect::Focus(Some(id)));
            }
            Action::Back => {
                if self.help_open {
                    self.help_open = false;
                } else if self.detail_open {
                    self.close_detail();
                }
            }
            Action::ToggleHelp => self.help_open = !self.help_open,
            Action::OpenFilter => {
                self.help_open = false;
                if self.detail_open {
                    self.close_detail();
                }
                self.tab = Tab::Tenants;
                self.mode = Mode::Filter {
                    input: self.tenants.filter.clone(),
                };
            }
            Action::OpenCommand => {
                self.mode = Mode::Command {
                    input: String::new(),
                    completion: None,
                }
            }
            Action::Write(w) => {
                if self.opts.write {
                    self.mode = Mode::Confirm(w);
                } else {
                    self.status = Some(format!("read-only: start with --write to {}", w.verb()));
                }
            }
            Action::Refresh => {
                self.status = Some("refreshing…".into());
                self.effects.push(Effect::Refresh);
            }
            Action::SwitchContext(name) => self.effects.push(Effect::SwitchContext(name)),
            Action::Status(s) => self.status = Some(s),
        }
    }

    fn close_detail(&mut self) {
        self.detail_open = false;
        self.store.focus(None);
        self.effects.push(Effect::Focus(None));
    }

    fn on_filter_key(&mut self, ev: &KeyEvent, mut input: String) -> Mode {
        match ev.code {
            KeyCode::Enter => return Mode::Normal,
            KeyCode::Esc => {
                self.tenants.set_filter("");
                return Mode::Normal;
            }
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => input.push(c),
            _ => {}
        }
        self.tenants.set_filter(&input);
        Mode::Filter { input }
    }

    fn on_command_key(
        &mut self,
        ev: &KeyEvent,
        mut input: String,
        completion: Option<(Vec<String>, usize)>,
    ) -> Mode {
        match ev.code {
            KeyCode::Esc => Mode::Normal,
            KeyCode::Enter => {
                self.run_command(&input);
                // A command may open another mode (a confirmation).
                std::mem::replace(&mut self.mode, Mode::Normal)
            }
            KeyCode::Tab | KeyCode::BackTab => {
                let (list, idx) = match completion {
                    Some((list, i)) if !list.is_empty() => {
                        let n = list.len();
                        let i = if ev.code == KeyCode::BackTab {
                            (i + n - 1) % n
                        } else {
                            (i + 1) % n
                        };
                        (list, i)
                    }
                    _ => (self.completions(&input), 0),
                };
                if let Some(c) = list.get(idx) {
                    input = c.clone();
                }
                Mode::Command {
                    input,
                    completion: Some((list, idx)),
                }
            }
            KeyCode::Backspace => {
                input.pop();
                Mode::Command {
                    input,
                    completion: None,
                }
            }
            KeyCode::Char(c) => {
                input.push(c);
                Mode::Command {
                    input,
                    completion: None,
                }
            }
            _ => Mode::Command { input, completion },
        }
    }

    /// Every full command line that starts with `input`.
    pub fn completions(&self, input: &str) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for t in Tab::ALL {
            all.push(t.command().to_string());
        }
        for c in ["help", "quit", "q", "filter ", "refresh"] {
            all.push(c.to_string());
        }
        for c in SortBy::ALL {
            all.push(format!("sort {}", c.as_str()));
        }
        if self.opts.contexts.is_empty() {
            all.push("ctx ".into());
        }
        for name in &self.opts.contexts {
            all.push(format!("ctx {name}"));
        }
        if self.opts.write {
            for c in ["suspend", "resume", "terminate", "purge", "approve"] {
                all.push(c.to_string());
            }
        }
        if input.starts_with("tenant") {
            for r in self.store.tenants.iter().take(500) {
                all.push(format!("tenant {}", r.name));
            }
        }
        let lower = input.to_lowercase();
        all.into_iter()
            .filter(|c| c.to_lowercase().starts_with(&lower) && c.as_str() != input)
            .take(50)
            .collect()
    }

    /// Runs a `:` command line.
    pub fn run_command(&mut self, line: &str) {
        let line = line.trim();
        let (word, rest) = line
            .split_once(' ')
            .map(|(w, r)| (w, r.trim()))
            .unwrap_or((line, ""));
        if let Some(tab) = Tab::parse(word).filter(|_| rest.is_empty()) {
            self.apply(Action::SwitchTab(tab));
            return;
        }
        match word {
            "" => {}
            "q" | "quit" | "q!" => self.apply(Action::Quit),
            "help" => self.apply(Action::ToggleHelp),
            "refresh" => self.apply(Action::Refresh),
            "ctx" | "context" => {
                if rest.is_empty() {
                    let list = if self.opts.contexts.is_empty() {
                        "no contexts in the config file".to_string()
                    } else {
                        format!("contexts: {}", self.opts.contexts.join(", "))
                    };
                    self.apply(Action::Status(list));
                } else if self.opts.contexts.iter().any(|c| c == rest) {
                    self.apply(Action::SwitchContext(rest.to_string()));
                } else {
                    self.apply(Action::Status(format!("no context named {rest:?}")));
                }
            }
            "filter" => {
                if self.detail_open {
                    self.close_detail();
                }
                self.tab = Tab::Tenants;
                self.tenants.set_filter(rest);
            }
            "sort" => match SortBy::parse(rest) {
                Some(by) => {
                    self.tab = Tab::Tenants;
                    self.tenants.set_sort(by);
                }
                None => self.apply(Action::Status(format!("cannot sort by {rest:?}"))),
            },
            "tenant" => {
                let needle = rest.to_lowercase();
                let found = self
                    .store
                    .tenants
                    .iter()
                    .find(|r| {
                        r.name.to_lowercase() == needle || r.record.id == rest || r.short_id == rest
                    })
                    .or_else(|| {
                        self.store
                            .tenants
                            .iter()
                            .find(|r| r.haystack.contains(&needle))
                    })
                    .map(|r| r.record.id.clone());
                match found {
                    Some(id) => self.apply(Action::OpenTenant(id)),
                    None => self.apply(Action::Status(format!("no tenant matches {rest:?}"))),
                }
            }
            "suspend" | "resume" | "terminate" => {
                let target = if self.detail_open {
                    self.store.detail.as_ref().and_then(|d| {
                        d.tenant.as_ref().map(|t| {
                            (
                                t.id.clone(),
                                self.store.redactor().tenant_name(&t.id, &t.name),
                            )
                        })
                    })
                } else {
                    self.tenants
                        .selected_row(&self.store)
                        .map(|r| (r.record.id.clone(), r.name.clone()))
                };
                match target {
                    Some((id, label)) => {
                        let w = match word {
                            "suspend" => WriteAction::Suspend { id, label },
                            "resume" => WriteAction::Resume { id, label },
                            _ => WriteAction::Terminate { id, label },
                        };
                        self.apply(Action::Write(w));
                    }
                    None => self.apply(Action::Status("select a tenant first".into())),
                }
            }
            "purge" => self.apply(Action::Write(WriteAction::Purge)),
            // The sub-processor selected in its view (tab 5).
            "approve" => {
                let a = self.subprocessors.approve_selected(&self.store);
                self.apply(a);
            }
            other => self.apply(Action::Status(format!(
                "unknown command {other:?} (Tab completes, :help lists them)"
            ))),
        }
    }

    /// Re-ages the store's feeds; call once a second or so.
    pub fn tick(&mut self, now: std::time::Instant) {
        self.store.tick(now);
    }

    // --- drawing ------------------------------------------------------------

    /// Draws the whole screen.
    pub fn draw(&mut self, f: &mut Frame) {
        let area = f.area();
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let msg = format!(
                "Terminal too small: {}×{}. The console needs at least {MIN_WIDTH}×{MIN_HEIGHT}.",
                area.width, area.height
            );
            f.render_widget(
                Paragraph::new(msg)
                    .style(self.theme.warn)
                    .wrap(Wrap { trim: true }),
                area,
            );
            return;
        }
        let [header, tabs, crumb, body, status] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(10),
            Constraint::Length(1),
        ])
        .areas(area);
        self.draw_header(f, header);
        self.draw_tabs(f, tabs);
        self.draw_breadcrumb(f, crumb);
        self.tenants.update(&self.store);
        let ctx = Ctx {
            store: &self.store,
            theme: &self.theme,
            keymap: &self.keymap,
            write: self.opts.write,
        };
        if self.help_open {
            self.help.draw(f, body, &ctx);
        } else {
            match self.tab {
                Tab::Overview => self.overview.draw(f, body, &ctx),
                Tab::Tenants if self.detail_open => self.detail.draw(f, body, &ctx),
                Tab::Tenants => self.tenants.draw(f, body, &ctx),
                Tab::Throughput => self.throughput.draw(f, body, &ctx),
                Tab::Retention => self.retention.draw(f, body, &ctx),
                Tab::Subprocessors => self.subprocessors.draw(f, body, &ctx),
                Tab::Audit => self.audit.draw(f, body, &ctx),
                Tab::Compliance => self.compliance.draw(f, body, &ctx),
            }
        }
        self.draw_status(f, status);
        self.draw_popup(f, body);
    }

    fn draw_header(&self, f: &mut Frame, area: Rect) {
        let t = &self.theme;
        let r = self.store.redactor();
        let target = match (&self.opts.context, r.on) {
            (Some(c), _) => format!("ctx {c}"),
            (None, true) => "endpoint hidden".into(),
            (None, false) => self.opts.endpoint.clone(),
        };
        let link = match &self.store.link {
            Link::Connecting => Span::styled("… connecting", t.dim),
            Link::Live => Span::styled("● live", t.ok),
            Link::Polling => Span::styled("● polling (event stream down)", t.warn),
            Link::Down {
                attempt,
                retry_s,
                error,
            } => Span::styled(
                format!("✗ core unreachable ({error}) · retry #{attempt} in {retry_s}s"),
                t.danger,
            ),
        };
        let badge = if self.opts.write {
            Span::styled(" WRITE ", t.badge_write)
        } else {
            Span::styled(" read-only ", t.badge_read)
        };
        let mut spans = vec![
            Span::styled("c24 console ", t.title),
            badge,
            Span::styled(format!(" {target} "), t.text),
            link,
        ];
        if let Some(now) = &self.store.core_now {
            spans.push(Span::styled(
                format!("  core clock {}", crate::format::date_time(now)),
                t.dim,
            ));
        }
        if self.demo_totp.is_some() && self.opts.write {
            spans.push(Span::styled(
                "  demo: TOTP codes are shown in the prompt",
                t.dim,
            ));
        }
        f.render_widget(Paragraph::new(Line::from(spans)), area);
    }

    fn draw_tabs(&self, f: &mut Frame, area: Rect) {
        let t = &self.theme;
        let titles: Vec<Line> = Tab::ALL
            .iter()
            .enumerate()
            .map(|(i, tab)| Line::from(format!("{} {}", i + 1, tab.title())))
            .collect();
        f.render_widget(
            Tabs::new(titles)
                .select(self.tab.index())
                .style(t.tab)
                .highlight_style(t.tab_active)
                .divider("│"),
            area,
        );
    }

    fn draw_breadcrumb(&self, f: &mut Frame, area: Rect) {
        let t = &self.theme;
        let mut spans = vec![Span::styled(self.tab.title(), t.accent)];
        if self.tab == Tab::Tenants && self.detail_open {
            let name = self
                .store
                .detail
                .as_ref()
                .map(|d| match &d.tenant {
                    Some(tn) => self.store.redactor().tenant_name(&tn.id, &tn.name),
                    None => self.store.redactor().tenant_id(&d.id),
                })
                .unwrap_or_default();
            spans.push(Span::styled(" › ", t.dim));
            spans.push(Span::styled(name, t.header));
            spans.push(Span::styled("   (Esc back)", t.dim));
        }
        if self.help_open {
            spans.push(Span::styled(" › Help", t.header));
        }
        f.render_widget(Paragraph::new(Line::from(spans)), area);
    }

    fn draw_status(&self, f: &mut Frame, area: Rect) {
        let t = &self.theme;
        let k = &self.keymap;
        let line = match &self.mode {
            Mode::Filter { input } => Line::from(vec![
                Span::styled("/", t.input),
                Span::styled(input.as_str(), t.input),
                Span::styled("█", t.input),
                Span::styled("   Enter keeps · Esc clears", t.dim),
            ]),
            Mode::Command { input, completion } => {
                let mut spans = vec![
                    Span::styled(":", t.input),
                    Span::styled(input.as_str(), t.input),
                    Span::styled("█", t.input),
                ];
                if let Some((list, i)) = completion {
                    let shown: Vec<String> = list
                        .iter()
                        .take(8)
                        .enumerate()
                        .map(|(j, c)| if j == *i { format!("[{c}]") } else { c.clone() })
                        .collect();
                    spans.push(Span::styled(format!("   {}", shown.join("  ")), t.dim));
                } else {
                    spans.push(Span::styled(
                        "   Tab completes · Enter runs · Esc cancels",
                        t.dim,
                    ));
                }
                Line::from(spans)
            }
            _ => {
                if let Some(o) = &self.store.outcome {
                    Line::from(Span::styled(
                        format!("{} {}", if o.ok { "✓" } else { "✗" }, o.text),
                        if o.ok { t.ok } else { t.danger },
                    ))
                } else if let Some(s) = &self.status {
                    Line::from(Span::styled(s.as_str(), t.warn))
                } else {
                    let hint = |cmd, what: &str| format!("{} {what}", k.keys_label(cmd));
                    let mut parts = vec![
                        hint(KeyCommand::Help, "help"),
                        hint(KeyCommand::Filter, "filter"),
                        hint(KeyCommand::Sort, "sort"),
                        hint(KeyCommand::Command, "command"),
                        "1-7 views".to_string(),
                        hint(KeyCommand::Quit, "quit"),
                    ];
                    if self.tab == Tab::Tenants && !self.detail_open {
                        parts.insert(0, hint(KeyCommand::Enter, "open"));
                    }
                    Line::styled(parts.join(" · "), t.dim)
                }
            }
        };
        f.render_widget(Paragraph::new(line), area);
    }

    fn draw_popup(&self, f: &mut Frame, body: Rect) {
        let t = &self.theme;
        let (title, lines) = match &self.mode {
            Mode::Confirm(a) => (
                "Confirm",
                vec![
                    Line::styled(a.question(), t.warn),
                    Line::default(),
                    Line::styled(
                        if a.needs_totp() {
                            "y: continue (a TOTP code is asked next) · n/Esc: cancel"
                        } else {
                            "y: do it · n/Esc: cancel"
                        },
                        t.text,
                    ),
                ],
            ),
            Mode::Totp { action, input } => {
                let mut lines = vec![
                    Line::styled(
                        format!("{}: this action needs a second factor.", action.verb()),
                        t.text,
                    ),
                    Line::from(vec![
                        Span::styled("TOTP code: ", t.text),
                        Span::styled(format!("{input}█"), t.input),
                    ]),
                ];
                if let Some(d) = &self.demo_totp {
                    lines.push(Line::styled(
                        format!("demo secret {} · current code {}", d.secret, d.code()),
                        t.dim,
                    ));
                }
                lines.push(Line::styled("Enter: send · Esc: cancel", t.dim));
                ("Second factor", lines)
            }
            _ => return,
        };
        let area = popup::centered(body, 72.min(body.width), lines.len() as u16 + 4);
        f.render_widget(Clear, area);
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(panel::plain(title, t)),
            area,
        );
    }
}
