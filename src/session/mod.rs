//! Sessions: what a signed-in browser carries (encrypted in its cookie) and how it is
//! sealed, split, read back and cleared. Knows nothing of HTTP routing or GitLab.

mod cookie_codec;
pub mod marks;
pub mod redis;
pub mod refresh;
mod store;
#[cfg(test)]
mod tests;
pub mod token_cache;

pub use cookie_codec::{cookies as request_cookies, CookieCodec, FlowCookie, FlowState};
pub use store::{Loaded, Sessions, StoreError};

use serde::{Deserialize, Serialize};

use crate::access::User;

/// Format version of the sealed session; bump when the layout changes incompatibly.
pub const SESSION_VERSION: u8 = 1;

/// A signed-in user's session. Its `Debug` never shows the GitLab tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Layout version.
    pub v: u8,
    /// Opaque random handle: the assertion's `sid`, never the cookie itself.
    pub sid: String,
    /// Who signed in and what GitLab says about their memberships.
    pub user: User,
    /// GitLab access token (sent upstream only with `pass_access_token`).
    pub access_token: String,
    /// GitLab refresh token, used to revalidate.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The ID token, kept only when `pass_authorization` needs it.
    #[serde(default)]
    pub id_token: Option<String>,
    /// Unix time the session began.
    pub created: u64,
    /// Unix time after which the session is over, whatever happens (absolute lifetime).
    pub expires: u64,
    /// Unix time identity and memberships were last confirmed with GitLab.
    pub validated: u64,
    /// The one host this session opens, when it was made for a host keeping its own
    /// session (labgate serving several apps without a cookie domain); `None`: every host
    /// the cookie reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Unix milliseconds at which the confirmation `validated` records began (GitLab's
    /// events are ordered against it: one during a confirmation makes it due again).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub checked_ms: u64,
    /// Where the sign-in came from, for the person's sessions page (the Redis store only:
    /// a cookie session is shown with the request in hand): the client's address and
    /// browser, as labgate saw them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<SignedInFrom>,
    /// What labgate derives from the fields above, worked out once per opened session
    /// rather than on every request; never stored, and empty in a clone.
    #[serde(skip)]
    pub derived: Derived,
}

/// Where a sign-in came from (shown to the person on their sessions page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedInFrom {
    /// The client's address (the forwarded one, from a trusted proxy).
    pub address: String,
    /// Its `User-Agent`, shortened to [`SignedInFrom::AGENT_MAX`] characters.
    pub agent: String,
}

impl SignedInFrom {
    /// Longest `User-Agent` kept.
    pub const AGENT_MAX: usize = 200;

    /// From a request's client address and headers.
    pub fn of(address: std::net::IpAddr, headers: &http::HeaderMap) -> SignedInFrom {
        let agent = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            // Printable ASCII only: no control or direction-changing characters to
            // disguise one browser as another on the page.
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(Self::AGENT_MAX)
            .collect();
        SignedInFrom {
            address: address.to_string(),
            agent,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A caller identified by a bearer credential (a GitLab access token, a CI/CD job's ID
/// token) rather than a session: who it is, a handle for caches and logs (never the
/// credential), and when GitLab vouched for it.
pub struct Caller {
    /// Who: the token's owner, or `ci:<project>` for a CI job.
    pub user: User,
    /// `tok:<hash prefix>` or `ci:<jti>`: distinct per credential.
    pub handle: String,
    /// Unix time GitLab vouched for it (the token check, the ID token's `iat`).
    pub verified: u64,
    /// The identity header values and the assertion, worked out once.
    pub derived: Derived,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user.username)
            .field("handle", &self.handle)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

/// Per-session values derived from its (immutable) fields: the identity header values and
/// the current assertion. A session's fields never change once opened (a revalidation
/// makes a new session), so nothing here goes stale.
#[derive(Default)]
pub struct Derived {
    /// The identity header values, for the principal kind that computed them.
    pub identity: std::sync::OnceLock<(&'static str, std::sync::Arc<[http::HeaderValue]>)>,
    /// The last signed assertion.
    pub assertion: std::sync::Mutex<Option<OwnAssertion>>,
}

/// A session's last signed assertion: for which principal kind and app, until when.
pub struct OwnAssertion {
    /// The principal kind it names.
    pub kind: &'static str,
    /// The app's origin it names (`aud`).
    pub aud: Box<str>,
    /// The header value.
    pub value: http::HeaderValue,
    /// Its expiry (Unix time).
    pub exp: u64,
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

/// Derived values never make two sessions differ.
impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Derived {}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &"<redacted>")
            .field("user", &self.user.username)
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .field("created", &self.created)
            .field("expires", &self.expires)
            .field("validated", &self.validated)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// When GitLab last confirmed this session, in Unix milliseconds.
    pub fn confirmed_ms(&self) -> u64 {
        self.checked_ms.max(self.validated.saturating_mul(1000))
    }

    /// Whether the absolute lifetime is over at `now`.
    pub fn expired(&self, now: u64) -> bool {
        now >= self.expires
    }
}

/// A person's session with the given times and nothing else (for the tests of the modules
/// that judge sessions).
#[cfg(test)]
pub(crate) fn test_session(created: u64, validated: u64, expires: u64) -> Session {
    Session {
        v: SESSION_VERSION,
        sid: "s".into(),
        user: User::default(),
        access_token: String::new(),
        refresh_token: None,
        id_token: None,
        created,
        expires,
        validated,
        host: None,
        checked_ms: 0,
        origin: None,
        derived: Default::default(),
    }
}
