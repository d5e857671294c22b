//! labgate: a reverse-proxy authentication sidecar for GitLab sign-in.
//!
//! # Layout
//! Top-down: each module calls only modules listed below it.
//! ```text
//! main.rs / cli.rs   parse the command line, load config, run; check.rs: check --online
//! migrate/           `labgate migrate oauth2-proxy`: oauth2-proxy's config/flags -> labgate TOML
//! healthcheck.rs     `labgate healthcheck`: GET /ping or /ready on the configured listener
//! server.rs          listeners, TLS (tls.rs, tls_reload.rs), limits, graceful drain
//! admin.rs           /ping, /ready, /metrics and the side listeners
//! router.rs          the endpoint table, then the phases of an application request:
//!                    classify -> authenticate -> decide -> rewrite -> proxy -> log
//! signin.rs          /sign_in, /start, /callback, /sign_out
//! auth/              who is calling: session.rs (load, revalidation, grace),
//!                    bearer.rs (CI ID tokens, access tokens) -> identity::Principal
//! reject.rs          every refusal, rendered (HTML / JSON / status) in one place
//! app.rs             the shared state built from the config; sign-in URLs, rd targets
//! pages.rs, respond.rs   HTML pages; labgate's own responses
//! proxy/             streaming forward to the upstream, upgrades (also RFC 8441)
//! oauth/             gitlab.rs (the only code that talks to GitLab), redirect.rs (`rd`)
//! session/           the session, its sealed split cookies, the Redis store
//! identity/          Principal, the identity header table, the ES256 assertion, JWKS
//! forward_auth.rs    pure: the original request from one front proxy's headers
//! headers.rs         pure: hop-by-hop, identity / bearer / override stripping, forwarded
//! machine.rs         pure: CI claim matching, bearer parsing
//! access/            pure: the decision (subject, path readings, rules, narrowing)
//! config/            defaults < TOML < LABGATE__* env < flags; validation names keys;
//!                    access.rs + machine.rs compile the TOML into the pure policies;
//!                    published.rs refuses the examples' secrets
//! metrics.rs, telemetry.rs   Prometheus metrics; logging and the access log's caller slot
//! dev/               the GitLab stand-in and the echo upstream (`labgate dev`, tests);
//!                    only with the `dev` cargo feature (default; not in the image)
//! ```

#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod app;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod forward_auth;
pub mod headers;
pub mod healthcheck;
pub mod identity;
pub mod machine;
pub mod metrics;
pub mod migrate;
pub mod oauth;
pub mod pages;
pub mod proxy;
pub mod reject;
pub mod respond;
pub mod router;
pub mod server;
pub mod session;
pub mod signin;
pub mod telemetry;

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
