//! `{prefix}/auth` (nginx, ingress-nginx, Traefik, Caddy: 202) and
//! `{prefix}/auth/<original path>` (Envoy: 200): the same admission as the proxy
//! ([`crate::auth::authorize`]) for the original request the front proxy names (read by the
//! pure half of this module), answered with the identity headers the proxy copies.

use http::{Method, Request, Response, StatusCode};

use super::{CookiePath, Original};
use crate::access::PathViews;
use crate::app::{App, SignIn};
use crate::auth::{self, CookieDelivery};
use crate::forward_auth;
use crate::headers::{self, Peer};
use crate::identity::Principal;
use crate::proxy::Body;
use crate::reject::{Reject, Style};
use crate::respond::{self, query_param};

/// The original path and query Envoy appended to `{prefix}/auth`, taken from the raw
/// request target (its dot segments are the original's, judged like any other path).
/// `None` when the Envoy form is not served (`forward_auth_source` neither `auto` nor
/// `envoy`).
pub fn envoy_suffix<B>(app: &App, req: &Request<B>) -> Option<String> {
    if !app
        .config
        .server
        .forward_auth_source
        .appends_original_path()
    {
        return None;
    }
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
pub fn read_original<B>(
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
        headers::is_trusted(&app.config.server.trusted_proxies, peer.addr.ip()),
    )
}

/// `{prefix}/auth` (nginx, ingress-nginx, Traefik, Caddy: 202) and
/// `{prefix}/auth/<original path>` (Envoy: 200): the same admission as the proxy, for the
/// original request the front proxy names.
pub async fn forward_auth<B>(
    app: &App,
    peer: Peer,
    req: &Request<B>,
    envoy: Option<&str>,
) -> Response<Body> {
    let html = respond::wants_html(req.headers());
    // Envoy appends the original query to the check request: it is the app's, not ours.
    let query = if envoy.is_some() {
        None
    } else {
        req.uri().query()
    };
    let Asked {
        original,
        views,
        narrowing,
    } = match asked(app, peer, req, envoy, query) {
        Ok(a) => a,
        Err(reject) => return reject.render(&app.pages, &Style::default()),
    };
    let host = original
        .as_ref()
        .and_then(|o| o.host.as_ref())
        .map(|h| h.name.as_str());
    // The app's origin, the assertion's audience: serving several apps, its canonical name
    // at labgate's front door (a port a client writes names no other app); one app, the
    // original's origin as the proxy named it.
    let front_door = original
        .as_ref()
        .and_then(|o| o.host.as_ref())
        .filter(|_| app.config.server.hosts.many)
        .map(|h| app.origin_of(h));
    let origin = front_door
        .as_deref()
        .or_else(|| original.as_ref().and_then(|o| o.origin.as_deref()));
    if let (
        Some(Original {
            method: Some(m), ..
        }),
        Some(v),
    ) = (&original, &views)
    {
        if app.policy().is_public(m, host, v) {
            return granted(app, None, Vec::new(), envoy.is_some(), (host, origin));
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
    match auth::authorize(
        app,
        peer.addr.ip(),
        req.headers(),
        host,
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
            None => granted(
                app,
                Some(&a.principal),
                Vec::new(),
                envoy.is_some(),
                (host, origin),
            ),
        },
        Ok(a) => {
            let mut resp = granted(
                app,
                Some(&a.principal),
                a.cookies,
                envoy.is_some(),
                (host, origin),
            );
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
                    // Where the session for the original host is made (its own host, or
                    // public_url's).
                    match original.as_ref().and_then(|o| o.host.as_ref()) {
                        Some(h) => app.sign_in_url_for(h, &rd, SignIn::EntryAbsolute),
                        None => app.sign_in_url(&rd, SignIn::EntryAbsolute),
                    }
                }),
            };
            reject.render(&app.pages, &style)
        }
    }
}

/// What a forward-auth request asks about: the original request (if the proxy named one),
/// its path readings, and the location's narrowing.
struct Asked {
    original: Option<Original>,
    views: Option<PathViews>,
    narrowing: Option<crate::access::Rules>,
}

/// Reads what the request asks about, or why it cannot be answered (400): original-request
/// headers of two proxies, a malformed one, a path that must be refused, bad narrowing.
fn asked<B>(
    app: &App,
    peer: Peer,
    req: &Request<B>,
    envoy: Option<&str>,
    query: Option<&str>,
) -> Result<Asked, Reject> {
    let bad = |code, message: String| Reject::BadRequest { code, message };
    let original = read_original(app, peer, req, envoy.unwrap_or("")).map_err(|e| {
        tracing::warn!(error = %e, "forward-auth request refused");
        bad("ambiguous_original_request", e.to_string())
    })?;
    if let Some(key) = forward_auth::unknown_parameter(query) {
        return Err(bad(
            "bad_request",
            format!("the auth URL carries {key:?}, which labgate does not know: allowed_users, allowed_groups, allowed_ci_jobs, host and mode are"),
        ));
    }
    let narrowing = forward_auth::Narrowing::from_query(query)
        .map(|n| crate::config::narrowing(&n.users, &n.groups, &n.ci_jobs))
        .transpose()
        .map_err(|e| bad("bad_request", e))?;
    let views = original.as_ref().map(Original::views);
    if let Some(why) = views.as_ref().and_then(PathViews::refused) {
        return Err(bad("bad_path", why.to_owned()));
    }
    // The location's own host, when its auth URL pins one: the original must be for it.
    if let Some(pinned) = forward_auth::pinned_host(query).map_err(|e| bad("bad_request", e))? {
        let named = original.as_ref().and_then(|o| o.host.as_ref());
        if named.is_none_or(|h| h.name != pinned.name) {
            tracing::warn!(
                pinned = %pinned.name,
                named = named.map_or("(none)", |h| h.name.as_str()),
                "forward-auth request for another host than its location's"
            );
            return Err(bad(
                "host_mismatch",
                format!(
                    "this location protects {}, but the front proxy asked about {}",
                    pinned.name,
                    named.map_or("an unknown host", |h| h.name.as_str())
                ),
            ));
        }
    }
    // Serving several apps, labgate judges only requests for a host it serves: an unknown
    // one never falls to "the rules of every host".
    let hosts = &app.config.server.hosts;
    if let Some(o) = original.as_ref().filter(|_| hosts.many) {
        match &o.host {
            Some(h) if hosts.serves(&h.name) => {}
            Some(h) => {
                return Err(bad(
                    "unknown_host",
                    format!("labgate serves no app at {}", h.name),
                ))
            }
            None => {
                return Err(bad(
                    "unknown_host",
                    "the front proxy did not say which host the request was for (X-Forwarded-Proto and X-Forwarded-Host, or X-Original-URL)".to_owned(),
                ))
            }
        }
    }
    Ok(Asked {
        original,
        views,
        narrowing,
    })
}

/// An allowing forward-auth answer: 202 (200 for Envoy, which treats only 200 as allow)
/// with every identity header present, for the app at `(host, origin)` (canonical, when the
/// front proxy said).
fn granted(
    app: &App,
    principal: Option<&Principal>,
    cookies: Vec<String>,
    envoy: bool,
    (host, origin): (Option<&str>, Option<&str>),
) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = if envoy {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let cfg = &app.config.identity;
    let assertion = principal.and_then(|p| {
        app.signer
            .assertion(p, app.clock.now(), app.audience(origin))
    });
    let token = cfg.pass_access_token.to(host).then(|| {
        principal
            .and_then(Principal::session)
            .map_or("", |s| s.access_token.as_str())
    });
    forward_auth::answer_headers(
        resp.headers_mut(),
        principal,
        &cfg.assertion_header,
        assertion,
        token,
    );
    respond::with_cookies(resp, cookies)
}
