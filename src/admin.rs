//! Operations endpoints and side listeners: `/ping` (liveness), `/ready` (readiness: GitLab
//! discovery loaded, session store reachable), `/metrics` (Prometheus), the separate
//! metrics listener (`server.metrics_listen`) and the plain-HTTP redirect listener
//! (`server.http_redirect_listen`).

use std::convert::Infallible;
use std::sync::Arc;

use http::{Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
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

/// Serves `/metrics` alone on its own listener (`server.metrics_listen`).
pub async fn serve_metrics(listener: TcpListener, app: Arc<App>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        metrics_response(&app)
                    } else {
                        crate::respond::text(StatusCode::NOT_FOUND, "not found")
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
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
/// (`server.http_redirect_listen`).
pub async fn serve_http_redirect(listener: TcpListener, app: Arc<App>) {
    let base = app
        .config
        .server
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let base = base.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let target = format!(
                    "{base}{}",
                    req.uri().path_and_query().map_or("/", |p| p.as_str())
                );
                let mut r = crate::respond::redirect(&target);
                *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
