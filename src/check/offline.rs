//! `labgate check` without GitLab: the configuration described with secrets redacted,
//! notes about the setup, and the report around the online checks.

use crate::config::Config;

/// The effective configuration, secrets redacted, for `labgate check`.
fn describe(c: &Config) -> String {
    let s = &c.server;
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        out.push_str(&format!("{k:<34} = {v}\n"));
    };
    line("server.listen", s.listen.to_string());
    line("server.public_url", s.public_base().to_owned());
    line("server.prefix", s.prefix.clone());
    line(
        "server.trusted_proxies",
        format!(
            "{:?}",
            s.trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ),
    );
    line(
        "server.forward_auth_source",
        format!("{:?}", s.forward_auth_source.name()),
    );
    line(
        "server.allowed_redirect_domains",
        format!("{:?}", s.allowed_redirect_domains),
    );
    line("server.skip_sign_in_page", s.skip_sign_in_page.to_string());
    line("server.app_name", format!("{:?}", s.app_name));
    line("log.format", format!("{:?}", c.log.format).to_lowercase());
    line("log.level", c.log.level.clone());
    match &c.tracing.otlp_endpoint {
        Some(endpoint) => {
            line("tracing.otlp_endpoint", endpoint.to_string());
            line(
                "tracing.service_name",
                format!("{:?}", c.tracing.service_name),
            );
            line("tracing.sample_ratio", c.tracing.sample_ratio.to_string());
        }
        None => line(
            "tracing.otlp_endpoint",
            "(none: spans are not exported)".into(),
        ),
    }
    for (i, u) in c.upstreams.iter().enumerate() {
        let key = if c.upstreams.len() > 1 || !u.hosts.is_empty() {
            format!("upstream[{i}]")
        } else {
            "upstream".to_owned()
        };
        if !u.hosts.is_empty() {
            let hosts: Vec<String> = u.hosts.iter().map(ToString::to_string).collect();
            line(&format!("{key}.hosts"), format!("{hosts:?}"));
        }
        line(&format!("{key}.url"), u.url.clone());
        line(
            &format!("{key}.timeout"),
            humantime::format_duration(u.timeout).to_string(),
        );
    }
    line("gitlab.url", c.gitlab.url.clone());
    line("gitlab.client_id", c.gitlab.client_id.clone());
    line("gitlab.client_secret", "<redacted>".into());
    line("gitlab.scopes", format!("{:?}", c.gitlab.scopes));
    line(
        "session.store",
        format!("{:?}", c.session.store).to_lowercase(),
    );
    line("session.cookie_name", c.session.cookie_name.clone());
    line(
        "session.cookie_secret",
        format!("<redacted> ({} key(s))", c.session.cookie_secrets.len()),
    );
    line("session.cookie_secure", c.session.cookie_secure.to_string());
    line(
        "session.cookie_samesite",
        format!("{:?}", c.session.cookie_samesite).to_lowercase(),
    );
    line(
        "session.lifetime",
        humantime::format_duration(c.session.lifetime).to_string(),
    );
    line(
        "session.revalidate",
        humantime::format_duration(c.session.revalidate).to_string(),
    );
    line(
        "identity.assertion_header",
        c.identity.assertion_header.to_string(),
    );
    line(
        "identity.audience",
        match &c.identity.audience {
            Some(a) => a.clone(),
            None if s.hosts.many => "(each app's origin, e.g. https://wiki.example.com)".into(),
            None => format!("(public_url's origin: {})", s.public_base()),
        },
    );
    line(
        "identity.assertion_lifetime",
        humantime::format_duration(c.identity.assertion_lifetime).to_string(),
    );
    line(
        "identity.signing_key_files",
        if c.identity.signing_key_files.is_empty() {
            "(none: a key is generated at start; single replica only)".into()
        } else {
            format!("{:?}", c.identity.signing_key_files)
        },
    );
    line(
        "identity.pass_access_token",
        c.identity.pass_access_token.to_string(),
    );
    line(
        "identity.pass_authorization",
        c.identity.pass_authorization.to_string(),
    );
    out
}

/// Notes `labgate check` adds about the setup.
pub fn notes(c: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if c.server.listen.ip().is_loopback() {
        notes.push(format!(
            "server.listen = \"{}\" answers on this machine only: in a container or a Kubernetes Pod a Service or front proxy elsewhere cannot reach it (\"0.0.0.0:{}\" listens on every interface)",
            c.server.listen,
            c.server.listen.port()
        ));
    }
    if !c.gitlab.oidc() {
        notes.push(
            "gitlab.scopes has no \"openid\": sign-in uses plain OAuth2 and /api/v4/user; group memberships are not available, so group rules cannot be used".into(),
        );
    }
    if c.gitlab.has_scope("read_api") {
        notes.push(
            "the GitLab application must allow the read_api scope (project rules need it)".into(),
        );
    }
    if c.gitlab.has_scope("read_user") {
        notes.push("the GitLab application must allow the read_user scope".into());
    }
    for p in c.access.unanchored_public() {
        notes.push(format!(
            "access.public path {p:?} is not anchored: it makes every path containing a match public (e.g. /admin{p}); write \"^{p}\" or \"^{p}(/|$)\""
        ));
    }
    if c.access.names_users_by_name() {
        notes.push(
            "allowed_users / blocked_users name users by username: GitLab usernames can be changed (and a freed name taken by someone else); prefer \"id:<user id>\" (GET /api/v4/users?username=NAME shows the id)".into(),
        );
    }
    if !c.server.trusted_proxies.is_empty()
        && c.server.forward_auth_source == crate::config::FrontProxy::Auto
    {
        notes.push(
            "server.forward_auth_source is \"auto\": each forward-auth request is read from the one family of original-request headers it carries (one carrying two families is refused); with X-Forwarded-Uri/-Method (Traefik's and Caddy's) labgate cannot tell whether the proxy passes Set-Cookie on a 2xx answer, so a revalidated session reaches the browser on a redirect back to the page, as for Caddy; name your proxy (nginx, ingress-nginx, traefik, caddy, envoy) so that only its headers are read".into(),
        );
    }
    for net in &c.server.trusted_proxies {
        if net.prefix_len() < if net.addr().is_ipv4() { 9 } else { 33 } {
            notes.push(format!(
                "server.trusted_proxies has {net}: every address in it may name the client's address, scheme and host and, for forward-auth, the request judged; list your front proxies' own addresses or subnets"
            ));
        }
    }
    if !c.server.hosts.many
        && c.identity.pass_access_token == crate::config::TokenHosts::Every
        && (c.server.allowed_redirect_domains.len() > 1
            || c.server
                .allowed_redirect_domains
                .iter()
                .any(|d| d.starts_with('.')))
    {
        notes.push(
            "identity.pass_access_token = true with several redirect hosts: if labgate answers forward-auth for several apps, every one of them receives the person's GitLab token; name the hosts that need it (identity.pass_access_token = [\"wiki.example.com\"]) and the apps' hosts in [[route]] / [[upstream]] hosts".into(),
        );
    }
    for (i, u) in c.upstreams.iter().enumerate() {
        if u.hosts.len() < 2 {
            continue;
        }
        let uneven = c
            .access
            .routes
            .iter()
            .map(|r| &r.hosts)
            .chain(c.access.public.iter().map(|p| &p.hosts))
            .filter(|h| !h.is_empty())
            .any(|h| {
                let named = u.hosts.iter().filter(|p| h.contains(p)).count();
                named > 0 && named < u.hosts.len()
            });
        if uneven {
            let hosts: Vec<String> = u.hosts.iter().map(ToString::to_string).collect();
            notes.push(format!(
                "upstream[{i}] serves {} but a [[route]] or [[access.public]] names only some of them: the same app answers at each of those hosts with that host's rules only; name every host of the app in its rules",
                hosts.join(", ")
            ));
        }
    }
    if c.server.hosts.many {
        notes.push(
            "labgate serves several apps: each app's assertion names that app's origin as aud (e.g. https://wiki.example.com); each app must pin its own origin when verifying".into(),
        );
    }
    if c.session.cookie_secure && c.server.public_url.scheme() == "http" {
        notes.push(
            "server.public_url is http:// but session.cookie_secure = true: browsers will drop the cookies; use https or set cookie_secure = false for local testing".into(),
        );
    }
    notes
}

/// `labgate check [--online] [--json]`: the configuration described (secrets redacted),
/// the Redirect URI and the notes; with `online`, GitLab's answers. Exit 0 when all is
/// well, 1 when an online check failed.
pub fn report(config: &Config, online: bool, json: bool) -> std::process::ExitCode {
    use std::process::ExitCode;
    let redirect = crate::app::redirect_uri(config);
    let all_redirects = crate::app::redirect_uris(config);
    if !json {
        print!("{}", describe(config));
        if all_redirects.len() == 1 {
            println!("\nRedirect URI (paste into the GitLab application): {redirect}");
            if let Some((hosts, _)) = all_redirects.first().filter(|_| config.server.hosts.many) {
                println!("  for {hosts}");
            }
        } else {
            println!("\nRedirect URIs (paste each into the GitLab application, one per line):");
            for (hosts, uri) in &all_redirects {
                println!("  {uri}    ({hosts})");
            }
        }
        for n in notes(config) {
            println!("note: {n}");
        }
    }
    if !online {
        if json {
            println!(
                "{}",
                serde_json::json!({"config": "ok", "redirect_uri": redirect, "redirect_uris": all_redirects.iter().map(|(_, u)| u).collect::<Vec<_>>()})
            );
        } else {
            println!("\nconfiguration OK (run with --online to ask GitLab too)");
        }
        return ExitCode::SUCCESS;
    }
    let checks = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(super::run(config)),
        Err(e) => {
            eprintln!("labgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = checks.iter().any(super::Check::failed);
    if json {
        println!(
            "{}",
            serde_json::json!({"ok": !failed, "redirect_uri": redirect, "checks": checks})
        );
    } else {
        println!("\nOnline checks against {}:", config.gitlab.url);
        print!("{}", super::render(&checks));
        println!(
            "\n{}",
            if failed {
                "problems found"
            } else {
                "all checks passed"
            }
        );
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
