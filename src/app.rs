//! The running service's shared state, built once from the [`Config`].

use std::ops::Not;
use std::sync::Arc;

use crate::access::Host;
use crate::config::Config;
use crate::identity::Signer;
use crate::oauth::gitlab::Gitlab;
use crate::pages::Pages;
use crate::proxy::Upstream;

/// Everything a request handler needs.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The access policy and the protected applications in force: `config`'s at start,
    /// swapped together, whole, by a reload.
    live: arc_swap::ArcSwap<Live>,
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
    /// Where `rd` may lead besides public_url's origin: `allowed_redirect_domains` and
    /// every host a `hosts` list names.
    redirect_allowed: Vec<String>,
    /// GitLab events accepted this second (`{prefix}/webhooks/gitlab`).
    pub webhook_budget: crate::session::marks::EventBudget,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// What a reload swaps.
struct Live {
    policy: Arc<crate::access::Policy>,
    upstreams: Arc<Upstreams>,
}

/// The protected applications: their settings, and one pooled client per entry for each
/// worker runtime (`pools[worker][entry]`), so a request reuses connections owned by its
/// own runtime and each app has its own pool and limits.
struct Upstreams {
    configs: Vec<crate::config::UpstreamConfig>,
    pools: Vec<Vec<Arc<Upstream>>>,
}

impl Upstreams {
    /// Clients for `upstreams`, as `config`'s server runs them.
    fn new(
        config: &Config,
        upstreams: &[crate::config::UpstreamConfig],
    ) -> Result<Upstreams, String> {
        let runtimes = config.server.worker_runtimes().max(1);
        let pools = (0..runtimes)
            .map(|_| {
                upstreams
                    .iter()
                    .map(|u| Upstream::new(u, config.server.idle_timeout, runtimes).map(Arc::new))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        Ok(Upstreams {
            configs: upstreams.to_vec(),
            pools,
        })
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
    /// Now, in Unix milliseconds (the order of GitLab's events against confirmations).
    pub fn now_ms(&self) -> u64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        real.saturating_add(self.offset.load(std::sync::atomic::Ordering::Relaxed) * 1000)
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
        let sessions = crate::session::Sessions::new(&config).await?;
        // The apps share labgate's front door: public_url's scheme and port.
        let mut redirect_allowed = config.server.allowed_redirect_domains.clone();
        redirect_allowed.extend(config.server.hosts.named.iter().map(|p| {
            match config.server.public_url.port() {
                Some(port) => format!("{}:{port}", p.redirect_entry()),
                None => p.redirect_entry(),
            }
        }));
        Ok(Arc::new(App {
            redirect_allowed,
            webhook_budget: Default::default(),
            sessions,
            live: arc_swap::ArcSwap::from_pointee(Live {
                policy: Arc::new(config.access.clone()),
                upstreams: Arc::new(Upstreams::new(&config, &config.upstreams)?),
            }),
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

    /// The upstream of worker runtime `worker` for a request to `host` (canonical; `None`:
    /// unreadable): the first entry whose hosts match, `None` when no entry serves it.
    pub fn upstream(&self, worker: usize, host: Option<&str>) -> Option<Arc<Upstream>> {
        let live = self.live.load();
        let now = &live.upstreams;
        let pools = now.pools.get(worker).or(now.pools.first())?;
        let i = now
            .configs
            .iter()
            .position(|u| crate::access::host_listed(&u.hosts, host))?;
        pools.get(i).cloned()
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
        crate::oauth::redirect::validate(candidate, &server.public_url, &self.redirect_allowed)
    }

    /// The `aud` of an assertion for the app at `origin` (canonical; `None`: public_url's
    /// app): `identity.audience` when set (one app), else the app's origin (SPEC §9).
    pub fn audience<'a>(&'a self, origin: Option<&'a str>) -> &'a str {
        match (&self.config.identity.audience, origin) {
            (Some(fixed), _) => fixed,
            (None, Some(origin)) => origin,
            (None, None) => self.config.server.public_base(),
        }
    }

    /// Which app a browser's request to labgate is for: its `Host` (HTTP/2: `:authority`;
    /// HTTP/1.0 without one: public_url's).
    pub fn request_host<B>(&self, req: &http::Request<B>) -> Result<Host, &'static str> {
        let text = match (req.uri().authority(), req.headers().get(http::header::HOST)) {
            (Some(a), _) => a.as_str(),
            (None, Some(h)) => h.to_str().map_err(|_| "the Host header is not text")?,
            (None, None) => return Ok(self.public_host()),
        };
        Host::read(text)
    }

    /// Whether a request with a side effect comes from labgate's own pages: `Origin` equal to
    /// public_url's, or `Sec-Fetch-Site` same-origin / none (typed or bookmarked). Browsers
    /// that send neither (old ones, scripts) are let through: the check defends against
    /// cross-site forgery, which modern browsers always label.
    pub fn same_origin<B>(&self, req: &http::Request<B>) -> bool {
        let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
        if let Some(origin) = h("origin") {
            // Serving several apps, a host's own pages are its origin.
            let hosts = &self.config.server.hosts;
            let own = || {
                self.request_host(req)
                    .ok()
                    .filter(|host| hosts.many && hosts.serves(&host.name))
                    .is_some_and(|host| origin == self.origin_of(&host))
            };
            return origin == self.config.server.public_origin || own();
        }
        !matches!(h("sec-fetch-site"), Some("cross-site" | "same-site"))
    }

    /// The access policy in force (a reload swaps it whole: each decision reads one
    /// policy, never a mix).
    pub fn policy(&self) -> Arc<crate::access::Policy> {
        self.live.load().policy.clone()
    }

    /// Takes a new configuration while serving (SIGHUP, the file changed): its access
    /// policy (rules, routes, public paths) and its upstreams (addresses, timeouts, TLS;
    /// the hosts each serves stay) replace the ones in force between requests. Returns what
    /// else differs from the running configuration and needs a restart; an upstream that
    /// cannot be set up (its `ca_file`) refuses the whole reload.
    pub fn reload(&self, new: &Config) -> Result<Vec<&'static str>, String> {
        let old = &self.config;
        let differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        let mut restart = Vec::new();
        // The apps' addresses, timeouts and TLS swap; which hosts each serves is part of
        // what labgate serves at all (redirects, cookies, sign-in), fixed at start.
        let same_hosts = old.upstreams.len() == new.upstreams.len()
            && old
                .upstreams
                .iter()
                .zip(&new.upstreams)
                .all(|(a, b)| differs(&a.hosts, &b.hosts).not());
        // Which hosts labgate serves (the apps', and those its rules name) decides which
        // app and which rules a request meets: changed, nothing is taken (the new rules
        // with the old apps would judge one app's requests by another's rules).
        if !same_hosts || differs(&old.server.hosts, &new.server.hosts) {
            return Err("which hosts labgate serves changed ([[upstream]] hosts, or hosts named by [[route]] or [[access.public]]): that needs a restart".into());
        }
        // Unchanged apps keep their pools (and their kept-alive connections).
        let running = self.live.load().upstreams.clone();
        let upstreams = if differs(&running.configs, &new.upstreams) {
            Arc::new(Upstreams::new(old, &new.upstreams)?)
        } else {
            running
        };
        if differs(&old.server, &new.server) {
            restart.push("[server]");
        }
        if differs(&old.gitlab, &new.gitlab) {
            restart.push("[gitlab]");
        }
        if differs(&old.session, &new.session) {
            restart.push("[session]");
        }
        if differs(&old.identity, &new.identity) {
            restart.push("[identity]");
        }
        if differs(&old.machine, &new.machine) {
            restart.push("[machine]");
        }
        if old.tracing != new.tracing {
            restart.push("[tracing]");
        }
        // Both in one swap, between requests.
        self.live.store(Arc::new(Live {
            policy: Arc::new(new.access.clone()),
            upstreams,
        }));
        Ok(restart)
    }

    /// public_url's host.
    pub fn public_host(&self) -> Host {
        Host {
            name: self.config.server.hosts.public.clone(),
            port: self.config.server.public_url.port(),
        }
    }

    /// The origin of a served app: its canonical name on public_url's scheme and port (the
    /// apps behind one labgate share its front door; a port a client writes chooses
    /// nothing, so it names nothing either).
    pub fn origin_of(&self, host: &Host) -> String {
        self.front_door(host)
            .origin(self.config.server.public_url.scheme())
    }

    /// `host` as the app is told it: its canonical name and public_url's port.
    pub fn front_door(&self, host: &Host) -> Host {
        Host {
            name: host.name.clone(),
            port: self.config.server.public_url.port(),
        }
    }

    /// Where the session that serves `host` is made: `None` for public_url's (its own host,
    /// every host under `session.cookie_domain`, or any host when labgate serves one app),
    /// else the host's own origin (without a cookie domain each served host keeps its own
    /// session, signed in through its own Redirect URI).
    pub fn own_session_origin(&self, host: &Host) -> Option<String> {
        let hosts = &self.config.server.hosts;
        // With a cookie domain, configuration makes every served host lie within it.
        let shares =
            !hosts.many || host.name == hosts.public || self.config.session.cookie_domain.is_some();
        (!shares).then(|| self.origin_of(host))
    }

    /// Whether each session opens one host only: labgate serves several apps and no cookie
    /// domain shares a sign-in between them.
    pub fn sessions_per_host(&self) -> bool {
        self.config.server.hosts.many && self.config.session.cookie_domain.is_none()
    }

    /// The one host a session opens, if it is bound: the host it was made for, or (for a
    /// session made before hosts were named) public_url's when sessions are per host.
    pub fn session_host<'a>(&'a self, made_for: Option<&'a str>) -> Option<&'a str> {
        made_for.or_else(|| {
            self.sessions_per_host()
                .then_some(self.config.server.hosts.public.as_str())
        })
    }

    /// The sign-in URL for a browser turned away at `host`'s app, leading back to `rd` (a
    /// validated destination on that host): on public_url when the host shares its session
    /// (absolute, with an absolute `rd`, when it is another host), else on the host itself.
    pub fn sign_in_url_for(&self, host: &Host, rd: &str, to: SignIn) -> String {
        let server = &self.config.server;
        match self.own_session_origin(host) {
            Some(origin) if to == SignIn::EntryAbsolute => {
                format!("{origin}{}", self.sign_in_url(rd, SignIn::Entry))
            }
            Some(_) => self.sign_in_url(rd, to),
            None if host.name == server.hosts.public || !server.hosts.many => {
                self.sign_in_url(rd, to)
            }
            None => {
                let rd = if rd.starts_with('/') {
                    format!("{}{rd}", self.origin_of(host))
                } else {
                    rd.to_owned()
                };
                let to = if to == SignIn::Start {
                    SignIn::Start
                } else {
                    SignIn::Entry
                };
                format!("{}{}", server.public_base(), self.sign_in_url(&rd, to))
            }
        }
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

/// Every Redirect URI the GitLab application must list, and for which hosts: one on
/// public_url for one app or a cookie domain's apps (signed in once), else one per host
/// (each keeps its own session). A `*.` pattern's hosts each need their own.
pub fn redirect_uris(c: &Config) -> Vec<(String, String)> {
    let central = crate::app::redirect_uri(c);
    let hosts = &c.server.hosts;
    if !hosts.many {
        return vec![("every host".into(), central)];
    }
    if c.session.cookie_domain.is_some() {
        let names: Vec<String> = hosts.named.iter().map(ToString::to_string).collect();
        return vec![(
            format!(
                "{} and every app under session.cookie_domain ({}): signed in once",
                hosts.public,
                names.join(", ")
            ),
            central,
        )];
    }
    let scheme = c.server.public_url.scheme();
    let mut out = vec![(hosts.public.clone(), central)];
    let mut seen = vec![hosts.public.clone()];
    for p in &hosts.named {
        let text = p.to_string();
        if seen.contains(&text) {
            continue;
        }
        seen.push(text.clone());
        let host = match p {
            crate::access::HostPattern::Exact(h) => h.clone(),
            crate::access::HostPattern::Below(_) => format!("<host>{}", p.redirect_entry()),
        };
        // On public_url's port: the apps share labgate's front door.
        let origin = match c.server.public_url.port() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        out.push((
            format!("{text}: its own session"),
            format!("{origin}{}/callback", c.server.prefix),
        ));
    }
    out
}
