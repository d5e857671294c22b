//! `{prefix}/sessions`: a signed-in person's own sessions. With the Redis store: every
//! browser and device signed in with their GitLab account (signed in, last active, client
//! address, browser, app), each with "sign out this session", and "sign out everywhere".
//! With the cookie store: this browser's session, and why the others cannot be listed.
//!
//! The page answers the session's owner only (a revalidation GitLab's events asked for
//! runs first, as on any request), whatever the apps' rules say: someone refused by every
//! app can still end their sessions. Ending one is a POST that must come from this site,
//! as sign-out is, and names a session by its `sid` among the owner's own.

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::app::{App, SignIn};
use crate::auth::CookieDelivery;
use crate::identity::Principal;
use crate::pages::{SessionRow, SessionsView};
use crate::proxy::Body;
use crate::reject::{Reject, Style};
use crate::respond;
use crate::session::Session;

/// Largest form body read (`end=<sid>`).
const MAX_FORM: usize = 1024;

/// What the page says after a session was ended.
const ENDED: &str = "That session is signed out.";

/// `GET|POST {prefix}/sessions`.
pub(crate) async fn sessions(
    app: &App,
    peer: std::net::IpAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    if req.method() == Method::POST && !app.same_origin(&req) {
        return respond::json_error(
            StatusCode::FORBIDDEN,
            "cross_site",
            "ending a session must come from this site",
        );
    }
    let (session, cookies) = match owner(app, &req).await {
        Ok(Ok(found)) => found,
        Ok(Err(clear)) => return respond::with_cookies(sign_in_first(app, &req), clear),
        Err(reject) => {
            let style = Style {
                html: respond::wants_html(req.headers()),
                sign_in: None,
            };
            return reject.render(&app.pages, &style);
        }
    };
    let resp = if req.method() == Method::POST {
        end(app, &session, req).await
    } else {
        let notice = respond::query_param(req.uri().query(), "ended")
            .filter(|v| v == "1")
            .map(|_| ENDED);
        page(app, peer, &req, &session, notice).await
    };
    respond::with_cookies(resp, cookies)
}

/// The request's own person session at this host (revalidated first where due), and the
/// cookies a revalidation sets; `Err` with the cookies to clear when there is none to show.
async fn owner<B>(
    app: &App,
    req: &Request<B>,
) -> Result<Result<(std::sync::Arc<Session>, Vec<String>), Vec<String>>, Reject> {
    let a = match crate::auth::session::authenticate(app, req.headers(), CookieDelivery::Delivered)
        .await
    {
        Ok(a) => a,
        Err(Reject::Unauthenticated { clear }) => return Ok(Err(clear)),
        Err(reject) => return Err(reject),
    };
    let Principal::Person(session) = a.principal else {
        return Ok(Err(Vec::new()));
    };
    // A session made for another host's app is not shown (or ended) here.
    let here = app.request_host(req).ok().map(|h| h.name);
    if app
        .session_host(session.host.as_deref())
        .is_some_and(|bound| here.as_deref() != Some(bound))
    {
        return Ok(Err(Vec::new()));
    }
    Ok(Ok((session, a.cookies)))
}

/// Not signed in here: to the sign-in, and back to this page.
fn sign_in_first<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let rd = app.url("/sessions");
    let target = match app.request_host(req) {
        Ok(host) => app.sign_in_url_for(&host, &rd, SignIn::Entry),
        Err(_) => app.sign_in_url(&rd, SignIn::Entry),
    };
    respond::redirect(&target)
}

/// The page.
async fn page<B>(
    app: &App,
    peer: std::net::IpAddr,
    req: &Request<B>,
    session: &Session,
    notice: Option<&str>,
) -> Response<Body> {
    let listed = match app.sessions.list(session.user.id).await {
        Ok(listed) => listed,
        Err(e) => return store_unavailable(app, &e),
    };
    let client = crate::headers::client_ip(req.headers(), peer, &app.config.server.trusted_proxies);
    let here = crate::session::SignedInFrom::of(client, req.headers());
    let action = app.url("/sessions");
    let mut elsewhere = 0;
    let view_rows: Vec<(bool, Session, Option<u64>)> = match listed {
        Some(all) => {
            let (all, other_apps) = this_app(app, session, all);
            elsewhere = other_apps;
            let current = app.sessions.key_of(req.headers());
            let mut rows: Vec<_> = all
                .into_iter()
                .map(|l| {
                    (
                        current.as_deref() == Some(l.key.as_str()),
                        l.session,
                        l.seen,
                    )
                })
                .collect();
            // This browser first, then the most recently active.
            rows.sort_by_key(|(current, s, seen)| {
                (!current, std::cmp::Reverse(last_active(s, *seen)))
            });
            rows
        }
        None => vec![(true, session.clone(), Some(app.clock.now()))],
    };
    let rows: Vec<SessionRow<'_>> = view_rows
        .iter()
        .map(|(current, s, seen)| {
            // The current session shows this request's address and browser.
            let from = if *current {
                Some(&here)
            } else {
                s.origin.as_ref()
            };
            SessionRow {
                current: *current,
                id: &s.sid,
                signed_in: s.created,
                last_active: if *current {
                    app.clock.now()
                } else {
                    last_active(s, *seen)
                },
                address: from.map_or("(unknown)", |f| f.address.as_str()),
                agent: from.map_or("", |f| f.agent.as_str()),
                app: s.host.as_deref(),
            }
        })
        .collect();
    let other_apps = format!(
        "You also have {elsewhere} session(s) at other apps: each app's own sessions page lists and ends them."
    );
    let body = app.pages.sessions(&SessionsView {
        username: &session.user.username,
        rows: &rows,
        listed: app.sessions.shared(),
        action: &action,
        notice,
        elsewhere: (elsewhere > 0).then_some(other_apps.as_str()),
    });
    respond::posting_forms(respond::html(StatusCode::OK, body, &app.pages.csp))
}

/// The sessions of this app: where each host keeps its own sessions, those bound to the
/// same host as `owner`'s (another app's page, and a script at its origin, learns nothing
/// of them but how many); and how many others there are.
fn this_app(
    app: &App,
    owner: &Session,
    all: Vec<crate::session::redis::Listed>,
) -> (Vec<crate::session::redis::Listed>, usize) {
    if !app.sessions_per_host() {
        return (all, 0);
    }
    let (here, elsewhere): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|l| l.session.host == owner.host);
    (here, elsewhere.len())
}

/// The session store failed: logged, and the page that says so (fail closed).
fn store_unavailable(app: &App, e: &crate::session::StoreError) -> Response<Body> {
    tracing::error!(error = %e, "the sessions page could not reach the session store");
    Reject::StoreUnavailable.render(
        &app.pages,
        &Style {
            html: true,
            sign_in: None,
        },
    )
}

/// When a session was last used, as far as the store knows (Unix seconds).
fn last_active(s: &Session, seen: Option<u64>) -> u64 {
    seen.unwrap_or(0).max(s.validated).max(s.created)
}

/// `POST {prefix}/sessions` with `end=<sid>`: ends one of the owner's other sessions
/// (this browser's is ended by sign-out), then shows the page again (303).
async fn end(app: &App, owner: &Session, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let bad = |why: &str| respond::json_error(StatusCode::BAD_REQUEST, "bad_request", why);
    // A form's type only: what a cross-site page can send without asking is refused by the
    // origin check already; this keeps other bodies (JSON, text) out as well.
    let form = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return respond::json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the form as application/x-www-form-urlencoded",
        );
    }
    if hyper::body::Body::size_hint(req.body()).lower() > MAX_FORM as u64 {
        return bad("the form is too large");
    }
    let Ok(body) = http_body_util::Limited::new(req.into_body(), MAX_FORM)
        .collect()
        .await
        .map(|b| b.to_bytes())
    else {
        return bad("the form could not be read (or is too large)");
    };
    let mut ends = url::form_urlencoded::parse(&body).filter(|(k, _)| k == "end");
    let (Some((_, sid)), None) = (ends.next(), ends.next()) else {
        return bad("the form must name one session to end (end=<id>)");
    };
    let listed = match app.sessions.list(owner.user.id).await {
        Ok(Some(listed)) => this_app(app, owner, listed).0,
        Ok(None) => {
            return bad("sessions are kept in browsers' cookies here: only sign-out ends one")
        }
        Err(e) => return store_unavailable(app, &e),
    };
    // Only the owner's own sessions are found (the list is theirs); an unknown id (ended
    // meanwhile, or never theirs) is simply gone.
    if let Some(found) = listed.iter().find(|l| l.session.sid == sid) {
        if let Err(e) = app.sessions.end_key(&found.key, owner.user.id).await {
            return store_unavailable(app, &e);
        }
        tracing::info!(target: "labgate::audit", user = %owner.user.username, "a session was ended from the person's sessions page");
        // Best effort, bounded by gitlab.timeout: the session is over either way.
        app.gitlab.revoke(&found.session.access_token).await;
    }
    let mut resp = respond::redirect(&format!("{}?ended=1", app.url("/sessions")));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp
}
