//! Observability through real HTTP: the access log of the real binary (JSON and text, to a
//! pipe and to a terminal) names the caller, their kind and address and never a credential;
//! the Prometheus metrics for requests, GitLab calls and the build exist with bounded labels
//! and move when requests and GitLab calls happen, failures included.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::sync::Arc;
use std::time::Duration;

use labgate::dev::gitlab::{Faults, Fixture, StandIn};
use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// bob's demo personal access token (config/dev-gitlab.toml).
const BOB_PAT: &str = "glpat-bob-demo-token-read-api";

/// The real `labgate run` with the demo's rules (groups, public paths, routes, CI jobs and
/// access tokens) on a free port, 127.0.0.1 trusted as a front proxy, its stderr piped.
struct Logged {
    child: std::process::Child,
    public: String,
    gitlab: Arc<StandIn>,
    _dir: tempfile::TempDir,
}

/// A failing test must not leave the binary running (it holds the test's output open).
impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo configuration for the real binary (addresses filled in, the tests' own secrets)
/// and the port it is to listen on, picked after the stand-in and the echo app have theirs.
async fn real_config(log: &str) -> (String, u16, Arc<StandIn>) {
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = start_echo().await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut fixture = Fixture::demo();
    fixture.applications[0]
        .redirect_uris
        .push(format!("{public}/oauth2/callback"));
    fixture.applications[0].secret = test_client_secret().into();
    let gitlab = StandIn::start(gl, fixture, "");
    let cfg = unpublished(&labgate::dev::config_template())
        .replace("{labgate}", &public)
        .replace("{gitlab}", &gitlab.base_url)
        .replace("{echo}", &echo)
        .replace(
            "[server]\n",
            "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        );
    (format!("{cfg}\n[log]\n{log}\n"), port, gitlab)
}

impl Logged {
    async fn start(format: &str) -> Logged {
        Self::start_at(format, "info").await
    }

    /// The binary logging at `level` (its stderr is read at [`Logged::stop`] only: a level
    /// that writes a line per request fills the pipe under load).
    async fn start_at(format: &str, level: &str) -> Logged {
        Self::start_edited(format, level, |c| c, &[]).await
    }

    /// [`Logged::start_at`] with its configuration edited and variables set.
    async fn start_edited(
        format: &str,
        level: &str,
        edit: impl FnOnce(String) -> String,
        env: &[(&str, &str)],
    ) -> Logged {
        let (cfg, port, gitlab) =
            real_config(&format!("format = \"{format}\"\nlevel = \"{level}\"")).await;
        let cfg = edit(cfg);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labgate.toml");
        std::fs::write(&path, cfg).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
            .args([
                "run",
                "--config",
                path.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env_remove("RUST_LOG")
            // Only the pipe may turn colour off.
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_port(port).await;
        Logged {
            child,
            public: format!("http://127.0.0.1:{port}"),
            gitlab,
            _dir: dir,
        }
    }

    /// SIGTERM, then every line the process wrote.
    fn stop(mut self) -> Vec<String> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let stderr = self.child.stderr.take().unwrap();
        let _ = self.child.wait();
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect()
    }
}

/// The fields of an access line (plus `id`, its request id), from either format; `None` for
/// any other line.
fn access_fields(line: &str, json: bool) -> Option<HashMap<String, String>> {
    if json {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["target"] != "labgate::access" {
            return None;
        }
        let mut m: HashMap<String, String> = v
            .as_object()?
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "span" | "timestamp" | "level" | "target"))
            .map(|(k, v)| {
                let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k.clone(), s)
            })
            .collect();
        m.insert("id".into(), v["span"]["id"].as_str()?.to_owned());
        return Some(m);
    }
    // `... INFO request{id=X}: labgate::access: request user=alice kind="user" ...`
    let (head, fields) = line.split_once(" labgate::access: request ")?;
    let id = regex::Regex::new(r"request\{id=([^}]*)\}")
        .unwrap()
        .captures(head)?[1]
        .trim_matches('"')
        .to_owned();
    let re = regex::Regex::new(r#"(\w+)=("[^"]*"|\S+)"#).unwrap();
    let mut m: HashMap<String, String> = re
        .captures_iter(fields)
        .map(|c| (c[1].to_owned(), c[2].trim_matches('"').to_owned()))
        .collect();
    m.insert("id".into(), id);
    Some(m)
}

/// The one access line of request `id`.
fn line_of<'a>(lines: &'a [HashMap<String, String>], id: &str) -> &'a HashMap<String, String> {
    let found: Vec<_> = lines.iter().filter(|l| l["id"] == id).collect();
    assert_eq!(found.len(), 1, "one access line for {id}: {lines:#?}");
    found[0]
}

/// A request `GET path` with a request id (believed: 127.0.0.1 is a trusted proxy).
fn get(c: &reqwest::Client, url: String, id: &str) -> reqwest::RequestBuilder {
    c.get(url)
        .header("x-request-id", id)
        .header(ACCEPT, "application/json")
}

/// Drives a signed-in user, a forward-auth check, a CI job, an access token, anonymous
/// callers and a path that needs escaping through the real binary logging `format`, and
/// checks every access line.
async fn access_log_in(format: &str) {
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let json = format == "json";
    let lg = Logged::start(format).await;
    let public = lg.public.clone();

    let alice = browser();
    let r = flow_parts(&alice, &public, &lg.gitlab, "alice", "/").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let cookie = session_cookie_header(&set_cookies(&r));
    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();
    let r = get(
        &alice,
        format!("{public}/x?token=secret-query"),
        "obs-alice",
    )
    .header("x-forwarded-for", "198.51.100.9, 203.0.113.7")
    .header("traceparent", TRACE)
    .header("tracestate", "vendor=1")
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let echoed: serde_json::Value = r.json().await.unwrap();
    // The trusted proxy's trace continues to the app, with labgate's span as the parent.
    let seen = echoed["headers"]["traceparent"][0].as_str().unwrap();
    assert!(seen.starts_with(&TRACE[..36]), "{seen}");
    assert!(seen.ends_with("-01") && seen.len() == 55, "{seen}");
    assert_ne!(
        &seen[36..52],
        &TRACE[36..52],
        "labgate's span is the parent: {seen}"
    );
    assert_eq!(echoed["headers"]["tracestate"][0], "vendor=1");
    let assertion = echoed["assertion"].as_str().unwrap().to_owned();
    let r = get(&alice, format!("{public}/oauth2/auth"), "obs-forward-auth")
        .header("x-forwarded-uri", "/x")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-host", "127.0.0.1")
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    let forward_auth_status = r.status().as_u16().to_string();

    let ci = lg.gitlab.ci_id_token(
        "acme/deployer",
        "main",
        true,
        &public,
        &serde_json::json!({}),
    );
    let r = get(&plain(), format!("{public}/deploy"), "obs-ci")
        .header(AUTHORIZATION, format!("Bearer {ci}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = get(&plain(), format!("{public}/x"), "obs-pat")
        .header(AUTHORIZATION, format!("Bearer {BOB_PAT}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = get(
        &plain(),
        format!("{public}/public/x?code=secret-code"),
        "obs-public",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = get(&plain(), format!("{public}/x"), "obs-anonymous")
        .header(COOKIE, "_labgate=forged-cookie-value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A quote and a space in the request target (hyper takes both) must not break the line.
    let mut tcp = tokio::net::TcpStream::connect(public.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.write_all(
        b"GET /public/a\"b%20c?x=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: obs-escape\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let lines = lg.stop();
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "no ANSI escape when stderr is a pipe: {lines:#?}"
    );
    for secret in [
        cookie_value.as_str(),
        ci.as_str(),
        BOB_PAT,
        assertion.as_str(),
        "forged-cookie-value",
        "secret-query",
        "secret-code",
        test_client_secret(),
        test_cookie_secret(),
    ] {
        for l in &lines {
            assert!(!l.contains(secret), "a credential reached the log: {l}");
        }
    }
    let access: Vec<_> = lines
        .iter()
        .filter_map(|l| access_fields(l, json))
        .collect();

    let l = line_of(&access, "obs-alice");
    for (k, v) in [
        ("user", "alice"),
        ("kind", "user"),
        ("client", "203.0.113.7"),
        ("method", "GET"),
        ("path", "/x"),
        ("status", "200"),
        ("route", "app"),
    ] {
        assert_eq!(l.get(k).map(String::as_str), Some(v), "{k} in {l:?}");
    }
    assert!(l["ms"].parse::<f64>().unwrap() >= 0.0, "{l:?}");
    assert_eq!(l["trace_id"], TRACE[3..35], "{l:?}");
    assert!(l["upstream_ms"].parse::<f64>().unwrap() <= l["ms"].parse::<f64>().unwrap());

    let l = line_of(&access, "obs-forward-auth");
    assert_eq!(
        (&*l["user"], &*l["kind"], &*l["route"], &*l["status"]),
        (
            "alice",
            "user",
            "forward_auth",
            forward_auth_status.as_str()
        ),
        "{l:?}"
    );
    let l = line_of(&access, "obs-ci");
    assert_eq!(
        (&*l["user"], &*l["kind"], &*l["path"], &*l["status"]),
        ("ci:acme/deployer", "ci_job", "/deploy", "200"),
        "{l:?}"
    );
    assert_eq!(l["client"], "127.0.0.1", "no X-Forwarded-For: the peer");
    // No trace given: one started, named in the line.
    assert!(
        l["trace_id"].len() == 32 && l["trace_id"] != TRACE[3..35],
        "{l:?}"
    );
    let l = line_of(&access, "obs-pat");
    assert_eq!((&*l["user"], &*l["kind"]), ("bob", "user_token"), "{l:?}");
    for id in ["obs-public", "obs-anonymous"] {
        let l = line_of(&access, id);
        assert_eq!(l["kind"], "anonymous", "{l:?}");
        assert!(!l.contains_key("user"), "{l:?}");
    }
    assert_eq!(line_of(&access, "obs-anonymous")["status"], "401");
    assert_eq!(line_of(&access, "obs-anonymous")["cause"], "client");
    assert_eq!(line_of(&access, "obs-public")["path"], "/public/x");
    assert_eq!(line_of(&access, "obs-escape")["path"], "/public/a%22b%20c");
    // The sign-in itself: labgate's own endpoints, before anyone is known.
    assert!(
        access
            .iter()
            .any(|l| l["path"] == "/oauth2/callback" && l["route"] == "labgate"),
        "{access:#?}"
    );
}

#[tokio::test]
async fn json_access_lines_name_the_caller_and_no_credential() {
    access_log_in("json").await;
}

#[tokio::test]
async fn text_access_lines_name_the_caller_and_no_credential() {
    access_log_in("text").await;
}

/// What the real binary writes to a terminal (a pty from `script`) while serving one
/// request for about two seconds, with `NO_COLOR` as given.
async fn on_a_terminal(no_color: Option<&str>) -> String {
    let (cfg, port, _gitlab) = real_config("level = \"info\"").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labgate.toml");
    std::fs::write(&path, cfg).unwrap();
    let command = format!(
        "timeout -s TERM 2 {} run --config {} --listen 127.0.0.1:{port}",
        env!("CARGO_BIN_EXE_labgate"),
        path.display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &command, "/dev/null"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    match no_color {
        Some(v) => cmd.env("NO_COLOR", v),
        None => cmd.env_remove("NO_COLOR"),
    };
    let mut child = cmd
        .spawn()
        .expect("util-linux `script` gives the binary a terminal");
    wait_for_port(port).await;
    let r = plain()
        .get(format!("http://127.0.0.1:{port}/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    assert!(
        out.contains("labgate::access"),
        "the access line reached the terminal: {out}"
    );
    out
}

#[tokio::test]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    let coloured = on_a_terminal(None).await;
    assert!(
        coloured.contains("\u{1b}["),
        "a terminal gets colour: {coloured}"
    );
    let plain_text = on_a_terminal(Some("1")).await;
    assert!(
        !plain_text.contains('\u{1b}'),
        "NO_COLOR=1 turns colour off: {plain_text}"
    );
}

/// Every sample of a Prometheus text exposition, by `name{labels}`.
fn samples(text: &str) -> HashMap<String, f64> {
    let re = regex::Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) (\S+)$").unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let c = re
                .captures(l)
                .unwrap_or_else(|| panic!("not a sample line: {l:?}"));
            (c[1].to_owned(), c[3].parse().unwrap_or(f64::NAN))
        })
        .collect()
}

async fn scrape(url: &str) -> (String, HashMap<String, f64>) {
    let text = plain()
        .get(format!("{url}/oauth2/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let s = samples(&text);
    (text, s)
}

/// How much sample `name` grew between two scrapes (absent counts as 0).
fn grew(before: &HashMap<String, f64>, after: &HashMap<String, f64>, name: &str) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn request_and_gitlab_metrics_move_with_bounded_labels() {
    let cfg = config_with(None, "")
        .replace("[server]\n", "[server]\nmetrics_public = true\n")
        .replace("[gitlab]\n", "[gitlab]\ntimeout = \"1s\"\n");
    let s = stack(&cfg).await;
    let m0 = scrape(&s.labgate_url).await.1;

    // A sign-in: code exchange, ID-token keys, userinfo; then one request of each kind.
    let c = signed_in(&s, "alice").await;
    let (m1, mut requests) = (scrape(&s.labgate_url).await.1, 0);
    for (endpoint, calls) in [("token", 1.0), ("userinfo", 1.0)] {
        let n = format!(r#"labgate_gitlab_requests_total{{endpoint="{endpoint}",outcome="ok"}}"#);
        assert_eq!(grew(&m0, &m1, &n), calls, "{n}");
    }
    for endpoint in ["discovery", "jwks", "token", "userinfo"] {
        let n =
            format!(r#"labgate_gitlab_request_duration_seconds_count{{endpoint="{endpoint}"}}"#);
        assert!(m1.get(&n).copied().unwrap_or(0.0) >= 1.0, "{n}");
    }
    assert_eq!(
        get_json(&c, &format!("{}/page", s.labgate_url)).await.0,
        200
    );
    requests += 1;
    let token = s.gitlab.ci_id_token(
        "acme/deployer",
        "main",
        true,
        &s.labgate_url,
        &serde_json::json!({}),
    );
    let r = plain()
        .get(format!("{}/deploy", s.labgate_url))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = plain()
        .get(format!("{}/x", s.labgate_url))
        .header(AUTHORIZATION, format!("Bearer {BOB_PAT}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        plain()
            .get(format!("{}/ping", s.labgate_url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (text, m2) = scrape(&s.labgate_url).await;
    for family in [
        "# TYPE labgate_request_duration_seconds histogram",
        "# TYPE labgate_gitlab_requests counter",
        "# TYPE labgate_gitlab_request_duration_seconds histogram",
        "# TYPE labgate_build_info gauge",
    ] {
        assert!(text.contains(family), "{family} in {text}");
    }
    for (kind, route, n) in [
        ("user", "app", f64::from(requests)),
        ("ci_job", "app", 1.0),
        ("user_token", "app", 1.0),
        ("anonymous", "probe", 1.0),
    ] {
        let name =
            format!(r#"labgate_request_duration_seconds_count{{kind="{kind}",route="{route}"}}"#);
        assert_eq!(grew(&m1, &m2, &name), n, "{name}");
    }
    for endpoint in ["token_self", "user", "groups"] {
        let n = format!(r#"labgate_gitlab_requests_total{{endpoint="{endpoint}",outcome="ok"}}"#);
        assert_eq!(
            grew(&m1, &m2, &n),
            1.0,
            "an access token is looked up once: {n}"
        );
    }

    // GitLab failing: userinfo answers 500 during a sign-in, then GitLab is too slow for
    // gitlab.timeout while an access token is looked up.
    s.gitlab.set_faults(Faults {
        failing_paths: vec!["/oauth/userinfo".into()],
        ..Faults::default()
    });
    let r = flow(&browser(), &s, "bob", "/").await;
    assert_ne!(r.status(), StatusCode::FOUND, "the sign-in fails");
    s.gitlab.set_faults(Faults {
        latency: Some(Duration::from_millis(1500)),
        ..Faults::default()
    });
    // A token labgate has not seen (and so not cached) yet.
    let fresh = format!("glpat-{}", labgate::random_token(16));
    s.gitlab.with_fixture(|f| {
        let bob = f.users.iter_mut().find(|u| u.username == "bob").unwrap();
        bob.personal_access_tokens
            .push(labgate::dev::gitlab::PersonalAccessToken {
                token: fresh.clone(),
                scopes: vec!["read_api".into()],
            });
    });
    let r = plain()
        .get(format!("{}/y", s.labgate_url))
        .header(AUTHORIZATION, format!("Bearer {fresh}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    s.gitlab.set_faults(Faults::default());
    let (text, m3) = scrape(&s.labgate_url).await;
    for (endpoint, outcome) in [("userinfo", "server_error"), ("token_self", "timeout")] {
        let n = format!(
            r#"labgate_gitlab_requests_total{{endpoint="{endpoint}",outcome="{outcome}"}}"#
        );
        assert_eq!(grew(&m2, &m3, &n), 1.0, "{n} in {text}");
    }

    // Labels come from fixed sets: no URL, id or path ever becomes a series.
    let endpoints = [
        "discovery",
        "jwks",
        "token",
        "revocation",
        "userinfo",
        "user",
        "token_self",
        "groups",
        "projects",
    ];
    let outcomes = [
        "ok",
        "client_error",
        "rate_limited",
        "server_error",
        "unexpected_status",
        "timeout",
        "unreachable",
    ];
    let label = regex::Regex::new(r#"(\w+)="([^"]*)""#).unwrap();
    for name in m3.keys().filter(|n| n.starts_with("labgate_gitlab_")) {
        for c in label.captures_iter(name) {
            match &c[1] {
                "endpoint" => assert!(endpoints.contains(&&c[2]), "{name}"),
                "outcome" => assert!(outcomes.contains(&&c[2]), "{name}"),
                "le" => {}
                other => panic!("unexpected label {other} in {name}"),
            }
        }
    }
    for name in m3
        .keys()
        .filter(|n| n.starts_with("labgate_request_duration_seconds"))
    {
        for c in label.captures_iter(name) {
            match &c[1] {
                "kind" => assert!(
                    ["user", "ci_job", "user_token", "anonymous"].contains(&&c[2]),
                    "{name}"
                ),
                "route" => assert!(
                    ["app", "forward_auth", "labgate", "probe"].contains(&&c[2]),
                    "{name}"
                ),
                "le" => {}
                other => panic!("unexpected label {other} in {name}"),
            }
        }
    }
}

#[tokio::test]
async fn build_info_names_the_version_and_the_commit() {
    let s =
        stack(&config_with(None, "").replace("[server]\n", "[server]\nmetrics_public = true\n"))
            .await;
    let (text, m) = scrape(&s.labgate_url).await;
    let commit = labgate::metrics::BUILD_COMMIT;
    let name = format!(
        r#"labgate_build_info{{version="{}",commit="{commit}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.get(&name), Some(&1.0), "{name} in {text}");
    let info: Vec<_> = m
        .keys()
        .filter(|k| k.starts_with("labgate_build_info"))
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    // Built from this checkout: the commit is git's (unless the build pinned another).
    if std::env::var_os("LABGATE_BUILD_COMMIT").is_none() {
        let head = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        match head {
            Some(head) => assert_eq!(commit, head),
            None => assert_eq!(commit, "unknown"),
        }
    }
}

#[tokio::test]
async fn process_metrics_beside_labgates_own() {
    let s =
        stack(&config_with(None, "").replace("[server]\n", "[server]\nmetrics_public = true\n"))
            .await;
    let (text, m) = scrape(&s.labgate_url).await;
    for (name, kind) in [
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("process_threads", "gauge"),
        ("process_cpu_seconds", "counter"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}")),
            "{name} in {text}"
        );
    }
    let rss = m["process_resident_memory_bytes"];
    assert!(rss > 1_000_000.0 && rss < 4e9, "{rss}");
    assert!(m["process_open_fds"] >= 3.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = m["process_start_time_seconds"];
    assert!(start <= now && start > now - 86_400.0, "{start}");
    assert!(m["process_cpu_seconds_total"] > 0.0);
    // labgate's own keep their prefix.
    assert!(text.contains("# TYPE labgate_build_info gauge"));
}

#[tokio::test]
async fn a_trace_continues_from_a_trusted_proxy_to_the_app_and_gitlab_and_never_from_a_client() {
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let trace_of = |v: &serde_json::Value| {
        v["headers"]["traceparent"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let get = |base: String, cookie: String| async move {
        let r = plain()
            .get(format!("{base}/x"))
            .header(COOKIE, cookie)
            .header("accept", "application/json")
            .header("traceparent", TRACE)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<serde_json::Value>().await.unwrap()
    };
    // From a client (no trusted_proxies): its trace is not taken; one is started.
    let s = stack(&config_with(None, "")).await;
    let bob = flow(&browser(), &s, "bob", "/").await;
    let cookie = session_cookie_header(&set_cookies(&bob));
    let seen = trace_of(&get(s.labgate_url.clone(), cookie).await);
    assert_eq!(seen.len(), 55, "{seen}");
    assert!(!seen.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{seen}");
    // From a trusted proxy: continued to the app, and to GitLab while revalidating.
    let s = stack(&config_with(None, "").replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    ))
    .await;
    let bob = flow(&browser(), &s, "bob", "/").await;
    let cookie = session_cookie_header(&set_cookies(&bob));
    s.gitlab.counters.traceparents.lock().unwrap().clear();
    s.app.clock.advance(3600);
    let seen = trace_of(&get(s.labgate_url.clone(), cookie).await);
    assert!(seen.starts_with(&TRACE[..36]), "{seen}");
    let at_gitlab = s.gitlab.counters.traceparents.lock().unwrap().clone();
    assert!(
        !at_gitlab.is_empty(),
        "the revalidation's GitLab calls carry the trace"
    );
    for t in &at_gitlab {
        assert!(t.starts_with(&TRACE[..36]), "{t}");
        assert_ne!(
            &t[36..52],
            &TRACE[36..52],
            "labgate's span is the parent: {t}"
        );
    }
}

#[tokio::test]
async fn the_configuration_reloads_on_sighup_and_when_its_file_changes() {
    let lg = Logged::start_at("json", "warn").await;
    let public = lg.public.clone();
    let file = lg._dir.path().join("labgate.toml");
    let original = std::fs::read_to_string(&file).unwrap().replace(
        "level = \"warn\"",
        "level = \"warn,labgate::server::reload=info\"",
    );
    std::fs::write(&file, &original).unwrap();
    let cookie = |user: &'static str| {
        let public = public.clone();
        let gitlab = lg.gitlab.clone();
        async move {
            let c = browser();
            let r = flow_parts(&c, &public, &gitlab, user, "/").await;
            assert_eq!(r.status(), StatusCode::FOUND, "{user} signs in");
            session_cookie_header(&set_cookies(&r))
        }
    };
    let (alice, bob) = (cookie("alice").await, cookie("bob").await);
    let status = |c: &str| {
        let req = plain()
            .get(format!("{public}/x"))
            .header(COOKIE, c.to_owned())
            .header("accept", "application/json")
            .send();
        async move { req.await.unwrap().status() }
    };
    let until = |c: String, want: StatusCode| {
        let status = &status;
        async move {
            for _ in 0..100 {
                if status(&c).await == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("still not {want}");
        }
    };
    assert_eq!(status(&bob).await, StatusCode::OK);
    // Only acme/admins from now on, on SIGHUP: bob is refused, alice is not; requests
    // meanwhile are answered by the old policy or the new one, never failed.
    let admins = original.replace(
        "allowed_groups = [\"acme\"]",
        "allowed_groups = [\"acme/admins\"]",
    );
    assert_ne!(admins, original);
    std::fs::write(&file, &admins).unwrap();
    let pid = lg.child.id().to_string();
    let load = {
        let (alice, bob) = (alice.clone(), bob.clone());
        let public = public.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..200 {
                let c = if i % 2 == 0 { &alice } else { &bob };
                let r = plain()
                    .get(format!("{public}/x"))
                    .header(COOKIE, c)
                    .header("accept", "application/json")
                    .send()
                    .await
                    .unwrap();
                seen.push(r.status().as_u16());
            }
            seen
        })
    };
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    until(bob.clone(), StatusCode::FORBIDDEN).await;
    assert_eq!(status(&alice).await, StatusCode::OK);
    let seen = load.await.unwrap();
    assert!(seen.iter().all(|s| *s == 200 || *s == 403), "{seen:?}");
    // A broken file is refused: the policy in force stays.
    std::fs::write(
        &file,
        admins.replace("[access]", "[access]\nallowed_grups = [\"x\"]"),
    )
    .unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&bob).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&alice).await, StatusCode::OK);
    // Without a signal: the file's new content is noticed (as a ConfigMap update).
    std::fs::write(&file, &original).unwrap();
    until(bob.clone(), StatusCode::OK).await;
    // A change that needs a restart is named, and the rest applies.
    std::fs::write(
        &file,
        original.replace("app_name = ", "footer_text = \"x\"\napp_name = "),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let lines = lg.stop().join("\n");
    assert!(lines.contains("configuration reload refused"), "{lines}");
    assert!(
        lines.contains("access.allowed_grups"),
        "the error names the key: {lines}"
    );
    assert!(lines.contains("needs_restart"), "{lines}");
    assert!(lines.contains("[server]"), "{lines}");
}

/// An OTLP/HTTP collector for one test: every span of every `POST /v1/traces` (protobuf),
/// with the service name of its resource.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<std::sync::Mutex<Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)>>>,
}

impl Collector {
    /// Listens on a free port; returns its base URL.
    async fn start(&self) -> String {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let spans = self.spans.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let spans = spans.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let spans = spans.clone();
                        async move {
                            use http_body_util::BodyExt;
                            use prost::Message;
                            assert_eq!(req.uri().path(), "/v1/traces");
                            assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let export = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body).unwrap();
                            for rs in export.resource_spans {
                                let service = rs
                                    .resource
                                    .iter()
                                    .flat_map(|r| r.attributes.iter())
                                    .find(|a| a.key == "service.name")
                                    .and_then(|a| a.value.as_ref())
                                    .map(|v| format!("{:?}", v.value))
                                    .unwrap_or_default();
                                for ss in rs.scope_spans {
                                    for span in ss.spans {
                                        spans.lock().unwrap().push((service.clone(), span));
                                    }
                                }
                            }
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/x-protobuf")
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        base
    }

    /// The spans of trace `trace_id` (hex) received so far.
    fn of(&self, trace_id: &str) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace_id)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Waits (up to 10 s) until trace `trace_id` has a span named `name`.
    async fn wait_for(
        &self,
        trace_id: &str,
        name: &str,
    ) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        for _ in 0..200 {
            let spans = self.of(trace_id);
            if spans.iter().any(|s| s.name == name) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no {name} span of {trace_id} exported: {:?}",
            self.spans.lock().unwrap()
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn spans_are_exported_over_otlp_in_the_trace_the_front_proxy_and_the_app_share() {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PROXY_SPAN: &str = "00f067aa0ba902b7";
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let lg = Logged::start_edited(
        "json",
        "warn",
        |c| {
            c.replace("revalidate = \"1m\"", "revalidate = \"1s\"")
                + &format!("\n[tracing]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"labgate-test\"\n")
        },
        // Batches every 100 ms rather than every 5 s.
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let c = browser();
    let r = flow_parts(&c, &lg.public, &lg.gitlab, "bob", "/").await;
    assert_eq!(r.status(), StatusCode::FOUND, "bob signs in");
    // The session is due for revalidation after a second.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = c
        .get(format!("{}/x", lg.public))
        .header(ACCEPT, "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{PROXY_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let echoed: serde_json::Value = r.json().await.unwrap();
    let at_app = echoed["headers"]["traceparent"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let spans = collector.wait_for(TRACE_ID, "request").await;
    let named = |name: &str| -> Vec<&opentelemetry_proto::tonic::trace::v1::Span> {
        spans.iter().filter(|s| s.name == name).collect()
    };
    // The request: a server span whose parent is the front proxy's.
    let [request] = named("request")[..] else {
        panic!("{spans:?}")
    };
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(hex(&request.parent_span_id), PROXY_SPAN);
    let attr = |s: &opentelemetry_proto::tonic::trace::v1::Span, k: &str| {
        s.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default()
    };
    assert!(
        attr(request, "http.response.status_code").contains("200"),
        "{request:?}"
    );
    assert!(attr(request, "http.request.method").contains("GET"));
    let request_id = hex(&request.span_id);
    // Within it: authenticate, which revalidated, which asked GitLab.
    let [authenticate] = named("authenticate")[..] else {
        panic!("{spans:?}")
    };
    assert_eq!(hex(&authenticate.parent_span_id), request_id);
    let [revalidate] = named("revalidate")[..] else {
        panic!("{spans:?}")
    };
    assert_eq!(hex(&revalidate.parent_span_id), hex(&authenticate.span_id));
    let gitlab = named("gitlab");
    assert!(
        gitlab.len() >= 2,
        "the refresh and the user's reload: {spans:?}"
    );
    for g in &gitlab {
        assert_eq!(g.kind, SpanKind::Client as i32);
        assert_eq!(hex(&g.parent_span_id), hex(&revalidate.span_id));
        assert!(g.start_time_unix_nano >= revalidate.start_time_unix_nano);
        assert!(g.end_time_unix_nano <= revalidate.end_time_unix_nano);
    }
    assert!(
        gitlab
            .iter()
            .any(|g| attr(g, "labgate.gitlab.endpoint").contains("token")),
        "{gitlab:?}"
    );
    // GitLab saw each call's span as its parent.
    let at_gitlab = lg.gitlab.counters.traceparents.lock().unwrap().clone();
    for g in &gitlab {
        let expected = format!("00-{TRACE_ID}-{}-01", hex(&g.span_id));
        assert!(at_gitlab.contains(&expected), "{expected} in {at_gitlab:?}");
    }
    // The upstream call: a client span, and the app's parent.
    let [upstream] = named("upstream")[..] else {
        panic!("{spans:?}")
    };
    assert_eq!(upstream.kind, SpanKind::Client as i32);
    assert_eq!(hex(&upstream.parent_span_id), request_id);
    assert_eq!(
        at_app,
        format!("00-{TRACE_ID}-{}-01", hex(&upstream.span_id))
    );
    assert!(request.start_time_unix_nano <= upstream.start_time_unix_nano);
    assert!(request.end_time_unix_nano >= upstream.end_time_unix_nano);
    // The resource names the service.
    assert!(collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .all(|(service, _)| service.contains("labgate-test")));

    // A trace the front proxy did not sample is not recorded (and stays unsampled).
    const UNSAMPLED: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
    let r = c
        .get(format!("{}/x", lg.public))
        .header(ACCEPT, "application/json")
        .header("traceparent", format!("00-{UNSAMPLED}-{PROXY_SPAN}-00"))
        .send()
        .await
        .unwrap();
    let echoed: serde_json::Value = r.json().await.unwrap();
    assert!(echoed["headers"]["traceparent"][0]
        .as_str()
        .unwrap()
        .ends_with("-00"));
    // A sampled request after it: once its spans are in, the unsampled one's would be too.
    const LATER: &str = "6bf92f3577b34da6a3ce929d0e0e4736";
    c.get(format!("{}/x", lg.public))
        .header("traceparent", format!("00-{LATER}-{PROXY_SPAN}-01"))
        .send()
        .await
        .unwrap();
    collector.wait_for(LATER, "request").await;
    assert!(collector.of(UNSAMPLED).is_empty());
    // A method of the client's own is `_OTHER` in the span, not its text.
    const ODD: &str = "8bf92f3577b34da6a3ce929d0e0e4736";
    c.request(
        reqwest::Method::from_bytes(b"SMUGGLED-TEXT").unwrap(),
        format!("{}/x", lg.public),
    )
    .header("traceparent", format!("00-{ODD}-{PROXY_SPAN}-01"))
    .send()
    .await
    .unwrap();
    let odd = collector.wait_for(ODD, "request").await;
    let odd = odd.iter().find(|s| s.name == "request").unwrap();
    assert!(
        attr(odd, "http.request.method").contains("_OTHER"),
        "{odd:?}"
    );
    // The spans queued at shutdown are sent before labgate exits.
    const LAST: &str = "7bf92f3577b34da6a3ce929d0e0e4736";
    c.get(format!("{}/x", lg.public))
        .header("traceparent", format!("00-{LAST}-{PROXY_SPAN}-01"))
        .send()
        .await
        .unwrap();
    // (The collector answers on this test's runtime while the process stops.)
    let lines = tokio::task::spawn_blocking(move || lg.stop())
        .await
        .unwrap();
    assert!(!collector.of(LAST).is_empty(), "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains("spans")),
        "every span was exported: {lines:?}"
    );
}

#[test]
fn tracing_settings_are_checked_and_name_their_key() {
    let base = unpublished(&labgate::dev::config_template())
        .replace("{labgate}", "http://127.0.0.1:4180")
        .replace("{gitlab}", "http://127.0.0.1:4181")
        .replace("{echo}", "http://127.0.0.1:4182");
    let load = |tracing: &str| {
        labgate::config::load_text(
            &format!("{base}\n[tracing]\n{tracing}\n"),
            Vec::<(String, String)>::new(),
            &Default::default(),
        )
    };
    // Off by default; the endpoint is the collector's, spans go to its /v1/traces.
    let off = load("").unwrap();
    assert!(off.tracing.otlp_endpoint.is_none());
    assert_eq!(off.tracing.sample_ratio, 1.0);
    for (given, used) in [
        (
            "http://otel-collector:4318",
            "http://otel-collector:4318/v1/traces",
        ),
        (
            "https://otel.example.com/otlp/",
            "https://otel.example.com/otlp/v1/traces",
        ),
        (
            "http://otel-collector:4318/v1/traces",
            "http://otel-collector:4318/v1/traces",
        ),
    ] {
        let c = load(&format!("otlp_endpoint = {given:?}")).unwrap();
        assert_eq!(c.tracing.otlp_endpoint.unwrap().as_str(), used);
    }
    for (bad, key) in [
        (
            "otlp_endpoint = \"otel-collector:4318\"",
            "tracing.otlp_endpoint",
        ),
        (
            "otlp_endpoint = \"grpc://otel:4317\"",
            "tracing.otlp_endpoint",
        ),
        ("sample_ratio = 1.5", "tracing.sample_ratio"),
        ("sample_ratio = -0.1", "tracing.sample_ratio"),
        ("service_name = \" \"", "tracing.service_name"),
        ("otlp_endpont = \"http://x\"", "tracing"),
        (
            "otlp_endpoint = \"http://user:secret@otel:4318\"",
            "tracing.otlp_endpoint",
        ),
    ] {
        let e = load(bad).unwrap_err();
        assert!(
            e.problems.iter().any(|p| p.key.starts_with(key)),
            "{bad}: {e}"
        );
    }
}

/// An upstream that answers every request with `name` (and keeps connections alive).
async fn named_upstream(name: &'static str) -> String {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(
                    move |_req: hyper::Request<hyper::body::Incoming>| async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(name.as_bytes())),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    base
}

#[tokio::test]
async fn a_reload_moves_the_app_to_its_new_address_under_load_without_a_failed_request() {
    let (blue, green) = (named_upstream("blue").await, named_upstream("green").await);
    let lg = Logged::start_edited(
        "json",
        "warn,labgate::server::reload=info",
        // A public path: the load needs no session.
        |c| {
            let url = regex::Regex::new(r#"(?m)^url = "http://127\.0\.0\.1:\d+""#).unwrap();
            url.replace(&c, format!("url = \"{blue}\"").as_str())
                .into_owned()
        },
        &[],
    )
    .await;
    let file = lg._dir.path().join("labgate.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    assert!(original.contains(&blue), "{original}");
    let public = lg.public.clone();
    let body = |path: &'static str| {
        let public = public.clone();
        async move {
            let r = plain().get(format!("{public}{path}")).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    // The demo's public path.
    assert_eq!(body("/public/x").await, (StatusCode::OK, "blue".to_owned()));
    let load = {
        let public = public.clone();
        tokio::spawn(async move {
            let c = plain();
            let mut seen = Vec::new();
            for _ in 0..300 {
                let r = c.get(format!("{public}/public/x")).send().await.unwrap();
                seen.push((r.status().as_u16(), r.text().await.unwrap()));
            }
            seen
        })
    };
    // The app moved (with a longer timeout): the file changes, as a ConfigMap update.
    std::fs::write(
        &file,
        original
            .replace(&blue, &green)
            .replacen("timeout = \"30s\"", "timeout = \"90s\"", 1),
    )
    .unwrap();
    let mut moved = false;
    for _ in 0..100 {
        if body("/public/x").await.1 == "green" {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(moved, "the app is served from its new address");
    let seen = load.await.unwrap();
    assert!(
        seen.iter()
            .all(|(s, b)| *s == 200 && (b == "blue" || b == "green")),
        "{seen:?}"
    );
    // Requests before the swap went to the old address, after it to the new one only.
    let first_green = seen.iter().position(|(_, b)| b == "green");
    if let Some(i) = first_green {
        assert!(seen[i..].iter().all(|(_, b)| b == "green"), "{seen:?}");
    }
    // Serving another host list is a restart: the whole reload is refused (new rules with
    // the old apps would judge one app's requests by another's rules), the running stays.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replacen("[upstream]\n", "[upstream]\nhosts = [\"127.0.0.1\"]\n", 1)
            .replace(&green, &blue),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(body("/public/x").await.1, "green");
    let lines = tokio::task::spawn_blocking(move || lg.stop())
        .await
        .unwrap()
        .join("\n");
    assert!(
        lines.contains("upstreams and log level in force"),
        "{lines}"
    );
    assert!(
        lines.contains("configuration reload refused")
            && lines.contains("which hosts labgate serves changed"),
        "{lines}"
    );
}
