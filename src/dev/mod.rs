//! The embedded demo (`labgate dev`) and the stack the tests run: labgate, the GitLab
//! stand-in and the echo upstream, each on its own real listener.

// The stand-in and the echo app are demo and test servers that index their own fixtures;
// they are not on labgate's request path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    unreachable_pub
)]

pub mod echo;
pub mod gitlab;
mod util;

use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::app::App;
use echo::{Echo, EchoConfig};
use gitlab::{Fixture, StandIn};

/// The demo configuration (config/dev.toml).
pub const DEV_CONFIG: &str = include_str!("../../config/dev.toml");

/// A running labgate + stand-in + echo app.
pub struct Stack {
    /// labgate's base URL.
    pub labgate_url: String,
    /// The echo app's base URL.
    pub echo_url: String,
    /// The base URL of GitLab's webhook listener (`server.webhook_listen`), if any.
    pub webhook_url: Option<String>,
    /// The stand-in.
    pub gitlab: Arc<StandIn>,
    /// labgate's state (tests move its clock).
    pub app: Arc<App>,
    /// The configuration text labgate runs (placeholders filled in).
    pub config_text: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<bool, crate::RunError>>>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("labgate_url", &self.labgate_url)
            .finish_non_exhaustive()
    }
}

/// A second labgate sharing a stack's configuration; stops when dropped.
pub struct Replica {
    /// Its base URL.
    pub url: String,
    /// Its state.
    pub app: Arc<App>,
    _shutdown: oneshot::Sender<()>,
}

/// Where each part listens.
pub struct Listeners {
    /// labgate.
    pub labgate: TcpListener,
    /// The GitLab stand-in.
    pub gitlab: TcpListener,
    /// The echo app.
    pub echo: TcpListener,
    /// Serve the stand-in over HTTPS with this (a self-managed GitLab with a private CA).
    pub gitlab_tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Listeners {
    /// Three listeners on free loopback ports.
    pub async fn ephemeral() -> std::io::Result<Listeners> {
        Ok(Listeners {
            labgate: TcpListener::bind("127.0.0.1:0").await?,
            gitlab: TcpListener::bind("127.0.0.1:0").await?,
            echo: TcpListener::bind("127.0.0.1:0").await?,
            gitlab_tls: None,
        })
    }
}

impl Stack {
    /// Starts the three parts. `config_toml` may use `{labgate}`, `{gitlab}` and `{echo}`
    /// for the base URLs; the stand-in is mounted at `gitlab_prefix` ("" or "/gitlab") and
    /// its applications' redirect URIs point at this labgate.
    pub async fn start(
        l: Listeners,
        config_toml: &str,
        mut fixture: Fixture,
        gitlab_prefix: &str,
    ) -> Result<Stack, String> {
        let addr = |t: &TcpListener| {
            t.local_addr()
                .map(|a| format!("http://{a}"))
                .map_err(|e| e.to_string())
        };
        let labgate_url = addr(&l.labgate)?;
        let echo_url = addr(&l.echo)?;
        let gitlab_addr = addr(&l.gitlab)?;
        let gitlab_addr = if l.gitlab_tls.is_some() {
            gitlab_addr.replacen("http://", "https://", 1)
        } else {
            gitlab_addr
        };
        let gitlab_url = format!("{gitlab_addr}{}", gitlab_prefix.trim_end_matches('/'));
        let text = config_toml
            .replace("{labgate}", &labgate_url)
            .replace("{gitlab}", &gitlab_url)
            .replace("{echo}", &echo_url);
        let config = crate::config::load_str(&text).map_err(|e| e.to_string())?;
        // Every Redirect URI the configuration needs (one per host of its own session).
        let callbacks = crate::app::redirect_uris(&config);
        for a in &mut fixture.applications {
            for (_, callback) in &callbacks {
                if !a.redirect_uris.contains(callback) && !callback.contains('<') {
                    a.redirect_uris.push(callback.clone());
                }
            }
        }
        // GitLab's events arrive on a listener of their own when one is configured (port
        // 0: a free one).
        let webhook_listener = match config.server.webhook_listen {
            Some(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .map_err(|e| format!("cannot listen on server.webhook_listen {addr}: {e}"))?,
            ),
            None => None,
        };
        let webhook_url = match &webhook_listener {
            Some(l) => Some(format!(
                "http://{}",
                l.local_addr().map_err(|e| e.to_string())?
            )),
            None => None,
        };
        // GitLab's system hook to labgate, when labgate takes GitLab's events.
        if let Some(secret) = &config.gitlab.webhook_secret {
            fixture.hooks.push(crate::dev::gitlab::Hook {
                url: format!(
                    "{}{}/webhooks/gitlab",
                    webhook_url.as_deref().unwrap_or(&labgate_url),
                    config.server.prefix
                ),
                token: secret.expose().to_owned(),
                group: None,
            });
        }
        let gitlab = StandIn::start_with_tls(l.gitlab, fixture, gitlab_prefix, l.gitlab_tls);
        Echo::start(
            l.echo,
            EchoConfig {
                jwks_url: format!("{labgate_url}{}/jwks.json", config.server.prefix),
                issuer: config
                    .server
                    .public_url
                    .as_str()
                    .trim_end_matches('/')
                    .to_owned(),
                // Serving several apps, each host's assertion names that host's origin.
                audience: match &config.identity.audience {
                    Some(a) => a.clone(),
                    None if config.server.hosts.many => String::new(),
                    None => config.server.public_base().to_owned(),
                },
                assertion_header: config.identity.assertion_header.to_string(),
            },
        );
        let app = App::new(config).await?;
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = match webhook_listener {
            Some(w) => crate::Listeners::bound_with_webhooks(
                l.labgate.into_std().map_err(|e| e.to_string())?,
                w,
            ),
            None => bound(l.labgate)?,
        };
        let server = tokio::spawn(crate::serve(app.clone(), listeners, async {
            let _ = rx.await;
        }));
        Ok(Stack {
            labgate_url,
            webhook_url,
            echo_url,
            gitlab,
            app,
            config_text: text,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// Starts another labgate with the same configuration (a replica behind the same load
    /// balancer), sharing this stack's GitLab stand-in and echo app.
    pub async fn start_replica(&self) -> Result<Replica, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let url = listener
            .local_addr()
            .map(|a| format!("http://{a}"))
            .map_err(|e| e.to_string())?;
        let config = crate::config::load_str(&self.config_text).map_err(|e| e.to_string())?;
        let app = App::new(config).await?;
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(crate::serve(app.clone(), bound(listener)?, async {
            let _ = rx.await;
        }));
        Ok(Replica {
            url,
            app,
            _shutdown: tx,
        })
    }

    /// Restarts labgate on the same address with the same configuration: a new process
    /// state (no caches, a new signing key unless one is configured), the same stand-in and
    /// echo app, the clock as far as tests had moved it.
    pub async fn restart(&mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        let addr = self.labgate_url.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} again: {e}"))?;
        let config = crate::config::load_str(&self.config_text).map_err(|e| e.to_string())?;
        let app = App::new(config).await?;
        app.clock.advance(self.app.clock.offset());
        let (tx, rx) = oneshot::channel::<()>();
        self.server = Some(tokio::spawn(crate::serve(
            app.clone(),
            bound(listener)?,
            async {
                let _ = rx.await;
            },
        )));
        self.shutdown = Some(tx);
        self.app = app;
        Ok(())
    }

    /// Stops labgate gracefully; returns whether the drain finished in time.
    pub async fn stop(mut self) -> bool {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(h) => matches!(h.await, Ok(Ok(true))),
            None => true,
        }
    }
}

/// `listener` as labgate's main listener.
fn bound(listener: TcpListener) -> Result<crate::Listeners, String> {
    listener
        .into_std()
        .map(crate::Listeners::bound)
        .map_err(|e| e.to_string())
}

/// The demo config with its fixed addresses turned into `{labgate}`, `{gitlab}`, `{echo}`.
pub fn config_template() -> String {
    template(DEV_CONFIG)
}

/// A demo configuration's addresses (config/dev.toml's: 127.0.0.1:4180, :4181, :4182)
/// turned into `{labgate}`, `{gitlab}`, `{echo}`, filled in with where each part really
/// listens.
fn template(text: &str) -> String {
    text.replace("http://127.0.0.1:4180", "{labgate}")
        .replace("http://127.0.0.1:4181", "{gitlab}")
        .replace("http://127.0.0.2:4181", "{gitlab}")
        .replace("http://127.0.0.1:4182", "{echo}")
        .replace("listen = \"127.0.0.1:4180\"", "listen = \"127.0.0.1:0\"")
}

/// The GitLab stand-in's address: another loopback address than the app's, so that its
/// cookies (`_gitlab_session`) never reach the app (cookies ignore ports). Where only
/// 127.0.0.1 exists (macOS), that one.
const STAND_IN_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// Binds the demo's three listeners: labgate on `port_base` (127.0.0.1), the stand-in on
/// the next port (127.0.0.2), the echo app on the one after; 0: free ports.
async fn demo_listeners(port_base: u16) -> Result<Listeners, Vec<String>> {
    let port = |n: u16| {
        if port_base == 0 {
            Ok(0)
        } else {
            port_base.checked_add(n).ok_or_else(|| {
                vec![format!(
                    "--port-base {port_base} leaves no room for the stand-in and the echo app (at most 65533)"
                )]
            })
        }
    };
    let (p0, p1, p2) = (port(0)?, port(1)?, port(2)?);
    let bind = |ip: std::net::Ipv4Addr, port: u16| async move {
        TcpListener::bind((ip, port)).await.map_err(|e| {
            format!(
                "cannot listen on {ip}:{port}: {e} (another labgate dev? `labgate dev --port-base 0` takes free ports, --port-base 5180 others)"
            )
        })
    };
    let gitlab = match bind(STAND_IN_IP, p1).await {
        Err(_) if TcpListener::bind((STAND_IN_IP, 0)).await.is_err() => {
            bind(std::net::Ipv4Addr::LOCALHOST, p1).await
        }
        other => other,
    };
    match (
        bind(std::net::Ipv4Addr::LOCALHOST, p0).await,
        gitlab,
        bind(std::net::Ipv4Addr::LOCALHOST, p2).await,
    ) {
        (Ok(labgate), Ok(gitlab), Ok(echo)) => Ok(Listeners {
            labgate,
            gitlab,
            echo,
            gitlab_tls: None,
        }),
        (a, b, c) => Err([a.err(), b.err(), c.err()].into_iter().flatten().collect()),
    }
}

/// `labgate dev`: the demo, until Ctrl-C: labgate on 127.0.0.1:`port_base` (default 4180),
/// the GitLab stand-in on 127.0.0.2 and the next port, the echo app on 127.0.0.1 and the
/// one after (`port_base` 0: free ports). With `config`, labgate runs that file instead of
/// config/dev.toml: the demo's addresses in it (127.0.0.1:4180, :4181, :4182) are read as
/// labgate's, the stand-in's and the echo app's, wherever they really listen; the stand-in
/// accepts its Redirect URI.
pub async fn run_demo(config: Option<&std::path::Path>, port_base: u16) -> ExitCode {
    let text = match config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => template(&t),
            Err(e) => {
                eprintln!("labgate dev: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => config_template(),
    };
    let listeners = match demo_listeners(port_base).await {
        Ok(l) => l,
        Err(problems) => {
            for e in problems {
                eprintln!("labgate dev: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let fixture = Fixture::demo();
    let users: Vec<(String, String, String)> = fixture
        .users
        .iter()
        .map(|u| {
            let groups = fixture.groups_claim(&u.username).join(", ");
            (
                u.username.clone(),
                u.password.clone(),
                if u.state != "active" {
                    format!("account {}", u.state)
                } else if groups.is_empty() {
                    "no groups".into()
                } else {
                    groups
                },
            )
        })
        .collect();
    let stack = match Stack::start(listeners, &text, fixture, "").await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("labgate dev: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("labgate dev: the embedded demo is running.\n");
    println!(
        "  Open      {}/            (the echo app, behind labgate)",
        stack.labgate_url
    );
    println!(
        "  Admins    {}/admin       (only members of acme/admins)",
        stack.labgate_url
    );
    println!("  Public    {}/public      (no sign-in)", stack.labgate_url);
    println!(
        "  Sessions  {}/oauth2/sessions (yours, once signed in)",
        stack.labgate_url
    );
    println!(
        "  GitLab    {}             (the stand-in; no real GitLab needed)",
        stack.gitlab.base_url
    );
    println!(
        "  Echo app  {}             (direct, without labgate)\n",
        stack.echo_url
    );
    println!(
        "  Access rule: members of the GitLab group \"acme\" (and its subgroups) may enter.\n"
    );
    println!("  Demo users (username / password — groups):");
    for (u, p, g) in &users {
        println!("    {u:<9} / {p:<18} — {g}");
    }
    if stack.app.config.gitlab.webhook_secret.is_some() {
        println!(
            "\n  Offboarding in a second: sign in as bob, then remove him from his groups of acme in the\n  stand-in (alice, an Owner, calls GitLab's Members API); his next request is refused:\n    for g in acme%2Fteam%2Ffrontend acme%2Fteam; do curl -X DELETE -H 'Authorization: Bearer glpat-alice-demo-owner-api' {}/api/v4/groups/$g/members/102; done",
            stack.gitlab.base_url
        );
    }
    println!(
        "\n  A demo, not production: published secrets, plain http, an assertion key made at start\n  and a GitLab stand-in. For a real GitLab: docs/install.md (`labgate keygen` makes the secrets)."
    );
    println!("\n  Press Ctrl-C to stop.");
    crate::server::shutdown_signal().await;
    stack.stop().await;
    ExitCode::SUCCESS
}
