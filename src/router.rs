//! The one branch point and the whole endpoint table, then the phases of an application
//! request in order: classify -> authenticate -> decide -> rewrite -> proxy -> log.
//!
//! Every entry point that admits someone (the proxy, `/oauth2/auth`, `/oauth2/userinfo`)
//! goes through [`admit`]: [`crate::auth`] says who is calling, [`crate::access`] decides,
//! and any refusal is a [`Reject`] rendered in one place. Nothing below imports this module.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, HOST, IF_NONE_MATCH};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::access::{Decision, PathViews, Rules};
use crate::app::{App, SignIn};
use crate::auth::{self, Authenticated, CookieDelivery};
use crate::config::FrontProxy;
use crate::forward_auth::{self, CookiePath, Original};
use crate::headers;
use crate::identity::{set_identity_headers, HeaderSet, Principal};
use crate::proxy::Body;
use crate::reject::{Reject, Style};
use crate::respond::{self, query_param};
use crate::{admin, signin};

/// Who the request is from, as far as the connection tells.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// TCP peer address.
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Which worker runtime serves the connection.
    pub worker: usize,
}

/// How long the upstream took to send its response head (a response extension, for the
/// access log).
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTime(pub std::time::Duration);

/// Whether the peer is one of `server.trusted_proxies`.
fn trusted(app: &App, peer: Peer) -> bool {
    headers::is_trusted(&app.config.server.trusted_proxies, peer.addr.ip())
}

/// The request id: the trusted front proxy's `X-Request-Id` when it is sane, else a new one.
fn request_id<B>(app: &App, peer: Peer, req: &Request<B>) -> HeaderValue {
    let given = req.headers().get("x-request-id").filter(|v| {
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
    HeaderValue::from_str(&format!("{prefix}-{n:x}")).unwrap_or(HeaderValue::from_static("-"))
}

/// Handles one request and writes its access-log line (docs/observability.md): who
/// (username, principal kind), from where (the client address labgate worked out), what
/// (method, path without the query), and how it went (status, ms, upstream ms, cause).
pub async fn handle(app: Arc<App>, peer: Peer, mut req: Request<Incoming>) -> Response<Body> {
    use tracing::Instrument;
    let start = Instant::now();
    let id = request_id(&app, peer, &req);
    req.headers_mut().insert("x-request-id", id.clone());
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
    let mut routed = std::pin::pin!(crate::telemetry::with_caller(
        route(&app, peer, req).instrument(span.clone())
    ));
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
                "request"
            );
        });
    }
    app.metrics
        .requests
        .get_or_create(&crate::metrics::RequestLabels {
            class: crate::metrics::class(status),
            route: route_kind,
        })
        .inc();
    app.metrics.request_took(kind, route_kind, took);
    resp.headers_mut().insert("x-request-id", id);
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
async fn route(app: &Arc<App>, peer: Peer, req: Request<Incoming>) -> Response<Body> {
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
    if envoy_form_served(app) {
        if let Some(suffix) = envoy_suffix(app, &req) {
            return forward_auth(app, peer, &req, Some(&suffix)).await;
        }
    }
    let views = PathViews::new(req.uri().path());
    if let Some(why) = views.refused() {
        return bad_request(app, &req, "bad_path", why);
    }
    match views.forward.as_str() {
        "/ping" => return admin::ping(),
        "/ready" => return admin::ready(app).await,
        _ => {}
    }
    let prefix = app.config.server.prefix.as_str();
    if let Some(rest) = views.forward.strip_prefix(prefix) {
        if rest.is_empty() || rest.starts_with('/') {
            return endpoint(app, peer, rest, req).await;
        }
    }
    proxy(app, peer, req, &views).await
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
    match (method, rest) {
        (Method::GET | Method::HEAD, "/sign_in") => {
            let original = read_original(app, peer, &req, "").ok().flatten();
            signin::sign_in(app, &req, original.as_ref())
        }
        (Method::GET | Method::HEAD, "/start") => signin::start(app, &req).await,
        (Method::GET, "/callback") => signin::callback(app, &req).await,
        (Method::GET | Method::POST, "/sign_out") => signin::sign_out(app, &req).await,
        (Method::GET | Method::HEAD, "/userinfo") => userinfo(app, peer, &req).await,
        (Method::GET | Method::HEAD, "/jwks.json") => jwks(app, &req),
        (Method::GET, "/metrics")
            if app.config.server.metrics_public && app.config.server.metrics_listen.is_none() =>
        {
            admin::metrics_response(app)
        }
        (Method::GET | Method::HEAD, "/auth") => forward_auth(app, peer, &req, None).await,
        (
            _,
            "/sign_in" | "/start" | "/callback" | "/sign_out" | "/userinfo" | "/jwks.json"
            | "/auth",
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

/// Whether `{prefix}/auth/<original path>` (Envoy's HTTP ext_authz) is served.
fn envoy_form_served(app: &App) -> bool {
    matches!(
        app.config.server.forward_auth_source,
        FrontProxy::Auto | FrontProxy::Envoy
    )
}

/// The original path and query Envoy appended to `{prefix}/auth`, taken from the raw
/// request target (its dot segments are the original's, judged like any other path).
fn envoy_suffix<B>(app: &App, req: &Request<B>) -> Option<String> {
    let base = app.url("/auth");
    let path = req.uri().path().strip_prefix(base.as_str())?;
    if !path.starts_with('/') || req.method() == Method::CONNECT {
        return None;
    }
    Some(match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    })
}

/// The original request a trusted front proxy names, from the one configured source.
fn read_original<B>(
    app: &App,
    peer: Peer,
    req: &Request<B>,
    suffix: &str,
) -> Result<Option<Original>, forward_auth::OriginalError> {
    forward_auth::original(
        req.headers(),
        req.method(),
        suffix,
        app.config.server.forward_auth_source,
        trusted(app, peer),
    )
}

/// Authenticate -> decide: the one admission every entry point uses. `paths` is `None`
/// when the original request is unknown; `narrowing` is a forward-auth location's.
async fn admit(
    app: &App,
    peer: Peer,
    headers: &http::HeaderMap,
    paths: Option<&PathViews>,
    narrowing: Option<&Rules>,
    delivery: CookieDelivery,
) -> Result<Authenticated, Reject> {
    let client = headers::client_ip(headers, peer.addr.ip(), &app.config.server.trusted_proxies);
    let a = auth::authenticate(app, headers, client, delivery).await?;
    crate::telemetry::record_caller(&a.principal);
    match app
        .config
        .access
        .decide(a.principal.subject(), paths, narrowing)
    {
        Decision::Allow => Ok(a),
        Decision::Deny(deny) => {
            tracing::info!(
                target: "labgate::audit",
                user = %a.principal.username(),
                kind = a.principal.kind(),
                rule = deny.code(),
                path = paths.map_or("(unknown)", |p| p.forward.as_str()),
                "access denied"
            );
            Err(Reject::Forbidden {
                name: a.principal.username().to_owned(),
                deny,
                cookies: a.cookies,
            })
        }
    }
}

/// An application request: public, or admitted; then rewritten and forwarded.
async fn proxy(
    app: &App,
    peer: Peer,
    mut req: Request<Incoming>,
    views: &PathViews,
) -> Response<Body> {
    let html = respond::wants_html(req.headers());
    // A WebSocket over HTTP/2 is an extended CONNECT; it is judged as the GET it becomes.
    let method = if crate::proxy::is_h2_websocket(&req) {
        Method::GET
    } else {
        req.method().clone()
    };
    let (principal, cookies) = if app.config.access.is_public(&method, views) {
        (None, Vec::new())
    } else {
        match admit(
            app,
            peer,
            req.headers(),
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
                        app.sign_in_url(rd, SignIn::Entry)
                    }),
                };
                return reject.render(&app.pages, &style);
            }
        }
    };
    rewrite(app, peer, &mut req, principal.as_ref());
    let target = match req.uri().query() {
        Some(q) => format!("{}?{q}", views.forward),
        None => views.forward.clone(),
    };
    let sent = Instant::now();
    let resp = match app.upstream(peer.worker).forward(req, &target).await {
        Ok(mut r) => {
            let took = sent.elapsed();
            app.metrics.upstream_seconds.observe(took.as_secs_f64());
            r.extensions_mut().insert(UpstreamTime(took));
            if principal.is_some() {
                private_html(&mut r);
            }
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream request failed");
            let timeout = e.status() == StatusCode::GATEWAY_TIMEOUT;
            Reject::Upstream { timeout }.render(
                &app.pages,
                &Style {
                    html,
                    sign_in: None,
                },
            )
        }
    };
    respond::with_cookies(resp, cookies)
}

/// The rewrite phase (SPEC §4, §9): the client's `Connection`-nominated headers go first,
/// then every identity header, bearer credential and (from untrusted peers) URL and
/// client-address override the client sent; then labgate sets `Host` (HTTP/2),
/// `X-Forwarded-*`, `X-Real-IP` and the identity of `principal`.
fn rewrite(app: &App, peer: Peer, req: &mut Request<Incoming>, principal: Option<&Principal>) {
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
    headers::strip_own_cookies(h, &cfg.session.cookie_name);
    if let Some(p) = principal {
        set_identity(app, h, p);
    }
}

/// Sets the identity headers and the assertion of `p` towards the upstream (SPEC §4).
fn set_identity(app: &App, h: &mut http::HeaderMap, p: &Principal) {
    let cfg = &app.config.identity;
    set_identity_headers(h, Some(p), HeaderSet::Upstream);
    let s = p.session();
    if cfg.pass_access_token && !s.access_token.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&s.access_token) {
            h.insert("x-forwarded-access-token", v);
        }
    }
    if cfg.pass_authorization {
        if let Some(v) = s
            .id_token
            .as_ref()
            .and_then(|id| HeaderValue::from_str(&format!("Bearer {id}")).ok())
        {
            h.insert(http::header::AUTHORIZATION, v);
        }
    }
    if let Some(a) = app.signer.assertion(p, app.clock.now()) {
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

/// `{prefix}/auth` (nginx, ingress-nginx, Traefik, Caddy: 202) and
/// `{prefix}/auth/<original path>` (Envoy: 200): the same admission as the proxy, for the
/// original request the front proxy names.
async fn forward_auth<B>(
    app: &App,
    peer: Peer,
    req: &Request<B>,
    envoy: Option<&str>,
) -> Response<Body> {
    let html = respond::wants_html(req.headers());
    let original = match read_original(app, peer, req, envoy.unwrap_or("")) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "forward-auth request refused");
            return Reject::BadRequest {
                code: "ambiguous_original_request",
                message: e.to_string(),
            }
            .render(&app.pages, &Style::default());
        }
    };
    // Envoy appends the original query to the check request: it is the app's, not ours.
    let query = if envoy.is_some() {
        None
    } else {
        req.uri().query()
    };
    let narrowing = match forward_auth::narrowing_lists(query)
        .map(|[users, groups, ci]| crate::config::narrowing(&users, &groups, &ci))
        .transpose()
    {
        Ok(n) => n,
        Err(e) => {
            return Reject::BadRequest {
                code: "bad_request",
                message: e,
            }
            .render(&app.pages, &Style::default())
        }
    };
    let views = original.as_ref().map(Original::views);
    if let Some(why) = views.as_ref().and_then(PathViews::refused) {
        return Reject::BadRequest {
            code: "bad_path",
            message: why.to_owned(),
        }
        .render(&app.pages, &Style::default());
    }
    if let (
        Some(Original {
            method: Some(m), ..
        }),
        Some(v),
    ) = (&original, &views)
    {
        if app.config.access.is_public(m, v) {
            return granted(app, None, Vec::new(), envoy.is_some());
        }
    }
    // Traefik, Caddy and Envoy hand a non-2xx answer to the browser: `?mode=redirect` (always
    // for Envoy, whose query is the app's) turns "not signed in" into a redirect to the
    // sign-in page, for a browser navigation.
    let redirect_mode =
        envoy.is_some() || query_param(query, "mode").is_some_and(|m| m == "redirect");
    let navigation = html
        && redirect_mode
        && original
            .as_ref()
            .is_some_and(|o| matches!(o.method, Some(Method::GET | Method::HEAD)));
    // Where the browser was going, if labgate may send it there.
    let destination = || original.as_ref().and_then(|o| app.original_destination(o));
    // Caddy and Envoy Gateway drop Set-Cookie from a 2xx auth answer (and with `auto`,
    // Traefik's and Caddy's shared headers cannot tell which is asking): a rotated session
    // cookie reaches the browser only on a redirect back to the same page, so only
    // navigations revalidate. A default never loses a session.
    let cookie_path = if envoy.is_some() {
        CookiePath::Redirect
    } else {
        CookiePath::of(app.config.server.forward_auth_source, original.as_ref())
    };
    let cookie_on_2xx = cookie_path != CookiePath::Redirect;
    let delivery = if cookie_on_2xx || navigation {
        CookieDelivery::Delivered
    } else {
        CookieDelivery::Dropped
    };
    match admit(
        app,
        peer,
        req.headers(),
        views.as_ref(),
        narrowing.as_ref(),
        delivery,
    )
    .await
    {
        Ok(a) if !cookie_on_2xx && !a.cookies.is_empty() => match destination() {
            Some(back) => {
                respond::with_cookies(respond::redirect(&app.absolute_url(&back)), a.cookies)
            }
            None => granted(app, Some(&a.principal), Vec::new(), envoy.is_some()),
        },
        Ok(a) => {
            let mut resp = granted(app, Some(&a.principal), a.cookies, envoy.is_some());
            if cookie_path == CookiePath::Numbered {
                forward_auth::number_cookies(resp.headers_mut());
            }
            resp
        }
        Err(reject) => {
            let style = Style {
                html,
                sign_in: navigation.then(|| {
                    let rd = destination().unwrap_or_else(|| "/".into());
                    app.sign_in_url(&rd, SignIn::EntryAbsolute)
                }),
            };
            reject.render(&app.pages, &style)
        }
    }
}

/// An allowing forward-auth answer: 202 (200 for Envoy, which treats only 200 as allow)
/// with every identity header present.
fn granted(
    app: &App,
    principal: Option<&Principal>,
    cookies: Vec<String>,
    envoy: bool,
) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = if envoy {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let cfg = &app.config.identity;
    let assertion = principal.and_then(|p| app.signer.assertion(p, app.clock.now()));
    let token = cfg
        .pass_access_token
        .then(|| principal.map_or("", |p| p.session().access_token.as_str()));
    forward_auth::answer_headers(
        resp.headers_mut(),
        principal,
        &cfg.assertion_header,
        assertion,
        token,
    );
    respond::with_cookies(resp, cookies)
}

/// `GET /userinfo`: the caller's identity as JSON, after the same admission as any
/// request to this path.
async fn userinfo<B>(app: &App, peer: Peer, req: &Request<B>) -> Response<Body> {
    let views = PathViews::new(req.uri().path());
    match admit(
        app,
        peer,
        req.headers(),
        Some(&views),
        None,
        CookieDelivery::Delivered,
    )
    .await
    {
        Ok(a) => {
            let u = &a.principal.session().user;
            let body = serde_json::json!({
                "user": u.username,
                "preferred_username": u.username,
                "user_id": u.id,
                "name": u.name,
                "email": if u.email_verified { u.email.clone() } else { None },
                "email_verified": u.email_verified,
                "groups": u.groups,
                "kind": a.principal.kind(),
            });
            respond::with_cookies(respond::json(StatusCode::OK, &body), a.cookies)
        }
        Err(reject) => reject.render(&app.pages, &Style::default()),
    }
}

/// `GET /jwks.json`: the keys that verify the assertion, with an ETag.
fn jwks<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let (body, etag) = app.signer.jwks();
    let matches = req
        .headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.trim() == "*" || t.trim().trim_start_matches("W/") == etag.to_str().unwrap_or("")
        });
    let mut resp = if matches {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(body));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    };
    resp.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    resp.headers_mut().insert(ETAG, etag);
    resp
}
