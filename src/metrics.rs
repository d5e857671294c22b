//! Prometheus metrics (OpenMetrics text exposition), served at `{prefix}/metrics` or on
//! `server.metrics_listen` so that they need not be public. Every label takes values from a
//! small fixed set (status classes, route and principal kinds, GitLab endpoint names, never
//! a path, a URL or a user), so the number of series is bounded whatever the traffic.
//! docs/observability.md lists them with their meaning.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of `labgate_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// "2xx", "3xx", "4xx", "5xx".
    pub class: &'static str,
    /// "app" (forwarded or refused), "forward_auth" (`{prefix}/auth`), "labgate" (its
    /// other endpoints), "probe" (`/ping`, `/ready`).
    pub route: &'static str,
}

/// Labels of `labgate_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    /// Who called: "user", "ci_job", "user_token" (SPEC §9's `X-Labgate-Kind`) or
    /// "anonymous" (public paths, refusals before sign-in, labgate's own pages).
    pub kind: &'static str,
    /// As in `labgate_requests_total`.
    pub route: &'static str,
}

/// Labels of `labgate_gitlab_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GitlabCallLabels {
    /// [`GitlabEndpoint::as_str`].
    pub endpoint: &'static str,
    /// [`GitlabOutcome::as_str`].
    pub outcome: &'static str,
}

/// Labels of `labgate_gitlab_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// [`GitlabEndpoint::as_str`].
    pub endpoint: &'static str,
}

/// Labels of `labgate_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version (Cargo.toml).
    pub version: &'static str,
    /// [`BUILD_COMMIT`].
    pub commit: &'static str,
}

/// The commit labgate was built from: `LABGATE_BUILD_COMMIT` at build time, else `git
/// rev-parse HEAD` of the source tree, else "unknown" (build.rs; a build never fails for
/// want of git).
pub const BUILD_COMMIT: &str = env!("LABGATE_BUILD_COMMIT");

/// The GitLab endpoints labgate calls, as the `endpoint` label: names, never URLs (a
/// project path or a page number in a label would make series without bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GitlabEndpoint {
    /// `/.well-known/openid-configuration`.
    Discovery,
    /// The JWKS (`jwks_uri`): GitLab's ID-token and CI ID-token keys.
    Jwks,
    /// The token endpoint: code exchange and refresh.
    Token,
    /// The revocation endpoint (sign-out).
    Revocation,
    /// The OIDC userinfo endpoint (groups, role claims).
    Userinfo,
    /// `GET /api/v4/user` (state, two-factor; `read_user` sign-ins; access tokens).
    User,
    /// `GET /api/v4/personal_access_tokens/self` (is a bearer access token the caller's own).
    TokenSelf,
    /// `GET /api/v4/groups` (an access token's group memberships).
    Groups,
    /// `GET /api/v4/projects/:path` (access levels for `allowed_projects`).
    Projects,
}

impl GitlabEndpoint {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GitlabEndpoint::Discovery => "discovery",
            GitlabEndpoint::Jwks => "jwks",
            GitlabEndpoint::Token => "token",
            GitlabEndpoint::Revocation => "revocation",
            GitlabEndpoint::Userinfo => "userinfo",
            GitlabEndpoint::User => "user",
            GitlabEndpoint::TokenSelf => "token_self",
            GitlabEndpoint::Groups => "groups",
            GitlabEndpoint::Projects => "projects",
        }
    }
}

/// How one HTTP call to GitLab ended, as the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GitlabOutcome {
    /// A 2xx answer, body read.
    Ok,
    /// A 4xx answer other than 429: GitLab said no (an expired token, a project the user
    /// cannot see, `invalid_grant`); often the user's business, not an outage.
    ClientError,
    /// 429: GitLab's rate limit (gitlab.com: 50 group API calls a minute).
    RateLimited,
    /// A 5xx answer.
    ServerError,
    /// An answer labgate does not expect from GitLab (1xx, a redirect).
    UnexpectedStatus,
    /// `gitlab.timeout` passed before the answer (or its body) arrived.
    Timeout,
    /// No answer: DNS, connection refused or reset, TLS.
    Unreachable,
}

impl GitlabOutcome {
    /// The outcome of an answer with `status`.
    pub fn of_status(status: u16) -> GitlabOutcome {
        match status {
            200..=299 => GitlabOutcome::Ok,
            429 => GitlabOutcome::RateLimited,
            400..=499 => GitlabOutcome::ClientError,
            500..=599 => GitlabOutcome::ServerError,
            _ => GitlabOutcome::UnexpectedStatus,
        }
    }

    /// The outcome of a call that failed before a whole answer arrived.
    pub fn of_transport(timed_out: bool) -> GitlabOutcome {
        if timed_out {
            GitlabOutcome::Timeout
        } else {
            GitlabOutcome::Unreachable
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GitlabOutcome::Ok => "ok",
            GitlabOutcome::ClientError => "client_error",
            GitlabOutcome::RateLimited => "rate_limited",
            GitlabOutcome::ServerError => "server_error",
            GitlabOutcome::UnexpectedStatus => "unexpected_status",
            GitlabOutcome::Timeout => "timeout",
            GitlabOutcome::Unreachable => "unreachable",
        }
    }
}

/// Latency buckets, in seconds, of every duration histogram: from a cached forward-auth
/// answer (well under a millisecond) to a slow GitLab or upstream (10 s).
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Prometheus' process metrics (resident and virtual memory, open and maximum file
/// descriptors, CPU seconds, start time, threads), read from the system at each scrape by
/// the `metrics-process` crate (client_golang's collector, in Rust).
#[derive(Debug)]
struct ProcessCollector;

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let m = metrics_process::collector::collect();
        if let Some(cpu) = m.cpu_seconds_total {
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                c.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                m.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                m.virtual_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                m.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                m.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                m.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                m.threads,
            ),
        ];
        for (name, help, value) in gauges {
            let Some(v) = value.and_then(|v| i64::try_from(v).ok()) else {
                continue;
            };
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// Seconds from a GitLab event to a refusal: the promise is "within a second", a person
/// who comes back later shows in the long buckets.
const REFUSAL_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 3600.0];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// A histogram per label set.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The GitLab call metrics, shared by the GitLab client (which
/// records) and the registry (which exports).
#[derive(Clone, Debug)]
pub struct GitlabMetrics {
    /// Calls by endpoint and outcome.
    pub requests: Family<GitlabCallLabels, Counter>,
    /// Call durations (request sent to body read, or to the failure) by endpoint.
    pub seconds: Histograms<EndpointLabels>,
}

impl Default for GitlabMetrics {
    fn default() -> Self {
        GitlabMetrics {
            requests: Family::default(),
            seconds: Family::new_with_constructor(duration_histogram),
        }
    }
}

impl GitlabMetrics {
    /// Records one call.
    pub fn observe(&self, endpoint: GitlabEndpoint, outcome: GitlabOutcome, took: Duration) {
        self.requests
            .get_or_create(&GitlabCallLabels {
                endpoint: endpoint.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        self.seconds
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
            .observe(took.as_secs_f64());
    }
}

/// Labels with an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// What happened.
    pub outcome: &'static str,
}

/// Every metric labgate exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by status class and route kind.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from the request head to labgate's response head, by principal and route kind.
    pub request_seconds: Histograms<DurationLabels>,
    /// Time to the upstream's response head.
    pub upstream_seconds: Histogram,
    /// The series of [`Metrics::request_done`], each taken from its family at its first use.
    hot: HotSeries,
    /// GitLab calls (the client records into these).
    pub gitlab: GitlabMetrics,
    /// Sign-ins by outcome: ok, denied, cancelled, gitlab_error, bad_state, store_error.
    pub sign_ins: Family<Outcome, Counter>,
    /// Revalidations by outcome: ok, ended, unreachable.
    pub revalidations: Family<Outcome, Counter>,
    /// Session store failures.
    pub store_errors: Counter,
    /// Assertions signed (the rest are reused).
    pub assertions_signed: Counter,
    /// Open client connections.
    pub open_connections: Gauge,
    /// GitLab webhook requests by outcome: marked, ignored, bad_token, bad_request,
    /// too_large, rate_limited, store_error.
    pub webhooks: Family<Outcome, Counter>,
    /// Sessions revalidated because a GitLab event marked their person.
    pub webhook_revalidations: Counter,
    /// From a GitLab event to the refusal of the marked person's request that revalidated.
    pub webhook_refusal_seconds: Histogram,
    /// Configuration reloads by outcome: ok, refused.
    pub config_reloads: Family<Outcome, Counter>,
    /// 1 when a reloaded configuration has changes that wait for a restart.
    pub config_restart_needed: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        // The process's own figures, under Prometheus' standard `process_*` names.
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("labgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by status class and route kind",
            requests.clone(),
        );
        let request_seconds: Histograms<DurationLabels> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from the request head to labgate's response head, by principal kind and route",
            request_seconds.clone(),
        );
        let upstream_seconds = duration_histogram();
        registry.register(
            "upstream_duration_seconds",
            "Time to the upstream's response head",
            upstream_seconds.clone(),
        );
        let sign_ins = Family::<Outcome, Counter>::default();
        registry.register("sign_ins", "Sign-ins by outcome", sign_ins.clone());
        let revalidations = Family::<Outcome, Counter>::default();
        registry.register(
            "revalidations",
            "Session revalidations with GitLab by outcome",
            revalidations.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "session_store_errors",
            "Session store (Redis) failures",
            store_errors.clone(),
        );
        let assertions_signed = Counter::default();
        registry.register(
            "assertions_signed",
            "Assertion JWTs signed",
            assertions_signed.clone(),
        );
        let gitlab = GitlabMetrics::default();
        registry.register(
            "gitlab_requests",
            "HTTP calls to GitLab by endpoint and outcome",
            gitlab.requests.clone(),
        );
        registry.register(
            "gitlab_request_duration_seconds",
            "Duration of HTTP calls to GitLab (sent to body read) by endpoint",
            gitlab.seconds.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: BUILD_COMMIT,
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the labels say which labgate build is running",
            build_info,
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Open client connections",
            open_connections.clone(),
        );
        let webhooks = Family::<Outcome, Counter>::default();
        registry.register(
            "webhook_events",
            "GitLab webhook requests by outcome",
            webhooks.clone(),
        );
        let webhook_revalidations = Counter::default();
        registry.register(
            "webhook_revalidations",
            "Sessions revalidated with GitLab because a GitLab event marked their person",
            webhook_revalidations.clone(),
        );
        let webhook_refusal_seconds = Histogram::new(REFUSAL_BUCKETS);
        registry.register(
            "webhook_refusal_seconds",
            "Time from a GitLab event to the refusal of the marked person's request that revalidated",
            webhook_refusal_seconds.clone(),
        );
        let config_reloads = Family::<Outcome, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP, the file changed) by outcome",
            config_reloads.clone(),
        );
        let config_restart_needed = Gauge::default();
        registry.register(
            "config_restart_needed",
            "1 when the reloaded configuration has changes that take effect only at a restart",
            config_restart_needed.clone(),
        );
        Metrics {
            config_reloads,
            config_restart_needed,
            webhooks,
            webhook_revalidations,
            webhook_refusal_seconds,
            registry: root,
            requests,
            request_seconds,
            upstream_seconds,
            hot: HotSeries::default(),
            gitlab,
            sign_ins,
            revalidations,
            store_errors,
            assertions_signed,
            open_connections,
        }
    }
}

impl Metrics {
    /// Counts a sign-in outcome.
    pub fn sign_in(&self, outcome: &'static str) {
        self.sign_ins.get_or_create(&Outcome { outcome }).inc();
    }

    /// Counts a configuration reload; `restart`: the running process differs from it.
    pub fn config_reload(&self, outcome: &'static str, restart: bool) {
        self.config_reloads
            .get_or_create(&Outcome { outcome })
            .inc();
        if outcome == "ok" {
            self.config_restart_needed.set(i64::from(restart));
        }
    }

    /// Counts a GitLab webhook request's outcome.
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks.get_or_create(&Outcome { outcome }).inc();
    }

    /// Records a refusal of a person marked by a GitLab event at `marked_ms`, at `now_ms`.
    pub fn webhook_refusal(&self, marked_ms: u64, now_ms: u64) {
        self.webhook_refusal_seconds
            .observe(now_ms.saturating_sub(marked_ms) as f64 / 1000.0);
    }

    /// Counts a revalidation outcome.
    pub fn revalidation(&self, outcome: &'static str) {
        self.revalidations.get_or_create(&Outcome { outcome }).inc();
    }

    /// Records a finished request: counted by status class and route kind, its duration by
    /// principal and route kind. Every request does this: the series are kept after their
    /// first use, so a request costs two atomic updates, not two family lookups (a lock
    /// and a hash of the labels each). A series still appears at its first use.
    pub fn request_done(
        &self,
        status: u16,
        kind: &'static str,
        route: &'static str,
        took: Duration,
    ) {
        let class = class(status);
        let r = route_index(route);
        let count = |labels: &RequestLabels| self.requests.get_or_create(labels).clone();
        let labels = RequestLabels { class, route };
        match hot_slot(class_index(class), CLASSES, r).and_then(|i| self.hot.requests.get(i)) {
            Some(slot) => slot.get_or_init(|| count(&labels)).inc(),
            None => count(&labels).inc(),
        };
        let labels = DurationLabels { kind, route };
        let time = |labels: &DurationLabels| self.request_seconds.get_or_create(labels).clone();
        match hot_slot(kind_index(kind), KINDS, r).and_then(|i| self.hot.durations.get(i)) {
            Some(slot) => slot
                .get_or_init(|| time(&labels))
                .observe(took.as_secs_f64()),
            None => time(&labels).observe(took.as_secs_f64()),
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Route kinds, classes and principal kinds of the request series (an unknown one is
/// counted through its family).
const ROUTES: usize = 5;
const CLASSES: usize = 6;
const KINDS: usize = 5;

fn route_index(route: &str) -> usize {
    match route {
        "app" => 0,
        "forward_auth" => 1,
        "labgate" => 2,
        "probe" => 3,
        _ => 4,
    }
}

fn class_index(class: &str) -> usize {
    match class {
        "2xx" => 0,
        "3xx" => 1,
        "4xx" => 2,
        "5xx" => 3,
        "1xx" => 4,
        _ => 5,
    }
}

fn kind_index(kind: &str) -> usize {
    match kind {
        "user" => 0,
        "anonymous" => 1,
        "ci_job" => 2,
        "user_token" => 3,
        _ => 4,
    }
}

/// The slot of a combination; none when either index is "other" (the last of its
/// dimension), whose labels vary.
fn hot_slot(index: usize, of: usize, route: usize) -> Option<usize> {
    (index + 1 < of && route + 1 < ROUTES).then(|| index * (ROUTES - 1) + route)
}

/// One slot per label combination of known labels.
struct HotSeries {
    requests: Vec<std::sync::OnceLock<Counter>>,
    durations: Vec<std::sync::OnceLock<Histogram>>,
}

impl Default for HotSeries {
    fn default() -> Self {
        fn slots<T>(n: usize) -> Vec<std::sync::OnceLock<T>> {
            (0..n).map(|_| std::sync::OnceLock::new()).collect()
        }
        HotSeries {
            requests: slots((CLASSES - 1) * (ROUTES - 1)),
            durations: slots((KINDS - 1) * (ROUTES - 1)),
        }
    }
}

/// The status class label of a status code.
pub fn class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}
