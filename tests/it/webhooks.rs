//! GitLab's member events revalidate a person's sessions at once (`POST
//! /oauth2/webhooks/gitlab`): the stand-in's Members API changes a membership and sends the
//! hook GitLab would, with its token; the next request of each session asks GitLab.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::*;

/// alice's `api` token in the demo fixture: an Owner of acme, she manages its members.
const OWNER_TOKEN: &str = "glpat-alice-demo-owner-api";
const SECRET: &str = "labgate-dev-webhook-secret";
const BOB: u64 = 102;

/// Changes bob's membership of `group` through the stand-in's Members API as GitLab's
/// Owner would (`access_level` None: removes him).
async fn members(gitlab: &str, group: &str, access_level: Option<u8>) -> StatusCode {
    let url = format!(
        "{gitlab}/api/v4/groups/{}/members/{BOB}",
        group.replace('/', "%2F")
    );
    let req = match access_level {
        None => plain().delete(url),
        Some(l) => plain().put(format!("{url}?access_level={l}")),
    };
    req.bearer_auth(OWNER_TOKEN).send().await.unwrap().status()
}

/// Polls `url` until it answers `want`; the time it took.
async fn until(url: &str, cookie: &str, want: StatusCode, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = status_with(url, cookie).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{url}: still {got} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Removes bob from acme/team, his last group of acme, as its Owner would: his next
/// request at `url` is refused within a second of the removal.
async fn out_of_acme_within_a_second(gitlab: &str, url: &str, cookie: &str) {
    let before = Instant::now();
    assert_eq!(
        members(gitlab, "acme/team", None).await,
        StatusCode::NO_CONTENT
    );
    until(url, cookie, StatusCode::FORBIDDEN, Duration::from_secs(1)).await;
    assert!(before.elapsed() < Duration::from_secs(1));
}

async fn hook(base: &str, token: Option<&str>, kind: &str, body: &str) -> reqwest::Response {
    let mut r = plain()
        .post(format!("{base}/oauth2/webhooks/gitlab"))
        .header("x-gitlab-event", kind)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        r = r.header("x-gitlab-token", t);
    }
    r.send().await.unwrap()
}

fn member_event(user_id: u64) -> String {
    format!(
        r#"{{"event_name":"user_remove_from_group","group_id":3,"group_path":"acme/team","user_id":{user_id},"user_username":"bob","group_access":"Developer"}}"#
    )
}

#[tokio::test]
async fn bob_removed_in_gitlab_is_refused_within_a_second() {
    // revalidate = "1m" in the demo config: only the event can explain a refusal in 1 s.
    let s = stack(&config_with(
        None,
        "[[route]]\npath = \"^/ops(/|$)\"\nallowed_groups = [\"acme/team:developer\"]\n",
    ))
    .await;
    let bob = flow(&browser(), &s, "bob", "/").await;
    let cookie = session_cookie_header(&set_cookies(&bob));
    let home = format!("{}/", s.labgate_url);
    let ops = format!("{}/ops", s.labgate_url);
    assert_eq!(status_with(&home, &cookie).await, StatusCode::OK);
    assert_eq!(status_with(&ops, &cookie).await, StatusCode::OK);
    // Demoted below the route's role: /ops refuses him, the rest of the app does not.
    assert_eq!(
        members(&s.gitlab.base_url, "acme/team", Some(20)).await,
        StatusCode::OK
    );
    let took = until(&ops, &cookie, StatusCode::FORBIDDEN, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(status_with(&home, &cookie).await, StatusCode::OK);
    // Removed from acme/team/frontend: still in acme's tree (acme/team).
    assert_eq!(
        members(&s.gitlab.base_url, "acme/team/frontend", None).await,
        StatusCode::NO_CONTENT
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status_with(&home, &cookie).await, StatusCode::OK);
    // And from acme/team, his last group of acme: refused everywhere, within a second.
    out_of_acme_within_a_second(&s.gitlab.base_url, &home, &cookie).await;
    // Counted: the revalidations the events asked for, and the time from the event to the
    // refusal (both refusals were under a second).
    let metrics = s.app.metrics.render();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
    };
    assert!(value("labgate_webhook_revalidations_total") >= 3.0);
    assert_eq!(value("labgate_webhook_refusal_seconds_count"), 2.0);
    assert_eq!(
        value("labgate_webhook_refusal_seconds_bucket{le=\"1.0\"}"),
        2.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_listener_of_their_own_takes_the_hooks_and_the_main_one_does_not() {
    let config =
        config_with(None, "").replace("[server]\n", "[server]\nwebhook_listen = \"127.0.0.1:0\"\n");
    let s = stack(&config).await;
    let side = s.webhook_url.clone().expect("the webhook listener");
    let bob = flow(&browser(), &s, "bob", "/").await;
    let cookie = session_cookie_header(&set_cookies(&bob));
    let home = format!("{}/", s.labgate_url);
    // The main listener does not take them, even with the right token.
    let r = hook(
        &s.labgate_url,
        Some(SECRET),
        "Member Hook",
        &member_event(BOB),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The side listener serves the hook path alone.
    for (path, want) in [
        ("/", StatusCode::NOT_FOUND),
        ("/oauth2/sign_in", StatusCode::NOT_FOUND),
        ("/oauth2/webhooks/gitlab", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let r = plain().get(format!("{side}{path}")).send().await.unwrap();
        assert_eq!(r.status(), want, "{path}");
    }
    let r = plain()
        .get(format!("{side}/oauth2/webhooks/gitlab"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    // Only origin-form targets, as on the main listener.
    let port = side.trim_start_matches("http://");
    let r = raw(
        &side,
        &format!("POST http://evil.example/oauth2/webhooks/gitlab HTTP/1.1\r\nHost: {port}\r\nX-Gitlab-Event: Member Hook\r\nX-Gitlab-Token: {SECRET}\r\nContent-Length: 2\r\n\r\n{{}}"),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = hook(
        &side,
        Some("wrong-secret-of-sixteen"),
        "Member Hook",
        &member_event(BOB),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The stand-in's hooks go there, and bob is out within a second.
    assert_eq!(status_with(&home, &cookie).await, StatusCode::OK);
    assert_eq!(
        members(&s.gitlab.base_url, "acme/team/frontend", None).await,
        StatusCode::NO_CONTENT
    );
    out_of_acme_within_a_second(&s.gitlab.base_url, &home, &cookie).await;
    // Without a secret the listener has nothing to serve: a configuration error naming it.
    let err = labgate::config::load_str(&with_demo_addresses(
        &config.replace(&format!("webhook_secret = \"{SECRET}\"\n"), ""),
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.webhook_listen"), "{err}");
}

#[tokio::test]
async fn forged_replayed_and_unrelated_hooks_change_nothing_but_a_gitlab_call() {
    let s = stack(&config_with(None, "")).await;
    let bob = flow(&browser(), &s, "bob", "/").await;
    let cookie = session_cookie_header(&set_cookies(&bob));
    let home = format!("{}/", s.labgate_url);
    let calls = || s.gitlab.counters.requests.load(Ordering::Relaxed);
    let refreshes = || s.gitlab.counters.refresh_grants.load(Ordering::Relaxed);
    let at_start = calls();
    // No token, a wrong one, two of them: 401, nothing marked, no GitLab call.
    for token in [
        None,
        Some("wrong-secret-of-sixteen"),
        Some(&format!("{SECRET}x")[..]),
    ] {
        let r = hook(&s.labgate_url, token, "Member Hook", &member_event(BOB)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let two = plain()
        .post(format!("{}/oauth2/webhooks/gitlab", s.labgate_url))
        .header("x-gitlab-event", "Member Hook")
        .header("x-gitlab-token", SECRET)
        .header("x-gitlab-token", "other")
        .body(member_event(BOB))
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&home, &cookie).await, StatusCode::OK);
    assert_eq!(calls(), at_start, "no GitLab call for a forged hook");
    // A real token on a replayed event for someone still a member: one revalidation, and
    // GitLab's answer (still a member) decides.
    let r = hook(
        &s.labgate_url,
        Some(SECRET),
        "Member Hook",
        &member_event(BOB),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let before = refreshes();
    assert_eq!(status_with(&home, &cookie).await, StatusCode::OK);
    assert_eq!(refreshes(), before + 1, "revalidated once");
    assert_eq!(status_with(&home, &cookie).await, StatusCode::OK);
    assert_eq!(refreshes(), before + 1, "and not again");
    // Hooks for people with no session here: no GitLab call, one bounded mark each; never
    // turned away for load (GitLab does not redeliver).
    let at = calls();
    let marked_before = s.app.sessions.marked_users();
    for id in 0..1_000u64 {
        let r = hook(
            &s.labgate_url,
            Some(SECRET),
            "System Hook",
            &member_event(50_000 + id),
        )
        .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(calls(), at, "no GitLab call for people without sessions");
    assert_eq!(s.app.sessions.marked_users(), marked_before + 1_000);
    // A flood without the token is limited (429 past 100 a second) and does not touch a
    // real event arriving meanwhile.
    let mut limited = 0;
    for _ in 0..300 {
        let r = hook(
            &s.labgate_url,
            Some("not-the-secret-at-all"),
            "System Hook",
            "{}",
        )
        .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited > 0, "refusals are limited");
    let r = hook(
        &s.labgate_url,
        Some(SECRET),
        "Member Hook",
        &member_event(BOB),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "GitLab's event still arrives"
    );
    // A declared body past the limit is refused at once, not waited for.
    let start = Instant::now();
    let r = raw(
        &s.labgate_url,
        &format!("POST /oauth2/webhooks/gitlab HTTP/1.1\r\nHost: x\r\nX-Gitlab-Event: System Hook\r\nX-Gitlab-Token: {SECRET}\r\nContent-Length: 99999999\r\n\r\nx"),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(status_with(&home, &cookie).await, StatusCode::OK);
}

#[tokio::test]
async fn bad_hooks_get_a_clear_4xx() {
    let s = stack(&config_with(None, "")).await;
    let base = &s.labgate_url;
    let cases: &[(&str, &str, StatusCode)] = &[
        (
            "Push Hook",
            r#"{"event_name":"push","user_id":1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "",
            r#"{"event_name":"user_destroy","user_id":1}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("System Hook", "not json", StatusCode::BAD_REQUEST),
        ("System Hook", "[1,2]", StatusCode::BAD_REQUEST),
        ("System Hook", r#"{"user_id":1}"#, StatusCode::BAD_REQUEST),
        (
            "System Hook",
            r#"{"event_name":"user_destroy","user_id":"1"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "System Hook",
            r#"{"event_name":"user_destroy","user_id":-1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "System Hook",
            r#"{"event_name":"project_create","project_id":1}"#,
            StatusCode::ACCEPTED,
        ),
        (
            "System Hook",
            r#"{"event_name":"user_rename","user_id":7,"username":"x"}"#,
            StatusCode::ACCEPTED,
        ),
    ];
    for (kind, body, want) in cases {
        let r = hook(base, Some(SECRET), kind, body).await;
        assert_eq!(r.status(), *want, "{kind} {body}");
        let text = r.text().await.unwrap();
        assert!(!text.contains(body), "the body is not echoed: {text}");
    }
    let huge = format!(
        r#"{{"event_name":"user_destroy","user_id":1,"x":"{}"}}"#,
        "a".repeat(70_000)
    );
    let r = hook(base, Some(SECRET), "System Hook", &huge).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = plain()
        .get(format!("{base}/oauth2/webhooks/gitlab"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Without gitlab.webhook_secret the endpoint is not there.
    let off =
        stack(&config_with(None, "").replace(&format!("webhook_secret = \"{SECRET}\"\n"), ""))
            .await;
    let r = hook(
        &off.labgate_url,
        Some(SECRET),
        "System Hook",
        &member_event(BOB),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_redis_every_replica_refuses_within_a_second() {
    let (_redis, _k, s) = crate::redis::redis_stack("redis_cache_ttl = \"500ms\"").await;
    let b = s.start_replica().await.unwrap();
    let bob = flow(&browser(), &s, "bob", "/").await;
    let cookie = session_cookie_header(&set_cookies(&bob));
    for base in [&s.labgate_url, &b.url] {
        assert_eq!(
            status_with(&format!("{base}/"), &cookie).await,
            StatusCode::OK
        );
    }
    // The stand-in's hook reaches replica A only; B learns of it through Redis.
    assert_eq!(
        members(&s.gitlab.base_url, "acme/team/frontend", None).await,
        StatusCode::NO_CONTENT
    );
    out_of_acme_within_a_second(&s.gitlab.base_url, &format!("{}/", b.url), &cookie).await;
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::FORBIDDEN
    );
}
