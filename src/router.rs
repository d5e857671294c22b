//! The one branch point: probes | labgate's own endpoints | public paths | protected paths.
//!
//! Request phases, in order: classify -> authenticate (session, revalidation) -> authorize
//! (access policy) -> rewrite headers -> forward -> log. Each phase is a call into one
//! module; nothing calls back up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::access::{Decision, PathViews};
use crate::app::{App, REFRESH_SHARE};
use crate::headers;
use crate::machine::Bearer;
use crate::oauth;
use crate::pages::Alert;
use crate::proxy::Body;
use crate::respond::{self, query_escape};
use crate::session::Session;

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

/// The request id: the trusted front proxy's `X-Request-Id` when it is sane, else a new one.
fn request_id<B>(app: &App, peer: Peer, req: &Request<B>) -> HeaderValue {
    let trusted = crate::headers::is_trusted(&app.config.server.trusted_proxies, peer.addr.ip());
    let given = req.headers().get("x-request-id").filter(|v| {
        trusted
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

/// Handles one request and writes its access-log line.
pub async fn handle(app: Arc<App>, peer: Peer, mut req: Request<Incoming>) -> Response<Body> {
    use tracing::Instrument;
    let start = Instant::now();
    let method = req.method().clone();
    // Only the path is logged: queries may carry codes or tokens.
    let path = req.uri().path().to_owned();
    let id = request_id(&app, peer, &req);
    req.headers_mut().insert("x-request-id", id.clone());
    let route_kind = if path == "/ping" || path == "/ready" {
        "probe"
    } else if path.starts_with(app.config.server.prefix.as_str()) {
        "labgate"
    } else {
        "app"
    };
    let span = tracing::info_span!("request", id = id.to_str().unwrap_or("-"));
    let mut resp = route(&app, peer, req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let upstream_ms = resp
        .extensions()
        .get::<UpstreamTime>()
        .map(|t| t.0.as_secs_f64() * 1000.0);
    span.in_scope(|| {
        tracing::info!(
            target: "labgate::access",
            method = %method,
            path = %path,
            status,
            ms = start.elapsed().as_secs_f64() * 1000.0,
            upstream_ms,
            "request"
        );
    });
    app.metrics
        .requests
        .get_or_create(&crate::metrics::RequestLabels {
            class: crate::metrics::class(status),
            route: route_kind,
        })
        .inc();
    resp.headers_mut().insert("x-request-id", id);
    resp
}

async fn route(app: &Arc<App>, peer: Peer, mut req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return respond::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "CONNECT is not supported",
        );
    }
    if req.version() <= http::Version::HTTP_11 && req.uri().scheme().is_some() {
        return respond::json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "absolute-form request targets are not accepted",
        );
    }
    let views = PathViews::new(req.uri().path());
    match views.forward.as_str() {
        "/ping" => return respond::text(StatusCode::OK, "OK"),
        "/ready" => return ready(app).await,
        _ => {}
    }
    let prefix = &app.config.server.prefix;
    if let Some(rest) = views.forward.strip_prefix(prefix.as_str()) {
        if rest.is_empty() || rest.starts_with('/') {
            return oauth::endpoint(app, peer, rest, req).await;
        }
    }

    // Whatever happens next, the client's own identity headers never pass.
    let identity = &app.config.identity;
    headers::strip_identity(
        req.headers_mut(),
        &identity.assertion_header,
        identity.pass_authorization,
    );

    if app.config.access.is_public(req.method(), &views) {
        return forward(app, peer, req, &views, None, Vec::new()).await;
    }
    match crate::machine::authenticate(app, req.headers()).await {
        Bearer::Absent => {}
        Bearer::Refused {
            status,
            code,
            message,
        } => return bearer_refused(status, code, &message),
        Bearer::Verified(s) => {
            // The credential was for labgate; the app gets the identity, not the token.
            req.headers_mut().remove(http::header::AUTHORIZATION);
            return match machine_decision(app, &s, &views) {
                Decision::Allow => forward(app, peer, req, &views, Some(&s), Vec::new()).await,
                Decision::Deny(why) => forbidden(app, &req, &s, &why),
            };
        }
    }
    let (session, cookies) = match authenticate(app, &req).await {
        Auth::Valid(s, cookies) => (s, cookies),
        Auth::None => return unauthenticated(app, &req, Vec::new()),
        Auth::Ended(cookies) => return unauthenticated(app, &req, cookies),
        Auth::Unavailable => return gitlab_unavailable(app, &req),
        Auth::StoreDown => return store_unavailable(app, &req),
    };
    match app.config.access.decide(&session.user, &views) {
        Decision::Allow => forward(app, peer, req, &views, Some(&session), cookies).await,
        Decision::Deny(why) => {
            tracing::info!(target: "labgate::audit", user = %session.user.username, rule = why.code(), path = %views.forward, "access denied");
            respond::with_cookies(forbidden(app, &req, &session, &why), cookies)
        }
    }
}

async fn ready(app: &App) -> Response<Body> {
    if !(app.gitlab.discovered() || app.gitlab.provider().await.is_ok()) {
        return respond::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "GitLab discovery not loaded",
        );
    }
    if app.sessions.ready().await.is_err() {
        return respond::text(StatusCode::SERVICE_UNAVAILABLE, "session store unreachable");
    }
    respond::text(StatusCode::OK, "OK")
}

/// The outcome of reading (and if due, revalidating) the session.
// Returned once per request and matched at once: boxing the session would only add an
// allocation to the hot path.
#[allow(clippy::large_enum_variant)]
pub enum Auth {
    /// No session cookie, or one that does not open.
    None,
    /// A valid session, plus cookies to set if it was refreshed.
    Valid(Arc<Session>, Vec<String>),
    /// The session is over (expired, or GitLab refused the refresh): cookies that clear it.
    Ended(Vec<String>),
    /// Revalidation is due and GitLab has been unreachable past the grace period.
    Unavailable,
    /// The session store (Redis) failed: nobody is admitted on a guess.
    StoreDown,
}

/// How long a replica waits for another one's revalidation of the same session.
const PEER_REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the session and revalidates it with GitLab when due: single-flight in this
/// process, and across replicas through the store's lock (Redis).
pub async fn authenticate<B>(app: &App, req: &Request<B>) -> Auth {
    let loaded = match app.sessions.load(req.headers(), false).await {
        Ok(Some(l)) => l,
        Ok(None) => return Auth::None,
        Err(e) => {
            tracing::error!(error = %e, "session store unavailable; failing closed");
            return Auth::StoreDown;
        }
    };
    let session = &loaded.session;
    let now = app.clock.now();
    let clear = || {
        app.cookies
            .clear_all(req.headers(), &app.config.session.cookie_name)
    };
    if session.expired(now) {
        let _ = app.sessions.end(&loaded).await;
        return Auth::Ended(clear());
    }
    let cfg = &app.config.session;
    if now.saturating_sub(session.validated) < cfg.revalidate.as_secs() {
        return Auth::Valid(loaded.session, Vec::new());
    }
    let slot = app.refresh.slot(&session.sid);
    let mut guard = slot.lock().await;
    let cookies_for = |fresh: &Session| {
        if app.sessions.is_redis() {
            Vec::new()
        } else {
            app.cookies.session_cookies(fresh, req.headers(), now)
        }
    };
    if let Some((fresh, at)) = guard.as_ref() {
        if fresh.validated > session.validated && at.elapsed() < REFRESH_SHARE {
            let fresh = fresh.clone();
            let cookies = cookies_for(&fresh);
            return Auth::Valid(fresh, cookies);
        }
    }
    let token = match app.sessions.lock(&loaded).await {
        Ok(Some(token)) => token,
        Ok(None) => return wait_for_peer(app, req, &loaded, now).await,
        Err(e) => {
            tracing::error!(error = %e, "session store unavailable; failing closed");
            return Auth::StoreDown;
        }
    };
    // Another replica may have finished a refresh just before we took the lock.
    if app.sessions.is_redis() {
        if let Ok(Some(l)) = app.sessions.load(req.headers(), true).await {
            if l.session.validated > session.validated {
                app.sessions.unlock(&loaded, &token).await;
                *guard = Some((l.session.clone(), Instant::now()));
                return Auth::Valid(l.session, Vec::new());
            }
        }
    }
    let result = oauth::revalidate(app, session, now).await;
    let outcome = match result {
        Ok(fresh) => match app
            .sessions
            .update(&loaded, &fresh, req.headers(), now)
            .await
        {
            Ok(cookies) => {
                app.metrics.revalidation("ok");
                let fresh = Arc::new(fresh);
                *guard = Some((fresh.clone(), Instant::now()));
                Auth::Valid(fresh, cookies)
            }
            Err(e) => {
                tracing::error!(error = %e, "storing the revalidated session failed; failing closed");
                app.metrics.store_errors.inc();
                Auth::StoreDown
            }
        },
        Err(oauth::RevalidateError::Ended(reason)) => {
            tracing::info!(target: "labgate::audit", user = %session.user.username, reason, "session ended at revalidation");
            app.metrics.revalidation("ended");
            let _ = app.sessions.end(&loaded).await;
            Auth::Ended(clear())
        }
        Err(oauth::RevalidateError::Unreachable(e)) => {
            app.metrics.revalidation("unreachable");
            within_grace(app, session, now, &e.to_string())
        }
    };
    app.sessions.unlock(&loaded, &token).await;
    outcome
}

/// Another replica holds the revalidation lock: wait for its result in the store.
async fn wait_for_peer<B>(
    app: &App,
    req: &Request<B>,
    loaded: &crate::session::Loaded,
    now: u64,
) -> Auth {
    let start = Instant::now();
    while start.elapsed() < PEER_REFRESH_WAIT {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        match app.sessions.load(req.headers(), true).await {
            Ok(Some(l)) if l.session.validated > loaded.session.validated => {
                return Auth::Valid(l.session, Vec::new())
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Auth::Ended(
                    app.cookies
                        .clear_all(req.headers(), &app.config.session.cookie_name),
                )
            }
            Err(_) => return Auth::StoreDown,
        }
    }
    within_grace(
        app,
        &loaded.session,
        now,
        "another replica's revalidation did not finish in time",
    )
}

/// GitLab could not confirm the session: keep it within the grace period, then fail closed.
fn within_grace(app: &App, session: &Arc<Session>, now: u64, why: &str) -> Auth {
    let cfg = &app.config.session;
    let overdue = now.saturating_sub(session.validated);
    if overdue < cfg.revalidate.as_secs() + cfg.revalidate_grace.as_secs() {
        tracing::warn!(user = %session.user.username, error = %why, "cannot revalidate; keeping the session within the grace period");
        Auth::Valid(session.clone(), Vec::new())
    } else {
        tracing::warn!(user = %session.user.username, error = %why, "cannot revalidate past the grace period; failing closed");
        Auth::Unavailable
    }
}

/// CI jobs were admitted by `[[machine.allow]]`; access-token users face the access rules.
pub fn machine_decision(app: &App, s: &Session, views: &PathViews) -> Decision {
    if s.kind.as_deref() == Some("ci_job") {
        Decision::Allow
    } else {
        app.config.access.decide(&s.user, views)
    }
}

/// A refused bearer credential: JSON with the reason, never a redirect.
pub fn bearer_refused(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let mut r = respond::json_error(status, code, message);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"labgate\", error=\"invalid_token\""),
        );
    }
    r
}

/// Not signed in: browsers go to the sign-in flow, APIs get 401 JSON.
fn unauthenticated<B>(app: &App, req: &Request<B>, cookies: Vec<String>) -> Response<Body> {
    let resp = if respond::wants_html(req.headers())
        && matches!(*req.method(), Method::GET | Method::HEAD)
    {
        let rd = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let endpoint = if app.config.server.skip_sign_in_page {
            "/start"
        } else {
            "/sign_in"
        };
        respond::redirect(&format!("{}?rd={}", app.url(endpoint), query_escape(rd)))
    } else {
        let mut r = respond::json_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in with GitLab first",
        );
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"labgate\""),
        );
        r
    };
    respond::with_cookies(resp, cookies)
}

/// A 503 page (browsers) or JSON (APIs): labgate cannot decide, so it admits no one.
fn unavailable<B>(
    app: &App,
    req: &Request<B>,
    title: &str,
    code: &str,
    message: &str,
) -> Response<Body> {
    if respond::wants_html(req.headers()) {
        let alert = Alert {
            message,
            hints: &[],
        };
        respond::html(
            StatusCode::SERVICE_UNAVAILABLE,
            app.pages.error(title, &alert, None),
            &app.pages.csp,
        )
    } else {
        respond::json_error(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

/// The session store is down: a clear 503, never an admission.
pub fn store_unavailable<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let msg = "labgate cannot reach its session store right now, so it cannot check who you are. Try again in a moment.";
    unavailable(
        app,
        req,
        "Sessions are unavailable",
        "session_store_unavailable",
        msg,
    )
}

fn gitlab_unavailable<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let msg =
        "labgate cannot confirm your access with GitLab right now. Try again in a few minutes.";
    unavailable(app, req, "GitLab is unreachable", "gitlab_unreachable", msg)
}

/// The 403 answer for a signed-in user the rules turn away.
pub fn forbidden<B>(
    app: &App,
    req: &Request<B>,
    session: &Session,
    why: &crate::access::Deny,
) -> Response<Body> {
    if respond::wants_html(req.headers()) {
        let page = app.pages.forbidden(
            &session.user.username,
            &why.explain(),
            &app.url("/sign_out"),
        );
        respond::html(StatusCode::FORBIDDEN, page, &app.pages.csp)
    } else {
        respond::json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({
                "error": "forbidden",
                "reason": why.code(),
                "message": why.explain(),
                "user": session.user.username,
            }),
        )
    }
}

/// Rewrites the request for the upstream and forwards it.
async fn forward(
    app: &App,
    peer: Peer,
    mut req: Request<Incoming>,
    views: &PathViews,
    session: Option<&Session>,
    cookies: Vec<String>,
) -> Response<Body> {
    let cfg = &app.config;
    let html = respond::wants_html(req.headers());
    let info = headers::client_info(
        req.headers(),
        peer.addr.ip(),
        &cfg.server.trusted_proxies,
        peer.tls,
    );
    let h = req.headers_mut();
    headers::set_forwarded(h, &info, peer.addr.ip());
    headers::strip_own_cookies(h, &cfg.session.cookie_name);
    if let Some(s) = session {
        set_identity(app, h, s);
    }
    let target = match req.uri().query() {
        Some(q) => format!("{}?{q}", views.forward),
        None => views.forward.clone(),
    };
    let sent = Instant::now();
    let upstream = &app.upstreams[peer.worker % app.upstreams.len()];
    let resp = match upstream.forward(req, &target).await {
        Ok(mut r) => {
            let took = sent.elapsed();
            app.metrics.upstream_seconds.observe(took.as_secs_f64());
            r.extensions_mut().insert(UpstreamTime(took));
            if session.is_some() {
                private_html(&mut r);
            }
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream request failed");
            upstream_error(app, e.status(), html)
        }
    };
    respond::with_cookies(resp, cookies)
}

/// A page rendered for a signed-in user, without caching instructions of its own, must not
/// be kept by shared caches nor shown again from history after sign-out.
fn private_html(resp: &mut Response<Body>) {
    let html = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html && !resp.headers().contains_key(http::header::CACHE_CONTROL) {
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
}

/// The identity a session carries, as header values: (field, value) with fields `user`,
/// `preferred-username`, `email` (only when verified), `groups` (comma-separated; GitLab
/// paths never contain commas) and `user-id`. The proxy and forward-auth name them
/// differently; the values are the same.
pub fn identity_values(u: &crate::access::User) -> [(&'static str, String); 5] {
    let email = if u.email_verified {
        u.email.clone().unwrap_or_default()
    } else {
        String::new()
    };
    [
        ("user", u.username.clone()),
        ("preferred-username", u.username.clone()),
        ("email", email),
        ("groups", u.groups.join(",")),
        ("user-id", u.id.to_string()),
    ]
}

/// Sets the identity headers and the assertion from the session (SPEC §4).
pub fn set_identity(app: &App, h: &mut http::HeaderMap, s: &Session) {
    let cfg = &app.config.identity;
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    for (field, value) in identity_values(&s.user) {
        let name = match field {
            "user" => "x-forwarded-user",
            "preferred-username" => "x-forwarded-preferred-username",
            "email" => "x-forwarded-email",
            "groups" => "x-forwarded-groups",
            _ => "x-labgate-user-id",
        };
        put(name, &value);
    }
    if let Some(kind) = &s.kind {
        put("x-labgate-kind", kind);
    }
    if cfg.pass_access_token {
        put("x-forwarded-access-token", &s.access_token);
    }
    if cfg.pass_authorization {
        if let Some(id) = &s.id_token {
            put("authorization", &format!("Bearer {id}"));
        }
    }
    if let Some(a) = app.signer.assertion(s, app.clock.now()) {
        h.insert(cfg.assertion_header.clone(), a);
    }
}

fn upstream_error(app: &App, status: StatusCode, html: bool) -> Response<Body> {
    let (title, msg) = if status == StatusCode::GATEWAY_TIMEOUT {
        (
            "The application did not answer in time",
            "The application behind labgate took too long to answer. Try again in a moment.",
        )
    } else {
        (
            "The application is unreachable",
            "labgate could not reach the application it protects. Try again in a moment.",
        )
    };
    let mut resp = if html {
        respond::html(
            status,
            app.pages.error(
                title,
                &Alert {
                    message: msg,
                    hints: &[],
                },
                None,
            ),
            &app.pages.csp,
        )
    } else {
        let code = if status == StatusCode::GATEWAY_TIMEOUT {
            "upstream_timeout"
        } else {
            "upstream_unreachable"
        };
        respond::json_error(status, code, msg)
    };
    resp.headers_mut()
        .insert("x-labgate-error", HeaderValue::from_static("upstream"));
    resp
}
