//! The YAML forms of oauth2-proxy's flags file: a list of args (a container's `args:`), a
//! container, Kubernetes workloads (Deployment, StatefulSet, DaemonSet, Pod, CronJob, a
//! `kind: List` of them), whose oauth2-proxy containers' `command` flags, `args` and `env`
//! are read, or the oauth2-proxy Helm chart's values file (read by `helm`). Several
//! oauth2-proxy containers are several processes, each labelled by the workload around it
//! (`metadata.name`).
//!
//! Owns the YAML only; the flags and variables are read by `source`.

use super::helm::{self, Chart};
use super::options::Version;
use super::source::{EnvVar, SourceError, Value};

/// One process of a YAML flags file.
#[derive(Debug, Default)]
pub(crate) struct Process {
    /// Its name when the file holds several.
    pub(crate) label: Option<String>,
    /// Its flags: the container's `command` after the program, then its `args`.
    pub(crate) args: Vec<String>,
    /// Its environment.
    pub(crate) env: Vec<EnvVar>,
    /// The oauth2-proxy version its image names (`...oauth2-proxy:v7.6.0`), when it does:
    /// which names that version reads (see [`super::options::OldName`]).
    pub(crate) version: Option<Version>,
    /// A Helm values file: what the chart gives oauth2-proxy besides args and env.
    pub(crate) chart: Option<Chart>,
}

pub(crate) fn processes(text: &str, file: &str) -> Result<Vec<Process>, SourceError> {
    use serde::Deserialize;
    let err = |detail: String| SourceError::Yaml {
        file: file.to_owned(),
        detail,
    };
    let mut docs = Vec::new();
    for d in serde_norway::Deserializer::from_str(text) {
        docs.push(
            serde_norway::Value::deserialize(d).map_err(|e| err(format!("not valid YAML: {e}")))?,
        );
    }
    for doc in &docs {
        if let serde_norway::Value::Sequence(items) = doc {
            return Ok(vec![Process {
                args: items.iter().filter_map(yaml_scalar).collect(),
                ..Process::default()
            }]);
        }
    }
    if let [doc] = docs.as_slice() {
        if let Some((values, under)) = helm::values(doc) {
            let chart = helm::chart(values, under);
            return Ok(vec![Process {
                label: None,
                args: chart.args.clone(),
                env: chart.env.clone(),
                version: chart.version,
                chart: Some(chart),
            }]);
        }
    }
    let mut containers = Vec::new();
    for doc in &docs {
        find_containers(doc, None, &mut containers);
    }
    let wanted: Vec<&Found<'_>> = containers
        .iter()
        .filter(|(_, c)| {
            ["image", "name"].iter().any(|k| {
                c.get(*k)
                    .and_then(serde_norway::Value::as_str)
                    .is_some_and(|v| v.contains("oauth2-proxy") || v.contains("oauth2_proxy"))
            })
        })
        .collect();
    let chosen: Vec<&Found<'_>> = match (wanted.as_slice(), containers.as_slice()) {
        ([], [one]) => vec![one],
        ([], []) => {
            return Err(err(
                "no args found: give a YAML list of flags, a container with args, or a Kubernetes workload whose container runs oauth2-proxy".into(),
            ))
        }
        ([], _) => {
            return Err(err(
                "several containers and none runs an oauth2-proxy image: give just that container's args".into(),
            ))
        }
        (w, _) => w.to_vec(),
    };
    let several = chosen.len() > 1;
    let labels: Vec<Option<String>> = chosen
        .iter()
        .enumerate()
        .map(|(i, (owner, c))| {
            let name = c.get("name").and_then(serde_norway::Value::as_str);
            let shared = chosen
                .iter()
                .filter(|(o, _)| o.is_some() && o == owner)
                .count()
                > 1;
            match (owner, name) {
                _ if !several => None,
                (Some(o), Some(n)) if shared => Some(format!("{o}/{n}")),
                (Some(o), _) => Some(o.clone()),
                (None, Some(n)) => Some(n.to_owned()),
                (None, None) => Some(format!("container {}", i + 1)),
            }
        })
        .collect();
    if let Some(dup) = labels
        .iter()
        .flatten()
        .find(|l| labels.iter().flatten().filter(|m| m == l).count() > 1)
    {
        return Err(err(format!(
            "two oauth2-proxy containers are both named {dup:?}: give each workload its own metadata.name"
        )));
    }
    Ok(chosen
        .iter()
        .zip(labels)
        .map(|((_, c), label)| {
            let seq = |k: &str| -> Vec<String> {
                c.get(k)
                    .and_then(serde_norway::Value::as_sequence)
                    .map(|s| s.iter().filter_map(yaml_scalar).collect())
                    .unwrap_or_default()
            };
            // `command: ["/bin/oauth2-proxy", "--flag"]`: the flags after the program count too.
            let mut args: Vec<String> = seq("command").into_iter().skip(1).collect();
            args.extend(seq("args"));
            let env = c
                .get("env")
                .and_then(serde_norway::Value::as_sequence)
                .map(|items| items.iter().filter_map(yaml_env).collect())
                .unwrap_or_default();
            let version = c
                .get("image")
                .and_then(serde_norway::Value::as_str)
                .and_then(Version::of_image);
            Process {
                label,
                args,
                env,
                version,
                chart: None,
            }
        })
        .collect())
}

/// A container and the name of the workload it is in (the nearest `metadata.name`).
type Found<'a> = (Option<String>, &'a serde_norway::Value);

/// Containers anywhere in a document (Deployment, StatefulSet, CronJob, Pod, a List of
/// them...), or the document itself when it is a container (has `args`), each with the
/// name of the workload around it.
fn find_containers<'a>(v: &'a serde_norway::Value, owner: Option<&str>, out: &mut Vec<Found<'a>>) {
    match v {
        serde_norway::Value::Mapping(m) => {
            if m.contains_key("args") && !m.contains_key("containers") {
                out.push((owner.map(str::to_owned), v));
                return;
            }
            let named = m
                .get("metadata")
                .and_then(|md| md.get("name"))
                .and_then(serde_norway::Value::as_str);
            let owner = named.or(owner);
            for (k, child) in m {
                if k.as_str() == Some("containers") {
                    if let Some(list) = child.as_sequence() {
                        out.extend(
                            list.iter()
                                .filter(|c| c.is_mapping())
                                .map(|c| (owner.map(str::to_owned), c)),
                        );
                    }
                } else {
                    find_containers(child, owner, out);
                }
            }
        }
        serde_norway::Value::Sequence(items) => {
            for i in items {
                find_containers(i, owner, out);
            }
        }
        _ => {}
    }
}

/// A scalar as text (a string, a boolean, a number).
pub(crate) fn yaml_scalar(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A Kubernetes env var: `value`, or `valueFrom` described (`Secret NAME key KEY`).
pub(crate) fn yaml_env(v: &serde_norway::Value) -> Option<EnvVar> {
    let name = v.get("name")?.as_str()?.to_owned();
    if let Some(s) = v.get("value").and_then(yaml_scalar) {
        return Some(EnvVar {
            name,
            value: Value::Text(s),
        });
    }
    let from = v.get("valueFrom")?;
    let described = [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")]
        .iter()
        .find_map(|(k, what)| {
            let r = from.get(*k)?;
            Some(format!(
                "{what} {} key {}",
                r.get("name")
                    .and_then(serde_norway::Value::as_str)
                    .unwrap_or("?"),
                r.get("key")
                    .and_then(serde_norway::Value::as_str)
                    .unwrap_or("?")
            ))
        })
        .unwrap_or_else(|| "a valueFrom reference".into());
    Some(EnvVar {
        name,
        value: Value::External(described),
    })
}
