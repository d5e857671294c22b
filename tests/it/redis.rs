//! The Redis session store with real redis-server processes: replicas sharing sessions,
//! sign-out everywhere, fail closed while Redis is down, a 3-master Redis Cluster, and
//! single-flight revalidation across replicas.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::header::{ACCEPT, COOKIE};
use reqwest::StatusCode;

use crate::harness::*;

pub(crate) struct Redis {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn redis_on(port: u16, extra: &[&str]) -> Redis {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is needed for this test: scripts/test installs it (apt-get install redis-server)");
    wait_for_port(port).await;
    Redis {
        child,
        port,
        _dir: dir,
    }
}

/// `redis-server CONF` (a Sentinel with `sentinel`) listening on `port`; killed when
/// dropped, also when an assertion fails. The caller keeps CONF's directory.
async fn redis_with_conf(conf: &std::path::Path, port: u16, sentinel: bool) -> Redis {
    let mut cmd = Command::new("redis-server");
    cmd.arg(conf);
    if sentinel {
        cmd.arg("--sentinel");
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    wait_for_port(port).await;
    Redis {
        child,
        port,
        _dir: tempfile::tempdir().unwrap(),
    }
}

/// What labgate's `/ready` answers.
async fn ready(base: &str) -> StatusCode {
    plain()
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap()
        .status()
}

pub(crate) fn key_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing.pem");
    std::fs::write(&path, labgate::identity::generate_es256_pem()).unwrap();
    let p = path.display().to_string();
    (dir, p)
}

/// A stack of the demo on a fresh redis-server; `session_extra` goes into [session] after
/// its `redis_url`. Keep the server and the key's directory as long as the stack.
pub(crate) async fn redis_stack(
    session_extra: &str,
) -> (Redis, tempfile::TempDir, labgate::dev::Stack) {
    let redis = redis_on(free_port(), &[]).await;
    let (dir, key) = key_file();
    let s = stack(&redis_config(
        &format!(
            "redis_url = \"redis://127.0.0.1:{}\"\n{session_extra}",
            redis.port
        ),
        &key,
    ))
    .await;
    (redis, dir, s)
}

/// The demo config on Redis: `session_extra` goes into [session].
pub(crate) fn redis_config(session_extra: &str, key: &str) -> String {
    config_with(
        None,
        &format!("\n[identity]\nsigning_key_files = [{key:?}]\n"),
    )
    .replace(
        "[session]\n",
        &format!("[session]\nstore = \"redis\"\n{session_extra}\n"),
    )
}

#[tokio::test]
async fn replicas_share_sessions_and_sign_out_ends_them_everywhere() {
    let (_redis, _k, s) = redis_stack("redis_cache_ttl = \"1s\"").await;
    let b = s.start_replica().await.unwrap();
    let r = flow(&browser(), &s, "alice", "/").await;
    let set = set_cookies(&r);
    let cookie = session_cookie_header(&set);
    // The cookie holds only a sealed handle: small, and no session data.
    assert!(cookie.len() < 200, "{cookie}");
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::OK
    );
    // The same cookie works on replica B; B's assertion verifies with the shared key.
    let r = plain()
        .get(format!("{}/x", b.url))
        .header(COOKIE, &cookie)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["verified"]["valid"], true, "{body}");
    // Sign out on B: A refuses the same cookie once its local cache (1 s) has passed.
    let r = plain()
        .get(format!("{}/oauth2/sign_out", b.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        status_with(&format!("{}/", b.url), &cookie).await,
        StatusCode::UNAUTHORIZED,
        "at once on B"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::UNAUTHORIZED,
        "on A after the cache TTL"
    );
    // A copied cookie cannot come back: the session is gone from Redis.
    assert_eq!(
        status_with(&format!("{}/", b.url), &cookie).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sign_out_everywhere_ends_all_of_a_users_sessions() {
    let (_redis, _k, s) = redis_stack("redis_cache_ttl = \"0s\"").await;
    let one = session_cookie_header(&set_cookies(&flow(&browser(), &s, "alice", "/").await));
    let two = session_cookie_header(&set_cookies(&flow(&browser(), &s, "alice", "/").await));
    let bob = session_cookie_header(&set_cookies(&flow(&browser(), &s, "bob", "/").await));
    assert_ne!(one, two, "a new handle at every sign-in");
    let r = plain()
        .get(format!("{}/oauth2/sign_out?everywhere=1", s.labgate_url))
        .header(COOKIE, &one)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &two).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &bob).await,
        StatusCode::OK,
        "other users keep theirs"
    );
}

fn signal(redis: &Redis, sig: &str) {
    let pid = redis.child.id().to_string();
    assert!(Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success());
}

#[tokio::test]
async fn redis_down_fails_closed_and_recovers_without_a_restart() {
    let (redis, _k, s) = redis_stack("redis_cache_ttl = \"0s\"\nredis_command_timeout = \"300ms\"\nredis_connect_timeout = \"300ms\"").await;
    let cookie = session_cookie_header(&set_cookies(&flow(&browser(), &s, "alice", "/").await));
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::OK
    );
    // Redis hangs (stopped): every command times out. (Stopping rather than killing keeps
    // the port from being taken by a parallel test.)
    signal(&redis, "-STOP");
    let (status, body) = get_json(&plain_with(&cookie), &format!("{}/", s.labgate_url)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "session_store_unavailable");
    let r = plain()
        .get(format!("{}/", s.labgate_url))
        .header(COOKIE, &cookie)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().contains("session store"));
    assert_eq!(
        plain()
            .get(format!("{}/ready", s.labgate_url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Signing out while Redis is down says the session could not be ended on the server.
    let r = plain()
        .get(format!("{}/oauth2/sign_out", s.labgate_url))
        .header(COOKIE, &cookie)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.headers().get("set-cookie").is_some(),
        "cookies cleared anyway"
    );
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("could not end your session"));
    // Signing in while Redis is down does not admit anyone either.
    let r = flow(&browser(), &s, "bob", "/").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Redis is back: labgate recovers by itself.
    signal(&redis, "-CONT");
    let mut ready = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        ready = plain()
            .get(format!("{}/ready", s.labgate_url))
            .send()
            .await
            .unwrap()
            .status();
        if ready == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, StatusCode::OK);
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::OK
    );
    let cookie = session_cookie_header(&set_cookies(&flow(&browser(), &s, "bob", "/").await));
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::OK
    );
}

fn plain_with(cookie: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(COOKIE, cookie.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(h)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn concurrent_revalidation_on_two_replicas_makes_one_refresh_call() {
    let redis = redis_on(free_port(), &[]).await;
    let (_k, key) = key_file();
    let cfg = redis_config(
        &format!(
            "redis_url = \"redis://127.0.0.1:{}\"\nredis_cache_ttl = \"0s\"",
            redis.port
        ),
        &key,
    )
    .replace("revalidate = \"1m\"", "revalidate = \"10s\"");
    let s = stack(&cfg).await;
    let b = s.start_replica().await.unwrap();
    let cookie = session_cookie_header(&set_cookies(&flow(&browser(), &s, "alice", "/").await));
    s.app.clock.advance(11);
    b.app.clock.advance(11);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let url = if i % 2 == 0 {
            format!("{}/", s.labgate_url)
        } else {
            format!("{}/", b.url)
        };
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(
            async move { status_with(&url, &cookie).await },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        s.gitlab.refresh_count(),
        1,
        "one refresh across both replicas"
    );
}

#[tokio::test]
async fn a_three_master_redis_cluster_works() {
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes = Vec::new();
    for p in ports {
        nodes.push(
            redis_on(
                p,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                    "--cluster-node-timeout",
                    "2000",
                ],
            )
            .await,
        );
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Every node must see the whole cluster before labgate connects: the client may read
    // the slot map from any of them.
    let converged = || {
        ports.iter().all(|p| {
            let info = Command::new("redis-cli")
                .args(["-p", &p.to_string(), "cluster", "info"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&info.stdout).into_owned();
            text.contains("cluster_state:ok") && text.contains("cluster_known_nodes:3")
        })
    };
    for _ in 0..100 {
        if converged() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(converged(), "the Redis Cluster did not converge");
    let (_k, key) = key_file();
    let list: Vec<String> = ports
        .iter()
        .map(|p| format!("\"redis://127.0.0.1:{p}\""))
        .collect();
    let s = stack(&redis_config(
        &format!(
            "redis_cluster_nodes = [{}]\nredis_cache_ttl = \"0s\"",
            list.join(", ")
        ),
        &key,
    ))
    .await;
    let b = s.start_replica().await.unwrap();
    let mut cookies = Vec::new();
    for user in ["alice", "bob", "alice", "bob"] {
        cookies.push(session_cookie_header(&set_cookies(
            &flow(&browser(), &s, user, "/").await,
        )));
    }
    for c in &cookies {
        assert_eq!(status_with(&format!("{}/", b.url), c).await, StatusCode::OK);
    }
    let r = plain()
        .get(format!("{}/oauth2/sign_out", b.url))
        .header(COOKIE, &cookies[0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookies[0]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookies[1]).await,
        StatusCode::OK
    );
    assert_eq!(
        plain()
            .get(format!("{}/ready", s.labgate_url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    drop(nodes);
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (installed with redis-server)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The per-user index behind sign-out-everywhere holds hashed keys (reading Redis yields no
/// usable cookie), is pruned of expired sessions, and is capped.
#[tokio::test]
async fn the_user_index_holds_no_handles_and_is_pruned() {
    let (redis, _k, s) = redis_stack("redis_cache_ttl = \"0s\"\nredis_key_prefix = \"t:\"").await;
    let mut cookies = Vec::new();
    for _ in 0..20 {
        cookies.push(session_cookie_header(&set_cookies(
            &flow(&browser(), &s, "alice", "/").await,
        )));
    }
    let members = redis_cli(redis.port, &["SMEMBERS", "t:u:101"]);
    for c in &cookies {
        let value = c.split_once('=').map(|(_, v)| v).unwrap_or("");
        assert!(!value.is_empty());
        assert!(
            !members.contains(value),
            "a cookie value is readable in Redis: {members}"
        );
    }
    // Twelve sessions expire (deleted as their TTL would); the next sign-in prunes them.
    let keys: Vec<String> = members.lines().map(str::to_owned).collect();
    assert_eq!(keys.len(), 20, "{members}");
    for k in keys.iter().take(12) {
        redis_cli(redis.port, &["DEL", k]);
    }
    let last = session_cookie_header(&set_cookies(&flow(&browser(), &s, "alice", "/").await));
    let count: usize = redis_cli(redis.port, &["SCARD", "t:u:101"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, 9, "8 live + the new one");
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &last).await,
        StatusCode::OK
    );
    // Sign-out everywhere still ends every live session.
    let r = plain()
        .get(format!("{}/oauth2/sign_out?everywhere=1", s.labgate_url))
        .header(COOKIE, &last)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for c in cookies.iter().skip(12) {
        assert_eq!(
            status_with(&format!("{}/", s.labgate_url), c).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// Redis Sentinel in front of a master that requires a password: labgate finds the master
/// through Sentinel and authenticates to it with `redis_password`.
#[tokio::test]
async fn sentinel_with_a_password_protected_master() {
    let master = redis_on(free_port(), &["--requirepass", "s3cret-master"]).await;
    let sentinel_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\nsentinel auth-pass mymaster s3cret-master\n",
            dir.path().display(),
            master.port
        ),
    )
    .unwrap();
    let _sentinel = redis_with_conf(&conf, sentinel_port, true).await;
    let (_k, key) = key_file();
    let s = stack(&redis_config(
        &format!(
            "redis_sentinel_master = \"mymaster\"\nredis_sentinel_nodes = [\"redis://127.0.0.1:{sentinel_port}\"]\nredis_password = \"s3cret-master\"\nredis_cache_ttl = \"0s\""
        ),
        &key,
    ))
    .await;
    let cookie = session_cookie_header(&set_cookies(&flow(&browser(), &s, "alice", "/").await));
    assert!(!cookie.is_empty());
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::OK
    );
}

/// GitLab rotates the tokens, then fails the identity call: replica A keeps the new pair in
/// Redis, so replica B's revalidation right after uses it instead of the spent one (which
/// GitLab refuses with invalid_grant, signing the user out).
#[tokio::test]
async fn tokens_rotated_before_a_gitlab_failure_reach_the_other_replica() {
    let redis = redis_on(free_port(), &[]).await;
    let (_k, key) = key_file();
    let s = stack(
        &redis_config(
            &format!(
                "redis_url = \"redis://127.0.0.1:{}\"\nredis_cache_ttl = \"0s\"",
                redis.port
            ),
            &key,
        )
        .replace(
            "revalidate = \"1m\"",
            "revalidate = \"1s\"\nrevalidate_grace = \"10m\"",
        ),
    )
    .await;
    let b = s.start_replica().await.unwrap();
    let r = flow(&browser(), &s, "alice", "/").await;
    let cookie = session_cookie_header(&set_cookies(&r));
    s.gitlab.set_faults(labgate::dev::gitlab::Faults {
        failing_paths: vec!["/oauth/userinfo".into()],
        ..Default::default()
    });
    s.app.clock.advance(2);
    b.app.clock.advance(2);
    let refreshes = s.gitlab.refresh_count();
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::OK,
        "A: served within grace"
    );
    assert_eq!(s.gitlab.refresh_count(), refreshes + 1, "GitLab rotated");
    s.gitlab.set_faults(labgate::dev::gitlab::Faults::default());
    assert_eq!(
        status_with(&format!("{}/", b.url), &cookie).await,
        StatusCode::OK,
        "B revalidates with the rotated token"
    );
    assert_eq!(s.gitlab.refresh_count(), refreshes + 2);
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn redis_over_tls_with_a_private_ca_and_a_client_certificate() {
    // Redis serves a certificate of one private CA and asks for a client certificate of
    // another (mutual TLS).
    let server = TestCa::with_name("redis server CA");
    let clients = TestCa::with_name("redis clients CA");
    let port = free_port();
    let path = |p: &std::path::Path| p.display().to_string();
    let _redis = redis_on(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path(&server.cert),
            "--tls-key-file",
            &path(&server.key),
            "--tls-ca-cert-file",
            &path(&clients.ca),
            "--tls-auth-clients",
            "yes",
        ],
    )
    .await;
    let (_k, key) = key_file();
    let tls = |ca: &std::path::Path, client: bool| {
        let mut t = format!(
            "redis_url = \"rediss://127.0.0.1:{port}\"\nredis_ca_file = {:?}\n",
            path(ca)
        );
        if client {
            t.push_str(&format!(
                "redis_cert_file = {:?}\nredis_key_file = {:?}\n",
                path(&clients.cert),
                path(&clients.key)
            ));
        }
        redis_config(&t, &key)
    };
    // The right CA and a client certificate: sessions live in Redis.
    let s = stack(&tls(&server.ca, true)).await;
    assert_eq!(ready(&s.labgate_url).await, StatusCode::OK);
    let bob = flow(&browser(), &s, "bob", "/").await;
    let cookie = session_cookie_header(&set_cookies(&bob));
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::OK
    );
    // Without the client certificate Redis refuses labgate; trusting another CA, labgate
    // refuses Redis: either way not ready, and nothing is admitted.
    for config in [tls(&server.ca, false), tls(&clients.ca, true)] {
        let other = stack(&config).await;
        assert_eq!(
            ready(&other.labgate_url).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_with(&format!("{}/", other.labgate_url), &cookie).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // Mistakes name their key.
    let problems = |extra: &str| {
        labgate::config::load_str(&with_demo_addresses(&redis_config(extra, &key)))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    };
    let ca = path(&server.ca);
    for (extra, key) in [
        (
            format!("redis_url = \"redis://127.0.0.1:{port}\"\nredis_ca_file = {ca:?}"),
            "session.redis_ca_file",
        ),
        (
            format!("redis_url = \"rediss://127.0.0.1:{port}\"\nredis_cert_file = {:?}", path(&clients.cert)),
            "session.redis_key_file",
        ),
        (
            format!("redis_url = \"rediss://127.0.0.1:{port}\"\nredis_ca_file = {:?}", path(&server.key)),
            "session.redis_ca_file",
        ),
        (
            format!("redis_url = \"rediss://127.0.0.1:{port}\"\nredis_ca_file = \"/nonexistent/ca.pem\""),
            "session.redis_ca_file",
        ),
    ] {
        let got = problems(&extra);
        assert!(got.contains(key), "{extra}: {got}");
    }
}

/// Redis Sentinel and its master both over TLS with certificates of a private CA, each asking
/// for a client certificate of another (mutual TLS): labgate asks the Sentinel for the master
/// and reaches both with `redis_ca_file`, `redis_cert_file` and `redis_key_file`.
#[tokio::test]
async fn sentinel_and_master_over_tls_with_a_private_ca_and_a_client_certificate() {
    let server = TestCa::with_name("redis server CA");
    let clients = TestCa::with_name("redis clients CA");
    let path = |p: &std::path::Path| p.display().to_string();
    // The servers trust labgate's CA and each other's (the Sentinel is the master's client).
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("both-cas.pem");
    std::fs::write(
        &both,
        std::fs::read_to_string(&server.ca).unwrap()
            + &std::fs::read_to_string(&clients.ca).unwrap(),
    )
    .unwrap();
    let tls_args = |port: u16| {
        format!(
            "port 0\ntls-port {port}\nbind 127.0.0.1\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients yes\ntls-replication yes\n",
            path(&server.cert),
            path(&server.key),
            path(&both)
        )
    };
    let master_port = free_port();
    let master_conf = dir.path().join("master.conf");
    std::fs::write(
        &master_conf,
        tls_args(master_port) + "save \"\"\nappendonly no\n",
    )
    .unwrap();
    let _master = redis_with_conf(&master_conf, master_port, false).await;
    let sentinel_port = free_port();
    let sentinel_conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &sentinel_conf,
        tls_args(sentinel_port)
            + &format!(
                "dir {}\nsentinel monitor mymaster 127.0.0.1 {master_port} 1\n",
                dir.path().display()
            ),
    )
    .unwrap();
    let _sentinel = redis_with_conf(&sentinel_conf, sentinel_port, true).await;
    let (_k, key) = key_file();
    let config = |ca: &std::path::Path| {
        redis_config(
            &format!(
                "redis_sentinel_master = \"mymaster\"\nredis_sentinel_nodes = [\"rediss://127.0.0.1:{sentinel_port}\"]\nredis_cache_ttl = \"0s\"\nredis_ca_file = {:?}\nredis_cert_file = {:?}\nredis_key_file = {:?}\n",
                path(ca),
                path(&clients.cert),
                path(&clients.key)
            ),
            &key,
        )
    };
    let s = stack(&config(&server.ca)).await;
    assert_eq!(ready(&s.labgate_url).await, StatusCode::OK);
    let cookie = session_cookie_header(&set_cookies(&flow(&browser(), &s, "alice", "/").await));
    assert_eq!(
        status_with(&format!("{}/", s.labgate_url), &cookie).await,
        StatusCode::OK
    );
    // Trusting another CA, labgate refuses the Sentinel: not ready, nothing admitted.
    let other = stack(&config(&clients.ca)).await;
    assert_eq!(
        ready(&other.labgate_url).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status_with(&format!("{}/", other.labgate_url), &cookie).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// Every Sentinel is asked the same way: a mix of plaintext and TLS nodes, or of
/// credentials, would send one node's password to another in the clear.
#[test]
fn sentinels_reached_in_different_ways_are_refused_by_name() {
    let (_k, key) = key_file();
    let problems = |nodes: &str| {
        labgate::config::load_str(&with_demo_addresses(&redis_config(
            &format!("redis_sentinel_master = \"mymaster\"\nredis_sentinel_nodes = {nodes}"),
            &key,
        )))
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string())
    };
    for nodes in [
        r#"["rediss://:pw@127.0.0.1:26379", "redis://:pw@127.0.0.1:26380"]"#,
        r#"["redis://:pw@127.0.0.1:26379", "redis://127.0.0.1:26380"]"#,
        r#"["redis://:pw@127.0.0.1:26379", "redis://:other@127.0.0.1:26380"]"#,
        r#"["redis://127.0.0.1:26379", "http://127.0.0.1:26380"]"#,
    ] {
        let got = problems(nodes);
        assert!(
            got.contains("session.redis_sentinel_nodes"),
            "{nodes}: {got}"
        );
    }
    assert_eq!(
        problems(r#"["rediss://:pw@127.0.0.1:26379", "rediss://:pw@127.0.0.1:26380"]"#),
        ""
    );
}
