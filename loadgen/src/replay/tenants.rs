//! Which target tenant plays each tenant of the trace: `--tenants-map`
//! pairs (`TRACE_ID=TARGET_ID`, inline, or a file of lines or a JSON
//! object) resolved against `--credentials`, and for every unmapped trace
//! tenant a new one provisioned through the admin API.

use std::collections::BTreeMap;
use std::path::Path;

use c24_api::admin::tenants::{CreateTenant, TenantCreated};

use crate::command::Failure;
use crate::provision::Target;

#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Trace tenant id → target tenant id.
    pub pairs: BTreeMap<String, String>,
    pub credentials: Vec<TenantCreated>,
}

/// `a=b,c=d`, or the same one per line (`#` comments), or `{"a":"b"}`.
pub fn parse_pairs(text: &str, origin: &str) -> Result<BTreeMap<String, String>, String> {
    let t = text.trim();
    if t.starts_with('{') {
        return serde_json::from_str::<BTreeMap<String, String>>(t).map_err(|e| {
            format!(
                "{origin}: line {}: expected {{\"TRACE_TENANT\": \"TARGET_TENANT\", ...}}: {e}",
                e.line()
            )
        });
    }
    let mut out = BTreeMap::new();
    for (i, line) in t.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        for pair in line.split(',') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (a, b) = pair
                .split_once('=')
                .map(|(a, b)| (a.trim(), b.trim()))
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{origin}:{}: {pair:?}: write TRACE_TENANT=TARGET_TENANT",
                        i + 1
                    )
                })?;
            if out.insert(a.to_string(), b.to_string()).is_some() {
                return Err(format!("{origin}:{}: {a:?} is mapped twice", i + 1));
            }
        }
    }
    Ok(out)
}

impl Mapping {
    pub fn from_request(map: Option<&str>, credentials: Option<&Path>) -> Result<Self, String> {
        let pairs = match map {
            None => BTreeMap::new(),
            Some(m) => {
                let p = Path::new(m);
                if p.is_file() {
                    let text = std::fs::read_to_string(p)
                        .map_err(|e| format!("--tenants-map {}: {e}", p.display()))?;
                    parse_pairs(&text, &p.display().to_string())?
                } else {
                    parse_pairs(m, "--tenants-map")?
                }
            }
        };
        let credentials = match credentials {
            None => Vec::new(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("--credentials {}: {e}", p.display()))?;
                serde_json::from_str(&text).map_err(|e| {
                    format!(
                        "--credentials {}: line {}: expected a JSON array of tenant credentials as POST /admin/v1/tenants answers them: {e}",
                        p.display(),
                        e.line()
                    )
                })?
            }
        };
        if !pairs.is_empty() && credentials.is_empty() {
            return Err("--tenants-map names target tenants: give their credentials with --credentials FILE".into());
        }
        for (from, to) in &pairs {
            if !credentials.iter().any(|c: &TenantCreated| &c.id == to) {
                return Err(format!(
                    "--tenants-map maps {from:?} to {to:?}, which is not in --credentials"
                ));
            }
        }
        Ok(Mapping { pairs, credentials })
    }

    /// The target tenant for each trace tenant, in the order given.
    pub async fn assign(
        &self,
        trace_tenants: &[String],
        target: &Target,
        run_id: &str,
    ) -> Result<Vec<(String, TenantCreated)>, Failure> {
        let unmapped: Vec<&String> = trace_tenants
            .iter()
            .filter(|t| !self.pairs.contains_key(*t))
            .collect();
        let admin = target.admin();
        if !unmapped.is_empty() && admin.is_none() {
            let names: Vec<&str> = unmapped.iter().map(|s| s.as_str()).collect();
            return Err(Failure::Usage(format!(
                "trace tenant(s) {} have no --tenants-map entry; map them, or give --admin-token to provision one target tenant each",
                names.join(", ")
            )));
        }
        let mut out = Vec::with_capacity(trace_tenants.len());
        for (i, t) in trace_tenants.iter().enumerate() {
            let created = match self.pairs.get(t) {
                Some(to) => self
                    .credentials
                    .iter()
                    .find(|c| &c.id == to)
                    .cloned()
                    .ok_or_else(|| Failure::Usage(format!("no credentials for {to:?}")))?,
                None => {
                    let Some(admin) = &admin else {
                        return Err(Failure::Usage("no admin token".into()));
                    };
                    let req = CreateTenant {
                        name: format!("replay-{run_id}-{i}"),
                        dpa_signed: true,
                    };
                    admin.create_tenant(&req).await.map_err(|e| {
                        Failure::Target(format!(
                            "provisioning a tenant for trace tenant {t:?} through POST /admin/v1/tenants: {e}"
                        ))
                    })?
                }
            };
            out.push((t.clone(), created));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_inline_lines_and_json() {
        let m = parse_pairs("a=x, b = y", "--tenants-map").unwrap();
        assert_eq!(m.get("b").map(String::as_str), Some("y"));
        let m = parse_pairs("# map\na=x\nb=y\n", "f").unwrap();
        assert_eq!(m.len(), 2);
        let m = parse_pairs(r#"{"a":"x"}"#, "f").unwrap();
        assert_eq!(m.get("a").map(String::as_str), Some("x"));
        let e = parse_pairs("a=x\nb\n", "map.txt").unwrap_err();
        assert!(e.starts_with("map.txt:2: "), "{e}");
        assert!(parse_pairs("a=x,a=y", "m").unwrap_err().contains("twice"));
    }
}
