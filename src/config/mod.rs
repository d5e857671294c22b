//! Configuration: where it comes from (`sources`), what the file may say (`file`), and the
//! typed, validated settings the rest of labgate runs on (`validate`).
//!
//! Precedence, lowest to highest: built-in defaults, the TOML file (`--config` or
//! `LABGATE_CONFIG`), environment `LABGATE__SECTION__KEY`, CLI flags. Every problem is
//! reported with the key it concerns and how to fix it; all problems are reported at once.

mod access;
pub mod file;
mod machine;
mod published;
mod sources;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use access::narrowing;
pub use published::problems as published_secret_problems;
pub use sources::{load, load_str, load_text, toml_error, Overrides};
pub use validate::parse_duration;
pub(crate) use validate::{cookie_prefix, decode_cookie_secret};

use crate::access::{HostPattern, Policy};
use crate::machine::MachinePolicy;

/// A secret value: its Debug and Display never show it, so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call sites are the only places a secret is read.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One bad setting: the key it concerns and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `session.cookie_secret`.
    pub key: String,
    /// What is wrong and the fix.
    pub message: String,
}

/// Every problem found while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// At least one problem.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub(crate) fn one(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![Problem {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

/// Where the upstream application listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// `http://host:port` (or https): the authority to connect to and send as the URI's.
    Http {
        /// `https` upstreams use rustls.
        tls: bool,
        /// host:port.
        authority: http::uri::Authority,
    },
    /// `unix:/path/to.sock`.
    Unix(PathBuf),
}

/// The front proxy whose headers say what the original request was (forward-auth). Each
/// sets its own headers and passes a client's copies of the others through, so exactly one
/// family is read (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontProxy {
    /// Whichever family is present; two families at once are refused (400).
    Auto,
    /// nginx `auth_request`: `X-Original-URI`, `X-Original-Method`.
    Nginx,
    /// ingress-nginx: `X-Original-URL` (absolute), `X-Original-Method`.
    IngressNginx,
    /// Traefik `forwardAuth`: `X-Forwarded-Uri`, `X-Forwarded-Method`, `-Proto`, `-Host`.
    Traefik,
    /// Caddy `forward_auth`: the same headers as Traefik.
    Caddy,
    /// Envoy HTTP `ext_authz`: the original path appended to `{prefix}/auth`, the method
    /// of the check request itself.
    Envoy,
}

impl FrontProxy {
    /// Whether the proxy may append the original path to the auth URL
    /// (`{prefix}/auth/<path>`, Envoy's HTTP ext_authz), so that form is served.
    pub fn appends_original_path(self) -> bool {
        matches!(self, FrontProxy::Auto | FrontProxy::Envoy)
    }

    /// The name `server.forward_auth_source` takes.
    pub fn name(self) -> &'static str {
        match self {
            FrontProxy::Auto => "auto",
            FrontProxy::Nginx => "nginx",
            FrontProxy::IngressNginx => "ingress-nginx",
            FrontProxy::Traefik => "traefik",
            FrontProxy::Caddy => "caddy",
            FrontProxy::Envoy => "envoy",
        }
    }
}

/// How session data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Encrypted in the browser's cookie (default).
    Cookie,
    /// In Redis; the cookie holds only a random id.
    Redis,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The SameSite attribute of labgate's cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// SameSite=Lax (default): sent on top-level navigations from GitLab back to the callback.
    Lax,
    /// SameSite=Strict: breaks the callback redirect from GitLab; only for special set-ups.
    Strict,
    /// SameSite=None (requires Secure).
    None,
}

/// The validated configuration labgate runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener, public URL, limits and pages.
    pub server: ServerConfig,
    /// Log format and filter.
    pub log: LogConfig,
    /// Trace export (OTLP), off by default.
    pub tracing: TracingConfig,
    /// The protected applications: one for every host (`[upstream]`), or one per host
    /// list (`[[upstream]]`), first match wins.
    pub upstreams: Vec<UpstreamConfig>,
    /// The GitLab application labgate signs in with.
    pub gitlab: GitlabConfig,
    /// Cookies and session lifetime.
    pub session: SessionConfig,
    /// What the upstream is told.
    pub identity: IdentityConfig,
    /// Who may enter, compiled.
    pub access: Policy,
    /// Bearer credentials for scripts and CI jobs.
    pub machine: MachinePolicy,
}

impl Config {
    /// Whether a request's host matters: labgate serves several apps, or GitLab tokens go
    /// to listed hosts only. One app without either never reads it (no work per request).
    pub fn reads_hosts(&self) -> bool {
        self.server.hosts.many
            || matches!(self.identity.pass_access_token, TokenHosts::Only(_))
            || matches!(self.identity.pass_authorization, TokenHosts::Only(_))
    }
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of the main listener.
    pub listen: SocketAddr,
    /// External origin users see, without a trailing slash.
    pub public_url: url::Url,
    /// `scheme://host[:port]` of `public_url`, for same-origin checks.
    pub public_origin: String,
    /// Where labgate's own endpoints live, e.g. `/oauth2` (no trailing slash).
    pub prefix: String,
    /// HTTPS certificate chain (PEM).
    pub tls_cert_file: Option<PathBuf>,
    /// HTTPS private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// The hosts labgate serves, when it serves several apps.
    pub hosts: Hosts,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Which front proxy's headers carry the original request to `/oauth2/auth`.
    pub forward_auth_source: FrontProxy,
    /// Extra hosts `rd` may point to; a leading dot admits subdomains.
    pub allowed_redirect_domains: Vec<String>,
    /// Go straight to GitLab instead of showing the sign-in page.
    pub skip_sign_in_page: bool,
    /// Name shown on the pages.
    pub app_name: String,
    /// Optional logo shown on the pages.
    pub logo_url: Option<String>,
    /// Optional footer text on the pages.
    pub footer_text: Option<String>,
    /// Serve /metrics here instead of under the prefix.
    pub metrics_listen: Option<SocketAddr>,
    /// Also serve `{prefix}/metrics` on the main (public) listener; off by default.
    pub metrics_public: bool,
    /// How often the TLS files are checked for changes.
    pub tls_reload_interval: Duration,
    /// A plain-HTTP listener that redirects to https public_url.
    pub http_redirect_listen: Option<SocketAddr>,
    /// Serve GitLab's webhooks (`{prefix}/webhooks/gitlab`) only here, not on the main
    /// listener.
    pub webhook_listen: Option<SocketAddr>,
    /// Largest request head (request line + headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Most request headers accepted.
    pub max_headers: usize,
    /// A client must send its whole request head within this time (slowloris).
    pub header_read_timeout: Duration,
    /// An HTTP/2 (or keep-alive HTTP/1) connection that starts no request for this long is
    /// closed gracefully, and so is a WebSocket tunnel that carries no byte either way: a
    /// client cannot hold a connection slot for ever by answering PINGs.
    pub idle_timeout: Duration,
    /// A client that takes no response data for this long while some is waiting (a full
    /// TCP window, an HTTP/2 window left at zero) is disconnected.
    pub send_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Most connections one client address may hold open (trusted proxies exempt);
    /// further ones are closed at once.
    pub max_connections_per_ip: usize,
    /// Most concurrent client connections; further ones wait in the accept queue.
    pub max_connections: usize,
    /// How requests are scheduled on threads (`server.runtime`).
    pub runtime: RuntimeLayout,
    /// Threads serving connections (`server.workers`; default: the CPUs labgate may use).
    pub workers: usize,
}

/// `server.runtime`: how connections are spread over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeLayout {
    /// `per-core` (default): `workers` threads, each with its own single-threaded runtime
    /// accepting on the one listening socket, like nginx's worker processes: a connection never
    /// changes thread, so no request crosses threads (least CPU per request).
    PerCore,
    /// `work-stealing`: one tokio runtime with `workers` threads that take work from each
    /// other (steadier tail latency when labgate's cores are shared with busy neighbours).
    WorkStealing,
}

impl ServerConfig {
    /// How many per-core runtimes serve (1 for the work-stealing layout, whose threads
    /// share one runtime).
    pub fn worker_runtimes(&self) -> usize {
        match self.runtime {
            RuntimeLayout::PerCore => self.workers,
            RuntimeLayout::WorkStealing => 1,
        }
    }
}

/// The apps labgate serves, by host (SPEC §9 "Many apps").
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// Whether any `hosts` list is configured: then a request for a host that none names
    /// (nor public_url, nor `allowed_redirect_domains`) is refused, and each app's
    /// assertion names its own origin.
    pub many: bool,
    /// public_url's host (canonical).
    pub public: String,
    /// Every pattern the `hosts` lists name.
    pub named: Vec<HostPattern>,
    /// `allowed_redirect_domains`, as host patterns (`.example.com`: the domain and below).
    pub redirect: Vec<HostPattern>,
}

impl Hosts {
    /// Whether a request for `name` (canonical) is one labgate serves.
    pub fn serves(&self, name: &str) -> bool {
        !self.many
            || name == self.public
            || self
                .named
                .iter()
                .chain(&self.redirect)
                .any(|p| p.matches(name))
    }
}

/// Which hosts receive a person's GitLab token (`identity.pass_access_token`,
/// `identity.pass_authorization`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenHosts {
    /// Nobody (default).
    Never,
    /// Every host (one app only: refused when labgate serves several).
    Every,
    /// These hosts.
    Only(Vec<HostPattern>),
}

impl TokenHosts {
    /// Whether a request for `host` (canonical; `None`: unknown) receives the token.
    pub fn to(&self, host: Option<&str>) -> bool {
        match self {
            TokenHosts::Never => false,
            TokenHosts::Every => true,
            TokenHosts::Only(list) => host.is_some_and(|h| list.iter().any(|p| p.matches(h))),
        }
    }

    /// Whether any host receives it.
    pub fn any(&self) -> bool {
        *self != TokenHosts::Never
    }
}

impl fmt::Display for TokenHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenHosts::Never => f.write_str("false"),
            TokenHosts::Every => f.write_str("true"),
            TokenHosts::Only(list) => {
                let names: Vec<String> = list.iter().map(ToString::to_string).collect();
                write!(f, "{}", names.join(", "))
            }
        }
    }
}

/// Whether `session.cookie_domain` (`example.com` or `.example.com`) covers `name`.
pub fn cookie_domain_covers(domain: &str, name: &str) -> bool {
    let base = domain.trim_start_matches('.').to_ascii_lowercase();
    !base.is_empty()
        && (name == base
            || (name.len() > base.len()
                && name.ends_with(&base)
                && name.as_bytes().get(name.len() - base.len() - 1) == Some(&b'.')))
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Text or JSON.
    pub format: LogFormat,
    /// A tracing filter: `info`, or RUST_LOG-style directives.
    pub level: String,
}

/// `[tracing]`: spans exported over OTLP/HTTP (protobuf) to a collector, off unless
/// `otlp_endpoint` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Where spans go: `<endpoint>/v1/traces` (the collector's OTLP/HTTP address, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` gives it); `None`: no export.
    pub otlp_endpoint: Option<url::Url>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// The share of the traces labgate starts that are sampled (0 to 1); a trace continued
    /// from a trusted proxy keeps its parent's decision.
    pub sample_ratio: f64,
}

/// `[upstream]`, or one `[[upstream]]` entry.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The hosts it serves (empty: every host).
    pub hosts: Vec<HostPattern>,
    /// Where to connect.
    pub target: UpstreamTarget,
    /// The configured URL, for display.
    pub url: String,
    /// Longest wait for the upstream's response head.
    pub timeout: Duration,
    /// Private CA for an https upstream.
    pub ca_file: Option<PathBuf>,
    /// Most connections to it at once (0: no limit); more requests wait for one, within
    /// `timeout`. WebSocket tunnels are not counted.
    pub max_connections: usize,
}

/// `[gitlab]`.
#[derive(Debug, Clone)]
pub struct GitlabConfig {
    /// Base URL (= OIDC issuer), no trailing slash.
    pub url: String,
    /// The Application ID.
    pub client_id: String,
    /// The Secret.
    pub client_secret: Secret,
    /// Scopes requested, with those the access rules need added.
    pub scopes: Vec<String>,
    /// Private CA for a self-managed GitLab.
    pub ca_file: Option<PathBuf>,
    /// Timeout of each call to GitLab.
    pub timeout: Duration,
    /// The secret token GitLab's webhooks carry in `X-Gitlab-Token`; set: `POST
    /// {prefix}/webhooks/gitlab` is served.
    pub webhook_secret: Option<Secret>,
}

impl GitlabConfig {
    /// Whether OpenID Connect is used (`openid` scope) rather than plain OAuth2 + REST.
    pub fn oidc(&self) -> bool {
        self.has_scope("openid")
    }
    /// Whether a scope is requested.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
    /// Whether `GET /api/v4/user` may be called with the scopes requested.
    pub fn can_read_user(&self) -> bool {
        ["read_user", "read_api", "api"]
            .iter()
            .any(|s| self.has_scope(s))
    }
}

/// `[session]`.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Cookie or Redis.
    pub store: StoreKind,
    /// Base cookie name; chunks are `name_1`, `name_2`, ...
    pub cookie_name: String,
    /// 32-byte keys; the first encrypts, all decrypt (rotation).
    pub cookie_secrets: Vec<Secret>,
    /// Mark cookies Secure.
    pub cookie_secure: bool,
    /// SameSite attribute.
    pub cookie_samesite: SameSite,
    /// Domain attribute, if any.
    pub cookie_domain: Option<String>,
    /// Absolute session lifetime.
    pub lifetime: Duration,
    /// How often identity and memberships are re-checked with GitLab.
    pub revalidate: Duration,
    /// How long a session keeps working while GitLab is unreachable for revalidation.
    pub revalidate_grace: Duration,
    /// Redis, when `store = "redis"`.
    pub redis: Option<RedisConfig>,
}

/// Where the Redis session store is.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// One server (`redis://` or `rediss://`).
    Single(Secret),
    /// A Redis Cluster, by any of its nodes.
    Cluster(Vec<Secret>),
    /// A master found through Sentinel.
    Sentinel {
        /// The master's service name.
        master: String,
        /// Sentinel addresses.
        nodes: Vec<Secret>,
    },
}

/// `session.redis_*`.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Where.
    pub target: RedisTarget,
    /// Password (also from `redis_password_file`), when not in the URL.
    pub password: Option<Secret>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Per-command timeout.
    pub command_timeout: Duration,
    /// How long a validated session is kept in this process (0: every request asks Redis).
    pub cache_ttl: Duration,
    /// Key prefix.
    pub key_prefix: String,
    /// The CA and client certificate for `rediss://` (a private CA, mutual TLS); `None`:
    /// the system's roots, no client certificate.
    pub tls: Option<RedisTls>,
}

/// TLS material for Redis, read from the files `session.redis_ca_file`,
/// `redis_cert_file` and `redis_key_file` name (PEM).
#[derive(Clone)]
pub struct RedisTls {
    /// The CA certificates that alone are trusted for Redis (PEM).
    pub ca: Option<Vec<u8>>,
    /// labgate's client certificate chain and its key (PEM), for mutual TLS.
    pub client: Option<(Vec<u8>, Secret)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.is_some())
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

/// `[identity]`.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Header that carries the signed assertion.
    pub assertion_header: http::HeaderName,
    /// `aud` claim, when set explicitly (one app); else each app's origin (public_url's
    /// for the proxy of one app).
    pub audience: Option<String>,
    /// Lifetime of an assertion (`exp - iat`).
    pub assertion_lifetime: Duration,
    /// PEM files of ES256 keys; the first signs, all are published.
    pub signing_key_files: Vec<PathBuf>,
    /// Send `X-Forwarded-Access-Token` (to these hosts).
    pub pass_access_token: TokenHosts,
    /// Send `Authorization: Bearer <id_token>` (to these hosts).
    pub pass_authorization: TokenHosts,
}

impl ServerConfig {
    /// `public_url` without its trailing slash: the prefix of every absolute URL labgate
    /// builds.
    pub fn public_base(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }
}
