//! The one branch point and the whole endpoint table, then the phases of an application
//! request in order: classify -> authenticate -> decide -> rewrite -> proxy -> log.
//!
//! Every entry point that admits someone (the proxy, `/oauth2/auth`, `/oauth2/userinfo`)
//! goes through [`crate::auth::authorize`]: who is calling, then what [`crate::access`]
//! decides; any refusal is a [`Reject`] rendered in one place. Nothing below imports this
//! module.

use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::access::PathViews;
use crate::app::{App, SignIn};
use crate::auth::{self, CookieDelivery};
use crate::forward_auth::endpoint;
use crate::headers;
use crate::identity::{set_identity_headers, HeaderSet, Principal};
use crate::proxy::{Body, ConnectionHold};
use crate::reject::{Reject, Style};
use crate::respond;
use crate::{admin, sessions_page, signin, userinfo, webhooks};

pub(crate) use crate::headers::Peer;

/// How long the upstream took to send its response head (a response extension, for the
/// access log).
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamTime(pub std::time::Duration);

/// `X-Request-Id`, `X-Forwarded-Host` and `X-Forwarded-Access-Token`, parsed once.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
const X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_ACCESS_TOKEN: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-access-token");

/// Whether the peer is one of `server.trusted_proxies`.
fn trusted(app: &App, peer: Peer) -> bool {
    headers::is_trusted(&app.config.server.trusted_proxies, peer.addr.ip())
}

/// The request id: the trusted front proxy's `X-Request-Id` when it is sane, else a new one.
fn request_id<B>(app: &App, peer: Peer, req: &Request<B>) -> HeaderValue {
    let given = req.headers().get(X_REQUEST_ID).filter(|v| {
        trusted(app, peer)
            && !v.is_empty()
            && v.len() <= 128
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    match given {
        Some(v) => v.clone(),
        None => fresh_request_id(),
    }
}

/// A new request id: a random per-process prefix and a counter (unique, cheap: no
/// system call per request; request ids are for correlation, not secrets).
fn fresh_request_id() -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| crate::random_token(6));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // `{prefix}-{n:x}`, written in place: one allocation, no formatting machinery.
    let mut digits = [0u8; 16];
    crate::trace::hex_into(&mut digits, u128::from(n));
    let start = digits.iter().position(|d| *d != b'0').unwrap_or(15);
    let mut id = Vec::with_capacity(prefix.len() + 17);
    id.extend_from_slice(prefix.as_bytes());
    id.push(b'-');
    id.extend_from_slice(digits.get(start..).unwrap_or_default());
    HeaderValue::from_maybe_shared(bytes::Bytes::from(id)).unwrap_or(HeaderValue::from_static("-"))
}

/// Handles one request and writes its access-log line (docs/observability.md): who
/// (username, principal kind), from where (the client address labgate worked out), what
/// (method, path without the query), and how it went (status, ms, upstream ms, cause).
pub(crate) async fn handle(
    app: Arc<App>,
    peer: Peer,
    hold: ConnectionHold,
    mut req: Request<Incoming>,
) -> Response<Body> {
    use tracing::Instrument;
    let start = Instant::now();
    let id = request_id(&app, peer, &req);
    // Room for what labgate adds (request id, trace, forwarded and identity headers) in one
    // allocation, rather than the map growing and rehashing several times.
    req.headers_mut().reserve(16);
    req.headers_mut().insert(X_REQUEST_ID, id.clone());
    // The trace: continued from a trusted proxy, or started; the upstream sees labgate's
    // span as its parent.
    let trace = crate::trace::TraceContext::of(
        req.headers(),
        trusted(&app, peer),
        app.config.tracing.sample_ratio,
    );
    trace.apply(req.headers_mut());
    // The request's own span, when spans are exported and this trace is sampled.
    let exported = (crate::trace::export::active().is_some() && trace.sampled()).then(|| {
        (
            trace.clone(),
            std::time::SystemTime::now(),
            req.method().clone(),
        )
    });
    let trace_id = crate::telemetry::access_enabled().then(|| trace.trace_id());
    let route_kind = route_kind(&app, req.uri().path());
    // What the line needs from the request, taken only when the line is written.
    let line = crate::telemetry::access_enabled().then(|| {
        let client = headers::client_ip(
            req.headers(),
            peer.addr.ip(),
            &app.config.server.trusted_proxies,
        );
        // Only the path is logged: queries may carry codes or tokens.
        (req.method().clone(), req.uri().path().to_owned(), client)
    });
    let span = tracing::info_span!("request", id = id.to_str().unwrap_or("-"));
    let mut routed = std::pin::pin!(crate::telemetry::with_caller(crate::trace::scope(
        trace,
        dispatch(&app, peer, &hold, req).instrument(span.clone())
    )));
    let mut resp = routed.as_mut().await;
    let caller = crate::telemetry::caller(routed);
    let took = start.elapsed();
    let status = resp.status().as_u16();
    let kind = caller.as_ref().map_or("anonymous", Principal::kind);
    if let Some((method, path, client)) = line {
        let upstream_ms = resp.extensions().get::<UpstreamTime>().map(|t| millis(t.0));
        // Who caused a refusal or failure (client, gitlab, store, upstream), when labgate
        // answered instead of the app.
        let cause = resp
            .extensions()
            .get::<crate::reject::Cause>()
            .map(|c| c.as_str());
        let user = caller
            .as_ref()
            .map(|p| crate::telemetry::Escaped(p.username()));
        span.in_scope(|| {
            tracing::info!(
                target: "labgate::access",
                user = user.as_ref().map(tracing::field::display),
                kind,
                client = %client,
                method = %method,
                path = %crate::telemetry::Escaped(&path),
                status,
                ms = millis(took),
                upstream_ms,
                cause,
                route = route_kind,
                trace_id = trace_id.as_deref(),
                "request"
            );
        });
    }
    app.metrics.request_done(status, kind, route_kind, took);
    if let Some((trace, started, method)) = exported {
        use opentelemetry::KeyValue;
        let attributes = vec![
            // OpenTelemetry's convention: a method outside RFC 9110's (and PATCH) is
            // `_OTHER`, so a client cannot write what it likes into the span.
            KeyValue::new(
                "http.request.method",
                match method.as_str() {
                    m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS"
                    | "TRACE" | "PATCH") => m.to_owned(),
                    _ => "_OTHER".to_owned(),
                },
            ),
            KeyValue::new("http.response.status_code", i64::from(status)),
            KeyValue::new("labgate.route", route_kind),
            KeyValue::new("labgate.caller", kind),
        ];
        let outcome = match status {
            500.. => crate::trace::export::Outcome::failed(
                "labgate answered with a server error",
                attributes,
            ),
            _ => crate::trace::export::Outcome::ok(attributes),
        };
        crate::trace::export::record_request(&trace, started, outcome);
    }
    resp.headers_mut().insert(X_REQUEST_ID, id);
    resp
}

/// A duration in milliseconds, to the microsecond (the log line's `ms`, `upstream_ms`).
fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The `route` of a request's metrics and access line: "probe" (`/ping`, `/ready`),
/// "forward_auth" (`{prefix}/auth`, also Envoy's `{prefix}/auth/<path>`), "labgate" (its
/// other endpoints) or "app".
fn route_kind(app: &App, path: &str) -> &'static str {
    let prefix = app.config.server.prefix.as_str();
    match path.strip_prefix(prefix) {
        _ if path == "/ping" || path == "/ready" => "probe",
        Some(rest) if rest == "/auth" || rest.starts_with("/auth/") => "forward_auth",
        Some(rest) if rest.is_empty() || rest.starts_with('/') => "labgate",
        _ => "app",
    }
}

/// Classifies a request: probes, labgate's own endpoints, or the application.
async fn dispatch(
    app: &Arc<App>,
    peer: Peer,
    hold: &ConnectionHold,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.method() == Method::CONNECT && !crate::proxy::is_h2_websocket(&req) {
        return respond::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "CONNECT is not supported",
        );
    }
    // Origin-form only (RFC 9112 §3.2.1): absolute-form would name another host, the
    // authority-form is CONNECT's, and `OPTIONS *` would reach the app as `/*`.
    if (req.version() <= http::Version::HTTP_11
        && (req.uri().scheme().is_some() || req.uri().authority().is_some()))
        || !req.uri().path().starts_with('/')
    {
        return respond::json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "only origin-form request targets (/path?query) are accepted",
        );
    }
    if let Some(why) = host_problem(&req) {
        return bad_request(app, &req, "bad_host", why);
    }
    // Envoy's ext_authz appends the original path, dot segments and all, to the auth path:
    // decided on the raw target, before normalisation could walk it out of `/auth/`.
    if let Some(suffix) = endpoint::envoy_suffix(app, &req) {
        return endpoint::forward_auth(app, peer, &req, Some(&suffix)).await;
    }
    let views = PathViews::new(req.uri().path());
    if let Some(why) = views.refused() {
        return bad_request(app, &req, "bad_path", why);
    }
    match views.forward.as_str() {
        "/ping" => return admin::ping(),
        "/ready" => return Box::pin(admin::ready(app)).await,
        _ => {}
    }
    let prefix = app.config.server.prefix.as_str();
    if let Some(rest) = views.forward.strip_prefix(prefix) {
        if rest.is_empty() || rest.starts_with('/') {
            // Forward-auth answers every request of the apps behind a front proxy: inline.
            // The other endpoints are boxed, so that the request's future stays as small
            // as the proxy path needs (hyper moves it whole).
            if rest == "/auth" && matches!(*req.method(), Method::GET | Method::HEAD) {
                return endpoint::forward_auth(app, peer, &req, None).await;
            }
            return Box::pin(endpoint(app, peer, rest, req)).await;
        }
    }
    proxy(app, peer, hold, req, &views).await
}

/// A 400 that says what is wrong with the request, as a page for a browser.
fn bad_request<B>(app: &App, req: &Request<B>, code: &'static str, why: &str) -> Response<Body> {
    Reject::BadRequest {
        code,
        message: why.to_owned(),
    }
    .render(
        &app.pages,
        &Style {
            html: respond::wants_html(req.headers()),
            sign_in: None,
        },
    )
}

/// Why the request's host cannot be forwarded, if it cannot (RFC 9112 §3.2: exactly one
/// `Host` on HTTP/1.1, none or one on HTTP/1.0; RFC 9110 §4.2.4 / RFC 9113 §8.3.1: no
/// userinfo in `Host` or `:authority`). Two `Host` lines are two hosts to two readers: the
/// first for labgate's `X-Forwarded-Host`, the last for an app that keeps the last.
fn host_problem<B>(req: &Request<B>) -> Option<&'static str> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some("a request carries one Host header, not several");
    }
    if req
        .uri()
        .authority()
        .is_some_and(|a| a.as_str().contains('@'))
    {
        return Some("the request's authority carries userinfo");
    }
    // HTTP/2 with both: one host, or two readers see two apps (RFC 9113 §8.3.1).
    if let (Some(a), Some(h)) = (req.uri().authority(), host) {
        let read = |t: &str| crate::access::Host::read(t).ok();
        if h.to_str().ok().and_then(read) != read(a.as_str()) {
            return Some("the Host header and :authority name different hosts");
        }
    }
    let authority = req.uri().authority().is_some();
    match host {
        None if req.version() >= http::Version::HTTP_11 && !authority => {
            Some("the request names no host (HTTP/1.1 needs a Host header)")
        }
        Some(h)
            if h.to_str()
                .ok()
                .and_then(|v| v.parse::<http::uri::Authority>().ok())
                .is_none_or(|a| !plain_authority(&a)) =>
        {
            Some("the Host header is not a host[:port]")
        }
        _ => None,
    }
}

/// A `host[:port]` with no userinfo and, when a port is written, a port number.
fn plain_authority(a: &http::uri::Authority) -> bool {
    let text = a.as_str();
    let after_host = match text.rfind(']') {
        Some(end) => text.get(end + 1..).unwrap_or(""),
        None => text,
    };
    let port_ok = match after_host.rsplit_once(':') {
        Some((_, port)) => {
            !port.is_empty() && port.len() <= 5 && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => true,
    };
    !text.contains('@') && port_ok
}

/// labgate's own endpoints (SPEC §3); `rest` is the normalised path after the prefix.
async fn endpoint(
    app: &Arc<App>,
    peer: Peer,
    rest: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    // The pages a browser opens at an app's host answer only at hosts labgate serves (the
    // flow's own endpoints check theirs; forward-auth, probes and keys answer at any).
    if matches!(rest, "/sign_in" | "/sign_out" | "/userinfo" | "/sessions") {
        let hosts = &app.config.server.hosts;
        match app.request_host(&req) {
            Ok(h) if !hosts.serves(&h.name) => {
                let style = Style {
                    html: respond::wants_html(req.headers()),
                    sign_in: None,
                };
                return Reject::UnknownHost { host: h.name }.render(&app.pages, &style);
            }
            Err(why) if hosts.many => return bad_request(app, &req, "bad_host", why),
            _ => {}
        }
    }
    match (method, rest) {
        (Method::GET | Method::HEAD, "/sign_in") => {
            let original = endpoint::read_original(app, peer, &req, "").ok().flatten();
            signin::sign_in(app, &req, original.as_ref())
        }
        (Method::GET | Method::HEAD, "/start") => signin::start(app, &req).await,
        (Method::GET, "/callback") => signin::callback(app, peer.addr.ip(), &req).await,
        (Method::GET | Method::POST, "/sign_out") => signin::sign_out(app, &req).await,
        (Method::GET | Method::HEAD, "/userinfo") => {
            userinfo::userinfo(app, peer.addr.ip(), &req).await
        }
        (Method::GET | Method::HEAD, "/jwks.json") => userinfo::jwks(app, &req),
        (Method::GET, "/metrics")
            if app.config.server.metrics_public && app.config.server.metrics_listen.is_none() =>
        {
            admin::metrics_response(app)
        }
        (Method::GET | Method::HEAD, "/auth") => {
            endpoint::forward_auth(app, peer, &req, None).await
        }
        // With a listener of their own (server.webhook_listen), not here.
        (_, "/webhooks/gitlab") if app.config.server.webhook_listen.is_some() => {
            respond::json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such labgate endpoint",
            )
        }
        (Method::POST, "/webhooks/gitlab") => webhooks::gitlab(app, req).await,
        (Method::GET | Method::HEAD | Method::POST, "/sessions") => {
            sessions_page::sessions(app, peer.addr.ip(), req).await
        }
        (
            _,
            "/sign_in" | "/start" | "/callback" | "/sign_out" | "/userinfo" | "/jwks.json"
            | "/auth" | "/webhooks/gitlab" | "/sessions",
        ) => respond::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        ),
        _ => respond::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such labgate endpoint",
        ),
    }
}

/// An application request: public, or admitted; then rewritten and forwarded.
async fn proxy(
    app: &App,
    peer: Peer,
    hold: &ConnectionHold,
    mut req: Request<Incoming>,
    views: &PathViews,
) -> Response<Body> {
    let html = respond::wants_html(req.headers());
    let style = Style {
        html,
        sign_in: None,
    };
    // Which app: the request's own host, read once (when it matters); an app labgate does
    // not serve is refused before anything else (never another app's upstream or rules).
    let host = if app.config.reads_hosts() {
        match app.request_host(&req) {
            Ok(h) => Some(h),
            Err(why) => return bad_request(app, &req, "bad_host", why),
        }
    } else {
        None
    };
    let name = host.as_ref().map(|h| h.name.as_str());
    let upstream = app
        .upstream(peer.worker, name)
        .filter(|_| name.is_none_or(|n| app.config.server.hosts.serves(n)));
    let Some(upstream) = upstream else {
        // Only a host that is read can miss: one app's `[upstream]` serves every host.
        let Some(host) = host else {
            return Reject::Upstream { timeout: false }.render(&app.pages, &style);
        };
        // public_url's own host, serving no app itself: its home page says what it is
        // (where a sign-in without a destination lands), nothing else is there.
        let home = host.name == app.config.server.hosts.public
            && req.uri().path() == "/"
            && matches!(*req.method(), Method::GET | Method::HEAD);
        if home && html {
            let alert = crate::pages::Alert::new(crate::pages::text::AUTH_HOST);
            let page = app.pages.error(
                &app.config.server.app_name,
                &alert,
                Some(("Sign out", &app.url("/sign_out"))),
            );
            return respond::html(StatusCode::OK, page, &app.pages.csp);
        }
        return Reject::UnknownHost { host: host.name }.render(&app.pages, &style);
    };
    // A WebSocket over HTTP/2 is an extended CONNECT; it is judged as the GET it becomes.
    let method = if crate::proxy::is_h2_websocket(&req) {
        Method::GET
    } else {
        req.method().clone()
    };
    let (principal, cookies) = if app.policy().is_public(&method, name, views) {
        (None, Vec::new())
    } else {
        match auth::authorize(
            app,
            peer.addr.ip(),
            req.headers(),
            name,
            Some(views),
            None,
            CookieDelivery::Delivered,
        )
        .await
        {
            Ok(a) => (Some(a.principal), a.cookies),
            Err(reject) => {
                let navigation = html && matches!(*req.method(), Method::GET | Method::HEAD);
                let style = Style {
                    html,
                    sign_in: navigation.then(|| {
                        let rd = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
                        match &host {
                            Some(h) => app.sign_in_url_for(h, rd, SignIn::Entry),
                            None => app.sign_in_url(rd, SignIn::Entry),
                        }
                    }),
                };
                return reject.render(&app.pages, &style);
            }
        }
    };
    rewrite(app, peer, &mut req, principal.as_ref(), host.as_ref());
    let target = match req.uri().query() {
        Some(q) => format!("{}?{q}", views.forward),
        None => views.forward.clone(),
    };
    let sent = Instant::now();
    let forwarded = crate::trace::span(
        "upstream",
        crate::trace::Kind::Client,
        async move {
            // Within its span, the upstream's parent is the upstream call.
            if crate::trace::export::active().is_some() {
                crate::trace::apply_current(req.headers_mut());
            }
            upstream.forward(req, &target, hold).await
        },
        |r| match r {
            Ok(resp) => crate::trace::export::Outcome::ok(vec![opentelemetry::KeyValue::new(
                "http.response.status_code",
                i64::from(resp.status().as_u16()),
            )]),
            Err(_) => crate::trace::export::Outcome::failed("the upstream did not answer", vec![]),
        },
    );
    let resp = match forwarded.await {
        Ok(mut r) => {
            let took = sent.elapsed();
            app.metrics.upstream_seconds.observe(took.as_secs_f64());
            if crate::telemetry::access_enabled() {
                r.extensions_mut().insert(UpstreamTime(took));
            }
            if principal.is_some() {
                private_html(&mut r);
            }
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream request failed");
            let timeout = e.status() == StatusCode::GATEWAY_TIMEOUT;
            Reject::Upstream { timeout }.render(&app.pages, &style)
        }
    };
    respond::with_cookies(resp, cookies)
}

/// The rewrite phase (SPEC §4, §9): the client's `Connection`-nominated headers go first,
/// then every identity header, bearer credential and (from untrusted peers) URL and
/// client-address override the client sent; then labgate sets `Host` (HTTP/2),
/// `X-Forwarded-*`, `X-Real-IP` and the identity of `principal` for the app at `host`.
fn rewrite(
    app: &App,
    peer: Peer,
    req: &mut Request<Incoming>,
    principal: Option<&Principal>,
    host: Option<&crate::access::Host>,
) {
    let cfg = &app.config;
    let is_trusted = trusted(app, peer);
    // HTTP/2 carries the host in :authority; HTTP/1.1 upstreams require `Host`.
    if req.version() == http::Version::HTTP_2 {
        let authority = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(a) = authority {
            req.headers_mut().insert(HOST, a);
        }
    }
    if !req.headers().contains_key(HOST) {
        // HTTP/1.0 may leave it out (route() refused it from HTTP/1.1 and later): the upstream
        // is told public_url's host, never none.
        let public = &cfg.server.public_url;
        let authority = &public[url::Position::BeforeHost..url::Position::AfterPort];
        if let Ok(v) = HeaderValue::from_str(authority) {
            req.headers_mut().insert(HOST, v);
        }
    }
    let h = req.headers_mut();
    headers::strip_connection_nominated(h);
    headers::strip_client_supplied(h, &cfg.identity.assertion_header, is_trusted);
    headers::strip_bearer(h);
    let info = headers::client_info(h, peer.addr.ip(), &cfg.server.trusted_proxies, peer.tls);
    headers::set_forwarded(h, &info, peer.addr.ip());
    let many = cfg.server.hosts.many;
    if let Some(host) = host.filter(|_| many) {
        // The app is told the host it was chosen by, as labgate read it (an upstream routing
        // by `Host` must not see another spelling than the one judged), whatever a client
        // or front proxy wrote.
        if let Ok(v) = HeaderValue::from_str(&app.front_door(host).to_string()) {
            h.insert(HOST, v.clone());
            h.insert(X_FORWARDED_HOST, v);
        }
    }
    headers::strip_own_cookies(h, &cfg.session.cookie_name);
    if let Some(p) = principal {
        // One app: public_url's audience (SPEC §9, sidecar mode); many: the app's origin.
        let origin = host.filter(|_| many).map(|h| app.origin_of(h));
        set_identity(app, h, p, host.map(|h| h.name.as_str()), origin.as_deref());
    }
}

/// Sets the identity headers and the assertion of `p` towards the upstream of the app at
/// `host` (`origin`: its assertion audience, `None`: public_url's) (SPEC §4).
fn set_identity(
    app: &App,
    h: &mut http::HeaderMap,
    p: &Principal,
    host: Option<&str>,
    origin: Option<&str>,
) {
    let cfg = &app.config.identity;
    set_identity_headers(h, Some(p), HeaderSet::Upstream);
    // A person's GitLab tokens; bearer callers have none to pass on.
    if let Some(s) = p.session() {
        if cfg.pass_access_token.to(host) && !s.access_token.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&s.access_token) {
                h.insert(X_FORWARDED_ACCESS_TOKEN, v);
            }
        }
        if cfg.pass_authorization.to(host) {
            if let Some(v) = s
                .id_token
                .as_ref()
                .and_then(|id| HeaderValue::from_str(&format!("Bearer {id}")).ok())
            {
                h.insert(http::header::AUTHORIZATION, v);
            }
        }
    }
    if let Some(a) = app
        .signer
        .assertion(p, app.clock.now(), app.audience(origin))
    {
        h.insert(cfg.assertion_header.clone(), a);
    }
}

/// A page rendered for a signed-in user, without caching instructions of its own, must not
/// be kept by shared caches nor shown again from history after sign-out.
fn private_html(resp: &mut Response<Body>) {
    let html = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html && !resp.headers().contains_key(CACHE_CONTROL) {
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    }
}
