//! The binary's configuration handling and process lifecycle.

use std::io::Write;
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::{free_port, start_echo, test_client_secret, test_cookie_secret};

fn labgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_labgate"));
    cmd.args(args).env_remove("LABGATE_CONFIG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LABGATE__")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run labgate")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path.display().to_string()
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/labgate.example.toml");

#[test]
fn the_example_config_checks_and_prints_the_redirect_uri() {
    // As shipped, the example's secrets are placeholders: refused, naming the key and the fix.
    let out = labgate(&["check", "--config", EXAMPLE], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("session.cookie_secret") && stderr.contains("labgate keygen"),
        "{stderr}"
    );
    // With real secrets (here from the environment, as from a Kubernetes Secret) it checks.
    let fresh = labgate::generate_cookie_secret();
    let env = [
        ("LABGATE__SESSION__COOKIE_SECRET", fresh.as_str()),
        (
            "LABGATE__GITLAB__CLIENT_SECRET",
            "gloas-0123456789abcdef0123456789abcdef",
        ),
    ];
    let out = labgate(&["check", "--config", EXAMPLE], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("https://app.example.com/oauth2/callback"),
        "{stdout}"
    );
    assert!(stdout.contains("gitlab.client_secret") && stdout.contains("<redacted>"));
    assert!(
        !stdout.contains("gloas-0123456789"),
        "secret printed: {stdout}"
    );
    assert!(!stdout.contains(&fresh), "cookie secret printed");
    let out = labgate(&["redirect-uri", "--config", EXAMPLE], &env);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "https://app.example.com/oauth2/callback"
    );
}

/// Every secret published in labgate's examples and demo configs (and typed placeholders)
/// is refused by `run` and `check` with the key named; `dev` alone runs with them.
#[test]
fn published_secrets_and_placeholders_are_refused_by_run_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let demo_cookie = "ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE=";
    let typed = "dGhpcy1pcy1ub3QtcmFuZG9tLWF0LWFsbC0zMi1ieXQ="; // "this-is-not-random-at-all-32-byt"
    let base = |cookie: &str, client: &str| {
        format!(
            "[server]\npublic_url='https://a.example'\nlisten='127.0.0.1:{}'\n[upstream]\nurl='http://127.0.0.1:1'\n\
             [gitlab]\nurl='https://gitlab.example.com'\nclient_id='x'\nclient_secret='{client}'\n\
             [session]\ncookie_secret='{cookie}'\n[access]\nallow_any_gitlab_user=true\n",
            free_port()
        )
    };
    let real_cookie = labgate::generate_cookie_secret();
    for (cookie, client, key) in [
        (demo_cookie, "gloas-real", "session.cookie_secret"),
        (typed, "gloas-real", "session.cookie_secret"),
        (
            real_cookie.as_str(),
            "gloas-labgate-dev-secret",
            "gitlab.client_secret",
        ),
        (
            real_cookie.as_str(),
            "paste-the-application-secret-here",
            "gitlab.client_secret",
        ),
    ] {
        let path = write(&dir, "c.toml", &base(cookie, client));
        for cmd in ["check", "run"] {
            let out = labgate(&[cmd, "--config", &path], &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} with {key}: {stderr}");
            assert!(stderr.contains(key), "{cmd}: {stderr}");
        }
    }
    // A list of secrets (rotation): a published one anywhere in it is refused too.
    let path = write(
        &dir,
        "c.toml",
        &base(&real_cookie, "gloas-real").replace(
            &format!("cookie_secret='{real_cookie}'"),
            &format!("cookie_secret=['{real_cookie}', '{demo_cookie}']"),
        ),
    );
    let out = labgate(&["check", "--config", &path], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("session.cookie_secret[1]"));
}

fn check_fails_naming(config: &str, env: &[(&str, &str)], key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "labgate.toml", config);
    let out = labgate(&["check", "--config", &path], env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(key), "error should name {key}: {stderr}");
}

/// The example with its placeholders filled in, as a user does after `labgate keygen`.
fn example() -> String {
    std::fs::read_to_string(EXAMPLE)
        .unwrap()
        .replace(
            "REPLACE with the output of: labgate keygen",
            test_cookie_secret(),
        )
        .replace("paste-the-application-secret-here", test_client_secret())
}

#[test]
fn config_errors_name_the_key() {
    check_fails_naming(
        &example().replace("client_secret = ", "client_secert = "),
        &[],
        "unknown key gitlab.client_secert",
    );
    check_fails_naming(
        &example().replace(test_cookie_secret(), "too-short"),
        &[],
        "session.cookie_secret must be 32 bytes, base64; generate one with `labgate keygen`",
    );
    check_fails_naming(
        &example().replace("url = \"http://127.0.0.1:8080\"", "url = \"not a url\""),
        &[],
        "upstream.url",
    );
    check_fails_naming(
        &example().replace(
            "public_url = \"https://app.example.com\"",
            "public_url = \"app.example.com\"",
        ),
        &[],
        "server.public_url",
    );
    check_fails_naming(
        &example().replace(
            &format!("client_secret = \"{}\"", test_client_secret()),
            "client_secret_file = \"/nonexistent/secret\"",
        ),
        &[],
        "gitlab.client_secret_file",
    );
    check_fails_naming(
        &example().replace("timeout = \"60s\"", "timeout = \"soon\""),
        &[],
        "upstream.timeout",
    );
    check_fails_naming(
        &example().replace("allowed_groups = [\"acme\"]", "allowed_groups = []"),
        &[],
        "no access rule is set",
    );
    check_fails_naming(
        &example().replace("[[access.public]]", "[[access.public]]\npaht = \"x\""),
        &[],
        "unknown key access.public",
    );
    check_fails_naming(
        &example(),
        &[("LABGATE__SESSION__COOKIE_SECRET", "bad")],
        "session.cookie_secret",
    );
    // labgate adds __Host- itself; a name with it would be refused by browsers.
    check_fails_naming(
        &example(),
        &[("LABGATE__SESSION__COOKIE_NAME", "__Host-app")],
        "session.cookie_name = \"__Host-app\": write it without \"__Host-\"",
    );
    // A missing file names the flag.
    let out = labgate(&["check", "--config", "/nonexistent/labgate.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn env_overrides_the_file_and_secret_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(&dir, "secret", "from-a-file\n");
    let cfg = write(
        &dir,
        "labgate.toml",
        &example().replace(
            &format!("client_secret = \"{}\"", test_client_secret()),
            &format!("client_secret_file = \"{secret}\""),
        ),
    );
    let out = labgate(
        &["check", "--config", &cfg],
        &[
            ("LABGATE__SERVER__PUBLIC_URL", "https://other.example.org"),
            ("LABGATE__ACCESS__ALLOWED_GROUPS", "a,b/c"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("https://other.example.org/oauth2/callback"));
    let out = labgate(
        &["check", "--config", &cfg, "--listen", "127.0.0.1:9999"],
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9999"));
}

#[test]
fn keygen_prints_a_cookie_secret_and_a_pem_key() {
    let out = labgate(&["keygen"], &[]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(s.contains("-----BEGIN PRIVATE KEY-----"));
    let secret = s.lines().nth(1).unwrap();
    assert_eq!(base64_len(secret), 32);
}

fn base64_len(s: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap()
        .len()
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let echo = start_echo().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        &dir,
        "labgate.toml",
        &example()
            .replace(
                "url = \"http://127.0.0.1:8080\"",
                &format!("url = \"{echo}\""),
            )
            .replace(
                "url = \"https://gitlab.com\"",
                "url = \"http://127.0.0.1:9\"",
            )
            .replace("path = \"^/healthz$\"", "path = \"^/slow$\""),
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
        .args([
            "run",
            "--config",
            &cfg,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/slow?ms=1500");
    for _ in 0..100 {
        if client
            .get(format!("http://127.0.0.1:{port}/ping"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let req =
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(
        req.await.unwrap().unwrap(),
        200,
        "the in-flight request completed"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// A TOML syntax error names the line and column, never the line itself: it may hold a
/// secret, and the message reaches terminals, CI logs and probe events.
#[test]
fn a_toml_syntax_error_never_prints_the_line_it_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let labgate_file = dir.path().join("labgate.toml");
    std::fs::write(
        &labgate_file,
        "[server]\npublic_url = \"http://x\"\n[gitlab]\nclient_secret = \"SECRET-MARK-1\n",
    )
    .unwrap();
    let o2p_file = dir.path().join("o2p.cfg");
    std::fs::write(&o2p_file, "client_secret = SECRET-MARK-2\n").unwrap();
    let runs = [
        vec!["check", "--config", labgate_file.to_str().unwrap()],
        vec!["run", "--config", labgate_file.to_str().unwrap()],
        vec!["healthcheck", "--config", labgate_file.to_str().unwrap()],
        vec![
            "migrate",
            "oauth2-proxy",
            "--config",
            o2p_file.to_str().unwrap(),
        ],
    ];
    for args in runs {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
            .args(&args)
            .env_remove("LABGATE_CONFIG")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?}: {all}");
        assert!(all.contains("line "), "{args:?}: {all}");
        assert!(
            !all.contains("SECRET-MARK"),
            "{args:?} printed the secret: {all}"
        );
    }
}

/// `labgate dev --port-base 0`, read until its banner is complete: the child, what it
/// printed, and the labgate, stand-in and echo URLs it says it serves.
async fn demo(extra: &[&str]) -> (tokio::process::Child, String, [String; 3]) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
        .args(["dev", "--port-base", "0"])
        .args(extra)
        .env_remove("LABGATE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await
    {
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    let url = |label: &str| {
        banner
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("  {label}"))?
                    .split_whitespace()
                    .next()
            })
            .unwrap_or_else(|| panic!("{label} in the banner:\n{banner}"))
            .trim_end_matches('/')
            .to_owned()
    };
    let urls = [url("Open"), url("GitLab"), url("Echo app")];
    (child, banner, urls)
}

#[tokio::test]
async fn the_demo_takes_free_ports_and_says_which() {
    // Two demos at once: each on its own ports, each serving what its banner says.
    let (mut a, banner, [labgate, gitlab, echo]) = demo(&[]).await;
    let (mut b, _, [other, ..]) = demo(&[]).await;
    assert_ne!(labgate, other);
    assert!(
        gitlab.starts_with("http://127.0.0.2:"),
        "the stand-in apart from the app: {gitlab}"
    );
    assert!(banner.contains("A demo, not production"), "{banner}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for base in [&labgate, &other] {
        let r = client
            .get(format!("{base}/"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{base}");
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.contains("/oauth2/sign_in"), "{to}");
    }
    let r = client.get(format!("{echo}/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The stand-in's sign-in page names the demo's accounts.
    let page = client
        .get(format!("{gitlab}/users/sign_in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<code>alice</code> / <code>alice-password</code>"),
        "{page}"
    );
    // No production warning in the demo (the banner says what differs).
    a.start_kill().unwrap();
    let out = a.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("signing_key_files is not set"), "{log}");
    b.start_kill().unwrap();
    let _ = b.wait().await;
}

#[test]
fn the_demo_says_what_holds_its_port_and_how_to_move() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = labgate(&["dev", "--port-base", &port], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("--port-base 0"), "{err}");
    let out = labgate(&["dev", "--listen", "127.0.0.1:5000"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port-base"));
}

/// A reload of the same file names nothing as needing a restart (the comparison is stable).
#[tokio::test]
async fn reloading_the_same_configuration_needs_no_restart() {
    let s = crate::harness::stack(&crate::harness::config_with(None, "")).await;
    let same = labgate::config::load_str(&s.config_text).unwrap();
    assert!(s.app.reload(&same).unwrap().is_empty());
    let other = labgate::config::load_str(
        &s.config_text
            .replace("app_name = ", "footer_text = \"x\"\napp_name = "),
    )
    .unwrap();
    assert_eq!(s.app.reload(&other).unwrap(), ["[server]"]);
}
