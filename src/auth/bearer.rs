//! Bearer credentials (`[machine]`), the I/O part: a GitLab CI/CD ID token is verified
//! against GitLab's keys with `aud` pinned to `machine.audience` and matched against
//! `[[machine.allow]]`; a GitLab access token is checked with GitLab (`GET /api/v4/user`,
//! plus groups and project access as the rules need) and cached under a SHA-256 of the
//! token for `machine.token_cache_ttl`. Either becomes a [`Principal`] that then faces the
//! same access decision as a person.
//!
//! The credential is read before any header rewriting, so `identity.pass_authorization`
//! (which replaces `Authorization` towards the upstream) and machine access work together.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;
use sha2::Digest;

use crate::access::User;
use crate::app::App;
use crate::identity::{CiCaller, Principal};
use crate::machine::{bearer_token, ci_username, jwt_issuer, CiClaims, CI_CLAIMS};
use crate::reject::Reject;
use crate::session::token_cache::{TokenHash, Verdict};
use crate::session::Caller;

/// Whether `token` could be a GitLab access token: personal, project and group tokens
/// (`glpat-...`, with an instance prefix, routable `glpat-x.01.y` forms), OAuth access
/// tokens (64 hex digits) and legacy 20-character tokens are 20 to 255 characters of
/// `A-Za-z0-9`, `-`, `_` and `.`. Anything else is refused without asking GitLab.
fn plausible_token(token: &str) -> bool {
    (20..=255).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn invalid(message: impl Into<String>) -> Reject {
    Reject::InvalidToken {
        message: message.into(),
    }
}

/// Authenticates the request's bearer credential; `None` when it has none or `[machine]`
/// accepts none (the session cookie decides then). `peer` is the connection's address (the
/// client's, behind a trusted proxy, is what a budget of GitLab checks is kept for).
pub(crate) async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Option<Result<Principal, Reject>> {
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
                Box::pin(ci_job(app, token)).await
            }
        }
        Some(_) if !policy.gitlab_tokens => Err(invalid(
            "CI ID tokens are not accepted here ([[machine.allow]] is empty)",
        )),
        Some(_) => Err(invalid("a JWT that is not a GitLab CI ID token")),
        None if policy.gitlab_tokens => {
            Box::pin(access_token(app, headers, token, peer, now)).await
        }
        None => Err(invalid(
            "only GitLab CI ID tokens are accepted as bearer credentials here",
        )),
    })
}

async fn ci_job(app: &App, token: &str) -> Result<Principal, Reject> {
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
    Ok(Principal::CiJob(Arc::new(CiCaller {
        caller: Caller {
            user,
            handle,
            verified: claims.iat,
            derived: Default::default(),
        },
        claims,
        passed_on: ci,
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

async fn access_token(
    app: &App,
    headers: &HeaderMap,
    token: &str,
    peer: IpAddr,
    now: u64,
) -> Result<Principal, Reject> {
    if !plausible_token(token) {
        return verdict(Verdict::Refused);
    }
    let key: TokenHash = sha2::Sha256::digest(token.as_bytes()).into();
    let ttl = app.config.machine.token_cache_ttl.as_secs();
    let tokens = &app.machine_tokens;
    if let Some(v) = tokens.cached(&key, now, ttl) {
        return verdict(v);
    }
    // A token GitLab accepted before has its own share of checks and no budget to spend.
    let known = tokens.seen_valid(&key);
    let client = || crate::headers::client_ip(headers, peer, &app.config.server.trusted_proxies);
    if !known && !tokens.spend(client(), now) {
        tracing::info!(target: "labgate::audit", client = %client(), "too many unknown access tokens from one client; refusing without asking GitLab");
        return Err(Reject::TooManyTokenChecks);
    }
    // One check per token at a time: the others wait for its verdict.
    let gate = tokens.gate(key);
    let _turn = gate.lock().await;
    if let Some(v) = tokens.cached(&key, now, ttl) {
        return verdict(v);
    }
    let permit = tokens.check_slot(known);
    let Ok(Ok(_permit)) = tokio::time::timeout(app.config.gitlab.timeout, permit).await else {
        tracing::warn!("too many access-token checks with GitLab at once; refusing");
        return Err(Reject::GitlabUnavailable);
    };
    let user = match app
        .gitlab
        .user_for_token(token, &app.policy().project_paths())
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
    let caller = Arc::new(Caller {
        user,
        handle: format!("tok:{}", short_hash(token)),
        verified: now,
        derived: Default::default(),
    });
    tokens.remember(key, Verdict::Valid(caller.clone()), now, ttl);
    Ok(Principal::UserToken(caller))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_token_shapes_reach_gitlab() {
        for ok in [
            "glpat-bob-demo-token-read-api",
            "glpat-xxxxxxxxxxxxxxxxxxxx",
            "glpat-AbC123_-x.01.0k1x2y3z4",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "abcdefghij0123456789",
        ] {
            assert!(plausible_token(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "short",
            long.as_str(),
            "glpat-has space-in-it-xx",
            "glpat-<script>alert(1)</script>",
            "glpat-\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ] {
            assert!(!plausible_token(bad), "{bad}");
        }
    }
}
