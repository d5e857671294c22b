//! `labgate healthcheck [--ready]` (the image's HEALTHCHECK) against the real binary: 0 and
//! one line on stdout when healthy; 1 (Docker reserves 2) and one line on stderr when
//! nothing listens, when not ready, when the listener hangs, on a config error, and when
//! the TLS certificate is not the configured one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;

/// `labgate run` (a real process) on a config; SIGTERM when dropped.
pub(crate) struct Process {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Process {
    /// Starts `bin run` on `config` and waits until `port` accepts connections.
    pub(crate) async fn start(bin: &str, config: &str, port: u16) -> Process {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("labgate.toml"), config).unwrap();
        let child = std::process::Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(dir.path().join("labgate.toml"))
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap();
        wait_for_port(port).await;
        Process { child, dir }
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file it runs.
    fn config(&self) -> PathBuf {
        self.dir.path().join("labgate.toml")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A config for `labgate run` on `listen`, asking GitLab at `gitlab`.
fn config(listen: &str, public_url: &str, gitlab: &str, server: &str) -> String {
    format!(
        "[server]\nlisten = \"{listen}\"\npublic_url = \"{public_url}\"\n{server}\
         [log]\nlevel = \"error\"\n[upstream]\nurl = \"http://127.0.0.1:9\"\n\
         [gitlab]\nurl = \"{gitlab}\"\nclient_id = \"labgate-dev-client-id\"\nclient_secret = \"{}\"\n\
         [session]\ncookie_secret = \"{}\"\ncookie_secure = false\n[access]\nallowed_groups = [\"acme\"]\n",
        test_client_secret(),
        test_cookie_secret()
    )
}

/// What `labgate healthcheck` printed and its exit code.
struct Report {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Report {
    /// Healthy: exit 0, one line on stdout, nothing on stderr.
    fn healthy(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:?}");
        assert!(self.stderr.is_empty(), "{self:?}");
        one_line(&self.stdout)
    }

    /// Unhealthy: exit 1, one line on stderr, nothing on stdout.
    fn unhealthy(&self) -> &str {
        assert_eq!(self.code, Some(1), "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        one_line(&self.stderr)
    }
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}; stdout {:?}; stderr {:?}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

fn one_line(text: &str) -> &str {
    let t = text.strip_suffix('\n').unwrap_or(text);
    assert!(!t.is_empty() && !t.contains('\n'), "one line: {text:?}");
    t
}

/// Runs `labgate healthcheck ARGS --config FILE` (without blocking the runtime that serves
/// the stand-in).
async fn healthcheck(config: &Path, args: &[&str]) -> Report {
    let start = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
        .arg("healthcheck")
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("LABGATE_CONFIG")
        .output()
        .await
        .unwrap();
    Report {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

#[tokio::test]
async fn healthy_and_ready_on_an_unspecified_listen_address() {
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut fixture = labgate::dev::gitlab::Fixture::demo();
    fixture.applications[0].secret = test_client_secret().into();
    let gitlab = labgate::dev::gitlab::StandIn::start(gl, fixture, "");
    let port = free_port();
    // 0.0.0.0 is reached on loopback.
    let labgate = Process::start(
        env!("CARGO_BIN_EXE_labgate"),
        &config(
            &format!("0.0.0.0:{port}"),
            &format!("http://127.0.0.1:{port}"),
            &gitlab.base_url,
            "",
        ),
        port,
    )
    .await;
    let live = healthcheck(&labgate.config(), &[]).await;
    assert_eq!(
        live.healthy(),
        format!("healthy: http://127.0.0.1:{port}/ping answered 200 OK")
    );
    let ready = healthcheck(&labgate.config(), &["--ready"]).await;
    assert_eq!(
        ready.healthy(),
        format!("healthy: http://127.0.0.1:{port}/ready answered 200 OK")
    );
}

#[tokio::test]
async fn live_but_not_ready_while_gitlab_is_unreachable() {
    let port = free_port();
    let labgate = Process::start(
        env!("CARGO_BIN_EXE_labgate"),
        &config(
            &format!("127.0.0.1:{port}"),
            &format!("http://127.0.0.1:{port}"),
            "http://127.0.0.1:9",
            "",
        ),
        port,
    )
    .await;
    healthcheck(&labgate.config(), &[]).await.healthy();
    let r = healthcheck(&labgate.config(), &["--ready"]).await;
    assert_eq!(
        r.unhealthy(),
        format!("unhealthy: http://127.0.0.1:{port}/ready answered 503 Service Unavailable: GitLab discovery not loaded")
    );
}

#[tokio::test]
async fn unhealthy_when_nothing_listens() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labgate.toml");
    std::fs::write(
        &file,
        config(
            &format!("127.0.0.1:{port}"),
            &format!("http://127.0.0.1:{port}"),
            "http://127.0.0.1:9",
            "",
        ),
    )
    .unwrap();
    let r = healthcheck(&file, &[]).await;
    let line = r.unhealthy();
    assert!(
        line.starts_with(&format!("unhealthy: cannot connect to 127.0.0.1:{port}: ")),
        "{r:?}"
    );
    assert!(line.contains("refused"), "{r:?}");
}

#[tokio::test]
async fn unhealthy_within_the_timeouts_when_the_listener_never_answers() {
    // Connections complete in the kernel's backlog; nobody reads them.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labgate.toml");
    std::fs::write(
        &file,
        config(
            &format!("127.0.0.1:{port}"),
            &format!("http://127.0.0.1:{port}"),
            "http://127.0.0.1:9",
            "",
        ),
    )
    .unwrap();
    let r = healthcheck(&file, &[]).await;
    assert_eq!(
        r.unhealthy(),
        format!("unhealthy: http://127.0.0.1:{port}/ping: no answer within 4s")
    );
    assert!(r.took < Duration::from_secs(8), "{r:?}");
    drop(hung);
}

#[tokio::test]
async fn a_config_error_is_unhealthy_with_exit_1_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labgate.toml");
    std::fs::write(
        &file,
        config(
            "127.0.0.1:1",
            "http://127.0.0.1:1",
            "http://127.0.0.1:9",
            "listne = \"x\"\n",
        ),
    )
    .unwrap();
    let r = healthcheck(&file, &[]).await;
    let line = r.unhealthy();
    assert!(
        line.starts_with("unhealthy: configuration error: ") && line.contains("server.listne"),
        "{r:?}"
    );
}

#[tokio::test]
async fn over_tls_only_the_configured_certificate_is_accepted() {
    let ca = TestCa::new();
    let other = TestCa::with_name("another CA");
    let port = free_port();
    let tls = |cert: &Path, key: &Path| {
        format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            cert.display(),
            key.display()
        )
    };
    let labgate = Process::start(
        env!("CARGO_BIN_EXE_labgate"),
        &config(
            &format!("127.0.0.1:{port}"),
            &format!("https://127.0.0.1:{port}"),
            "http://127.0.0.1:9",
            &tls(&ca.cert, &ca.key),
        ),
        port,
    )
    .await;
    assert_eq!(
        healthcheck(&labgate.config(), &[]).await.healthy(),
        format!("healthy: https://127.0.0.1:{port}/ping answered 200 OK")
    );

    // A config naming another certificate than the one served: refused, unless --insecure
    // (towards loopback).
    let dir = tempfile::tempdir().unwrap();
    let mismatched = dir.path().join("mismatched.toml");
    std::fs::write(
        &mismatched,
        config(
            &format!("127.0.0.1:{port}"),
            &format!("https://127.0.0.1:{port}"),
            "http://127.0.0.1:9",
            &tls(&other.cert, &other.key),
        ),
    )
    .unwrap();
    let r = healthcheck(&mismatched, &[]).await;
    let line = r.unhealthy();
    assert!(
        line.starts_with(&format!(
            "unhealthy: TLS handshake with 127.0.0.1:{port} failed: "
        )) && line.contains("not the one in server.tls_cert_file"),
        "{r:?}"
    );
    healthcheck(&mismatched, &["--insecure"]).await.healthy();

    // --insecure is refused towards an address that is not loopback.
    let remote = dir.path().join("remote.toml");
    std::fs::write(
        &remote,
        config(
            "192.0.2.10:4180",
            "https://app.example.com",
            "http://127.0.0.1:9",
            &tls(&ca.cert, &ca.key),
        ),
    )
    .unwrap();
    let r = healthcheck(&remote, &["--insecure"]).await;
    assert!(
        r.unhealthy().starts_with(
            "unhealthy: --insecure skips certificate verification only towards a loopback address; 192.0.2.10:4180 is not one"
        ),
        "{r:?}"
    );
}

/// A stranger on the port cannot repaint the probe's line: whatever it answers, the line
/// carries no control characters (`\r`, ESC) and says unhealthy.
#[tokio::test]
async fn a_stranger_s_answer_cannot_repaint_the_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = fake.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = fake.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let body = "\u{1b}[2K\rhealthy: http://127.0.0.1/ping answered 200 OK\n";
            let _ = tcp
                .write_all(
                    format!(
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labgate.toml");
    std::fs::write(
        &file,
        config(
            &format!("127.0.0.1:{port}"),
            &format!("http://127.0.0.1:{port}"),
            "http://127.0.0.1:9",
            "",
        ),
    )
    .unwrap();
    let r = healthcheck(&file, &[]).await;
    let line = r.unhealthy();
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(line.starts_with("unhealthy: "), "{line:?}");
}
