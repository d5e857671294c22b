//! Raw file values -> typed [`Config`]. Every problem names its key and the fix; all
//! problems are collected before returning so that one run of `labgate check` shows them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;

use super::file::FileConfig;
use super::*;

/// Parses `60s`, `5m`, `7d`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e}"))
}

struct Checker {
    problems: Vec<Problem>,
    base_dir: Option<PathBuf>,
}

impl Checker {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// A `hosts` list, compiled; each bad entry is a problem naming its key.
    fn hosts(&mut self, key: &str, hosts: &[String]) -> Vec<HostPattern> {
        super::access::host_list(key, hosts, &mut |key, message| {
            self.problems.push(Problem { key, message });
        })
    }

    fn duration(&mut self, key: &str, value: Option<&str>, default: &str) -> Duration {
        let text = value.unwrap_or(default);
        match parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    key,
                    format!("{key} = {text:?} is not a duration ({e}); write e.g. \"60s\", \"5m\" or \"7d\""),
                );
                parse_duration(default).unwrap_or_default()
            }
        }
    }

    /// An optional `host:port`.
    fn address(&mut self, key: &str, value: Option<&str>) -> Option<SocketAddr> {
        let text = value?;
        match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(key, format!("{key} = {text:?} is not an address; write host:port, e.g. \"127.0.0.1:9180\""));
                None
            }
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        match &self.base_dir {
            Some(dir) if path.is_relative() && !dir.as_os_str().is_empty() => dir.join(path),
            _ => path,
        }
    }

    /// A secret given inline or through its `*_file` twin (exactly one of them).
    fn secret(&mut self, key: &str, inline: Option<String>, file: Option<&str>) -> Option<String> {
        match (inline.filter(|s| !s.is_empty()), file) {
            (Some(_), Some(_)) => {
                self.problem(key, format!("set either {key} or {key}_file, not both"));
                None
            }
            (Some(v), None) => Some(v),
            (None, Some(f)) => {
                let path = self.path(f);
                match std::fs::read_to_string(&path) {
                    Ok(v) => Some(v.trim().to_owned()),
                    Err(e) => {
                        self.problem(
                            &format!("{key}_file"),
                            format!(
                                "cannot read {}: {e}; mount the secret there or fix the path",
                                path.display()
                            ),
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

pub(super) fn validate(raw: FileConfig, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
        base_dir: base_dir.map(Path::to_path_buf),
    };
    let server = server(&mut c, raw.server);
    let log = log(&mut c, raw.log);
    let tracing = tracing(&mut c, raw.tracing);
    let upstreams = upstreams(&mut c, raw.upstream);
    let needs_read_api = !raw.access.allowed_projects.is_empty()
        || raw.route.iter().any(|r| !r.allowed_projects.is_empty());
    let needs_read_user = raw.access.require_two_factor.unwrap_or(false);
    let gitlab = gitlab(&mut c, raw.gitlab, needs_read_api, needs_read_user);
    let session = session(&mut c, raw.session, &server);
    let access = super::access::compile(&raw.access, &raw.route, &gitlab, &mut c.problems);
    let server = ServerConfig {
        hosts: hosts(&server, &upstreams, &access),
        ..server
    };
    if let Some(domain) = &session.cookie_domain {
        for p in &server.hosts.named {
            let name = p.redirect_entry();
            if !super::cookie_domain_covers(domain, name.trim_start_matches('.')) {
                c.problem(
                    "session.cookie_domain",
                    format!("{p} is outside session.cookie_domain = {domain:?}: with a cookie domain every app shares one sign-in, so each host labgate serves must be within it; without session.cookie_domain each host keeps its own session"),
                );
            }
        }
    }
    if server.webhook_listen.is_some() && gitlab.webhook_secret.is_none() {
        c.problem(
            "server.webhook_listen",
            "server.webhook_listen serves GitLab's webhooks, which need gitlab.webhook_secret (or gitlab.webhook_secret_file): set it, or remove server.webhook_listen",
        );
    }
    let identity = identity(&mut c, raw.identity, &server);
    let machine = super::machine::compile(&raw.machine, &mut c.problems);
    if c.problems.is_empty() {
        Ok(Config {
            server,
            log,
            tracing,
            upstreams,
            gitlab,
            session,
            identity,
            access,
            machine,
        })
    } else {
        Err(ConfigError {
            problems: c.problems,
        })
    }
}

/// The hosts labgate serves: several apps as soon as any `hosts` list names one.
fn hosts(server: &ServerConfig, upstreams: &[UpstreamConfig], access: &Policy) -> Hosts {
    let named: Vec<HostPattern> = upstreams
        .iter()
        .flat_map(|u| u.hosts.iter())
        .chain(access.routes.iter().flat_map(|r| r.hosts.iter()))
        .chain(access.public.iter().flat_map(|p| p.hosts.iter()))
        .cloned()
        .collect();
    let redirect = server
        .allowed_redirect_domains
        .iter()
        .flat_map(|entry| {
            let name = entry.rsplit_once(':').map_or(entry.as_str(), |(h, _)| h);
            match name.strip_prefix('.') {
                Some(base) => vec![
                    HostPattern::parse(base).ok(),
                    HostPattern::parse(&format!("*{name}")).ok(),
                ],
                None => vec![HostPattern::parse(name).ok()],
            }
        })
        .flatten()
        .collect();
    Hosts {
        many: !named.is_empty(),
        public: server
            .public_url
            .host_str()
            .and_then(|h| crate::access::Host::read(h).ok())
            .map(|h| h.name)
            .unwrap_or_default(),
        named,
        redirect,
    }
}

/// A stand-in `public_url` while other problems are collected (the config is refused).
fn placeholder_url() -> url::Url {
    url::Url::from_directory_path("/").unwrap_or_else(|()| unreachable!("\"/\" is absolute"))
}

fn server(c: &mut Checker, s: file::ServerFile) -> ServerConfig {
    let listen_text = s.listen.unwrap_or_else(|| "0.0.0.0:4180".into());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        c.problem(
            "server.listen",
            format!("server.listen = {listen_text:?} is not an address; write host:port, e.g. \"0.0.0.0:4180\""),
        );
        SocketAddr::from(([0, 0, 0, 0], 4180))
    });
    let public_url = match s.public_url.as_deref() {
        None | Some("") => {
            c.problem(
                "server.public_url",
                "server.public_url is required: the external origin users open, e.g. \"https://app.example.com\"",
            );
            placeholder_url()
        }
        Some(text) => match url::Url::parse(text) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                if u.query().is_some() || u.fragment().is_some() || u.path() != "/" {
                    c.problem(
                        "server.public_url",
                        format!("server.public_url = {text:?} must be an origin without path or query, e.g. \"https://app.example.com\""),
                    );
                }
                if !u.username().is_empty() || u.password().is_some() {
                    c.problem(
                        "server.public_url",
                        "server.public_url must not contain user:password@",
                    );
                }
                u
            }
            _ => {
                c.problem(
                    "server.public_url",
                    format!("server.public_url = {text:?} is not an http(s) URL; write e.g. \"https://app.example.com\""),
                );
                placeholder_url()
            }
        },
    };
    let public_origin = public_url.origin().ascii_serialization();
    let prefix = s.prefix.unwrap_or_else(|| "/oauth2".into());
    let prefix = prefix.trim_end_matches('/').to_owned();
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.contains(['?', '#', ' ', '%']) {
        c.problem(
            "server.prefix",
            format!("server.prefix = {prefix:?} must be a path such as \"/oauth2\""),
        );
    }
    let tls_cert_file = s.tls_cert_file.map(|p| c.path(&p));
    let tls_key_file = s.tls_key_file.map(|p| c.path(&p));
    if tls_cert_file.is_some() != tls_key_file.is_some() {
        c.problem(
            "server.tls_cert_file",
            "server.tls_cert_file and server.tls_key_file go together: set both for HTTPS, or neither",
        );
    }
    let mut trusted_proxies = Vec::new();
    for (i, p) in s.trusted_proxies.iter().enumerate() {
        let parsed = p
            .parse::<ipnet::IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => c.problem(
                &format!("server.trusted_proxies[{i}]"),
                format!("{p:?} is not an IP address or CIDR range such as \"10.0.0.0/8\""),
            ),
        }
    }
    let forward_auth_source = match s.forward_auth_source.as_deref().map(str::trim) {
        None | Some("auto") => FrontProxy::Auto,
        Some("nginx") => FrontProxy::Nginx,
        Some("ingress-nginx") => FrontProxy::IngressNginx,
        Some("traefik") => FrontProxy::Traefik,
        Some("caddy") => FrontProxy::Caddy,
        Some("envoy") => FrontProxy::Envoy,
        Some(other) => {
            c.problem(
                "server.forward_auth_source",
                format!("{other:?} is not a front proxy labgate knows: write \"nginx\", \"ingress-nginx\", \"traefik\", \"caddy\", \"envoy\" or \"auto\""),
            );
            FrontProxy::Auto
        }
    };
    let mut allowed_redirect_domains = Vec::new();
    for (i, d) in s.allowed_redirect_domains.iter().enumerate() {
        let d = d.trim().to_ascii_lowercase();
        let bare = d.strip_prefix('.').unwrap_or(&d);
        // An optional `:port` (else public_url's scheme's default port).
        let (bare, port_ok) = match bare.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().is_ok_and(|p| p > 0)),
            None => (bare, true),
        };
        if bare.is_empty()
            || !port_ok
            || bare.contains(['/', ':', '@', '*', ' '])
            || !bare.contains('.')
        {
            c.problem(
                &format!("server.allowed_redirect_domains[{i}]"),
                format!("{d:?} must be a host such as \"wiki.example.com\", \".example.com\" (that domain and its subdomains) or \"wiki.example.com:8443\" (another port than public_url's scheme's)"),
            );
        } else {
            allowed_redirect_domains.push(d);
        }
    }
    let metrics_listen = c.address("server.metrics_listen", s.metrics_listen.as_deref());
    let http_redirect_listen = c.address(
        "server.http_redirect_listen",
        s.http_redirect_listen.as_deref(),
    );
    let webhook_listen = c.address("server.webhook_listen", s.webhook_listen.as_deref());
    let tls_reload_interval = c.duration(
        "server.tls_reload_interval",
        s.tls_reload_interval.as_deref(),
        "10s",
    );
    let header_read_timeout = c.duration(
        "server.header_read_timeout",
        s.header_read_timeout.as_deref(),
        "10s",
    );
    let idle_timeout = c.duration("server.idle_timeout", s.idle_timeout.as_deref(), "5m");
    if idle_timeout < Duration::from_secs(1) {
        c.problem(
            "server.idle_timeout",
            "server.idle_timeout must be at least 1s, e.g. \"5m\"",
        );
    }
    let send_timeout = c.duration("server.send_timeout", s.send_timeout.as_deref(), "60s");
    if send_timeout < Duration::from_secs(1) {
        c.problem(
            "server.send_timeout",
            "server.send_timeout must be at least 1s, e.g. \"60s\"",
        );
    }
    let shutdown_grace = c.duration("server.shutdown_grace", s.shutdown_grace.as_deref(), "25s");
    let max_header_bytes = s.max_header_bytes.unwrap_or(16 * 1024);
    if max_header_bytes < 8192 {
        c.problem(
            "server.max_header_bytes",
            "server.max_header_bytes must be at least 8192",
        );
    }
    ServerConfig {
        listen,
        hosts: Hosts::default(),
        public_url,
        public_origin,
        prefix,
        tls_cert_file,
        tls_key_file,
        trusted_proxies,
        forward_auth_source,
        allowed_redirect_domains,
        skip_sign_in_page: s.skip_sign_in_page.unwrap_or(false),
        app_name: s.app_name.unwrap_or_else(|| "this application".into()),
        logo_url: s.logo_url,
        footer_text: s.footer_text,
        metrics_listen,
        metrics_public: s.metrics_public.unwrap_or(false),
        tls_reload_interval,
        http_redirect_listen,
        webhook_listen,
        max_header_bytes,
        max_headers: s.max_headers.unwrap_or(100),
        header_read_timeout,
        idle_timeout,
        send_timeout,
        shutdown_grace,
        max_connections: s.max_connections.unwrap_or(25_000),
        max_connections_per_ip: match s.max_connections_per_ip {
            Some(0) => {
                c.problem(
                    "server.max_connections_per_ip",
                    "server.max_connections_per_ip must be at least 1 (a browser opens about 6)",
                );
                1
            }
            n => n.unwrap_or(256),
        },
        runtime: match s.runtime.as_deref() {
            None | Some("per-core") => RuntimeLayout::PerCore,
            Some("work-stealing") => RuntimeLayout::WorkStealing,
            Some(other) => {
                c.problem(
                    "server.runtime",
                    format!(
                        "server.runtime must be \"per-core\" or \"work-stealing\", not {other:?}"
                    ),
                );
                RuntimeLayout::PerCore
            }
        },
        workers: match s.workers {
            Some(0) => {
                c.problem(
                    "server.workers",
                    "server.workers must be at least 1, or left out for one per CPU labgate may use",
                );
                1
            }
            Some(n) => n,
            // The CPUs this process may run on (affinity mask, cgroup quota).
            None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        },
    }
}

fn log(c: &mut Checker, l: file::LogFile) -> LogConfig {
    let format = match l.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            c.problem(
                "log.format",
                format!("log.format = {other:?}: write \"text\" or \"json\""),
            );
            LogFormat::Text
        }
    };
    let level = l.level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        c.problem(
            "log.level",
            format!("log.level = {level:?} is not a level (error, warn, info, debug, trace) or a filter such as \"info,labgate=debug\""),
        );
    }
    LogConfig { format, level }
}

fn tracing(c: &mut Checker, t: file::TracingFile) -> TracingConfig {
    let otlp_endpoint = t.otlp_endpoint.filter(|e| !e.is_empty()).and_then(|e| {
        match url::Url::parse(&e) {
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                c.problem(
                    "tracing.otlp_endpoint",
                    "tracing.otlp_endpoint carries credentials in the URL: they would be logged and are not sent; give the collector's headers in OTEL_EXPORTER_OTLP_HEADERS (e.g. \"authorization=Bearer ...\")",
                );
                None
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.query().is_none() => {
                // `OTEL_EXPORTER_OTLP_ENDPOINT`'s convention: the signal's path is added.
                let path = u.path().trim_end_matches('/');
                if path.ends_with("/v1/traces") {
                    Some(u)
                } else {
                    let mut full = u.clone();
                    full.set_path(&format!("{path}/v1/traces"));
                    Some(full)
                }
            }
            _ => {
                c.problem(
                    "tracing.otlp_endpoint",
                    format!("tracing.otlp_endpoint = {e:?} is not an http(s) URL: give the collector's OTLP/HTTP address, e.g. \"http://otel-collector:4318\" (spans go to its /v1/traces)"),
                );
                None
            }
        }
    });
    let service_name = t.service_name.unwrap_or_else(|| "labgate".into());
    if service_name.trim().is_empty() {
        c.problem(
            "tracing.service_name",
            "tracing.service_name is empty: leave it out for \"labgate\"",
        );
    }
    let sample_ratio = t.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        c.problem(
            "tracing.sample_ratio",
            format!("tracing.sample_ratio = {sample_ratio} is not between 0 and 1 (the share of new traces sampled: 1 all, 0.01 one in a hundred)"),
        );
    }
    TracingConfig {
        otlp_endpoint,
        service_name,
        sample_ratio,
    }
}

/// `[upstream]` (every host, or the hosts it names) or `[[upstream]]` entries, each naming
/// its hosts.
fn upstreams(c: &mut Checker, u: file::UpstreamsFile) -> Vec<UpstreamConfig> {
    match u {
        file::UpstreamsFile::One(one) => vec![upstream(c, one, "upstream")],
        file::UpstreamsFile::Many(list) if list.is_empty() => {
            c.problem(
                "upstream",
                "[[upstream]] needs at least one entry with hosts and url",
            );
            Vec::new()
        }
        file::UpstreamsFile::Many(list) => {
            let several = list.len() > 1;
            list.into_iter()
                .enumerate()
                .map(|(i, one)| {
                    let key = format!("upstream[{i}]");
                    if several && one.hosts.is_empty() {
                        c.problem(
                            &format!("{key}.hosts"),
                            "each [[upstream]] names the hosts it serves, e.g. hosts = [\"wiki.example.com\"]: a request for a host no entry names is refused (421), never sent to another app",
                        );
                    }
                    upstream(c, one, &key)
                })
                .collect()
        }
    }
}

fn upstream(c: &mut Checker, u: file::UpstreamFile, key: &str) -> UpstreamConfig {
    let url = u.url.unwrap_or_default();
    let target = if let Some(path) = url.strip_prefix("unix:") {
        if path.is_empty() {
            c.problem(
                &format!("{key}.url"),
                format!("{key}.url = \"unix:\" needs a socket path, e.g. \"unix:/run/app.sock\""),
            );
        }
        UpstreamTarget::Unix(PathBuf::from(path))
    } else {
        match url::Url::parse(&url) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some() =>
            {
                if parsed.path() != "/" || parsed.query().is_some() {
                    c.problem(
                        &format!("{key}.url"),
                        format!("{key}.url = {url:?}: labgate forwards the request path as it is; give only scheme://host:port"),
                    );
                }
                let port = parsed.port_or_known_default().unwrap_or(80);
                let host = match parsed.host() {
                    Some(url::Host::Ipv6(a)) => format!("[{a}]"),
                    Some(h) => h.to_string(),
                    None => String::new(),
                };
                match format!("{host}:{port}").parse() {
                    Ok(authority) => UpstreamTarget::Http {
                        tls: parsed.scheme() == "https",
                        authority,
                    },
                    Err(_) => {
                        c.problem(
                            &format!("{key}.url"),
                            format!("{key}.url = {url:?} has no usable host"),
                        );
                        UpstreamTarget::Unix(PathBuf::new())
                    }
                }
            }
            _ => {
                let msg = if url.is_empty() {
                    format!("{key}.url is required: where the protected app listens, e.g. \"http://127.0.0.1:8080\" or \"unix:/run/app.sock\"")
                } else {
                    format!("{key}.url = {url:?} is not a URL; write e.g. \"http://127.0.0.1:8080\" or \"unix:/run/app.sock\"")
                };
                c.problem(&format!("{key}.url"), msg);
                UpstreamTarget::Unix(PathBuf::new())
            }
        }
    };
    let timeout = c.duration(&format!("{key}.timeout"), u.timeout.as_deref(), "60s");
    UpstreamConfig {
        hosts: c.hosts(&format!("{key}.hosts"), &u.hosts),
        target,
        url,
        timeout,
        ca_file: u.ca_file.map(|p| c.path(&p)),
        // No limit unless set: a shared limit lets the clients holding responses open (event
        // streams, or HTTP/2 streams whose flow-control window stays shut) keep everyone
        // else waiting (docs/configuration.md).
        max_connections: u.max_connections.unwrap_or(0),
    }
}

fn gitlab(c: &mut Checker, g: file::GitlabFile, read_api: bool, read_user: bool) -> GitlabConfig {
    let url_text = g.url.unwrap_or_else(|| "https://gitlab.com".into());
    let url = match url::Url::parse(&url_text) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.query().is_none() =>
        {
            url_text.trim_end_matches('/').to_owned()
        }
        _ => {
            c.problem(
                "gitlab.url",
                format!("gitlab.url = {url_text:?} is not a GitLab base URL; write e.g. \"https://gitlab.com\" or \"https://example.com/gitlab\""),
            );
            url_text
        }
    };
    let client_id = g.client_id.unwrap_or_default();
    if client_id.trim().is_empty() {
        c.problem(
            "gitlab.client_id",
            "gitlab.client_id is required: the Application ID shown after saving the application in GitLab",
        );
    }
    let secret = c.secret(
        "gitlab.client_secret",
        g.client_secret,
        g.client_secret_file.as_deref(),
    );
    if secret.is_none()
        && !c
            .problems
            .iter()
            .any(|p| p.key.starts_with("gitlab.client_secret"))
    {
        c.problem(
            "gitlab.client_secret",
            "gitlab.client_secret (or gitlab.client_secret_file) is required: the Secret shown once after saving the application in GitLab",
        );
    }
    let mut scopes = g
        .scopes
        .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    if read_api && !scopes.iter().any(|s| s == "read_api" || s == "api") {
        scopes.push("read_api".into());
    }
    if read_user
        && !scopes
            .iter()
            .any(|s| s == "read_user" || s == "read_api" || s == "api")
    {
        scopes.push("read_user".into());
    }
    for (i, s) in scopes.iter().enumerate() {
        if s.is_empty() || s.contains(|ch: char| ch.is_whitespace()) {
            c.problem(
                &format!("gitlab.scopes[{i}]"),
                format!("{s:?} is not a scope name"),
            );
        }
    }
    let oidc = scopes.iter().any(|s| s == "openid");
    if !oidc
        && !scopes
            .iter()
            .any(|s| ["read_user", "read_api", "api"].contains(&s.as_str()))
    {
        c.problem(
            "gitlab.scopes",
            "gitlab.scopes must include \"openid\" (recommended: [\"openid\", \"profile\", \"email\"]) or \"read_user\" so that labgate can learn who signed in",
        );
    }
    let timeout = c.duration("gitlab.timeout", g.timeout.as_deref(), "10s");
    let webhook_secret = c.secret(
        "gitlab.webhook_secret",
        g.webhook_secret,
        g.webhook_secret_file.as_deref(),
    );
    if webhook_secret.as_ref().is_some_and(|s| s.len() < 16) {
        c.problem(
            "gitlab.webhook_secret",
            "gitlab.webhook_secret must be at least 16 characters (GitLab sends it back as X-Gitlab-Token): `labgate keygen` prints one",
        );
    }
    GitlabConfig {
        webhook_secret: webhook_secret.map(Secret::new),
        url,
        client_id,
        client_secret: Secret::new(secret.unwrap_or_default()),
        scopes,
        ca_file: g.ca_file.map(|p| c.path(&p)),
        timeout,
    }
}

/// Decodes a cookie secret: 32 bytes in standard or URL-safe base64 (padded or not).
pub(crate) fn decode_cookie_secret(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s.trim()).ok())
        .filter(|b| b.len() == 32)
}

fn session(c: &mut Checker, s: file::SessionFile, server: &ServerConfig) -> SessionConfig {
    let store = match s.store.as_deref().unwrap_or("cookie") {
        "cookie" => StoreKind::Cookie,
        "redis" => StoreKind::Redis,
        other => {
            c.problem(
                "session.store",
                format!("session.store = {other:?}: write \"cookie\" or \"redis\""),
            );
            StoreKind::Cookie
        }
    };
    let redis = if store == StoreKind::Redis {
        redis(c, &s)
    } else {
        None
    };
    let cookie_name = s.cookie_name.unwrap_or_else(|| "_labgate".into());
    if cookie_name.is_empty()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        c.problem(
            "session.cookie_name",
            format!("session.cookie_name = {cookie_name:?}: use letters, digits, '_' and '-' only"),
        );
    } else if let Some(prefix) = cookie_prefix(&cookie_name) {
        c.problem(
            "session.cookie_name",
            format!("session.cookie_name = {cookie_name:?}: write it without {prefix:?}: labgate names the cookie __Host-<name> itself when it is Secure and host-only (browsers refuse a {prefix} cookie that is not Secure, or, for __Host-, has a Domain)"),
        );
    }
    let inline = s.cookie_secret.map(file::OneOrMany::into_vec);
    let mut secrets = Vec::new();
    match (inline.filter(|v| !v.is_empty()), s.cookie_secret_file.as_deref()) {
        (Some(_), Some(_)) => c.problem(
            "session.cookie_secret",
            "set either session.cookie_secret or session.cookie_secret_file, not both",
        ),
        (Some(list), None) => secrets = list,
        (None, Some(_)) => {
            if let Some(text) = c.secret("session.cookie_secret", None, s.cookie_secret_file.as_deref()) {
                secrets = text
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
        }
        (None, None) => c.problem(
            "session.cookie_secret",
            "session.cookie_secret is required: 32 bytes, base64; generate one with `labgate keygen`",
        ),
    }
    for (i, secret) in secrets.iter().enumerate() {
        if decode_cookie_secret(secret).is_none() {
            let key = if secrets.len() > 1 {
                format!("session.cookie_secret[{i}]")
            } else {
                "session.cookie_secret".to_owned()
            };
            c.problem(
                &key,
                format!("{key} must be 32 bytes, base64; generate one with `labgate keygen`"),
            );
        }
    }
    let cookie_samesite = match s
        .cookie_samesite
        .as_deref()
        .unwrap_or("lax")
        .to_ascii_lowercase()
        .as_str()
    {
        "lax" => SameSite::Lax,
        "strict" => SameSite::Strict,
        "none" => SameSite::None,
        other => {
            c.problem(
                "session.cookie_samesite",
                format!(
                    "session.cookie_samesite = {other:?}: write \"lax\", \"strict\" or \"none\""
                ),
            );
            SameSite::Lax
        }
    };
    let cookie_secure = s.cookie_secure.unwrap_or(true);
    if cookie_samesite == SameSite::None && !cookie_secure {
        c.problem(
            "session.cookie_samesite",
            "session.cookie_samesite = \"none\" needs session.cookie_secure = true (browsers drop such cookies otherwise)",
        );
    }
    let _ = server;
    let lifetime = c.duration("session.lifetime", s.lifetime.as_deref(), "7d");
    let revalidate = c.duration("session.revalidate", s.revalidate.as_deref(), "5m");
    let revalidate_grace = c.duration(
        "session.revalidate_grace",
        s.revalidate_grace.as_deref(),
        "15m",
    );
    if revalidate.is_zero() {
        c.problem(
            "session.revalidate",
            "session.revalidate must be greater than zero, e.g. \"5m\"",
        );
    }
    SessionConfig {
        store,
        cookie_name,
        cookie_secrets: secrets.into_iter().map(Secret::new).collect(),
        cookie_secure,
        cookie_samesite,
        cookie_domain: s.cookie_domain.filter(|d| !d.is_empty()),
        lifetime,
        revalidate,
        revalidate_grace,
        redis,
    }
}

fn redis(c: &mut Checker, s: &file::SessionFile) -> Option<RedisConfig> {
    let url_ok = |u: &str| u.starts_with("redis://") || u.starts_with("rediss://");
    let target = match (
        &s.redis_url,
        s.redis_cluster_nodes.is_empty(),
        &s.redis_sentinel_master,
    ) {
        (Some(u), true, None) if url_ok(u) => RedisTarget::Single(Secret::new(u.clone())),
        (Some(u), true, None) => {
            c.problem(
                "session.redis_url",
                format!(
                    "session.redis_url must start with redis:// or rediss:// (got {:?})",
                    u.split(':').next().unwrap_or("")
                ),
            );
            return None;
        }
        (None, false, None) => {
            for (i, n) in s.redis_cluster_nodes.iter().enumerate() {
                if !url_ok(n) {
                    c.problem(
                        &format!("session.redis_cluster_nodes[{i}]"),
                        "each cluster node is a redis:// or rediss:// URL",
                    );
                }
            }
            RedisTarget::Cluster(
                s.redis_cluster_nodes
                    .iter()
                    .cloned()
                    .map(Secret::new)
                    .collect(),
            )
        }
        (None, true, Some(master)) if !s.redis_sentinel_nodes.is_empty() => {
            // One way to reach every Sentinel: labgate asks them with one TLS setting and
            // one set of credentials, so a plaintext node must not receive a TLS node's
            // password.
            let nodes = &s.redis_sentinel_nodes;
            for (i, n) in nodes.iter().enumerate() {
                if !url_ok(n) {
                    c.problem(
                        &format!("session.redis_sentinel_nodes[{i}]"),
                        "each Sentinel is a redis:// or rediss:// URL",
                    );
                }
            }
            let tls = |n: &String| n.starts_with("rediss://");
            if nodes.iter().any(tls) && !nodes.iter().all(tls) {
                c.problem(
                    "session.redis_sentinel_nodes",
                    "the Sentinels mix redis:// and rediss://: write them all as rediss:// (TLS) or all as redis://",
                );
            }
            let credentials = |n: &String| {
                url::Url::parse(n)
                    .ok()
                    .map(|u| (u.username().to_owned(), u.password().map(str::to_owned)))
            };
            if nodes
                .iter()
                .any(|n| credentials(n) != nodes.first().and_then(credentials))
            {
                c.problem(
                    "session.redis_sentinel_nodes",
                    "the Sentinels' URLs carry different credentials: labgate asks every Sentinel with the same user and password, so write the same on each (or none)",
                );
            }
            RedisTarget::Sentinel {
                master: master.clone(),
                nodes: nodes.iter().cloned().map(Secret::new).collect(),
            }
        }
        (None, true, None) => {
            c.problem(
                "session.redis_url",
                "session.store = \"redis\" needs session.redis_url (e.g. \"redis://127.0.0.1:6379\"), session.redis_cluster_nodes, or session.redis_sentinel_master + redis_sentinel_nodes",
            );
            return None;
        }
        _ => {
            c.problem(
                "session.redis_url",
                "set one of session.redis_url, session.redis_cluster_nodes, or session.redis_sentinel_master + redis_sentinel_nodes",
            );
            return None;
        }
    };
    let password = c
        .secret(
            "session.redis_password",
            s.redis_password.clone(),
            s.redis_password_file.as_deref(),
        )
        .map(Secret::new);
    let connect_timeout = c.duration(
        "session.redis_connect_timeout",
        s.redis_connect_timeout.as_deref(),
        "2s",
    );
    let command_timeout = c.duration(
        "session.redis_command_timeout",
        s.redis_command_timeout.as_deref(),
        "1s",
    );
    let cache_ttl = c.duration(
        "session.redis_cache_ttl",
        s.redis_cache_ttl.as_deref(),
        "2s",
    );
    let tls = redis_tls(c, s, &target);
    Some(RedisConfig {
        target,
        password,
        connect_timeout,
        command_timeout,
        cache_ttl,
        key_prefix: s
            .redis_key_prefix
            .clone()
            .unwrap_or_else(|| "labgate:".into()),
        tls,
    })
}

/// `session.redis_ca_file`, `redis_cert_file`, `redis_key_file`: PEM files, read and
/// checked now (a wrong path or file is a configuration error, not a Redis outage later).
fn redis_tls(c: &mut Checker, s: &file::SessionFile, target: &RedisTarget) -> Option<RedisTls> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut read = |key: &str, file: Option<&str>| -> Option<Vec<u8>> {
        let path = c.path(file?);
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                c.problem(key, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    };
    let ca = read("session.redis_ca_file", s.redis_ca_file.as_deref());
    let cert = read("session.redis_cert_file", s.redis_cert_file.as_deref());
    let key = read("session.redis_key_file", s.redis_key_file.as_deref());
    let named =
        s.redis_ca_file.is_some() || s.redis_cert_file.is_some() || s.redis_key_file.is_some();
    if !named {
        return None;
    }
    let certificates = |pem: &[u8]| {
        CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .filter(|v| !v.is_empty())
    };
    if let Some(ca) = &ca {
        if certificates(ca).is_none() {
            c.problem(
                "session.redis_ca_file",
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            );
        }
    }
    if let Some(cert) = &cert {
        if certificates(cert).is_none() {
            c.problem(
                "session.redis_cert_file",
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            );
        }
    }
    if let Some(key) = &key {
        if PrivateKeyDer::from_pem_slice(key).is_err() {
            c.problem("session.redis_key_file", "holds no PEM private key");
        }
    }
    if s.redis_cert_file.is_some() != s.redis_key_file.is_some() {
        c.problem(
            if s.redis_cert_file.is_some() {
                "session.redis_key_file"
            } else {
                "session.redis_cert_file"
            },
            "mutual TLS with Redis needs both session.redis_cert_file and session.redis_key_file",
        );
    }
    let urls: Vec<&Secret> = match target {
        RedisTarget::Single(u) => vec![u],
        RedisTarget::Cluster(nodes) => nodes.iter().collect(),
        // The Sentinels and the master they name: one CA, one client certificate.
        RedisTarget::Sentinel { nodes, .. } => nodes.iter().collect(),
    };
    if urls.iter().any(|u| !u.expose().starts_with("rediss://")) {
        c.problem(
            "session.redis_ca_file",
            "TLS files apply to rediss:// URLs: write the Redis URL as rediss://host:port",
        );
    }
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((
            cert,
            Secret::new(String::from_utf8_lossy(&key).into_owned()),
        )),
        _ => None,
    };
    Some(RedisTls { ca, client })
}

fn identity(c: &mut Checker, i: file::IdentityFile, server: &ServerConfig) -> IdentityConfig {
    let header_text = i
        .assertion_header
        .unwrap_or_else(|| "X-Labgate-Assertion".into());
    let assertion_header =
        http::HeaderName::from_bytes(header_text.as_bytes()).unwrap_or_else(|_| {
            c.problem(
                "identity.assertion_header",
                format!("identity.assertion_header = {header_text:?} is not a header name"),
            );
            http::HeaderName::from_static("x-labgate-assertion")
        });
    let assertion_lifetime = c.duration(
        "identity.assertion_lifetime",
        i.assertion_lifetime.as_deref(),
        "5m",
    );
    if assertion_lifetime > Duration::from_secs(600) || assertion_lifetime < Duration::from_secs(30)
    {
        c.problem(
            "identity.assertion_lifetime",
            "identity.assertion_lifetime must be between 30s and 10m: the assertion is meant to be short-lived",
        );
    }
    let mut files: Vec<PathBuf> = i.signing_key_file.iter().map(|p| c.path(p)).collect();
    files.extend(i.signing_key_files.iter().map(|p| c.path(p)));
    let audience = i.audience.filter(|a| !a.is_empty());
    if audience.is_some() && server.hosts.many {
        c.problem(
            "identity.audience",
            "labgate serves several apps (hosts are named): each app's assertion carries that app's origin as aud, so one app's assertion is refused by another; remove identity.audience and pin each app's origin in its verification",
        );
    }
    let mut tokens = |key: &str, value: Option<file::FlagOrHosts>| match value {
        None | Some(file::FlagOrHosts::Flag(false)) => TokenHosts::Never,
        Some(file::FlagOrHosts::Flag(true)) => {
            if server.hosts.many {
                c.problem(
                    key,
                    format!("labgate serves several apps (hosts are named): a person's GitLab token would reach every one of them; list the hosts that need it, e.g. {key} = [\"wiki.example.com\"]"),
                );
            }
            TokenHosts::Every
        }
        Some(file::FlagOrHosts::Hosts(list)) => TokenHosts::Only(c.hosts(key, &list)),
    };
    let pass_access_token = tokens("identity.pass_access_token", i.pass_access_token);
    let pass_authorization = tokens("identity.pass_authorization", i.pass_authorization);
    IdentityConfig {
        assertion_header,
        audience,
        assertion_lifetime,
        signing_key_files: files,
        pass_access_token,
        pass_authorization,
    }
}

/// The browser's cookie-name prefix (`__Host-`, `__Secure-`, any case) `name` starts with.
pub(crate) fn cookie_prefix(name: &str) -> Option<&'static str> {
    ["__Host-", "__Secure-"].into_iter().find(|p| {
        name.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    })
}
