//! Scenario files → [`Plan`], with every error naming `FILE:LINE: key: message`.
//!
//! The file is read with `toml`'s spanned document model (`DeTable`), so each
//! key and value still knows where it was written; the walk below checks
//! every key against what its table allows and converts units with
//! `c24_api::units`, collecting all errors rather than stopping at the first.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use c24_api::units::{parse_duration, parse_size};
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::{
    Arrivals, Channel, Feeder, FeederOrder, FeederSource, Field, Model, Part, Plan, Scenario,
    Script, SizeDist, Stage, Step, Template, TenantSpec, ThinkDist,
};
use super::{HttpStep, SignEncoding, SignRule, TenantCred, WsStep};
use crate::schedule::OpenSchedule;
use crate::thresholds::{self, Threshold};

/// One mistake in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based; 0 when the file could not be read at all.
    pub line: usize,
    /// Dotted path of the key, e.g. `script[0].steps[2].think`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every mistake found in a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

impl std::fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        one_a_line(f, &self.0)
    }
}

/// Errors one a line, for a file's list of mistakes.
pub(crate) fn one_a_line<E: std::fmt::Display>(
    f: &mut std::fmt::Formatter<'_>,
    errors: &[E],
) -> std::fmt::Result {
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            writeln!(f)?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Plan, ScenarioErrors> {
    match std::fs::read_to_string(path) {
        Ok(src) => parse_str(path, &src),
        Err(e) => Err(ScenarioErrors(vec![ScenarioError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }])),
    }
}

/// Validates scenario text; `path` names it in errors and anchors feeder files.
pub fn parse_str(path: &Path, src: &str) -> Result<Plan, ScenarioErrors> {
    let mut ctx = Ctx {
        file: path.to_path_buf(),
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        line_starts: std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        errors: Vec::new(),
    };
    let doc = match DeTable::parse(src) {
        Ok(d) => d,
        Err(e) => {
            let line = e.span().map(|s| ctx.line_of(s.start)).unwrap_or(0);
            let message = e.message().trim().to_string();
            return Err(ScenarioErrors(vec![ScenarioError {
                file: ctx.file,
                line,
                key: String::new(),
                message: format!("not valid TOML: {message}"),
            }]));
        }
    };
    let root = Tbl {
        map: doc.get_ref(),
        path: String::new(),
        span: 0..0,
    };
    let plan = plan(&mut ctx, &root);
    match plan {
        Some(p) if ctx.errors.is_empty() => Ok(p),
        _ => {
            let mut errors = ctx.errors;
            errors.sort_by_key(|e| e.line);
            if errors.is_empty() {
                errors.push(ScenarioError {
                    file: path.to_path_buf(),
                    line: 0,
                    key: String::new(),
                    message: "invalid scenario".into(),
                });
            }
            Err(ScenarioErrors(errors))
        }
    }
}

struct Ctx {
    file: PathBuf,
    dir: PathBuf,
    line_starts: Vec<usize>,
    errors: Vec<ScenarioError>,
}

impl Ctx {
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).max(1)
    }

    fn error(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let line = self.line_of(span.start);
        self.errors.push(ScenarioError {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }
}

type Val<'i> = Spanned<DeValue<'i>>;

/// A table being read: its entries, its dotted path, and where it was named.
struct Tbl<'a, 'i> {
    map: &'a DeTable<'i>,
    path: String,
    span: Range<usize>,
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.map.get(key)
    }

    fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some()
    }

    fn path_of(&self, key: &str) -> String {
        let k = if key.contains('.') || key.contains(' ') {
            format!("{key:?}")
        } else {
            key.to_string()
        };
        if self.path.is_empty() {
            k
        } else {
            format!("{}.{k}", self.path)
        }
    }

    /// Where `key` is written (the key itself), else where the table is.
    fn key_span(&self, key: &str) -> Range<usize> {
        self.map
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(k, _)| k.span())
            .unwrap_or_else(|| self.span.clone())
    }

    /// Flags every key not in `allowed`.
    fn allow(&self, ctx: &mut Ctx, allowed: &[&str]) {
        for (k, _) in self.map.iter() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                let hint =
                    if !self.path.is_empty() && TOP_LEVEL_KEYS.contains(&k.get_ref().as_ref()) {
                        " (a top-level key belongs above the first [table] header)"
                    } else {
                        ""
                    };
                ctx.error(
                    &k.span(),
                    &self.path_of(k.get_ref()),
                    format!("unknown key; expected one of: {}{hint}", allowed.join(", ")),
                );
            }
        }
    }

    fn missing(&self, ctx: &mut Ctx, key: &str, message: &str) {
        let what = if self.path.is_empty() {
            "the top level".to_string()
        } else {
            format!("[{}]", self.path)
        };
        ctx.error(
            &self.span,
            &self.path_of(key),
            format!("missing in {what}: {message}"),
        );
    }

    fn sub(&self, ctx: &mut Ctx, key: &str) -> Option<Tbl<'a, 'i>> {
        let v = self.get(key)?;
        table(ctx, v, self.path_of(key), self.key_span(key))
    }

    fn string(&self, ctx: &mut Ctx, key: &str) -> Option<String> {
        self.get(key)
            .and_then(|v| string(ctx, v, &self.path_of(key)))
    }

    /// A string naming one of `options` (absent: the first one's value);
    /// another name is an error ending with `hint`, and the first value.
    fn choice<T: Copy>(&self, ctx: &mut Ctx, key: &str, options: &[(&str, T)], hint: &str) -> T {
        let first = options[0].1;
        let Some(name) = self.string(ctx, key) else {
            return first;
        };
        match options.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => *v,
            None => {
                ctx.error(
                    &self.key_span(key),
                    &self.path_of(key),
                    format!("unknown {key} {name:?}; {hint}"),
                );
                first
            }
        }
    }

    fn duration(&self, ctx: &mut Ctx, key: &str) -> Option<Duration> {
        self.get(key)
            .and_then(|v| duration(ctx, v, &self.path_of(key)))
    }

    fn number(&self, ctx: &mut Ctx, key: &str) -> Option<f64> {
        self.get(key)
            .and_then(|v| number(ctx, v, &self.path_of(key)))
    }

    fn uint(&self, ctx: &mut Ctx, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| uint(ctx, v, &self.path_of(key)))
    }
}

fn table<'a, 'i>(
    ctx: &mut Ctx,
    v: &'a Val<'i>,
    path: String,
    span: Range<usize>,
) -> Option<Tbl<'a, 'i>> {
    match v.get_ref() {
        DeValue::Table(map) => Some(Tbl { map, path, span }),
        other => wrong_type(ctx, v, &path, "a table", other),
    }
}

/// A value of the wrong TOML type: the error names what was expected and
/// what was found, at the value's line.
fn wrong_type<T>(
    ctx: &mut Ctx,
    v: &Val<'_>,
    path: &str,
    expected: &str,
    found: &DeValue<'_>,
) -> Option<T> {
    ctx.error(
        &v.span(),
        path,
        format!("expected {expected}, found {}", found.type_str()),
    );
    None
}

fn array<'a, 'i>(ctx: &mut Ctx, v: &'a Val<'i>, path: &str) -> Option<&'a DeArray<'i>> {
    match v.get_ref() {
        DeValue::Array(a) => Some(a),
        other => wrong_type(ctx, v, path, "an array", other),
    }
}

fn string(ctx: &mut Ctx, v: &Val<'_>, path: &str) -> Option<String> {
    match v.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        other => wrong_type(ctx, v, path, "a string", other),
    }
}

fn duration(ctx: &mut Ctx, v: &Val<'_>, path: &str) -> Option<Duration> {
    let s = string(ctx, v, path)?;
    match parse_duration(&s) {
        Ok(d) => Some(d),
        Err(e) => {
            ctx.error(&v.span(), path, e);
            None
        }
    }
}

fn number(ctx: &mut Ctx, v: &Val<'_>, path: &str) -> Option<f64> {
    let n = match v.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n as f64),
        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        other => return wrong_type(ctx, v, path, "a number", other),
    };
    match n {
        Some(n) if n.is_finite() && n >= 0.0 => Some(n),
        _ => {
            ctx.error(&v.span(), path, "expected a finite number, 0 or more");
            None
        }
    }
}

fn uint(ctx: &mut Ctx, v: &Val<'_>, path: &str) -> Option<u64> {
    match v.get_ref() {
        DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(n),
            Err(_) => {
                ctx.error(&v.span(), path, "expected a whole number, 0 or more");
                None
            }
        },
        other => wrong_type(ctx, v, path, "a whole number", other),
    }
}

fn boolean(ctx: &mut Ctx, v: &Val<'_>, path: &str) -> Option<bool> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        other => wrong_type(ctx, v, path, "true or false", other),
    }
}

/// Splits `name(a, b)` into `name` and its arguments.
fn call(s: &str) -> Option<(&str, Vec<&str>)> {
    let s = s.trim();
    let open = s.find('(')?;
    let inner = s[open + 1..].strip_suffix(')')?;
    Some((s[..open].trim(), inner.split(',').map(str::trim).collect()))
}

/// A distribution as written, before it is one of durations or sizes.
enum Dist<T> {
    Fixed(T),
    Uniform(T, T),
    Exp(T),
}

/// `VALUE`, `uniform(LOW, HIGH)` or `exp(MEAN)`, each value read by
/// `parse`; an error ends with `hint`.
fn dist<T: PartialOrd>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    hint: &str,
) -> Result<Dist<T>, String> {
    let bad = |e: String| format!("{e}; {hint}");
    match call(s) {
        None => parse(s).map(Dist::Fixed).map_err(bad),
        Some(("uniform", args)) if args.len() == 2 => {
            let a = parse(args[0]).map_err(bad)?;
            let b = parse(args[1]).map_err(bad)?;
            if b < a {
                return Err(bad(format!(
                    "uniform({}, {}): the bounds are reversed",
                    args[0], args[1]
                )));
            }
            Ok(Dist::Uniform(a, b))
        }
        Some(("exp", args)) if args.len() == 1 => parse(args[0]).map(Dist::Exp).map_err(bad),
        Some((name, _)) => Err(bad(format!("unknown distribution {name:?}"))),
    }
}

fn think_dist(s: &str) -> Result<ThinkDist, String> {
    let hint = "write a duration (3s), uniform(1s, 5s) or exp(3s)";
    Ok(match dist(s, parse_duration, hint)? {
        Dist::Fixed(d) => ThinkDist::Fixed(d),
        Dist::Uniform(a, b) => ThinkDist::Uniform(a, b),
        Dist::Exp(mean) => ThinkDist::Exp(mean),
    })
}

fn size_dist(s: &str) -> Result<SizeDist, String> {
    let hint = "write a size (1KiB), uniform(64B, 4KiB) or exp(512B)";
    Ok(match dist(s, parse_size, hint)? {
        Dist::Fixed(n) => SizeDist::Fixed(n),
        Dist::Uniform(a, b) => SizeDist::Uniform(a, b),
        // Capped at ten means so one draw cannot dwarf the rest.
        Dist::Exp(mean) => SizeDist::Exp {
            mean,
            cap: mean.saturating_mul(10),
        },
    })
}

/// Names scenario, feeders and fields may use.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

const BUILTIN_FIELDS: [&str; 5] = ["visitor", "n", "seq", "uuid", "tenant"];

fn template(s: &str, feeders: &[Feeder]) -> Result<Template, String> {
    template_in(s, feeders, &[])
}

/// A template that may also use the context fields in `extra` (`text`,
/// `timestamp`, `body`: only generic steps have them).
fn template_in(s: &str, feeders: &[Feeder], extra: &[&str]) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let rest = &s[i + 1..];
                let end = rest.find('}').ok_or_else(|| {
                    format!(
                        "unclosed {{ at character {}; write {{{{ for a literal brace",
                        i + 1
                    )
                })?;
                let inner = rest[..end].trim();
                for _ in 0..rest[..end].chars().count() + 1 {
                    chars.next();
                }
                if !lit.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut lit)));
                }
                match inner.split_once('|') {
                    None => parts.push(Part::Field(field(inner, feeders, extra)?)),
                    Some((name, "json")) => {
                        parts.push(Part::JsonField(field(name.trim(), feeders, extra)?))
                    }
                    Some((_, filter)) => {
                        return Err(format!(
                            "unknown filter |{filter} in {{{inner}}}; the one filter is |json (escapes for a JSON string)"
                        ));
                    }
                }
            }
            '}' => {
                return Err(format!(
                    "stray }} at character {}; write }}}} for a literal brace",
                    i + 1
                ));
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Literal(lit));
    }
    Ok(Template { parts })
}

fn field(name: &str, feeders: &[Feeder], extra: &[&str]) -> Result<Field, String> {
    match name {
        "visitor" => return Ok(Field::Visitor),
        "n" => return Ok(Field::Number),
        "seq" => return Ok(Field::Seq),
        "uuid" => return Ok(Field::Uuid),
        "tenant" => return Ok(Field::Tenant),
        "target" => return Ok(Field::Target),
        "ws_target" => return Ok(Field::WsTarget),
        "phone" => return Ok(Field::Phone),
        "text" | "timestamp" | "body" => {
            if !extra.contains(&name) {
                let where_ = match name {
                    "body" => "only in sign.over of an http step",
                    "timestamp" => "only in http steps",
                    _ => "only in http and ws steps that give text = \"...\"",
                };
                return Err(format!("{{{name}}} is available {where_}"));
            }
            return Ok(match name {
                "text" => Field::Text,
                "timestamp" => Field::Timestamp,
                _ => Field::Body,
            });
        }
        _ => {}
    }
    if name.starts_with("tenant.") {
        return TenantCred::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| Field::TenantCred(*c))
            .ok_or_else(|| {
                let names: Vec<&str> = TenantCred::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown field {{{name}}}; tenant credentials are {}",
                    names.join(", ")
                )
            });
    }
    let (feeder_name, column) = match name.split_once('.') {
        Some((f, c)) => (f, Some(c)),
        None => (name, None),
    };
    let Some(idx) = feeders.iter().position(|f| f.name == feeder_name) else {
        return Err(format!(
            "unknown field {{{name}}}: define [feeders.{feeder_name}] or use one of {}",
            BUILTIN_FIELDS.join(", ")
        ));
    };
    let f = &feeders[idx];
    let col = f
        .source
        .column(column, &f.name)
        .ok_or_else(|| match &f.source {
            FeederSource::Records { columns, .. } => format!(
                "feeder {feeder_name:?} has no column {:?}; its columns are {}",
                column.unwrap_or_default(),
                columns.join(", ")
            ),
            _ => format!("feeder {feeder_name:?} is generated and has no columns"),
        })?;
    Ok(Field::Feeder {
        feeder: idx,
        column: col,
    })
}

/// Keys of the file's top level.
const TOP_LEVEL_KEYS: [&str; 16] = [
    "name",
    "description",
    "duration",
    "grace",
    "timeout",
    "seed",
    "tenants",
    "feeders",
    "thresholds",
    "scenario",
    "stages",
    "arrivals",
    "visitors",
    "mix",
    "script",
    "max_conversations",
];

fn plan(ctx: &mut Ctx, root: &Tbl<'_, '_>) -> Option<Plan> {
    root.allow(ctx, &TOP_LEVEL_KEYS);
    let name = match root.string(ctx, "name") {
        Some(n) => n,
        None => {
            if !root.has("name") {
                root.missing(
                    ctx,
                    "name",
                    "give the scenario a name, e.g. name = \"smoke\"",
                );
            }
            String::new()
        }
    };
    let duration = root.duration(ctx, "duration");
    let grace = root
        .duration(ctx, "grace")
        .unwrap_or(Duration::from_secs(5));
    let timeout = root
        .duration(ctx, "timeout")
        .unwrap_or(Duration::from_secs(10));
    let seed = root.uint(ctx, "seed").unwrap_or(0x00C2_4C24);
    let tenant_channels = tenant_channels(ctx, root);
    let tenants = tenants(ctx, root, &tenant_channels);
    let feeders = feeders(ctx, root);

    let mut scenarios = Vec::new();
    if let Some(v) = root.get("scenario") {
        for key in [
            "stages",
            "arrivals",
            "visitors",
            "mix",
            "script",
            "max_conversations",
        ] {
            if root.has(key) {
                ctx.error(
                    &root.key_span(key),
                    key,
                    "with [[scenario]] tables, put this inside each scenario",
                );
            }
        }
        if let Some(list) = array(ctx, v, "scenario") {
            for (i, item) in list.iter().enumerate() {
                let path = format!("scenario[{i}]");
                let span = item.span();
                if let Some(t) = table(ctx, item, path, span) {
                    t.allow(
                        ctx,
                        &[
                            "name",
                            "stages",
                            "arrivals",
                            "visitors",
                            "duration",
                            "mix",
                            "script",
                            "max_conversations",
                        ],
                    );
                    let sname = match t.string(ctx, "name") {
                        Some(n) => n,
                        None => {
                            if !t.has("name") {
                                t.missing(ctx, "name", "every [[scenario]] needs a name");
                            }
                            format!("scenario{i}")
                        }
                    };
                    let d = t.duration(ctx, "duration").or(duration);
                    if let Some(s) =
                        scenario(ctx, &t, sname, d, timeout, &feeders, &tenant_channels)
                    {
                        scenarios.push(s);
                    }
                }
            }
        }
    } else if let Some(s) = scenario(
        ctx,
        root,
        name.clone(),
        duration,
        timeout,
        &feeders,
        &tenant_channels,
    ) {
        scenarios.push(s);
    }
    for (i, s) in scenarios.iter().enumerate() {
        if !valid_name(&s.name) {
            ctx.error(
                &root.span,
                &format!("scenario[{i}].name"),
                "use letters, digits, _ and - only",
            );
        }
        if scenarios[..i].iter().any(|o| o.name == s.name) {
            ctx.error(
                &root.span,
                &format!("scenario[{i}].name"),
                format!("{:?} is used twice", s.name),
            );
        }
    }
    let run_length = scenarios
        .iter()
        .map(|s| match &s.model {
            Model::Open { schedule, .. } => schedule.duration(),
            Model::Closed { .. } => duration.unwrap_or_default(),
        })
        .max()
        .unwrap_or_default();
    let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    let thresholds = thresholds_table(ctx, root, &names);
    Some(Plan {
        path: ctx.file.clone(),
        name,
        duration: run_length,
        grace,
        timeout,
        tenants: tenants?,
        tenant_channels,
        scenarios,
        feeders,
        thresholds,
        seed,
    })
}

/// `[tenants] channels = ["webchat", ...]`: the chat-core channels the
/// tenants get (empty: all three).
fn tenant_channels(ctx: &mut Ctx, root: &Tbl<'_, '_>) -> Vec<Channel> {
    let mut out = Vec::new();
    let Some(DeValue::Table(map)) = root.get("tenants").map(|v| v.get_ref()) else {
        return out;
    };
    let t = Tbl {
        map,
        path: "tenants".into(),
        span: root.key_span("tenants"),
    };
    let Some(v) = t.get("channels") else {
        return out;
    };
    let Some(list) = array(ctx, v, &t.path_of("channels")) else {
        return out;
    };
    for (i, c) in list.iter().enumerate() {
        let path = format!("{}[{i}]", t.path_of("channels"));
        let Some(s) = string(ctx, c, &path) else {
            continue;
        };
        match Channel::parse(&s) {
            Some(ch) if !ch.is_generic() => {
                if out.contains(&ch) {
                    ctx.error(&c.span(), &path, format!("{ch} is listed twice"));
                } else {
                    out.push(ch);
                }
            }
            Some(ch) => ctx.error(
                &c.span(),
                &path,
                format!("{ch} is a generic channel the scenario describes; tenants have webchat, whatsapp and email"),
            ),
            None => ctx.error(
                &c.span(),
                &path,
                format!("unknown channel {s:?}; use webchat, whatsapp or email"),
            ),
        }
    }
    if list.is_empty() {
        ctx.error(
            &v.span(),
            &t.path_of("channels"),
            "list at least one channel, or leave channels out for all",
        );
    }
    out
}

fn tenants(ctx: &mut Ctx, root: &Tbl<'_, '_>, channels: &[Channel]) -> Option<TenantSpec> {
    let Some(t) = root.sub(ctx, "tenants") else {
        return if root.has("tenants") {
            None
        } else {
            Some(TenantSpec::Provision {
                count: 1,
                name_prefix: "loadgen".into(),
            })
        };
    };
    t.allow(
        ctx,
        &["provision", "name_prefix", "credentials", "use", "channels"],
    );
    match (t.has("provision"), t.has("credentials")) {
        (true, true) => {
            ctx.error(
                &t.key_span("credentials"),
                &t.path_of("credentials"),
                "give provision or credentials, not both",
            );
            None
        }
        (false, false) => {
            t.missing(ctx, "provision", "say how many tenants to create (provision = N) or where their credentials are (credentials = \"FILE\")");
            None
        }
        (true, false) => {
            let count = t.uint(ctx, "provision")?;
            if count == 0 || count > 10_000 {
                ctx.error(
                    &t.key_span("provision"),
                    &t.path_of("provision"),
                    "provision 1 to 10000 tenants",
                );
                return None;
            }
            if t.has("use") {
                ctx.error(
                    &t.key_span("use"),
                    &t.path_of("use"),
                    "`use` picks from `credentials`; it has no meaning with provision",
                );
            }
            Some(TenantSpec::Provision {
                count: count as u32,
                name_prefix: t
                    .string(ctx, "name_prefix")
                    .unwrap_or_else(|| "loadgen".into()),
            })
        }
        (false, true) => {
            let file = t.string(ctx, "credentials")?;
            let span = t.get("credentials").map(|v| v.span()).unwrap_or_default();
            let key = t.path_of("credentials");
            let path = ctx.dir.join(&file);
            let text = match std::fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) => {
                    ctx.error(&span, &key, format!("cannot read {}: {e}", path.display()));
                    return None;
                }
            };
            let mut all: Vec<c24_api::admin::tenants::TenantCreated> = match serde_json::from_str(
                &text,
            ) {
                Ok(v) => v,
                Err(e) => {
                    ctx.error(&span, &key, format!("{}: line {}: expected a JSON array of tenant credentials as POST /admin/v1/tenants answers them: {e}", path.display(), e.line()));
                    return None;
                }
            };
            if let Some(v) = t.get("use")
                && let Some(list) = array(ctx, v, &t.path_of("use"))
            {
                let mut wanted = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    let p = format!("{}[{i}]", t.path_of("use"));
                    if let Some(id) = string(ctx, item, &p) {
                        if !all.iter().any(|c| c.id == id) {
                            ctx.error(
                                &item.span(),
                                &p,
                                format!("no tenant {id:?} in {}", path.display()),
                            );
                        }
                        wanted.push(id);
                    }
                }
                all.retain(|c| wanted.contains(&c.id));
            }
            if all.is_empty() {
                ctx.error(&span, &key, "no tenants to use");
                return None;
            }
            // Each listed channel needs its credentials in every tenant used.
            for c in all.iter() {
                for ch in channels {
                    let has = match ch {
                        Channel::Webchat => !c.channels.webchat.widget_key.is_empty(),
                        Channel::Whatsapp => {
                            !c.channels.whatsapp.phone_number_id.is_empty()
                                && !c.channels.whatsapp.app_secret.is_empty()
                        }
                        Channel::Email => {
                            !c.channels.email.address.is_empty()
                                && !c.channels.email.signing_key.is_empty()
                        }
                        Channel::Http | Channel::Ws => true,
                    };
                    if !has {
                        ctx.error(
                            &t.key_span("channels"),
                            &t.path_of("channels"),
                            format!(
                                "tenant {:?} in {} has no {ch} credentials",
                                c.id,
                                path.display()
                            ),
                        );
                    }
                }
            }
            Some(TenantSpec::Existing {
                file: path,
                tenants: all,
            })
        }
    }
}

fn feeders(ctx: &mut Ctx, root: &Tbl<'_, '_>) -> Vec<Feeder> {
    let mut out = Vec::new();
    let Some(t) = root.sub(ctx, "feeders") else {
        return out;
    };
    for (k, v) in t.map.iter() {
        let name = k.get_ref().to_string();
        let path = t.path_of(&name);
        if !valid_name(&name) || BUILTIN_FIELDS.contains(&name.as_str()) {
            ctx.error(
                &k.span(),
                &path,
                format!(
                    "a feeder name uses letters, digits, _ and - and is none of {}",
                    BUILTIN_FIELDS.join(", ")
                ),
            );
            continue;
        }
        let Some(f) = table(ctx, v, path.clone(), k.span()) else {
            continue;
        };
        f.allow(
            ctx,
            &["csv", "jsonl", "values", "int", "words", "uuid", "order"],
        );
        let order = f.choice(
            ctx,
            "order",
            &[
                ("sequential", FeederOrder::Sequential),
                ("random", FeederOrder::Random),
            ],
            "use sequential or random",
        );
        let kinds: Vec<&str> = ["csv", "jsonl", "values", "int", "words", "uuid"]
            .into_iter()
            .filter(|k| f.has(k))
            .collect();
        if kinds.len() != 1 {
            ctx.error(
                &k.span(),
                &path,
                "give exactly one of csv, jsonl, values, int, words or uuid",
            );
            continue;
        }
        let kind = kinds[0];
        let v = match f.get(kind) {
            Some(v) => v,
            None => continue,
        };
        let vpath = f.path_of(kind);
        let source = match kind {
            "csv" | "jsonl" => {
                let Some(file) = string(ctx, v, &vpath) else {
                    continue;
                };
                let p = ctx.dir.join(&file);
                let read = if kind == "csv" {
                    read_csv(&p)
                } else {
                    read_jsonl(&p)
                };
                match read {
                    Ok((columns, rows)) if !rows.is_empty() => {
                        FeederSource::Records { columns, rows }
                    }
                    Ok(_) => {
                        ctx.error(&v.span(), &vpath, format!("{} has no records", p.display()));
                        continue;
                    }
                    Err(e) => {
                        ctx.error(&v.span(), &vpath, format!("{}: {e}", p.display()));
                        continue;
                    }
                }
            }
            "values" => {
                let Some(list) = array(ctx, v, &vpath) else {
                    continue;
                };
                let mut rows = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    if let Some(s) = string(ctx, item, &format!("{vpath}[{i}]")) {
                        rows.push(vec![s]);
                    }
                }
                if rows.is_empty() {
                    ctx.error(&v.span(), &vpath, "give at least one value");
                    continue;
                }
                FeederSource::Records {
                    columns: vec![name.clone()],
                    rows,
                }
            }
            "int" | "words" => {
                let Some(list) = array(ctx, v, &vpath) else {
                    continue;
                };
                let bounds: Vec<u64> = list
                    .iter()
                    .enumerate()
                    .filter_map(|(i, x)| uint(ctx, x, &format!("{vpath}[{i}]")))
                    .collect();
                if bounds.len() != 2 || bounds[0] > bounds[1] {
                    ctx.error(&v.span(), &vpath, "give [min, max] with min ≤ max");
                    continue;
                }
                if kind == "int" {
                    FeederSource::Int {
                        min: bounds[0].min(i64::MAX as u64) as i64,
                        max: bounds[1].min(i64::MAX as u64) as i64,
                    }
                } else {
                    if bounds[0] == 0 || bounds[1] > 10_000 {
                        ctx.error(&v.span(), &vpath, "words takes 1 to 10000 words");
                        continue;
                    }
                    FeederSource::Words {
                        min: bounds[0] as usize,
                        max: bounds[1] as usize,
                    }
                }
            }
            _ => {
                if boolean(ctx, v, &vpath) != Some(true) {
                    ctx.error(&v.span(), &vpath, "write uuid = true");
                    continue;
                }
                FeederSource::Uuid
            }
        };
        out.push(Feeder {
            name,
            source,
            order,
        });
    }
    out
}

/// A CSV file with a header row.
fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| e.to_string())?;
    let columns: Vec<String> = rdr
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("record {}: {e}", i + 1))?;
        rows.push(rec.iter().map(str::to_string).collect());
    }
    Ok((columns, rows))
}

/// One JSON object per line; the columns are the first object's keys.
fn read_jsonl(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| format!("line {}: expected a JSON object: {e}", i + 1))?;
        if columns.is_empty() {
            columns = obj.keys().cloned().collect();
        }
        rows.push(
            columns
                .iter()
                .map(|c| match obj.get(c) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                })
                .collect(),
        );
    }
    Ok((columns, rows))
}

fn scenario(
    ctx: &mut Ctx,
    t: &Tbl<'_, '_>,
    name: String,
    duration: Option<Duration>,
    default_timeout: Duration,
    feeders: &[Feeder],
    tenant_channels: &[Channel],
) -> Option<Scenario> {
    let here = if t.path.is_empty() {
        String::new()
    } else {
        format!("{}.", t.path)
    };
    let model = match (t.get("stages"), t.get("visitors")) {
        (Some(_), Some(_)) => {
            ctx.error(
                &t.key_span("visitors"),
                &t.path_of("visitors"),
                "give stages (open model) or visitors (closed model), not both",
            );
            None
        }
        (None, None) => {
            t.missing(ctx, "stages", "give [[stages]] (an open model: new conversations per second) or visitors = N (a closed model)");
            None
        }
        (Some(v), None) => {
            let stages = stages(ctx, v, &t.path_of("stages"));
            let arrivals = t.choice(
                ctx,
                "arrivals",
                &[
                    ("uniform", Arrivals::Uniform),
                    ("constant", Arrivals::Uniform),
                    ("poisson", Arrivals::Poisson),
                ],
                "use uniform or poisson",
            );
            stages.and_then(|stages| {
                let sum: Duration = stages.iter().map(|s| s.duration).sum();
                if let Some(d) = duration
                    && d < sum
                {
                    ctx.error(
                        &t.key_span("stages"),
                        &t.path_of("stages"),
                        format!(
                            "the stages last {}, longer than duration = {:?}",
                            humanize(sum),
                            humanize(d)
                        ),
                    );
                }
                if sum.is_zero() {
                    ctx.error(
                        &t.key_span("stages"),
                        &t.path_of("stages"),
                        "the stages last no time",
                    );
                    return None;
                }
                Some(Model::Open {
                    schedule: OpenSchedule::new(&stages, duration.unwrap_or(sum)),
                    arrivals,
                })
            })
        }
        (None, Some(_)) => {
            let visitors = t.uint(ctx, "visitors")?;
            if visitors == 0 || visitors > 1_000_000 {
                ctx.error(
                    &t.key_span("visitors"),
                    &t.path_of("visitors"),
                    "give 1 to 1000000 visitors",
                );
                return None;
            }
            if duration.is_none() {
                t.missing(
                    ctx,
                    "duration",
                    "a closed model runs for `duration`, e.g. duration = \"30s\"",
                );
            }
            if t.has("arrivals") {
                ctx.error(
                    &t.key_span("arrivals"),
                    &t.path_of("arrivals"),
                    "arrivals applies to stages (open model) only",
                );
            }
            Some(Model::Closed {
                visitors: visitors as u32,
            })
        }
    };
    let max_conversations = match t.uint(ctx, "max_conversations") {
        Some(0) => {
            ctx.error(
                &t.key_span("max_conversations"),
                &t.path_of("max_conversations"),
                "must be at least 1",
            );
            1
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => 20_000,
    };

    let mut scripts: Vec<Script> = Vec::new();
    match t.get("script") {
        None => t.missing(
            ctx,
            "script",
            "add a [[script]] with channel = \"webchat\" and its steps",
        ),
        Some(v) => {
            if let Some(list) = array(ctx, v, &t.path_of("script")) {
                for (i, item) in list.iter().enumerate() {
                    let path = format!("{here}script[{i}]");
                    if let Some(st) = table(ctx, item, path, item.span())
                        && let Some(s) = script(ctx, &st, default_timeout, feeders)
                    {
                        if !tenant_channels.is_empty()
                            && !s.channel.is_generic()
                            && !tenant_channels.contains(&s.channel)
                        {
                            let listed: Vec<&str> =
                                tenant_channels.iter().map(|c| c.as_str()).collect();
                            ctx.error(
                                &st.key_span("channel"),
                                &st.path_of("channel"),
                                format!(
                                    "the tenants get only {} ([tenants] channels); add {} there or drop this script",
                                    listed.join(", "),
                                    s.channel
                                ),
                            );
                        }
                        if scripts.iter().any(|o| o.channel == s.channel) {
                            ctx.error(
                                &st.key_span("channel"),
                                &st.path_of("channel"),
                                format!("a second script for {}; one per channel", s.channel),
                            );
                        } else {
                            scripts.push(s);
                        }
                    }
                }
            }
        }
    }

    let mut mix: Vec<(Channel, f64)> = Vec::new();
    if let Some(m) = t.sub(ctx, "mix") {
        for (k, v) in m.map.iter() {
            let path = m.path_of(k.get_ref());
            let Some(c) = Channel::parse(k.get_ref()) else {
                ctx.error(
                    &k.span(),
                    &path,
                    "unknown channel; use webchat, whatsapp or email",
                );
                continue;
            };
            if let Some(share) = number(ctx, v, &path)
                && share > 0.0
            {
                if !scripts.is_empty() && !scripts.iter().any(|s| s.channel == c) {
                    ctx.error(
                        &k.span(),
                        &path,
                        format!("has a share but no [[script]] with channel = \"{c}\""),
                    );
                }
                mix.push((c, share));
            }
        }
        if mix.is_empty() {
            ctx.error(
                &m.span,
                &m.path,
                "give at least one channel a share above 0",
            );
        }
    } else {
        mix = scripts.iter().map(|s| (s.channel, 1.0)).collect();
    }
    let total: f64 = mix.iter().map(|(_, s)| s).sum();
    if total > 0.0 {
        for (_, s) in &mut mix {
            *s /= total;
        }
    }
    Some(Scenario {
        name,
        model: model?,
        mix,
        scripts,
        max_conversations,
    })
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 && s.fract() == 0.0 && (s as u64).is_multiple_of(60) {
        format!("{}m", s as u64 / 60)
    } else {
        format!("{s}s")
    }
}

fn stages(ctx: &mut Ctx, v: &Val<'_>, path: &str) -> Option<Vec<Stage>> {
    let list = array(ctx, v, path)?;
    if list.is_empty() {
        ctx.error(&v.span(), path, "give at least one stage");
        return None;
    }
    let mut out = Vec::new();
    let mut prev = 0.0;
    let mut ok = true;
    for (i, item) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(t) = table(ctx, item, p, item.span()) else {
            ok = false;
            continue;
        };
        t.allow(ctx, &["rate", "duration", "ramp"]);
        let rate = match t.number(ctx, "rate") {
            Some(r) => r,
            None => {
                if !t.has("rate") {
                    t.missing(ctx, "rate", "new conversations per second");
                }
                ok = false;
                continue;
            }
        };
        if rate > 10_000_000.0 {
            ctx.error(
                &t.key_span("rate"),
                &t.path_of("rate"),
                "at most 10000000 per second",
            );
            ok = false;
        }
        let (from, d) = match (t.has("duration"), t.has("ramp")) {
            (true, true) => {
                ctx.error(
                    &t.key_span("ramp"),
                    &t.path_of("ramp"),
                    "give duration (hold the rate) or ramp (move to it), not both",
                );
                ok = false;
                continue;
            }
            (false, false) => {
                t.missing(ctx, "duration", "give duration = \"30s\" (hold the rate) or ramp = \"1m\" (move to it from the previous rate)");
                ok = false;
                continue;
            }
            (true, false) => (rate, t.duration(ctx, "duration")),
            (false, true) => (prev, t.duration(ctx, "ramp")),
        };
        let Some(d) = d else {
            ok = false;
            continue;
        };
        out.push(Stage {
            from,
            to: rate,
            duration: d,
        });
        prev = rate;
    }
    ok.then_some(out)
}

fn script(
    ctx: &mut Ctx,
    t: &Tbl<'_, '_>,
    default_timeout: Duration,
    feeders: &[Feeder],
) -> Option<Script> {
    t.allow(ctx, &["channel", "steps"]);
    let channel = match t.string(ctx, "channel") {
        Some(c) => match Channel::parse(&c) {
            Some(c) => Some(c),
            None => {
                ctx.error(
                    &t.key_span("channel"),
                    &t.path_of("channel"),
                    format!("unknown channel {c:?}; use webchat, whatsapp, email, or http / ws (generic steps)"),
                );
                None
            }
        },
        None => {
            if !t.has("channel") {
                t.missing(
                    ctx,
                    "channel",
                    "which channel this script drives: webchat, whatsapp or email",
                );
            }
            None
        }
    };
    let Some(v) = t.get("steps") else {
        t.missing(ctx, "steps", "a list like steps = [{ send = \"Hi\" }]");
        return None;
    };
    let spath = t.path_of("steps");
    let list = array(ctx, v, &spath)?;
    let mut steps = Vec::new();
    // Per step: what came before, for the order rules.
    let mut sent = false;
    let mut replied = false;
    for (i, item) in list.iter().enumerate() {
        let p = format!("{spath}[{i}]");
        let Some(st) = table(ctx, item, p.clone(), item.span()) else {
            continue;
        };
        let actions: Vec<&str> = [
            "send",
            "think",
            "agent_reply",
            "expect",
            "reconnect",
            "http",
            "ws",
        ]
        .into_iter()
        .filter(|k| st.has(k))
        .collect();
        if actions.len() != 1 {
            ctx.error(
                &item.span(),
                &p,
                "each step has exactly one of send, think, agent_reply, expect, reconnect, http or ws",
            );
            continue;
        }
        let action = actions[0];
        let apath = st.path_of(action);
        let aspan = st.key_span(action);
        // Generic channels take generic steps (and think); built-in ones the rest.
        if let Some(c) = channel
            && action != "think"
        {
            let fits = match c {
                Channel::Http => action == "http",
                Channel::Ws => action == "ws",
                _ => action != "http" && action != "ws",
            };
            if !fits {
                let msg = match c {
                    Channel::Http => {
                        "a channel = \"http\" script takes http and think steps".to_string()
                    }
                    Channel::Ws => "a channel = \"ws\" script takes ws and think steps".to_string(),
                    _ => format!(
                        "{action} steps belong to a script with channel = \"{action}\" (generic channels), not {c}"
                    ),
                };
                ctx.error(&aspan, &apath, msg);
                continue;
            }
        }
        if action == "http" || action == "ws" {
            let step = if action == "http" {
                http_step(ctx, &st, default_timeout, feeders).map(|h| Step::Http(Box::new(h)))
            } else {
                ws_step(ctx, &st, default_timeout, feeders).map(|w| Step::Ws(Box::new(w)))
            };
            sent = true;
            if let Some(s) = step {
                steps.push(s);
            }
            continue;
        }
        let timeout = st.duration(ctx, "timeout").unwrap_or(default_timeout);
        let templ = |ctx: &mut Ctx, key: &str| -> Option<Template> {
            let v = st.get(key)?;
            let s = string(ctx, v, &st.path_of(key))?;
            match template(&s, feeders) {
                Ok(t) => Some(t),
                Err(e) => {
                    ctx.error(&v.span(), &st.path_of(key), e);
                    None
                }
            }
        };
        let step = match action {
            "send" => {
                st.allow(ctx, &["send", "size", "subject", "timeout", "visible"]);
                let visible = match st.get("visible") {
                    None => false,
                    Some(v) => boolean(ctx, v, &st.path_of("visible")).unwrap_or(false),
                };
                if visible && !matches!(channel, Some(Channel::Whatsapp | Channel::Email) | None) {
                    ctx.error(
                        &st.key_span("visible"),
                        &st.path_of("visible"),
                        "visible applies to whatsapp and email sends (a web-chat ack already comes after the commit)",
                    );
                }
                let size = st.string(ctx, "size").and_then(|s| match size_dist(&s) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        ctx.error(&st.key_span("size"), &st.path_of("size"), e);
                        None
                    }
                });
                if channel == Some(Channel::Webchat)
                    && let Some(d) = size
                    && d.max() > 60 * 1024
                {
                    ctx.error(
                        &st.key_span("size"),
                        &st.path_of("size"),
                        "web-chat frames are at most 64 KiB; keep sizes at or below 60KiB",
                    );
                }
                let subject = templ(ctx, "subject");
                if subject.is_some() && channel != Some(Channel::Email) {
                    ctx.error(
                        &st.key_span("subject"),
                        &st.path_of("subject"),
                        "only email messages have a subject",
                    );
                }
                sent = true;
                templ(ctx, "send").map(|text| Step::Send {
                    text,
                    size,
                    subject,
                    timeout,
                    visible,
                })
            }
            "think" => {
                st.allow(ctx, &["think"]);
                st.string(ctx, "think").and_then(|s| match think_dist(&s) {
                    Ok(d) => Some(Step::Think(d)),
                    Err(e) => {
                        ctx.error(&aspan, &apath, e);
                        None
                    }
                })
            }
            "agent_reply" => {
                st.allow(ctx, &["agent_reply", "timeout"]);
                if !sent {
                    ctx.error(&aspan, &apath, "needs a send before it: the conversation exists only after the first message");
                }
                replied = true;
                templ(ctx, "agent_reply").map(|text| Step::AgentReply { text, timeout })
            }
            "expect" => {
                st.allow(ctx, &["expect", "timeout"]);
                match st.string(ctx, "expect").as_deref() {
                    Some("msg.new") => {}
                    Some(other) => ctx.error(&aspan, &apath, format!("unknown frame {other:?}; only msg.new (the agent's reply pushed to the visitor) can be expected")),
                    None => {}
                }
                if channel.is_some() && channel != Some(Channel::Webchat) {
                    ctx.error(
                        &aspan,
                        &apath,
                        "only web chat pushes messages to the visitor",
                    );
                } else if !replied {
                    ctx.error(&aspan, &apath, "needs an agent_reply before it to wait for");
                }
                replied = false;
                Some(Step::Expect { timeout })
            }
            _ => {
                st.allow(ctx, &["reconnect", "timeout"]);
                if boolean(ctx, st.get("reconnect")?, &apath) != Some(true) {
                    ctx.error(&aspan, &apath, "write reconnect = true");
                }
                if channel.is_some() && channel != Some(Channel::Webchat) {
                    ctx.error(&aspan, &apath, "only web chat has a socket to reconnect");
                } else if !sent {
                    ctx.error(
                        &aspan,
                        &apath,
                        "needs a send before it: there is no conversation to resume yet",
                    );
                }
                Some(Step::Reconnect { timeout })
            }
        };
        if let Some(s) = step {
            steps.push(s);
        }
    }
    if !sent {
        let what = match channel {
            Some(Channel::Http) => "at least one http step",
            Some(Channel::Ws) => "at least one ws step",
            _ => "at least one send",
        };
        ctx.error(&v.span(), &spath, format!("a script needs {what}"));
    }
    if steps.len() > usize::from(u16::MAX) {
        ctx.error(&v.span(), &spath, "too many steps");
    }
    Some(Script {
        channel: channel?,
        steps,
    })
}

/// Values of a `{ name = "template", ... }` table in the order written.
fn header_table(
    ctx: &mut Ctx,
    st: &Tbl<'_, '_>,
    key: &str,
    feeders: &[Feeder],
    extra: &[&str],
) -> Vec<(String, Template)> {
    let mut out = Vec::new();
    let Some(t) = st.sub(ctx, key) else {
        return out;
    };
    let mut entries: Vec<_> = t.map.iter().collect();
    // The map is sorted by name; the spans give the order they were written in.
    entries.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in entries {
        let name = k.get_ref().to_string();
        let path = t.path_of(&name);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            ctx.error(&k.span(), &path, "not a valid HTTP header name");
            continue;
        }
        let Some(text) = string(ctx, v, &path) else {
            continue;
        };
        match template_in(&text, feeders, extra) {
            Ok(tpl) => out.push((name, tpl)),
            Err(e) => ctx.error(&v.span(), &path, e),
        }
    }
    out
}

fn templ_in(
    ctx: &mut Ctx,
    st: &Tbl<'_, '_>,
    key: &str,
    feeders: &[Feeder],
    extra: &[&str],
) -> Option<Template> {
    let v = st.get(key)?;
    let s = string(ctx, v, &st.path_of(key))?;
    match template_in(&s, feeders, extra) {
        Ok(t) => Some(t),
        Err(e) => {
            ctx.error(&v.span(), &st.path_of(key), e);
            None
        }
    }
}

fn step_size(ctx: &mut Ctx, st: &Tbl<'_, '_>) -> Option<SizeDist> {
    st.string(ctx, "size").and_then(|s| match size_dist(&s) {
        Ok(d) => Some(d),
        Err(e) => {
            ctx.error(&st.key_span("size"), &st.path_of("size"), e);
            None
        }
    })
}

/// The step's required `url` template, speaking one of `schemes`.
fn url_templ(
    ctx: &mut Ctx,
    st: &Tbl<'_, '_>,
    feeders: &[Feeder],
    extra: &[&str],
    schemes: &[&str],
    hint: &str,
) -> Option<Template> {
    if !st.has("url") {
        st.missing(ctx, "url", hint);
        return None;
    }
    let url = templ_in(ctx, st, "url", feeders, extra)?;
    check_url(ctx, st, &url, schemes);
    Some(url)
}

/// A URL template must say which scheme it speaks (after filling).
fn check_url(ctx: &mut Ctx, st: &Tbl<'_, '_>, url: &Template, schemes: &[&str]) {
    let starts_ok = match url.parts.first() {
        Some(Part::Literal(l)) => schemes.iter().any(|s| l.starts_with(s)),
        Some(Part::Field(Field::Target)) => schemes.contains(&"http://"),
        Some(Part::Field(Field::WsTarget)) => schemes.contains(&"ws://"),
        // A feeder may hold the whole URL; checked when sent.
        Some(Part::Field(Field::Feeder { .. })) => true,
        _ => false,
    };
    if !starts_ok {
        let hint = if schemes.contains(&"ws://") {
            "ws://, wss:// or {ws_target}"
        } else {
            "http://, https:// or {target}"
        };
        ctx.error(
            &st.key_span("url"),
            &st.path_of("url"),
            format!("the URL must start with {hint}"),
        );
    }
}

const HTTP_METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn http_step(
    ctx: &mut Ctx,
    st: &Tbl<'_, '_>,
    default_timeout: Duration,
    feeders: &[Feeder],
) -> Option<HttpStep> {
    st.allow(
        ctx,
        &[
            "http", "url", "headers", "body", "text", "size", "sign", "status", "timeout",
        ],
    );
    let ctxf: &[&str] = &["timestamp", "text"];
    let method = st.string(ctx, "http").and_then(|m| {
        let up = m.to_ascii_uppercase();
        if HTTP_METHODS.contains(&up.as_str()) {
            Some(up)
        } else {
            ctx.error(
                &st.key_span("http"),
                &st.path_of("http"),
                format!(
                    "unknown method {m:?}; use one of {}",
                    HTTP_METHODS.join(", ")
                ),
            );
            None
        }
    });
    let url = url_templ(
        ctx,
        st,
        feeders,
        ctxf,
        &["http://", "https://"],
        "where the request goes, e.g. url = \"{target}/hook\"",
    );
    let headers = header_table(ctx, st, "headers", feeders, ctxf);
    let text = templ_in(ctx, st, "text", feeders, &[]);
    let size = step_size(ctx, st);
    if size.is_some() && text.is_none() {
        ctx.error(
            &st.key_span("size"),
            &st.path_of("size"),
            "size applies to text; give text = \"...\" and use {text} in the body",
        );
    }
    let body_extra: &[&str] = if text.is_some() { ctxf } else { &["timestamp"] };
    let body = templ_in(ctx, st, "body", feeders, body_extra);
    let url_uses_text = url.as_ref().is_some_and(|u| u.uses(|f| *f == Field::Text));
    if (url_uses_text || headers.iter().any(|(_, h)| h.uses(|f| *f == Field::Text)))
        && text.is_none()
    {
        ctx.error(
            &st.key_span("url"),
            &st.path_of("url"),
            "{text} needs text = \"...\" in the step",
        );
    }
    let sign = match st.sub(ctx, "sign") {
        None => None,
        Some(sg) => {
            sg.allow(ctx, &["secret", "over", "header", "encoding", "prefix"]);
            let secret = match sg.get("secret") {
                Some(_) => templ_in(ctx, &sg, "secret", feeders, &[]),
                None => {
                    sg.missing(
                        ctx,
                        "secret",
                        "the HMAC key, e.g. secret = \"{tenant.whatsapp.app_secret}\"",
                    );
                    None
                }
            };
            let over = match sg.get("over") {
                Some(_) => templ_in(ctx, &sg, "over", feeders, &["timestamp", "body"]),
                None => Some(Template {
                    parts: vec![Part::Field(Field::Body)],
                }),
            };
            let header = match sg.string(ctx, "header") {
                Some(h) => Some(h),
                None => {
                    if !sg.has("header") {
                        sg.missing(ctx, "header", "the header the signature goes into, e.g. header = \"X-Hub-Signature-256\"");
                    }
                    None
                }
            };
            let encoding = sg.choice(
                ctx,
                "encoding",
                &[("hex", SignEncoding::Hex), ("base64", SignEncoding::Base64)],
                "use hex or base64",
            );
            let prefix = sg.string(ctx, "prefix").unwrap_or_default();
            match (secret, over, header) {
                (Some(secret), Some(over), Some(header)) => Some(SignRule {
                    secret,
                    over,
                    header,
                    encoding,
                    prefix,
                }),
                _ => None,
            }
        }
    };
    let status = match st.get("status") {
        None => Vec::new(),
        Some(v) => {
            let path = st.path_of("status");
            let codes: Vec<(u64, Range<usize>)> = match v.get_ref() {
                DeValue::Array(list) => list
                    .iter()
                    .enumerate()
                    .filter_map(|(i, x)| {
                        uint(ctx, x, &format!("{path}[{i}]")).map(|n| (n, x.span()))
                    })
                    .collect(),
                _ => uint(ctx, v, &path)
                    .map(|n| vec![(n, v.span())])
                    .unwrap_or_default(),
            };
            let mut out = Vec::new();
            for (c, span) in codes {
                if (100..=599).contains(&c) {
                    out.push(c as u16);
                } else {
                    ctx.error(
                        &span,
                        &path,
                        format!("{c} is not an HTTP status (100 to 599)"),
                    );
                }
            }
            out
        }
    };
    let timeout = st.duration(ctx, "timeout").unwrap_or(default_timeout);
    Some(HttpStep {
        method: method?,
        url: url?,
        headers,
        body,
        text,
        size,
        sign,
        status,
        timeout,
    })
}

/// A JSON pointer (RFC 6901): empty, or `/` followed by reference tokens.
fn pointer(ctx: &mut Ctx, st: &Tbl<'_, '_>, key: &str) -> Option<String> {
    let p = st.string(ctx, key)?;
    if !p.is_empty() && !p.starts_with('/') {
        ctx.error(
            &st.key_span(key),
            &st.path_of(key),
            format!("{p:?} is not a JSON pointer; write it like \"/id\" or \"/meta/request_id\""),
        );
        return None;
    }
    Some(p)
}

fn ws_step(
    ctx: &mut Ctx,
    st: &Tbl<'_, '_>,
    default_timeout: Duration,
    feeders: &[Feeder],
) -> Option<WsStep> {
    st.allow(
        ctx,
        &[
            "ws",
            "url",
            "headers",
            "text",
            "size",
            "correlate",
            "reply_correlate",
            "reply",
            "timeout",
        ],
    );
    let url = url_templ(
        ctx,
        st,
        feeders,
        &[],
        &["ws://", "wss://"],
        "the socket to open, e.g. url = \"ws://127.0.0.1:9001/chat?u={visitor}\"",
    );
    let headers = header_table(ctx, st, "headers", feeders, &[]);
    let text = templ_in(ctx, st, "text", feeders, &[]);
    let size = step_size(ctx, st);
    if size.is_some() && text.is_none() {
        ctx.error(
            &st.key_span("size"),
            &st.path_of("size"),
            "size applies to text; give text = \"...\" and use {text} in the frame",
        );
    }
    let frame_extra: &[&str] = if text.is_some() { &["text"] } else { &[] };
    let frame = templ_in(ctx, st, "ws", feeders, frame_extra);
    let correlate = if st.has("correlate") {
        pointer(ctx, st, "correlate")
    } else {
        None
    };
    let reply_correlate = if st.has("reply_correlate") {
        pointer(ctx, st, "reply_correlate")
    } else {
        None
    };
    if reply_correlate.is_some() && correlate.is_none() {
        ctx.error(
            &st.key_span("reply_correlate"),
            &st.path_of("reply_correlate"),
            "reply_correlate goes with correlate (the pointer into the sent frame)",
        );
    }
    let await_reply = match st.get("reply") {
        None => true,
        Some(v) => boolean(ctx, v, &st.path_of("reply")).unwrap_or(true),
    };
    if !await_reply && correlate.is_some() {
        ctx.error(
            &st.key_span("reply"),
            &st.path_of("reply"),
            "reply = false sends without waiting; drop correlate or reply",
        );
    }
    let timeout = st.duration(ctx, "timeout").unwrap_or(default_timeout);
    Some(WsStep {
        url: url?,
        headers,
        frame: frame?,
        text,
        size,
        correlate,
        reply_correlate,
        await_reply,
        timeout,
    })
}

fn thresholds_table(ctx: &mut Ctx, root: &Tbl<'_, '_>, scenarios: &[String]) -> Vec<Threshold> {
    let mut out = Vec::new();
    let Some(t) = root.sub(ctx, "thresholds") else {
        return out;
    };
    for (k, v) in t.map.iter() {
        let key = k.get_ref().to_string();
        let path = t.path_of(&key);
        let selector = match thresholds::parse_key(&key, scenarios) {
            Ok(s) => s,
            Err(e) => {
                ctx.error(&k.span(), &path, e);
                continue;
            }
        };
        // A string, a list of strings, or { check, abort_on_fail, delay }.
        let mut checks: Vec<(String, Range<usize>, Option<Duration>)> = Vec::new();
        match v.get_ref() {
            DeValue::String(s) => checks.push((s.to_string(), v.span(), None)),
            DeValue::Array(list) => {
                for (i, item) in list.iter().enumerate() {
                    if let Some(s) = string(ctx, item, &format!("{path}[{i}]")) {
                        checks.push((s, item.span(), None));
                    }
                }
            }
            DeValue::Table(_) => {
                let Some(tt) = table(ctx, v, path.clone(), k.span()) else {
                    continue;
                };
                tt.allow(ctx, &["check", "abort_on_fail", "delay"]);
                let abort = tt
                    .get("abort_on_fail")
                    .and_then(|b| boolean(ctx, b, &tt.path_of("abort_on_fail")))
                    .unwrap_or(false);
                let delay = tt.duration(ctx, "delay");
                if delay.is_some() && !abort {
                    ctx.error(&tt.key_span("delay"), &tt.path_of("delay"), "delay is how long to wait before abort_on_fail applies; set abort_on_fail = true");
                }
                match tt.get("check") {
                    Some(c) => {
                        if let Some(s) = string(ctx, c, &tt.path_of("check")) {
                            checks.push((s, c.span(), abort.then(|| delay.unwrap_or_default())));
                        }
                    }
                    None => tt.missing(ctx, "check", "the condition, e.g. check = \"< 50ms\""),
                }
            }
            other => {
                ctx.error(
                    &v.span(),
                    &path,
                    format!(
                        "expected a check like \"< 50ms\", found {}",
                        other.type_str()
                    ),
                );
            }
        }
        for (check, span, abort) in checks {
            match thresholds::parse_check(&check, selector.unit()) {
                Ok((op, bound)) => out.push(Threshold {
                    key: key.clone(),
                    check: check.trim().to_string(),
                    selector: selector.clone(),
                    op,
                    bound,
                    abort_on_fail: abort,
                    line: ctx.line_of(span.start),
                }),
                Err(e) => ctx.error(&span, &path, e),
            }
        }
    }
    out.sort_by_key(|t| t.line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
duration = "2s"

[tenants]
provision = 2

[[stages]]
rate = 5
duration = "1s"
[[stages]]
rate = 10
ramp = "1s"

[mix]
webchat = 3
email = 1

[[script]]
channel = "webchat"
steps = [
  { send = "Hoi {visitor}, order {orders}", size = "uniform(10B, 100B)" },
  { think = "exp(10ms)" },
  { agent_reply = "We kijken" },
  { expect = "msg.new", timeout = "2s" },
]

[[script]]
channel = "email"
steps = [{ send = "Mail {seq}", subject = "Order {orders}" }, { agent_reply = "ok" }]

[feeders.orders]
values = ["A1", "B2"]

[thresholds]
"webchat.ack.p99" = "< 50ms"
"errors.rate" = { check = "< 1%", abort_on_fail = true, delay = "1s" }
"webchat.ack.rate" = ["> 1/s", "< 100/s"]
"#;

    fn errors(src: &str) -> Vec<ScenarioError> {
        parse_str(Path::new("x.toml"), src).expect_err("invalid").0
    }

    #[test]
    fn a_good_file_parses() {
        let p = parse_str(Path::new("x.toml"), GOOD).expect("valid");
        assert_eq!(p.name, "t");
        assert_eq!(p.duration, Duration::from_secs(2));
        assert_eq!(p.scenarios.len(), 1);
        let s = &p.scenarios[0];
        assert_eq!(
            s.mix,
            vec![(Channel::Email, 0.25), (Channel::Webchat, 0.75)]
        );
        assert_eq!(s.scripts[0].steps.len(), 4);
        assert_eq!(p.thresholds.len(), 4);
        assert_eq!(p.thresholds[1].abort_on_fail, Some(Duration::from_secs(1)));
        match &s.model {
            Model::Open { schedule, .. } => {
                assert!((schedule.expected_arrivals() - 12.5).abs() < 1e-9)
            }
            Model::Closed { .. } => panic!("open model expected"),
        }
    }

    #[test]
    fn errors_name_line_and_key() {
        let src = GOOD.replace("{ think = \"exp(10ms)\" }", "{ think = \"exp(10)\" }");
        let e = errors(&src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 23);
        assert_eq!(e[0].key, "script[0].steps[1].think");
        assert!(
            e[0].to_string()
                .starts_with("x.toml:23: script[0].steps[1].think: "),
            "{}",
            e[0]
        );
    }

    #[test]
    fn every_mistake_is_reported() {
        let src = GOOD
            .replace("rate = 5\n", "rate = \"fast\"\n")
            .replace(
                "\"webchat.ack.p99\" = \"< 50ms\"",
                "\"webchat.ack.p99\" = \"< 50\"",
            )
            .replace("provision = 2", "provision = 2\nflavour = 1");
        let e = errors(&src);
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "tenants.flavour",
                "stages[0].rate",
                "thresholds.\"webchat.ack.p99\""
            ],
            "{e:?}"
        );
    }

    #[test]
    fn order_rules_for_steps() {
        let src = GOOD.replace("{ agent_reply = \"We kijken\" },\n", "");
        let e = errors(&src);
        assert!(e[0].message.contains("needs an agent_reply"), "{e:?}");
        let src = GOOD
            .replace("channel = \"email\"", "channel = \"whatsapp\"")
            .replace("email = 1", "whatsapp = 1");
        let e = errors(&src);
        let msgs: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        // agent_reply is fine on WhatsApp (the webhook answer names the conversation).
        assert!(
            !msgs
                .iter()
                .any(|m| m.contains("agent_reply") || m.contains("conversation id")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("only email messages have a subject")),
            "{msgs:?}"
        );
    }

    #[test]
    fn unknown_fields_and_bad_toml() {
        let e = errors(&GOOD.replace("order {orders}\"", "order {order}\""));
        assert!(e[0].message.contains("unknown field {order}"), "{e:?}");
        let e = errors("name = \"x\"\n[[stages]\n");
        assert_eq!(e[0].line, 2);
        assert!(e[0].message.starts_with("not valid TOML"));
    }

    #[test]
    fn closed_model_needs_a_duration() {
        let e = errors(
            "name = \"c\"\nvisitors = 3\n[[script]]\nchannel = \"webchat\"\nsteps = [{ send = \"x\" }]\n",
        );
        assert_eq!(e[0].key, "duration", "{e:?}");
        let p = parse_str(Path::new("c.toml"), "name = \"c\"\nduration = \"1s\"\nvisitors = 3\n[[script]]\nchannel = \"webchat\"\nsteps = [{ send = \"x\" }]\n").expect("valid");
        assert!(matches!(
            p.scenarios[0].model,
            Model::Closed { visitors: 3 }
        ));
    }

    #[test]
    fn generic_steps_parse() {
        let src = r#"name = "g"
duration = "1s"
[[stages]]
rate = 1
duration = "1s"
[[script]]
channel = "http"
steps = [
  { http = "post", url = "{target}/h", headers = { "x-b" = "2", "x-a" = "{timestamp}" }, text = "hi", body = '{{"t":"{text|json}"}}', sign = { secret = "k", over = "{timestamp}.{body}", header = "x-sig", encoding = "base64", prefix = "v1=" }, status = [200, 202] },
  { think = "1s" },
]
"#;
        let p = parse_str(Path::new("g.toml"), src).expect("valid");
        let Step::Http(h) = &p.scenarios[0].scripts[0].steps[0] else {
            panic!("an http step");
        };
        assert_eq!(h.method, "POST");
        // Headers keep the order they were written in.
        let names: Vec<&str> = h.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["x-b", "x-a"]);
        assert_eq!(h.status, vec![200, 202]);
        let sign = h.sign.as_ref().expect("signed");
        assert_eq!(sign.encoding, SignEncoding::Base64);
        assert!(
            h.body
                .as_ref()
                .is_some_and(|b| b.parts.contains(&Part::JsonField(Field::Text)))
        );
        assert!(p.uses_target() && !p.needs_tenants());
    }

    #[test]
    fn generic_step_errors_name_line_and_key() {
        let head = "name = \"g\"\nduration = \"1s\"\n[[stages]]\nrate = 1\nduration = \"1s\"\n";
        let cases = [
            (
                "[[script]]\nchannel = \"webchat\"\nsteps = [{ send = \"x\" }, { http = \"GET\", url = \"http://h/\" }]\n",
                "script[0].steps[1].http",
                "belong to a script with channel = \"http\"",
            ),
            (
                "[[script]]\nchannel = \"http\"\nsteps = [{ http = \"FETCH\", url = \"http://h/\" }]\n",
                "script[0].steps[0].http",
                "unknown method",
            ),
            (
                "[[script]]\nchannel = \"http\"\nsteps = [{ http = \"GET\" }]\n",
                "script[0].steps[0].url",
                "missing",
            ),
            (
                "[[script]]\nchannel = \"http\"\nsteps = [{ http = \"GET\", url = \"ftp://h/\" }]\n",
                "script[0].steps[0].url",
                "must start with",
            ),
            (
                "[[script]]\nchannel = \"http\"\nsteps = [{ http = \"POST\", url = \"http://h/\", body = \"{body}\" }]\n",
                "script[0].steps[0].body",
                "only in sign.over",
            ),
            (
                "[[script]]\nchannel = \"http\"\nsteps = [{ http = \"POST\", url = \"http://h/\", body = \"{text}\" }]\n",
                "script[0].steps[0].body",
                "give text",
            ),
            (
                "[[script]]\nchannel = \"http\"\nsteps = [{ http = \"POST\", url = \"http://h/\", sign = { secret = \"k\" } }]\n",
                "script[0].steps[0].sign.header",
                "missing",
            ),
            (
                "[[script]]\nchannel = \"ws\"\nsteps = [{ ws = \"{{}}\", url = \"ws://h/\", correlate = \"id\" }]\n",
                "script[0].steps[0].correlate",
                "not a JSON pointer",
            ),
            (
                "[[script]]\nchannel = \"ws\"\nsteps = [{ ws = \"{x|upper}\", url = \"ws://h/\" }]\n",
                "script[0].steps[0].ws",
                "unknown filter",
            ),
            (
                "[[script]]\nchannel = \"ws\"\nsteps = [{ think = \"1s\" }]\n",
                "script[0].steps",
                "at least one ws step",
            ),
        ];
        for (script, key, needle) in cases {
            let src = format!("{head}{script}");
            let e = errors(&src);
            assert!(
                e.iter()
                    .any(|e| e.key == key && e.line == 8 && e.message.contains(needle)),
                "{key} / {needle}: {e:?}"
            );
        }
    }

    #[test]
    fn visible_is_for_webhook_channels() {
        let e = errors(&GOOD.replace(
            "{ send = \"Hoi {visitor}, order {orders}\", size",
            "{ send = \"Hoi {visitor}, order {orders}\", visible = true, size",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            (e[0].line, e[0].key.as_str()),
            (22, "script[0].steps[0].visible")
        );
        let p = parse_str(
            Path::new("x.toml"),
            &GOOD.replace(
                "{ send = \"Mail {seq}\",",
                "{ send = \"Mail {seq}\", visible = true,",
            ),
        )
        .expect("valid");
        assert!(matches!(
            p.scenarios[0].scripts[1].steps[0],
            Step::Send { visible: true, .. }
        ));
    }

    #[test]
    fn tenant_channels_restrict_the_scripts() {
        let src = GOOD.replace("provision = 2", "provision = 2\nchannels = [\"webchat\"]");
        let e = errors(&src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, "script[1].channel");
        assert_eq!(e[0].line, 30);
        assert!(
            e[0].message.contains("the tenants get only webchat"),
            "{e:?}"
        );
        let ok = GOOD.replace(
            "provision = 2",
            "provision = 2\nchannels = [\"email\", \"webchat\"]",
        );
        let p = parse_str(Path::new("x.toml"), &ok).expect("valid");
        assert_eq!(p.tenant_channels, vec![Channel::Email, Channel::Webchat]);
        let bad = GOOD.replace(
            "provision = 2",
            "provision = 2\nchannels = [\"ws\", \"sms\"]",
        );
        let keys: Vec<String> = errors(&bad).into_iter().map(|e| e.key).collect();
        assert!(
            keys.contains(&"tenants.channels[0]".to_string()),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"tenants.channels[1]".to_string()),
            "{keys:?}"
        );
    }

    #[test]
    fn several_scenarios() {
        let src = r#"
name = "multi"
duration = "1s"
[[scenario]]
name = "chat"
stages = [{ rate = 2, duration = "1s" }]
script = [{ channel = "webchat", steps = [{ send = "a" }] }]
[[scenario]]
name = "mail"
visitors = 2
script = [{ channel = "email", steps = [{ send = "b" }] }]
[thresholds]
"mail.email.http.p99" = "< 1s"
"#;
        let p = parse_str(Path::new("m.toml"), src).expect("valid");
        assert_eq!(p.scenarios.len(), 2);
        assert_eq!(p.thresholds.len(), 1);
    }
}
