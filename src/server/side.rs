//! The side listeners: Prometheus `/metrics` alone (`server.metrics_listen`), the
//! plain-HTTP redirect to https public_url (`server.http_redirect_listen`) and GitLab's
//! webhooks alone (`server.webhook_listen`), under the main listener's limits and deadlines.

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
        let resp = if req.uri().path() == "/metrics" {
            crate::admin::metrics_response(&app)
        } else {
            respond::text(StatusCode::NOT_FOUND, "not found")
        };
        async move { resp }
    })
    .await;
}

/// Serves `POST {prefix}/webhooks/gitlab` alone on its own listener
/// (`server.webhook_listen`): GitLab reaches it, browsers and the apps' users need not.
pub async fn serve_webhooks(listener: TcpListener, shared: Arc<Shared>) {
    let app = shared.app.clone();
    let path: Arc<str> = app.url("/webhooks/gitlab").into();
    serve_side(listener, shared, move |req| {
        let app = app.clone();
        let path = path.clone();
        async move {
            // Origin-form only, as on the main listener.
            if req.uri().authority().is_some() {
                return respond::json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "only origin-form request targets (/path?query) are accepted",
                );
            }
            match (req.method(), req.uri().path() == &*path) {
                (&http::Method::POST, true) => crate::webhooks::gitlab(&app, req).await,
                (_, true) => {
                    let mut r = respond::json_error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method_not_allowed",
                        "GitLab's webhooks are POSTed",
                    );
                    r.headers_mut()
                        .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
                    r
                }
                _ => respond::json_error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "this listener serves GitLab's webhooks only",
                ),
            }
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
        async move { r }
    })
    .await;
}

/// Serves a side listener (metrics, the plain-HTTP redirect) with `handler`, under the
/// main listener's limits (the same connection budget and per-client table) and the same
/// connection deadlines, backing off on accept errors.
async fn serve_side<F, R>(listener: TcpListener, shared: Arc<Shared>, handler: F)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> R + Clone + Send + Sync + 'static,
    R: std::future::Future<Output = http::Response<crate::proxy::Body>> + Send + 'static,
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
            serve_conn(&builder, drain, stream, deadlines, handler).await;
            drop(ip_slot);
            drop(permit);
        });
    }
}
