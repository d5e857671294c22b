//! oauth2-proxy settings -> labgate keys. Pure: takes the merged [`Options`] and a fresh
//! cookie secret, returns the [`Doc`] to print and the problems that make the migration
//! fail. Every setting read ends up in exactly one comment: next to the key it became, at
//! the top of the table whose built-in behaviour covers it, or in the closing "not mapped"
//! list with the reason. Secret values never appear in a comment.
//!
//! The access rules follow oauth2-proxy's GitLab provider (providers/gitlab.go) and its
//! checks at the callback (oauthproxy.go: `Validator(email) && Authorize(session)`):
//! - GitLab's sign-in refuses blocked accounts before either proxy sees them;
//! - `EnrichSession` refuses an unverified email unless
//!   `insecure_oidc_allow_unverified_email` -> `access.require_verified_email = true`;
//! - `email_domains` (validator.go): `*` any, `example.com` exactly, `.example.com` and
//!   `*.example.com` subdomains only -> `allowed_email_domains` (`*.example.com`);
//! - `gitlab_groups`: one of the user's `groups` claim entries equals the path, i.e. a
//!   member of the group itself or of a parent group, any role -> `"path:member"`;
//! - `gitlab_projects` `path=level` (default 20): project access (else group access) at
//!   least that level, archived projects never -> `"path:role"`;
//! - groups and projects together: either one admits (one `AllowedGroups` set).

mod access;
mod apps;
pub(super) mod domains;
mod reasons;
mod server;
mod session;
mod upstream;

use std::collections::BTreeSet;
use std::time::Duration;

use super::doc::Doc;
use super::source::{Options, Origin, Setting, Value};
use apps::App;

/// The result: the document, and problems that make the migration fail (exit 2).
#[derive(Debug)]
pub(crate) struct Mapped {
    /// The labgate TOML, with comments.
    pub(crate) doc: Doc,
    /// Settings that make this configuration impossible to migrate as it is.
    pub(crate) problems: Vec<String>,
    /// What the output does differently enough to say on stderr too (a path oauth2-proxy
    /// routed elsewhere), beside its comment.
    pub(crate) warnings: Vec<String>,
}

/// Maps one oauth2-proxy's configuration; `fresh_cookie_secret` becomes
/// `session.cookie_secret`.
pub(crate) fn map(o: &Options, fresh_cookie_secret: &str) -> Mapped {
    run(M::new(o, &[]), fresh_cookie_secret)
}

/// Maps several oauth2-proxy instances, one per app (its workload's name and settings),
/// into one labgate serving each app by its host.
pub(crate) fn map_apps(instances: Vec<(String, Options)>, fresh_cookie_secret: &str) -> Mapped {
    let merged = apps::merge(instances);
    let mut m = M::new(&merged.shared, &merged.apps);
    m.per_app_access = merged.per_app_access;
    m.problems.extend(merged.problems.iter().cloned());
    for u in &merged.unmapped {
        m.doc.unmapped(u.clone());
    }
    run(m, fresh_cookie_secret)
}

fn run(mut m: M<'_>, fresh_cookie_secret: &str) -> Mapped {
    let tables: &[&str] = if m.apps.is_empty() {
        &[
            "server", "upstream", "gitlab", "session", "identity", "access",
        ]
    } else {
        &["server", "gitlab", "session", "identity", "access"]
    };
    for t in tables {
        m.doc.remark(t, String::new());
    }
    m.provider();
    m.server();
    m.upstream();
    m.session(fresh_cookie_secret);
    m.identity();
    m.apps_session();
    m.access();
    m.built_in();
    m.rest();
    m.apps_rest();
    m.doc.fold_into_array("upstream");
    for t in &mut m.doc.tables {
        t.remarks.retain(|r| !r.is_empty());
    }
    m.doc
        .tables
        .retain(|t| !t.remarks.is_empty() || !t.entries.is_empty());
    Mapped {
        doc: m.doc,
        problems: m.problems,
        warnings: m.warnings,
    }
}

struct M<'a> {
    o: &'a Options,
    doc: Doc,
    used: BTreeSet<String>,
    problems: Vec<String>,
    warnings: Vec<String>,
    /// `provider = "oidc"` against GitLab: `allowed_groups` is enforced (the GitLab
    /// provider replaces it by `gitlab_groups`).
    generic_oidc: bool,
    /// `server.prefix` as mapped (oauth2-proxy's `proxy_prefix`).
    prefix: String,
    /// The merged apps (empty: one oauth2-proxy, every host alike).
    apps: &'a [App],
    /// The keys of each app's settings that were read, by app.
    app_used: Vec<BTreeSet<String>>,
    /// The hosts what is being mapped is for: `hosts = [...]` of `[[access.public]]` (empty:
    /// every host).
    hosts: Vec<String>,
    /// The apps disagree on who may enter: `[access]` holds them all, each app's rules
    /// go to a `[[route]]` for its host.
    per_app_access: bool,
}

impl<'a> M<'a> {
    fn new(o: &'a Options, apps: &'a [App]) -> M<'a> {
        M {
            o,
            doc: Doc::default(),
            used: BTreeSet::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
            generic_oidc: false,
            prefix: "/oauth2".into(),
            apps,
            app_used: vec![BTreeSet::new(); apps.len()],
            hosts: Vec::new(),
            per_app_access: false,
        }
    }
}

fn s(v: impl Into<String>) -> toml::Value {
    toml::Value::String(v.into())
}

fn arr(v: &[String]) -> toml::Value {
    toml::Value::Array(v.iter().cloned().map(toml::Value::String).collect())
}

/// The setting as written (`key = value`, `--flag=value`, `OAUTH2_PROXY_KEY=value`),
/// secrets hidden; with its app's name first when several are merged.
fn said(x: &Setting) -> String {
    match &x.app {
        Some(app) => format!("{app}: {}", said_plain(x)),
        None => said_plain(x),
    }
}

/// A setting's name as written, with its app's name first when several are merged.
fn shown(x: &Setting) -> String {
    match &x.app {
        Some(a) => format!("{a}: {}", x.shown),
        None => x.shown.clone(),
    }
}

fn said_plain(x: &Setting) -> String {
    match (x.origin, &x.value) {
        (Origin::File, _) => format!("{} = {}", x.shown, x.shown_value()),
        (Origin::Flag, Value::Bool(true)) => x.shown.clone(),
        (Origin::Flag, Value::List(items)) if !x.is_secret() && x.spec.is_some() => items
            .iter()
            .map(|i| format!("{}={i}", x.shown))
            .collect::<Vec<_>>()
            .join(" "),
        (Origin::Flag | Origin::Env | Origin::OldEnv, Value::Text(t))
            if !x.is_secret() && x.spec.is_some() =>
        {
            format!("{}={t}", x.shown)
        }
        (Origin::Flag | Origin::Env | Origin::OldEnv, _) => {
            format!("{}={}", x.shown, x.shown_value())
        }
    }
}

/// labgate keys that have a `_file` twin reading the value from a file (a mounted Secret).
const FILE_KEYS: &[(&str, &str)] = &[
    ("gitlab.client_secret", "gitlab.client_secret_file"),
    ("session.redis_password", "session.redis_password_file"),
];

/// The environment variable that sets a labgate key (`gitlab.client_secret` ->
/// `LABGATE__GITLAB__CLIENT_SECRET`).
fn env_name(key: &str) -> String {
    format!("LABGATE__{}", key.replace('.', "__").to_ascii_uppercase())
}

impl<'a> M<'a> {
    /// The setting for `key`, once: a setting read is accounted for by its reader.
    fn take(&mut self, key: &str) -> Option<&'a Setting> {
        let x = self.o.get(key)?;
        self.used.insert(key.to_owned()).then_some(x)
    }

    /// A value that comes from outside the input (a Kubernetes Secret): labgate's key must
    /// come from the same place. Said on stderr too: the output cannot hold it.
    fn external(&mut self, x: &Setting, target: &str) {
        let from = match &x.value {
            Value::External(f) => f.clone(),
            _ => return,
        };
        let env = env_name(target);
        let how = if from.starts_with("Secret ") || from.starts_with("ConfigMap ") {
            let file = FILE_KEYS
                .iter()
                .find(|(k, _)| *k == target)
                .map(|(_, f)| format!(", in {f} (that key mounted as a file)"))
                .unwrap_or_default();
            format!("give labgate the same value as {env} (env valueFrom the same {from}){file} or in {target}")
        } else {
            format!("give labgate that value in {target} or {env}")
        };
        self.doc.remark(
            target.split('.').next().unwrap_or("server"),
            format!(
                "{}: oauth2-proxy read it from {from} at run time; {how}",
                shown(x)
            ),
        );
        self.warnings.push(format!(
            "{}: oauth2-proxy read it from {from}, which this input only names: labgate needs {target} ({env}) from the same place",
            shown(x)
        ));
    }

    fn text(&mut self, key: &str, target: &str) -> Option<(&'a Setting, String)> {
        let x = self.take(key)?;
        match &x.value {
            Value::Text(t) => Some((x, t.trim().to_owned())),
            Value::Bool(b) => Some((x, b.to_string())),
            Value::List(l) => Some((x, l.join(","))),
            Value::External(_) => {
                self.external(x, target);
                None
            }
        }
    }

    fn flag(&mut self, key: &str) -> Option<(&'a Setting, bool)> {
        let x = self.take(key)?;
        match &x.value {
            Value::Bool(b) => Some((x, *b)),
            _ => {
                self.doc.unmapped(format!(
                    "{}: not true or false, so oauth2-proxy would not start",
                    said(x)
                ));
                None
            }
        }
    }

    fn list(&mut self, key: &str, target: &str) -> Option<(&'a Setting, Vec<String>)> {
        let x = self.take(key)?;
        match &x.value {
            Value::List(l) => Some((x, l.clone())),
            Value::Text(t) => Some((x, vec![t.clone()])),
            Value::Bool(b) => Some((x, vec![b.to_string()])),
            Value::External(_) => {
                self.external(x, target);
                None
            }
        }
    }
}

/// A Go duration (`168h0m0s`, `1h30m`, `1.5h`, `300ms`, `0`).
pub(crate) fn go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let n: f64 = num.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// A duration as labgate's config writes them: `7d`, `168h`... the largest whole unit.
pub(crate) fn humane(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}
