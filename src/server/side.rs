//! The side listeners: Prometheus `/metrics` alone (`server.metrics_listen`) and the
//! plain-HTTP redirect to https public_url (`server.http_redirect_listen`), under the main
//! listener's limits and deadlines.

use std::sync::Arc;

use http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{builder, serve_conn, AcceptErrors, Deadlines, Shared, ACCEPT_BACKOFF};
use crate::respond;

/// Serves `/metrics` alone on its own listener (`server.metrics_listen`).
pub async fn serve_metrics(listener: TcpListener, shared: Arc<Shared>) {
    let app = shared.app.clone();
    serve_side(listener, shared, move |req| {
        if req.uri().path() == "/metrics" {
            crate::admin::metrics_response(&app)
        } else {
            respond::text(StatusCode::NOT_FOUND, "not found")
        }
    })
    .await;
}

/// Redirects every plain-HTTP request to the same path on https `public_url`
/// (`server.http_redirect_listen`).
pub async fn serve_http_redirect(listener: TcpListener, shared: Arc<Shared>) {
    let base = shared.app.config.server.public_base().to_owned();
    serve_side(listener, shared, move |req| {
        let target = format!(
            "{base}{}",
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let mut r = respond::redirect(&target);
        *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
        r
    })
    .await;
}

/// Serves a side listener (metrics, the plain-HTTP redirect) with `handler`, under the
/// main listener's limits (the same connection budget and per-client table) and the same
/// connection deadlines, backing off on accept errors.
async fn serve_side<F>(listener: TcpListener, shared: Arc<Shared>, handler: F)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> http::Response<crate::proxy::Body>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let app = &shared.app;
    let builder = Arc::new(builder(app));
    let cfg = &app.config.server;
    let limit = shared.limits.open.clone();
    let per_ip = shared.limits.per_ip.clone();
    let deadlines = Deadlines::of(app);
    // Side listeners are not drained: they end with the process.
    let (_never, drain) = watch::channel(false);
    let mut errors = AcceptErrors::default();
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let (stream, addr) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                errors.failed(&e, "side");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let ip_slot = if crate::headers::is_trusted(&cfg.trusted_proxies, addr.ip()) {
            None
        } else {
            match super::limits::PerIp::admit(&per_ip, addr.ip(), cfg.max_connections_per_ip) {
                Some(slot) => Some(slot),
                None => continue,
            }
        };
        let builder = builder.clone();
        let handler = handler.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            let handler = move |req| {
                let resp = handler(req);
                async move { resp }
            };
            serve_conn(&builder, drain, stream, deadlines, handler).await;
            drop(ip_slot);
            drop(permit);
        });
    }
}
