//! Pure header rewriting for the forward path: hop-by-hop removal (RFC 9110 §7.6.1),
//! identity-header and bearer stripping, override headers from untrusted peers,
//! `X-Forwarded-*` / `X-Real-IP`, and the session cookie kept from upstream.
//!
//! Knows nothing of sessions or OAuth: callers pass what to set. The order matters and is
//! the router's: the client's `Connection`-nominated headers go first, before labgate sets
//! anything, so a client can never make labgate drop a header it set (SPEC §9).

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, COOKIE};

/// Headers labgate sets on every forwarded request: a `Connection` header cannot nominate
/// them away (they are replaced anyway, but `Host` must survive).
const MANAGED: &[&str] = &[
    "host",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
];

/// Removes the headers the `Connection` header names (RFC 9110 §7.6.1), except those labgate
/// manages. For a request, call this before labgate adds any header of its own.
pub fn strip_connection_nominated(headers: &mut HeaderMap) {
    if !headers.contains_key(CONNECTION) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        // `Upgrade` is the proxy's to handle (it re-adds it for a WebSocket handshake).
        .filter(|n| !MANAGED.contains(&n.as_str()) && *n != http::header::UPGRADE)
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// Headers that apply to one connection only (RFC 9110 §7.6.1, plus the legacy ones
/// proxies still meet, and RFC 9113 §3.2.1's h2c `HTTP2-Settings`), parsed at compile
/// time. `te` and `upgrade` are handled by the caller where they matter. A `static`: a
/// `const` array would be built and dropped again at every use.
static HOP_BY_HOP_NAMES: [HeaderName; 10] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

/// Removes the fixed hop-by-hop headers (including `Connection` itself). One look at each
/// header present rather than a lookup for every name: most messages carry none.
pub fn strip_fixed_hop_by_hop(headers: &mut HeaderMap) {
    if headers.keys().any(|k| HOP_BY_HOP_NAMES.contains(k)) {
        for name in &HOP_BY_HOP_NAMES {
            headers.remove(name);
        }
    }
}

/// Removes hop-by-hop headers and those the `Connection` header names (responses).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_connection_nominated(headers);
    strip_fixed_hop_by_hop(headers);
}

/// Headers that frameworks read as the "real" URL, scheme, host or client address (IIS,
/// Symfony and Laminas route on `X-Original-URL` / `X-Rewrite-URL`, Spring on
/// `X-Forwarded-Prefix`, Rack on `X-Forwarded-Ssl` / `X-Forwarded-Scheme` / `X-Url-Scheme` /
/// `Front-End-Https`, Tornado on `X-Scheme`, real-IP middlewares on `CF-Connecting-IP`, `Fastly-Client-IP`,
/// `Client-IP`, `X-Original-Forwarded-For`, chi / Echo / Rails on `X-Real-IP`, host
/// rewriting middlewares on `X-Host` / `X-Original-Host`): set by a front proxy that labgate
/// trusts, from any other peer they are a client's forgery and never reach the upstream
/// (SPEC §9). The whole list is in docs/security.md.
const OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-original-method",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-path",
    "x-envoy-original-path",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-protocol",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
    "x-host",
    "x-original-host",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "client-ip",
    "x-original-forwarded-for",
    // A client certificate's identity, as a TLS-terminating proxy passes it on.
    "x-forwarded-client-cert",
    "x-client-cert",
    "x-client-verify",
    "x-ssl-cert",
    "ssl-client-cert",
    "ssl-client-verify",
    "x-ssl-client-cert",
    "x-ssl-client-verify",
    "x-ssl-client-s-dn",
    "x-ssl-client-i-dn",
    "x-ssl-client-dn",
];

/// Method overrides (Rails' and Laravel's `X-HTTP-Method-Override`, Express's
/// `method-override`, ASP.NET's `X-HTTP-Method`): a request labgate judged as the `POST`
/// (or `GET`) it is would act as the `DELETE` it names. No front proxy sets them (a trusted
/// proxy only relays the client's), so they never reach the upstream, from any peer.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-method-override",
    "x-http-method",
];

/// Whether header `name` is `canonical` (lower-case, dashes) when `_` is read as `-` and
/// case is ignored: WSGI, PHP, CGI and Rack apps see `X_Real_IP` as `X-Real-IP`.
fn same_name(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name
            .bytes()
            .zip(canonical.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// Removes, in one pass over the header names, what a client may not hand the upstream:
/// every identity header in any spelling ([`strip_identity`]), the `_` look-alikes of the
/// managed headers ([`strip_underscore_lookalikes`]) and, from a peer that is not a trusted
/// proxy, the URL and client-address overrides ([`strip_overrides`]); method overrides from
/// every peer.
pub fn strip_client_supplied(
    headers: &mut HeaderMap,
    assertion_header: &HeaderName,
    peer_trusted: bool,
) {
    let assertion = assertion_header.as_str();
    remove_where(headers, |n| {
        let canon = canonical(n);
        let kinds = kinds_of(&canon);
        kinds & (IDENTITY | METHOD_OVERRIDE) != 0
            || identity_prefixed(&canon)
            || same_name(n, assertion)
            || (n.contains('_') && kinds & (MANAGED_NAME | OVERRIDE) != 0)
            || (!peer_trusted && kinds & OVERRIDE != 0)
    });
}

/// What a header name is to the rules above, by its canonical spelling (flags).
const IDENTITY: u8 = 1;
const OVERRIDE: u8 = 2;
const MANAGED_NAME: u8 = 4;
const METHOD_OVERRIDE: u8 = 8;

/// Every exact name of [`IDENTITY_EXACT`], [`OVERRIDES`], [`MANAGED`] and
/// [`METHOD_OVERRIDES`] with its flags: one lookup per header instead of a comparison with
/// each name of each list.
static KINDS: std::sync::LazyLock<rustc_hash::FxHashMap<&'static str, u8>> =
    std::sync::LazyLock::new(|| {
        let mut kinds = rustc_hash::FxHashMap::default();
        for (names, kind) in [
            (IDENTITY_EXACT, IDENTITY),
            (OVERRIDES, OVERRIDE),
            (MANAGED, MANAGED_NAME),
            (METHOD_OVERRIDES, METHOD_OVERRIDE),
        ] {
            for name in names {
                *kinds.entry(*name).or_insert(0) |= kind;
            }
        }
        kinds
    });

/// A header name as the lists spell it: lower case, `_` read as `-` (borrowed when it
/// already is, as every name in a `HeaderMap` without `_` is). The same reading as
/// [`same_name`].
fn canonical(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(
            name.chars()
                .map(|c| match c {
                    '_' => '-',
                    c => c.to_ascii_lowercase(),
                })
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// The flags of a canonical name (0: on no list).
fn kinds_of(canon: &str) -> u8 {
    KINDS.get(canon).copied().unwrap_or(0)
}

/// Whether a canonical name starts with one of the [`IDENTITY_PREFIXES`] (their first
/// bytes compared first: most names share none).
fn identity_prefixed(canon: &str) -> bool {
    let first = canon.as_bytes().first();
    IDENTITY_PREFIXES
        .iter()
        .any(|p| p.as_bytes().first() == first && canon.starts_with(p))
}

/// Whether `name` is one of the [`OVERRIDES`], in any spelling.
fn is_override(name: &str) -> bool {
    kinds_of(&canonical(name)) & OVERRIDE != 0
}

/// Whether `name` is a `_` spelling of a managed header or an override.
fn is_lookalike(name: &str) -> bool {
    name.contains('_') && kinds_of(&canonical(name)) & (MANAGED_NAME | OVERRIDE) != 0
}

/// Removes the URL and client-address override headers (see [`OVERRIDES`]), in any
/// spelling.
pub fn strip_overrides(headers: &mut HeaderMap) {
    remove_where(headers, is_override);
}

/// Removes `_` spellings of the headers labgate manages or the overrides (`X_Real_IP`,
/// `X_Forwarded_For`, ...): never a legitimate proxy's (nginx drops such names by default),
/// always a forgery aimed at apps that read `_` as `-`. From every peer.
pub fn strip_underscore_lookalikes(headers: &mut HeaderMap) {
    remove_where(headers, is_lookalike);
}

fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| doomed(n.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// The credential of an `Authorization` value whose scheme is `Bearer` (any case, any
/// spaces or tabs around it; RFC 9110 §11.4), possibly empty; `None` for other schemes.
/// The one reading of the header: what labgate judges is exactly what it strips.
pub fn bearer_credential(value: &HeaderValue) -> Option<&str> {
    let v = value.to_str().ok()?.trim_matches([' ', '\t']);
    let (scheme, rest) = v.split_once([' ', '\t']).unwrap_or((v, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_matches([' ', '\t']))
}

/// Removes every `Authorization: Bearer` credential: it was for labgate (or for nobody),
/// and the upstream is told who the caller is by the identity headers (SPEC §9). Other
/// schemes (`Basic`) are the application's own business.
pub fn strip_bearer(headers: &mut HeaderMap) {
    let auth = http::header::AUTHORIZATION;
    if !headers.contains_key(&auth) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(&auth)
        .iter()
        .filter(|v| bearer_credential(v).is_none())
        .cloned()
        .collect();
    headers.remove(&auth);
    for v in kept {
        headers.append(&auth, v);
    }
}

/// Identity headers labgate sets or could set: exact names (after lower-casing and reading
/// `_` as `-`, since WSGI/PHP/CGI apps cannot tell `X_Forwarded_User` from
/// `X-Forwarded-User`).
const IDENTITY_EXACT: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-forwarded-name",
    "x-forwarded-user-id",
    // Other auth proxies' identity headers, which apps are often set up to trust
    // (Authelia's and Authentik's `Remote-*`, Grafana's and Gitea's `X-WEBAUTH-USER`,
    // Apache's `X-Remote-User`): labgate never sets them, so a copy is a client's forgery.
    "x-user",
    "x-email",
    "x-auth-user",
    "x-auth-email",
    "x-auth-groups",
    "x-auth-username",
    "gap-auth",
    "x-goog-iap-jwt-assertion",
    "tailscale-user-login",
    "tailscale-user-name",
    "tailscale-user-profile-pic",
];

/// Identity header prefixes (same normalisation): labgate's own, and other auth proxies'
/// that apps are set up to trust (Authelia's `Remote-*`, Grafana's and Gitea's
/// `X-WEBAUTH-*`, Apache's `X-Remote-*`, authentik, mod_auth_openidc's `OIDC_CLAIM_*`,
/// Cloudflare Access, Google IAP, Azure App Service, AWS ALB, Pomerium).
const IDENTITY_PREFIXES: &[&str] = &[
    "x-labgate-",
    "x-auth-request-",
    "remote-",
    "x-remote-",
    "x-webauth-",
    "x-authentik-",
    "oidc-claim-",
    "oidc-access-token",
    "cf-access-",
    "x-goog-authenticated-user-",
    "x-ms-client-principal",
    "x-amzn-oidc-",
    "x-pomerium-",
];

/// Whether `name` is an identity header in any spelling.
pub fn is_identity_header(name: &str, assertion_header: &str) -> bool {
    let canon = canonical(name);
    kinds_of(&canon) & IDENTITY != 0
        || identity_prefixed(&canon)
        || same_name(name, assertion_header)
}

/// Removes every copy of every identity header the client may have sent.
pub fn strip_identity(headers: &mut HeaderMap, assertion_header: &HeaderName) {
    remove_where(headers, |n| {
        is_identity_header(n, assertion_header.as_str())
    });
}

/// Removes labgate's own cookies (`name`, `name_1`.., `name_csrf_*`, and `__Host-` forms)
/// from the `Cookie` header(s) so the session never reaches the upstream.
pub fn strip_own_cookies(headers: &mut HeaderMap, cookie_name: &str) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let mut kept = String::new();
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let name = pair.split('=').next().unwrap_or("").trim();
            if is_own_cookie(name, cookie_name) {
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(pair);
        }
    }
    headers.remove(COOKIE);
    if let Ok(v) = HeaderValue::from_str(&kept) {
        if !kept.is_empty() {
            headers.insert(COOKIE, v);
        }
    }
}

/// Whether a cookie name is one of labgate's.
pub fn is_own_cookie(name: &str, base: &str) -> bool {
    let name = name.strip_prefix("__Host-").unwrap_or(name);
    name == base
        || name
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('_'))
}

/// Who the request is from, as far as the connection tells.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// TCP peer address.
    pub addr: std::net::SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Which worker runtime serves the connection.
    pub worker: usize,
}

/// Whether `ip` is one of `server.trusted_proxies` (whose forwarded headers are believed).
pub fn is_trusted(trusted: &[ipnet::IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// What labgate knows about the client connection, after the trusted-proxy rule.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The address the request came from (the TCP peer, or the first untrusted hop).
    pub ip: IpAddr,
    /// `http` or `https` as seen by the user.
    pub proto: &'static str,
    /// Host the user asked for.
    pub host: Option<HeaderValue>,
    /// The incoming `X-Forwarded-For` chain, if the peer is trusted.
    pub forwarded_for: Option<String>,
}

/// Works out the client's address, scheme and host: `X-Forwarded-*` are believed only when
/// the TCP peer is within `trusted` (oauth2-proxy's GHSA-7x63 is what happens otherwise).
pub fn client_info(
    headers: &HeaderMap,
    peer: IpAddr,
    trusted: &[ipnet::IpNet],
    tls: bool,
) -> ClientInfo {
    let host = headers.get(http::header::HOST).cloned();
    let own_proto = if tls { "https" } else { "http" };
    if !is_trusted(trusted, peer) {
        return ClientInfo {
            ip: peer,
            proto: own_proto,
            host,
            forwarded_for: None,
        };
    }
    let chain = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let ip = client_ip(headers, peer, trusted);
    let proto = match headers.get(X_FORWARDED_PROTO).and_then(|v| v.to_str().ok()) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(p) if p.eq_ignore_ascii_case("http") => "http",
        _ => own_proto,
    };
    let host = headers.get(X_FORWARDED_HOST).cloned().or(host);
    ClientInfo {
        ip,
        proto,
        host,
        forwarded_for: (!chain.is_empty()).then_some(chain),
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The client's address: the TCP peer, or, when the peer is within `trusted`, the
/// right-most `X-Forwarded-For` hop that is not itself a trusted proxy (the walk stops at
/// the first hop that is no address). Allocates nothing, so the access log can afford it.
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[ipnet::IpNet]) -> IpAddr {
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let hops = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','));
    let mut ip = peer;
    for hop in hops {
        match hop.trim().parse::<IpAddr>() {
            Ok(addr) => {
                ip = addr;
                if !is_trusted(trusted, addr) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    ip
}

/// Sets `X-Forwarded-For` (appended to a trusted chain, else replaced), `-Proto`, `-Host`
/// and `X-Real-IP` (the client address labgate worked out); removes `Forwarded`.
pub fn set_forwarded(headers: &mut HeaderMap, info: &ClientInfo, peer: IpAddr) {
    headers.remove(http::header::FORWARDED);
    let peer_value = ip_value(peer);
    let xff = match &info.forwarded_for {
        Some(chain) => HeaderValue::from_str(&format!("{chain}, {peer}")).ok(),
        None => peer_value.clone(),
    };
    match xff {
        Some(v) => headers.insert(X_FORWARDED_FOR, v),
        None => headers.remove(X_FORWARDED_FOR),
    };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(info.proto));
    match &info.host {
        Some(h) => headers.insert(X_FORWARDED_HOST, h.clone()),
        None => headers.remove(X_FORWARDED_HOST),
    };
    let real = if info.ip == peer {
        peer_value
    } else {
        ip_value(info.ip)
    };
    match real {
        Some(v) => headers.insert(X_REAL_IP, v),
        None => headers.remove(X_REAL_IP),
    };
}

/// An address as a header value, formatted without a heap string.
fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    use std::io::Write;
    let mut buf = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{ip}").ok()?;
    let len = usize::try_from(cursor.position()).ok()?;
    HeaderValue::from_bytes(buf.get(..len)?).ok()
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

    /// The lists as they were read before the lookup table: every name compared with every
    /// entry, `_` read as `-`, case ignored. The table must doom exactly the same names.
    fn doomed_by_comparison(name: &str, assertion: &str, trusted: bool) -> bool {
        let any = |list: &[&str]| list.iter().any(|e| same_name(name, e));
        any(IDENTITY_EXACT)
            || IDENTITY_PREFIXES
                .iter()
                .any(|p| name.get(..p.len()).is_some_and(|head| same_name(head, p)))
            || same_name(name, assertion)
            || (name.contains('_') && (any(MANAGED) || any(OVERRIDES)))
            || any(METHOD_OVERRIDES)
            || (!trusted && any(OVERRIDES))
    }

    #[test]
    fn the_lookup_table_dooms_what_the_lists_name() {
        let mut names: Vec<String> = Vec::new();
        for base in IDENTITY_EXACT
            .iter()
            .chain(IDENTITY_PREFIXES)
            .chain(OVERRIDES)
            .chain(MANAGED)
            .chain(METHOD_OVERRIDES)
            .chain(
                [
                    "x-labgate-assertion",
                    "host",
                    "cookie",
                    "accept",
                    "x-forwarded",
                ]
                .iter(),
            )
        {
            for name in [
                base.to_string(),
                base.replace('-', "_"),
                base.replacen('-', "_", 1),
                format!("{base}x"),
                format!("{base}-extra"),
                format!("x{base}"),
                base.trim_end_matches('-').to_string(),
                base.get(..base.len().saturating_sub(1))
                    .unwrap()
                    .to_string(),
            ] {
                if !name.is_empty() && HeaderName::from_bytes(name.as_bytes()).is_ok() {
                    names.push(name);
                }
            }
        }
        assert!(names.len() > 400, "{}", names.len());
        for trusted in [false, true] {
            let mut h = HeaderMap::new();
            for n in &names {
                h.append(
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_static("1"),
                );
            }
            let assertion = HeaderName::from_static("x-labgate-assertion");
            strip_client_supplied(&mut h, &assertion, trusted);
            for n in &names {
                let expected = !doomed_by_comparison(n, assertion.as_str(), trusted);
                assert_eq!(
                    h.contains_key(n.as_str()),
                    expected,
                    "{n} (trusted: {trusted})"
                );
            }
        }
        // `is_identity_header` also reads names as written (upper case, `_`).
        for n in &names {
            let upper = n.to_ascii_uppercase();
            assert_eq!(
                is_identity_header(&upper, "x-labgate-assertion"),
                is_identity_header(n, "x-labgate-assertion"),
                "{upper}"
            );
        }
    }

    #[test]
    fn identity_header_spellings() {
        let a = "x-labgate-assertion";
        for n in [
            "X-Forwarded-User",
            "x-forwarded-user",
            "X_Forwarded_User",
            "x-forwarded_email",
            "X-Labgate-User-Id",
            "x_labgate_assertion",
            "X-Auth-Request-User",
            "X-Forwarded-Access-Token",
            "x-forwarded-groups",
            "X-Forwarded-Preferred-Username",
        ] {
            assert!(is_identity_header(n, a), "{n}");
        }
        for n in [
            "X-Forwarded-For",
            "x-forwarded-proto",
            "authorization",
            "cookie",
            "x-forwarded-users2",
        ] {
            assert!(!is_identity_header(n, a), "{n}");
        }
        assert!(is_identity_header("X-My-Assertion", "x-my-assertion"));
        assert!(is_identity_header("X-Labgate-Kind", a));
    }

    #[test]
    fn hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
        // A request's Connection cannot nominate the headers labgate manages.
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("Host, X-Forwarded-For, x-real-ip, x-other"),
        );
        h.insert("host", HeaderValue::from_static("app"));
        h.insert("x-other", HeaderValue::from_static("1"));
        strip_connection_nominated(&mut h);
        assert!(h.contains_key("host"));
        assert!(!h.contains_key("x-other"));
    }

    #[test]
    fn overrides_and_lookalikes_in_every_spelling() {
        let mut h = HeaderMap::new();
        for n in [
            "X_Real_IP",
            "x-original-url",
            "X_Rewrite_URL",
            "True_Client_IP",
            "X-Forwarded-Prefix",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("6.6.6.6"),
            );
        }
        h.append("x-keep", HeaderValue::from_static("1"));
        strip_overrides(&mut h);
        assert_eq!(h.len(), 1);
        let mut h = HeaderMap::new();
        for n in [
            "X_Forwarded_For",
            "x_forwarded_host",
            "X_Request_Id",
            "x-forwarded-for",
            "x-real-ip",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        strip_underscore_lookalikes(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-forwarded-for", "x-real-ip"]);
    }

    #[test]
    fn the_one_pass_strips_what_the_three_passes_strip() {
        let a = HeaderName::from_static("x-labgate-assertion");
        let names = [
            "x-forwarded-user",
            "X_Forwarded_User",
            "x-labgate-kind",
            "x-auth-request-email",
            "x-labgate-assertion",
            "x_real_ip",
            "x-real-ip",
            "x-original-url",
            "X_Rewrite_URL",
            "x-forwarded-for",
            "X_Forwarded_For",
            "x-forwarded-prefix",
            "true-client-ip",
            "x-request-id",
            "x_request_id",
            "accept",
            "cookie",
            "x_custom",
            "x-forwarded-proto",
        ];
        for trusted in [false, true] {
            let mut h = HeaderMap::new();
            for n in names {
                h.append(
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_static("v"),
                );
            }
            let mut three = h.clone();
            strip_identity(&mut three, &a);
            strip_underscore_lookalikes(&mut three);
            if !trusted {
                strip_overrides(&mut three);
            }
            strip_client_supplied(&mut h, &a, trusted);
            let sorted = |h: &HeaderMap| {
                let mut k: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
                k.sort();
                k
            };
            assert_eq!(sorted(&h), sorted(&three), "trusted = {trusted}");
        }
        assert!(ip_value("2001:db8::1".parse().unwrap()).unwrap() == "2001:db8::1");
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        assert_eq!(ip_value(longest).unwrap(), longest.to_string().as_str());
    }

    #[test]
    fn bearer_stripped_other_schemes_kept() {
        let mut h = HeaderMap::new();
        h.append("authorization", HeaderValue::from_static("Bearer abc"));
        h.append("authorization", HeaderValue::from_static("Basic eDp5"));
        h.append("authorization", HeaderValue::from_static("bEaReR x"));
        h.append("authorization", HeaderValue::from_static("Bearer\tx"));
        h.append("authorization", HeaderValue::from_static(" Bearer x"));
        strip_bearer(&mut h);
        let left: Vec<_> = h.get_all("authorization").iter().collect();
        assert_eq!(left, ["Basic eDp5"]);
    }

    #[test]
    fn own_cookies_removed() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; _labgate=xx; _labgate_1=yy"),
        );
        h.append(
            COOKIE,
            HeaderValue::from_static("_labgate_csrf_abc=zz; b=2; _labgatex=keep"),
        );
        strip_own_cookies(&mut h, "_labgate");
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2; _labgatex=keep");
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("__Host-_labgate=xx"));
        strip_own_cookies(&mut h, "_labgate");
        assert!(h.get(COOKIE).is_none());
    }

    #[test]
    fn forwarded_only_from_trusted() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        h.insert("host", HeaderValue::from_static("app.example"));
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let untrusted = client_info(&h, peer, &[], false);
        assert_eq!(untrusted.ip, peer);
        assert_eq!(untrusted.proto, "http");
        assert_eq!(untrusted.host.as_ref().unwrap(), "app.example");
        let trusted = client_info(&h, peer, &["10.0.0.0/8".parse().unwrap()], false);
        assert_eq!(trusted.ip.to_string(), "6.6.6.6");
        assert_eq!(trusted.proto, "https");
        let mut out = h.clone();
        set_forwarded(&mut out, &trusted, peer);
        assert_eq!(out.get("x-forwarded-for").unwrap(), "6.6.6.6, 10.1.2.3");
        let mut out = h.clone();
        set_forwarded(&mut out, &untrusted, peer);
        assert_eq!(out.get("x-forwarded-for").unwrap(), "10.1.2.3");
        assert_eq!(out.get("x-forwarded-host").unwrap(), "app.example");
    }
}
