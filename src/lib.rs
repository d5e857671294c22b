//! labgate: a reverse-proxy authentication sidecar for GitLab sign-in.
//!
//! # Layout
//! ```text
//! main.rs / cli.rs   parse the command line, load config, run
//! config/            defaults < TOML < LABGATE__* env < flags; validation names keys
//! server.rs          listeners, limits, graceful drain (knows nothing of OAuth)
//! router.rs          the one branch point: probes | own endpoints | public | protected
//! oauth/             own endpoints and the sign-in flow; gitlab.rs talks to GitLab,
//!                    redirect.rs validates `rd`
//! session/           the session and its sealed, split cookies
//! access/            pure decision: (user, path readings, rules) -> Allow | Deny
//! forward_auth.rs   /oauth2/auth for nginx auth_request, Traefik, Caddy, ingress-nginx
//! headers.rs         pure header rewriting: hop-by-hop, identity stripping, X-Forwarded-*
//! identity.rs        the ES256 assertion and its JWKS
//! proxy/             streaming forward to the upstream, upgrades, 502/504
//! pages.rs           HTML pages; respond.rs builds labgate's own responses
//! dev/               the GitLab stand-in and the echo upstream (`labgate dev`, tests)
//! ```
//! Data flows one way: classify -> authenticate -> authorize -> rewrite -> forward -> log.

#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod dev;
pub mod forward_auth;
pub mod headers;
pub mod identity;
pub mod machine;
pub mod metrics;
pub mod oauth;
pub mod pages;
pub mod proxy;
pub mod respond;
pub mod router;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod tls;
pub mod tls_reload;

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
