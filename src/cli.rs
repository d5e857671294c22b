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
    Dev {
        /// labgate listens on this port, the GitLab stand-in on the next, the echo app on
        /// the one after; 0: free ports, whatever the machine has (the banner says which).
        #[arg(long, value_name = "PORT", default_value_t = 4180)]
        port_base: u16,
    },
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
    /// Operate on people's sessions in the shared session store (Redis).
    Sessions {
        /// What to do.
        #[command(subcommand)]
        action: SessionsAction,
    },
}

/// What `labgate sessions` does.
#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// End every session of one GitLab user at once, on every replica (an incident, a
    /// stolen laptop). Needs the Redis store; writes an audit log line.
    Revoke {
        /// Whose: `id:<GitLab user id>` (the numeric id on the user's GitLab profile).
        #[arg(long, value_name = "id:N")]
        user: String,
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
        /// and OAUTH2_PROXY_* env), the oauth2-proxy Helm chart's values file, a YAML list of
        /// args, or lines of --flag=value / --flag value.
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
