//! `labgate check --online` against the stand-in: each mis-setup is named with its fix.

use labgate::check::Check;
use labgate::dev::gitlab::{Fixture, StandIn};

use crate::harness::{test_client_secret, unpublished, TestCa};

struct Setup {
    gitlab: std::sync::Arc<StandIn>,
    _echo: tokio::net::TcpListener,
    echo_url: String,
}

async fn setup(tls: Option<&TestCa>) -> Setup {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut fixture = Fixture::demo();
    fixture.applications[0].redirect_uris = vec!["https://app.example.com/oauth2/callback".into()];
    let gitlab = StandIn::start_with_tls(l, fixture, "", tls.map(TestCa::acceptor));
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_url = format!("http://{}", echo.local_addr().unwrap());
    Setup {
        gitlab,
        _echo: echo,
        echo_url,
    }
}

fn config(s: &Setup, tweak: impl Fn(String) -> String) -> labgate::config::Config {
    labgate::config::load_str(&tweak(config_text(s))).unwrap()
}

fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

#[tokio::test]
async fn a_correct_setup_passes() {
    let s = setup(None).await;
    let checks = labgate::check::run(&config(&s, |t| t)).await;
    assert!(
        checks.iter().all(|c| !c.failed()),
        "{}",
        labgate::check::render(&checks)
    );
    assert_eq!(find(&checks, "secret").status, "ok");
    assert_eq!(find(&checks, "redirect-uri").status, "ok");
}

#[tokio::test]
async fn a_wrong_secret_is_named() {
    let s = setup(None).await;
    let checks = labgate::check::run(&config(&s, |t| {
        t.replace("gloas-labgate-dev-secret", "wrong")
    }))
    .await;
    let c = find(&checks, "secret");
    assert!(c.failed());
    assert!(c.detail.contains("invalid_client"));
    assert!(c.fix.as_ref().unwrap().contains("Renew secret"));
}

#[tokio::test]
async fn a_wrong_redirect_uri_prints_the_one_to_paste() {
    let s = setup(None).await;
    let checks = labgate::check::run(&config(&s, |t| {
        t.replace("https://app.example.com", "https://wiki.example.com")
    }))
    .await;
    let c = find(&checks, "redirect-uri");
    assert!(c.failed(), "{checks:?}");
    assert!(c
        .fix
        .as_ref()
        .unwrap()
        .contains("https://wiki.example.com/oauth2/callback"));
    assert_eq!(find(&checks, "application").status, "ok");
}

#[tokio::test]
async fn an_unknown_application_id_is_named() {
    let s = setup(None).await;
    let checks = labgate::check::run(&config(&s, |t| {
        t.replace(
            "client_id = \"labgate-dev-client-id\"",
            "client_id = \"nope\"",
        )
    }))
    .await;
    let c = find(&checks, "application");
    assert!(c.failed());
    assert!(c.fix.as_ref().unwrap().contains("gitlab.client_id"));
}

#[tokio::test]
async fn a_scope_the_application_does_not_allow_is_named() {
    let s = setup(None).await;
    s.gitlab.with_fixture(|f| {
        f.applications[0].scopes = vec!["openid".into(), "profile".into(), "email".into()]
    });
    // Project rules need read_api, which labgate adds to the scopes.
    let checks = labgate::check::run(&config(&s, |t| {
        t.replace(
            "allowed_groups = [\"acme\"]",
            "allowed_projects = [\"acme/app\"]",
        )
    }))
    .await;
    let c = find(&checks, "scopes");
    assert!(c.failed(), "{checks:?}");
    assert!(
        c.detail.contains("read_api") && !c.detail.contains("openid"),
        "{}",
        c.detail
    );
    assert!(c
        .fix
        .as_ref()
        .unwrap()
        .contains("tick the scope(s) read_api"));
}

#[tokio::test]
async fn an_unreachable_gitlab_is_named() {
    let s = setup(None).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let checks = labgate::check::run(&config(&s, |t| {
        t.replace(&s.gitlab.base_url, &format!("http://127.0.0.1:{port}"))
    }))
    .await;
    let c = find(&checks, "discovery");
    assert!(c.failed());
    assert!(c.fix.as_ref().unwrap().contains("gitlab.url"));
    assert_eq!(find(&checks, "secret").status, "skipped");
}

#[tokio::test]
async fn a_private_ca_without_ca_file_is_named_and_with_it_passes() {
    let ca = TestCa::new();
    let s = setup(Some(&ca)).await;
    assert!(s.gitlab.base_url.starts_with("https://"));
    let checks = labgate::check::run(&config(&s, |t| t)).await;
    let c = find(&checks, "discovery");
    assert!(c.failed());
    assert!(c.fix.as_ref().unwrap().contains("gitlab.ca_file"), "{c:?}");
    let with_ca = format!("ca_file = \"{}\"\n", ca.ca.display());
    let checks = labgate::check::run(&config(&s, |t| {
        t.replace("[gitlab]\n", &format!("[gitlab]\n{with_ca}"))
    }))
    .await;
    assert!(
        checks.iter().all(|c| !c.failed()),
        "{}",
        labgate::check::render(&checks)
    );
}

#[tokio::test]
async fn cookie_secure_over_plain_http_is_named() {
    let s = setup(None).await;
    let checks = labgate::check::run(&config(&s, |t| {
        t.replace("https://app.example.com", "http://app.example.com")
    }))
    .await;
    assert!(find(&checks, "cookies").failed());
}

#[test]
fn the_binary_exits_1_on_problems_and_prints_json() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (s, dir) = rt.block_on(async {
        let s = setup(None).await;
        let dir = tempfile::tempdir().unwrap();
        (s, dir)
    });
    // `labgate check` refuses the demo's published secret: this stand-in has its own.
    s.gitlab
        .with_fixture(|f| f.applications[0].secret = test_client_secret().into());
    let good = unpublished(&config_text(&s));
    let run = |text: &str, json: bool| {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let mut args = vec![
            "check".to_owned(),
            "--online".to_owned(),
            "--config".to_owned(),
            path.display().to_string(),
        ];
        if json {
            args.push("--json".into());
        }
        std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
            .args(&args)
            .env_remove("LABGATE_CONFIG")
            .output()
            .unwrap()
    };
    let _guard = rt.enter();
    let ok = run(&good, false);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let bad = run(&good.replace(test_client_secret(), "wrong"), true);
    assert_eq!(bad.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "secret" && c["status"] == "problem"));
    drop(rt);
}

fn config_text(s: &Setup) -> String {
    format!(
        "[server]\npublic_url = \"https://app.example.com\"\n[upstream]\nurl = \"{}\"\n\
         [gitlab]\nurl = \"{}\"\nclient_id = \"labgate-dev-client-id\"\nclient_secret = \"gloas-labgate-dev-secret\"\n\
         [session]\ncookie_secret = \"ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE=\"\n[access]\nallowed_groups = [\"acme\"]\n",
        s.echo_url, s.gitlab.base_url
    )
}

#[test]
fn a_loopback_listener_is_pointed_out() {
    let text = |listen: &str| {
        crate::harness::with_demo_addresses(&unpublished(&crate::harness::config_with(None, "")))
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"{listen}\""),
            )
    };
    let notes = |listen: &str| {
        labgate::check::notes(&labgate::config::load_str(&text(listen)).unwrap()).join("\n")
    };
    assert!(notes("127.0.0.1:4180").contains("answers on this machine only"));
    assert!(notes("[::1]:4180").contains("answers on this machine only"));
    assert!(!notes("0.0.0.0:4180").contains("answers on this machine only"));
}
