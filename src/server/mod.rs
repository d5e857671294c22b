//! Listeners and connections: HTTP/1.1 and h2c on one port (or HTTPS with ALPN h2 and
//! http/1.1), request-head limits, the slow-client timeout, a bound on open connections,
//! and graceful drain on shutdown. Knows nothing of OAuth: every request goes to
//! [`crate::router::handle`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

mod limits;

use crate::app::App;
use crate::router::{self, Peer};

/// How often an idle HTTP/2 connection is PINGed, and how long the answer may take.
const H2_KEEP_ALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A TLS handshake must finish within this time (slow clients).
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
        .max_concurrent_streams(250)
        // Dead peers on idle HTTP/2 connections are found by PING and closed.
        .keep_alive_interval(Some(H2_KEEP_ALIVE_INTERVAL))
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
        // WebSockets over HTTP/2 (RFC 8441), translated to HTTP/1.1 upgrades upstream.
        .enable_connect_protocol();
    builder
}

/// The connection limits of one labgate process: `server.max_connections` and the
/// per-client table, shared by every worker runtime (with `server.workers = N` a client
/// still gets `max_connections_per_ip`, not N times it).
#[derive(Debug)]
pub struct ConnectionLimits {
    open: Arc<Semaphore>,
    per_ip: Arc<limits::PerIp>,
}

impl ConnectionLimits {
    /// The limits `app`'s configuration sets.
    pub fn new(app: &App) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            open: Arc::new(Semaphore::new(app.config.server.max_connections)),
            per_ip: Arc::new(limits::PerIp::default()),
        })
    }
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and gives in-flight
/// requests up to `server.shutdown_grace` to finish. Returns whether the drain finished.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let limits = ConnectionLimits::new(&app);
    serve_worker(listener, app, 0, limits, shutdown).await
}

/// [`serve`] as worker `worker` of several (each on its own runtime and listener), all
/// sharing `limits`.
pub async fn serve_worker(
    listener: TcpListener,
    app: Arc<App>,
    worker: usize,
    limits: Arc<ConnectionLimits>,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let builder = Arc::new(builder(&app));
    // Every connection holds a receiver; the drain is over when the last one is dropped.
    let (drain, _) = watch::channel(false);
    let limit = limits.open.clone();
    let per_ip = limits.per_ip.clone();
    if let (Some(tls), 0) = (&app.tls, worker) {
        tls.watch(app.config.server.tls_reload_interval);
    }
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
                    tracing::warn!(error = %e, "accept failed");
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
        let builder = builder.clone();
        let watcher = drain.subscribe();
        // The connection's share of the limits, held for as long as the socket is open:
        // also by a WebSocket tunnel that outlives the HTTP connection.
        let hold = crate::proxy::ConnectionHold::new((permit, ip_slot));
        tokio::spawn(async move {
            app.metrics.open_connections.inc();
            match app.tls.as_ref().map(|t| t.acceptor()) {
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            serve_conn(
                                &builder,
                                watcher,
                                tls,
                                app.clone(),
                                Peer {
                                    addr,
                                    tls: true,
                                    worker,
                                },
                                hold,
                            )
                            .await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
                None => {
                    serve_conn(
                        &builder,
                        watcher,
                        stream,
                        app.clone(),
                        Peer {
                            addr,
                            tls: false,
                            worker,
                        },
                        hold,
                    )
                    .await
                }
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

async fn serve_conn<I>(
    builder: &auto::Builder<TokioExecutor>,
    mut drain: watch::Receiver<bool>,
    io: I,
    app: Arc<App>,
    peer: Peer,
    hold: crate::proxy::ConnectionHold,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The first bytes within the header deadline, before hyper picks a protocol.
    let io = match limits::sniff(io, app.config.server.header_read_timeout).await {
        Ok(io) => io,
        Err(e) => {
            tracing::debug!(error = %e, "connection closed before a request began");
            return;
        }
    };
    let idle = app.config.server.idle_timeout;
    // Requests begun on this connection: unchanged over a whole idle period means idle.
    let begun = Arc::new(AtomicU64::new(0));
    let counter = begun.clone();
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let app = app.clone();
        counter.fetch_add(1, Ordering::Relaxed);
        req.extensions_mut().insert(hold.clone());
        async move { Ok::<_, Infallible>(router::handle(app, peer, req).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + idle, idle);
    let mut seen = 0;
    let mut closing = false;
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
            _ = drain.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tick.tick(), if !closing => {
                let now = begun.load(Ordering::Relaxed);
                if now == seen {
                    tracing::debug!("idle connection closed");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                seen = now;
            }
        }
    }
}

/// How long an accept loop pauses after an accept error (e.g. out of file descriptors),
/// instead of spinning on it.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Serves a side listener (metrics, the plain-HTTP redirect) with `handler` and the main
/// listener's limits: a connection cap, the per-client cap, the first-bytes and header
/// deadlines, and back-off on accept errors.
pub async fn serve_side<F>(listener: TcpListener, app: Arc<App>, handler: F)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> http::Response<crate::proxy::Body>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let builder = Arc::new(builder(&app));
    let cfg = &app.config.server;
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let per_ip = Arc::new(limits::PerIp::default());
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let (stream, addr) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed on a side listener");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = limits::PerIp::admit(&per_ip, addr.ip(), cfg.max_connections_per_ip)
        else {
            continue;
        };
        let builder = builder.clone();
        let handler = handler.clone();
        let deadline = cfg.header_read_timeout;
        tokio::spawn(async move {
            if let Ok(io) = limits::sniff(stream, deadline).await {
                let svc = service_fn(move |req| {
                    let resp = handler(req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                if let Err(e) = builder.serve_connection(TokioIo::new(io), svc).await {
                    tracing::debug!(error = %e, "side connection ended with an error");
                }
            }
            drop(slot);
            drop(permit);
        });
    }
}

/// A listener on `addr` with SO_REUSEPORT, so that every worker runtime can accept on its
/// own socket and the kernel spreads connections across them.
pub fn reuseport_listener(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
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
