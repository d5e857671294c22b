//! Machine access: GitLab CI ID tokens and GitLab access tokens as bearer credentials.

use std::sync::atomic::Ordering;

use base64::Engine;
use labgate::dev::Stack;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;

use crate::harness::*;

/// Calls with a bearer token. Refusals are asserted with `Accept: text/html` elsewhere, to
/// prove they are JSON and never a redirect; this asks for JSON to read the echo.
async fn call(s: &Stack, path: &str, token: &str) -> (StatusCode, serde_json::Value, bool) {
    call_accepting(s, path, token, "application/json").await
}

async fn call_accepting(
    s: &Stack,
    path: &str,
    token: &str,
    accept: &str,
) -> (StatusCode, serde_json::Value, bool) {
    let r = plain()
        .get(format!("{}{path}", s.labgate_url))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(ACCEPT, accept)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let cookie = r.headers().contains_key("set-cookie");
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        cookie,
    )
}

fn ci(s: &Stack, project: &str, protected: bool, overrides: serde_json::Value) -> String {
    s.gitlab
        .ci_id_token(project, "main", protected, &s.labgate_url, &overrides)
}

#[tokio::test]
async fn a_ci_job_of_an_allowed_project_on_a_protected_ref_is_admitted() {
    let s = stack(&config_with(None, "")).await;
    let token = ci(&s, "acme/deployer", true, serde_json::json!({}));
    let r = plain()
        .get(format!("{}/deploy", s.labgate_url))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        !r.headers().contains_key("set-cookie"),
        "no cookie for bearer callers"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["headers"]["x-labgate-kind"],
        serde_json::json!(["ci_job"])
    );
    assert_eq!(
        body["user"], "ci:acme/deployer",
        "a job is never mistaken for the person who triggered it"
    );
    assert_eq!(
        body["headers"]["x-labgate-user-id"],
        serde_json::json!([""])
    );
    assert!(
        body["headers"].get("authorization").is_none(),
        "the token is not forwarded"
    );
    let claims = &body["verified"]["claims"];
    assert_eq!(body["verified"]["valid"], true, "{body}");
    assert_eq!(claims["kind"], "ci_job");
    assert_eq!(
        claims["sub"],
        "project_path:acme/deployer:ref_type:branch:ref:main"
    );
    assert_eq!(claims["ci"]["project_path"], "acme/deployer");
    assert_eq!(claims["ci"]["ref_protected"], "true");
    assert_eq!(claims["username"], "ci:acme/deployer");
    // The person who triggered the job appears only in the `ci` claims.
    assert_eq!(claims["ci"]["user_login"], "alice");
    assert_eq!(claims["email"], "");
    // A people-only route refuses the job; the job is not a member of acme/admins.
    let (status, body, _) = call(&s, "/admin/x", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["reason"], "ci_job_not_allowed");
}

#[tokio::test]
async fn ci_jobs_in_forward_auth_obey_routes_and_narrowing() {
    let cfg = config_with(None, "").replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\nforward_auth_source = \"traefik\"\n",
    );
    let s = stack(&cfg).await;
    let token = ci(&s, "acme/deployer", true, serde_json::json!({}));
    let fa = |uri: &'static str, query: &'static str| {
        plain()
            .get(format!("{}/oauth2/auth{query}", s.labgate_url))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", uri)
            .send()
    };
    let r = fa("/deploy/x", "").await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["x-auth-request-user"], "ci:acme/deployer");
    assert_eq!(r.headers()["x-labgate-kind"], "ci_job");
    assert!(!r.headers().contains_key("set-cookie"));
    assert_eq!(
        fa("/admin", "").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Narrowing to groups: a CI job is in no group.
    assert_eq!(
        fa("/docs", "?allowed_groups=acme").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fa("/docs", "?allowed_ci_jobs=acme").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    // Without the original URL (no trusted proxy), routes exist: refused, never judged "/".
    let s2 = stack(&config_with(None, "")).await;
    let token2 = ci(&s2, "acme/deployer", true, serde_json::json!({}));
    let r = plain()
        .get(format!("{}/oauth2/auth", s2.labgate_url))
        .header(AUTHORIZATION, format!("Bearer {token2}"))
        .header("x-forwarded-uri", "/deploy")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "original_url_unknown");
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn bad_ci_tokens_are_refused() {
    let s = stack(&config_with(None, "")).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = ci(&s, "acme/deployer", true, serde_json::json!({}));
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(good.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(&payload)
    );
    let (_, jwks) = get_json(
        &plain(),
        &format!("{}/oauth/discovery/keys", s.gitlab.base_url),
    )
    .await;
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &payload,
        &jsonwebtoken::EncodingKey::from_secret(jwks.to_string().as_bytes()),
    )
    .unwrap();
    let unknown_kid = {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("not-a-gitlab-key".into());
        jsonwebtoken::encode(
            &h,
            &payload,
            &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let cases: Vec<(&str, String, StatusCode)> = vec![
        (
            "wrong aud",
            ci(
                &s,
                "acme/deployer",
                true,
                serde_json::json!({"aud": "https://another.app"}),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "expired",
            ci(
                &s,
                "acme/deployer",
                true,
                serde_json::json!({"exp": now - 600, "iat": now - 900, "nbf": now - 900}),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "other issuer",
            ci(
                &s,
                "acme/deployer",
                true,
                serde_json::json!({"iss": "https://gitlab.evil.example"}),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unprotected ref",
            ci(&s, "acme/deployer", false, serde_json::json!({})),
            StatusCode::FORBIDDEN,
        ),
        (
            "other project",
            ci(&s, "acme/app", true, serde_json::json!({})),
            StatusCode::FORBIDDEN,
        ),
        (
            "fork MR pipeline names the fork",
            ci(
                &s,
                "mallory/deployer",
                true,
                serde_json::json!({"namespace_path": "mallory"}),
            ),
            StatusCode::FORBIDDEN,
        ),
        ("alg none", alg_none, StatusCode::UNAUTHORIZED),
        (
            "HS256 with the public key as secret",
            hs256,
            StatusCode::UNAUTHORIZED,
        ),
        ("unknown kid", unknown_kid, StatusCode::UNAUTHORIZED),
    ];
    for (what, token, want) in cases {
        let (status, body, cookie) = call_accepting(&s, "/deploy", &token, "text/html").await;
        assert_eq!(status, want, "{what}: {body}");
        assert!(!cookie, "{what}: no cookie");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: a reason, never a redirect: {body}"
        );
    }
    let (_, body, _) = call(
        &s,
        "/deploy",
        &ci(&s, "acme/deployer", false, serde_json::json!({})),
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("acme/deployer"),
        "names what failed: {body}"
    );
}

#[tokio::test]
async fn namespace_rules_include_subgroups() {
    let cfg = config_with(None, "").replace(
        "project_path = \"acme/deployer\"",
        "namespace_path = \"acme\"",
    );
    let s = stack(&cfg).await;
    assert_eq!(
        call(
            &s,
            "/",
            &ci(&s, "acme/team/tool", true, serde_json::json!({}))
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &s,
            "/",
            &ci(&s, "acmeish/tool", true, serde_json::json!({}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn gitlab_access_tokens_follow_the_access_rules_and_are_cached() {
    let s = stack(&config_with(None, "").replace(
        "gitlab_tokens = true",
        "gitlab_tokens = true\ntoken_cache_ttl = \"30s\"",
    ))
    .await;
    let pat = "glpat-bob-demo-token-read-api";
    let (status, body, cookie) = call(&s, "/x", pat).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!cookie);
    assert_eq!(body["user"], "bob");
    assert_eq!(
        body["headers"]["x-labgate-kind"],
        serde_json::json!(["user_token"])
    );
    assert_eq!(body["verified"]["claims"]["kind"], "user_token");
    assert!(body["groups"].as_str().unwrap().contains("acme/team"));
    let calls = s.gitlab.counters.api_user.load(Ordering::SeqCst);
    // Cache hit: no new GitLab call. Route rules still apply.
    assert_eq!(call(&s, "/y", pat).await.0, StatusCode::OK);
    let (status, body, _) = call(&s, "/admin", pat).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "forbidden");
    assert_eq!(
        s.gitlab.counters.api_user.load(Ordering::SeqCst),
        calls,
        "served from the cache"
    );
    // Revoked at GitLab: still admitted from the cache until the TTL, then refused.
    s.gitlab.with_fixture(|f| {
        f.users
            .iter_mut()
            .for_each(|u| u.personal_access_tokens.clear())
    });
    assert_eq!(call(&s, "/x", pat).await.0, StatusCode::OK);
    s.app.clock.advance(31);
    let asked = s.gitlab.counters.requests.load(Ordering::SeqCst);
    let (status, body, _) = call(&s, "/x", pat).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        s.gitlab.counters.requests.load(Ordering::SeqCst),
        asked + 1,
        "cache miss after the TTL: GitLab asked once"
    );
    // An unknown token: refused, and remembered (no GitLab call the second time).
    let asked = s.gitlab.counters.requests.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            call(&s, "/x", "glpat-nonsense-but-well-formed").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        s.gitlab.counters.requests.load(Ordering::SeqCst),
        asked + 1,
        "a refused token is remembered"
    );
}

/// Only tokens that answer for themselves are accepted: an OAuth access token GitLab
/// issued to some application (here labgate's own sign-in) is not a credential for
/// labgate's machine access (the confused deputy). And 20 parallel first uses of a new
/// personal access token cost one GitLab check.
#[tokio::test]
async fn oauth_tokens_are_refused_and_checks_are_single_flight() {
    let s = stack(&config_with(None, "")).await;
    let alice = {
        let c = browser();
        let r = flow(&c, &s, "alice", "/").await;
        session_cookie_header(&set_cookies(&r))
    };
    let mut h = http::HeaderMap::new();
    h.insert("cookie", alice.parse().unwrap());
    let oauth_token = s.app.sessions.codec.read_session(&h).unwrap().access_token;
    assert!(!oauth_token.is_empty());
    let (status, body, _) = call(&s, "/x", &oauth_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let before = s.gitlab.counters.api_user.load(Ordering::SeqCst);
    let calls = (0..20).map(|i| {
        let s = &s;
        async move {
            call(s, &format!("/p/{i}"), "glpat-bob-demo-token-read-api")
                .await
                .0
        }
    });
    for status in futures_util::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        s.gitlab.counters.api_user.load(Ordering::SeqCst),
        before + 1,
        "one GitLab check for 20 parallel first uses"
    );
}

#[tokio::test]
async fn bearer_tokens_are_ignored_when_machine_access_is_off() {
    let cfg = config_with(None, "");
    let cfg = &cfg[..cfg.find("[machine]").unwrap()];
    let s = stack(cfg).await;
    let (status, _, _) = call_accepting(
        &s,
        "/x",
        &ci(&s, "acme/deployer", true, serde_json::json!({})),
        "text/html",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FOUND,
        "treated as an unauthenticated browser"
    );
}

#[test]
fn machine_config_errors_name_the_key() {
    let base = "[server]\npublic_url='https://a.example'\n[upstream]\nurl='http://127.0.0.1:1'\n[gitlab]\nclient_id='x'\nclient_secret='y'\n\
                [session]\ncookie_secret='ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE='\n[access]\nallow_any_gitlab_user=true\n";
    let err = labgate::config::load_str(&format!("{base}[[machine.allow]]\nproject_path='a/b'\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("machine.audience"), "{err}");
    let err = labgate::config::load_str(&format!(
        "{base}[machine]\naudience='x'\n[[machine.allow]]\nref='main'\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("machine.allow[0]"), "{err}");
}

#[tokio::test]
async fn access_tokens_in_forward_auth_obey_narrowing_and_routes() {
    let cfg = config_with(None, "").replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\nforward_auth_source = \"nginx\"\n",
    );
    let s = stack(&cfg).await;
    let pat = "glpat-bob-demo-token-read-api";
    let fa = |uri: &'static str, query: &'static str| {
        let mut r = plain()
            .get(format!("{}/oauth2/auth{query}", s.labgate_url))
            .header(AUTHORIZATION, format!("Bearer {pat}"));
        if !uri.is_empty() {
            r = r.header("x-original-uri", uri);
        }
        r.send()
    };
    let r = fa("/docs", "").await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["x-auth-request-user"], "bob");
    assert_eq!(r.headers()["x-labgate-kind"], "user_token");
    // bob is not in acme/admins: neither the route nor a location narrowed to it opens.
    assert_eq!(
        fa("/admin", "").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fa("/docs", "?allowed_groups=acme/admins")
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fa("/docs", "?allowed_users=alice").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Unknown original URL with routes configured: refused, not judged as "/".
    assert_eq!(fa("", "").await.unwrap().status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bearer_credentials_never_reach_the_upstream() {
    let s = stack(&config_with(None, "")).await;
    // On a public path, with any bearer (valid for labgate or not), nothing arrives.
    for token in ["glpat-bob-demo-token-read-api", "not-a-token"] {
        let r = plain()
            .get(format!("{}/public/x", s.labgate_url))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["headers"].get("authorization").is_none(), "{body}");
    }
    // A signed-in person's request with a stray bearer: the bearer is judged (and
    // refused), never forwarded.
    let alice = signed_in(&s, "alice").await;
    let r = alice
        .get(format!("{}/x", s.labgate_url))
        .header(AUTHORIZATION, "Bearer nonsense")
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Basic credentials are the application's own and pass.
    let r = alice
        .get(format!("{}/x", s.labgate_url))
        .header(AUTHORIZATION, "Basic YTpi")
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["headers"]["authorization"],
        serde_json::json!(["Basic YTpi"])
    );
    assert_eq!(
        body["headers"]["x-labgate-kind"],
        serde_json::json!(["user"])
    );
}

#[tokio::test]
async fn pass_authorization_and_machine_access_work_together() {
    let cfg = config_with(None, "").replace(
        "[access]",
        "[identity]\npass_authorization = true\n\n[access]",
    );
    let s = stack(&cfg).await;
    // The CI job is authenticated by its bearer (read before any rewriting) and the
    // upstream gets no Authorization (a job has no ID token).
    let token = ci(&s, "acme/deployer", true, serde_json::json!({}));
    let (status, body, _) = call(&s, "/deploy", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "ci:acme/deployer");
    assert!(body["headers"].get("authorization").is_none(), "{body}");
    // A PAT works the same way.
    let (status, body, _) = call(&s, "/x", "glpat-bob-demo-token-read-api").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["headers"].get("authorization").is_none(), "{body}");
    // A person gets labgate's Authorization: Bearer <ID token>, not the client's.
    let alice = signed_in(&s, "alice").await;
    let r = alice
        .get(format!("{}/x", s.labgate_url))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    let auth = body["headers"]["authorization"][0].as_str().unwrap_or("");
    assert!(auth.starts_with("Bearer ey"), "{body}");
}

/// A herd of CI jobs arriving together before labgate has GitLab's keys costs one JWKS
/// fetch, not one per job.
#[tokio::test]
async fn a_herd_of_ci_tokens_costs_one_jwks_fetch() {
    let s = stack(&config_with(None, "")).await;
    let tokens: Vec<String> = (0..20)
        .map(|_| ci(&s, "acme/deployer", true, serde_json::json!({})))
        .collect();
    // labgate warms its discovery up at start, as in production: that call is not the herd's.
    s.app.gitlab.provider().await.unwrap();
    let before = s.gitlab.counters.requests.load(Ordering::SeqCst);
    let calls = tokens.iter().map(|t| {
        let s = &s;
        async move { call(s, "/deploy", t).await.0 }
    });
    for status in futures_util::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK);
    }
    let asked = s.gitlab.counters.requests.load(Ordering::SeqCst) - before;
    assert!(
        asked <= 2,
        "GitLab asked {asked} times for 20 parallel jobs"
    );
}
