//! The command line (SPEC §1): run | dev | check | redirect-uri | keygen | migrate |
//! healthcheck.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, Overrides};

/// labgate: a reverse-proxy authentication sidecar for GitLab sign-in.
#[derive(Debug, Parser)]
#[command(name = "labgate", version, about)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The TOML config file (also LABGATE_CONFIG).
    #[arg(long, short = 'c', global = true, env = "LABGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address, overriding server.listen.
    #[arg(long, global = true)]
    pub listen: Option<String>,
    /// Log level or filter, overriding log.level.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve: the proxy and the auth endpoints (the default).
    Run,
    /// The embedded demo: labgate, a GitLab stand-in and an echo app in one process.
    ///
    /// Only in builds with the `dev` cargo feature (the default); the container image is
    /// built without it.
    Dev,
    /// Validate the config, print it with secrets redacted, and the Redirect URI.
    Check {
        /// Also ask GitLab whether the application is set up right.
        #[arg(long)]
        online: bool,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the Redirect URI to paste into the GitLab application.
    RedirectUri,
    /// Print a fresh cookie secret and ES256 signing key.
    Keygen,
    /// Convert another proxy's configuration: print the labgate TOML, then validate it as
    /// `check` does.
    Migrate {
        /// The proxy the configuration is for.
        #[command(subcommand)]
        from: MigrateFrom,
    },
    /// Probe the running labgate on its configured listener (for images without curl).
    ///
    /// GETs /ping (or /ready) on server.listen; exits 0 when it answers 200, else 1, with
    /// a one-line reason.
    Healthcheck {
        /// Ask /ready (GitLab discovery loaded, session store reachable) instead of /ping.
        #[arg(long)]
        ready: bool,
        /// With server.tls_cert_file: accept any certificate (loopback listeners only);
        /// by default only the configured certificate is accepted.
        #[arg(long)]
        insecure: bool,
    },
}

/// What `labgate migrate` converts from.
#[derive(Debug, Subcommand)]
pub enum MigrateFrom {
    /// oauth2-proxy: its TOML config file (--config FILE) and/or its flags (--args FILE);
    /// "-" reads standard input.
    #[command(
        name = "oauth2-proxy",
        after_help = "--config FILE is oauth2-proxy's config file here (TOML, underscored keys such as email_domains).\n\
                      Flags override the file, as in oauth2-proxy. The labgate TOML goes to stdout, the verdict to stderr;\n\
                      exit 0 when it passes `labgate check`, 2 otherwise."
    )]
    Oauth2Proxy {
        /// oauth2-proxy's flags: a Kubernetes workload (its oauth2-proxy container's args
        /// and OAUTH2_PROXY_* env), a YAML list of args, or lines of --flag=value / --flag value.
        #[arg(long, value_name = "FILE")]
        args: Option<PathBuf>,
    },
}

impl Cli {
    /// Parses the command line, and says whether `--config` was given on it rather than by
    /// `LABGATE_CONFIG` (`migrate` reads oauth2-proxy's file from `--config` only).
    pub fn parse_noting_config() -> (Cli, bool) {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let on_command_line =
            matches.value_source("config") == Some(clap::parser::ValueSource::CommandLine);
        (cli, on_command_line)
    }

    /// The flag overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            log_level: self.log_level.clone(),
        }
    }

    /// Loads the configuration from the file, the environment and the flags.
    /// Loads the configuration for `run`, `check` and `redirect-uri`: validated, and
    /// refusing the secrets published in labgate's examples (only `dev` runs with those).
    pub fn load(&self) -> Result<Config, ConfigError> {
        let config =
            crate::config::load(self.config.as_deref(), std::env::vars(), &self.overrides())?;
        let problems = crate::config::published_secret_problems(&config);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// The effective configuration, secrets redacted, for `labgate check`.
pub fn describe(c: &Config) -> String {
    let s = &c.server;
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        out.push_str(&format!("{k:<34} = {v}\n"));
    };
    line("server.listen", s.listen.to_string());
    line("server.public_url", s.public_base().to_owned());
    line("server.prefix", s.prefix.clone());
    line(
        "server.trusted_proxies",
        format!(
            "{:?}",
            s.trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ),
    );
    line(
        "server.forward_auth_source",
        format!("{:?}", s.forward_auth_source.name()),
    );
    line(
        "server.allowed_redirect_domains",
        format!("{:?}", s.allowed_redirect_domains),
    );
    line("server.skip_sign_in_page", s.skip_sign_in_page.to_string());
    line("server.app_name", format!("{:?}", s.app_name));
    line("log.format", format!("{:?}", c.log.format).to_lowercase());
    line("log.level", c.log.level.clone());
    line("upstream.url", c.upstream.url.clone());
    line(
        "upstream.timeout",
        humantime::format_duration(c.upstream.timeout).to_string(),
    );
    line("gitlab.url", c.gitlab.url.clone());
    line("gitlab.client_id", c.gitlab.client_id.clone());
    line("gitlab.client_secret", "<redacted>".into());
    line("gitlab.scopes", format!("{:?}", c.gitlab.scopes));
    line(
        "session.store",
        format!("{:?}", c.session.store).to_lowercase(),
    );
    line("session.cookie_name", c.session.cookie_name.clone());
    line(
        "session.cookie_secret",
        format!("<redacted> ({} key(s))", c.session.cookie_secrets.len()),
    );
    line("session.cookie_secure", c.session.cookie_secure.to_string());
    line(
        "session.cookie_samesite",
        format!("{:?}", c.session.cookie_samesite).to_lowercase(),
    );
    line(
        "session.lifetime",
        humantime::format_duration(c.session.lifetime).to_string(),
    );
    line(
        "session.revalidate",
        humantime::format_duration(c.session.revalidate).to_string(),
    );
    line(
        "identity.assertion_header",
        c.identity.assertion_header.to_string(),
    );
    line("identity.audience", c.identity.audience.clone());
    line(
        "identity.assertion_lifetime",
        humantime::format_duration(c.identity.assertion_lifetime).to_string(),
    );
    line(
        "identity.signing_key_files",
        if c.identity.signing_key_files.is_empty() {
            "(none: a key is generated at start; single replica only)".into()
        } else {
            format!("{:?}", c.identity.signing_key_files)
        },
    );
    line(
        "identity.pass_access_token",
        c.identity.pass_access_token.to_string(),
    );
    line(
        "identity.pass_authorization",
        c.identity.pass_authorization.to_string(),
    );
    out
}

/// Notes `labgate check` adds about the setup.
pub fn notes(c: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if !c.gitlab.oidc() {
        notes.push(
            "gitlab.scopes has no \"openid\": sign-in uses plain OAuth2 and /api/v4/user; group memberships are not available, so group rules cannot be used".into(),
        );
    }
    if c.gitlab.has_scope("read_api") {
        notes.push(
            "the GitLab application must allow the read_api scope (project rules need it)".into(),
        );
    }
    if c.gitlab.has_scope("read_user") {
        notes.push("the GitLab application must allow the read_user scope".into());
    }
    for p in c.access.unanchored_public() {
        notes.push(format!(
            "access.public path {p:?} is not anchored: it makes every path containing a match public (e.g. /admin{p}); write \"^{p}\" or \"^{p}(/|$)\""
        ));
    }
    if c.access.names_users_by_name() {
        notes.push(
            "allowed_users / blocked_users name users by username: GitLab usernames can be changed (and a freed name taken by someone else); prefer \"id:<user id>\" (GET /api/v4/users?username=NAME shows the id)".into(),
        );
    }
    if !c.server.trusted_proxies.is_empty()
        && c.server.forward_auth_source == crate::config::FrontProxy::Auto
    {
        notes.push(
            "server.forward_auth_source is \"auto\": each forward-auth request is read from the one family of original-request headers it carries (one carrying two families is refused); with X-Forwarded-Uri/-Method (Traefik's and Caddy's) labgate cannot tell whether the proxy passes Set-Cookie on a 2xx answer, so a revalidated session reaches the browser on a redirect back to the page, as for Caddy; name your proxy (nginx, ingress-nginx, traefik, caddy, envoy) so that only its headers are read".into(),
        );
    }
    for net in &c.server.trusted_proxies {
        if net.prefix_len() < if net.addr().is_ipv4() { 9 } else { 33 } {
            notes.push(format!(
                "server.trusted_proxies has {net}: every address in it may name the client's address, scheme and host and, for forward-auth, the request judged; list your front proxies' own addresses or subnets"
            ));
        }
    }
    if c.session.cookie_secure && c.server.public_url.scheme() == "http" {
        notes.push(
            "server.public_url is http:// but session.cookie_secure = true: browsers will drop the cookies; use https or set cookie_secure = false for local testing".into(),
        );
    }
    notes
}
