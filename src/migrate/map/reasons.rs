//! What labgate does instead of each oauth2-proxy option it has no key for: the built-in
//! behaviours, and the reasons an option is not mapped.

use super::{said, M};
use crate::migrate::options::Kind;
use crate::migrate::source::{Origin, Setting};

impl M<'_> {
    /// Options whose behaviour labgate always has, whatever their value.
    pub(super) fn built_in(&mut self) {
        for (key, table, what) in BUILT_IN {
            if let Some(x) = self.take(key) {
                self.doc.remark(table, format!("{}: {what}", said(x)));
            }
        }
    }

    /// Everything else: not mapped, with the reason.
    pub(super) fn rest(&mut self) {
        for x in &self.o.settings {
            if self.used.contains(&x.key) {
                continue;
            }
            self.doc.unmapped(format!("{}: {}", said(x), why_not(x)));
        }
        for (x, by) in &self.o.overridden {
            if x.origin == Origin::OldEnv {
                self.doc.unmapped(format!("{}: a name oauth2-proxy does not read (see the top); {by} set {}, and that is what it used", said(x), x.key));
            } else {
                self.doc.unmapped(format!("{}: overridden by {by} (oauth2-proxy's order: flags, then environment, then the config file)", said(x)));
            }
        }
    }
}

/// Why a setting is not mapped.
pub(super) fn why_not(x: &Setting) -> String {
    match (x.spec, x.origin) {
        (Some(spec), _) => reason(spec.cfg, spec.kind),
        (None, Origin::Env | Origin::OldEnv) => "names no oauth2-proxy option, so oauth2-proxy ignores it: it reads OAUTH2_PROXY_ + a config key, upper-cased (a typo?)".to_owned(),
        (None, _) => "not an oauth2-proxy option (a typo? oauth2-proxy itself refuses unknown keys and flags)".to_owned(),
    }
}

/// Options labgate's behaviour covers whatever their value: (key, table, note).
const BUILT_IN: &[(&str, &str, &str)] = &[
    ("code_challenge_method", "gitlab", "labgate always uses PKCE (S256)"),
    ("force_code_challenge_method", "gitlab", "labgate always uses PKCE (S256)"),
    ("insecure_oidc_skip_nonce", "gitlab", "labgate always sends and checks a nonce"),
    ("insecure_oidc_skip_issuer_verification", "gitlab", "labgate always checks the ID token's issuer (gitlab.url)"),
    ("oidc_groups_claim", "gitlab", "labgate reads GitLab's own claims (nickname, email, groups)"),
    ("oidc_email_claim", "gitlab", "labgate reads GitLab's own claims (nickname, email, groups)"),
    ("user_id_claim", "gitlab", "labgate reads GitLab's own claims (nickname, email, groups)"),
    ("oidc_audience_claims", "gitlab", "labgate checks that the ID token's aud is gitlab.client_id"),
    ("redeem_url", "gitlab", "labgate finds GitLab's endpoints by discovery at gitlab.url/.well-known/openid-configuration"),
    ("profile_url", "gitlab", "labgate finds GitLab's endpoints by discovery at gitlab.url/.well-known/openid-configuration"),
    ("validate_url", "gitlab", "labgate finds GitLab's endpoints by discovery at gitlab.url/.well-known/openid-configuration"),
    ("oidc_jwks_url", "gitlab", "labgate finds GitLab's keys by discovery (its JWKS)"),
    ("skip_oidc_discovery", "gitlab", "labgate always uses GitLab's discovery document"),
    ("use_system_trust_store", "gitlab", "labgate trusts the system's roots, plus gitlab.ca_file when set"),
    ("flush_interval", "upstream", "labgate streams bodies both ways without buffering"),
    ("approval_prompt", "gitlab", "labgate sends a plain authorization request; GitLab asks for consent when the application is not trusted"),
];

/// Why an option is not mapped.
fn reason(cfg: &str, kind: Kind) -> String {
    let provider = [
        ("keycloak_", "Keycloak"),
        ("azure_", "Azure"),
        ("entra_id_", "Microsoft Entra ID"),
        ("bitbucket_", "Bitbucket"),
        ("github_", "GitHub"),
        ("google_", "Google"),
        ("jwt_key", "login.gov"),
        ("pubjwk_url", "login.gov"),
        ("resource", "Azure"),
        ("allowed_roles", "Keycloak OIDC"),
    ];
    if let Some((_, p)) = provider.iter().find(|(pre, _)| cfg.starts_with(pre)) {
        return format!("an option of oauth2-proxy's {p} provider; labgate signs in with GitLab");
    }
    let logging =
        cfg.contains("logging") || matches!(cfg, "errors_to_info_log" | "request_id_header");
    if logging {
        return "labgate logs structured lines (tracing): log.format = \"text\" or \"json\", log.level; an access log line per request".into();
    }
    let why = match cfg {
        "provider_display_name" => "the sign-in button says GitLab; server.app_name names your application on labgate's pages",
        "prompt" | "acr_values" | "auth_request_response_mode" => "labgate sends GitLab a plain authorization request",
        "oidc_extra_audiences" => "labgate accepts ID tokens for gitlab.client_id only",
        "oidc_public_key_files" | "oidc_enabled_signing_algs" => "labgate verifies GitLab's ID tokens with the keys GitLab publishes (JWKS)",
        "skip_claims_from_profile_url" => "labgate reads GitLab's userinfo for the groups",
        "backend_logout_url" => "sign-out ends labgate's session; no back-end logout URL is called",
        "authenticated_emails_file" => "labgate admits people by GitLab username or id (access.allowed_users = [\"id:123\"]), group or project, not by email list: these people are refused until listed there",
        "htpasswd_file" | "htpasswd_user_groups" | "display_htpasswd_form" => "labgate has no local passwords: people sign in with GitLab, scripts use GitLab tokens or CI ID tokens ([machine])",
        "api_routes" => "labgate never sends a request that is not a browser navigation (no Accept: text/html) to sign-in: it answers 401 (JSON), on every path",
        "trusted_ips" => "labgate admits no one by IP address; give machines GitLab tokens or CI ID tokens ([machine]): those requests now need sign-in",
        "skip_jwt_bearer_tokens" | "extra_jwt_issuers" | "bearer_token_login_fallback" => "labgate's [machine] admits GitLab CI ID tokens (machine.audience, [[machine.allow]]) and, with machine.gitlab_tokens, GitLab access tokens; other JWTs are refused",
        "tls_min_version" | "tls_cipher_suites" => "labgate (rustls) offers TLS 1.2 and 1.3 with rustls's default cipher suites",
        "metrics_secure_address" | "metrics_tls_cert_file" | "metrics_tls_key_file" => "labgate's server.metrics_listen is plain HTTP; keep it on a private address",
        "relative_redirect_url" => "labgate's Redirect URI is always absolute: server.public_url + server.prefix + /callback",
        "ping_user_agent" | "gcp_healthchecks" => "labgate answers /ping and /ready; point the probes there",
        "real_client_ip_header" => "labgate takes the client address from X-Forwarded-For sent by server.trusted_proxies",
        "force_https" => "labgate's server.http_redirect_listen is a separate plain-HTTP listener redirecting to https: set it if you need that",
        "ssl_insecure_skip_verify" => "labgate always verifies GitLab's certificate: give a private CA as gitlab.ca_file",
        "force_json_errors" => "labgate answers JSON to requests that do not ask for HTML, pages to browsers",
        "encode_state" => "labgate's state parameter is opaque random data",
        "allow_query_semicolons" => "labgate passes the query string to the app untouched",
        "signature_key" => "labgate signs the identity instead: X-Labgate-Assertion (ES256 JWT, keys at /oauth2/jwks.json); no GAP-Signature",
        "ssl_upstream_insecure_skip_verify" => "labgate always verifies an https upstream: give its CA as upstream.ca_file",
        "disable_keep_alives" => "labgate keeps connections to the app alive",
        "prefer_email_to_user" => "X-Forwarded-User is always the GitLab username; the email is in X-Forwarded-Email",
        "set_basic_auth" | "basic_auth_password" => "labgate sends no HTTP Basic credentials",
        "set_authorization_header" => "labgate's /oauth2/auth answers no Authorization header; X-Labgate-Assertion carries the signed identity",
        "cookie_path" => "labgate's cookies are for path /",
        "cookie_csrf_per_request" | "cookie_csrf_per_request_limit" | "cookie_csrf_expire" | "cookie_csrf_samesite" => "labgate's sign-in (CSRF) cookie has fixed settings: one per flow, short-lived",
        "session_cookie_minimal" => "labgate keeps only the tokens it needs to re-check the account",
        "redis_ca_path" => "labgate has no setting for a private Redis CA: rediss:// is verified against the system roots",
        "redis_insecure_skip_tls_verify" => "labgate always verifies rediss://",
        "redis_connection_idle_timeout" => "labgate keeps a multiplexed Redis connection and reconnects when it breaks",
        "banner" => "labgate's pages have no custom HTML banner; server.app_name and server.footer_text set their text",
        "custom_templates_dir" => "labgate's pages are built in (server.app_name, server.logo_url, server.footer_text)",
        "show_debug_on_error" => "labgate never shows internal details on its pages; they are in its log",
        _ => "",
    };
    if why.is_empty() {
        let k = match kind {
            Kind::Bool => "switch",
            Kind::Duration => "duration",
            _ => "setting",
        };
        format!("no labgate {k} does the same")
    } else {
        why.to_owned()
    }
}
