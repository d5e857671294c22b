//! oauth2-proxy's cookie domains and redirect whitelist, read as its code reads them, and
//! labgate's one `session.cookie_domain` and `server.allowed_redirect_domains` made of them.
//! Pure functions; the comments that explain them are written by the callers.
//!
//! - Cookie domains (pkg/validation/cookie.go sorts them longest first; pkg/cookies/cookies.go
//!   `GetCookieDomain`): the first that is a *string* suffix of the request's host (with
//!   its port, as the browser sent it) is the cookie's `Domain`, else the shortest one. So
//!   `.wiki.example.com` does not match the host `wiki.example.com` itself; a leading dot
//!   means nothing to the browser (RFC 6265 §5.2.3).
//! - Whitelist (pkg/util/util.go `IsEndpointAllowed`, `SplitHostPort`): `host[:port]`, the
//!   port `*` = any port, no port = a URL without a port; `.example.com` and
//!   `*.example.com` both admit the domain itself and every name below it; both http and
//!   https.

/// The `Domain` oauth2-proxy gave a cookie it set for a request to `host` (`name[:port]`
/// as the browser sends it): the longest domain that is a suffix of it, else the shortest
/// one; `None` when there are none.
pub(crate) fn o2p_cookie_domain<'a>(domains: &'a [String], host: &str) -> Option<&'a str> {
    let mut sorted: Vec<&String> = domains.iter().collect();
    sorted.sort_by_key(|d| std::cmp::Reverse(d.len()));
    sorted
        .iter()
        .find(|d| host.ends_with(d.as_str()))
        .or_else(|| sorted.last())
        .map(|d| d.as_str())
}

/// Whether a cookie with `Domain=domain` is sent to `name` (RFC 6265 domain-match; a
/// leading dot ignored, case-insensitive).
pub(crate) fn covers(domain: &str, name: &str) -> bool {
    let base = domain.trim().trim_start_matches('.').to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    !base.is_empty()
        && (name == base
            || name
                .strip_suffix(base.as_str())
                .is_some_and(|rest| rest.ends_with('.')))
}

/// The entry that covers every other one (each is it or a name below it), if any.
pub(crate) fn parent_of_all(domains: &[String]) -> Option<&str> {
    domains
        .iter()
        .filter(|p| {
            domains
                .iter()
                .all(|d| covers(p, d.trim().trim_start_matches('.')))
        })
        .min_by_key(|p| p.len())
        .map(String::as_str)
}

/// `whitelist_domains` as labgate's `allowed_redirect_domains`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Redirects {
    /// labgate's entries: `host`, `.domain` (it and below), `host:port`.
    pub(crate) entries: Vec<String>,
    /// Entries whose port was `*` (any port): carried over as the default port only.
    pub(crate) any_port: Vec<String>,
    /// Entries oauth2-proxy matched no redirect with, and why.
    pub(crate) dropped: Vec<(String, &'static str)>,
}

/// Reads `whitelist_domains` as oauth2-proxy's `IsEndpointAllowed` does.
pub(crate) fn redirects(list: &[String]) -> Redirects {
    let mut out = Redirects::default();
    for raw in list {
        let d = raw.trim().to_ascii_lowercase();
        if d.is_empty() {
            continue;
        }
        let (host, port) = split_host_port(&d);
        let (dot, bare) = match host.strip_prefix("*.").or_else(|| host.strip_prefix('.')) {
            Some(rest) => (".", rest),
            None => ("", host),
        };
        if !is_host_name(bare) {
            out.dropped.push((
                raw.clone(),
                "not a host name: oauth2-proxy matched no redirect with it",
            ));
            continue;
        }
        if bare.starts_with('[') || !bare.contains('.') {
            out.dropped.push((
                raw.clone(),
                "labgate's allowed_redirect_domains takes names with a dot (a domain, an IPv4 address) only: not carried over, so rd there now falls back to /",
            ));
            continue;
        }
        let entry = match port {
            None | Some("") => format!("{dot}{bare}"),
            Some("*") => {
                out.any_port.push(raw.clone());
                format!("{dot}{bare}")
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => format!("{dot}{bare}:{n}"),
                _ => {
                    out.dropped.push((
                        raw.clone(),
                        "not a port: oauth2-proxy matched no redirect with it",
                    ));
                    continue;
                }
            },
        };
        if !out.entries.contains(&entry) {
            out.entries.push(entry);
        }
    }
    out
}

/// oauth2-proxy's `SplitHostPort`: the text after the last `:` is the port when it is
/// empty, `*` or digits; `[v6]` keeps its brackets here (labgate writes them so).
fn split_host_port(d: &str) -> (&str, Option<&str>) {
    match d.rsplit_once(':') {
        Some((h, p))
            if (p.is_empty() || p == "*" || p.bytes().all(|b| b.is_ascii_digit()))
                && (!h.starts_with('[') || h.ends_with(']')) =>
        {
            (h, Some(p))
        }
        _ => (d, None),
    }
}

/// A DNS name (letters, digits, `-`, `_`, non-ASCII for IDNs; dot-separated non-empty
/// labels), an IPv4 address or a bracketed IPv6 address.
fn is_host_name(name: &str) -> bool {
    if let Some(v6) = name.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        })
}

/// The host a browser sends for `url` (`name[:port]`, the port only when it is not the
/// scheme's default), what oauth2-proxy matched cookie domains against.
pub(crate) fn request_host(url: &url::Url) -> Option<String> {
    let name = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(p) => format!("{name}:{p}"),
        None => name,
    })
}
