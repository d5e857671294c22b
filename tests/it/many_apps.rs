//! One labgate for many apps (SPEC §9 "Many apps"): upstreams and rules per host, sign in
//! once across a cookie domain (or a session per host without one), an assertion audience
//! per app. Every host is a real name resolved to loopback by the client, as a browser
//! behind an ingress would send it.

use std::net::SocketAddr;

use labgate::dev::echo::{Echo, EchoConfig};
use labgate::dev::gitlab::Fixture;
use labgate::dev::{Listeners, Stack};
use reqwest::header::ACCEPT;
use reqwest::{Client, StatusCode};

use crate::harness::*;

const WIKI: &str = "wiki.example.test";
const ADMIN: &str = "admin.example.test";
const AUTH: &str = "auth.example.test";

/// A labgate serving two apps, each with its own echo upstream that verifies assertions
/// for its own origin only.
pub struct Apps {
    pub stack: Stack,
    pub port: u16,
    pub wiki: std::sync::Arc<Echo>,
    pub admin: std::sync::Arc<Echo>,
}

impl Apps {
    /// `http://<host>:<port>`.
    pub fn url(&self, host: &str) -> String {
        format!("http://{host}:{}", self.port)
    }

    /// `GET target` on a fresh connection with `Host: host` (as written) and `headers`
    /// (each ending in CRLF); the whole answer.
    pub async fn get(&self, host: &str, target: &str, headers: &str) -> String {
        raw(
            &self.stack.labgate_url,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"),
        )
        .await
    }

    /// `host:port` of labgate's listener.
    pub fn at(&self, host: &str) -> String {
        format!("{host}:{}", self.port)
    }

    /// A browser (cookie jar, no redirects) that resolves every `*.example.test` host this
    /// test uses to labgate.
    pub fn browser(&self) -> Client {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let mut b = Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none());
        for h in [
            WIKI,
            ADMIN,
            AUTH,
            "evil.example.test",
            "x.tools.example.test",
        ] {
            b = b.resolve(h, addr);
        }
        b.build().unwrap()
    }
}

/// Two apps: wiki (every acme member; /public is open) and admin (acme/admins only), on
/// their own upstreams. `session` is appended to `[session]` (e.g. a cookie domain);
/// `extra` to the file.
pub async fn apps(session: &str, extra: &str) -> Apps {
    apps_at(AUTH, session, extra).await
}

/// [`apps`] with public_url on `public`'s host.
pub async fn apps_at(public: &str, session: &str, extra: &str) -> Apps {
    let l = Listeners::ephemeral().await.unwrap();
    let port = l.labgate.local_addr().unwrap().port();
    let echo = |host: &str| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let e = Echo::start(
            tokio::net::TcpListener::from_std(listener).unwrap(),
            EchoConfig {
                jwks_url: format!("http://127.0.0.1:{port}/oauth2/jwks.json"),
                issuer: format!("http://{public}:{port}"),
                audience: format!("http://{host}:{port}"),
                assertion_header: "x-labgate-assertion".into(),
            },
        );
        (url, e)
    };
    let (wiki_url, wiki) = echo(WIKI);
    let (admin_url, admin) = echo(ADMIN);
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://{public}:{port}"

[[upstream]]
hosts = ["{WIKI}"]
url = "{wiki_url}"

[[upstream]]
hosts = ["{ADMIN}", "*.tools.example.test"]
url = "{admin_url}"

[gitlab]
url = "{{gitlab}}"
client_id = "labgate-dev-client-id"
client_secret = "gloas-labgate-dev-secret"

[session]
cookie_secret = "ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE="
cookie_secure = false
{session}

[access]
allowed_groups = ["acme"]

[[access.public]]
hosts = ["{WIKI}"]
path = "^/public(/|$)"

[[route]]
hosts = ["{ADMIN}"]
path = "^/"
allowed_groups = ["acme/admins"]

{extra}
"#
    );
    let stack = Stack::start(l, &config, Fixture::demo(), "").await.unwrap();
    Apps {
        stack,
        port,
        wiki,
        admin,
    }
}

/// Follows redirects by hand (the jar keeps each host's cookies) through the stand-in's
/// sign-in form; returns the last response (the app's page) and the session cookies
/// labgate's callback set.
async fn sign_in_with_cookies(
    apps: &Apps,
    c: &Client,
    start: &str,
    user: &str,
) -> (reqwest::Response, Vec<String>) {
    let mut session = Vec::new();
    let mut r = c
        .get(start)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    for _ in 0..8 {
        if r.url().path() == "/oauth2/callback" {
            session = set_cookies(&r);
        }
        if r.status() != StatusCode::FOUND {
            return (r, session);
        }
        let next = absolute(&origin_of(r.url().as_str()), &location(&r));
        if next.starts_with(&apps.stack.gitlab.base_url) {
            let fields = consent_fields(
                c,
                &apps.stack.gitlab,
                &next,
                user,
                &format!("{user}-password"),
            )
            .await;
            let callback = consent_at(c, &apps.stack.gitlab, fields, false).await;
            r = c
                .get(&callback)
                .header(ACCEPT, "text/html")
                .send()
                .await
                .unwrap();
            continue;
        }
        r = c
            .get(&next)
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        // The sign-in page: follow its start link.
        if r.status() == StatusCode::OK && next.contains("/oauth2/sign_in") {
            let body = r.text().await.unwrap();
            let href = body
                .split("href=\"")
                .filter_map(|s| s.split('"').next())
                .find(|h| h.contains("/oauth2/start"))
                .unwrap()
                .replace("&amp;", "&");
            r = c
                .get(absolute(&origin_of(&next), &href))
                .send()
                .await
                .unwrap();
        }
    }
    panic!("too many redirects from {start}");
}

async fn sign_in_at(apps: &Apps, c: &Client, start: &str, user: &str) -> reqwest::Response {
    sign_in_with_cookies(apps, c, start, user).await.0
}

fn origin_of(url: &str) -> String {
    let u = reqwest::Url::parse(url).unwrap();
    u.origin().ascii_serialization()
}

async fn echo_json(c: &Client, url: &str) -> (StatusCode, serde_json::Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[tokio::test]
async fn each_host_reaches_its_own_upstream_and_an_unknown_host_none() {
    let apps = apps("", "").await;
    let c = apps.browser();
    // /public on wiki is open: the wiki's upstream answers, told the host it was chosen by.
    let (status, body) = echo_json(&c, &format!("{}/public/x", apps.url(WIKI))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["headers"]["host"][0], format!("{WIKI}:{}", apps.port));
    // The same path on admin is not public there (its rules are its own).
    let r = c
        .get(format!("{}/public/x", apps.url(ADMIN)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Spellings of one host choose one app.
    for host in [
        format!("WIKI.Example.TEST:{}", apps.port),
        format!("{WIKI}.:{}", apps.port),
        WIKI.to_owned(),
    ] {
        let r = apps.get(&host, "/public/x", "").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{host}: {r}");
    }
    // A host labgate does not serve: 421, and no upstream sees it.
    for host in [
        "evil.example.test".to_owned(),
        AUTH.to_owned(),
        "127.0.0.1".to_owned(),
        "tools.example.test".to_owned(),
        format!("{WIKI}.evil.test"),
    ] {
        let r = apps.get(&host, "/public/x", "").await;
        assert!(r.starts_with("HTTP/1.1 421"), "{host}: {r}");
    }
    // public_url's own host has no app: its home page (where a sign-in without a destination
    // lands) says so; any other path there is 421 like an unknown host.
    let r = c
        .get(format!("{}/", apps.url(AUTH)))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("no application here itself"));
    let r = c
        .get(format!("{}/x", apps.url(AUTH)))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    // A port or spelling a client writes chooses nothing and names nothing: the app is
    // told its canonical host at labgate's front door (an upstream routing by Host sees
    // the host labgate judged).
    for host in ["WIKI.Example.TEST.:1".to_owned(), WIKI.to_owned()] {
        let r = apps
            .get(&host, "/public/x", "Accept: application/json\r\n")
            .await;
        let body = r.split("\r\n\r\n").nth(1).unwrap_or("");
        let seen: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
        assert_eq!(seen["headers"]["host"][0], apps.at(WIKI), "{host}");
        assert_eq!(
            seen["headers"]["x-forwarded-host"][0],
            apps.at(WIKI),
            "{host}"
        );
    }
    // What no browser sends as a host is refused outright.
    for host in [
        format!("{WIKI}..:{}", apps.port),
        "wiki%2eexample.test".to_owned(),
        format!("{ADMIN}@{WIKI}"),
        format!("{WIKI}:0"),
    ] {
        let r = apps.get(&host, "/public/x", "").await;
        assert!(r.starts_with("HTTP/1.1 400"), "{host}: {r}");
    }
    let two = apps
        .get(WIKI, "/public/x", &format!("Host: {ADMIN}\r\n"))
        .await;
    assert!(two.starts_with("HTTP/1.1 400"), "{two}");
    // A host of a `*.` pattern is served (by the admin entry's upstream) under the global
    // rules: the admin route names admin.example.test only.
    let r = c
        .get(format!("{}/x", apps.url("x.tools.example.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A client's X-Forwarded-Host (untrusted) neither chooses the app nor reaches it.
    let r = c
        .get(format!("{}/public/y", apps.url(WIKI)))
        .header("x-forwarded-host", ADMIN)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["headers"]["x-forwarded-host"][0],
        format!("{WIKI}:{}", apps.port)
    );
    assert_eq!(
        body["headers"]["x-forwarded-host"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn one_sign_in_serves_every_app_of_the_cookie_domain_and_one_sign_out_ends_it() {
    let apps = apps("cookie_domain = \"example.test\"", "").await;
    let alice = apps.browser();
    // Not signed in at the wiki: to the sign-in on the auth host, coming back to the wiki.
    let r = alice
        .get(format!("{}/page?x=1", apps.url(WIKI)))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let to = location(&r);
    assert!(
        to.starts_with(&format!("{}/oauth2/sign_in?rd=", apps.url(AUTH))),
        "{to}"
    );
    let page = sign_in_at(
        &apps,
        &alice,
        &format!("{}/page?x=1", apps.url(WIKI)),
        "alice",
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().as_str(), format!("{}/page?x=1", apps.url(WIKI)));
    // The wiki's page, with an assertion for the wiki that the wiki's verification takes.
    let (status, wiki_seen) = echo_json(&alice, &format!("{}/whoami", apps.url(WIKI))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wiki_seen["user"], "alice");
    assert_eq!(wiki_seen["verified"]["valid"], true, "{wiki_seen}");
    assert_eq!(
        wiki_seen["verified"]["claims"]["aud"],
        apps.url(WIKI),
        "the assertion names the wiki"
    );
    // The admin app, no second sign-in; its assertion names the admin app.
    let (status, admin_seen) = echo_json(&alice, &format!("{}/whoami", apps.url(ADMIN))).await;
    assert_eq!(status, StatusCode::OK, "{admin_seen}");
    assert_eq!(admin_seen["verified"]["valid"], true, "{admin_seen}");
    assert_eq!(admin_seen["verified"]["claims"]["aud"], apps.url(ADMIN));
    // The wiki's assertion is refused by the admin app's verification, and the other way.
    let wiki_assertion = wiki_seen["assertion"].as_str().unwrap();
    let admin_assertion = admin_seen["assertion"].as_str().unwrap();
    assert!(apps.admin.verify(wiki_assertion).await.is_err());
    assert!(apps.wiki.verify(admin_assertion).await.is_err());
    assert!(apps.wiki.verify(wiki_assertion).await.is_ok());
    // docs/identity.md's PyJWT snippet, each app pinning its own origin, does the same.
    let jwks = format!("{}/oauth2/jwks.json", apps.stack.labgate_url);
    for (aud, ok) in [(apps.url(WIKI), true), (apps.url(ADMIN), false)] {
        let (j, iss, t) = (jwks.clone(), apps.url(AUTH), wiki_assertion.to_owned());
        let (verified, out) =
            tokio::task::spawn_blocking(move || crate::identity::pyjwt(&j, &iss, &aud, &t))
                .await
                .unwrap();
        assert_eq!(verified, ok, "{out}");
        if !ok {
            assert!(out.contains("InvalidAudience"), "{out}");
        }
    }

    // bob: admitted at the wiki, refused at admin by its host's rule.
    let bob = apps.browser();
    let page = sign_in_at(&apps, &bob, &format!("{}/", apps.url(WIKI)), "bob").await;
    assert_eq!(page.status(), StatusCode::OK);
    let r = bob
        .get(format!("{}/", apps.url(ADMIN)))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // One sign-out at the auth host ends the session at every app.
    let r = alice
        .post(format!("{}/oauth2/sign_out", apps.url(AUTH)))
        .header("origin", apps.url(AUTH))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for host in [WIKI, ADMIN] {
        let r = alice
            .get(format!("{}/whoami", apps.url(host)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{host}");
    }
}

#[tokio::test]
async fn without_a_cookie_domain_each_host_keeps_its_own_session() {
    let apps = apps("", "").await;
    let alice = apps.browser();
    // The sign-in stays on the wiki's host, through the wiki's own Redirect URI.
    let r = alice
        .get(format!("{}/oauth2/start?rd=%2Fhere", apps.url(WIKI)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let authorize = location(&r);
    assert!(
        authorize.contains(&urlencode(&format!("{}/oauth2/callback", apps.url(WIKI)))),
        "{authorize}"
    );
    let (page, cookies) =
        sign_in_with_cookies(&apps, &alice, &format!("{}/here", apps.url(WIKI)), "alice").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().as_str(), format!("{}/here", apps.url(WIKI)));
    assert!(
        cookies
            .iter()
            .all(|c| !c.to_ascii_lowercase().contains("domain=")),
        "host-only cookies: {cookies:?}"
    );
    // Signed in at the wiki only.
    let r = alice
        .get(format!("{}/whoami", apps.url(ADMIN)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The wiki's session cookie replayed at the admin app (a copy the wiki's app could
    // take from a forward-auth request) opens nothing there: the session is bound to its
    // host. At the wiki it works.
    let cookie = session_cookie_header(&cookies);
    for (host, want) in [(WIKI, "200"), (ADMIN, "401")] {
        let r = apps
            .get(&apps.at(host), "/whoami", &format!("Cookie: {cookie}\r\n"))
            .await;
        assert!(r.starts_with(&format!("HTTP/1.1 {want}")), "{host}: {r}");
    }
    // A copy of the wiki's cookie cannot end the wiki's session from another host's
    // sign-out (only that browser's cookies are cleared there).
    let r = apps
        .get(
            &apps.at(ADMIN),
            "/oauth2/sign_out",
            &format!("Cookie: {cookie}\r\nOrigin: {}\r\n", apps.url(ADMIN)),
        )
        .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = apps
        .get(&apps.at(WIKI), "/whoami", &format!("Cookie: {cookie}\r\n"))
        .await;
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "the wiki's session lives on: {r}"
    );
    // Admin signs in on its own host, through its own Redirect URI.
    let page = sign_in_at(&apps, &alice, &format!("{}/", apps.url(ADMIN)), "alice").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().as_str(), format!("{}/", apps.url(ADMIN)));
}

/// A many-apps configuration with `extra` appended (or `[upstream]` replaced by it).
fn many_config(upstreams: &str, extra: &str) -> String {
    format!(
        "[server]\npublic_url = \"https://auth.example.com\"\n\n{upstreams}\n\
         [gitlab]\nclient_id = \"x\"\nclient_secret = \"y\"\n\
         [session]\ncookie_secret = \"ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE=\"\n\
         [access]\nallowed_groups = [\"acme\"]\n{extra}"
    )
}

const TWO: &str = "[[upstream]]\nhosts = [\"wiki.example.com\"]\nurl = \"http://wiki:8080\"\n\n\
                   [[upstream]]\nhosts = [\"admin.example.com\", \"*.tools.example.com\"]\nurl = \"http://admin:8080\"\n";

fn problems(text: &str) -> Vec<String> {
    match labgate::config::load_str(text) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect(),
    }
}

#[test]
fn configuration_names_the_key_of_every_many_apps_mistake() {
    assert_eq!(problems(&many_config(TWO, "")), Vec::<String>::new());
    let cases: &[(&str, &str, &str)] = &[
        // Several entries, one without hosts: which app would get an unknown host?
        (
            "[[upstream]]\nhosts = [\"wiki.example.com\"]\nurl = \"http://wiki:8080\"\n[[upstream]]\nurl = \"http://b:8080\"\n",
            "",
            "upstream[1].hosts",
        ),
        (TWO, "[[route]]\nhosts = [\"https://wiki.example.com\"]\npath = \"^/\"\nallowed_users = [\"a\"]\n", "route[0].hosts[0]"),
        (TWO, "[[route]]\nhosts = [\"wiki.example.com:8443\"]\npath = \"^/\"\nallowed_users = [\"a\"]\n", "route[0].hosts[0]"),
        (TWO, "[[access.public]]\nhosts = [\"*.com\"]\npath = \"^/x\"\n", "access.public[0].hosts[0]"),
        (TWO, "[identity]\npass_access_token = true\n", "identity.pass_access_token"),
        (TWO, "[identity]\npass_authorization = true\n", "identity.pass_authorization"),
        (TWO, "[identity]\npass_access_token = [\"wiki..example.com\"]\n", "identity.pass_access_token[0]"),
        (TWO, "[identity]\naudience = \"https://wiki.example.com\"\n", "identity.audience"),
        ("[upstream]\nurll = \"http://a:1\"\n", "", "unknown key upstream.urll"),
        ("[[upstream]]\nhosts = [\"a.example.com\"]\nurll = \"http://a:1\"\n", "", "unknown key upstream"),
    ];
    for (upstreams, extra, key) in cases {
        let got = problems(&many_config(upstreams, extra));
        assert!(
            got.iter().any(|p| p.contains(key)),
            "{key} should be named for {upstreams}{extra}: {got:?}"
        );
    }
    // With a cookie domain every served host must lie within it.
    let text = many_config(TWO, "").replace(
        "[session]\n",
        "[session]\ncookie_domain = \"example.org\"\n",
    );
    let got = problems(&text);
    assert!(
        got.iter().any(|p| p.starts_with("session.cookie_domain")),
        "{got:?}"
    );
    let text = many_config(TWO, "").replace(
        "[session]\n",
        "[session]\ncookie_domain = \".example.com\"\n",
    );
    assert_eq!(problems(&text), Vec::<String>::new());
    // One app keeps what it had: true means its one app.
    let one = many_config(
        "[upstream]\nurl = \"http://a:1\"\n",
        "[identity]\npass_access_token = true\naudience = \"my-app\"\n",
    );
    assert_eq!(problems(&one), Vec::<String>::new());
    // Hosts receiving the token, from a list or from the environment's comma form.
    let c = labgate::config::load_str(&many_config(
        TWO,
        "[identity]\npass_access_token = [\"wiki.example.com\"]\n",
    ))
    .unwrap();
    assert!(c.identity.pass_access_token.to(Some("wiki.example.com")));
    assert!(!c.identity.pass_access_token.to(Some("admin.example.com")));
    assert!(!c.identity.pass_access_token.to(None));
}

#[test]
fn check_lists_each_hosts_redirect_uri() {
    let shared = labgate::config::load_str(&many_config(TWO, "").replace(
        "[session]\n",
        "[session]\ncookie_domain = \"example.com\"\n",
    ))
    .unwrap();
    let uris: Vec<String> = labgate::app::redirect_uris(&shared)
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    assert_eq!(
        uris,
        vec!["https://auth.example.com/oauth2/callback".to_owned()]
    );
    let own = labgate::config::load_str(&many_config(TWO, "")).unwrap();
    let uris: Vec<String> = labgate::app::redirect_uris(&own)
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    assert_eq!(
        uris,
        vec![
            "https://auth.example.com/oauth2/callback".to_owned(),
            "https://wiki.example.com/oauth2/callback".to_owned(),
            "https://admin.example.com/oauth2/callback".to_owned(),
            "https://<host>.tools.example.com/oauth2/callback".to_owned(),
        ]
    );
}

#[test]
fn labgate_check_prints_each_hosts_redirect_uri() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labgate.toml");
    let text = unpublished(&many_config(TWO, "")).replace(
        "client_secret = \"y\"",
        &format!("client_secret = \"{}\"", test_client_secret()),
    );
    // The admin app's route names admin but not the wildcard its upstream also serves.
    let text = text + "[[route]]\nhosts = [\"admin.example.com\"]\npath = \"^/\"\nallowed_groups = [\"acme/admins\"]\n";
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("LABGATE_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "Redirect URIs (paste each into the GitLab application, one per line):",
        "https://auth.example.com/oauth2/callback",
        "https://wiki.example.com/oauth2/callback    (wiki.example.com: its own session)",
        "https://admin.example.com/oauth2/callback",
        "each app's assertion names that app's origin as aud",
        "upstream[1] serves admin.example.com, *.tools.example.com but a [[route]] or [[access.public]] names only some of them",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
}

#[tokio::test]
async fn public_urls_own_host_keeps_its_session_to_itself_too() {
    // public_url on the wiki's host, no cookie domain: the wiki's sessions are bound too.
    let apps = apps_at(WIKI, "", "").await;
    let alice = apps.browser();
    let (page, cookies) =
        sign_in_with_cookies(&apps, &alice, &format!("{}/", apps.url(WIKI)), "alice").await;
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = session_cookie_header(&cookies);
    for (host, want) in [
        (WIKI, "200"),
        (ADMIN, "401"),
        ("x.tools.example.test", "401"),
    ] {
        let r = apps
            .get(&apps.at(host), "/whoami", &format!("Cookie: {cookie}\r\n"))
            .await;
        assert!(r.starts_with(&format!("HTTP/1.1 {want}")), "{host}: {r}");
    }
}

#[tokio::test]
async fn a_sign_in_completes_only_at_the_host_it_was_started_for() {
    let apps = apps("", "").await;
    for (start, callback_at) in [
        (WIKI, ADMIN),
        (AUTH, WIKI),
        (WIKI, AUTH),
        (WIKI, "evil.example.test"),
    ] {
        let c = apps.browser();
        let r = c
            .get(format!("{}/oauth2/start?rd=%2F", apps.url(start)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        // The flow cookie, planted at another host (a sibling can, without __Host-).
        let flow: String = set_cookies(&r)
            .iter()
            .filter_map(|c| c.split(';').next())
            .collect::<Vec<_>>()
            .join("; ");
        let fields =
            consent_fields(&c, &apps.stack.gitlab, &location(&r), "bob", "bob-password").await;
        let callback = consent_at(&c, &apps.stack.gitlab, fields, false).await;
        let query = callback.split_once('?').unwrap().1;
        let resp = apps
            .get(
                &apps.at(callback_at),
                &format!("/oauth2/callback?{query}"),
                &format!("Accept: text/html\r\nCookie: {flow}\r\n"),
            )
            .await;
        assert!(
            resp.starts_with("HTTP/1.1 400") || resp.starts_with("HTTP/1.1 421"),
            "{start} -> {callback_at}: {resp}"
        );
        assert!(
            !resp.to_ascii_lowercase().contains("set-cookie: _labgate="),
            "no session: {resp}"
        );
    }
}

#[tokio::test]
async fn labgates_pages_answer_only_at_hosts_it_serves() {
    let apps = apps("", "").await;
    for path in [
        "/oauth2/sign_in",
        "/oauth2/sign_out",
        "/oauth2/userinfo",
        "/oauth2/start",
    ] {
        let r = apps
            .get(&apps.at("evil.example.test"), path, "Accept: text/html\r\n")
            .await;
        assert!(r.starts_with("HTTP/1.1 421"), "{path}: {r}");
    }
    // Keys and probes answer at any host (a front proxy's health checks, apps' JWKS fetches).
    for path in ["/oauth2/jwks.json", "/ping"] {
        let r = apps.get("10.0.0.1", path, "").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{path}: {r}");
    }
}

#[tokio::test]
async fn each_apps_sessions_page_lists_and_ends_only_its_own_sessions() {
    let redis = crate::redis::redis_on(free_port(), &[]).await;
    let apps = apps(
        &format!(
            "store = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"",
            redis.port
        ),
        "",
    )
    .await;
    let alice = apps.browser();
    for app in [WIKI, ADMIN] {
        let page = sign_in_at(&apps, &alice, &format!("{}/", apps.url(app)), "alice").await;
        assert_eq!(page.status(), StatusCode::OK, "{app}");
    }
    let page = |host: &'static str| {
        let r = alice
            .get(format!("{}/oauth2/sessions", apps.url(host)))
            .header(ACCEPT, "text/html")
            .send();
        async move { r.await.unwrap().text().await.unwrap() }
    };
    // The wiki's page shows the wiki's session, and only how many others there are.
    let wiki = page(WIKI).await;
    assert!(wiki.contains("This browser"), "{wiki}");
    assert!(
        wiki.contains("You also have 1 session(s) at other apps"),
        "{wiki}"
    );
    assert!(!wiki.contains(ADMIN), "{wiki}");
    assert!(
        !wiki.contains(r#"name="end""#),
        "nothing else to end here: {wiki}"
    );
    // The admin app's session id (from its own page) cannot be ended from the wiki.
    let admin = page(ADMIN).await;
    assert!(
        admin.contains("You also have 1 session(s) at other apps"),
        "{admin}"
    );
    let (_, seen) = echo_json(&alice, &format!("{}/whoami", apps.url(ADMIN))).await;
    let admin_sid = seen["verified"]["claims"]["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = alice
        .post(format!("{}/oauth2/sessions", apps.url(WIKI)))
        .header("origin", apps.url(WIKI))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("end={admin_sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = alice
        .get(format!("{}/whoami", apps.url(ADMIN)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the admin app's session lives on"
    );
    // One app's "sign out everywhere" ends that app's sessions, not another's.
    assert!(wiki.contains("Sign out of this app everywhere"), "{wiki}");
    let r = alice
        .post(format!("{}/oauth2/sign_out?everywhere=1", apps.url(WIKI)))
        .header("origin", apps.url(WIKI))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for (app, want) in [(WIKI, StatusCode::UNAUTHORIZED), (ADMIN, StatusCode::OK)] {
        let r = alice
            .get(format!("{}/whoami", apps.url(app)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{app}");
    }
}
