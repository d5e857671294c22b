//! The oauth2-proxy Helm chart's values file (github.com/oauth2-proxy/manifests, chart
//! `oauth2-proxy`; its templates read at chart 10.7.0, with the older charts' `redis:`
//! subchart): what the chart gives oauth2-proxy from it. The container's args and env as
//! templates/deployment.yaml writes them, and the config file it mounts
//! (templates/configmap.yaml, `oauth2-proxy.legacy-config.content` in _helpers.tpl), so
//! that `source` reads them as it reads a Deployment. The chart's defaults (its values.yaml)
//! apply where the file is silent: `proxyVarsAsSecrets: true`, `metrics.enabled: true`,
//! `config.emailDomains: ["*"]`, `config.upstreams: ["file:///dev/null"]`,
//! `sessionStorage.redis.clientType: standalone`.
//!
//! Owns the chart's templates only: the settings are read by `source` and mapped by `map`.
//! Values given at install time (`--set`) and Helm template expressions are not seen.

use serde_norway::Value as Yaml;

mod env;

use super::options::Version;
use super::source::{EnvVar, Remark, Value};
use super::yaml::{yaml_env, yaml_scalar};

/// Top-level keys of the chart's values that hold oauth2-proxy's configuration: a YAML
/// mapping with one of them and no Kubernetes `kind` is a values file.
const CHART_KEYS: &[&str] = &[
    "config",
    "extraArgs",
    "extraEnv",
    "alphaConfig",
    "proxyVarsAsSecrets",
    "sessionStorage",
    "authenticatedEmailsFile",
    "htpasswdFile",
];

/// Top-level keys read here besides [`CHART_KEYS`]; any other is Kubernetes plumbing.
const OTHER_READ: &[&str] = &[
    "image",
    "metrics",
    "envFrom",
    "ingress",
    "gatewayApi",
    "redis",
    "redis-ha",
];

/// Keys of `config:` the chart knows.
const CONFIG_KEYS: &[&str] = &[
    "annotations",
    "clientID",
    "clientSecret",
    "cookieSecret",
    "cookieName",
    "existingSecret",
    "requiredSecretKeys",
    "google",
    "configFile",
    "existingConfig",
    "emailDomains",
    "upstreams",
    "forceLegacyConfig",
];

/// The listen flags the chart passes itself (templates/deployment.yaml), unless alpha
/// configuration is on.
const CHART_LISTEN: [&str; 2] = [
    "--http-address=0.0.0.0:4180",
    "--https-address=0.0.0.0:4443",
];

/// Passed when `metrics.enabled` (the default).
const CHART_METRICS: &str = "--metrics-address=0.0.0.0:44180";

/// What the chart makes of a values file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chart {
    /// The oauth2-proxy container's args, as the chart writes them (its own first).
    pub(crate) args: Vec<String>,
    /// Its env: the chart's variables, then `extraEnv`.
    pub(crate) env: Vec<EnvVar>,
    /// The config file the chart mounts as oauth2_proxy.cfg.
    pub(crate) config: ChartConfig,
    /// The version `image.tag` names (unset: the chart's appVersion, unknown here).
    pub(crate) version: Option<Version>,
    /// What the chart does that the settings do not show, for the header.
    pub(crate) remarks: Vec<Remark>,
    /// Values that are not oauth2-proxy settings and are not mapped, each with the reason.
    pub(crate) unmapped: Vec<String>,
    /// Said on stderr too: where the output differs from what the chart ran.
    pub(crate) warnings: Vec<String>,
}

/// oauth2-proxy's config file under the chart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum ChartConfig {
    /// None is mounted (`config.forceLegacyConfig: false` without a config file).
    #[default]
    None,
    /// The chart writes it from the values: its TOML, and the config-file keys it wrote
    /// from a value (`email_domains` from `config.emailDomains`) with that value's name.
    Written {
        /// What it was written from, for messages (`config.configFile`).
        from: String,
        /// The TOML.
        text: String,
        /// Keys written from a value of their own: (key, the value's name as shown).
        shown: Vec<(String, String)>,
    },
    /// It is in a ConfigMap the values only name (`config.existingConfig`).
    Existing(String),
}

/// The chart's values in `doc`: the document itself, or its `oauth2-proxy:` key (the values
/// of an umbrella chart that has oauth2-proxy as a subchart), with the key path prefix.
pub(crate) fn values(doc: &Yaml) -> Option<(&Yaml, &'static str)> {
    let is_values = |v: &Yaml| {
        v.as_mapping().is_some_and(|m| {
            !["kind", "apiVersion", "spec", "containers", "args"]
                .iter()
                .any(|k| m.contains_key(*k))
                && CHART_KEYS.iter().any(|k| m.contains_key(*k))
        })
    };
    if is_values(doc) {
        return Some((doc, ""));
    }
    doc.get("oauth2-proxy")
        .filter(|v| is_values(v))
        .map(|v| (v, "oauth2-proxy."))
}

/// The value at a dotted path (`sessionStorage.redis.password`).
fn at<'a>(v: &'a Yaml, path: &str) -> Option<&'a Yaml> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// Go template truth, as `{{ if }}` tests a value: empty, zero, false and null are false.
fn truthy(v: Option<&Yaml>) -> bool {
    match v {
        None | Some(Yaml::Null) => false,
        Some(Yaml::Bool(b)) => *b,
        Some(Yaml::String(s)) => !s.is_empty(),
        Some(Yaml::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Yaml::Sequence(s)) => !s.is_empty(),
        Some(Yaml::Mapping(m)) => !m.is_empty(),
        Some(Yaml::Tagged(t)) => truthy(Some(&t.value)),
    }
}

/// A non-empty string value.
fn text(v: &Yaml, path: &str) -> Option<String> {
    at(v, path).and_then(yaml_scalar).filter(|s| !s.is_empty())
}

/// A list value (or one string, as the chart's "Array or single string allowed").
fn strings(v: Option<&Yaml>) -> Vec<String> {
    match v {
        Some(Yaml::Sequence(items)) => items.iter().filter_map(yaml_scalar).collect(),
        Some(other) => yaml_scalar(other).into_iter().collect(),
        None => Vec::new(),
    }
}

/// A value as Go's `%v` (sprig `toString`) prints it, which is how the chart writes an
/// `extraArgs` value: a list `[a b]`.
fn go_string(v: &Yaml) -> String {
    match v {
        Yaml::Sequence(items) => format!(
            "[{}]",
            items.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Yaml::Mapping(_) => "map[...]".into(),
        Yaml::Null => "<nil>".into(),
        Yaml::Tagged(t) => go_string(&t.value),
        other => yaml_scalar(other).unwrap_or_default(),
    }
}

/// What the chart gives oauth2-proxy from `values` (`under`: the key path prefix of a
/// subchart's values, for messages).
pub(crate) fn chart(values: &Yaml, under: &str) -> Chart {
    let mut c = Chart::default();
    let key = |k: &str| format!("{under}{k}");
    c.version = text(values, "image.tag").and_then(|t| Version::parse(&t));
    let alpha = truthy(at(values, "alphaConfig.enabled"));
    let mut own = Vec::new();
    if alpha {
        c.unmapped.push(format!(
            "{}: oauth2-proxy's alpha (YAML) configuration is not migrated (alphaConfig.configData, serverConfigData, metricsConfigData, configFile, existingConfig, existingSecret): its upstreamConfig routes by path, with rewriteTarget, and labgate sends every path of a host to one upstream; move what it holds into labgate's keys by hand (each app a host of its own: [[upstream]] hosts = [...]). The chart passes --alpha-config instead of its listen flags, so the listen addresses below are oauth2-proxy's defaults, not the alpha config's",
            key("alphaConfig.enabled")
        ));
    } else {
        own.extend(CHART_LISTEN.iter().map(|f| (*f).to_owned()));
        if at(values, "metrics.enabled").is_none_or(|m| truthy(Some(m))) {
            own.push(CHART_METRICS.to_owned());
        }
    }
    if let Some(name) = text(values, "config.cookieName") {
        own.push(format!("--cookie-name={name}"));
    }
    c.args.extend(own.iter().cloned());
    extra_args(values, &key, &mut c);
    if truthy(at(values, "authenticatedEmailsFile.enabled")) {
        let list = text(values, "authenticatedEmailsFile.template")
            .unwrap_or_else(|| "RELEASE-accesslist".into());
        let flag = format!("--authenticated-emails-file=/etc/oauth2-proxy/{list}");
        own.push(flag.clone());
        c.args.push(flag);
    }
    if truthy(at(values, "htpasswdFile.enabled")) {
        let flag = "--htpasswd-file=/etc/oauth2_proxy/htpasswd/users.txt".to_owned();
        own.push(flag.clone());
        c.args.push(flag);
    }
    if truthy(at(values, "config.google")) {
        c.unmapped.push(format!(
            "{}: settings of oauth2-proxy's Google provider (the chart passes them as --google-* flags); labgate signs in with GitLab",
            key("config.google")
        ));
    }
    if !own.is_empty() {
        c.remarks.push(Remark(format!(
            "the chart passes oauth2-proxy {} itself (templates/deployment.yaml); they are read as flags below",
            own.join(" ")
        )));
    }
    env::secrets(values, &key, &mut c);
    env::session_storage(values, &key, &mut c);
    if let Some(items) = at(values, "extraEnv").and_then(Yaml::as_sequence) {
        c.env.extend(items.iter().filter_map(yaml_env));
    }
    if truthy(at(values, "envFrom")) {
        let from: Vec<String> = at(values, "envFrom")
            .and_then(Yaml::as_sequence)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        [("configMapRef", "ConfigMap"), ("secretRef", "Secret")]
                            .iter()
                            .find_map(|(k, what)| {
                                let name = i.get(*k)?.get("name")?.as_str()?;
                                Some(format!("{what} {name}"))
                            })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let line = format!(
            "{} ({}): every variable of those is oauth2-proxy's environment, and this file does not hold them; OAUTH2_PROXY_* variables among them are settings this migration has not seen: give them in extraEnv to migrate them",
            key("envFrom"),
            from.join(", ")
        );
        c.warnings.push(line.clone());
        c.unmapped.push(line);
    }
    config_file(values, &key, alpha, &mut c);
    routing(values, &key, &mut c);
    for (k, v) in values
        .get("config")
        .and_then(Yaml::as_mapping)
        .into_iter()
        .flatten()
    {
        if let Some(k) = k.as_str().filter(|k| !CONFIG_KEYS.contains(k)) {
            let shown = if super::options::sounds_secret(k) {
                "<not shown>".to_owned()
            } else {
                go_string(v)
            };
            c.unmapped.push(format!(
                "{} = {shown}: not a value of the chart's config, so the chart passes it to oauth2-proxy nowhere",
                key(&format!("config.{k}"))
            ));
        }
    }
    let plumbing: Vec<&str> = values
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str())
        .filter(|k| !CHART_KEYS.contains(k) && !OTHER_READ.contains(k))
        .collect();
    if !plumbing.is_empty() {
        c.remarks.push(Remark(format!(
            "the chart's Kubernetes settings are not oauth2-proxy's configuration and are not read: {}",
            plumbing.join(", ")
        )));
    }
    let templated = c
        .args
        .iter()
        .chain(c.env.iter().filter_map(|e| match &e.value {
            Value::Text(t) => Some(t),
            _ => None,
        }))
        .any(|a| a.contains("{{"));
    if templated {
        c.remarks.push(Remark(
            "the chart expands Helm template expressions ({{ ... }}) in these values (tpl); they are read here as written".into(),
        ));
    }
    c
}

/// `extraArgs`: a map (`key: value` -> `--key=value`, a null value a bare `--key`, keys in
/// Go's sorted order) or a list of flags as written.
fn extra_args(values: &Yaml, key: &dyn Fn(&str) -> String, c: &mut Chart) {
    match at(values, "extraArgs") {
        Some(Yaml::Mapping(m)) => {
            let mut pairs: Vec<(String, &Yaml)> = m
                .iter()
                .filter_map(|(k, v)| Some((yaml_scalar(k)?, v)))
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, v) in pairs {
                match v {
                    Yaml::Null => c.args.push(format!("--{name}")),
                    Yaml::Sequence(items) => {
                        // A secret's values (Redis URLs with a password) never reach a comment.
                        let secret = super::options::by_flag(&name)
                            .map_or_else(|| super::options::sounds_secret(&name), |s| s.secret);
                        let written = if secret {
                            "[<secret> ...]".to_owned()
                        } else {
                            go_string(v)
                        };
                        c.args.extend(
                            items
                                .iter()
                                .map(|i| format!("--{name}={}", go_string(i))),
                        );
                        let line = format!(
                            "{}: the chart writes a list as one flag, --{name}={written}, which oauth2-proxy reads as the one value {written:?}; migrated as meant, one --{name} per item",
                            key(&format!("extraArgs.{name}"))
                        );
                        c.warnings.push(line.clone());
                        c.remarks.push(Remark(line));
                    }
                    Yaml::Mapping(_) => c.unmapped.push(format!(
                        "{}: a map, which the chart writes as --{name}=map[...]: no oauth2-proxy flag takes that",
                        key(&format!("extraArgs.{name}"))
                    )),
                    other => c.args.push(format!("--{name}={}", go_string(other))),
                }
            }
        }
        Some(Yaml::Sequence(items)) => c.args.extend(items.iter().filter_map(yaml_scalar)),
        _ => {}
    }
}

/// The config file (`oauth2-proxy.legacy-config.mode`): `config.existingConfig`'s
/// ConfigMap, `config.configFile`, or one written from `config.emailDomains` (and, without
/// alpha configuration, `config.upstreams`); none with `forceLegacyConfig: false` and
/// neither. Older charts had the same two lines as `config.configFile`'s default.
fn config_file(values: &Yaml, key: &dyn Fn(&str) -> String, alpha: bool, c: &mut Chart) {
    let force_legacy = at(values, "config.forceLegacyConfig").is_none_or(|v| truthy(Some(v)));
    let alpha_only = alpha && !force_legacy;
    let existing = text(values, "config.existingConfig").filter(|_| !alpha_only);
    let inline = text(values, "config.configFile").filter(|_| !alpha_only);
    if let Some(map) = existing {
        c.remarks.push(Remark(format!(
            "{} = {map:?}: oauth2-proxy's config file is in that ConfigMap (key oauth2_proxy.cfg), not in this file: pass it too, with --config (kubectl get configmap {map} -o jsonpath='{{.data.oauth2_proxy\\.cfg}}')",
            key("config.existingConfig")
        )));
        c.config = ChartConfig::Existing(map);
        return;
    }
    if let Some(text) = inline {
        if text.contains("{{") {
            c.remarks.push(Remark(format!(
                "{}: the chart expands its Helm template expressions ({{{{ ... }}}}); they are read here as written",
                key("config.configFile")
            )));
        }
        c.config = ChartConfig::Written {
            from: key("config.configFile"),
            text,
            shown: Vec::new(),
        };
        return;
    }
    if !alpha && !force_legacy {
        return;
    }
    let mut table = toml::Table::new();
    let mut shown = Vec::new();
    let mut written = vec![("email_domains", "config.emailDomains", "*")];
    if !alpha {
        written.push(("upstreams", "config.upstreams", "file:///dev/null"));
    }
    for (cfg, value, default) in written {
        let (items, name) = match at(values, value) {
            Some(v) => (strings(Some(v)), key(value)),
            None => (
                vec![default.to_owned()],
                format!("{} (the chart's default)", key(value)),
            ),
        };
        table.insert(
            cfg.into(),
            toml::Value::Array(items.into_iter().map(toml::Value::String).collect()),
        );
        shown.push((cfg.to_owned(), name));
    }
    c.config = ChartConfig::Written {
        from: "the config file the chart writes from config.emailDomains and config.upstreams"
            .into(),
        text: table.to_string(),
        shown,
    };
}

/// `ingress`, `gatewayApi`: how traffic reached oauth2-proxy, which is Kubernetes routing.
/// Without a `redirect_url` oauth2-proxy took its URLs from each request's host, and the
/// one host named here is where users opened it.
fn routing(values: &Yaml, key: &dyn Fn(&str) -> String, c: &mut Chart) {
    let redirect_url = c.args.iter().any(|a| a.starts_with("--redirect-url"))
        || c.env.iter().any(|e| e.name == "OAUTH2_PROXY_REDIRECT_URL")
        || matches!(&c.config, ChartConfig::Written { text, .. } if text.contains("redirect_url"));
    for (k, hosts_key, what) in [
        ("ingress", "ingress.hosts", "Ingress"),
        ("gatewayApi", "gatewayApi.hostnames", "HTTPRoute"),
    ] {
        if !truthy(at(values, &format!("{k}.enabled"))) {
            continue;
        }
        let hosts = strings(at(values, hosts_key));
        let tls = k == "ingress" && truthy(at(values, "ingress.tls"));
        let origin = match hosts.as_slice() {
            [one] if !redirect_url && tls => format!(
                "; there is no redirect_url, so oauth2-proxy took its URLs from each request's host: server.public_url = \"https://{one}\""
            ),
            [one] if !redirect_url => format!(
                "; there is no redirect_url, so oauth2-proxy took its URLs from each request's host: server.public_url is the origin users open, \"https://{one}\" when TLS ends in front of the {what}, else \"http://{one}\""
            ),
            _ => String::new(),
        };
        c.unmapped.push(format!(
            "{} ({}): the chart's {what} sends {} to oauth2-proxy's Service; routing is not labgate configuration: point it at labgate's Service (server.listen){origin}",
            key(&format!("{k}.enabled")),
            if hosts.is_empty() {
                "no hosts".to_owned()
            } else {
                format!("hosts {}", hosts.join(", "))
            },
            if hosts.is_empty() {
                "its traffic"
            } else {
                "those hosts"
            }
        ));
    }
}
