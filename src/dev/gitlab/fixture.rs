//! The stand-in's world: applications, users, groups, projects (config/dev-gitlab.toml).

use serde::Deserialize;

use crate::access::level;

/// The whole fixture file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// OAuth applications.
    #[serde(default, rename = "application")]
    pub applications: Vec<Application>,
    /// Users.
    #[serde(default, rename = "user")]
    pub users: Vec<FixtureUser>,
    /// Groups (full paths; parents need not be listed first).
    #[serde(default, rename = "group")]
    pub groups: Vec<Group>,
    /// Projects.
    #[serde(default, rename = "project")]
    pub projects: Vec<Project>,
    /// Webhooks: a group's (member events of it and its subgroups) or the system's.
    #[serde(default, rename = "hook")]
    pub hooks: Vec<Hook>,
}

/// A webhook GitLab calls: a group webhook with member events, or a system hook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// Where GitLab posts the event.
    pub url: String,
    /// The secret token, sent back as `X-Gitlab-Token`.
    pub token: String,
    /// The group whose member events it receives (and its subgroups'); `None`: a system
    /// hook.
    #[serde(default)]
    pub group: Option<String>,
}

/// An OAuth application (Settings -> Applications).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Name.
    pub name: String,
    /// Application ID.
    pub client_id: String,
    /// Secret.
    pub secret: String,
    /// Redirect URIs (exact match).
    pub redirect_uris: Vec<String>,
    /// Scopes the application allows.
    pub scopes: Vec<String>,
    /// Trusted applications skip the consent page.
    #[serde(default)]
    pub trusted: bool,
}

/// A user account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureUser {
    /// Numeric id.
    pub id: u64,
    /// Username.
    pub username: String,
    /// Password for the stand-in sign-in form.
    pub password: String,
    /// Display name.
    pub name: String,
    /// Primary email.
    pub email: String,
    /// Whether the primary email is confirmed.
    #[serde(default = "yes")]
    pub email_verified: bool,
    /// Public email (shown without the `email` scope).
    #[serde(default)]
    pub public_email: Option<String>,
    /// "active", "blocked", ...
    #[serde(default = "active")]
    pub state: String,
    /// Two-factor authentication enabled.
    #[serde(default)]
    pub two_factor_enabled: bool,
    /// Personal access tokens (for scripts).
    #[serde(default)]
    pub personal_access_tokens: Vec<PersonalAccessToken>,
}

/// A personal access token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalAccessToken {
    /// The token, e.g. `glpat-...`.
    pub token: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

fn yes() -> bool {
    true
}
fn active() -> String {
    "active".into()
}

/// A membership.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Username.
    pub user: String,
    /// guest | planner | reporter | developer | maintainer | owner.
    pub role: String,
}

impl Member {
    /// The numeric access level.
    pub fn level(&self) -> u8 {
        level::parse(&self.role).unwrap_or(level::GUEST)
    }
}

/// A group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Full path.
    pub path: String,
    /// Direct members.
    #[serde(default)]
    pub members: Vec<Member>,
}

/// A project.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Numeric id.
    pub id: u64,
    /// Full path (namespace/name).
    pub path: String,
    /// Archived projects.
    #[serde(default)]
    pub archived: bool,
    /// "private" (default), "internal" or "public".
    #[serde(default = "private")]
    pub visibility: String,
    /// Direct members.
    #[serde(default)]
    pub members: Vec<Member>,
}

fn private() -> String {
    "private".into()
}

/// Whether `child` is `parent` or below it.
pub(super) fn within(child: &str, parent: &str) -> bool {
    child == parent
        || child
            .strip_prefix(parent)
            .is_some_and(|r| r.starts_with('/'))
}

impl Fixture {
    /// Parses fixture TOML.
    pub fn parse(text: &str) -> Result<Fixture, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The demo fixture shipped in config/dev-gitlab.toml.
    pub fn demo() -> Fixture {
        Fixture::parse(include_str!("../../../config/dev-gitlab.toml")).unwrap_or_else(|e| {
            panic!("config/dev-gitlab.toml is invalid: {e}");
        })
    }

    /// A user by username (case-insensitive, like GitLab).
    pub fn user(&self, username: &str) -> Option<&FixtureUser> {
        self.users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(username))
    }

    /// Direct group memberships of a user: (path, level).
    pub fn direct_groups(&self, username: &str) -> Vec<(String, u8)> {
        self.groups
            .iter()
            .filter_map(|g| {
                g.members
                    .iter()
                    .find(|m| m.user.eq_ignore_ascii_case(username))
                    .map(|m| (g.path.clone(), m.level()))
            })
            .collect()
    }

    /// The `groups` claim: direct memberships and all their descendant groups.
    pub fn groups_claim(&self, username: &str) -> Vec<String> {
        let direct = self.direct_groups(username);
        let mut out: Vec<String> = self
            .groups
            .iter()
            .filter(|g| direct.iter().any(|(d, _)| within(&g.path, d)))
            .map(|g| g.path.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Groups where the user's effective level (direct or inherited) is at least `min`.
    pub fn groups_with_min_level(&self, username: &str, min: u8) -> Vec<(u64, String)> {
        let direct = self.direct_groups(username);
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| direct.iter().any(|(d, l)| within(&g.path, d) && *l >= min))
            .map(|(i, g)| (i as u64 + 1, g.path.clone()))
            .collect()
    }

    /// Direct memberships with exactly `level`.
    pub fn groups_with_role(&self, username: &str, lvl: u8) -> Vec<String> {
        self.direct_groups(username)
            .into_iter()
            .filter(|(_, l)| *l == lvl)
            .map(|(p, _)| p)
            .collect()
    }

    /// A project by numeric id or full path.
    pub fn project(&self, id: &str) -> Option<&Project> {
        match id.parse::<u64>() {
            Ok(n) => self.projects.iter().find(|p| p.id == n),
            Err(_) => self
                .projects
                .iter()
                .find(|p| p.path.eq_ignore_ascii_case(id)),
        }
    }

    /// (project_access, group_access) levels of a user on a project.
    pub fn project_levels(&self, project: &Project, username: &str) -> (Option<u8>, Option<u8>) {
        let direct = project
            .members
            .iter()
            .find(|m| m.user.eq_ignore_ascii_case(username))
            .map(Member::level);
        let inherited = self
            .direct_groups(username)
            .into_iter()
            .filter(|(g, _)| within(&project.path, g))
            .map(|(_, l)| l)
            .max();
        (direct, inherited)
    }

    /// Sets (or with `None` removes) a user's direct membership of a group.
    pub fn set_group_member(&mut self, group: &str, username: &str, role: Option<&str>) {
        let Some(g) = self.groups.iter_mut().find(|g| g.path == group) else {
            if let Some(role) = role {
                self.groups.push(Group {
                    path: group.into(),
                    members: vec![Member {
                        user: username.into(),
                        role: role.into(),
                    }],
                });
            }
            return;
        };
        g.members.retain(|m| !m.user.eq_ignore_ascii_case(username));
        if let Some(role) = role {
            g.members.push(Member {
                user: username.into(),
                role: role.into(),
            });
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice
)]
mod tests {
    use super::*;

    #[test]
    fn demo_fixture_claims() {
        let f = Fixture::demo();
        assert_eq!(
            f.groups_claim("alice"),
            vec!["acme", "acme/admins", "acme/team", "acme/team/frontend"]
        );
        assert_eq!(
            f.groups_claim("bob"),
            vec!["acme/team", "acme/team/frontend"]
        );
        assert_eq!(f.groups_with_role("alice", level::OWNER), vec!["acme"]);
        assert_eq!(
            f.groups_with_role("bob", level::MAINTAINER),
            vec!["acme/team/frontend"]
        );
        let app = f.project("acme/app").unwrap();
        assert_eq!(f.project_levels(app, "bob"), (Some(level::REPORTER), None));
        assert_eq!(f.project_levels(app, "alice"), (None, Some(level::OWNER)));
        assert_eq!(f.project_levels(app, "mallory"), (None, None));
    }
}
