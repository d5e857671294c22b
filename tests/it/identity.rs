//! What the upstream is told: spoof-proof identity headers and a verifiable assertion.

use base64::Engine;
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use crate::harness::*;

const FORGED: &[&str] = &[
    "X-Forwarded-User",
    "x-forwarded-user",
    "X_Forwarded_User",
    "X-Forwarded-Email",
    "x_forwarded_email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Access-Token",
    "X-Labgate-User-Id",
    "X-Labgate-Assertion",
    "x_labgate_assertion",
    "X-Auth-Request-User",
    "X_Auth_Request_Email",
];

fn forge(mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    for name in FORGED {
        // Two copies of each, to catch "first one wins" / "last one wins" mistakes.
        req = req
            .header(*name, "mallory")
            .header(*name, "evil@example.net");
    }
    req
}

fn values<'a>(body: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    body["headers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.as_array().unwrap().iter().map(|x| x.as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_upstream() {
    let cfg = config_with(None, "");
    let s = stack(&cfg).await;
    // Public path: stripped, nothing set.
    let r = forge(
        plain()
            .get(format!("{}/public/page", s.labgate_url))
            .header(ACCEPT, "application/json"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    for name in FORGED {
        assert!(
            values(&body, name).is_empty(),
            "{name} reached the upstream on a public path: {body}"
        );
    }
    // Unauthenticated API request: nothing reaches the upstream at all.
    let r = forge(
        plain()
            .get(format!("{}/api", s.labgate_url))
            .header(ACCEPT, "application/json"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Signed in as bob: exactly one value of each, from the session.
    let c = signed_in(&s, "bob").await;
    let r = forge(
        c.get(format!("{}/", s.labgate_url))
            .header(ACCEPT, "application/json"),
    )
    .send()
    .await
    .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(values(&body, "x-forwarded-user"), vec!["bob"]);
    assert_eq!(values(&body, "x-forwarded-email"), vec!["bob@example.com"]);
    assert_eq!(values(&body, "x-forwarded-preferred-username"), vec!["bob"]);
    assert_eq!(
        values(&body, "x-forwarded-groups"),
        vec!["acme/team,acme/team/frontend"]
    );
    assert_eq!(values(&body, "x-labgate-user-id"), vec!["102"]);
    assert_eq!(values(&body, "x-labgate-assertion").len(), 1);
    for gone in [
        "x-forwarded-access-token",
        "x-auth-request-user",
        "x-auth-request-email",
    ] {
        assert!(values(&body, gone).is_empty(), "{gone}: {body}");
    }
    assert_eq!(body["verified"]["valid"], true);
}

/// Verifies an ES256 JWS with the `p256` crate directly: an implementation independent of
/// the `jsonwebtoken` crate labgate signs with.
fn verify_independently(
    token: &str,
    jwks: &serde_json::Value,
    now: u64,
) -> Result<serde_json::Value, String> {
    use p256::ecdsa::signature::Verifier;
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| e.to_string())
    };
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("not a compact JWS".into());
    }
    let header: serde_json::Value =
        serde_json::from_slice(&b64(parts[0])?).map_err(|e| e.to_string())?;
    if header["alg"] != "ES256" || header["typ"] != "JWT" {
        return Err(format!("unexpected header {header}"));
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or("unknown kid")?;
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], "ES256");
    let x = b64(jwk["x"].as_str().unwrap())?;
    let y = b64(jwk["y"].as_str().unwrap())?;
    let point = p256::EncodedPoint::from_affine_coordinates(
        x.as_slice().into(),
        y.as_slice().into(),
        false,
    );
    let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|e| e.to_string())?;
    let sig = p256::ecdsa::Signature::from_slice(&b64(parts[2])?).map_err(|e| e.to_string())?;
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .map_err(|_| "bad signature".to_owned())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&b64(parts[1])?).map_err(|e| e.to_string())?;
    if claims["exp"].as_u64().unwrap_or(0) <= now
        || claims["nbf"].as_u64().unwrap_or(u64::MAX) > now + 5
    {
        return Err("expired or not yet valid".into());
    }
    Ok(claims)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn assertion_and_jwks(s: &labgate::dev::Stack, user: &str) -> (String, serde_json::Value) {
    let c = signed_in(s, user).await;
    let (_, body) = get_json(&c, &format!("{}/", s.labgate_url)).await;
    let token = body["assertion"].as_str().unwrap().to_owned();
    let (_, jwks) = get_json(&plain(), &format!("{}/oauth2/jwks.json", s.labgate_url)).await;
    (token, jwks)
}

#[tokio::test]
async fn the_assertion_verifies_independently_and_tampering_fails() {
    let s = stack(&config_with(None, "")).await;
    let (token, jwks) = assertion_and_jwks(&s, "alice").await;
    let now = unix_now();
    let claims = verify_independently(&token, &jwks, now).expect("valid assertion");
    assert_eq!(claims["iss"], s.labgate_url);
    assert_eq!(claims["aud"], s.labgate_url);
    assert_eq!(claims["sub"], "101");
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Admin");
    assert!(claims["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "acme/admins"));
    assert!(claims["sid"].as_str().unwrap().len() >= 16);
    assert!(claims["jti"].is_string());
    let life = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(life, 300, "default 5 minutes");
    // Expired: the same token checked after its lifetime.
    assert!(verify_independently(&token, &jwks, now + 301).is_err());
    // Tampered payload: change the username, keep the signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    payload["username"] = "mallory".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    assert_eq!(
        verify_independently(&forged, &jwks, now).unwrap_err(),
        "bad signature"
    );
}

#[tokio::test]
async fn key_rotation_publishes_both_and_signs_with_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.pem");
    let old = dir.path().join("old.pem");
    std::fs::write(&new, labgate::identity::generate_es256_pem()).unwrap();
    std::fs::write(&old, labgate::identity::generate_es256_pem()).unwrap();
    let cfg = config_with(
        None,
        &format!(
            "\n[identity]\nsigning_key_files = [{:?}, {:?}]\n",
            new.display().to_string(),
            old.display().to_string()
        ),
    );
    let s = stack(&cfg).await;
    let (token, jwks) = assertion_and_jwks(&s, "alice").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], kid, "the first key signs");
    verify_independently(&token, &jwks, unix_now()).unwrap();
    // The kid is the RFC 7638 thumbprint: 43 base64url characters of SHA-256.
    assert_eq!(kid.len(), 43);
}

#[tokio::test]
async fn jwks_has_cache_headers_and_answers_304() {
    let s = stack(&config_with(None, "")).await;
    let r = plain()
        .get(format!("{}/oauth2/jwks.json", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "public, max-age=60");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = plain()
        .get(format!("{}/oauth2/jwks.json", s.labgate_url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = plain()
        .get(format!("{}/oauth2/jwks.json", s.labgate_url))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_assertion_is_reused_within_half_its_lifetime() {
    let s = stack(&config_with(None, "")).await;
    let c = signed_in(&s, "alice").await;
    let (_, a) = get_json(&c, &format!("{}/", s.labgate_url)).await;
    let (_, b) = get_json(&c, &format!("{}/", s.labgate_url)).await;
    assert_eq!(
        a["assertion"], b["assertion"],
        "same session, same assertion"
    );
    s.app.clock.advance(151);
    let (_, c2) = get_json(&c, &format!("{}/", s.labgate_url)).await;
    assert_ne!(
        a["assertion"], c2["assertion"],
        "re-signed past half its lifetime"
    );
}

pub(crate) fn pyjwt(jwks_url: &str, iss: &str, aud: &str, token: &str) -> (bool, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/verify_assertion.py"
    );
    let out = std::process::Command::new("python3")
        .args([script, jwks_url, iss, aud, token])
        .output()
        .expect("python3 is needed for this test (scripts/test installs PyJWT)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn pyjwt_verifies_the_assertion_and_refuses_forgeries() {
    let s = stack(&config_with(None, "")).await;
    let (token, _) = assertion_and_jwks(&s, "alice").await;
    let jwks_url = format!("{}/oauth2/jwks.json", s.labgate_url);
    let url = s.labgate_url.clone();
    let (t, j, u) = (token.clone(), jwks_url.clone(), url.clone());
    let (ok, out) = tokio::task::spawn_blocking(move || pyjwt(&j, &u, &u, &t))
        .await
        .unwrap();
    assert!(ok, "PyJWT: {out}");
    assert!(out.contains("\"username\": \"alice\""), "{out}");
    // Wrong audience, tampered signature: refused.
    let (t, j, u) = (token.clone(), jwks_url.clone(), url.clone());
    let (ok, out) = tokio::task::spawn_blocking(move || pyjwt(&j, &u, "https://other.example", &t))
        .await
        .unwrap();
    assert!(!ok && out.contains("InvalidAudience"), "{out}");
    let mut bad = token.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    let (ok, out) = tokio::task::spawn_blocking(move || pyjwt(&jwks_url, &url, &url, &bad))
        .await
        .unwrap();
    assert!(!ok, "{out}");
}
