//! Who a request is from, once authenticated, and how that identity is told to the upstream:
//! the one table of identity headers used by the proxy and by forward-auth.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::access::Subject;
use crate::session::Session;

/// An authenticated caller (SPEC §9: every kind goes through the same decision).
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person signed in through the browser flow (session cookie).
    Person(Arc<Session>),
    /// A person calling with a GitLab access token (`machine.gitlab_tokens`).
    UserToken(Arc<Session>),
    /// A GitLab CI/CD job with a verified ID token; `session.ci` holds its claims and
    /// `session.user` names the job, never the person who triggered it.
    CiJob(Arc<Session>),
}

impl Principal {
    /// The session (or the session-shaped identity of a bearer caller).
    pub fn session(&self) -> &Arc<Session> {
        match self {
            Principal::Person(s) | Principal::UserToken(s) | Principal::CiJob(s) => s,
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
            Principal::Person(s) | Principal::UserToken(s) => Subject::Person(&s.user),
            Principal::CiJob(s) => Subject::CiJob {
                project_path: ci_claim(s, "project_path").unwrap_or(""),
            },
        }
    }

    /// The username (or `ci:<project>`), for logs and pages.
    pub fn username(&self) -> &str {
        &self.session().user.username
    }
}

/// A string claim of a CI job's verified ID token.
fn ci_claim<'a>(s: &'a Session, name: &str) -> Option<&'a str> {
    s.ci.as_ref()?.get(name)?.as_str()
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

/// The values of [`IDENTITY_HEADERS`] for a principal: username, preferred username, email
/// (only when verified), groups (comma-separated; GitLab paths never contain commas), the
/// numeric user id (empty for a CI job: it is no person) and the kind.
fn identity_values(p: &Principal) -> [String; 6] {
    let u = &p.session().user;
    let email = match &u.email {
        Some(e) if u.email_verified => e.clone(),
        _ => String::new(),
    };
    let id = match p {
        Principal::CiJob(_) => String::new(),
        _ => u.id.to_string(),
    };
    [
        u.username.clone(),
        u.username.clone(),
        email,
        u.groups.join(","),
        id,
        p.kind().to_owned(),
    ]
}

/// Sets the identity headers of `p` under the names `name` picks; a value that cannot be a
/// header value (never for GitLab data, but the network is not trusted) is left empty.
pub fn set_identity_headers(
    h: &mut HeaderMap,
    p: Option<&Principal>,
    name: impl Fn(&IdentityHeader) -> &'static str,
) {
    let values = p.map(identity_values);
    for (i, header) in IDENTITY_HEADERS.iter().enumerate() {
        let value = values
            .as_ref()
            .and_then(|v| v.get(i))
            .and_then(|v| HeaderValue::from_str(v).ok())
            .unwrap_or_else(|| HeaderValue::from_static(""));
        h.insert(HeaderName::from_static(name(header)), value);
    }
}
