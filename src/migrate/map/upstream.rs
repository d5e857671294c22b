//! `[upstream]` (one oauth2-proxy: every host) and the upstream of each merged app. oauth2-proxy
//! routes by path only, never by host (pkg/upstream/proxy.go: a gorilla/mux router, the
//! longest path first; a path ending in `/` matches every path under it, any other path
//! only itself; no match: 404; pkg/validation/upstreams.go refuses two upstreams at one
//! path). Its legacy `upstreams` become routes as `LegacyUpstreams.convert`
//! (pkg/apis/options/legacy_options.go) makes them: an http(s) URL's path is its route and
//! the request path goes upstream unchanged (pkg/upstream/http.go clears the URL's path);
//! `file:///dir#/route` serves files at `/route`; `static://<code>` and `unix://` are at
//! `/`. labgate sends every path of a host to one upstream: the one at `/` is kept, every
//! other route is listed with what to do instead, and warned about.

use super::{go_duration, humane, s, said, shown, M};

/// An upstream for forward-auth-only set-ups: labgate needs an upstream URL even when only
/// `/oauth2/auth` is used (as deploy/kubernetes/forward-auth.yaml does); port 9 is discard.
pub(super) const UNUSED_UPSTREAM: &str = "http://127.0.0.1:9";

/// One of oauth2-proxy's upstreams: the path it was routed by and where it led.
struct Route {
    /// As written.
    raw: String,
    /// oauth2-proxy's route: a prefix when it ends in `/`, else that path only.
    path: String,
    /// Where requests on that route went.
    to: To,
}

enum To {
    /// An http(s) origin or `unix:/path`: labgate can proxy there.
    Proxy(String),
    /// `static://<code>` or `file:///dev/null`: oauth2-proxy's own answer (forward-auth).
    Nothing,
    /// `file://`: oauth2-proxy served the files of this directory.
    Files(String),
    /// Not an upstream oauth2-proxy accepts: it refuses to start.
    Invalid,
}

fn route(raw: &str) -> Route {
    let route = |path: &str, to| Route {
        raw: raw.to_owned(),
        path: path.to_owned(),
        to,
    };
    let Ok(u) = url::Url::parse(raw.trim()) else {
        return route("/", To::Invalid);
    };
    let path = if u.path().is_empty() { "/" } else { u.path() };
    match u.scheme() {
        "http" | "https" if u.host_str().is_some() => {
            // The URL as written, without the path (no default port spelled out).
            let origin = match u.port() {
                Some(p) => format!("{}://{}:{p}", u.scheme(), u.host_str().unwrap_or("")),
                None => format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")),
            };
            route(path, To::Proxy(origin))
        }
        "unix" => route("/", To::Proxy(format!("unix:{}", u.path()))),
        "static" => route("/", To::Nothing),
        "file" if u.path() == "/dev/null" => route("/", To::Nothing),
        "file" => route(
            u.fragment().filter(|f| !f.is_empty()).unwrap_or(path),
            To::Files(u.path().to_owned()),
        ),
        _ => route("/", To::Invalid),
    }
}

/// What a request path reaches on a route, for comments.
fn paths(p: &str) -> String {
    if p == "/" {
        "every path".into()
    } else if p.ends_with('/') {
        format!("paths under {p}")
    } else {
        format!("the path {p} only")
    }
}

/// Where one host's requests go.
pub(super) enum Target {
    /// The app's URL and the comment for it.
    Url(String, String),
    /// oauth2-proxy answered by itself (forward-auth): labgate's unused placeholder and
    /// the comment for it.
    ForwardAuthOnly(String, String),
}

impl M<'_> {
    /// `[upstream]` of one oauth2-proxy, which served every host alike.
    pub(super) fn upstream(&mut self) {
        if !self.apps.is_empty() {
            self.app_upstreams();
        } else {
            let target = self.upstream_target(false);
            match target {
                Some(Target::Url(url, note) | Target::ForwardAuthOnly(url, note)) => {
                    self.doc.set("upstream", "url", s(url), note);
                }
                None => {}
            }
            if let Some((t, note)) = self.upstream_timeout() {
                self.doc.set("upstream", "timeout", t, note);
            }
        }
        for (key, what) in [
            ("pass_host_header", "passes the client's Host"),
            ("proxy_websockets", "passes WebSocket upgrades"),
        ] {
            if let Some((x, b)) = self.flag(key) {
                if b {
                    self.doc
                        .remark("upstream", format!("{}: labgate always {what}", said(x)));
                } else {
                    self.doc
                        .unmapped(format!("{}: labgate always {what}", said(x)));
                }
            }
        }
    }

    /// The upstream of this oauth2-proxy's `upstreams`: the one routed at `/` (else the
    /// first it can proxy to); every other route is listed as not mapped and warned about.
    /// With no upstreams: forward-auth only when `set_xauthrequest` is set, or always
    /// (`no_upstreams_forward_auth`, a merged app: its host needs an entry).
    pub(super) fn upstream_target(&mut self, no_upstreams_forward_auth: bool) -> Option<Target> {
        let Some((x, ups)) = self.list("upstreams", "upstream.url") else {
            return (no_upstreams_forward_auth || self.o.get("set_xauthrequest").is_some()).then(|| {
                Target::ForwardAuthOnly(
                    UNUSED_UPSTREAM.into(),
                    "no upstreams: forward-auth only; labgate needs an upstream URL anyway, unused when only /oauth2/auth is called".into(),
                )
            });
        };
        let routes: Vec<Route> = ups.iter().map(|u| route(u)).collect();
        let chosen = routes
            .iter()
            .position(|r| matches!(r.to, To::Proxy(_)) && r.path == "/")
            .or_else(|| routes.iter().position(|r| matches!(r.to, To::Proxy(_))));
        let target = match chosen.and_then(|i| routes.get(i)) {
            Some(Route {
                path,
                to: To::Proxy(url),
                ..
            }) => {
                let only = if path == "/" {
                    String::new()
                } else {
                    format!("; oauth2-proxy sent it {} (and answered 404 elsewhere), labgate forwards every path to it", paths(path))
                };
                let others = if routes.len() > 1 {
                    "; oauth2-proxy's other upstreams are in the list at the end"
                } else {
                    ""
                };
                Some(Target::Url(
                    url.clone(),
                    format!(
                        "{}: the protected app, the request path unchanged as in oauth2-proxy{only}{others}",
                        said(x)
                    ),
                ))
            }
            _ if routes.iter().any(|r| matches!(r.to, To::Nothing)) => Some(Target::ForwardAuthOnly(
                UNUSED_UPSTREAM.into(),
                format!("{}: forward-auth only (oauth2-proxy answered by itself); labgate needs an upstream URL anyway, unused when only /oauth2/auth is called", said(x)),
            )),
            _ => None,
        };
        let kept = chosen
            .and_then(|i| routes.get(i))
            .and_then(|r| match &r.to {
                To::Proxy(u) => Some(u.clone()),
                _ => None,
            });
        for (i, r) in routes.iter().enumerate() {
            if Some(i) == chosen {
                continue;
            }
            let entry = format!("{} entry {:?}", shown(x), r.raw);
            let dup = routes
                .iter()
                .take(i)
                .any(|o| o.path == r.path && !matches!(o.to, To::Invalid));
            if dup && !matches!(r.to, To::Invalid) {
                self.doc.unmapped(format!("{entry}: a second upstream at {}: oauth2-proxy refuses to start with two upstreams at one path", r.path));
                continue;
            }
            let now = match &kept {
                Some(k) => format!("those requests now reach {k}"),
                None => "those requests now reach no app".into(),
            };
            let (what, warn) = match &r.to {
                To::Proxy(u) => (
                    format!("oauth2-proxy sent {} to {u}; labgate sends every path of a host to one upstream, so {now}: route {} to {u} in the front proxy and protect that route with labgate's forward-auth ({}/auth), or give that app a host of its own ([[upstream]] hosts = [...])", paths(&r.path), r.path, self.prefix),
                    true,
                ),
                To::Files(dir) => (
                    format!("oauth2-proxy served the files of {dir} at {}; labgate serves no files, so {now}: serve them from a web server and proxy to it", paths(&r.path)),
                    kept.is_some(),
                ),
                To::Nothing if kept.is_some() => (
                    format!("oauth2-proxy answered {} itself (forward-auth); {now}", paths(&r.path)),
                    true,
                ),
                To::Nothing => continue,
                To::Invalid => (
                    "not an upstream oauth2-proxy accepts (http, https, unix, file or static URL): it refuses to start".into(),
                    false,
                ),
            };
            if warn {
                self.warnings.push(format!(
                    "{}: oauth2-proxy routed {} there by path; labgate cannot route by path (see the comment in the output)",
                    entry,
                    paths(&r.path)
                ));
            }
            self.doc.unmapped(format!("{entry}: {what}"));
        }
        target
    }

    /// `upstream_timeout`: the value and its comment.
    pub(super) fn upstream_timeout(&mut self) -> Option<(toml::Value, String)> {
        let (x, t) = self.text("upstream_timeout", "upstream.timeout")?;
        match go_duration(&t) {
            Some(d) => Some((
                s(humane(d)),
                format!("{}: the longest wait for the app's response head", said(x)),
            )),
            None => {
                self.doc.unmapped(format!("{}: not a duration", said(x)));
                None
            }
        }
    }
}
