//! Layering of configuration sources: defaults < TOML file < `LABGATE__*` env < CLI flags.

use std::path::{Path, PathBuf};

use super::file::FileConfig;
use super::{validate, Config, ConfigError};

/// Keys that an environment variable may give as a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "server.trusted_proxies",
    "server.allowed_redirect_domains",
    "gitlab.scopes",
    "identity.signing_key_files",
    "session.redis_cluster_nodes",
    "session.redis_sentinel_nodes",
    "access.allowed_users",
    "access.allowed_groups",
    "access.allowed_projects",
    "access.allowed_email_domains",
    "access.blocked_users",
];

/// Top-level keys of oauth2-proxy's config file: a labgate config holding one is most likely
/// an oauth2-proxy file given to the wrong program.
const OAUTH2_PROXY_KEYS: &[&str] = &[
    "provider",
    "client_id",
    "client_secret",
    "cookie_secret",
    "email_domains",
    "upstreams",
    "redirect_url",
    "oidc_issuer_url",
    "gitlab_groups",
    "gitlab_projects",
    "http_address",
    "skip_auth_routes",
    "whitelist_domains",
    "set_xauthrequest",
];

/// Settings given on the command line; they beat every other source.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
}

/// Loads, layers and validates the configuration.
///
/// `file` is the `--config` path (or `LABGATE_CONFIG`); `env` is the process environment
/// as (name, value) pairs so that tests can pass their own.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let text = match file {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            ConfigError::one(
                "--config",
                format!(
                    "cannot read {}: {e}; pass an existing TOML file (see config/labgate.example.toml)",
                    path.display()
                ),
            )
        })?),
        None => None,
    };
    let base_dir = file.and_then(Path::parent).map(Path::to_path_buf);
    layered(text.as_deref(), base_dir, env, overrides)
}

/// Loads a configuration from TOML text alone (tests and the embedded demo).
pub fn load_str(toml_text: &str) -> Result<Config, ConfigError> {
    layered(
        Some(toml_text),
        None,
        std::iter::empty(),
        &Overrides::default(),
    )
}

/// Loads a configuration from TOML text with the environment and flags layered on top, as
/// [`load`] does for a file (`labgate migrate` validates the config it prints this way).
pub fn load_text(
    toml_text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    layered(Some(toml_text), None, env, overrides)
}

fn layered(
    toml_text: Option<&str>,
    base_dir: Option<PathBuf>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(text) = toml_text {
        // Parse with `toml` first: its messages carry line and column.
        if let Err(e) = text.parse::<toml::Table>() {
            return Err(ConfigError::one(
                "--config",
                format!("not valid TOML: {}", toml_error(text, &e)),
            ));
        }
        builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
    }
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("LABGATE__"))
        .collect();
    let mut environment = config::Environment::with_prefix("LABGATE")
        .prefix_separator("__")
        .separator("__")
        .list_separator(",")
        .try_parsing(true)
        .source(Some(env));
    for key in LIST_KEYS {
        environment = environment.with_list_parse_key(key);
    }
    builder = builder.add_source(environment);
    let set = |b: config::ConfigBuilder<config::builder::DefaultState>,
               key: &str,
               v: &Option<String>| match v {
        Some(v) => b.set_override(key, v.as_str()),
        None => Ok(b),
    };
    builder = set(builder, "server.listen", &overrides.listen)
        .and_then(|b| set(b, "log.level", &overrides.log_level))
        .map_err(|e| ConfigError::one("--listen", e.to_string()))?;
    let merged = builder
        .build()
        .map_err(|e| ConfigError::one("config", e.to_string()))?;
    let raw: FileConfig = serde_path_to_error::deserialize(merged).map_err(describe)?;
    validate::validate(raw, base_dir.as_deref())
}

/// Turns a deserialization error into a problem that names the dotted key.
fn describe(err: serde_path_to_error::Error<config::ConfigError>) -> ConfigError {
    let path = err.path().to_string();
    let inner = err.into_inner().to_string();
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let key = if path == "." || path.is_empty() || path.ends_with(field) {
            path.clone()
        } else {
            format!("{path}.{field}")
        };
        let key = key.trim_start_matches('.').to_owned();
        let message = if key == "access.email_domains" {
            "unknown key access.email_domains (oauth2-proxy's name): labgate's is access.allowed_email_domains; \
             for oauth2-proxy's email_domains = [\"*\"] set access.allow_any_gitlab_user = true instead, or list groups, projects or users"
                .to_owned()
        } else if OAUTH2_PROXY_KEYS.contains(&key.as_str()) {
            format!("unknown key {key}: this is an oauth2-proxy setting; convert the whole file with `labgate migrate oauth2-proxy --config FILE`")
        } else {
            format!("unknown key {key}; check its spelling against config/labgate.example.toml")
        };
        return ConfigError::one(key, message);
    }
    ConfigError::one(path.trim_start_matches('.'), inner)
}

/// A TOML syntax error as "line L, column C: message", without the excerpt of the file the
/// parser's own `Display` quotes: that line may hold a secret (`client_secret = ...`), and
/// these messages reach terminals, CI logs and container probe events.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}
