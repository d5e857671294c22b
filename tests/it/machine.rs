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
        body["user"], "alice",
        "the job acts for the user who triggered it"
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
    // Forward-auth honours it too.
    let r = plain()
        .get(format!("{}/oauth2/auth", s.labgate_url))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["x-auth-request-user"], "alice");
    assert!(!r.headers().contains_key("set-cookie"));
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
    let (status, body, _) = call(&s, "/x", pat).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        s.gitlab.counters.api_user.load(Ordering::SeqCst),
        calls + 1,
        "cache miss after the TTL"
    );
    // An unknown token.
    assert_eq!(
        call(&s, "/x", "glpat-nonsense").await.0,
        StatusCode::UNAUTHORIZED
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
