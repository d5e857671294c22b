//! Machine callers, the pure part: the compiled `[machine]` policy, matching a GitLab CI/CD
//! ID token's claims against `[[machine.allow]]`, and reading a bearer credential.
//!
//! The I/O (verifying the JWT against GitLab's keys, asking GitLab about an access token)
//! lives in `auth::bearer`; `config::machine` compiles the TOML. Paths are compared as
//! bytes, ASCII case-insensitively ([`crate::access::under_path`]).

use std::time::Duration;

use http::header::AUTHORIZATION;
use http::HeaderMap;
use serde::Deserialize;

use crate::access::under_path;

/// One `[[machine.allow]]` rule.
#[derive(Debug, Clone)]
pub struct AllowRule {
    /// Its position in the file (for logs).
    pub index: usize,
    /// `project_path`: exactly this project.
    pub project_path: Option<String>,
    /// `namespace_path`: projects in this group or its subgroups.
    pub namespace_path: Option<String>,
    /// `ref`: exactly this branch or tag.
    pub ref_: Option<String>,
    /// Required `ref_protected`; true unless the rule says `ref_protected = false`.
    pub ref_protected: bool,
    /// `environment`: exactly this deployment environment.
    pub environment: Option<String>,
}

/// The compiled `[machine]` policy.
#[derive(Debug, Clone, Default)]
pub struct MachinePolicy {
    /// The `aud` CI ID tokens must carry (pinned: a job chooses its own `aud`).
    pub audience: Option<String>,
    /// Whether GitLab access tokens are accepted.
    pub gitlab_tokens: bool,
    /// How long an access token's identity is cached.
    pub token_cache_ttl: Duration,
    /// `[[machine.allow]]`, first match admits.
    pub allow: Vec<AllowRule>,
}

impl MachinePolicy {
    /// Whether any bearer credential is accepted.
    pub fn enabled(&self) -> bool {
        !self.allow.is_empty() || self.gitlab_tokens
    }

    /// The first rule that admits the CI claims, or a sentence naming what failed.
    pub fn admit(&self, c: &CiClaims) -> Result<usize, String> {
        for r in &self.allow {
            let project_ok = r
                .project_path
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case(&c.project_path));
            let ns_ok = r
                .namespace_path
                .as_deref()
                .is_none_or(|n| under_path(&c.namespace_path, n));
            let ref_ok = r.ref_.as_deref().is_none_or(|x| x == c.ref_);
            let protected_ok = !r.ref_protected || c.ref_protected == "true";
            let env_ok = r
                .environment
                .as_deref()
                .is_none_or(|e| c.environment.as_deref() == Some(e));
            if project_ok && ns_ok && ref_ok && protected_ok && env_ok {
                return Ok(r.index);
            }
        }
        Err(format!(
            "no [[machine.allow]] rule admits project_path {:?} on ref {:?} (ref_protected {}, environment {:?})",
            c.project_path, c.ref_, c.ref_protected, c.environment.as_deref().unwrap_or("")
        ))
    }
}

/// The CI/CD ID token claims labgate reads (GitLab sends every value as a string).
#[derive(Debug, Clone, Deserialize)]
pub struct CiClaims {
    /// `acme/deployer`.
    pub project_path: String,
    /// `acme`.
    pub namespace_path: String,
    /// Branch or tag.
    #[serde(rename = "ref")]
    pub ref_: String,
    /// `"true"` or `"false"`.
    pub ref_protected: String,
    /// Deployment environment, if the job has one.
    #[serde(default)]
    pub environment: Option<String>,
    /// The token's id (unique per job token).
    #[serde(default)]
    pub jti: Option<String>,
    /// Issued at.
    pub iat: u64,
}

/// CI claims passed on in the assertion's `ci` object (the person who triggered the job
/// appears only here, as `user_login` / `user_id`, never as the caller's identity).
pub(crate) const CI_CLAIMS: &[&str] = &[
    "sub",
    "project_path",
    "project_id",
    "namespace_path",
    "namespace_id",
    "ref",
    "ref_type",
    "ref_protected",
    "environment",
    "environment_protected",
    "pipeline_id",
    "pipeline_source",
    "job_id",
    "user_id",
    "user_login",
    "sha",
    "runner_id",
];

/// What `X-Forwarded-User` says for a CI job: `ci:` cannot start a GitLab username (`:`
/// is not allowed in one), so an app can never mistake a job for a person.
pub(crate) fn ci_username(project_path: &str) -> String {
    format!("ci:{project_path}")
}

/// The bearer token of an `Authorization: Bearer <token>` header, if there is one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(crate::headers::bearer_credential)
        .filter(|t| !t.is_empty())
}

/// The unverified `iss` of a JWT-shaped token, to tell a CI ID token from other bearers.
pub(crate) fn jwt_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
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

    fn claims(project: &str, ns: &str) -> CiClaims {
        CiClaims {
            project_path: project.into(),
            namespace_path: ns.into(),
            ref_: "main".into(),
            ref_protected: "true".into(),
            environment: None,
            jti: None,
            iat: 0,
        }
    }

    #[test]
    fn namespace_rules_match_on_a_segment_boundary_and_never_panic() {
        let policy = MachinePolicy {
            allow: vec![AllowRule {
                index: 0,
                project_path: None,
                namespace_path: Some("acme".into()),
                ref_: None,
                ref_protected: true,
                environment: None,
            }],
            ..MachinePolicy::default()
        };
        assert!(policy.admit(&claims("acme/x", "acme")).is_ok());
        assert!(policy.admit(&claims("acme/sub/x", "ACME/sub")).is_ok());
        assert!(policy.admit(&claims("acmex/x", "acmex")).is_err());
        // Multi-byte characters where a byte slice would cut one in half.
        for ns in [
            "acmé",
            "acm\u{e9}/x",
            "éééé",
            "ac",
            "a\u{10348}",
            "acme\u{301}",
        ] {
            let _ = policy.admit(&claims("p/x", ns));
        }
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(AUTHORIZATION, "Bearer  abc ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(AUTHORIZATION, "bearer x".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("x"));
        h.insert(AUTHORIZATION, "Bearer\tx".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("x"));
        h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        assert_eq!(ci_username("acme/deployer"), "ci:acme/deployer");
    }
}
