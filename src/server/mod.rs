//! Listeners and connections: HTTP/1.1 and h2c on one port (or HTTPS with ALPN h2 and
//! http/1.1, `tls.rs`, `tls_reload.rs`), request-head limits, the slow-client timeout, a
//! bound on open connections, graceful drain on shutdown, the side listeners (`side.rs`)
//! and the runtime layouts (`runtime.rs`). Knows nothing of OAuth: every request goes to
//! [`crate::router::handle`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

mod activity;
mod limits;
pub mod runtime;
mod side;
pub mod tls;
pub mod tls_reload;

pub use activity::Tracked;
use activity::{Activity, Watched};
pub mod reload;
pub use runtime::{Listeners, RunError};
pub use side::{serve_http_redirect, serve_metrics, serve_webhooks};

use crate::app::App;
use crate::router::{self, Peer};

/// How often an idle HTTP/2 connection is PINGed, and how long the answer may take.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS handshake must finish within this time (slow clients).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn builder(app: &App) -> auto::Builder<TokioExecutor> {
    let cfg = &app.config.server;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_headers(cfg.max_headers)
        .max_buf_size(cfg.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(128)
        // Dead peers on idle HTTP/2 connections are found by PING and closed.
        .keep_alive_interval(Some(H2_KEEP_ALIVE_INTERVAL))
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
        // WebSockets over HTTP/2 (RFC 8441), translated to HTTP/1.1 upgrades upstream.
        .enable_connect_protocol();
    builder
}

/// What the listeners share beyond the request handlers' [`App`]: the HTTPS certificate
/// and the connection limits of the process.
pub struct Shared {
    /// The request handlers' state.
    pub app: Arc<App>,
    /// The HTTPS certificate, when `server.tls_cert_file` is set.
    tls: Option<Arc<tls_reload::TlsReloader>>,
    /// `server.max_connections` and the per-client cap, shared by every listener (main,
    /// metrics, HTTP redirect) and every worker runtime.
    limits: ConnectionLimits,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// The listeners' state for `app`: its certificate read, its limits set.
    pub fn new(app: Arc<App>) -> Result<Arc<Shared>, String> {
        let server = &app.config.server;
        let tls = match (&server.tls_cert_file, &server.tls_key_file) {
            (Some(cert), Some(key)) => {
                Some(tls_reload::TlsReloader::new(cert.clone(), key.clone())?)
            }
            _ => None,
        };
        let limits = ConnectionLimits::new(server);
        Ok(Arc::new(Shared { app, tls, limits }))
    }
}

/// The connection limits of one labgate process: `server.max_connections` and the
/// per-client table, shared by every listener and every worker runtime (with
/// `server.workers = N` a client still gets `max_connections_per_ip`, not N times it, and
/// the metrics and redirect listeners count against the same budget).
#[derive(Debug)]
struct ConnectionLimits {
    open: Arc<Semaphore>,
    per_ip: Arc<limits::PerIp>,
}

impl ConnectionLimits {
    /// The limits `server` sets.
    fn new(server: &crate::config::ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            open: Arc::new(Semaphore::new(server.max_connections)),
            per_ip: Arc::new(limits::PerIp::default()),
        }
    }
}

/// The deadlines of a connection once its first bytes have arrived.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    /// `server.idle_timeout`: no request begun, no response data taken, (almost) nothing
    /// read: the connection is closed gracefully.
    idle: Duration,
    /// `server.send_timeout`: the client takes no response data although some is waiting.
    send: Duration,
    /// `server.header_read_timeout`: for the first request to begin, and for a closing
    /// connection to make progress before it is dropped.
    linger: Duration,
}

impl Deadlines {
    fn of(app: &App) -> Deadlines {
        let s = &app.config.server;
        Deadlines {
            idle: s.idle_timeout,
            send: s.send_timeout,
            linger: s.header_read_timeout,
        }
    }
}

/// Bytes read that count as activity on their own (an upload's progress); less, over a
/// whole idle period, is PINGs and window updates.
const READ_ACTIVITY: u64 = 1024;

/// Serves `listener` until `shutdown` resolves, then stops accepting and gives in-flight
/// requests up to `server.shutdown_grace` to finish. Returns whether the drain finished.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) -> bool {
    serve_worker(listener, shared, 0, shutdown).await
}

/// [`serve`] as worker `worker` of several (each on its own runtime and listener), all
/// sharing the process's connection limits.
pub async fn serve_worker(
    listener: TcpListener,
    shared: Arc<Shared>,
    worker: usize,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let app = &shared.app;
    let builder = Arc::new(builder(app));
    // Every connection holds a receiver; the drain is over when the last one is dropped.
    let (drain, _) = watch::channel(false);
    let limit = shared.limits.open.clone();
    let per_ip = shared.limits.per_ip.clone();
    let deadlines = Deadlines::of(app);
    if let (Some(tls), 0) = (&shared.tls, worker) {
        tls.watch(app.config.server.tls_reload_interval);
    }
    let mut errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        // Back-pressure: at the connection limit, stop accepting until one closes.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    errors.failed(&e, "main");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One client address may hold only so many connections (front proxies exempt).
        let ip_slot = if crate::headers::is_trusted(&app.config.server.trusted_proxies, addr.ip()) {
            None
        } else {
            match limits::PerIp::admit(&per_ip, addr.ip(), app.config.server.max_connections_per_ip)
            {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(client = %addr.ip(), "per-client connection limit reached; closing");
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = shared.tls.as_ref().map(|t| t.acceptor());
        let builder = builder.clone();
        let watcher = drain.subscribe();
        // The connection's share of the limits, held for as long as the socket is open:
        // also by a WebSocket tunnel that outlives the HTTP connection.
        let hold = crate::proxy::ConnectionHold::new((permit, ip_slot));
        tokio::spawn(async move {
            app.metrics.open_connections.inc();
            let tls = acceptor.is_some();
            let peer = Peer { addr, tls, worker };
            let state = app.clone();
            let handler = move |req: http::Request<hyper::body::Incoming>| {
                router::handle(state.clone(), peer, hold.clone(), req)
            };
            match acceptor {
                // Boxed: a task holds its future for as long as the connection is open, and
                // the TLS handshake and stream would make every plain connection's as large.
                Some(acceptor) => {
                    Box::pin(async move {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => {
                                serve_conn(&builder, watcher, tls, deadlines, handler).await;
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    })
                    .await;
                }
                None => serve_conn(&builder, watcher, stream, deadlines, handler).await,
            }
            app.metrics.open_connections.dec();
        });
    }
    drop(listener);
    let grace = app.config.server.shutdown_grace;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    let _ = drain.send(true);
    match tokio::time::timeout(grace, drain.closed()).await {
        Ok(()) => {
            tracing::info!("all connections drained");
            true
        }
        Err(_) => {
            tracing::warn!("drain time over; closing the remaining connections");
            false
        }
    }
}

/// Serves one connection with `handler` under `deadlines`: its first bytes within
/// `linger` (before hyper picks a protocol), its first request within `linger`, then
/// closed gracefully when idle, and dropped when the client stops taking the response
/// (`send`) or a closing connection makes no progress (`linger`).
async fn serve_conn<I, H, F>(
    builder: &auto::Builder<TokioExecutor>,
    mut drain: watch::Receiver<bool>,
    io: I,
    deadlines: Deadlines,
    handler: H,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(http::Request<hyper::body::Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = http::Response<crate::proxy::Body>> + Send + 'static,
{
    // The first bytes within the header deadline, before hyper picks a protocol.
    let io = match limits::sniff(io, deadlines.linger).await {
        Ok(io) => io,
        Err(e) => {
            tracing::debug!(error = %e, "connection closed before a request began");
            return;
        }
    };
    let activity = Activity::new();
    let counted = activity.clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let pending = counted.begin();
        // Boxed: the request future is ~16 KiB; inline, hyper would hold that much for every
        // open connection, idle or not, and copy it at every request.
        let response = Box::pin(handler(req));
        async move { Ok::<_, Infallible>(pending.respond(response.await)) }
    });
    let io = TokioIo::new(Watched::new(io, activity.clone()));
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let period = (deadlines.idle.min(deadlines.send).min(deadlines.linger) / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    let started = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The reading at the last activity, and the frame count at the last tick.
    let mut last = activity.reading();
    let mut frames = last.frames;
    let mut active_at = started;
    let mut taking_at = started;
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            // Graceful either way: requests in flight (an upload, an event stream) finish;
            // HTTP/2 gets GOAWAY, HTTP/1 closes after the current response.
            _ = drain.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let r = activity.reading();
                if r.begun != last.begun
                    || r.frames != last.frames
                    || r.read >= last.read.saturating_add(READ_ACTIVITY)
                    || activity.awaiting_head()
                {
                    active_at = now;
                    last = r;
                }
                // The client takes response data, or none is waiting for it.
                if r.frames != frames || !activity.owed() {
                    taking_at = now;
                }
                frames = r.frames;
                let stuck = activity.write_blocked_for(now).unwrap_or_default();
                if now.duration_since(taking_at) >= deadlines.send || stuck >= deadlines.send {
                    tracing::debug!("the client stopped taking the response; connection dropped");
                    break;
                }
                if r.begun == 0 && now.duration_since(started) >= deadlines.linger {
                    tracing::debug!("no request began within the header deadline; connection dropped");
                    break;
                }
                match closing {
                    None if now.duration_since(active_at) >= deadlines.idle => {
                        tracing::debug!("idle connection closed");
                        conn.as_mut().graceful_shutdown();
                        closing = Some(now);
                    }
                    Some(since) if now.duration_since(active_at.max(since)) >= deadlines.linger => {
                        tracing::debug!("closing connection made no progress; dropped");
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// How long an accept loop pauses after an accept error (e.g. out of file descriptors),
/// instead of spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accept errors come in storms (out of file descriptors: one every back-off): the first is
/// logged, then one line every few seconds with how many were left out.
#[derive(Debug, Default)]
struct AcceptErrors {
    logged_at: Option<Instant>,
    left_out: u64,
}

impl AcceptErrors {
    const EVERY: Duration = Duration::from_secs(5);

    fn failed(&mut self, e: &std::io::Error, listener: &'static str) {
        let now = Instant::now();
        if self
            .logged_at
            .is_some_and(|at| now.duration_since(at) < Self::EVERY)
        {
            self.left_out += 1;
            return;
        }
        tracing::warn!(error = %e, listener, similar_errors_not_logged = self.left_out, "accept failed");
        self.logged_at = Some(now);
        self.left_out = 0;
    }
}

/// The listening socket every worker runtime accepts on (each registers its own clone of
/// it). Deliberately not SO_REUSEPORT: that would let any other process of the same user
/// (the application next to labgate in a pod runs as the same uid) bind the port too and
/// receive a share of the connections, session cookies and OAuth codes included; a port
/// already in use stays an error. Call within a runtime.
pub fn shared_listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)?.into_std()
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
