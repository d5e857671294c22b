//! Configuration reload while serving: on SIGHUP, and when the configuration file's
//! content changes (a Kubernetes ConfigMap update swaps a symlink: the file is read again,
//! not watched by inode), the configuration is loaded and validated as at start. A valid
//! one replaces the access policy (rules, routes, public paths) and the upstreams (their
//! addresses, timeouts, TLS) whole, between requests, and the log level; what else differs
//! needs a restart and is named. An invalid one is
//! refused with the errors `labgate check` gives, and the running configuration stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::config::Config;

/// How often the configuration file is read to see whether it changed.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Loads the configuration as at start (file, environment, flags) or says what is wrong.
pub type Loader = Box<dyn Fn() -> Result<Config, Vec<String>> + Send + Sync>;

/// How to reload: the file to watch (if any) and how to load.
pub struct Reload {
    /// The configuration file whose content is watched.
    pub file: Option<PathBuf>,
    /// Loads and validates the configuration.
    pub load: Loader,
}

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reload").field("file", &self.file).finish()
    }
}

/// The file's content digest (None: unreadable now, e.g. mid-swap).
fn fingerprint(file: Option<&PathBuf>) -> Option<[u8; 32]> {
    use sha2::Digest;
    let bytes = std::fs::read(file?).ok()?;
    Some(sha2::Sha256::digest(bytes).into())
}

/// Reloads on SIGHUP and when the file changes, for as long as the process serves.
pub(super) async fn watch(app: Arc<App>, reload: Reload) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot take SIGHUP: the configuration reloads when its file changes only");
            None
        }
    };
    let mut last = fingerprint(reload.file.as_ref());
    loop {
        let why = tokio::select! {
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            () = tokio::time::sleep(POLL_EVERY) => {
                let now = fingerprint(reload.file.as_ref());
                if now.is_none() || now == last {
                    continue;
                }
                "the configuration file changed"
            }
        };
        last = fingerprint(reload.file.as_ref());
        apply(&app, &reload, why);
    }
}

/// Loads the configuration and puts it in force, or keeps the running one.
fn apply(app: &App, reload: &Reload, why: &str) {
    let loaded = (reload.load)().and_then(|new| {
        let restart = app.reload(&new).map_err(|e| vec![e])?;
        Ok((new, restart))
    });
    match loaded {
        Ok((new, restart)) => {
            if let Err(e) = crate::telemetry::set_level(&new.log.level) {
                tracing::warn!(error = %e, "log.level of the new configuration not applied");
            }
            app.metrics.config_reload("ok", !restart.is_empty());
            if restart.is_empty() {
                tracing::info!(why, "configuration reloaded: access rules, routes, public paths, upstreams and log level in force");
            } else {
                tracing::warn!(why, needs_restart = %restart.join(", "), "configuration reloaded: access rules, routes, public paths, upstreams and log level in force; the other changes take effect at the next restart");
            }
        }
        Err(problems) => {
            app.metrics.config_reload("refused", false);
            tracing::error!(why, problems = %problems.join("; "), "configuration reload refused: the running configuration stays");
        }
    }
}
