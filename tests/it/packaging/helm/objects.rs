//! The chart's objects besides the configuration: the two modes, the recommended labels and
//! the image, and the PrometheusRule against docs/observability.md.

use super::*;

#[test]
fn forward_auth_runs_labgate_alone_and_sidecar_puts_the_app_behind_it() {
    let examples = chart().join("examples");
    let r = rendered(&[examples.join("forward-auth.yaml")]);
    crate::packaging::assert_drains_gracefully("chart (forward-auth)", &r.objects);
    let containers = r.pod()["spec"]["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["name"], "labgate");
    assert_eq!(
        r.config()["upstream"]["url"].as_str(),
        Some("http://127.0.0.1:9")
    );
    // The Ingress routes labgate's own endpoints on the app's host; NOTES give the app's
    // Ingress the auth-url of the Service.
    let rule = &r.one("Ingress")["spec"]["rules"][0];
    assert_eq!(rule["host"], "app.example.com");
    assert_eq!(rule["http"]["paths"][0]["path"], "/oauth2");
    assert!(
        r.notes
            .contains("auth-url: \"http://labgate.auth.svc.cluster.local:4180/oauth2/auth\""),
        "{}",
        r.notes
    );

    let r = rendered(&[examples.join("sidecar.yaml")]);
    let names: Vec<&str> = r.pod()["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["wiki", "labgate"]);
    let app_port = r.container("wiki")["ports"][0]["containerPort"]
        .as_i64()
        .unwrap();
    assert_eq!(
        r.config()["upstream"]["url"].as_str(),
        Some(format!("http://127.0.0.1:{app_port}").as_str()),
        "labgate forwards to the app in the pod"
    );
    // Nothing reaches the app's port but labgate: neither the Service nor the policy.
    for port in r.one("Service")["spec"]["ports"].as_sequence().unwrap() {
        assert_ne!(port["targetPort"], "app");
        assert_ne!(port["targetPort"].as_i64(), Some(app_port));
    }
    for rule in r.one("NetworkPolicy")["spec"]["ingress"]
        .as_sequence()
        .unwrap()
    {
        for port in rule["ports"].as_sequence().unwrap() {
            assert_ne!(port["port"].as_i64(), Some(app_port), "{rule:?}");
        }
    }
    assert_eq!(
        r.one("Ingress")["spec"]["rules"][0]["http"]["paths"][0]["path"],
        "/"
    );
}

#[test]
fn every_object_carries_the_recommended_labels_and_the_image_follows_tag_and_digest() {
    let meta: Value = serde_norway::from_str(&read(&format!("{CHART}/Chart.yaml"))).unwrap();
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["name"], "labgate");
    let app_version = meta["appVersion"].as_str().unwrap().to_owned();
    let r = rendered(&[chart().join("examples/redis.yaml")]);
    let expected = [
        ("app.kubernetes.io/name", "labgate"),
        ("app.kubernetes.io/instance", RELEASE),
        ("app.kubernetes.io/version", app_version.as_str()),
        ("app.kubernetes.io/component", "forward-auth"),
        ("app.kubernetes.io/part-of", "labgate"),
        ("app.kubernetes.io/managed-by", "Helm"),
    ];
    let mut labelled: Vec<&Value> = r.objects.iter().collect();
    labelled.push(r.pod());
    for o in labelled {
        for (label, value) in expected {
            assert_eq!(
                o["metadata"]["labels"][label].as_str(),
                Some(value),
                "{label} on {:?} {:?}",
                o["kind"],
                o["metadata"]["name"]
            );
        }
    }
    let image = |r: &Rendered| r.container("labgate")["image"].as_str().unwrap().to_owned();
    assert_eq!(
        image(&r),
        format!("registry.example.com/labgate:{app_version}"),
        "the tag defaults to appVersion"
    );
    let dir = tempfile::tempdir().unwrap();
    let tag = values_file(dir.path(), "tag.yaml", "image:\n  tag: \"0.2.1\"\n");
    assert_eq!(
        image(&rendered(&[tag])),
        "registry.example.com/labgate:0.2.1"
    );
    let digest = format!("sha256:{}", "ab".repeat(32));
    let pinned = values_file(
        dir.path(),
        "digest.yaml",
        &format!("image:\n  repository: registry.internal/labgate\n  tag: \"0.2.1\"\n  digest: \"{digest}\"\n"),
    );
    assert_eq!(
        image(&rendered(&[pinned])),
        format!("registry.internal/labgate@{digest}")
    );
}

#[test]
fn the_prometheus_rule_holds_the_alerts_of_docs_observability_as_written() {
    let doc = read("docs/observability.md");
    let section = doc
        .split("\n## Alerts\n")
        .nth(1)
        .expect("docs/observability.md has an Alerts section");
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a yaml block under Alerts");
    let alerts: Value = serde_norway::from_str(block).unwrap();
    let r = rendered(&[chart().join("examples/redis.yaml")]);
    let rule = r.one("PrometheusRule");
    assert_eq!(rule["spec"]["groups"], alerts["groups"]);
    // Prometheus's templates reach it unexpanded by Helm.
    let summaries: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| r["annotations"]["summary"].as_str())
        .collect();
    for template in [
        "({{ $value | humanizePercentage }})",
        "(endpoint {{ $labels.endpoint }})",
    ] {
        assert!(
            summaries.iter().any(|s| s.contains(template)),
            "{template}: {summaries:?}"
        );
    }
    // extraRules join the group.
    let dir = tempfile::tempdir().unwrap();
    let extra = values_file(
        dir.path(),
        "extra.yaml",
        "metrics:\n  prometheusRule:\n    enabled: true\n    extraRules:\n      - alert: LabgateConfigReloadRefused\n        expr: increase(labgate_config_reloads_total{outcome=\"refused\"}[10m]) > 0\n",
    );
    let r = rendered(&[extra]);
    let rules = r.one("PrometheusRule")["spec"]["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .clone();
    assert_eq!(
        rules.len(),
        alerts["groups"][0]["rules"].as_sequence().unwrap().len() + 1
    );
    assert_eq!(rules.last().unwrap()["alert"], "LabgateConfigReloadRefused");
}
