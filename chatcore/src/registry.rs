//! The sub-processor registry: the domain rules, without HTTP or storage.
//!
//! Privacy policy section 8 promises customers an up-to-date list of
//! sub-processors, advance notice of any change and a chance to object;
//! section 7 promises that a transfer outside the EEA rests on an adequacy
//! decision or Standard Contractual Clauses. This module turns those promises
//! into checks a test can run:
//!
//! - [`announce`] / [`announce_change`] refuse an effective date inside the
//!   notice period ([`RegistryError::NoticePeriod`], HTTP 422 `notice_period`).
//! - [`advance`] applies what has come due by a given `now_ms` (the injectable
//!   clock, see [`crate::clock`]), so a 30-day notice can be tested in a
//!   test or shown with `--dev-clock`.
//! - [`flags`] marks an entry located outside the EEA whose safeguard names
//!   neither SCC nor an adequacy decision (`transfer_without_safeguard`).
//! - [`approve`] records an admin's approval: a proposed entry or an
//!   announced change takes effect only once approved. On its effective date
//!   an approved one applies; an unapproved one stays pending (and visible as
//!   `approval: "pending"`); approved after its date, it applies at once,
//!   dated when approved, so nothing ever takes effect unapproved.
//! - [`record_objection`] keeps one objection per tenant per entry.
//! - [`feed_json`] renders every change as a JSON Feed 1.1 customers subscribe to.
//!
//! The integrator persists `Vec<SubProcessor>` as JSON (the entries carry their
//! whole history), wires the routes, calls [`advance_all`] on a timer and on
//! reads, and maps [`RegistryError::code`] / [`RegistryError::http_status`]
//! onto the usual error body.
//!
//! Timestamps are RFC 3339 UTC strings. Instants taken from the clock are
//! stored to the second; an effective date keeps the millisecond it was given
//! (whole seconds print without a fraction), because truncating it would let
//! a change take effect before the date tenants were told.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::clock::Millis;

/// Default `--notice-days`.
pub const DEFAULT_NOTICE_DAYS: u32 = 30;

/// The flag on an entry whose transfer out of the EEA has no named safeguard.
pub const TRANSFER_WITHOUT_SAFEGUARD: &str = "transfer_without_safeguard";

/// History events.
pub const EVENT_ANNOUNCED: &str = "announced";
pub const EVENT_CHANGED_ANNOUNCED: &str = "changed_announced";
pub const EVENT_EFFECTIVE: &str = "effective";
pub const EVENT_RETIRED: &str = "retired";
pub const EVENT_OBJECTION: &str = "objection";
pub const EVENT_APPROVED: &str = "approved";

const DAY_MS: Millis = 86_400_000;
/// An effective date further out than this is almost certainly a typo (a
/// five-digit year), and would park a proposal forever.
const MAX_AHEAD_DAYS: i64 = 3_650;

const NAME_MAX: usize = 200;
const PURPOSE_MAX: usize = 500;
const LOCATION_MAX: usize = 100;
const SAFEGUARD_MAX: usize = 200;
const DATA_CATEGORY_MAX: usize = 100;
const DATA_CATEGORIES_MAX: usize = 32;
const TENANT_ID_MAX: usize = 128;
const REASON_MAX: usize = 2_000;

// The wire types (entries, requests, categories) live in the contract crate.
pub use c24_api::admin::subprocessors::Approval;
pub use c24_api::admin::subprocessors::{
    Announcement, Category, ChangeRequest, HistoryEntry, LocationClass, Objection,
    ObjectionRequest, PendingChange, Status, SubProcessor,
};

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("effective_at is inside the notice period; the earliest allowed is {earliest}")]
    NoticePeriod { earliest: String },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no such sub-processor")]
    NotFound,
    #[error("the sub-processor is retired")]
    AlreadyRetired,
    #[error("{name:?} is already listed under {category}")]
    Duplicate { name: String, category: Category },
    #[error("nothing waits for approval: no proposal or announced change is pending")]
    NothingToApprove,
    #[error(
        "what waits for approval was announced at {pending}, not at {reviewed} as reviewed: review it again"
    )]
    StaleApproval { reviewed: String, pending: String },
}

impl RegistryError {
    /// The stable `error.code` of the HTTP body.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::NoticePeriod { .. } => "notice_period",
            RegistryError::Invalid { .. } => "invalid_field",
            RegistryError::NotFound => "not_found",
            RegistryError::AlreadyRetired | RegistryError::Duplicate { .. } => "conflict",
            RegistryError::NothingToApprove => "nothing_to_approve",
            RegistryError::StaleApproval { .. } => "stale_approval",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            RegistryError::NoticePeriod { .. } | RegistryError::Invalid { .. } => 422,
            RegistryError::NotFound => 404,
            RegistryError::AlreadyRetired
            | RegistryError::Duplicate { .. }
            | RegistryError::NothingToApprove
            | RegistryError::StaleApproval { .. } => 409,
        }
    }

    /// The offending field, for `notice_period` always `effective_at`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            RegistryError::NoticePeriod { .. } => Some("effective_at"),
            RegistryError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> RegistryError {
    RegistryError::Invalid {
        field,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------
// Locations and flags
// ---------------------------------------------------------------------------

/// EU 27 + Iceland, Liechtenstein, Norway: English names (with common
/// variants) and ISO 3166 alpha-2 codes, plus "EL", the EU's code for Greece.
const EEA: &[&str] = &[
    "eu",
    "eea",
    "european union",
    "european economic area",
    "austria",
    "at",
    "belgium",
    "be",
    "bulgaria",
    "bg",
    "croatia",
    "hr",
    "cyprus",
    "cy",
    "czechia",
    "czech republic",
    "cz",
    "denmark",
    "dk",
    "estonia",
    "ee",
    "finland",
    "fi",
    "france",
    "fr",
    "germany",
    "de",
    "greece",
    "gr",
    "el",
    "hungary",
    "hu",
    "ireland",
    "republic of ireland",
    "ie",
    "italy",
    "it",
    "latvia",
    "lv",
    "lithuania",
    "lt",
    "luxembourg",
    "lu",
    "malta",
    "mt",
    "netherlands",
    "nl",
    "poland",
    "pl",
    "portugal",
    "pt",
    "romania",
    "ro",
    "slovakia",
    "slovak republic",
    "sk",
    "slovenia",
    "si",
    "spain",
    "es",
    "sweden",
    "se",
    "iceland",
    "is",
    "liechtenstein",
    "li",
    "norway",
    "no",
];

/// Countries with a European Commission adequacy decision; the United States
/// under the EU-US Data Privacy Framework decision (2023).
const ADEQUATE: &[&str] = &[
    "andorra",
    "ad",
    "argentina",
    "ar",
    "canada",
    "ca",
    "faroe islands",
    "fo",
    "guernsey",
    "gg",
    "israel",
    "il",
    "isle of man",
    "im",
    "japan",
    "jp",
    "jersey",
    "je",
    "new zealand",
    "nz",
    "republic of korea",
    "korea, republic of",
    "south korea",
    "kr",
    "switzerland",
    "ch",
    "united kingdom",
    "great britain",
    "uk",
    "gb",
    "uruguay",
    "uy",
    "united states",
    "united states of america",
    "usa",
    "us",
];

const GLOBAL: &[&str] = &[
    "global",
    "worldwide",
    "world-wide",
    "world wide",
    "international",
];

/// Lower case, dots dropped ("U.S." is "us"), whitespace collapsed, a leading
/// "the " dropped ("The Netherlands").
fn normalize_place(s: &str) -> String {
    let lowered = s.to_lowercase().replace('.', "");
    let collapsed = lowered.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.strip_prefix("the ") {
        Some(rest) => rest.to_string(),
        None => collapsed,
    }
}

/// Drops parenthesised text: "EU (Germany)" is judged by "EU". Only when
/// nothing is left outside ("(Germany)") is the inside used.
fn outside_parentheses(s: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    if out.trim().is_empty() {
        s.chars().filter(|c| *c != '(' && *c != ')').collect()
    } else {
        out
    }
}

fn lookup_place(key: &str) -> Option<LocationClass> {
    if GLOBAL.contains(&key) {
        Some(LocationClass::Global)
    } else if EEA.contains(&key) {
        Some(LocationClass::Eea)
    } else if ADEQUATE.contains(&key) {
        Some(LocationClass::Adequate)
    } else {
        None
    }
}

/// Classifies a location as written in the registry: a country's English name
/// or ISO 3166 alpha-2 code, "EU", "EEA" or "Global", case-insensitive, with
/// parenthesised detail ignored ("EU (Germany)"). A list ("EU / Global",
/// "Germany, India") takes its farthest member. Anything unrecognised is a
/// third country, so it is flagged for review rather than silently passed.
pub fn classify_location(location: &str) -> LocationClass {
    let outside = outside_parentheses(location);
    // The whole text first, so "Korea, Republic of" is not split at its comma.
    if let Some(class) = lookup_place(&normalize_place(&outside)) {
        return class;
    }
    outside
        .split(['/', ',', ';', '+', '|'])
        .map(normalize_place)
        .filter(|part| !part.is_empty())
        .map(|part| lookup_place(&part).unwrap_or(LocationClass::ThirdCountry))
        .max()
        .unwrap_or(LocationClass::ThirdCountry)
}

/// Whether a safeguard text names Standard Contractual Clauses ("SCC",
/// "SCCs", "Standard Contractual Clauses") or an adequacy decision
/// ("adequacy"), case-insensitive. A text match: "no SCC" would pass, which
/// is why the API shows the safeguard text next to the flag.
fn names_transfer_safeguard(safeguard: &str) -> bool {
    let lower = safeguard.to_lowercase();
    lower.contains("standard contractual clause")
        || lower.contains("adequacy")
        || lower
            .split(|c: char| !c.is_alphanumeric())
            .any(|token| token == "scc" || token == "sccs")
}

/// The entry's flags: [`TRANSFER_WITHOUT_SAFEGUARD`] when the location is a
/// third country or global and the safeguard names neither SCC nor an
/// adequacy decision.
///
/// A location with an adequacy decision is not flagged whatever the
/// safeguard says: the decision itself is the Article 45 safeguard. For the
/// United States that decision (the Data Privacy Framework) covers only
/// certified recipients, which this registry cannot check; whoever announces
/// a US entry is expected to confirm certification or name SCC.
pub fn flags(location: &str, safeguard: &str) -> Vec<String> {
    match classify_location(location) {
        LocationClass::Eea | LocationClass::Adequate => Vec::new(),
        LocationClass::ThirdCountry | LocationClass::Global => {
            if names_transfer_safeguard(safeguard) {
                Vec::new()
            } else {
                vec![TRANSFER_WITHOUT_SAFEGUARD.to_string()]
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Time helpers
// ---------------------------------------------------------------------------

/// An instant from the clock, to the second.
fn stamp(ms: Millis) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An effective date: to the millisecond when it has one, else to the second.
fn stamp_exact(ms: Millis) -> String {
    let format = if ms.rem_euclid(1_000) == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(format, true)
}

/// The earliest allowed effective date, rounded up to a whole second so that
/// the value shown in the error is itself accepted.
fn stamp_earliest(ms: Millis) -> String {
    let rem = ms.rem_euclid(1_000);
    stamp(if rem == 0 {
        ms
    } else {
        ms.saturating_add(1_000 - rem)
    })
}

fn parse_ms(s: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc).timestamp_millis())
}

/// A stored timestamp; a corrupt one never comes due (and is logged) rather
/// than taking effect at some guessed time.
fn stored_ms(s: &str, id: &str, what: &str) -> Option<Millis> {
    let ms = parse_ms(s);
    if ms.is_none() {
        tracing::warn!(
            subprocessor = id,
            field = what,
            value = s,
            "unparseable stored timestamp"
        );
    }
    ms
}

/// Parses and checks an effective date against the notice rule; returns the
/// instant in ms, rounded up to the millisecond (never earlier than asked).
fn check_effective_at(
    raw: &str,
    now_ms: Millis,
    notice_days: u32,
) -> Result<Millis, RegistryError> {
    let parsed = DateTime::parse_from_rfc3339(raw.trim()).map_err(|e| {
        invalid(
            "effective_at",
            format!("not an RFC 3339 date-time ({e}), e.g. 2025-07-01T00:00:00Z"),
        )
    })?;
    let utc = parsed.with_timezone(&Utc);
    let mut ms = utc.timestamp_millis();
    if utc.timestamp_subsec_nanos() % 1_000_000 != 0 {
        ms = ms.saturating_add(1);
    }
    let earliest = now_ms.saturating_add(i64::from(notice_days).saturating_mul(DAY_MS));
    if ms < earliest {
        return Err(RegistryError::NoticePeriod {
            earliest: stamp_earliest(earliest),
        });
    }
    if ms > earliest.saturating_add(MAX_AHEAD_DAYS * DAY_MS) {
        return Err(invalid(
            "effective_at",
            format!("more than {MAX_AHEAD_DAYS} days ahead"),
        ));
    }
    Ok(ms)
}

// ---------------------------------------------------------------------------
// Field validation
// ---------------------------------------------------------------------------

/// Trimmed, non-empty, bounded, single-line text (it lands in feed titles
/// and logs, where a newline could forge a line).
fn text(field: &'static str, value: &str, max: usize) -> Result<String, RegistryError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("longer than {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

/// At least one, bounded; trimmed, and duplicates (ignoring case) dropped
/// since they say nothing new.
fn data_categories(values: &[String]) -> Result<Vec<String>, RegistryError> {
    const FIELD: &str = "data_categories";
    if values.is_empty() {
        return Err(invalid(
            FIELD,
            "name at least one category of personal data",
        ));
    }
    if values.len() > DATA_CATEGORIES_MAX {
        return Err(invalid(
            FIELD,
            format!("more than {DATA_CATEGORIES_MAX} entries"),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        let value = text(FIELD, value, DATA_CATEGORY_MAX)?;
        if seen.insert(value.to_lowercase()) {
            out.push(value);
        }
    }
    Ok(out)
}

fn parse_category(raw: &str) -> Result<Category, RegistryError> {
    Category::parse(raw).ok_or_else(|| {
        let known: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        invalid(
            "category",
            format!(
                "unknown category {:?}; expected one of: {}",
                raw,
                known.join(", ")
            ),
        )
    })
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The id of the policy's `i`-th row: a version-7 UUID at the epoch with
/// the row number as its random part, the same on every node, and before
/// every id [`new_id`] makes (the registry lists by id).
fn seed_id(i: usize) -> String {
    let mut rest = [0u8; 10];
    rest[2..].copy_from_slice(&(i as u64).to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(0, &rest)
        .into_uuid()
        .simple()
        .to_string()
}

fn terms_json(sp: &SubProcessor) -> Value {
    json!({
        "name": sp.name,
        "category": sp.category,
        "purpose": sp.purpose,
        "location": sp.location,
        "safeguard": sp.safeguard,
        "data_categories": sp.data_categories,
        "flags": sp.flags,
    })
}

/// Names and locations of the entries listed in policy section 8. Only
/// AWS (named in section 5.1) and WhatsApp (a channel this platform
/// integrates) follow from the policy; the other three are placeholders the
/// operator replaces with the actual providers.
/// (category, name, purpose, location, safeguard, data categories).
type SeedRow = (
    Category,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const SEED: [SeedRow; 5] = [
    (
        Category::CloudInfrastructure,
        "Amazon Web Services EMEA SARL",
        "Hosting and data storage",
        "EU (Germany)",
        "ISO 27001 / DPA",
        &[
            "Names and contact details of end-users",
            "Chat messages and conversation content",
            "IP addresses and technical session metadata",
            "Files and attachments uploaded by end-users",
            "Data received via connected channels",
        ],
    ),
    (
        Category::SecurityAntiMalware,
        "Security scanning provider (to be named)",
        "Security scanning and threat detection",
        "EU / Global",
        "SCC / DPA",
        &[
            "IP addresses and technical session metadata",
            "Files and attachments uploaded by end-users",
        ],
    ),
    (
        Category::CollaborationTools,
        "Collaboration tools provider (to be named)",
        "Internal operations",
        "EU / Global",
        "SCC / DPA",
        &["Names and contact details of end-users", "Support requests"],
    ),
    (
        Category::MonitoringLogging,
        "Monitoring and logging provider (to be named)",
        "Platform monitoring and security",
        "EU",
        "DPA",
        &[
            "IP addresses and technical session metadata",
            "System and access logs",
        ],
    ),
    (
        Category::CommunicationChannels,
        "Meta Platforms Ireland (WhatsApp Business)",
        "Messaging channel integrations",
        "Global",
        "SCC / DPA",
        &[
            "Names and contact details of end-users",
            "Chat messages and conversation content",
            "Data received via connected channels",
        ],
    ),
];

/// The registry as the policy describes it today: one active entry per row of
/// section 8, with the policy's category, purpose, location and safeguard
/// verbatim. Ids are fixed ([`seed_id`]): the store keeps an entry already
/// stored, so every node may seed an empty database and it holds one seed.
pub fn seed(now_ms: Millis) -> Vec<SubProcessor> {
    let at = stamp(now_ms);
    SEED.iter()
        .enumerate()
        .map(
            |(i, (category, name, purpose, location, safeguard, data))| {
                let mut sp = SubProcessor {
                    id: seed_id(i),
                    name: (*name).to_string(),
                    category: *category,
                    purpose: (*purpose).to_string(),
                    location: (*location).to_string(),
                    location_class: classify_location(location),
                    safeguard: (*safeguard).to_string(),
                    data_categories: data.iter().map(|d| (*d).to_string()).collect(),
                    status: Status::Active,
                    announced_at: at.clone(),
                    effective_at: at.clone(),
                    retired_at: None,
                    flags: flags(location, safeguard),
                    pending_change: None,
                    objections: Vec::new(),
                    objection_count: 0,
                    history: Vec::new(),
                    approval: None,
                    approved_at: None,
                    approved_by: None,
                };
                // Listed in the policy already, so no notice period applies: one
                // `effective` event marks the baseline.
                let mut detail = terms_json(&sp);
                detail["kind"] = json!("seeded");
                detail["source"] = json!("privacy policy section 8");
                sp.history.push(HistoryEntry {
                    at: at.clone(),
                    event: EVENT_EFFECTIVE.to_string(),
                    detail,
                    effective_at: Some(at.clone()),
                });
                sp
            },
        )
        .collect()
}

/// Announces a new sub-processor: every field is validated, the effective
/// date must be at least `notice_days` after `now_ms`. The entry starts
/// [`Status::Proposed`]; [`advance`] makes it active on its date.
pub fn announce(
    a: Announcement,
    now_ms: Millis,
    notice_days: u32,
) -> Result<SubProcessor, RegistryError> {
    let name = text("name", &a.name, NAME_MAX)?;
    let category = parse_category(&a.category)?;
    let purpose = text("purpose", &a.purpose, PURPOSE_MAX)?;
    let location = text("location", &a.location, LOCATION_MAX)?;
    let safeguard = text("safeguard", &a.safeguard, SAFEGUARD_MAX)?;
    let data = data_categories(&a.data_categories)?;
    let effective_ms = check_effective_at(&a.effective_at, now_ms, notice_days)?;

    let effective_at = stamp_exact(effective_ms);
    let mut sp = SubProcessor {
        id: new_id(),
        name,
        category,
        location_class: classify_location(&location),
        flags: flags(&location, &safeguard),
        purpose,
        location,
        safeguard,
        data_categories: data,
        status: Status::Proposed,
        announced_at: stamp(now_ms),
        effective_at: effective_at.clone(),
        retired_at: None,
        pending_change: None,
        objections: Vec::new(),
        objection_count: 0,
        history: Vec::new(),
        approval: Some(Approval::Pending),
        approved_at: None,
        approved_by: None,
    };
    sp.history.push(HistoryEntry {
        at: sp.announced_at.clone(),
        event: EVENT_ANNOUNCED.to_string(),
        detail: terms_json(&sp),
        effective_at: Some(effective_at),
    });
    Ok(sp)
}

/// [`announce`], refusing a second live entry with the same name
/// (ignoring case) in the same category, and appending to `entries`.
pub fn announce_into(
    entries: &mut Vec<SubProcessor>,
    a: Announcement,
    now_ms: Millis,
    notice_days: u32,
) -> Result<&SubProcessor, RegistryError> {
    let sp = announce(a, now_ms, notice_days)?;
    let clash = entries.iter().any(|e| {
        e.status != Status::Retired
            && e.category == sp.category
            && e.name.to_lowercase() == sp.name.to_lowercase()
    });
    if clash {
        return Err(RegistryError::Duplicate {
            name: sp.name,
            category: sp.category,
        });
    }
    entries.push(sp);
    let last = entries.len() - 1;
    Ok(&entries[last])
}

/// The entry with this id.
pub fn find_mut<'a>(
    entries: &'a mut [SubProcessor],
    id: &str,
) -> Result<&'a mut SubProcessor, RegistryError> {
    entries
        .iter_mut()
        .find(|e| e.id == id)
        .ok_or(RegistryError::NotFound)
}

/// Announces a change to an entry: it waits in `pending_change` until its own
/// effective date, which obeys the same notice rule (and cannot precede the
/// entry's own effective date). Only fields that differ are kept; a change
/// that changes nothing is refused. A new change replaces a pending one: it
/// restarts the notice period, needs its own approval, and the history keeps
/// both.
pub fn announce_change(
    sp: &mut SubProcessor,
    c: ChangeRequest,
    now_ms: Millis,
    notice_days: u32,
) -> Result<(), RegistryError> {
    if sp.status == Status::Retired {
        return Err(RegistryError::AlreadyRetired);
    }
    let purpose = c
        .purpose
        .as_deref()
        .map(|v| text("purpose", v, PURPOSE_MAX))
        .transpose()?
        .filter(|v| *v != sp.purpose);
    let location = c
        .location
        .as_deref()
        .map(|v| text("location", v, LOCATION_MAX))
        .transpose()?
        .filter(|v| *v != sp.location);
    let safeguard = c
        .safeguard
        .as_deref()
        .map(|v| text("safeguard", v, SAFEGUARD_MAX))
        .transpose()?
        .filter(|v| *v != sp.safeguard);
    let data = c
        .data_categories
        .as_deref()
        .map(data_categories)
        .transpose()?
        .filter(|v| *v != sp.data_categories);
    if purpose.is_none() && location.is_none() && safeguard.is_none() && data.is_none() {
        return Err(invalid(
            "change",
            "changes nothing: give a new purpose, location, safeguard or data_categories",
        ));
    }
    let effective_ms = check_effective_at(&c.effective_at, now_ms, notice_days)?;
    let entry_ms = stored_ms(&sp.effective_at, &sp.id, "effective_at");
    if entry_ms.is_some_and(|entry_ms| effective_ms < entry_ms) {
        return Err(invalid(
            "effective_at",
            format!("before the entry itself takes effect ({})", sp.effective_at),
        ));
    }

    let after_location = location.as_deref().unwrap_or(&sp.location);
    let after_safeguard = safeguard.as_deref().unwrap_or(&sp.safeguard);
    let change = PendingChange {
        announced_at: stamp(now_ms),
        effective_at: stamp_exact(effective_ms),
        flags: flags(after_location, after_safeguard),
        purpose,
        location,
        safeguard,
        data_categories: data,
        // A new change needs its own approval, even one replacing an
        // approved change: what was approved is not what now applies.
        approval: Approval::Pending,
        approved_at: None,
        approved_by: None,
    };
    let mut detail = json!({
        "changes": change_diff(sp, &change),
        "flags_after": change.flags,
    });
    if let Some(old) = &sp.pending_change {
        detail["supersedes"] =
            json!({ "announced_at": old.announced_at, "effective_at": old.effective_at });
    }
    sp.history.push(HistoryEntry {
        at: change.announced_at.clone(),
        event: EVENT_CHANGED_ANNOUNCED.to_string(),
        detail,
        effective_at: Some(change.effective_at.clone()),
    });
    sp.pending_change = Some(change);
    Ok(())
}

/// `{"field": {"from": old, "to": new}}` for each field the change touches.
fn change_diff(sp: &SubProcessor, c: &PendingChange) -> Value {
    let mut diff = serde_json::Map::new();
    let mut put = |field: &str, from: Value, to: Value| {
        diff.insert(field.to_string(), json!({ "from": from, "to": to }));
    };
    if let Some(v) = &c.purpose {
        put("purpose", json!(sp.purpose), json!(v));
    }
    if let Some(v) = &c.location {
        put("location", json!(sp.location), json!(v));
    }
    if let Some(v) = &c.safeguard {
        put("safeguard", json!(sp.safeguard), json!(v));
    }
    if let Some(v) = &c.data_categories {
        put("data_categories", json!(sp.data_categories), json!(v));
    }
    Value::Object(diff)
}

/// Records a tenant's objection. One per tenant per entry: a second replaces
/// the reason (and its time) without raising the count. Refused once retired,
/// since there is nothing left to object to. The caller checks that the
/// tenant exists.
pub fn record_objection(
    sp: &mut SubProcessor,
    tenant_id: &str,
    reason: Option<String>,
    now_ms: Millis,
) -> Result<(), RegistryError> {
    if sp.status == Status::Retired {
        return Err(RegistryError::AlreadyRetired);
    }
    let tenant_id = text("tenant_id", tenant_id, TENANT_ID_MAX)?;
    let reason = match reason.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) if r.chars().count() > REASON_MAX => {
            return Err(invalid(
                "reason",
                format!("longer than {REASON_MAX} characters"),
            ));
        }
        // Free text from a tenant; newlines are fine here, it is never a title.
        Some(r) => Some(r.to_string()),
    };
    let at = stamp(now_ms);
    let replaced = match sp.objections.iter_mut().find(|o| o.tenant_id == tenant_id) {
        Some(existing) => {
            existing.reason = reason;
            existing.at = at.clone();
            true
        }
        None => {
            sp.objections.push(Objection {
                tenant_id: tenant_id.clone(),
                reason,
                at: at.clone(),
            });
            false
        }
    };
    sp.objection_count = sp.objections.len();
    // The reason stays in `objections` only; history and feed carry no
    // tenant's words.
    sp.history.push(HistoryEntry {
        at,
        event: EVENT_OBJECTION.to_string(),
        detail: json!({ "tenant_id": tenant_id, "replaced": replaced }),
        effective_at: None,
    });
    Ok(())
}

/// Retires an entry now (proposed or active); a pending change is dropped.
/// Removing a sub-processor needs no notice period: it only narrows who
/// processes the data.
pub fn retire(sp: &mut SubProcessor, now_ms: Millis) -> Result<(), RegistryError> {
    if sp.status == Status::Retired {
        return Err(RegistryError::AlreadyRetired);
    }
    let at = stamp(now_ms);
    let dropped = sp.pending_change.take();
    sp.history.push(HistoryEntry {
        at: at.clone(),
        event: EVENT_RETIRED.to_string(),
        detail: json!({
            "previous_status": sp.status,
            "dropped_pending_change": dropped.map(|c| c.effective_at),
        }),
        effective_at: None,
    });
    sp.status = Status::Retired;
    sp.retired_at = Some(at);
    Ok(())
}

/// What [`approve`] approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approved {
    /// The proposed entry itself.
    pub entry: bool,
    /// Its announced change.
    pub change: bool,
}

/// An admin approves what waits on this entry: the proposal of a new entry
/// and/or its announced change (one approval covers both, since the admin
/// sees the entry as it will be). Nothing pending (or a retired entry) is
/// [`RegistryError::NothingToApprove`]. The approval does not move the
/// effective date: notice still runs to the date tenants were told; if that
/// date has passed, [`advance`] applies it at once.
///
/// `by` is the approver's staff name. It stays on the entry (and in the audit
/// log); the public feed says only that the change was approved.
pub fn approve(
    sp: &mut SubProcessor,
    by: &str,
    reviewed: Option<&str>,
    now_ms: Millis,
) -> Result<Approved, RegistryError> {
    if sp.status == Status::Retired {
        return Err(RegistryError::NothingToApprove);
    }
    let at = stamp(now_ms);
    let entry = sp.status == Status::Proposed && sp.approval != Some(Approval::Approved);
    let change = sp
        .pending_change
        .as_ref()
        .is_some_and(|c| c.approval == Approval::Pending);
    if !entry && !change {
        return Err(RegistryError::NothingToApprove);
    }
    // The admin approves what they reviewed: if another admin replaced the
    // pending change since, this approval must not cover the new one.
    if let Some(reviewed) = reviewed {
        let pending = match sp.pending_change.as_ref().filter(|_| change) {
            Some(c) => c.announced_at.as_str(),
            None => sp.announced_at.as_str(),
        };
        if !same_instant(reviewed, pending) {
            return Err(RegistryError::StaleApproval {
                reviewed: reviewed.to_string(),
                pending: pending.to_string(),
            });
        }
    }
    let mut what = Vec::new();
    let mut effective_at = None;
    if entry {
        sp.approval = Some(Approval::Approved);
        sp.approved_at = Some(at.clone());
        sp.approved_by = Some(by.to_string());
        what.push("entry");
        effective_at = Some(sp.effective_at.clone());
    }
    if let Some(c) = sp.pending_change.as_mut().filter(|_| change) {
        c.approval = Approval::Approved;
        c.approved_at = Some(at.clone());
        c.approved_by = Some(by.to_string());
        what.push("change");
        effective_at = Some(c.effective_at.clone());
    }
    sp.history.push(HistoryEntry {
        at,
        event: EVENT_APPROVED.to_string(),
        detail: json!({ "approved": what, "approved_by": by }),
        effective_at,
    });
    Ok(Approved { entry, change })
}

/// Two RFC 3339 strings naming the same instant (`Z` vs `+00:00`, a
/// fraction or none); unparsable ones compare as text.
fn same_instant(a: &str, b: &str) -> bool {
    match (
        DateTime::parse_from_rfc3339(a),
        DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The instant something approved takes effect: its effective date, or the
/// approval if that came later (never before either).
fn takes_effect_ms(effective: Millis, approved_at: Option<&str>, id: &str) -> Millis {
    approved_at
        .and_then(|a| stored_ms(a, id, "approved_at"))
        .map_or(effective, |a| a.max(effective))
}

/// Applies what has come due by `now_ms`: an approved proposed entry becomes
/// active at its effective date, then an approved pending change applies at
/// its own. Unapproved, either stays pending however late it is. Flags,
/// location class and the objection count are recomputed either way (a rule
/// may have changed since the entry was stored). Returns whether anything
/// changed, so the caller persists and emits an event only then.
///
/// History records when it took effect, not `now_ms`: if the worker ran
/// late, the change still took effect when tenants were told it would (or,
/// if approved after that date, when it was approved).
pub fn advance(sp: &mut SubProcessor, now_ms: Millis) -> bool {
    let mut changed = false;

    // An entry proposed before approvals existed waits for one.
    if sp.status == Status::Proposed && sp.approval.is_none() {
        sp.approval = Some(Approval::Pending);
        changed = true;
    }
    let entry_due = (sp.status == Status::Proposed && sp.approval == Some(Approval::Approved))
        .then(|| stored_ms(&sp.effective_at, &sp.id, "effective_at"))
        .flatten()
        .map(|t| takes_effect_ms(t, sp.approved_at.as_deref(), &sp.id))
        .filter(|t| *t <= now_ms);
    if let Some(t) = entry_due {
        let announced = sp.effective_at.clone();
        sp.effective_at = stamp_exact(t);
        sp.status = Status::Active;
        sp.history.push(HistoryEntry {
            at: sp.effective_at.clone(),
            event: EVENT_EFFECTIVE.to_string(),
            detail: {
                let mut d = terms_json(sp);
                d["kind"] = json!("activated");
                if announced != sp.effective_at {
                    d["announced_effective_at"] = json!(announced);
                }
                d
            },
            effective_at: Some(sp.effective_at.clone()),
        });
        changed = true;
    }

    let change_due = sp.status == Status::Active
        && sp.pending_change.as_ref().is_some_and(|c| {
            c.approval == Approval::Approved
                && stored_ms(&c.effective_at, &sp.id, "pending_change.effective_at")
                    .map(|t| takes_effect_ms(t, c.approved_at.as_deref(), &sp.id))
                    .is_some_and(|t| t <= now_ms)
        });
    if let Some(c) = sp.pending_change.take_if(|_| change_due) {
        let diff = change_diff(sp, &c);
        let effective = stored_ms(&c.effective_at, &sp.id, "pending_change.effective_at")
            .map(|t| stamp_exact(takes_effect_ms(t, c.approved_at.as_deref(), &sp.id)))
            .unwrap_or_else(|| c.effective_at.clone());
        let mut detail = json!({ "kind": "change_applied", "changes": diff });
        if effective != c.effective_at {
            detail["announced_effective_at"] = json!(c.effective_at);
        }
        if let Some(v) = c.purpose {
            sp.purpose = v;
        }
        if let Some(v) = c.location {
            sp.location = v;
        }
        if let Some(v) = c.safeguard {
            sp.safeguard = v;
        }
        if let Some(v) = c.data_categories {
            sp.data_categories = v;
        }
        sp.history.push(HistoryEntry {
            at: effective.clone(),
            event: EVENT_EFFECTIVE.to_string(),
            detail,
            effective_at: Some(effective),
        });
        changed = true;
    }

    let class = classify_location(&sp.location);
    let current_flags = flags(&sp.location, &sp.safeguard);
    if class != sp.location_class || current_flags != sp.flags {
        sp.location_class = class;
        sp.flags = current_flags;
        changed = true;
    }
    if let Some(c) = sp.pending_change.as_mut() {
        let after = flags(
            c.location.as_deref().unwrap_or(&sp.location),
            c.safeguard.as_deref().unwrap_or(&sp.safeguard),
        );
        if after != c.flags {
            c.flags = after;
            changed = true;
        }
    }
    if sp.objection_count != sp.objections.len() {
        sp.objection_count = sp.objections.len();
        changed = true;
    }
    changed
}

/// [`advance`] over every entry; the ids of those that changed.
pub fn advance_all(entries: &mut [SubProcessor], now_ms: Millis) -> Vec<String> {
    entries
        .iter_mut()
        .filter_map(|sp| advance(sp, now_ms).then(|| sp.id.clone()))
        .collect()
}

// ---------------------------------------------------------------------------
// JSON Feed
// ---------------------------------------------------------------------------

fn detail_str<'a>(h: &'a HistoryEntry, key: &str) -> Option<&'a str> {
    h.detail.get(key).and_then(Value::as_str)
}

/// "what, where, safeguard" of an event: the snapshot taken when it happened
/// if there is one, else the entry as it is now.
fn terms_line(sp: &SubProcessor, h: &HistoryEntry) -> String {
    let purpose = detail_str(h, "purpose").unwrap_or(&sp.purpose);
    let location = detail_str(h, "location").unwrap_or(&sp.location);
    let safeguard = detail_str(h, "safeguard").unwrap_or(&sp.safeguard);
    let data = match h.detail.get("data_categories").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        None => sp.data_categories.join(", "),
    };
    format!(
        "{} ({}): {purpose}. Location: {location}. Safeguard: {safeguard}. Personal data: {data}.",
        sp.name, sp.category
    )
}

fn changes_line(changes: Option<&Value>) -> String {
    let Some(Value::Object(map)) = changes else {
        return String::new();
    };
    let show = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    let parts: Vec<String> = map
        .iter()
        .map(|(field, d)| {
            format!(
                "{}: {} -> {}",
                field.replace('_', " "),
                show(d.get("from")),
                show(d.get("to"))
            )
        })
        .collect();
    format!(" Changes: {}.", parts.join("; "))
}

fn feed_item(sp: &SubProcessor, index: usize, h: &HistoryEntry) -> Option<Value> {
    let effective = h.effective_at.as_deref().unwrap_or(&sp.effective_at);
    let kind = detail_str(h, "kind");
    let (title, body) = match (h.event.as_str(), kind) {
        (EVENT_ANNOUNCED, _) => (
            format!(
                "New sub-processor proposed: {}, effective {effective}",
                sp.name
            ),
            terms_line(sp, h),
        ),
        (EVENT_CHANGED_ANNOUNCED, _) => (
            format!(
                "Change to sub-processor {} announced, effective {effective}",
                sp.name
            ),
            format!(
                "{} ({}).{}",
                sp.name,
                sp.category,
                changes_line(h.detail.get("changes"))
            ),
        ),
        (EVENT_EFFECTIVE, Some("seeded")) => (
            format!("Sub-processor listed: {}", sp.name),
            terms_line(sp, h),
        ),
        (EVENT_EFFECTIVE, Some("change_applied")) => (
            format!("Change to sub-processor {} in effect", sp.name),
            format!(
                "{} ({}).{}",
                sp.name,
                sp.category,
                changes_line(h.detail.get("changes"))
            ),
        ),
        (EVENT_EFFECTIVE, _) => (
            format!("Sub-processor now active: {}", sp.name),
            terms_line(sp, h),
        ),
        (EVENT_APPROVED, _) => {
            let only_change = h
                .detail
                .get("approved")
                .and_then(Value::as_array)
                .is_some_and(|w| !w.iter().any(|x| x == "entry"));
            let what = if only_change {
                format!("Change to sub-processor {}", sp.name)
            } else {
                format!("Sub-processor {}", sp.name)
            };
            // Who approved stays internal (entry and audit log).
            (
                format!("{what} approved, effective {effective}"),
                format!(
                    "{} ({}): approved; it takes effect on its effective date.",
                    sp.name, sp.category
                ),
            )
        }
        (EVENT_RETIRED, _) => (
            format!("Sub-processor retired: {}", sp.name),
            format!(
                "{} ({}) no longer processes personal data for us.",
                sp.name, sp.category
            ),
        ),
        // Objections are between a tenant and us: only their count is public.
        _ => return None,
    };
    let mut content = body;
    if h.event != EVENT_RETIRED {
        content.push_str(&format!(" Effective: {effective}."));
    }
    // The flags as of the event (for an announced change, once it applies).
    let flagged = match h
        .detail
        .get("flags_after")
        .or_else(|| h.detail.get("flags"))
    {
        Some(Value::Array(list)) => list.iter().any(|f| f == TRANSFER_WITHOUT_SAFEGUARD),
        _ => sp.flags.iter().any(|f| f == TRANSFER_WITHOUT_SAFEGUARD),
    };
    if flagged {
        content.push_str(" Flagged: transfer outside the EEA without SCC or an adequacy decision.");
    }
    content.push_str(&format!(" Objections so far: {}.", sp.objections.len()));
    Some(json!({
        "id": format!("{}:{index}", sp.id),
        "title": title,
        "content_text": content,
        "date_published": h.at,
        "tags": [sp.category.as_str(), h.event],
        // JSON Feed extension (underscore-prefixed keys are reserved for
        // publishers) so a program need not parse the prose.
        "_c24": {
            "subprocessor_id": sp.id,
            "event": h.event,
            "status": sp.status,
            "effective_at": effective,
            "flags": sp.flags,
            "objection_count": sp.objections.len(),
        },
    }))
}

/// A JSON Feed 1.1 (<https://www.jsonfeed.org/version/1.1/>) of registry
/// changes: one item per announced, change-announced, approved, effective and
/// retired event of every entry, newest first. Item ids (`{entry id}:{history index}`)
/// are stable because history is append-only, so readers do not repeat items.
pub fn feed_json(entries: &[SubProcessor], feed_url: &str, home_url: &str) -> Value {
    let mut items: Vec<(Millis, &str, usize, Value)> = entries
        .iter()
        .flat_map(|sp| {
            sp.history.iter().enumerate().filter_map(move |(i, h)| {
                let item = feed_item(sp, i, h)?;
                // An unparseable time sorts last rather than hiding the item.
                let at = parse_ms(&h.at).unwrap_or(Millis::MIN);
                Some((at, sp.id.as_str(), i, item))
            })
        })
        .collect();
    // Newest first; same-second events by entry id (time-ordered v7) then
    // history position, so the order is deterministic.
    items.sort_by(|a, b| (b.0, b.1, b.2).cmp(&(a.0, a.1, a.2)));
    json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Conversation24 sub-processor changes",
        "description": "New, changed and retired sub-processors, announced ahead of their effective date.",
        "home_page_url": home_url,
        "feed_url": feed_url,
        "language": "en",
        "items": items.into_iter().map(|(_, _, _, item)| item).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-01T00:00:00Z.
    const NOW: Millis = 1_735_689_600_000;

    fn ann(effective_ms: Millis) -> Announcement {
        Announcement {
            name: "Example Analytics GmbH".into(),
            category: "Monitoring & Logging".into(),
            purpose: "Error tracking".into(),
            location: "Germany".into(),
            safeguard: "DPA".into(),
            data_categories: vec!["IP addresses".into(), "Session metadata".into()],
            effective_at: stamp_exact(effective_ms),
        }
    }

    fn active(now: Millis) -> SubProcessor {
        let mut sp = announce(ann(now + 30 * DAY_MS), now, 30).unwrap();
        approve(&mut sp, "ada", None, now).unwrap();
        assert!(advance(&mut sp, now + 30 * DAY_MS));
        sp
    }

    fn field_of(r: Result<impl std::fmt::Debug, RegistryError>) -> &'static str {
        let e = r.unwrap_err();
        assert_eq!(e.code(), "invalid_field", "{e}");
        assert_eq!(e.http_status(), 422);
        e.field().unwrap()
    }

    #[test]
    fn classifies_locations() {
        use LocationClass::*;
        for (loc, want) in [
            ("Germany", Eea),
            ("de", Eea),
            ("DE", Eea),
            ("the Netherlands", Eea),
            ("EL", Eea),
            ("Norway", Eea),
            ("LI", Eea),
            ("iceland", Eea),
            ("EU", Eea),
            ("EEA", Eea),
            ("European Union", Eea),
            ("EU (Germany)", Eea),
            ("(Ireland)", Eea),
            ("EU (Frankfurt/Dublin)", Eea),
            ("Germany, France", Eea),
            ("Global", Global),
            ("worldwide", Global),
            ("EU / Global", Global),
            ("United Kingdom", Adequate),
            ("UK", Adequate),
            ("GB", Adequate),
            ("Switzerland", Adequate),
            ("Japan", Adequate),
            ("Republic of Korea", Adequate),
            ("Korea, Republic of", Adequate),
            ("US", Adequate),
            ("U.S.", Adequate),
            ("United States of America", Adequate),
            ("Isle of Man", Adequate),
            ("EU / US", Adequate),
            ("India", ThirdCountry),
            ("IN", ThirdCountry),
            ("Brazil", ThirdCountry),
            ("EU / India", ThirdCountry),
            ("Europe", ThirdCountry),
            ("", ThirdCountry),
            ("Atlantis", ThirdCountry),
        ] {
            assert_eq!(classify_location(loc), want, "{loc:?}");
        }
    }

    #[test]
    fn flags_transfers_without_safeguard() {
        let flagged = vec![TRANSFER_WITHOUT_SAFEGUARD.to_string()];
        // Adequacy decision (DPF for the US): the location is the safeguard.
        assert!(flags("US", "DPA").is_empty());
        assert!(flags("United Kingdom", "DPA").is_empty());
        assert_eq!(flags("India", "DPA"), flagged);
        assert!(flags("India", "SCC / DPA").is_empty());
        assert!(flags("India", "Standard Contractual Clauses (2021)").is_empty());
        assert!(flags("India", "sccs").is_empty());
        assert!(flags("India", "Adequacy decision").is_empty());
        assert_eq!(flags("Global", "DPA"), flagged);
        assert_eq!(flags("EU / Global", "ISO 27001 / DPA"), flagged);
        assert!(flags("Global", "scc / dpa").is_empty());
        assert!(flags("EU", "DPA").is_empty());
        assert!(flags("EU (Germany)", "ISO 27001 / DPA").is_empty());
        // "scc" only as a word, not inside one.
        assert_eq!(flags("Brazil", "DPA, SCCX audit"), flagged);
        assert_eq!(flags("Atlantis", "DPA"), flagged);
    }

    #[test]
    fn category_strings_and_parse() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
            assert_eq!(Category::parse(&c.as_str().to_uppercase()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
        }
        assert_eq!(
            Category::parse(" security & anti-malware "),
            Some(Category::SecurityAntiMalware)
        );
        assert_eq!(Category::parse("Monitoring"), None);
        assert_eq!(
            serde_json::to_value(Status::Proposed).unwrap(),
            json!("proposed")
        );
        assert_eq!(
            serde_json::to_value(LocationClass::ThirdCountry).unwrap(),
            json!("third_country")
        );
    }

    #[test]
    fn announce_enforces_notice_period_and_accepts_the_boundary() {
        let boundary = NOW + 30 * DAY_MS;
        let e = announce(ann(boundary - 1), NOW, 30).unwrap_err();
        assert_eq!(e.code(), "notice_period");
        assert_eq!(e.http_status(), 422);
        assert_eq!(
            e,
            RegistryError::NoticePeriod {
                earliest: "2025-01-31T00:00:00Z".into()
            }
        );

        let sp = announce(ann(boundary), NOW, 30).unwrap();
        assert_eq!(sp.status, Status::Proposed);
        assert_eq!(sp.effective_at, "2025-01-31T00:00:00Z");
        assert_eq!(sp.announced_at, "2025-01-01T00:00:00Z");
        assert_eq!(sp.category, Category::MonitoringLogging);
        assert_eq!(sp.location_class, LocationClass::Eea);
        assert!(sp.flags.is_empty());
        assert_eq!(sp.history.len(), 1);
        assert_eq!(sp.history[0].event, EVENT_ANNOUNCED);
        assert_eq!(sp.id.len(), 32);

        // Another offset meaning the same instant is the same boundary.
        let mut a = ann(boundary);
        a.effective_at = "2025-01-31T01:00:00+01:00".into();
        assert_eq!(
            announce(a, NOW, 30).unwrap().effective_at,
            "2025-01-31T00:00:00Z"
        );

        // The earliest shown for an off-second now is itself accepted.
        let now = NOW + 500;
        let RegistryError::NoticePeriod { earliest } = announce(ann(NOW), now, 30).unwrap_err()
        else {
            panic!("expected notice_period");
        };
        let mut a = ann(NOW);
        a.effective_at = earliest;
        assert!(announce(a, now, 30).is_ok());

        // A custom notice period.
        assert!(announce(ann(NOW + 7 * DAY_MS), NOW, 7).is_ok());
        assert!(announce(ann(NOW + 7 * DAY_MS), NOW, 8).is_err());
    }

    #[test]
    fn announce_validates_fields() {
        type Edit = fn(&mut Announcement);
        let cases: [(Edit, &str); 10] = [
            (|a| a.name = "  ".into(), "name"),
            (|a| a.category = "Cloud".into(), "category"),
            (|a| a.effective_at = "tomorrow".into(), "effective_at"),
            (|a| a.effective_at = "2025-03-01".into(), "effective_at"),
            (
                |a| a.effective_at = "2099-01-01T00:00:00Z".into(),
                "effective_at",
            ),
            (|a| a.purpose = String::new(), "purpose"),
            (|a| a.location = "x".repeat(101), "location"),
            (|a| a.safeguard = "DPA\nforged".into(), "safeguard"),
            (|a| a.data_categories.clear(), "data_categories"),
            (|a| a.data_categories.push(" ".into()), "data_categories"),
        ];
        let ok = || ann(NOW + 31 * DAY_MS);
        for (edit, field) in cases {
            let mut a = ok();
            edit(&mut a);
            assert_eq!(field_of(announce(a, NOW, 30)), field);
        }
        // Case-insensitive category, trimmed text, duplicate data categories dropped.
        let sp = announce(
            Announcement {
                name: "  Acme  ".into(),
                category: "cloud infrastructure".into(),
                data_categories: vec!["Email".into(), "email ".into(), "Name".into()],
                ..ok()
            },
            NOW,
            30,
        )
        .unwrap();
        assert_eq!(sp.name, "Acme");
        assert_eq!(sp.category, Category::CloudInfrastructure);
        assert_eq!(sp.data_categories, vec!["Email", "Name"]);
    }

    #[test]
    fn announcement_body_rejects_unknown_fields() {
        let body = json!({
            "name": "Acme", "category": "Collaboration Tools", "purpose": "Chat",
            "location": "India", "safeguard": "DPA", "data_categories": ["Names"],
            "effective_at": "2025-03-01T00:00:00Z",
        });
        let a: Announcement = serde_json::from_value(body.clone()).unwrap();
        let sp = announce(a, NOW, 30).unwrap();
        assert_eq!(sp.location_class, LocationClass::ThirdCountry);
        assert_eq!(sp.flags, vec![TRANSFER_WITHOUT_SAFEGUARD]);

        let mut extra = body;
        extra["status"] = json!("active");
        assert!(serde_json::from_value::<Announcement>(extra).is_err());
        assert!(
            serde_json::from_value::<ChangeRequest>(json!({"effective_at": "x", "name": "y"}))
                .is_err()
        );
    }

    #[test]
    fn advance_activates_at_the_effective_date_not_before() {
        let eff = NOW + 30 * DAY_MS;
        let mut sp = announce(ann(eff), NOW, 30).unwrap();
        approve(&mut sp, "ada", None, NOW + 1_000).unwrap();
        assert!(!advance(&mut sp, eff - 1));
        assert_eq!(sp.status, Status::Proposed);
        assert_eq!(sp.history.len(), 2);

        assert!(advance(&mut sp, eff));
        assert_eq!(sp.status, Status::Active);
        let last = sp.history.last().unwrap();
        assert_eq!(last.event, EVENT_EFFECTIVE);
        assert_eq!(last.at, "2025-01-31T00:00:00Z");
        // Nothing more is due.
        assert!(!advance(&mut sp, eff + 1));

        // A late worker (31 days on) still activates, dated when it was due.
        let mut sp = announce(ann(eff), NOW, 30).unwrap();
        approve(&mut sp, "ada", None, NOW).unwrap();
        assert!(advance(&mut sp, NOW + 31 * DAY_MS));
        assert_eq!(sp.history.last().unwrap().at, sp.effective_at);
    }

    #[test]
    fn change_waits_for_its_date_then_applies() {
        let mut sp = active(NOW);
        let t = NOW + 40 * DAY_MS;
        let change = ChangeRequest {
            location: Some("India".into()),
            safeguard: Some("DPA".into()),
            purpose: Some(sp.purpose.clone()), // unchanged, so not kept
            ..ChangeRequest::default()
        };

        let early = ChangeRequest {
            effective_at: stamp_exact(t + 29 * DAY_MS),
            ..change.clone()
        };
        assert_eq!(
            announce_change(&mut sp, early, t, 30).unwrap_err().code(),
            "notice_period"
        );
        let nothing = ChangeRequest {
            effective_at: stamp_exact(t + 30 * DAY_MS),
            ..ChangeRequest::default()
        };
        assert_eq!(field_of(announce_change(&mut sp, nothing, t, 30)), "change");

        let due = t + 30 * DAY_MS;
        let req = ChangeRequest {
            effective_at: stamp_exact(due),
            ..change
        };
        announce_change(&mut sp, req, t, 30).unwrap();
        approve(&mut sp, "ada", None, t).unwrap();
        let pending = sp.pending_change.clone().unwrap();
        assert_eq!(pending.approval, Approval::Approved);
        assert_eq!(pending.purpose, None);
        assert_eq!(pending.location.as_deref(), Some("India"));
        assert_eq!(pending.flags, vec![TRANSFER_WITHOUT_SAFEGUARD]);
        assert!(sp.flags.is_empty());
        let announced = &sp.history[sp.history.len() - 2];
        assert_eq!(announced.event, EVENT_CHANGED_ANNOUNCED);
        assert_eq!(
            announced.detail["changes"]["location"],
            json!({"from": "Germany", "to": "India"})
        );

        assert!(!advance(&mut sp, due - 1));
        assert_eq!(sp.location, "Germany");
        assert!(advance(&mut sp, due));
        assert_eq!(sp.location, "India");
        assert_eq!(sp.safeguard, "DPA");
        assert_eq!(sp.location_class, LocationClass::ThirdCountry);
        assert_eq!(sp.flags, vec![TRANSFER_WITHOUT_SAFEGUARD]);
        assert!(sp.pending_change.is_none());
        let last = sp.history.last().unwrap();
        assert_eq!(last.event, EVENT_EFFECTIVE);
        assert_eq!(last.detail["kind"], "change_applied");
        assert!(!advance(&mut sp, due + DAY_MS));
    }

    #[test]
    fn change_on_a_proposed_entry_applies_after_activation() {
        let eff = NOW + 30 * DAY_MS;
        let mut sp = announce(ann(eff), NOW, 30).unwrap();
        let before_entry = ChangeRequest {
            purpose: Some("Uptime checks".into()),
            effective_at: stamp_exact(NOW + 30 * DAY_MS - 1),
            ..ChangeRequest::default()
        };
        // Outside the notice period, but before the entry itself takes effect.
        assert_eq!(
            announce_change(&mut sp, before_entry, NOW - DAY_MS, 30)
                .unwrap_err()
                .field(),
            Some("effective_at")
        );
        let req = ChangeRequest {
            purpose: Some("Uptime checks".into()),
            effective_at: stamp_exact(eff),
            ..ChangeRequest::default()
        };
        announce_change(&mut sp, req, NOW, 30).unwrap();
        // One approval covers the proposal and its change.
        assert_eq!(
            approve(&mut sp, "ada", None, NOW).unwrap(),
            Approved {
                entry: true,
                change: true
            }
        );
        assert!(advance(&mut sp, eff));
        assert_eq!(sp.status, Status::Active);
        assert_eq!(sp.purpose, "Uptime checks");
        let events: Vec<_> = sp.history.iter().map(|h| h.event.as_str()).collect();
        assert_eq!(
            events,
            [
                EVENT_ANNOUNCED,
                EVENT_CHANGED_ANNOUNCED,
                EVENT_APPROVED,
                EVENT_EFFECTIVE,
                EVENT_EFFECTIVE
            ]
        );
    }

    #[test]
    fn objections_count_once_per_tenant_and_stop_at_retirement() {
        let mut sp = announce(ann(NOW + 30 * DAY_MS), NOW, 30).unwrap();
        record_objection(&mut sp, "t1", Some("too far".into()), NOW + 1_000).unwrap();
        record_objection(&mut sp, "t1", Some("still".into()), NOW + 2_000).unwrap();
        assert_eq!(sp.objection_count, 1);
        assert_eq!(sp.objections[0].reason.as_deref(), Some("still"));
        record_objection(&mut sp, "t2", Some("   ".into()), NOW + 3_000).unwrap();
        assert_eq!(sp.objection_count, 2);
        assert_eq!(sp.objections[1].reason, None);
        assert_eq!(
            field_of(record_objection(&mut sp, " ", None, NOW)),
            "tenant_id"
        );

        retire(&mut sp, NOW + 4_000).unwrap();
        assert_eq!(sp.status, Status::Retired);
        assert_eq!(sp.retired_at.as_deref(), Some("2025-01-01T00:00:04Z"));
        let e = record_objection(&mut sp, "t3", None, NOW + 5_000).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("conflict", 409));
        assert_eq!(sp.objection_count, 2);
        assert_eq!(
            retire(&mut sp, NOW + 6_000),
            Err(RegistryError::AlreadyRetired)
        );
        // A retired proposal never becomes active.
        assert!(!advance(&mut sp, NOW + 60 * DAY_MS));
        assert_eq!(sp.status, Status::Retired);
    }

    #[test]
    fn seed_ids_are_fixed_distinct_and_listed_first() {
        let ids: Vec<String> = seed(NOW).into_iter().map(|e| e.id).collect();
        let again: Vec<String> = seed(NOW + DAY_MS).into_iter().map(|e| e.id).collect();
        assert_eq!(ids, again, "every node seeds the same ids");
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "distinct, and listed in the policy's order");
        assert!(ids.iter().all(|id| *id < new_id() && id.len() == 32));
    }

    #[test]
    fn seed_lists_the_policy_rows_verbatim() {
        let entries = seed(NOW);
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    serde_json::to_value(e.category).unwrap(),
                    e.purpose.as_str(),
                    e.location.as_str(),
                    e.safeguard.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    json!("Cloud Infrastructure"),
                    "Hosting and data storage",
                    "EU (Germany)",
                    "ISO 27001 / DPA"
                ),
                (
                    json!("Security & Anti-malware"),
                    "Security scanning and threat detection",
                    "EU / Global",
                    "SCC / DPA"
                ),
                (
                    json!("Collaboration Tools"),
                    "Internal operations",
                    "EU / Global",
                    "SCC / DPA"
                ),
                (
                    json!("Monitoring & Logging"),
                    "Platform monitoring and security",
                    "EU",
                    "DPA"
                ),
                (
                    json!("Communication Channels"),
                    "Messaging channel integrations",
                    "Global",
                    "SCC / DPA"
                ),
            ]
        );
        for e in &entries {
            assert_eq!(e.status, Status::Active);
            assert_eq!(e.effective_at, "2025-01-01T00:00:00Z");
            assert_eq!(e.announced_at, e.effective_at);
            assert!(e.flags.is_empty(), "{}", e.name);
            assert!(!e.data_categories.is_empty());
        }
        assert_eq!(entries[0].name, "Amazon Web Services EMEA SARL");
        assert_eq!(entries[4].location_class, LocationClass::Global);
        let ids: HashSet<_> = entries.iter().map(|e| &e.id).collect();
        assert_eq!(ids.len(), 5);

        // Persisted JSON round-trips, with the policy's category strings.
        let text = serde_json::to_string(&entries).unwrap();
        assert!(text.contains("\"Monitoring & Logging\""));
        let back: Vec<SubProcessor> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, entries);
    }

    #[test]
    fn announce_into_refuses_duplicates_and_find_mut_reports_not_found() {
        let mut entries = seed(NOW);
        let a = Announcement {
            name: "amazon web services emea sarl".into(),
            category: "Cloud Infrastructure".into(),
            ..ann(NOW + 30 * DAY_MS)
        };
        let e = announce_into(&mut entries, a.clone(), NOW, 30).unwrap_err();
        assert_eq!(e.code(), "conflict");
        let id = entries[0].id.clone();
        retire(find_mut(&mut entries, &id).unwrap(), NOW).unwrap();
        assert_eq!(
            announce_into(&mut entries, a, NOW, 30).unwrap().status,
            Status::Proposed
        );
        let e = find_mut(&mut entries, "nope").unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("not_found", 404));
    }

    #[test]
    fn advance_all_reports_changed_ids() {
        let mut entries = seed(NOW);
        entries.push(announce(ann(NOW + 30 * DAY_MS), NOW, 30).unwrap());
        approve(&mut entries[5], "ada", None, NOW).unwrap();
        assert!(advance_all(&mut entries, NOW + DAY_MS).is_empty());
        let changed = advance_all(&mut entries, NOW + 31 * DAY_MS);
        assert_eq!(changed, vec![entries[5].id.clone()]);
    }

    #[test]
    fn feed_is_json_feed_newest_first() {
        let mut entries = seed(NOW);
        let t = NOW + DAY_MS;
        let mut sp = announce(ann(t + 30 * DAY_MS), t, 30).unwrap();
        record_objection(&mut sp, "t1", Some("private reason".into()), t + 1_000).unwrap();
        approve(&mut sp, "ada-the-approver", None, t + 1_500).unwrap();
        advance(&mut sp, t + 30 * DAY_MS);
        let retired_id = entries[1].id.clone();
        retire(&mut entries[1], t + 2_000).unwrap();
        entries.push(sp);

        let feed = feed_json(&entries, "https://x/feed.json", "https://x/");
        assert_eq!(feed["version"], "https://jsonfeed.org/version/1.1");
        assert_eq!(feed["feed_url"], "https://x/feed.json");
        assert_eq!(feed["home_page_url"], "https://x/");
        let items = feed["items"].as_array().unwrap();
        // 5 seeded + announced + approved + effective + retired; the
        // objection is not an item, and the approver is not named.
        assert_eq!(items.len(), 9);
        assert!(!feed.to_string().contains("private reason"));
        assert!(!feed.to_string().contains("ada-the-approver"));
        assert!(!feed.to_string().contains("\"t1\""));

        let dates: Vec<Millis> = items
            .iter()
            .map(|i| parse_ms(i["date_published"].as_str().unwrap()).unwrap())
            .collect();
        assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{dates:?}");
        assert_eq!(
            items[0]["tags"],
            json!(["Monitoring & Logging", "effective"])
        );
        assert_eq!(
            items[1]["tags"],
            json!(["Security & Anti-malware", "retired"])
        );
        assert_eq!(items[1]["id"], json!(format!("{retired_id}:1")));
        assert_eq!(
            items[2]["tags"],
            json!(["Monitoring & Logging", "approved"])
        );
        let approved = items[2]["title"].as_str().unwrap();
        assert!(
            approved.starts_with("Sub-processor Example Analytics GmbH approved"),
            "{approved}"
        );
        assert_eq!(
            items[3]["tags"],
            json!(["Monitoring & Logging", "announced"])
        );
        let announced = items[3]["content_text"].as_str().unwrap();
        assert!(announced.contains("Location: Germany"), "{announced}");
        assert!(announced.contains("Safeguard: DPA"), "{announced}");
        assert!(
            announced.contains("Effective: 2025-02-01T00:00:00Z"),
            "{announced}"
        );
        assert!(announced.contains("Objections so far: 1"), "{announced}");
        assert_eq!(items[3]["_c24"]["objection_count"], 1);

        let ids: HashSet<_> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), items.len());
        for item in items {
            assert!(item["title"].as_str().is_some_and(|s| !s.is_empty()));
            assert_eq!(item["tags"].as_array().unwrap().len(), 2);
        }
    }

    #[test]
    fn feed_shows_a_risky_change_while_tenants_can_object() {
        let mut sp = active(NOW);
        let t = NOW + 31 * DAY_MS;
        let req = ChangeRequest {
            location: Some("India".into()),
            effective_at: stamp_exact(t + 30 * DAY_MS),
            ..ChangeRequest::default()
        };
        announce_change(&mut sp, req, t, 30).unwrap();
        let feed = feed_json(std::slice::from_ref(&sp), "f", "h");
        let newest = &feed["items"][0];
        assert_eq!(newest["tags"][1], EVENT_CHANGED_ANNOUNCED);
        let text = newest["content_text"].as_str().unwrap();
        assert!(text.contains("location: Germany -> India"), "{text}");
        assert!(text.contains("Flagged"), "{text}");
        assert!(text.contains("Effective: 2025-03-03T00:00:00Z"), "{text}");
        // The activation before it was not flagged.
        let older = feed["items"][1]["content_text"].as_str().unwrap();
        assert!(!older.contains("Flagged"), "{older}");
    }

    #[test]
    fn an_unapproved_proposal_stays_pending_past_its_date() {
        let eff = NOW + 30 * DAY_MS;
        let mut sp = announce(ann(eff), NOW, 30).unwrap();
        assert_eq!(sp.approval, Some(Approval::Pending));
        assert!(sp.awaits_approval());
        assert!(!advance(&mut sp, eff + 5 * DAY_MS));
        assert_eq!(sp.status, Status::Proposed);

        // Approved late: in effect at once, dated when approved (never
        // before the approval), the announced date kept in the history.
        let late = eff + 5 * DAY_MS + 1_000;
        approve(&mut sp, "ada", None, late).unwrap();
        assert_eq!(sp.approved_by.as_deref(), Some("ada"));
        assert_eq!(sp.approved_at.as_deref(), Some("2025-02-05T00:00:01Z"));
        assert!(!sp.awaits_approval());
        assert!(advance(&mut sp, late));
        assert_eq!(sp.status, Status::Active);
        assert_eq!(sp.effective_at, "2025-02-05T00:00:01Z");
        let last = sp.history.last().unwrap();
        assert_eq!(last.event, EVENT_EFFECTIVE);
        assert_eq!(last.at, "2025-02-05T00:00:01Z");
        assert_eq!(
            last.detail["announced_effective_at"],
            "2025-01-31T00:00:00Z"
        );
        // Nothing is left to approve.
        let e = approve(&mut sp, "ada", None, late).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("nothing_to_approve", 409));
    }

    #[test]
    fn a_change_needs_its_own_approval_and_a_new_change_resets_it() {
        let mut sp = active(NOW);
        assert_eq!(sp.approval, Some(Approval::Approved));
        assert_eq!(
            approve(&mut sp, "ada", None, NOW).unwrap_err(),
            RegistryError::NothingToApprove
        );
        let t = NOW + 31 * DAY_MS;
        let due = t + 30 * DAY_MS;
        let change = |purpose: &str| ChangeRequest {
            purpose: Some(purpose.into()),
            effective_at: stamp_exact(due),
            ..ChangeRequest::default()
        };
        announce_change(&mut sp, change("Uptime checks"), t, 30).unwrap();
        assert!(sp.awaits_approval());
        assert_eq!(
            approve(&mut sp, "ada", None, t).unwrap(),
            Approved {
                entry: false,
                change: true
            }
        );
        // A new change replaces the approved one and waits again.
        announce_change(&mut sp, change("Uptime and latency checks"), t, 30).unwrap();
        let c = sp.pending_change.as_ref().unwrap();
        assert_eq!(
            (c.approval, c.approved_by.as_deref()),
            (Approval::Pending, None)
        );
        assert!(!advance(&mut sp, due + DAY_MS));
        assert_eq!(sp.purpose, "Error tracking");
        assert!(sp.pending_change.is_some());

        approve(&mut sp, "otto", None, due + DAY_MS).unwrap();
        assert!(advance(&mut sp, due + DAY_MS));
        assert_eq!(sp.purpose, "Uptime and latency checks");
        assert!(sp.pending_change.is_none());
        assert_eq!(sp.history.last().unwrap().at, stamp(due + DAY_MS));

        // Retired: nothing to approve.
        retire(&mut sp, due + 2 * DAY_MS).unwrap();
        assert_eq!(
            approve(&mut sp, "ada", None, due + 2 * DAY_MS).unwrap_err(),
            RegistryError::NothingToApprove
        );
    }

    #[test]
    fn an_approval_of_what_was_reviewed_refuses_a_change_replaced_since() {
        let mut sp = announce(ann(NOW + 30 * DAY_MS), NOW, 30).unwrap();
        approve(&mut sp, "ada", Some(&stamp(NOW)), NOW).unwrap();
        let t = NOW + 1_000;
        let change = |purpose: &str, at: Millis| ChangeRequest {
            purpose: Some(purpose.into()),
            effective_at: stamp_exact(at + 31 * DAY_MS),
            ..ChangeRequest::default()
        };
        announce_change(&mut sp, change("First", t), t, 30).unwrap();
        let reviewed = sp.pending_change.as_ref().unwrap().announced_at.clone();
        // Another admin replaces the change before the approval arrives.
        let later = t + 5_000;
        announce_change(&mut sp, change("Second", later), later, 30).unwrap();
        let before = sp.clone();
        let e = approve(&mut sp, "ada", Some(&reviewed), later).unwrap_err();
        assert!(matches!(e, RegistryError::StaleApproval { .. }), "{e:?}");
        assert_eq!((e.code(), e.http_status()), ("stale_approval", 409));
        assert_eq!(sp, before, "a refused approval changes nothing");
        // Approving what is pending now works, in either spelling of the instant.
        let now_pending = sp.pending_change.as_ref().unwrap().announced_at.clone();
        let spelled = now_pending.replace('Z', "+00:00");
        approve(&mut sp, "ada", Some(&spelled), later).unwrap();
        assert_eq!(
            sp.pending_change.as_ref().unwrap().approval,
            Approval::Approved
        );
    }

    #[test]
    fn a_proposal_stored_before_approvals_existed_waits_for_one() {
        let mut sp = announce(ann(NOW + 30 * DAY_MS), NOW, 30).unwrap();
        let mut doc = serde_json::to_value(&sp).unwrap();
        doc.as_object_mut().unwrap().remove("approval");
        sp = serde_json::from_value(doc).unwrap();
        assert_eq!(sp.approval, None);
        assert!(sp.awaits_approval());
        assert!(advance(&mut sp, NOW + 40 * DAY_MS));
        assert_eq!(
            (sp.status, sp.approval),
            (Status::Proposed, Some(Approval::Pending))
        );
        // A pending change stored without the field reads as pending.
        let c: PendingChange = serde_json::from_value(json!({
            "announced_at": "2025-01-01T00:00:00Z", "effective_at": "2025-02-01T00:00:00Z",
        }))
        .unwrap();
        assert_eq!(c.approval, Approval::Pending);
        // Seeded entries needed no approval.
        assert!(
            seed(NOW)
                .iter()
                .all(|e| e.approval.is_none() && !e.awaits_approval())
        );
    }
}
