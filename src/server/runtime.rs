//! How labgate runs: its listeners opened, the service state built, the side tasks started
//! and the main listener served until shutdown, in one of two runtime layouts
//! (`server.runtime`): `per-core` (the default: `server.workers` single-threaded runtimes
//! accepting on one socket, no cross-thread hand-offs on the request path; see
//! bench/README.md) or `work-stealing` (one multi-threaded runtime). [`serve`] is the
//! async core, the same for `labgate run`'s work-stealing layout and the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::Shared;
use crate::app::App;
use crate::config::{Config, RuntimeLayout};

/// Why labgate could not serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration could not be turned into a running service (a certificate, a key,
    /// the session store): a problem with the setup, not the machine.
    #[error("{0}")]
    Setup(String),
    /// A listening address could not be bound.
    #[error("cannot listen on {what} {addr}: {source}")]
    Listen {
        /// Which listener (`server.listen`, `server.metrics_listen`...).
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A runtime or a listener could not be set up.
    #[error("cannot start: {0}")]
    Runtime(#[source] std::io::Error),
}

/// One listening socket: an address to bind when labgate starts, or one already bound
/// (tests bind port 0 first to know the address).
#[derive(Debug)]
enum Listener {
    Address(SocketAddr),
    Bound(std::net::TcpListener),
}

/// The main listener (`server.listen`) and the side listeners (`server.metrics_listen`,
/// `server.http_redirect_listen`, `server.webhook_listen`).
#[derive(Debug)]
pub struct Listeners {
    main: Listener,
    metrics: Option<Listener>,
    http_redirect: Option<Listener>,
    webhooks: Option<Listener>,
    /// Reload the configuration while serving (`labgate run`).
    reload: Option<super::reload::Reload>,
}

/// [`Listeners`] bound.
struct Open {
    main: std::net::TcpListener,
    side: Side,
}

/// The side listeners, bound, and the configuration reload.
struct Side {
    metrics: Option<tokio::net::TcpListener>,
    http_redirect: Option<tokio::net::TcpListener>,
    webhooks: Option<tokio::net::TcpListener>,
    reload: Option<super::reload::Reload>,
}

impl Listeners {
    /// The addresses the configuration names, bound when labgate starts.
    pub fn from_config(config: &Config) -> Listeners {
        let s = &config.server;
        Listeners {
            main: Listener::Address(s.listen),
            metrics: s.metrics_listen.map(Listener::Address),
            http_redirect: s.http_redirect_listen.map(Listener::Address),
            webhooks: s.webhook_listen.map(Listener::Address),
            reload: None,
        }
    }

    /// The same, reloading the configuration on SIGHUP and when its file changes.
    pub fn reloading(self, reload: super::reload::Reload) -> Listeners {
        Listeners {
            reload: Some(reload),
            ..self
        }
    }

    /// An already bound main listener and no side listeners.
    pub fn bound(main: std::net::TcpListener) -> Listeners {
        Listeners {
            main: Listener::Bound(main),
            metrics: None,
            http_redirect: None,
            webhooks: None,
            reload: None,
        }
    }

    /// The same with the side listeners the configuration names bound already (tests).
    pub fn bound_with_webhooks(
        main: std::net::TcpListener,
        webhooks: std::net::TcpListener,
    ) -> Listeners {
        Listeners {
            webhooks: Some(Listener::Bound(webhooks)),
            ..Listeners::bound(main)
        }
    }

    /// Binds what is not bound yet. Within a runtime.
    async fn open(self) -> Result<Open, RunError> {
        let main = match self.main {
            Listener::Bound(l) => l,
            Listener::Address(addr) => {
                super::shared_listener(addr).map_err(|source| RunError::Listen {
                    what: "server.listen",
                    addr,
                    source,
                })?
            }
        };
        main.set_nonblocking(true).map_err(RunError::Runtime)?;
        let side = |l: Option<Listener>, what: &'static str| async move {
            match l {
                None => Ok(None),
                Some(Listener::Bound(l)) => {
                    l.set_nonblocking(true).map_err(RunError::Runtime)?;
                    tokio::net::TcpListener::from_std(l)
                        .map(Some)
                        .map_err(RunError::Runtime)
                }
                Some(Listener::Address(addr)) => tokio::net::TcpListener::bind(addr)
                    .await
                    .map(Some)
                    .map_err(|source| RunError::Listen { what, addr, source }),
            }
        };
        Ok(Open {
            main,
            side: Side {
                metrics: side(self.metrics, "server.metrics_listen").await?,
                http_redirect: side(self.http_redirect, "server.http_redirect_listen").await?,
                webhooks: side(self.webhooks, "server.webhook_listen").await?,
                reload: self.reload,
            },
        })
    }
}

/// Runs labgate for `config` on `listeners` until `shutdown` resolves (then drains), in
/// the configured runtime layout. Blocks the calling thread.
pub fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    // (`labgate dev` says what differs in production in its banner instead.)
    if config.identity.signing_key_files.is_empty() {
        tracing::warn!(
            "identity.signing_key_files is not set: signing assertions with a key generated at start. \
             Replicas will not verify each other's assertions and the key changes at every restart; \
             create one with `labgate keygen` for production"
        );
    }
    if let Some(endpoint) = &config.tracing.otlp_endpoint {
        crate::trace::export::start(endpoint, &config.tracing.service_name)
            .map_err(RunError::Setup)?;
    }
    let served = match config.server.runtime {
        RuntimeLayout::WorkStealing => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.server.workers)
                .enable_all()
                .build()
                .map_err(RunError::Runtime)?;
            rt.block_on(async move {
                let app = App::new(config).await.map_err(RunError::Setup)?;
                serve(app, listeners, shutdown).await.map(|_| ())
            })
        }
        RuntimeLayout::PerCore => per_core(config, listeners, shutdown),
    };
    crate::trace::export::stop();
    served
}

/// A single-threaded runtime.
fn current_thread() -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)
}

/// The per-core layout: worker 0 runs on this thread, builds the shared state, owns the
/// side tasks and forwards `shutdown` to the other workers' runtimes.
fn per_core(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let workers = config.server.workers;
    let rt0 = current_thread()?;
    let (stop, stopped) = watch::channel(false);
    let (shared, main) = rt0.block_on(async move {
        let open = listeners.open().await?;
        let app = App::new(config).await.map_err(RunError::Setup)?;
        let shared = Shared::new(app).map_err(RunError::Setup)?;
        start_side_tasks(&shared, open.side);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        Ok::<_, RunError>((shared, open.main))
    })?;
    log_listening(&shared, &main, workers);
    let mut threads = Vec::new();
    for worker in 1..workers {
        let socket = main.try_clone().map_err(RunError::Runtime)?;
        let shared = shared.clone();
        let stopped = stopped.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("labgate-{worker}"))
            .spawn(move || {
                let rt = match current_thread() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, worker, "cannot start a worker runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(socket) {
                        Ok(l) => {
                            super::serve_worker(l, shared, worker, stopping(stopped)).await;
                        }
                        Err(e) => tracing::error!(error = %e, worker, "worker cannot listen"),
                    }
                });
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "cannot start a worker thread"),
        }
    }
    rt0.block_on(async move {
        let l = tokio::net::TcpListener::from_std(main).map_err(RunError::Runtime)?;
        super::serve_worker(l, shared, 0, stopping(stopped)).await;
        Ok::<_, RunError>(())
    })?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Resolves once `stopped` says so (or its sender is gone).
async fn stopping(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Serves `app` on `listeners` within the current runtime until `shutdown` resolves, then
/// drains; returns whether the drain finished within `server.shutdown_grace`.
pub async fn serve(
    app: Arc<App>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<bool, RunError> {
    let open = listeners.open().await?;
    let shared = Shared::new(app).map_err(RunError::Setup)?;
    start_side_tasks(&shared, open.side);
    log_listening(&shared, &open.main, 1);
    let main = tokio::net::TcpListener::from_std(open.main).map_err(RunError::Runtime)?;
    Ok(super::serve(main, shared, shutdown).await)
}

/// Says where labgate listens: the bound address (a configured port 0 is a free one).
fn log_listening(shared: &Shared, main: &std::net::TcpListener, workers: usize) {
    let server = &shared.app.config.server;
    let listen = main.local_addr().unwrap_or(server.listen);
    tracing::info!(%listen, workers, public_url = %server.public_url, "labgate listening");
}

/// GitLab discovery warm-up and the side listeners: metrics, the HTTP redirect, GitLab's
/// webhooks.
fn start_side_tasks(shared: &Arc<Shared>, side: Side) {
    let Side {
        metrics,
        http_redirect,
        webhooks,
        reload,
    } = side;
    if let Some(reload) = reload {
        tokio::spawn(super::reload::watch(shared.app.clone(), reload));
    }
    let warm = shared.app.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.gitlab.provider().await {
            tracing::warn!(error = %e, "GitLab discovery failed at start; will retry on first use");
        }
    });
    if let Some(l) = metrics {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(%addr, "metrics listening");
        }
        tokio::spawn(super::serve_metrics(l, shared.clone()));
    }
    if let Some(l) = http_redirect {
        tokio::spawn(super::serve_http_redirect(l, shared.clone()));
    }
    if let Some(l) = webhooks {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(%addr, "GitLab webhooks listening");
        }
        tokio::spawn(super::serve_webhooks(l, shared.clone()));
    }
}
