//! Operations endpoints and side listeners: `/ping` (liveness), `/ready` (readiness: GitLab
//! discovery loaded, session store reachable), `/metrics` (Prometheus), the separate
//! metrics listener (`server.metrics_listen`) and the plain-HTTP redirect listener
//! (`server.http_redirect_listen`).

use std::sync::Arc;

use http::{Response, StatusCode};
use tokio::net::TcpListener;

use crate::app::App;
use crate::proxy::Body;
use crate::respond;

/// `GET /ping`: the process answers.
pub fn ping() -> Response<Body> {
    respond::text(StatusCode::OK, "OK")
}

/// `GET /ready`: GitLab discovery is loaded and the session store answers.
pub async fn ready(app: &App) -> Response<Body> {
    if !(app.gitlab.discovered() || app.gitlab.provider().await.is_ok()) {
        return respond::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "GitLab discovery not loaded",
        );
    }
    if app.sessions.ready().await.is_err() {
        return respond::text(StatusCode::SERVICE_UNAVAILABLE, "session store unreachable");
    }
    respond::text(StatusCode::OK, "OK")
}

/// Serves `/metrics` alone on its own listener (`server.metrics_listen`), with the main
/// listener's connection limits.
pub async fn serve_metrics(listener: TcpListener, app: Arc<App>) {
    let state = app.clone();
    crate::server::serve_side(listener, app, move |req| {
        if req.uri().path() == "/metrics" {
            metrics_response(&state)
        } else {
            respond::text(StatusCode::NOT_FOUND, "not found")
        }
    })
    .await;
}

/// The Prometheus text exposition.
pub fn metrics_response(app: &App) -> Response<Body> {
    let mut r = Response::new(Body::from(app.metrics.render()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    r
}

/// Redirects every plain-HTTP request to the same path on https `public_url`
/// (`server.http_redirect_listen`), with the main listener's connection limits.
pub async fn serve_http_redirect(listener: TcpListener, app: Arc<App>) {
    let base = app.config.server.public_base().to_owned();
    crate::server::serve_side(listener, app, move |req| {
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
