use super::*;
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
    let p = Policy::compile(&access, &routes, &gitlab(), &mut problems);
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
                path: Some("^/public(/|$)".into()),
                methods: vec!["GET".into()],
            }],
            ..Default::default()
        },
        vec![],
    )
    .unwrap();
    let get = http::Method::GET;
    assert!(p.is_public(&get, &PathViews::new("/public/x")));
    assert!(!p.is_public(&http::Method::POST, &PathViews::new("/public/x")));
    for tricky in [
        "/public/..%2Fadmin",
        "/public/..;/admin",
        "/public%2F..%2Fadmin",
        "/publicity",
    ] {
        assert!(!p.is_public(&get, &PathViews::new(tricky)), "{tricky}");
    }
}
