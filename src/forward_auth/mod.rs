//! Forward-auth, the pure part: what request a front proxy is asking about, read from
//! exactly one source (SPEC §9), the narrowing a protected location adds, and the answer's
//! identity headers. The router performs the same authenticate -> decide phases as for the
//! proxy and renders the answer.
//!
//! Each front proxy sets its own original-request headers and passes a client's copies of
//! every other one through untouched, so believing "whichever is present" lets a client pick
//! the path that is judged (oauth2-proxy's GHSA-7x63 class). labgate reads one family:
//!
//! | source | original URI | original method |
//! | --- | --- | --- |
//! | `nginx` | `X-Original-URI` | `X-Original-Method` |
//! | `ingress-nginx` | `X-Original-URL` (absolute) | `X-Original-Method` |
//! | `traefik`, `caddy` | `X-Forwarded-Uri` (+ `-Proto`, `-Host`) | `X-Forwarded-Method` |
//! | `envoy` | the path after `{prefix}/auth` | the check request's own |
//!
//! `auto` (the default) takes the one family present and refuses (400) a request carrying
//! more than one, so a client's extra header can never outvote the proxy's. Nothing is
//! believed from a peer outside `server.trusted_proxies`.

pub mod endpoint;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;

use crate::access::{Host, PathViews};
use crate::config::FrontProxy;
use crate::identity::{set_identity_headers, HeaderSet, Principal};

/// The request the front proxy is asking about.
#[derive(Debug, Clone)]
pub struct Original {
    /// Its method; `None` when the proxy did not say (then no path is public for it).
    pub method: Option<Method>,
    /// `scheme://host[:port]` (canonical: [`Host::origin`]), when the proxy said.
    pub origin: Option<String>,
    /// The host the request was for (canonical), when the proxy said.
    pub host: Option<Host>,
    /// Path and query.
    pub uri: String,
    /// Whose headers named it.
    family: Family,
}

/// The original-request header families; [`FrontProxy::Traefik`] and [`FrontProxy::Caddy`]
/// share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Nginx,
    IngressNginx,
    Forwarded,
    Envoy,
}

impl Family {
    fn of(source: FrontProxy) -> Option<Family> {
        match source {
            FrontProxy::Auto => None,
            FrontProxy::Nginx => Some(Family::Nginx),
            FrontProxy::IngressNginx => Some(Family::IngressNginx),
            FrontProxy::Traefik | FrontProxy::Caddy => Some(Family::Forwarded),
            FrontProxy::Envoy => Some(Family::Envoy),
        }
    }

    /// Whether the request carries this family's original-URI (or, for the forwarded
    /// family, its method) header.
    fn present(self, headers: &HeaderMap, suffix: &str) -> bool {
        match self {
            Family::Nginx => headers.contains_key("x-original-uri"),
            Family::IngressNginx => headers.contains_key("x-original-url"),
            Family::Forwarded => {
                headers.contains_key("x-forwarded-uri")
                    || headers.contains_key("x-forwarded-method")
            }
            Family::Envoy => !suffix.is_empty(),
        }
    }
}

/// Why the original request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginalError {
    /// Headers of more than one front proxy: a client added some.
    #[error("the request carries the original-request headers of more than one front proxy ({0}); set server.forward_auth_source to the proxy in front of labgate")]
    Conflict(String),
    /// The source's header is there but unusable.
    #[error("the original request header is malformed: {0}")]
    Malformed(&'static str),
}

/// One header's trimmed text, if present, valid and not empty.
fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// An original-request header's text; a repeated one is refused: two values are two claims
/// about one request.
fn one<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, OriginalError> {
    if headers.get_all(name).iter().count() > 1 {
        Err(OriginalError::Malformed(name))
    } else {
        Ok(text(headers, name))
    }
}

/// Reads the original request, from a trusted peer only (`trusted`), per `source`.
/// `method` is the check request's own and `suffix` the path after `{prefix}/auth` (both
/// Envoy's). `Ok(None)`: the original request is unknown.
pub fn original(
    headers: &HeaderMap,
    method: &Method,
    suffix: &str,
    source: FrontProxy,
    trusted: bool,
) -> Result<Option<Original>, OriginalError> {
    if !trusted {
        return Ok(None);
    }
    let family = match Family::of(source) {
        Some(f) => f,
        None => {
            let all = [
                Family::Nginx,
                Family::IngressNginx,
                Family::Forwarded,
                Family::Envoy,
            ];
            let present: Vec<Family> = all
                .into_iter()
                .filter(|f| f.present(headers, suffix))
                .collect();
            let method_conflict = match present.first() {
                Some(Family::Forwarded) => headers.contains_key("x-original-method"),
                Some(Family::Nginx | Family::IngressNginx) => {
                    headers.contains_key("x-forwarded-method")
                }
                Some(Family::Envoy) => {
                    headers.contains_key("x-original-method")
                        || headers.contains_key("x-forwarded-method")
                }
                None => false,
            };
            if present.len() > 1 || method_conflict {
                let names: Vec<String> = present.iter().map(|f| format!("{f:?}")).collect();
                return Err(OriginalError::Conflict(names.join(", ")));
            }
            match present.first() {
                Some(f) => *f,
                None => return Ok(None),
            }
        }
    };
    read(family, headers, method, suffix)
}

fn read(
    family: Family,
    headers: &HeaderMap,
    check_method: &Method,
    suffix: &str,
) -> Result<Option<Original>, OriginalError> {
    let method_from = |name: &'static str| -> Result<Option<Method>, OriginalError> {
        match one(headers, name)? {
            None => Ok(None),
            Some(m) => Method::from_bytes(m.as_bytes())
                .map(Some)
                .map_err(|_| OriginalError::Malformed(name)),
        }
    };
    // The host is read like the proxy's `Host` (one canonical name: case, trailing dot,
    // IDNA, port), and one that no browser could send is refused, never guessed at.
    let forwarded_origin = |host_header: &'static str| -> Result<_, OriginalError> {
        let proto = one(headers, "x-forwarded-proto")?;
        let host = one(headers, host_header)?;
        match (proto, host) {
            (Some(p), Some(host)) if matches!(p, "http" | "https") => {
                let host = Host::read(host).map_err(|_| OriginalError::Malformed(host_header))?;
                Ok(Some((host.origin(p), host)))
            }
            _ => Ok(None),
        }
    };
    // `//x` is a path too (nginx's `$request_uri` for a request to `//x`): judged like any
    // other (its readings include `/x`); as a sign-in destination the redirect validator
    // refuses it.
    let path_only = |uri: &str| -> Result<String, OriginalError> {
        if uri.starts_with('/') {
            Ok(uri.to_owned())
        } else {
            Err(OriginalError::Malformed("original URI must be a path"))
        }
    };
    match family {
        Family::Nginx => {
            let Some(uri) = one(headers, "x-original-uri")? else {
                return Ok(None);
            };
            let (origin, host) = forwarded_origin("x-forwarded-host")?.unzip();
            Ok(Some(Original {
                method: method_from("x-original-method")?,
                origin,
                host,
                uri: path_only(uri)?,
                family,
            }))
        }
        Family::IngressNginx => {
            let Some(full) = one(headers, "x-original-url")? else {
                return Ok(None);
            };
            let malformed = OriginalError::Malformed("x-original-url");
            let url = url::Url::parse(full).map_err(|_| malformed.clone())?;
            if !matches!(url.scheme(), "http" | "https")
                || !url.username().is_empty()
                || url.password().is_some()
            {
                return Err(malformed);
            }
            // Its authority, as written, read like any other host.
            let authority = full
                .split_once("://")
                .map_or("", |(_, rest)| rest)
                .split(['/', '?', '#'])
                .next()
                .unwrap_or("");
            let host = Host::read(authority).map_err(|_| malformed)?;
            let uri = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            Ok(Some(Original {
                method: method_from("x-original-method")?,
                origin: Some(host.origin(url.scheme())),
                host: Some(host),
                uri,
                family,
            }))
        }
        Family::Forwarded => {
            let Some(uri) = one(headers, "x-forwarded-uri")? else {
                return Ok(None);
            };
            let (origin, host) = forwarded_origin("x-forwarded-host")?.unzip();
            Ok(Some(Original {
                method: method_from("x-forwarded-method")?,
                origin,
                host,
                uri: path_only(uri)?,
                family,
            }))
        }
        Family::Envoy => {
            if suffix.is_empty() {
                return Ok(None);
            }
            let (origin, host) = forwarded_origin("host")?.unzip();
            Ok(Some(Original {
                method: Some(check_method.clone()),
                origin,
                host,
                uri: path_only(suffix)?,
                family,
            }))
        }
    }
}

/// How a rotated session cookie can reach the browser through the front proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookiePath {
    /// As `Set-Cookie` on the 2xx answer (Traefik's `addAuthCookiesToResponse`,
    /// ingress-nginx).
    Answer,
    /// As `Set-Cookie` on the 2xx answer, and each one again in `X-Labgate-Set-Cookie-<n>`
    /// (n = 1, 2, ...): nginx's `$upstream_http_set_cookie` holds only the first of several,
    /// so deploy/nginx copies each numbered header into its own `add_header`.
    Numbered,
    /// Only on a redirect back to the page: the proxy drops `Set-Cookie` from a 2xx answer
    /// (Caddy, Envoy), or labgate cannot know that it does not (`auto` with Traefik's and
    /// Caddy's shared headers, or no original request at all).
    Redirect,
}

impl CookiePath {
    /// The way for the configured `source` and the original request read (if any).
    pub fn of(source: FrontProxy, original: Option<&Original>) -> CookiePath {
        match source {
            FrontProxy::Nginx => CookiePath::Numbered,
            FrontProxy::Traefik | FrontProxy::IngressNginx => CookiePath::Answer,
            FrontProxy::Caddy | FrontProxy::Envoy => CookiePath::Redirect,
            FrontProxy::Auto => match original.map(|o| o.family) {
                Some(Family::Nginx) => CookiePath::Numbered,
                Some(Family::IngressNginx) => CookiePath::Answer,
                Some(Family::Forwarded | Family::Envoy) | None => CookiePath::Redirect,
            },
        }
    }
}

/// Moves the `Set-Cookie` lines of an answer into `X-Labgate-Set-Cookie-<n>` (see
/// [`CookiePath::Numbered`]), keeping the first as `Set-Cookie` too (what copies of the
/// example before the numbered headers pass on): the headers of an auth answer must fit
/// nginx's `proxy_buffer_size`.
pub fn number_cookies(h: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = h
        .get_all(http::header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    if let Some(first) = cookies.first() {
        h.insert(http::header::SET_COOKIE, first.clone());
    }
    for (i, c) in cookies.into_iter().enumerate() {
        let name = format!("x-labgate-set-cookie-{}", i + 1);
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            h.insert(name, c);
        }
    }
}

impl Original {
    /// The path readings the rules are applied to.
    pub fn views(&self) -> PathViews {
        PathViews::new(self.uri.split('?').next().unwrap_or("/"))
    }

    /// The sign-in destination candidate: the original URL, absolute when it is on another
    /// origin than `public_origin` (the redirect validator decides whether that is allowed).
    pub fn redirect_candidate(&self, public_origin: &str) -> String {
        match &self.origin {
            Some(o) if o != public_origin => format!("{o}{}", self.uri),
            _ => self.uri.clone(),
        }
    }
}

/// The allow-lists a protected location adds in its forward-auth query
/// (`allowed_users`, `allowed_groups`, `allowed_ci_jobs`, comma-separated, repeatable),
/// unchecked: `config::narrowing` compiles them with the file's syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    /// `allowed_users`.
    pub users: Vec<String>,
    /// `allowed_groups`.
    pub groups: Vec<String>,
    /// `allowed_ci_jobs`.
    pub ci_jobs: Vec<String>,
}

/// The parameters an auth URL may carry (its query is the location's configuration).
const AUTH_PARAMETERS: &[&str] = &[
    "allowed_users",
    "allowed_groups",
    "allowed_ci_jobs",
    "host",
    "mode",
];

/// The first parameter of an auth URL labgate does not know, if any: a misspelt narrowing
/// or pin (`?hosts=`, `?allowed_emails=`) is refused, never silently ignored.
pub fn unknown_parameter(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, _)| k)
        .find(|k| !AUTH_PARAMETERS.contains(&k.as_ref()))
        .map(|k| k.chars().take(64).collect())
}

/// The host a protected location pins in its auth URL (`?host=admin.example.com`): the
/// front proxy's original request must name it. A location knows which app it protects; a
/// client can make the proxy's original URL name another host than the one it routed by
/// (an absolute request target: nginx routes by it, `$http_host` is the `Host` header).
pub fn pinned_host(query: Option<&str>) -> Result<Option<Host>, String> {
    let mut pinned: Option<Host> = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "host" {
            continue;
        }
        // Written by an operator: an IDN may be in Unicode, as in `hosts`.
        let h = Host::read(&v)
            .or_else(|why| match crate::access::HostPattern::parse(&v) {
                Ok(crate::access::HostPattern::Exact(name)) => Ok(Host { name, port: None }),
                _ => Err(why),
            })
            .map_err(|why| format!("the auth URL's host={v:?}: {why}"))?;
        if pinned.as_ref().is_some_and(|p| p.name != h.name) {
            return Err("the auth URL names two hosts (host=)".into());
        }
        pinned = Some(h);
    }
    Ok(pinned)
}

impl Narrowing {
    /// The lists `query` sets; `None` when it sets none.
    pub fn from_query(query: Option<&str>) -> Option<Narrowing> {
        let list = |name: &str| -> Vec<String> {
            let mut out = Vec::new();
            for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
                if k == name {
                    out.extend(
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
            out
        };
        let n = Narrowing {
            users: list("allowed_users"),
            groups: list("allowed_groups"),
            ci_jobs: list("allowed_ci_jobs"),
        };
        (n != Narrowing::default()).then_some(n)
    }
}

/// The headers of an allowing answer: every identity header always present (empty when
/// nobody is signed in, e.g. a public path) so that a front proxy copying them overwrites
/// whatever a client sent under those names.
pub fn answer_headers(
    h: &mut HeaderMap,
    principal: Option<&Principal>,
    assertion_header: &HeaderName,
    assertion: Option<HeaderValue>,
    access_token: Option<&str>,
) {
    set_identity_headers(h, principal, HeaderSet::ForwardAuth);
    h.insert(
        assertion_header.clone(),
        assertion.unwrap_or_else(|| HeaderValue::from_static("")),
    );
    if let Some(token) = access_token {
        let v = HeaderValue::from_str(token).unwrap_or_else(|_| HeaderValue::from_static(""));
        h.insert("x-auth-request-access-token", v);
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice
)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn read_auto(
        pairs: &[(&'static str, &'static str)],
    ) -> Result<Option<Original>, OriginalError> {
        original(&headers(pairs), &Method::GET, "", FrontProxy::Auto, true)
    }

    #[test]
    fn one_source_per_proxy() {
        // nginx as shipped: X-Original-*; the client's X-Forwarded-Uri is not believed.
        let h = headers(&[
            ("x-original-uri", "/admin/secret"),
            ("x-original-method", "POST"),
            ("x-forwarded-uri", "/public"),
            ("x-forwarded-method", "GET"),
            ("x-original-url", "http://x/public/"),
        ]);
        let o = original(&h, &Method::GET, "", FrontProxy::Nginx, true)
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.uri.as_str(), o.method),
            ("/admin/secret", Some(Method::POST))
        );
        let o = original(&h, &Method::GET, "", FrontProxy::Traefik, true)
            .unwrap()
            .unwrap();
        assert_eq!(o.uri, "/public");
        // Auto refuses the mixture.
        assert!(matches!(
            original(&h, &Method::GET, "", FrontProxy::Auto, true),
            Err(OriginalError::Conflict(_))
        ));
        // Untrusted peers: nothing.
        assert_eq!(
            original(&h, &Method::GET, "", FrontProxy::Nginx, false)
                .unwrap()
                .map(|o| o.uri),
            None
        );
    }

    #[test]
    fn auto_detects_one_family_and_refuses_mixtures() {
        let o = read_auto(&[("x-original-uri", "/a"), ("x-original-method", "PUT")])
            .unwrap()
            .unwrap();
        assert_eq!((o.uri.as_str(), o.method), ("/a", Some(Method::PUT)));
        let o = read_auto(&[("x-forwarded-uri", "/b"), ("x-forwarded-method", "DELETE")])
            .unwrap()
            .unwrap();
        assert_eq!((o.uri.as_str(), o.method), ("/b", Some(Method::DELETE)));
        for mixed in [
            &[("x-original-uri", "/a"), ("x-forwarded-method", "GET")][..],
            &[("x-forwarded-uri", "/a"), ("x-original-method", "GET")][..],
            &[("x-original-url", "https://h/a"), ("x-original-uri", "/a")][..],
            &[("x-original-uri", "/a"), ("x-original-uri", "/b")][..],
        ] {
            assert!(read_auto(mixed).is_err(), "{mixed:?}");
        }
        assert!(read_auto(&[("x-forwarded-proto", "https")])
            .unwrap()
            .is_none());
        // Envoy: the suffix, the check request's method, and nothing else alongside.
        let h = headers(&[("host", "app.example.com")]);
        let o = original(&h, &Method::PATCH, "/x?y=1", FrontProxy::Auto, true)
            .unwrap()
            .unwrap();
        assert_eq!((o.uri.as_str(), o.method), ("/x?y=1", Some(Method::PATCH)));
        let h = headers(&[("x-forwarded-uri", "/public")]);
        assert!(original(&h, &Method::GET, "/admin", FrontProxy::Auto, true).is_err());
    }

    #[test]
    fn malformed_originals_are_errors() {
        for bad in [
            &[("x-original-uri", "admin")][..],
            &[("x-original-url", "javascript:alert(1)")][..],
            &[("x-forwarded-uri", "/x"), ("x-forwarded-method", "G E T")][..],
        ] {
            assert!(read_auto(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_double_slash_path_is_judged_and_never_a_destination() {
        let o = read_auto(&[
            ("x-original-uri", "//evil.example/admin"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
        ])
        .unwrap()
        .unwrap();
        assert!(o.views().all().contains(&"/evil.example/admin"));
        let public = url::Url::parse("https://app.example.com").unwrap();
        let rd = o.redirect_candidate("https://app.example.com");
        assert_eq!(crate::oauth::redirect::validate(&rd, &public, &[]), None);
    }

    #[test]
    fn a_location_pins_one_host() {
        assert_eq!(pinned_host(None), Ok(None));
        assert_eq!(pinned_host(Some("allowed_groups=a")), Ok(None));
        let h = pinned_host(Some("host=Wiki.Example.com.&mode=redirect")).unwrap();
        assert_eq!(h.map(|h| h.name).as_deref(), Some("wiki.example.com"));
        assert!(pinned_host(Some("host=wiki.example.com&host=WIKI.example.com")).is_ok());
        let idn = pinned_host(Some("host=b%C3%BCcher.example"))
            .unwrap()
            .unwrap();
        assert_eq!(idn.name, "xn--bcher-kva.example");
        assert_eq!(
            unknown_parameter(Some("host=a.example&mode=redirect")),
            None
        );
        assert_eq!(
            unknown_parameter(Some("allowed_groups=a&Host=b")).as_deref(),
            Some("Host")
        );
        assert_eq!(
            unknown_parameter(Some("allowed_emails=a@b.c")).as_deref(),
            Some("allowed_emails")
        );
        for bad in [
            "host=a.example.com&host=b.example.com",
            "host=",
            "host=a%2540b",
            "host=a..b",
        ] {
            assert!(pinned_host(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn narrowing_lists_are_read_from_the_query() {
        assert!(Narrowing::from_query(None).is_none());
        assert!(Narrowing::from_query(Some("mode=redirect")).is_none());
        let n = Narrowing::from_query(Some("allowed_groups=a,b&allowed_users=x&allowed_groups=c"))
            .unwrap();
        assert_eq!(n.users, ["x"]);
        assert_eq!(n.groups, ["a", "b", "c"]);
        assert!(n.ci_jobs.is_empty());
    }
}
