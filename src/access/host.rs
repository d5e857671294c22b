//! Which app a request is for: the one canonical reading of a host, and the host patterns
//! of the configuration (`hosts = ["wiki.example.com", "*.tools.example.com"]`).
//!
//! A host reaches labgate in many spellings that name one app to a browser, a DNS resolver
//! and a front proxy's `server_name`: `WIKI.example.com`, `wiki.example.com.` (the root
//! label), `wiki.example.com:443`, an IDN in Unicode or in punycode. Rules and upstreams are
//! chosen on one reading: lower case, no trailing dot, IDNA to ASCII (UTS #46, what browsers
//! send), the port apart. Anything a browser cannot send as a host (percent-encoding,
//! userinfo, white space, an empty label, a list) is refused, never guessed at.

use std::fmt;

/// A host as labgate judges it: its canonical name and the port written, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Lower-case ASCII (IDNA), no trailing dot; an IPv6 address in brackets.
    pub name: String,
    /// The port written after the name, if any.
    pub port: Option<u16>,
}

impl Host {
    /// Reads a `host[:port]` (a `Host` header, an `:authority`, `X-Forwarded-Host`).
    pub fn read(text: &str) -> Result<Host, &'static str> {
        let text = text.trim();
        if text.is_empty() || text.len() > 300 {
            return Err("the host is empty or too long");
        }
        if text
            .bytes()
            .any(|b| !(b.is_ascii_graphic()) || b"%@\\/,;?#\"'<>`{}|^".contains(&b))
        {
            return Err("the host holds a character no host name has");
        }
        let (name, port) = split_port(text)?;
        Ok(Host {
            name: canonical_name(name)?,
            port,
        })
    }

    /// `scheme://name[:port]`, the port left out when it is the scheme's default: the
    /// origin an assertion names as its audience.
    pub fn origin(&self, scheme: &str) -> String {
        let default = if scheme == "https" { 443 } else { 80 };
        match self.port {
            Some(p) if p != default => format!("{scheme}://{}:{p}", self.name),
            _ => format!("{scheme}://{}", self.name),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// `name` and the port after it (`[v6]:port` too); a port must be 1-65535, written in at
/// most five digits.
fn split_port(text: &str) -> Result<(&str, Option<u16>), &'static str> {
    let bad_port = "the host's port is not a port number";
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or("the host's IPv6 address is not closed")?;
        let after = rest.get(end + 1..).unwrap_or("");
        let name = text.get(..end + 2).unwrap_or(text);
        match after {
            "" => (name, None),
            p => (name, Some(p.strip_prefix(':').ok_or(bad_port)?)),
        }
    } else {
        match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or(bad_port)?)
        }
        Some(_) => return Err(bad_port),
    };
    Ok((name, port))
}

/// The canonical host name: IDNA to ASCII, lower case, no trailing dot.
fn canonical_name(name: &str) -> Result<String, &'static str> {
    let bad = "the host is not a valid host name";
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.starts_with('.') || name.contains("..") {
        return Err(bad);
    }
    match url::Host::parse(name).map_err(|_| bad)? {
        url::Host::Domain(d) => {
            let d = d.to_ascii_lowercase();
            // Letters, digits, `-` and `.` (and `_`, which internal names use): what a
            // name a front proxy routes by can hold. No `*`, `!`, `$`...
            if d.is_empty()
                || d.ends_with('.')
                || d.split('.').any(|l| l.is_empty() || l.len() > 63)
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            {
                return Err(bad);
            }
            Ok(d)
        }
        // Only the dotted-quad spelling: `0x7f.1`, `2130706433` are 127.0.0.1 to a URL
        // parser, another name to a front proxy.
        url::Host::Ipv4(ip) if ip.to_string() == name => Ok(ip.to_string()),
        url::Host::Ipv4(_) => Err(bad),
        url::Host::Ipv6(ip) => Ok(format!("[{ip}]")),
    }
}

/// A host pattern of the configuration: one host, or `*.` and a domain (every name below
/// it, at any depth; not the domain itself). Ports are not part of a pattern: an app is
/// its host name, whichever port the front proxy listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `wiki.example.com`.
    Exact(String),
    /// `*.tools.example.com`, kept as `.tools.example.com`.
    Below(String),
}

impl HostPattern {
    /// Parses a pattern as written in the configuration.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let bad = || {
            format!("{text:?} is not a host: write a host name such as \"wiki.example.com\" or \"*.tools.example.com\" (every host below tools.example.com), without a scheme, port or path")
        };
        let (wild, name) = match text.trim().strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text.trim()),
        };
        if name.contains([':', '*', '/']) {
            return Err(bad());
        }
        // Unicode is welcome here (IDNA turns it into what browsers send).
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || "%@\\,;?#".contains(c)) {
            return Err(bad());
        }
        let name = canonical_name(name).map_err(|_| bad())?;
        if wild && !name.contains('.') {
            return Err(bad());
        }
        Ok(if wild {
            HostPattern::Below(format!(".{name}"))
        } else {
            HostPattern::Exact(name)
        })
    }

    /// Whether a canonical host name matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == name,
            HostPattern::Below(dot_base) => name.len() > dot_base.len() && name.ends_with(dot_base),
        }
    }

    /// The redirect allow-list entry that admits the same hosts' origins after sign-in
    /// (`.domain` also admits the domain itself, which a `*.` pattern does not serve: the
    /// served-host check still refuses it).
    pub fn redirect_entry(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Below(dot_base) => dot_base.clone(),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Below(dot_base) => write!(f, "*{dot_base}"),
        }
    }
}

/// Whether any pattern of a `hosts` list matches (an empty list: every host). A host that
/// could not be read (`None`) matches only an empty list.
pub fn listed(patterns: &[HostPattern], host: Option<&str>) -> bool {
    patterns.is_empty() || host.is_some_and(|h| patterns.iter().any(|p| p.matches(h)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_host_read_alike() {
        for text in [
            "wiki.example.com",
            "WIKI.Example.COM",
            "wiki.example.com.",
            "wiki.example.com:443",
            " wiki.example.com ",
        ] {
            assert_eq!(Host::read(text).unwrap().name, "wiki.example.com", "{text}");
        }
        assert_eq!(
            Host::read("xn--bcher-kva.example").unwrap().name,
            "xn--bcher-kva.example"
        );
        assert_eq!(Host::read("[::1]:8080").unwrap().name, "[::1]");
        assert_eq!(Host::read("[::1]:8080").unwrap().port, Some(8080));
        assert_eq!(Host::read("127.0.0.1").unwrap().name, "127.0.0.1");
    }

    #[test]
    fn what_no_browser_sends_is_refused() {
        for text in [
            "",
            "wiki%2eexample.com",
            "user@wiki.example.com",
            "wiki.example.com:0",
            "wiki.example.com:65536",
            "wiki.example.com:+80",
            "wiki.example.com:",
            "wiki.example.com:80:80",
            "wiki..example.com",
            ".wiki.example.com",
            "wiki.example.com..",
            "a.com, b.com",
            "wiki.example.com/x",
            "wiki example.com",
            "[::1",
            "[::1]x",
            "*.tools.example.com",
            "a!$&.example.com",
            "0x7f.1",
            "2130706433",
            "127.1",
            "0177.0.0.1",
        ] {
            assert!(Host::read(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn patterns() {
        let wiki = HostPattern::parse("Wiki.Example.com").unwrap();
        let tools = HostPattern::parse("*.tools.example.com").unwrap();
        assert!(wiki.matches("wiki.example.com"));
        assert!(!wiki.matches("wiki.example.com.evil"));
        assert!(tools.matches("a.tools.example.com"));
        assert!(tools.matches("a.b.tools.example.com"));
        assert!(!tools.matches("tools.example.com"));
        assert!(!tools.matches("xtools.example.com"));
        assert_eq!(tools.to_string(), "*.tools.example.com");
        for bad in [
            "https://wiki.example.com",
            "wiki.example.com:8443",
            "*.com",
            "*",
            "a.*.example.com",
            "wiki.example.com/x",
            "",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            HostPattern::parse("bücher.example").unwrap(),
            HostPattern::Exact("xn--bcher-kva.example".into())
        );
        assert!(listed(&[], None));
        assert!(!listed(std::slice::from_ref(&wiki), None));
        assert!(listed(&[tools, wiki], Some("wiki.example.com")));
    }

    #[test]
    fn origins_leave_out_default_ports() {
        let h = Host::read("wiki.example.com:443").unwrap();
        assert_eq!(h.origin("https"), "https://wiki.example.com");
        assert_eq!(h.origin("http"), "http://wiki.example.com:443");
        let h = Host::read("wiki.example.com").unwrap();
        assert_eq!(h.origin("http"), "http://wiki.example.com");
    }
}
