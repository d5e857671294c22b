//! Prometheus metrics (text exposition format), served at `{prefix}/metrics` or on
//! `server.metrics_listen` so that they need not be public.

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
    /// "app" (forwarded or refused), "labgate" (own endpoints), "probe".
    pub route: &'static str,
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
    /// Time to the upstream's response head.
    pub upstream_seconds: Histogram,
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
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("labgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by status class and route kind",
            requests.clone(),
        );
        let buckets = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let upstream_seconds = Histogram::new(buckets);
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
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Open client connections",
            open_connections.clone(),
        );
        Metrics {
            registry,
            requests,
            upstream_seconds,
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

    /// Counts a revalidation outcome.
    pub fn revalidation(&self, outcome: &'static str) {
        self.revalidations.get_or_create(&Outcome { outcome }).inc();
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
