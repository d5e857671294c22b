//! `[access]` and `[[access.public]]`: oauth2-proxy's GitLab rules (gitlab_groups,
//! gitlab_projects, email_domains, the verified-email requirement) and its skip-auth routes.

use super::{arr, s, said, M};
use crate::access::level;
use crate::migrate::doc::Entry;

/// oauth2-proxy's GitLab provider: the access level of a `gitlab_projects` entry without
/// `=level` (reporter), and the levels it accepts (providers/gitlab.go `newGitlabProject`).
const O2P_DEFAULT_PROJECT_LEVEL: u8 = level::REPORTER;
const O2P_PROJECT_LEVELS: [u8; 4] = [
    level::GUEST,
    level::REPORTER,
    level::DEVELOPER,
    level::MAINTAINER,
];

/// One oauth2-proxy's rules for people, read as its GitLab provider applies them, each
/// labgate list with the comments that say where it came from.
#[derive(Default)]
pub(super) struct RuleSet {
    /// `allowed_groups` entries and their comments.
    pub(super) groups: (Vec<String>, Vec<String>),
    /// `allowed_projects` entries and their comments.
    pub(super) projects: (Vec<String>, Vec<String>),
    /// `allowed_email_domains` entries and their comment (empty: any domain).
    pub(super) domains: (Vec<String>, Vec<String>),
    /// Comments on settings that became no rule (`email_domains = ["*"]`, not set).
    pub(super) remarks: Vec<String>,
}

impl RuleSet {
    /// Whether groups or projects are listed.
    pub(super) fn has_members(&self) -> bool {
        !self.groups.0.is_empty() || !self.projects.0.is_empty()
    }
}

impl M<'_> {
    pub(super) fn access(&mut self) {
        if self.per_app_access {
            self.app_access();
        } else {
            let rules = self.rules();
            let domains_set = !rules.domains.0.is_empty();
            let members = rules.has_members();
            for r in rules.remarks {
                self.doc.remark("access", r);
            }
            for (key, (list, notes)) in [
                ("allowed_groups", rules.groups),
                ("allowed_projects", rules.projects),
                ("allowed_email_domains", rules.domains),
            ] {
                for n in notes {
                    self.doc.set("access", key, arr(&list), n);
                }
            }
            self.verified_email(domains_set);
            if !members && self.o.get("email_domains").is_some() {
                let who = if domains_set {
                    "every GitLab user whose verified email is in allowed_email_domains"
                } else {
                    "every GitLab user (on gitlab.com: anyone with an account); consider access.allowed_groups"
                };
                self.doc.set(
                    "access",
                    "allow_any_gitlab_user",
                    toml::Value::Boolean(true),
                    format!("no gitlab_groups or gitlab_projects: oauth2-proxy admitted {who}"),
                );
            }
        }
        self.public_routes();
        let apps = self.apps;
        for app in apps {
            if let Some(host) = &app.host {
                let host = host.clone();
                self.in_app(app, move |m| {
                    m.hosts = vec![host];
                    m.public_routes();
                });
            }
        }
    }

    /// `gitlab_groups`, `allowed_groups`, `gitlab_projects` and `email_domains`.
    pub(super) fn rules(&mut self) -> RuleSet {
        let mut r = RuleSet::default();
        if let Some((x, list)) = self.list("gitlab_groups", "access.allowed_groups") {
            let mapped = member_rules(&list, &mut r.groups.0);
            r.groups.1.push(format!("{}: as {mapped}: members of each group itself, with any role, directly or through a parent group (oauth2-proxy matched the path exactly against GitLab's groups claim); plain \"group\" would also admit members of its subgroups", said(x)));
        }
        if let Some((x, list)) = self.list("allowed_groups", "access.allowed_groups") {
            let mapped = member_rules(&list, &mut r.groups.0);
            r.groups.1.push(if self.generic_oidc {
                format!("{}: as {mapped}: the path exactly in GitLab's groups claim, as oauth2-proxy's OIDC provider matched it", said(x))
            } else {
                format!("{}: as {mapped}; changed: oauth2-proxy's GitLab provider replaced this list by gitlab_groups and did not enforce it, labgate does: users outside these groups are now refused (delete them here to keep the old behaviour)", said(x))
            });
        }
        if let Some((x, list)) = self.list("gitlab_projects", "access.allowed_projects") {
            let mut bad = Vec::new();
            for p in list.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
                match project_rule(p) {
                    Ok(rule) => {
                        if !r.projects.0.contains(&rule) {
                            r.projects.0.push(rule);
                        }
                    }
                    Err(e) => bad.push(e),
                }
            }
            for e in &bad {
                self.problems.push(format!("{}: {e}", super::shown(x)));
            }
            r.projects.1.push(format!("{}: \"path=level\" is labgate's \"path:role\" (10 guest, 20 reporter, 30 developer, 40 maintainer); no level = reporter, oauth2-proxy's default. labgate takes the higher of the project and the inherited group access (oauth2-proxy read the group access only without a direct project membership); X-Forwarded-Groups no longer lists project:<path> entries", said(x)));
        }
        match self.list("email_domains", "access.allowed_email_domains") {
            Some((x, list)) if list.iter().any(|d| d.trim() == "*") => {
                let others = if list.len() > 1 {
                    "; the other entries change nothing next to \"*\""
                } else {
                    ""
                };
                r.remarks.push(format!(
                    "{}: no email domain rule (every domain){others}",
                    said(x)
                ));
            }
            Some((x, list)) => {
                let mut dotted = false;
                for d in list
                    .iter()
                    .map(|d| d.trim().to_ascii_lowercase())
                    .filter(|d| !d.is_empty())
                {
                    // validator.go: ".example.com" and "*.example.com" admit subdomains only.
                    let d = match d.strip_prefix("*.").or_else(|| d.strip_prefix('.')) {
                        Some(base) => {
                            dotted = true;
                            format!("*.{base}")
                        }
                        None => d,
                    };
                    if !r.domains.0.contains(&d) {
                        r.domains.0.push(d);
                    }
                }
                let dot_note = if dotted {
                    "; \".example.com\" becomes \"*.example.com\": its subdomains only, as in oauth2-proxy (labgate's \".example.com\" would admit example.com itself too)"
                } else {
                    ""
                };
                r.domains.1.push(format!(
                    "{}: the verified email's domain{dot_note}",
                    said(x)
                ));
            }
            None => {
                if self.o.get("authenticated_emails_file").is_none() {
                    r.remarks.push("email_domains is not set: oauth2-proxy refuses to start without it (or authenticated_emails_file); read as no email domain rule".into());
                }
            }
        }
        r
    }

    /// `require_verified_email` from `insecure_oidc_allow_unverified_email`.
    pub(super) fn verified_email(&mut self, domains_set: bool) {
        match self.flag("insecure_oidc_allow_unverified_email") {
            Some((x, true)) => {
                let note = if domains_set {
                    "; changed: with allowed_email_domains labgate still requires a verified email"
                } else {
                    ""
                };
                self.doc.remark(
                    "access",
                    format!("{}: unverified emails are admitted{note}", said(x)),
                );
            }
            other => {
                let from = other.map_or_else(
                    || "insecure_oidc_allow_unverified_email is not set".to_owned(),
                    |(x, _)| said(x),
                );
                self.doc.set("access", "require_verified_email", toml::Value::Boolean(true), format!("{from}: oauth2-proxy's GitLab provider refuses an account whose email GitLab has not verified"));
            }
        }
    }

    pub(super) fn public_routes(&mut self) {
        if let Some((x, list)) = self.list("skip_auth_regex", "access.public") {
            for re in list {
                self.public(&said(x), &re, None);
            }
        }
        if let Some((x, list)) = self.list("skip_auth_routes", "access.public") {
            for route in list {
                // oauthproxy.go buildRoutesAllowlist: "METHOD=regex", "METHOD!=regex",
                // "regex" or "!=regex", split at the first "=" / "!=".
                let negate = route.contains("!=");
                let split = route
                    .find("!=")
                    .map(|i| (i, 2))
                    .into_iter()
                    .chain(route.find('=').map(|i| (i, 1)))
                    .min_by_key(|(i, _)| *i);
                let (method, path) = match split {
                    Some((i, len)) => (
                        route.get(..i).unwrap_or("").to_ascii_uppercase(),
                        route.get(i + len..).unwrap_or("").to_owned(),
                    ),
                    None => (String::new(), route.clone()),
                };
                let entry = format!("{} entry {:?}", super::shown(x), route);
                if negate {
                    self.doc.unmapped(format!("{entry}: \"all paths except\" has no labgate equivalent; those requests now need sign-in"));
                } else if !method.is_empty() && !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                    self.doc.unmapped(format!("{entry}: oauth2-proxy read {method:?} as the method, so this route matched no request"));
                } else {
                    let m = (!method.is_empty()).then_some(method);
                    self.public(&entry, &path, m);
                }
            }
        }
        if let Some((x, b)) = self.flag("skip_auth_preflight") {
            if b {
                let mut entries = self.hosts_entry();
                entries.extend([
                    Entry {
                        key: "path".into(),
                        value: s("^/"),
                        notes: vec![format!(
                            "{}: OPTIONS (CORS preflight) requests need no sign-in",
                            said(x)
                        )],
                    },
                    Entry {
                        key: "methods".into(),
                        value: arr(&["OPTIONS".to_owned()]),
                        notes: Vec::new(),
                    },
                ]);
                self.doc.push_array("access.public", entries);
            } else {
                self.doc
                    .remark("access", format!("{}: labgate's default", said(x)));
            }
        }
    }

    /// `hosts = [...]` for an entry of one merged app (none for one oauth2-proxy).
    pub(super) fn hosts_entry(&self) -> Vec<Entry> {
        if self.hosts.is_empty() {
            return Vec::new();
        }
        vec![Entry {
            key: "hosts".into(),
            value: arr(&self.hosts),
            notes: Vec::new(),
        }]
    }

    fn public(&mut self, from: &str, re: &str, method: Option<String>) {
        if let Err(e) = regex::Regex::new(re) {
            self.doc.unmapped(format!("{from}: {re:?} is not a regex labgate (Rust regex, RE2 syntax like Go's) reads: {e}"));
            return;
        }
        let anchored = if re.starts_with('^') {
            ""
        } else {
            "; not anchored: it matches anywhere in the path, as in oauth2-proxy (anchor it with ^)"
        };
        let methods = match &method {
            Some(m) => format!("{m} only"),
            None => "any method".to_owned(),
        };
        let mut entries = self.hosts_entry();
        entries.push(Entry {
            key: "path".into(),
            value: s(re),
            notes: vec![format!("{from}: no sign-in on paths matching it, {methods} (identity headers are still removed){anchored}")],
        });
        if let Some(m) = method {
            entries.push(Entry {
                key: "methods".into(),
                value: arr(&[m]),
                notes: Vec::new(),
            });
        }
        self.doc.push_array("access.public", entries);
    }
}

/// `"path:member"` rules for group paths; returns how they read, for the comment.
fn member_rules(list: &[String], out: &mut Vec<String>) -> String {
    let mut mine = Vec::new();
    for g in list
        .iter()
        .map(|g| g.trim().trim_matches('/'))
        .filter(|g| !g.is_empty())
    {
        let rule = format!("{g}:member");
        mine.push(toml::Value::String(rule.clone()).to_string());
        if !out.contains(&rule) {
            out.push(rule);
        }
    }
    mine.join(", ")
}

/// oauth2-proxy's `path=level` -> labgate's `path:role`.
fn project_rule(p: &str) -> Result<String, String> {
    let (path, lvl) = match p.split_once('=') {
        None => {
            return Ok(format!(
                "{p}:{}",
                level::name(O2P_DEFAULT_PROJECT_LEVEL).unwrap_or("reporter")
            ))
        }
        Some((path, lvl)) => (path.trim(), lvl.trim()),
    };
    let n = lvl
        .parse::<u8>()
        .ok()
        .filter(|n| O2P_PROJECT_LEVELS.contains(n));
    match n.and_then(level::name) {
        Some(role) => Ok(format!("{path}:{role}")),
        None => Err(format!("{p:?}: oauth2-proxy accepts access levels 10, 20, 30 and 40 only and refuses to start with {lvl:?}; write the level you mean")),
    }
}
