//! labgate: a reverse-proxy authentication sidecar for GitLab sign-in.
//!
//! # Layout
//! Floors, top-down: each module imports only modules on a lower floor (and the few
//! same-floor arrows listed); `tests/it/layout.rs` reads every `crate::` path and holds it.
//! ```text
//! 10 main.rs            parse the command line, load the config, call in here, exit codes
//!  9 lib.rs             run / serve (re-exported from server::runtime)
//!    cli.rs             the command line (clap)
//!    check/             `labgate check`: the config described, notes, --online
//!    healthcheck.rs     `labgate healthcheck`: GET /ping or /ready on the listener
//!    migrate/           `labgate migrate oauth2-proxy`: oauth2-proxy's config -> labgate TOML
//!    revoke.rs          `labgate sessions revoke`: an operator ends a user's sessions
//!    dev/               the GitLab stand-in and the echo upstream (`labgate dev`, tests);
//!                       only with the `dev` cargo feature (default; not in the image)
//!  8 server/            listeners, TLS + reload, limits, drain, side listeners, runtime
//!                       layouts and run (server::Shared: the certificate, the limits)
//!  7 router.rs          the endpoint table, then the phases of an application request:
//!                       classify -> authenticate -> decide -> rewrite -> proxy -> log
//!  6 signin.rs          /sign_in, /start, /callback, /sign_out
//!    forward_auth/endpoint.rs   /auth: the same admission for a front proxy's request
//!    userinfo.rs        /userinfo, /jwks.json
//!    admin.rs           /ping, /ready, /metrics handlers
//!    webhooks.rs        /webhooks/gitlab: GitLab's member and system hooks mark sessions due
//!    sessions_page.rs   /sessions: a person's own sessions, listed and ended
//!  5 auth/              who is calling: session.rs (load, revalidation, grace),
//!                       bearer.rs (CI ID tokens, access tokens) -> identity::Principal;
//!                       authorize: authenticate, then the access decision
//!  4 reject.rs          every refusal, rendered (HTML / JSON / status) in one place
//!  3 app.rs             the shared state built from the config (composition only)
//!  2 oauth/gitlab.rs    the only code that talks to GitLab (-> metrics, oauth::flow)
//!    session/           the session, its sealed split cookies, the stores, the refresh
//!                       gate, the access-token cache
//!    identity/          Principal, the identity header table, the assertion, JWKS (-> session)
//!    proxy/             streaming forward to the upstream, upgrades (also RFC 8441)
//!    forward_auth/      the original request from one front proxy's headers (-> identity)
//!    pages.rs, respond.rs (-> proxy::Body), telemetry.rs (-> identity), metrics.rs
//!  1 config/            defaults < TOML < LABGATE__* env < flags; validation names keys;
//!                       access.rs + machine.rs compile the TOML into the pure policies
//!  0 access/            the decision (subject, host, path readings, rules, narrowing);
//!                       host.rs: the one canonical host reading, host patterns
//!    machine.rs         CI claim matching, bearer parsing (-> access, headers)
//!    headers.rs         hop-by-hop, identity / bearer / override stripping, forwarded
//!    oauth/flow.rs      the sign-in's secrets and checks, no I/O
//!    oauth/redirect.rs  `rd` validation
//!    trace/             W3C trace context: continued from a trusted proxy or started;
//!                       export.rs: the spans of sampled traces over OTLP (when configured)
//! ```

#![forbid(unsafe_code)]
// The request future (spans around authenticate and the GitLab calls, the stores'
// connection futures) is nested deeper than the compiler's default query depth.
#![recursion_limit = "256"]

pub mod access;
pub(crate) mod admin;
pub mod app;
pub(crate) mod auth;
pub mod check;
pub mod cli;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod forward_auth;
pub mod headers;
pub mod healthcheck;
pub mod identity;
pub(crate) mod machine;
pub mod metrics;
pub mod migrate;
pub mod oauth;
pub(crate) mod pages;
pub(crate) mod proxy;
pub(crate) mod reject;
pub(crate) mod respond;
pub mod revoke;
pub(crate) mod router;
pub mod server;
pub mod session;
pub(crate) mod sessions_page;
pub(crate) mod signin;
pub mod telemetry;
pub mod trace;
pub(crate) mod userinfo;
pub(crate) mod webhooks;

pub use server::runtime::{run, serve};
pub use server::{Listeners, RunError};

use base64::Engine;
use rand::RngCore;

/// A random URL-safe token of `bytes` random bytes (session ids, jti).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A fresh cookie secret: 32 random bytes, base64.
pub fn generate_cookie_secret() -> String {
    let mut buf = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}
