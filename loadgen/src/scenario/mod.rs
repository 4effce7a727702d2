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

/// A chat channel the load generator can drive (the contract crate's names).
pub use c24_api::Channel;

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
    pub scenarios: Vec<Scenario>,
    pub feeders: Vec<Feeder>,
    pub thresholds: Vec<Threshold>,
    /// Seed of every random draw (Poisson gaps, think times, feeders), so a
    /// run can be repeated.
    pub seed: u64,
}

impl Plan {
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
    },
    /// The visitor pauses.
    Think(ThinkDist),
    /// An agent answers through the agent API.
    AgentReply { text: Template, timeout: Duration },
    /// Wait for the agent's reply to arrive on the visitor's socket.
    Expect { timeout: Duration },
    /// Drop the socket, reconnect and resume the conversation.
    Reconnect { timeout: Duration },
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Send { .. } => "send",
            Step::Think(_) => "think",
            Step::AgentReply { .. } => "agent_reply",
            Step::Expect { .. } => "expect",
            Step::Reconnect { .. } => "reconnect",
        }
    }
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
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Literal(String),
    Field(Field),
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
