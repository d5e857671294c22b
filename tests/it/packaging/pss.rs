//! The `restricted` Pod Security Standard (Kubernetes 1.25+, the profile a namespace labelled
//! `pod-security.kubernetes.io/enforce: restricted` admits), checked on every pod spec of
//! every manifest in deploy/: Pods, the templates of Deployments, ReplicaSets, StatefulSets,
//! DaemonSets, Jobs, ReplicationControllers and PodTemplates, and CronJobs' job templates;
//! every container, init container and ephemeral container. On top of the standard,
//! labgate's own rules: an explicit numeric, non-zero `runAsUser` and `runAsGroup` (65532 for
//! labgate's containers, the image's user), and a read-only root filesystem.
//!
//! The checker is shown to fail: each way of breaking the shipped manifests is reported.

use serde_norway::{Mapping, Value};

use super::manifests;

/// The user and group labgate's image runs as (Dockerfile `USER 65532:65532`).
const LABGATE_ID: i64 = 65532;

/// Volume types the restricted profile allows.
const VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Sysctls the baseline profile allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// SELinux types the baseline profile allows (besides none).
const SELINUX_TYPES: &[&str] = &[
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Every pod (template) in a document, with where it is (`Deployment/wiki`): an object
/// with the pod's `metadata` and `spec`.
pub(crate) fn pod_specs(doc: &Value) -> Vec<(String, &Value)> {
    let kind = doc["kind"].as_str().unwrap_or("");
    let name = doc["metadata"]["name"].as_str().unwrap_or("?");
    let pod = match kind {
        "Pod" => Some(doc),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => Some(&doc["spec"]["template"]),
        "PodTemplate" => Some(&doc["template"]),
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]),
        _ => None,
    };
    match pod {
        Some(p) => {
            assert!(
                p["spec"].is_mapping(),
                "{kind}/{name}: no pod spec where one belongs"
            );
            vec![(format!("{kind}/{name}"), p)]
        }
        None => Vec::new(),
    }
}

/// Every container of a pod spec: `containers`, `initContainers`, `ephemeralContainers`.
pub(crate) fn containers(spec: &Value) -> Vec<(String, &Value)> {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| {
            spec[*list]
                .as_sequence()
                .map(|s| s.iter().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(move |c| (format!("{list}[{}]", c["name"].as_str().unwrap_or("?")), c))
        })
        .collect()
}

/// A field that is set to true.
fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true)
}

/// A container's setting, else the pod's (`securityContext` fields that exist on both).
fn effective<'a>(pod: &'a Value, container: &'a Value, field: &str) -> &'a Value {
    let c = &container["securityContext"][field];
    if c.is_null() {
        &pod["securityContext"][field]
    } else {
        c
    }
}

/// Everything in one pod (from [`pod_specs`]) that the restricted profile (and labgate's
/// rules) refuses.
pub(crate) fn violations(at: &str, pod: &Value) -> Vec<String> {
    let spec = &pod["spec"];
    let mut out = Vec::new();
    let mut bad = |what: String| out.push(format!("{at}: {what}"));
    let pod_sc = &spec["securityContext"];

    // Baseline: host namespaces, host volumes and ports, privileged, sysctls, profiles.
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if is_true(&spec[field]) {
            bad(format!("spec.{field} must not be true"));
        }
    }
    if is_true(&pod_sc["windowsOptions"]["hostProcess"]) {
        bad("spec.securityContext.windowsOptions.hostProcess must not be true".into());
    }
    for s in pod_sc["sysctls"].as_sequence().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or("");
        if !SAFE_SYSCTLS.contains(&name) {
            bad(format!("sysctl {name} is not in the baseline's safe set"));
        }
    }
    for v in spec["volumes"].as_sequence().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("?");
        let types: Vec<&str> = v
            .as_mapping()
            .map(|m| {
                m.keys()
                    .filter_map(Value::as_str)
                    .filter(|k| *k != "name")
                    .collect()
            })
            .unwrap_or_default();
        for t in types {
            if !VOLUME_TYPES.contains(&t) {
                bad(format!(
                    "volume {name}: type {t} is not allowed (only {VOLUME_TYPES:?})"
                ));
            }
        }
    }
    let profile_ok = |p: &Value, what: &str, out: &mut Vec<String>| {
        if let Some(t) = p["seccompProfile"]["type"].as_str() {
            if t != "RuntimeDefault" && t != "Localhost" {
                out.push(format!(
                    "{at}: {what}seccompProfile.type {t} (RuntimeDefault or Localhost)"
                ));
            }
        }
        if let Some(t) = p["appArmorProfile"]["type"].as_str() {
            if t != "RuntimeDefault" && t != "Localhost" {
                out.push(format!(
                    "{at}: {what}appArmorProfile.type {t} (RuntimeDefault or Localhost)"
                ));
            }
        }
        let se = &p["seLinuxOptions"];
        if let Some(t) = se["type"].as_str() {
            if !t.is_empty() && !SELINUX_TYPES.contains(&t) {
                out.push(format!(
                    "{at}: {what}seLinuxOptions.type {t} is not allowed"
                ));
            }
        }
        for f in ["user", "role"] {
            if se[f].as_str().is_some_and(|v| !v.is_empty()) {
                out.push(format!("{at}: {what}seLinuxOptions.{f} must not be set"));
            }
        }
    };
    let mut profile_problems = Vec::new();
    profile_ok(pod_sc, "spec.securityContext.", &mut profile_problems);
    if let Some(annotations) = pod["metadata"]["annotations"].as_mapping() {
        annotation_problems(at, annotations, &mut profile_problems);
    }

    // Restricted, pod level: runAsUser never 0.
    if pod_sc["runAsUser"].as_i64() == Some(0) {
        bad("spec.securityContext.runAsUser must not be 0".into());
    }

    let all = containers(spec);
    if all.is_empty() {
        bad("no containers".into());
    }
    for (name, c) in all {
        let sc = &c["securityContext"];
        let mut bad = |what: String| out.push(format!("{at} {name}: {what}"));
        if is_true(&sc["privileged"]) {
            bad("securityContext.privileged must not be true".into());
        }
        if is_true(&sc["windowsOptions"]["hostProcess"]) {
            bad("securityContext.windowsOptions.hostProcess must not be true".into());
        }
        if sc["procMount"].as_str().is_some_and(|p| p != "Default") {
            bad("securityContext.procMount must be Default".into());
        }
        for p in c["ports"].as_sequence().into_iter().flatten() {
            if p["hostPort"].as_i64().is_some_and(|h| h != 0) {
                bad(format!("hostPort {:?} must not be set", p["hostPort"]));
            }
        }
        profile_ok(sc, "securityContext.", &mut profile_problems);
        // Restricted.
        if sc["allowPrivilegeEscalation"].as_bool() != Some(false) {
            bad("securityContext.allowPrivilegeEscalation must be false".into());
        }
        if !is_true(effective(spec, c, "runAsNonRoot")) {
            bad("runAsNonRoot must be true (pod or container securityContext)".into());
        }
        let seccomp = effective(spec, c, "seccompProfile")["type"].as_str();
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            bad("seccompProfile.type must be RuntimeDefault or Localhost (pod or container securityContext)".into());
        }
        let caps = &sc["capabilities"];
        let drops_all = caps["drop"]
            .as_sequence()
            .is_some_and(|d| d.iter().any(|c| c.as_str() == Some("ALL")));
        if !drops_all {
            bad("securityContext.capabilities.drop must include ALL".into());
        }
        for added in caps["add"].as_sequence().into_iter().flatten() {
            if added.as_str() != Some("NET_BIND_SERVICE") {
                bad(format!(
                    "capability {added:?} may not be added (only NET_BIND_SERVICE)"
                ));
            }
        }
        // Numeric ids: the kubelet can then verify runAsNonRoot whatever the image says.
        let labgate = c["image"].as_str().is_some_and(|i| i.contains("/labgate:"));
        for field in ["runAsUser", "runAsGroup"] {
            match effective(spec, c, field).as_i64() {
                None => bad(format!("{field} must be set to a numeric id")),
                Some(0) => bad(format!("{field} must not be 0")),
                Some(id) if labgate && id != LABGATE_ID => bad(format!(
                    "{field} must be {LABGATE_ID} (the image's user), not {id}"
                )),
                Some(_) => {}
            }
        }
        if !is_true(&sc["readOnlyRootFilesystem"]) {
            bad("securityContext.readOnlyRootFilesystem must be true".into());
        }
    }
    out.extend(profile_problems);
    out
}

/// AppArmor as annotations (before `appArmorProfile` fields): runtime/default or localhost/*.
fn annotation_problems(at: &str, annotations: &Mapping, out: &mut Vec<String>) {
    for (k, v) in annotations {
        let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
            continue;
        };
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && v != "runtime/default"
            && !v.starts_with("localhost/")
        {
            out.push(format!(
                "{at}: annotation {k}: {v} (runtime/default or localhost/*)"
            ));
        }
    }
}

/// Every violation in every pod spec of every manifest's documents.
fn all_violations(docs: &[Value], file: &str) -> Vec<String> {
    docs.iter()
        .flat_map(|d| {
            pod_specs(d)
                .into_iter()
                .flat_map(|(at, pod)| violations(&format!("{file} {at}"), pod))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_pod_spec_in_deploy_meets_the_restricted_pod_security_standard() {
    let mut pods = 0;
    for (file, docs) in manifests() {
        pods += docs.iter().map(|d| pod_specs(d).len()).sum::<usize>();
        let problems = all_violations(&docs, &file);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
    assert!(
        pods >= 2,
        "the sidecar and forward-auth pods were found ({pods})"
    );
}

/// The shipped sidecar Deployment's pod template, to break.
fn shipped_pod() -> Value {
    let (_, docs) = manifests()
        .into_iter()
        .find(|(f, _)| f == "deploy/kubernetes/sidecar.yaml")
        .unwrap();
    let d = docs
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    d["spec"]["template"].clone()
}

fn labgate_container(spec: &mut Value) -> &mut Value {
    spec["containers"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == "labgate")
        .unwrap()
}

fn set(v: &mut Value, path: &[&str], to: Value) {
    let mut at = v;
    for (i, key) in path.iter().enumerate() {
        if i + 1 == path.len() {
            at.as_mapping_mut().unwrap().insert((*key).into(), to);
            return;
        }
        let m = at.as_mapping_mut().unwrap();
        if !m.contains_key(*key) {
            m.insert((*key).into(), Value::Mapping(Mapping::new()));
        }
        at = m.get_mut(*key).unwrap();
    }
}

fn remove(v: &mut Value, path: &[&str]) {
    let mut at = v;
    for key in &path[..path.len() - 1] {
        at = at.get_mut(*key).unwrap();
    }
    at.as_mapping_mut()
        .unwrap()
        .remove(path[path.len() - 1])
        .unwrap_or_else(|| panic!("{path:?} was set in the shipped manifest"));
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap()
}

#[test]
fn the_checker_reports_every_way_of_breaking_the_shipped_pod() {
    type Break = fn(&mut Value);
    let breaks: &[(&str, Break, &str)] = &[
        (
            "no pod seccompProfile",
            |s| remove(s, &["securityContext", "seccompProfile"]),
            "seccompProfile.type must be",
        ),
        (
            "seccomp Unconfined in a container",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "seccompProfile"],
                    yaml("{type: Unconfined}"),
                )
            },
            "seccompProfile.type Unconfined",
        ),
        (
            "no runAsNonRoot",
            |s| remove(s, &["securityContext", "runAsNonRoot"]),
            "runAsNonRoot must be true",
        ),
        (
            "a container's runAsNonRoot false",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "runAsNonRoot"],
                    Value::Bool(false),
                )
            },
            "runAsNonRoot must be true",
        ),
        (
            "no runAsUser",
            |s| remove(s, &["securityContext", "runAsUser"]),
            "runAsUser must be set to a numeric id",
        ),
        (
            "runAsUser 0 on a container",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "runAsUser"],
                    Value::from(0),
                )
            },
            "runAsUser must not be 0",
        ),
        (
            "labgate as another user",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "runAsGroup"],
                    Value::from(1000),
                )
            },
            "runAsGroup must be 65532",
        ),
        (
            "privilege escalation",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "allowPrivilegeEscalation"],
                    Value::Bool(true),
                )
            },
            "allowPrivilegeEscalation must be false",
        ),
        (
            "allowPrivilegeEscalation unset",
            |s| {
                remove(
                    labgate_container(s),
                    &["securityContext", "allowPrivilegeEscalation"],
                )
            },
            "allowPrivilegeEscalation must be false",
        ),
        (
            "capabilities kept",
            |s| remove(labgate_container(s), &["securityContext", "capabilities"]),
            "drop must include ALL",
        ),
        (
            "a capability added",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "capabilities", "add"],
                    yaml("[NET_ADMIN]"),
                )
            },
            "may not be added",
        ),
        (
            "a writable root filesystem",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "readOnlyRootFilesystem"],
                    Value::Bool(false),
                )
            },
            "readOnlyRootFilesystem must be true",
        ),
        (
            "privileged",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "privileged"],
                    Value::Bool(true),
                )
            },
            "privileged must not be true",
        ),
        (
            "host network",
            |s| set(s, &["hostNetwork"], Value::Bool(true)),
            "hostNetwork must not be true",
        ),
        (
            "host PID",
            |s| set(s, &["hostPID"], Value::Bool(true)),
            "hostPID must not be true",
        ),
        (
            "a hostPath volume",
            |s| {
                s["volumes"]
                    .as_sequence_mut()
                    .unwrap()
                    .push(yaml("{name: host, hostPath: {path: /}}"))
            },
            "type hostPath is not allowed",
        ),
        (
            "a host port",
            |s| {
                set(
                    labgate_container(s),
                    &["ports"],
                    yaml("[{containerPort: 4180, hostPort: 4180}]"),
                )
            },
            "hostPort",
        ),
        (
            "an unsafe sysctl",
            |s| {
                set(
                    s,
                    &["securityContext", "sysctls"],
                    yaml("[{name: kernel.msgmax, value: '1'}]"),
                )
            },
            "sysctl kernel.msgmax",
        ),
        (
            "procMount Unmasked",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "procMount"],
                    Value::from("Unmasked"),
                )
            },
            "procMount must be Default",
        ),
        (
            "an SELinux user",
            |s| {
                set(
                    s,
                    &["securityContext", "seLinuxOptions"],
                    yaml("{user: system_u}"),
                )
            },
            "seLinuxOptions.user",
        ),
        (
            "AppArmor unconfined",
            |s| {
                set(
                    labgate_container(s),
                    &["securityContext", "appArmorProfile"],
                    yaml("{type: Unconfined}"),
                )
            },
            "appArmorProfile.type Unconfined",
        ),
        (
            "an SELinux type that escapes the container",
            |s| {
                set(
                    s,
                    &["securityContext", "seLinuxOptions"],
                    yaml("{type: spc_t}"),
                )
            },
            "seLinuxOptions.type spc_t",
        ),
        (
            "an init container without a securityContext",
            |s| {
                set(
                    s,
                    &["initContainers"],
                    yaml("[{name: init, image: busybox:1.36}]"),
                )
            },
            "initContainers[init]: securityContext.allowPrivilegeEscalation",
        ),
        (
            "an ephemeral container without a securityContext",
            |s| {
                set(
                    s,
                    &["ephemeralContainers"],
                    yaml("[{name: debug, image: busybox:1.36}]"),
                )
            },
            "ephemeralContainers[debug]: securityContext.capabilities.drop",
        ),
    ];
    let shipped = shipped_pod();
    assert!(violations("shipped", &shipped).is_empty());
    for (what, break_it, expected) in breaks {
        let mut pod = shipped.clone();
        break_it(&mut pod["spec"]);
        let found = violations("broken", &pod);
        assert!(
            found.iter().any(|v| v.contains(expected)),
            "{what}: expected a violation containing {expected:?}, found {found:?}"
        );
    }
    // AppArmor as the older annotation on the pod's metadata.
    let mut pod = shipped.clone();
    set(
        &mut pod,
        &[
            "metadata",
            "annotations",
            "container.apparmor.security.beta.kubernetes.io/labgate",
        ],
        Value::from("unconfined"),
    );
    let found = violations("broken", &pod);
    assert!(
        found
            .iter()
            .any(|v| v.contains("apparmor") && v.contains("unconfined")),
        "{found:?}"
    );
}

#[test]
fn the_checker_finds_pod_specs_in_every_workload_kind() {
    let broken = r#"{containers: [{name: x, image: busybox:1.36}]}"#;
    let template = format!("{{metadata: {{labels: {{a: b}}}}, spec: {broken}}}");
    for (kind, doc) in [
        ("Pod", format!("{{apiVersion: v1, kind: Pod, metadata: {{name: p}}, spec: {broken}}}")),
        ("Deployment", format!("{{apiVersion: apps/v1, kind: Deployment, metadata: {{name: d}}, spec: {{template: {template}}}}}")),
        ("StatefulSet", format!("{{apiVersion: apps/v1, kind: StatefulSet, metadata: {{name: s}}, spec: {{template: {template}}}}}")),
        ("DaemonSet", format!("{{apiVersion: apps/v1, kind: DaemonSet, metadata: {{name: ds}}, spec: {{template: {template}}}}}")),
        ("ReplicaSet", format!("{{apiVersion: apps/v1, kind: ReplicaSet, metadata: {{name: rs}}, spec: {{template: {template}}}}}")),
        ("Job", format!("{{apiVersion: batch/v1, kind: Job, metadata: {{name: j}}, spec: {{template: {template}}}}}")),
        ("CronJob", format!("{{apiVersion: batch/v1, kind: CronJob, metadata: {{name: c}}, spec: {{jobTemplate: {{spec: {{template: {template}}}}}}}}}")),
        ("PodTemplate", format!("{{apiVersion: v1, kind: PodTemplate, metadata: {{name: t}}, template: {template}}}")),
    ] {
        let docs = vec![yaml(&doc)];
        let found = all_violations(&docs, "test.yaml");
        assert!(
            found.iter().any(|v| v.contains(&format!("{kind}/")) && v.contains("runAsNonRoot")),
            "{kind}: {found:?}"
        );
    }
    // Objects without pods have none to check.
    let docs = vec![yaml(
        "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {}}",
    )];
    assert!(all_violations(&docs, "test.yaml").is_empty());
}
