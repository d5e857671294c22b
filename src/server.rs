//! Listeners and connections: HTTP/1.1 and h2c on one port (or HTTPS with ALPN h2 and
//! http/1.1), request-head limits, the slow-client timeout, a bound on open connections,
//! and graceful drain on shutdown. Knows nothing of OAuth: every request goes to
//! [`crate::router::handle`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::router::{self, Peer};

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
        // WebSockets over HTTP/2 (RFC 8441), translated to HTTP/1.1 upgrades upstream.
        .enable_connect_protocol();
    builder
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and gives in-flight
/// requests up to `server.shutdown_grace` to finish. Returns whether the drain finished.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> bool {
    serve_worker(listener, app, 0, shutdown).await
}

/// [`serve`] as worker `worker` of several (each on its own runtime and listener).
pub async fn serve_worker(
    listener: TcpListener,
    app: Arc<App>,
    worker: usize,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let builder = Arc::new(builder(&app));
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(app.config.server.max_connections));
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
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
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
                    )
                    .await
                }
            }
            app.metrics.open_connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    let grace = app.config.server.shutdown_grace;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    match tokio::time::timeout(grace, graceful.shutdown()).await {
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
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    app: Arc<App>,
    peer: Peer,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(router::handle(app, peer, req).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
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
