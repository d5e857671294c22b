//! Secrets an operator must not run with (SPEC §9): every secret value that appears in this
//! repository's examples, docs and demo configs (anyone can read them, so a cookie secret
//! from there lets anyone forge a session as any user), and placeholders a human typed
//! instead of running `labgate keygen`. The demo's GitLab client secret is accepted only
//! against a GitLab on loopback (the stand-in, e.g. for `bench/run`). `labgate run` and `labgate check` refuse them;
//! only `labgate dev` (the demo, on loopback) accepts them.

use crate::config::{decode_cookie_secret, Config, Problem};

/// The files whose secrets are public, as shipped.
const PUBLISHED_FILES: &[&str] = &[
    include_str!("../../config/dev.toml"),
    include_str!("../../config/labgate.example.toml"),
    include_str!("../../deploy/nginx/dev.toml"),
    include_str!("../../deploy/kubernetes/example-secret.yaml"),
    include_str!("../../README.md"),
    include_str!("../../docs/migration.md"),
];

/// Keys whose values in those files are secrets (TOML keys and Kubernetes Secret keys).
const SECRET_KEYS: &[&str] = &[
    "cookie_secret",
    "client_secret",
    "redis_password",
    "webhook_secret",
    "cookie-secret",
    "client-secret",
    "redis-password",
];

/// Every quoted value given to a secret key in the published files.
fn published_values() -> Vec<String> {
    let mut out = Vec::new();
    for text in PUBLISHED_FILES {
        for line in text.lines() {
            let line = line.trim_start().trim_start_matches('#').trim_start();
            let Some(key) = SECRET_KEYS.iter().find(|k| line.starts_with(*k)) else {
                continue;
            };
            let rest = line
                .get(key.len()..)
                .unwrap_or("")
                .trim_start()
                .trim_start_matches(['=', ':'])
                .trim_start();
            // `"value"`, or a list `["a", "b"]`: every quoted string.
            let mut parts = rest.split('"');
            parts.next();
            while let (Some(value), _) = (parts.next(), parts.next()) {
                if !value.is_empty() {
                    out.push(value.to_owned());
                }
            }
        }
    }
    out
}

/// Whether a cookie secret reads as typed text rather than random bytes: 32 random bytes
/// are all printable ASCII with a probability near 1e-14; a placeholder always is.
fn looks_typed(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
}

/// Whether `url`'s host is this machine (the demo's GitLab stand-in).
fn loopback(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// The secrets of `cfg` an operator must not run with, each naming its key and the fix.
pub fn problems(cfg: &Config) -> Vec<Problem> {
    let published = published_values();
    let is_published = |v: &str| published.iter().any(|p| p == v.trim());
    let mut out = Vec::new();
    let fix = "create one with `labgate keygen` (only `labgate dev` runs with the demo's)";
    for (i, s) in cfg.session.cookie_secrets.iter().enumerate() {
        let key = if cfg.session.cookie_secrets.len() > 1 {
            format!("session.cookie_secret[{i}]")
        } else {
            "session.cookie_secret".to_owned()
        };
        if is_published(s.expose()) {
            out.push(Problem {
                key,
                message: format!("this cookie secret is published in labgate's examples: anyone could forge a session with it; {fix}"),
            });
        } else if decode_cookie_secret(s.expose()).is_some_and(|b| looks_typed(&b)) {
            out.push(Problem {
                key,
                message: format!("this cookie secret decodes to typed text, not random bytes (a placeholder?); {fix}"),
            });
        }
    }
    // The demo's client secret opens nothing at a real GitLab; it is refused there as the
    // placeholder it is, and accepted against a GitLab on loopback (the stand-in).
    if is_published(cfg.gitlab.client_secret.expose()) && !loopback(&cfg.gitlab.url) {
        out.push(Problem {
            key: "gitlab.client_secret".into(),
            message: "this is a placeholder or the demo's secret from labgate's examples: paste the Secret GitLab showed when you created the application (Renew secret if it is lost)".into(),
        });
    }
    if cfg
        .gitlab
        .webhook_secret
        .as_ref()
        .is_some_and(|s| is_published(s.expose()))
    {
        out.push(Problem {
            key: "gitlab.webhook_secret".into(),
            message: format!("this secret is published in labgate's examples: anyone could send labgate GitLab's events; {fix}"),
        });
    }
    if let Some(p) = cfg.session.redis.as_ref().and_then(|r| r.password.as_ref()) {
        if is_published(p.expose()) {
            out.push(Problem {
                key: "session.redis_password".into(),
                message: "this password is published in labgate's examples; use your Redis's own"
                    .into(),
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_published_values_are_found() {
        let v = published_values();
        for known in [
            "ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE=",
            "gloas-labgate-dev-secret",
        ] {
            assert!(v.iter().any(|p| p == known), "{known} in {v:?}");
        }
        assert!(looks_typed(b"dev-only-cookie-secret-32-bytes!"));
        assert!(!looks_typed(&[0x9f, 0x00, 0x41]));
    }
}
