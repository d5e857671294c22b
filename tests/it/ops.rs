//! Operations: HTTPS with ALPN and certificate reload, a self-managed GitLab behind a private
//! CA, Prometheus metrics, JSON logs without secrets, the Kubernetes examples, the Dockerfile.

use std::io::BufRead;
use std::time::Duration;

use labgate::dev::gitlab::{Fixture, StandIn};
use labgate::dev::{Listeners, Stack};
use reqwest::header::ACCEPT;
use reqwest::{StatusCode, Version};

use crate::harness::*;

fn open_config(extra_server: &str) -> String {
    config_with(
        Some("[access]\nallow_any_gitlab_user = true\n\n[[access.public]]\npath = \"^/\"\n"),
        "",
    )
    .replace("[server]\n", &format!("[server]\n{extra_server}\n"))
}

fn tls_client(ca: &TestCa, http1: bool) -> reqwest::Client {
    let pem = std::fs::read(&ca.ca).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .use_rustls_tls();
    if http1 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

#[tokio::test]
async fn https_with_alpn_h2_and_http11_and_certificate_reload() {
    let ca = TestCa::new();
    let cfg = open_config(&format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\ntls_reload_interval = \"200ms\"",
        ca.cert.display().to_string(),
        ca.key.display().to_string()
    ));
    let s = stack(&cfg).await;
    let url = s.labgate_url.replacen("http://", "https://", 1);
    let h2 = tls_client(&ca, false);
    let r = h2
        .get(format!("{url}/x"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!((r.status(), r.version()), (StatusCode::OK, Version::HTTP_2));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["headers"]["x-forwarded-proto"],
        serde_json::json!(["https"])
    );
    let r = tls_client(&ca, true)
        .get(format!("{url}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status(), r.version()),
        (StatusCode::OK, Version::HTTP_11)
    );
    // Plain HTTP on the TLS port is refused.
    assert!(plain()
        .get(format!("{}/x", s.labgate_url))
        .send()
        .await
        .is_err());

    // cert-manager renews: new files from another CA, picked up without a restart.
    let renewed = TestCa::with_name("renewed CA");
    std::fs::copy(&renewed.cert, &ca.cert).unwrap();
    std::fs::copy(&renewed.key, &ca.key).unwrap();
    let new_client = tls_client(&renewed, false);
    let mut ok = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if new_client
            .get(format!("{url}/x"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "the renewed certificate is served");
    // The h2 connection opened before the renewal still works (not dropped).
    assert_eq!(
        h2.get(format!("{url}/y")).send().await.unwrap().status(),
        StatusCode::OK
    );
    // New connections no longer present the old certificate.
    assert!(tls_client(&ca, false)
        .get(format!("{url}/x"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn sign_in_against_a_gitlab_behind_a_private_ca() {
    let ca = TestCa::new();
    let mut l = Listeners::ephemeral().await.unwrap();
    l.gitlab_tls = Some(ca.acceptor());
    let cfg = config_with(None, "").replace(
        "[gitlab]\n",
        &format!("[gitlab]\nca_file = {:?}\n", ca.ca.display().to_string()),
    );
    let s = Stack::start(l, &cfg, Fixture::demo(), "").await.unwrap();
    assert!(s.gitlab.base_url.starts_with("https://"));
    // The test's browser must trust the stand-in too.
    let pem = std::fs::read(&ca.ca).unwrap();
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = flow(&c, &s, "alice", "/tls").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let (status, body) = get_json(&c, &format!("{}/tls", s.labgate_url)).await;
    assert_eq!(
        (status, body["user"].as_str()),
        (StatusCode::OK, Some("alice"))
    );
    // Without ca_file, labgate refuses to trust it: sign-in fails with a clear page.
    let s2 = {
        let mut l = Listeners::ephemeral().await.unwrap();
        l.gitlab_tls = Some(ca.acceptor());
        Stack::start(l, &config_with(None, ""), Fixture::demo(), "")
            .await
            .unwrap()
    };
    let r = c
        .get(format!("{}/oauth2/start", s2.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
}

/// Every sample line of a Prometheus text exposition: `name{labels} value`.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let re = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) ([0-9eE.+-]+|NaN|\+Inf|-Inf)$"#,
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let c = re
                .captures(l)
                .unwrap_or_else(|| panic!("not a Prometheus sample line: {l:?}"));
            (c[1].to_owned(), c[3].parse().unwrap_or(f64::NAN))
        })
        .collect()
}

fn sample(samples: &[(String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0.0, |(_, v)| *v)
}

#[tokio::test]
async fn metrics_parse_and_move_after_a_sign_in() {
    // Not on the public listener unless asked for.
    let s = stack(&config_with(None, "")).await;
    let r = plain()
        .get(format!("{}/oauth2/metrics", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let s =
        stack(&config_with(None, "").replace("[server]\n", "[server]\nmetrics_public = true\n"))
            .await;
    let before = parse_prometheus(
        &plain()
            .get(format!("{}/oauth2/metrics", s.labgate_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let c = signed_in(&s, "alice").await;
    get_json(&c, &format!("{}/page", s.labgate_url)).await;
    let _ = flow(&browser(), &s, "mallory", "/").await;
    let text = plain()
        .get(format!("{}/oauth2/metrics", s.labgate_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let after = parse_prometheus(&text);
    let ok = r#"labgate_sign_ins_total{outcome="ok"}"#;
    assert_eq!(sample(&after, ok), sample(&before, ok) + 1.0, "{text}");
    assert_eq!(
        sample(&after, r#"labgate_sign_ins_total{outcome="denied"}"#),
        1.0
    );
    assert!(
        sample(&after, r#"labgate_requests_total{class="2xx",route="app"}"#) >= 1.0,
        "{text}"
    );
    assert!(sample(&after, "labgate_upstream_duration_seconds_count") >= 1.0);
    assert!(sample(&after, "labgate_assertions_signed_total") >= 1.0);
    assert!(text.contains("labgate_open_connections"));
    assert!(text.contains("labgate_session_store_errors_total"));
}

#[tokio::test]
async fn json_logs_carry_request_ids_and_no_secrets() {
    // The real binary, logging JSON, with a separate metrics address.
    let port = free_port();
    let metrics_port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut fixture = Fixture::demo();
    fixture.applications[0]
        .redirect_uris
        .push(format!("{public}/oauth2/callback"));
    fixture.applications[0].secret = test_client_secret().into();
    let gitlab = StandIn::start(gl, fixture, "");
    let echo = start_echo().await;
    let cookie_secret = test_cookie_secret();
    let client_secret = test_client_secret();
    let cfg = format!(
        "[server]\npublic_url = \"{public}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\ntrusted_proxies = [\"127.0.0.1\"]\n[log]\nformat = \"json\"\nlevel = \"debug\"\n\
         [upstream]\nurl = \"{echo}\"\n[gitlab]\nurl = \"{}\"\nclient_id = \"labgate-dev-client-id\"\nclient_secret = \"{client_secret}\"\n\
         [session]\ncookie_secret = \"{cookie_secret}\"\ncookie_secure = false\n[access]\nallowed_groups = [\"acme\"]\n",
        gitlab.base_url
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labgate.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
        .args([
            "run",
            "--config",
            path.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if plain().get(format!("{public}/ping")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A sign-in and some requests, one with a trusted request id.
    let c = browser();
    let r = flow_parts(&c, &public, &gitlab, "alice", "/").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let session = session_cookie_header(&set_cookies(&r));
    let r = c
        .get(format!("{public}/x?token=secret-query"))
        .header("x-request-id", "trace-abc-123")
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["headers"]["x-request-id"],
        serde_json::json!(["trace-abc-123"]),
        "passed upstream"
    );
    // Metrics on their own address only.
    let m = plain()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(m.text().await.unwrap().contains("labgate_sign_ins_total"));
    assert_eq!(
        plain()
            .get(format!("{public}/oauth2/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stderr = child.stderr.take().unwrap();
    let _ = child.wait();
    let lines: Vec<String> = std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(lines.len() > 5);
    let mut saw_id = false;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["message"] == "request" && v["span"]["id"] == "trace-abc-123" {
            saw_id = true;
            assert_eq!(v["path"], "/x", "path without the query");
        }
        for secret in [
            "gloas-labgate-dev-secret",
            cookie_secret,
            "secret-query",
            &session[session.find('=').unwrap() + 1..],
        ] {
            assert!(!line.contains(secret), "a secret reached the log: {line}");
        }
    }
    assert!(saw_id, "the access line carries the request id");
    let all = lines.join("\n");
    assert!(all.contains("\"signed in\""), "audit event logged");
    // No access or refresh token: GitLab's are 64 hex characters.
    let hex64 = regex::Regex::new(r"[0-9a-f]{64}").unwrap();
    assert!(!hex64.is_match(&all), "a GitLab token reached the log");
}

fn yaml_docs(path: &str) -> Vec<serde_norway::Value> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn kind<'a>(docs: &'a [serde_norway::Value], k: &str) -> Vec<&'a serde_norway::Value> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(k))
        .collect()
}

/// Whether a label selector (`matchLabels`, or a Service's `selector`) is set and every one
/// of its labels is among `labels` (the pods carry more: component, part-of, version).
fn selects(selector: &serde_norway::Value, labels: &serde_norway::Value) -> bool {
    selector.as_mapping().is_some_and(|m| {
        !m.is_empty() && m.iter().all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    })
}

#[test]
fn kubernetes_examples_are_consistent() {
    // The Secrets are not in the manifests (they can be committed): their shape is here.
    let example_secrets = yaml_docs("deploy/kubernetes/example-secret.yaml");
    assert!(
        example_secrets.iter().all(|d| d["kind"] == "Secret"),
        "example-secret.yaml holds Secrets only"
    );
    for file in [
        "deploy/kubernetes/sidecar.yaml",
        "deploy/kubernetes/forward-auth.yaml",
        "deploy/ingress-nginx/ingress.yaml",
    ] {
        let docs = yaml_docs(file);
        assert!(!docs.is_empty(), "{file}");
        assert!(kind(&docs, "Secret").is_empty(), "{file}: no Secret");
        // The Secrets the file's pods mount, from example-secret.yaml.
        let mut mounted: Vec<&serde_norway::Value> = Vec::new();
        for d in kind(&docs, "Deployment") {
            let pod = &d["spec"]["template"]["spec"];
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            assert!(
                selects(&d["spec"]["selector"]["matchLabels"], labels),
                "{file}: selector matches the pod labels"
            );
            let volumes: Vec<&serde_norway::Value> =
                pod["volumes"].as_sequence().unwrap().iter().collect();
            for c in pod["containers"].as_sequence().unwrap() {
                let ports: Vec<&serde_norway::Value> = c["ports"]
                    .as_sequence()
                    .map(|p| p.iter().collect())
                    .unwrap_or_default();
                let port_ok = |p: &serde_norway::Value| {
                    ports
                        .iter()
                        .any(|cp| cp["name"] == *p || cp["containerPort"] == *p)
                };
                for probe in ["livenessProbe", "readinessProbe"] {
                    if c.get(probe).is_some() {
                        assert!(
                            port_ok(&c[probe]["httpGet"]["port"]),
                            "{file}: {probe} port exists"
                        );
                        let path = c[probe]["httpGet"]["path"].as_str().unwrap();
                        assert!(
                            path == "/ping" || path == "/ready",
                            "{file}: probe path {path}"
                        );
                    }
                }
                for m in c["volumeMounts"]
                    .as_sequence()
                    .map(|v| v.iter().collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    let vol = volumes
                        .iter()
                        .find(|v| v["name"] == m["name"])
                        .unwrap_or_else(|| panic!("{file}: volume {:?}", m["name"]));
                    if let Some(secret) = vol["secret"]["secretName"].as_str() {
                        let found = kind(&example_secrets, "Secret")
                            .into_iter()
                            .find(|s| s["metadata"]["name"] == secret)
                            .unwrap_or_else(|| {
                                panic!("{file}: Secret {secret} in example-secret.yaml")
                            });
                        mounted.push(found);
                    }
                    if let Some(cm) = vol["configMap"]["name"].as_str() {
                        assert!(
                            kind(&docs, "ConfigMap")
                                .iter()
                                .any(|s| s["metadata"]["name"] == cm),
                            "{file}: ConfigMap {cm}"
                        );
                    }
                }
            }
            for svc in kind(&docs, "Service") {
                if selects(&svc["spec"]["selector"], labels) {
                    for p in svc["spec"]["ports"].as_sequence().unwrap() {
                        let ok = pod["containers"].as_sequence().unwrap().iter().any(|c| {
                            c["ports"].as_sequence().is_some_and(|ps| {
                                ps.iter().any(|cp| {
                                    cp["name"] == p["targetPort"]
                                        || cp["containerPort"] == p["targetPort"]
                                })
                            })
                        });
                        assert!(ok, "{file}: Service targetPort {:?}", p["targetPort"]);
                    }
                }
            }
        }
        // The ConfigMap's labgate.toml is a valid config once its secret files exist, and
        // not before: the example Secret holds placeholders that fail validation.
        for cm in kind(&docs, "ConfigMap") {
            let toml = cm["data"]["labgate.toml"].as_str().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let mut text = toml.to_owned();
            let mut shipped = toml.to_owned();
            for secret in &mounted {
                for (k, v) in secret["stringData"].as_mapping().unwrap() {
                    let name = k.as_str().unwrap();
                    let value = if name.ends_with(".pem") {
                        labgate::identity::generate_es256_pem()
                    } else if name == "cookie-secret" {
                        let shipped_file = dir.path().join("shipped-cookie-secret");
                        std::fs::write(&shipped_file, v.as_str().unwrap()).unwrap();
                        shipped = shipped.replace(
                            &format!("/secrets/{name}"),
                            &shipped_file.display().to_string(),
                        );
                        test_cookie_secret().to_owned()
                    } else {
                        v.as_str().unwrap().to_owned()
                    };
                    std::fs::write(dir.path().join(name), value).unwrap();
                    text = text.replace(
                        &format!("/secrets/{name}"),
                        &dir.path().join(name).display().to_string(),
                    );
                }
            }
            assert!(
                !text.contains("/secrets/"),
                "{file}: every /secrets/ file is in the Secret"
            );
            labgate::config::load_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            let e = labgate::config::load_str(&shipped)
                .expect_err("the shipped cookie-secret placeholder must not validate");
            assert!(
                e.to_string().contains("session.cookie_secret"),
                "{file}: {e}"
            );
        }
    }
}
