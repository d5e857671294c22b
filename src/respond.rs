//! Building labgate's own responses: pages, JSON, redirects, with `Cache-Control: no-store`
//! and the security headers on every one.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderMap, Response, StatusCode};

use crate::proxy::Body;

/// Whether the client is a browser navigation (wants HTML) rather than an API call.
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

fn secure(resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

/// A page whose forms post back to labgate: same-origin requests carry the page's origin
/// (under `no-referrer` a browser sends `Origin: null` with a form's POST, which the
/// cross-site check must refuse); other sites still get no referrer.
pub(crate) fn posting_forms(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("same-origin"));
    resp
}

/// An HTML page with the pages' CSP.
pub(crate) fn html(status: StatusCode, body: String, csp: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(csp) {
        resp.headers_mut().insert("content-security-policy", v);
    }
    secure(&mut resp);
    resp
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    secure(&mut resp);
    resp
}

/// A JSON error `{"error": code, "message": text}`.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": code, "message": message }),
    )
}

/// Plain text (probes).
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure(&mut resp);
    resp
}

/// A 302 to `location`.
pub(crate) fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    let v = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
    resp.headers_mut().insert(LOCATION, v);
    secure(&mut resp);
    resp
}

/// Adds `Set-Cookie` headers.
pub(crate) fn with_cookies(mut resp: Response<Body>, cookies: Vec<String>) -> Response<Body> {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp
}

/// Percent-encodes a query parameter value.
pub(crate) fn query_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Finds a query parameter (decoded).
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
