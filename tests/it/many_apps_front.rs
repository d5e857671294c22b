//! One labgate for two apps behind the front proxies users run (SPEC §9 "Many apps",
//! docs/many-apps.md): the `deploy/` many-apps files in a real nginx
//! (`nginx/many-apps.conf`), Traefik 3 (`traefik/many-apps.yml`) and Caddy 2
//! (`caddy/Caddyfile.many-apps`) with only the addresses replaced, labgate configured as each
//! file's header says, and two real apps that each verify assertions for their own origin.
//! ingress-nginx (`ingress-nginx/many-apps.yaml`) is tested with requests shaped exactly as
//! ingress-nginx sends them.
//!
//! One story per proxy, its sign-ins shared by every assertion: one sign-in serves both apps,
//! each app's rules and audience are its own, one sign-out ends both, a host the proxy routes
//! but labgate does not serve is refused before its app sees anything, and a client's
//! spellings and forgeries of the host never make labgate judge another app.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use labgate::dev::echo::{Echo, EchoConfig};
use labgate::dev::gitlab::{Fixture, StandIn};
use labgate::dev::{Listeners, Stack};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{ACCEPT, COOKIE, HOST};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::harness::*;

const WIKI: &str = "wiki.example.com";
const ADMIN: &str = "admin.example.com";
const AUTH: &str = "auth.example.com";
/// A host each proxy routes (in the test's copy of its file) to the same auth as the apps,
/// but that no `hosts` list names: a proxy misconfiguration labgate must refuse.
const EVIL: &str = "evil.example.com";

const NGINX: &str = "deploy/nginx/many-apps.conf";
const TRAEFIK: &str = "deploy/traefik/many-apps.yml";
const CADDY: &str = "deploy/caddy/Caddyfile.many-apps";
const INGRESS: &str = "deploy/ingress-nginx/many-apps.yaml";

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The labgate configuration in a deploy file's header (its `#   ` lines from `[server]`
/// on), made runnable here: public_url on this test's scheme and port, the front proxy on
/// loopback, the test's cookie secret and the GitLab stand-in.
fn header_config(file: &str, public_url: &str, cookie_secure: bool) -> String {
    let text = read(file);
    let toml: String = text
        .lines()
        .skip_while(|l| *l != "#   [server]")
        .take_while(|l| l.starts_with("#   ") || *l == "#")
        .map(|l| format!("{}\n", l.strip_prefix("#   ").unwrap_or("")))
        .collect();
    for needed in [
        "public_url = \"https://auth.example.com\"",
        "[session]\ncookie_domain = \"example.com\"",
        "hosts = [\"wiki.example.com\"]",
        "hosts = [\"admin.example.com\"]",
        "allowed_groups = [\"acme/admins\"]",
    ] {
        assert!(
            toml.contains(needed),
            "{file}'s header names {needed}:\n{toml}"
        );
    }
    let toml = toml
        .replace("\"https://auth.example.com\"", &format!("\"{public_url}\""))
        .replace("[\"10.0.0.0/8\"]", "[\"127.0.0.1\"]")
        .replace(
            "[session]\n",
            &format!(
                "[session]\ncookie_secret = \"{}\"\ncookie_secure = {cookie_secure}\n",
                test_cookie_secret()
            ),
        );
    format!(
        "{toml}\n[gitlab]\nurl = \"{{gitlab}}\"\nclient_id = \"labgate-dev-client-id\"\nclient_secret = \"gloas-labgate-dev-secret\"\n"
    )
}

/// A front proxy process, stopped (SIGTERM) when dropped.
struct Proc {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

enum Front {
    Nginx(Nginx),
    Proc(Proc),
}

impl Front {
    fn log(&self) -> String {
        match self {
            Front::Nginx(n) => n.error_log(),
            Front::Proc(p) => {
                std::fs::read_to_string(p.dir.path().join("proxy.log")).unwrap_or_default()
            }
        }
    }
}

/// Where the proxies send each app (the files' 127.0.0.1:4180, :8081, :8082) in this test.
struct Upstreams {
    labgate: String,
    wiki: String,
    admin: String,
    evil: String,
}

impl Upstreams {
    /// A deploy file with only these addresses in place of its own.
    fn replace(&self, text: &str) -> String {
        let replaced = text
            .replace("127.0.0.1:4180", &self.labgate)
            .replace("127.0.0.1:8081", &self.wiki)
            .replace("127.0.0.1:8082", &self.admin);
        for own in ["127.0.0.1:4180", "127.0.0.1:8081", "127.0.0.1:8082"] {
            assert!(text.contains(own), "the file names {own}");
        }
        replaced
    }
}

/// deploy/nginx/many-apps.conf, plus a copy of its admin server block for evil.example.com.
async fn nginx(port: u16, up: &Upstreams) -> Front {
    let text = read(NGINX);
    let admin = &text[text
        .find("# The admin app")
        .expect("the admin server block")..];
    let evil = admin.replace(ADMIN, EVIL).replace("admin_app", "evil_app");
    let site = format!(
        "{text}\nupstream evil_app {{\n    server {};\n}}\n\n{evil}",
        up.evil
    );
    let site = up
        .replace(&site)
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    Front::Nginx(start_nginx(&site, port).await)
}

/// deploy/traefik/many-apps.yml, plus a router for evil.example.com with the apps'
/// middlewares.
fn traefik(port: u16, up: &Upstreams) -> Front {
    let mut y: serde_norway::Value = serde_norway::from_str(&up.replace(&read(TRAEFIK))).unwrap();
    let router: serde_norway::Value = serde_norway::from_str(&format!(
        "rule: \"Host(`{EVIL}`)\"\nmiddlewares: [labgate, labgate-strip]\nservice: evil\ntls: {{}}\n"
    ))
    .unwrap();
    let service: serde_norway::Value = serde_norway::from_str(&format!(
        "loadBalancer:\n  servers: [{{ url: \"http://{}\" }}]\n",
        up.evil
    ))
    .unwrap();
    for (table, value) in [("routers", router), ("services", service)] {
        y["http"][table]
            .as_mapping_mut()
            .unwrap()
            .insert("evil".into(), value);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many-apps.yml");
    std::fs::write(&file, serde_norway::to_string(&y).unwrap()).unwrap();
    let child = Command::new(find_binary("traefik"))
        .args([
            &format!("--entryPoints.websecure.address=127.0.0.1:{port}"),
            &format!("--providers.file.filename={}", file.display()),
            "--log.level=ERROR",
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("proxy.log")).unwrap())
        .spawn()
        .expect("start traefik");
    Front::Proc(Proc { child, dir })
}

/// deploy/caddy/Caddyfile.many-apps, plus a site for evil.example.com importing the apps'
/// snippet.
fn caddy(port: u16, up: &Upstreams) -> Front {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    // The environment, not the example: Caddy's own CA (no ACME here), test ports, no admin
    // endpoint.
    let global = format!(
        "{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port {http_port}\n\thttps_port {port}\n\tdefault_bind 127.0.0.1\n}}\n\n"
    );
    let evil = format!("\n{EVIL} {{\n\timport labgate-app {}\n}}\n", up.evil);
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, global + &up.replace(&read(CADDY)) + &evil).unwrap();
    let child = spawn_caddy(&file, dir.path());
    Front::Proc(Proc { child, dir })
}

/// An upstream that counts the connections it gets (the app behind evil.example.com).
async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nevil",
                    )
                    .await;
            });
        }
    });
    (addr, hits)
}

/// An echo app that verifies assertions for `audience` only.
fn echo(jwks_url: &str, issuer: &str, audience: &str) -> (String, Arc<Echo>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let e = Echo::start(
        tokio::net::TcpListener::from_std(listener).unwrap(),
        EchoConfig {
            jwks_url: jwks_url.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            assertion_header: "x-labgate-assertion".into(),
        },
    );
    (addr, e)
}

/// labgate, the two apps and the evil host's upstream behind one front proxy.
struct Apps {
    proxy: &'static str,
    scheme: &'static str,
    port: u16,
    stack: Stack,
    wiki: Arc<Echo>,
    admin: Arc<Echo>,
    evil_hits: Arc<AtomicUsize>,
    front: Front,
}

/// A browser: one cookie jar, a client as browsers connect (HTTP/2 where offered) and an
/// HTTP/1.1 one whose `Host` a test may spell.
struct Browser {
    c: Client,
    h1: Client,
    jar: Arc<Jar>,
}

impl Apps {
    async fn start(proxy: &'static str) -> Apps {
        let (scheme, file) = match proxy {
            "nginx" => ("http", NGINX),
            "traefik" => ("https", TRAEFIK),
            _ => ("https", CADDY),
        };
        // public_url names the proxy's port, so it is chosen before labgate starts.
        let port = free_port();
        let l = Listeners::ephemeral().await.unwrap();
        let labgate = l.labgate.local_addr().unwrap().to_string();
        let public = format!("{scheme}://{AUTH}:{port}");
        let jwks = format!("http://{labgate}/oauth2/jwks.json");
        let (wiki_addr, wiki) = echo(&jwks, &public, &format!("{scheme}://{WIKI}:{port}"));
        let (admin_addr, admin) = echo(&jwks, &public, &format!("{scheme}://{ADMIN}:{port}"));
        let (evil_addr, evil_hits) = counting_upstream().await;
        let config = header_config(file, &public, scheme == "https");
        let stack = Stack::start(l, &config, Fixture::demo(), "").await.unwrap();
        let up = Upstreams {
            labgate,
            wiki: wiki_addr,
            admin: admin_addr,
            evil: evil_addr,
        };
        let front = match proxy {
            "nginx" => nginx(port, &up).await,
            "traefik" => traefik(port, &up),
            _ => caddy(port, &up),
        };
        let apps = Apps {
            proxy,
            scheme,
            port,
            stack,
            wiki,
            admin,
            evil_hits,
            front,
        };
        apps.wait_routed().await;
        apps
    }

    fn origin(&self, host: &str) -> String {
        format!("{}://{host}:{}", self.scheme, self.port)
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("{}{path}", self.origin(host))
    }

    fn browser(&self) -> Browser {
        let jar = Arc::new(Jar::default());
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let build = |http1: bool| {
            let mut b = Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .danger_accept_invalid_certs(true);
            if http1 {
                b = b.http1_only();
            }
            for h in [WIKI, ADMIN, AUTH, EVIL] {
                b = b.resolve(h, addr);
            }
            b.build().unwrap()
        };
        Browser {
            c: build(false),
            h1: build(true),
            jar,
        }
    }

    /// Waits until the proxy routes auth.example.com's /oauth2/ to labgate.
    async fn wait_routed(&self) {
        let b = self.browser();
        // Generous: on a loaded runner a proxy's start (Caddy makes its local CA) can take
        // several seconds.
        for _ in 0..600 {
            if let Ok(r) = b.c.get(self.url(AUTH, "/oauth2/userinfo")).send().await {
                if r.status() == StatusCode::UNAUTHORIZED {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} never routed /oauth2/ to labgate; its log:\n{}",
            self.proxy,
            self.front.log()
        );
    }

    /// Sends `request` as written on a fresh connection (over TLS with `sni` for Traefik and
    /// Caddy); returns the status code and everything answered.
    async fn raw(&self, sni: &str, request: &str) -> (u16, String) {
        let out = if self.scheme == "http" {
            raw(&format!("127.0.0.1:{}", self.port), request).await
        } else {
            raw_tls(self.port, sni, request).await
        };
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{}: no HTTP answer to {request:?}: {out:?}", self.proxy));
        (status, out)
    }
}

/// A TLS client that takes any certificate (the proxies' test certificates).
#[derive(Debug)]
struct AnyCertificate(Arc<tokio_rustls::rustls::crypto::CryptoProvider>);

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error>
    {
        Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// [`raw`] over TLS (HTTP/1.1) to a loopback port, with `sni`.
async fn raw_tls(port: u16, sni: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn origin_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .origin()
        .ascii_serialization()
}

fn query_value(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The sign-in link of labgate's sign-in page, if `html` is one.
fn start_link(html: &str) -> Option<String> {
    html.split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.contains("/oauth2/start"))
        .map(|h| h.replace("&amp;", "&"))
}

async fn get_html(c: &Client, url: &str) -> reqwest::Response {
    c.get(url)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// GET as an API client (JSON), with extra headers; the body as JSON (a string if not).
async fn json(c: &Client, url: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut r = c.get(url).header(ACCEPT, "application/json");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Where a browser ended up after following a sign-in from `start`.
struct SignedIn {
    status: StatusCode,
    url: String,
    /// Where labgate's callback sent the browser.
    callback_location: String,
}

/// Follows the browser's way from `start` as a browser would (the jar keeps each host's
/// cookies): sign-in pages' links, redirects, the stand-in's sign-in and consent.
async fn sign_in(b: &Browser, gitlab: &StandIn, start: &str, user: &str) -> SignedIn {
    let mut r = get_html(&b.c, start).await;
    let mut callback_location = String::new();
    for _ in 0..12 {
        let here = r.url().to_string();
        if r.url().path() == "/oauth2/callback" {
            callback_location = location(&r);
        }
        if r.status() == StatusCode::FOUND {
            let next = absolute(&origin_of(&here), &location(&r));
            r = if next.starts_with(&gitlab.base_url) {
                let fields =
                    consent_fields(&b.c, gitlab, &next, user, &format!("{user}-password")).await;
                get_html(&b.c, &consent_at(&b.c, gitlab, fields, false).await).await
            } else {
                get_html(&b.c, &next).await
            };
            continue;
        }
        let status = r.status();
        let body = r.text().await.unwrap();
        match start_link(&body).filter(|_| status == StatusCode::OK) {
            Some(href) => r = get_html(&b.c, &absolute(&origin_of(&here), &href)).await,
            None => {
                return SignedIn {
                    status,
                    url: here,
                    callback_location,
                }
            }
        }
    }
    panic!("too many steps signing in from {start}");
}

/// The claims of an assertion, unverified (to say which app it names).
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The value of cookie `name` the jar sends to `url`.
fn cookie_value(jar: &Jar, url: &str, name: &str) -> Option<String> {
    let header = jar.cookies(&reqwest::Url::parse(url).unwrap())?;
    header
        .to_str()
        .unwrap()
        .split("; ")
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Who the app was told the user is: `X-Forwarded-User` (nginx) or `X-Auth-Request-User`
/// (Traefik, Caddy copy labgate's answer's header).
fn user_seen(body: &Value) -> &str {
    ["x-forwarded-user", "x-auth-request-user"]
        .iter()
        .find_map(|h| body["headers"][*h][0].as_str())
        .unwrap_or("")
}

/// The same story through every front proxy.
async fn story(a: &Apps) {
    let p = a.proxy;
    let gitlab = &a.stack.gitlab;
    let public = a.origin(AUTH);

    // Rules by host: the wiki's /public is open, the admin app's is not; API clients get 401.
    let anon = a.browser();
    let (status, body) = json(&anon.c, &a.url(WIKI, "/public/x"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{p}: wiki /public: {body}");
    assert_eq!(body["path"], "/public/x", "{p}: the wiki's app answered");
    for (host, path) in [(ADMIN, "/public/x"), (WIKI, "/x"), (ADMIN, "/x")] {
        let (status, _) = json(&anon.c, &a.url(host, path), &[]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{p}: anonymous at {host}{path}"
        );
    }

    // alice opens the admin app: to the one sign-in at auth.example.com, and back.
    let alice = a.browser();
    let page = a.url(ADMIN, "/page?x=1");
    let r = get_html(&alice.c, &page).await;
    let rd = if p == "nginx" {
        // nginx shows labgate's sign-in page in place (error_page 401).
        assert_eq!(r.status(), StatusCode::OK, "{p}");
        let body = r.text().await.unwrap();
        assert!(body.contains("Sign in with GitLab"), "{p}: {body}");
        query_value(&a.url(ADMIN, &start_link(&body).unwrap()), "rd")
    } else {
        assert_eq!(r.status(), StatusCode::FOUND, "{p}");
        let to = location(&r);
        assert!(
            to.starts_with(&format!("{public}/oauth2/sign_in?rd=")),
            "{p}: {to}"
        );
        query_value(&to, "rd")
    };
    assert_eq!(rd.as_deref(), Some(page.as_str()), "{p}: back to the page");
    let grants = gitlab.counters.code_grants.load(Ordering::SeqCst);
    let done = sign_in(&alice, gitlab, &page, "alice").await;
    assert_eq!(
        (done.status, done.url.as_str()),
        (StatusCode::OK, page.as_str()),
        "{p}"
    );
    assert_eq!(done.callback_location, page, "{p}");
    assert_eq!(
        gitlab.counters.code_grants.load(Ordering::SeqCst),
        grants + 1,
        "{p}: one sign-in"
    );

    // Both apps with that one sign-in; each assertion names its own app, verified by that
    // app only.
    let (status, w) = json(&alice.c, &a.url(WIKI, "/whoami"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{p}: alice at the wiki: {w}");
    let (status, ad) = json(&alice.c, &a.url(ADMIN, "/whoami"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{p}: alice at admin: {ad}");
    assert_eq!(
        gitlab.counters.code_grants.load(Ordering::SeqCst),
        grants + 1,
        "{p}: no second sign-in"
    );
    for (seen, host) in [(&w, WIKI), (&ad, ADMIN)] {
        assert_eq!(user_seen(seen), "alice", "{p}: {seen}");
        assert_eq!(seen["verified"]["valid"], true, "{p}: {seen}");
        assert_eq!(seen["verified"]["claims"]["aud"], a.origin(host), "{p}");
        assert_eq!(seen["verified"]["claims"]["iss"], public, "{p}");
        // The app is told the host it serves, once.
        let forwarded = seen["headers"]["x-forwarded-host"].as_array().unwrap();
        assert_eq!(forwarded.len(), 1, "{p}: {seen}");
        assert!(
            forwarded[0].as_str().unwrap().starts_with(host),
            "{p}: {seen}"
        );
    }
    let wiki_assertion = w["assertion"].as_str().unwrap();
    let admin_assertion = ad["assertion"].as_str().unwrap();
    assert!(a.wiki.verify(wiki_assertion).await.is_ok(), "{p}");
    let refused = a.admin.verify(wiki_assertion).await.unwrap_err();
    assert!(refused.contains("InvalidAudience"), "{p}: {refused}");
    assert!(a.wiki.verify(admin_assertion).await.is_err(), "{p}");

    // bob: admitted at the wiki, refused at admin by its host's rule.
    let bob = a.browser();
    let done = sign_in(&bob, gitlab, &a.url(WIKI, "/"), "bob").await;
    assert_eq!(done.status, StatusCode::OK, "{p}: bob at the wiki");
    let (status, seen) = json(&bob.c, &a.url(WIKI, "/x"), &[]).await;
    assert_eq!((status, user_seen(&seen)), (StatusCode::OK, "bob"), "{p}");
    let (status, _) = json(&bob.c, &a.url(ADMIN, "/x"), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}: bob at admin");
    let r = get_html(&bob.c, &a.url(ADMIN, "/")).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "{p}: bob's navigation to admin"
    );

    // Spellings of a host are that host: case, a trailing dot, another port. The proxy may
    // answer a spelling itself (a refusal, or Caddy's empty answer for a site it does not
    // have), but never gives it to the other app's rules.
    let port = a.port;
    let spellings = |host: &str| {
        [
            format!("{}:{port}", host.to_ascii_uppercase()),
            format!("{host}.:{port}"),
            host.to_owned(),
            format!("{host}:1"),
        ]
    };
    // The aud's host of the assertion an app was given, if an app answered.
    let app_audience = |body: &Value| {
        body["path"].as_str()?;
        let aud = claims(body["assertion"].as_str()?)["aud"].clone();
        let aud = reqwest::Url::parse(aud.as_str()?).ok()?;
        aud.host_str().map(str::to_owned)
    };
    for spelled in spellings(ADMIN) {
        let (status, body) =
            json(&bob.h1, &a.url(ADMIN, "/x"), &[("host", spelled.as_str())]).await;
        eprintln!("{p}: bob at admin as {spelled}: {status}");
        assert!(
            body["path"].is_null() && status != StatusCode::UNAUTHORIZED,
            "{p}: bob at admin as {spelled}: {status} {body}"
        );
        let (status, body) = json(
            &alice.h1,
            &a.url(ADMIN, "/x"),
            &[("host", spelled.as_str())],
        )
        .await;
        eprintln!("{p}: alice at admin as {spelled}: {status}");
        if body["path"].is_string() {
            assert_eq!(
                app_audience(&body).as_deref(),
                Some(ADMIN),
                "{p}: alice at {spelled}: {body}"
            );
        }
    }
    // Upper case is routed by every proxy: the admin app, with its canonical audience.
    let (status, body) = json(
        &alice.h1,
        &a.url(ADMIN, "/x"),
        &[("host", spellings(ADMIN)[0].as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}: {body}");
    assert_eq!(body["verified"]["valid"], true, "{p}: {body}");
    assert_eq!(body["verified"]["claims"]["aud"], a.origin(ADMIN), "{p}");
    for spelled in spellings(WIKI) {
        let (status, body) = json(&bob.h1, &a.url(WIKI, "/x"), &[("host", spelled.as_str())]).await;
        eprintln!("{p}: bob at the wiki as {spelled}: {status}");
        if body["path"].is_string() {
            assert_eq!(
                app_audience(&body).as_deref(),
                Some(WIKI),
                "{p}: bob at {spelled}: {body}"
            );
        }
    }

    // A client's own copies of the headers that name the host or the original request are
    // replaced or removed by the example: labgate judges the host the proxy routed.
    let wiki_host = format!("{WIKI}:{port}");
    let admin_host = format!("{ADMIN}:{port}");
    let wiki_public = a.url(WIKI, "/public/x");
    let names_wiki: &[(&str, &str)] = &[
        ("X-Forwarded-Host", wiki_host.as_str()),
        ("X-Original-URL", wiki_public.as_str()),
        ("X-Original-URI", "/public/x"),
        ("X-Forwarded-Uri", "/public/x"),
        ("X-Host", wiki_host.as_str()),
        ("X-Original-Host", wiki_host.as_str()),
        ("Forwarded", "host=wiki.example.com;proto=https"),
    ];
    for forged in names_wiki {
        let (status, body) = json(&anon.c, &a.url(ADMIN, "/public/x"), &[*forged]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{p}: anonymous at admin with {forged:?}: {body}"
        );
        let (status, _) = json(&bob.c, &a.url(ADMIN, "/x"), &[*forged]).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{p}: bob at admin with {forged:?}"
        );
    }
    let (status, body) = json(
        &bob.c,
        &a.url(WIKI, "/x"),
        &[
            ("X-Forwarded-Host", admin_host.as_str()),
            ("X-Forwarded-Proto", "http"),
            ("X-Original-URL", a.url(ADMIN, "/x").as_str()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}: {body}");
    assert_eq!(
        body["verified"]["claims"]["aud"],
        a.origin(WIKI),
        "{p}: {body}"
    );
    assert_eq!(
        body["headers"]["x-forwarded-host"].as_array().map(Vec::len),
        Some(1),
        "{p}: {body}"
    );
    assert!(
        !body["headers"].to_string().contains(ADMIN),
        "{p}: the client's header reached the wiki: {body}"
    );

    // A request target naming one host and a Host header naming another: refused, or
    // judged as the host the proxy routes by; never the other app's judgement.
    let bob_cookie = cookie_value(&bob.jar, &a.url(WIKI, "/"), "_labgate")
        .unwrap_or_else(|| panic!("{p}: bob's session cookie is _labgate"));
    let absolute_form = |target_host: &str, host: &str, path: &str, cookie: bool| {
        format!(
            "GET {}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n{}Accept: application/json\r\nConnection: close\r\n\r\n",
            a.origin(target_host),
            if cookie { format!("Cookie: _labgate={bob_cookie}\r\n") } else { String::new() },
        )
    };
    let (status, out) = a.raw(WIKI, &absolute_form(ADMIN, WIKI, "/x", true)).await;
    eprintln!("{p}: bob to admin's target with Host wiki: {status}");
    assert!(
        status >= 400,
        "{p}: bob to admin's target with Host wiki: {out}"
    );
    let (status, out) = a
        .raw(WIKI, &absolute_form(ADMIN, WIKI, "/public/x", false))
        .await;
    eprintln!("{p}: anonymous to admin's /public with Host wiki: {status}");
    assert!(
        status >= 400,
        "{p}: anonymous to admin's /public with Host wiki: {out}"
    );
    let (status, out) = a.raw(ADMIN, &absolute_form(WIKI, ADMIN, "/x", true)).await;
    eprintln!("{p}: bob to the wiki's target with Host admin: {status}");
    if (200..300).contains(&status) {
        assert!(
            out.contains(&format!("\"aud\":\"{}\"", a.origin(WIKI))),
            "{p}: the wiki's judgement only: {out}"
        );
    }
    // Two Host headers: the proxy refuses.
    let (status, out) = a
        .raw(
            WIKI,
            &format!(
                "GET /x HTTP/1.1\r\nHost: {WIKI}:{port}\r\nHost: {ADMIN}:{port}\r\nCookie: _labgate={bob_cookie}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
    assert_eq!(status, 400, "{p}: two Host headers: {out}");
    // A Host no browser sends reaches no app: the proxy refuses it or has no site for it.
    for host in [
        "wiki%2eexample.com",
        "admin.example.com@wiki.example.com",
        "wiki..example.com",
        "wiki.example.com, admin.example.com",
    ] {
        let (status, out) = a
            .raw(
                WIKI,
                &format!(
                    "GET /x HTTP/1.1\r\nHost: {host}\r\nCookie: _labgate={bob_cookie}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
                ),
            )
            .await;
        eprintln!("{p}: Host {host}: {status}");
        assert!(
            !out.contains("\"path\":"),
            "{p}: Host {host} reached an app: {out}"
        );
    }

    // A cookie planted for the whole domain (as any host below it could) with a forged or
    // altered value is no session; bob's own value, planted the same way, is (the planting
    // works).
    let mut altered = bob_cookie.clone().into_bytes();
    let mid = altered.len() / 2;
    altered[mid] = if altered[mid] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for (what, value, want) in [
        (
            "forged",
            "Zm9yZ2VkLXNlc3Npb24tdmFsdWU",
            StatusCode::UNAUTHORIZED,
        ),
        ("altered", altered.as_str(), StatusCode::UNAUTHORIZED),
        ("bob's", bob_cookie.as_str(), StatusCode::OK),
    ] {
        let m = a.browser();
        m.jar.add_cookie_str(
            &format!("_labgate={value}; Domain=example.com; Path=/"),
            &reqwest::Url::parse(&a.url(WIKI, "/")).unwrap(),
        );
        let (status, body) = json(&m.c, &a.url(WIKI, "/x"), &[]).await;
        assert_eq!(
            status, want,
            "{p}: a {what} cookie for .example.com: {body}"
        );
    }

    // After sign-in labgate sends the browser only to its own hosts: another destination
    // falls back to `/`.
    for (rd, kept) in [
        (a.url(WIKI, "/w?x=1"), true),
        (a.url(EVIL, "/"), false),
        (format!("//{EVIL}/"), false),
        (format!("{}://{WIKI}.evil.org:{port}/", a.scheme), false),
        (format!("{}://{WIKI}:{port}@evil.org/", a.scheme), false),
        ("https://evil.org/".to_owned(), false),
    ] {
        let r = get_html(
            &anon.c,
            &format!("{public}/oauth2/sign_in?rd={}", urlencode(&rd)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{p}");
        let link = start_link(&r.text().await.unwrap()).unwrap();
        let kept_as = query_value(&a.url(AUTH, &link), "rd").unwrap();
        assert_eq!(
            kept_as,
            if kept { rd.as_str() } else { "/" },
            "{p}: rd {rd}"
        );
    }
    let carol = a.browser();
    let done = sign_in(
        &carol,
        gitlab,
        &format!("{public}/oauth2/start?rd={}", urlencode(&a.url(EVIL, "/"))),
        "alice",
    )
    .await;
    assert_eq!(
        done.callback_location, "/",
        "{p}: after sign-in, not to evil"
    );

    // A host the proxy routes to the same auth but labgate does not serve: refused, signed
    // in or not, and its app never sees a request.
    for who in [&alice, &anon] {
        let (status, body) = json(&who.c, &a.url(EVIL, "/x"), &[]).await;
        if p == "nginx" {
            // auth_request answers an auth service's 400 with 500.
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{p}: {body}");
            let log = a.front.log();
            assert!(
                log.contains("auth request unexpected status: 400"),
                "{p}: labgate refused evil: {log}"
            );
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{p}: {body}");
            assert!(body.to_string().contains("unknown_host"), "{p}: {body}");
        }
        let r = get_html(&who.c, &a.url(EVIL, "/")).await;
        assert!(
            r.status().is_client_error() || r.status().is_server_error(),
            "{p}: a navigation to evil: {}",
            r.status()
        );
    }
    assert_eq!(
        a.evil_hits.load(Ordering::SeqCst),
        0,
        "{p}: evil's app was reached"
    );

    // One sign-out, at the admin app, ends the session at both; bob's is his own.
    let r = get_html(&alice.c, &a.url(ADMIN, "/oauth2/sign_out")).await;
    assert_eq!(r.status(), StatusCode::OK, "{p}: sign-out");
    for host in [WIKI, ADMIN] {
        let (status, _) = json(&alice.c, &a.url(host, "/x"), &[]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{p}: alice at {host} after sign-out"
        );
    }
    let (status, _) = json(&bob.c, &a.url(WIKI, "/x"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{p}: bob still signed in");
}

#[tokio::test]
async fn nginx_many_apps_from_deploy() {
    story(&Apps::start("nginx").await).await;
}

#[tokio::test]
async fn traefik_many_apps_from_deploy() {
    story(&Apps::start("traefik").await).await;
}

#[tokio::test]
async fn caddy_many_apps_from_deploy() {
    story(&Apps::start("caddy").await).await;
}

/// An Ingress's annotation.
fn annotation<'a>(docs: &'a [serde_norway::Value], ingress: &str, key: &str) -> &'a str {
    docs.iter()
        .find(|d| d["kind"] == "Ingress" && d["metadata"]["name"] == ingress)
        .unwrap_or_else(|| panic!("{INGRESS}: Ingress {ingress}"))["metadata"]["annotations"]
        [format!("nginx.ingress.kubernetes.io/{key}").as_str()]
    .as_str()
    .unwrap_or_else(|| panic!("{INGRESS}: {ingress}'s {key}"))
}

/// ingress-nginx's auth subrequest for `original` (what it builds as
/// `$scheme://$http_host$request_uri`) to `auth_url`, with a client's `cookie` and other
/// headers (ingress-nginx passes them on); the status and labgate's answer's headers.
async fn ingress_asks(
    labgate: &str,
    auth_url: &str,
    original: &str,
    cookie: Option<&str>,
    client: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap) {
    let u = reqwest::Url::parse(auth_url).unwrap();
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    let mut r = plain()
        .get(format!("http://{labgate}{path}"))
        .header(HOST, u.host_str().unwrap())
        .header("X-Original-URL", original)
        .header("X-Original-Method", "GET")
        .header("X-Sent-From", "nginx-ingress-controller")
        .header("X-Real-IP", "10.1.2.3")
        .header("X-Forwarded-For", "10.1.2.3")
        .header(
            "X-Auth-Request-Redirect",
            reqwest::Url::parse(original).unwrap().path(),
        )
        .header(ACCEPT, "text/html");
    if let Some(c) = cookie {
        r = r.header(COOKIE, c);
    }
    for (k, v) in client {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    (r.status(), r.headers().clone())
}

/// Follows ingress-nginx's auth-signin URL (`signin`, its variables filled in) at labgate's
/// own host, through the stand-in: labgate's callback's Location and the session cookie.
async fn ingress_sign_in(s: &Stack, labgate: &str, signin: &str, user: &str) -> (String, String) {
    let at_labgate = |url: &str| {
        let u = reqwest::Url::parse(url).unwrap();
        assert_eq!(u.host_str(), Some(AUTH), "{url}");
        format!("http://{labgate}{}?{}", u.path(), u.query().unwrap_or(""))
    };
    let r = plain()
        .get(at_labgate(signin))
        .header(HOST, AUTH)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "auth-signin starts the flow");
    let flow = set_cookies(&r)
        .iter()
        .filter_map(|c| c.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ");
    let c = browser();
    let fields = consent_fields(
        &c,
        &s.gitlab,
        &location(&r),
        user,
        &format!("{user}-password"),
    )
    .await;
    let callback = consent_at(&c, &s.gitlab, fields, false).await;
    assert!(
        callback.starts_with(&format!("https://{AUTH}/oauth2/callback?")),
        "{callback}"
    );
    let r = plain()
        .get(at_labgate(&callback))
        .header(HOST, AUTH)
        .header(COOKIE, flow)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "callback");
    (location(&r), session_cookie_header(&set_cookies(&r)))
}

/// deploy/ingress-nginx/many-apps.yaml with labgate configured as its header says, asked as
/// ingress-nginx asks (`auth-url`, `X-Original-URL` from the request's Host header), and
/// signed in through its `auth-signin`.
#[tokio::test]
async fn ingress_nginx_many_apps_as_ingress_nginx_asks() {
    let docs: Vec<serde_norway::Value> = serde_norway::Deserializer::from_str(&read(INGRESS))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    // Each app's host goes to its Service, labgate's endpoints on every host to labgate's
    // Service (deploy/kubernetes/forward-auth.yaml's), which also answers each auth-url.
    let routes = |name: &str| -> Vec<(String, String, String, u64)> {
        let ing = docs
            .iter()
            .find(|d| d["kind"] == "Ingress" && d["metadata"]["name"] == name)
            .unwrap();
        let mut out = Vec::new();
        for rule in ing["spec"]["rules"].as_sequence().unwrap() {
            for p in rule["http"]["paths"].as_sequence().unwrap() {
                out.push((
                    rule["host"].as_str().unwrap().to_owned(),
                    p["path"].as_str().unwrap().to_owned(),
                    p["backend"]["service"]["name"].as_str().unwrap().to_owned(),
                    p["backend"]["service"]["port"]["number"].as_u64().unwrap(),
                ));
            }
        }
        out
    };
    let route = |h: &str, p: &str, s: &str, n: u64| (h.to_owned(), p.to_owned(), s.to_owned(), n);
    assert_eq!(routes("wiki"), [route(WIKI, "/", "wiki", 8080)]);
    assert_eq!(routes("admin"), [route(ADMIN, "/", "admin", 8080)]);
    assert_eq!(
        routes("labgate"),
        [
            route(AUTH, "/oauth2", "labgate", 4180),
            route(WIKI, "/oauth2", "labgate", 4180),
            route(ADMIN, "/oauth2", "labgate", 4180),
        ]
    );
    let service = read("deploy/kubernetes/forward-auth.yaml");
    assert!(service.contains("kind: Service\nmetadata:\n  name: labgate\n"));
    assert!(service.contains("port: 4180"));
    let wiki_auth = annotation(&docs, "wiki", "auth-url");
    let admin_auth = annotation(&docs, "admin", "auth-url");
    for url in [wiki_auth, admin_auth] {
        assert!(
            url.starts_with("http://labgate.default.svc.cluster.local:4180/oauth2/auth"),
            "{url}"
        );
    }

    let l = Listeners::ephemeral().await.unwrap();
    let lg = l.labgate.local_addr().unwrap().to_string();
    let public = format!("https://{AUTH}");
    let stack = Stack::start(
        l,
        &header_config(INGRESS, &public, true),
        Fixture::demo(),
        "",
    )
    .await
    .unwrap();
    let jwks = format!("http://{lg}/oauth2/jwks.json");
    let (_, wiki) = echo(&jwks, &public, &format!("https://{WIKI}"));
    let (_, admin) = echo(&jwks, &public, &format!("https://{ADMIN}"));
    let assertion = |h: &reqwest::header::HeaderMap| {
        h.get("x-labgate-assertion")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let user = |h: &reqwest::header::HeaderMap| {
        h.get("x-auth-request-user")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // Not signed in at the wiki: 401, and ingress-nginx sends the browser to auth-signin
    // (its variables as ingress-nginx fills them), which comes back to the page.
    let page = format!("https://{WIKI}/page?x=1");
    let (status, _) = ingress_asks(&lg, wiki_auth, &page, None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let signin = |ingress: &str, host: &str, uri: &str| {
        annotation(&docs, ingress, "auth-signin")
            .replace("$scheme", "https")
            .replace("$host", host)
            .replace("$escaped_request_uri", &urlencode(uri))
    };
    let (back, bob) = ingress_sign_in(&stack, &lg, &signin("wiki", WIKI, "/page?x=1"), "bob").await;
    assert_eq!(back, page);
    let (back, alice) = ingress_sign_in(&stack, &lg, &signin("admin", ADMIN, "/"), "alice").await;
    assert_eq!(back, format!("https://{ADMIN}/"));

    // bob at the wiki: admitted, with an assertion only the wiki accepts.
    let (status, h) = ingress_asks(&lg, wiki_auth, &page, Some(&bob), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(user(&h).as_deref(), Some("bob"));
    let claims = wiki.verify(&assertion(&h)).await.unwrap();
    assert_eq!(claims["aud"], format!("https://{WIKI}"));
    assert!(admin.verify(&assertion(&h)).await.is_err());
    // alice at admin: admitted, with an assertion only the admin app accepts.
    let admin_page = format!("https://{ADMIN}/x");
    let (status, h) = ingress_asks(&lg, admin_auth, &admin_page, Some(&alice), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(admin.verify(&assertion(&h)).await.is_ok());
    assert!(wiki.verify(&assertion(&h)).await.is_err());
    // bob at admin: refused by the admin host's rule, however the host is spelled.
    for original in [
        admin_page.clone(),
        "https://ADMIN.Example.COM./x".to_owned(),
        format!("https://{ADMIN}:443/x"),
    ] {
        let (status, _) = ingress_asks(&lg, admin_auth, &original, Some(&bob), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{original}");
    }
    // A client's Host header naming the wiki at the admin Ingress (an absolute request
    // target routed to admin): labgate is told the wiki, whose rules admit bob; the admin
    // Ingress's auth-url pins its host, so labgate refuses to judge another one.
    let (status, _) = ingress_asks(&lg, wiki_auth, &page, Some(&bob), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the wiki's rules admit bob");
    let (status, _) = ingress_asks(&lg, admin_auth, &page, Some(&bob), &[]).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the admin Ingress's pinned host refuses the wiki's URL"
    );
    // Without the pin (an Ingress copied from the single-app example), the wiki's rules
    // would have admitted him: the pin is what holds.
    let unpinned = admin_auth.split('?').next().unwrap();
    let (status, _) = ingress_asks(&lg, unpinned, &page, Some(&bob), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The wiki's /public is open, the admin app's is not.
    let (status, _) = ingress_asks(
        &lg,
        wiki_auth,
        &format!("https://{WIKI}/public/x"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = ingress_asks(
        &lg,
        admin_auth,
        &format!("https://{ADMIN}/public/x"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A client's X-Forwarded-* (ingress-nginx passes them to labgate) are not read.
    let forged: &[(&str, &str)] = &[
        ("X-Forwarded-Host", WIKI),
        ("X-Forwarded-Uri", "/public/x"),
        ("X-Forwarded-Method", "GET"),
        ("X-Original-URI", "/public/x"),
    ];
    let (status, _) =
        ingress_asks(&lg, admin_auth, &format!("https://{ADMIN}/x"), None, forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, h) = ingress_asks(
        &lg,
        wiki_auth,
        &page,
        Some(&bob),
        &[("X-Forwarded-Host", ADMIN)],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(wiki.verify(&assertion(&h)).await.is_ok());

    // A host no `hosts` list names, or one no browser sends: 400.
    for original in [
        format!("https://{EVIL}/x"),
        format!("https://{WIKI}.evil.org/x"),
        format!("https://bob@{WIKI}/x"),
        format!("https://{WIKI}..example.com/x"),
    ] {
        let (status, _) = ingress_asks(&lg, wiki_auth, &original, Some(&bob), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{original}");
    }
}

/// The many-apps files repeat the single-app files' header handling: kept identical, so that
/// a header added to one is added to the other.
#[test]
fn many_apps_examples_keep_the_single_app_header_handling() {
    // nginx: each app's server block is the other's with its name and upstream; its
    // locations are deploy/nginx/labgate.conf's.
    let text = read(NGINX);
    let block = |marker: &str| -> String {
        let start = text.find(marker).unwrap_or_else(|| panic!("{marker}"));
        let open = start + text[start..].find("server {").unwrap();
        let mut depth = 0;
        for (i, ch) in text[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return text[open..=open + i].to_owned();
                    }
                }
                _ => {}
            }
        }
        panic!("{marker}: unclosed");
    };
    let wiki = block("# The wiki.\n");
    let admin = block("# The admin app");
    assert_eq!(
        wiki.replace(WIKI, ADMIN).replace("wiki_app", "admin_app"),
        admin
    );
    let directives = |t: &str| -> std::collections::BTreeSet<String> {
        t.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("proxy_set_header") || l.starts_with("auth_request"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        directives(&wiki),
        directives(&read("deploy/nginx/labgate.conf"))
    );

    // Traefik: the same middlewares as deploy/traefik/dynamic.yml.
    let yaml = |f: &str| serde_norway::from_str::<serde_norway::Value>(&read(f)).unwrap();
    assert_eq!(
        yaml(TRAEFIK)["http"]["middlewares"],
        yaml("deploy/traefik/dynamic.yml")["http"]["middlewares"]
    );

    // Caddy: the same header handling as deploy/caddy/Caddyfile.
    let handling = |f: &str| -> Vec<String> {
        read(f)
            .lines()
            .map(str::trim)
            .filter(|l| {
                ["request_header", "header_up", "copy_headers", "uri "]
                    .iter()
                    .any(|d| l.starts_with(d))
            })
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(handling(CADDY), handling("deploy/caddy/Caddyfile"));
}
