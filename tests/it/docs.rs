//! The documentation stays navigable and true to the code: every relative link and `#anchor`
//! in README.md, CHANGELOG.md, SECURITY.md, deploy/README.md and docs/*.md resolves (GitHub's
//! anchor rules); the README stays under 8 KB, links every page of docs/ and gives the test
//! command CI runs; docs/configuration.md documents exactly the keys `src/config/file.rs`
//! accepts (read from the serde structs, and each confirmed by loading it); and every
//! secret value in the docs and examples is one labgate refuses as published.
//!
//! Each check is a function returning the problems it finds, so that the tests at the end
//! can show it catches what it is meant to catch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// GitHub renders READMEs up to any size, but a newcomer reads a short one (issue 19).
const README_LIMIT: usize = 8192;

/// The pages whose links are checked, besides docs/*.md.
const PAGES: &[&str] = &[
    "README.md",
    "CHANGELOG.md",
    "SECURITY.md",
    "deploy/README.md",
];

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// docs/*.md, as repository-relative paths, sorted.
fn docs_pages() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(format!("{ROOT}/docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    out.sort();
    out
}

/// Every checked page and its text.
fn all_pages() -> BTreeMap<String, String> {
    PAGES
        .iter()
        .map(|p| (*p).to_owned())
        .chain(docs_pages())
        .map(|p| {
            let text = read(&p);
            (p, text)
        })
        .collect()
}

fn exists_on_disk(rel: &str) -> bool {
    std::path::Path::new(&format!("{ROOT}/{rel}")).exists()
}

fn load_from_disk(rel: &str) -> Option<String> {
    std::fs::read_to_string(format!("{ROOT}/{rel}")).ok()
}

// ---------------------------------------------------------------------------------------
// Markdown, as far as links and anchors need it.

/// The lines of `text` outside fenced code blocks (``` or ~~~, indented or not).
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        match fence {
            Some(f) if t.starts_with(f) => fence = None,
            Some(_) => {}
            None if t.starts_with("```") => fence = Some("```"),
            None if t.starts_with("~~~") => fence = Some("~~~"),
            None => out.push(line),
        }
    }
    out
}

static CODE_SPAN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"`[^`]*`").unwrap());
static INLINE_LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"!?\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)"#).unwrap()
});
static REFERENCE_DEF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)").unwrap());
static HEADING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^#{1,6}\s+(.*?)\s*#*\s*$").unwrap());

/// GitHub's anchor for a heading: the rendered text, lower-cased, without punctuation
/// (everything but letters, digits, spaces, `-` and `_`), each space a `-`.
fn slug(heading: &str) -> String {
    let text = INLINE_LINK.replace_all(heading, "$1");
    text.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings; a repeated heading gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose_lines(text) {
        let Some(c) = HEADING.captures(line) else {
            continue;
        };
        let base = slug(&c[1]);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// Every link target of a page: inline links and images, and reference definitions.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        if let Some(c) = REFERENCE_DEF.captures(line) {
            out.push(c[1].to_owned());
            continue;
        }
        let line = CODE_SPAN.replace_all(line, "code");
        for c in INLINE_LINK.captures_iter(&line) {
            out.push(c[2].to_owned());
        }
    }
    out
}

/// `rel` resolved against the directory of `from` (both repository-relative), or `None`
/// when it leaves the repository.
fn resolve(from: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = if rel.starts_with('/') {
        Vec::new()
    } else {
        from.split('/').collect()
    };
    if !rel.starts_with('/') {
        parts.pop(); // the file itself
    }
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:") || is_forge_link(target)
}

/// The changelog's compare links, relative to the page on GitHub or GitLab
/// (`/owner/repo/blob/main/CHANGELOG.md` -> `/owner/repo/compare/v0.1.0...v0.2.0`; GitLab's
/// `/-/blob/` -> `/-/compare/`): a version tag or `main` on each side, nothing else.
fn is_forge_link(target: &str) -> bool {
    let re = regex::Regex::new(
        r"^\.\./\.\./(compare/v\d+\.\d+\.\d+\.\.\.(v\d+\.\d+\.\d+|main)|tree/v\d+\.\d+\.\d+)$",
    )
    .unwrap();
    re.is_match(target)
}

#[test]
fn only_version_compare_links_leave_the_repository() {
    assert!(is_forge_link("../../compare/v0.1.0...v0.2.0"));
    assert!(is_forge_link("../../compare/v0.2.0...main"));
    assert!(is_forge_link("../../tree/v0.1.0"));
    for not in [
        "../../compare/x",
        "../../tree/main/../secret",
        "../../README.md",
        "../../compare/v0.1.0...v0.2.0/../../x",
    ] {
        assert!(!is_forge_link(not), "{not}");
    }
}

/// Every relative link of `pages` that points at nothing, and every anchor no heading of
/// its page makes. `exists` and `load` see the repository.
fn link_problems(
    pages: &BTreeMap<String, String>,
    exists: impl Fn(&str) -> bool,
    load: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut anchor_cache: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    for (page, text) in pages {
        for target in link_targets(text) {
            if is_external(&target) {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                match resolve(page, path) {
                    Some(f) if exists(&f) => f,
                    _ => {
                        problems.push(format!("{page}: link {target:?} points at nothing"));
                        continue;
                    }
                }
            };
            let Some(anchor) = anchor else {
                continue;
            };
            let known = anchor_cache.entry(file.clone()).or_insert_with(|| {
                let text = pages.get(&file).cloned().or_else(|| load(&file))?;
                file.ends_with(".md").then(|| anchors(&text))
            });
            match known {
                Some(set) if set.contains(anchor) => {}
                Some(_) => problems.push(format!(
                    "{page}: link {target:?}: {file} has no heading with the anchor #{anchor}"
                )),
                None => problems.push(format!(
                    "{page}: link {target:?}: #{anchor} cannot be checked in {file} (not Markdown)"
                )),
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------
// The README.

/// The commands of the README's first `sh` block (the quick start), comments removed.
fn quick_start_commands(readme: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in readme.lines() {
        let t = line.trim();
        if !inside {
            if t == "```sh" {
                inside = true;
            }
            continue;
        }
        if t.starts_with("```") {
            break;
        }
        let command = t.split('#').next().unwrap_or("").trim();
        if !command.is_empty() {
            out.push(command.to_owned());
        }
    }
    out
}

/// What is wrong with the README: its size, a docs page it does not link, a quick start
/// that is not the demo plus the test command CI (`ci_run`, the text of .ci/run) runs.
fn readme_problems(readme: &str, docs: &[String], ci_run: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if readme.len() >= README_LIMIT {
        problems.push(format!(
            "README.md is {} bytes; keep it under {README_LIMIT} and move detail to docs/",
            readme.len()
        ));
    }
    let linked: BTreeSet<String> = link_targets(readme)
        .iter()
        .filter(|t| !is_external(t))
        .filter_map(|t| resolve("README.md", t.split('#').next().unwrap_or("")))
        .collect();
    for page in docs {
        if !linked.contains(page) {
            problems.push(format!("README.md does not link {page}"));
        }
    }
    let commands = quick_start_commands(readme);
    let ci_commands: Vec<&str> = ci_run
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    match commands.as_slice() {
        [demo, test] => {
            if demo != "cargo run --release -- dev" {
                problems.push(format!(
                    "the README's first command is {demo:?}, not the demo (`cargo run --release -- dev`)"
                ));
            }
            if !ci_commands.contains(&test.as_str()) {
                problems.push(format!(
                    "the README's test command {test:?} is not what .ci/run runs ({ci_commands:?})"
                ));
            }
        }
        other => problems.push(format!(
            "the README's quick start should give two commands (the demo, the tests), not {other:?}"
        )),
    }
    problems
}

// ---------------------------------------------------------------------------------------
// The configuration reference.

/// The keys the serde mirror of the TOML file accepts, as dotted paths, and the tables that
/// are arrays (`[[route]]`). The Helm chart's values schema is checked against it too
/// (`packaging/helm.rs`).
#[derive(Debug, Default)]
pub(crate) struct Schema {
    pub(crate) keys: BTreeSet<String>,
    pub(crate) arrays: BTreeSet<String>,
}

static STRUCT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)pub struct (\w+) \{(.*?)\n\}").unwrap());
static FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*pub (\w+): ([^,]+),\s*$").unwrap());
static RENAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"#\[serde\(rename = "([^"]+)"\)\]"#).unwrap());

/// Reads the schema from the source of `src/config/file.rs`: the fields of `FileConfig`,
/// recursing into every field whose type (inside `Option<>` / `Vec<>`) is a struct of the
/// file, with `#[serde(rename)]` applied.
pub(crate) fn schema_of(source: &str) -> Schema {
    assert!(
        !source.contains("flatten") && !source.contains("alias"),
        "file.rs uses serde flatten/alias: teach tests/it/docs.rs::schema_of about it"
    );
    let mut structs: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for c in STRUCT.captures_iter(source) {
        let mut fields = Vec::new();
        let mut rename = None;
        for line in c.get(2).unwrap().as_str().lines() {
            if let Some(r) = RENAME.captures(line) {
                rename = Some(r[1].to_owned());
            } else if let Some(f) = FIELD.captures(line) {
                let name = rename.take().unwrap_or_else(|| f[1].to_owned());
                fields.push((name, f[2].trim().to_owned()));
            } else {
                assert!(
                    !line.trim_start().starts_with("pub "),
                    "cannot read the field {line:?}: teach tests/it/docs.rs::schema_of about it"
                );
            }
        }
        structs.insert(c.get(1).unwrap().as_str(), fields);
    }
    fn walk(
        structs: &BTreeMap<&str, Vec<(String, String)>>,
        name: &str,
        prefix: &str,
        out: &mut Schema,
    ) {
        for (field, ty) in &structs[name] {
            let key = if prefix.is_empty() {
                field.clone()
            } else {
                format!("{prefix}.{field}")
            };
            // `[upstream]` or `[[upstream]]`: the entries' keys, written either way.
            let mut inner = match ty.as_str() {
                "UpstreamsFile" => "Vec<UpstreamFile>",
                ty => ty,
            };
            let mut array = false;
            loop {
                if let Some(rest) = inner.strip_prefix("Option<") {
                    inner = rest.strip_suffix('>').unwrap();
                } else if let Some(rest) = inner.strip_prefix("Vec<") {
                    inner = rest.strip_suffix('>').unwrap();
                    array = true;
                } else {
                    break;
                }
            }
            if structs.contains_key(inner) {
                if array {
                    out.arrays.insert(key.clone());
                }
                walk(structs, inner, &key, out);
            } else {
                out.keys.insert(key);
            }
        }
    }
    assert!(
        structs.contains_key("FileConfig"),
        "no FileConfig in file.rs"
    );
    let mut schema = Schema::default();
    walk(&structs, "FileConfig", "", &mut schema);
    schema
}

static SECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^#{2,6} `\[{1,2}([a-z_.]+)\]{1,2}`$").unwrap());
static KEY_ROW: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\|\s*`([a-z_]+)`\s*\|").unwrap());

/// Splits a table row into its cells (`\|` is a pipe inside a cell).
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                out.last_mut().unwrap().push('|');
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The keys docs/configuration.md documents: the first cell of each table row under a
/// ``## `[section]` `` heading. Rows without a type, a default and a meaning, and keys
/// documented twice, are problems.
fn documented_keys(md: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut section: Option<String> = None;
    let mut keys = BTreeSet::new();
    let mut problems = Vec::new();
    for line in prose_lines(md) {
        if line.starts_with('#') {
            section = SECTION.captures(line).map(|c| c[1].to_owned());
            continue;
        }
        let (Some(section), Some(c)) = (&section, KEY_ROW.captures(line)) else {
            continue;
        };
        let key = format!("{section}.{}", &c[1]);
        let row = cells(line);
        if row.len() != 4 || row.iter().any(String::is_empty) {
            problems.push(format!(
                "{key}: the row needs four cells (key, type, default, meaning): {line}"
            ));
        }
        if !keys.insert(key.clone()) {
            problems.push(format!("{key} is documented twice"));
        }
    }
    (keys, problems)
}

/// Keys the reference leaves out or invents.
fn reference_problems(schema: &Schema, md: &str) -> Vec<String> {
    let (documented, mut problems) = documented_keys(md);
    for key in schema.keys.difference(&documented) {
        problems.push(format!(
            "{key} is accepted by src/config/file.rs but not documented in docs/configuration.md"
        ));
    }
    for key in documented.difference(&schema.keys) {
        problems.push(format!(
            "docs/configuration.md documents {key}, which src/config/file.rs does not accept"
        ));
    }
    problems
}

/// A TOML document that sets `key` alone, under `[table]` or `[[table]]`.
fn toml_setting(schema: &Schema, key: &str) -> String {
    match key.rsplit_once('.') {
        None => format!("{key} = \"x\"\n"),
        Some((table, field)) => {
            let header = if schema.arrays.contains(table) {
                format!("[[{table}]]")
            } else {
                format!("[{table}]")
            };
            format!("{header}\n{field} = \"x\"\n")
        }
    }
}

/// Whether loading `key` is refused as an unknown key (wrong-typed values are fine here:
/// only the name is being asked about).
fn refused_as_unknown(schema: &Schema, key: &str) -> bool {
    match labgate::config::load_str(&toml_setting(schema, key)) {
        Ok(_) => false,
        Err(e) => e
            .problems
            .iter()
            .any(|p| p.message.starts_with("unknown key")),
    }
}

// ---------------------------------------------------------------------------------------
// Published secrets.

static SECRET_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*(?:#\s*)?(cookie_secret|client_secret|redis_password|cookie-secret|client-secret|redis-password)\s*[=:]\s*(.*)$"#)
        .unwrap()
});
static QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#""([^"]+)""#).unwrap());
static INCLUDED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"include_str!\("\.\./\.\./([^"]+)"\)"#).unwrap());

/// Every (key, value) a text gives a secret key, as `published.rs` reads them.
fn secret_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| SECRET_LINE.captures(l))
        .flat_map(|c| {
            let key = c[1].to_owned();
            QUOTED
                .captures_iter(c.get(2).unwrap().as_str())
                .map(|q| (key.clone(), q[1].to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Secret values given in `files` that none of the files `published.rs` lists gives, so
/// that labgate would run with a secret anyone can read in this repository (SPEC §9).
fn unpublished_secrets(
    published_rs: &str,
    files: &BTreeMap<String, String>,
    load: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let published: BTreeSet<String> = INCLUDED
        .captures_iter(published_rs)
        .flat_map(|c| secret_values(&load(&c[1]).unwrap_or_default()))
        .map(|(_, v)| v)
        .collect();
    files
        .iter()
        .flat_map(|(file, text)| {
            secret_values(text)
                .into_iter()
                .filter(|(_, v)| !published.contains(v))
                .map(move |(key, _)| {
                    format!("{file} gives {key} a value that no file in PUBLISHED_FILES (src/config/published.rs) gives: list {file} there")
                })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The checks on the repository.

fn assert_none(problems: &[String]) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_link_and_anchor_resolves() {
    assert_none(&link_problems(&all_pages(), exists_on_disk, load_from_disk));
}

#[test]
fn the_readme_is_short_links_every_page_and_gives_the_test_command_ci_runs() {
    assert_none(&readme_problems(
        &read("README.md"),
        &docs_pages(),
        &read(".ci/run"),
    ));
}

#[test]
fn the_configuration_reference_documents_exactly_the_accepted_keys() {
    let schema = schema_of(&read("src/config/file.rs"));
    // The reading of file.rs agrees with serde: every key it finds loads, and a key it does
    // not know is refused by name.
    assert!(schema.keys.len() > 80, "{:?}", schema.keys);
    for key in &schema.keys {
        assert!(
            !refused_as_unknown(&schema, key),
            "{key} is refused as unknown"
        );
    }
    assert!(refused_as_unknown(&schema, "server.no_such_key"));
    assert!(refused_as_unknown(&schema, "route.no_such_key"));
    assert_none(&reference_problems(&schema, &read("docs/configuration.md")));
}

/// The files under `dir` (repository-relative, recursively) with one of `extensions`.
fn files_under(dir: &str, extensions: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(format!("{ROOT}/{d}")).unwrap() {
            let entry = entry.unwrap();
            let rel = format!("{d}/{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                todo.push(rel);
            } else if extensions.iter().any(|e| rel.ends_with(e)) {
                out.push(rel);
            }
        }
    }
    out
}

#[test]
fn every_secret_value_in_the_docs_and_examples_is_refused_as_published() {
    // The docs, and the examples and demo configs under deploy/ and config/.
    let mut files = all_pages();
    for dir in ["deploy", "config"] {
        for f in files_under(dir, &[".toml", ".yaml", ".yml", ".md"]) {
            let text = read(&f);
            files.insert(f, text);
        }
    }
    assert!(files.contains_key("deploy/kubernetes/sidecar.yaml"));
    assert_none(&unpublished_secrets(
        &read("src/config/published.rs"),
        &files,
        load_from_disk,
    ));
}

// ---------------------------------------------------------------------------------------
// The checks catch what they are meant to catch.

#[test]
fn anchors_follow_githubs_rules() {
    for (heading, anchor) in [
        (
            "Behind nginx, Traefik, Caddy, Envoy or ingress-nginx (forward-auth)",
            "behind-nginx-traefik-caddy-envoy-or-ingress-nginx-forward-auth",
        ),
        ("`[[access.public]]`", "accesspublic"),
        (
            "`labgate check --online` problems",
            "labgate-check---online-problems",
        ),
        ("[0.2.0] - 2026-11-26", "020---2026-11-26"),
        ("What /oauth2/auth answers", "what-oauth2auth-answers"),
        ("GitLab CI/CD ID tokens", "gitlab-cicd-id-tokens"),
        (
            "403: you are signed in but refused",
            "403-you-are-signed-in-but-refused",
        ),
        ("A [linked](x.md) heading", "a-linked-heading"),
        ("snake_case stays", "snake_case-stays"),
    ] {
        assert_eq!(slug(heading), anchor, "{heading}");
    }
    let page = "# A\n## Same\n## Same\n```\n## In code\n```\n";
    let set = anchors(page);
    assert_eq!(
        set,
        ["a", "same", "same-1"].map(str::to_owned).into(),
        "repeats numbered, code ignored"
    );
}

#[test]
fn a_broken_link_or_anchor_is_reported() {
    let pages: BTreeMap<String, String> = [
        (
            "README.md",
            "[ok](docs/y.md) [ok](docs/y.md#present) [ok](#top) [ext](https://x.invalid/#no)\n\
             [gone](docs/x.md) [bad](#nope) [bad](docs/y.md#missing) [up](../../outside.md)\n\
             `[in code](docs/nothing.md)`\n```\n[in a block](docs/nothing.md)\n```\n\
             [ref]: docs/also-gone.md\n# Top\n",
        ),
        (
            "docs/y.md",
            "# Y\n## Present\n[back](../README.md#top) [src](../src/lib.rs#L1)\n",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let exists = |p: &str| ["README.md", "docs/y.md", "src/lib.rs"].contains(&p);
    let problems = link_problems(&pages, exists, |_| None);
    let text = problems.join("\n");
    for expected in [
        "\"docs/x.md\" points at nothing",
        "#nope",
        "#missing",
        "\"../../outside.md\" points at nothing",
        "\"docs/also-gone.md\" points at nothing",
        "#L1 cannot be checked in src/lib.rs",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    assert_eq!(problems.len(), 6, "{text}");
}

#[test]
fn a_long_readme_an_unlinked_page_or_another_test_command_is_reported() {
    let docs = ["docs/a.md".to_owned(), "docs/b.md".to_owned()];
    let ci = "#!/bin/sh\n# comment\ncargo fmt --check\n./scripts/test\n";
    let good = "# x\n```sh\ncargo run --release -- dev   # demo\n./scripts/test   # tests\n```\n\
                [a](docs/a.md) [b](docs/b.md#part)\n";
    assert_none(&readme_problems(good, &docs, ci));
    let long = format!("{good}{}", "x".repeat(README_LIMIT));
    assert_eq!(readme_problems(&long, &docs, ci).len(), 1);
    let unlinked = good.replace("[b](docs/b.md#part)", "");
    assert!(readme_problems(&unlinked, &docs, ci)[0].contains("docs/b.md"));
    let other = good.replace("./scripts/test   #", "cargo test   #");
    assert!(readme_problems(&other, &docs, ci)[0].contains(".ci/run"));
    let one = good.replace("./scripts/test   # tests\n", "");
    assert!(readme_problems(&one, &docs, ci)[0].contains("two commands"));
}

#[test]
fn a_key_left_out_invented_or_half_documented_is_reported() {
    let source = r#"
pub struct FileConfig {
    pub server: ServerFile,
    pub route: Vec<RouteFile>,
}
pub struct ServerFile {
    pub listen: Option<String>,
    pub trusted_proxies: Vec<String>,
}
pub struct RouteFile {
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    pub path: Option<String>,
}"#;
    let schema = schema_of(source);
    assert_eq!(
        schema.keys,
        [
            "route.path",
            "route.ref",
            "server.listen",
            "server.trusted_proxies"
        ]
        .map(str::to_owned)
        .into()
    );
    assert_eq!(schema.arrays, ["route".to_owned()].into());
    let complete = "## `[server]`\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n\
                    | `listen` | string | `\"0.0.0.0:4180\"` | where |\n\
                    | `trusted_proxies` | list | `[]` | whom `a\\|b` |\n\
                    ## Other\n| `not_a_key` | x | y | z |\n\
                    ## `[[route]]`\n| `path` | regex | — | which |\n| `ref` | string | — | branch |\n";
    assert_none(&reference_problems(&schema, complete));
    let missing = complete.replace("| `ref` | string | — | branch |\n", "");
    assert!(reference_problems(&schema, &missing)[0].contains("route.ref is accepted"));
    let invented = format!("{complete}| `colour` | string | — | no |\n");
    assert!(reference_problems(&schema, &invented)[0].contains("documents route.colour"));
    let no_default = complete.replace(
        "| `path` | regex | — | which |",
        "| `path` | regex | which |",
    );
    assert!(reference_problems(&schema, &no_default)[0].contains("four cells"));
    let twice = format!("{complete}| `path` | regex | — | again |\n");
    assert!(reference_problems(&schema, &twice)[0].contains("twice"));
}

#[test]
fn a_secret_value_missing_from_the_published_files_is_reported() {
    let published = r#"const F: &[&str] = &[include_str!("../../config/demo.toml")];"#;
    let load = |p: &str| {
        (p == "config/demo.toml").then(|| "cookie_secret = [\"abc\", \"def\"]\n".to_owned())
    };
    let files: BTreeMap<String, String> = [
        ("docs/same.md", "```toml\ncookie_secret = \"def\"\n```\n"),
        (
            "docs/new.md",
            "```toml\n# client_secret = \"gloas-x\"\n```\n",
        ),
        (
            "docs/file-only.md",
            "cookie_secret_file = \"/secrets/c\"\nclient_secret = \"\"\n",
        ),
        ("deploy/x.yaml", "  redis-password: \"p\"\n"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let problems = unpublished_secrets(published, &files, load);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems
        .iter()
        .any(|p| p.starts_with("docs/new.md gives client_secret")));
    assert!(problems
        .iter()
        .any(|p| p.starts_with("deploy/x.yaml gives redis-password")));
}
