//! The config file, `$XDG_CONFIG_HOME/c24/console.toml` (else
//! `~/.config/c24/console.toml`): named contexts (endpoint + token), the
//! default context, theme, refresh and key overrides.
//!
//! ```toml
//! default_context = "staging"
//! theme = "dark"
//!
//! [contexts.staging]
//! endpoint = "https://core.staging.example:8443"
//! token_env = "C24_STAGING_TOKEN"      # or token_file = "...", or token = "..."
//!
//! [keys]
//! down = ["j", "down"]
//! quit = ["q"]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("no context named {0:?} in the config file")]
    UnknownContext(String),
    #[error("context {context:?}: {message}")]
    Token { context: String, message: String },
}

/// One named core to connect to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub endpoint: String,
    /// The bearer token itself (prefer `token_env` or `token_file`).
    #[serde(default)]
    pub token: Option<String>,
    /// An environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding the token (first line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Context {
    /// The token, from wherever the context says it is.
    pub fn resolve_token(&self, name: &str) -> Result<String, ConfigError> {
        let err = |message: String| ConfigError::Token {
            context: name.to_string(),
            message,
        };
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        if let Some(var) = &self.token_env {
            return std::env::var(var).map_err(|_| err(format!("${var} is not set")));
        }
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err(format!("reading {}: {e}", path.display())))?;
            return text
                .lines()
                .next()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .ok_or_else(|| err(format!("{} is empty", path.display())));
        }
        Err(err("no token, token_env or token_file".into()))
    }
}

/// The whole file; every part optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub default_context: Option<String>,
    #[serde(default)]
    pub theme: Option<String>,
    /// e.g. `"1s"`.
    #[serde(default)]
    pub refresh: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
    /// Command name → keys (see `keymap::COMMANDS`).
    #[serde(default)]
    pub keys: HashMap<String, Vec<String>>,
}

impl ConfigFile {
    /// Where the file is looked for.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(x).join("c24").join("console.toml"));
        }
        std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| {
            PathBuf::from(h)
                .join(".config")
                .join("c24")
                .join("console.toml")
        })
    }

    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    pub fn context(&self, name: &str) -> Result<&Context, ConfigError> {
        self.contexts
            .get(name)
            .ok_or_else(|| ConfigError::UnknownContext(name.to_string()))
    }

    pub fn context_names(&self) -> Vec<String> {
        self.contexts.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contexts_and_keys() {
        let text = r#"
default_context = "prod"
theme = "light"
[contexts.prod]
endpoint = "https://core.example"
token = "abc"
[contexts.local]
endpoint = "http://127.0.0.1:8080"
token_env = "C24_TEST_TOKEN_THAT_IS_NOT_SET"
[keys]
quit = ["x"]
"#;
        let c = ConfigFile::parse(text, Path::new("t.toml")).unwrap();
        assert_eq!(c.context_names(), vec!["local", "prod"]);
        assert_eq!(
            c.context("prod").unwrap().resolve_token("prod").unwrap(),
            "abc"
        );
        assert!(c.context("local").unwrap().resolve_token("local").is_err());
        assert!(matches!(
            c.context("nope"),
            Err(ConfigError::UnknownContext(_))
        ));
        assert_eq!(c.keys["quit"], vec!["x"]);
    }

    #[test]
    fn refuses_typos_and_tolerates_a_missing_file() {
        assert!(ConfigFile::parse("defualt_context = 1", Path::new("t")).is_err());
        let missing = std::env::temp_dir().join("c24-console-no-such-dir/console.toml");
        assert_eq!(ConfigFile::load(&missing).unwrap(), ConfigFile::default());
    }
}
