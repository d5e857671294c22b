//! `[machine]` compiled into the pure [`crate::machine::MachinePolicy`].

use std::time::Duration;

use crate::config::access::is_gitlab_path;
use crate::config::file::MachineFile;
use crate::config::{parse_duration, Problem};
use crate::machine::{AllowRule, MachinePolicy};

/// Compiles `[machine]`, pushing a problem for each bad entry.
pub(crate) fn compile(m: &MachineFile, problems: &mut Vec<Problem>) -> MachinePolicy {
    let mut p = |key: String, message: String| problems.push(Problem { key, message });
    let mut allow = Vec::new();
    for (i, a) in m.allow.iter().enumerate() {
        if a.project_path.is_none() && a.namespace_path.is_none() {
            p(format!("machine.allow[{i}]"), "each [[machine.allow]] needs project_path = \"group/project\" or namespace_path = \"group\"".into());
            continue;
        }
        let mut bad = false;
        for (field, value) in [
            ("project_path", &a.project_path),
            ("namespace_path", &a.namespace_path),
        ] {
            if let Some(v) = value {
                if !is_gitlab_path(v) || (field == "project_path" && !v.contains('/')) {
                    p(
                        format!("machine.allow[{i}].{field}"),
                        format!("{v:?} is not a GitLab full path such as \"acme/deployer\" (ASCII letters, digits, '_', '-', '.', and '/' between segments)"),
                    );
                    bad = true;
                }
            }
        }
        if bad {
            continue;
        }
        allow.push(AllowRule {
            index: i,
            project_path: a.project_path.clone(),
            namespace_path: a.namespace_path.clone(),
            ref_: a.ref_.clone(),
            ref_protected: a.ref_protected.unwrap_or(true),
            environment: a.environment.clone(),
        });
    }
    let audience = m.audience.clone().filter(|a| !a.is_empty());
    if !allow.is_empty() && audience.is_none() {
        p(
            "machine.audience".into(),
            "machine.audience is required with [[machine.allow]]: the aud your CI jobs request in `id_tokens:` (e.g. your public_url)".into(),
        );
    }
    let ttl_text = m.token_cache_ttl.as_deref().unwrap_or("60s");
    let token_cache_ttl = parse_duration(ttl_text).unwrap_or_else(|e| {
        p(
            "machine.token_cache_ttl".into(),
            format!("{ttl_text:?} is not a duration ({e})"),
        );
        Duration::from_secs(60)
    });
    MachinePolicy {
        audience,
        gitlab_tokens: m.gitlab_tokens.unwrap_or(false),
        token_cache_ttl,
        allow,
    }
}
