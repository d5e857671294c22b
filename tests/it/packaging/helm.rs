//! The Helm chart, deploy/helm/labgate (docs/install.md, "Helm"),
//! through Helm's own SDK (`pip install helm-python-sdk`: Helm 4 as a library, driven by
//! `tests/python/helm_chart.py`), with its default values and each values file in its
//! `examples/`:
//!
//! - `helm lint --strict` finds nothing;
//! - every rendered object passes the Kubernetes schemas (kubernetes-validate, as the
//!   manifests in deploy/ do) and every pod the restricted Pod Security Standard
//!   (`pss.rs`); the pod's pieces fit together (the config and Secret mounts, the ports
//!   labgate.toml listens on, the Service, the memory limit);
//! - the rendered labgate.toml passes the real binary's `labgate check`, with the files the
//!   pod would find in its Secret; the chart's placeholders are refused there;
//! - the TOML rendering of `config` gives back every shape labgate reads;
//! - values.schema.json refuses a misspelt value, and names exactly the keys labgate
//!   accepts (read from `src/config/file.rs` as `docs.rs` reads them);
//! - `checksum/config` follows the config (and `checksum/secret` the chart's Secret);
//! - the PrometheusRule holds docs/observability.md's alerts as written there.
//!
//! The renderer and the checks of the pod are here; the configuration's checks are in
//! `helm/config.rs`, the other objects' in `helm/objects.rs`.

mod config;
mod objects;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_norway::Value;

use super::{assert_valid, keygen, kib, pss, read, root};

/// The chart, relative to the repository root.
const CHART: &str = "deploy/helm/labgate";

/// The example values files the chart's README documents (others found there are tested too).
const EXAMPLES: &[&str] = &["forward-auth.yaml", "redis.yaml", "sidecar.yaml"];

/// The release the driver renders (tests/python/helm_chart.py), and so the full name.
const RELEASE: &str = "labgate";

/// Where the chart mounts its Secret; labgate.toml's `*_file` keys name files there.
const SECRET_DIR: &str = "/secrets/";

/// labgate's measured cost with `workers = 2` (docs/container.md#memory-sizing; the
/// manifests in deploy/ are checked against a fresh measurement by
/// `memory_limits_fit_max_connections_at_the_measured_cost`): RSS idle, and per keep-alive
/// connection.
const IDLE_KIB: u64 = 33 * 1024;
const PER_CONNECTION_KIB: u64 = 52;

fn chart() -> PathBuf {
    root().join(CHART)
}

/// Runs the driver: (success, stdout, stderr).
fn driver(command: &str, values: &[PathBuf]) -> (bool, String, String) {
    let out = Command::new("python3")
        .arg(root().join("tests/python/helm_chart.py"))
        .arg(command)
        .arg(chart())
        .args(values)
        .output()
        .expect("python3 is needed for this test (scripts/test installs helm-python-sdk)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // 2: no SDK (the message says how to install it) or a bad invocation.
    assert_ne!(
        out.status.code(),
        Some(2),
        "tests/python/helm_chart.py: {stderr}"
    );
    (out.status.success(), stdout, stderr)
}

/// What `helm lint --strict` reports with these values files: its warnings and errors
/// (information such as "icon is recommended" is not a finding).
fn lint(values: &[PathBuf]) -> Vec<String> {
    let (ok, stdout, stderr) = driver("lint", values);
    assert!(ok, "helm lint: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mut found: Vec<String> = report["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["severity"].as_u64().unwrap_or(3) >= 2)
        .map(|m| format!("{}: {}", m["path"], m["error"]))
        .collect();
    found.extend(
        report["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(ToString::to_string),
    );
    found
}

/// The chart rendered: its objects, and NOTES.txt.
struct Rendered {
    objects: Vec<Value>,
    notes: String,
}

impl Rendered {
    /// The objects of a kind.
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The one object of a kind.
    fn one(&self, kind: &str) -> &Value {
        let all = self.all(kind);
        assert_eq!(all.len(), 1, "one {kind}");
        all[0]
    }

    fn kinds(&self) -> BTreeSet<String> {
        self.objects
            .iter()
            .filter_map(|o| o["kind"].as_str().map(str::to_owned))
            .collect()
    }

    /// The ConfigMap's labgate.toml.
    fn labgate_toml(&self) -> String {
        self.one("ConfigMap")["data"]["labgate.toml"]
            .as_str()
            .expect("the ConfigMap holds labgate.toml")
            .to_owned()
    }

    fn config(&self) -> toml::Value {
        let text = self.labgate_toml();
        toml::from_str(&text).unwrap_or_else(|e| panic!("labgate.toml is not TOML: {e}\n{text}"))
    }

    fn pod(&self) -> &Value {
        &self.one("Deployment")["spec"]["template"]
    }

    /// A container of the pod, by name.
    fn container(&self, name: &str) -> &Value {
        self.pod()["spec"]["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    }

    /// A `checksum/...` annotation of the pod template.
    fn checksum(&self, which: &str) -> Option<String> {
        self.pod()["metadata"]["annotations"][format!("checksum/{which}").as_str()]
            .as_str()
            .map(str::to_owned)
    }
}

/// The chart rendered with these values files (merged in order, as `helm -f`), or Helm's
/// refusal (the values schema, a template's `fail`).
fn render(values: &[PathBuf]) -> Result<Rendered, String> {
    let (ok, stdout, stderr) = driver("render", values);
    if !ok {
        return Err(stderr);
    }
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mut objects = Vec::new();
    let mut notes = String::new();
    for (template, text) in out["manifests"].as_object().unwrap() {
        let text = text.as_str().unwrap();
        if template.ends_with("/NOTES.txt") {
            notes = text.to_owned();
            continue;
        }
        for doc in serde_norway::Deserializer::from_str(text) {
            let v: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{template} is not YAML: {e}\n{text}"));
            if !v.is_null() {
                objects.push(v);
            }
        }
    }
    Ok(Rendered { objects, notes })
}

fn rendered(values: &[PathBuf]) -> Rendered {
    render(values).unwrap_or_else(|e| panic!("helm template refused the values: {e}"))
}

/// A values file in `dir`.
fn values_file(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The values the chart is tested with: its defaults, and each file in examples/.
fn cases() -> Vec<(String, Vec<PathBuf>)> {
    let dir = chart().join("examples");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    found.sort();
    for expected in EXAMPLES {
        assert!(found.iter().any(|f| f == expected), "examples/{expected}");
    }
    let mut out = vec![("the default values".to_owned(), Vec::new())];
    out.extend(
        found
            .into_iter()
            .map(|f| (format!("examples/{f}"), vec![dir.join(&f)])),
    );
    out
}

// ---------------------------------------------------------------------------------------
// Fresh secrets, as an operator makes them.

/// A fresh value for each key of the Secret.
fn fresh_secrets() -> BTreeMap<&'static str, String> {
    let (cookie, key) = keygen();
    BTreeMap::from([
        (
            "client-secret",
            crate::harness::test_client_secret().to_owned(),
        ),
        ("cookie-secret", cookie),
        ("signing-key.pem", key),
        ("redis-password", labgate::random_token(24)),
        ("webhook-secret", labgate::random_token(24)),
    ])
}

/// A values file giving the chart-created Secret fresh secrets (ignored with existingSecret).
fn fresh_secrets_values(dir: &Path) -> PathBuf {
    let s = fresh_secrets();
    let values = serde_json::json!({
        "secrets": {
            "clientSecret": s["client-secret"],
            "cookieSecret": s["cookie-secret"],
            "signingKey": s["signing-key.pem"],
        }
    });
    values_file(
        dir,
        "fresh-secrets.yaml",
        &serde_norway::to_string(&values).unwrap(),
    )
}

/// The files the pod finds under /secrets: the chart's Secret's, or, with an existingSecret,
/// a fresh value for each key labgate.toml names (the operator's Secret).
fn secret_files(r: &Rendered, what: &str) -> BTreeMap<String, String> {
    let named: BTreeSet<String> = regex::Regex::new(&format!(r#""{SECRET_DIR}([^"]+)""#))
        .unwrap()
        .captures_iter(&r.labgate_toml())
        .map(|c| c[1].to_owned())
        .collect();
    let files: BTreeMap<String, String> = match r.all("Secret").first() {
        Some(secret) => secret["data"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap())
                    .unwrap();
                (
                    k.as_str().unwrap().to_owned(),
                    String::from_utf8(bytes).unwrap(),
                )
            })
            .collect(),
        None => {
            let fresh = fresh_secrets();
            named
                .iter()
                .map(|k| {
                    let value = fresh
                        .get(k.as_str())
                        .unwrap_or_else(|| panic!("{what}: labgate.toml names {SECRET_DIR}{k}, which is not a key of the Secret the chart documents"));
                    (k.clone(), value.clone())
                })
                .collect()
        }
    };
    for k in &named {
        assert!(
            files.contains_key(k),
            "{what}: labgate.toml names {SECRET_DIR}{k}, which the Secret does not hold"
        );
    }
    files
}

/// `labgate check` on the rendered labgate.toml, with the Secret's files where the pod has
/// them: (exit success, output).
fn labgate_check(r: &Rendered, what: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in secret_files(r, what) {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    let config = r
        .labgate_toml()
        .replace(SECRET_DIR, &format!("{}/", dir.path().display()));
    let path = dir.path().join("labgate.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_labgate"));
    cmd.args(["check", "--config"]).arg(&path);
    for (name, _) in std::env::vars() {
        if name.starts_with("LABGATE") {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

// ---------------------------------------------------------------------------------------
// The checks.

#[test]
fn helm_lint_strict_finds_nothing_with_the_defaults_and_each_example() {
    let readme = read(&format!("{CHART}/README.md"));
    for (what, files) in cases() {
        let found = lint(&files);
        assert!(
            found.is_empty(),
            "helm lint --strict with {what}:\n{}",
            found.join("\n")
        );
        if let Some(example) = what.strip_prefix("examples/") {
            assert!(
                readme.contains(example),
                "the chart's README documents {what}"
            );
        }
    }
    // What it finds is shown in a_misspelt_value_is_refused_by_the_values_schema. (A
    // template's `fail` is only logged by lint; rendering reports it, as tested below.)
}

/// The pod's pieces fit together.
fn assert_wired(r: &Rendered, what: &str) {
    let config = r.config();
    let pod = &r.pod()["spec"];
    let labgate = r.container("labgate");
    let port_of = |listen: &toml::Value| -> i64 {
        listen
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let container_port = |name: &str| {
        labgate["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_i64())
    };
    // The listeners labgate.toml names are the container's ports.
    assert_eq!(
        container_port("http"),
        Some(port_of(&config["server"]["listen"])),
        "{what}: server.listen"
    );
    if let Some(metrics) = config["server"].get("metrics_listen") {
        assert_eq!(container_port("metrics"), Some(port_of(metrics)), "{what}");
    }
    // labgate reads the ConfigMap's file and the Secret's files.
    assert!(
        labgate["env"].as_sequence().unwrap().iter().any(|e| {
            e["name"] == "LABGATE_CONFIG" && e["value"] == "/etc/labgate/labgate.toml"
        }),
        "{what}: LABGATE_CONFIG"
    );
    let mount = |volume: &str| {
        labgate["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .and_then(|m| m["mountPath"].as_str())
            .unwrap_or_else(|| panic!("{what}: volume {volume} mounted"))
            .to_owned()
    };
    assert_eq!(mount("config"), "/etc/labgate");
    assert_eq!(format!("{}/", mount("secrets")), SECRET_DIR);
    let volume = |name: &str| {
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("{what}: volume {name}"))
    };
    assert_eq!(
        volume("config")["configMap"]["name"],
        r.one("ConfigMap")["metadata"]["name"]
    );
    let secret_name = &volume("secrets")["secret"]["secretName"];
    assert!(secret_name.is_string(), "{what}: the Secret is named");
    if let Some(secret) = r.all("Secret").first() {
        assert_eq!(secret_name, &secret["metadata"]["name"], "{what}");
    }
    // The Service reaches labgate's port on the Deployment's pods.
    let service = r.one("Service");
    let deployment = r.one("Deployment");
    assert_eq!(
        service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"],
        "{what}: the Service selects the pods"
    );
    for port in service["spec"]["ports"].as_sequence().unwrap() {
        let target = port["targetPort"].as_str().unwrap();
        assert!(
            container_port(target).is_some(),
            "{what}: the Service's target {target} is a port of labgate"
        );
    }
    // The memory limit holds server.max_connections at labgate's measured cost.
    assert_eq!(
        config["server"]["workers"].as_integer(),
        Some(2),
        "{what}: workers, as measured"
    );
    let max = config["server"]["max_connections"]
        .as_integer()
        .unwrap_or_else(|| panic!("{what}: server.max_connections is set"));
    let limit = kib(labgate["resources"]["limits"]["memory"].as_str().unwrap());
    let needed = IDLE_KIB + u64::try_from(max).unwrap() * PER_CONNECTION_KIB;
    assert!(
        limit >= needed,
        "{what}: limits.memory {limit} KiB < {needed} KiB for {max} connections"
    );
}

#[test]
fn every_rendered_object_matches_the_kubernetes_schemas_and_every_pod_the_restricted_standard() {
    let dir = tempfile::tempdir().unwrap();
    let mut kinds = BTreeSet::new();
    for (i, (what, files)) in cases().into_iter().enumerate() {
        let r = rendered(&files);
        let file = dir.path().join(format!("rendered-{i}.yaml"));
        let texts: Vec<String> = r
            .objects
            .iter()
            .map(|o| serde_norway::to_string(o).unwrap())
            .collect();
        std::fs::write(&file, texts.join("---\n")).unwrap();
        assert_valid(&format!("{CHART} with {what}"), &file, &r.objects);
        let pods: Vec<(String, &Value)> = r.objects.iter().flat_map(pss::pod_specs).collect();
        assert_eq!(pods.len(), 1, "{what}: one pod template");
        for (at, pod) in pods {
            let problems = pss::violations(&format!("{what}: {at}"), pod);
            assert!(problems.is_empty(), "{}", problems.join("\n"));
        }
        assert_wired(&r, &what);
        kinds.extend(r.kinds());
    }
    // Every template is rendered by one case or another.
    for kind in [
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.contains(kind), "no case renders a {kind}: {kinds:?}");
    }
    // The security contexts come from the values: loosened there, the checker says so.
    let loose = values_file(
        dir.path(),
        "loose.yaml",
        "podSecurityContext:\n  runAsNonRoot: false\n  runAsUser: 0\nsecurityContext:\n  allowPrivilegeEscalation: true\n",
    );
    let r = rendered(&[loose]);
    let problems: Vec<String> = r
        .objects
        .iter()
        .flat_map(pss::pod_specs)
        .flat_map(|(at, pod)| pss::violations(&at, pod))
        .collect();
    for expected in [
        "runAsUser must not be 0",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected}: {problems:?}"
        );
    }
}
