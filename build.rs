//! Build script: tells the crate which commit it is built from, for `labgate_build_info`.
//!
//! `LABGATE_BUILD_COMMIT` wins (container and release builds without a `.git`, or that pin
//! it), then `git rev-parse HEAD` of the source tree, else "unknown": a build never fails for
//! want of git, and the value depends only on the sources (no time, no host), so builds stay
//! reproducible.

use std::path::Path;
use std::process::Command;

/// The environment variable that overrides the commit.
const COMMIT_ENV: &str = "LABGATE_BUILD_COMMIT";
/// What a build outside any git checkout reports.
const UNKNOWN: &str = "unknown";

fn main() {
    println!("cargo:rerun-if-env-changed={COMMIT_ENV}");
    let commit = std::env::var(COMMIT_ENV)
        .ok()
        .map(|c| c.trim().to_owned())
        .filter(|c| is_sane(c))
        .or_else(git_commit)
        .unwrap_or_else(|| UNKNOWN.to_owned());
    println!("cargo:rustc-env={COMMIT_ENV}={commit}");
}

/// A commit id as a label value: short, printable, nothing a scraper could choke on.
fn is_sane(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 64
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
}

/// `git rev-parse HEAD`, and rebuild when HEAD moves: a checkout rewrites `HEAD`, a commit
/// the branch's ref (loose, or in `packed-refs`) and the reflog.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env_dir())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| is_sane(c))?;
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = ["HEAD", "logs/HEAD", "packed-refs"]
        .into_iter()
        .map(str::to_owned)
        .chain(branch);
    for file in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &file]) {
            let path = env_dir().join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Some(commit)
}

fn env_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(".").to_path_buf())
}
