//! `GET /oauth2/auth`: labgate as the auth service of a front proxy (nginx `auth_request`,
//! ingress-nginx, Traefik `forwardAuth`, Caddy `forward_auth`).
//!
//! Answers 202 with `X-Auth-Request-*` identity headers when the session passes the rules,
//! 401 when there is none, 403 when it fails them. The original request (method, path) comes
//! from `X-Forwarded-Method/-Proto/-Host/-Uri` (Traefik, Caddy), `X-Original-URL` /
//! `X-Original-Method` (ingress-nginx) or `X-Original-URI` (plain nginx) — believed only
//! from `server.trusted_proxies`, like every `X-Forwarded-*` (oauth2-proxy's GHSA-7x63).
//!
//! Traefik and Caddy hand a non-2xx answer to the browser, so `?mode=redirect` turns the
//! 401 for a browser into a 302 to the sign-in flow. `?allowed_groups=a,b` and
//! `?allowed_users=x,y` narrow the rules for one protected location.

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};

use crate::access::{Decision, Deny, PathViews};
use crate::app::App;
use crate::machine::Bearer;
use crate::proxy::Body;
use crate::respond::{self, query_escape, query_param};
use crate::router::{authenticate, Auth, Peer};

/// The identity headers a 202 carries; each is always present (empty when unknown) so the
/// front proxy overwrites whatever the client sent under those names.
const AUTH_HEADERS: [&str; 5] = [
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-user-id",
];

/// The request the front proxy is asking about.
#[derive(Debug, Clone)]
pub struct Original {
    /// Its method.
    pub method: Method,
    /// `scheme://host`, when the proxy said.
    pub origin: Option<String>,
    /// Path and query.
    pub uri: String,
}

impl Original {
    /// Reads the original request from a trusted front proxy's headers; `None` from anyone
    /// else or when the headers are absent.
    pub fn from_request<B>(app: &App, peer: Peer, req: &Request<B>) -> Option<Original> {
        let trusted =
            crate::headers::is_trusted(&app.config.server.trusted_proxies, peer.addr.ip());
        if !trusted {
            return None;
        }
        let h = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let method = h("x-forwarded-method")
            .or_else(|| h("x-original-method"))
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .unwrap_or(Method::GET);
        if let Some(full) = h("x-original-url") {
            let url = url::Url::parse(full).ok()?;
            let uri = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            return Some(Original {
                method,
                origin: Some(url.origin().ascii_serialization()),
                uri,
            });
        }
        let uri = h("x-forwarded-uri").or_else(|| h("x-original-uri"))?;
        if !uri.starts_with('/') {
            return None;
        }
        let origin = match (h("x-forwarded-proto"), h("x-forwarded-host")) {
            (Some(p), Some(host)) if matches!(p, "http" | "https") => Some(format!("{p}://{host}")),
            _ => None,
        };
        Some(Original {
            method,
            origin,
            uri: uri.to_owned(),
        })
    }

    /// The path readings the rules are applied to.
    pub fn views(&self) -> PathViews {
        PathViews::new(self.uri.split('?').next().unwrap_or("/"))
    }

    /// Where to send the browser after sign-in: the original URL, if it is allowed.
    pub fn redirect_target(&self, app: &App) -> Option<String> {
        let server = &app.config.server;
        let candidate = match &self.origin {
            Some(o) if *o != server.public_origin => format!("{o}{}", self.uri),
            _ => self.uri.clone(),
        };
        crate::oauth::redirect::validate(
            &candidate,
            &server.public_url,
            &server.allowed_redirect_domains,
        )
    }
}

/// Handles `/oauth2/auth`.
pub async fn handle<B>(app: &App, peer: Peer, req: &Request<B>) -> Response<Body> {
    let original = Original::from_request(app, peer, req);
    let query = req.uri().query();
    let narrowing = match narrowing(query) {
        Ok(n) => n,
        Err(e) => return respond::json_error(StatusCode::BAD_REQUEST, "bad_request", &e),
    };
    if let Some(o) = &original {
        if app.config.access.is_public(&o.method, &o.views()) {
            return granted(app, None, Vec::new());
        }
    }
    match crate::machine::authenticate(app, req.headers()).await {
        Bearer::Absent => {}
        Bearer::Refused {
            status,
            code,
            message,
        } => return crate::router::bearer_refused(status, code, &message),
        Bearer::Verified(s) => {
            let views = original
                .as_ref()
                .map_or_else(|| PathViews::new("/"), Original::views);
            return match crate::router::machine_decision(app, &s, &views) {
                Decision::Allow => granted(app, Some(&s), Vec::new()),
                Decision::Deny(why) => {
                    respond::json_error(StatusCode::FORBIDDEN, why.code(), &why.explain())
                }
            };
        }
    }
    match authenticate(app, req).await {
        Auth::Valid(s, cookies) => {
            let decision = match &original {
                Some(o) => app.config.access.decide(&s.user, &o.views()),
                // Without the original URL route rules cannot be applied: refuse rather
                // than guess when there are any.
                None if app.config.access.has_routes() => Decision::Deny(Deny::NotListed {
                    scope: "route (original URL unknown: set server.trusted_proxies)".into(),
                }),
                None => app.config.access.admit(&s.user),
            };
            let decision = match (decision, &narrowing) {
                (Decision::Allow, Some(rules)) if !rules.admits(&s.user) => {
                    Decision::Deny(Deny::NotListed {
                        scope: "route (auth query)".into(),
                    })
                }
                (d, _) => d,
            };
            match decision {
                Decision::Allow => granted(app, Some(&s), cookies),
                Decision::Deny(why) => {
                    tracing::info!(target: "labgate::audit", user = %s.user.username, rule = why.code(), "forward-auth denied");
                    respond::with_cookies(
                        respond::json_error(StatusCode::FORBIDDEN, why.code(), &why.explain()),
                        cookies,
                    )
                }
            }
        }
        Auth::StoreDown => crate::router::store_unavailable(app, req),
        Auth::Unavailable => respond::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "gitlab_unreachable",
            "cannot confirm the session with GitLab",
        ),
        Auth::None | Auth::Ended(_) => {
            let redirect = query_param(query, "mode").is_some_and(|m| m == "redirect");
            if redirect && respond::wants_html(req.headers()) {
                let rd = original
                    .as_ref()
                    .and_then(|o| o.redirect_target(app))
                    .unwrap_or_else(|| "/".into());
                let base = app.config.server.public_url.as_str().trim_end_matches('/');
                let endpoint = if app.config.server.skip_sign_in_page {
                    "/start"
                } else {
                    "/sign_in"
                };
                return respond::redirect(&format!(
                    "{base}{}?rd={}",
                    app.url(endpoint),
                    query_escape(&rd)
                ));
            }
            respond::json_error(StatusCode::UNAUTHORIZED, "unauthenticated", "not signed in")
        }
    }
}

fn narrowing(query: Option<&str>) -> Result<Option<crate::access::Rules>, String> {
    let list = |name: &str| -> Vec<String> {
        query_param(query, name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (groups, users) = (list("allowed_groups"), list("allowed_users"));
    if groups.is_empty() && users.is_empty() {
        return Ok(None);
    }
    crate::access::Rules::from_lists(&users, &groups).map(Some)
}

fn granted(
    app: &App,
    session: Option<&crate::session::Session>,
    cookies: Vec<String>,
) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::ACCEPTED;
    let h = resp.headers_mut();
    for name in AUTH_HEADERS {
        h.insert(name, HeaderValue::from_static(""));
    }
    h.insert(
        app.config.identity.assertion_header.clone(),
        HeaderValue::from_static(""),
    );
    if app.config.identity.pass_access_token {
        h.insert("x-auth-request-access-token", HeaderValue::from_static(""));
    }
    if let Some(s) = session {
        let mut put = |name: &'static str, v: &str| {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(name, v);
            }
        };
        for (field, value) in crate::router::identity_values(&s.user) {
            let name = match field {
                "user" => "x-auth-request-user",
                "preferred-username" => "x-auth-request-preferred-username",
                "email" => "x-auth-request-email",
                "groups" => "x-auth-request-groups",
                _ => "x-auth-request-user-id",
            };
            put(name, &value);
        }
        if app.config.identity.pass_access_token {
            put("x-auth-request-access-token", &s.access_token);
        }
        if let Some(a) = app.signer.assertion(s, app.clock.now()) {
            h.insert(app.config.identity.assertion_header.clone(), a);
        }
    }
    respond::with_cookies(resp, cookies)
}
