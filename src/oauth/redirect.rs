//! Validation of `rd`, the post-sign-in (and sign-out) destination. Pure; used by every
//! endpoint that redirects, so there is one place to get open redirects right.
//!
//! Accepted: a relative path starting with exactly one `/` (not `//`, `/\`, `/<space>`,
//! no control characters, after any amount of percent-decoding), or an absolute
//! `http(s)://` URL whose origin is `public_url`'s or whose host is in
//! `allowed_redirect_domains` (exact, or `.example.com` = it and its subdomains), with
//! https (plain http too only when public_url is plain http) on the scheme's default port
//! unless the entry names a port (`wiki.example.net:8443`).
//! Anything else is rejected; callers fall back to `/`.

/// How many rounds of percent-decoding are examined (double, triple encoding...).
const DECODE_ROUNDS: usize = 8;

/// Returns the redirect target to use, or `None` when `rd` is not safe.
pub fn validate(rd: &str, public: &url::Url, allowed_domains: &[String]) -> Option<String> {
    // Our own redirects are always percent-encoded ASCII; anything else is a trick (or at
    // best not a valid Location).
    if rd.is_empty() || rd.len() > 4096 || !rd.is_ascii() {
        return None;
    }
    let view = decoded_view(rd)?;
    if rd.starts_with('/') {
        return relative_ok(rd, &view).then(|| rd.to_owned());
    }
    absolute(rd, public, allowed_domains)
}

/// `rd` percent-decoded round after round (at most [`DECODE_ROUNDS`]), or `None` when
/// some round holds a control character, white space, a BOM or a look-alike of `.`, `/`
/// or `\\`.
fn decoded_view(rd: &str) -> Option<String> {
    let mut view = rd.to_owned();
    for _ in 0..DECODE_ROUNDS {
        if view
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\u{feff}')
        {
            return None;
        }
        let next = percent_encoding::percent_decode_str(&view)
            .decode_utf8_lossy()
            .into_owned();
        if next == view {
            break;
        }
        view = next;
    }
    if view.chars().any(|c| {
        c.is_control()
            || c.is_whitespace()
            || crate::access::LOOKALIKES.iter().any(|(l, _)| *l == c)
    }) {
        return None;
    }
    Some(view)
}

/// A relative path: exactly one leading `/`, in every decoded view of the path part.
fn relative_ok(raw: &str, decoded: &str) -> bool {
    let path_of = |s: &str| s.split(['?', '#']).next().unwrap_or("").to_owned();
    for p in [path_of(raw), path_of(decoded), decoded.to_owned()] {
        let b = p.as_bytes();
        if b.first() != Some(&b'/') || matches!(b.get(1), Some(b'/' | b'\\')) {
            return false;
        }
    }
    // A backslash anywhere before the query is read as '/' by browsers; dot segments could
    // be normalised into `//host` by something on the way.
    let path = path_of(decoded);
    !path.contains('\\')
        && !path_of(raw).contains('\\')
        && !path.split('/').any(|seg| seg == "." || seg == "..")
}

fn absolute(raw: &str, public: &url::Url, allowed: &[String]) -> Option<String> {
    let lower = raw.get(..8)?.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    // Everything up to the path must be a plain authority: no userinfo, no backslash.
    let (_, after_scheme) = raw.split_once("://")?;
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains(['@', '\\', '%']) || after_scheme.contains('\\') {
        return None;
    }
    let url = url::Url::parse(raw).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    // A name a front proxy could route by: letters, digits, `-`, `.`, `_` (IPv6 in brackets).
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
    {
        return None;
    }
    let same_origin = url.origin() == public.origin();
    // A listed host is reached over https (or plain http too when public_url itself is
    // plain http), on the scheme's default port or the port the entry names:
    // `wiki.example.net` is not `http://wiki.example.net:8443`.
    let scheme_ok = url.scheme() == "https" || public.scheme() == "http";
    let listed = scheme_ok
        && allowed.iter().any(|entry| {
            let (d, port) = split_port(entry);
            let host_ok = match d.strip_prefix('.') {
                Some(base) => host == base || (host.len() > d.len() && host.ends_with(d)),
                None => host == d,
            };
            let default_port = if url.scheme() == "https" { 443 } else { 80 };
            host_ok && url.port_or_known_default() == Some(port.unwrap_or(default_port))
        });
    // The parsed path (dot segments resolved) must not start with `//` either: a later hop
    // could read it as a network-path reference to another host.
    if url.path().starts_with("//") || url.path().starts_with("/\\") {
        return None;
    }
    // What follows the authority meets the rules of a relative `rd`, in every decoded
    // view: `https://app/x%252f..%252f..%252f%252fevil.com` is `//evil.com` to an app that
    // decodes and resolves.
    let rest = after_scheme.get(authority.len()..).unwrap_or("");
    if rest.starts_with('/') && !relative_ok(rest, &decoded_view(rest)?) {
        return None;
    }
    (same_origin || listed).then(|| url.to_string())
}

/// An allow-list entry's host and the port it names, if any (`wiki.example.net:8443`).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    match entry.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (entry, None),
        },
        None => (entry, None),
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

    fn check(rd: &str) -> Option<String> {
        let public = url::Url::parse("https://app.example.com").unwrap();
        validate(
            rd,
            &public,
            &[
                ".example.org".to_owned(),
                "wiki.example.net".to_owned(),
                "ops.example.net:8443".to_owned(),
            ],
        )
    }

    #[test]
    fn accepted() {
        for rd in [
            "/",
            "/a/b?c=d",
            "/path?next=//elsewhere",
            "/x#frag",
            "https://app.example.com/deep?q=1",
            "https://example.org/",
            "https://sub.example.org/x",
            "https://wiki.example.net/x",
            "https://wiki.example.net:443/x",
            "https://ops.example.net:8443/x",
        ] {
            assert!(check(rd).is_some(), "{rd} should pass");
        }
    }

    #[test]
    fn rejected() {
        for rd in [
            "//evil.com",
            "https://app.example.com//evil.com",
            "https://app.example.com/x/..//evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "/%2F/evil.com",
            "/%2f%2fevil.com",
            "/%5Cevil.com",
            "/%255Cevil.com",
            "/%09/evil.com",
            "/\t/evil.com",
            "/ /evil.com",
            "https://evil.com",
            "https://app.example.com.evil.com/",
            "https://app.example.com@evil.com/",
            "https://evil.com\\@app.example.com",
            "http://app.example.com/",
            "https:/evil.com",
            "https:evil.com",
            "javascript:alert(1)",
            "data:text/html,x",
            "evil.com",
            "https://notexample.org/",
            "https://wiki.example.net.evil.com/",
            "https://sub.wiki.example.net/",
            "https://*.example.org/",
            "https://a!b.example.org/",
            "",
            "/\r\nLocation: https://evil.com",
            "/.%2fevil.com",
            "/%2e%2e/%2fevil.com",
            "/a/../",
            "/\u{3002}/evil.com",
            "/caf\u{e9}",
            // A listed host on another scheme or port than the entry allows.
            "http://wiki.example.net/x",
            "http://wiki.example.net:8443/x",
            "https://wiki.example.net:8443/x",
            "http://sub.example.org/x",
            "https://ops.example.net/x",
            "http://ops.example.net:8443/x",
            // Same origin, but the path is what a relative `rd` may not be.
            "https://app.example.com/x%252f..%252f..%252f%252fevil.com",
            "https://app.example.com/%2F%2Fevil.com",
            "https://app.example.com/%5Cevil.com",
            "https://app.example.com/%2e%2e/%2F/evil",
        ] {
            assert!(check(rd).is_none(), "{rd:?} should be rejected");
        }
    }
}
