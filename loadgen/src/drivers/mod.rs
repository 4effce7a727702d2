//! Channel drivers: each plays one conversation script against the target,
//! recording into its worker's [`Recorder`](crate::metrics::Recorder).
//!
//! - [`webchat`]: a visitor's WebSocket (handshake, send → durable ack,
//!   agent reply → push, reconnect and resume), frames built per send.
//! - [`whatsapp`]: Meta notification payloads signed with `X-Hub-Signature-256`.
//! - [`email`]: raw RFC 5322 messages with threading headers, signed.
//! - [`generic_http`], [`generic_ws`]: channels a scenario describes itself
//!   (`http` and `ws` steps), for chat cores other than ours.
//!
//! A conversation carries its *intended* time forward: the first step is due
//! at the arrival's scheduled time, each later one when the previous step
//! ended (plus any think time), and every latency is measured from that.

pub mod email;
pub mod generic_http;
pub mod generic_ws;
pub mod webchat;
pub mod whatsapp;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use c24_api::admin::tenants::TenantCreated;

use crate::metrics::{Metric, MetricKey, Recorder};
use crate::scenario::{
    Channel, Feeder, FeederOrder, FeederSource, Field, Part, Plan, SizeDist, Step, Template,
};

/// What every conversation on one worker thread shares. Single-threaded
/// (`Rc`/`RefCell`): a worker's conversations never cross threads, so the
/// send path takes no lock.
pub struct WorkerEnv {
    pub plan: Arc<Plan>,
    pub tenants: Arc<Vec<TenantCreated>>,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub http_base: String,
    /// `ws://127.0.0.1:PORT`.
    pub ws_base: String,
    pub http: reqwest::Client,
    pub rec: RefCell<Recorder>,
    pub rng: RefCell<fastrand::Rng>,
    /// Per feeder: the next row for sequential feeders.
    pub feeder_cursor: RefCell<Vec<usize>>,
    /// This worker's number among all workers of all shards, and how many
    /// there are (sequential feeders stride by it).
    pub worker: usize,
    pub workers: usize,
    /// Prefix making every id of this run unique (the core de-duplicates).
    pub run_id: String,
    /// Conversations in flight, per scenario.
    pub in_flight: Vec<Cell<usize>>,
    /// Trust for `wss://` sockets (`--ca-file`); `None`: the system's roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl WorkerEnv {
    fn draw(&self, feeder: usize) -> Vec<String> {
        let Some(f) = self.plan.feeders.get(feeder) else {
            return Vec::new();
        };
        let mut rng = self.rng.borrow_mut();
        draw(
            f,
            feeder,
            &mut rng,
            &mut self.feeder_cursor.borrow_mut(),
            self.workers,
        )
    }
}

fn draw(
    f: &Feeder,
    idx: usize,
    rng: &mut fastrand::Rng,
    cursors: &mut [usize],
    stride: usize,
) -> Vec<String> {
    match &f.source {
        FeederSource::Records { rows, .. } => {
            if rows.is_empty() {
                return Vec::new();
            }
            let i = match f.order {
                FeederOrder::Random => rng.usize(..rows.len()),
                FeederOrder::Sequential => {
                    let c = cursors.get(idx).copied().unwrap_or(0);
                    if let Some(slot) = cursors.get_mut(idx) {
                        *slot = c.wrapping_add(stride.max(1));
                    }
                    c % rows.len()
                }
            };
            rows[i].clone()
        }
        FeederSource::Int { min, max } => vec![rng.i64(*min..=*max).to_string()],
        FeederSource::Words { min, max } => {
            let n = rng.usize(*min..=*max);
            let mut s = String::new();
            for i in 0..n {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(WORDS[rng.usize(..WORDS.len())]);
            }
            vec![s]
        }
        FeederSource::Uuid => vec![uuid::Uuid::new_v4().to_string()],
    }
}

const WORDS: [&str; 32] = [
    "bestelling",
    "order",
    "levering",
    "delivery",
    "factuur",
    "invoice",
    "retour",
    "return",
    "pakket",
    "parcel",
    "adres",
    "address",
    "vraag",
    "question",
    "status",
    "account",
    "wachtwoord",
    "password",
    "betaling",
    "payment",
    "korting",
    "discount",
    "maat",
    "size",
    "kleur",
    "colour",
    "morgen",
    "tomorrow",
    "graag",
    "please",
    "dank",
    "thanks",
];

/// Filler for padding a message up to a drawn size.
const FILLER: &str = " lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod";

/// Why a conversation stopped early; the kind names the error counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailed {
    pub kind: String,
}

impl StepFailed {
    pub fn new(kind: impl Into<String>) -> Self {
        StepFailed { kind: kind.into() }
    }
}

/// One conversation being played.
pub struct Conversation {
    pub env: Rc<WorkerEnv>,
    pub scenario: u16,
    pub channel: Channel,
    /// The arrival's number in its scenario.
    pub number: u64,
    pub tenant: usize,
    pub visitor: String,
    /// When the next step is due (wrk2's rule: latencies count from here).
    pub due: Instant,
    /// When the first step was due (replay's `At` steps count from here).
    pub origin: Instant,
    /// Messages sent so far.
    pub seq: u32,
    /// Feeder records drawn for this conversation, by feeder.
    values: Vec<Option<Vec<String>>>,
}

impl Conversation {
    pub fn new(
        env: Rc<WorkerEnv>,
        scenario: u16,
        channel: Channel,
        number: u64,
        due: Instant,
    ) -> Self {
        let tenant = if env.tenants.is_empty() {
            0
        } else {
            (number % env.tenants.len() as u64) as usize
        };
        let visitor = format!("lg{}-{scenario}-{number}", env.run_id);
        let feeders = env.plan.feeders.len();
        Conversation {
            env,
            scenario,
            channel,
            number,
            tenant,
            visitor,
            due,
            origin: due,
            seq: 0,
            values: vec![None; feeders],
        }
    }

    pub fn tenant(&self) -> Option<&TenantCreated> {
        self.env.tenants.get(self.tenant)
    }

    pub fn key(&self, metric: Metric, step: Option<usize>) -> MetricKey {
        MetricKey {
            scenario: self.scenario,
            channel: self.channel,
            metric,
            step: step.map(|s| u16::try_from(s).unwrap_or(u16::MAX)),
        }
    }

    /// Waits until the next step is due and returns when it actually began;
    /// lateness beyond the timer's grain is the generator's own lag.
    pub async fn start_step(&mut self) -> Instant {
        self.wait_due().await;
        let now = Instant::now();
        self.env
            .rec
            .borrow_mut()
            .operation(self.scenario, self.channel);
        now
    }

    /// Sleeps until the step is due (recording the timer's lateness). A
    /// signed request is built after this, so its timestamp is the sending
    /// time and not the end of the previous step (a replayed email minutes
    /// after the last one would otherwise arrive with an expired signature).
    pub async fn wait_due(&mut self) {
        if self.due > Instant::now() {
            tokio::time::sleep_until(self.due.into()).await;
            // Only a wake-up from a timer says how late the generator runs; a
            // step that follows its predecessor at once would only dilute that.
            let lag = Instant::now().saturating_duration_since(self.due);
            self.env.rec.borrow_mut().lag(lag);
        }
    }

    /// Records one latency sample measured from the step's due time.
    pub fn record(&self, metric: Metric, step: Option<usize>, sent: Instant, done: Instant) {
        self.env
            .rec
            .borrow_mut()
            .latency(self.key(metric, step), self.due, sent, done);
    }

    pub fn error(&self, kind: &str) {
        self.env
            .rec
            .borrow_mut()
            .error(self.scenario, self.channel, kind);
    }

    /// A `think` or `at` step, paced alike on every channel (any other
    /// step: nothing).
    pub fn pace(&mut self, step: &Step) {
        match step {
            Step::Think(d) => {
                let d = d.sample(&mut self.env.rng.borrow_mut());
                self.think(d);
            }
            Step::At(d) => self.at(*d),
            _ => {}
        }
    }

    /// A think step: the next step is due this much after the last one ended.
    pub fn think(&mut self, d: Duration) {
        self.due += d;
    }

    /// The next step is due `d` after the conversation's first (replay):
    /// if the previous one ended later, it starts late and the delay counts.
    pub fn at(&mut self, d: Duration) {
        self.due = self.origin + d;
    }

    /// The step ended at `done`: the next one is due then.
    pub fn step_done(&mut self, done: Instant) {
        self.due = done;
    }

    /// Fills a template; feeder fields keep one record per conversation.
    pub fn render(&mut self, t: &Template) -> String {
        self.render_with(t, &Extra::default())
    }

    /// Fills a template that may use a generic step's context fields.
    pub fn render_with(&mut self, t: &Template, extra: &Extra<'_>) -> String {
        let mut out = String::new();
        for part in &t.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Field(f) => self.field(f, extra, &mut out),
                Part::JsonField(f) => {
                    let mut raw = String::new();
                    self.field(f, extra, &mut raw);
                    // serde_json's string escaping, without the quotes.
                    let quoted = serde_json::Value::String(raw).to_string();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                }
            }
        }
        out
    }

    fn field(&mut self, f: &Field, extra: &Extra<'_>, out: &mut String) {
        match f {
            Field::Visitor => out.push_str(&self.visitor),
            Field::Number => out.push_str(&self.number.to_string()),
            Field::Seq => out.push_str(&(self.seq + 1).to_string()),
            Field::Uuid => out.push_str(&uuid::Uuid::new_v4().to_string()),
            Field::Tenant => {
                if let Some(t) = self.env.tenants.get(self.tenant) {
                    out.push_str(&t.name);
                }
            }
            Field::TenantCred(c) => {
                if let Some(t) = self.env.tenants.get(self.tenant) {
                    out.push_str(c.of(t));
                }
            }
            Field::Target => out.push_str(&self.env.http_base),
            Field::WsTarget => out.push_str(&self.env.ws_base),
            Field::Phone => out.push_str(&self.phone()),
            Field::Timestamp => {
                if let Some(ts) = extra.timestamp {
                    out.push_str(&ts.to_string());
                }
            }
            Field::Text => out.push_str(extra.text.unwrap_or_default()),
            Field::Body => out.push_str(extra.body.unwrap_or_default()),
            Field::Feeder { feeder, column } => {
                if self.values.get(*feeder).is_some_and(|v| v.is_none()) {
                    let drawn = self.env.draw(*feeder);
                    self.values[*feeder] = Some(drawn);
                }
                if let Some(Some(row)) = self.values.get(*feeder)
                    && let Some(v) = row.get(*column)
                {
                    out.push_str(v);
                }
            }
        }
    }

    /// The visitor's phone number: stable per conversation (so the core
    /// threads its messages), distinct across conversations and runs.
    pub fn phone(&self) -> String {
        let h = self.visitor.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        format!("31{:010}", h % 10_000_000_000)
    }

    /// A message text: the template filled, then padded or cut to a drawn size.
    pub fn message(&mut self, t: &Template, size: Option<&SizeDist>) -> String {
        let mut text = self.render(t);
        if let Some(d) = size {
            let n = d.sample(&mut self.env.rng.borrow_mut()).max(1);
            fit(&mut text, n);
        }
        if text.is_empty() {
            // The core refuses empty messages; an empty template is the script's choice, not an error to measure.
            text.push('.');
        }
        text
    }
}

/// The context fields of a generic step's templates.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extra<'a> {
    pub text: Option<&'a str>,
    pub timestamp: Option<i64>,
    pub body: Option<&'a str>,
}

/// Pads `text` with filler words, or cuts it at a character boundary, to `n` bytes.
pub fn fit(text: &mut String, n: usize) {
    if text.len() > n {
        let mut cut = n;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    } else {
        while text.len() < n {
            let need = n - text.len();
            text.push_str(&FILLER[..need.min(FILLER.len())]);
        }
    }
}

/// Counts the conversation as in flight until dropped (also when aborted).
pub struct InFlight {
    env: Rc<WorkerEnv>,
    scenario: usize,
}

impl InFlight {
    pub fn new(env: Rc<WorkerEnv>, scenario: usize) -> Self {
        if let Some(c) = env.in_flight.get(scenario) {
            c.set(c.get() + 1);
        }
        InFlight { env, scenario }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = self.env.in_flight.get(self.scenario) {
            c.set(c.get().saturating_sub(1));
        }
    }
}

/// Plays one conversation on its channel; counts it completed or failed.
/// Returns when its next step would have been due (a trailing think time
/// counts), which is when a closed-model visitor starts its next one.
pub async fn play(conv: Conversation) -> Instant {
    let scenario = conv
        .env
        .plan
        .scenarios
        .get(usize::from(conv.scenario))
        .cloned();
    let script = scenario
        .as_ref()
        .and_then(|s| s.script(conv.channel))
        .cloned();
    play_script(conv, script.as_ref()).await
}

/// Plays `script` (e.g. one replay builds per conversation) on the
/// conversation's channel; counts it completed or failed.
pub async fn play_script(
    mut conv: Conversation,
    script: Option<&crate::scenario::Script>,
) -> Instant {
    let result = match script {
        None => Err(StepFailed::new("no_script")),
        Some(script) => match conv.channel {
            Channel::Webchat => webchat::play(&mut conv, script).await,
            Channel::Whatsapp => whatsapp::play(&mut conv, script).await,
            Channel::Email => email::play(&mut conv, script).await,
            Channel::Http => generic_http::play(&mut conv, script).await,
            Channel::Ws => generic_ws::play(&mut conv, script).await,
        },
    };
    let mut rec = conv.env.rec.borrow_mut();
    match result {
        Ok(()) => rec.counters(conv.scenario).completed += 1,
        Err(e) => {
            rec.error(conv.scenario, conv.channel, e.kind);
            rec.counters(conv.scenario).failed += 1;
        }
    }
    conv.due.max(Instant::now())
}

/// The `agent_reply` step of a webhook channel (email, WhatsApp): the agent
/// answers in the conversation the webhook's answer named; metric `agent`.
pub async fn agent_reply_step(
    conv: &mut Conversation,
    conversation_id: Option<&str>,
    text: &crate::scenario::Template,
    timeout: Duration,
    step: usize,
) -> Result<(), StepFailed> {
    let Some(cid) = conversation_id else {
        return Err(StepFailed::new("no_conversation"));
    };
    let content = conv.message(text, None);
    let _ = conv.start_step().await;
    let (sent, done) = agent_reply(conv, cid, &content, timeout).await?;
    conv.record(crate::metrics::Metric::Agent, Some(step), sent, done);
    conv.step_done(done);
    Ok(())
}

/// `POST /v1/conversations/{id}/messages` as the tenant's agent. Returns when
/// it was sent and when the 201 came back.
pub async fn agent_reply(
    conv: &Conversation,
    conversation_id: &str,
    text: &str,
    timeout: Duration,
) -> Result<(Instant, Instant), StepFailed> {
    let Some(tenant) = conv.tenant() else {
        return Err(StepFailed::new("no_tenant"));
    };
    let url = format!(
        "{}/v1/conversations/{conversation_id}/messages",
        conv.env.http_base
    );
    let body = serde_json::json!({ "content": text }).to_string();
    let req = conv
        .env
        .http
        .post(url)
        .bearer_auth(&tenant.api_key)
        .header("content-type", "application/json")
        .body(body)
        .timeout(timeout);
    let sent = Instant::now();
    let resp = req
        .send()
        .await
        .map_err(|e| StepFailed::new(http_error_kind(&e)))?;
    let status = resp.status().as_u16();
    // Drain the body so the connection goes back to the pool.
    let _ = resp.bytes().await;
    let done = Instant::now();
    if status != 201 {
        return Err(StepFailed::new(format!("agent_http_{status}")));
    }
    Ok((sent, done))
}

/// After a webhook/email POST was answered: polls the agent API
/// (`GET /v1/conversations/{id}/messages`) until the message the answer
/// named is readable, at most until `timeout` after it was sent; records
/// metric `visible` (from the send's due time, and from when it left) and
/// returns when it was seen.
pub async fn visible_step(
    conv: &Conversation,
    conversation_id: &serde_json::Value,
    message_id: &serde_json::Value,
    sent: Instant,
    timeout: Duration,
    step: usize,
) -> Result<Instant, StepFailed> {
    let (Some(cid), Some(mid)) = (conversation_id.as_str(), message_id.as_str()) else {
        return Err(StepFailed::new("visible_no_message_id"));
    };
    let Some(tenant) = conv.tenant() else {
        return Err(StepFailed::new("no_tenant"));
    };
    let deadline = sent + timeout;
    // Short first: the core answers after the commit, so the first look
    // usually finds it; then back off so a lagging read side is not flooded.
    let mut pause = Duration::from_millis(2);
    loop {
        let mut after: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/v1/conversations/{cid}/messages?limit=200",
                conv.env.http_base
            );
            if let Some(a) = &after {
                url.push_str("&after=");
                url.push_str(a);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StepFailed::new("visible_timeout"));
            }
            let resp = conv
                .env
                .http
                .get(url)
                .bearer_auth(&tenant.api_key)
                .timeout(left)
                .send()
                .await
                .map_err(|e| StepFailed::new(format!("visible_{}", http_error_kind(&e))))?;
            let status = resp.status().as_u16();
            let page: serde_json::Value = resp.json().await.unwrap_or_default();
            let seen = Instant::now();
            // 404 until the conversation is readable at all.
            if status != 200 && status != 404 {
                return Err(StepFailed::new(format!("visible_http_{status}")));
            }
            let found = page["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|m| m["id"].as_str() == Some(mid)));
            if found {
                conv.record(crate::metrics::Metric::Visible, Some(step), sent, seen);
                return Ok(seen);
            }
            match page["next"].as_str() {
                Some(n) if status == 200 => after = Some(n.to_string()),
                _ => break,
            }
        }
        if Instant::now() + pause >= deadline {
            return Err(StepFailed::new("visible_timeout"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A short error kind for a failed HTTP exchange.
pub fn http_error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "http_transport"
    }
}

/// Set to Unix seconds, every timestamp the drivers write is that value: a
/// test hook, so two runs can be compared byte for byte.
pub const FROZEN_CLOCK_ENV: &str = "C24_LOADGEN_FROZEN_UNIX_TIME";

/// A prefix making this run's ids unique (the core de-duplicates); fixed
/// when the clock is frozen, so frozen runs send the same bytes.
pub fn new_run_id() -> String {
    match std::env::var(FROZEN_CLOCK_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        Some(t) => format!("{:06x}", t.rem_euclid(0x0100_0000)),
        None => format!("{:06x}", fastrand::u32(..0x0100_0000)),
    }
}

/// Unix seconds now (or the frozen time of [`FROZEN_CLOCK_ENV`]).
pub fn unix_now() -> i64 {
    static FROZEN: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    let frozen = FROZEN.get_or_init(|| {
        std::env::var(FROZEN_CLOCK_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
    });
    if let Some(t) = frozen {
        return *t;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_pads_and_cuts_on_char_boundaries() {
        let mut s = "héé".to_string();
        fit(&mut s, 2);
        assert_eq!(s, "h");
        let mut s = "x".to_string();
        fit(&mut s, 200);
        assert_eq!(s.len(), 200);
    }

    #[test]
    fn sequential_feeders_stride_by_worker() {
        let f = Feeder {
            name: "o".into(),
            source: FeederSource::Records {
                columns: vec!["o".into()],
                rows: (0..5).map(|i| vec![i.to_string()]).collect(),
            },
            order: FeederOrder::Sequential,
        };
        let mut rng = fastrand::Rng::with_seed(1);
        let mut cursors = vec![1];
        let got: Vec<String> = (0..4)
            .map(|_| draw(&f, 0, &mut rng, &mut cursors, 2).remove(0))
            .collect();
        assert_eq!(got, vec!["1", "3", "0", "2"]);
    }
}
