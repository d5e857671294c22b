//! The last edges between labgate and the app (issue 26): where the two could read one
//! request two ways. Each test is the attack, on real sockets, that passed before.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// The status of a GET of `url` asking for JSON.
async fn status_of(c: &reqwest::Client, url: &str) -> StatusCode {
    c.get(url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .status()
}

/// The status lines of a raw answer.
fn statuses(answer: &str) -> Vec<String> {
    answer
        .lines()
        .filter(|l| l.starts_with("HTTP/1."))
        .map(str::to_owned)
        .collect()
}

/// An upstream that answers every request `101 Switching Protocols` with `Upgrade:
/// websocket` and no (or a wrong) `Sec-WebSocket-Accept`, then keeps reading what arrives:
/// a status-from-parameter endpoint, a hand-written handler. Returns its URL and every byte
/// it received.
async fn lying_upstream(accept: Option<&'static str>) -> (String, Arc<Mutex<Vec<u8>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            head.extend_from_slice(&buf[..n]);
                            log.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                    }
                }
                let mut answer = String::from(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
                );
                if let Some(a) = accept {
                    answer.push_str(&format!("Sec-WebSocket-Accept: {a}\r\n"));
                }
                answer.push_str("\r\n");
                let _ = sock.write_all(answer.as_bytes()).await;
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => log.lock().unwrap().extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (url, seen)
}

/// An upstream's 101 opens a tunnel only when it completes the WebSocket handshake
/// labgate offered (RFC 6455 §4.2.2): otherwise a client's next request on the socket would
/// reach the app unjudged, with any identity header it likes.
#[tokio::test]
async fn a_101_without_a_websocket_handshake_opens_no_tunnel() {
    for accept in [None, Some("d3JvbmcgYWNjZXB0IGtleQ==")] {
        let (upstream, seen) = lying_upstream(accept).await;
        // /public is public for every method here.
        let cfg = config_with(
            Some("[access]\nallow_any_gitlab_user = true\n\n[[access.public]]\npath = \"^/public(/|$)\"\n"),
            "",
        )
        .replace("url = \"{echo}\"", &format!("url = \"{upstream}\""));
        let s = stack(&cfg).await;
        let attack = "GET /public/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
                      GET /admin/secret HTTP/1.1\r\nHost: x\r\nX-Forwarded-User: root\r\nAccept: application/json\r\nConnection: close\r\n\r\n";
        let answer = raw(&s.labgate_url, attack).await;
        let lines = statuses(&answer);
        assert!(
            lines.first().is_some_and(|l| l.contains(" 502 ")),
            "accept {accept:?}: {answer}"
        );
        assert!(
            lines.iter().skip(1).all(|l| l.contains(" 401 ")),
            "the pipelined request is judged like any other: {lines:?}"
        );
        // WebSocket handshakes are GETs (RFC 6455 §4.1): a POST's upgrade is not offered,
        // and the upstream's 101 to it opens nothing.
        let post = "POST /public/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n";
        let lines = statuses(&raw(&s.labgate_url, post).await);
        assert!(
            lines.first().is_some_and(|l| l.contains(" 502 ")),
            "{lines:?}"
        );
        // A non-WebSocket upgrade that the upstream switches anyway.
        let h2c = "GET /public/x HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n\
                   GET /admin/secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let lines = statuses(&raw(&s.labgate_url, h2c).await);
        assert!(
            lines.first().is_some_and(|l| l.contains(" 502 ")),
            "{lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = String::from_utf8_lossy(&seen.lock().unwrap()).to_ascii_lowercase();
        assert!(
            !got.contains("/admin/secret"),
            "a request reached the app unjudged: {got}"
        );
        assert!(
            got.contains("upgrade: websocket\r\n") && !got.contains("h2c"),
            "labgate offers exactly websocket: {got}"
        );
    }
}

/// A WebSocket over HTTP/2 (RFC 8441) whose upstream answers 101 without the accept key of
/// the key labgate made: no tunnel either.
#[tokio::test]
async fn an_h2_websocket_needs_the_upstreams_handshake_too() {
    let (upstream, _seen) = lying_upstream(None).await;
    let cfg = config_with(None, "").replace("url = \"{echo}\"", &format!("url = \"{upstream}\""));
    let s = stack(&cfg).await;
    let addr = s.labgate_url.trim_start_matches("http://").to_owned();
    let mut sender = h2c(&s.labgate_url).await;
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}/public/ws"))
        .header("sec-websocket-version", "13")
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    sender.ready().await.unwrap();
    let r = sender.send_request(req).await.unwrap();
    assert_eq!(r.status(), http::StatusCode::BAD_GATEWAY);
}

/// RFC 9112 §3.2: one `Host`. Two are two hosts to two readers; none leaves the app to
/// guess; userinfo in `Host` or `:authority` is no host at all.
#[tokio::test]
async fn one_host_per_request() {
    let s = stack(&config_with(None, "")).await;
    for req in [
        "GET /public/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nHost: user@evil.example\r\nConnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        "GET /public/x HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nHost: a.example:80x\r\nConnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nHost: a.example:99999\r\nConnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nHost: a.example:\r\nConnection: close\r\n\r\n",
        // Authority-form (CONNECT's) without Host, asterisk-form.
        "GET evil.example:80 HTTP/1.1\r\nConnection: close\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let lines = statuses(&raw(&s.labgate_url, req).await);
        assert!(
            lines.first().is_some_and(|l| l.contains(" 400 ")),
            "{req:?}: {lines:?}"
        );
    }
    let lines = statuses(
        &raw(
            &s.labgate_url,
            "GET /public/x HTTP/1.1\r\nHost: a.example:8080\r\nConnection: close\r\n\r\n",
        )
        .await,
    );
    assert!(
        lines.first().is_some_and(|l| l.contains(" 200 ")),
        "{lines:?}"
    );
    // HTTP/1.0 may omit it: the app is told public_url's host.
    let answer = raw(
        &s.labgate_url,
        "GET /public/x HTTP/1.0\r\nAccept: application/json\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    let public_host = s.labgate_url.trim_start_matches("http://");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        v["headers"]["host"],
        serde_json::json!([public_host]),
        "{v}"
    );
    // HTTP/2: `:authority` with userinfo.
    let addr = public_host.to_owned();
    let mut sender = h2c(&s.labgate_url).await;
    for (authority, want) in [
        (format!("user@{addr}"), http::StatusCode::BAD_REQUEST),
        (addr.clone(), http::StatusCode::OK),
    ] {
        let req = http::Request::builder()
            .uri(format!("http://{authority}/public/x"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        sender.ready().await.unwrap();
        let r = sender.send_request(req).await.unwrap();
        assert_eq!(r.status(), want, "{authority}");
    }
}

/// Path spellings a route's rule missed: decoded to a fixed point (apps and proxies that
/// decode twice) with and without dot segments resolved (WSGI routers), control characters
/// and overlong UTF-8 refused, segments trimmed as lenient routers trim them. bob is
/// outside `/admin`'s route; strangers are outside everything but `/public`.
#[tokio::test]
async fn path_spellings_are_decoded_to_the_end() {
    let s = stack(&config_with(None, "")).await;
    let bob = signed_in(&s, "bob").await;
    for path in [
        "/%2561dmin/x",
        "/admin%252fx",
        "/public/..%252fadmin",
        "/public/..%25252fadmin",
        "/admin%20",
        "/admin%20/x",
        "/admin%C2%A0",
        "/admin%09",
        "/admin%0a",
        "/admin%00",
        "/admin%2500",
        "/public/..%20/admin",
        "/admin%2f..%2fx",
        "/admin%2fusers%2f..%2f..%2fx",
        "/%20admin",
        "/admin%E2%80%8B",
        "/admin%EF%BB%BF",
        "/admin%20.",
        "/%c0%afadmin",
        "/%u0061dmin",
        "/public/%20../admin",
        "/public/..%EF%BB%BF/admin",
        "/public/..%E2%80%8B/admin",
        "/public/%ef%bc%8e%ef%bc%8e/admin",
        "/public/x%3f%2f..%2f..%2fadmin/secret.txt",
        "/public/x%23%2f..%2f..%2fadmin/secret.txt",
        "/x%3f%2f..%2fadmin/secret.txt",
        "/index.php/admin",
        "/app.php/admin/users",
        "/%ef%bd%81dmin",
        "/public/%u0000",
        "/x%2fy/../admin%2fsecret.txt",
        "/x;y%2fz/../admin%2fsecret",
        "/a%2fb/../admin%2f..%2fx",
        "/public/a%2fb/../..%2fadmin/secret.txt",
        "/public/..%C0%25AFadmin",
        "/public/%C2%2585",
        "/public/..%EF%25BC%258Fadmin",
        "/public/%E2%80%A5/admin",
        "//admin%2f..%2fx",
        "/%2fadmin%2f..%2fx",
        "/x%2f..%2fadmin%2f%2f..%2fsecret.txt",
        "/x/..%2fadmin%2f%2f..%2fz",
        "/public/index.php/admin",
    ] {
        let url = format!("{}{path}", s.labgate_url);
        let status = status_of(&bob, &url).await;
        assert!(
            matches!(status, StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST),
            "bob at {path}: {status}"
        );
        let status = status_of(&plain(), &url).await;
        assert!(
            matches!(status, StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST),
            "a stranger at {path}: {status}"
        );
    }
    // Control characters are refused outright, with a page that says why.
    let r = bob
        .get(format!("{}/x%00y", s.labgate_url))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("control character"));
    // Ordinary paths still work, encoded or not.
    for path in [
        "/public/x",
        "/public/a%20b",
        "/public/100%25",
        "/public/caf%C3%A9",
        "/public/What%3F",
        "/public/a+b",
        "/public/file%2520name",
        "/public/caf%E9",
    ] {
        let status = status_of(&plain(), &format!("{}{path}", s.labgate_url)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

/// Headers apps read as the real method, scheme, host or client address: from a client
/// (an untrusted peer) none reaches the app; method overrides from any peer.
#[tokio::test]
async fn override_headers_never_reach_the_app_from_a_client() {
    let s = stack(&config_with(None, "")).await;
    let forged = [
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
        ("X_HTTP_Method_Override", "DELETE"),
        ("X-Forwarded-Ssl", "on"),
        ("X-Forwarded-Scheme", "https"),
        ("X-Url-Scheme", "https"),
        ("Front-End-Https", "on"),
        ("CF-Connecting-IP", "6.6.6.6"),
        ("Fastly-Client-IP", "6.6.6.6"),
        ("Client-IP", "6.6.6.6"),
        ("X-Original-Forwarded-For", "6.6.6.6"),
        ("X-Host", "evil.example"),
        ("X-Original-Host", "evil.example"),
        ("X_Original_Host", "evil.example"),
        ("CF_Connecting_IP", "6.6.6.6"),
        ("X-Scheme", "https"),
        ("X-Forwarded-Protocol", "https"),
        ("X-Forwarded-Path", "/admin"),
        ("X-Envoy-Original-Path", "/admin"),
        ("Remote-User", "alice"),
        ("Remote-Groups", "acme/admins"),
        ("X-Remote-User", "alice"),
        ("X-WEBAUTH-USER", "alice"),
        ("X-User", "alice"),
        ("X-Auth-User", "alice"),
        ("X-WEBAUTH-EMAIL", "alice@example.com"),
        ("X-Remote-Groups", "acme/admins"),
        ("X-authentik-username", "alice"),
        ("OIDC_CLAIM_email", "alice@example.com"),
        ("Cf-Access-Authenticated-User-Email", "alice@example.com"),
        ("X-Goog-Authenticated-User-Email", "alice@example.com"),
        ("X-MS-CLIENT-PRINCIPAL-NAME", "alice"),
        ("X-Amzn-Oidc-Identity", "alice"),
        ("X-Pomerium-Claim-Email", "alice@example.com"),
        ("Tailscale-User-Login", "alice"),
        ("X-Forwarded-Client-Cert", "Subject=\"CN=alice\""),
        ("X-SSL-Client-S-DN", "CN=alice"),
    ];
    let mut r = plain()
        .post(format!("{}/public/x", s.labgate_url))
        .header(ACCEPT, "application/json");
    for (k, v) in forged {
        r = r.header(k, v);
    }
    // A public GET rule: the POST itself is not public, so sign in as bob.
    let bob = signed_in(&s, "bob").await;
    let mut r2 = bob
        .get(format!("{}/x", s.labgate_url))
        .header(ACCEPT, "application/json");
    for (k, v) in forged {
        r2 = r2.header(k, v);
    }
    assert_eq!(r.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let r = r2.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    let h = body["headers"].as_object().unwrap();
    for (k, _) in forged {
        assert!(
            !h.contains_key(&k.to_ascii_lowercase()),
            "{k} reached the app: {body}"
        );
    }
    assert_eq!(
        body["headers"]["x-forwarded-proto"],
        serde_json::json!(["http"])
    );
}

/// A listed redirect host admits https on its default port (or the port the entry names),
/// and plain http only when public_url is plain http itself.
#[tokio::test]
async fn redirect_allow_list_entries_pin_scheme_and_port() {
    let s = crate::security::trusted_stack_with(
        "allowed_redirect_domains = [\"wiki.example.org\", \"ops.example.org:8443\"]",
    )
    .await;
    let c = crate::security::gitlab_signed_in(&s).await;
    for (rd, want) in [
        ("https://wiki.example.org/x", "https://wiki.example.org/x"),
        ("http://wiki.example.org/x", "http://wiki.example.org/x"),
        (
            "https://ops.example.org:8443/x",
            "https://ops.example.org:8443/x",
        ),
        ("https://wiki.example.org:8443/x", "/"),
        ("http://wiki.example.org:8080/x", "/"),
        ("https://ops.example.org/x", "/"),
        ("ftp://wiki.example.org/x", "/"),
    ] {
        assert_eq!(
            crate::security::destination(&c, &s, rd).await,
            want,
            "rd={rd}"
        );
    }
    // Same origin, but a path a relative `rd` could not have (`//evil.com` once decoded and
    // resolved by the app).
    let rd = format!("{}/x%252f..%252f..%252f%252fevil.com", s.labgate_url);
    assert_eq!(
        crate::security::destination(&c, &s, &rd).await,
        "/",
        "rd={rd}"
    );
}

/// A flood of random access tokens from one client (each would cost a GitLab call and hold
/// a check slot) while a token GitLab accepted before keeps working, even when its cached
/// verdict expires mid-flood and GitLab is slow.
#[tokio::test]
async fn a_token_flood_cannot_starve_a_working_token() {
    use labgate::dev::gitlab::Faults;
    use std::sync::atomic::Ordering;
    let cfg = config_with(None, "")
        .replace("[gitlab]\n", "[gitlab]\ntimeout = \"1s\"\n")
        .replace("[machine]\n", "[machine]\ntoken_cache_ttl = \"30s\"\n");
    let s = stack(&cfg).await;
    let good = "glpat-bob-demo-token-read-api";
    let call = |token: String| {
        let url = format!("{}/x", s.labgate_url);
        async move {
            plain()
                .get(url)
                .header(ACCEPT, "application/json")
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .map(|r| r.status())
                .unwrap_or(StatusCode::IM_A_TEAPOT)
        }
    };
    assert_eq!(call(good.into()).await, StatusCode::OK);
    s.gitlab.set_faults(Faults {
        latency: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    let before = s.gitlab.counters.api_user.load(Ordering::SeqCst);
    let flood: Vec<_> = (0..300)
        .map(|i| {
            tokio::spawn(call(format!(
                "glpat-flood-{i:04}-{}",
                labgate::random_token(12)
            )))
        })
        .collect();
    // Garbage that is no token shape is refused without asking GitLab.
    assert_eq!(call("not a token".into()).await, StatusCode::UNAUTHORIZED);
    for round in 0..5 {
        s.app.clock.advance(31);
        assert_eq!(call(good.into()).await, StatusCode::OK, "round {round}");
    }
    let mut answers = std::collections::BTreeMap::new();
    for f in flood {
        *answers.entry(f.await.unwrap().as_u16()).or_insert(0) += 1;
    }
    assert!(
        answers.keys().all(|s| [401, 429, 503].contains(s)),
        "the flood got in: {answers:?}"
    );
    assert!(answers.get(&429).copied().unwrap_or(0) > 200, "{answers:?}");
    let calls = s.gitlab.counters.api_user.load(Ordering::SeqCst) - before;
    assert!(calls <= 30 + 5, "GitLab was asked {calls} times");
}

/// `labgate check` names the forward-auth source in effect and warns about trusted
/// proxies that cover a whole /8 or more.
#[tokio::test]
async fn check_warns_about_broad_trusted_proxies_and_names_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = unpublished(&with_demo_addresses(&config_with(None, "")).replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.10\", \"::/0\"]\n",
    ));
    let file = dir.path().join("labgate.toml");
    std::fs::write(&file, cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
        .args(["check", "-c", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("server.forward_auth_source"), "{text}");
    assert!(text.contains("\"auto\""), "{text}");
    assert!(text.contains("trusted_proxies has 10.0.0.0/8"), "{text}");
    assert!(text.contains("trusted_proxies has ::/0"), "{text}");
    assert!(!text.contains("trusted_proxies has 192.168.1.10"), "{text}");
    assert!(text.contains("redirect back to the page"), "{text}");
}

/// The Envoy example refuses header names with underscores (`X_Forwarded_User` is
/// `X-Forwarded-User` to WSGI, CGI, PHP and Rack apps, and Envoy would pass it).
#[test]
fn the_envoy_example_rejects_underscore_headers() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/envoy/envoy.yaml"
    ))
    .unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let managers: Vec<&serde_norway::Value> = doc["static_resources"]["listeners"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|l| l["filter_chains"].as_sequence().unwrap())
        .flat_map(|c| c["filters"].as_sequence().unwrap())
        .filter(|f| f["name"] == "envoy.filters.network.http_connection_manager")
        .collect();
    assert!(!managers.is_empty());
    for m in managers {
        assert_eq!(
            m["typed_config"]["common_http_protocol_options"]["headers_with_underscores_action"],
            "REJECT_REQUEST"
        );
    }
}
