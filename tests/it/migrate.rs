//! `labgate migrate oauth2-proxy` end to end. Each oauth2-proxy configuration in
//! tests/data/oauth2-proxy/ (written as oauth2-proxy's docs show them) is migrated by the
//! real binary; the output passes `labgate check`; then `labgate run` serves it in front of
//! the GitLab stand-in, and every stand-in user signs in through real HTTP. Each answer must
//! equal what oauth2-proxy's documented GitLab behaviour gives that user: [`oauth2_proxy_admits`]
//! models it, from the rules each data file states (written out by hand below, not read by
//! the code under test).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use labgate::access::level;
use labgate::dev::gitlab::{Fixture, FixtureUser, Member, StandIn};
use reqwest::header::ACCEPT;
use reqwest::{Client, StatusCode};

use crate::harness::*;

/// What a data file asks of oauth2-proxy, as its GitLab provider reads it.
struct O2p {
    /// File in tests/data/oauth2-proxy/.
    file: &'static str,
    /// Flags (`--args`) rather than a config file (`--config`).
    args: bool,
    /// `gitlab_groups` / `--gitlab-group`.
    groups: &'static [&'static str],
    /// `gitlab_projects`: (path, minimum access level; 20 when the entry has none).
    projects: &'static [(&'static str, u8)],
    /// `email_domains` / `--email-domain`.
    email_domains: &'static [&'static str],
    /// Forward-auth only (`--upstream=static://202`, `file:///dev/null`): ask
    /// `/oauth2/auth`, not the app.
    forward_auth: bool,
    /// `session_store_type = "redis"`.
    redis: bool,
    /// The client id and secret come from a Kubernetes Secret (env `valueFrom`).
    credentials_from_secret: bool,
    /// A Helm values file: the chart's own listen flags are not in it, so labgate gets
    /// its addresses from the environment.
    helm: bool,
}

const CASES: &[O2p] = &[
    O2p {
        file: "gitlab-groups.cfg",
        args: false,
        groups: &["acme"],
        projects: &[],
        email_domains: &["*"],
        forward_auth: false,
        redis: false,
        credentials_from_secret: false,
        helm: false,
    },
    O2p {
        file: "gitlab-projects-redis.cfg",
        args: false,
        groups: &["acme/team/frontend"],
        projects: &[
            ("acme/app", level::DEVELOPER),
            ("outsiders/tool", level::REPORTER),
        ],
        email_domains: &["example.com"],
        forward_auth: false,
        redis: true,
        credentials_from_secret: false,
        helm: false,
    },
    O2p {
        file: "deployment.yaml",
        args: true,
        groups: &["acme/team", "outsiders"],
        projects: &[],
        email_domains: &[".example.com"],
        forward_auth: true,
        redis: false,
        credentials_from_secret: true,
        helm: false,
    },
    O2p {
        file: "args.txt",
        args: true,
        groups: &[],
        projects: &[],
        email_domains: &["*"],
        forward_auth: false,
        redis: false,
        credentials_from_secret: false,
        helm: false,
    },
    O2p {
        file: "deployment-singular-env.yaml",
        args: true,
        // As meant: oauth2-proxy v7.6.0 ignored OAUTH2_PROXY_GITLAB_GROUP (see the test).
        groups: &["acme"],
        projects: &[],
        email_domains: &["*"],
        forward_auth: false,
        redis: false,
        credentials_from_secret: true,
        helm: false,
    },
    O2p {
        file: "helm-values.yaml",
        args: true,
        groups: &["acme/team", "outsiders"],
        projects: &[],
        email_domains: &["example.com"],
        forward_auth: false,
        redis: false,
        credentials_from_secret: false,
        helm: true,
    },
    O2p {
        file: "helm-values-existing-secret.yaml",
        args: true,
        groups: &["acme"],
        projects: &[("acme/app", level::DEVELOPER)],
        email_domains: &["*"],
        forward_auth: true,
        redis: true,
        credentials_from_secret: true,
        helm: true,
    },
];

/// The values in the data files that the test replaces (tests/data/oauth2-proxy/README.md).
const DATA_CLIENT_ID: &str = "b15b449bf29ba5f7f838db8f61c7614d";
const DATA_CLIENT_SECRET: &str =
    "gloas-e42684faffe108f91b7033ff8e6e495ef58eefd084432e439b74159f0b003a04";
const DATA_COOKIE_SECRET: &str = "UT6ly7yqN3lKBfW_9lajO6cgN1HEGZLvQk2TV4ZeJWU=";
const DATA_REDIS: &str = "redis://redis.auth.svc.cluster.local:6379";

/// oauth2-proxy's answer at the callback for `username` (v7: oauthproxy.go `OAuthCallback`
/// admits when `Validator(email) && provider.Authorize(session)`), step by step:
fn oauth2_proxy_admits(rules: &O2p, f: &Fixture, username: &str) -> bool {
    let u = f.user(username).unwrap();
    // GitLab's own sign-in form refuses a blocked account: no callback reaches either proxy.
    if u.state != "active" {
        return false;
    }
    // providers/gitlab.go EnrichSession: "user email is not verified" fails the callback
    // unless insecure_oidc_allow_unverified_email (no data file sets it).
    if !u.email_verified {
        return false;
    }
    // validator.go: "*" admits any address; "d" requires the suffix "@d"; ".d" and "*.d"
    // require the domain part to end with ".d" (so not d itself). Lower-cased.
    let email = u.email.to_ascii_lowercase();
    let domain = email.rsplit('@').next().unwrap();
    let email_ok = email.matches('@').count() == 1
        && rules.email_domains.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            if d == "*" {
                true
            } else if let Some(rest) = d.strip_prefix("*.") {
                domain.ends_with(&format!(".{rest}"))
            } else if d.starts_with('.') {
                domain.ends_with(&d)
            } else {
                email.ends_with(&format!("@{d}"))
            }
        });
    if !email_ok {
        return false;
    }
    // provider_default.go Authorize: with no gitlab_groups and no gitlab_projects every
    // session passes; else one of the session's groups must be in AllowedGroups, which holds
    // the gitlab_groups paths and "project:<path>" for each gitlab_projects entry.
    if rules.groups.is_empty() && rules.projects.is_empty() {
        return true;
    }
    // The session's groups are the userinfo `groups` claim (direct memberships and their
    // descendant groups, as GitLab and the stand-in give it), compared exactly.
    let claim = f.groups_claim(username);
    if rules.groups.iter().any(|g| claim.iter().any(|c| c == g)) {
        return true;
    }
    // gitlab.go addProjectsToSession: GET /api/v4/projects/:path; archived projects never
    // count; the level is permissions.project_access, or group_access when there is no
    // project access; it must reach the entry's level.
    rules.projects.iter().any(|(path, min)| {
        let Some(p) = f.project(path) else {
            return false;
        };
        if p.archived {
            return false;
        }
        let (project_access, group_access) = f.project_levels(p, username);
        project_access.or(group_access).is_some_and(|l| l >= *min)
    })
}

/// The demo's users and groups, and users whose answers tell the rules apart: an
/// unverified email, a reporter of a group, a guest of a subgroup with a subdomain email,
/// project-only members at two levels, a member of a sub-subgroup only.
fn fixture() -> Fixture {
    let mut f = Fixture::demo();
    let mut add = |id: u64, name: &str, email: &str, verified: bool| {
        f.users.push(FixtureUser {
            id,
            username: name.into(),
            password: format!("{name}-password"),
            name: name.into(),
            email: email.into(),
            email_verified: verified,
            public_email: None,
            state: "active".into(),
            two_factor_enabled: false,
            personal_access_tokens: Vec::new(),
        });
    };
    add(201, "erin", "erin@example.com", false);
    add(202, "frank", "frank@example.com", true);
    add(203, "grace", "grace@eng.example.com", true);
    add(204, "heidi", "heidi@example.com", true);
    add(205, "ivan", "ivan@example.com", true);
    add(206, "judy", "judy@ops.example.com", true);
    f.set_group_member("acme", "erin", Some("developer"));
    f.set_group_member("acme", "frank", Some("reporter"));
    f.set_group_member("acme/team", "grace", Some("guest"));
    f.set_group_member("acme/team/frontend", "judy", Some("developer"));
    let app = f
        .projects
        .iter_mut()
        .find(|p| p.path == "acme/app")
        .unwrap();
    for (user, role) in [("heidi", "developer"), ("ivan", "guest")] {
        app.members.push(Member {
            user: user.into(),
            role: role.into(),
        });
    }
    f
}

/// A process started by the test, stopped with SIGTERM when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

async fn redis_server(port: u16, dir: &Path) -> Proc {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is needed for this test: scripts/test installs it (apt-get install redis-server)");
    wait_for_port(port).await;
    Proc(child)
}

fn labgate(args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_labgate"));
    c.args(args)
        .env_remove("LABGATE_CONFIG")
        .env_remove("RUST_LOG")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if args.first() == Some(&"run") {
        // A migrated configuration served: its start-up warnings (a generated signing
        // key) are not this test's subject, and its stderr is the test's.
        c.env("LABGATE__LOG__LEVEL", "error");
    }
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Signs `user` in like a browser, through labgate's /oauth2/start and the stand-in's
/// sign-in and consent pages; whether they end up admitted: labgate's callback answers
/// 302, then the app (or /oauth2/auth for forward-auth) lets them in.
async fn admitted(rules: &O2p, front: &str, gitlab: &StandIn, user: &str) -> (bool, Client) {
    let c = browser();
    if !signed_in(&c, front, gitlab, user).await {
        return (false, c);
    }
    let (path, yes) = if rules.forward_auth {
        ("/oauth2/auth", StatusCode::ACCEPTED)
    } else {
        ("/", StatusCode::OK)
    };
    (app_lets_in(&c, &format!("{front}{path}"), yes).await, c)
}

/// Signs `user` in with the browser `c` at `front`; whether labgate's callback let them in
/// (302) rather than refusing them (403), or GitLab refused the sign-in itself.
async fn signed_in(c: &Client, front: &str, gitlab: &StandIn, user: &str) -> bool {
    let r = c
        .get(format!("{front}/oauth2/start?rd=%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "start for {user}");
    let authorize = location(&r);
    let r = c.get(&authorize).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "GitLab asks {user} to sign in"
    );
    let return_to = url::Url::parse(&location(&r))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let signed = c
        .post(format!("{}/users/sign_in", gitlab.base_url))
        .form(&[
            ("username", user),
            ("password", &format!("{user}-password")),
            ("return_to", &return_to),
        ])
        .send()
        .await
        .unwrap();
    if signed.status() != StatusCode::FOUND {
        // GitLab refused the sign-in itself (a blocked account).
        return false;
    }
    let fields = consent_fields(c, gitlab, &authorize, user, "").await;
    let callback = consent_at(c, gitlab, fields, false).await;
    let r = c
        .get(&callback)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    match r.status() {
        StatusCode::FOUND => true,
        StatusCode::FORBIDDEN => false,
        other => panic!("callback for {user}: {other}: {}", r.text().await.unwrap()),
    }
}

/// Whether the signed-in browser `c` gets `yes` at `url` (403: refused).
async fn app_lets_in(c: &Client, url: &str, yes: StatusCode) -> bool {
    let (status, body) = get_json(c, url).await;
    match status {
        s if s == yes => true,
        StatusCode::FORBIDDEN => false,
        other => panic!("{url}: {other} {body}"),
    }
}

struct Running {
    front: String,
    gitlab: std::sync::Arc<StandIn>,
    fixture: Fixture,
    migrated: String,
    /// What `migrate` said on stderr.
    stderr: String,
    _labgate: Proc,
    _redis: Option<Proc>,
    _dir: tempfile::TempDir,
}

/// Migrates `rules.file` with the real binary, checks the result, and runs it.
async fn migrate_and_run(rules: &O2p) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let front = format!("http://127.0.0.1:{port}");
    let mut fixture = fixture();
    fixture.applications[0].secret = test_client_secret().into();
    fixture.applications[0]
        .redirect_uris
        .push(format!("{front}/oauth2/callback"));
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gitlab = StandIn::start(gl, fixture.clone(), "");
    let echo = start_echo().await;
    let redis_port = free_port();
    let redis = if rules.redis {
        Some(redis_server(redis_port, dir.path()).await)
    } else {
        None
    };
    let data: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/data/oauth2-proxy",
        rules.file,
    ]
    .iter()
    .collect();
    let original = std::fs::read_to_string(&data).unwrap();
    let input = original
        .replace("https://gitlab.example.com", &gitlab.base_url)
        .replace("https://app.example.com", &front)
        .replace("0.0.0.0:4180", &format!("127.0.0.1:{port}"))
        .replace("http://127.0.0.1:8080/", &format!("{echo}/"))
        .replace(DATA_CLIENT_ID, "labgate-dev-client-id")
        .replace(DATA_CLIENT_SECRET, test_client_secret())
        .replace(DATA_REDIS, &format!("redis://127.0.0.1:{redis_port}"));
    let input_path = dir.path().join(rules.file);
    std::fs::write(&input_path, &input).unwrap();
    // The deployment takes its credentials from a Secret: labgate gets them the same way.
    let mut env = vec![("LABGATE__LOG__LEVEL".to_owned(), "warn".to_owned())];
    // The chart passes oauth2-proxy --http-address=0.0.0.0:4180 and
    // --metrics-address=0.0.0.0:44180 itself: labgate gets the test's addresses instead.
    if rules.helm {
        env.push((
            "LABGATE__SERVER__LISTEN".into(),
            format!("127.0.0.1:{port}"),
        ));
        env.push((
            "LABGATE__SERVER__METRICS_LISTEN".into(),
            format!("127.0.0.1:{}", free_port()),
        ));
    }
    if rules.credentials_from_secret {
        env.push((
            "LABGATE__GITLAB__CLIENT_ID".into(),
            "labgate-dev-client-id".into(),
        ));
        env.push((
            "LABGATE__GITLAB__CLIENT_SECRET".into(),
            test_client_secret().into(),
        ));
    }
    let flag = if rules.args { "--args" } else { "--config" };
    let out = labgate(
        &[
            "migrate",
            "oauth2-proxy",
            flag,
            input_path.to_str().unwrap(),
        ],
        &env,
    )
    .output()
    .unwrap();
    let (migrated, stderr) = text(&out);
    assert!(
        out.status.success(),
        "migrate {}: {stderr}\n{migrated}",
        rules.file
    );
    assert!(stderr.contains("passes `labgate check`"), "{stderr}");
    assert!(
        !migrated.contains(DATA_COOKIE_SECRET),
        "oauth2-proxy's cookie secret is never carried over"
    );
    let comments: String = migrated
        .lines()
        .filter(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !comments.contains(test_client_secret()),
        "no secret in a comment"
    );
    let path = dir.path().join("labgate.toml");
    std::fs::write(&path, &migrated).unwrap();
    let check = labgate(&["check", "--config", path.to_str().unwrap()], &env)
        .output()
        .unwrap();
    assert!(check.status.success(), "labgate check: {:?}", text(&check));
    let child = labgate(&["run", "--config", path.to_str().unwrap()], &env)
        .spawn()
        .unwrap();
    let proc = Proc(child);
    wait_for_port(port).await;
    Running {
        front,
        gitlab,
        fixture,
        migrated,
        stderr,
        _labgate: proc,
        _redis: redis,
        _dir: dir,
    }
}

/// Signs every stand-in user in and compares with the oracle; returns the admitted
/// users' browsers.
async fn every_user_gets_oauth2_proxy_s_answer(rules: &O2p, r: &Running) -> Vec<(String, Client)> {
    let mut admitted_users = Vec::new();
    let mut answers = Vec::new();
    for u in &r.fixture.users {
        let want = oauth2_proxy_admits(rules, &r.fixture, &u.username);
        let (got, browser) = admitted(rules, &r.front, &r.gitlab, &u.username).await;
        answers.push((u.username.clone(), want, got));
        if got {
            admitted_users.push((u.username.clone(), browser));
        }
    }
    let wrong: Vec<_> = answers.iter().filter(|(_, w, g)| w != g).collect();
    assert!(
        wrong.is_empty(),
        "{}: (user, oauth2-proxy, labgate) differ: {wrong:?}\n{}",
        rules.file,
        r.migrated
    );
    // The rules tell users apart: some enter, some do not.
    assert!(
        answers.iter().any(|(_, w, _)| *w),
        "{}: nobody enters",
        rules.file
    );
    assert!(
        answers.iter().any(|(_, w, _)| !*w),
        "{}: everybody enters",
        rules.file
    );
    admitted_users
}

#[tokio::test]
async fn a_gitlab_group_config_gives_oauth2_proxy_s_answers() {
    let rules = &CASES[0];
    let r = migrate_and_run(rules).await;
    let admitted = every_user_gets_oauth2_proxy_s_answer(rules, &r).await;
    let names: Vec<&str> = admitted.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["alice", "frank"],
        "members of acme itself, any role"
    );
    // skip_auth_routes: GET=^/healthz$ and ^/static/ need no sign-in; the rest does.
    let c = plain();
    let status = |m: reqwest::Method, p: &str| {
        let req = c
            .request(m, format!("{}{p}", r.front))
            .header(ACCEPT, "application/json");
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(
        status(reqwest::Method::GET, "/healthz").await,
        StatusCode::OK
    );
    assert_eq!(
        status(reqwest::Method::POST, "/healthz").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(reqwest::Method::POST, "/static/app.css").await,
        StatusCode::OK
    );
    assert_eq!(
        status(reqwest::Method::GET, "/wiki").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_projects_and_redis_config_gives_oauth2_proxy_s_answers() {
    let rules = &CASES[1];
    let r = migrate_and_run(rules).await;
    assert!(r.migrated.contains("store = \"redis\""));
    let admitted = every_user_gets_oauth2_proxy_s_answer(rules, &r).await;
    let names: Vec<&str> = admitted.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["alice", "bob", "frank", "heidi"],
        "frank: a reporter of acme, so a member of acme/team/frontend"
    );
    // pass_access_token: the app gets the user's GitLab token; set_xauthrequest: /oauth2/auth
    // names the user.
    let (_, bob) = &admitted[1];
    let (status, body) = get_json(bob, &format!("{}/", r.front)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"], "bob");
    assert!(body["headers"]["x-forwarded-access-token"][0]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let auth = bob
        .get(format!("{}/oauth2/auth", r.front))
        .send()
        .await
        .unwrap();
    assert_eq!(auth.status(), StatusCode::ACCEPTED);
    assert_eq!(auth.headers()["x-auth-request-user"], "bob");
}

#[tokio::test]
async fn a_deployment_s_flags_give_oauth2_proxy_s_answers() {
    let rules = &CASES[2];
    let r = migrate_and_run(rules).await;
    let admitted = every_user_gets_oauth2_proxy_s_answer(rules, &r).await;
    let names: Vec<&str> = admitted.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["grace"],
        "acme/team members with a subdomain address"
    );
    let (_, grace) = &admitted[0];
    let auth = grace
        .get(format!("{}/oauth2/auth", r.front))
        .send()
        .await
        .unwrap();
    assert_eq!(auth.headers()["x-auth-request-user"], "grace");
    assert!(auth.headers().contains_key("x-auth-request-access-token"));
    let anonymous = plain()
        .get(format!("{}/oauth2/auth", r.front))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_gitlab_docs_flags_give_oauth2_proxy_s_answers() {
    let rules = &CASES[3];
    let r = migrate_and_run(rules).await;
    let admitted = every_user_gets_oauth2_proxy_s_answer(rules, &r).await;
    assert_eq!(
        admitted.len(),
        r.fixture.users.len() - 2,
        "all but blocked and erin"
    );
    // --skip-auth-preflight: OPTIONS needs no sign-in, GET does.
    let c = plain();
    let preflight = c
        .request(reqwest::Method::OPTIONS, format!("{}/api", r.front))
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    let (get, _) = get_json(&c, &format!("{}/api", r.front)).await;
    assert_eq!(get, StatusCode::UNAUTHORIZED);
}

/// The comments of a migrated file as one text (wrapped lines joined), to look for
/// phrases in.
fn comment_text(migrated: &str) -> String {
    migrated
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `helm-values.yaml`: the oauth2-proxy chart's values with the credentials in `config.*`,
/// oauth2-proxy's config file in `config.configFile`, flags as an `extraArgs` map.
#[tokio::test]
async fn helm_values_with_a_config_file_give_oauth2_proxy_s_answers() {
    let rules = &CASES[5];
    let r = migrate_and_run(rules).await;
    let said = comment_text(&r.migrated);
    for want in [
        "the chart passes config.clientID as OAUTH2_PROXY_CLIENT_ID, config.clientSecret as OAUTH2_PROXY_CLIENT_SECRET, config.cookieSecret as OAUTH2_PROXY_COOKIE_SECRET through a Secret of its own",
        "OAUTH2_PROXY_CLIENT_ID=labgate-dev-client-id: the GitLab application's ID",
        "the chart passes oauth2-proxy --http-address=0.0.0.0:4180 --https-address=0.0.0.0:4443 --metrics-address=0.0.0.0:44180 --cookie-name=_wiki_auth itself",
        "extraArgs.gitlab-group: the chart writes a list as one flag, --gitlab-group=[acme/team outsiders], which oauth2-proxy reads as the one value \"[acme/team outsiders]\"; migrated as meant, one --gitlab-group per item",
        "pass_access_token = true: X-Forwarded-Access-Token upstream",
        "ingress.enabled (hosts app.example.com): the chart's Ingress sends those hosts to oauth2-proxy's Service",
        "not read: replicaCount, resources",
    ] {
        assert!(said.contains(want), "{want:?} not in\n{}", r.migrated);
    }
    assert!(
        r.stderr
            .contains("warning: extraArgs.gitlab-group: the chart writes a list as one flag"),
        "{}",
        r.stderr
    );
    let admitted = every_user_gets_oauth2_proxy_s_answer(rules, &r).await;
    let names: Vec<&str> = admitted.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["alice", "bob", "frank"],
        "members of acme/team (frank through acme) or outsiders, with an example.com address"
    );
    // config.configFile's pass_access_token: the app gets the user's GitLab token.
    let (_, alice) = &admitted[0];
    let (status, body) = get_json(alice, &format!("{}/", r.front)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["headers"]["x-forwarded-access-token"][0]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    // extraArgs' skip-auth-regex: /healthz needs no sign-in, the rest does.
    let (healthz, _) = get_json(&plain(), &format!("{}/healthz", r.front)).await;
    assert_eq!(healthz, StatusCode::OK);
    let (wiki, _) = get_json(&plain(), &format!("{}/wiki", r.front)).await;
    assert_eq!(wiki, StatusCode::UNAUTHORIZED);
}

/// `helm-values-existing-secret.yaml`: the credentials in `config.existingSecret`, flags as
/// an `extraArgs` list, sessions in Redis (`sessionStorage`), forward-auth only.
#[tokio::test]
async fn helm_values_with_an_existing_secret_and_redis_give_oauth2_proxy_s_answers() {
    let rules = &CASES[6];
    // The Secret's values are not in the file: the output says where they are, and without
    // them labgate cannot run.
    let data: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/data/oauth2-proxy",
        rules.file,
    ]
    .iter()
    .collect();
    let out = labgate(
        &["migrate", "oauth2-proxy", "--args", data.to_str().unwrap()],
        &[],
    )
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for var in ["CLIENT_ID", "CLIENT_SECRET"] {
        let key = var.to_ascii_lowercase();
        assert!(
            comment_text(&stdout).contains(&format!("OAUTH2_PROXY_{var}: oauth2-proxy read it from Secret oauth2-proxy-gitlab key {} at run time; give labgate the same value as LABGATE__GITLAB__{var} (env valueFrom the same Secret oauth2-proxy-gitlab key {})", key.replace('_', "-"), key.replace('_', "-"))),
            "{var}: {stdout}"
        );
        assert!(
            stderr.contains(&format!("warning: OAUTH2_PROXY_{var}: oauth2-proxy read it from Secret oauth2-proxy-gitlab key {}", key.replace('_', "-"))),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("gitlab.{key}")), "{stderr}");
    }
    assert!(
        comment_text(&stdout).contains("config.existingSecret = \"oauth2-proxy-gitlab\": the chart passes that Secret's key client-id as OAUTH2_PROXY_CLIENT_ID, key client-secret as OAUTH2_PROXY_CLIENT_SECRET, key cookie-secret as OAUTH2_PROXY_COOKIE_SECRET"),
        "{stdout}"
    );
    // Given so (the test sets LABGATE__GITLAB__CLIENT_ID and _SECRET), it passes `labgate
    // check` and runs.
    let r = migrate_and_run(rules).await;
    let said = comment_text(&r.migrated);
    assert!(r.migrated.contains("store = \"redis\""));
    for want in [
        "sessionStorage.type = \"redis\" (sessionStorage.redis.clientType standalone): the chart passes OAUTH2_PROXY_SESSION_STORE_TYPE, OAUTH2_PROXY_REDIS_CONNECTION_URL",
        "config.upstreams (the chart's default) = [\"file:///dev/null\"]: forward-auth only",
        "config.emailDomains = [\"*\"]: no email domain rule",
    ] {
        assert!(said.contains(want), "{want:?} not in\n{}", r.migrated);
    }
    let admitted = every_user_gets_oauth2_proxy_s_answer(rules, &r).await;
    let names: Vec<&str> = admitted.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["alice", "frank", "heidi"],
        "members of acme itself (any role), developers of acme/app"
    );
    let (_, heidi) = admitted.iter().find(|(n, _)| n == "heidi").unwrap();
    let auth = heidi
        .get(format!("{}/oauth2/auth", r.front))
        .send()
        .await
        .unwrap();
    assert_eq!(auth.headers()["x-auth-request-user"], "heidi");
}

/// `deployment-singular-env.yaml`: options as variables named after the flags. oauth2-proxy
/// v7.6.0 ignored `OAUTH2_PROXY_GITLAB_GROUP`; the migration applies it as meant and says so,
/// and the users labgate now refuses are exactly those v7.6.0 let in without the rule.
#[tokio::test]
async fn singular_env_names_are_migrated_as_meant_and_said_to_be_ignored() {
    let rules = &CASES[4];
    let r = migrate_and_run(rules).await;
    let said = comment_text(&r.migrated);
    for want in [
        "OAUTH2_PROXY_GITLAB_GROUP = [\"acme\"]: oauth2-proxy v7.6.0 (the version its image names) ignores this variable: v6.0.0 renamed it OAUTH2_PROXY_GITLAB_GROUPS (v5.1.1 and earlier read it); migrated as meant, as gitlab_groups: oauth2-proxy ran without this setting, and labgate now applies it",
        "OAUTH2_PROXY_WHITELIST_DOMAIN = [\".example.com\"]: oauth2-proxy v7.6.0 (the version its image names) does not read this variable, and no version does (checked up to v7.15.3): a variable is named after the config key, OAUTH2_PROXY_WHITELIST_DOMAINS",
        "OAUTH2_PROXY_GITLAB_GROUP=[\"acme\"]: as \"acme:member\"",
    ] {
        assert!(said.contains(want), "{want:?} not in\n{}", r.migrated);
    }
    for var in ["GITLAB_GROUP", "WHITELIST_DOMAIN"] {
        assert!(
            r.stderr.contains(&format!(
                "warning: OAUTH2_PROXY_{var}: oauth2-proxy ignored this variable (the name is OAUTH2_PROXY_{var}S)"
            )),
            "{}",
            r.stderr
        );
    }
    // The names oauth2-proxy reads are not remarked upon.
    assert!(!said.contains("OAUTH2_PROXY_EMAIL_DOMAINS = "), "{said}");
    let admitted = every_user_gets_oauth2_proxy_s_answer(rules, &r).await;
    let as_run = O2p {
        groups: &[],
        ..*rules
    };
    let now_refused: Vec<&str> = r
        .fixture
        .users
        .iter()
        .map(|u| u.username.as_str())
        .filter(|u| {
            oauth2_proxy_admits(&as_run, &r.fixture, u) && !admitted.iter().any(|(n, _)| n == u)
        })
        .collect();
    assert!(
        !now_refused.is_empty(),
        "the ignored rule made a difference"
    );
    for u in &now_refused {
        assert!(
            !oauth2_proxy_admits(rules, &r.fixture, u),
            "{u}: refused only by the group rule"
        );
    }
}

#[test]
fn the_oracle_reads_oauth2_proxy_s_rules() {
    // The oracle itself, on cases whose answers oauth2-proxy's code makes plain.
    let f = fixture();
    let rules = |groups, projects, email_domains| O2p {
        file: "",
        args: false,
        groups,
        projects,
        email_domains,
        forward_auth: false,
        redis: false,
        credentials_from_secret: false,
        helm: false,
    };
    let any = rules(&[], &[], &["*"]);
    assert!(oauth2_proxy_admits(&any, &f, "mallory"));
    assert!(!oauth2_proxy_admits(&any, &f, "erin"), "unverified email");
    assert!(!oauth2_proxy_admits(&any, &f, "blocked"));
    let acme_team = rules(&["acme/team"], &[], &["*"]);
    assert!(
        oauth2_proxy_admits(&acme_team, &f, "alice"),
        "acme/team is in her claim"
    );
    assert!(
        !oauth2_proxy_admits(&acme_team, &f, "judy"),
        "a sub-subgroup only"
    );
    let sub = rules(&[], &[], &[".example.com"]);
    assert!(oauth2_proxy_admits(&sub, &f, "grace"));
    assert!(
        !oauth2_proxy_admits(&sub, &f, "alice"),
        "example.com itself"
    );
    let app = rules(&[], &[("acme/app", level::REPORTER)], &["*"]);
    assert!(oauth2_proxy_admits(&app, &f, "bob"));
    assert!(!oauth2_proxy_admits(&app, &f, "ivan"), "a guest");
    let archived = rules(&[], &[("acme/archived", level::GUEST)], &["*"]);
    assert!(!oauth2_proxy_admits(&archived, &f, "alice"));
}

#[test]
fn a_config_that_cannot_be_migrated_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o2p.cfg");
    std::fs::write(
        &path,
        "provider = \"github\"\ngithub_org = \"acme\"\nclient_id = \"x\"\nclient_secret = \"y\"\nemail_domains = [\"*\"]\n",
    )
    .unwrap();
    let out = labgate(
        &[
            "migrate",
            "oauth2-proxy",
            "--config",
            path.to_str().unwrap(),
        ],
        &[],
    )
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("provider = \"github\": labgate signs in with GitLab only"),
        "{stderr}"
    );
    assert!(
        stdout.contains("github_org = \"acme\": an option of oauth2-proxy's GitHub provider"),
        "{stdout}"
    );
    // And a labgate config written with oauth2-proxy's spellings is refused with labgate's.
    let labgate_file = dir.path().join("labgate.toml");
    std::fs::write(
        &labgate_file,
        format!(
            "[server]\npublic_url = \"https://app.example.com\"\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
             [gitlab]\nclient_id = \"x\"\nclient_secret = \"{}\"\n[session]\ncookie_secret = \"{}\"\n\
             [access]\nallowed_projects = [\"acme/app=30\"]\nallowed_email_domains = [\"*\"]\n",
            test_client_secret(),
            test_cookie_secret()
        ),
    )
    .unwrap();
    let out = labgate(&["check", "--config", labgate_file.to_str().unwrap()], &[])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("access.allowed_projects[0]: \"acme/app=30\" is oauth2-proxy's gitlab_projects syntax; labgate writes \"acme/app:developer\""), "{stderr}");
    assert!(
        stderr.contains("access.allowed_email_domains[0]")
            && stderr.contains("access.allow_any_gitlab_user = true"),
        "{stderr}"
    );
}

/// A value in the oauth2-proxy input that holds line breaks is shown inside its comment;
/// it never becomes a live line of the labgate config (here: a public route for every path).
#[test]
fn line_breaks_in_the_input_cannot_write_labgate_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deployment.yaml");
    std::fs::write(
        &path,
        "- --provider=gitlab\n- --client-id=x\n- --email-domain=example.com\n\
         - \"--htpasswd-file=/x\\n[[access.public]]\\npath = '^/'\\r\\n#\"\n",
    )
    .unwrap();
    let out = labgate(
        &["migrate", "oauth2-proxy", "--args", path.to_str().unwrap()],
        &[],
    )
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    let config: toml::Table = toml::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    let access = config.get("access").and_then(|a| a.as_table());
    assert!(
        access.is_none_or(|a| !a.contains_key("public")),
        "an input value became a public route:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("htpasswd"), "{stdout}");
}

/// `many-apps.yaml`: two oauth2-proxy Deployments, one per app (a wiki for acme, Grafana for
/// acme/team with an eng.example.com address), merged into one labgate that serves both by
/// host. The output passes `labgate check`; then, served, each host answers as its own
/// oauth2-proxy did for every stand-in user, public paths are public on their own host only,
/// and a host of neither app is refused.
#[tokio::test]
async fn one_oauth2_proxy_per_app_becomes_one_labgate_serving_each_host() {
    let wiki_rules = O2p {
        file: "many-apps.yaml",
        args: true,
        groups: &["acme"],
        projects: &[],
        email_domains: &["*"],
        forward_auth: false,
        redis: false,
        credentials_from_secret: true,
        helm: false,
    };
    let grafana_rules = O2p {
        groups: &["acme/team"],
        email_domains: &["eng.example.com"],
        ..wiki_rules
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let wiki = format!("http://wiki.example.com:{port}");
    let grafana = format!("http://grafana.example.com:{port}");
    let mut fixture = fixture();
    fixture.applications[0].secret = test_client_secret().into();
    for front in [&wiki, &grafana] {
        fixture.applications[0]
            .redirect_uris
            .push(format!("{front}/oauth2/callback"));
    }
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gitlab = StandIn::start(gl, fixture.clone(), "");
    let (wiki_echo, grafana_echo) = (start_echo().await, start_echo().await);
    let data: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/data/oauth2-proxy",
        wiki_rules.file,
    ]
    .iter()
    .collect();
    let input = std::fs::read_to_string(&data)
        .unwrap()
        .replace("https://gitlab.example.com", &gitlab.base_url)
        .replace("https://wiki.example.com", &wiki)
        .replace("https://grafana.example.com", &grafana)
        .replace("0.0.0.0:4180", &format!("127.0.0.1:{port}"))
        .replace(
            "http://wiki.wiki.svc.cluster.local:8080/",
            &format!("{wiki_echo}/"),
        )
        .replace(
            "http://grafana.monitoring.svc.cluster.local:3000",
            &grafana_echo,
        );
    let input_path = dir.path().join(wiki_rules.file);
    std::fs::write(&input_path, &input).unwrap();
    // The credentials come from a Secret; plain http in the test, so no Secure cookies.
    let env = vec![
        ("LABGATE__LOG__LEVEL".to_owned(), "warn".to_owned()),
        (
            "LABGATE__GITLAB__CLIENT_ID".to_owned(),
            "labgate-dev-client-id".to_owned(),
        ),
        (
            "LABGATE__GITLAB__CLIENT_SECRET".to_owned(),
            test_client_secret().to_owned(),
        ),
        (
            "LABGATE__SESSION__COOKIE_SECURE".to_owned(),
            "false".to_owned(),
        ),
    ];
    let out = labgate(
        &[
            "migrate",
            "oauth2-proxy",
            "--args",
            input_path.to_str().unwrap(),
        ],
        &env,
    )
    .output()
    .unwrap();
    let (migrated, stderr) = text(&out);
    assert!(out.status.success(), "migrate: {stderr}\n{migrated}");
    assert!(stderr.contains("passes `labgate check`"), "{stderr}");
    let config: toml::Table = toml::from_str(&migrated).unwrap();
    let hosts: Vec<String> = config["upstream"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["hosts"].as_array().unwrap().clone())
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hosts, ["wiki.example.com", "grafana.example.com"]);
    assert_eq!(
        config["session"]["cookie_domain"].as_str(),
        Some(".example.com")
    );
    let path = dir.path().join("labgate.toml");
    std::fs::write(&path, &migrated).unwrap();
    let check = labgate(&["check", "--config", path.to_str().unwrap()], &env)
        .output()
        .unwrap();
    assert!(check.status.success(), "labgate check: {:?}", text(&check));
    let _labgate = Proc(
        labgate(&["run", "--config", path.to_str().unwrap()], &env)
            .spawn()
            .unwrap(),
    );
    wait_for_port(port).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = || {
        Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("wiki.example.com", addr)
            .resolve("grafana.example.com", addr)
            .resolve("elsewhere.example.org", addr)
            .build()
            .unwrap()
    };
    // Each app's public path is public on its own host only.
    let anonymous = client();
    for (url, want) in [
        (format!("{wiki}/healthz"), StatusCode::OK),
        (format!("{grafana}/healthz"), StatusCode::UNAUTHORIZED),
        (format!("{grafana}/api/health"), StatusCode::OK),
        (format!("{wiki}/api/health"), StatusCode::UNAUTHORIZED),
        (
            format!("http://elsewhere.example.org:{port}/healthz"),
            StatusCode::MISDIRECTED_REQUEST,
        ),
    ] {
        let (status, body) = get_json(&anonymous, &url).await;
        assert_eq!(status, want, "{url}: {body}");
    }
    // Everyone signs in once (at public_url, the wiki's host) and gets each app's answer.
    let mut answers = Vec::new();
    for u in &fixture.users {
        let c = client();
        let signed = signed_in(&c, &wiki, &gitlab, &u.username).await;
        for (front, rules) in [(&wiki, &wiki_rules), (&grafana, &grafana_rules)] {
            let want = oauth2_proxy_admits(rules, &fixture, &u.username);
            let got = signed && app_lets_in(&c, &format!("{front}/"), StatusCode::OK).await;
            answers.push((u.username.clone(), front.clone(), want, got));
        }
    }
    let wrong: Vec<_> = answers.iter().filter(|(_, _, w, g)| w != g).collect();
    assert!(
        wrong.is_empty(),
        "(user, app, oauth2-proxy, labgate) differ: {wrong:?}\n{migrated}"
    );
    for front in [&wiki, &grafana] {
        let theirs: Vec<bool> = answers
            .iter()
            .filter(|(_, f, _, _)| f == front)
            .map(|(_, _, w, _)| *w)
            .collect();
        assert!(
            theirs.contains(&true) && theirs.contains(&false),
            "{front}: the rules tell users apart"
        );
    }
    let differ = fixture.users.iter().any(|u| {
        oauth2_proxy_admits(&wiki_rules, &fixture, &u.username)
            != oauth2_proxy_admits(&grafana_rules, &fixture, &u.username)
    });
    assert!(differ, "the two apps admit different people");
}
