//! Security: every known bypass class of labgate's peers (oauth2-proxy's advisories are the
//! checklist) has a named test here that fails on a vulnerable implementation.

use labgate::dev::gitlab::Fixture;
use reqwest::header::{ACCEPT, COOKIE, USER_AGENT};
use reqwest::StatusCode;

use crate::harness::*;

/// Decodes the corpus file's escapes (`\\`, `\t`, `\n`, `\r`, `\xNN`, `\uNNNN`).
fn unescape(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
            }
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            other => panic!("bad escape {other:?} in {line}"),
        }
    }
    out
}

fn corpus() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/open_redirects.txt"
    ))
    .unwrap();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(unescape)
        .collect()
}

const ALLOWED: &str = "allowed_redirect_domains = [\".example.org\"]";

/// Signs in through the whole flow with `rd` and returns where the callback sends the browser.
pub(crate) async fn destination(c: &reqwest::Client, s: &labgate::dev::Stack, rd: &str) -> String {
    let r = c
        .get(format!(
            "{}/oauth2/start?rd={}",
            s.labgate_url,
            urlencode(rd)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "start for {rd:?}");
    let r = c.get(location(&r)).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "trusted app: straight back for {rd:?}"
    );
    let r = c.get(location(&r)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "callback for {rd:?}");
    location(&r)
}

async fn trusted_stack() -> labgate::dev::Stack {
    trusted_stack_with(ALLOWED).await
}

/// A stack whose GitLab application is trusted (no consent page), with `server` lines added.
pub(crate) async fn trusted_stack_with(server: &str) -> labgate::dev::Stack {
    let mut fixture = Fixture::demo();
    fixture.applications[0].trusted = true;
    stack_with(
        &config_with(None, "").replace("[server]\n", &format!("[server]\n{server}\n")),
        fixture,
        "",
    )
    .await
}

pub(crate) async fn gitlab_signed_in(s: &labgate::dev::Stack) -> reqwest::Client {
    let c = browser();
    // Sign in at the stand-in once (its own session), so flows go straight through: the
    // application is trusted, so GitLab skips the consent page.
    let r = c
        .get(format!("{}/oauth2/start", s.labgate_url))
        .send()
        .await
        .unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    let return_to = url::Url::parse(&location(&r))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .unwrap()
        .1
        .into_owned();
    let r = c
        .post(format!("{}/users/sign_in", s.gitlab.base_url))
        .form(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("return_to", return_to.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    c
}

#[tokio::test]
async fn open_redirect_corpus_through_the_whole_flow() {
    let payloads = corpus();
    assert!(payloads.len() >= 300, "{}", payloads.len());
    let s = trusted_stack().await;
    let c = gitlab_signed_in(&s).await;
    for rd in &payloads {
        let to = destination(&c, &s, rd).await;
        assert_eq!(
            to, "/",
            "open redirect: rd={rd:?} sent the browser to {to:?}"
        );
        // The sign-in page and sign-out handle rd with the same function.
        let page = c
            .get(format!(
                "{}/oauth2/sign_in?rd={}",
                s.labgate_url,
                urlencode(rd)
            ))
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("/oauth2/start?rd=%2F\""),
            "sign-in page kept rd={rd:?}"
        );
    }
    // sign_out?rd= (signs out, so last).
    for rd in payloads.iter().take(60) {
        let r = plain()
            .get(format!(
                "{}/oauth2/sign_out?rd={}",
                s.labgate_url,
                urlencode(rd)
            ))
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == StatusCode::OK || location(&r) == "/",
            "sign_out rd={rd:?}"
        );
    }
}

#[tokio::test]
async fn redirects_that_must_pass() {
    let s = trusted_stack().await;
    let c = gitlab_signed_in(&s).await;
    let own = format!("{}/deep/page?x=1", s.labgate_url);
    for (rd, want) in [
        ("/", "/"),
        ("/a/b?c=d", "/a/b?c=d"),
        ("/path?next=//elsewhere", "/path?next=//elsewhere"),
        ("/x#frag", "/x#frag"),
        (own.as_str(), own.as_str()),
        ("https://example.org/", "https://example.org/"),
        (
            "https://sub.example.org/x?y=1",
            "https://sub.example.org/x?y=1",
        ),
    ] {
        assert_eq!(destination(&c, &s, rd).await, want, "rd={rd}");
    }
}

#[tokio::test]
async fn look_alike_domains_are_not_in_the_allow_list() {
    let s = trusted_stack().await;
    let c = gitlab_signed_in(&s).await;
    for rd in [
        "https://evilexample.org/",
        "https://example.org.evil.com/",
        "https://example.org@evil.com/",
        "https://xn--exmple-cua.org/",
        "https://exаmple.org/",
    ] {
        assert_eq!(destination(&c, &s, rd).await, "/", "{rd}");
    }
}

#[tokio::test]
async fn skip_auth_rules_match_the_path_not_the_query_or_encoded_hash() {
    let s = stack(&config_with(
        Some("[access]\nallowed_groups = [\"acme\"]\n\n[[access.public]]\npath = \"/public\"\n"),
        "",
    ))
    .await;
    for path in [
        "/admin?x=/public",
        "/admin#/public",
        "/admin%23/public",
        "/admin%3F/public",
    ] {
        let r = raw(&s.labgate_url, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n")).await;
        assert!(
            r.starts_with("HTTP/1.1 401") || r.starts_with("HTTP/1.1 400"),
            "{path}: {}",
            r.lines().next().unwrap()
        );
    }
    let r = raw(
        &s.labgate_url,
        "GET /public/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "the real public path is public"
    );
    // Anchored rules (what `labgate check` recommends) see through `;` and dot tricks too.
    let s = stack(&config_with(Some("[access]\nallowed_groups = [\"acme\"]\n\n[[access.public]]\npath = \"^/public(/|$)\"\n"), "")).await;
    for path in [
        "/admin;/public",
        "/public/..;/admin",
        "/public/%2e%2e/admin",
        "/public/..%2fadmin",
        "/public%2f..%2fadmin",
        "/publicx",
    ] {
        let r = raw(&s.labgate_url, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n")).await;
        assert!(
            r.starts_with("HTTP/1.1 401") || r.starts_with("HTTP/1.1 400"),
            "{path}: {}",
            r.lines().next().unwrap()
        );
    }
}

#[tokio::test]
async fn underscore_header_smuggling_is_stripped() {
    let s = stack(&config_with(None, "")).await;
    let c = signed_in(&s, "bob").await;
    let r = c
        .get(format!("{}/", s.labgate_url))
        .header(ACCEPT, "application/json")
        .header("X_Forwarded_User", "admin")
        .header("x_forwarded_email", "admin@example.com")
        .header("X_FORWARDED_GROUPS", "acme/admins")
        .header("x-labgate_user-id", "1")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    let names: Vec<String> = body["headers"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(
        names.iter().all(|n| !n.contains('_')),
        "underscore headers reached the app: {names:?}"
    );
    assert_eq!(body["user"], "bob");
}

#[tokio::test]
async fn a_health_check_user_agent_is_no_bypass() {
    let s = stack(&config_with(None, "")).await;
    for ua in [
        "kube-probe/1.29",
        "GoogleHC/1.0",
        "ELB-HealthChecker/2.0",
        "Consul Health Check",
        "oauth2-proxy",
    ] {
        let r = plain()
            .get(format!("{}/admin", s.labgate_url))
            .header(USER_AGENT, ua)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{ua}");
    }
}

#[tokio::test]
async fn spoofed_forwarded_uri_from_an_untrusted_caller_is_ignored() {
    let s = stack(&config_with(
        Some("[access]\nallowed_groups = [\"acme\"]\n\n[[access.public]]\npath = \"^/public\"\n"),
        "",
    ))
    .await;
    let r = plain()
        .get(format!("{}/oauth2/auth", s.labgate_url))
        .header("x-forwarded-uri", "/public/x")
        .header("x-original-url", "http://x/public/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = plain()
        .get(format!("{}/admin", s.labgate_url))
        .header("x-forwarded-uri", "/public/x")
        .header("x-original-url", "/public/x")
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_email_with_two_at_signs_does_not_match_a_domain_rule() {
    let mut fixture = Fixture::demo();
    fixture
        .users
        .iter_mut()
        .find(|u| u.username == "mallory")
        .unwrap()
        .email = "mallory@evil.com@example.com".into();
    let s = stack_with(&config_with(Some("[access]\nallow_any_gitlab_user = true\nallowed_email_domains = [\"example.com\"]\n"), ""), fixture, "").await;
    let r = flow(&browser(), &s, "mallory", "/").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_new_sign_in_replaces_the_previous_session() {
    let s = stack(&config_with(None, "")).await;
    let c = browser();
    assert_eq!(flow(&c, &s, "alice", "/").await.status(), StatusCode::FOUND);
    let (_, body) = get_json(&c, &format!("{}/", s.labgate_url)).await;
    assert_eq!(body["user"], "alice");
    // The same browser signs in again, as someone else at GitLab.
    let other = browser();
    let fields = to_consent(&other, &s, "bob", "bob-password", "/").await;
    let cb = consent(&other, &s, fields, false).await;
    let r = c.get(&cb).send().await.unwrap();
    // The flow cookie belongs to the other browser: refused, and alice stays alice.
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (_, body) = get_json(&c, &format!("{}/", s.labgate_url)).await;
    assert_eq!(body["user"], "alice");
    // A real re-sign-in as bob replaces alice's session entirely.
    let c2 = browser();
    assert_eq!(
        flow(&c2, &s, "alice", "/").await.status(),
        StatusCode::FOUND
    );
    let r = flow(&c2, &s, "alice", "/").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let cookies = set_cookies(&r);
    assert!(
        cookies.iter().any(|c| c.starts_with("_labgate=")),
        "a fresh session cookie at every sign-in"
    );
}

#[tokio::test]
async fn cross_site_sign_out_is_refused_or_confirmed() {
    let s = stack(&config_with(None, "")).await;
    let r = flow(&browser(), &s, "alice", "/").await;
    let cookie = session_cookie_header(&set_cookies(&r));
    // A cross-site POST (a forged form) is refused; a cross-site GET (a link or <img>) only
    // shows a confirmation page. Neither clears the session.
    let r = plain()
        .post(format!("{}/oauth2/sign_out", s.labgate_url))
        .header(COOKIE, &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = plain()
        .get(format!("{}/oauth2/sign_out", s.labgate_url))
        .header(COOKIE, &cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(set_cookies(&r).is_empty());
    let page = r.text().await.unwrap();
    assert!(page.contains("method=\"post\""), "{page}");
    // Same-origin sign-out works.
    let r = plain()
        .post(format!("{}/oauth2/sign_out", s.labgate_url))
        .header(COOKIE, &cookie)
        .header("origin", &s.labgate_url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(set_cookies(&r).iter().any(|c| c.contains("Max-Age=0")));
}

#[tokio::test]
async fn protocol_hygiene() {
    let s = stack(&config_with(None, "")).await;
    let first_line = |r: String| r.lines().next().unwrap_or("").to_owned();
    // Ambiguous framing: Content-Length with Transfer-Encoding, or two Content-Lengths.
    // Conflicting Content-Lengths, or chunked not last: refused.
    for req in [
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n",
    ] {
        let line = first_line(raw(&s.labgate_url, req).await);
        assert!(
            line.is_empty() || line.contains(" 400 "),
            "{req:?} -> {line}"
        );
    }
    // Content-Length with Transfer-Encoding: hyper applies RFC 9112 §6.3 (chunked wins, the
    // Content-Length is dropped) before labgate sees the request, and labgate re-frames
    // what it forwards. A request "smuggled" behind the chunked body is parsed as the next
    // request on the connection and authenticated like any other — in fact hyper closes the
    // connection after such a request (RFC 9112 §6.3), so it is never read at all.
    let smuggle = "GET /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = raw(&s.labgate_url, smuggle).await;
    let statuses: Vec<&str> = out.lines().filter(|l| l.starts_with("HTTP/1.1 ")).collect();
    assert!(statuses[0].contains(" 200 "), "{statuses:?}");
    assert!(
        statuses.iter().skip(1).all(|s| s.contains(" 401 ")),
        "the smuggled request was not served: {statuses:?}"
    );
    // Absolute-form and CONNECT are not proxied.
    let line = first_line(
        raw(
            &s.labgate_url,
            "GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        )
        .await,
    );
    assert!(line.contains(" 400 "), "{line}");
    let line = first_line(raw(&s.labgate_url, "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n").await);
    assert!(line.contains(" 405 ") || line.contains(" 400 "), "{line}");
    // OPTIONS needs a session like any other method (CORS preflight is opt-in via public).
    let r = plain()
        .request(reqwest::Method::OPTIONS, format!("{}/admin", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // labgate's own answers are not cached and carry security headers.
    let r = plain()
        .get(format!("{}/oauth2/sign_in", s.labgate_url))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    for path in [
        "/oauth2/userinfo",
        "/oauth2/start",
        "/oauth2/callback?state=x",
        "/oauth2/auth",
    ] {
        let r = plain()
            .get(format!("{}{path}", s.labgate_url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let s = stack(&config_with(None, "").replace("cookie_secure = false", "cookie_secure = true"))
        .await;
    let r = plain()
        .get(format!("{}/oauth2/start", s.labgate_url))
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&r);
    assert!(
        cookies
            .iter()
            .all(|c| c.starts_with("__Host-_labgate_csrf_")
                && c.contains("Secure")
                && c.contains("Path=/")
                && !c.contains("Domain")),
        "{cookies:?}"
    );
}

/// A session dated in the future (what a forger with the cookie secret would write, so that
/// it is never revalidated) is refused, and so is its cookie afterwards.
#[tokio::test]
async fn sessions_dated_in_the_future_are_refused() {
    let s = crate::harness::stack(&crate::harness::config_with(None, "")).await;
    let bob = crate::harness::flow(&crate::harness::browser(), &s, "bob", "/").await;
    let real = crate::harness::session_cookie_header(&crate::harness::set_cookies(&bob));
    let now = s.app.clock.now();
    for (created, validated) in [(now, now + 86_400), (now + 86_400, now), (now, now + 30)] {
        let session = labgate::session::Session {
            v: labgate::session::SESSION_VERSION,
            sid: labgate::random_token(18),
            user: labgate::access::User {
                id: 101,
                username: "alice".into(),
                groups: vec!["acme".into(), "acme/admins".into()],
                ..Default::default()
            },
            access_token: "x".into(),
            refresh_token: None,
            id_token: None,
            created,
            host: None,
            checked_ms: 0,
            origin: None,
            expires: now + 86_400 * 30,
            validated,
            derived: Default::default(),
        };
        let cookies = s
            .app
            .sessions
            .codec
            .session_cookies(&session, &http::HeaderMap::new(), now);
        let header = crate::harness::session_cookie_header(&cookies);
        let r = crate::harness::plain()
            .get(format!("{}/admin", s.labgate_url))
            .header("cookie", header)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let ahead = created.max(validated) - now;
        let want = if ahead > 60 {
            reqwest::StatusCode::UNAUTHORIZED
        } else {
            reqwest::StatusCode::OK
        };
        assert_eq!(
            r.status(),
            want,
            "created +{} validated +{}",
            created - now,
            validated - now
        );
    }
    // An honest session is unaffected.
    let r = crate::harness::plain()
        .get(format!("{}/x", s.labgate_url))
        .header("cookie", real)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
}

/// A flood of sign-in starts (each leaving a flow cookie) cannot lock a browser out with a
/// Cookie header the server refuses: long destinations are not kept, and only the newest
/// few flows stay.
#[tokio::test]
async fn a_flow_cookie_bomb_locks_nobody_out() {
    use crate::harness::*;
    let s = stack(&config_with(None, "")).await;
    let c = browser();
    let long = format!("/{}", "a".repeat(2700));
    let medium = format!("/{}", "b".repeat(2000));
    for rd in [&long, &long, &medium, &medium, &medium, &medium, &medium] {
        let r = c
            .get(format!(
                "{}/oauth2/start?rd={}",
                s.labgate_url,
                urlencode(rd)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::FOUND);
    }
    // The jar holds what the browser would send: at most three flows.
    let r = c
        .get(format!("{}/public/x", s.labgate_url))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["headers"].get("cookie").is_none(),
        "labgate's cookies never reach the app"
    );
    let r = c
        .get(format!("{}/oauth2/sign_out", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::OK,
        "sign-out is not refused with 431"
    );
    // And a sign-in still completes.
    let r = flow(&c, &s, "bob", "/").await;
    assert_eq!(r.status(), reqwest::StatusCode::FOUND);
}

/// A user in so many groups that the session cannot fit the Cookie header gets a page that
/// says so (and what the administrator can do), not a session that breaks every request.
#[tokio::test]
async fn a_session_too_large_for_a_cookie_is_explained() {
    use crate::harness::*;
    let s = stack(&config_with(None, "")).await;
    s.gitlab.with_fixture(|f| {
        for i in 0..700 {
            f.set_group_member(
                &format!("acme/a-rather-long-subgroup-name-{i:04}"),
                "bob",
                Some("developer"),
            );
        }
    });
    let c = browser();
    let r = flow(&c, &s, "bob", "/").await;
    assert_eq!(r.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    let page = r.text().await.unwrap();
    assert!(page.contains("session.store"), "{page}");
    // With the Redis-free default nothing was stored for the browser to send back.
    let r = c
        .get(format!("{}/x", s.labgate_url))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
}
