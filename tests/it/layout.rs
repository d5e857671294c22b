//! The import rule of `src/lib.rs`'s layout: every module imports only modules on a lower
//! floor (a few same-floor arrows are listed), so no import circle can come back. Reads
//! every `crate::…` path in `src/**/*.rs`, outside `#[cfg(test)]` modules.

use std::collections::BTreeSet;
use std::path::Path;

/// The floors, top-down (lib.rs's Layout block says the same in words). A path resolves to
/// the longest key it starts with.
const FLOORS: &[(&str, u8)] = &[
    ("main", 10),
    ("lib", 9),
    ("cli", 9),
    ("check", 9),
    ("healthcheck", 9),
    ("migrate", 9),
    ("revoke", 9),
    ("dev", 9),
    ("server", 8),
    ("router", 7),
    ("signin", 6),
    ("admin", 6),
    ("userinfo", 6),
    ("webhooks", 6),
    ("sessions_page", 6),
    ("forward_auth::endpoint", 6),
    ("auth", 5),
    ("reject", 4),
    ("app", 3),
    ("oauth", 2),
    ("oauth::gitlab", 2),
    ("session", 2),
    ("identity", 2),
    ("proxy", 2),
    ("pages", 2),
    ("respond", 2),
    ("telemetry", 2),
    ("metrics", 2),
    ("forward_auth", 2),
    ("config", 1),
    ("access", 0),
    ("machine", 0),
    ("headers", 0),
    ("trace", 0),
    ("oauth::flow", 0),
    ("oauth::redirect", 0),
    // The crate root's helpers (random_token...) and the re-exported run / serve.
    ("random_token", 0),
    ("generate_cookie_secret", 0),
    ("run", 8),
    ("serve", 8),
    ("Listeners", 8),
    ("RunError", 8),
];

/// Same-floor arrows the layout allows.
const ALLOWED_SAME_FLOOR: &[(&str, &str)] = &[
    ("identity", "session"),
    ("telemetry", "identity"),
    ("forward_auth", "identity"),
    ("respond", "proxy"),
    ("oauth::gitlab", "metrics"),
    ("oauth::gitlab", "oauth::flow"),
    ("config", "config"),
    // Pure leaves: a CI claim's path rule is access's; a bearer credential is read as
    // headers reads it.
    ("machine", "access"),
    ("machine", "headers"),
    // One list of the characters normalisers read as `.` or `/`.
    ("oauth::redirect", "access"),
];

fn key_of(path: &str) -> Option<(&'static str, u8)> {
    FLOORS
        .iter()
        .filter(|(k, _)| path == *k || path.starts_with(&format!("{k}::")))
        .max_by_key(|(k, _)| k.len())
        .map(|(k, f)| (*k, *f))
}

/// The module a source file belongs to, as `a::b` (`src/oauth/flow.rs` is `oauth::flow`).
fn module_of(file: &Path, src: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
}

/// Source text without `#[cfg(test)]` modules (tests may reach anywhere).
fn without_tests(text: &str) -> String {
    match text.find("#[cfg(test)]\nmod ") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::a::b` path in `text` (`use crate::{a, b::c}` groups included).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let tail = &rest[at + "crate::".len()..];
        if let Some(group) = tail.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim();
                if !item.is_empty() {
                    out.insert(item.split(" as ").next().unwrap().trim().to_owned());
                }
            }
        } else {
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            let path = tail[..end].trim_end_matches(':');
            if !path.is_empty() {
                out.insert(path.to_owned());
            }
        }
        rest = tail;
    }
    out
}

#[test]
fn every_import_points_down_the_layout() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for file in all {
        let module = module_of(&file, &src);
        let Some((from, floor)) = key_of(&module) else {
            wrong.push(format!("{module}: no floor in the layout"));
            continue;
        };
        let text = without_tests(&std::fs::read_to_string(&file).unwrap());
        for path in crate_paths(&text) {
            let Some((to, to_floor)) = key_of(&path) else {
                wrong.push(format!("{module} -> crate::{path}: no floor in the layout"));
                continue;
            };
            let own = to == from || module.starts_with(&format!("{to}::"));
            let down =
                to_floor < floor || (to_floor == floor && ALLOWED_SAME_FLOOR.contains(&(from, to)));
            if !own && !down {
                wrong.push(format!(
                    "{module} (floor {floor}) -> crate::{path} ({to}, floor {to_floor})"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against src/lib.rs's layout:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_layout_reader_sees_imports() {
    let paths = crate_paths("use crate::app::App;\nuse crate::{auth, session::Session as S};\nlet x = crate::headers::strip(h);");
    assert!(paths.contains("app::App"));
    assert!(paths.contains("auth"));
    assert!(paths.contains("session::Session"));
    assert!(paths.contains("headers::strip"));
    assert_eq!(key_of("oauth::flow::begin"), Some(("oauth::flow", 0)));
    assert_eq!(key_of("oauth::gitlab::Gitlab"), Some(("oauth::gitlab", 2)));
    assert_eq!(key_of("router"), Some(("router", 7)));
}
