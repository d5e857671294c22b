//! `[server]` and `[gitlab]`: provider and GitLab application, listener, public URL,
//! proxies in front, redirect domains, pages.

use super::domains::{self, Redirects};
use super::{arr, env_name, s, said, M};
use crate::migrate::source::Setting;

/// oauth2-proxy's defaults that labgate's differ from, written out when they matter.
const O2P_HTTP_ADDRESS: &str = "127.0.0.1:4180";
const O2P_HTTPS_ADDRESS: &str = ":443";
const O2P_PROXY_PREFIX: &str = "/oauth2";

impl M<'_> {
    pub(super) fn provider(&mut self) {
        match self.text("provider", "gitlab.url") {
            None => self.doc.remark(
                "gitlab",
                "provider is not set (oauth2-proxy's default is google): read as a GitLab configuration".into(),
            ),
            Some((x, p)) => match p.as_str() {
                "gitlab" => self.doc.remark(
                    "gitlab",
                    format!("{}: labgate signs in with GitLab only, no key needed", said(x)),
                ),
                "oidc" => {
                    self.generic_oidc = true;
                    self.doc.remark(
                        "gitlab",
                        format!("{}: read as GitLab at oidc_issuer_url (labgate speaks GitLab's OpenID Connect); allowed_groups are matched as oauth2-proxy's OIDC provider did", said(x)),
                    );
                }
                other => self.problems.push(format!(
                    "{}: labgate signs in with GitLab only; a {other} configuration cannot be migrated",
                    said(x)
                )),
            },
        }
        let issuer = self.text("oidc_issuer_url", "gitlab.url");
        let login = self.text("login_url", "gitlab.url");
        match (issuer, login) {
            (Some((x, u)), login) => {
                self.doc.set(
                    "gitlab",
                    "url",
                    s(u.trim_end_matches('/')),
                    format!("{}: GitLab's base URL, also its OIDC issuer", said(x)),
                );
                if let Some((l, _)) = login {
                    self.doc.remark("gitlab", format!("{}: labgate finds GitLab's endpoints by discovery at gitlab.url/.well-known/openid-configuration", said(l)));
                }
            }
            (None, Some((x, u))) => match u.trim_end_matches('/').strip_suffix("/oauth/authorize") {
                Some(base) => self.doc.set(
                    "gitlab",
                    "url",
                    s(base),
                    format!("{}: GitLab's base URL, from its authorization endpoint (labgate finds the others by discovery)", said(x)),
                ),
                None => self.doc.unmapped(format!(
                    "{}: not GitLab's /oauth/authorize; set gitlab.url to GitLab's base URL",
                    said(x)
                )),
            },
            (None, None) if self.o.get("oidc_issuer_url").is_none() => self.doc.set(
                "gitlab",
                "url",
                s("https://gitlab.com"),
                "oidc_issuer_url is not set: gitlab.com".into(),
            ),
            (None, None) => {}
        }
        if let Some((x, id)) = self.text("client_id", "gitlab.client_id") {
            self.doc.set(
                "gitlab",
                "client_id",
                s(id),
                format!("{}: the GitLab application's ID", said(x)),
            );
        }
        if let Some((x, secret)) = self.text("client_secret", "gitlab.client_secret") {
            self.doc.set(
                "gitlab",
                "client_secret",
                s(secret),
                format!("{}: carried over (the same GitLab application); better kept out of this file: gitlab.client_secret_file or {}", said(x), env_name("gitlab.client_secret")),
            );
        }
        if let Some((x, file)) = self.text("client_secret_file", "gitlab.client_secret_file") {
            self.doc.set(
                "gitlab",
                "client_secret_file",
                s(file),
                format!("{}: the same file", said(x)),
            );
        }
        if let Some((x, scope)) = self.text("scope", "gitlab.scopes") {
            let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
            let note = if scopes.iter().any(|s| s == "openid") {
                format!(
                    "{}: the same scopes (labgate adds read_api for project rules)",
                    said(x)
                )
            } else {
                format!(
                    "{}: the same scopes; without openid labgate signs in with plain OAuth2 and reads /api/v4/user, which gives no group memberships, so group rules cannot be used. For them, write openid profile email here and tick the same scopes in the GitLab application (its settings page, Edit)",
                    said(x)
                )
            };
            self.doc.set("gitlab", "scopes", arr(&scopes), note);
        } else if self.o.get("oidc_issuer_url").is_none()
            && ["login_url", "redeem_url", "validate_url"]
                .iter()
                .any(|k| self.o.get(k).is_some())
        {
            // oauth2-proxy's legacy GitLab setup (endpoints, no issuer): its application may
            // allow read_user only, and labgate asks for openid profile email by default.
            self.doc.remark(
                "gitlab",
                "oauth2-proxy's legacy GitLab setup (login/redeem/validate URLs, no oidc_issuer_url): labgate signs in with OpenID Connect and asks for the scopes openid profile email; tick them in the GitLab application (its settings page, Edit) if it allowed read_user only, or GitLab refuses the sign-in (invalid_scope)".into(),
            );
        }
        if let Some((x, files)) = self.list("provider_ca_files", "gitlab.ca_file") {
            if let Some(first) = files.first() {
                let more = if files.len() > 1 {
                    "; labgate reads one PEM bundle: concatenate the others into it"
                } else {
                    ""
                };
                self.doc.set(
                    "gitlab",
                    "ca_file",
                    s(first.clone()),
                    format!("{}: added to the system's trusted roots{more}", said(x)),
                );
            }
        }
    }

    pub(super) fn server(&mut self) {
        let prefix = match self.text("proxy_prefix", "server.prefix") {
            Some((x, p)) => {
                let p = p.trim_end_matches('/').to_owned();
                if p != O2P_PROXY_PREFIX {
                    self.doc.set(
                        "server",
                        "prefix",
                        s(p.clone()),
                        format!("{}: labgate's endpoints live there too", said(x)),
                    );
                } else {
                    self.doc
                        .remark("server", format!("{}: labgate's default", said(x)));
                }
                p
            }
            None => O2P_PROXY_PREFIX.to_owned(),
        };
        self.prefix.clone_from(&prefix);
        match self.text("redirect_url", "server.public_url") {
            Some((x, raw)) => match url::Url::parse(&raw) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    let origin = u.origin().ascii_serialization();
                    let callback = format!("{prefix}/callback");
                    let note = if u.path() == callback {
                        format!("{}: the origin; labgate's Redirect URI is public_url + prefix + /callback, the same URL", said(x))
                    } else {
                        format!("{}: the origin; labgate's Redirect URI is {origin}{callback}: change it to that in the GitLab application", said(x))
                    };
                    self.doc.set("server", "public_url", s(origin), note);
                }
                _ => self.doc.unmapped(format!(
                    "{}: not an absolute http(s) URL; set server.public_url to the origin users open",
                    said(x)
                )),
            },
            None => self.doc.remark(
                "server",
                "redirect_url is not set (oauth2-proxy derived it from each request's Host): labgate needs server.public_url, the origin users open, e.g. \"https://app.example.com\"".into(),
            ),
        }
        let cert = self.text("tls_cert_file", "server.tls_cert_file");
        let key = self.text("tls_key_file", "server.tls_key_file");
        let http = self.text("http_address", "server.listen");
        let https = self.text("https_address", "server.listen");
        if cert.is_some() || key.is_some() {
            for (k, v) in [("tls_cert_file", cert), ("tls_key_file", key)] {
                if let Some((x, path)) = v {
                    self.doc.set(
                        "server",
                        k,
                        s(path),
                        format!("{}: the same file (reloaded when it changes)", said(x)),
                    );
                }
            }
            // With a certificate oauth2-proxy serves only HTTPS, on https_address.
            let (raw, from) = match &https {
                Some((x, a)) => (a.clone(), said(x)),
                None => (
                    O2P_HTTPS_ADDRESS.to_owned(),
                    format!("https_address (oauth2-proxy's default {O2P_HTTPS_ADDRESS:?})"),
                ),
            };
            self.listen(
                &raw,
                &from,
                "oauth2-proxy serves only HTTPS when it has a certificate",
            );
            if let Some((x, _)) = http {
                self.doc.unmapped(format!(
                    "{}: oauth2-proxy does not listen there when tls_cert_file is set",
                    said(x)
                ));
            }
        } else {
            let (raw, from) = match &http {
                Some((x, a)) => (a.clone(), said(x)),
                None => (O2P_HTTP_ADDRESS.to_owned(), format!("http_address is not set: oauth2-proxy's default {O2P_HTTP_ADDRESS:?} (labgate's is 0.0.0.0:4180)")),
            };
            self.listen(&raw, &from, "");
            if let Some((x, _)) = https {
                self.doc.unmapped(format!(
                    "{}: oauth2-proxy serves HTTPS only with tls_cert_file and tls_key_file",
                    said(x)
                ));
            }
        }
        if let Some((x, a)) = self.text("metrics_address", "server.metrics_listen") {
            match socket_addr(&a) {
                Ok(addr) => self.doc.set(
                    "server",
                    "metrics_listen",
                    s(addr),
                    format!(
                        "{}: /metrics there (Prometheus; labgate's own metric names)",
                        said(x)
                    ),
                ),
                Err(why) => self.doc.unmapped(format!("{}: {why}", said(x))),
            }
        }
        let reverse = self.flag("reverse_proxy");
        let trusted = self.list("trusted_proxy_ips", "server.trusted_proxies");
        match (reverse, trusted) {
            (Some((x, true)), Some((y, ips))) => self.doc.set(
                "server",
                "trusted_proxies",
                arr(&ips),
                format!("{} and {}: X-Forwarded-* are believed from these peers only", said(x), said(y)),
            ),
            (Some((x, true)), None) => self.doc.remark(
                "server",
                format!("{}: oauth2-proxy believed X-Forwarded-* from every peer; labgate believes them only from server.trusted_proxies: add your ingress's addresses, e.g. trusted_proxies = [\"10.0.0.0/8\"] (without it forward-auth cannot see the original URL)", said(x)),
            ),
            (r, t) => {
                if let Some((x, false)) = r {
                    self.doc.remark("server", format!("{}: labgate's default (no X-Forwarded-* believed)", said(x)));
                }
                if let Some((y, _)) = t {
                    self.doc.unmapped(format!("{}: oauth2-proxy reads it only with reverse_proxy = true", said(y)));
                }
            }
        }
        if let Some((x, domains)) =
            self.list("whitelist_domains", "server.allowed_redirect_domains")
        {
            self.redirect_domains(&[(x, domains)], &[]);
        }
        if let Some((x, b)) = self.flag("skip_provider_button") {
            self.doc.set(
                "server",
                "skip_sign_in_page",
                toml::Value::Boolean(b),
                format!("{}: straight to GitLab", said(x)),
            );
        }
        if let Some((x, f)) = self.text("footer", "server.footer_text") {
            if f == "-" {
                self.doc.remark(
                    "server",
                    format!("{}: labgate's pages have no version footer", said(x)),
                );
            } else if f.contains('<') {
                self.doc.unmapped(format!(
                    "{}: HTML; labgate's server.footer_text is plain text",
                    said(x)
                ));
            } else {
                self.doc.set(
                    "server",
                    "footer_text",
                    s(f),
                    format!("{}: plain text on labgate's pages", said(x)),
                );
            }
        }
        if let Some((x, logo)) = self.text("custom_sign_in_logo", "server.logo_url") {
            if logo.starts_with("https://") || logo.starts_with("http://") {
                self.doc.set(
                    "server",
                    "logo_url",
                    s(logo),
                    format!("{}: the logo on labgate's pages", said(x)),
                );
            } else if logo == "-" {
                self.doc.remark(
                    "server",
                    format!(
                        "{}: labgate shows no logo unless server.logo_url is set",
                        said(x)
                    ),
                );
            } else {
                self.doc.unmapped(format!(
                    "{}: a file; labgate's server.logo_url is a URL the browser loads",
                    said(x)
                ));
            }
        }
        for (key, default) in [("ping_path", "/ping"), ("ready_path", "/ready")] {
            if let Some((x, p)) = self.text(key, "server") {
                if p == default {
                    self.doc.remark(
                        "server",
                        format!("{}: labgate answers {default} too", said(x)),
                    );
                } else {
                    self.doc.unmapped(format!(
                        "{}: labgate answers /ping and /ready only; point the probes there",
                        said(x)
                    ));
                }
            }
        }
    }

    /// `server.listen` from an oauth2-proxy address.
    fn listen(&mut self, raw: &str, from: &str, why: &str) {
        let why = if why.is_empty() {
            ": the same".to_owned()
        } else {
            format!(" ({why})")
        };
        match socket_addr(raw) {
            Ok(addr) => self
                .doc
                .set("server", "listen", s(addr), format!("{from}{why}")),
            Err(e) => self.doc.unmapped(format!("{from}: {e}")),
        }
    }
}

/// A `listen`-style address from oauth2-proxy's `[http://]host:port` (`:4180` = every
/// interface).
fn socket_addr(raw: &str) -> Result<String, String> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower.starts_with("unix://") || lower.starts_with("fd:") {
        return Err("labgate listens on TCP only (host:port)".into());
    }
    let a = ["http://", "https://"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .unwrap_or(&lower);
    let a = if a.starts_with(':') {
        format!("0.0.0.0{a}")
    } else if let Some(port) = a.strip_prefix("localhost:") {
        format!("127.0.0.1:{port}")
    } else {
        a.to_owned()
    };
    a.parse::<std::net::SocketAddr>()
        .map(|s| s.to_string())
        .map_err(|_| "labgate listens on an IP address and port, e.g. \"0.0.0.0:4180\"".to_owned())
}

impl M<'_> {
    /// `server.allowed_redirect_domains` from `whitelist_domains` (of every app when
    /// several are merged); `hosts`: the apps' hosts, allowed without an entry.
    pub(super) fn redirect_domains(&mut self, lists: &[(&Setting, Vec<String>)], hosts: &[String]) {
        let mut r = Redirects::default();
        for (_, list) in lists {
            let one = domains::redirects(list);
            for e in one.entries {
                if !r.entries.contains(&e) {
                    r.entries.push(e);
                }
            }
            r.any_port.extend(one.any_port);
            r.dropped.extend(one.dropped);
        }
        let from: Vec<String> = lists.iter().map(|(x, _)| said(x)).collect();
        let from = from.join(", ");
        for (entry, why) in &r.dropped {
            self.doc.unmapped(format!("{from}: entry {entry:?}: {why}"));
        }
        let mut note = format!("{from}: where rd may send people after sign-in or sign-out; \".example.com\" = the domain and its subdomains, as oauth2-proxy read both \".example.com\" and \"*.example.com\"; \"host:port\" that port only. Changed: labgate sends people to https only (and http when public_url is http), oauth2-proxy to either scheme");
        if !r.any_port.is_empty() {
            let any: Vec<String> = r.any_port.iter().map(|a| format!("{a:?}")).collect();
            note.push_str(&format!("; {} allowed any port (:*), which labgate cannot say: carried over as the scheme's default port only; list \"host:port\" for each other port", any.join(", ")));
        }
        if !hosts.is_empty() {
            note.push_str(&format!(
                "; the apps' hosts ({}) need no entry: labgate allows every host it serves",
                hosts.join(", ")
            ));
        }
        if r.entries.is_empty() {
            if !lists.is_empty() {
                self.doc.remark("server", note);
            }
            return;
        }
        self.doc
            .set("server", "allowed_redirect_domains", arr(&r.entries), note);
    }
}
