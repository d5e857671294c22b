//! The variables the oauth2-proxy chart sets itself (templates/deployment.yaml): the
//! credentials with `proxyVarsAsSecrets`, and the session store with `sessionStorage`.
//!
//! Owns those two blocks of the template only; `extraEnv` is read by the chart's entry.

use serde_norway::Value as Yaml;

use super::{at, strings, text, truthy, Chart};
use crate::migrate::source::{EnvVar, Remark, Value};

/// The client id, client secret and cookie secret: with `proxyVarsAsSecrets` (the default)
/// the chart sets `OAUTH2_PROXY_CLIENT_ID`, `..._CLIENT_SECRET` and `..._COOKIE_SECRET` from
/// a Secret, `config.existingSecret` or one it creates from `config.clientID`,
/// `config.clientSecret` and `config.cookieSecret` (keys `client-id`, `client-secret`,
/// `cookie-secret`), each only when listed in `config.requiredSecretKeys` (all three by
/// default).
pub(super) fn secrets(values: &Yaml, key: &dyn Fn(&str) -> String, c: &mut Chart) {
    let as_secrets = at(values, "proxyVarsAsSecrets").is_none_or(|v| truthy(Some(v)));
    let required = at(values, "config.requiredSecretKeys").map(|v| strings(Some(v)));
    let existing = text(values, "config.existingSecret");
    let mut passed = Vec::new();
    for (secret_key, var, value) in [
        ("client-id", "OAUTH2_PROXY_CLIENT_ID", "clientID"),
        (
            "client-secret",
            "OAUTH2_PROXY_CLIENT_SECRET",
            "clientSecret",
        ),
        (
            "cookie-secret",
            "OAUTH2_PROXY_COOKIE_SECRET",
            "cookieSecret",
        ),
    ] {
        let path = format!("config.{value}");
        let given = text(values, &path);
        let shown = if value == "clientID" {
            given.clone().unwrap_or_default()
        } else {
            "<secret>".into()
        };
        if !as_secrets {
            if given.is_some() {
                c.unmapped.push(format!(
                    "{} = {shown}: proxyVarsAsSecrets is false, so the chart passes it to oauth2-proxy nowhere (set it in config.configFile, extraArgs or extraEnv)",
                    key(&path)
                ));
            }
            continue;
        }
        if required
            .as_ref()
            .is_some_and(|r| !r.iter().any(|k| k == secret_key))
        {
            if given.is_some() {
                c.unmapped.push(format!(
                    "{} = {shown}: {secret_key} is not in config.requiredSecretKeys, so the chart does not pass it",
                    key(&path)
                ));
            }
            continue;
        }
        let value_of = match (&existing, given) {
            (Some(secret), _) => {
                passed.push(format!("key {secret_key} as {var}"));
                Value::External(format!("Secret {secret} key {secret_key}"))
            }
            (None, Some(v)) => {
                passed.push(format!("{} as {var}", key(&path)));
                Value::Text(v)
            }
            (None, None) => {
                if value != "cookieSecret" {
                    c.remarks.push(Remark(format!(
                        "{} is not in this file: the chart would put its placeholder default in the Secret it creates (values given with --set at install time are not seen here)",
                        key(&path)
                    )));
                }
                continue;
            }
        };
        c.env.push(EnvVar {
            name: var.into(),
            value: value_of,
        });
    }
    if passed.is_empty() {
        return;
    }
    c.remarks.push(Remark(match &existing {
        Some(secret) => format!(
            "{} = {secret:?}: the chart passes that Secret's {} (proxyVarsAsSecrets); they are read as those variables below",
            key("config.existingSecret"),
            passed.join(", ")
        ),
        None => format!(
            "the chart passes {} through a Secret of its own (proxyVarsAsSecrets); they are read as those variables below",
            passed.join(", ")
        ),
    }));
}

/// `sessionStorage`: with `type: redis` the chart sets the store and the Redis variables
/// (templates/deployment.yaml); the Redis it can deploy itself is the `redis-ha` subchart
/// (chart 8 and later) or the bitnami `redis` one (before).
pub(super) fn session_storage(values: &Yaml, key: &dyn Fn(&str) -> String, c: &mut Chart) {
    let sub = [("redis-ha", "redis-ha"), ("redis", "redis-master")]
        .into_iter()
        .find(|(k, _)| truthy(at(values, &format!("{k}.enabled"))));
    let redis = text(values, "sessionStorage.type").as_deref() == Some("redis");
    let env = |name: &str, value: Value| EnvVar {
        name: name.into(),
        value,
    };
    if let Some((k, _)) = sub {
        c.unmapped.push(if redis {
            format!("{}: the chart deploys a Redis for oauth2-proxy's sessions (its {k} subchart); deploying Redis is not labgate configuration: keep that Redis (or any) and give its address as session.redis_url", key(&format!("{k}.enabled")))
        } else {
            format!("{}: the chart deploys a Redis, but sessionStorage.type is not redis, so oauth2-proxy did not use it", key(&format!("{k}.enabled")))
        });
    }
    if !redis {
        return;
    }
    let start = c.env.len();
    c.env.push(env(
        "OAUTH2_PROXY_SESSION_STORE_TYPE",
        Value::Text("redis".into()),
    ));
    let password_key =
        text(values, "sessionStorage.redis.passwordKey").unwrap_or_else(|| "redis-password".into());
    let sub_auth = match sub {
        // redis-ha's `auth` is off by default; bitnami's `auth.enabled` on.
        Some(("redis-ha", _)) => truthy(at(values, "redis-ha.auth")),
        Some(_) => at(values, "redis.auth.enabled").is_none_or(|v| truthy(Some(v))),
        None => false,
    };
    if let Some(secret) = text(values, "sessionStorage.redis.existingSecret") {
        c.env.push(env(
            "OAUTH2_PROXY_REDIS_PASSWORD",
            Value::External(format!("Secret {secret} key {password_key}")),
        ));
    } else if let Some(pw) = text(values, "sessionStorage.redis.password") {
        c.env
            .push(env("OAUTH2_PROXY_REDIS_PASSWORD", Value::Text(pw)));
    } else if let (true, Some((k, _))) = (sub_auth, sub) {
        c.env.push(env(
            "OAUTH2_PROXY_REDIS_PASSWORD",
            Value::External(format!("the {k} subchart's Secret, key {password_key}")),
        ));
    }
    let client =
        text(values, "sessionStorage.redis.clientType").unwrap_or_else(|| "standalone".into());
    match client.as_str() {
        "standalone" => {
            if let Some(url) = text(values, "sessionStorage.redis.standalone.connectionUrl") {
                c.env.push(env("OAUTH2_PROXY_REDIS_CONNECTION_URL", Value::Text(url)));
            } else if let Some((k, service)) = sub {
                c.env.push(env(
                    "OAUTH2_PROXY_REDIS_CONNECTION_URL",
                    Value::External(format!("the {k} subchart's Service, redis://RELEASE-{service}:6379 (RELEASE: the Helm release's name)")),
                ));
            } else {
                c.unmapped.push(format!("{}: redis with no sessionStorage.redis.standalone.connectionUrl and no redis subchart: the chart refuses to render (\"please set sessionStorage.redis.standalone.connectionUrl\")", key("sessionStorage.type")));
            }
        }
        "cluster" => {
            c.env.push(env("OAUTH2_PROXY_REDIS_USE_CLUSTER", Value::Text("true".into())));
            let urls = strings(at(values, "sessionStorage.redis.cluster.connectionUrls"));
            c.env.push(env("OAUTH2_PROXY_REDIS_CLUSTER_CONNECTION_URLS", Value::Text(urls.join(","))));
        }
        "sentinel" => {
            c.env.push(env("OAUTH2_PROXY_REDIS_USE_SENTINEL", Value::Text("true".into())));
            let master = text(values, "sessionStorage.redis.sentinel.masterName").unwrap_or_default();
            c.env.push(env("OAUTH2_PROXY_REDIS_SENTINEL_MASTER_NAME", Value::Text(master)));
            let urls = strings(at(values, "sessionStorage.redis.sentinel.connectionUrls"));
            c.env.push(env("OAUTH2_PROXY_REDIS_SENTINEL_CONNECTION_URLS", Value::Text(urls.join(","))));
            let sentinel_key = text(values, "sessionStorage.redis.sentinel.passwordKey")
                .unwrap_or_else(|| "redis-sentinel-password".into());
            let secret = text(values, "sessionStorage.redis.sentinel.existingSecret")
                .or_else(|| text(values, "sessionStorage.redis.existingSecret"));
            if let Some(secret) = secret {
                c.env.push(env(
                    "OAUTH2_PROXY_REDIS_SENTINEL_PASSWORD",
                    Value::External(format!("Secret {secret} key {sentinel_key}")),
                ));
            } else if let Some(pw) = text(values, "sessionStorage.redis.sentinel.password") {
                c.env.push(env("OAUTH2_PROXY_REDIS_SENTINEL_PASSWORD", Value::Text(pw)));
            }
        }
        other => c.unmapped.push(format!(
            "{} = {other:?}: not standalone, cluster or sentinel, so the chart passes no Redis address",
            key("sessionStorage.redis.clientType")
        )),
    }
    let names: Vec<&str> = c
        .env
        .get(start..)
        .unwrap_or_default()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    c.remarks.push(Remark(format!(
        "{} = \"redis\" (sessionStorage.redis.clientType {client}): the chart passes {}; they are read as those variables below",
        key("sessionStorage.type"),
        names.join(", ")
    )));
}
