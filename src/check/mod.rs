//! `labgate check --online`: asks GitLab whether the application is set up right, before
//! anyone tries to sign in, and names each problem with its fix in GitLab's own words.
//!
//! Nothing is changed in GitLab and no user is needed: the authorize endpoint is asked
//! without following redirects, and the token endpoint gets a deliberately invalid code
//! (`invalid_client` = wrong Application ID / Secret, `invalid_grant` = they are right).

mod offline;
pub use offline::{notes, report};

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Config, StoreKind, UpstreamTarget};
use crate::oauth::gitlab::{http_client, Provider};

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name, e.g. "discovery".
    pub name: &'static str,
    /// "ok", "problem" or "skipped".
    pub status: &'static str,
    /// What was found.
    pub detail: String,
    /// How to fix it (problems only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: "ok",
            detail: detail.into(),
            fix: None,
        }
    }
    fn problem(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: "problem",
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn skipped(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: "skipped",
            detail: detail.into(),
            fix: None,
        }
    }
    /// Whether this check found a problem.
    pub fn failed(&self) -> bool {
        self.status == "problem"
    }
}

/// Most clock skew tolerated against GitLab (ID tokens live 120 s).
const MAX_SKEW: Duration = Duration::from_secs(30);

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn is_tls_trust(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("certificate") || t.contains("unknownissuer") || t.contains("invalid peer")
}

/// Runs every online check.
pub async fn run(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let g = &config.gitlab;
    let http = match http_client(g) {
        Ok(h) => h,
        Err(e) => {
            out.push(Check::problem("gitlab-client", e, "fix gitlab.ca_file"));
            return out;
        }
    };
    let provider = discovery(&http, config, &mut out).await;
    match &provider {
        Some(p) => {
            jwks(&http, p, &mut out).await;
            authorize(&http, config, p, &mut out).await;
            secret(&http, config, p, &mut out).await;
        }
        None => {
            for name in ["jwks", "application", "redirect-uri", "scopes", "secret"] {
                out.push(Check::skipped(name, "needs the discovery document"));
            }
        }
    }
    store(config, &mut out).await;
    upstreams(config, &mut out).await;
    cookies(config, &mut out);
    out
}

async fn discovery(
    http: &reqwest::Client,
    config: &Config,
    out: &mut Vec<Check>,
) -> Option<Provider> {
    let g = &config.gitlab;
    let url = format!("{}/.well-known/openid-configuration", g.url);
    let before = std::time::SystemTime::now();
    let resp = match http.get(&url).send().await {
        Ok(r) => r,
        Err(e) => {
            let text = describe(&e);
            let fix = if is_tls_trust(&text) {
                "GitLab's TLS certificate is not trusted: if your GitLab uses a private CA, set gitlab.ca_file to that CA's PEM file".to_owned()
            } else {
                format!(
                    "check gitlab.url ({}) and that this host can reach it (DNS, firewall, proxy)",
                    g.url
                )
            };
            out.push(Check::problem(
                "discovery",
                format!("cannot reach {url}: {text}"),
                fix,
            ));
            return None;
        }
    };
    if let Some(date) = resp
        .headers()
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
    {
        if let Ok(theirs) = httpdate::parse_http_date(date) {
            let ours = before;
            let skew = ours
                .duration_since(theirs)
                .or_else(|e| Ok::<_, ()>(e.duration()))
                .unwrap_or_default();
            if skew > MAX_SKEW {
                out.push(Check::problem(
                    "clock",
                    format!("this host's clock differs from GitLab's by {}s", skew.as_secs()),
                    "synchronise the clock (NTP): GitLab's ID tokens live 120 s and are checked with 30 s leeway",
                ));
            } else {
                out.push(Check::ok(
                    "clock",
                    format!("within {}s of GitLab's", skew.as_secs()),
                ));
            }
        }
    }
    if !resp.status().is_success() {
        out.push(Check::problem(
            "discovery",
            format!("{url} answered {}", resp.status()),
            "gitlab.url must be the GitLab base URL (e.g. https://gitlab.com or https://example.com/gitlab), without /oauth or /api",
        ));
        return None;
    }
    let p: Provider = match resp.json().await {
        Ok(p) => p,
        Err(e) => {
            out.push(Check::problem(
                "discovery",
                format!("{url} is not a discovery document: {e}"),
                "gitlab.url must point at GitLab",
            ));
            return None;
        }
    };
    if p.issuer != g.url {
        let fix = if p.issuer.trim_end_matches('/') == g.url.trim_end_matches('/') {
            format!(
                "write gitlab.url exactly as GitLab's issuer: {:?} (trailing slash)",
                p.issuer
            )
        } else if p.issuer.split_once("://").map(|x| x.1) == g.url.split_once("://").map(|x| x.1) {
            format!("GitLab's issuer is {:?}: use the same scheme (http/https) in gitlab.url; on self-managed GitLab check external_url", p.issuer)
        } else {
            format!(
                "set gitlab.url to GitLab's issuer {:?}, or fix external_url in GitLab",
                p.issuer
            )
        };
        out.push(Check::problem(
            "discovery",
            format!("issuer {:?} is not gitlab.url {:?}", p.issuer, g.url),
            fix,
        ));
        return None;
    }
    out.push(Check::ok(
        "discovery",
        format!("{url}: issuer {}", p.issuer),
    ));
    Some(p)
}

async fn jwks(http: &reqwest::Client, p: &Provider, out: &mut Vec<Check>) {
    let keys: Result<jsonwebtoken::jwk::JwkSet, String> = async {
        let r = http
            .get(&p.jwks_uri)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        if !r.status().is_success() {
            return Err(format!("answered {}", r.status()));
        }
        r.json().await.map_err(|e| e.to_string())
    }
    .await;
    match keys {
        Ok(set) => {
            let rs256 = set
                .keys
                .iter()
                .filter(|k| {
                    matches!(k.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_))
                        && k.common.key_id.is_some()
                })
                .count();
            if rs256 == 0 {
                out.push(Check::problem("jwks", format!("{} has no RSA keys with a kid", p.jwks_uri), "GitLab's OIDC signing key is missing: on self-managed GitLab, check the openid_connect_signing_key setting"));
            } else {
                out.push(Check::ok(
                    "jwks",
                    format!("{} RS256 key(s) at {}", rs256, p.jwks_uri),
                ));
            }
        }
        Err(e) => out.push(Check::problem(
            "jwks",
            format!("{}: {e}", p.jwks_uri),
            "GitLab's JWKS must be reachable from labgate",
        )),
    }
}

fn location_of(r: &reqwest::Response) -> Option<url::Url> {
    let loc = r.headers().get(http::header::LOCATION)?.to_str().ok()?;
    url::Url::parse(loc).or_else(|_| r.url().join(loc)).ok()
}

async fn ask_authorize(
    http: &reqwest::Client,
    config: &Config,
    p: &Provider,
    scopes: &str,
) -> Result<reqwest::Response, String> {
    let redirect_uri = crate::app::redirect_uri(config);
    let mut url = url::Url::parse(&p.authorization_endpoint).map_err(|e| e.to_string())?;
    url.query_pairs_mut()
        .append_pair("client_id", &config.gitlab.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", scopes)
        .append_pair("state", "labgate-check")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    http.get(url).send().await.map_err(|e| describe(&e))
}

fn redirected_error(r: &reqwest::Response, redirect_uri: &str) -> Option<Option<String>> {
    let loc = location_of(r)?;
    if !loc.as_str().starts_with(redirect_uri) {
        return Some(None);
    }
    Some(
        loc.query_pairs()
            .find(|(k, _)| k == "error")
            .map(|(_, v)| v.into_owned()),
    )
}

async fn authorize(http: &reqwest::Client, config: &Config, p: &Provider, out: &mut Vec<Check>) {
    let redirect_uri = crate::app::redirect_uri(config);
    let scopes = config.gitlab.scopes.join(" ");
    let r = match ask_authorize(http, config, p, &scopes).await {
        Ok(r) => r,
        Err(e) => {
            out.push(Check::problem(
                "application",
                format!("authorize endpoint: {e}"),
                "GitLab must be reachable",
            ));
            return;
        }
    };
    if !r.status().is_redirection() {
        // GitLab shows its own error page, without redirecting, for an unknown client or a
        // Redirect URI that does not match.
        let body = r.text().await.unwrap_or_default().to_ascii_lowercase();
        if body.contains("redirect uri") {
            out.push(Check::ok(
                "application",
                format!("GitLab knows Application ID {}", config.gitlab.client_id),
            ));
            out.push(Check::problem(
                "redirect-uri",
                "GitLab refused the Redirect URI: it does not match the application's",
                format!("in GitLab, edit the application (User settings → Applications, or the group's / Admin area's Applications) and set Redirect URI to exactly: {redirect_uri}"),
            ));
        } else {
            out.push(Check::problem(
                "application",
                format!("GitLab does not know Application ID {:?} (or refused the Redirect URI)", config.gitlab.client_id),
                format!("copy the Application ID from the application's page in GitLab into gitlab.client_id, and check its Redirect URI is exactly: {redirect_uri}"),
            ));
            out.push(Check::skipped(
                "redirect-uri",
                "needs a known Application ID",
            ));
        }
        out.push(Check::skipped(
            "scopes",
            "needs a valid Application ID and Redirect URI",
        ));
        return;
    }
    out.push(Check::ok(
        "application",
        format!("GitLab knows Application ID {}", config.gitlab.client_id),
    ));
    out.push(Check::ok(
        "redirect-uri",
        format!("{redirect_uri} is registered"),
    ));
    match redirected_error(&r, &redirect_uri) {
        Some(Some(e)) if e == "invalid_scope" => {
            // Ask scope by scope to name the missing ones.
            let mut missing = Vec::new();
            for s in &config.gitlab.scopes {
                if let Ok(r) = ask_authorize(http, config, p, s).await {
                    if redirected_error(&r, &redirect_uri) == Some(Some("invalid_scope".into())) {
                        missing.push(s.clone());
                    }
                }
            }
            out.push(Check::problem(
                "scopes",
                format!("the application does not allow the scope(s): {}", missing.join(", ")),
                format!("in GitLab, edit the application and tick the scope(s) {} (then Save application)", missing.join(", ")),
            ));
        }
        Some(Some(e)) => out.push(Check::problem(
            "scopes",
            format!("GitLab answered error={e}"),
            "check the application's settings in GitLab",
        )),
        _ => out.push(Check::ok(
            "scopes",
            format!("the application allows {scopes}"),
        )),
    }
}

async fn secret(http: &reqwest::Client, config: &Config, p: &Provider, out: &mut Vec<Check>) {
    let g = &config.gitlab;
    let r = http
        .post(&p.token_endpoint)
        .basic_auth(&g.client_id, Some(g.client_secret.expose()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "labgate-check-deliberately-invalid-code"),
            ("redirect_uri", &crate::app::redirect_uri(config)),
            (
                "code_verifier",
                "labgate-check-verifier-labgate-check-verifier-0123",
            ),
        ])
        .send()
        .await;
    let (status, body) = match r {
        Ok(r) => {
            let s = r.status();
            (s, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
        Err(e) => {
            out.push(Check::problem(
                "secret",
                format!("token endpoint: {}", describe(&e)),
                "GitLab must be reachable",
            ));
            return;
        }
    };
    match body.get("error").and_then(|e| e.as_str()) {
        Some("invalid_grant") => out.push(Check::ok("secret", "GitLab accepted the Application ID and Secret")),
        Some("invalid_client") => out.push(Check::problem(
            "secret",
            format!("GitLab refused the Application ID / Secret pair ({status} invalid_client)"),
            "copy the Secret again into gitlab.client_secret (GitLab shows it only once; use Renew secret on the application's page if it is lost)",
        )),
        other => out.push(Check::problem("secret", format!("unexpected answer {status} {other:?}"), "check gitlab.url")),
    }
}

async fn store(config: &Config, out: &mut Vec<Check>) {
    if config.session.store == StoreKind::Cookie {
        out.push(Check::ok("session-store", "cookie store: nothing to reach"));
        return;
    }
    let start = Instant::now();
    let result = match crate::session::Sessions::new(config).await {
        Ok(s) => s.ready().await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => out.push(Check::ok("session-store", format!("Redis answers PING ({} ms round trip)", start.elapsed().as_millis()))),
        Err(e) => out.push(Check::problem(
            "session-store",
            format!("Redis: {e}"),
            "check session.redis_url (or the cluster / sentinel nodes), the password, and that Redis is running",
        )),
    }
}

async fn upstreams(config: &Config, out: &mut Vec<Check>) {
    for u in &config.upstreams {
        upstream(u, out).await;
    }
}

async fn upstream(u: &crate::config::UpstreamConfig, out: &mut Vec<Check>) {
    let start = Instant::now();
    let reached = match &u.target {
        UpstreamTarget::Http { authority, .. } => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(authority.as_str()),
        )
        .await
        .map(|r| r.map(|_| ())),
        UpstreamTarget::Unix(path) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::UnixStream::connect(path),
        )
        .await
        .map(|r| r.map(|_| ())),
    };
    match reached {
        Ok(Ok(())) => out.push(Check::ok(
            "upstream",
            format!(
                "{} accepts connections ({} ms)",
                u.url,
                start.elapsed().as_millis()
            ),
        )),
        Ok(Err(e)) => out.push(Check::problem(
            "upstream",
            format!("{}: {e}", u.url),
            "start the app, or fix upstream.url",
        )),
        Err(_) => out.push(Check::problem(
            "upstream",
            format!("{}: no answer in 5 s", u.url),
            "check upstream.url and the network",
        )),
    }
}

fn cookies(config: &Config, out: &mut Vec<Check>) {
    let https = config.server.public_url.scheme() == "https";
    if config.session.cookie_secure && !https {
        out.push(Check::problem(
            "cookies",
            "server.public_url is http:// but session.cookie_secure = true: browsers drop Secure cookies there, so sign-in would fail",
            "serve labgate over https (recommended), or set session.cookie_secure = false for local testing only",
        ));
    } else if !config.session.cookie_secure && https {
        out.push(Check::problem(
            "cookies",
            "session.cookie_secure = false on an https public_url",
            "set session.cookie_secure = true",
        ));
    } else {
        out.push(Check::ok(
            "cookies",
            format!(
                "public_url scheme {} and cookie_secure = {}",
                config.server.public_url.scheme(),
                config.session.cookie_secure
            ),
        ));
    }
}

/// Prints the checks as lines: `OK      name  detail` / `PROBLEM name  detail` + `fix:`.
pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let tag = match c.status {
            "ok" => "OK     ",
            "problem" => "PROBLEM",
            _ => "SKIPPED",
        };
        s.push_str(&format!("{tag} {:<14} {}\n", c.name, c.detail));
        if let Some(f) = &c.fix {
            s.push_str(&format!("        {:<14} fix: {f}\n", ""));
        }
    }
    s
}
