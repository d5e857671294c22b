//! Who a request is from, once authenticated, and how that identity is told to the upstream:
//! the one table of identity headers used by the proxy and by forward-auth.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::access::{Subject, User};
use crate::machine::CiClaims;
use crate::session::{Caller, Derived, Session};

/// An authenticated caller (SPEC §9: every kind goes through the same decision).
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person signed in through the browser flow (session cookie).
    Person(Arc<Session>),
    /// A person calling with a GitLab access token (`machine.gitlab_tokens`).
    UserToken(Arc<Caller>),
    /// A GitLab CI/CD job with a verified ID token: the caller names the job, never the
    /// person who triggered it.
    CiJob(Arc<CiCaller>),
}

/// A CI/CD job: the caller (`ci:<project>`) and the claims of its verified ID token.
#[derive(Debug)]
pub struct CiCaller {
    /// The job as a caller.
    pub caller: Caller,
    /// The claims the access rules read.
    pub claims: CiClaims,
    /// The claims passed on in the assertion's `ci` object (`sub` among them).
    pub passed_on: serde_json::Map<String, serde_json::Value>,
}

impl Principal {
    /// Who the rules and the app see.
    pub fn user(&self) -> &User {
        match self {
            Principal::Person(s) => &s.user,
            Principal::UserToken(c) => &c.user,
            Principal::CiJob(j) => &j.caller.user,
        }
    }

    /// A handle distinct per session or credential (never the credential): the key of the
    /// assertion cache.
    pub fn handle(&self) -> &str {
        match self {
            Principal::Person(s) => &s.sid,
            Principal::UserToken(c) => &c.handle,
            Principal::CiJob(j) => &j.caller.handle,
        }
    }

    /// When GitLab last vouched for this identity (Unix time).
    pub fn verified(&self) -> u64 {
        match self {
            Principal::Person(s) => s.validated,
            Principal::UserToken(c) => c.verified,
            Principal::CiJob(j) => j.caller.verified,
        }
    }

    /// The values worked out once per session or caller.
    pub fn derived(&self) -> &Derived {
        match self {
            Principal::Person(s) => &s.derived,
            Principal::UserToken(c) => &c.derived,
            Principal::CiJob(j) => &j.caller.derived,
        }
    }

    /// The signed-in person's session (its GitLab tokens), for a person.
    pub fn session(&self) -> Option<&Arc<Session>> {
        match self {
            Principal::Person(s) => Some(s),
            _ => None,
        }
    }

    /// The CI claims passed on in the assertion, for a CI job.
    pub fn ci_claims(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        match self {
            Principal::CiJob(j) => Some(&j.passed_on),
            _ => None,
        }
    }

    /// `user`, `user_token` or `ci_job`: the `X-Labgate-Kind` header and the `kind` claim.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Person(_) => "user",
            Principal::UserToken(_) => "user_token",
            Principal::CiJob(_) => "ci_job",
        }
    }

    /// What the access policy judges.
    pub fn subject(&self) -> Subject<'_> {
        match self {
            Principal::Person(s) => Subject::Person(&s.user),
            Principal::UserToken(c) => Subject::Person(&c.user),
            Principal::CiJob(j) => Subject::CiJob {
                project_path: &j.claims.project_path,
            },
        }
    }

    /// The username (or `ci:<project>`), for logs and pages.
    pub fn username(&self) -> &str {
        &self.user().username
    }
}

/// One identity header: its name towards the upstream (sidecar proxy) and in a forward-auth
/// answer (oauth2-proxy's names, which nginx / Traefik / Caddy copy to the upstream).
#[derive(Debug, Clone, Copy)]
pub struct IdentityHeader {
    /// Sent to the upstream by the proxy.
    pub upstream: &'static str,
    /// Answered by `/oauth2/auth`.
    pub forward_auth: &'static str,
}

/// Every identity header labgate sets, in [`identity_values`] order (SPEC §4, §9).
const IDENTITY_HEADERS: [IdentityHeader; 6] = [
    IdentityHeader {
        upstream: "x-forwarded-user",
        forward_auth: "x-auth-request-user",
    },
    IdentityHeader {
        upstream: "x-forwarded-preferred-username",
        forward_auth: "x-auth-request-preferred-username",
    },
    IdentityHeader {
        upstream: "x-forwarded-email",
        forward_auth: "x-auth-request-email",
    },
    IdentityHeader {
        upstream: "x-forwarded-groups",
        forward_auth: "x-auth-request-groups",
    },
    IdentityHeader {
        upstream: "x-labgate-user-id",
        forward_auth: "x-auth-request-user-id",
    },
    IdentityHeader {
        upstream: "x-labgate-kind",
        forward_auth: "x-labgate-kind",
    },
];

/// Where a principal's identity headers go: towards the upstream (the proxy) or into a
/// forward-auth answer.
#[derive(Debug, Clone, Copy)]
pub enum HeaderSet {
    /// [`IdentityHeader::upstream`] names.
    Upstream,
    /// [`IdentityHeader::forward_auth`] names.
    ForwardAuth,
}

/// [`IDENTITY_HEADERS`]' names, parsed at compile time.
const UPSTREAM_NAMES: [HeaderName; 6] = [
    HeaderName::from_static(IDENTITY_HEADERS[0].upstream),
    HeaderName::from_static(IDENTITY_HEADERS[1].upstream),
    HeaderName::from_static(IDENTITY_HEADERS[2].upstream),
    HeaderName::from_static(IDENTITY_HEADERS[3].upstream),
    HeaderName::from_static(IDENTITY_HEADERS[4].upstream),
    HeaderName::from_static(IDENTITY_HEADERS[5].upstream),
];
const FORWARD_AUTH_NAMES: [HeaderName; 6] = [
    HeaderName::from_static(IDENTITY_HEADERS[0].forward_auth),
    HeaderName::from_static(IDENTITY_HEADERS[1].forward_auth),
    HeaderName::from_static(IDENTITY_HEADERS[2].forward_auth),
    HeaderName::from_static(IDENTITY_HEADERS[3].forward_auth),
    HeaderName::from_static(IDENTITY_HEADERS[4].forward_auth),
    HeaderName::from_static(IDENTITY_HEADERS[5].forward_auth),
];

/// The values of [`IDENTITY_HEADERS`] for a principal: username, preferred username, email
/// (only when verified), groups (comma-separated; GitLab paths never contain commas), the
/// numeric user id (empty for a CI job: it is no person) and the kind. A value that cannot
/// be a header value (never for GitLab data, but the network is not trusted) is empty.
fn identity_values(p: &Principal) -> Arc<[HeaderValue]> {
    let u = p.user();
    let email = match &u.email {
        Some(e) if u.email_verified => e.as_str(),
        _ => "",
    };
    let id = match p {
        Principal::CiJob(_) => String::new(),
        _ => u.id.to_string(),
    };
    let value = |v: &str| HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""));
    let username = value(&u.username);
    Arc::new([
        username.clone(),
        username,
        value(email),
        value(&u.groups.join(",")),
        value(&id),
        HeaderValue::from_static(p.kind()),
    ])
}

/// The identity header values of `p`, worked out once per session (see
/// [`crate::session::Derived`]).
fn cached_identity_values(p: &Principal) -> Arc<[HeaderValue]> {
    let (kind, values) = p
        .derived()
        .identity
        .get_or_init(|| (p.kind(), identity_values(p)));
    if *kind == p.kind() {
        values.clone()
    } else {
        identity_values(p)
    }
}

/// Sets the identity headers of `p` (empty values for no principal) under the names of
/// `set`.
pub fn set_identity_headers(h: &mut HeaderMap, p: Option<&Principal>, set: HeaderSet) {
    let names = match set {
        HeaderSet::Upstream => &UPSTREAM_NAMES,
        HeaderSet::ForwardAuth => &FORWARD_AUTH_NAMES,
    };
    match p.map(cached_identity_values) {
        Some(values) => {
            for (name, value) in names.iter().zip(values.iter()) {
                h.insert(name.clone(), value.clone());
            }
        }
        None => {
            for name in names {
                h.insert(name.clone(), HeaderValue::from_static(""));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IDENTITY_HEADERS;

    /// The names labgate sets (here) and the names it strips from clients
    /// (`headers::is_identity_header`) are two tables: every name set must be stripped, or a
    /// client could send it where labgate sets none (a public path, an absent email).
    #[test]
    fn every_identity_header_labgate_sets_is_one_it_strips() {
        let token_headers = ["x-forwarded-access-token", "x-auth-request-access-token"];
        for name in IDENTITY_HEADERS
            .iter()
            .flat_map(|h| [h.upstream, h.forward_auth])
            .chain(token_headers)
        {
            assert!(
                crate::headers::is_identity_header(name, "x-labgate-assertion"),
                "{name}"
            );
            let underscored = name.replace('-', "_").to_ascii_uppercase();
            assert!(
                crate::headers::is_identity_header(&underscored, "x-labgate-assertion"),
                "{underscored}"
            );
        }
    }
}
