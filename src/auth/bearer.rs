//! Bearer credentials (`[machine]`), the I/O part: a GitLab CI/CD ID token is verified
//! against GitLab's keys with `aud` pinned to `machine.audience` and matched against
//! `[[machine.allow]]`; a GitLab access token is checked with GitLab (`GET /api/v4/user`,
//! plus groups and project access as the rules need) and cached under a SHA-256 of the
//! token for `machine.token_cache_ttl`. Either becomes a [`Principal`] that then faces the
//! same access decision as a person.
//!
//! The credential is read before any header rewriting, so `identity.pass_authorization`
//! (which replaces `Authorization` towards the upstream) and machine access work together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use sha2::Digest;

use crate::access::User;
use crate::app::App;
use crate::identity::Principal;
use crate::machine::{bearer_token, ci_username, jwt_issuer, CiClaims, CI_CLAIMS};
use crate::reject::Reject;
use crate::session::{Session, SESSION_VERSION};

/// Most cached access-token identities kept.
const TOKEN_CACHE_MAX: usize = 10_000;

/// SHA-256 of a token: the cache key (the token itself is never kept).
type TokenHash = [u8; 32];

/// What GitLab said about an access token, and when (Unix seconds).
#[derive(Debug, Clone)]
enum Verdict {
    /// The token's owner.
    Valid(Arc<Session>),
    /// Refused: remembered too, so that a bad token costs one GitLab call per TTL.
    Refused,
}

/// Cache of access-token verdicts, keyed by SHA-256 of the token (never the token), plus
/// what keeps GitLab from being flooded: one check at a time per token (single-flight)
/// and at most [`MAX_CONCURRENT_CHECKS`] checks at once overall.
#[derive(Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<TokenHash, (Verdict, u64)>>,
    in_flight: Mutex<HashMap<TokenHash, Arc<tokio::sync::Mutex<()>>>>,
    checks: tokio::sync::Semaphore,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            entries: Mutex::default(),
            in_flight: Mutex::default(),
            checks: tokio::sync::Semaphore::new(MAX_CONCURRENT_CHECKS),
        }
    }
}

/// Most access-token checks with GitLab at once; further ones wait their turn (up to
/// `gitlab.timeout`) and are then refused with 503.
const MAX_CONCURRENT_CHECKS: usize = 16;

impl TokenCache {
    fn cached(&self, key: &TokenHash, now: u64, ttl: u64) -> Option<Verdict> {
        let cache = self.entries.lock().ok()?;
        let (verdict, at) = cache.get(key)?;
        (now < at + ttl).then(|| verdict.clone())
    }

    /// Caches a verdict. When full: expired entries go first, then refusals; valid tokens
    /// are never evicted by a flood of bad ones (a full cache just stops caching).
    fn remember(&self, key: TokenHash, verdict: Verdict, now: u64, ttl: u64) {
        if let Ok(mut cache) = self.entries.lock() {
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.retain(|_, (_, at)| now < *at + ttl);
            }
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.retain(|_, (v, _)| matches!(v, Verdict::Valid(_)));
            }
            if cache.len() < TOKEN_CACHE_MAX {
                cache.insert(key, (verdict, now));
            }
        }
    }

    /// The per-token gate: holders check with GitLab one at a time.
    fn gate(&self, key: TokenHash) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut gates) = self.in_flight.lock() else {
            return Arc::default();
        };
        gates.retain(|_, g| Arc::strong_count(g) > 1);
        gates.entry(key).or_default().clone()
    }
}

fn invalid(message: impl Into<String>) -> Reject {
    Reject::InvalidToken {
        message: message.into(),
    }
}

/// Authenticates the request's bearer credential; `None` when it has none or `[machine]`
/// accepts none (the session cookie decides then).
pub async fn authenticate(app: &App, headers: &HeaderMap) -> Option<Result<Principal, Reject>> {
    let policy = &app.config.machine;
    if !policy.enabled() {
        return None;
    }
    let token = bearer_token(headers)?;
    let now = app.clock.now();
    Some(match jwt_issuer(token) {
        Some(iss) if !policy.allow.is_empty() => {
            if iss.trim_end_matches('/') != app.config.gitlab.url {
                Err(invalid("the token was not issued by the configured GitLab"))
            } else {
                ci_job(app, token, now).await
            }
        }
        Some(_) if !policy.gitlab_tokens => Err(invalid(
            "CI ID tokens are not accepted here ([[machine.allow]] is empty)",
        )),
        Some(_) => Err(invalid("a JWT that is not a GitLab CI ID token")),
        None if policy.gitlab_tokens => access_token(app, token, now).await,
        None => Err(invalid(
            "only GitLab CI ID tokens are accepted as bearer credentials here",
        )),
    })
}

async fn ci_job(app: &App, token: &str, now: u64) -> Result<Principal, Reject> {
    let policy = &app.config.machine;
    let audience = policy.audience.as_deref().unwrap_or_default();
    let raw: serde_json::Map<String, serde_json::Value> = match app
        .gitlab
        .verify_jwt(token, audience)
        .await
    {
        Ok(v) => v,
        Err(e) if e.is_unreachable() => {
            tracing::warn!(error = %e, "GitLab's keys could not be loaded to verify a CI ID token");
            return Err(Reject::GitlabUnavailable);
        }
        Err(e) => {
            tracing::info!(target: "labgate::audit", error = %e, "CI ID token refused");
            return Err(invalid(e.to_string()));
        }
    };
    let claims: CiClaims = serde_json::from_value(serde_json::Value::Object(raw.clone()))
        .map_err(|e| invalid(format!("not a GitLab CI ID token: {e}")))?;
    let rule = match policy.admit(&claims) {
        Ok(rule) => rule,
        Err(why) => {
            tracing::info!(target: "labgate::audit", project = %claims.project_path, r#ref = %claims.ref_, "CI job refused");
            return Err(Reject::NoMachineRule { message: why });
        }
    };
    tracing::info!(target: "labgate::audit", project = %claims.project_path, r#ref = %claims.ref_, rule, "CI job admitted");
    let ci: serde_json::Map<String, serde_json::Value> = raw
        .into_iter()
        .filter(|(k, _)| CI_CLAIMS.contains(&k.as_str()))
        .collect();
    // The job is the caller, not the person who triggered it: that person appears only in
    // the assertion's `ci` claims.
    let user = User {
        username: ci_username(&claims.project_path),
        name: claims.project_path.clone(),
        ..User::default()
    };
    // A distinct handle per token, so that no two jobs ever share a cached assertion, even
    // when a token carries no `jti`.
    let handle = match claims.jti.as_deref().filter(|j| !j.is_empty()) {
        Some(jti) => format!("ci:{jti}"),
        None => format!("ci:sha256:{}", short_hash(token)),
    };
    Ok(Principal::CiJob(Arc::new(Session {
        v: SESSION_VERSION,
        sid: handle,
        user,
        access_token: String::new(),
        refresh_token: None,
        id_token: None,
        created: claims.iat,
        expires: now + 1,
        validated: claims.iat,
        ci: Some(ci),
        derived: Default::default(),
    })))
}

/// The first 16 hex digits of the token's SHA-256 (a handle, never the token).
fn short_hash(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn verdict(v: Verdict) -> Result<Principal, Reject> {
    match v {
        Verdict::Valid(s) => Ok(Principal::UserToken(s)),
        Verdict::Refused => Err(invalid(
            "GitLab did not accept the access token (personal, project and group access tokens are accepted)",
        )),
    }
}

async fn access_token(app: &App, token: &str, now: u64) -> Result<Principal, Reject> {
    let key: TokenHash = sha2::Sha256::digest(token.as_bytes()).into();
    let ttl = app.config.machine.token_cache_ttl.as_secs();
    let tokens = &app.machine_tokens;
    if let Some(v) = tokens.cached(&key, now, ttl) {
        return verdict(v);
    }
    // One check per token at a time: the others wait for its verdict.
    let gate = tokens.gate(key);
    let _turn = gate.lock().await;
    if let Some(v) = tokens.cached(&key, now, ttl) {
        return verdict(v);
    }
    let Ok(Ok(_permit)) =
        tokio::time::timeout(app.config.gitlab.timeout, tokens.checks.acquire()).await
    else {
        tracing::warn!("too many access-token checks with GitLab at once; refusing");
        return Err(Reject::GitlabUnavailable);
    };
    let user = match app
        .gitlab
        .user_for_token(token, &app.config.access.project_paths())
        .await
    {
        Ok(u) => u,
        Err(e) if e.is_unreachable() => {
            tracing::warn!(error = %e, "GitLab could not be reached to check an access token");
            return Err(Reject::GitlabUnavailable);
        }
        Err(e) => {
            tracing::info!(target: "labgate::audit", error = %e, "GitLab access token refused");
            tokens.remember(key, Verdict::Refused, now, ttl);
            return verdict(Verdict::Refused);
        }
    };
    let session = Arc::new(Session {
        v: SESSION_VERSION,
        sid: format!("tok:{}", short_hash(token)),
        user,
        access_token: String::new(),
        refresh_token: None,
        id_token: None,
        created: now,
        expires: now + ttl.max(1),
        validated: now,
        ci: None,
        derived: Default::default(),
    });
    tokens.remember(key, Verdict::Valid(session.clone()), now, ttl);
    Ok(Principal::UserToken(session))
}
