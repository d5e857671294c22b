//! The running service's shared state, built once from the [`Config`].

use std::sync::Arc;

use crate::config::Config;
use crate::identity::Signer;
use crate::oauth::gitlab::Gitlab;
use crate::pages::Pages;
use crate::proxy::Upstream;

/// Everything a request handler needs.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The protected application: worker 0's pooled client ...
    upstream: Upstream,
    /// ... and one per further worker runtime, so a request reuses connections owned by
    /// its own runtime.
    worker_upstreams: Vec<Upstream>,
    /// Where sessions live (cookie or Redis).
    pub sessions: crate::session::Sessions,
    /// GitLab.
    pub gitlab: Gitlab,
    /// Assertion signing and JWKS.
    pub signer: Signer,
    /// HTML pages.
    pub pages: Pages,
    /// Single-flight revalidation per session id.
    pub refresh: crate::session::refresh::RefreshGate,
    /// Unix time source (tests may shift it).
    pub clock: Clock,
    /// Identities of GitLab access tokens, briefly cached.
    pub machine_tokens: crate::session::token_cache::TokenCache,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// Unix seconds, with an offset tests can move forward.
#[derive(Debug, Default)]
pub struct Clock {
    offset: std::sync::atomic::AtomicU64,
}

impl Clock {
    /// Now, in Unix seconds.
    pub fn now(&self) -> u64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        real + self.offset.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// How far tests have moved the clock, in seconds.
    pub fn offset(&self) -> u64 {
        self.offset.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Moves the clock forward (tests).
    pub fn advance(&self, secs: u64) {
        self.offset
            .fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }
}

impl App {
    /// Builds the service state. Errors are start-up problems worth exiting over.
    pub async fn new(config: Config) -> Result<Arc<App>, String> {
        let redirect_uri = redirect_uri(&config);
        let metrics = crate::metrics::Metrics::default();
        let gitlab =
            Gitlab::new(&config.gitlab, redirect_uri)?.with_metrics(metrics.gitlab.clone());
        let signer = Signer::new(
            &config.identity,
            config.server.public_url.as_str(),
            metrics.assertions_signed.clone(),
        )?;
        if signer.ephemeral {
            tracing::warn!(
                "identity.signing_key_files is not set: signing assertions with a key generated at start. \
                 Replicas will not verify each other's assertions and the key changes at every restart; \
                 create one with `labgate keygen` for production"
            );
        }
        let sessions = crate::session::Sessions::new(&config).await?;
        Ok(Arc::new(App {
            sessions,
            upstream: Upstream::new(&config.upstream, config.server.idle_timeout)?,
            worker_upstreams: (1..config.server.worker_runtimes())
                .map(|_| Upstream::new(&config.upstream, config.server.idle_timeout))
                .collect::<Result<_, _>>()?,
            pages: Pages::new(&config.server),
            gitlab,
            signer,
            refresh: crate::session::refresh::RefreshGate::default(),
            clock: Clock::default(),
            machine_tokens: crate::session::token_cache::TokenCache::default(),
            metrics,
            config,
        }))
    }

    /// The upstream client of worker runtime `worker`.
    pub fn upstream(&self, worker: usize) -> &Upstream {
        match worker.checked_sub(1) {
            Some(i) => self.worker_upstreams.get(i).unwrap_or(&self.upstream),
            None => &self.upstream,
        }
    }

    /// `{prefix}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.server.prefix)
    }

    /// The one builder of sign-in URLs: `{prefix}/start?rd=` or `{prefix}/sign_in?rd=`
    /// (`/start` too when `skip_sign_in_page`); [`SignIn::EntryAbsolute`] puts it on
    /// public_url's origin (a front proxy hands the answer to the browser).
    pub fn sign_in_url(&self, rd: &str, to: SignIn) -> String {
        let server = &self.config.server;
        let endpoint = match to {
            SignIn::Start => "/start",
            SignIn::Entry | SignIn::EntryAbsolute if server.skip_sign_in_page => "/start",
            SignIn::Entry | SignIn::EntryAbsolute => "/sign_in",
        };
        let origin = match to {
            SignIn::EntryAbsolute => server.public_base(),
            _ => "",
        };
        format!(
            "{origin}{}{endpoint}?rd={}",
            server.prefix,
            crate::respond::query_escape(rd)
        )
    }

    /// `target` (a validated destination) made absolute on public_url when it is a path: a
    /// front proxy may resolve a relative `Location` against its own idea of the origin.
    pub fn absolute_url(&self, target: &str) -> String {
        if target.starts_with('/') {
            format!("{}{target}", self.config.server.public_base())
        } else {
            target.to_owned()
        }
    }

    /// Where a front proxy's original request was going, if labgate may send the browser
    /// there after sign-in.
    pub fn original_destination(&self, original: &crate::forward_auth::Original) -> Option<String> {
        self.redirect_target(&original.redirect_candidate(&self.config.server.public_origin))
    }

    /// `candidate` if it is an allowed post-sign-in destination (public_url's origin or
    /// `allowed_redirect_domains`), normalised; the one place `rd` is judged.
    pub fn redirect_target(&self, candidate: &str) -> Option<String> {
        let server = &self.config.server;
        crate::oauth::redirect::validate(
            candidate,
            &server.public_url,
            &server.allowed_redirect_domains,
        )
    }
}

/// Where a sign-in URL leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// Straight into the flow at GitLab.
    Start,
    /// The sign-in page (or the flow, with `skip_sign_in_page`), relative.
    Entry,
    /// The same, absolute on public_url.
    EntryAbsolute,
}

/// The Redirect URI to register in GitLab: `public_url + prefix + /callback`.
pub fn redirect_uri(config: &Config) -> String {
    format!(
        "{}{}/callback",
        config.server.public_base(),
        config.server.prefix
    )
}
