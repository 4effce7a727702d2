//! `--demo`: an embedded chat core (temp data dir, dev clock) started
//! through `c24_chatcore::start`, seeded with a dozen tenants in varied
//! states, with light background traffic on all three channels. The
//! console then talks to it over 127.0.0.1 like to any other core.
//!
//! Seeded: active tenants, two suspended, one without a DPA, one terminated
//! with its purge pending, one terminated 32 days ago (so its data is
//! overdue: the dev clock is advanced past its deadline and the scheduled
//! purge is hours away), a proposed sub-processor outside the EEA
//! without a safeguard, objected to by two tenants and not approved (so
//! `--write` can approve it with `A`), and an approved change to the seeded
//! hosting entry, waiting only for its date. For the compliance
//! view: an erasure request filed before the clock moves (so it is
//! overdue), an access request not yet due, a breach affecting two tenants
//! (one controller notified, the authority's 72 h clock open) and a
//! consent with one purpose withdrawn. Privileged seeding
//! steps each use their own staff token (a TOTP step is good once per
//! token); the bootstrap admin token, which the console uses, has the fixed
//! [`DEMO_TOTP_SECRET`], so `--demo --write` can do privileged actions.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use c24_api::admin::consents::{RecordConsent, WithdrawConsent};
use c24_api::admin::dsr::{CreateDsr, DsrSubject, DsrType};
use c24_api::admin::incidents::{CreateIncident, NotifyTarget, RecordNotification};
use c24_api::admin::subprocessors::{Announcement, Category, ChangeRequest, ObjectionRequest};
use c24_api::admin::tenants::{CreateTenant, TenantCreated};
use c24_api::client::webchat::WebchatClient;
use c24_api::client::{Client, ClientError};
use c24_chatcore::clock::Clock;
use c24_chatcore::{Config, Running};
use tokio::sync::watch;

/// The bootstrap admin's TOTP secret in the demo (shown in the UI).
pub const DEMO_TOTP_SECRET: &str = "JBSWY3DPEHPK3PXP";
/// How far the demo's dev clock is moved ahead, so one termination is
/// overdue and a request filed before it is past its one-month deadline by
/// at least a day, whatever the month (a calendar month is at most 31 days).
pub const CLOCK_ADVANCE_S: i64 = 32 * 86_400;

/// Seeding staff: one admin token per privileged seeding step.
const SEED_STAFF: [(&str, &str, &str); 5] = [
    (
        "seed-terminate-1",
        "demo-seed-token-terminate-1",
        "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U",
    ),
    (
        "seed-terminate-2",
        "demo-seed-token-terminate-2",
        "KRSXG5CTMVRXEZLUKN2XAZLSONSWG4TF",
    ),
    (
        "seed-announce",
        "demo-seed-token-announce",
        "ONSWG4TFOQ2XI5LVMZ3WK4TUOV4XE6LB",
    ),
    (
        "seed-change",
        "demo-seed-token-change",
        "MZXW6YTBOI2XI5LVMZ3WK4TUOV4XE6LB",
    ),
    (
        "seed-approve",
        "demo-seed-token-approve",
        "GEZDGNBVGY3TQOJQMFRGGZDFMZTWQ2LK",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo data dir: {0}")]
    Io(#[from] std::io::Error),
    #[error("starting the embedded core: {0}")]
    Start(#[from] c24_chatcore::StartError),
    #[error("seeding the demo: {0}")]
    Api(#[from] ClientError),
    #[error("seeding the demo: {0}")]
    Seed(String),
}

/// What the traffic tasks need of one tenant.
#[derive(Clone)]
struct TrafficTenant {
    created: TenantCreated,
}

/// A running demo core with its traffic.
pub struct Demo {
    running: Option<Running>,
    _dir: tempfile::TempDir,
    url: String,
    token: String,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Demo {
    /// Starts, seeds and (if `traffic`) starts background traffic.
    pub async fn start(traffic: bool) -> Result<Demo, DemoError> {
        let dir = tempfile::tempdir()?;
        let tokens = write_seed_tokens(dir.path())?;
        let mut cfg = Config::embedded(dir.path().join("core")).with_dev_clock();
        cfg.admin_totp_secret = Some(DEMO_TOTP_SECRET.into());
        cfg.tokens_file = Some(tokens);
        // Hours away, so the overdue tenant stays overdue until someone
        // runs a purge (`P` with --write).
        cfg.purge_interval = Duration::from_secs(6 * 3600);
        let running = c24_chatcore::start(cfg).await?;
        let url = running.url();
        let token = running.admin_token().to_string();
        let admin = Client::new(&url, &token)?;
        let clock = running.clock();
        let seeded = seed(&admin, &running.ws_url(), &clock).await?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if traffic {
            let http = reqwest::Client::new();
            tasks.push(tokio::spawn(webchat_traffic(
                admin.clone(),
                running.ws_url(),
                seeded.clone(),
                stop_rx.clone(),
            )));
            tasks.push(tokio::spawn(whatsapp_traffic(
                http.clone(),
                url.clone(),
                seeded.clone(),
                clock.clone(),
                stop_rx.clone(),
            )));
            tasks.push(tokio::spawn(email_traffic(
                http,
                url.clone(),
                seeded,
                clock,
                stop_rx,
            )));
        }
        Ok(Demo {
            running: Some(running),
            _dir: dir,
            url,
            token,
            stop,
            tasks,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn admin_token(&self) -> &str {
        &self.token
    }

    /// Stops the traffic and the core; the temp dir goes with `self`.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

fn write_seed_tokens(dir: &Path) -> Result<std::path::PathBuf, DemoError> {
    let mut text = String::new();
    for (name, token, secret) in SEED_STAFF {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        text.push_str(&format!(
            "[[token]]\nname = \"{name}\"\nrole = \"admin\"\nsha256 = \"{}\"\ntotp_secret = \"{secret}\"\n\n",
            hex::encode(hash.as_ref())
        ));
    }
    let path = dir.join("demo-tokens.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The client and a fresh TOTP code of seeding staff member `i`.
fn seed_staff(admin: &Client, i: usize) -> Result<(Client, String), DemoError> {
    let (_, token, secret) = SEED_STAFF[i];
    let totp = c24_chatcore::access::totp(secret).map_err(DemoError::Seed)?;
    Ok((admin.with_token(token), totp.generate(unix_now())))
}

async fn create(admin: &Client, name: &str, dpa: bool) -> Result<TenantCreated, DemoError> {
    Ok(admin
        .create_tenant(&CreateTenant {
            name: name.into(),
            dpa_signed: dpa,
        })
        .await?)
}

/// A few messages on every channel, so the tenant stores something.
async fn seed_messages(
    ws_url: &str,
    t: &TenantCreated,
    clock: &Arc<dyn Clock>,
    n: usize,
) -> Result<(), DemoError> {
    let http = reqwest::Client::new();
    let base = ws_url.replacen("ws", "http", 1);
    let mut ws =
        WebchatClient::connect(ws_url, &t.channels.webchat.widget_key, "seed-visitor").await?;
    let mut conversation: Option<String> = None;
    for i in 0..n {
        let (ack, _) = ws
            .send_message(
                &format!("seed-{i}"),
                conversation.as_deref(),
                &sample_text(i),
                Duration::from_secs(10),
            )
            .await?;
        conversation = Some(ack.conversation_id);
        post_whatsapp(&http, &base, t, i as u64, clock).await;
        post_email(&http, &base, t, i as u64, clock).await;
    }
    ws.close().await;
    Ok(())
}

async fn seed(
    admin: &Client,
    ws_url: &str,
    clock: &Arc<dyn Clock>,
) -> Result<Vec<TrafficTenant>, DemoError> {
    // The overdue one first: terminated, then the clock moves 32 days on.
    let overdue = create(admin, "Overdue Outfitters", true).await?;
    seed_messages(ws_url, &overdue, clock, 3).await?;
    let (staff, code) = seed_staff(admin, 0)?;
    staff.terminate(&overdue.id, &code).await?;
    // A request filed now is due in one calendar month (at most 31 days):
    // past due once the clock has moved on.
    let acme = create(admin, "Acme Retail", true).await?;
    admin
        .file_dsr(
            &acme.id,
            &CreateDsr {
                kind: DsrType::Erasure,
                subject: DsrSubject::email("jan.jansen@example.net"),
                received_at: None,
            },
        )
        .await?;
    let now = admin.advance_clock(CLOCK_ADVANCE_S).await?;

    let mut active = vec![acme];
    for name in [
        "Bakkerij de Vries",
        "Nordic Ferries",
        "Helios Energy",
        "Lumen Health",
        "Kiosk & Co",
        "Orbit Telecom",
    ] {
        let t = create(admin, name, true).await?;
        active.push(t);
    }
    for t in active.iter().take(3) {
        seed_messages(ws_url, t, clock, 2).await?;
    }
    for name in ["Vega Travel", "Mistral Foods"] {
        let t = create(admin, name, true).await?;
        seed_messages(ws_url, &t, clock, 1).await?;
        admin.suspend(&t.id).await?;
    }
    create(admin, "Zephyr Labs", false).await?;
    let quill = create(admin, "Quill Insurance", true).await?;
    seed_messages(ws_url, &quill, clock, 2).await?;
    let (staff, code) = seed_staff(admin, 1)?;
    staff.terminate(&quill.id, &code).await?;

    // A proposed sub-processor, 40 days out by the core's (advanced) clock.
    let effective =
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now.now_ms + 40 * 86_400_000)
            .ok_or_else(|| DemoError::Seed("the core's clock is out of range".into()))?;
    let (staff, code) = seed_staff(admin, 2)?;
    let sp = staff
        .announce_subprocessor(
            &Announcement {
                name: "Atlas Translate".into(),
                category: "Collaboration Tools".into(),
                purpose: "Machine translation of chat transcripts".into(),
                location: "Singapore".into(),
                safeguard: "none".into(),
                data_categories: vec!["message content".into()],
                effective_at: effective.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
            &code,
        )
        .await?;
    for (t, reason) in [
        (&active[0], "No transfers outside the EEA without SCCs"),
        (&active[4], "Patient data must stay in the EEA"),
    ] {
        admin
            .with_token(&t.api_key)
            .object(
                &sp.id,
                &ObjectionRequest {
                    tenant_id: t.id.clone(),
                    reason: Some(reason.into()),
                },
            )
            .await?;
    }
    // An approved change to the seeded hosting entry: it waits only for
    // its date, next to Atlas Translate, which waits for an approval.
    let registry = admin.subprocessors().await?;
    if let Some(hosting) = registry
        .items
        .iter()
        .find(|e| e.category == Category::CloudInfrastructure)
    {
        let (staff, code) = seed_staff(admin, 3)?;
        staff
            .announce_change(
                &hosting.id,
                &ChangeRequest {
                    purpose: Some("Hosting, data storage and encrypted backups".into()),
                    effective_at: rfc3339(now.now_ms + 35 * 86_400_000)?,
                    ..ChangeRequest::default()
                },
                &code,
            )
            .await?;
        let (staff, code) = seed_staff(admin, 4)?;
        staff.approve_subprocessor(&hosting.id, &code).await?;
    }
    seed_compliance(admin, &active, now.now_ms).await?;
    Ok(active
        .into_iter()
        .map(|created| TrafficTenant { created })
        .collect())
}

/// An RFC 3339 time `ms` since the epoch.
fn rfc3339(ms: i64) -> Result<String, DemoError> {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .ok_or_else(|| DemoError::Seed("the core's clock is out of range".into()))
}

/// After the clock moved: an open request not yet due, a breach 30 hours
/// old (one controller notified, the other and the authority not yet), and
/// a consent with a purpose withdrawn.
async fn seed_compliance(
    admin: &Client,
    active: &[TenantCreated],
    now_ms: i64,
) -> Result<(), DemoError> {
    let [acme, bakkerij, nordic, _, lumen, ..] = active else {
        return Err(DemoError::Seed("too few tenants to seed".into()));
    };
    admin
        .file_dsr(
            &lumen.id,
            &CreateDsr {
                kind: DsrType::Access,
                subject: DsrSubject::phone("+31 6 1234 5678"),
                received_at: None,
            },
        )
        .await?;
    let incident = admin
        .record_incident(&CreateIncident {
            aware_at: Some(rfc3339(now_ms - 30 * 3_600_000)?),
            nature: "Export bucket readable without authentication".into(),
            categories: vec!["message bodies".into(), "contact details".into()],
            records: 1_200,
            subjects: 300,
            affected_tenants: vec![acme.id.clone(), nordic.id.clone()],
            consequences: "Chat transcripts may have been read by third parties".into(),
            measures: "Bucket access revoked, access logs under review".into(),
            platform_is_controller: true,
            high_risk: false,
        })
        .await?;
    admin
        .record_notification(
            &incident.id,
            &RecordNotification {
                to: NotifyTarget::Controller,
                tenant_id: Some(acme.id.clone()),
            },
        )
        .await?;
    let consent = admin
        .record_consent(
            &bakkerij.id,
            &RecordConsent {
                subject: DsrSubject::email("klant@example.net"),
                purposes: vec!["marketing email".into(), "product updates".into()],
                collection_method: "chat widget banner".into(),
                policy_version: "2026-01".into(),
                given_at: None,
            },
        )
        .await?;
    admin
        .withdraw_consent(
            &bakkerij.id,
            &consent.id,
            &WithdrawConsent {
                purposes: Some(vec!["marketing email".into()]),
            },
        )
        .await?;
    Ok(())
}

const TEXTS: [&str; 6] = [
    "Hoi, waar is mijn bestelling?",
    "Can I change my booking to Friday?",
    "Mein Paket ist beschädigt angekommen.",
    "Is the store open on Sunday?",
    "Je voudrais annuler mon abonnement.",
    "Thanks, that solved it!",
];

fn sample_text(i: usize) -> String {
    TEXTS[i % TEXTS.len()].to_string()
}

/// A small deterministic generator for the pauses between messages.
struct Jitter(u64);

impl Jitter {
    /// 0.5 to 2 seconds.
    fn next(&mut self) -> Duration {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        Duration::from_millis(500 + (self.0 >> 33) % 1500)
    }
}

async fn pause(j: &mut Jitter, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(j.next()) => true,
        _ = stop.changed() => false,
    }
}

async fn webchat_traffic(
    admin: Client,
    ws_url: String,
    tenants: Vec<TrafficTenant>,
    mut stop: watch::Receiver<bool>,
) {
    let mut j = Jitter(1);
    let mut sockets: Vec<Option<(WebchatClient, Option<String>)>> =
        tenants.iter().map(|_| None).collect();
    let mut n: u64 = 0;
    while pause(&mut j, &mut stop).await {
        n += 1;
        let i = (n as usize) % tenants.len().max(1);
        let Some(t) = tenants.get(i) else { return };
        let t = &t.created;
        if sockets[i].is_none() {
            match WebchatClient::connect(
                &ws_url,
                &t.channels.webchat.widget_key,
                &format!("visitor-{i}"),
            )
            .await
            {
                Ok(ws) => sockets[i] = Some((ws, None)),
                Err(e) => {
                    tracing::debug!(error = %e, "demo webchat connect");
                    continue;
                }
            }
        }
        let Some((ws, conv)) = sockets[i].as_mut() else {
            continue;
        };
        match ws
            .send_message(
                &format!("m{n}"),
                conv.as_deref(),
                &sample_text(n as usize),
                Duration::from_secs(5),
            )
            .await
        {
            Ok((ack, _)) => {
                *conv = Some(ack.conversation_id.clone());
                // Every third message gets an agent reply (outbound traffic).
                if n.is_multiple_of(3) {
                    let agent = admin.with_token(&t.api_key);
                    if let Err(e) = agent
                        .post_message(&ack.conversation_id, "We are looking into it.")
                        .await
                    {
                        tracing::debug!(error = %e, "demo agent reply");
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "demo webchat send");
                sockets[i] = None;
            }
        }
    }
}

async fn post_whatsapp(
    http: &reqwest::Client,
    base: &str,
    t: &TenantCreated,
    n: u64,
    clock: &Arc<dyn Clock>,
) {
    let from = format!("316{:08}", 10_000_000 + n % 50);
    let msg_id = format!("wamid.demo-{}-{n}-{}", t.id, clock.now_ms());
    let note = c24_api::whatsapp::Notification::text_message(
        &t.channels.whatsapp.phone_number_id,
        &from,
        "Demo Visitor",
        &msg_id,
        clock.now_ms() / 1000,
        &sample_text(n as usize + 1),
    );
    let Ok(body) = serde_json::to_vec(&note) else {
        return;
    };
    let sig = c24_api::whatsapp::signature_header(&t.channels.whatsapp.app_secret, &body);
    let r = http
        .post(format!("{base}/v1/whatsapp/{}/webhook", t.id))
        .header("Content-Type", "application/json")
        .header(c24_api::whatsapp::SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await;
    if let Err(e) = r {
        tracing::debug!(error = %e, "demo whatsapp post");
    }
}

async fn post_email(
    http: &reqwest::Client,
    base: &str,
    t: &TenantCreated,
    n: u64,
    clock: &Arc<dyn Clock>,
) {
    // Signed with the core's clock: the demo's dev clock runs 32 days ahead.
    let ts = (clock.now_ms() / 1000).to_string();
    let raw = format!(
        "From: Demo Visitor <visitor{}@example.net>\r\nTo: {}\r\nSubject: Question {n}\r\nMessage-ID: <demo-{n}-{}@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        n % 20,
        t.channels.email.address,
        clock.now_ms(),
        sample_text(n as usize + 2)
    );
    let sig = c24_api::email::signature_header(&t.channels.email.signing_key, &ts, raw.as_bytes());
    let r = http
        .post(format!("{base}/v1/email/{}/inbound", t.id))
        .header("Content-Type", c24_api::email::CONTENT_TYPE)
        .header(c24_api::email::TIMESTAMP_HEADER, ts)
        .header(c24_api::email::SIGNATURE_HEADER, sig)
        .body(raw)
        .send()
        .await;
    if let Err(e) = r {
        tracing::debug!(error = %e, "demo email post");
    }
}

async fn whatsapp_traffic(
    http: reqwest::Client,
    base: String,
    tenants: Vec<TrafficTenant>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut j = Jitter(2);
    let mut n: u64 = 1000;
    while pause(&mut j, &mut stop).await {
        n += 1;
        if let Some(t) = tenants.get((n as usize * 3) % tenants.len().max(1)) {
            post_whatsapp(&http, &base, &t.created, n, &clock).await;
        }
    }
}

async fn email_traffic(
    http: reqwest::Client,
    base: String,
    tenants: Vec<TrafficTenant>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut j = Jitter(3);
    let mut n: u64 = 5000;
    while pause(&mut j, &mut stop).await {
        // Email is the quietest channel: every other pause.
        n += 1;
        if n.is_multiple_of(2) {
            continue;
        }
        if let Some(t) = tenants.get((n as usize * 5) % tenants.len().max(1)) {
            post_email(&http, &base, &t.created, n, &clock).await;
        }
    }
}
