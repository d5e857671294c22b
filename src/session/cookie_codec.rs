//! Sealing sessions and sign-in flow state into cookies.
//!
//! Values are encrypted and authenticated with AES-256-GCM by the `cookie` crate's private
//! jar, with the cookie's name bound in as associated data (a value moved to another cookie
//! name fails). Several keys may be configured: the first seals, all open (rotation).
//! A sealed session larger than one cookie is split into `name`, `name_1`, `name_2`...;
//! the first chunk starts with the chunk count so that stale chunks are never read.
//! Every cookie labgate sets goes through [`CookieCodec::build`], the one cookie policy.

use cookie::{Cookie, CookieJar, Key};
use http::header::{HeaderMap, COOKIE};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{Session, SESSION_VERSION};
use crate::config::{SameSite, SessionConfig};

/// Browsers keep at most ~4096 bytes per cookie (name, value and attributes together).
const MAX_CHUNK: usize = 3800;
/// Most chunks read back; a session above this is refused rather than reassembled.
const MAX_CHUNKS: usize = 16;
/// Sign-in flows must finish within GitLab's 10-minute authorization-code lifetime.
pub(crate) const FLOW_TTL_SECS: i64 = 600;

/// What `/oauth2/start` remembers for `/oauth2/callback`, sealed in a per-flow cookie.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    /// The `state` sent to GitLab.
    pub state: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// The OIDC nonce.
    pub nonce: String,
    /// Where to go after sign-in (already validated).
    pub rd: String,
    /// Unix time the flow began.
    pub started: u64,
    /// The Redirect URI the authorization named, when not public_url's (a host with its
    /// own session); the code exchange must name the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

impl std::fmt::Debug for FlowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowState")
            .field("state", &"<redacted>")
            .field("verifier", &"<redacted>")
            .field("nonce", &"<redacted>")
            .field("rd", &self.rd)
            .field("started", &self.started)
            .finish()
    }
}

/// Seals and opens labgate's cookies.
#[derive(Clone)]
pub struct CookieCodec {
    keys: Vec<Key>,
    /// Cookie name as set (with `__Host-` when secure and host-only).
    name: String,
    secure: bool,
    same_site: cookie::SameSite,
    domain: Option<String>,
}

impl std::fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieCodec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CookieCodec {
    /// A codec for the configured cookie name, secrets and attributes.
    pub fn new(cfg: &SessionConfig) -> Self {
        let keys = cfg
            .cookie_secrets
            .iter()
            .filter_map(|s| crate::config::decode_cookie_secret(s.expose()))
            .map(|bytes| Key::derive_from(&bytes))
            .collect();
        // `__Host-` makes the browser refuse the cookie unless it is Secure, host-only and
        // Path=/, so a sibling subdomain cannot plant or overwrite it.
        let name = if cfg.cookie_secure && cfg.cookie_domain.is_none() {
            format!("__Host-{}", cfg.cookie_name)
        } else {
            cfg.cookie_name.clone()
        };
        CookieCodec {
            keys,
            name,
            secure: cfg.cookie_secure,
            same_site: match cfg.cookie_samesite {
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::None => cookie::SameSite::None,
            },
            domain: cfg.cookie_domain.clone(),
        }
    }

    /// The session cookie's name as sent by browsers.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The one cookie policy: HttpOnly, Path=/, Secure and SameSite as configured.
    pub fn build(&self, name: String, value: String, max_age: Option<i64>) -> String {
        let mut c = Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site);
        if let Some(d) = &self.domain {
            c = c.domain(d.clone());
        }
        if let Some(age) = max_age {
            c = c.max_age(cookie::time::Duration::seconds(age.max(0)));
        }
        c.build().to_string()
    }

    /// Seals a value bound to `name` (Redis stores sessions sealed under their key).
    pub fn seal_value(&self, name: &str, plaintext: String) -> Option<String> {
        self.seal(name, plaintext)
    }

    /// Opens a value sealed for `name` with any configured key.
    pub fn open_value(&self, name: &str, sealed: &str) -> Option<String> {
        self.open(name, sealed)
    }

    /// The cookie that carries a Redis session handle (sealed, so it cannot be forged or
    /// guessed from Redis contents).
    pub fn handle_cookie(&self, handle: &str, max_age: i64) -> Option<String> {
        let sealed = self.seal(&self.name, format!("h:{handle}"))?;
        Some(self.build(self.name.clone(), sealed, Some(max_age)))
    }

    /// The Redis session handle from the request's cookie.
    pub fn read_handle(&self, headers: &HeaderMap) -> Option<String> {
        let present = cookies(headers);
        let value = present.iter().find(|(n, _)| *n == self.name)?.1;
        self.open(&self.name, value)?
            .strip_prefix("h:")
            .map(str::to_owned)
    }

    fn seal(&self, name: &str, plaintext: String) -> Option<String> {
        let key = self.keys.first()?;
        let mut jar = CookieJar::new();
        jar.private_mut(key)
            .add(Cookie::new(name.to_owned(), plaintext));
        jar.get(name).map(|c| c.value().to_owned())
    }

    fn open(&self, name: &str, value: &str) -> Option<String> {
        let jar = CookieJar::new();
        self.keys.iter().find_map(|key| {
            jar.private(key)
                .decrypt(Cookie::new(name.to_owned(), value.to_owned()))
                .map(|c| c.value().to_owned())
        })
    }

    fn chunk_name(&self, i: usize) -> String {
        if i == 0 {
            self.name.clone()
        } else {
            format!("{}_{i}", self.name)
        }
    }

    /// `Set-Cookie` values that store `session`, and expire chunks the request carried
    /// beyond the new count.
    pub fn session_cookies(&self, session: &Session, request: &HeaderMap, now: u64) -> Vec<String> {
        let Ok(json) = serde_json::to_string(session) else {
            return Vec::new();
        };
        let Some(sealed) = self.seal(&self.name, json) else {
            return Vec::new();
        };
        let parts: Vec<&str> = split_ascii(&sealed, MAX_CHUNK);
        let max_age = i64::try_from(session.expires.saturating_sub(now)).unwrap_or(i64::MAX);
        let mut out = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let value = if i == 0 {
                format!("{}.{part}", parts.len())
            } else {
                (*part).to_owned()
            };
            out.push(self.build(self.chunk_name(i), value, Some(max_age)));
        }
        let present = cookies(request);
        for i in parts.len()..MAX_CHUNKS {
            let name = self.chunk_name(i);
            if present.iter().any(|(n, _)| *n == name) {
                out.push(self.build(name, String::new(), Some(0)));
            }
        }
        out
    }

    /// The sealed session exactly as the request carries it (all chunks, with the count
    /// prefix): the key of the decoded-session cache. Borrowed when it is one cookie.
    pub fn raw_session<'a>(&self, headers: &'a HeaderMap) -> Option<std::borrow::Cow<'a, str>> {
        let first = cookie_value(headers, &self.name)?;
        let (count, _) = first.split_once('.')?;
        if count == "1" {
            return Some(std::borrow::Cow::Borrowed(first));
        }
        let count: usize = count
            .parse()
            .ok()
            .filter(|c| (2..=MAX_CHUNKS).contains(c))?;
        let mut all = String::from(first);
        for i in 1..count {
            all.push('|');
            all.push_str(cookie_value(headers, &self.chunk_name(i))?);
        }
        Some(std::borrow::Cow::Owned(all))
    }

    /// Reads and opens the session from the request's cookies. `None` for no, a tampered,
    /// truncated or foreign-key cookie, or an unknown layout.
    pub fn read_session(&self, headers: &HeaderMap) -> Option<Session> {
        let present = cookies(headers);
        let first = present.iter().find(|(n, _)| *n == self.name)?.1;
        let (count, head) = first.split_once('.')?;
        let count: usize = count
            .parse()
            .ok()
            .filter(|c| (1..=MAX_CHUNKS).contains(c))?;
        let mut sealed = String::with_capacity(count * MAX_CHUNK);
        sealed.push_str(head);
        for i in 1..count {
            let name = self.chunk_name(i);
            sealed.push_str(present.iter().find(|(n, _)| *n == name)?.1);
        }
        let json = self.open(&self.name, &sealed)?;
        let session: Session = serde_json::from_str(&json).ok()?;
        (session.v == SESSION_VERSION).then_some(session)
    }

    /// `Set-Cookie` values that expire every labgate cookie the request carried.
    pub fn clear_all(&self, headers: &HeaderMap, base: &str) -> Vec<String> {
        cookies(headers)
            .into_iter()
            .filter(|(n, _)| crate::headers::is_own_cookie(n, base))
            .map(|(n, _)| self.build(n.to_owned(), String::new(), Some(0)))
            .collect()
    }

    /// The per-flow CSRF cookie name for a `state` (two tabs signing in at once each have
    /// their own).
    pub fn flow_cookie_name(&self, state: &str) -> String {
        let digest = sha2::Sha256::digest(state.as_bytes());
        let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("{}_csrf_{tag}", self.name)
    }

    /// `Set-Cookie` values that expire the flow cookies `request` carries beyond the
    /// newest `keep` (unreadable ones first, then the oldest): a browser that starts many
    /// sign-ins (or is made to, by links) never piles up a Cookie header the server refuses.
    pub fn prune_flows(&self, request: &HeaderMap, keep: usize) -> Vec<String> {
        let prefix = format!("{}_csrf_", self.name);
        let mut flows: Vec<(u64, &str)> = cookies(request)
            .into_iter()
            .filter(|(n, _)| n.starts_with(prefix.as_str()))
            .map(|(n, v)| {
                let started = self
                    .open(n, v)
                    .and_then(|json| serde_json::from_str::<FlowState>(&json).ok())
                    .map_or(0, |f| f.started);
                (started, n)
            })
            .collect();
        flows.sort_unstable();
        let excess = flows.len().saturating_sub(keep);
        flows
            .into_iter()
            .take(excess)
            .map(|(_, n)| self.build(n.to_owned(), String::new(), Some(0)))
            .collect()
    }

    /// The `Set-Cookie` value that starts a sign-in flow.
    pub fn flow_cookie(&self, flow: &FlowState) -> Option<String> {
        let name = self.flow_cookie_name(&flow.state);
        let sealed = self.seal(&name, serde_json::to_string(flow).ok()?)?;
        Some(self.build(name, sealed, Some(FLOW_TTL_SECS)))
    }

    /// Opens the flow cookie for `state`: `Err(FlowCookie::Missing)` when the browser did not
    /// send it back, `Err(FlowCookie::Invalid)` when it does not open or match.
    pub fn read_flow(
        &self,
        headers: &HeaderMap,
        state: &str,
        now: u64,
    ) -> Result<FlowState, FlowCookie> {
        let name = self.flow_cookie_name(state);
        let present = cookies(headers);
        let value = present
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or(FlowCookie::Missing)?
            .1;
        let json = self.open(&name, value).ok_or(FlowCookie::Invalid)?;
        let flow: FlowState = serde_json::from_str(&json).map_err(|_| FlowCookie::Invalid)?;
        let same = subtle_eq(flow.state.as_bytes(), state.as_bytes());
        if !same {
            return Err(FlowCookie::Invalid);
        }
        if now.saturating_sub(flow.started) > FLOW_TTL_SECS as u64 {
            return Err(FlowCookie::Expired);
        }
        Ok(flow)
    }

    /// Expires the flow cookie for `state`.
    pub fn clear_flow(&self, state: &str) -> String {
        self.build(self.flow_cookie_name(state), String::new(), Some(0))
    }
}

/// Why the flow cookie could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowCookie {
    /// Not sent back by the browser.
    Missing,
    /// Does not open or does not match the state.
    Invalid,
    /// Older than the flow lifetime.
    Expired,
}

/// Constant-time equality, so a state comparison leaks no prefix length.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits ASCII text into pieces of at most `n` bytes.
fn split_ascii(s: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::with_capacity(s.len() / n + 1);
    let mut rest = s;
    while rest.len() > n {
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out.push(rest);
    out
}

/// The value of the first cookie called `name`, without allocating.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    pairs(headers).find_map(|(n, v)| (n == name).then_some(v))
}

/// All (name, value) pairs of the request's `Cookie` headers.
pub fn cookies(headers: &HeaderMap) -> Vec<(&str, &str)> {
    pairs(headers).collect()
}

/// The (name, value) pairs of the request's `Cookie` headers as the `cookie` crate splits
/// them (RFC 6265 §5.4: `; `-separated `name=value`, whitespace trimmed, a pair without `=`
/// skipped), borrowed from the headers: nothing is allocated or decoded.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(|c| {
            let c = c.ok()?;
            Some((c.name_raw()?, c.value_raw()?))
        })
}
