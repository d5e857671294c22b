//! The mapping, table by table: inputs as oauth2-proxy reads them, outputs as labgate loads
//! them. The end-to-end answers (real binary, stand-in users) are in tests/it/migrate.rs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use super::map::{go_duration, humane};
use super::options::{Kind, SPECS};
use super::source::{self, Options, Value};
use super::*;

/// The fresh cookie secret the migrations get (random: a typed one is refused on load).
fn fresh() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(crate::generate_cookie_secret)
}

fn migrate_toml(text: &str) -> Migration {
    oauth2_proxy(
        Some(Input {
            name: "oauth2-proxy.cfg",
            text,
        }),
        None,
        fresh(),
    )
    .unwrap()
}

fn migrate_args(text: &str) -> Migration {
    oauth2_proxy(None, Some(Input { name: "args", text }), fresh()).unwrap()
}

fn parsed(m: &Migration) -> toml::Table {
    m.toml.parse().unwrap_or_else(|e| panic!("{e}\n{}", m.toml))
}

fn at<'a>(t: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut parts = path.split('.');
    let mut v = t.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

fn strings(v: Option<&toml::Value>) -> Vec<String> {
    v.and_then(toml::Value::as_array)
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// The comments as one text (wrapped lines joined), to look for phrases in.
fn comments(m: &Migration) -> String {
    m.toml
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The minimum that makes a labgate file of the output: what every test config shares.
const BASE: &str = r#"
provider = "gitlab"
oidc_issuer_url = "https://gitlab.example.com/"
client_id = "app-id"
client_secret = "gloas-not-a-real-secret-0123456789"
redirect_url = "https://wiki.example.com/oauth2/callback"
upstreams = ["http://127.0.0.1:8080/"]
cookie_secret = "b2F1dGgyLXByb3h5LWNvb2tpZS1zZWNyZXQtMzJi"
"#;

fn loads(m: &Migration) -> crate::config::Config {
    validate(&m.toml, std::iter::empty()).unwrap_or_else(|e| panic!("{e}\n{}", m.toml))
}

#[test]
fn a_gitlab_group_config_maps_and_loads() {
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"*\"]\ngitlab_groups = [\"acme\", \"acme/team/\"]\nhttp_address = \":4180\"\n"
    ));
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    let t = parsed(&m);
    assert_eq!(
        at(&t, "gitlab.url").unwrap().as_str(),
        Some("https://gitlab.example.com")
    );
    assert_eq!(
        at(&t, "server.public_url").unwrap().as_str(),
        Some("https://wiki.example.com")
    );
    assert_eq!(
        at(&t, "server.listen").unwrap().as_str(),
        Some("0.0.0.0:4180")
    );
    assert_eq!(
        at(&t, "upstream.url").unwrap().as_str(),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(
        strings(at(&t, "access.allowed_groups")),
        ["acme:member", "acme/team:member"]
    );
    assert_eq!(
        at(&t, "access.require_verified_email").unwrap().as_bool(),
        Some(true)
    );
    assert!(at(&t, "access.allow_any_gitlab_user").is_none());
    assert!(at(&t, "access.allowed_email_domains").is_none());
    let c = loads(&m);
    assert_eq!(
        crate::app::redirect_uri(&c),
        "https://wiki.example.com/oauth2/callback"
    );
}

#[test]
fn the_cookie_secret_is_never_carried_over_and_a_fresh_one_is_used() {
    let old = "b2F1dGgyLXByb3h5LWNvb2tpZS1zZWNyZXQtMzJi";
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"*\"]\ncookie_secret_file = \"/etc/o2p/cookie\"\n"
    ));
    assert!(!m.toml.contains(old));
    assert!(
        !m.toml.contains("/etc/o2p/cookie\"\n"),
        "the file is not reused"
    );
    let t = parsed(&m);
    assert_eq!(
        at(&t, "session.cookie_secret").unwrap().as_str(),
        Some(fresh())
    );
    assert!(at(&t, "session.cookie_secret_file").is_none());
    assert!(comments(&m).contains("labgate keygen"));
}

#[test]
fn projects_take_labgate_roles_with_oauth2_proxy_s_default_level() {
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"example.com\"]\ngitlab_projects = [\"acme/app=30\", \"acme/tool\", \"acme/ops=40\", \"acme/x=10\"]\n"
    ));
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    let t = parsed(&m);
    assert_eq!(
        strings(at(&t, "access.allowed_projects")),
        [
            "acme/app:developer",
            "acme/tool:reporter",
            "acme/ops:maintainer",
            "acme/x:guest"
        ]
    );
    let c = loads(&m);
    assert!(c.gitlab.has_scope("read_api"), "labgate adds read_api");
    for bad in ["acme/app=50", "acme/app=dev", "acme/app=25"] {
        let m = migrate_toml(&format!(
            "{BASE}email_domains = [\"*\"]\ngitlab_projects = [\"{bad}\"]\n"
        ));
        assert_eq!(m.problems.len(), 1, "{bad}: {:?}", m.problems);
        assert!(
            m.problems[0].contains("10, 20, 30 and 40"),
            "{:?}",
            m.problems
        );
    }
}

#[test]
fn email_domains_keep_oauth2_proxy_s_meaning() {
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"Example.com\", \".corp.example\", \"*.eng.example\"]\n"
    ));
    let t = parsed(&m);
    assert_eq!(
        strings(at(&t, "access.allowed_email_domains")),
        ["example.com", "*.corp.example", "*.eng.example"]
    );
    // Domains alone: oauth2-proxy admitted every GitLab user in them.
    assert_eq!(
        at(&t, "access.allow_any_gitlab_user").unwrap().as_bool(),
        Some(true)
    );
    loads(&m);
    // "*": every domain, and no other rule: everyone.
    let m = migrate_toml(&format!("{BASE}email_domains = [\"*\", \"example.com\"]\n"));
    let t = parsed(&m);
    assert!(at(&t, "access.allowed_email_domains").is_none());
    assert_eq!(
        at(&t, "access.allow_any_gitlab_user").unwrap().as_bool(),
        Some(true)
    );
    loads(&m);
    // Unverified emails allowed by oauth2-proxy: no require_verified_email.
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"*\"]\ngitlab_groups=[\"acme\"]\ninsecure_oidc_allow_unverified_email = true\n"
    ));
    assert!(at(&parsed(&m), "access.require_verified_email").is_none());
}

#[test]
fn without_email_domains_no_rule_is_invented() {
    let m = migrate_toml(BASE);
    let t = parsed(&m);
    assert!(at(&t, "access.allow_any_gitlab_user").is_none());
    let err = validate(&m.toml, std::iter::empty()).unwrap_err();
    assert!(err.problems.iter().any(|p| p.key == "access"), "{err}");
    assert!(comments(&m).contains("oauth2-proxy refuses to start without it"));
}

#[test]
fn allowed_groups_is_enforced_though_the_gitlab_provider_ignored_it() {
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"*\"]\nallowed_groups = [\"acme/ops\"]\n"
    ));
    let t = parsed(&m);
    assert_eq!(
        strings(at(&t, "access.allowed_groups")),
        ["acme/ops:member"]
    );
    assert!(comments(&m).contains("did not enforce it"));
    let m = migrate_toml(&format!(
        "{}email_domains = [\"*\"]\nallowed_groups = [\"acme/ops\"]\n",
        BASE.replace("\"gitlab\"", "\"oidc\"")
    ));
    assert!(!comments(&m).contains("did not enforce it"));
    assert!(m.problems.is_empty());
}

#[test]
fn another_provider_cannot_be_migrated() {
    let m = migrate_toml(&format!(
        "{}email_domains = [\"*\"]\n",
        BASE.replace("\"gitlab\"", "\"github\"")
    ));
    assert_eq!(m.problems.len(), 1);
    assert!(m.problems[0].contains("GitLab only"));
}

#[test]
fn skip_auth_routes_become_public_paths() {
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"*\"]\nskip_auth_regex = [\"^/metrics\"]\nskip_auth_routes = [\"GET=^/probe\", \"post=^/hook$\", \"^/static/\", \"GET!=^/private\", \"!=^/x\", \"^/a=b\"]\nskip_auth_preflight = true\n"
    ));
    let t = parsed(&m);
    let public = t["access"]["public"].as_array().unwrap();
    let rows: Vec<(String, Vec<String>)> = public
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_owned(),
                strings(p.get("methods")),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("^/metrics".to_owned(), vec![]),
            ("^/probe".to_owned(), vec!["GET".to_owned()]),
            ("^/hook$".to_owned(), vec!["POST".to_owned()]),
            ("^/static/".to_owned(), vec![]),
            ("^/".to_owned(), vec!["OPTIONS".to_owned()]),
        ]
    );
    let notes = comments(&m);
    assert!(
        notes.contains("\"GET!=^/private\": \"all paths except\""),
        "{notes}"
    );
    assert!(notes.contains("\"!=^/x\": \"all paths except\""), "{notes}");
    assert!(
        notes.contains("\"^/a=b\": oauth2-proxy read \"^/A\" as the method"),
        "{notes}"
    );
    loads(&m);
}

#[test]
fn server_cookie_and_header_settings() {
    let base = BASE.replace("/oauth2/callback", "/auth/callback");
    let m = migrate_toml(&format!(
        r#"{base}email_domains = ["*"]
proxy_prefix = "/auth/"
reverse_proxy = true
trusted_proxy_ips = ["10.0.0.0/8"]
whitelist_domains = ["*.example.com", "docs.example.org:8443", ".example.com", "ci.example.org:*"]
metrics_address = "0.0.0.0:9100"
skip_provider_button = true
footer = "Acme IT"
cookie_name = "__Host-wiki"
cookie_domains = [".example.com", ".wiki.example.com", ".other.org"]
cookie_expire = "12h"
cookie_secure = false
cookie_samesite = "strict"
upstream_timeout = "1m30s"
pass_access_token = true
pass_authorization_header = true
set_xauthrequest = true
"#
    ));
    let t = parsed(&m);
    let get = |k: &str| {
        at(&t, k)
            .unwrap_or_else(|| panic!("{k} in\n{}", m.toml))
            .clone()
    };
    assert_eq!(get("server.prefix").as_str(), Some("/auth"));
    assert_eq!(
        get("server.public_url").as_str(),
        Some("https://wiki.example.com")
    );
    assert_eq!(
        strings(Some(&get("server.trusted_proxies"))),
        ["10.0.0.0/8"]
    );
    assert_eq!(
        strings(Some(&get("server.allowed_redirect_domains"))),
        [".example.com", "docs.example.org:8443", "ci.example.org"]
    );
    assert_eq!(get("server.metrics_listen").as_str(), Some("0.0.0.0:9100"));
    assert_eq!(get("server.skip_sign_in_page").as_bool(), Some(true));
    assert_eq!(get("server.footer_text").as_str(), Some("Acme IT"));
    // labgate adds the prefix itself when the browser accepts it (not here: no Secure).
    assert_eq!(get("session.cookie_name").as_str(), Some("wiki"));
    // The domain oauth2-proxy gave the session cookie on public_url's host: the longest
    // that is a plain suffix of "wiki.example.com" (".wiki.example.com" is not).
    assert_eq!(get("session.cookie_domain").as_str(), Some(".example.com"));
    assert_eq!(get("session.lifetime").as_str(), Some("12h"));
    assert_eq!(get("session.cookie_secure").as_bool(), Some(false));
    assert_eq!(get("session.cookie_samesite").as_str(), Some("strict"));
    assert_eq!(get("upstream.timeout").as_str(), Some("90s"));
    assert_eq!(get("identity.pass_access_token").as_bool(), Some(true));
    assert_eq!(get("identity.pass_authorization").as_bool(), Some(true));
    let c = loads(&m);
    assert_eq!(
        crate::app::redirect_uri(&c),
        "https://wiki.example.com/auth/callback"
    );
    assert!(comments(&m)
        .contains("\"ci.example.org:*\" allowed any port (:*), which labgate cannot say"));
}

#[test]
fn a_redirect_url_elsewhere_names_the_new_redirect_uri() {
    let m = migrate_toml(&format!(
        "{}email_domains = [\"*\"]\n",
        BASE.replace("/oauth2/callback", "/sso/oauth2/callback")
    ));
    assert!(comments(&m)
        .contains("labgate's Redirect URI is https://wiki.example.com/oauth2/callback: change it"));
}

#[test]
fn tls_listens_on_https_address() {
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"*\"]\nhttp_address = \"127.0.0.1:4180\"\ntls_cert_file = \"/tls/crt\"\ntls_key_file = \"/tls/key\"\n"
    ));
    let t = parsed(&m);
    assert_eq!(
        at(&t, "server.listen").unwrap().as_str(),
        Some("0.0.0.0:443")
    );
    assert_eq!(
        at(&t, "server.tls_cert_file").unwrap().as_str(),
        Some("/tls/crt")
    );
    assert!(comments(&m).contains("does not listen there when tls_cert_file is set"));
}

#[test]
fn redis_targets() {
    let redis = |extra: &str| {
        let m = migrate_toml(&format!(
            "{BASE}email_domains = [\"*\"]\nsession_store_type = \"redis\"\n{extra}"
        ));
        let t = parsed(&m);
        (m, t)
    };
    let (m, t) = redis("redis_connection_url = \"redis://r:6379/0\"\nredis_username = \"o2p\"\nredis_password = \"pw-secret-1\"\n");
    assert_eq!(at(&t, "session.store").unwrap().as_str(), Some("redis"));
    assert_eq!(
        at(&t, "session.redis_url").unwrap().as_str(),
        Some("redis://o2p@r:6379/0")
    );
    assert_eq!(
        at(&t, "session.redis_password").unwrap().as_str(),
        Some("pw-secret-1")
    );
    assert!(!comments(&m).contains("pw-secret-1"));
    loads(&m);
    let (m, t) = redis("redis_use_sentinel = true\nredis_sentinel_master_name = \"mymaster\"\nredis_sentinel_connection_urls = [\"redis://s1:26379\", \"redis://s2:26379\"]\nredis_sentinel_password = \"sentinel-pw\"\nredis_connection_url = \"redis://ignored:6379\"\n");
    assert_eq!(
        at(&t, "session.redis_sentinel_master").unwrap().as_str(),
        Some("mymaster")
    );
    assert_eq!(
        strings(at(&t, "session.redis_sentinel_nodes")),
        [
            "redis://:sentinel-pw@s1:26379",
            "redis://:sentinel-pw@s2:26379"
        ]
    );
    assert!(at(&t, "session.redis_url").is_none());
    assert!(!comments(&m).contains("sentinel-pw"));
    loads(&m);
    let (m, t) = redis("redis_use_cluster = true\nredis_cluster_connection_urls = [\"redis://c1:6379\", \"redis://c2:6379\"]\n");
    assert_eq!(
        strings(at(&t, "session.redis_cluster_nodes")),
        ["redis://c1:6379", "redis://c2:6379"]
    );
    loads(&m);
    // Redis settings without the redis store: oauth2-proxy did not use them.
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"*\"]\nredis_connection_url = \"redis://r:6379\"\n"
    ));
    assert!(at(&parsed(&m), "session.redis_url").is_none());
    assert!(comments(&m).contains("session_store_type is not redis"));
}

#[test]
fn upstream_forms() {
    let up = |list: &str| {
        let m = migrate_toml(&format!(
            "{}email_domains = [\"*\"]\nupstreams = {list}\n",
            BASE.replace("upstreams = [\"http://127.0.0.1:8080/\"]\n", "")
        ));
        (
            at(&parsed(&m), "upstream.url").and_then(|v| v.as_str().map(str::to_owned)),
            comments(&m),
        )
    };
    assert_eq!(
        up("[\"unix:///run/app.sock\"]").0.as_deref(),
        Some("unix:/run/app.sock")
    );
    assert_eq!(
        up("[\"https://app.internal\"]").0.as_deref(),
        Some("https://app.internal")
    );
    // The upstream at "/" is kept; the others are listed with what to do.
    let (url, notes) = up("[\"http://a:1/api/\", \"http://b:2/\", \"file:///srv/www#/static/\"]");
    assert_eq!(url.as_deref(), Some("http://b:2"));
    assert!(
        notes.contains("entry \"http://a:1/api/\": oauth2-proxy sent paths under /api/ to http://a:1; labgate sends every path of a host to one upstream, so those requests now reach http://b:2"),
        "{notes}"
    );
    assert!(
        notes.contains("entry \"file:///srv/www#/static/\": oauth2-proxy served the files of /srv/www at paths under /static/"),
        "{notes}"
    );
    // Without one at "/", the first: oauth2-proxy sent it only its own paths.
    let (url, notes) = up("[\"http://a:1/api/\", \"http://c:3/exact\"]");
    assert_eq!(url.as_deref(), Some("http://a:1"));
    assert!(
        notes.contains("oauth2-proxy sent it paths under /api/ (and answered 404 elsewhere)"),
        "{notes}"
    );
    assert!(
        notes.contains("oauth2-proxy sent the path /exact only to http://c:3"),
        "{notes}"
    );
    let (url, notes) = up("[\"static://202\"]");
    assert_eq!(url.as_deref(), Some("http://127.0.0.1:9"));
    assert!(notes.contains("forward-auth only"));
}

#[test]
fn every_oauth2_proxy_option_is_accounted_for_in_a_comment() {
    let mut text = String::from("provider = \"gitlab\"\nnot_an_option = \"hidden-value\"\n");
    for s in SPECS.iter().filter(|s| s.cfg != "provider") {
        let v = match s.kind {
            Kind::Text => "\"x\"".to_owned(),
            Kind::Bool => "true".to_owned(),
            Kind::List => "[\"x\"]".to_owned(),
            Kind::Duration => "\"1h\"".to_owned(),
            Kind::Int => "1".to_owned(),
        };
        text.push_str(&format!("{} = {v}\n", s.cfg));
    }
    let m = migrate_toml(&text);
    let notes = comments(&m);
    for s in SPECS {
        assert!(
            notes.contains(&format!("{} =", s.cfg)) || notes.contains(&format!("{} entr", s.cfg)),
            "{} is not accounted for in\n{}",
            s.cfg,
            m.toml
        );
    }
    assert!(notes.contains("not_an_option = <not shown>: not an oauth2-proxy option"));
    assert!(!m.toml.contains("hidden-value"));
    parsed(&m);
    if std::env::var_os("MIGRATE_SHOW").is_some() {
        println!("{}", m.toml);
    }
}

#[test]
fn the_migration_page_maps_every_oauth2_proxy_option() {
    let page = include_str!("../../docs/migration.md");
    let missing: Vec<&str> = SPECS
        .iter()
        .map(|s| s.cfg)
        .filter(|cfg| !page.contains(&format!("`{cfg}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/migration.md does not map {missing:?}"
    );
}

#[test]
fn secrets_never_reach_a_comment() {
    let mut text = String::from(BASE);
    text.push_str("email_domains = [\"*\"]\nsession_store_type = \"redis\"\nredis_use_sentinel = true\nredis_sentinel_master_name = \"m\"\n");
    let mut markers = Vec::new();
    for (i, s) in SPECS.iter().filter(|s| s.secret).enumerate() {
        let marker = format!("redis://:MARKER{i}x@h:1");
        let v = if s.kind == Kind::List {
            format!("[\"{marker}\"]")
        } else {
            format!("\"{marker}\"")
        };
        text = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{} =", s.cfg)))
            .collect::<Vec<_>>()
            .join("\n");
        text.push_str(&format!("\n{} = {v}\n", s.cfg));
        markers.push(format!("MARKER{i}x"));
    }
    text.push_str("some_api_token = \"MARKERunknown\"\n");
    markers.push("MARKERunknown".into());
    let m = migrate_toml(&text);
    let notes = comments(&m);
    for mk in &markers {
        assert!(!notes.contains(mk.as_str()), "{mk} in a comment:\n{notes}");
    }
    // The oauth2-proxy cookie secret is nowhere, not even as a value.
    let cookie = SPECS
        .iter()
        .filter(|s| s.secret)
        .position(|s| s.cfg == "cookie_secret")
        .unwrap();
    assert!(!m.toml.contains(&format!("MARKER{cookie}x")));
}

#[test]
fn flags_are_read_as_pflag_reads_them() {
    let (settings, remarks) = source::from_args(
        "oauth2-proxy \\\n  --provider=gitlab --client-id abc \\\n  -cookie-secure=false\n  --reverse-proxy\n  --email-domain=a.com,b.com --email-domain \"c.com\"\n  --skip-auth-route='GET=^/x y$'   # a comment\n  --upstream=http://u:1/ // another\n  --config=/etc/o2p.cfg\n  stray\n  --unknown-thing v\n",
        "args",
    )
    .unwrap();
    let mut o = Options::default();
    o.add(settings);
    let v = |k: &str| o.get(k).map(|s| s.value.clone());
    assert_eq!(v("provider"), Some(Value::Text("gitlab".into())));
    assert_eq!(v("client_id"), Some(Value::Text("abc".into())));
    assert_eq!(v("cookie_secure"), Some(Value::Bool(false)));
    assert_eq!(v("reverse_proxy"), Some(Value::Bool(true)));
    assert_eq!(
        v("email_domains"),
        Some(Value::List(vec![
            "a.com".into(),
            "b.com".into(),
            "c.com".into()
        ]))
    );
    assert_eq!(
        v("skip_auth_routes"),
        Some(Value::List(vec!["GET=^/x y$".into()]))
    );
    assert_eq!(
        v("upstreams"),
        Some(Value::List(vec!["http://u:1/".into()]))
    );
    assert_eq!(v("unknown-thing"), Some(Value::Text("v".into())));
    let r: Vec<&str> = remarks.iter().map(|r| r.0.as_str()).collect();
    assert!(
        r.iter().any(|r| r.starts_with("--config=/etc/o2p.cfg")),
        "{r:?}"
    );
    assert!(
        r.iter().any(|r| r.starts_with("\"stray\" is not a flag")),
        "{r:?}"
    );
}

#[test]
fn a_yaml_args_list_and_a_deployment_are_read() {
    let list = "- --provider=gitlab\n- --gitlab-group\n- acme\n- \"--email-domain=*\"\n";
    let (settings, _) = source::from_args(list, "args.yaml").unwrap();
    let mut o = Options::default();
    o.add(settings);
    assert_eq!(
        o.get("gitlab_groups").unwrap().value,
        Value::List(vec!["acme".into()])
    );
    assert_eq!(
        o.get("email_domains").unwrap().value,
        Value::List(vec!["*".into()])
    );

    let deployment = r#"
apiVersion: v1
kind: Service
metadata: {name: oauth2-proxy}
---
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: app
          image: example/app:1
          args: ["--port=8080"]
        - name: proxy
          image: quay.io/oauth2-proxy/oauth2-proxy:v7.6.0
          command: ["/bin/oauth2-proxy", "--provider=gitlab"]
          args:
            - --client-secret=$(CLIENT_SECRET)
            - --cookie-secret=$(COOKIE)
          env:
            - name: CLIENT_SECRET
              valueFrom: {secretKeyRef: {name: gitlab-app, key: secret}}
            - name: COOKIE
              value: literal-cookie
            - name: OAUTH2_PROXY_EMAIL_DOMAINS
              value: "example.com,example.org"
            - name: HTTP_PROXY
              value: http://proxy:3128
"#;
    let (settings, remarks) = source::from_args(deployment, "deploy.yaml").unwrap();
    let mut o = Options::default();
    o.add(settings);
    assert_eq!(
        o.get("provider").unwrap().value,
        Value::Text("gitlab".into())
    );
    assert_eq!(
        o.get("client_secret").unwrap().value,
        Value::External("Secret gitlab-app key secret".into())
    );
    assert_eq!(
        o.get("cookie_secret").unwrap().value,
        Value::Text("literal-cookie".into())
    );
    assert_eq!(
        o.get("email_domains").unwrap().value,
        Value::List(vec!["example.com".into(), "example.org".into()])
    );
    assert!(remarks.iter().any(|r| r.0.contains("HTTP_PROXY")));
    assert!(
        o.get("port").is_none(),
        "the other container's args are not read"
    );

    let m = migrate_args(deployment);
    let notes = comments(&m);
    assert!(
        notes.contains(
            "LABGATE__GITLAB__CLIENT_SECRET (env valueFrom the same Secret gitlab-app key secret), in gitlab.client_secret_file (that key mounted as a file) or in gitlab.client_secret"
        ),
        "{notes}"
    );
    // The output cannot hold it: said on stderr too.
    assert_eq!(
        m.warnings,
        ["--client-secret: oauth2-proxy read it from Secret gitlab-app key secret, which this input only names: labgate needs gitlab.client_secret (LABGATE__GITLAB__CLIENT_SECRET) from the same place"]
    );
    assert!(!m.toml.contains("literal-cookie"));
}

#[test]
fn yaml_without_an_oauth2_proxy_container_is_an_error() {
    let two =
        "spec:\n  containers:\n    - name: a\n      args: [x]\n    - name: b\n      args: [y]\n";
    let e = oauth2_proxy(
        None,
        Some(Input {
            name: "d.yaml",
            text: two,
        }),
        fresh(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("none runs an oauth2-proxy image"),
        "{e}"
    );
    let bad = oauth2_proxy(
        Some(Input {
            name: "o.cfg",
            text: "a = = b",
        }),
        None,
        fresh(),
    )
    .unwrap_err();
    assert!(
        bad.to_string().starts_with("o.cfg: not valid TOML"),
        "{bad}"
    );
}

#[test]
fn flags_override_the_config_file_and_the_overridden_value_is_listed() {
    let m = oauth2_proxy(
        Some(Input {
            name: "o.cfg",
            text: &format!("{BASE}email_domains = [\"*\"]\ngitlab_groups = [\"old\"]\n"),
        }),
        Some(Input {
            name: "args",
            text: "--gitlab-group=new\n",
        }),
        fresh(),
    )
    .unwrap();
    let t = parsed(&m);
    assert_eq!(strings(at(&t, "access.allowed_groups")), ["new:member"]);
    assert!(comments(&m).contains("gitlab_groups = [\"old\"]: overridden by --gitlab-group"));
}

#[test]
fn old_spellings_are_read() {
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"*\"]\ngitlab_group = \"acme\"\ncookie_domain = \".example.com\"\n"
    ));
    let t = parsed(&m);
    assert_eq!(strings(at(&t, "access.allowed_groups")), ["acme:member"]);
    assert_eq!(
        at(&t, "session.cookie_domain").unwrap().as_str(),
        Some(".example.com")
    );
    // Read as v5 did, and said: v6.0.0 and later refuse these keys.
    let notes = comments(&m);
    assert!(notes.contains("gitlab_group = [\"acme\"]: a config key oauth2-proxy v5.1.1 and earlier read; v6.0.0 renamed it gitlab_groups, and later versions refuse the old key"), "{notes}");
    assert!(notes.contains("cookie_domain = [\".example.com\"]: a config key oauth2-proxy v5.1.1 and earlier read; v6.0.0 renamed it cookie_domains"), "{notes}");
}

#[test]
fn go_durations() {
    for (go, d) in [
        ("168h0m0s", 168 * 3600),
        ("1h30m", 5400),
        ("15m", 900),
        ("0", 0),
        ("1.5h", 5400),
    ] {
        assert_eq!(
            go_duration(go),
            Some(std::time::Duration::from_secs(d)),
            "{go}"
        );
    }
    assert_eq!(
        go_duration("300ms"),
        Some(std::time::Duration::from_millis(300))
    );
    for bad in ["", "h", "5x", "-1h", "1d"] {
        assert_eq!(go_duration(bad), None, "{bad}");
    }
    assert_eq!(humane(std::time::Duration::from_secs(7 * 86_400)), "7d");
    assert_eq!(humane(std::time::Duration::from_secs(5400)), "90m");
    assert_eq!(humane(std::time::Duration::from_millis(1500)), "1500ms");
    for d in ["7d", "90m", "1500ms", "12h", "45s"] {
        assert!(
            crate::config::parse_duration(d).is_ok(),
            "{d} loads in labgate"
        );
    }
}

#[test]
fn oauth2_proxy_keys_in_a_labgate_file_point_to_labgate_s_spelling() {
    let e = crate::config::load_str("[access]\nemail_domains = [\"*\"]\n").unwrap_err();
    assert_eq!(e.problems[0].key, "access.email_domains");
    assert!(
        e.problems[0]
            .message
            .contains("access.allowed_email_domains"),
        "{e}"
    );
    assert!(
        e.problems[0]
            .message
            .contains("allow_any_gitlab_user = true"),
        "{e}"
    );
    let e = crate::config::load_str(BASE).unwrap_err();
    assert!(
        e.problems[0]
            .message
            .contains("labgate migrate oauth2-proxy --config FILE"),
        "{e}"
    );
}

#[test]
fn cookie_and_redirect_domains_are_read_as_oauth2_proxy_s_code_reads_them() {
    use super::map::domains::{covers, o2p_cookie_domain, parent_of_all, redirects};
    let list = |l: &[&str]| l.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>();
    // GetCookieDomain: the longest plain string suffix of the host (with its port), else
    // the shortest domain.
    let d = list(&[".example.com", ".wiki.example.com", "wiki.example.com"]);
    for (host, want) in [
        ("wiki.example.com", "wiki.example.com"),
        ("a.wiki.example.com", ".wiki.example.com"),
        ("example.com", "wiki.example.com"),
        ("wiki.example.com:8443", ".example.com"),
    ] {
        let want = if host == "example.com" || host.contains(':') {
            // No suffix match: the shortest.
            ".example.com"
        } else {
            want
        };
        assert_eq!(o2p_cookie_domain(&d, host), Some(want), "{host}");
    }
    assert_eq!(o2p_cookie_domain(&[], "x"), None);
    assert!(covers(".example.com", "example.com"));
    assert!(covers("example.com", "a.b.example.com"));
    assert!(!covers(".example.com", "badexample.com"));
    assert!(!covers(".wiki.example.com", "example.com"));
    assert_eq!(
        parent_of_all(&list(&[".a.example.com", "example.com", ".b.example.com"])),
        Some("example.com")
    );
    assert_eq!(
        parent_of_all(&list(&[".example.com", ".example.org"])),
        None
    );
    // IsEndpointAllowed: "*.d" and ".d" are d and below; ":*" any port; no port = none.
    let r = redirects(&list(&[
        ".Example.com",
        "*.corp.example",
        "docs.example.org:8443",
        "ci.example.org:*",
        "*",
        "https://x.example.com",
        "[::1]:8080",
        "[::1]",
        "a.example.com:99999",
        "plain.example.net:",
        ".example.com",
    ]));
    assert_eq!(
        r.entries,
        [
            ".example.com",
            ".corp.example",
            "docs.example.org:8443",
            "ci.example.org",
            "plain.example.net"
        ]
    );
    assert_eq!(r.any_port, ["ci.example.org:*"]);
    let dropped: Vec<&str> = r.dropped.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        dropped,
        [
            "*",
            "https://x.example.com",
            "[::1]:8080",
            "[::1]",
            "a.example.com:99999"
        ]
    );
}

#[test]
fn one_cookie_domain_is_the_one_oauth2_proxy_set_at_sign_in() {
    let with = |redirect: Option<&str>, domains: &str| {
        let base = match redirect {
            Some(r) => BASE.replace("https://wiki.example.com/oauth2/callback", r),
            None => BASE
                .lines()
                .filter(|l| !l.starts_with("redirect_url"))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        let m = migrate_toml(&format!(
            "{base}\nemail_domains = [\"*\"]\ncookie_domains = {domains}\n"
        ));
        let d =
            at(&parsed(&m), "session.cookie_domain").and_then(|v| v.as_str().map(str::to_owned));
        (d, comments(&m))
    };
    let (d, notes) = with(None, "[\".example.com\"]");
    assert_eq!(d.as_deref(), Some(".example.com"));
    assert!(
        notes.contains("cookie_domains = [\".example.com\"]: the same"),
        "{notes}"
    );
    // Several: what oauth2-proxy gave the session cookie on redirect_url's host, and the
    // domain that covers them all is named.
    let (d, notes) = with(None, "[\"wiki.example.com\", \"example.com\"]")
        .0
        .map(|_| {
            with(
                Some("https://wiki.example.com/oauth2/callback"),
                "[\"wiki.example.com\", \"example.com\"]",
            )
        })
        .unwrap();
    assert_eq!(d.as_deref(), Some("wiki.example.com"));
    assert!(
        notes.contains("\"example.com\" covers all of them: set cookie_domain = \"example.com\" if hosts outside \"wiki.example.com\""),
        "{notes}"
    );
    // With a port in the host nothing is a suffix: oauth2-proxy took the shortest, which
    // browsers refuse here; the one that covers the host is kept.
    let (d, notes) = with(
        Some("https://wiki.example.com:8443/oauth2/callback"),
        "[\".example.com\", \".ex.org\"]",
    );
    assert_eq!(d.as_deref(), Some(".example.com"));
    assert!(
        notes.contains("which browsers refuse for that host"),
        "{notes}"
    );
    // No redirect_url: the one that covers the others, else the shortest with a warning
    // in the comment.
    let (d, _) = with(None, "[\".a.example.com\", \".example.com\"]");
    assert_eq!(d.as_deref(), Some(".example.com"));
    let (d, notes) = with(None, "[\".example.com\", \".ex.org\"]");
    assert_eq!(d.as_deref(), Some(".ex.org"));
    assert!(notes.contains("run another labgate for them"), "{notes}");
    // One domain that does not cover public_url's host is said to be useless.
    let (d, notes) = with(
        Some("https://wiki.example.com/oauth2/callback"),
        "[\".other.org\"]",
    );
    assert_eq!(d.as_deref(), Some(".other.org"));
    assert!(notes.contains("browsers refuse such a cookie"), "{notes}");
}

#[test]
fn whitelist_domains_say_where_labgate_differs() {
    let m = migrate_toml(&format!(
        "{BASE}email_domains = [\"*\"]\nwhitelist_domains = [\"*.example.com\", \"ci.example.org:*\", \"*\", \"[::1]:8080\", \"10.0.0.7:8443\", \"intranet\"]\n"
    ));
    let t = parsed(&m);
    assert_eq!(
        strings(at(&t, "server.allowed_redirect_domains")),
        [".example.com", "ci.example.org", "10.0.0.7:8443"]
    );
    let notes = comments(&m);
    for want in [
        "\".example.com\" = the domain and its subdomains, as oauth2-proxy read both",
        "labgate sends people to https only",
        "\"ci.example.org:*\" allowed any port (:*), which labgate cannot say",
        "entry \"*\": not a host name: oauth2-proxy matched no redirect with it",
        "entry \"intranet\": labgate's allowed_redirect_domains takes names with a dot",
    ] {
        assert!(notes.contains(want), "{want} in {notes}");
    }
    loads(&m);
}

#[test]
fn upstreams_routed_by_path_are_listed_never_merged_silently() {
    let up = |list: &str| {
        migrate_toml(&format!(
            "{}email_domains = [\"*\"]\nupstreams = {list}\n",
            BASE.replace("upstreams = [\"http://127.0.0.1:8080/\"]\n", "")
        ))
    };
    let m = up("[\"http://app:8080/\", \"http://admin:9000/admin/\"]");
    assert_eq!(
        at(&parsed(&m), "upstream.url").unwrap().as_str(),
        Some("http://app:8080")
    );
    let notes = comments(&m);
    assert!(
        notes.contains("oauth2-proxy sent paths under /admin/ to http://admin:9000; labgate sends every path of a host to one upstream, so those requests now reach http://app:8080: route /admin/ to http://admin:9000 in the front proxy and protect that route with labgate's forward-auth (/oauth2/auth)"),
        "{notes}"
    );
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(m.warnings[0].contains("\"http://admin:9000/admin/\""));
    assert!(m.problems.is_empty());
    loads(&m);
    // Two at one path: oauth2-proxy itself refuses that.
    let m = up("[\"http://a:1/\", \"http://b:2\"]");
    assert!(comments(&m).contains("oauth2-proxy refuses to start with two upstreams at one path"));
    // file:///dev/null is forward-auth only, like static://.
    let m = up("[\"file:///dev/null\"]");
    assert_eq!(
        at(&parsed(&m), "upstream.url").unwrap().as_str(),
        Some("http://127.0.0.1:9")
    );
    assert!(m.warnings.is_empty());
    let m = up("[\"ftp://x/\"]");
    assert!(comments(&m).contains("not an upstream oauth2-proxy accepts"));
}

/// Two oauth2-proxy Deployments, one per app (`kubectl get deploy -o yaml` gives such a
/// List); `extra` are more args of each, by app.
fn two_apps(wiki: &[&str], grafana: &[&str]) -> String {
    let deployment = |name: &str, host: &str, upstream: &str, extra: &[&str]| {
        let mut args = vec![
            "--provider=gitlab".to_owned(),
            "--oidc-issuer-url=https://gitlab.example.com".into(),
            "--client-id=app-id".into(),
            "--client-secret=gloas-not-a-real-secret-0123456789".into(),
            format!("--redirect-url=https://{host}/oauth2/callback"),
            "--http-address=0.0.0.0:4180".into(),
            format!("--upstream={upstream}"),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<String> = args
            .iter()
            .map(|a| format!("            - {a:?}\n"))
            .collect();
        format!(
            "  - apiVersion: apps/v1\n    kind: Deployment\n    metadata: {{name: {name}}}\n    spec:\n      template:\n        spec:\n          containers:\n          - name: oauth2-proxy\n            image: quay.io/oauth2-proxy/oauth2-proxy:v7.6.0\n            args:\n{}",
            args.concat()
        )
    };
    format!(
        "apiVersion: v1\nkind: List\nitems:\n{}{}",
        deployment(
            "wiki-proxy",
            "wiki.example.com",
            "http://wiki.apps:8080/",
            wiki
        ),
        deployment(
            "grafana-proxy",
            "grafana.example.com",
            "http://grafana.apps:3000",
            grafana
        )
    )
}

fn upstream_rows(t: &toml::Table) -> Vec<(Vec<String>, String)> {
    t.get("upstream")
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .map(|u| {
                    (
                        strings(u.get("hosts")),
                        u["url"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn one_oauth2_proxy_per_host_becomes_one_upstream_per_host() {
    let common = [
        "--email-domain=*",
        "--gitlab-group=acme",
        "--cookie-domain=.example.com",
    ];
    let mut wiki = common.to_vec();
    wiki.extend(["--pass-access-token", "--whitelist-domain=.example.com"]);
    let mut grafana = common.to_vec();
    grafana.extend([
        "--skip-auth-route=GET=^/api/health$",
        "--pass-access-token=false",
    ]);
    let m = migrate_args(&two_apps(&wiki, &grafana));
    assert!(m.problems.is_empty(), "{:?}\n{}", m.problems, m.toml);
    let t = parsed(&m);
    assert!(
        at(&t, "upstream.url").is_none(),
        "no [upstream] for every host"
    );
    assert_eq!(
        upstream_rows(&t),
        [
            (
                vec!["wiki.example.com".to_owned()],
                "http://wiki.apps:8080".to_owned()
            ),
            (
                vec!["grafana.example.com".to_owned()],
                "http://grafana.apps:3000".to_owned()
            ),
        ]
    );
    assert_eq!(
        at(&t, "server.public_url").unwrap().as_str(),
        Some("https://wiki.example.com")
    );
    // One sign-in for both: the cookie domain both used covers both hosts.
    assert_eq!(
        at(&t, "session.cookie_domain").unwrap().as_str(),
        Some(".example.com")
    );
    // The rules agree: one [access], no routes.
    assert_eq!(strings(at(&t, "access.allowed_groups")), ["acme:member"]);
    assert!(t.get("route").is_none());
    // The token only to the app whose oauth2-proxy passed it.
    assert_eq!(
        strings(at(&t, "identity.pass_access_token")),
        ["wiki.example.com"]
    );
    let public = t["access"]["public"].as_array().unwrap();
    assert_eq!(public.len(), 1);
    assert_eq!(strings(public[0].get("hosts")), ["grafana.example.com"]);
    assert_eq!(
        strings(at(&t, "server.allowed_redirect_domains")),
        [".example.com"]
    );
    let notes = comments(&m);
    assert!(notes.contains("wiki-proxy: --redirect-url=https://wiki.example.com/oauth2/callback: the host this oauth2-proxy served"), "{notes}");
    assert!(
        notes.contains("grafana-proxy: --skip-auth-route entry \"GET=^/api/health$\""),
        "{notes}"
    );
    assert!(m.toml.contains("wiki-proxy, grafana-proxy"), "{}", m.toml);
    let c = loads(&m);
    assert_eq!(c.upstreams.len(), 2);
}

/// oauth2-proxy's answer for a person on the app of `host` (the model of tests/it/migrate.rs:
/// verified email, email domain, then gitlab_groups exactly in the groups claim).
fn o2p_admits(groups: &[&str], domains: &[&str], user: &crate::access::User) -> bool {
    let email = user.email.clone().unwrap_or_default();
    let domain = email.rsplit('@').next().unwrap_or("");
    user.email_verified
        && domains.iter().any(|d| *d == "*" || domain == *d)
        && (groups.is_empty() || groups.iter().any(|g| user.groups.iter().any(|c| c == g)))
}

#[test]
fn apps_that_admit_different_people_get_a_route_per_host_with_the_same_answers() {
    let wiki = ["--email-domain=*", "--gitlab-group=acme"];
    let grafana = [
        "--email-domain=example.com",
        "--gitlab-group=acme/admins",
        "--gitlab-group=ops",
    ];
    let m = migrate_args(&two_apps(&wiki, &grafana));
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    let t = parsed(&m);
    assert_eq!(
        strings(at(&t, "access.allowed_groups")),
        ["acme:member", "acme/admins:member", "ops:member"]
    );
    assert!(at(&t, "access.allowed_email_domains").is_none());
    let routes = t["route"].as_array().unwrap();
    assert_eq!(routes.len(), 2, "{}", m.toml);
    assert_eq!(strings(routes[1].get("hosts")), ["grafana.example.com"]);
    assert_eq!(
        strings(routes[1].get("allowed_email_domains")),
        ["example.com"]
    );
    let c = loads(&m);
    let user = |name: &str, email: &str, groups: &[&str]| crate::access::User {
        id: 1,
        username: name.into(),
        email: Some(email.into()),
        email_verified: true,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        state: Some("active".into()),
        ..Default::default()
    };
    let people = [
        user("a", "a@example.com", &["acme"]),
        user("b", "b@example.com", &["acme", "acme/admins"]),
        user("c", "c@other.org", &["acme/admins"]),
        user("d", "d@example.com", &["ops"]),
        user("e", "e@example.com", &["acme/team"]),
    ];
    let path = crate::access::PathViews::new("/dashboards");
    for u in &people {
        for (host, groups, domains) in [
            ("wiki.example.com", &["acme"][..], &["*"][..]),
            (
                "grafana.example.com",
                &["acme/admins", "ops"][..],
                &["example.com"][..],
            ),
        ] {
            let got = c.access.decide(
                crate::access::Subject::Person(u),
                Some(host),
                Some(&path),
                None,
            ) == crate::access::Decision::Allow;
            assert_eq!(
                got,
                o2p_admits(groups, domains, u),
                "{} on {host}",
                u.username
            );
        }
    }
}

#[test]
fn apps_without_a_shared_cookie_domain_keep_a_session_per_host() {
    let m = migrate_args(&two_apps(&["--email-domain=*"], &["--email-domain=*"]));
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    let t = parsed(&m);
    assert!(at(&t, "session.cookie_domain").is_none());
    assert_eq!(
        at(&t, "access.allow_any_gitlab_user").unwrap().as_bool(),
        Some(true)
    );
    assert!(
        m.warnings.iter().any(|w| w.contains(
            "https://grafana.example.com/oauth2/callback (grafana-proxy, grafana.example.com: its redirect_url, unchanged)"
        )),
        "{:?}",
        m.warnings
    );
    loads(&m);
    // A cookie domain only one of them used is not taken for both.
    let m = migrate_args(&two_apps(
        &["--email-domain=*", "--cookie-domain=.example.com"],
        &["--email-domain=*"],
    ));
    assert!(at(&parsed(&m), "session.cookie_domain").is_none());
}

#[test]
fn merged_apps_must_agree_on_what_labgate_has_once() {
    let m = migrate_args(&two_apps(
        &[
            "--email-domain=*",
            "--cookie-expire=12h",
            "--client-id=other-app",
            "--cookie-secure=true",
        ],
        &["--email-domain=*"],
    ));
    // The first app's client-id flag comes last, so it wins in that app.
    assert_eq!(m.problems.len(), 1, "{:?}", m.problems);
    assert!(
        m.problems[0].starts_with("the oauth2-proxy instances disagree on cookie_expire (wiki-proxy: --cookie-expire=12h; grafana-proxy: not set)"),
        "{:?}",
        m.problems
    );
    let notes = comments(&m);
    assert!(
        notes.contains("grafana-proxy: --client-id=app-id: labgate signs in with one GitLab application, wiki-proxy's"),
        "{notes}"
    );
    assert_eq!(
        at(&parsed(&m), "gitlab.client_id").unwrap().as_str(),
        Some("other-app")
    );
    // Hosts: each app needs its own, and must have one.
    let same_host = two_apps(&["--email-domain=*"], &["--email-domain=*"])
        .replace("grafana.example.com", "wiki.example.com");
    let m = migrate_args(&same_host);
    assert!(
        m.problems
            .iter()
            .any(|p| p.contains("wiki-proxy and grafana-proxy both serve wiki.example.com")),
        "{:?}",
        m.problems
    );
    let no_host = two_apps(&["--email-domain=*"], &["--email-domain=*"]).replace(
        "            - \"--redirect-url=https://grafana.example.com/oauth2/callback\"\n",
        "",
    );
    let m = migrate_args(&no_host);
    assert!(
        m.problems
            .iter()
            .any(|p| p.starts_with("grafana-proxy: no redirect_url naming its host")),
        "{:?}",
        m.problems
    );
    // A config file cannot be told apart between several instances.
    let e = oauth2_proxy(
        Some(Input {
            name: "o.cfg",
            text: BASE,
        }),
        Some(Input {
            name: "list.yaml",
            text: &two_apps(&[], &[]),
        }),
        fresh(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("several oauth2-proxy containers"),
        "{e}"
    );
}

#[test]
fn sidecar_upstreams_are_flagged_when_apps_are_merged() {
    let yaml = two_apps(&["--email-domain=*"], &["--email-domain=*"])
        .replace("http://wiki.apps:8080/", "http://127.0.0.1:8080/")
        .replace("http://grafana.apps:3000", "http://localhost:3000");
    let m = migrate_args(&yaml);
    assert_eq!(
        m.warnings
            .iter()
            .filter(|w| w.contains("was local to that oauth2-proxy"))
            .count(),
        2,
        "{:?}",
        m.warnings
    );
    assert!(comments(&m).contains("a sidecar in its pod"));
}

#[test]
fn a_legacy_oauth2_setup_says_what_the_gitlab_application_needs() {
    let legacy = BASE.replace(
        "oidc_issuer_url = \"https://gitlab.example.com/\"",
        "login_url = \"https://gitlab.example.com/oauth/authorize\"\nredeem_url = \"https://gitlab.example.com/oauth/token\"\nvalidate_url = \"https://gitlab.example.com/api/v4/user\"",
    );
    let m = migrate_toml(&format!("{legacy}email_domains = [\"*\"]\n"));
    assert!(
        comments(&m).contains("tick them in the GitLab application"),
        "{}",
        m.toml
    );
    // A read_user application kept as it is: said what that costs.
    let m = migrate_toml(&format!(
        "{legacy}email_domains = [\"*\"]\nscope = \"read_user\"\n"
    ));
    let c = comments(&m);
    assert!(
        c.contains("without openid labgate signs in with plain OAuth2"),
        "{c}"
    );
    assert_eq!(strings(at(&parsed(&m), "gitlab.scopes")), ["read_user"]);
    // An OIDC setup gets neither.
    let m = migrate_toml(&format!("{BASE}email_domains = [\"*\"]\n"));
    assert!(!comments(&m).contains("legacy GitLab setup"));
}

/// A Helm values file of the oauth2-proxy chart, as a team writes it: the credentials in
/// `config`, oauth2-proxy's own config file in `config.configFile`, flags as a map.
const HELM_INLINE: &str = r#"
config:
  clientID: "app-id"
  clientSecret: "gloas-not-a-real-secret-0123456789"
  cookieSecret: "b2F1dGgyLXByb3h5LWNvb2tpZS1zZWNyZXQtMzJi"
  configFile: |-
    email_domains = [ "example.com" ]
    upstreams = [ "http://wiki.wiki.svc:8080/" ]
    pass_access_token = true
extraArgs:
  provider: gitlab
  oidc-issuer-url: https://gitlab.example.com
  redirect-url: https://wiki.example.com/oauth2/callback
  gitlab-group:
    - acme/sre
    - acme/ops
  skip-provider-button: true
  cookie-expire: 12h
  silence-ping-logging:
image:
  tag: v7.6.0
replicaCount: 2
resources: {}
"#;

#[test]
fn helm_values_are_read_as_the_chart_passes_them() {
    let (settings, remarks) = source::from_args(HELM_INLINE, "values.yaml").unwrap();
    let mut o = Options::default();
    o.add(settings);
    let value = |k: &str| o.get(k).map(|x| x.value.clone());
    // config.clientID / clientSecret: the chart's Secret, then OAUTH2_PROXY_* env.
    assert_eq!(value("client_id"), Some(Value::Text("app-id".into())));
    assert_eq!(o.get("client_id").unwrap().shown, "OAUTH2_PROXY_CLIENT_ID");
    assert_eq!(
        value("client_secret"),
        Some(Value::Text("gloas-not-a-real-secret-0123456789".into()))
    );
    // The chart's own flags.
    assert_eq!(
        value("http_address"),
        Some(Value::Text("0.0.0.0:4180".into()))
    );
    assert_eq!(
        value("metrics_address"),
        Some(Value::Text("0.0.0.0:44180".into()))
    );
    // extraArgs: `key: value` is --key=value, a null value a bare flag, a list one flag per
    // item (as meant: the chart itself writes --gitlab-group=[acme/sre acme/ops]).
    assert_eq!(value("provider"), Some(Value::Text("gitlab".into())));
    assert_eq!(value("skip_provider_button"), Some(Value::Bool(true)));
    assert_eq!(value("silence_ping_logging"), Some(Value::Bool(true)));
    assert_eq!(
        value("gitlab_groups"),
        Some(Value::List(vec!["acme/sre".into(), "acme/ops".into()]))
    );
    // config.configFile: oauth2-proxy's config file, below the flags.
    let file = o.get("pass_access_token").unwrap();
    assert_eq!(file.origin, source::Origin::File);
    assert_eq!(
        value("email_domains"),
        Some(Value::List(vec!["example.com".into()]))
    );
    assert!(
        remarks.iter().any(|r| r.0.contains("--http-address=0.0.0.0:4180 --https-address=0.0.0.0:4443 --metrics-address=0.0.0.0:44180")),
        "{remarks:?}"
    );
    assert!(
        remarks
            .iter()
            .any(|r| r.0.contains("not read: replicaCount, resources")),
        "{remarks:?}"
    );
    assert!(
        remarks.iter().any(|r| r.0.starts_with("the chart passes config.clientID as OAUTH2_PROXY_CLIENT_ID, config.clientSecret as OAUTH2_PROXY_CLIENT_SECRET, config.cookieSecret as OAUTH2_PROXY_COOKIE_SECRET through a Secret of its own")),
        "{remarks:?}"
    );

    let m = migrate_args(HELM_INLINE);
    let t = parsed(&m);
    let notes = comments(&m);
    assert!(m.toml.starts_with("# labgate configuration migrated from oauth2-proxy (Helm values args of the oauth2-proxy chart)"), "{}", m.toml);
    assert_eq!(at(&t, "gitlab.client_id").unwrap().as_str(), Some("app-id"));
    assert_eq!(
        strings(at(&t, "access.allowed_groups")),
        ["acme/sre:member", "acme/ops:member"]
    );
    assert_eq!(
        strings(at(&t, "access.allowed_email_domains")),
        ["example.com"]
    );
    assert_eq!(
        at(&t, "identity.pass_access_token").and_then(toml::Value::as_bool),
        Some(true)
    );
    assert_eq!(
        at(&t, "server.public_url").unwrap().as_str(),
        Some("https://wiki.example.com")
    );
    assert_ne!(
        at(&t, "session.cookie_secret").unwrap().as_str(),
        Some("b2F1dGgyLXByb3h5LWNvb2tpZS1zZWNyZXQtMzJi")
    );
    assert!(!notes.contains("gloas-not-a-real-secret"), "{notes}");
    assert!(
        !notes.contains("b2F1dGgyLXByb3h5LWNvb2tpZS1zZWNyZXQtMzJi"),
        "{notes}"
    );
    assert!(
        m.warnings.iter().any(|w| w.contains("extraArgs.gitlab-group: the chart writes a list as one flag, --gitlab-group=[acme/sre acme/ops]")),
        "{:?}",
        m.warnings
    );
    // v7.6.0 is only used for names; nothing here is an old one.
    assert!(!notes.contains("renamed"), "{notes}");
    loads(&m);
}

#[test]
fn helm_existing_secret_redis_and_a_list_of_args() {
    let values = r#"
config:
  existingSecret: oauth2-proxy-creds
  emailDomains: ["example.com"]
extraArgs:
  - --provider=gitlab
  - --oidc-issuer-url=https://gitlab.example.com
  - --redirect-url=https://app.example.com/oauth2/callback
  - --gitlab-group=acme
sessionStorage:
  type: redis
  redis:
    existingSecret: redis-auth
    standalone:
      connectionUrl: redis://redis.auth.svc:6379
extraEnv:
  - name: OAUTH2_PROXY_COOKIE_REFRESH
    value: 1h
ingress:
  enabled: true
  hosts: [app.example.com]
"#;
    let (settings, remarks) = source::from_args(values, "values.yaml").unwrap();
    let mut o = Options::default();
    o.add(settings);
    assert_eq!(
        o.get("client_secret").unwrap().value,
        Value::External("Secret oauth2-proxy-creds key client-secret".into())
    );
    assert_eq!(
        o.get("client_id").unwrap().value,
        Value::External("Secret oauth2-proxy-creds key client-id".into())
    );
    assert_eq!(
        o.get("session_store_type").unwrap().value,
        Value::Text("redis".into())
    );
    assert_eq!(
        o.get("redis_password").unwrap().value,
        Value::External("Secret redis-auth key redis-password".into())
    );
    // The chart writes oauth2_proxy.cfg from config.emailDomains and config.upstreams.
    let domains = o.get("email_domains").unwrap();
    assert_eq!(domains.shown, "config.emailDomains");
    let upstreams = o.get("upstreams").unwrap();
    assert_eq!(upstreams.shown, "config.upstreams (the chart's default)");
    assert_eq!(
        upstreams.value,
        Value::List(vec!["file:///dev/null".into()])
    );
    assert_eq!(
        o.get("cookie_refresh").unwrap().value,
        Value::Text("1h".into())
    );
    assert!(
        remarks.iter().any(|r| r.0 == "sessionStorage.type = \"redis\" (sessionStorage.redis.clientType standalone): the chart passes OAUTH2_PROXY_SESSION_STORE_TYPE, OAUTH2_PROXY_REDIS_PASSWORD, OAUTH2_PROXY_REDIS_CONNECTION_URL; they are read as those variables below"),
        "{remarks:?}"
    );

    let m = migrate_args(values);
    let t = parsed(&m);
    let notes = comments(&m);
    assert_eq!(at(&t, "session.store").unwrap().as_str(), Some("redis"));
    assert_eq!(
        at(&t, "session.redis_url").unwrap().as_str(),
        Some("redis://redis.auth.svc:6379")
    );
    assert!(at(&t, "gitlab.client_secret").is_none());
    // The Ingress is routing; redirect_url names the origin, so no guess at it.
    assert!(
        notes.contains("ingress.enabled (hosts app.example.com): the chart's Ingress sends those hosts to oauth2-proxy's Service; routing is not labgate configuration"),
        "{notes}"
    );
    assert!(!notes.contains("there is no redirect_url"), "{notes}");
    assert!(
        notes.contains("OAUTH2_PROXY_CLIENT_SECRET: oauth2-proxy read it from Secret oauth2-proxy-creds key client-secret at run time; give labgate the same value as LABGATE__GITLAB__CLIENT_SECRET (env valueFrom the same Secret oauth2-proxy-creds key client-secret), in gitlab.client_secret_file (that key mounted as a file) or in gitlab.client_secret"),
        "{notes}"
    );
    assert!(
        notes.contains("config.existingSecret = \"oauth2-proxy-creds\": the chart passes that Secret's key client-id as OAUTH2_PROXY_CLIENT_ID, key client-secret as OAUTH2_PROXY_CLIENT_SECRET, key cookie-secret as OAUTH2_PROXY_COOKIE_SECRET"),
        "{notes}"
    );
    assert!(
        notes.contains("LABGATE__SESSION__REDIS_PASSWORD (env valueFrom the same Secret redis-auth key redis-password"),
        "{notes}"
    );
    for var in [
        "OAUTH2_PROXY_CLIENT_ID",
        "OAUTH2_PROXY_CLIENT_SECRET",
        "OAUTH2_PROXY_REDIS_PASSWORD",
    ] {
        assert!(
            m.warnings
                .iter()
                .any(|w| w.starts_with(&format!("{var}: oauth2-proxy read it from"))),
            "{var}: {:?}",
            m.warnings
        );
    }
    // The cookie secret is never carried over, from a Secret either.
    assert!(!m.warnings.iter().any(|w| w.contains("COOKIE_SECRET")));
    // With the Secret's values supplied as labgate's environment, it loads.
    let env = [
        ("LABGATE__GITLAB__CLIENT_ID", "app-id"),
        (
            "LABGATE__GITLAB__CLIENT_SECRET",
            "gloas-not-a-real-secret-0123456789",
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    validate(&m.toml, env).unwrap_or_else(|e| panic!("{e}\n{}", m.toml));
}

#[test]
fn what_the_chart_does_besides_oauth2_proxy_s_settings_is_said() {
    // An umbrella chart's values for oauth2-proxy as a subchart.
    let values = r#"
oauth2-proxy:
  proxyVarsAsSecrets: false
  config:
    clientID: app-id
    clientSecret: gloas-not-shown
    forceLegacyConfig: true
    upstreams: ["http://app:8080/"]
  alphaConfig:
    enabled: true
  ingress:
    enabled: true
    hosts: [auth.example.com]
    tls:
      - secretName: auth-tls
        hosts: [auth.example.com]
  sessionStorage:
    type: redis
  redis-ha:
    enabled: true
  envFrom:
    - secretRef: {name: more-settings}
  metrics:
    enabled: false
"#;
    let m = migrate_args(values);
    let notes = comments(&m);
    for want in [
        "oauth2-proxy.config.clientID = app-id: proxyVarsAsSecrets is false, so the chart passes it to oauth2-proxy nowhere",
        "oauth2-proxy.config.clientSecret = <secret>: proxyVarsAsSecrets is false",
        "oauth2-proxy.alphaConfig.enabled: oauth2-proxy's alpha (YAML) configuration is not migrated",
        "oauth2-proxy.ingress.enabled (hosts auth.example.com): the chart's Ingress sends those hosts to oauth2-proxy's Service",
        "server.public_url = \"https://auth.example.com\"",
        "oauth2-proxy.redis-ha.enabled: the chart deploys a Redis for oauth2-proxy's sessions",
        "OAUTH2_PROXY_REDIS_CONNECTION_URL: oauth2-proxy read it from the redis-ha subchart's Service, redis://RELEASE-redis-ha:6379 (RELEASE: the Helm release's name) at run time; give labgate that value in session.redis_url or LABGATE__SESSION__REDIS_URL",
        "oauth2-proxy.envFrom (Secret more-settings)",
        // Alpha configuration on: the chart's config file holds email_domains only.
        "config.emailDomains (the chart's default) = [\"*\"]",
    ] {
        assert!(notes.contains(want), "{want:?} not in\n{}", m.toml);
    }
    assert!(!notes.contains("gloas-not-shown"));
    assert!(
        !notes.contains("--http-address"),
        "alpha: the chart passes no listen flags"
    );
    assert!(
        !notes.contains("http://app:8080"),
        "alpha: config.upstreams is not written"
    );
    assert!(m.warnings.iter().any(|w| w.contains("envFrom")));

    // A list of secrets in extraArgs is said without its values.
    let m = migrate_args(
        "extraArgs:\n  redis-sentinel-connection-urls:\n    - redis://:MARKERpw@s1:26379\n",
    );
    assert!(!comments(&m).contains("MARKERpw"), "{}", m.toml);
    assert!(!m.warnings.iter().any(|w| w.contains("MARKERpw")));
    assert!(m
        .warnings
        .iter()
        .any(|w| w.contains("--redis-sentinel-connection-urls=[<secret> ...]")));
}

#[test]
fn a_values_file_with_its_own_config_file_refuses_another() {
    let config = Input {
        name: "o.cfg",
        text: BASE,
    };
    let e = oauth2_proxy(
        Some(config),
        Some(Input {
            name: "values.yaml",
            text: "config:\n  configFile: |-\n    email_domains = [\"*\"]\n",
        }),
        fresh(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("the chart mounts oauth2-proxy's config file itself, config.configFile"),
        "{e}"
    );
    // With config.existingConfig the file is elsewhere: --config gives it.
    let m = oauth2_proxy(
        Some(config),
        Some(Input {
            name: "values.yaml",
            text: "config:\n  existingConfig: o2p-config\n  existingSecret: creds\nextraArgs:\n  email-domain: example.com\n",
        }),
        fresh(),
    )
    .unwrap();
    let t = parsed(&m);
    assert_eq!(
        strings(at(&t, "access.allowed_email_domains")),
        ["example.com"]
    );
    assert_eq!(
        at(&t, "upstream.url").unwrap().as_str(),
        Some("http://127.0.0.1:8080")
    );
    // The Secret's client id (the chart's env) beats the config file's, as in oauth2-proxy.
    assert!(at(&t, "gitlab.client_id").is_none(), "{}", m.toml);
}

/// A Deployment as many are written: oauth2-proxy's flag names turned into variables, in the
/// singular, which oauth2-proxy does not read.
fn singular_env_deployment(image: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: oauth2-proxy}}
spec:
  template:
    spec:
      containers:
        - name: oauth2-proxy
          image: {image}
          args: [--provider=gitlab, --oidc-issuer-url=https://gitlab.example.com, --redirect-url=https://wiki.example.com/oauth2/callback, --client-id=app-id, --client-secret=gloas-not-a-real-secret-0123456789]
          env:
            - {{name: OAUTH2_PROXY_EMAIL_DOMAIN, value: example.com}}
            - {{name: OAUTH2_PROXY_GITLAB_GROUP, value: acme/sre}}
            - {{name: OAUTH2_PROXY_UPSTREAM, value: "http://wiki:8080/"}}
            - {{name: OAUTH2_PROXY_WHITELIST_DOMAIN, value: .example.com}}
            - {{name: OAUTH2_PROXY_COOKIE_SECRET, value: b2F1dGgyLXByb3h5LWNvb2tpZS1zZWNyZXQtMzJi}}{extra}
"#
    )
}

#[test]
fn singular_env_names_say_what_oauth2_proxy_did_with_them() {
    let m = migrate_args(&singular_env_deployment(
        "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0",
        "",
    ));
    let t = parsed(&m);
    let notes = comments(&m);
    // Migrated as meant.
    assert_eq!(
        strings(at(&t, "access.allowed_email_domains")),
        ["example.com"]
    );
    assert_eq!(
        strings(at(&t, "access.allowed_groups")),
        ["acme/sre:member"]
    );
    assert_eq!(
        at(&t, "upstream.url").unwrap().as_str(),
        Some("http://wiki:8080")
    );
    assert_eq!(
        strings(at(&t, "server.allowed_redirect_domains")),
        [".example.com"]
    );
    // And said truly, with the version the image names.
    for want in [
        "OAUTH2_PROXY_EMAIL_DOMAIN = [\"example.com\"]: oauth2-proxy v7.6.0 (the version its image names) does not read this variable, and no version does (checked up to v7.15.3): a variable is named after the config key, OAUTH2_PROXY_EMAIL_DOMAINS; migrated as meant, as email_domains: oauth2-proxy ran without this setting, and labgate now applies it",
        "OAUTH2_PROXY_GITLAB_GROUP = [\"acme/sre\"]: oauth2-proxy v7.6.0 (the version its image names) ignores this variable: v6.0.0 renamed it OAUTH2_PROXY_GITLAB_GROUPS (v5.1.1 and earlier read it)",
        "OAUTH2_PROXY_UPSTREAM = [\"http://wiki:8080/\"]: oauth2-proxy v7.6.0",
        "OAUTH2_PROXY_WHITELIST_DOMAIN = [\".example.com\"]",
    ] {
        assert!(notes.contains(want), "{want:?} not in\n{}", m.toml);
    }
    for var in [
        "EMAIL_DOMAIN",
        "GITLAB_GROUP",
        "UPSTREAM",
        "WHITELIST_DOMAIN",
    ] {
        assert!(
            m.warnings.iter().any(|w| w.starts_with(&format!(
                "OAUTH2_PROXY_{var}: oauth2-proxy ignored this variable"
            ))),
            "{var}: {:?}",
            m.warnings
        );
    }
    assert!(!m.toml.contains("b2F1dGgyLXByb3h5LWNvb2tpZS1zZWNyZXQtMzJi"));
    loads(&m);

    // v5.1.1 read OAUTH2_PROXY_GITLAB_GROUP: no warning for it, only the rename.
    let m = migrate_args(&singular_env_deployment(
        "quay.io/oauth2-proxy/oauth2-proxy:v5.1.1",
        "",
    ));
    assert!(
        comments(&m).contains("OAUTH2_PROXY_GITLAB_GROUP = [\"acme/sre\"]: oauth2-proxy v5.1.1 (the version its image names) reads this variable; v6.0.0 renamed it OAUTH2_PROXY_GITLAB_GROUPS, and later versions ignore the old name; migrated as gitlab_groups"),
        "{}",
        m.toml
    );
    assert!(
        !m.warnings.iter().any(|w| w.contains("GITLAB_GROUP")),
        "{:?}",
        m.warnings
    );

    // No version in the image: what each version did.
    let m = migrate_args(&singular_env_deployment("oauth2-proxy:latest", ""));
    assert!(
        comments(&m).contains("oauth2-proxy v5.1.1 and earlier read this variable; v6.0.0 renamed it OAUTH2_PROXY_GITLAB_GROUPS, and later versions ignore it silently; migrated as meant, as gitlab_groups: if your oauth2-proxy was v6.0.0 or later, it ran without this setting"),
        "{}",
        m.toml
    );

    // The name oauth2-proxy reads wins over the one it ignores, whatever the order.
    let m = migrate_args(&singular_env_deployment(
        "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0",
        "\n            - {name: OAUTH2_PROXY_EMAIL_DOMAINS, value: corp.example}\n            - {name: OAUTH2_PROXY_TYPO_SETTING, value: x}",
    ));
    let t = parsed(&m);
    let notes = comments(&m);
    assert_eq!(
        strings(at(&t, "access.allowed_email_domains")),
        ["corp.example"]
    );
    assert!(
        notes.contains("not used: OAUTH2_PROXY_EMAIL_DOMAINS sets email_domains, and that is what oauth2-proxy read"),
        "{notes}"
    );
    assert!(
        notes.contains("OAUTH2_PROXY_TYPO_SETTING=<not shown>: names no oauth2-proxy option, so oauth2-proxy ignores it"),
        "{notes}"
    );
}

#[test]
fn versions_are_read_from_image_tags() {
    use super::options::Version;
    assert_eq!(
        Version::of_image("quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"),
        Some(Version(7, 6, 0))
    );
    assert_eq!(
        Version::of_image("registry:5000/oauth2-proxy:v7.15.3-alpine"),
        Some(Version(7, 15, 3))
    );
    assert_eq!(Version::of_image("registry:5000/oauth2-proxy"), None);
    assert_eq!(Version::of_image("oauth2-proxy:latest"), None);
    assert_eq!(Version::of_image("oauth2-proxy@sha256:abc"), None);
    assert!(Version(5, 1, 1) < Version(6, 0, 0));
    assert!(Version(7, 10, 0) > Version(7, 9, 9));
}
