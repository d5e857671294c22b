//! The chart's configuration: the rendered labgate.toml through `labgate check` with the
//! Secret's files, the TOML rendering of every shape, the values schema (misspelt values
//! refused, every key of labgate's named), the values the chart refuses, and
//! `checksum/config`.

use super::*;

#[test]
fn the_rendered_labgate_toml_passes_labgate_check_with_the_secrets_the_pod_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = fresh_secrets_values(dir.path());
    for (what, mut files) in cases() {
        files.push(fresh.clone());
        let r = rendered(&files);
        let (ok, out) = labgate_check(&r, &what);
        assert!(
            ok,
            "labgate check with {what}:\n{}\n{out}",
            r.labgate_toml()
        );
        assert!(out.contains("configuration OK"), "{what}: {out}");
        // NOTES.txt names the Redirect URI that check prints.
        let public_url = r.config()["server"]["public_url"]
            .as_str()
            .unwrap()
            .to_owned();
        let redirect = format!("{public_url}/oauth2/callback");
        assert!(out.contains(&redirect), "{what}: {out}");
        assert!(r.notes.contains(&redirect), "{what}: NOTES:\n{}", r.notes);
    }
    // The Redis password and the webhook secret, from the chart's Secret.
    let extra = values_file(
        dir.path(),
        "extra.yaml",
        &format!(
            "config:\n  session:\n    store: redis\n    redis_url: \"redis://redis:6379\"\nsecrets:\n  redisPassword: \"{}\"\n  webhookSecret: \"{}\"\n",
            labgate::random_token(24),
            labgate::random_token(24)
        ),
    );
    let r = rendered(&[fresh.clone(), extra]);
    let config = r.config();
    assert_eq!(
        config["session"]["redis_password_file"].as_str(),
        Some("/secrets/redis-password")
    );
    assert_eq!(
        config["gitlab"]["webhook_secret_file"].as_str(),
        Some("/secrets/webhook-secret")
    );
    let (ok, out) = labgate_check(&r, "redis and webhooks");
    assert!(ok, "{out}");
    // The chart's placeholders are refused, naming the key: the cookie secret...
    let r = rendered(&[]);
    let (ok, out) = labgate_check(&r, "the default values");
    assert!(!ok, "labgate check passed the placeholders:\n{out}");
    assert!(out.contains("session.cookie_secret"), "{out}");
    assert!(
        r.notes.contains("WARNING") && r.notes.contains("secrets.clientSecret"),
        "NOTES warn about the placeholders:\n{}",
        r.notes
    );
    // ... and, with a real one, the client secret.
    let (cookie, key) = keygen();
    let values = serde_json::json!({"secrets": {"cookieSecret": cookie, "signingKey": key}});
    let half = values_file(
        dir.path(),
        "half.yaml",
        &serde_norway::to_string(&values).unwrap(),
    );
    let (ok, out) = labgate_check(&rendered(&[half]), "the placeholder client secret");
    assert!(!ok && out.contains("gitlab.client_secret"), "{out}");
}

/// Values exercising every shape of TOML the chart writes: tables, arrays of tables at the
/// top and in a table, arrays, numbers, booleans, escapes; null leaves a key out.
const SHAPES: &str = r#"
config:
  server:
    public_url: "https://auth.example.com"
    forward_auth_source: null
    app_name: "Quote \" backslash \\ <b>&amp;</b> ünïcode ☺ tab\t"
    footer_text: "line one\nline two"
    allowed_redirect_domains: [".example.com", "wiki.example.com:8443"]
    skip_sign_in_page: true
    max_headers: 120
    workers: 2
    max_connections: 4096
  tracing:
    otlp_endpoint: "http://otel-collector:4318"
    sample_ratio: 0.25
  upstream:
    - hosts: ["wiki.example.com"]
      url: "http://wiki:8080"
    - hosts: ["grafana.example.com", "*.tools.example.com"]
      url: "http://grafana:3000"
      timeout: "90s"
  session:
    cookie_domain: "example.com"
  identity:
    pass_access_token: ["wiki.example.com"]
  access:
    allowed_groups: ["acme"]
    public:
      - hosts: ["wiki.example.com"]
        path: "^/public(/|$)"
        methods: ["GET", "HEAD"]
  route:
    - hosts: ["grafana.example.com"]
      path: "^/"
      allowed_groups: ["acme/admins"]
  machine:
    audience: "https://auth.example.com"
    gitlab_tokens: true
    allow:
      - namespace_path: "acme"
        ref_protected: false
      - project_path: "acme/deployer"
        ref: "main"
"#;

/// The keys of `expected` that `actual` lacks or holds another value for (tables compared
/// key by key).
fn differences(expected: &toml::Value, actual: &toml::Value, at: &str, out: &mut Vec<String>) {
    match (expected.as_table(), actual.as_table()) {
        (Some(e), Some(a)) => {
            for (k, v) in e {
                let path = format!("{at}.{k}");
                match a.get(k) {
                    Some(got) => differences(v, got, &path, out),
                    None => out.push(format!("{path} is missing")),
                }
            }
        }
        _ if expected != actual => out.push(format!("{at}: {actual} instead of {expected}")),
        _ => {}
    }
}

/// A YAML value as TOML, nulls left out.
fn yaml_to_toml(v: &Value) -> Option<toml::Value> {
    match v {
        Value::Null => None,
        Value::Mapping(m) => Some(toml::Value::Table(
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str().unwrap().to_owned(), yaml_to_toml(v)?)))
                .collect(),
        )),
        Value::Sequence(s) => Some(toml::Value::Array(
            s.iter().filter_map(yaml_to_toml).collect(),
        )),
        other => Some(toml::Value::try_from(other).unwrap()),
    }
}

#[test]
fn the_config_value_renders_as_the_toml_labgate_reads() {
    let dir = tempfile::tempdir().unwrap();
    let shapes = values_file(dir.path(), "shapes.yaml", SHAPES);
    let r = rendered(&[fresh_secrets_values(dir.path()), shapes]);
    let given: Value = serde_norway::from_str(SHAPES).unwrap();
    let expected = yaml_to_toml(&given["config"]).unwrap();
    let config = r.config();
    let mut found = Vec::new();
    differences(&expected, &config, "config", &mut found);
    assert!(
        found.is_empty(),
        "{}\n{}",
        found.join("\n"),
        r.labgate_toml()
    );
    // The arrays of tables stay arrays of tables, in order.
    assert_eq!(config["upstream"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        config["machine"]["allow"][1]["project_path"].as_str(),
        Some("acme/deployer")
    );
    assert_eq!(
        config["server"]["app_name"].as_str(),
        Some("Quote \" backslash \\ <b>&amp;</b> ünïcode ☺ tab\t")
    );
    // null leaves out the default's key.
    assert!(
        config["server"].get("forward_auth_source").is_none(),
        "{}",
        r.labgate_toml()
    );
    // The chart's own keys.
    assert_eq!(config["server"]["listen"].as_str(), Some("0.0.0.0:4180"));
    assert_eq!(
        config["gitlab"]["client_secret_file"].as_str(),
        Some("/secrets/client-secret")
    );
    assert_eq!(
        config["identity"]["signing_key_files"],
        toml::Value::Array(vec!["/secrets/signing-key.pem".into()])
    );
    let (ok, out) = labgate_check(&r, "every shape");
    assert!(ok, "{}\n{out}", r.labgate_toml());
    // The comparison sees a value that differs, or is missing.
    let mut wrong = expected.clone();
    let server = wrong["server"].as_table_mut().unwrap();
    server.insert("max_headers".into(), toml::Value::Integer(121));
    server.insert(
        "logo_url".into(),
        "https://auth.example.com/logo.png".into(),
    );
    let mut found = Vec::new();
    differences(&wrong, &config, "config", &mut found);
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn a_misspelt_value_is_refused_by_the_values_schema() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (yaml, named)) in [
        ("replicaCont: 2\n", "replicaCont"),
        ("image:\n  tagg: \"1.0\"\n", "tagg"),
        ("metrics:\n  serviceMonitor:\n    enable: true\n", "enable"),
        ("config:\n  sesion:\n    store: redis\n", "sesion"),
        ("config:\n  session:\n    stor: redis\n", "stor"),
        (
            "config:\n  route:\n    - path: \"^/admin\"\n      allowed_group: [\"acme\"]\n",
            "allowed_group",
        ),
        ("mode: forwardauth\n", "/mode"),
        ("replicaCount: \"2\"\n", "/replicaCount"),
        (
            "config:\n  server:\n    workers: \"2\"\n",
            "/config/server/workers",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let file = values_file(dir.path(), &format!("typo-{i}.yaml"), yaml);
        let refused = render(std::slice::from_ref(&file))
            .err()
            .unwrap_or_else(|| panic!("rendered with the misspelt values:\n{yaml}"));
        assert!(refused.contains(named), "{named} not named: {refused}");
        let found = lint(&[file]);
        assert!(
            found.iter().any(|f| f.contains(named)),
            "helm lint does not report {named}: {found:?}"
        );
    }
}

/// The keys of labgate's configuration the values schema describes, as dotted paths; every
/// object with properties must refuse others.
fn schema_keys(
    schema: &serde_json::Value,
    node: &serde_json::Value,
    at: &str,
    out: &mut BTreeSet<String>,
) {
    let node = match node["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/definitions/").unwrap();
            &schema["definitions"][name]
        }
        None => node,
    };
    if let Some(alternatives) = node["oneOf"].as_array() {
        for a in alternatives {
            schema_keys(schema, a, at, out);
        }
    } else if node["type"] == "array" {
        schema_keys(schema, &node["items"], at, out);
    } else if let Some(properties) = node["properties"].as_object() {
        assert_eq!(
            node["additionalProperties"],
            serde_json::Value::Bool(false),
            "values.schema.json: {at} takes other keys"
        );
        for (k, v) in properties {
            let key = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            schema_keys(schema, v, &key, out);
        }
    } else {
        out.insert(at.to_owned());
    }
}

#[test]
fn the_values_schema_names_exactly_the_keys_labgate_accepts() {
    let accepted = crate::docs::schema_of(&read("src/config/file.rs"));
    let schema: serde_json::Value =
        serde_json::from_str(&read(&format!("{CHART}/values.schema.json"))).unwrap();
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
    let mut keys = BTreeSet::new();
    schema_keys(&schema, &schema["properties"]["config"], "", &mut keys);
    assert!(keys.len() > 80, "{keys:?}");
    let missing: Vec<&String> = accepted.keys.difference(&keys).collect();
    let invented: Vec<&String> = keys.difference(&accepted.keys).collect();
    assert!(
        missing.is_empty() && invented.is_empty(),
        "values.schema.json's config: missing {missing:?}, not accepted by labgate {invented:?}"
    );
}

#[test]
fn the_chart_refuses_values_that_would_break_the_deployment_or_leak_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (yaml, says)) in [
        ("replicaCount: 2\n", "config.session.store: redis"),
        (
            "autoscaling:\n  enabled: true\n",
            "config.session.store: redis",
        ),
        (
            "config:\n  gitlab:\n    client_secret: \"x\"\n",
            "config.gitlab.client_secret: a secret does not belong in the ConfigMap",
        ),
        (
            "config:\n  session:\n    cookie_secret: \"x\"\n",
            "config.session.cookie_secret: a secret",
        ),
        (
            "config:\n  server:\n    listen: \"0.0.0.0:8080\"\n",
            "set containerPort instead",
        ),
        ("mode: sidecar\n", "sidecar.app.image"),
        (
            "secrets:\n  cookieSecret: \"\"\n",
            "secrets.cookieSecret is empty",
        ),
        (
            "config:\n  session:\n    store: redis\n    redis_url: \"redis://:hunter2@redis:6379\"\n",
            "a Redis URL carries a password",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let file = values_file(dir.path(), &format!("bad-{i}.yaml"), yaml);
        let refused = render(&[file])
            .err()
            .unwrap_or_else(|| panic!("rendered:\n{yaml}"));
        assert!(refused.contains(says), "{says}: {refused}");
    }
    // Many replicas with Redis: rendered, and the budget keeps one.
    let redis = values_file(
        dir.path(),
        "redis.yaml",
        "replicaCount: 3\nconfig:\n  session:\n    store: redis\n    redis_url: \"redis://redis:6379\"\n",
    );
    let r = rendered(&[redis]);
    assert_eq!(r.one("Deployment")["spec"]["replicas"], 3);
    let pdb = &r.one("PodDisruptionBudget")["spec"];
    assert_eq!(pdb["minAvailable"], 1);
    assert!(pdb["maxUnavailable"].is_null());
    // One replica: the budget lets a drain take it.
    let r = rendered(&[]);
    assert_eq!(r.one("PodDisruptionBudget")["spec"]["maxUnavailable"], 1);
    // An autoscaler that may go down to one: the same (minAvailable 1 would block drains).
    let scaled = values_file(
        dir.path(),
        "scaled.yaml",
        "autoscaling:\n  enabled: true\n  minReplicas: 1\nconfig:\n  session:\n    store: redis\n    redis_url: \"redis://redis:6379\"\n",
    );
    let scaled = rendered(&[scaled]);
    let pdb = &scaled.one("PodDisruptionBudget")["spec"];
    assert_eq!(pdb["maxUnavailable"], 1, "{pdb:?}");
    // Recreate (the cookie store's way to never run two pods): no rollingUpdate block, which
    // the API server refuses with it.
    let recreate = values_file(dir.path(), "recreate.yaml", "strategy:\n  type: Recreate\n");
    let recreate = rendered(&[recreate]);
    let strategy = &recreate.one("Deployment")["spec"]["strategy"];
    assert_eq!(strategy["type"], "Recreate");
    assert!(strategy["rollingUpdate"].is_null(), "{strategy:?}");
}

#[test]
fn an_upstream_setting_of_the_user_keeps_the_chart_s_upstream_url() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = values_file(
        dir.path(),
        "timeout.yaml",
        "config:\n  upstream:\n    timeout: 5m\n",
    );
    let sidecar = chart().join("examples/sidecar.yaml");
    let r = rendered(&[sidecar, timeout]);
    let toml = r.one("ConfigMap")["data"]["labgate.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(toml.contains("timeout = \"5m\""), "{toml}");
    assert!(
        toml.contains("url = \"http://127.0.0.1:"),
        "the app's address: {toml}"
    );
}

#[test]
fn checksum_config_follows_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = fresh_secrets_values(dir.path());
    let base = rendered(std::slice::from_ref(&fresh));
    let config = base.checksum("config").expect("checksum/config");
    let secret = base.checksum("secret").expect("checksum/secret");
    assert_eq!(config.len(), 64, "a sha256: {config}");
    let with =
        |name: &str, yaml: &str| rendered(&[fresh.clone(), values_file(dir.path(), name, yaml)]);
    // The same values: the same sums.
    let again = rendered(std::slice::from_ref(&fresh));
    assert_eq!(again.checksum("config"), Some(config.clone()));
    // Another access rule: the config's sum changes, the Secret's does not.
    let r = with(
        "groups.yaml",
        "config:\n  access:\n    allowed_groups: [\"acme\", \"partners\"]\n",
    );
    assert_ne!(r.checksum("config"), Some(config.clone()));
    assert_eq!(r.checksum("secret"), Some(secret.clone()));
    // Values outside the config: neither changes.
    let r = with(
        "resources.yaml",
        "resources:\n  requests: {cpu: 200m, memory: 64Mi}\n  limits: {memory: 400Mi}\n",
    );
    assert_eq!(r.checksum("config"), Some(config.clone()));
    assert_eq!(r.checksum("secret"), Some(secret.clone()));
    // Another secret: the Secret's sum changes, the config's does not.
    let r = with(
        "secret.yaml",
        &format!(
            "secrets:\n  clientSecret: \"{}\"\n",
            labgate::random_token(24)
        ),
    );
    assert_eq!(r.checksum("config"), Some(config.clone()));
    assert_ne!(r.checksum("secret"), Some(secret));
    // An existing Secret is not the chart's: no sum of it.
    let r = with("existing.yaml", "existingSecret: labgate-secrets\n");
    assert!(r.all("Secret").is_empty());
    assert!(r.checksum("config").is_some());
    assert_eq!(r.checksum("secret"), None);
    // rollOnConfigChange: false leaves the pods to labgate's own reload.
    let r = with("noroll.yaml", "rollOnConfigChange: false\n");
    assert_eq!(r.checksum("config"), None);
    assert_eq!(r.checksum("secret"), None);
}
