//! The sign-in flow's endpoints under the prefix: `/sign_in`, `/start`, `/callback` and
//! `/sign_out` (SPEC §3). GitLab is spoken to only through [`crate::oauth::gitlab`]; `rd`
//! is validated only by [`crate::oauth::redirect`].

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};

use crate::access::Decision;
use crate::app::App;
use crate::app::SignIn;
use crate::oauth::gitlab::{GitlabError, Tokens};
use crate::pages::Alert;
use crate::proxy::Body;
use crate::reject::{Reject, Style};
use crate::respond::{self, query_param};
use crate::session::{FlowState, Session, SESSION_VERSION};

/// Most sign-in flows (one cookie each) a browser keeps at once: several tabs signing in
/// together still work, and a flood of `/start` links cannot fill the Cookie header.
const MAX_FLOWS: usize = 3;

/// Longest post-sign-in destination kept in a flow cookie, in bytes.
const MAX_FLOW_RD: usize = 2048;

/// The requested post-sign-in destination: `?rd=`, else `X-Auth-Request-Redirect` (what
/// oauth2-proxy's documented nginx and ingress-nginx set-ups send). Unvalidated.
fn requested_rd<B>(req: &Request<B>) -> Option<String> {
    query_param(req.uri().query(), "rd").or_else(|| {
        req.headers()
            .get("x-auth-request-redirect")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// The validated destination of a request (through the one redirect validator), or `/`.
fn rd_of<B>(app: &App, req: &Request<B>) -> String {
    requested_rd(req)
        .and_then(|rd| app.redirect_target(&rd))
        .unwrap_or_else(|| "/".to_owned())
}

fn sign_in_page(
    app: &App,
    rd: &str,
    status: StatusCode,
    alert: Option<&Alert<'_>>,
) -> Response<Body> {
    let start = app.sign_in_url(rd, SignIn::Start);
    respond::html(status, app.pages.sign_in(&start, alert), &app.pages.csp)
}

/// `GET /sign_in`. `original` is the original request a trusted front proxy names (nginx's
/// `error_page 401 = /oauth2/sign_in` keeps the user's URL there), read by the router from
/// the one configured source.
pub fn sign_in<B>(
    app: &App,
    req: &Request<B>,
    original: Option<&crate::forward_auth::Original>,
) -> Response<Body> {
    // The sign-in page is for browsers; API clients (also those sent here by nginx's
    // `error_page 401`) get the 401 they would get anywhere else.
    if !respond::wants_html(req.headers()) {
        return Reject::Unauthenticated { clear: Vec::new() }.render(&app.pages, &Style::default());
    }
    // Behind nginx (`error_page 401 = /oauth2/sign_in`) the original URL comes in a header.
    let rd = match requested_rd(req) {
        Some(rd) => app.redirect_target(&rd),
        None => original.and_then(|o| app.original_destination(o)),
    }
    .unwrap_or_else(|| "/".to_owned());
    if app.config.server.skip_sign_in_page {
        return respond::redirect(&app.sign_in_url(&rd, SignIn::Start));
    }
    sign_in_page(app, &rd, StatusCode::OK, None)
}

/// `GET /start`: begins the authorization-code flow.
pub async fn start<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let mut rd = rd_of(app, req);
    if rd.len() > MAX_FLOW_RD {
        // A destination this long would make the flow cookie (and the Cookie header) huge.
        tracing::info!(len = rd.len(), "sign-in destination too long; using /");
        rd = "/".to_owned();
    }
    let auth = match app.gitlab.authorize().await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot start sign-in: GitLab discovery failed");
            return gitlab_failed(app, &rd, &e);
        }
    };
    let flow = FlowState {
        state: auth.state,
        verifier: auth.verifier,
        nonce: auth.nonce,
        rd,
        started: app.clock.now(),
    };
    let Some(cookie) = app.cookies.flow_cookie(&flow) else {
        return respond::json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot seal the sign-in state",
        );
    };
    // Sign-ins in several tabs each keep their flow; beyond a few the oldest go.
    let mut cookies = app.cookies.prune_flows(req.headers(), MAX_FLOWS - 1);
    cookies.push(cookie);
    respond::with_cookies(respond::redirect(&auth.url), cookies)
}

fn gitlab_failed(app: &App, rd: &str, e: &GitlabError) -> Response<Body> {
    let (status, message) = match e {
        GitlabError::Refused { code, .. } if code == "invalid_grant" => (
            StatusCode::BAD_REQUEST,
            "GitLab did not accept the sign-in code (it was already used, expired, or issued for another request). Please sign in again.".to_owned(),
        ),
        GitlabError::Refused { code, .. } if code == "invalid_client" => (
            StatusCode::BAD_GATEWAY,
            "GitLab did not accept labgate's application credentials. The administrator should check gitlab.client_id and the client secret (`labgate check --online`).".to_owned(),
        ),
        GitlabError::Refused { code, .. } => (StatusCode::BAD_GATEWAY, format!("GitLab refused the sign-in ({code}).")),
        GitlabError::BadIdToken(_) => (
            StatusCode::BAD_GATEWAY,
            "GitLab's answer could not be verified, so the sign-in was refused. Please try again.".to_owned(),
        ),
        GitlabError::Unreachable(_) | GitlabError::Api { .. } => (
            StatusCode::BAD_GATEWAY,
            "GitLab could not be reached. Please try again in a moment.".to_owned(),
        ),
    };
    sign_in_page(
        app,
        rd,
        status,
        Some(&Alert {
            message: &message,
            hints: &[],
        }),
    )
}

/// `GET /callback`: completes the flow.
pub async fn callback<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let q = req.uri().query();
    let Some(state) = query_param(q, "state") else {
        let alert = Alert {
            message:
                "The sign-in response from GitLab is incomplete (no state). Please sign in again.",
            hints: &[],
        };
        return sign_in_page(app, "/", StatusCode::BAD_REQUEST, Some(&alert));
    };
    let now = app.clock.now();
    let flow = match app.cookies.read_flow(req.headers(), &state, now) {
        Ok(f) => f,
        Err(crate::session::FlowCookie::Missing) => {
            app.metrics.sign_in("bad_state");
            let mut hints = Vec::new();
            if app.config.session.cookie_secure {
                hints.push("labgate sets Secure cookies (session.cookie_secure = true): if this address is plain http, browsers drop them. Use https, or cookie_secure = false for local testing.".to_owned());
            }
            hints.push(format!(
                "The address in the browser is not {} (server.public_url), or session.cookie_domain does not match it.",
                app.config.server.public_origin
            ));
            hints.push("The browser blocks cookies for this site, or the sign-in took longer than 10 minutes.".to_owned());
            tracing::warn!("callback without its sign-in cookie");
            let alert = Alert { message: "The sign-in could not be completed: your browser did not send back labgate's sign-in cookie. Likely causes:", hints: &hints };
            return respond::html(
                StatusCode::BAD_REQUEST,
                app.pages.error(
                    "Sign-in cookie missing",
                    &alert,
                    Some(("Try again", &app.url("/sign_in"))),
                ),
                &app.pages.csp,
            );
        }
        Err(_) => {
            app.metrics.sign_in("bad_state");
            let alert = Alert { message: "This sign-in link is not valid any more (it expired or was already used). Please sign in again.", hints: &[] };
            return sign_in_page(app, "/", StatusCode::BAD_REQUEST, Some(&alert));
        }
    };
    let clear_flow = app.cookies.clear_flow(&state);
    if query_param(q, "error").as_deref() == Some("access_denied") {
        app.metrics.sign_in("cancelled");
    } else if query_param(q, "error").is_some() {
        app.metrics.sign_in("gitlab_error");
    }
    let rd = flow.rd.clone();
    if let Some(error) = query_param(q, "error") {
        let message = if error == "access_denied" {
            "You cancelled the sign-in at GitLab. Sign in again when you are ready.".to_owned()
        } else {
            // Debug formatting escapes what the client put in the query: no forged log lines.
            tracing::warn!(error = ?error, description = ?query_param(q, "error_description"), "GitLab returned an error to the callback");
            format!(
                "GitLab could not complete the sign-in ({}).",
                error.chars().take(64).collect::<String>()
            )
        };
        let status = if error == "access_denied" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_GATEWAY
        };
        return respond::with_cookies(
            sign_in_page(
                app,
                &rd,
                status,
                Some(&Alert {
                    message: &message,
                    hints: &[],
                }),
            ),
            vec![clear_flow],
        );
    }
    // RFC 9207: when GitLab names the issuer, it must be ours (mix-up defence).
    if let Some(iss) = query_param(q, "iss") {
        let ok = app
            .gitlab
            .provider()
            .await
            .map(|p| p.issuer == iss)
            .unwrap_or(false);
        if !ok {
            let alert = Alert {
                message: "The sign-in response came from an unexpected issuer and was refused.",
                hints: &[],
            };
            return respond::with_cookies(
                sign_in_page(app, &rd, StatusCode::BAD_REQUEST, Some(&alert)),
                vec![clear_flow],
            );
        }
    }
    let Some(code) = query_param(q, "code") else {
        let alert = Alert {
            message: "The sign-in response from GitLab has no code. Please sign in again.",
            hints: &[],
        };
        return respond::with_cookies(
            sign_in_page(app, &rd, StatusCode::BAD_REQUEST, Some(&alert)),
            vec![clear_flow],
        );
    };
    let result = async {
        let tokens = app.gitlab.exchange_code(&code, &flow.verifier).await?;
        let user = app
            .gitlab
            .load_user(
                &tokens,
                Some(&flow.nonce),
                &app.config.access.project_paths(),
            )
            .await?;
        Ok::<_, GitlabError>((tokens, user))
    }
    .await;
    let (tokens, user) = match result {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "sign-in failed at the callback");
            app.metrics.sign_in("gitlab_error");
            return respond::with_cookies(gitlab_failed(app, &rd, &e), vec![clear_flow]);
        }
    };
    let session = new_session(app, tokens, user, now);
    // A sign-in never inherits or keeps a previous session of this browser.
    if let Ok(Some(previous)) = app.sessions.load(req.headers(), true).await {
        let _ = app.sessions.end(&previous).await;
    }
    if let Decision::Deny(deny) = app.config.access.admit(&session.user) {
        // No session is kept for someone the rules refuse: on gitlab.com that is anyone,
        // and nothing of theirs should accumulate in the store. GitLab's token goes back.
        tracing::info!(target: "labgate::audit", user = %session.user.username, rule = deny.code(), "sign-in denied");
        app.metrics.sign_in("denied");
        app.gitlab.revoke(&session.access_token).await;
        let refusal = Reject::Forbidden {
            name: session.user.username.clone(),
            deny,
            cookies: vec![clear_flow],
        };
        let style = Style {
            html: true,
            sign_in: None,
        };
        return refusal.render(&app.pages, &style);
    }
    let mut cookies = vec![clear_flow];
    match app.sessions.create(&session, req.headers(), now).await {
        Ok(c) if cookie_bytes(&c) > MAX_SESSION_COOKIE_BYTES => {
            // Every later request would carry this, and servers refuse big Cookie headers:
            // say so instead.
            tracing::warn!(user = %session.user.username, bytes = cookie_bytes(&c), groups = session.user.groups.len(), "session too large for the cookie store");
            app.metrics.sign_in("session_too_large");
            let alert = Alert {
                message: "Your GitLab account belongs to so many groups that labgate cannot keep your session in a browser cookie. The administrator can fix this by setting session.store = \"redis\".",
                hints: &[],
            };
            return respond::with_cookies(
                respond::html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    app.pages.error("Your session is too large", &alert, None),
                    &app.pages.csp,
                ),
                cookies,
            );
        }
        Ok(c) => {
            tracing::info!(target: "labgate::audit", user = %session.user.username, user_id = session.user.id, "signed in");
            app.metrics.sign_in("ok");
            cookies.extend(c);
        }
        Err(e) => {
            tracing::error!(error = %e, "session store unavailable at sign-in; failing closed");
            app.metrics.sign_in("store_error");
            app.metrics.store_errors.inc();
            let style = Style {
                html: true,
                sign_in: None,
            };
            return respond::with_cookies(
                Reject::StoreUnavailable.render(&app.pages, &style),
                cookies,
            );
        }
    }
    respond::with_cookies(respond::redirect(&rd), cookies)
}

/// The largest session the cookie store sets up: every later request carries it, and past
/// this size browsers, load balancers and servers start refusing the Cookie header (nginx
/// and Apache already at 8 KiB by default). Larger sessions belong in Redis.
const MAX_SESSION_COOKIE_BYTES: usize = 32 * 1024;

/// The bytes `Set-Cookie` values add to every later request's Cookie header.
fn cookie_bytes(set_cookies: &[String]) -> usize {
    set_cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .map(str::len)
        .sum()
}

fn new_session(app: &App, tokens: Tokens, user: crate::access::User, now: u64) -> Session {
    Session {
        v: SESSION_VERSION,
        sid: crate::random_token(18),
        user,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        id_token: tokens
            .id_token
            .filter(|_| app.config.identity.pass_authorization),
        created: now,
        expires: now + app.config.session.lifetime.as_secs(),
        validated: now,
        ci: None,
        derived: Default::default(),
    }
}

/// Whether a request with a side effect comes from labgate's own pages: `Origin` equal to
/// public_url's, or `Sec-Fetch-Site` same-origin / none (typed or bookmarked). Browsers
/// that send neither (old ones, scripts) are let through: the check defends against
/// cross-site forgery, which modern browsers always label.
fn same_origin<B>(app: &App, req: &Request<B>) -> bool {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    if let Some(origin) = h("origin") {
        return origin == app.config.server.public_origin;
    }
    !matches!(h("sec-fetch-site"), Some("cross-site" | "same-site"))
}

/// `GET/POST /sign_out`.
pub async fn sign_out<B>(app: &App, req: &Request<B>) -> Response<Body> {
    if !same_origin(app, req) {
        // A cross-site link or form must not sign people out (logout CSRF): ask instead.
        if req.method() == Method::POST {
            return respond::json_error(
                StatusCode::FORBIDDEN,
                "cross_site",
                "sign-out must come from this site",
            );
        }
        let page = app.pages.confirm_sign_out(&app.url("/sign_out"));
        return respond::html(StatusCode::OK, page, &app.pages.csp);
    }
    let everywhere =
        query_param(req.uri().query(), "everywhere").is_some_and(|v| v == "1" || v == "true");
    // Whether the session is really over on the server side (the Redis store); the
    // browser's cookies are cleared either way.
    let mut ended_everywhere = true;
    match app.sessions.load(req.headers(), true).await {
        Ok(Some(loaded)) => {
            let user = &loaded.session.user;
            tracing::info!(target: "labgate::audit", user = %user.username, everywhere, "signed out");
            let ended = if everywhere {
                app.sessions.end_all(user.id).await.map(|_| ())
            } else {
                app.sessions.end(&loaded).await
            };
            if let Err(e) = ended {
                tracing::error!(error = %e, "sign-out could not delete the session in the store");
                ended_everywhere = false;
            }
            // Best effort, bounded by gitlab.timeout: the browser's cookies are cleared anyway.
            app.gitlab.revoke(&loaded.session.access_token).await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "sign-out could not reach the session store");
            ended_everywhere = false;
        }
    }
    let cookies = app
        .cookies
        .clear_all(req.headers(), &app.config.session.cookie_name);
    let resp = match query_param(req.uri().query(), "rd").and_then(|rd| app.redirect_target(&rd)) {
        // Say so when the session may live on: a copy of the cookie would still open it.
        _ if !ended_everywhere => {
            let alert = Alert {
                message: "You are signed out in this browser, but labgate could not end your session on the server: its session store is unreachable. Sign out again in a moment to end it everywhere.",
                hints: &[],
            };
            respond::html(
                StatusCode::SERVICE_UNAVAILABLE,
                app.pages.error(
                    "Sign-out incomplete",
                    &alert,
                    Some(("Sign out again", &app.url("/sign_out"))),
                ),
                &app.pages.csp,
            )
        }
        Some(rd) => respond::redirect(&rd),
        None => respond::html(
            StatusCode::OK,
            app.pages.signed_out(&app.url("/sign_in")),
            &app.pages.csp,
        ),
    };
    // Evict cached pages of the app (also the back/forward cache): after sign-out the back
    // button must not show what the user saw while signed in.
    let mut resp = resp;
    resp.headers_mut()
        .insert("clear-site-data", HeaderValue::from_static("\"cache\""));
    respond::with_cookies(resp, cookies)
}
