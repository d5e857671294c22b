//! What reaches the upstream, against an upstream that enforces HTTP like real servers do (a
//! real nginx: `Host` is required, bodies are limited) and real HTTP/2 clients (curl over
//! h2c and over TLS with ALPN): SPEC §4 and §9.

use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use crate::harness::*;

/// nginx answering with what it received, as JSON; at most 1 KiB of request body.
async fn nginx_upstream() -> (Nginx, String) {
    let port = free_port();
    let site = format!(
        r#"server {{
    listen 127.0.0.1:{port};
    client_max_body_size 1k;
    location / {{
        default_type application/json;
        return 200 '{{"host":"$http_host","xfh":"$http_x_forwarded_host","xff":"$http_x_forwarded_for","real":"$http_x_real_ip","user":"$http_x_forwarded_user","kind":"$http_x_labgate_kind","assertion":"$http_x_labgate_assertion","original_url":"$http_x_original_url","rewrite_url":"$http_x_rewrite_url","forwarded_uri":"$http_x_forwarded_uri","prefix":"$http_x_forwarded_prefix","true_client_ip":"$http_true_client_ip","uri":"$request_uri","protocol":"$server_protocol"}}';
    }}
}}"#
    );
    (
        start_nginx(&site, port).await,
        format!("http://127.0.0.1:{port}"),
    )
}

/// The demo config (alice may enter, `^/public` is public) in front of `upstream`.
fn config_for(upstream: &str, extra_server: &str) -> String {
    config_with(None, "")
        .replace("url = \"{echo}\"", &format!("url = \"{upstream}\""))
        .replace("[server]\n", &format!("[server]\n{extra_server}\n"))
        .replace(
            "methods = [\"GET\", \"HEAD\"]",
            "methods = [\"GET\", \"HEAD\", \"POST\"]",
        )
}

/// `curl` with `args`, returning (status, body). Asynchronous: labgate serves on this
/// test's runtime.
async fn curl(args: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .await
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = tail.split(' ').next().unwrap_or("0").parse().unwrap_or(0);
    assert!(
        tail.ends_with(" 2") || !args.iter().any(|a| a.starts_with("--http2")),
        "curl did not speak HTTP/2: {tail} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (status, body.to_owned())
}

#[tokio::test]
async fn h2c_and_h2_over_tls_reach_an_nginx_upstream_with_host() {
    let (_nginx, upstream) = nginx_upstream().await;

    // h2c (prior knowledge) and HTTP/1.1 on the plain listener.
    let s = stack(&config_for(&upstream, "")).await;
    let authority = s.labgate_url.trim_start_matches("http://").to_owned();
    for version in ["--http2-prior-knowledge", "--http1.1"] {
        let (status, body) = curl(&[version, &format!("{}/public/x?y=1", s.labgate_url)]).await;
        assert_eq!(status, 200, "{version}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["host"], authority, "{version}: {body}");
        assert_eq!(v["xfh"], authority, "{version}: {body}");
        assert_eq!(v["uri"], "/public/x?y=1");
        assert_eq!(v["protocol"], "HTTP/1.1");
    }

    // h2 negotiated by ALPN on the HTTPS listener (what every browser does).
    let ca = TestCa::new();
    let tls = format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}",
        ca.cert.display().to_string(),
        ca.key.display().to_string()
    );
    let s = stack(&config_for(&upstream, &tls)).await;
    let url = s.labgate_url.replacen("http://", "https://", 1);
    let cacert = ca.ca.display().to_string();
    let (status, body) = curl(&["--http2", "--cacert", &cacert, &format!("{url}/public/x")]).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["host"], url.trim_start_matches("https://"), "{body}");
}

#[tokio::test]
async fn an_upstream_that_answers_early_reaches_the_client_intact() {
    let (_nginx, upstream) = nginx_upstream().await;
    let s = stack(&config_for(&upstream, "")).await;
    // 8 MiB to an upstream that takes 1 KiB: nginx answers 413 without reading it.
    let body = vec![b'x'; 8 << 20];
    let r = plain()
        .post(format!("{}/public/upload", s.labgate_url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text = r.text().await.unwrap();
    assert!(text.contains("413"), "{text}");
    // A small one passes.
    let r = plain()
        .post(format!("{}/public/upload", s.labgate_url))
        .body("ok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn connection_nominations_and_overrides_cannot_touch_what_labgate_sets() {
    let (_nginx, upstream) = nginx_upstream().await;
    let s = stack(&config_for(&upstream, "")).await;
    let alice = signed_in(&s, "alice").await;
    let r = alice
        .get(format!("{}/docs", s.labgate_url))
        .header(ACCEPT, "application/json")
        .header(
            "connection",
            "keep-alive, X-Forwarded-User, X-Labgate-Assertion, X-Labgate-Kind, X-Forwarded-For, X-Real-IP, X-Forwarded-Host, Host",
        )
        .header("x-original-url", "/admin")
        .header("x-rewrite-url", "/admin")
        .header("x-forwarded-uri", "/admin")
        .header("x-forwarded-prefix", "/admin")
        .header("x-real-ip", "6.6.6.6")
        .header("true-client-ip", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["user"], "alice", "{v}");
    assert_eq!(v["kind"], "user", "{v}");
    assert!(v["assertion"].as_str().unwrap().starts_with("ey"), "{v}");
    assert_eq!(v["xff"], "127.0.0.1", "{v}");
    assert_eq!(v["real"], "127.0.0.1", "{v}");
    assert_eq!(
        v["host"],
        s.labgate_url.trim_start_matches("http://"),
        "{v}"
    );
    for k in [
        "original_url",
        "rewrite_url",
        "forwarded_uri",
        "prefix",
        "true_client_ip",
    ] {
        assert_eq!(v[k], "", "{k} reached the upstream: {v}");
    }
    // A client-nominated header of its own is removed (RFC 9110 §7.6.1).
    let r = plain()
        .get(format!("{}/public/x", s.labgate_url))
        .header("connection", "x-forwarded-prefix")
        .header("x-forwarded-prefix", "/p")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["prefix"], "");

    // From a trusted front proxy the override headers are its own and pass.
    let s = stack(&config_for(&upstream, "trusted_proxies = [\"127.0.0.1\"]")).await;
    let r = plain()
        .get(format!("{}/public/x", s.labgate_url))
        .header("x-forwarded-prefix", "/app")
        .header("x-real-ip", "10.1.2.3")
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["prefix"], "/app", "{v}");
    assert_eq!(v["real"], "10.1.2.3", "{v}");
}

/// A WebSocket over HTTP/2 (RFC 8441 extended CONNECT, as browsers open one on an h2
/// connection) reaches an HTTP/1.1 upstream as an RFC 6455 upgrade, for a signed-in user
/// only, and frames flow both ways.
#[tokio::test]
async fn websocket_over_h2_reaches_an_http11_upstream() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;

    let s = stack(&config_with(None, "")).await;
    let cookie = {
        let c = browser();
        let r = flow(&c, &s, "alice", "/").await;
        session_cookie_header(&set_cookies(&r))
    };
    let addr = s.labgate_url.trim_start_matches("http://").to_owned();
    let mut sender = h2c(&s.labgate_url).await;
    let connect = |cookie: Option<&str>| {
        let mut b = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("http://{addr}/ws"))
            .header("sec-websocket-version", "13")
            .extension(hyper::ext::Protocol::from_static("websocket"));
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        b.body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    // Without a session: refused like any request, no tunnel.
    sender.ready().await.unwrap();
    let r = sender.send_request(connect(None)).await.unwrap();
    assert_eq!(r.status(), http::StatusCode::UNAUTHORIZED);
    // Signed in: 200 and a WebSocket.
    sender.ready().await.unwrap();
    let mut r = sender.send_request(connect(Some(&cookie))).await.unwrap();
    assert_eq!(r.status(), http::StatusCode::OK);
    assert!(r.headers().get("sec-websocket-accept").is_none());
    let io = hyper::upgrade::on(&mut r).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(io),
        Role::Client,
        None,
    )
    .await;
    for msg in ["over h2", "and back"] {
        ws.send(Message::text(msg)).await.unwrap();
        let back = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), msg);
    }
    // An ordinary CONNECT (no :protocol) is still refused.
    sender.ready().await.unwrap();
    let plain_connect = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let r = sender.send_request(plain_connect).await;
    assert!(r
        .map(|r| r.status() != http::StatusCode::OK)
        .unwrap_or(true));
}

/// Spellings and tokens a client might use to get something past the rewrite (attacks
/// found by review): a tab after `Bearer`, `_` spellings of the override and forwarded
/// headers, nominating labgate's request id, and non-WebSocket upgrades.
#[tokio::test]
async fn spellings_and_upgrades_that_must_not_pass() {
    let s = stack(&config_with(None, "")).await;
    let r = plain()
        .get(format!("{}/public/x", s.labgate_url))
        .header(ACCEPT, "application/json")
        .header("authorization", "Bearer\tglpat-bob-demo-token-read-api")
        .header("X_Real_IP", "6.6.6.6")
        .header("X_Original_URL", "/admin")
        .header("X_Forwarded_For", "6.6.6.6")
        .header("X_Forwarded_Host", "evil.example")
        .header("True_Client_IP", "6.6.6.6")
        .header("X_Rewrite_URL", "/admin")
        .header("connection", "x-request-id, upgrade")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAAQAAP__")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    let h = &body["headers"];
    for k in [
        "authorization",
        "x_real_ip",
        "x_original_url",
        "x_forwarded_for",
        "x_forwarded_host",
        "true_client_ip",
        "x_rewrite_url",
        "upgrade",
    ] {
        assert!(h.get(k).is_none(), "{k} reached the upstream: {body}");
    }
    assert!(
        h.get("x-request-id").is_some(),
        "labgate's request id survives: {body}"
    );
    assert_eq!(h["x-real-ip"], serde_json::json!(["127.0.0.1"]));
}

/// `upstream.max_connections`: a request beyond it waits for a connection to the app and then
/// gets one, so a burst of clients costs the app at most that many connections. Six requests
/// that each take the app 400 ms, at once: with two connections they take three turns; with no
/// limit, one.
#[tokio::test]
async fn requests_beyond_the_upstream_connection_limit_wait_their_turn() {
    const SLOW_MS: u64 = 400;
    let mut took = Vec::new();
    for limit in [2, 0] {
        let config = config_with(None, "")
            .replace(
                "timeout = \"30s\"",
                &format!("timeout = \"30s\"\nmax_connections = {limit}"),
            )
            .replace("[server]\n", "[server]\nworkers = 1\n");
        assert!(config.contains(&format!("max_connections = {limit}")));
        let s = stack(&config).await;
        let alice = signed_in(&s, "alice").await;
        let start = std::time::Instant::now();
        let answers = futures_util::future::join_all((0..6).map(|_| {
            alice
                .get(format!("{}/slow?ms={SLOW_MS}", s.labgate_url))
                .send()
        }))
        .await;
        took.push(start.elapsed());
        for r in answers {
            assert_eq!(r.unwrap().status(), StatusCode::OK, "limit {limit}");
        }
    }
    let turn = std::time::Duration::from_millis(SLOW_MS);
    assert!(took[0] >= turn * 3 - turn / 10, "limit 2: {took:?}");
    assert!(took[1] < turn * 2, "no limit: {took:?}");
}

/// A slot of `upstream.max_connections` is given back however its response ends: downloads
/// dropped half-way, answers after the upstream timed out (504), HEAD. With one connection
/// allowed, a slot kept by any of them would leave the next request waiting until its 504.
#[tokio::test]
async fn connection_slots_come_back_from_aborted_and_failed_requests() {
    let config = config_with(None, "")
        .replace("timeout = \"30s\"", "timeout = \"2s\"\nmax_connections = 1")
        .replace("[server]\n", "[server]\nworkers = 1\n");
    assert!(config.contains("max_connections = 1"));
    let s = stack(&config).await;
    let alice = signed_in(&s, "alice").await;
    let url = |path: &str| format!("{}{path}", s.labgate_url);
    for _ in 0..5 {
        // 64 MiB, of which only the head is read before the response is dropped.
        let r = alice
            .get(url("/download?bytes=67108864"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        drop(r);
        let r = alice.get(url("/slow?ms=3000")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        let r = alice.head(url("/download")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let start = std::time::Instant::now();
    let r = alice.get(url("/slow?ms=10")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
