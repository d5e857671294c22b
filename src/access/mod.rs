//! Who may enter: the one pure decision
//! `(subject, host, path readings, rules, narrowing) -> Allow | Deny` (SPEC §6, §9).
//!
//! Owns the compiled rules (`[access]`, `[[access.public]]`, `[[route]]`, forward-auth
//! narrowing) and nothing else: no I/O, no configuration parsing (`config::access` compiles
//! the TOML into these types), no knowledge of sessions or HTTP beyond a method. Memberships
//! and project access levels arrive in [`User`], loaded from GitLab at sign-in and at each
//! revalidation. Every entry point (proxy, `/oauth2/auth`, `/oauth2/userinfo`) and every kind
//! of caller (person, CI job, access token) goes through [`Policy::decide`].
//!
//! GitLab paths and usernames are ASCII (config validation refuses anything else), and are
//! compared here as bytes, ASCII case-insensitively: no string slicing that a multi-byte
//! character from the network could make panic.

mod host;
mod path;

pub use host::{listed as host_listed, Host, HostPattern};
pub use path::PathViews;
pub(crate) use path::LOOKALIKES;

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

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

    /// The config name of an exact access level (`30` -> `developer`).
    pub fn name(level: u8) -> Option<&'static str> {
        Some(match level {
            GUEST => "guest",
            PLANNER => "planner",
            REPORTER => "reporter",
            DEVELOPER => "developer",
            MAINTAINER => "maintainer",
            OWNER => "owner",
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

/// Who a decision is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A person: signed in through the browser flow, or calling with a GitLab access token.
    Person(&'a User),
    /// A GitLab CI/CD job, already admitted by `[[machine.allow]]`; identified by its
    /// project's full path.
    CiJob {
        /// `project_path` of the job's verified ID token.
        project_path: &'a str,
    },
}

/// Why a caller was turned away; shown to the user in general terms.
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
    /// `require_verified_email` is set and GitLab did not say the email is verified.
    EmailNotVerified,
    /// Not in any allowed user, group or project of `scope`.
    NotListed {
        /// Whose lists.
        scope: Scope,
    },
    /// A CI job on a route (or forward-auth location) that does not admit CI jobs.
    CiJobNotAllowed {
        /// Whose lists.
        scope: Scope,
    },
    /// Routes or narrowing apply, but the original request is unknown: labgate refuses
    /// rather than judge a guessed path.
    OriginalUnknown,
}

/// Whose allow-lists refused a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `[access]`, the whole application's.
    Access,
    /// A `[[route]]`'s, named by its path rule.
    Route(String),
    /// A forward-auth location's narrowing (`?allowed_groups=...`).
    Query,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Access => f.write_str("access"),
            Scope::Route(path) => write!(f, "route {path}"),
            Scope::Query => f.write_str("auth query"),
        }
    }
}

impl Deny {
    /// A sentence for the 403 page that does not reveal the policy itself.
    pub fn explain(&self) -> &'static str {
        match self {
            Deny::Inactive => "Your GitLab account is not active.",
            Deny::Blocked => "Your account has been blocked from this application.",
            Deny::EmailDomain => "Your verified GitLab email address is not in a domain allowed here.",
            Deny::TwoFactor => "This application requires two-factor authentication on your GitLab account.",
            Deny::EmailNotVerified => "This application requires a verified primary email address on your GitLab account.",
            Deny::NotListed {
                scope: Scope::Access,
            } => {
                "You are not a member of a GitLab group or project allowed to use this application."
            }
            Deny::NotListed { .. } => {
                "This part of the application is limited to particular GitLab groups or projects, and you are not in them."
            }
            Deny::CiJobNotAllowed { .. } => "This part of the application does not admit this CI/CD job.",
            Deny::OriginalUnknown => {
                "labgate could not tell which page was asked for, so it cannot apply this application's rules. \
                 The administrator should check server.trusted_proxies and server.forward_auth_source."
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
            Deny::EmailNotVerified => "email_not_verified",
            Deny::NotListed { .. } => "not_in_allowed_users_groups_or_projects",
            Deny::CiJobNotAllowed { .. } => "ci_job_not_allowed",
            Deny::OriginalUnknown => "original_url_unknown",
        }
    }
}

/// A group entry of an allow-list.
#[derive(Debug, Clone)]
pub struct GroupRule {
    /// Full path, ASCII.
    pub path: String,
    /// Minimum role on a direct membership, if any.
    pub min_level: Option<u8>,
    /// `group:member`: a member of the group itself (any role, direct or inherited from a
    /// parent group), i.e. the path itself is in the `groups` claim; members of its
    /// subgroups alone do not match. oauth2-proxy's `gitlab_groups` mean this.
    pub itself: bool,
}

/// A project entry of an allow-list.
#[derive(Debug, Clone)]
pub struct ProjectRule {
    /// Full path, ASCII, lower-cased.
    pub path: String,
    /// Minimum effective access level.
    pub min_level: u8,
}

/// A user entry: GitLab usernames can be renamed, ids cannot (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// A username (ASCII, compared case-insensitively).
    Name(String),
    /// `id:<n>`: a numeric GitLab user id.
    Id(u64),
}

impl UserRef {
    /// Whether this entry names `user`.
    pub fn matches(&self, user: &User) -> bool {
        match self {
            UserRef::Name(n) => n.eq_ignore_ascii_case(&user.username),
            UserRef::Id(id) => *id == user.id,
        }
    }
}

/// Allow-lists: a caller matching any one entry passes.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// `allowed_users`.
    pub users: Vec<UserRef>,
    /// `allowed_groups`.
    pub groups: Vec<GroupRule>,
    /// `allowed_projects`.
    pub projects: Vec<ProjectRule>,
    /// `allowed_email_domains` (lower-case; a leading `.` admits the domain and its
    /// subdomains, a leading `*.` its subdomains only).
    pub email_domains: Vec<String>,
    /// `allowed_ci_jobs`: project paths or namespaces (subgroups included) whose CI jobs
    /// pass, or `*` for every job `[[machine.allow]]` admits. Empty: no CI job passes.
    pub ci_jobs: Vec<String>,
}

impl Rules {
    /// Whether users, groups or projects are listed.
    pub fn has_member_rules(&self) -> bool {
        !self.users.is_empty() || !self.groups.is_empty() || !self.projects.is_empty()
    }

    /// Whether any rule for people is set (members or email domains).
    pub fn has_person_rules(&self) -> bool {
        self.has_member_rules() || !self.email_domains.is_empty()
    }

    /// Whether the subject passes these allow-lists (a route's or a narrowing's).
    pub fn admits(&self, who: Subject<'_>) -> bool {
        match who {
            Subject::Person(user) => {
                self.has_person_rules()
                    && self.email_ok(user)
                    && (!self.has_member_rules() || self.member_ok(user))
            }
            Subject::CiJob { project_path } => self
                .ci_jobs
                .iter()
                .any(|c| c == "*" || under_path(project_path, c)),
        }
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
        self.email_domains.iter().any(|d| {
            if let Some(dot_base) = d.strip_prefix('*') {
                domain.ends_with(dot_base)
            } else if let Some(base) = d.strip_prefix('.') {
                domain == base || domain.ends_with(d.as_str())
            } else {
                domain == *d
            }
        })
    }

    fn member_ok(&self, user: &User) -> bool {
        if self.users.iter().any(|u| u.matches(user)) {
            return true;
        }
        for g in &self.groups {
            let hit = match g.min_level {
                // The `groups` claim lists the groups of direct memberships and their
                // descendants, so the path itself is there exactly when the user is a member
                // of it or of a parent group.
                None if g.itself => user
                    .groups
                    .iter()
                    .any(|have| have.eq_ignore_ascii_case(&g.path)),
                None => user.groups.iter().any(|have| under_path(have, &g.path)),
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
                        .any(|(list, _)| list.iter().any(|have| under_path(&g.path, have)))
                }
            };
            if hit {
                return true;
            }
        }
        // Both sides are lower-case: compile lower-cases the rule, GitLab loading the key.
        self.projects.iter().any(|p| {
            user.projects
                .get(&p.path)
                .is_some_and(|l| *l >= p.min_level)
        })
    }
}

/// Whether the GitLab path `have` is `want` or lies beneath it (a `/` boundary), ASCII
/// case-insensitive like GitLab paths. Compares bytes: never slices a string, so any
/// input is safe.
pub fn under_path(have: &str, want: &str) -> bool {
    let (have, want) = (have.as_bytes(), want.as_bytes());
    match have.get(..want.len()) {
        Some(head) if head.eq_ignore_ascii_case(want) => {
            matches!(have.get(want.len()), None | Some(b'/'))
        }
        _ => false,
    }
}

/// A path that needs no sign-in.
#[derive(Debug, Clone)]
pub struct Public {
    /// The hosts it covers (empty: every host).
    pub hosts: Vec<HostPattern>,
    /// Matched against every strict reading of the path.
    pub path: Regex,
    /// Methods it covers (empty: all).
    pub methods: Vec<http::Method>,
}

/// Stricter rules for part of the app.
#[derive(Debug, Clone)]
pub struct Route {
    /// The regex as written (for logs).
    pub source: String,
    /// The hosts it covers (empty: every host); a host that could not be read faces it.
    pub hosts: Vec<HostPattern>,
    /// Matched against every reading of the path, loose ones included.
    pub path: Regex,
    /// Who passes, on top of the global rules.
    pub rules: Rules,
}

/// The compiled access policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `[access]` allow-lists.
    pub global: Rules,
    /// `blocked_users`.
    pub blocked_users: Vec<UserRef>,
    /// `require_two_factor`.
    pub require_two_factor: bool,
    /// `require_verified_email`: GitLab must say the primary email is verified (what
    /// oauth2-proxy's GitLab provider requires of everyone).
    pub require_verified_email: bool,
    /// `allow_any_gitlab_user`.
    pub allow_any: bool,
    /// `[[access.public]]`.
    pub public: Vec<Public>,
    /// `[[route]]`, first match wins.
    pub routes: Vec<Route>,
}

/// The outcome of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through.
    Allow,
    /// Turn the caller away.
    Deny(Deny),
}

impl Policy {
    /// Whether a request needs no sign-in: every strict reading of its path matches a
    /// public rule for its method and host (`host`: the canonical name, `None` when it
    /// could not be read: then only rules for every host apply).
    pub fn is_public(&self, method: &http::Method, host: Option<&str>, paths: &PathViews) -> bool {
        if self.public.is_empty() {
            return false;
        }
        paths.all().iter().all(|p| {
            self.public.iter().any(|r| {
                (r.methods.is_empty() || r.methods.contains(method))
                    && host_listed(&r.hosts, host)
                    && r.path.is_match(p)
            })
        })
    }

    /// Whether any rule names hosts (labgate serves several apps).
    pub fn names_hosts(&self) -> bool {
        self.public.iter().any(|p| !p.hosts.is_empty())
            || self.routes.iter().any(|r| !r.hosts.is_empty())
    }

    /// Project paths whose access level the rules need (lower-cased).
    pub fn project_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .global
            .projects
            .iter()
            .chain(self.routes.iter().flat_map(|r| r.rules.projects.iter()))
            .map(|p| p.path.clone())
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

    /// Whether `blocked_users` or `allowed_users` name anyone by username (mutable in
    /// GitLab: `labgate check` says so).
    pub fn names_users_by_name(&self) -> bool {
        self.blocked_users
            .iter()
            .chain(&self.global.users)
            .chain(self.routes.iter().flat_map(|r| &r.rules.users))
            .any(|u| matches!(u, UserRef::Name(_)))
    }

    /// The global rules alone, for a person (at sign-in, before any path is known).
    pub fn admit(&self, user: &User) -> Decision {
        if user.state.as_deref().is_some_and(|s| s != "active") {
            return Decision::Deny(Deny::Inactive);
        }
        if self.blocked_users.iter().any(|b| b.matches(user)) {
            return Decision::Deny(Deny::Blocked);
        }
        if self.require_verified_email && !(user.email_verified && user.email.is_some()) {
            return Decision::Deny(Deny::EmailNotVerified);
        }
        if !self.global.email_ok(user) {
            return Decision::Deny(Deny::EmailDomain);
        }
        if self.require_two_factor && user.two_factor != Some(true) {
            return Decision::Deny(Deny::TwoFactor);
        }
        let listed = if self.global.has_member_rules() {
            self.global.member_ok(user)
        } else {
            self.allow_any
        };
        if !listed {
            return Decision::Deny(Deny::NotListed {
                scope: Scope::Access,
            });
        }
        Decision::Allow
    }

    /// The one decision (SPEC §9): global rules, then the first `[[route]]` of the request's
    /// host matching each reading of the path, then the forward-auth narrowing, for every
    /// kind of caller.
    ///
    /// `host` is the canonical host name, `None` when it is unknown: then every route that
    /// names hosts applies too (the stricter answer). `paths` is `None` when the original
    /// request is unknown (forward-auth without a trusted front proxy's headers): with
    /// routes or narrowing in force that is a refusal, never a judgement of `/`.
    pub fn decide(
        &self,
        who: Subject<'_>,
        host: Option<&str>,
        paths: Option<&PathViews>,
        narrowing: Option<&Rules>,
    ) -> Decision {
        let applies =
            |r: &&Route| r.hosts.is_empty() || host.is_none_or(|h| host_listed(&r.hosts, Some(h)));
        // 1. Global: people face [access]; CI jobs were admitted by [[machine.allow]].
        if let Subject::Person(user) = who {
            if let Decision::Deny(d) = self.admit(user) {
                return Decision::Deny(d);
            }
        }
        // 2. Routes, on every reading an upstream router may use.
        match paths {
            // A path an app could read with dot segments unresolved: every route applies.
            Some(paths) if !self.routes.is_empty() && paths.faces_every_route() => {
                for route in self.routes.iter().filter(applies) {
                    if !route.rules.admits(who) {
                        return Decision::Deny(refusal(who, Scope::Route(route.source.clone())));
                    }
                }
            }
            // The first match among the host's own routes and the first among the routes
            // for every host both apply: a route for every host listed first never
            // overrides an app's own (routes only ever add rules).
            Some(paths) if !self.routes.is_empty() => {
                for p in paths.route_readings() {
                    let first = |own: bool| {
                        self.routes
                            .iter()
                            .filter(applies)
                            .filter(|r| r.hosts.is_empty() != own)
                            .find(|r| r.path.is_match(&p))
                    };
                    // A host that could not be told faces every route naming hosts that
                    // matches (the stricter answer), not only the first.
                    let unknown_host: Vec<&Route> = if host.is_none() {
                        self.routes
                            .iter()
                            .filter(|r| !r.hosts.is_empty() && r.path.is_match(&p))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let own = if host.is_none() { None } else { first(true) };
                    for route in own.into_iter().chain(first(false)).chain(unknown_host) {
                        if !route.rules.admits(who) {
                            return Decision::Deny(refusal(
                                who,
                                Scope::Route(route.source.clone()),
                            ));
                        }
                    }
                }
            }
            None if !self.routes.is_empty() => return Decision::Deny(Deny::OriginalUnknown),
            _ => {}
        }
        // 3. Narrowing for one forward-auth location.
        if let Some(n) = narrowing {
            if paths.is_none() {
                return Decision::Deny(Deny::OriginalUnknown);
            }
            if !n.admits(who) {
                return Decision::Deny(refusal(who, Scope::Query));
            }
        }
        Decision::Allow
    }
}

/// The refusal for a subject that did not pass a scope's allow-lists.
fn refusal(who: Subject<'_>, scope: Scope) -> Deny {
    match who {
        Subject::Person(_) => Deny::NotListed { scope },
        Subject::CiJob { .. } => Deny::CiJobNotAllowed { scope },
    }
}
