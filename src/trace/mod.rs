//! W3C Trace Context (`traceparent`, `tracestate`): each request continues the trace its
//! trusted front proxy started, or starts one, and labgate is one hop in it: the upstream
//! and GitLab see labgate's own span id as their parent, and the access line names the
//! trace id, so a request can be followed across the front proxy, labgate and the app.
//!
//! Like `X-Request-Id`, a trace context is taken only from `server.trusted_proxies`: from
//! anyone else a new trace starts (a client does not choose how its request is filed).
//!
//! With `[tracing] otlp_endpoint` set, labgate's spans of sampled traces (the request, and
//! within it authenticate, revalidate, each GitLab call and the upstream call) are exported
//! over OTLP ([`export`]); off, nothing is recorded.

pub mod export;

pub use export::Kind;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// The same names, parsed once (a `&str` name is parsed again at every map operation).
const TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);

/// Longest `tracestate` passed on (W3C: at least 512 characters must be propagated).
const TRACESTATE_MAX: usize = 512;

/// The trace a request belongs to, and labgate's span in it.
#[derive(Debug, Clone)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    /// The span of the caller that handed the trace in (`None`: labgate started it).
    parent: Option<u64>,
    flags: u8,
    state: Option<HeaderValue>,
}

impl TraceContext {
    /// The trace of a request: its `traceparent` (and `tracestate`) when `trusted` and
    /// valid, else a new trace, sampled with the probability `sample_ratio` (so that an app
    /// sampling by its parent records what labgate records).
    pub fn of(headers: &HeaderMap, trusted: bool, sample_ratio: f64) -> TraceContext {
        let span_id = nonzero_u64();
        if trusted {
            if let Some((trace_id, parent, flags)) = one(headers, &TRACEPARENT_NAME).and_then(parse)
            {
                let state = one(headers, &TRACESTATE_NAME)
                    .filter(|v| !v.is_empty() && v.len() <= TRACESTATE_MAX)
                    .cloned();
                return TraceContext {
                    trace_id,
                    span_id,
                    parent: Some(parent),
                    flags,
                    state,
                };
            }
        }
        TraceContext {
            trace_id: loop {
                let id = rand::random::<u128>();
                if id != 0 {
                    break id;
                }
            },
            span_id,
            parent: None,
            flags: u8::from(sample_ratio >= 1.0 || rand::random::<f64>() < sample_ratio),
            state: None,
        }
    }

    /// Whether the trace is sampled (`traceparent`'s flag): only then are spans exported.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }

    /// The same trace with `span_id` as labgate's current span (a child span's context).
    fn within(&self, span_id: u64) -> TraceContext {
        TraceContext {
            span_id,
            parent: Some(self.span_id),
            ..self.clone()
        }
    }

    /// The trace id, as `traceparent` writes it (32 lower-case hex digits).
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// `traceparent` for a call labgate makes in this trace: labgate's span as the parent.
    pub fn traceparent(&self) -> HeaderValue {
        // `00-{trace_id:032x}-{span_id:016x}-{flags:02x}`, written in place (once per
        // request: no formatting machinery, one allocation).
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(text.get_mut(3..35).unwrap_or_default(), self.trace_id);
        hex_into(
            text.get_mut(36..52).unwrap_or_default(),
            u128::from(self.span_id),
        );
        hex_into(
            text.get_mut(53..55).unwrap_or_default(),
            u128::from(self.flags),
        );
        HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(
            "00-00000000000000000000000000000000-0000000000000000-00",
        ))
    }

    /// Sets `traceparent` (and the `tracestate` taken in, if any) on an outgoing request,
    /// replacing what was there.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT_NAME, self.traceparent());
        match &self.state {
            Some(s) => {
                headers.insert(TRACESTATE_NAME, s.clone());
            }
            None => {
                headers.remove(TRACESTATE_NAME);
            }
        }
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// Runs one request's future in its trace (calls to GitLab made meanwhile carry it).
pub fn scope<F: std::future::Future>(
    trace: TraceContext,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<TraceContext, F> {
    CURRENT.scope(trace, fut)
}

/// The trace headers for a call made while serving a request (GitLab): those
/// [`TraceContext::apply`] sets; none outside a request.
pub fn outgoing() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let _ = CURRENT.try_with(|t| t.apply(&mut headers));
    headers
}

/// Sets the current span's trace headers on a request labgate sends (the upstream call,
/// within its own span when spans are exported).
pub fn apply_current(headers: &mut HeaderMap) {
    let _ = CURRENT.try_with(|t| t.apply(headers));
}

/// Runs `fut` as a span of the request being served, named `name`, when spans are
/// exported and the trace is sampled (calls made within it name it as their parent);
/// `describe` gives its attributes and, for a failure, an error description. Otherwise it
/// just runs `fut`.
///
/// A future of its own rather than an `async fn`: one taking a future by value holds it
/// twice (the argument and the awaited copy), and these wrap the request's largest ones.
pub fn span<F, D>(name: &'static str, kind: Kind, fut: F, describe: D) -> Span<F, D>
where
    F: std::future::Future,
    D: FnOnce(&F::Output) -> export::Outcome,
{
    let recorded = export::active().and_then(|exporter| {
        let parent = CURRENT
            .try_with(|t| t.sampled().then(|| t.clone()))
            .ok()
            .flatten()?;
        Some((exporter, parent.within(nonzero_u64())))
    });
    match recorded {
        None => Span::Plain { fut },
        Some((exporter, child)) => Span::Recorded {
            fut: CURRENT.scope(child.clone(), fut),
            record: Some(Record {
                exporter,
                child,
                name,
                kind,
                start: std::time::SystemTime::now(),
                describe,
            }),
        },
    }
}

/// What a recorded span writes when its future finishes.
#[derive(Debug)]
pub struct Record<D> {
    exporter: &'static export::Exporter,
    child: TraceContext,
    name: &'static str,
    kind: Kind,
    start: std::time::SystemTime,
    describe: D,
}

pin_project_lite::pin_project! {
    /// A future run as a span ([`span`]).
    #[project = SpanProj]
    #[derive(Debug)]
    pub enum Span<F: std::future::Future, D> {
        /// Not exported: just the future.
        Plain { #[pin] fut: F },
        /// Exported: the future within the span's trace context, then the span recorded.
        Recorded {
            #[pin]
            fut: tokio::task::futures::TaskLocalFuture<TraceContext, F>,
            record: Option<Record<D>>,
        },
    }
}

impl<F, D> std::future::Future for Span<F, D>
where
    F: std::future::Future,
    D: FnOnce(&F::Output) -> export::Outcome,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        match self.project() {
            SpanProj::Plain { fut } => fut.poll(cx),
            SpanProj::Recorded { fut, record } => {
                let out = std::task::ready!(fut.poll(cx));
                if let Some(r) = record.take() {
                    let outcome = (r.describe)(&out);
                    r.exporter
                        .record(&r.child, r.name, r.kind, r.start, outcome);
                }
                std::task::Poll::Ready(out)
            }
        }
    }
}

/// Writes `value`'s lowest `out.len()` hex digits (lower case, zero-padded) into `out`.
pub(crate) fn hex_into(out: &mut [u8], mut value: u128) {
    for byte in out.iter_mut().rev() {
        *byte = b"0123456789abcdef"
            .get(usize::from(value as u8 & 0x0f))
            .copied()
            .unwrap_or(b'0');
        value >>= 4;
    }
}

/// The header's one value (none when absent or repeated).
fn one<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// Reads `version-traceid-parentid-flags` (W3C Trace Context §3.2): version 00 exactly, a
/// later version by its first four fields; ids not all zero; lower-case hex.
fn parse(v: &HeaderValue) -> Option<(u128, u64, u8)> {
    let s = v.to_str().ok()?;
    let hex = |t: &str, n: usize| {
        t.len() == n
            && t.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let version = s.get(..2)?;
    if !hex(version, 2) || version == "ff" {
        return None;
    }
    let head = if version == "00" {
        (s.len() == 55).then_some(s)?
    } else {
        // A later version: its first 55 characters, followed by the end or a `-`.
        match s.as_bytes().get(55) {
            None | Some(b'-') => s.get(..55)?,
            Some(_) => return None,
        }
    };
    let mut parts = head.split('-');
    let (_, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
        return None;
    }
    let trace_id = u128::from_str_radix(trace, 16).ok()?;
    let parent_id = u64::from_str_radix(parent, 16).ok()?;
    if trace_id == 0 || parent_id == 0 {
        return None;
    }
    Some((trace_id, parent_id, u8::from_str_radix(flags, 16).ok()?))
}

fn nonzero_u64() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_trusted_trace_is_continued_with_labgates_span() {
        let t = TraceContext::of(
            &headers(&[(TRACEPARENT, GIVEN), (TRACESTATE, "a=1")]),
            true,
            1.0,
        );
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let out = t.traceparent();
        let out = out.to_str().unwrap();
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.ends_with("-01"));
        assert_ne!(
            out.get(36..52).unwrap(),
            "00f067aa0ba902b7",
            "labgate's own span is the parent"
        );
        let mut h = HeaderMap::new();
        t.apply(&mut h);
        assert_eq!(h[TRACESTATE], "a=1");
    }

    #[test]
    fn an_untrusted_or_malformed_trace_starts_a_new_one() {
        let untrusted = TraceContext::of(&headers(&[(TRACEPARENT, GIVEN)]), false, 1.0);
        assert_ne!(untrusted.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "",
        ] {
            let t = TraceContext::of(&headers(&[(TRACEPARENT, bad)]), true, 1.0);
            assert_ne!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
        }
        // Two traceparent headers: neither is taken.
        let two = TraceContext::of(
            &headers(&[(TRACEPARENT, GIVEN), (TRACEPARENT, GIVEN)]),
            true,
            1.0,
        );
        assert_ne!(two.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // A later version is read by its first four fields.
        let later = TraceContext::of(
            &headers(&[(
                TRACEPARENT,
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next",
            )]),
            true,
            1.0,
        );
        assert_eq!(later.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // An oversized tracestate is dropped, the trace kept.
        let big = "a=".to_owned() + &"b".repeat(600);
        let t = TraceContext::of(
            &headers(&[(TRACEPARENT, GIVEN), (TRACESTATE, &big)]),
            true,
            1.0,
        );
        let mut h = headers(&[(TRACESTATE, "stale=1")]);
        t.apply(&mut h);
        assert!(h.get(TRACESTATE).is_none());
    }

    #[test]
    fn new_traces_are_sampled_by_the_ratio_and_continued_ones_keep_their_flag() {
        let none = headers(&[]);
        assert!(TraceContext::of(&none, true, 1.0).sampled());
        assert!(!TraceContext::of(&none, true, 0.0).sampled());
        let sampled = (0..2000)
            .filter(|_| TraceContext::of(&none, false, 0.25).sampled())
            .count();
        assert!((350..650).contains(&sampled), "{sampled} of 2000 at 0.25");
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let t = TraceContext::of(&headers(&[(TRACEPARENT, unsampled)]), true, 1.0);
        assert!(!t.sampled());
        assert!(TraceContext::of(&headers(&[(TRACEPARENT, GIVEN)]), true, 0.0).sampled());
    }
}
