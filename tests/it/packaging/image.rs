//! The container image, built and run. `scripts/image` builds the Dockerfile's runtime layout
//! with buildah from a labgate binary (no base image is pulled: the libraries `ldd` names, CA
//! certificates, a passwd entry for 65532, LICENSE). The binary is the production build when
//! `LABGATE_IMAGE_BIN` names one (scripts/test builds it with `--no-default-features`), else
//! the suite's own. The image is then inspected (user, entrypoint, labels, layers) and run:
//! with podman where this machine lets containers run, else from the image's own root
//! filesystem, mounted read-only, as user 65532 (a sandbox without setrlimit refuses every
//! OCI runtime: `crun: setrlimit RLIMIT_NOFILE: Operation not permitted`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::*;

/// An image built for this test, removed afterwards.
struct Image {
    tag: String,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("buildah")
            .args(["rmi", "-f", &self.tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The binary the image is built from.
fn image_binary() -> (PathBuf, bool) {
    match std::env::var_os("LABGATE_IMAGE_BIN") {
        Some(b) => (PathBuf::from(b), true),
        None => (PathBuf::from(env!("CARGO_BIN_EXE_labgate")), false),
    }
}

fn buildah(args: &[&str]) -> String {
    let out = Command::new("buildah").args(args).output().expect(
        "buildah is needed for this test: scripts/test installs it (apt-get install buildah)",
    );
    assert!(
        out.status.success(),
        "buildah {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The image's root filesystem, mounted while this lives.
struct Mounted {
    container: String,
    root: PathBuf,
}

impl Mounted {
    fn of(image: &Image) -> Mounted {
        let container = buildah(&["from", "--quiet", &image.tag]);
        let root = PathBuf::from(buildah(&["mount", &container]));
        Mounted { container, root }
    }

    /// `labgate ARGS` as the image runs it: user 65532:65532, the image's environment, the
    /// root filesystem read-only, `config_dir` mounted read-only at /etc/labgate.
    fn labgate(&self, config_dir: &Path, env: &[String], args: &[&str]) -> Command {
        let root = self.root.display().to_string();
        let script = format!(
            "set -e; mount --bind {root} {root}; mount --bind {cfg} {root}/etc/labgate; \
             mount -o remount,bind,ro {root}/etc/labgate; mount -o remount,bind,ro {root}; \
             c=$(command -v chroot); \
             exec env -i {env} \"$c\" --userspec=65532:65532 {root} /usr/local/bin/labgate \"$@\"",
            cfg = config_dir.display(),
            env = env.join(" "),
        );
        let mut c = Command::new("unshare");
        c.args(["--mount", "--", "sh", "-c", &script, "labgate"])
            .args(args);
        c
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("buildah")
            .args(["rm", &self.container])
            .stdout(Stdio::null())
            .status();
    }
}

#[tokio::test]
async fn the_image_is_built_from_scratch_inspected_and_run_read_only_as_65532() {
    let (bin, production) = image_binary();
    let tag = format!("localhost/labgate-test:{}", std::process::id());
    let out = Command::new(crate::packaging::root().join("scripts/image"))
        .arg(&bin)
        .arg(&tag)
        .output()
        .expect("run scripts/image");
    assert!(
        out.status.success(),
        "scripts/image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = Image { tag };

    // Inspected: what a runtime and a registry read.
    let inspect: Value =
        serde_json::from_str(&buildah(&["inspect", "--type", "image", &image.tag])).unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532", "numeric, for runAsNonRoot");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/labgate"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["run"]));
    assert!(config["ExposedPorts"]["4180/tcp"].is_object(), "{config}");
    let env: Vec<String> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        env.contains(&"LABGATE_CONFIG=/etc/labgate/labgate.toml".to_owned()),
        "{env:?}"
    );
    let labels = &config["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert_eq!(labels["org.opencontainers.image.title"], "labgate");
    assert_eq!(
        labels["org.opencontainers.image.revision"]
            .as_str()
            .unwrap()
            .len(),
        40,
        "the commit: {labels}"
    );
    assert_eq!(
        inspect["OCIv1"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Its files: the binary and what it links, nothing to log in with, the licence.
    let mounted = Mounted::of(&image);
    let root = &mounted.root;
    for file in [
        "usr/local/bin/labgate",
        "etc/ssl/certs/ca-certificates.crt",
        "usr/share/doc/labgate/LICENSE",
        "etc/labgate/labgate.example.toml",
    ] {
        assert!(root.join(file).is_file(), "{file} in the image");
    }
    for absent in ["bin/sh", "usr/bin/env", "bin/bash"] {
        assert!(!root.join(absent).exists(), "no {absent} in the image");
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/doc/labgate/LICENSE")).unwrap(),
        std::fs::read_to_string(crate::packaging::root().join("LICENSE")).unwrap()
    );

    // Run: podman where containers can run here; else the image's own filesystem.
    let podman = Command::new("podman")
        .args(["run", "--rm", "--read-only", &image.tag, "--version"])
        .output();
    match podman {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert_eq!(
                text.trim(),
                format!("labgate {}", env!("CARGO_PKG_VERSION"))
            );
        }
        Ok(o) => eprintln!(
            "podman cannot run containers here ({}); running the image's root filesystem instead",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("no podman ({e}); running the image's root filesystem instead"),
    }
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut fixture = labgate::dev::gitlab::Fixture::demo();
    fixture.applications[0].secret = test_client_secret().into();
    let gitlab = labgate::dev::gitlab::StandIn::start(gl, fixture, "");
    let port = free_port();
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        config_dir.path().join("labgate.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             [log]\nlevel = \"error\"\n[upstream]\nurl = \"http://127.0.0.1:9\"\n\
             [gitlab]\nurl = \"{}\"\nclient_id = \"labgate-dev-client-id\"\nclient_secret = \"{}\"\n\
             [session]\ncookie_secret = \"{}\"\ncookie_secure = false\n[access]\nallowed_groups = [\"acme\"]\n",
            gitlab.base_url,
            test_client_secret(),
            test_cookie_secret()
        ),
    )
    .unwrap();
    let version = mounted
        .labgate(config_dir.path(), &env, &["--version"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("labgate {}", env!("CARGO_PKG_VERSION")),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
    // The mounted configuration, checked by the image's labgate.
    let check = mounted
        .labgate(config_dir.path(), &env, &["check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "labgate check in the image: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Served, as 65532, healthy by its own healthcheck (the image's HEALTHCHECK).
    let mut served = mounted
        .labgate(config_dir.path(), &env, &["run"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", served.id())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65532"),
        "{uid}"
    );
    let health = mounted
        .labgate(config_dir.path(), &env, &["healthcheck", "--ready"])
        .output()
        .unwrap();
    let _ = served.kill();
    let _ = served.wait();
    assert!(
        health.status.success(),
        "healthcheck in the image: {} {}",
        String::from_utf8_lossy(&health.stdout),
        String::from_utf8_lossy(&health.stderr)
    );
    if production {
        // The production build has no demo.
        let dev = mounted
            .labgate(config_dir.path(), &env, &["dev"])
            .output()
            .unwrap();
        assert!(!dev.status.success());
    }
}
