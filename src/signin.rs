//! The sign-in flow's endpoints under the prefix: `/sign_in`, `/start`, `/callback` and
//! `/sign_out` (SPEC §3). GitLab is spoken to only through [`crate::oauth::gitlab`]; `rd`
//! is validated only by [`crate::oauth::redirect`].

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};

use crate::access::Decision;
use crate::app::App;
use crate::app::SignIn;
use crate::oauth::flow::{self, FlowError};
use crate::oauth::gitlab::{GitlabError, Tokens};
use crate::pages::{text, Alert};
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
pub(crate) fn sign_in<B>(
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

/// Where a sign-in at the request's host is made (labgate serving several apps).
enum Home {
    /// At public_url, as for one app.
    Public,
    /// At this host, through its own Redirect URI (it keeps its own session).
    Own(String),
    /// At public_url, for the whole cookie domain: the redirect there.
    Central(String),
    /// Not a host labgate serves, or not a host at all.
    Refused(Reject),
}

fn sign_in_home<B>(app: &App, req: &Request<B>, rd: &str) -> Home {
    let hosts = &app.config.server.hosts;
    if !hosts.many {
        return Home::Public;
    }
    let host = match app.request_host(req) {
        Ok(h) if hosts.serves(&h.name) => h,
        Ok(h) => return Home::Refused(Reject::UnknownHost { host: h.name }),
        Err(why) => {
            return Home::Refused(Reject::BadRequest {
                code: "bad_host",
                message: why.to_owned(),
            })
        }
    };
    if host.name == hosts.public {
        return Home::Public;
    }
    match app.own_session_origin(&host) {
        Some(origin) => Home::Own(format!("{origin}{}", app.url("/callback"))),
        // Signed in once at public_url for the whole cookie domain, then back here.
        None => Home::Central(app.sign_in_url_for(&host, rd, SignIn::Start)),
    }
}

/// The canonical host a flow was started for: its own Redirect URI's, else public_url's.
fn flow_host(app: &App, flow: &FlowState) -> String {
    flow.redirect_uri
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().and_then(|h| crate::access::Host::read(h).ok()))
        .map_or_else(|| app.config.server.hosts.public.clone(), |h| h.name)
}

/// `GET /start`: begins the authorization-code flow.
pub(crate) async fn start<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let mut rd = rd_of(app, req);
    if rd.len() > MAX_FLOW_RD {
        // A destination this long would make the flow cookie (and the Cookie header) huge.
        tracing::info!(len = rd.len(), "sign-in destination too long; using /");
        rd = "/".to_owned();
    }
    let redirect_uri = match sign_in_home(app, req, &rd) {
        Home::Public => None,
        Home::Own(uri) => Some(uri),
        Home::Central(url) => return respond::redirect(&url),
        Home::Refused(reject) => {
            let style = Style {
                html: respond::wants_html(req.headers()),
                sign_in: None,
            };
            return reject.render(&app.pages, &style);
        }
    };
    let secrets = flow::begin(&mut rand::rngs::OsRng);
    let url = match app
        .gitlab
        .authorize_url(
            &secrets,
            redirect_uri.as_deref().unwrap_or(app.gitlab.redirect_uri()),
        )
        .await
    {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(error = %e, "cannot start sign-in: GitLab discovery failed");
            return gitlab_failed(app, &rd, &e);
        }
    };
    let flow = FlowState {
        state: secrets.state,
        verifier: secrets.verifier,
        nonce: secrets.nonce,
        rd,
        started: app.clock.now(),
        redirect_uri,
    };
    let Some(cookie) = app.sessions.codec.flow_cookie(&flow) else {
        return respond::json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot seal the sign-in state",
        );
    };
    // Sign-ins in several tabs each keep their flow; beyond a few the oldest go.
    let mut cookies = app.sessions.codec.prune_flows(req.headers(), MAX_FLOWS - 1);
    cookies.push(cookie);
    respond::with_cookies(respond::redirect(&url), cookies)
}

/// What GitLab's failure means to the person signing in: the status and the sentence.
fn gitlab_failure(e: &GitlabError) -> (StatusCode, String) {
    match e {
        GitlabError::Refused { code, .. } if code == "invalid_grant" => {
            (StatusCode::BAD_REQUEST, text::CODE_REFUSED.to_owned())
        }
        GitlabError::Refused { code, .. } if code == "invalid_client" => {
            (StatusCode::BAD_GATEWAY, text::CLIENT_REFUSED.to_owned())
        }
        GitlabError::Refused { code, .. } => (
            StatusCode::BAD_GATEWAY,
            format!("GitLab refused the sign-in ({code})."),
        ),
        GitlabError::BadIdToken(_) => (StatusCode::BAD_GATEWAY, text::UNVERIFIED.to_owned()),
        GitlabError::Unreachable(_) | GitlabError::Api { .. } => {
            (StatusCode::BAD_GATEWAY, text::UNREACHABLE.to_owned())
        }
    }
}

/// The sign-in page again, saying why GitLab's part failed.
fn gitlab_failed(app: &App, rd: &str, e: &GitlabError) -> Response<Body> {
    let (status, message) = gitlab_failure(e);
    sign_in_page(app, rd, status, Some(&Alert::new(&message)))
}

/// Why a callback signed nobody in; [`SignInError::render`] is its one answer.
#[derive(Debug)]
enum SignInError {
    /// The query has no `state`.
    NoState,
    /// The browser did not send the flow cookie of this `state` back.
    FlowCookieMissing,
    /// The flow cookie is expired, used or not this state's.
    FlowInvalid,
    /// The callback arrived at another host than the one the flow was started for.
    WrongHost,
    /// GitLab's answer at the callback ends the flow (cancelled, error, issuer, no code).
    Flow(FlowError),
    /// Exchanging the code or loading the user failed.
    Gitlab(GitlabError),
    /// The access rules refuse this person.
    Denied {
        name: String,
        deny: crate::access::Deny,
    },
    /// The session is too large for the cookie store.
    SessionTooLarge,
    /// The session store failed.
    Store,
}

impl From<GitlabError> for SignInError {
    fn from(e: GitlabError) -> Self {
        SignInError::Gitlab(e)
    }
}

impl SignInError {
    /// The `labgate_sign_ins_total` outcome it counts as, if any.
    fn outcome(&self) -> Option<&'static str> {
        match self {
            SignInError::NoState | SignInError::Flow(_) => None,
            SignInError::FlowCookieMissing | SignInError::FlowInvalid | SignInError::WrongHost => {
                Some("bad_state")
            }
            SignInError::Gitlab(_) => Some("gitlab_error"),
            SignInError::Denied { .. } => Some("denied"),
            SignInError::SessionTooLarge => Some("session_too_large"),
            SignInError::Store => Some("store_error"),
        }
    }

    /// The answer: the sign-in page with the reason (back to `rd` after a new sign-in),
    /// or the page that fits.
    fn render(self, app: &App, rd: &str) -> Response<Body> {
        let html = Style {
            html: true,
            sign_in: None,
        };
        let again =
            |status, message: &str| sign_in_page(app, rd, status, Some(&Alert::new(message)));
        match self {
            SignInError::NoState => again(StatusCode::BAD_REQUEST, text::NO_STATE),
            SignInError::FlowCookieMissing => {
                let mut hints = Vec::new();
                if app.config.session.cookie_secure {
                    hints.push(text::SECURE_COOKIES_ON_HTTP.to_owned());
                }
                hints.push(format!(
                    "The address in the browser is not {} (server.public_url), or session.cookie_domain does not match it.",
                    app.config.server.public_origin
                ));
                hints.push(text::COOKIES_BLOCKED.to_owned());
                let alert = Alert {
                    message: text::FLOW_COOKIE_MISSING,
                    hints: &hints,
                };
                let page = app.pages.error(
                    "Sign-in cookie missing",
                    &alert,
                    Some(("Try again", &app.url("/sign_in"))),
                );
                respond::html(StatusCode::BAD_REQUEST, page, &app.pages.csp)
            }
            SignInError::FlowInvalid => again(StatusCode::BAD_REQUEST, text::FLOW_INVALID),
            SignInError::WrongHost => again(StatusCode::BAD_REQUEST, text::FLOW_WRONG_HOST),
            SignInError::Flow(FlowError::Cancelled) => {
                again(StatusCode::FORBIDDEN, text::CANCELLED)
            }
            SignInError::Flow(FlowError::WrongIssuer) => {
                again(StatusCode::BAD_REQUEST, text::WRONG_ISSUER)
            }
            SignInError::Flow(FlowError::NoCode) => again(StatusCode::BAD_REQUEST, text::NO_CODE),
            SignInError::Flow(FlowError::Gitlab(error)) => again(
                StatusCode::BAD_GATEWAY,
                &format!("GitLab could not complete the sign-in ({error})."),
            ),
            SignInError::Flow(e) => gitlab_failed(app, rd, &GitlabError::BadIdToken(e.to_string())),
            SignInError::Gitlab(e) => gitlab_failed(app, rd, &e),
            SignInError::Denied { name, deny } => Reject::Forbidden {
                name,
                deny,
                cookies: Vec::new(),
            }
            .render(&app.pages, &html),
            SignInError::SessionTooLarge => {
                let alert = Alert::new(text::SESSION_TOO_LARGE);
                let page = app.pages.error("Your session is too large", &alert, None);
                respond::html(StatusCode::INTERNAL_SERVER_ERROR, page, &app.pages.csp)
            }
            SignInError::Store => Reject::StoreUnavailable.render(&app.pages, &html),
        }
    }
}

/// `GET /callback`: completes the flow, or says why it cannot.
pub(crate) async fn callback<B>(
    app: &App,
    peer: std::net::IpAddr,
    req: &Request<B>,
) -> Response<Body> {
    // What a refusal keeps: the flow's destination and the cookie that ends the flow,
    // once the flow is known.
    let mut rd = "/".to_owned();
    let mut cookies = Vec::new();
    match callback_inner(app, peer, req, &mut rd, &mut cookies).await {
        Ok(resp) => respond::with_cookies(resp, cookies),
        Err(e) => {
            if let Some(outcome) = e.outcome() {
                app.metrics.sign_in(outcome);
            }
            respond::with_cookies(e.render(app, &rd), cookies)
        }
    }
}

/// The callback's steps: the flow this `state` began, GitLab's answer, the code
/// exchanged, the user loaded, the rules, the session stored. Sets `rd` and `cookies` as
/// soon as the flow is known.
async fn callback_inner<B>(
    app: &App,
    peer: std::net::IpAddr,
    req: &Request<B>,
    rd: &mut String,
    cookies: &mut Vec<String>,
) -> Result<Response<Body>, SignInError> {
    let q = req.uri().query();
    let state = query_param(q, "state").ok_or(SignInError::NoState)?;
    let now = app.clock.now();
    // Confirmed by GitLab as of now, before it is asked: an event meanwhile makes the
    // new session due at once.
    let asked_ms = app.clock.now_ms();
    let flow = app
        .sessions
        .codec
        .read_flow(req.headers(), &state, now)
        .map_err(|e| match e {
            crate::session::FlowCookie::Missing => {
                tracing::warn!("callback without its sign-in cookie");
                SignInError::FlowCookieMissing
            }
            _ => SignInError::FlowInvalid,
        })?;
    cookies.push(app.sessions.codec.clear_flow(&state));
    rd.clone_from(&flow.rd);
    // The host the flow was for: its own Redirect URI's, else public_url's. A callback at
    // any other host is refused (a planted flow cookie cannot bind a session elsewhere).
    let bound = flow_host(app, &flow);
    if app.config.server.hosts.many
        && app.request_host(req).ok().map(|h| h.name).as_deref() != Some(bound.as_str())
    {
        tracing::warn!(flow_host = %bound, "callback at another host than its sign-in's");
        return Err(SignInError::WrongHost);
    }
    let issuer = app.gitlab.provider().await.ok().map(|p| p.issuer.clone());
    let code = flow::check_callback(|name| query_param(q, name), issuer.as_deref()).map_err(|e| {
        match &e {
            FlowError::Cancelled => app.metrics.sign_in("cancelled"),
            FlowError::Gitlab(error) => {
                app.metrics.sign_in("gitlab_error");
                // Debug formatting escapes what the client put in the query: no forged log lines.
                let description: Option<String> = query_param(q, "error_description")
                    .map(|d| d.chars().take(256).collect());
                tracing::warn!(error = ?error, description = ?description, "GitLab returned an error to the callback");
            }
            _ => {}
        }
        SignInError::Flow(e)
    })?;
    let tokens = app
        .gitlab
        .exchange_code(
            &code,
            &flow.verifier,
            flow.redirect_uri
                .as_deref()
                .unwrap_or(app.gitlab.redirect_uri()),
        )
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "sign-in failed at the callback"))?;
    let user = app
        .gitlab
        .load_user(&tokens, Some(&flow.nonce), &app.policy().project_paths())
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "sign-in failed at the callback"))?;
    // Serving several apps without a cookie domain, each session opens its own host only
    // (public_url's included): a copy of the cookie opens nothing at another app.
    let bound = app.sessions_per_host().then_some(bound);
    let mut session = new_session(app, tokens, user, now, bound);
    session.checked_ms = asked_ms;
    // Shown on the person's sessions page (kept with the session in Redis only: a cookie
    // session is shown with the request in hand).
    if app.sessions.shared() {
        let client =
            crate::headers::client_ip(req.headers(), peer, &app.config.server.trusted_proxies);
        session.origin = Some(crate::session::SignedInFrom::of(client, req.headers()));
    }
    // A sign-in never inherits or keeps a previous session of this browser.
    if let Ok(Some(previous)) = app.sessions.load_fresh(req.headers()).await {
        let _ = app.sessions.end(&previous).await;
    }
    if let Decision::Deny(deny) = app.policy().admit(&session.user) {
        // No session is kept for someone the rules refuse: on gitlab.com that is anyone,
        // and nothing of theirs should accumulate in the store. GitLab's token goes back.
        tracing::info!(target: "labgate::audit", user = %session.user.username, rule = deny.code(), "sign-in denied");
        app.gitlab.revoke(&session.access_token).await;
        let name = session.user.username.clone();
        return Err(SignInError::Denied { name, deny });
    }
    let stored = app
        .sessions
        .create(&session, req.headers(), now)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "session store unavailable at sign-in; failing closed");
            app.metrics.store_errors.inc();
            SignInError::Store
        })?;
    if cookie_bytes(&stored) > MAX_SESSION_COOKIE_BYTES {
        // Every later request would carry this, and servers refuse big Cookie headers: say
        // so instead.
        tracing::warn!(user = %session.user.username, bytes = cookie_bytes(&stored), groups = session.user.groups.len(), "session too large for the cookie store");
        return Err(SignInError::SessionTooLarge);
    }
    tracing::info!(target: "labgate::audit", user = %session.user.username, user_id = session.user.id, "signed in");
    app.metrics.sign_in("ok");
    cookies.extend(stored);
    Ok(respond::redirect(rd))
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

fn new_session(
    app: &App,
    tokens: Tokens,
    user: crate::access::User,
    now: u64,
    host: Option<String>,
) -> Session {
    Session {
        v: SESSION_VERSION,
        sid: crate::random_token(18),
        user,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        id_token: tokens
            .id_token
            .filter(|_| app.config.identity.pass_authorization.any()),
        created: now,
        expires: now + app.config.session.lifetime.as_secs(),
        validated: now,
        host,
        checked_ms: app.clock.now_ms(),
        origin: None,
        derived: Default::default(),
    }
}

/// `GET/POST /sign_out`.
pub(crate) async fn sign_out<B>(app: &App, req: &Request<B>) -> Response<Body> {
    if !app.same_origin(req) {
        // A cross-site link or form must not sign people out (logout CSRF): ask instead.
        if req.method() == Method::POST {
            return respond::json_error(
                StatusCode::FORBIDDEN,
                "cross_site",
                "sign-out must come from this site",
            );
        }
        let page = app.pages.confirm_sign_out(&app.url("/sign_out"));
        return respond::posting_forms(respond::html(StatusCode::OK, page, &app.pages.csp));
    }
    let everywhere =
        query_param(req.uri().query(), "everywhere").is_some_and(|v| v == "1" || v == "true");
    // Whether the session is really over on the server side (the Redis store); the
    // browser's cookies are cleared either way.
    let mut ended_everywhere = true;
    // A session bound to another host's app is not this host's to end (a copy of its
    // cookie presented here): only this browser's cookies are cleared.
    let here = app.request_host(req).ok().map(|h| h.name);
    let bound_elsewhere = |s: &crate::session::Session| {
        app.session_host(s.host.as_deref())
            .is_some_and(|bound| here.as_deref() != Some(bound))
    };
    match app.sessions.load_fresh(req.headers()).await {
        Ok(Some(loaded)) if bound_elsewhere(&loaded.session) => {
            tracing::info!(target: "labgate::audit", user = %loaded.session.user.username, "sign-out with another host's session: only the cookies cleared");
        }
        Ok(Some(loaded)) => {
            let user = &loaded.session.user;
            tracing::info!(target: "labgate::audit", user = %user.username, everywhere, "signed out");
            // Each host keeping its own sessions, one app's sign-out reaches that app's
            // sessions only (a script at one app cannot sign people out of another).
            let ended = if everywhere && app.sessions_per_host() {
                app.sessions
                    .end_all_at(user.id, loaded.session.host.as_deref())
                    .await
                    .map(|_| ())
            } else if everywhere {
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
        .sessions
        .codec
        .clear_all(req.headers(), &app.config.session.cookie_name);
    let resp = match query_param(req.uri().query(), "rd").and_then(|rd| app.redirect_target(&rd)) {
        // Say so when the session may live on: a copy of the cookie would still open it.
        _ if !ended_everywhere => {
            let alert = Alert::new(text::SIGN_OUT_INCOMPLETE);
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
