//! Property tests for the parsers that face the network: redirect validation, path
//! readings, identity-header stripping, cookie decoding. They run in CI with every build
//! (cargo-fuzz targets for the same functions live in fuzz/).

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE};
use labgate::access::PathViews;
use labgate::oauth::redirect;
use proptest::prelude::*;

fn public() -> url::Url {
    url::Url::parse("https://app.example.com").unwrap()
}

/// Strings built from the characters redirect tricks are made of.
fn tricky() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just("\\".to_owned()),
            Just("%2f".to_owned()),
            Just("%5c".to_owned()),
            Just("%25".to_owned()),
            Just("%09".to_owned()),
            Just("@".to_owned()),
            Just(":".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("evil.com".to_owned()),
            Just("app.example.com".to_owned()),
            Just("https:".to_owned()),
            Just("//".to_owned()),
            Just("?".to_owned()),
            Just("#".to_owned()),
            Just(" ".to_owned()),
            Just("\t".to_owned()),
            Just("%2e".to_owned()),
            "[a-z0-9]{1,4}",
            "\\PC{1,2}",
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, .. ProptestConfig::default() })]

    #[test]
    fn accepted_redirects_stay_on_allowed_origins(rd in tricky()) {
        if let Some(to) = redirect::validate(&rd, &public(), &[".example.org".to_owned()]) {
            // Whatever a browser makes of it, the target is ours or an allowed host.
            let resolved = public().join(&to).unwrap();
            let host = resolved.host_str().unwrap_or("").to_owned();
            prop_assert!(host == "app.example.com" || host == "example.org" || host.ends_with(".example.org"), "{rd:?} -> {to:?} -> {resolved}");
            prop_assert_eq!(resolved.scheme(), "https");
            prop_assert!(to.is_ascii());
            prop_assert!(!to.starts_with("//") && !to.starts_with("/\\"));
        }
    }

    #[test]
    fn path_readings_are_canonical(path in tricky()) {
        let v = PathViews::new(&format!("/{path}"));
        prop_assert!(v.resolved.starts_with('/'));
        prop_assert!(!v.resolved.contains("//"), "{:?}", v.resolved);
        prop_assert!(!v.resolved.split('/').any(|s| s == "." || s == ".."), "{:?}", v.resolved);
        prop_assert!(!v.resolved.contains('#') && !v.resolved.contains('?') && !v.resolved.contains('\\'));
        prop_assert!(v.forward.starts_with('/'));
        // Idempotent: the forwarded path reads the same again.
        prop_assert_eq!(&PathViews::new(&v.forward).forward, &v.forward);
    }

    #[test]
    fn identity_headers_never_survive_stripping(
        base in prop_oneof![Just("x-forwarded-user"), Just("x-forwarded-email"), Just("x-forwarded-groups"), Just("x-labgate-user-id"), Just("x-labgate-assertion"), Just("x-auth-request-user"), Just("x-forwarded-access-token"), Just("x-labgate-anything")],
        upper in proptest::collection::vec(any::<bool>(), 32),
        underscore in proptest::collection::vec(any::<bool>(), 32),
        copies in 1usize..4,
    ) {
        let name: String = base.chars().enumerate().map(|(i, c)| {
            let c = if c == '-' && underscore[i % 32] { '_' } else { c };
            if upper[i % 32] { c.to_ascii_uppercase() } else { c }
        }).collect();
        let mut h = HeaderMap::new();
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        for _ in 0..copies {
            h.append(name.clone(), HeaderValue::from_static("forged"));
        }
        h.append("x-keep", HeaderValue::from_static("1"));
        labgate::headers::strip_identity(&mut h, &HeaderName::from_static("x-labgate-assertion"));
        prop_assert_eq!(h.len(), 1);
    }

    #[test]
    fn cookie_decoding_never_panics_or_opens_garbage(value in "[ -~]{0,600}", chunks in proptest::collection::vec("[A-Za-z0-9+/=._-]{0,200}", 0..4)) {
        let cfg = labgate::config::load_str(
            "[server]\npublic_url='https://a.example'\n[upstream]\nurl='http://127.0.0.1:1'\n[gitlab]\nclient_id='x'\nclient_secret='y'\n\
             [session]\ncookie_secure=false\ncookie_secret='ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE='\n[access]\nallow_any_gitlab_user=true\n",
        ).unwrap();
        let codec = labgate::session::CookieCodec::new(&cfg.session);
        let mut header = format!("_labgate={}", value.replace(';', ""));
        for (i, c) in chunks.iter().enumerate() {
            header.push_str(&format!("; _labgate_{}={c}", i + 1));
        }
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&header) {
            h.insert(COOKIE, v);
            prop_assert!(codec.read_session(&h).is_none());
            prop_assert!(codec.read_handle(&h).is_none());
            prop_assert!(codec.read_flow(&h, &value, 0).is_err());
        }
    }
}

/// Arbitrary Unicode, weighted towards multi-byte characters next to the ASCII a byte-length
/// slice would cut at (`/`, `:`, `.`), and towards names the demo rules use.
fn unicode() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just(":".to_owned()),
            Just(".".to_owned()),
            Just("acme".to_owned()),
            Just("admins".to_owned()),
            Just("é".to_owned()),
            Just("\u{10348}".to_owned()),
            Just("\u{301}".to_owned()),
            "\\PC{1,3}",
            "[a-z]{1,3}",
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
}

fn arbitrary_user() -> impl Strategy<Value = labgate::access::User> {
    (
        unicode(),
        proptest::collection::vec(unicode(), 0..4),
        unicode(),
        any::<u64>(),
    )
        .prop_map(|(username, groups, email, id)| labgate::access::User {
            id,
            username,
            email: Some(email),
            email_verified: true,
            owner_of: groups.clone(),
            maintainer_of: groups.clone(),
            groups,
            ..Default::default()
        })
}

fn toml_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| toml::Value::String(s.clone()).to_string())
        .collect();
    format!("[{}]", items.join(", "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Rule parsing: any Unicode in users, groups, projects, domains and CI job lists loads
    /// or is refused naming its key; never a panic, and never a non-ASCII path accepted.
    #[test]
    fn rule_parsing_never_panics(
        users in proptest::collection::vec(unicode(), 0..3),
        groups in proptest::collection::vec(unicode(), 1..3),
        projects in proptest::collection::vec(unicode(), 0..3),
        ci in proptest::collection::vec(unicode(), 0..3),
    ) {
        let text = format!(
            "[server]\npublic_url='https://a.example'\n[upstream]\nurl='http://127.0.0.1:1'\n[gitlab]\nclient_id='x'\nclient_secret='y'\n\
             [session]\ncookie_secret='ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE='\n\
             [access]\nallowed_users = {}\nallowed_groups = {}\nallowed_projects = {}\nblocked_users = {}\n\
             [[route]]\npath = '^/x'\nallowed_ci_jobs = {}\nallowed_groups = {}\n",
            toml_list(&users), toml_list(&groups), toml_list(&projects), toml_list(&users),
            toml_list(&ci), toml_list(&groups),
        );
        match labgate::config::load_str(&text) {
            Ok(_) => {
                for g in groups.iter().chain(&projects).chain(&ci) {
                    prop_assert!(g.is_ascii(), "accepted non-ASCII path {g:?}");
                }
            }
            Err(e) => prop_assert!(e.problems.iter().all(|p| !p.key.is_empty())),
        }
        let _ = labgate::config::narrowing(&users, &groups, &ci);
    }

    /// Matching: any user, any path, any narrowing — no panic; and `/admin` (in any reading
    /// a router may use) never opens to someone outside acme/admins.
    #[test]
    fn rule_matching_never_panics(
        user in arbitrary_user(),
        path in tricky(),
        narrowing in proptest::collection::vec("[a-z/]{1,8}", 0..3),
        project in unicode(),
    ) {
        let cfg = labgate::config::load_str(
            "[server]\npublic_url='https://a.example'\n[upstream]\nurl='http://127.0.0.1:1'\n[gitlab]\nclient_id='x'\nclient_secret='y'\n\
             [session]\ncookie_secret='ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE='\n\
             [access]\nallowed_groups=['acme']\nblocked_users=['id:7', 'eve']\n\
             [[route]]\npath='^/admin(/|$)'\nallowed_groups=['acme/admins:maintainer']\nallowed_ci_jobs=['acme/deployer']\n",
        ).unwrap();
        let views = PathViews::new(&format!("/{path}"));
        let n = labgate::config::narrowing(&[], &narrowing, &narrowing).ok();
        for who in [
            labgate::access::Subject::Person(&user),
            labgate::access::Subject::CiJob { project_path: &project },
        ] {
            let d = cfg.access.decide(who, None, Some(&views), n.as_ref());
            let _ = cfg.access.decide(who, None, None, n.as_ref());
            let admin = views
                .route_readings()
                .iter()
                .any(|r| r == "/admin" || r.starts_with("/admin/"));
            let admitted_by_route = match who {
                labgate::access::Subject::Person(u) => u
                    .maintainer_of
                    .iter()
                    .any(|g| labgate::access::under_path("acme/admins", g)),
                labgate::access::Subject::CiJob { project_path } => {
                    project_path.eq_ignore_ascii_case("acme/deployer")
                }
            };
            if admin && !admitted_by_route {
                prop_assert!(d != labgate::access::Decision::Allow, "{path:?} opened");
            }
        }
        let _ = labgate::access::under_path(&project, &path);
    }

    /// Forward-auth's original-request reading takes any header bytes without panicking.
    #[test]
    fn original_request_reading_never_panics(
        uri in proptest::collection::vec(any::<u8>(), 0..40),
        url in tricky(),
        method in proptest::collection::vec(any::<u8>(), 0..8),
        suffix in tricky(),
    ) {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("x-original-uri", uri.clone()),
            ("x-forwarded-uri", uri.clone()),
            ("x-original-url", url.clone().into_bytes()),
            ("x-forwarded-method", method.clone()),
        ] {
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                h.append(name, v);
            }
        }
        use labgate::config::FrontProxy::*;
        for source in [Auto, Nginx, IngressNginx, Traefik, Caddy, Envoy] {
            if let Ok(Some(o)) = labgate::forward_auth::original(&h, &http::Method::GET, &format!("/{suffix}"), source, true) {
                let _ = o.views().route_readings();
                let _ = o.redirect_candidate("https://a.example");
            }
        }
    }
}
