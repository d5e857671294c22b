//! `[access]`, `[[access.public]]` and `[[route]]` (and forward-auth narrowing) compiled into
//! the pure [`crate::access::Policy`]. Every bad entry becomes a [`Problem`] naming its key.
//!
//! GitLab group, project and namespace paths and usernames are ASCII (letters, digits, `_`,
//! `-`, `.`, and `/` between path segments); anything else is refused here, so the decision
//! code can compare bytes.

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;

use regex::Regex;

use crate::access::{
    level, GroupRule, HostPattern, Policy, ProjectRule, Public, Route, Rules, UserRef,
};
use crate::config::file::{AccessFile, RouteFile};
use crate::config::{GitlabConfig, Problem};

/// Compiles `[access]` and `[[route]]`, pushing a problem for each bad entry.
pub(crate) fn compile(
    access: &AccessFile,
    routes: &[RouteFile],
    gitlab: &GitlabConfig,
    problems: &mut Vec<Problem>,
) -> Policy {
    let mut p = |key: String, message: String| problems.push(Problem { key, message });
    let global = compile_rules(
        "access",
        &Lists {
            users: &access.allowed_users,
            groups: &access.allowed_groups,
            projects: &access.allowed_projects,
            domains: &access.allowed_email_domains,
            ci_jobs: &[],
        },
        &mut p,
    );
    let allow_any = access.allow_any_gitlab_user.unwrap_or(false);
    if !global.has_member_rules() && !allow_any {
        p(
            "access".into(),
            "no access rule is set: anyone with a GitLab account (on gitlab.com, anyone at all) could enter. \
             Set access.allowed_groups, access.allowed_projects or access.allowed_users, \
             or set access.allow_any_gitlab_user = true if that is really what you want"
                .into(),
        );
    }
    if !gitlab.oidc()
        && (!global.groups.is_empty() || routes.iter().any(|r| !r.allowed_groups.is_empty()))
    {
        p(
            "access.allowed_groups".into(),
            "group rules need the \"openid\" scope (groups come from GitLab's OIDC userinfo); add \"openid\" to gitlab.scopes".into(),
        );
    }
    let mut public = Vec::new();
    for (i, pubf) in access.public.iter().enumerate() {
        let key = format!("access.public[{i}].path");
        let Some(src) = pubf.path.as_deref() else {
            p(
                key,
                "each [[access.public]] needs a path regex, e.g. \"^/healthz$\"".into(),
            );
            continue;
        };
        let Some(re) = compile_regex(&key, src, &mut p) else {
            continue;
        };
        let mut methods = Vec::new();
        for m in &pubf.methods {
            match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => p(
                    format!("access.public[{i}].methods"),
                    format!("{m:?} is not an HTTP method"),
                ),
            }
        }
        let hosts = host_list(&format!("access.public[{i}].hosts"), &pubf.hosts, &mut p);
        public.push(Public {
            hosts,
            path: re,
            methods,
        });
    }
    let mut compiled_routes = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let key = format!("route[{i}]");
        let Some(src) = r.path.as_deref() else {
            p(
                format!("{key}.path"),
                "each [[route]] needs a path regex, e.g. \"^/admin(/|$)\"".into(),
            );
            continue;
        };
        let Some(re) = compile_regex(&format!("{key}.path"), src, &mut p) else {
            continue;
        };
        let rules = compile_rules(
            &key,
            &Lists {
                users: &r.allowed_users,
                groups: &r.allowed_groups,
                projects: &r.allowed_projects,
                domains: &r.allowed_email_domains,
                ci_jobs: &r.allowed_ci_jobs,
            },
            &mut p,
        );
        if !rules.has_person_rules() && rules.ci_jobs.is_empty() {
            p(key.clone(), format!("{key} has no rule: give it allowed_groups, allowed_projects, allowed_users, allowed_email_domains or allowed_ci_jobs"));
        }
        let hosts = host_list(&format!("{key}.hosts"), &r.hosts, &mut p);
        compiled_routes.push(Route {
            source: src.to_owned(),
            hosts,
            path: re,
            rules,
        });
    }
    let mut blocked_users = Vec::new();
    for (i, u) in access.blocked_users.iter().enumerate() {
        if let Some(u) = user_ref(&format!("access.blocked_users[{i}]"), u, &mut p) {
            blocked_users.push(u);
        }
    }
    Policy {
        global,
        blocked_users,
        require_two_factor: access.require_two_factor.unwrap_or(false),
        require_verified_email: access.require_verified_email.unwrap_or(false),
        allow_any,
        public,
        routes: compiled_routes,
    }
}

/// A `hosts` list, compiled; each bad entry is a problem naming its key.
pub(super) fn host_list(
    key: &str,
    hosts: &[String],
    p: &mut impl FnMut(String, String),
) -> Vec<HostPattern> {
    hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            HostPattern::parse(h)
                .map_err(|e| p(format!("{key}[{i}]"), e))
                .ok()
        })
        .collect()
}

/// Allow-lists given at run time (`/oauth2/auth?allowed_groups=...&allowed_users=...
/// &allowed_ci_jobs=...`): the same syntax and checks as in the file.
pub fn narrowing(users: &[String], groups: &[String], ci_jobs: &[String]) -> Result<Rules, String> {
    let mut errors = Vec::new();
    let rules = compile_rules(
        "query",
        &Lists {
            users,
            groups,
            projects: &[],
            domains: &[],
            ci_jobs,
        },
        &mut |_k, m| errors.push(m),
    );
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(rules),
    }
}

/// The raw allow-lists of one scope.
struct Lists<'a> {
    users: &'a [String],
    groups: &'a [String],
    projects: &'a [String],
    domains: &'a [String],
    ci_jobs: &'a [String],
}

fn compile_regex(key: &str, src: &str, p: &mut impl FnMut(String, String)) -> Option<Regex> {
    match Regex::new(src) {
        Ok(r) => Some(r),
        Err(e) => {
            p(key.to_owned(), format!("{src:?} is not a valid regex: {e}"));
            None
        }
    }
}

/// Whether `s` is a GitLab username or one path segment: ASCII letters, digits, `_`, `-`, `.`.
fn is_gitlab_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether `s` is a GitLab full path (`acme`, `acme/team/app`): names joined by `/`.
pub(crate) fn is_gitlab_path(s: &str) -> bool {
    s.split('/').all(is_gitlab_name)
}

/// `alice` or `id:123`.
fn user_ref(key: &str, raw: &str, p: &mut impl FnMut(String, String)) -> Option<UserRef> {
    let u = raw.trim();
    if let Some(id) = u.strip_prefix("id:") {
        return match id.trim().parse::<u64>() {
            Ok(n) => Some(UserRef::Id(n)),
            Err(_) => {
                p(
                    key.to_owned(),
                    format!("{raw:?}: write id:<numeric GitLab user id>, e.g. \"id:123\""),
                );
                None
            }
        };
    }
    if !is_gitlab_name(u) {
        p(
            key.to_owned(),
            format!("{raw:?} is not a GitLab username (ASCII letters, digits, '_', '-', '.') nor id:<user id>"),
        );
        return None;
    }
    Some(UserRef::Name(u.to_owned()))
}

fn compile_rules(scope: &str, l: &Lists<'_>, p: &mut impl FnMut(String, String)) -> Rules {
    let mut rules = Rules::default();
    for (i, u) in l.users.iter().enumerate() {
        if u.trim().is_empty() {
            continue;
        }
        if let Some(u) = user_ref(&format!("{scope}.allowed_users[{i}]"), u, p) {
            rules.users.push(u);
        }
    }
    for (i, g) in l.groups.iter().enumerate() {
        let key = format!("{scope}.allowed_groups[{i}]");
        let (path, role) = match g.split_once(':') {
            Some((path, role)) => (path.trim(), Some(role.trim())),
            None => (g.trim(), None),
        };
        if !is_gitlab_path(path) {
            p(
                key,
                format!("{g:?} is not a group full path such as \"acme\" or \"acme/team\" (ASCII letters, digits, '_', '-', '.', and '/' between groups)"),
            );
            continue;
        }
        let itself = role == Some("member");
        let min_level = match role {
            None | Some("member") => None,
            Some(r) => match level::parse(r) {
                Some(level::GUEST) => Some(0),
                Some(l) if l >= level::DEVELOPER => Some(l),
                Some(_) => {
                    p(key, format!(
                        "{g:?}: GitLab reports group roles developer, maintainer and owner only; \
                         use \"{path}\" (any member, subgroups included), \"{path}:member\" (any member of {path} itself), \
                         \"{path}:developer\" or higher, or a project rule"
                    ));
                    continue;
                }
                None => {
                    p(key, format!("{g:?}: unknown role {r:?}; write member, guest, developer, maintainer or owner"));
                    continue;
                }
            },
        };
        rules.groups.push(GroupRule {
            path: path.to_owned(),
            min_level: min_level.filter(|l| *l > 0),
            itself,
        });
    }
    for (i, proj) in l.projects.iter().enumerate() {
        let key = format!("{scope}.allowed_projects[{i}]");
        if let Some((path, lvl)) = proj.split_once('=') {
            // oauth2-proxy's `gitlab_projects` syntax: read as a path it would never match.
            let role = lvl.trim().parse::<u8>().ok().and_then(level::name);
            let spelling = match role {
                Some(r) => format!("\"{}:{r}\"", path.trim()),
                None => format!(
                    "\"{}:<role>\" (guest, planner, reporter, developer, maintainer or owner)",
                    path.trim()
                ),
            };
            p(
                key,
                format!(
                    "{proj:?} is oauth2-proxy's gitlab_projects syntax; labgate writes {spelling}"
                ),
            );
            continue;
        }
        let (path, role) = match proj.split_once(':') {
            Some((path, role)) => (path.trim(), Some(role.trim())),
            None => (proj.trim(), None),
        };
        if !path.contains('/') || !is_gitlab_path(path) {
            p(
                key,
                format!("{proj:?} is not a project full path such as \"acme/app\" (ASCII letters, digits, '_', '-', '.', and '/' between segments)"),
            );
            continue;
        }
        let min_level = match role {
            None => level::GUEST,
            Some(r) => match level::parse(r) {
                Some(l) => l,
                None => {
                    p(key, format!("{proj:?}: unknown role {r:?}; write guest, planner, reporter, developer, maintainer or owner"));
                    continue;
                }
            },
        };
        rules.projects.push(ProjectRule {
            path: path.to_ascii_lowercase(),
            min_level,
        });
    }
    for (i, d) in l.domains.iter().enumerate() {
        let key = format!("{scope}.allowed_email_domains[{i}]");
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if d == "*" {
            p(
                key,
                "\"*\" (oauth2-proxy's \"any email\") is not a domain: to admit every GitLab user, remove allowed_email_domains and set access.allow_any_gitlab_user = true (or list groups, projects or users)".into(),
            );
            continue;
        }
        let bare = d
            .strip_prefix("*.")
            .or_else(|| d.strip_prefix('.'))
            .unwrap_or(&d);
        let ok = bare.contains('.')
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
        if !ok {
            p(
                key,
                format!("{d:?} is not a domain such as \"example.com\", \".example.com\" (it and its subdomains) or \"*.example.com\" (subdomains only); internationalised domains in their xn-- form"),
            );
            continue;
        }
        rules.email_domains.push(d);
    }
    for (i, c) in l.ci_jobs.iter().enumerate() {
        let c = c.trim();
        if c != "*" && !is_gitlab_path(c) {
            p(
                format!("{scope}.allowed_ci_jobs[{i}]"),
                format!("{c:?} is not a project or namespace full path such as \"acme/deployer\" or \"acme\", nor \"*\" (every job [[machine.allow]] admits)"),
            );
            continue;
        }
        rules.ci_jobs.push(c.to_owned());
    }
    rules
}
