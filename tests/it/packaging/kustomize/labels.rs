//! Labels and selectors, on what the overlays render and on deploy/kubernetes: every object
//! carries the recommended `app.kubernetes.io` labels (labgate's name, this release's
//! version), every selector names the name and instance and selects the pods, and no
//! NetworkPolicy peer is selected by labgate's labels. The checker is shown to report each.

use std::collections::BTreeSet;

use serde_norway::Value;

use super::super::{manifests, pss, release_version, root};
use super::{base, overlay, render, what, OVERLAYS};

/// The recommended labels (kubernetes.io, "Recommended Labels").
const NAME: &str = "app.kubernetes.io/name";
const INSTANCE: &str = "app.kubernetes.io/instance";
const VERSION: &str = "app.kubernetes.io/version";
const RECOMMENDED: &[&str] = &[
    NAME,
    INSTANCE,
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    VERSION,
];

/// Whether a selector's labels are all among a pod's.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_mapping()
        .is_some_and(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Every label selector of an object that should select its pods: (field, selector).
fn pod_selectors(doc: &Value) -> Vec<(String, &Value)> {
    let spec = &doc["spec"];
    let mut out = Vec::new();
    match doc["kind"].as_str() {
        Some("Deployment") => {
            out.push((
                "spec.selector.matchLabels".to_owned(),
                &spec["selector"]["matchLabels"],
            ));
            let spread = spec["template"]["spec"]["topologySpreadConstraints"].as_sequence();
            for (i, c) in spread.into_iter().flatten().enumerate() {
                out.push((
                    format!("topologySpreadConstraints[{i}].labelSelector.matchLabels"),
                    &c["labelSelector"]["matchLabels"],
                ));
            }
        }
        Some("Service") => out.push(("spec.selector".to_owned(), &spec["selector"])),
        Some("PodDisruptionBudget") => out.push((
            "spec.selector.matchLabels".to_owned(),
            &spec["selector"]["matchLabels"],
        )),
        Some("NetworkPolicy") => out.push((
            "spec.podSelector.matchLabels".to_owned(),
            &spec["podSelector"]["matchLabels"],
        )),
        _ => {}
    }
    out
}

/// Labels and selectors: every object carries the recommended labels (labgate's name, this
/// release's version); every selector names the name and instance (and not the version,
/// which a Deployment's selector could never follow) and selects the pods of `docs`; no
/// NetworkPolicy peer is selected by labgate's labels (that would be other pods: kube-dns).
fn label_problems(at: &str, docs: &[Value]) -> Vec<String> {
    let version = release_version();
    let pods: Vec<&Value> = docs
        .iter()
        .flat_map(pss::pod_specs)
        .map(|(_, p)| &p["metadata"]["labels"])
        .collect();
    let mut out = Vec::new();
    for d in docs {
        let obj = format!("{at} {}", what(d));
        let mut bad = |m: String| out.push(format!("{obj}: {m}"));
        let labelled = std::iter::once(("metadata.labels", &d["metadata"]["labels"])).chain(
            pss::pod_specs(d)
                .into_iter()
                .map(|(_, p)| ("pod labels", &p["metadata"]["labels"])),
        );
        for (field, labels) in labelled {
            for l in RECOMMENDED {
                if labels[*l].as_str().is_none_or(str::is_empty) {
                    bad(format!("{field}: no {l}"));
                }
            }
            if labels[NAME] != "labgate" {
                bad(format!(
                    "{field}: {NAME} is not labgate: {:?}",
                    labels[NAME]
                ));
            }
            if labels[VERSION].as_str() != Some(version.as_str()) {
                bad(format!(
                    "{field}: {VERSION} {:?}, not {version}",
                    labels[VERSION]
                ));
            }
        }
        for (field, selector) in pod_selectors(d) {
            let keys: BTreeSet<&str> = selector
                .as_mapping()
                .map(|m| m.keys().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if keys != [NAME, INSTANCE].into_iter().collect::<BTreeSet<_>>() {
                bad(format!("{field} is {keys:?}, not {NAME} and {INSTANCE}"));
            }
            if !pods.iter().any(|p| selects(selector, p)) {
                bad(format!("{field} selects no pod"));
            }
            // A Deployment's selector selects its own pods.
            if field == "spec.selector.matchLabels"
                && d["kind"] == "Deployment"
                && !selects(selector, &d["spec"]["template"]["metadata"]["labels"])
            {
                bad(format!("{field} does not select its pod template"));
            }
        }
        if d["kind"] == "NetworkPolicy" {
            let rules = [("ingress", "from"), ("egress", "to")];
            for (rule, peers) in rules {
                for (i, r) in d["spec"][rule]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    for p in r[peers].as_sequence().into_iter().flatten() {
                        let m = &p["podSelector"]["matchLabels"];
                        if !m[NAME].is_null() || !m[INSTANCE].is_null() {
                            bad(format!(
                                "{rule}[{i}].{peers}: a peer's podSelector carries labgate's labels: {m:?}"
                            ));
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_object_carries_the_recommended_labels_and_selectors_select_the_pods() {
    let mut problems = Vec::new();
    for dir in std::iter::once(base()).chain(OVERLAYS.iter().map(|(o, _)| overlay(o))) {
        let at = dir.strip_prefix(root()).unwrap().display().to_string();
        let docs = render(&dir).docs;
        // The base leaves component and part-of to the overlays.
        if dir != base() {
            problems.extend(label_problems(&at, &docs));
        }
        for d in &docs {
            for l in [NAME, INSTANCE, VERSION] {
                if d["metadata"]["labels"][l].is_null() {
                    problems.push(format!("{at} {}: no {l}", what(d)));
                }
            }
        }
    }
    for (file, docs) in manifests() {
        if file.starts_with("deploy/kubernetes/") {
            problems.extend(label_problems(&file, &docs));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));

    // The checks report labels as the manifests had them (`app: labgate`), a selector with
    // the version, a selector of other pods...
    let mut docs = render(&overlay("forward-auth")).docs;
    let shipped = docs.clone();
    for d in &mut docs {
        let m = d["metadata"].as_mapping_mut().unwrap();
        m.insert(
            "labels".into(),
            serde_norway::from_str("{ app: labgate }").unwrap(),
        );
        let kind = d["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Service" => {
                d["spec"]["selector"] = serde_norway::from_str("{ app: labgate }").unwrap();
            }
            "Deployment" => {
                d["spec"]["selector"]["matchLabels"][VERSION] = "0.0.1".into();
            }
            "PodDisruptionBudget" => {
                d["spec"]["selector"]["matchLabels"][INSTANCE] = "other".into();
            }
            _ => {}
        }
    }
    let found = label_problems("broken", &docs);
    for expected in [
        "ConfigMap/labgate-",
        "metadata.labels: no app.kubernetes.io/name",
        "Service/labgate: spec.selector is {\"app\"}",
        "Service/labgate: spec.selector selects no pod",
        "Deployment/labgate: spec.selector.matchLabels is",
        "Deployment/labgate: spec.selector.matchLabels does not select its pod template",
        "PodDisruptionBudget/labgate: spec.selector.matchLabels selects no pod",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected} not reported:\n{}",
            found.join("\n")
        );
    }
    assert!(label_problems("shipped", &shipped).is_empty());

    // ... and the trap the base avoids: kustomize's `includeSelectors: true` puts labgate's
    // labels into the NetworkPolicy's peers too, and DNS (kube-dns's pods) is cut off.
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(base()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    let k = copy.path().join("kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    let trapped = text.replace(
        "    includeTemplates: true\n",
        "    includeSelectors: true\n",
    );
    assert_ne!(trapped, text, "the base's labels: entry");
    std::fs::write(&k, trapped).unwrap();
    let found = label_problems("includeSelectors", &render(copy.path()).docs);
    assert!(
        found
            .iter()
            .any(|p| p.contains("egress[0].to: a peer's podSelector carries labgate's labels")),
        "{found:?}"
    );
}
