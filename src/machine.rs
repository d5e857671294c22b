//! Bearer credentials for scripts and CI jobs (`[machine]`).
//!
//! This build does not accept bearer credentials yet. The keys are recognised so that a
//! config written for a later version fails loudly instead of silently admitting or
//! refusing machine callers in a way the operator did not intend.

use crate::config::file::MachineFile;
use crate::config::{Problem, ServerConfig};

/// The compiled `[machine]` policy: empty in this build.
#[derive(Debug, Clone, Default)]
pub struct MachinePolicy {}

impl MachinePolicy {
    /// Reports a problem when `[machine]` is configured, since it is not supported yet.
    pub fn compile(m: &MachineFile, _server: &ServerConfig, problems: &mut Vec<Problem>) -> Self {
        if m.audience.is_some() || m.gitlab_tokens.unwrap_or(false) || !m.allow.is_empty() {
            problems.push(Problem {
                key: "machine".into(),
                message: "machine access (GitLab CI ID tokens and access tokens) is not available in this \
                          version of labgate; remove the [machine] section"
                    .into(),
            });
        }
        MachinePolicy {}
    }
}
