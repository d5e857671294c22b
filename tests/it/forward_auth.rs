//! Forward-auth: a real nginx running deploy/nginx/labgate.conf, and the Traefik / Caddy /
//! ingress-nginx header contract of /oauth2/auth.

use labgate::dev::gitlab::Fixture;
use labgate::dev::{Listeners, Stack};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use crate::harness::*;

/// Starts nginx with the deploy example, pointed at this test's labgate and echo app.
async fn nginx(port: u16, labgate: &str, app: &str) -> Nginx {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx/labgate.conf"
    ))
    .unwrap();
    let site = example
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace(
            "server 127.0.0.1:4180;",
            &format!("server {};", labgate.trim_start_matches("http://")),
        )
        .replace(
            "server 127.0.0.1:8080;",
            &format!("server {};", app.trim_start_matches("http://")),
        );
    start_nginx(&site, port).await
}

#[tokio::test]
async fn nginx_auth_request_end_to_end() {
    let (s, _nginx, front) = behind_nginx("auto").await;

    // Not signed in: nginx shows labgate's sign-in page for the original URL.
    let c = browser();
    let r = c
        .get(format!("{front}/deep/page?x=1"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("Sign in with GitLab"), "{page}");
    assert!(
        page.contains("/oauth2/start?rd=%2Fdeep%2Fpage%3Fx%3D1"),
        "{page}"
    );
    // An API client gets 401.
    assert_eq!(
        get_json(&plain(), &format!("{front}/api")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // /oauth2/auth itself is internal to nginx.
    assert_eq!(
        plain()
            .get(format!("{front}/oauth2/auth"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // Sign in through nginx (the stand-in redirects back to nginx's /oauth2/callback).
    let fields = to_consent_at(
        &c,
        &s.gitlab,
        &front,
        "alice",
        "alice-password",
        "/deep/page?x=1",
    )
    .await;
    let callback = consent(&c, &s, fields, false).await;
    assert!(
        callback.starts_with(&format!("{front}/oauth2/callback")),
        "{callback}"
    );
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(
        (r.status(), location(&r)),
        (StatusCode::FOUND, "/deep/page?x=1".to_owned())
    );

    // The app receives the identity, a verifying assertion, and none of the forged headers.
    let mut r = c
        .get(format!("{front}/deep/page?x=1"))
        .header(ACCEPT, "application/json")
        .header("X-Forwarded-User", "mallory")
        .header("X-Labgate-User-Id", "1")
        .header("X-Auth-Request-User", "mallory")
        .header("X_Forwarded_User", "mallory");
    for (k, v) in CLIENT_OVERRIDES {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["path"], "/deep/page");
    for (forged, _) in CLIENT_OVERRIDES {
        let forged = forged.to_ascii_lowercase();
        assert!(body["headers"].get(&forged).is_none(), "{forged}: {body}");
    }
    assert_eq!(
        body["headers"]["x-forwarded-user"],
        serde_json::json!(["alice"])
    );
    assert_eq!(
        body["headers"]["x-labgate-user-id"],
        serde_json::json!(["101"])
    );
    assert!(
        body["headers"].get("x-auth-request-user").is_none(),
        "{body}"
    );
    assert!(body["headers"].get("x_forwarded_user").is_none(), "{body}");
    assert_eq!(body["verified"]["valid"], true, "{body}");
    assert_eq!(body["verified"]["claims"]["iss"], front);

    // Route rules apply to the original path: bob may not open /admin.
    let bob = browser();
    let f = to_consent_at(&bob, &s.gitlab, &front, "bob", "bob-password", "/").await;
    let cb = consent(&bob, &s, f, false).await;
    assert_eq!(
        bob.get(&cb).send().await.unwrap().status(),
        StatusCode::FOUND
    );
    assert_eq!(get_json(&bob, &format!("{front}/")).await.0, StatusCode::OK);
    assert_eq!(
        get_json(&bob, &format!("{front}/admin/x")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_json(&c, &format!("{front}/admin/x")).await.0,
        StatusCode::OK
    );

    // Sign out through nginx.
    let r = c
        .get(format!("{front}/oauth2/sign_out"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        get_json(&c, &format!("{front}/deep/page")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn auth(
    s: &Stack,
    c: &reqwest::Client,
    query: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = c.get(format!("{}/oauth2/auth{query}", s.labgate_url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn traefik_and_caddy_header_contract() {
    let trusted = config_with(None, "").replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let s = stack(&trusted).await;
    let bob = signed_in(&s, "bob").await;
    let fwd = |uri: &'static str| {
        vec![
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", uri),
        ]
    };

    let r = auth(&s, &bob, "", &fwd("/docs")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for h in [
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-groups",
        "x-auth-request-preferred-username",
        "x-auth-request-user-id",
        "x-labgate-assertion",
    ] {
        assert!(r.headers().contains_key(h), "{h} present");
    }
    assert_eq!(r.headers()["x-auth-request-user"], "bob");
    assert_eq!(
        r.headers()["x-auth-request-groups"],
        "acme/team,acme/team/frontend"
    );
    assert_eq!(
        auth(&s, &bob, "", &fwd("/admin")).await.status(),
        StatusCode::FORBIDDEN
    );
    // The front proxy passes the original target as the client wrote it, and WSGI / ASGI
    // apps route on it with its dot segments: `/admin/../docs` is `/admin/<path>` to Flask.
    assert_eq!(
        auth(&s, &bob, "", &fwd("/admin/../docs")).await.status(),
        StatusCode::FORBIDDEN
    );
    // No browser sends a dot segment; a path with one faces every route (an app may route
    // on it unresolved), so bob, outside /admin's route, is refused it anywhere.
    assert_eq!(
        auth(&s, &bob, "", &fwd("/docs/../docs")).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auth(&s, &bob, "", &fwd("/docs/x")).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        auth(&s, &bob, "", &fwd("/docs/..%2Fadmin")).await.status(),
        StatusCode::FORBIDDEN
    );
    // ingress-nginx style.
    assert_eq!(
        auth(
            &s,
            &bob,
            "",
            &[("x-original-url", "https://app.example.com/admin?x=1")]
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    // Public paths need no session; the identity headers are there, empty.
    let r = auth(&s, &plain(), "", &fwd("/public/logo.png")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["x-auth-request-user"], "");
    // Narrowing by query.
    assert_eq!(
        auth(&s, &bob, "?allowed_groups=acme/team", &fwd("/docs"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        auth(
            &s,
            &bob,
            "?allowed_groups=acme/admins,outsiders",
            &fwd("/docs")
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auth(&s, &bob, "?allowed_users=alice", &fwd("/docs"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // Not signed in: 401, or for browsers in redirect mode a 302 to the sign-in page with
    // the original URL (on public_url's origin here, so relative).
    let anon = plain();
    assert_eq!(
        auth(&s, &anon, "", &fwd("/docs")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut h = fwd("/docs?page=2");
    h[2] = (
        "x-forwarded-host",
        s.labgate_url.trim_start_matches("http://"),
    );
    h[1] = ("x-forwarded-proto", "http");
    h.push(("accept", "text/html"));
    let r = auth(&s, &anon, "?mode=redirect", &h).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        location(&r),
        format!("{}/oauth2/sign_in?rd=%2Fdocs%3Fpage%3D2", s.labgate_url)
    );
    // A foreign host in the forwarded headers is not a redirect target.
    let r = auth(
        &s,
        &anon,
        "?mode=redirect",
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-uri", "/x"),
            ("accept", "text/html"),
        ],
    )
    .await;
    assert_eq!(
        location(&r),
        format!("{}/oauth2/sign_in?rd=%2F", s.labgate_url)
    );
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_are_ignored() {
    // No trusted proxies: the forwarded URI is ignored, and with route rules configured
    // labgate refuses to guess (403) instead of checking "/".
    let s = stack(&config_with(None, "")).await;
    let bob = signed_in(&s, "bob").await;
    let r = auth(
        &s,
        &bob,
        "",
        &[
            ("x-forwarded-uri", "/docs"),
            ("x-original-url", "https://x/docs"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Without routes, the global rules decide.
    let s = stack(&config_with(
        Some("[access]\nallowed_groups = [\"acme\"]\n\n[[access.public]]\npath = \"^/public\"\n"),
        "",
    ))
    .await;
    let bob = signed_in(&s, "bob").await;
    assert_eq!(
        auth(&s, &bob, "", &[("x-forwarded-uri", "/docs")])
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    // A spoofed public path from an untrusted peer does not skip authentication.
    assert_eq!(
        auth(&s, &plain(), "", &[("x-forwarded-uri", "/public/x")])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A stack behind a real nginx running deploy/nginx/labgate.conf, labgate configured as the
/// file's header says, with `forward_auth_source = source`.
async fn behind_nginx(source: &str) -> (Stack, Nginx, String) {
    let port = free_port();
    let front = format!("http://127.0.0.1:{port}");
    let cfg = config_with(None, "").replace(
        "public_url = \"{labgate}\"",
        &format!(
            "public_url = \"{front}\"\ntrusted_proxies = [\"127.0.0.1\"]\nforward_auth_source = \"{source}\""
        ),
    );
    let s = Stack::start(
        Listeners::ephemeral().await.unwrap(),
        &cfg,
        Fixture::demo(),
        "",
    )
    .await
    .unwrap();
    let n = nginx(port, &s.labgate_url, &s.echo_url).await;
    (s, n, front)
}

/// Signs `user` in through nginx.
async fn sign_in_via(front: &str, s: &Stack, user: &str) -> reqwest::Client {
    let c = browser();
    let f = to_consent_at(&c, &s.gitlab, front, user, &format!("{user}-password"), "/").await;
    let cb = consent(&c, s, f, false).await;
    assert_eq!(c.get(&cb).send().await.unwrap().status(), StatusCode::FOUND);
    c
}

/// The forgeries of issue 16 (and their relatives) through the shipped nginx config: a
/// client's original-URL / original-method headers of any proxy family never change what is
/// judged, for anonymous users and for signed-in users outside a route; legitimate traffic
/// still flows.
#[tokio::test]
async fn forged_original_request_headers_open_nothing_through_nginx() {
    for source in ["nginx", "auto"] {
        let (s, _nginx, front) = behind_nginx(source).await;
        let anon = plain();
        let bob = sign_in_via(&front, &s, "bob").await;
        let alice = sign_in_via(&front, &s, "alice").await;
        let forged: &[(&str, &str)] = &[
            ("X-Forwarded-Uri", "/public"),
            ("X-Forwarded-Uri", "/public/x"),
            ("X-Original-URL", "http://x/public/"),
            ("X-Original-URL", "https://app.example.com/public/x"),
            ("X-Original-URI", "/public/x"),
            ("X-Rewrite-URL", "/public/x"),
            ("X-Forwarded-Prefix", "/public"),
        ];
        let send =
            |c: &reqwest::Client, method: reqwest::Method, path: &str, h: &[(&str, &str)]| {
                let mut r = c
                    .request(method, format!("{front}{path}"))
                    .header(ACCEPT, "application/json");
                for (k, v) in h {
                    r = r.header(*k, *v);
                }
                r.send()
            };
        for (k, v) in forged {
            let r = send(&anon, reqwest::Method::GET, "/admin/secret", &[(k, v)])
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{source}: anonymous with {k}: {v}"
            );
            let r = send(&bob, reqwest::Method::GET, "/admin/secret", &[(k, v)])
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::FORBIDDEN,
                "{source}: bob with {k}: {v}"
            );
        }
        // All of them at once.
        let r = send(&bob, reqwest::Method::GET, "/admin/secret", forged)
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{source}: bob with every forgery"
        );
        // The public rule is GET/HEAD only: a forged method does not make a POST public.
        for (k, v) in [("X-Forwarded-Method", "GET"), ("X-Original-Method", "GET")] {
            let r = send(&anon, reqwest::Method::POST, "/public/x", &[(k, v)])
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{source}: POST with {k}"
            );
        }
        // Readings an app router may use: case, `.format`, `;params`, encodings.
        for path in [
            "/admin.tar.gz",
            "/adm%C4%B1n",
            "/ADM%C4%B0N",
            "/ADMIN/secret",
            "/admin.json",
            "/Admin;x=1",
            "/%61dmin",
            "/public/..%2Fadmin",
        ] {
            let r = send(&bob, reqwest::Method::GET, path, &[]).await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{source}: bob at {path}");
        }
        // Legitimate traffic: public paths, bob's own pages, alice on /admin.
        let r = send(&anon, reqwest::Method::GET, "/public/x", &[])
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{source}: public");
        let r = send(&bob, reqwest::Method::GET, "/docs", &[])
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{source}: bob at /docs");
        let r = send(&alice, reqwest::Method::GET, "/admin/secret", forged)
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{source}: alice at /admin");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["path"], "/admin/secret");
        // The app sees none of the override headers, nor a client's bearer, and the
        // client address nginx saw.
        for h in [
            "x-original-url",
            "x-rewrite-url",
            "x-forwarded-uri",
            "x-forwarded-prefix",
            "authorization",
        ] {
            assert!(
                body["headers"].get(h).is_none(),
                "{source}: {h} reached the app: {body}"
            );
        }
        assert_eq!(
            body["headers"]["x-labgate-kind"],
            serde_json::json!(["user"])
        );
        let r = send(
            &alice,
            reqwest::Method::GET,
            "/x",
            &[("X-Real-IP", "6.6.6.6"), ("True-Client-IP", "6.6.6.6")],
        )
        .await
        .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body["headers"]["x-real-ip"],
            serde_json::json!(["127.0.0.1"]),
            "{body}"
        );
        assert!(body["headers"].get("true-client-ip").is_none(), "{body}");
        // A bearer credential admits its owner and never reaches the app.
        let r = send(
            &anon,
            reqwest::Method::GET,
            "/x",
            &[("Authorization", "Bearer glpat-bob-demo-token-read-api")],
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{source}: bob's access token");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body["headers"]["x-forwarded-user"],
            serde_json::json!(["bob"])
        );
        assert_eq!(
            body["headers"]["x-labgate-kind"],
            serde_json::json!(["user_token"])
        );
        assert!(body["headers"].get("authorization").is_none(), "{body}");
        // A browser that is not signed in still lands on the sign-in page for its URL.
        let r = browser()
            .get(format!("{front}/deep?x=1"))
            .header(ACCEPT, "text/html")
            .header("X-Forwarded-Uri", "/public")
            .send()
            .await
            .unwrap();
        let page = r.text().await.unwrap();
        assert!(
            page.contains("/oauth2/start?rd=%2Fdeep%3Fx%3D1"),
            "{source}: {page}"
        );
    }
}

/// One check request exactly as Envoy's HTTP ext_authz sends it (envoy
/// `source/extensions/filters/common/ext_authz/ext_authz_http_impl.cc`, and the
/// `allowed_headers` docs of `extensions.filters.http.ext_authz.v3.ExtAuthz`): the original
/// method, `path_prefix` + the original path and query, the original `:authority`, only the
/// allowed headers (authorization by default; cookie and accept as deploy/envoy lists them),
/// `x-envoy-internal: true`, an empty body with `content-length: 0`.
async fn envoy_check(
    s: &Stack,
    method: reqwest::Method,
    original: &str,
    cookie: Option<&str>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = plain()
        .request(method, format!("{}/oauth2/auth{original}", s.labgate_url))
        .header("host", "app.example.com")
        .header("x-envoy-internal", "true")
        .header("content-length", "0");
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

/// The session cookie a browser holds after signing in.
async fn session_cookie_of(s: &Stack, user: &str) -> String {
    let c = browser();
    let r = flow(&c, s, user, "/").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    session_cookie_header(&set_cookies(&r))
}

#[tokio::test]
async fn envoy_ext_authz_contract() {
    let cfg = config_with(None, "").replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\nforward_auth_source = \"envoy\"\n",
    );
    let s = stack(&cfg).await;
    let alice = session_cookie_of(&s, "alice").await;
    let bob = session_cookie_of(&s, "bob").await;
    let json = [("accept", "application/json")];
    use reqwest::Method;

    // Allow is 200 (Envoy treats only 200 as allow), with every identity header.
    let r = envoy_check(&s, Method::GET, "/deep/page?x=1", Some(&alice), &json).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-auth-request-user"], "alice");
    assert_eq!(r.headers()["x-labgate-kind"], "user");
    assert!(r.headers()["x-labgate-assertion"]
        .to_str()
        .unwrap()
        .starts_with("ey"));
    // The original method is the check's method: a PUT is judged as a PUT.
    let r = envoy_check(&s, Method::PUT, "/docs", Some(&bob), &json).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Routes apply to the appended path, in every reading.
    for path in [
        "/admin",
        "/admin/x?y=1",
        "/ADMIN",
        "/admin.json",
        "/public/..%2Fadmin",
    ] {
        let r = envoy_check(&s, Method::GET, path, Some(&bob), &json).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "bob at {path}");
    }
    let r = envoy_check(&s, Method::GET, "/admin/x", Some(&alice), &json).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Dot segments as Envoy appends them without normalising (raw request targets: HTTP
    // clients would resolve them first): still a check of the original path, never a
    // request labgate proxies itself.
    for (path, cookie, want) in [
        ("/public/../admin", &bob, "403"),
        ("/public/./../admin/x", &bob, "403"),
        ("/../../admin", &bob, "403"),
        ("/../../admin", &alice, "200"),
    ] {
        let addr = s.labgate_url.trim_start_matches("http://");
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET /oauth2/auth{path} HTTP/1.1\r\nHost: app.example.com\r\nAccept: application/json\r\nCookie: {cookie}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut sock, req.as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut sock, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want}")),
            "{path}: {text}"
        );
        if want == "200" {
            assert!(
                text.contains("x-auth-request-user: alice"),
                "a check answer: {text}"
            );
        }
    }
    // Headers of other proxies change nothing.
    let r = envoy_check(
        &s,
        Method::GET,
        "/admin/x",
        Some(&bob),
        &[
            ("x-forwarded-uri", "/public/x"),
            ("x-original-uri", "/public/x"),
            ("x-original-url", "http://x/public/x"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Public paths, by method.
    let r = envoy_check(&s, Method::GET, "/public/x", None, &json).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-auth-request-user"], "");
    let r = envoy_check(&s, Method::POST, "/public/x", None, &json).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The original query is the app's: it cannot narrow or widen anything.
    let r = envoy_check(
        &s,
        Method::GET,
        "/docs?allowed_users=nobody",
        Some(&bob),
        &json,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // A browser that is not signed in is sent to the sign-in page for the original URL
    // (Envoy passes a denied answer's status and Location to the client).
    let r = envoy_check(
        &s,
        Method::GET,
        "/deep?x=1",
        None,
        &[("accept", "text/html")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        location(&r),
        format!("{}/oauth2/sign_in?rd=%2Fdeep%3Fx%3D1", s.labgate_url)
    );

    // Revalidation: a 2xx answer's Set-Cookie may be dropped (Envoy Gateway cannot pass it),
    // so an API call keeps the session within grace without spending the refresh token, and
    // a navigation is redirected back to itself carrying the rotated cookie.
    s.app.clock.advance(61);
    let refreshes = s
        .gitlab
        .counters
        .refresh_grants
        .load(std::sync::atomic::Ordering::SeqCst);
    let r = envoy_check(&s, Method::GET, "/api/x", Some(&alice), &json).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(
        s.gitlab
            .counters
            .refresh_grants
            .load(std::sync::atomic::Ordering::SeqCst),
        refreshes
    );
    let r = envoy_check(
        &s,
        Method::GET,
        "/deep?x=1",
        Some(&alice),
        &[("accept", "text/html")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(location(&r), format!("{}/deep?x=1", s.labgate_url));
    let fresh = session_cookie_header(&set_cookies(&r));
    assert!(!fresh.is_empty());
    let r = envoy_check(
        &s,
        Method::GET,
        "/deep?x=1",
        Some(&fresh),
        &[("accept", "text/html")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn auto_source_refuses_two_proxies_at_once() {
    let cfg = config_with(None, "").replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let s = stack(&cfg).await;
    let alice = session_cookie_of(&s, "alice").await;
    for headers in [
        vec![
            ("x-original-uri", "/admin"),
            ("x-forwarded-uri", "/public/x"),
        ],
        vec![
            ("x-original-url", "https://a/admin"),
            ("x-original-uri", "/public/x"),
        ],
        vec![("x-forwarded-uri", "/admin"), ("x-original-method", "GET")],
        vec![
            ("x-original-uri", "/admin"),
            ("x-original-uri", "/public/x"),
        ],
    ] {
        let mut r = plain()
            .get(format!("{}/oauth2/auth", s.labgate_url))
            .header("cookie", &alice);
        for (k, v) in &headers {
            r = r.header(*k, *v);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{headers:?}");
    }
    // Without the original method a path is never public (a POST must not pass as GET).
    let r = plain()
        .get(format!("{}/oauth2/auth", s.labgate_url))
        .header("x-original-uri", "/public/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The Envoy form plus another proxy's header: refused too.
    let r = envoy_check(
        &s,
        reqwest::Method::GET,
        "/admin",
        Some(&alice),
        &[("x-original-uri", "/x")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // One family alone is read.
    let r = plain()
        .get(format!("{}/oauth2/auth", s.labgate_url))
        .header("cookie", &alice)
        .header("x-original-uri", "/admin")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

/// The shipped nginx example hands a revalidated session's cookie to the browser (GitLab's
/// refresh tokens are single-use): signed in across three revalidations and a labgate
/// restart that leaves no in-process cache to hide a lost cookie.
#[tokio::test]
async fn nginx_keeps_sessions_across_revalidations_and_a_restart() {
    let (mut s, _nginx, front) = behind_nginx("nginx").await;
    let alice = sign_in_via(&front, &s, "alice").await;
    let refreshes = s
        .gitlab
        .counters
        .refresh_grants
        .load(std::sync::atomic::Ordering::SeqCst);
    for round in 1..=4 {
        if round == 4 {
            s.restart().await.unwrap();
        }
        s.app.clock.advance(61);
        let (status, body) = get_json(&alice, &format!("{front}/x")).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {body}");
        assert_eq!(
            body["headers"]["x-forwarded-user"],
            serde_json::json!(["alice"])
        );
    }
    assert_eq!(
        s.gitlab
            .counters
            .refresh_grants
            .load(std::sync::atomic::Ordering::SeqCst),
        refreshes + 4
    );
}

/// oauth2-proxy's documented nginx snippet sends the destination in
/// `X-Auth-Request-Redirect` to `/oauth2/start`: honoured through the same redirect
/// validator as `?rd=` (which wins when both are given).
#[tokio::test]
async fn x_auth_request_redirect_is_honoured_and_validated() {
    let s = stack(&config_with(None, "")).await;
    for (header, want) in [
        ("/deep/link?x=1", "/deep/link?x=1"),
        ("https://evil.example/x", "/"),
        ("//evil.example", "/"),
    ] {
        let c = browser();
        let r = c
            .get(format!("{}/oauth2/start", s.labgate_url))
            .header("x-auth-request-redirect", header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let fields = consent_fields(&c, &s.gitlab, &location(&r), "bob", "bob-password").await;
        let callback = consent(&c, &s, fields, false).await;
        let r = c.get(&callback).send().await.unwrap();
        assert_eq!(
            (r.status(), location(&r)),
            (StatusCode::FOUND, want.to_owned()),
            "{header}"
        );
    }
}

/// A session split over several cookies, revalidated behind the shipped nginx example:
/// every rotated chunk reaches the browser (nginx's `$upstream_http_set_cookie` holds only
/// the first), with the source named and with `auto`.
#[tokio::test]
async fn nginx_delivers_every_cookie_of_a_split_session() {
    for source in ["nginx", "auto"] {
        let (mut s, nginx, front) = behind_nginx(source).await;
        s.gitlab.with_fixture(|f| {
            for i in 0..120 {
                f.set_group_member(
                    &format!("acme/team-{i:03}-with-a-longish-name"),
                    "alice",
                    Some("developer"),
                );
            }
        });
        let alice = sign_in_via(&front, &s, "alice").await;
        let (status, body) = get_json(&alice, &format!("{front}/x")).await;
        assert_eq!(status, StatusCode::OK, "{source}: {body}");
        let groups = body["headers"]["x-forwarded-groups"].to_string();
        assert!(groups.contains("team-119"), "{source}: {body}");
        for round in 1..=4 {
            if round == 4 {
                s.restart().await.unwrap();
            }
            s.app.clock.advance(61);
            let r = alice
                .get(format!("{front}/x"))
                .header(ACCEPT, "application/json")
                .send()
                .await
                .unwrap();
            let chunks = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter(|c| c.to_str().unwrap().starts_with("_labgate"))
                .count();
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "{source}: round {round}: {}",
                nginx.error_log()
            );
            if round < 4 {
                assert!(chunks >= 2, "{source}: round {round}: {chunks} cookies");
            }
        }
        let (status, body) = get_json(&alice, &format!("{front}/x")).await;
        assert_eq!(status, StatusCode::OK, "{source}: still signed in: {body}");
    }
}

/// `//path` through the nginx example gets the answer `/path` gets (labgate used to refuse
/// nginx's `$request_uri` of `//x` with a 400, which nginx turns into a 500).
#[tokio::test]
async fn a_double_slash_through_nginx_is_no_500() {
    let (s, _nginx, front) = behind_nginx("nginx").await;
    let alice = sign_in_via(&front, &s, "alice").await;
    let anon = plain();
    for (who, c) in [("alice", &alice), ("a stranger", &anon)] {
        for path in ["/x", "/public/x", "/admin/x"] {
            let want = c
                .get(format!("{front}{path}"))
                .header(ACCEPT, "application/json")
                .send()
                .await
                .unwrap()
                .status();
            let got = c
                .get(format!("{front}/{path}"))
                .header(ACCEPT, "application/json")
                .send()
                .await
                .unwrap()
                .status();
            assert!(!got.is_server_error(), "{who} at /{path}: {got}");
            if path != "/public/x" {
                assert_eq!(got, want, "{who} at /{path}");
            }
        }
    }
}
