#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use super::*;
use crate::access::{Decision, Deny, PathViews, Policy, Subject, User};
use crate::config::file::{AccessFile, RouteFile};

fn gitlab() -> GitlabConfig {
    crate::config::load_str(
        "[server]\npublic_url='https://a.example'\n[upstream]\nurl='http://127.0.0.1:1'\n[gitlab]\nclient_id='x'\nclient_secret='y'\n\
         [session]\ncookie_secret='ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE='\n[access]\nallow_any_gitlab_user=true\n",
    )
    .unwrap()
    .gitlab
}

fn policy(access: AccessFile, routes: Vec<RouteFile>) -> Result<Policy, Vec<Problem>> {
    let mut problems = Vec::new();
    let p = compile(&access, &routes, &gitlab(), &mut problems);
    if problems.is_empty() {
        Ok(p)
    } else {
        Err(problems)
    }
}

fn user(name: &str, groups: &[&str]) -> User {
    User {
        id: 1,
        username: name.into(),
        email: Some(format!("{name}@example.com")),
        email_verified: true,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..User::default()
    }
}

#[test]
fn no_rule_is_refused_with_a_reason() {
    let err = policy(AccessFile::default(), vec![]).unwrap_err();
    assert!(err[0].message.contains("anyone with a GitLab account"));
}

#[test]
fn group_boundaries() {
    let p = policy(
        AccessFile {
            allowed_groups: vec!["acme/team".into()],
            ..Default::default()
        },
        vec![],
    )
    .unwrap();
    assert_eq!(p.admit(&user("a", &["acme/team"])), Decision::Allow);
    assert_eq!(p.admit(&user("a", &["acme/team/sub"])), Decision::Allow);
    assert!(matches!(
        p.admit(&user("a", &["acme/teamster"])),
        Decision::Deny(_)
    ));
    assert!(matches!(p.admit(&user("a", &["acme"])), Decision::Deny(_)));
}

#[test]
fn email_domain_needs_exactly_one_at_and_verification() {
    let p = policy(
        AccessFile {
            allow_any_gitlab_user: Some(true),
            allowed_email_domains: vec!["good.com".into()],
            ..Default::default()
        },
        vec![],
    )
    .unwrap();
    let mut u = user("a", &[]);
    for (email, verified, ok) in [
        ("a@good.com", true, true),
        ("a@GOOD.com", true, true),
        ("a@good.com", false, false),
        ("a@evil.com@good.com", true, false),
        ("a@evil.good.com", true, false),
        ("good.com", true, false),
        ("@good.com", true, false),
    ] {
        u.email = Some(email.into());
        u.email_verified = verified;
        assert_eq!(
            p.admit(&u) == Decision::Allow,
            ok,
            "{email} verified={verified}"
        );
    }
}

#[test]
fn inactive_and_blocked_users() {
    let p = policy(
        AccessFile {
            allowed_groups: vec!["acme".into()],
            blocked_users: vec!["Eve".into()],
            ..Default::default()
        },
        vec![],
    )
    .unwrap();
    let mut u = user("eve", &["acme"]);
    assert_eq!(p.admit(&u), Decision::Deny(Deny::Blocked));
    u.username = "ok".into();
    u.state = Some("blocked".into());
    assert_eq!(p.admit(&u), Decision::Deny(Deny::Inactive));
}

#[test]
fn bad_entries_name_their_key() {
    let err = policy(
        AccessFile {
            allowed_groups: vec!["acme:reporter".into(), "/x".into()],
            allowed_projects: vec!["noslash".into(), "a/b:boss".into()],
            allowed_email_domains: vec!["a@b.com".into()],
            ..Default::default()
        },
        vec![RouteFile {
            path: Some("(".into()),
            ..Default::default()
        }],
    )
    .unwrap_err();
    let keys: Vec<&str> = err.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "access.allowed_groups[0]",
        "access.allowed_groups[1]",
        "access.allowed_projects[0]",
        "access.allowed_projects[1]",
        "access.allowed_email_domains[0]",
        "route[0].path",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
}

#[test]
fn public_paths_need_every_reading_to_match() {
    let p = policy(
        AccessFile {
            allow_any_gitlab_user: Some(true),
            public: vec![crate::config::file::PublicFile {
                hosts: vec![],
                path: Some("^/public(/|$)".into()),
                methods: vec!["GET".into()],
            }],
            ..Default::default()
        },
        vec![],
    )
    .unwrap();
    let get = http::Method::GET;
    assert!(p.is_public(&get, None, &PathViews::new("/public/x")));
    assert!(!p.is_public(&http::Method::POST, None, &PathViews::new("/public/x")));
    for tricky in [
        "/public/..%2Fadmin",
        "/public/..;/admin",
        "/public%2F..%2Fadmin",
        "/publicity",
    ] {
        assert!(
            !p.is_public(&get, None, &PathViews::new(tricky)),
            "{tricky}"
        );
    }
}

fn routed() -> Policy {
    policy(
        AccessFile {
            allowed_groups: vec!["acme".into()],
            blocked_users: vec!["id:666".into()],
            ..Default::default()
        },
        vec![
            RouteFile {
                path: Some("^/admin(/|$)".into()),
                allowed_groups: vec!["acme/admins".into()],
                ..Default::default()
            },
            RouteFile {
                path: Some("^/deploy(/|$)".into()),
                allowed_groups: vec!["acme/admins".into()],
                allowed_ci_jobs: vec!["acme/deployer".into()],
                ..Default::default()
            },
            RouteFile {
                path: Some("^/hooks(/|$)".into()),
                allowed_ci_jobs: vec!["*".into()],
                ..Default::default()
            },
        ],
    )
    .unwrap()
}

#[test]
fn one_decision_for_people_and_ci_jobs() {
    let p = routed();
    let bob = user("bob", &["acme/team"]);
    let alice = user("alice", &["acme/admins"]);
    let ci = Subject::CiJob {
        project_path: "acme/deployer",
    };
    let other_ci = Subject::CiJob {
        project_path: "acme/other",
    };
    let at = |path: &str| PathViews::new(path);
    let d = |who, path: &str| p.decide(who, None, Some(&at(path)), None) == Decision::Allow;
    assert!(d(Subject::Person(&bob), "/docs"));
    assert!(!d(Subject::Person(&bob), "/admin"));
    assert!(d(Subject::Person(&alice), "/admin"));
    // Loose readings an upstream router may use: case, `.format`, `;params`.
    for sneaky in [
        "/ADMIN",
        "/admin.json",
        "/Admin.JSON/x",
        "/admin;x=1",
        "/adm%69n",
    ] {
        assert!(!d(Subject::Person(&bob), sneaky), "{sneaky}");
    }
    // CI jobs pass only routes that name them; people-only routes refuse them.
    assert!(d(ci, "/docs"));
    assert!(!d(ci, "/admin"));
    assert!(d(ci, "/deploy/x"));
    assert!(!d(other_ci, "/deploy/x"));
    assert!(d(other_ci, "/hooks/x"));
    assert!(!d(Subject::Person(&alice), "/hooks/x"));
    assert_eq!(
        p.decide(ci, None, Some(&at("/admin")), None),
        Decision::Deny(Deny::CiJobNotAllowed {
            scope: crate::access::Scope::Route("^/admin(/|$)".into())
        })
    );
    // Unknown original URL with routes: refused, never judged as "/".
    assert_eq!(
        p.decide(Subject::Person(&alice), None, None, None),
        Decision::Deny(Deny::OriginalUnknown)
    );
    // Blocked by id, whatever the name.
    let mut renamed = user("someone-new", &["acme"]);
    renamed.id = 666;
    assert_eq!(p.admit(&renamed), Decision::Deny(Deny::Blocked));
}

#[test]
fn narrowing_applies_to_every_caller_and_needs_the_original() {
    let p = policy(
        AccessFile {
            allowed_groups: vec!["acme".into()],
            ..Default::default()
        },
        vec![],
    )
    .unwrap();
    let admins = narrowing(&[], &["acme/admins".into()], &[]).unwrap();
    let bob = user("bob", &["acme/team"]);
    let alice = user("alice", &["acme/admins"]);
    let ci = Subject::CiJob {
        project_path: "acme/deployer",
    };
    let root = PathViews::new("/");
    assert_eq!(
        p.decide(Subject::Person(&alice), None, Some(&root), Some(&admins)),
        Decision::Allow
    );
    assert!(p.decide(Subject::Person(&bob), None, Some(&root), Some(&admins)) != Decision::Allow);
    assert!(p.decide(ci, None, Some(&root), Some(&admins)) != Decision::Allow);
    assert_eq!(
        p.decide(Subject::Person(&alice), None, None, Some(&admins)),
        Decision::Deny(Deny::OriginalUnknown)
    );
    // Without routes or narrowing, an unknown original falls to the global rules.
    assert_eq!(
        p.decide(Subject::Person(&bob), None, None, None),
        Decision::Allow
    );
    let ci_ok = narrowing(&[], &[], &["acme".into()]).unwrap();
    assert_eq!(
        p.decide(ci, None, Some(&root), Some(&ci_ok)),
        Decision::Allow
    );
    assert!(narrowing(&["bad name".into()], &[], &[]).is_err());
}

#[test]
fn non_ascii_paths_are_refused_at_load_with_the_key() {
    let err = policy(
        AccessFile {
            allowed_groups: vec!["acmé".into()],
            allowed_projects: vec!["acme/äpp".into()],
            allowed_users: vec!["bøb".into(), "id:x".into()],
            ..Default::default()
        },
        vec![RouteFile {
            path: Some("^/x".into()),
            allowed_ci_jobs: vec!["ci/ü".into()],
            ..Default::default()
        }],
    )
    .unwrap_err();
    let keys: Vec<&str> = err.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "access.allowed_groups[0]",
        "access.allowed_projects[0]",
        "access.allowed_users[0]",
        "access.allowed_users[1]",
        "route[0].allowed_ci_jobs[0]",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
}

#[test]
fn a_member_rule_admits_members_of_the_group_itself_not_of_its_subgroups_only() {
    let p = policy(
        AccessFile {
            allowed_groups: vec!["acme/team:member".into()],
            ..Default::default()
        },
        vec![],
    )
    .unwrap();
    // The groups claim holds direct memberships and their descendants: a member of acme
    // (any role) has acme/team there; a member of acme/team/sub alone does not.
    assert_eq!(
        p.admit(&user("a", &["acme", "acme/team", "acme/team/sub"])),
        Decision::Allow
    );
    assert_eq!(p.admit(&user("a", &["ACME/Team"])), Decision::Allow);
    for groups in [&["acme/team/sub"][..], &["acme"], &["acme/teamx"], &[]] {
        assert!(
            matches!(
                p.admit(&user("a", groups)),
                Decision::Deny(Deny::NotListed { .. })
            ),
            "{groups:?}"
        );
    }
}

#[test]
fn email_domain_forms() {
    let with = |d: &str| {
        policy(
            AccessFile {
                allow_any_gitlab_user: Some(true),
                allowed_email_domains: vec![d.into()],
                ..Default::default()
            },
            vec![],
        )
        .unwrap()
    };
    let mail = |email: &str| User {
        email: Some(email.into()),
        ..user("a", &[])
    };
    let cases = [
        ("example.com", "a@example.com", true),
        ("example.com", "a@eng.example.com", false),
        (".example.com", "a@example.com", true),
        (".example.com", "a@eng.example.com", true),
        ("*.example.com", "a@example.com", false),
        ("*.example.com", "a@eng.example.com", true),
        ("*.example.com", "a@badexample.com", false),
    ];
    for (rule, email, admitted) in cases {
        assert_eq!(
            with(rule).admit(&mail(email)) == Decision::Allow,
            admitted,
            "{rule} for {email}"
        );
    }
}

#[test]
fn required_verified_email_refuses_unverified_and_missing_emails() {
    let p = policy(
        AccessFile {
            allow_any_gitlab_user: Some(true),
            require_verified_email: Some(true),
            ..Default::default()
        },
        vec![],
    )
    .unwrap();
    let mut u = user("a", &[]);
    assert_eq!(p.admit(&u), Decision::Allow);
    u.email_verified = false;
    assert_eq!(p.admit(&u), Decision::Deny(Deny::EmailNotVerified));
    u.email_verified = true;
    u.email = None;
    assert_eq!(p.admit(&u), Decision::Deny(Deny::EmailNotVerified));
}

#[test]
fn oauth2_proxy_spellings_are_refused_with_labgate_s() {
    let err = policy(
        AccessFile {
            allowed_projects: vec!["acme/app=30".into(), "acme/tool=7".into()],
            allowed_email_domains: vec!["*".into()],
            ..Default::default()
        },
        vec![],
    )
    .unwrap_err();
    let msg = |k: &str| {
        err.iter()
            .find(|p| p.key == k)
            .unwrap_or_else(|| panic!("{k} in {err:?}"))
            .message
            .clone()
    };
    assert!(msg("access.allowed_projects[0]").contains("\"acme/app:developer\""));
    assert!(msg("access.allowed_projects[1]").contains("\"acme/tool:<role>\""));
    assert!(msg("access.allowed_email_domains[0]").contains("access.allow_any_gitlab_user = true"));
}

#[test]
fn routes_and_public_paths_apply_to_their_hosts_only() {
    let p = policy(
        AccessFile {
            allowed_groups: vec!["acme".into()],
            public: vec![crate::config::file::PublicFile {
                hosts: vec!["wiki.example.com".into()],
                path: Some("^/public(/|$)".into()),
                methods: vec![],
            }],
            ..Default::default()
        },
        vec![
            RouteFile {
                path: Some("^/api(/|$)".into()),
                allowed_groups: vec!["acme".into()],
                ..Default::default()
            },
            RouteFile {
                hosts: vec!["admin.example.com".into(), "*.ops.example.com".into()],
                path: Some("^/".into()),
                allowed_groups: vec!["acme/admins".into()],
                ..Default::default()
            },
            RouteFile {
                path: Some("^/admin(/|$)".into()),
                allowed_groups: vec!["acme/admins".into()],
                ..Default::default()
            },
            RouteFile {
                hosts: vec!["wiki.example.com".into()],
                path: Some("^/private(/|$)".into()),
                allowed_users: vec!["carol".into()],
                ..Default::default()
            },
        ],
    )
    .unwrap();
    assert!(p.names_hosts());
    let bob = user("bob", &["acme/team"]);
    let alice = user("alice", &["acme/admins"]);
    let d = |who: &User, host: Option<&str>, path: &str| {
        p.decide(
            Subject::Person(who),
            host,
            Some(&PathViews::new(path)),
            None,
        ) == Decision::Allow
    };
    // bob: the wiki (and any host without a route of its own) but not admin's hosts.
    assert!(d(&bob, Some("wiki.example.com"), "/page"));
    assert!(!d(&bob, Some("admin.example.com"), "/page"));
    assert!(!d(&bob, Some("grafana.ops.example.com"), "/"));
    assert!(d(&bob, Some("ops.example.com"), "/"));
    // A route for every host still applies on every host, and one listed before a host's
    // own route does not override it: both apply.
    assert!(!d(&bob, Some("wiki.example.com"), "/admin"));
    assert!(!d(&bob, Some("admin.example.com"), "/api/users"));
    assert!(d(&alice, Some("admin.example.com"), "/api/users"));
    // A host that could not be told faces every route: the stricter answer (every
    // matching route naming hosts, not only the first).
    assert!(!d(&bob, None, "/page"));
    assert!(d(&alice, None, "/page"));
    assert!(
        !d(&alice, None, "/private"),
        "the wiki's route too, not only admin's"
    );
    assert!(d(&alice, Some("admin.example.com"), "/private"));
    assert!(!d(&alice, Some("wiki.example.com"), "/private"));
    assert!(d(&alice, Some("admin.example.com"), "/"));
    // Public on the wiki only; an unknown host is public only under rules for every host.
    let get = http::Method::GET;
    let public = |host: Option<&str>| p.is_public(&get, host, &PathViews::new("/public/x"));
    assert!(public(Some("wiki.example.com")));
    assert!(!public(Some("admin.example.com")));
    assert!(!public(None));
}
