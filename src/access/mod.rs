//! Who may enter: the pure decision `(user, path readings, method, rules) -> Decision`.
//!
//! Owns the compiled rules (`[access]`, `[[access.public]]`, `[[route]]`) and nothing that
//! talks to GitLab: memberships and project access levels arrive in [`User`], loaded by the
//! OAuth code at sign-in and at each revalidation (SPEC §6).

mod path;
#[cfg(test)]
mod tests;

pub use path::PathViews;

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::file::{AccessFile, RouteFile};
use crate::config::{GitlabConfig, Problem};

/// GitLab access levels (REST API `access_level`).
pub mod level {
    /// Guest.
    pub const GUEST: u8 = 10;
    /// Planner.
    pub const PLANNER: u8 = 15;
    /// Reporter.
    pub const REPORTER: u8 = 20;
    /// Developer.
    pub const DEVELOPER: u8 = 30;
    /// Maintainer.
    pub const MAINTAINER: u8 = 40;
    /// Owner.
    pub const OWNER: u8 = 50;

    /// Parses a role name as written in the config.
    pub fn parse(name: &str) -> Option<u8> {
        Some(match name {
            "guest" => GUEST,
            "planner" => PLANNER,
            "reporter" => REPORTER,
            "developer" => DEVELOPER,
            "maintainer" => MAINTAINER,
            "owner" => OWNER,
            _ => return None,
        })
    }
}

/// What labgate knows about a signed-in GitLab user: everything the rules can ask about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Numeric GitLab user id (`sub`).
    pub id: u64,
    /// GitLab username.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Primary email, when GitLab gave one.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether GitLab says the email is verified (missing counts as not).
    #[serde(default)]
    pub email_verified: bool,
    /// Full paths of direct memberships and their descendant groups (`groups` claim).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Direct memberships with exactly owner / maintainer / developer role.
    #[serde(default)]
    pub owner_of: Vec<String>,
    #[serde(default)]
    /// See `owner_of`.
    pub maintainer_of: Vec<String>,
    #[serde(default)]
    /// See `owner_of`.
    pub developer_of: Vec<String>,
    /// Account state from `/api/v4/user` when known ("active", "blocked", ...).
    #[serde(default)]
    pub state: Option<String>,
    /// `two_factor_enabled` from `/api/v4/user` when known.
    #[serde(default)]
    pub two_factor: Option<bool>,
    /// Effective access level per project path named in the rules (0 = none).
    #[serde(default)]
    pub projects: BTreeMap<String, u8>,
}

/// Why a user was turned away; shown to the user in general terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deny {
    /// The GitLab account is not active.
    Inactive,
    /// Listed in `blocked_users`.
    Blocked,
    /// No verified email in an allowed domain.
    EmailDomain,
    /// Two-factor authentication is required and not enabled.
    TwoFactor,
    /// Not in any allowed user, group or project (`scope` names where: "global" or a route).
    NotListed {
        /// `access` or `route <path>`.
        scope: String,
    },
}

impl Deny {
    /// A sentence for the 403 page that does not reveal the policy itself.
    pub fn explain(&self) -> String {
        match self {
            Deny::Inactive => "Your GitLab account is not active.".into(),
            Deny::Blocked => "Your account has been blocked from this application.".into(),
            Deny::EmailDomain => "Your verified GitLab email address is not in a domain allowed here.".into(),
            Deny::TwoFactor => "This application requires two-factor authentication on your GitLab account.".into(),
            Deny::NotListed { scope } if scope == "access" => {
                "You are not a member of a GitLab group or project allowed to use this application.".into()
            }
            Deny::NotListed { .. } => {
                "This part of the application is limited to particular GitLab groups or projects, and you are not in them.".into()
            }
        }
    }

    /// A short machine-readable name for logs, metrics and JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Deny::Inactive => "inactive_account",
            Deny::Blocked => "blocked_user",
            Deny::EmailDomain => "email_domain",
            Deny::TwoFactor => "two_factor_required",
            Deny::NotListed { .. } => "not_in_allowed_users_groups_or_projects",
        }
    }
}

#[derive(Debug, Clone)]
struct GroupRule {
    path: String,
    /// Minimum role on a direct membership, if any.
    min_level: Option<u8>,
}

#[derive(Debug, Clone)]
struct ProjectRule {
    path: String,
    min_level: u8,
}

/// Allow-lists: a user matching any one entry passes.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    users: Vec<String>,
    groups: Vec<GroupRule>,
    projects: Vec<ProjectRule>,
    email_domains: Vec<String>,
}

impl Rules {
    /// Allow-lists given at run time (`/oauth2/auth?allowed_groups=...`).
    pub fn from_lists(users: &[String], groups: &[String]) -> Result<Rules, String> {
        let mut errors = Vec::new();
        let rules = compile_rules("query", users, groups, &[], &[], &mut |_k, m| {
            errors.push(m)
        });
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(rules),
        }
    }

    /// Whether the user matches one of the allow-lists.
    pub fn admits(&self, user: &User) -> bool {
        self.member_ok(user)
    }

    fn has_member_rules(&self) -> bool {
        !self.users.is_empty() || !self.groups.is_empty() || !self.projects.is_empty()
    }

    fn email_ok(&self, user: &User) -> bool {
        if self.email_domains.is_empty() {
            return true;
        }
        let Some(email) = user.email.as_deref().filter(|_| user.email_verified) else {
            return false;
        };
        let mut parts = email.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        if local.is_empty() || domain.is_empty() {
            return false;
        }
        let domain = domain.to_ascii_lowercase();
        self.email_domains
            .iter()
            .any(|d| match d.strip_prefix('.') {
                Some(base) => domain == base || domain.ends_with(d.as_str()),
                None => domain == *d,
            })
    }

    fn member_ok(&self, user: &User) -> bool {
        if self
            .users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&user.username))
        {
            return true;
        }
        for g in &self.groups {
            let hit = match g.min_level {
                None => user.groups.iter().any(|have| in_group(have, &g.path)),
                Some(min) => {
                    let lists: [(&Vec<String>, u8); 3] = [
                        (&user.owner_of, level::OWNER),
                        (&user.maintainer_of, level::MAINTAINER),
                        (&user.developer_of, level::DEVELOPER),
                    ];
                    // Roles are inherited downward: an owner of `acme` is an owner of
                    // `acme/team`; a maintainer of `acme/team` has no role in `acme`.
                    lists
                        .iter()
                        .filter(|(_, l)| *l >= min)
                        .any(|(list, _)| list.iter().any(|have| in_group(&g.path, have)))
                }
            };
            if hit {
                return true;
            }
        }
        self.projects.iter().any(|p| {
            user.projects
                .get(&p.path.to_ascii_lowercase())
                .is_some_and(|l| *l >= p.min_level)
        })
    }
}

/// Whether group `have` is `want` or one of its subgroups (a '/' boundary; case-insensitive
/// like GitLab paths).
fn in_group(have: &str, want: &str) -> bool {
    have.len() >= want.len()
        && have[..want.len()].eq_ignore_ascii_case(want)
        && (have.len() == want.len() || have.as_bytes()[want.len()] == b'/')
}

/// A path that needs no sign-in.
#[derive(Debug, Clone)]
struct Public {
    path: Regex,
    methods: Vec<http::Method>,
}

/// Stricter rules for part of the app.
#[derive(Debug, Clone)]
struct Route {
    source: String,
    path: Regex,
    rules: Rules,
}

/// The compiled access policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    global: Rules,
    blocked_users: Vec<String>,
    require_two_factor: bool,
    allow_any: bool,
    public: Vec<Public>,
    routes: Vec<Route>,
}

/// The outcome of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through.
    Allow,
    /// Turn the user away.
    Deny(Deny),
}

impl Policy {
    /// Compiles `[access]` and `[[route]]`, pushing a problem for each bad entry.
    pub fn compile(
        access: &AccessFile,
        routes: &[RouteFile],
        gitlab: &GitlabConfig,
        problems: &mut Vec<Problem>,
    ) -> Policy {
        let mut p = |key: String, message: String| problems.push(Problem { key, message });
        let global = compile_rules(
            "access",
            &access.allowed_users,
            &access.allowed_groups,
            &access.allowed_projects,
            &access.allowed_email_domains,
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
            public.push(Public { path: re, methods });
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
                &r.allowed_users,
                &r.allowed_groups,
                &r.allowed_projects,
                &r.allowed_email_domains,
                &mut p,
            );
            if !rules.has_member_rules() && rules.email_domains.is_empty() {
                p(key.clone(), format!("{key} has no rule: give it allowed_groups, allowed_projects, allowed_users or allowed_email_domains"));
            }
            compiled_routes.push(Route {
                source: src.to_owned(),
                path: re,
                rules,
            });
        }
        Policy {
            global,
            blocked_users: access
                .blocked_users
                .iter()
                .map(|u| u.to_ascii_lowercase())
                .collect(),
            require_two_factor: access.require_two_factor.unwrap_or(false),
            allow_any,
            public,
            routes: compiled_routes,
        }
    }

    /// Whether a request needs no sign-in: every reading of its path matches a public rule.
    pub fn is_public(&self, method: &http::Method, paths: &PathViews) -> bool {
        if self.public.is_empty() {
            return false;
        }
        paths.all().iter().all(|p| {
            self.public
                .iter()
                .any(|r| (r.methods.is_empty() || r.methods.contains(method)) && r.path.is_match(p))
        })
    }

    /// Project paths whose access level the rules need (lower-cased).
    pub fn project_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .global
            .projects
            .iter()
            .chain(self.routes.iter().flat_map(|r| r.rules.projects.iter()))
            .map(|p| p.path.to_ascii_lowercase())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Public-path regexes not anchored with `^` (they match anywhere in a path).
    pub fn unanchored_public(&self) -> Vec<String> {
        self.public
            .iter()
            .map(|p| p.path.as_str().to_owned())
            .filter(|p| !p.starts_with('^'))
            .collect()
    }

    /// Whether any `[[route]]` is configured.
    pub fn has_routes(&self) -> bool {
        !self.routes.is_empty()
    }

    /// Whether two-factor status is needed from `/api/v4/user`.
    pub fn needs_two_factor(&self) -> bool {
        self.require_two_factor
    }

    /// The global rules alone (used at sign-in, before any path is known).
    pub fn admit(&self, user: &User) -> Decision {
        if user.state.as_deref().is_some_and(|s| s != "active") {
            return Decision::Deny(Deny::Inactive);
        }
        if self
            .blocked_users
            .iter()
            .any(|b| b.eq_ignore_ascii_case(&user.username))
        {
            return Decision::Deny(Deny::Blocked);
        }
        if !self.global.email_ok(user) {
            return Decision::Deny(Deny::EmailDomain);
        }
        if self.require_two_factor && user.two_factor != Some(true) {
            return Decision::Deny(Deny::TwoFactor);
        }
        if self.global.has_member_rules() {
            if !self.global.member_ok(user) {
                return Decision::Deny(Deny::NotListed {
                    scope: "access".into(),
                });
            }
        } else if !self.allow_any {
            return Decision::Deny(Deny::NotListed {
                scope: "access".into(),
            });
        }
        Decision::Allow
    }

    /// The global rules plus those of the first route matching each reading of the path.
    pub fn decide(&self, user: &User, paths: &PathViews) -> Decision {
        if let Decision::Deny(d) = self.admit(user) {
            return Decision::Deny(d);
        }
        for p in paths.all() {
            if let Some(route) = self.routes.iter().find(|r| r.path.is_match(p)) {
                let ok = route.rules.email_ok(user)
                    && (!route.rules.has_member_rules() || route.rules.member_ok(user));
                if !ok {
                    return Decision::Deny(Deny::NotListed {
                        scope: format!("route {}", route.source),
                    });
                }
            }
        }
        Decision::Allow
    }
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

fn compile_rules(
    scope: &str,
    users: &[String],
    groups: &[String],
    projects: &[String],
    domains: &[String],
    p: &mut impl FnMut(String, String),
) -> Rules {
    let mut rules = Rules {
        users: users
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect(),
        ..Rules::default()
    };
    for (i, g) in groups.iter().enumerate() {
        let key = format!("{scope}.allowed_groups[{i}]");
        let (path, role) = match g.split_once(':') {
            Some((path, role)) => (path.trim(), Some(role.trim())),
            None => (g.trim(), None),
        };
        if path.is_empty() || path.starts_with('/') || path.ends_with('/') || path.contains(' ') {
            p(
                key,
                format!("{g:?} is not a group full path such as \"acme\" or \"acme/team\""),
            );
            continue;
        }
        let min_level = match role {
            None => None,
            Some(r) => match level::parse(r) {
                Some(level::GUEST) => Some(0),
                Some(l) if l >= level::DEVELOPER => Some(l),
                Some(_) => {
                    p(key, format!(
                        "{g:?}: GitLab reports group roles developer, maintainer and owner only; \
                         use \"{path}\" (any member), \"{path}:developer\" or higher, or a project rule"
                    ));
                    continue;
                }
                None => {
                    p(key, format!("{g:?}: unknown role {r:?}; write guest, developer, maintainer or owner"));
                    continue;
                }
            },
        };
        rules.groups.push(GroupRule {
            path: path.to_owned(),
            min_level: min_level.filter(|l| *l > 0),
        });
    }
    for (i, proj) in projects.iter().enumerate() {
        let key = format!("{scope}.allowed_projects[{i}]");
        let (path, role) = match proj.split_once(':') {
            Some((path, role)) => (path.trim(), Some(role.trim())),
            None => (proj.trim(), None),
        };
        if !path.contains('/') || path.starts_with('/') || path.ends_with('/') || path.contains(' ')
        {
            p(
                key,
                format!("{proj:?} is not a project full path such as \"acme/app\""),
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
            path: path.to_owned(),
            min_level,
        });
    }
    for (i, d) in domains.iter().enumerate() {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        let bare = d.strip_prefix('.').unwrap_or(&d);
        if bare.is_empty() || bare.contains(['@', '/', ' ', ':']) || !bare.contains('.') {
            p(
                format!("{scope}.allowed_email_domains[{i}]"),
                format!("{d:?} is not a domain such as \"example.com\" or \".example.com\""),
            );
            continue;
        }
        rules.email_domains.push(d);
    }
    rules
}
