//! The soak / chaos test: two labgate replicas (the real binary, HTTPS) on one Redis, behind
//! a load balancer the test plays, in front of nginx, signing in against the GitLab
//! stand-in, under a steady load of signed-in browsers, forward-auth callers, CI jobs and
//! anonymous clients, while the test breaks things in turn: Redis killed and restarted,
//! GitLab slow then failing, the upstream stopped, the certificate replaced, each replica
//! rolled with SIGTERM. It counts requests, unexpected answers, sessions lost, the peak
//! RSS and open descriptors of each replica, and how long the system took to recover from
//! each fault, and fails when any of those is out of bounds.
//!
//! `cargo test --test soak` runs one cycle of faults (CI); `bench/soak` runs more on a
//! release build (`LABGATE_SOAK_CYCLES`) and prints the report. Loopback only, bounded in
//! time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    unreachable_pub
)]

#[path = "../it/harness.rs"]
#[allow(dead_code)]
mod harness;
mod load;
mod procs;
mod report;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use labgate::dev::gitlab::{Faults, Fixture, StandIn};
use load::{Class, Fault, Shared, PACE};
use procs::{Redis, Replica, Upstream};
use reqwest::Client;

/// How long GitLab is slow, then failing, and how long Redis and the upstream stay down.
const GITLAB_FAULT: Duration = Duration::from_secs(6);
const GITLAB_LATENCY: Duration = Duration::from_millis(1500);
const OUTAGE: Duration = Duration::from_secs(3);
/// A replica must exit this soon after SIGTERM (its `shutdown_grace` is 10 s).
const DRAIN_LIMIT: Duration = Duration::from_secs(15);
/// Every fault must be recovered from within this time of its repair.
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);
/// Bounds on each replica (a debug build; the release binary uses far less).
const RSS_LIMIT_KIB: u64 = 256 * 1024;
const FD_GROWTH_LIMIT: usize = 64;

/// A CA and server certificates it issues (the second is the "renewed" one).
struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "labgate soak CA");
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for 127.0.0.1: (chain PEM, key PEM, DER).
    fn leaf(&self, cn: &str) -> (String, String, Vec<u8>) {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// Writes a file whole (a reader never sees half of it).
fn write_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn client(ca: &reqwest::Certificate, jar: bool) -> Client {
    Client::builder()
        .add_root_certificate(ca.clone())
        .cookie_store(jar)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .tls_info(true)
        .build()
        .unwrap()
}

/// The configuration both replicas run, but for the listen port.
#[allow(clippy::too_many_arguments)]
fn replica_config(
    port: u16,
    public: &str,
    dir: &std::path::Path,
    gitlab: &str,
    redis: u16,
    upstream: u16,
    key: &str,
) -> String {
    let d = dir.display();
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
public_url = "{public}"
tls_cert_file = "{d}/server.pem"
tls_key_file = "{d}/server.key"
tls_reload_interval = "1s"
trusted_proxies = ["127.0.0.1"]
forward_auth_source = "nginx"
shutdown_grace = "10s"

[log]
level = "info"

[upstream]
url = "http://127.0.0.1:{upstream}"
timeout = "10s"

[gitlab]
url = "{gitlab}"
client_id = "labgate-dev-client-id"
client_secret = "{secret}"
timeout = "5s"

[session]
store = "redis"
redis_url = "redis://127.0.0.1:{redis}"
cookie_secret = "{cookie}"
revalidate = "2s"
revalidate_grace = "5m"

[identity]
signing_key_files = ["{key}"]

[access]
allowed_groups = ["acme"]

[[route]]
path = "^/deploy(/|$)"
allowed_groups = ["acme/admins"]
allowed_ci_jobs = ["acme/deployer"]

[machine]
audience = "{public}"

[[machine.allow]]
project_path = "acme/deployer"
ref_protected = true
"#,
        secret = harness::test_client_secret(),
        cookie = harness::test_cookie_secret(),
    )
}

/// One caller of each kind per replica, signed in where it needs to be, for the probes.
struct Probe {
    browser: Client,
    plain: Client,
    token: String,
}

impl Probe {
    /// Whether `base` answers every kind of caller normally.
    async fn normal(&self, base: &str) -> bool {
        let ok = |r: Result<reqwest::Response, reqwest::Error>, want: u16| {
            r.map(|r| r.status().as_u16() == want).unwrap_or(false)
        };
        ok(
            load::get(&self.browser, base, "/app/probe").send().await,
            200,
        ) && ok(
            load::forward_auth(&self.browser, base, "/app/probe")
                .send()
                .await,
            202,
        ) && ok(
            load::ci(&self.plain, base, "/deploy/probe", &self.token)
                .send()
                .await,
            200,
        )
    }

    /// Time from `since` until every base in `bases` answers normally.
    async fn recovered(&self, bases: &[String], since: Instant) -> Duration {
        while since.elapsed() < RECOVERY_LIMIT {
            let mut all = true;
            for b in bases {
                all &= self.normal(b).await;
            }
            if all {
                return since.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        since.elapsed()
    }
}

/// Signs `user` in through replica `front` (the public URL) and returns the browser.
async fn sign_in(ca: &reqwest::Certificate, front: &str, gitlab: &StandIn, user: &str) -> Client {
    let c = client(ca, true);
    let r = harness::flow_parts(&c, front, gitlab, user, "/").await;
    assert_eq!(r.status(), 302, "sign-in of {user} through {front}");
    c
}

/// Peak RSS and open descriptors of each replica, sampled every 200 ms.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub peak_rss_kib: u64,
    pub peak_fds: usize,
    pub fds_after_warm_up: usize,
    pub fds_at_end: usize,
}

fn sample(pids: &[Option<u32>; 2], usage: &Mutex<[Usage; 2]>) {
    let mut u = usage.lock().unwrap();
    for (pid, u) in pids.iter().zip(u.iter_mut()) {
        if let Some(pid) = *pid {
            if let Some(rss) = procs::rss_kib(pid) {
                u.peak_rss_kib = u.peak_rss_kib.max(rss);
            }
            if let Some(fds) = procs::open_fds(pid) {
                u.peak_fds = u.peak_fds.max(fds);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_redis_through_every_fault() {
    let cycles: usize = std::env::var("LABGATE_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let (cert, key, _) = pki.leaf("first");
    write_atomically(&dir.path().join("server.pem"), &cert);
    write_atomically(&dir.path().join("server.key"), &key);
    let signing = dir.path().join("signing.pem");
    std::fs::write(&signing, labgate::identity::generate_es256_pem()).unwrap();

    let ports = [harness::free_port(), harness::free_port()];
    let public = format!("https://127.0.0.1:{}", ports[0]);
    let mut fixture = Fixture::demo();
    fixture.applications[0]
        .redirect_uris
        .push(format!("{public}/oauth2/callback"));
    fixture.applications[0].secret = harness::test_client_secret().into();
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gitlab = StandIn::start(gl, fixture, "");
    let mut redis = Redis::start(harness::free_port()).await;
    let mut upstream = Upstream::start(harness::free_port()).await;

    let plain = client(&ca, false);
    let mut replicas = [0, 1].map(|i| {
        let text = replica_config(
            ports[i],
            &public,
            dir.path(),
            &gitlab.base_url,
            redis.port,
            upstream.port,
            &signing.display().to_string(),
        );
        Replica::new(["a", "b"][i], ports[i], dir.path(), &text)
    });
    for r in &mut replicas {
        r.start(&plain).await;
    }
    let urls = [replicas[0].url(), replicas[1].url()];
    let token = || {
        gitlab.ci_id_token(
            "acme/deployer",
            "main",
            true,
            &public,
            &serde_json::json!({}),
        )
    };

    // The callers: six browsers, two forward-auth callers, two CI jobs, one anonymous.
    let shared = Arc::new(Shared::new());
    let users = ["alice", "bob", "alice", "bob", "alice", "bob"];
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let c = sign_in(&ca, &public, &gitlab, user).await;
        let (shared, urls, ca, public, user) = (
            shared.clone(),
            urls.clone(),
            ca.clone(),
            public.clone(),
            (*user).to_owned(),
        );
        let gitlab = gitlab.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = c;
            let mut turn = i;
            while !shared.stopped() {
                turn += 1;
                let status = shared
                    .send(Class::Browser, &urls, turn, |b| {
                        load::get(&c, b, "/app/page")
                    })
                    .await;
                if status == Some(401) {
                    shared.tally.lock().unwrap().sessions_lost += 1;
                    c = sign_in(&ca, &public, &gitlab, &user).await;
                }
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    for i in 0..2 {
        let c = sign_in(&ca, &public, &gitlab, "bob").await;
        let (shared, urls) = (shared.clone(), urls.clone());
        tasks.push(tokio::spawn(async move {
            let mut turn = i;
            while !shared.stopped() {
                turn += 1;
                shared
                    .send(Class::ForwardAuth, &urls, turn, |b| {
                        load::forward_auth(&c, b, "/app/fa")
                    })
                    .await;
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    for i in 0..2 {
        let (shared, urls, c, gitlab, public) = (
            shared.clone(),
            urls.clone(),
            plain.clone(),
            gitlab.clone(),
            public.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mint = || {
                gitlab.ci_id_token(
                    "acme/deployer",
                    "main",
                    true,
                    &public,
                    &serde_json::json!({}),
                )
            };
            let mut token = mint();
            let mut minted = Instant::now();
            let mut turn = i;
            while !shared.stopped() {
                turn += 1;
                // A job's ID token lives 5 minutes; jobs are shorter than that.
                if minted.elapsed() > Duration::from_secs(60) {
                    token = mint();
                    minted = Instant::now();
                }
                shared
                    .send(Class::CiJob, &urls, turn, |b| {
                        load::ci(&c, b, "/deploy/job", &token)
                    })
                    .await;
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    {
        let (shared, urls, c) = (shared.clone(), urls.clone(), plain.clone());
        tasks.push(tokio::spawn(async move {
            let mut turn = 0;
            while !shared.stopped() {
                turn += 1;
                shared
                    .send(Class::Anonymous, &urls, turn, |b| {
                        load::get(&c, b, "/app/anon")
                    })
                    .await;
                tokio::time::sleep(PACE * 5).await;
            }
        }));
    }

    // Resource use of each replica, whichever process it currently is.
    let pids = Arc::new(Mutex::new([replicas[0].pid(), replicas[1].pid()]));
    let usage = Arc::new(Mutex::new([Usage::default(); 2]));
    let sampler = {
        let (pids, usage, shared) = (pids.clone(), usage.clone(), shared.clone());
        tokio::spawn(async move {
            while !shared.stopped() {
                let p = *pids.lock().unwrap();
                sample(&p, &usage);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let probe = Probe {
        browser: sign_in(&ca, &public, &gitlab, "alice").await,
        plain: plain.clone(),
        token: token(),
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, r) in replicas.iter().enumerate() {
        if let Some(fds) = r.pid().and_then(procs::open_fds) {
            usage.lock().unwrap()[i].fds_after_warm_up = fds;
        }
    }

    let mut recoveries: Vec<(String, Duration)> = Vec::new();
    let mut drains: Vec<(String, Duration)> = Vec::new();
    for cycle in 1..=cycles {
        // Redis killed (SIGKILL) and started again on its append-only file.
        shared.set_fault(Fault::RedisDown);
        redis.kill();
        tokio::time::sleep(OUTAGE).await;
        redis.restart().await;
        let t = Instant::now();
        recoveries.push((
            format!("{cycle}: Redis restart"),
            probe.recovered(&urls, t).await,
        ));
        shared.set_fault(Fault::None);

        // GitLab slow, then answering 500, while sessions fall due for revalidation.
        shared.set_fault(Fault::GitlabSlow);
        gitlab.set_faults(Faults {
            latency: Some(GITLAB_LATENCY),
            ..Faults::default()
        });
        tokio::time::sleep(GITLAB_FAULT).await;
        shared.set_fault(Fault::GitlabErrors);
        gitlab.set_faults(Faults {
            server_error: true,
            ..Faults::default()
        });
        tokio::time::sleep(GITLAB_FAULT).await;
        gitlab.set_faults(Faults::default());
        let t = Instant::now();
        recoveries.push((
            format!("{cycle}: GitLab slow, then 5xx"),
            probe.recovered(&urls, t).await,
        ));
        shared.set_fault(Fault::None);

        // The upstream stopped and started again.
        shared.set_fault(Fault::UpstreamDown);
        upstream.stop().await;
        tokio::time::sleep(OUTAGE).await;
        upstream.restart().await;
        let t = Instant::now();
        recoveries.push((
            format!("{cycle}: upstream restart"),
            probe.recovered(&urls, t).await,
        ));
        shared.set_fault(Fault::None);

        // A renewed certificate: new connections must get it, without a restart.
        shared.set_fault(Fault::CertificateReload);
        let (cert, key, der) = pki.leaf(&format!("renewed {cycle}"));
        write_atomically(&dir.path().join("server.key"), &key);
        write_atomically(&dir.path().join("server.pem"), &cert);
        let t = Instant::now();
        let mut served = [false, false];
        while t.elapsed() < RECOVERY_LIMIT && served != [true, true] {
            for (i, u) in urls.iter().enumerate() {
                let fresh = client(&ca, false);
                if let Ok(r) = fresh.get(format!("{u}/ping")).send().await {
                    served[i] |= r
                        .extensions()
                        .get::<reqwest::tls::TlsInfo>()
                        .and_then(reqwest::tls::TlsInfo::peer_certificate)
                        == Some(der.as_slice());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            served,
            [true, true],
            "both replicas serve the renewed certificate"
        );
        recoveries.push((format!("{cycle}: certificate reload"), t.elapsed()));
        shared.set_fault(Fault::None);

        // A rolling update: each replica in turn gets SIGTERM, drains and comes back.
        for (i, replica) in replicas.iter_mut().enumerate() {
            shared.set_fault(Fault::Rolling);
            let (status, drain) = replica.sigterm(DRAIN_LIMIT).await;
            assert!(
                status.success(),
                "replica {} exits 0 on SIGTERM: {status}",
                replica.name
            );
            drains.push((format!("{cycle}: replica {}", replica.name), drain));
            let t = Instant::now();
            replica.start(&plain).await;
            pids.lock().unwrap()[i] = replica.pid();
            recoveries.push((
                format!("{cycle}: replica {} rolled", replica.name),
                probe.recovered(&urls, t).await,
            ));
            shared.set_fault(Fault::None);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    shared.stop();
    for t in tasks {
        t.await.unwrap();
    }
    let _ = sampler.await;
    let p = *pids.lock().unwrap();
    sample(&p, &usage);
    for (i, r) in replicas.iter().enumerate() {
        if let Some(fds) = r.pid().and_then(procs::open_fds) {
            usage.lock().unwrap()[i].fds_at_end = fds;
        }
    }

    let usage = *usage.lock().unwrap();
    let tally = std::mem::take(&mut *shared.tally.lock().unwrap());
    let text = report::render(
        cycles,
        shared.started.elapsed(),
        &tally,
        &usage,
        &recoveries,
        &drains,
        gitlab
            .counters
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
    );
    println!("{text}");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("soak-report.md");
    let _ = std::fs::write(&out, &text);

    // The replicas' logs stay next to the report for a look after a failure.
    for r in &replicas {
        let _ = std::fs::copy(
            &r.log,
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("soak-{}.log", r.name)),
        );
    }
    let logs = format!(
        "replica logs: {}/soak-{{a,b}}.log",
        env!("CARGO_TARGET_TMPDIR")
    );
    assert_eq!(
        tally.sessions_lost, 0,
        "no signed-in user is signed out\n{text}\n{logs}"
    );
    assert_eq!(
        tally.unexpected, 0,
        "no answer outside what the faults allow\n{text}\n{logs}"
    );
    for (what, d) in &recoveries {
        assert!(
            *d < RECOVERY_LIMIT,
            "{what}: not recovered in {d:?}\n{text}"
        );
    }
    for (i, u) in usage.iter().enumerate() {
        assert!(
            u.peak_rss_kib < RSS_LIMIT_KIB,
            "replica {i}: RSS {} KiB\n{text}",
            u.peak_rss_kib
        );
        assert!(
            u.fds_at_end < u.fds_after_warm_up + FD_GROWTH_LIMIT,
            "replica {i}: descriptors grew from {} to {}\n{text}",
            u.fds_after_warm_up,
            u.fds_at_end
        );
    }
    for c in [
        Class::Browser,
        Class::ForwardAuth,
        Class::CiJob,
        Class::Anonymous,
    ] {
        assert!(
            tally.answers.get(&(c, c.normal())).copied().unwrap_or(0) > 100,
            "{c:?} callers were served\n{text}"
        );
    }
}
