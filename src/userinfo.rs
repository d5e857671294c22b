//! What labgate says about identities at its own endpoints: `{prefix}/userinfo` (the
//! caller, after the same admission as any request to that path) and `{prefix}/jwks.json`
//! (the keys that verify the assertion).

use std::net::IpAddr;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{Request, Response, StatusCode};

use crate::access::PathViews;
use crate::app::App;
use crate::auth::{self, CookieDelivery};
use crate::proxy::Body;
use crate::reject::Style;
use crate::respond;

/// `GET /userinfo`: the caller's identity as JSON, after the same admission as any
/// request to this path.
pub(crate) async fn userinfo<B>(app: &App, peer: IpAddr, req: &Request<B>) -> Response<Body> {
    let views = PathViews::new(req.uri().path());
    // The host is judged like an app request's: an unreadable one faces every route.
    let host = app.request_host(req).ok();
    match auth::authorize(
        app,
        peer,
        req.headers(),
        host.as_ref().map(|h| h.name.as_str()),
        Some(&views),
        None,
        CookieDelivery::Delivered,
    )
    .await
    {
        Ok(a) => {
            let u = a.principal.user();
            let body = serde_json::json!({
                "user": u.username,
                "preferred_username": u.username,
                "user_id": u.id,
                "name": u.name,
                "email": if u.email_verified { u.email.clone() } else { None },
                "email_verified": u.email_verified,
                "groups": u.groups,
                "kind": a.principal.kind(),
            });
            respond::with_cookies(respond::json(StatusCode::OK, &body), a.cookies)
        }
        Err(reject) => reject.render(&app.pages, &Style::default()),
    }
}

/// `GET /jwks.json`: the keys that verify the assertion, with an ETag.
pub(crate) fn jwks<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let (body, etag) = app.signer.jwks();
    let matches = req
        .headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.trim() == "*" || t.trim().trim_start_matches("W/") == etag.to_str().unwrap_or("")
        });
    let mut resp = if matches {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(body));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    };
    resp.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    resp.headers_mut().insert(ETAG, etag);
    resp
}
