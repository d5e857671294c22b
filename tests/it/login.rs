//! GitLab sign-in end to end: the flow, its failure modes, cookies and sign-out.

use labgate::dev::gitlab::{Faults, Fixture};
use reqwest::header::{ACCEPT, COOKIE};
use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn sign_in_reaches_the_upstream_with_path_and_query() {
    let s = stack(&config_with(None, "")).await;
    let c = browser();
    // A browser navigation is sent to the sign-in page with rd = the original URL.
    let r = c
        .get(format!("{}/deep/link?a=1&b=two", s.labgate_url))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        location(&r),
        "/oauth2/sign_in?rd=%2Fdeep%2Flink%3Fa%3D1%26b%3Dtwo"
    );
    let page = c
        .get(absolute(&s.labgate_url, &location(&r)))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in with GitLab"));
    assert!(page.contains("labgate demo"));
    assert!(page.contains("/oauth2/start?rd=%2Fdeep%2Flink%3Fa%3D1%26b%3Dtwo"));

    let r = flow(&c, &s, "alice", "/deep/link?a=1&b=two").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(location(&r), "/deep/link?a=1&b=two");
    let cookies = set_cookies(&r);
    assert!(cookies.iter().any(|c| c.starts_with("_labgate=")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Lax")));
    let (status, body) = get_json(&c, &format!("{}/deep/link?a=1&b=two", s.labgate_url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["path"], "/deep/link");
    assert_eq!(body["query"], "a=1&b=two");
    assert_eq!(body["user"], "alice");
    assert_eq!(body["verified"]["valid"], true, "{body}");
    // The session cookie is not forwarded upstream.
    let forwarded_cookies = body["headers"]["cookie"].to_string();
    assert!(
        !forwarded_cookies.contains("_labgate"),
        "{forwarded_cookies}"
    );

    let (status, info) = get_json(&c, &format!("{}/oauth2/userinfo", s.labgate_url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["user"], "alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["user_id"], 101);
}

#[tokio::test]
async fn api_requests_get_401_json() {
    let s = stack(&config_with(None, "")).await;
    let (status, body) = get_json(&plain(), &format!("{}/api/things", s.labgate_url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthenticated");
    let (status, _) = get_json(&plain(), &format!("{}/oauth2/userinfo", s.labgate_url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn two_parallel_sign_ins_in_one_browser_both_work() {
    let s = stack(&config_with(None, "")).await;
    let c = browser();
    let a = to_consent(&c, &s, "alice", "alice-password", "/tab-a").await;
    let b = to_consent(&c, &s, "alice", "alice-password", "/tab-b").await;
    let cb_b = consent(&c, &s, b, false).await;
    let cb_a = consent(&c, &s, a, false).await;
    let ra = c.get(&cb_a).send().await.unwrap();
    let rb = c.get(&cb_b).send().await.unwrap();
    assert_eq!(
        (ra.status(), location(&ra)),
        (StatusCode::FOUND, "/tab-a".to_owned())
    );
    assert_eq!(
        (rb.status(), location(&rb)),
        (StatusCode::FOUND, "/tab-b".to_owned())
    );
}

#[tokio::test]
async fn deny_at_gitlab_shows_the_cancelled_message() {
    let s = stack(&config_with(None, "")).await;
    let c = browser();
    let fields = to_consent(&c, &s, "alice", "alice-password", "/x").await;
    let cb = consent(&c, &s, fields, true).await;
    assert!(cb.contains("error=access_denied"), "{cb}");
    let r = c.get(&cb).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookies(&r).iter().all(|c| !c.starts_with("_labgate=")));
    let page = r.text().await.unwrap();
    assert!(
        page.contains("You cancelled the sign-in at GitLab"),
        "{page}"
    );
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let s = stack(&config_with(None, "")).await;
    let c = browser();
    let fields = to_consent(&c, &s, "alice", "alice-password", "/x").await;
    let cb = consent(&c, &s, fields, false).await;
    let first = c.get(&cb).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    // The code is single-use at GitLab...
    let code = url::Url::parse(&cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let r = plain()
        .post(format!("{}/oauth/token", s.gitlab.base_url))
        .basic_auth("labgate-dev-client-id", Some("gloas-labgate-dev-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            (
                "redirect_uri",
                &format!("{}/oauth2/callback", s.labgate_url),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // ...and labgate refuses the replayed callback: its flow cookie was cleared on first use.
    let again = c.get(&cb).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn state_mismatch_and_missing_flow_cookie_are_explained() {
    let s = stack(&config_with(None, "")).await;
    let c = browser();
    let fields = to_consent(&c, &s, "alice", "alice-password", "/x").await;
    let cb = consent(&c, &s, fields, false).await;
    // A forged state: no flow cookie belongs to it.
    let forged = cb.replace("state=", "state=forged");
    let r = c.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The genuine callback from a browser that lost its cookie (another browser).
    let r = plain().get(&cb).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let page = r.text().await.unwrap();
    assert!(page.contains("did not send back"), "{page}");
    assert!(page.contains("cookie_domain"), "{page}");
    assert!(
        !page.contains("cookie_secure"),
        "not a cause when cookies are not Secure: {page}"
    );
    // With Secure cookies over plain http (the classic mistake) the page names that cause.
    let secure =
        stack(&config_with(None, "").replace("cookie_secure = false", "cookie_secure = true"))
            .await;
    let r = plain()
        .get(format!(
            "{}/oauth2/callback?code=x&state=y",
            secure.labgate_url
        ))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("session.cookie_secure = true"), "{page}");
}

#[tokio::test]
async fn bad_id_tokens_are_rejected() {
    for tamper in ["nonce", "aud", "iss", "expired", "signature", "kid"] {
        let s = stack(&config_with(None, "")).await;
        s.gitlab.set_faults(Faults {
            id_token_tamper: Some(tamper.into()),
            ..Faults::default()
        });
        let c = browser();
        let r = flow(&c, &s, "alice", "/x").await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "tampered {tamper}");
        assert!(
            set_cookies(&r).iter().all(|c| !c.starts_with("_labgate=")),
            "no session for {tamper}"
        );
        let page = r.text().await.unwrap();
        assert!(page.contains("could not be verified"), "{tamper}: {page}");
    }
}

#[tokio::test]
async fn gitlab_down_at_callback_shows_a_502_page() {
    let s = stack(&config_with(None, "")).await;
    let c = browser();
    let fields = to_consent(&c, &s, "alice", "alice-password", "/x").await;
    let cb = consent(&c, &s, fields, false).await;
    s.gitlab.set_faults(Faults {
        server_error: true,
        ..Faults::default()
    });
    let r = c.get(&cb).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let page = r.text().await.unwrap();
    assert!(page.contains("GitLab could not be reached"), "{page}");
    assert!(page.contains("Sign in with GitLab"));
}

#[tokio::test]
async fn a_user_in_300_groups_gets_split_cookies_that_work() {
    let mut fixture = Fixture::demo();
    for i in 0..300 {
        fixture.groups.push(labgate_group(
            &format!("acme/team-{i:03}-with-a-longish-name"),
            "alice",
        ));
    }
    let s = stack_with(&config_with(None, ""), fixture, "").await;
    let c = browser();
    let r = flow(&c, &s, "alice", "/").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let cookies = set_cookies(&r);
    let chunks: Vec<_> = cookies
        .iter()
        .filter(|c| {
            c.starts_with("_labgate=")
                || c.starts_with("_labgate_1=")
                || c.starts_with("_labgate_2=")
        })
        .collect();
    assert!(
        chunks.len() >= 2,
        "session split into several cookies: {}",
        chunks.len()
    );
    assert!(
        cookies.iter().all(|c| c.len() < 4096),
        "each cookie under 4 KB"
    );
    let (status, body) = get_json(&c, &format!("{}/", s.labgate_url)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["groups"].as_str().unwrap().split(',').count() > 300);
}

fn labgate_group(path: &str, user: &str) -> labgate::dev::gitlab::Group {
    labgate::dev::gitlab::Group {
        path: path.into(),
        members: vec![labgate::dev::gitlab::Member {
            user: user.into(),
            role: "developer".into(),
        }],
    }
}

#[tokio::test]
async fn cookie_secret_rotation_first_seals_all_open() {
    let old = "ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE=";
    let new = labgate::generate_cookie_secret();
    let a = stack(&config_with(None, "")).await;
    let r = flow(&browser(), &a, "alice", "/").await;
    let cookie = session_cookie_header(&set_cookies(&r));
    let with = |secrets: String| {
        config_with(None, "").replace(
            &format!("cookie_secret = \"{old}\""),
            &format!("cookie_secret = {secrets}"),
        )
    };
    let rotated = stack(&with(format!("[\"{new}\", \"{old}\"]"))).await;
    let r = plain()
        .get(format!("{}/", rotated.labgate_url))
        .header(COOKIE, &cookie)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "old secret still opens");
    let retired = stack(&with(format!("\"{new}\""))).await;
    let r = plain()
        .get(format!("{}/", retired.labgate_url))
        .header(COOKIE, &cookie)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "retired secret no longer opens"
    );
}

#[tokio::test]
async fn sign_out_clears_the_browser_session_and_revokes_at_gitlab() {
    let s = stack(&config_with(None, "")).await;
    let c = browser();
    let r = flow(&c, &s, "alice", "/").await;
    let copied = session_cookie_header(&set_cookies(&r));
    let r = c
        .get(format!("{}/oauth2/sign_out", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(set_cookies(&r)
        .iter()
        .any(|c| c.starts_with("_labgate=") && c.contains("Max-Age=0")));
    assert!(r.text().await.unwrap().contains("You are signed out"));
    assert_eq!(
        s.gitlab
            .counters
            .revocations
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let (status, _) = get_json(&c, &format!("{}/", s.labgate_url)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the browser's session is gone"
    );
    // With the cookie store, a copy of the cookie taken before sign-out still opens until
    // its next revalidation (documented; the Redis store ends it everywhere).
    let r = plain()
        .get(format!("{}/", s.labgate_url))
        .header(COOKIE, &copied)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // sign_out with rd goes there; a foreign rd falls back to the signed-out page.
    let r = c
        .get(format!("{}/oauth2/sign_out?rd=%2Fbye", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/bye");
    let r = c
        .get(format!(
            "{}/oauth2/sign_out?rd=https%3A%2F%2Fevil.example%2F",
            s.labgate_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn sub_path_gitlab_issuer_works() {
    let s = stack_with(&config_with(None, ""), Fixture::demo(), "/gitlab").await;
    assert!(s.gitlab.base_url.ends_with("/gitlab"));
    let c = browser();
    let r = flow(&c, &s, "alice", "/sub").await;
    assert_eq!(r.status(), StatusCode::FOUND, "{:?}", r.text().await);
    let (status, body) = get_json(&c, &format!("{}/sub", s.labgate_url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"], "alice");
}

#[tokio::test]
async fn read_user_only_mode_signs_in_without_oidc() {
    let cfg = config_with(Some("[access]\nallowed_users = [\"bob\"]\n"), "")
        .replace("[gitlab]\n", "[gitlab]\nscopes = [\"read_user\"]\n");
    let s = stack(&cfg).await;
    let c = browser();
    let r = flow(&c, &s, "bob", "/").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let (status, body) = get_json(&c, &format!("{}/", s.labgate_url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"], "bob");
    assert_eq!(body["email"], "bob@example.com");
    assert_eq!(body["groups"], "");
    assert_eq!(
        s.gitlab
            .counters
            .userinfo
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn skip_sign_in_page_goes_straight_to_gitlab() {
    let s =
        stack(&config_with(None, "").replace("[server]\n", "[server]\nskip_sign_in_page = true\n"))
            .await;
    let r = browser()
        .get(format!("{}/x", s.labgate_url))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/oauth2/start?rd=%2Fx");
}
