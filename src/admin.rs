//! Operations endpoints: `/ping` (liveness), `/ready` (readiness: GitLab discovery loaded,
//! session store reachable), `/metrics` (Prometheus). The listeners that serve them alone
//! are `server::side`'s.

use http::{Response, StatusCode};

use crate::app::App;
use crate::proxy::Body;
use crate::respond;

/// `GET /ping`: the process answers.
pub(crate) fn ping() -> Response<Body> {
    respond::text(StatusCode::OK, "OK")
}

/// `GET /ready`: GitLab discovery is loaded and the session store answers.
pub(crate) async fn ready(app: &App) -> Response<Body> {
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

/// The Prometheus text exposition.
pub(crate) fn metrics_response(app: &App) -> Response<Body> {
    let mut r = Response::new(Body::from(app.metrics.render()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    r
}
