//! OTLP export of labgate's spans (`[tracing] otlp_endpoint`): each finished span of a
//! sampled trace goes to OpenTelemetry's batch processor, which sends batches over
//! OTLP/HTTP (protobuf) to the collector from a thread of its own. The ids are the ones
//! labgate already put in `traceparent` ([`super::TraceContext`]), so the spans a collector
//! receives join the front proxy's and the app's in one trace.
//!
//! Off (no endpoint), nothing here runs on a request: [`active`] is one atomic load.
//! The standard `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_BSP_*` variables are honoured by the SDK.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};

use super::TraceContext;

/// What a span is, in OpenTelemetry's terms.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// The request labgate serves.
    Server,
    /// A call labgate makes (GitLab, the upstream).
    Client,
    /// Work within the request (authenticate, revalidate).
    Internal,
}

/// How a span ended: its attributes, and what went wrong if it failed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Attributes (OpenTelemetry semantic conventions where one applies).
    pub attributes: Vec<KeyValue>,
    /// `Some`: the span's status is an error with this description.
    pub error: Option<&'static str>,
}

impl Outcome {
    /// A span that went as it should, with `attributes`.
    pub fn ok(attributes: Vec<KeyValue>) -> Outcome {
        Outcome {
            attributes,
            error: None,
        }
    }

    /// A failed span: `why`, with `attributes`.
    pub fn failed(why: &'static str, attributes: Vec<KeyValue>) -> Outcome {
        Outcome {
            attributes,
            error: Some(why),
        }
    }
}

/// The running export.
pub struct Exporter {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

static ACTIVE: OnceLock<Exporter> = OnceLock::new();

/// The export in force, if `[tracing] otlp_endpoint` is set.
pub fn active() -> Option<&'static Exporter> {
    ACTIVE.get()
}

/// Starts exporting spans to `endpoint` (`[tracing] otlp_endpoint`, its `/v1/traces`) as
/// `service_name`. Call once, outside an async runtime, before serving.
pub fn start(endpoint: &url::Url, service_name: &str) -> Result<(), String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Collector::default())
        .with_endpoint(endpoint.as_str())
        .build()
        .map_err(|e| format!("tracing.otlp_endpoint: cannot set up the OTLP exporter: {e}"))?;
    let mut processor = BatchSpanProcessor::builder(exporter).build();
    processor.set_resource(
        &opentelemetry_sdk::Resource::builder()
            .with_service_name(service_name.to_owned())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let scope = InstrumentationScope::builder("labgate")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    if ACTIVE.set(Exporter { processor, scope }).is_err() {
        return Err("the OTLP export was started twice".into());
    }
    tracing::info!(endpoint = %endpoint, "exporting spans over OTLP");
    Ok(())
}

/// Sends the spans still queued and stops the export (at shutdown).
pub fn stop() {
    if let Some(e) = ACTIVE.get() {
        if let Err(err) = e.processor.shutdown() {
            tracing::warn!(error = %err, "the last spans were not all exported");
        }
    }
}

impl Exporter {
    /// Queues one finished span of `trace` (its span id is `trace`'s, its parent
    /// `trace`'s parent); unsampled traces are not recorded.
    pub(super) fn record(
        &self,
        trace: &TraceContext,
        name: &'static str,
        kind: Kind,
        start: SystemTime,
        outcome: Outcome,
    ) {
        if !trace.sampled() {
            return;
        }
        let span_context = SpanContext::new(
            TraceId::from(trace.trace_id),
            SpanId::from(trace.span_id),
            TraceFlags::new(trace.flags),
            false,
            TraceState::default(),
        );
        self.processor.on_end(SpanData {
            span_context,
            parent_span_id: trace.parent.map_or(SpanId::INVALID, SpanId::from),
            // Only the request span's parent is another process's (the front proxy's).
            parent_span_is_remote: matches!(kind, Kind::Server) && trace.parent.is_some(),
            span_kind: match kind {
                Kind::Server => SpanKind::Server,
                Kind::Client => SpanKind::Client,
                Kind::Internal => SpanKind::Internal,
            },
            name: Cow::Borrowed(name),
            start_time: start,
            end_time: SystemTime::now(),
            attributes: outcome.attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: match outcome.error {
                Some(why) => Status::error(why),
                None => Status::Unset,
            },
            instrumentation_scope: self.scope.clone(),
        });
    }
}

/// Records the request span (labgate's span in `trace`, begun at `start`).
pub fn record_request(trace: &TraceContext, start: SystemTime, outcome: Outcome) {
    if let Some(e) = active() {
        e.record(trace, "request", Kind::Server, start, outcome);
    }
}

/// The HTTP client the batch processor's thread sends batches with: reqwest's blocking
/// client (rustls, the platform's roots), built on that thread at the first export.
#[derive(Debug, Default)]
struct Collector {
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
}

/// Longest wait for the collector per batch (`OTEL_EXPORTER_OTLP_TIMEOUT` shortens the
/// SDK's own).
const COLLECTOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl opentelemetry_http::HttpClient for Collector {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: http::Request<bytes::Bytes>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError>,
                > + Send
                + 'b,
        >,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let client = self
                .client
                .get_or_init(|| {
                    reqwest::blocking::Client::builder()
                        .timeout(COLLECTOR_TIMEOUT)
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .map_err(|e| e.to_string())
                })
                .as_ref()
                .map_err(|e| opentelemetry_http::HttpError::from(e.clone()))?;
            let request = reqwest::blocking::Request::try_from(request)?;
            let answer = client.execute(request)?;
            let mut response = http::Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                headers.extend(answer.headers().clone());
            }
            Ok(response.body(answer.bytes()?)?)
        })
    }
}
