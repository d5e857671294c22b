//! The processes the soak test runs and breaks: redis-server (kept on disk so that a restart
//! loses nothing, as a production Redis with AOF), nginx as the upstream, and labgate
//! replicas (the real binary), with their resident memory and open descriptors sampled.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A process id's resident set size in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// How many file descriptors a process holds open.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(Iterator::count)
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Waits up to `limit` for a child to exit; returns its status and how long it took.
pub async fn wait_exit(child: &mut Child, limit: Duration) -> Option<(ExitStatus, Duration)> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some((status, start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A redis-server with an append-only file fsynced on every write, in its own directory:
/// killed with SIGKILL and started again, it comes back with every session.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub async fn start(port: u16) -> Redis {
        let mut r = Redis {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is needed for the soak test: scripts/test installs it");
        self.child = Some(child);
        crate::harness::wait_for_port(self.port).await;
    }

    /// SIGKILL: no shutdown save, no goodbye to the clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// nginx serving a small body on every path: the upstream (it requires `Host`, as real
/// upstreams do). Stopping it drops the harness's handle, which SIGTERMs master and workers.
pub struct Upstream {
    pub port: u16,
    nginx: Option<crate::harness::Nginx>,
}

impl Upstream {
    pub async fn start(port: u16) -> Upstream {
        let mut u = Upstream { port, nginx: None };
        u.spawn().await;
        u
    }

    async fn spawn(&mut self) {
        let site = format!(
            "server {{ listen 127.0.0.1:{}; keepalive_requests 100000; location / {{ return 200 \"upstream ok\\n\"; }} }}",
            self.port
        );
        self.nginx = Some(crate::harness::start_nginx(&site, self.port).await);
    }

    /// Stops nginx and waits until nothing listens on its port.
    pub async fn stop(&mut self) {
        self.nginx = None;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }
}

/// One labgate replica: the real binary (`labgate run`) with its own config file and log.
pub struct Replica {
    pub name: &'static str,
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    pub fn new(name: &'static str, port: u16, dir: &Path, config_text: &str) -> Replica {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text).unwrap();
        Replica {
            name,
            port,
            config,
            log: dir.join(format!("{name}.log")),
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process and waits until `/ready` answers 200 (at most 30 s); returns how
    /// long that took.
    pub async fn start(&mut self, client: &reqwest::Client) -> Duration {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_labgate"))
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = format!("{}/ready", self.url());
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(r) = client.get(&ready).send().await {
                if r.status() == reqwest::StatusCode::OK {
                    return started.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "replica {} did not become ready in 30 s; its log:\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// SIGTERM, as a rolling update does; returns the exit status and the drain time.
    pub async fn sigterm(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("replica running");
        signal(child.id(), "-TERM");
        match wait_exit(&mut child, limit).await {
            Some(v) => v,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "replica {} did not exit within {limit:?} of SIGTERM",
                    self.name
                )
            }
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
