//! What a scenario file describes, once validated: tenants, traffic models,
//! conversation scripts per channel, feeders and thresholds.
//!
//! [`parse`] turns a TOML file into a [`Plan`] and names the file, line and
//! key of every mistake; nothing here touches the network.

pub mod parse;

use std::path::PathBuf;
use std::time::Duration;

use crate::thresholds::Threshold;

pub use parse::{ScenarioError, ScenarioErrors, load, parse_str};

/// A channel the load generator can drive: the chat core's three (the
/// contract crate's names), and the two a scenario describes itself for any
/// other chat core, `http` and `ws` (generic steps, see [`HttpStep`], [`WsStep`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Webchat,
    Whatsapp,
    Email,
    /// Generic HTTP requests described in the scenario.
    Http,
    /// A generic JSON WebSocket protocol described in the scenario.
    Ws,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Webchat,
        Channel::Whatsapp,
        Channel::Email,
        Channel::Http,
        Channel::Ws,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webchat => "webchat",
            Channel::Whatsapp => "whatsapp",
            Channel::Email => "email",
            Channel::Http => "http",
            Channel::Ws => "ws",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The chat core's channel this is, unless it is a generic one.
    pub fn builtin(self) -> Option<c24_api::Channel> {
        match self {
            Channel::Webchat => Some(c24_api::Channel::Webchat),
            Channel::Whatsapp => Some(c24_api::Channel::Whatsapp),
            Channel::Email => Some(c24_api::Channel::Email),
            Channel::Http | Channel::Ws => None,
        }
    }

    /// `http` and `ws`: described by the scenario, not by a built-in driver.
    pub fn is_generic(self) -> bool {
        self.builtin().is_none()
    }
}

impl From<c24_api::Channel> for Channel {
    fn from(c: c24_api::Channel) -> Self {
        match c {
            c24_api::Channel::Webchat => Channel::Webchat,
            c24_api::Channel::Whatsapp => Channel::Whatsapp,
            c24_api::Channel::Email => Channel::Email,
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated scenario file.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file it came from (feeder paths are relative to its folder).
    pub path: PathBuf,
    pub name: String,
    /// Length of the traffic phase (arrivals stop after it).
    pub duration: Duration,
    /// How long conversations still running at the end may take to finish
    /// before they are cut and counted as interrupted.
    pub grace: Duration,
    /// Default wait for an ack, a webhook answer or a push.
    pub timeout: Duration,
    pub tenants: TenantSpec,
    /// `[tenants] channels`: the chat-core channels the tenants get; the
    /// credentials of the others are withheld from the drivers. Empty: all.
    pub tenant_channels: Vec<Channel>,
    pub scenarios: Vec<Scenario>,
    pub feeders: Vec<Feeder>,
    pub thresholds: Vec<Threshold>,
    /// Seed of every random draw (Poisson gaps, think times, feeders), so a
    /// run can be repeated.
    pub seed: u64,
}

impl Plan {
    /// Whether the run needs tenants of a c24 core: a built-in channel is
    /// scripted, or a template reads tenant credentials.
    pub fn needs_tenants(&self) -> bool {
        self.scenarios.iter().any(|s| {
            s.scripts.iter().any(|sc| {
                !sc.channel.is_generic()
                    || sc
                        .steps
                        .iter()
                        .any(|st| st.templates().any(|t| t.uses(Field::is_tenant)))
            })
        })
    }

    /// Whether the run needs a target at all: tenants, or `{target}` /
    /// `{ws_target}` in a template. A scenario of generic steps with their
    /// own absolute URLs needs none (no core is started or probed).
    pub fn uses_target(&self) -> bool {
        self.needs_tenants()
            || self.scenarios.iter().any(|s| {
                s.scripts.iter().any(|sc| {
                    sc.steps.iter().any(|st| {
                        st.templates()
                            .any(|t| t.uses(|f| matches!(f, Field::Target | Field::WsTarget)))
                    })
                })
            })
    }

    /// The arrival rate asked at time `t` into the run, summed over open scenarios.
    pub fn asked_rate_at(&self, t: Duration) -> f64 {
        self.scenarios
            .iter()
            .map(|s| match &s.model {
                Model::Open { schedule, .. } => schedule.rate_at(t.as_secs_f64()),
                Model::Closed { .. } => 0.0,
            })
            .sum()
    }
}

/// Which tenants the traffic goes to.
#[derive(Debug, Clone)]
pub enum TenantSpec {
    /// Create this many through the admin API (`POST /admin/v1/tenants`).
    Provision { count: u32, name_prefix: String },
    /// Existing tenants whose credentials (the 201 answers of their creation,
    /// as a JSON array) are in a file; optionally only the listed ids.
    Existing {
        file: PathBuf,
        tenants: Vec<c24_api::admin::tenants::TenantCreated>,
    },
}

/// One traffic model with its own channel mix and scripts.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub model: Model,
    /// Share of new conversations per channel; shares sum to 1.
    pub mix: Vec<(Channel, f64)>,
    /// One script per channel in the mix.
    pub scripts: Vec<Script>,
    /// Conversations in flight at most (open model); arrivals beyond it are
    /// dropped and counted, as k6 counts dropped iterations.
    pub max_conversations: usize,
}

impl Scenario {
    pub fn script(&self, channel: Channel) -> Option<&Script> {
        self.scripts.iter().find(|s| s.channel == channel)
    }
}

/// How conversations arrive.
#[derive(Debug, Clone)]
pub enum Model {
    /// New conversations per second, independent of how fast the target answers.
    Open {
        schedule: crate::schedule::OpenSchedule,
        arrivals: Arrivals,
    },
    /// N visitors, each starting its next conversation when the last ended.
    Closed { visitors: u32 },
}

/// Spacing of arrivals in an open model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    /// Evenly spaced: the n-th at exactly Λ⁻¹(n).
    Uniform,
    /// A Poisson process: exponential gaps at the asked (possibly ramping) rate.
    Poisson,
}

/// One stage of an open model: the rate goes from `from` to `to` over `duration`
/// (a constant stage has `from == to`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub from: f64,
    pub to: f64,
    pub duration: Duration,
}

/// A conversation script for one channel.
#[derive(Debug, Clone)]
pub struct Script {
    pub channel: Channel,
    pub steps: Vec<Step>,
}

/// One step of a conversation.
#[derive(Debug, Clone)]
pub enum Step {
    /// The visitor sends a message.
    Send {
        text: Template,
        /// Pad or cut the text to a size drawn from this.
        size: Option<SizeDist>,
        /// Email only: the subject of the first message.
        subject: Option<Template>,
        timeout: Duration,
        /// WhatsApp and email: after the answer, poll the agent API until
        /// the message is readable there (metric `visible`).
        visible: bool,
    },
    /// The visitor pauses.
    Think(ThinkDist),
    /// An agent answers through the agent API.
    AgentReply { text: Template, timeout: Duration },
    /// Wait for the agent's reply to arrive on the visitor's socket.
    Expect { timeout: Duration },
    /// Drop the socket, reconnect and resume the conversation.
    Reconnect { timeout: Duration },
    /// The next step is due this long after the conversation's first was
    /// (replay's recorded timing; not written in scenario files).
    At(Duration),
    /// A generic HTTP request (channel `http`).
    Http(Box<HttpStep>),
    /// A generic WebSocket frame and its matching reply (channel `ws`).
    Ws(Box<WsStep>),
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Send { .. } => "send",
            Step::Think(_) => "think",
            Step::AgentReply { .. } => "agent_reply",
            Step::Expect { .. } => "expect",
            Step::Reconnect { .. } => "reconnect",
            Step::At(_) => "at",
            Step::Http(_) => "http",
            Step::Ws(_) => "ws",
        }
    }

    /// Every template of the step.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        let list: Vec<&Template> = match self {
            Step::Send { text, subject, .. } => std::iter::once(text).chain(subject).collect(),
            Step::Think(_) | Step::At(_) | Step::Expect { .. } | Step::Reconnect { .. } => {
                Vec::new()
            }
            Step::AgentReply { text, .. } => vec![text],
            Step::Http(h) => {
                let mut v = vec![&h.url];
                v.extend(h.headers.iter().map(|(_, t)| t));
                v.extend(h.body.iter().chain(h.text.iter()));
                if let Some(s) = &h.sign {
                    v.push(&s.secret);
                    v.push(&s.over);
                }
                v
            }
            Step::Ws(w) => {
                let mut v = vec![&w.url, &w.frame];
                v.extend(w.headers.iter().map(|(_, t)| t));
                v.extend(w.text.iter());
                v
            }
        };
        list.into_iter()
    }
}

/// A generic HTTP request: `{ http = "POST", url = "...", headers = {...},
/// body = "...", sign = {...} }`. Metric `http`: request sent → response read.
#[derive(Debug, Clone)]
pub struct HttpStep {
    pub method: String,
    pub url: Template,
    /// In the order written; values are templates.
    pub headers: Vec<(String, Template)>,
    pub body: Option<Template>,
    /// The message text `{text}` stands for in the body (drawn to `size`).
    pub text: Option<Template>,
    pub size: Option<SizeDist>,
    pub sign: Option<SignRule>,
    /// Statuses that count as success (default: any 2xx).
    pub status: Vec<u16>,
    pub timeout: Duration,
}

/// HMAC-SHA256 over a template of `{timestamp}` and `{body}`, put into a header.
#[derive(Debug, Clone)]
pub struct SignRule {
    pub secret: Template,
    /// What is signed, e.g. `{body}` (Meta) or `{timestamp}.{body}` (c24 email).
    pub over: Template,
    pub header: String,
    pub encoding: SignEncoding,
    /// Written before the digest, e.g. `sha256=`.
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignEncoding {
    Hex,
    Base64,
}

/// A generic WebSocket exchange: `{ ws = "FRAME", url = "...", correlate =
/// "/id", reply_correlate = "/re" }`. The socket to `url` opens at the first
/// step that names it (metric `connect`) and stays open; the step sends the
/// frame and waits for the first reply whose value at `reply_correlate`
/// equals the sent frame's at `correlate` (metric `reply`).
#[derive(Debug, Clone)]
pub struct WsStep {
    pub url: Template,
    /// Handshake headers.
    pub headers: Vec<(String, Template)>,
    pub frame: Template,
    pub text: Option<Template>,
    pub size: Option<SizeDist>,
    /// JSON pointer into the sent frame; `None`: the next frame is the reply.
    pub correlate: Option<String>,
    /// JSON pointer into replies (default: `correlate`).
    pub reply_correlate: Option<String>,
    /// Wait for a reply at all (`false`: send only).
    pub await_reply: bool,
    pub timeout: Duration,
}

/// A pause length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThinkDist {
    Fixed(Duration),
    Uniform(Duration, Duration),
    /// Exponential with this mean.
    Exp(Duration),
}

impl ThinkDist {
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        match *self {
            ThinkDist::Fixed(d) => d,
            ThinkDist::Uniform(a, b) => a + (b - a).mul_f64(rng.f64()),
            ThinkDist::Exp(mean) => mean.mul_f64(exp1(rng)),
        }
    }
}

/// A message size in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SizeDist {
    Fixed(u64),
    Uniform(u64, u64),
    /// Exponential with this mean, capped at `cap`.
    Exp {
        mean: u64,
        cap: u64,
    },
}

impl SizeDist {
    pub fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let n = match *self {
            SizeDist::Fixed(n) => n,
            SizeDist::Uniform(a, b) => rng.u64(a..=b),
            SizeDist::Exp { mean, cap } => ((mean as f64 * exp1(rng)) as u64).min(cap),
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// The largest size it can produce.
    pub fn max(&self) -> u64 {
        match *self {
            SizeDist::Fixed(n) => n,
            SizeDist::Uniform(_, b) => b,
            SizeDist::Exp { cap, .. } => cap,
        }
    }
}

/// A draw from the exponential distribution with mean 1.
pub fn exp1(rng: &mut fastrand::Rng) -> f64 {
    // 1 - U is in (0, 1], so the logarithm is finite.
    -(1.0 - rng.f64()).ln()
}

/// Text with `{field}` holes, filled per conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    pub fn literal(s: &str) -> Self {
        Template {
            parts: vec![Part::Literal(s.to_string())],
        }
    }

    /// Whether any field of the template satisfies `f`.
    pub fn uses(&self, f: impl Fn(&Field) -> bool) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Literal(_) => false,
            Part::Field(x) | Part::JsonField(x) => f(x),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Literal(String),
    Field(Field),
    /// `{field|json}`: the value escaped for a JSON string (without quotes).
    JsonField(Field),
}

/// What a `{hole}` in a template is filled with.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A feeder's value; `column` picks one column of a CSV/JSONL record.
    Feeder { feeder: usize, column: usize },
    /// `{visitor}`: this conversation's visitor id.
    Visitor,
    /// `{n}`: this conversation's number in its scenario.
    Number,
    /// `{seq}`: the message's number within the conversation, from 1.
    Seq,
    /// `{uuid}`: a fresh random id each time.
    Uuid,
    /// `{tenant}`: the tenant's name.
    Tenant,
    /// `{tenant.id}`, `{tenant.whatsapp.app_secret}`, …: a credential of the
    /// conversation's tenant, as provisioning returned it.
    TenantCred(TenantCred),
    /// `{target}`: the target's base URL (`--target`, or the embedded core).
    Target,
    /// `{ws_target}`: the same as `ws://…`/`wss://…`.
    WsTarget,
    /// `{phone}`: a phone number stable per conversation (the one the
    /// built-in WhatsApp driver sends from).
    Phone,
    /// `{timestamp}`: Unix seconds, one value per request (http steps).
    Timestamp,
    /// `{text}`: the step's message text, drawn to its size (http/ws steps).
    Text,
    /// `{body}`: the rendered body (only in `sign.over`).
    Body,
}

impl Field {
    pub fn is_tenant(&self) -> bool {
        matches!(self, Field::Tenant | Field::TenantCred(_))
    }
}

/// A tenant credential a template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantCred {
    Id,
    ApiKey,
    WidgetKey,
    PhoneNumberId,
    AppSecret,
    VerifyToken,
    EmailAddress,
    SigningKey,
}

impl TenantCred {
    pub const ALL: [(&'static str, TenantCred); 8] = [
        ("tenant.id", TenantCred::Id),
        ("tenant.api_key", TenantCred::ApiKey),
        ("tenant.webchat.widget_key", TenantCred::WidgetKey),
        ("tenant.whatsapp.phone_number_id", TenantCred::PhoneNumberId),
        ("tenant.whatsapp.app_secret", TenantCred::AppSecret),
        ("tenant.whatsapp.verify_token", TenantCred::VerifyToken),
        ("tenant.email.address", TenantCred::EmailAddress),
        ("tenant.email.signing_key", TenantCred::SigningKey),
    ];

    pub fn of(self, t: &c24_api::admin::tenants::TenantCreated) -> &str {
        match self {
            TenantCred::Id => &t.id,
            TenantCred::ApiKey => &t.api_key,
            TenantCred::WidgetKey => &t.channels.webchat.widget_key,
            TenantCred::PhoneNumberId => &t.channels.whatsapp.phone_number_id,
            TenantCred::AppSecret => &t.channels.whatsapp.app_secret,
            TenantCred::VerifyToken => &t.channels.whatsapp.verify_token,
            TenantCred::EmailAddress => &t.channels.email.address,
            TenantCred::SigningKey => &t.channels.email.signing_key,
        }
    }
}

/// A source of template values: rows from a file, or generated.
#[derive(Debug, Clone)]
pub struct Feeder {
    pub name: String,
    pub source: FeederSource,
    pub order: FeederOrder,
}

#[derive(Debug, Clone)]
pub enum FeederSource {
    /// Records read from a CSV or JSONL file (or given inline): column names and rows.
    Records {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// An integer drawn uniformly from the range (inclusive).
    Int { min: i64, max: i64 },
    /// `count` words from a fixed Dutch/English list.
    Words { min: usize, max: usize },
    /// A random UUID.
    Uuid,
}

impl FeederSource {
    /// The column index a `{feeder.column}` reference means, if it exists.
    pub fn column(&self, name: Option<&str>, feeder_name: &str) -> Option<usize> {
        match self {
            FeederSource::Records { columns, .. } => match name {
                Some(n) => columns.iter().position(|c| c == n),
                None => Some(columns.iter().position(|c| c == feeder_name).unwrap_or(0)),
            },
            _ => match name {
                None => Some(0),
                Some(_) => None,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeederOrder {
    /// Rows in file order, wrapping around.
    Sequential,
    Random,
}
