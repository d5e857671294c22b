//! The authenticate phase: who is calling? A bearer credential (CI/CD ID token or GitLab
//! access token, `bearer.rs`) or a session cookie (`session.rs`: load, single-flight and
//! cross-replica revalidation with GitLab, grace) becomes a typed [`Principal`], or a
//! [`Reject`]. What the caller may do is decided afterwards by [`crate::access`], the same
//! way for every kind of caller.

pub mod bearer;
pub mod session;

use http::HeaderMap;

use crate::app::App;
use crate::identity::Principal;
use crate::reject::Reject;

/// An authenticated caller and the cookies to set on the answer (a refreshed session).
#[derive(Debug)]
pub struct Authenticated {
    /// Who.
    pub principal: Principal,
    /// `Set-Cookie` values (cookie store: the session after a revalidation).
    pub cookies: Vec<String>,
}

/// Authenticates a request: its bearer credential when `[machine]` accepts one and the
/// request carries `Authorization: Bearer`, else its session cookie.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Authenticated, Reject> {
    if let Some(result) = bearer::authenticate(app, headers).await {
        return result.map(|principal| Authenticated {
            principal,
            cookies: Vec::new(),
        });
    }
    session::authenticate(app, headers).await
}
