//! Bearer credentials for scripts and CI jobs (`[machine]`).
//!
//! - A GitLab CI/CD ID token (`id_tokens:` in .gitlab-ci.yml): an RS256 JWT from the
//!   configured GitLab, verified against its JWKS with `aud` pinned to `machine.audience`,
//!   then matched against `[[machine.allow]]` (first match admits).
//! - A GitLab access token (personal or OAuth), with `machine.gitlab_tokens = true`:
//!   validated by `GET /api/v4/user` (+ groups and project access as the rules need), cached
//!   under a SHA-256 of the token for `machine.token_cache_ttl`; then the ordinary access
//!   rules apply as for a signed-in person.
//!
//! Bearer callers never get a cookie, and their `Authorization` header is not forwarded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::HeaderMap;
use serde::Deserialize;
use sha2::Digest;

use crate::access::User;
use crate::app::App;
use crate::config::file::MachineFile;
use crate::config::{parse_duration, Problem, ServerConfig};
use crate::session::{Session, SESSION_VERSION};

/// Most cached access-token identities kept.
const TOKEN_CACHE_MAX: usize = 10_000;

/// One `[[machine.allow]]` rule.
#[derive(Debug, Clone)]
struct AllowRule {
    index: usize,
    project_path: Option<String>,
    namespace_path: Option<String>,
    ref_: Option<String>,
    /// Required `ref_protected`; true unless the rule says `ref_protected = false`.
    ref_protected: bool,
    environment: Option<String>,
}

/// The compiled `[machine]` policy.
#[derive(Debug, Clone, Default)]
pub struct MachinePolicy {
    audience: Option<String>,
    gitlab_tokens: bool,
    token_cache_ttl: Duration,
    allow: Vec<AllowRule>,
}

impl MachinePolicy {
    /// Compiles `[machine]`, pushing a problem for each bad entry.
    pub fn compile(m: &MachineFile, _server: &ServerConfig, problems: &mut Vec<Problem>) -> Self {
        let mut p = |key: String, message: String| problems.push(Problem { key, message });
        let mut allow = Vec::new();
        for (i, a) in m.allow.iter().enumerate() {
            if a.project_path.is_none() && a.namespace_path.is_none() {
                p(format!("machine.allow[{i}]"), "each [[machine.allow]] needs project_path = \"group/project\" or namespace_path = \"group\"".into());
                continue;
            }
            allow.push(AllowRule {
                index: i,
                project_path: a.project_path.clone(),
                namespace_path: a.namespace_path.clone(),
                ref_: a.ref_.clone(),
                ref_protected: a.ref_protected.unwrap_or(true),
                environment: a.environment.clone(),
            });
        }
        let audience = m.audience.clone().filter(|a| !a.is_empty());
        if !allow.is_empty() && audience.is_none() {
            p(
                "machine.audience".into(),
                "machine.audience is required with [[machine.allow]]: the aud your CI jobs request in `id_tokens:` (e.g. your public_url)".into(),
            );
        }
        let ttl_text = m.token_cache_ttl.as_deref().unwrap_or("60s");
        let token_cache_ttl = parse_duration(ttl_text).unwrap_or_else(|e| {
            p(
                "machine.token_cache_ttl".into(),
                format!("{ttl_text:?} is not a duration ({e})"),
            );
            Duration::from_secs(60)
        });
        MachinePolicy {
            audience,
            gitlab_tokens: m.gitlab_tokens.unwrap_or(false),
            token_cache_ttl,
            allow,
        }
    }

    /// Whether any bearer credential is accepted.
    pub fn enabled(&self) -> bool {
        !self.allow.is_empty() || self.gitlab_tokens
    }

    /// The first rule that admits the CI claims, or a sentence naming what failed.
    fn admit(&self, c: &CiClaims) -> Result<usize, String> {
        for r in &self.allow {
            let project_ok = r
                .project_path
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case(&c.project_path));
            let ns_ok = r.namespace_path.as_deref().is_none_or(|n| {
                let have = &c.namespace_path;
                have.eq_ignore_ascii_case(n)
                    || (have.len() > n.len()
                        && have[..n.len()].eq_ignore_ascii_case(n)
                        && have.as_bytes()[n.len()] == b'/')
            });
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
struct CiClaims {
    project_path: String,
    namespace_path: String,
    #[serde(rename = "ref")]
    ref_: String,
    ref_protected: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    user_login: Option<String>,
    #[serde(default)]
    user_email: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    iat: u64,
}

/// CI claims passed on in the assertion's `ci` object.
const CI_CLAIMS: &[&str] = &[
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
    "user_login",
    "sha",
    "runner_id",
];

/// The outcome for a request that carried `Authorization: Bearer`.
pub enum Bearer {
    /// No bearer credential, or `[machine]` is off: the cookie path decides.
    Absent,
    /// A verified caller; CI jobs are already admitted by `[[machine.allow]]`, access
    /// tokens still go through the access rules.
    Verified(Box<Session>),
    /// Refused: 401 for a bad credential, 403 for a CI job no rule admits.
    Refused {
        /// 401 or 403.
        status: http::StatusCode,
        /// Machine-readable reason.
        code: &'static str,
        /// The reason in words.
        message: String,
    },
}

fn refused(status: u16, code: &'static str, message: impl Into<String>) -> Bearer {
    Bearer::Refused {
        status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::UNAUTHORIZED),
        code,
        message: message.into(),
    }
}

/// Cache of access-token identities, keyed by SHA-256 of the token (never the token).
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (Session, u64)>>,
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The unverified `iss` of a JWT-shaped token, to tell a CI ID token from other bearers.
fn jwt_issuer(token: &str) -> Option<String> {
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

/// Authenticates a bearer credential, if the request has one and `[machine]` is on.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> Bearer {
    let policy = &app.config.machine;
    if !policy.enabled() {
        return Bearer::Absent;
    }
    let Some(token) = bearer_token(headers) else {
        return Bearer::Absent;
    };
    let now = app.clock.now();
    match jwt_issuer(token) {
        Some(iss) if !policy.allow.is_empty() => {
            if iss.trim_end_matches('/') != app.config.gitlab.url {
                return refused(
                    401,
                    "invalid_token",
                    "the token was not issued by the configured GitLab",
                );
            }
            ci_job(app, token, now).await
        }
        Some(_) if !policy.gitlab_tokens => refused(
            401,
            "invalid_token",
            "CI ID tokens are not accepted here ([[machine.allow]] is empty)",
        ),
        Some(_) => refused(
            401,
            "invalid_token",
            "a JWT that is not a GitLab CI ID token",
        ),
        None if policy.gitlab_tokens => access_token(app, token, now).await,
        None => refused(
            401,
            "invalid_token",
            "only GitLab CI ID tokens are accepted as bearer credentials here",
        ),
    }
}

async fn ci_job(app: &App, token: &str, now: u64) -> Bearer {
    let policy = &app.config.machine;
    let audience = policy.audience.as_deref().unwrap_or_default();
    let raw: serde_json::Map<String, serde_json::Value> =
        match app.gitlab.verify_jwt(token, audience).await {
            Ok(v) => v,
            Err(e) if e.is_unreachable() => {
                return refused(
                    503,
                    "gitlab_unreachable",
                    "GitLab's keys could not be loaded",
                )
            }
            Err(e) => {
                tracing::info!(target: "labgate::audit", error = %e, "CI ID token refused");
                return refused(401, "invalid_token", e.to_string());
            }
        };
    let claims: CiClaims = match serde_json::from_value(serde_json::Value::Object(raw.clone())) {
        Ok(c) => c,
        Err(e) => {
            return refused(
                401,
                "invalid_token",
                format!("not a GitLab CI ID token: {e}"),
            )
        }
    };
    match policy.admit(&claims) {
        Ok(rule) => {
            tracing::info!(target: "labgate::audit", project = %claims.project_path, r#ref = %claims.ref_, rule, "CI job admitted");
            let ci: serde_json::Map<String, serde_json::Value> = raw
                .into_iter()
                .filter(|(k, _)| CI_CLAIMS.contains(&k.as_str()))
                .collect();
            let user = User {
                id: claims
                    .user_id
                    .as_deref()
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(0),
                username: claims.user_login.clone().unwrap_or_default(),
                email_verified: claims.user_email.is_some(),
                email: claims.user_email.clone(),
                ..User::default()
            };
            Bearer::Verified(Box::new(Session {
                v: SESSION_VERSION,
                sid: format!("ci:{}", claims.jti.as_deref().unwrap_or("")),
                user,
                access_token: String::new(),
                refresh_token: None,
                id_token: None,
                created: claims.iat,
                expires: now + 1,
                validated: claims.iat,
                kind: Some("ci_job".into()),
                ci: Some(ci),
            }))
        }
        Err(why) => {
            tracing::info!(target: "labgate::audit", project = %claims.project_path, r#ref = %claims.ref_, "CI job refused");
            refused(403, "no_machine_rule", why)
        }
    }
}

async fn access_token(app: &App, token: &str, now: u64) -> Bearer {
    let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    let ttl = app.config.machine.token_cache_ttl.as_secs();
    if let Ok(cache) = app.machine_tokens.entries.lock() {
        if let Some((s, at)) = cache.get(&key) {
            if now < at + ttl {
                return Bearer::Verified(Box::new(s.clone()));
            }
        }
    }
    let user = match app
        .gitlab
        .user_for_token(token, &app.config.access.project_paths())
        .await
    {
        Ok(u) => u,
        Err(e) if e.is_unreachable() => {
            return refused(
                503,
                "gitlab_unreachable",
                "GitLab could not be reached to check the token",
            )
        }
        Err(e) => {
            tracing::info!(target: "labgate::audit", error = %e, "GitLab access token refused");
            return refused(
                401,
                "invalid_token",
                "GitLab did not accept the access token",
            );
        }
    };
    let hex: String = key.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let session = Session {
        v: SESSION_VERSION,
        sid: format!("tok:{hex}"),
        user,
        access_token: String::new(),
        refresh_token: None,
        id_token: None,
        created: now,
        expires: now + ttl.max(1),
        validated: now,
        kind: Some("user_token".into()),
        ci: None,
    };
    if let Ok(mut cache) = app.machine_tokens.entries.lock() {
        if cache.len() >= TOKEN_CACHE_MAX {
            cache.retain(|_, (_, at)| now < *at + ttl);
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (session.clone(), now));
    }
    Bearer::Verified(Box::new(session))
}
