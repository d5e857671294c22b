//! The authenticate phase: who is calling? A bearer credential (CI/CD ID token or GitLab
//! access token, `bearer.rs`) or a session cookie (`session.rs`: load, single-flight and
//! cross-replica revalidation with GitLab, grace) becomes a typed [`Principal`], or a
//! [`Reject`]. What the caller may do is decided by [`crate::access`] in [`authorize`], the
//! same way for every kind of caller.

pub(crate) mod bearer;
pub(crate) mod session;

use http::HeaderMap;

use crate::access::{Decision, PathViews, Rules};

use crate::app::App;
use crate::identity::Principal;
use crate::reject::Reject;

/// An authenticated caller and the cookies to set on the answer (a refreshed session).
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// Who.
    pub principal: Principal,
    /// `Set-Cookie` values (cookie store: the session after a revalidation).
    pub cookies: Vec<String>,
    /// The GitLab event (its mark, Unix ms) this request's revalidation answered, if any:
    /// a refusal now is the event taking effect (`labgate_webhook_refusal_seconds`).
    pub marked: Option<u64>,
}

/// Whether a session cookie set on this answer reaches the browser. GitLab's refresh
/// tokens are single-use, so a cookie-store session must not be revalidated on an answer
/// whose `Set-Cookie` is dropped (Caddy's `forward_auth` drops it from 2xx answers): the
/// browser would keep the spent token and be signed out once no cache remembers the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieDelivery {
    /// `Set-Cookie` on this answer reaches the browser.
    Delivered,
    /// It does not: a due revalidation waits for an answer that can carry the cookie
    /// (within `revalidate_grace`).
    Dropped,
}

/// Authenticates a request: its bearer credential when `[machine]` accepts one and the
/// request carries `Authorization: Bearer`, else its session cookie.
pub(crate) async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    peer: std::net::IpAddr,
    delivery: CookieDelivery,
) -> Result<Authenticated, Reject> {
    let work = async {
        if let Some(result) = bearer::authenticate(app, headers, peer).await {
            return result.map(|principal| Authenticated {
                principal,
                cookies: Vec::new(),
                marked: None,
            });
        }
        session::authenticate(app, headers, delivery).await
    };
    crate::trace::span("authenticate", crate::trace::Kind::Internal, work, |r| {
        use opentelemetry::KeyValue;
        match r {
            Ok(a) => crate::trace::export::Outcome::ok(vec![KeyValue::new(
                "labgate.caller",
                a.principal.kind(),
            )]),
            Err(_) => {
                crate::trace::export::Outcome::ok(vec![KeyValue::new("labgate.caller", "refused")])
            }
        }
    })
    .await
}

/// Authenticate -> decide: the one admission every entry point uses (the proxy,
/// `/oauth2/auth`, `/oauth2/userinfo`). `peer` is the connection's address (the client's
/// is worked out from it and the forwarded headers only where a budget needs it); `host`
/// (canonical) and `paths` are `None` when the original request's are unknown;
/// `narrowing` is a forward-auth location's.
pub(crate) async fn authorize(
    app: &App,
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    host: Option<&str>,
    paths: Option<&PathViews>,
    narrowing: Option<&Rules>,
    delivery: CookieDelivery,
) -> Result<Authenticated, Reject> {
    let a = authenticate(app, headers, peer, delivery).await?;
    // A session made for one host's app opens nothing at another's.
    let made_for = a.principal.session().map(|s| s.host.as_deref());
    if let Some(bound) = made_for.and_then(|h| app.session_host(h)) {
        if host != Some(bound) {
            tracing::info!(
                target: "labgate::audit",
                user = %a.principal.username(),
                bound,
                host = host.unwrap_or("(unknown)"),
                "session presented at another host"
            );
            return Err(Reject::Unauthenticated { clear: Vec::new() });
        }
    }
    crate::telemetry::record_caller(&a.principal);
    match app
        .policy()
        .decide(a.principal.subject(), host, paths, narrowing)
    {
        Decision::Allow => Ok(a),
        Decision::Deny(deny) => {
            if let Some(marked) = a.marked {
                app.metrics.webhook_refusal(marked, app.clock.now_ms());
            }
            tracing::info!(
                target: "labgate::audit",
                user = %a.principal.username(),
                kind = a.principal.kind(),
                rule = deny.code(),
                host = host.unwrap_or("(unknown)"),
                path = paths.map_or("(unknown)", |p| p.forward.as_str()),
                "access denied"
            );
            Err(Reject::Forbidden {
                name: a.principal.username().to_owned(),
                deny,
                cookies: a.cookies,
            })
        }
    }
}
