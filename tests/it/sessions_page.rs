//! People see and end their own sessions (`{prefix}/sessions`), and operators end a user's
//! (`labgate sessions revoke --user id:N`): listed from Redis with where each came from,
//! ended one by one or everywhere, only by their owner and only from this site.

use reqwest::header::{ACCEPT, COOKIE, LOCATION, ORIGIN};
use reqwest::{Client, StatusCode};

use crate::harness::*;

/// A browser with a cookie jar that names itself `agent`.
fn browser_as(agent: &str) -> Client {
    Client::builder()
        .cookie_store(true)
        .user_agent(agent)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `user` in with a browser named `agent`; its session cookie header.
async fn sign_in_as(s: &labgate::dev::Stack, user: &str, agent: &str) -> String {
    let r = flow(&browser_as(agent), s, user, "/").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    session_cookie_header(&set_cookies(&r))
}

async fn page(s: &labgate::dev::Stack, cookie: &str) -> (StatusCode, String) {
    let r = plain()
        .get(format!("{}/oauth2/sessions", s.labgate_url))
        .header(COOKIE, cookie)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn home(s: &labgate::dev::Stack, cookie: &str) -> StatusCode {
    status_with(&format!("{}/", s.labgate_url), cookie).await
}

/// The ids the page offers to end ("sign out this session"), in page order.
fn end_ids(html: &str) -> Vec<String> {
    html.split(r#"name="end" value=""#)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

const FORM: &str = "application/x-www-form-urlencoded";

async fn end(s: &labgate::dev::Stack, cookie: &str, origin: &str, id: &str) -> reqwest::Response {
    plain()
        .post(format!("{}/oauth2/sessions", s.labgate_url))
        .header(COOKIE, cookie)
        .header(ORIGIN, origin)
        .header("content-type", FORM)
        .body(format!("end={id}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn people_list_and_end_their_own_sessions_in_redis() {
    let (_redis, _k, s) = crate::redis::redis_stack("").await;
    let laptop = sign_in_as(&s, "bob", "LaptopBrowser/1.0").await;
    let phone = sign_in_as(&s, "bob", "PhoneBrowser/2.0 <script>").await;
    let alice = sign_in_as(&s, "alice", "AliceBrowser/3.0").await;
    // Not signed in: to the sign-in, and back here after it.
    let (st, _) = page(&s, "").await;
    assert_eq!(st, StatusCode::FOUND);
    let r = plain()
        .get(format!("{}/oauth2/sessions", s.labgate_url))
        .send()
        .await
        .unwrap();
    let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        to.contains("/oauth2/sign_in?rd=%2Foauth2%2Fsessions"),
        "{to}"
    );
    // bob's page: his two sessions, this browser first, the other's browser escaped;
    // nothing of alice's.
    let (st, html) = page(&s, &laptop).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("This browser"), "{html}");
    assert!(html.contains("PhoneBrowser/2.0 &lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>"));
    assert!(!html.contains("AliceBrowser"));
    assert!(html.contains("127.0.0.1"));
    assert!(html.contains("Sign out everywhere"));
    let ids = end_ids(&html);
    assert_eq!(ids.len(), 1, "one other session to end: {html}");
    let (_, alice_html) = page(&s, &alice).await;
    // Ending needs this site's origin: a cross-site form ends nothing.
    let r = end(&s, &laptop, "https://evil.example", &ids[0]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(home(&s, &phone).await, StatusCode::OK);
    // Not bob's to end: alice's session id from bob's browser ends nothing.
    let origin = s.labgate_url.clone();
    assert!(end_ids(&alice_html).is_empty());
    let alice_sid = page(&s, &alice).await.1;
    assert!(alice_sid.contains("This browser"));
    let r = end(&s, &laptop, &origin, "not-a-session-of-bob").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(home(&s, &phone).await, StatusCode::OK);
    assert_eq!(home(&s, &alice).await, StatusCode::OK);
    // A malformed form: a clear 400; not a form at all: 415.
    for (body, kind, want) in [
        ("", FORM, StatusCode::BAD_REQUEST),
        ("end=a&end=b", FORM, StatusCode::BAD_REQUEST),
        ("x=1", FORM, StatusCode::BAD_REQUEST),
        (
            &format!("end={}", ids[0])[..],
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            r#"{"end":"x"}"#,
            "application/json",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ] {
        let r = plain()
            .post(format!("{}/oauth2/sessions", s.labgate_url))
            .header(COOKIE, &laptop)
            .header(ORIGIN, &origin)
            .header("content-type", kind)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{body:?} as {kind}");
    }
    assert_eq!(home(&s, &phone).await, StatusCode::OK);
    // bob ends the phone's session from the laptop: the phone is out, the laptop is not.
    let r = end(&s, &laptop, &origin, &ids[0]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[LOCATION].to_str().unwrap(),
        "/oauth2/sessions?ended=1"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(home(&s, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(home(&s, &laptop).await, StatusCode::OK);
    let (_, html) = page(&s, &laptop).await;
    assert!(end_ids(&html).is_empty(), "{html}");
    assert!(!html.contains("PhoneBrowser"));
    // Sign out everywhere from the page's form.
    let phone = sign_in_as(&s, "bob", "PhoneBrowser/2.0").await;
    let r = plain()
        .post(format!("{}/oauth2/sign_out?everywhere=1", s.labgate_url))
        .header(COOKIE, &laptop)
        .header(ORIGIN, &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(home(&s, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(home(&s, &laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(home(&s, &alice).await, StatusCode::OK);
}

#[tokio::test]
async fn the_cookie_store_shows_this_browser_and_says_why_not_the_others() {
    let s = stack(&config_with(None, "")).await;
    let bob = sign_in_as(&s, "bob", "LaptopBrowser/1.0").await;
    let (st, html) = page(&s, &bob).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("This browser"));
    assert!(html.contains("LaptopBrowser/1.0") || html.contains("(not sent)"));
    assert!(html.contains("cannot list or end the sessions of your other browsers"));
    assert!(!html.contains("Sign out everywhere"));
    let r = end(&s, &bob, &s.labgate_url, "anything").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(home(&s, &bob).await, StatusCode::OK);
}

#[tokio::test]
async fn operators_revoke_a_users_sessions_from_the_command_line() {
    let (_redis, dir, s) = crate::redis::redis_stack("").await;
    let laptop = sign_in_as(&s, "bob", "LaptopBrowser/1.0").await;
    let phone = sign_in_as(&s, "bob", "PhoneBrowser/2.0").await;
    let alice = sign_in_as(&s, "alice", "AliceBrowser/3.0").await;
    let path = dir.path().join("labgate.toml");
    std::fs::write(&path, unpublished(&s.config_text)).unwrap();
    let run = |user: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
            .args([
                "--config",
                path.to_str().unwrap(),
                "sessions",
                "revoke",
                "--user",
                user,
            ])
            .env_remove("LABGATE_CONFIG")
            .output()
            .unwrap()
    };
    // A username is not an id (its owner can change it): refused, nothing ended.
    let out = run("bob");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("id:<GitLab user id>"), "{err}");
    assert_eq!(home(&s, &laptop).await, StatusCode::OK);
    let out = run("id:102");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ended 2 session(s)"));
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("revoked every session of a user"),
        "an audit line: {log}"
    );
    // The local cache keeps a session for redis_cache_ttl (2 s) at most.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(home(&s, &laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(home(&s, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(home(&s, &alice).await, StatusCode::OK);
    // The cookie store has nothing to revoke: said, exit 2.
    let cookie_config = with_demo_addresses(&config_with(None, ""));
    std::fs::write(&path, unpublished(&cookie_config)).unwrap();
    let out = run("id:102");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("browsers' cookies"));
}

/// A Redis connection to the stack's store (to look at what it keeps).
fn store(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap()
}

#[tokio::test]
async fn an_ended_session_stays_ended_when_a_replica_revalidates_its_copy() {
    // A replica keeps its copy of the phone's session for 30 s; meanwhile the laptop signs
    // out everywhere at the other replica, which revokes only the laptop's GitLab token.
    let (redis, _k, s) = crate::redis::redis_stack("redis_cache_ttl = \"30s\"").await;
    let b = s.start_replica().await.unwrap();
    let laptop = sign_in_as(&s, "bob", "LaptopBrowser/1.0").await;
    let phone = sign_in_as(&s, "bob", "PhoneBrowser/2.0").await;
    let at_b = |cookie: String| {
        let url = format!("{}/", b.url);
        async move { status_with(&url, &cookie).await }
    };
    assert_eq!(at_b(phone.clone()).await, StatusCode::OK);
    let r = plain()
        .post(format!("{}/oauth2/sign_out?everywhere=1", s.labgate_url))
        .header(COOKIE, &laptop)
        .header(ORIGIN, &s.labgate_url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Past session.revalidate at B: its copy comes due, and the store says it is over. (If
    // the revalidation wrote it back, the phone's still valid refresh token would revive
    // it, on every replica.)
    b.app.clock.advance(120);
    assert_eq!(at_b(phone.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(at_b(phone.clone()).await, StatusCode::UNAUTHORIZED);
    let mut c = store(redis.port);
    let left: usize = redis::cmd("SCARD")
        .arg("labgate:u:102")
        .query(&mut c)
        .unwrap();
    assert_eq!(left, 0, "nothing written back");
}

#[tokio::test]
async fn the_last_seen_times_stay_bounded_by_the_sessions() {
    let (redis, _k, s) = crate::redis::redis_stack("redis_cache_ttl = \"0s\"").await;
    for i in 0..70 {
        let cookie = sign_in_as(&s, "bob", &format!("Browser/{i}")).await;
        assert_eq!(home(&s, &cookie).await, StatusCode::OK);
    }
    let mut c = store(redis.port);
    let sessions: usize = redis::cmd("SCARD")
        .arg("labgate:u:102")
        .query(&mut c)
        .unwrap();
    let times: usize = redis::cmd("HLEN")
        .arg("labgate:seen:102")
        .query(&mut c)
        .unwrap();
    assert!(sessions <= 64, "{sessions}");
    assert!(times <= sessions, "{times} times for {sessions} sessions");
}
