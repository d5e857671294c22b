//! oauth2-proxy's options (v7, the "legacy" flag and TOML configuration): each one's
//! config-file key, flag name, value kind and whether its value is a secret. Taken from
//! oauth2-proxy's documentation (docs/configuration/overview.md, providers/gitlab.md) and
//! the `cfg:` / `flag:` tags of `pkg/apis/options` it is generated from.
//!
//! Owns the vocabulary only; what each option becomes in labgate is `map.rs`'s business.

/// How an option's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One string.
    Text,
    /// `true` / `false`; a bare `--flag` is `true`.
    Bool,
    /// A list: repeated flags, comma-separated values, a TOML array.
    List,
    /// A Go duration such as `168h0m0s`.
    Duration,
    /// An integer.
    Int,
}

/// One oauth2-proxy option.
#[derive(Debug)]
pub(crate) struct Spec {
    /// The config-file (and `OAUTH2_PROXY_*` environment) name, e.g. `email_domains`.
    pub(crate) cfg: &'static str,
    /// The flag name without dashes, e.g. `email-domain`.
    pub(crate) flag: &'static str,
    /// How its value is written.
    pub(crate) kind: Kind,
    /// Whether the value is a secret (or may hold one, as a Redis URL's password): it is
    /// never shown in a comment.
    pub(crate) secret: bool,
}

use Kind::{Bool, Duration, Int, List, Text};

const fn o(cfg: &'static str, flag: &'static str, kind: Kind) -> Spec {
    Spec {
        cfg,
        flag,
        kind,
        secret: false,
    }
}

const fn secret(cfg: &'static str, flag: &'static str, kind: Kind) -> Spec {
    Spec {
        cfg,
        flag,
        kind,
        secret: true,
    }
}

/// Every option oauth2-proxy v7 reads from flags and its config file.
pub(crate) const SPECS: &[Spec] = &[
    // Provider.
    o("provider", "provider", Text),
    o("provider_display_name", "provider-display-name", Text),
    o("provider_ca_files", "provider-ca-file", List),
    o("use_system_trust_store", "use-system-trust-store", Bool),
    o("client_id", "client-id", Text),
    secret("client_secret", "client-secret", Text),
    o("client_secret_file", "client-secret-file", Text),
    o("oidc_issuer_url", "oidc-issuer-url", Text),
    o("login_url", "login-url", Text),
    o("redeem_url", "redeem-url", Text),
    o("profile_url", "profile-url", Text),
    o("validate_url", "validate-url", Text),
    o("oidc_jwks_url", "oidc-jwks-url", Text),
    o("skip_oidc_discovery", "skip-oidc-discovery", Bool),
    o("scope", "scope", Text),
    o("prompt", "prompt", Text),
    o("approval_prompt", "approval-prompt", Text),
    o("acr_values", "acr-values", Text),
    o("code_challenge_method", "code-challenge-method", Text),
    o(
        "force_code_challenge_method",
        "force-code-challenge-method",
        Text,
    ),
    o(
        "auth_request_response_mode",
        "auth-request-response-mode",
        Text,
    ),
    o(
        "insecure_oidc_allow_unverified_email",
        "insecure-oidc-allow-unverified-email",
        Bool,
    ),
    o(
        "insecure_oidc_skip_issuer_verification",
        "insecure-oidc-skip-issuer-verification",
        Bool,
    ),
    o("insecure_oidc_skip_nonce", "insecure-oidc-skip-nonce", Bool),
    o("oidc_groups_claim", "oidc-groups-claim", Text),
    o("oidc_email_claim", "oidc-email-claim", Text),
    o("user_id_claim", "user-id-claim", Text),
    o("oidc_audience_claims", "oidc-audience-claim", List),
    o("oidc_extra_audiences", "oidc-extra-audience", List),
    o("oidc_public_key_files", "oidc-public-key-file", List),
    o(
        "oidc_enabled_signing_algs",
        "oidc-enabled-signing-alg",
        List,
    ),
    o(
        "skip_claims_from_profile_url",
        "skip-claims-from-profile-url",
        Bool,
    ),
    o("resource", "resource", Text),
    o("backend_logout_url", "backend-logout-url", Text),
    o("allowed_groups", "allowed-group", List),
    o("allowed_roles", "allowed-role", List),
    o("gitlab_groups", "gitlab-group", List),
    o("gitlab_projects", "gitlab-project", List),
    // Other providers.
    o("keycloak_groups", "keycloak-group", List),
    o("azure_tenant", "azure-tenant", Text),
    o("azure_graph_group_field", "azure-graph-group-field", Text),
    o("entra_id_allowed_tenants", "entra-id-allowed-tenant", List),
    o(
        "entra_id_federated_token_auth",
        "entra-id-federated-token-auth",
        Bool,
    ),
    o("bitbucket_team", "bitbucket-team", Text),
    o("bitbucket_repository", "bitbucket-repository", Text),
    o("github_org", "github-org", Text),
    o("github_team", "github-team", Text),
    o("github_repo", "github-repo", Text),
    secret("github_token", "github-token", Text),
    o("github_users", "github-user", List),
    o("google_groups", "google-group", List),
    o("google_admin_email", "google-admin-email", Text),
    o(
        "google_service_account_json",
        "google-service-account-json",
        Text,
    ),
    o(
        "google_use_application_default_credentials",
        "google-use-application-default-credentials",
        Bool,
    ),
    o("google_target_principal", "google-target-principal", Text),
    o(
        "google_use_organization_id",
        "google-use-organization-id",
        Bool,
    ),
    o(
        "google_admin_api_user_scope",
        "google-admin-api-user-scope",
        Text,
    ),
    secret("jwt_key", "jwt-key", Text),
    o("jwt_key_file", "jwt-key-file", Text),
    o("pubjwk_url", "pubjwk-url", Text),
    // Who may enter.
    o("email_domains", "email-domain", List),
    o(
        "authenticated_emails_file",
        "authenticated-emails-file",
        Text,
    ),
    o("htpasswd_file", "htpasswd-file", Text),
    o("htpasswd_user_groups", "htpasswd-user-group", List),
    o("display_htpasswd_form", "display-htpasswd-form", Bool),
    o("skip_auth_regex", "skip-auth-regex", List),
    o("skip_auth_routes", "skip-auth-route", List),
    o("skip_auth_preflight", "skip-auth-preflight", Bool),
    o("api_routes", "api-route", List),
    o("trusted_ips", "trusted-ip", List),
    o("skip_jwt_bearer_tokens", "skip-jwt-bearer-tokens", Bool),
    o(
        "bearer_token_login_fallback",
        "bearer-token-login-fallback",
        Bool,
    ),
    o("extra_jwt_issuers", "extra-jwt-issuers", List),
    // Server.
    o("http_address", "http-address", Text),
    o("https_address", "https-address", Text),
    o("tls_cert_file", "tls-cert-file", Text),
    o("tls_key_file", "tls-key-file", Text),
    o("tls_min_version", "tls-min-version", Text),
    o("tls_cipher_suites", "tls-cipher-suite", List),
    o("metrics_address", "metrics-address", Text),
    o("metrics_secure_address", "metrics-secure-address", Text),
    o("metrics_tls_cert_file", "metrics-tls-cert-file", Text),
    o("metrics_tls_key_file", "metrics-tls-key-file", Text),
    o("redirect_url", "redirect-url", Text),
    o("relative_redirect_url", "relative-redirect-url", Bool),
    o("proxy_prefix", "proxy-prefix", Text),
    o("ping_path", "ping-path", Text),
    o("ping_user_agent", "ping-user-agent", Text),
    o("ready_path", "ready-path", Text),
    o("gcp_healthchecks", "gcp-healthchecks", Bool),
    o("reverse_proxy", "reverse-proxy", Bool),
    o("real_client_ip_header", "real-client-ip-header", Text),
    o("trusted_proxy_ips", "trusted-proxy-ip", List),
    o("force_https", "force-https", Bool),
    o("whitelist_domains", "whitelist-domain", List),
    o("skip_provider_button", "skip-provider-button", Bool),
    o("ssl_insecure_skip_verify", "ssl-insecure-skip-verify", Bool),
    o("force_json_errors", "force-json-errors", Bool),
    o("encode_state", "encode-state", Bool),
    o("allow_query_semicolons", "allow-query-semicolons", Bool),
    secret("signature_key", "signature-key", Text),
    // Upstreams.
    o("upstreams", "upstream", List),
    o("upstream_timeout", "upstream-timeout", Duration),
    o("flush_interval", "flush-interval", Duration),
    o("pass_host_header", "pass-host-header", Bool),
    o("proxy_websockets", "proxy-websockets", Bool),
    o(
        "ssl_upstream_insecure_skip_verify",
        "ssl-upstream-insecure-skip-verify",
        Bool,
    ),
    o("disable_keep_alives", "disable-keep-alives", Bool),
    // Headers.
    o("pass_basic_auth", "pass-basic-auth", Bool),
    o("pass_access_token", "pass-access-token", Bool),
    o("pass_user_headers", "pass-user-headers", Bool),
    o(
        "pass_authorization_header",
        "pass-authorization-header",
        Bool,
    ),
    o("set_basic_auth", "set-basic-auth", Bool),
    o("set_xauthrequest", "set-xauthrequest", Bool),
    o("set_authorization_header", "set-authorization-header", Bool),
    o("prefer_email_to_user", "prefer-email-to-user", Bool),
    secret("basic_auth_password", "basic-auth-password", Text),
    o("skip_auth_strip_headers", "skip-auth-strip-headers", Bool),
    // Cookies.
    o("cookie_name", "cookie-name", Text),
    secret("cookie_secret", "cookie-secret", Text),
    o("cookie_secret_file", "cookie-secret-file", Text),
    o("cookie_domains", "cookie-domain", List),
    o("cookie_path", "cookie-path", Text),
    o("cookie_expire", "cookie-expire", Duration),
    o("cookie_refresh", "cookie-refresh", Duration),
    o("cookie_secure", "cookie-secure", Bool),
    o("cookie_httponly", "cookie-httponly", Bool),
    o("cookie_samesite", "cookie-samesite", Text),
    o("cookie_csrf_per_request", "cookie-csrf-per-request", Bool),
    o(
        "cookie_csrf_per_request_limit",
        "cookie-csrf-per-request-limit",
        Int,
    ),
    o("cookie_csrf_expire", "cookie-csrf-expire", Duration),
    o("cookie_csrf_samesite", "cookie-csrf-samesite", Text),
    // Sessions.
    o("session_store_type", "session-store-type", Text),
    o("session_cookie_minimal", "session-cookie-minimal", Bool),
    secret("redis_connection_url", "redis-connection-url", Text),
    o("redis_username", "redis-username", Text),
    secret("redis_password", "redis-password", Text),
    o("redis_use_sentinel", "redis-use-sentinel", Bool),
    secret("redis_sentinel_password", "redis-sentinel-password", Text),
    o(
        "redis_sentinel_master_name",
        "redis-sentinel-master-name",
        Text,
    ),
    secret(
        "redis_sentinel_connection_urls",
        "redis-sentinel-connection-urls",
        List,
    ),
    o("redis_use_cluster", "redis-use-cluster", Bool),
    secret(
        "redis_cluster_connection_urls",
        "redis-cluster-connection-urls",
        List,
    ),
    o("redis_ca_path", "redis-ca-path", Text),
    o(
        "redis_insecure_skip_tls_verify",
        "redis-insecure-skip-tls-verify",
        Bool,
    ),
    o(
        "redis_connection_idle_timeout",
        "redis-connection-idle-timeout",
        Int,
    ),
    // Pages.
    o("banner", "banner", Text),
    o("footer", "footer", Text),
    o("custom_sign_in_logo", "custom-sign-in-logo", Text),
    o("custom_templates_dir", "custom-templates-dir", Text),
    o("show_debug_on_error", "show-debug-on-error", Bool),
    // Logging.
    o("auth_logging", "auth-logging", Bool),
    o("auth_logging_format", "auth-logging-format", Text),
    o("request_logging", "request-logging", Bool),
    o("request_logging_format", "request-logging-format", Text),
    o("standard_logging", "standard-logging", Bool),
    o("standard_logging_format", "standard-logging-format", Text),
    o("errors_to_info_log", "errors-to-info-log", Bool),
    o("exclude_logging_paths", "exclude-logging-path", List),
    o("logging_local_time", "logging-local-time", Bool),
    o("silence_ping_logging", "silence-ping-logging", Bool),
    o("request_id_header", "request-id-header", Text),
    o("logging_filename", "logging-filename", Text),
    o("logging_max_size", "logging-max-size", Int),
    o("logging_max_age", "logging-max-age", Int),
    o("logging_max_backups", "logging-max-backups", Int),
    o("logging_compress", "logging-compress", Bool),
];

/// The oauth2-proxy release whose source this vocabulary and the version notes below were
/// checked against (pkg/apis/options, and the tags back to v4.0.0).
pub(crate) const CHECKED_UP_TO: &str = "v7.15.3";

/// An older config-file spelling oauth2-proxy still reads as today's key: `google_group`
/// (the legacy field beside `google_groups`, deprecated since v7.5.1).
const ALIASES: &[(&str, &str)] = &[("google_group", "google_groups")];

/// A name oauth2-proxy no longer reads, or never did though Deployments use it: the
/// singular, flag-derived environment names (`OAUTH2_PROXY_EMAIL_DOMAIN`) and options
/// renamed in a major release.
///
/// How oauth2-proxy reads its environment (pkg/apis/options/load.go): since v6.0.0 viper's
/// `AutomaticEnv` with the prefix `OAUTH2_PROXY`, looked up only for the config keys it
/// knows, so a variable is `OAUTH2_PROXY_` + the upper-cased config key and any other name is
/// silently ignored; v4.0.0 to v5.1.1 read an explicit `env:` tag per option, already named
/// after the config key (`OAUTH2_PROXY_EMAIL_DOMAINS`, `OAUTH2_PROXY_UPSTREAMS`); before
/// v4.0.0 only a handful of options had a variable at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OldName {
    /// Today's config key: the setting it is meant as.
    pub(crate) cfg: &'static str,
    /// The last version that read it and the version that renamed it; `None`: no version
    /// read it as an environment variable.
    pub(crate) renamed: Option<(&'static str, &'static str)>,
    /// It was a config-file key too (oauth2-proxy refuses it in a config file since the
    /// rename: viper's `UnmarshalExact` rejects unknown keys, so it does not start).
    pub(crate) in_file: bool,
}

/// Options renamed in a major release (CHANGELOG.md; the `cfg:`/`env:` tags of each tag).
const RENAMED: &[(&str, OldName)] = &[
    // #639: "The environment variable OAUTH2_PROXY_GITLAB_GROUP is now OAUTH2_PROXY_GITLAB_GROUPS".
    (
        "gitlab_group",
        OldName {
            cfg: "gitlab_groups",
            renamed: Some(("v5.1.1", "v6.0.0")),
            in_file: true,
        },
    ),
    // #412/#559: "OAUTH2_PROXY_COOKIE_DOMAIN is now OAUTH2_PROXY_COOKIE_DOMAINS".
    (
        "cookie_domain",
        OldName {
            cfg: "cookie_domains",
            renamed: Some(("v5.1.1", "v6.0.0")),
            in_file: true,
        },
    ),
    // v7.0.0: `keycloak_group` (one string) became the list `keycloak_groups`.
    (
        "keycloak_group",
        OldName {
            cfg: "keycloak_groups",
            renamed: Some(("v6.1.1", "v7.0.0")),
            in_file: true,
        },
    ),
    // v4.0.0 to v5.1.1 tagged auth_logging `env:"OAUTH2_PROXY_LOGGING_AUTH_LOGGING"`.
    (
        "logging_auth_logging",
        OldName {
            cfg: "auth_logging",
            renamed: Some(("v5.1.1", "v6.0.0")),
            in_file: false,
        },
    ),
];

impl OldName {
    /// Whether oauth2-proxy `version` reads the old name from its environment (unknown:
    /// the current releases, which do not).
    pub(crate) fn read_by(self, version: Option<Version>) -> bool {
        match (self.renamed, version) {
            (Some((last, _)), Some(v)) => Version::parse(last).is_some_and(|last| v <= last),
            _ => false,
        }
    }
}

/// The old name `name` (lower-case) stands for, if it is one: a renamed option, or an
/// option's flag name with underscores where that differs from its config key
/// (`email_domain` for `email_domains`), which no version read from the environment.
pub(crate) fn old_name(name: &str) -> Option<OldName> {
    if let Some((_, r)) = RENAMED.iter().find(|(old, _)| *old == name) {
        return Some(*r);
    }
    SPECS
        .iter()
        .find(|s| s.cfg != name && s.flag.replace('-', "_") == name)
        .map(|s| OldName {
            cfg: s.cfg,
            renamed: None,
            in_file: false,
        })
}

/// An oauth2-proxy release, `v7.6.0` as (7, 6, 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version(pub(crate) u32, pub(crate) u32, pub(crate) u32);

impl Version {
    /// `v7.6.0`, `7.6.0`, `v7.6.0-alpine`; `None` for anything else (`latest`, a digest).
    pub(crate) fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let v = Version(parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(v)
    }

    /// The version a container image names (`quay.io/oauth2-proxy/oauth2-proxy:v7.6.0`).
    pub(crate) fn of_image(image: &str) -> Option<Version> {
        if image.contains('@') {
            return None;
        }
        let last = image.rsplit('/').next()?;
        Version::parse(last.split_once(':')?.1)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Flags of oauth2-proxy's command itself (not options): `--config` names the file it reads.
pub(crate) const COMMAND_FLAGS: &[&str] = &[
    "config",
    "alpha-config",
    "convert-config-to-alpha",
    "version",
    "config-test",
];

/// The option a config-file (or environment) key names, `google_group` included.
pub(crate) fn by_cfg(key: &str) -> Option<&'static Spec> {
    let key = ALIASES
        .iter()
        .find(|(old, _)| *old == key)
        .map_or(key, |(_, new)| new);
    SPECS.iter().find(|s| s.cfg == key)
}

/// The option a config-file key names, renamed keys (`gitlab_group`) included: they are
/// read as meant (see [`OldName`]).
pub(crate) fn by_file_key(key: &str) -> Option<&'static Spec> {
    by_cfg(key).or_else(|| {
        RENAMED
            .iter()
            .find(|(old, r)| r.in_file && *old == key)
            .and_then(|(_, r)| by_cfg(r.cfg))
    })
}

/// The option a flag (without dashes) names.
pub(crate) fn by_flag(flag: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.flag == flag)
}

/// Whether an unknown name looks like it holds a secret (its value is never shown).
pub(crate) fn sounds_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "password", "token", "key", "credential"]
        .iter()
        .any(|w| n.contains(w))
}
