//! The serde mirror of the TOML file: every key a user may write, nothing more.
//!
//! Every struct denies unknown fields so that a typo such as `gitlab.client_secert` is an
//! error naming the key instead of a silently ignored (and possibly security-weakening)
//! setting. Values stay raw strings here; `validate.rs` turns them into typed settings and
//! names the key of anything malformed.

use serde::Deserialize;

/// A value that may be written as one string or as a list of strings (`cookie_secret`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `cookie_secret = "..."`; may hold several secrets separated by commas (env vars).
    One(String),
    /// `cookie_secret = ["new", "old"]`.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values, with comma-separated strings split (an env var can only carry one string).
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub server: ServerFile,
    pub log: LogFile,
    pub tracing: TracingFile,
    pub upstream: UpstreamsFile,
    pub gitlab: GitlabFile,
    pub session: SessionFile,
    pub identity: IdentityFile,
    pub access: AccessFile,
    pub route: Vec<RouteFile>,
    pub machine: MachineFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub prefix: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub forward_auth_source: Option<String>,
    pub allowed_redirect_domains: Vec<String>,
    pub skip_sign_in_page: Option<bool>,
    pub app_name: Option<String>,
    pub logo_url: Option<String>,
    pub footer_text: Option<String>,
    pub metrics_listen: Option<String>,
    pub metrics_public: Option<bool>,
    pub tls_reload_interval: Option<String>,
    pub http_redirect_listen: Option<String>,
    pub webhook_listen: Option<String>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub workers: Option<usize>,
    pub runtime: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFile {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingFile {
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
}

/// `[upstream]` (one app: every host) or `[[upstream]]` (one entry per app, by host).
/// Read by shape (a table or a list) so that a typo inside still names its key.
#[derive(Debug)]
pub enum UpstreamsFile {
    /// `[upstream] url = ...`.
    One(UpstreamFile),
    /// `[[upstream]] hosts = [...] url = ...`, repeated.
    Many(Vec<UpstreamFile>),
}

impl Default for UpstreamsFile {
    fn default() -> Self {
        UpstreamsFile::One(UpstreamFile::default())
    }
}

impl<'de> Deserialize<'de> for UpstreamsFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = UpstreamsFile;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an [upstream] table or [[upstream]] entries")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                UpstreamFile::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(UpstreamsFile::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<UpstreamFile>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(UpstreamsFile::Many)
            }
        }
        d.deserialize_any(Shape)
    }
}

/// A value that is `true`/`false` or a list of hosts (`identity.pass_access_token`); from
/// the environment, `"true"`, `"false"` or hosts separated by commas.
#[derive(Debug, Clone)]
pub enum FlagOrHosts {
    /// `true` / `false`.
    Flag(bool),
    /// `["wiki.example.com"]`: these hosts only.
    Hosts(Vec<String>),
}

impl<'de> Deserialize<'de> for FlagOrHosts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = FlagOrHosts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or a list of hosts")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(FlagOrHosts::Flag(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(match v.trim() {
                    "true" => FlagOrHosts::Flag(true),
                    "false" | "" => FlagOrHosts::Flag(false),
                    list => FlagOrHosts::Hosts(
                        list.split(',')
                            .map(str::trim)
                            .filter(|h| !h.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    ),
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(FlagOrHosts::Hosts)
            }
        }
        d.deserialize_any(Shape)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamFile {
    pub hosts: Vec<String>,
    pub url: Option<String>,
    pub timeout: Option<String>,
    pub ca_file: Option<String>,
    pub max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitlabFile {
    pub url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub ca_file: Option<String>,
    pub timeout: Option<String>,
    pub webhook_secret: Option<String>,
    pub webhook_secret_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionFile {
    pub store: Option<String>,
    pub cookie_name: Option<String>,
    pub cookie_secret: Option<OneOrMany>,
    pub cookie_secret_file: Option<String>,
    pub cookie_secure: Option<bool>,
    pub cookie_samesite: Option<String>,
    pub cookie_domain: Option<String>,
    pub lifetime: Option<String>,
    pub revalidate: Option<String>,
    pub revalidate_grace: Option<String>,
    pub redis_url: Option<String>,
    pub redis_password: Option<String>,
    pub redis_password_file: Option<String>,
    pub redis_ca_file: Option<String>,
    pub redis_cert_file: Option<String>,
    pub redis_key_file: Option<String>,
    pub redis_cluster_nodes: Vec<String>,
    pub redis_sentinel_master: Option<String>,
    pub redis_sentinel_nodes: Vec<String>,
    pub redis_connect_timeout: Option<String>,
    pub redis_command_timeout: Option<String>,
    pub redis_cache_ttl: Option<String>,
    pub redis_key_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityFile {
    pub assertion_header: Option<String>,
    pub audience: Option<String>,
    pub assertion_lifetime: Option<String>,
    pub signing_key_file: Option<String>,
    pub signing_key_files: Vec<String>,
    pub pass_access_token: Option<FlagOrHosts>,
    pub pass_authorization: Option<FlagOrHosts>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessFile {
    pub allowed_users: Vec<String>,
    pub allowed_groups: Vec<String>,
    pub allowed_projects: Vec<String>,
    pub allowed_email_domains: Vec<String>,
    pub blocked_users: Vec<String>,
    pub require_two_factor: Option<bool>,
    pub require_verified_email: Option<bool>,
    pub allow_any_gitlab_user: Option<bool>,
    pub public: Vec<PublicFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicFile {
    pub hosts: Vec<String>,
    pub path: Option<String>,
    pub methods: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteFile {
    pub hosts: Vec<String>,
    pub path: Option<String>,
    pub allowed_users: Vec<String>,
    pub allowed_groups: Vec<String>,
    pub allowed_projects: Vec<String>,
    pub allowed_email_domains: Vec<String>,
    pub allowed_ci_jobs: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineFile {
    pub audience: Option<String>,
    pub gitlab_tokens: Option<bool>,
    pub token_cache_ttl: Option<String>,
    pub allow: Vec<MachineAllowFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineAllowFile {
    pub project_path: Option<String>,
    pub namespace_path: Option<String>,
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    pub ref_protected: Option<bool>,
    pub environment: Option<String>,
}
