//! Several oauth2-proxy instances, one per app, merged into one labgate that serves each app
//! by its host (SPEC §9 "Many apps"). oauth2-proxy routes by path only (see `upstream`), so
//! one instance per host is how it protects several apps (its issues #2212 and #3330; routing
//! by host is only proposed, pull request #3457): each instance's `redirect_url` names the
//! host it served.
//!
//! - What belongs to one app ([`PER_APP`]) is mapped for its host: an `[[upstream]]`
//!   entry, `[[access.public]]` entries with `hosts`, the hosts that receive tokens.
//! - Who may enter: one `[access]` when every app agrees. Otherwise `[access]` admits anyone
//!   one of the apps admitted (who may sign in at all) and a `[[route]]` per host holds that
//!   app's own rules, so each host keeps its oauth2-proxy's answers.
//! - Anything else labgate has once: the apps must agree (else the migration fails, naming
//!   the values), except [`FIRST_WINS`], where the first app's is used and the others are
//!   listed.
//! - Cookies: a cookie domain that every app used and that covers every host gives one
//!   sign-in for all of them; otherwise none, and each host keeps its own session and signs
//!   in through its own Redirect URI, as each oauth2-proxy did.

use super::domains::covers;
use super::upstream::Target;
use super::{arr, s, said, M};
use crate::migrate::doc::Entry;
use crate::migrate::options::Kind;
use crate::migrate::source::{Options, Setting, Value};

/// Settings that belong to one app: mapped for its host.
const PER_APP: &[&str] = &[
    "redirect_url",
    "upstreams",
    "upstream_timeout",
    "pass_access_token",
    "pass_authorization_header",
    "skip_auth_regex",
    "skip_auth_routes",
    "skip_auth_preflight",
    "cookie_domains",
    "whitelist_domains",
];

/// Who may enter: one `[access]` when the apps agree, else a `[[route]]` per host.
const ACCESS: &[&str] = &[
    "gitlab_groups",
    "gitlab_projects",
    "email_domains",
    "allowed_groups",
];

/// labgate has one of each; when the apps differ, the first app's is used.
const FIRST_WINS: &[&str] = &[
    "client_id",
    "client_secret",
    "client_secret_file",
    "cookie_secret",
    "cookie_secret_file",
    "cookie_name",
    "http_address",
    "https_address",
    "metrics_address",
];

/// oauth2-proxy's switches that are on unless turned off (legacy_options.go, options.go,
/// cookie.go, logging.go): saying `true` is saying nothing.
const TRUE_BY_DEFAULT: &[&str] = &[
    "pass_host_header",
    "proxy_websockets",
    "cookie_secure",
    "cookie_httponly",
    "pass_basic_auth",
    "pass_user_headers",
    "skip_auth_strip_headers",
    "bearer_token_login_fallback",
    "insecure_oidc_skip_nonce",
    "auth_logging",
    "request_logging",
    "standard_logging",
    "logging_local_time",
];

/// One oauth2-proxy instance: the app it protected.
#[derive(Debug)]
pub(crate) struct App {
    /// Its workload's name.
    pub(crate) label: String,
    /// Its settings that are mapped per app.
    pub(crate) o: Options,
    /// Its host (redirect_url's, canonical), when it has one.
    pub(crate) host: Option<String>,
    /// Its redirect_url, when it parses.
    pub(crate) redirect: Option<url::Url>,
}

/// An app and its `cookie_domains`, if set.
type AppCookies<'a> = (&'a App, Option<(&'a Setting, Vec<String>)>);

/// The instances, split into what labgate has once and what each app has.
pub(super) struct Merged {
    /// Settings of every app (or of the first, for [`FIRST_WINS`] and disagreements).
    pub(super) shared: Options,
    /// Each app's own settings.
    pub(super) apps: Vec<App>,
    /// The apps disagree on who may enter.
    pub(super) per_app_access: bool,
    /// Why the merge cannot be used as it is.
    pub(super) problems: Vec<String>,
    /// Settings of an app that labgate's one value replaces.
    pub(super) unmapped: Vec<String>,
}

/// What a setting says, oauth2-proxy's defaults read as not set.
fn effective(x: Option<&Setting>) -> Option<&Value> {
    let x = x?;
    let default = TRUE_BY_DEFAULT.contains(&x.key.as_str());
    match (&x.value, x.spec.map(|s| s.kind)) {
        (Value::Bool(b), Some(Kind::Bool)) if *b == default => None,
        (Value::List(l), _) if l.is_empty() => None,
        (Value::Text(t), _) if t.trim().is_empty() => None,
        (v, _) => Some(v),
    }
}

/// Splits the instances (label, settings) into shared settings and apps.
pub(super) fn merge(instances: Vec<(String, Options)>) -> Merged {
    let mut m = Merged {
        shared: Options::default(),
        apps: Vec::new(),
        per_app_access: false,
        problems: Vec::new(),
        unmapped: Vec::new(),
    };
    let Some((primary, first)) = instances.first() else {
        return m;
    };
    let mut keys: Vec<&str> = Vec::new();
    for (_, o) in &instances {
        for x in &o.settings {
            if !keys.contains(&x.key.as_str()) {
                keys.push(&x.key);
            }
        }
    }
    let same = |key: &str| {
        let want = effective(first.get(key));
        instances.iter().all(|(_, o)| effective(o.get(key)) == want)
    };
    m.per_app_access = !ACCESS.iter().all(|k| same(k));
    m.apps = instances
        .iter()
        .map(|(label, o)| {
            let redirect = match o.get("redirect_url").map(|x| &x.value) {
                Some(Value::Text(t)) => url::Url::parse(t.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https")),
                _ => None,
            };
            App {
                label: label.clone(),
                o: Options::default(),
                host: redirect
                    .as_ref()
                    .and_then(|u| u.host_str())
                    .map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
                redirect,
            }
        })
        .collect();
    for &key in &keys {
        if PER_APP.contains(&key) || (m.per_app_access && ACCESS.contains(&key)) {
            for (app, (_, o)) in m.apps.iter_mut().zip(&instances) {
                if let Some(x) = o.get(key) {
                    app.o.settings.push(x.clone());
                }
            }
            // The first app's redirect_url is also labgate's public_url.
            if key == "redirect_url" {
                if let Some(x) = first.get(key) {
                    m.shared.settings.push(x.clone());
                }
            }
            continue;
        }
        if same(key) {
            if let Some(x) = instances.iter().find_map(|(_, o)| o.get(key)) {
                m.shared.settings.push(Setting {
                    app: None,
                    ..x.clone()
                });
            }
            continue;
        }
        let kept = first.get(key);
        if let Some(x) = kept {
            m.shared.settings.push(x.clone());
        }
        if FIRST_WINS.contains(&key) {
            let used = if kept.is_some() {
                format!("{primary}'s is used")
            } else {
                format!("{primary} sets none, so labgate's default is used")
            };
            for (_, o) in instances.iter().skip(1) {
                let Some(x) = o.get(key).filter(|x| effective(Some(x)) != effective(kept)) else {
                    continue;
                };
                let why = match key {
                    "cookie_secret" | "cookie_secret_file" => {
                        "oauth2-proxy's cookie secrets are never carried over (labgate's is new)".to_owned()
                    }
                    "client_id" | "client_secret" | "client_secret_file" => format!(
                        "labgate signs in with one GitLab application, {primary}'s: this app's sign-in now uses it too, so that application must allow this app's Redirect URI (listed on stderr)"
                    ),
                    _ => format!("labgate has one {key} for every app: {used}"),
                };
                m.unmapped.push(format!("{}: {why}", said(x)));
            }
        } else {
            let values: Vec<String> = instances
                .iter()
                .map(|(label, o)| match o.get(key) {
                    Some(x) => said(x),
                    None => format!("{label}: not set"),
                })
                .collect();
            m.problems.push(format!(
                "the oauth2-proxy instances disagree on {key} ({}): labgate has one for every app; make them agree (this output has {primary}'s)",
                values.join("; ")
            ));
        }
    }
    for (_, o) in &instances {
        m.shared.overridden.extend(o.overridden.iter().cloned());
    }
    for (i, app) in m.apps.iter().enumerate() {
        match &app.host {
            None => m.problems.push(format!(
                "{}: no redirect_url naming its host (oauth2-proxy then took it from each request): labgate cannot tell which host this app is; give it --redirect-url=https://<its host>/oauth2/callback",
                app.label
            )),
            Some(h) => {
                if let Some(other) = m.apps.iter().take(i).find(|a| a.host.as_ref() == Some(h)) {
                    m.problems.push(format!(
                        "{} and {} both serve {h} (their redirect_url): labgate sends all of a host to one app; route by path in front of labgate, or give each app a host of its own",
                        other.label, app.label
                    ));
                }
            }
        }
    }
    m
}

impl<'a> M<'a> {
    /// Runs `f` on one app's own settings (what it reads is accounted to that app), writing
    /// into this mapping's document.
    pub(super) fn in_app<R>(&mut self, app: &'a App, f: impl FnOnce(&mut M<'a>) -> R) -> R {
        let i = self
            .apps
            .iter()
            .position(|a| std::ptr::eq(a, app))
            .unwrap_or_default();
        let mut sub = M::new(&app.o, &[]);
        sub.doc = std::mem::take(&mut self.doc);
        sub.generic_oidc = self.generic_oidc;
        sub.prefix.clone_from(&self.prefix);
        if let Some(used) = self.app_used.get_mut(i) {
            sub.used = std::mem::take(used);
        }
        let r = f(&mut sub);
        self.doc = std::mem::take(&mut sub.doc);
        self.problems.append(&mut sub.problems);
        self.warnings.append(&mut sub.warnings);
        if let Some(used) = self.app_used.get_mut(i) {
            *used = std::mem::take(&mut sub.used);
        }
        r
    }

    /// An `[[upstream]]` entry per app: its host and where its oauth2-proxy sent requests.
    pub(super) fn app_upstreams(&mut self) {
        let apps = self.apps;
        for app in apps {
            let Some(host) = app.host.clone() else {
                continue;
            };
            let (redirect, target, timeout) = self.in_app(app, |m| {
                let redirect = m.take("redirect_url").map(said);
                (redirect, m.upstream_target(true), m.upstream_timeout())
            });
            let mut entries = vec![Entry {
                key: "hosts".into(),
                value: arr(&[host]),
                notes: vec![format!(
                    "{}: the host this oauth2-proxy served (oauth2-proxy routes by path only, so each app had an instance of its own)",
                    redirect.unwrap_or_default()
                )],
            }];
            match target {
                Some(Target::Url(url, mut note)) => {
                    if is_local(&url) {
                        note.push_str("; changed: a local address was the app beside its own oauth2-proxy (a sidecar in its pod); labgate runs elsewhere: give the app's address as labgate reaches it, e.g. its Kubernetes Service");
                        self.warnings.push(format!(
                            "{}: its upstream {url} was local to that oauth2-proxy; in the merged labgate it must be the app's own address (see the comment in the output)",
                            app.label
                        ));
                    }
                    entries.push(Entry {
                        key: "url".into(),
                        value: s(url),
                        notes: vec![note],
                    });
                }
                Some(Target::ForwardAuthOnly(url, note)) => entries.push(Entry {
                    key: "url".into(),
                    value: s(url),
                    notes: vec![note],
                }),
                None => {}
            }
            if let Some((t, note)) = timeout {
                entries.push(Entry {
                    key: "timeout".into(),
                    value: t,
                    notes: vec![note],
                });
            }
            self.doc.push_array("upstream", entries);
        }
    }

    /// The cookie domain, redirect domains, Redirect URIs and token hosts of merged apps.
    pub(super) fn apps_session(&mut self) {
        let apps = self.apps;
        if apps.is_empty() {
            return;
        }
        let mut cookies = Vec::new();
        let mut redirects = Vec::new();
        let mut tokens = Vec::new();
        let mut hosts = Vec::new();
        for app in apps {
            let Some(host) = app.host.clone() else {
                continue;
            };
            let read = self.in_app(app, |m| {
                (
                    m.list("cookie_domains", "session.cookie_domain"),
                    m.list("whitelist_domains", "server.allowed_redirect_domains"),
                    m.flag("pass_access_token"),
                    m.flag("pass_authorization_header"),
                )
            });
            cookies.push((app, read.0));
            redirects.extend(read.1);
            tokens.push((host.clone(), [read.2, read.3]));
            hosts.push(host);
        }
        self.apps_cookie_domain(&cookies, &hosts);
        self.redirect_domains(&redirects, &hosts);
        let keys = [
            (
                "pass_access_token",
                "X-Forwarded-Access-Token (and X-Auth-Request-Access-Token from /oauth2/auth)",
            ),
            (
                "pass_authorization",
                "Authorization: Bearer <GitLab ID token>",
            ),
        ];
        for (i, (key, what)) in keys.into_iter().enumerate() {
            let mut on = Vec::new();
            let mut from = Vec::new();
            for (host, flags) in &tokens {
                if let Some((x, b)) = flags.get(i).copied().flatten() {
                    from.push(said(x));
                    if b {
                        on.push(host.clone());
                    }
                }
            }
            if from.is_empty() {
                continue;
            }
            let from = from.join(", ");
            if on.is_empty() {
                self.doc
                    .remark("identity", format!("{from}: no app receives it"));
            } else {
                self.doc.set("identity", key, arr(&on), format!("{from}: {what} upstream, to these apps only: labgate serves several apps, and a person's GitLab token goes only to the hosts listed (true would be refused)"));
            }
        }
    }

    /// One cookie domain for every app when each app's oauth2-proxy used it and it covers
    /// every host; otherwise none: a session per host, as one oauth2-proxy per host had.
    fn apps_cookie_domain(&mut self, cookies: &[AppCookies<'a>], hosts: &[String]) {
        let bare = |d: &str| d.trim().trim_start_matches('.').to_ascii_lowercase();
        let lists: Vec<Vec<String>> = cookies
            .iter()
            .map(|(_, c)| {
                c.as_ref()
                    .map(|(_, l)| {
                        l.iter()
                            .map(|d| d.trim().to_owned())
                            .filter(|d| !d.is_empty())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let mut shared: Vec<&String> = lists
            .iter()
            .flatten()
            .filter(|d| hosts.iter().all(|h| covers(d, h)))
            .filter(|d| lists.iter().all(|l| l.iter().any(|e| bare(e) == bare(d))))
            .collect();
        shared.sort_by_key(|d| std::cmp::Reverse(bare(d).len()));
        let from: Vec<String> = cookies
            .iter()
            .filter_map(|(_, c)| c.as_ref().map(|(x, _)| said(x)))
            .collect();
        let from = if from.is_empty() {
            "cookie_domains is not set".to_owned()
        } else {
            from.join(", ")
        };
        if let Some(d) = shared.first() {
            self.doc.set("session", "cookie_domain", s((*d).clone()), format!("{from}: one sign-in for every app: {d} covers each app's host ({}) and every app's oauth2-proxy used it; people sign in at public_url and are sent back", hosts.join(", ")));
            return;
        }
        let why = if cookies.iter().all(|(_, c)| c.is_none()) {
            "each oauth2-proxy's cookies were for its own host"
        } else {
            "no domain that every app's oauth2-proxy used covers all their hosts"
        };
        self.doc.remark("session", format!("{from}: {why} ({}), so no session.cookie_domain: each host keeps a session of its own and signs in through its own Redirect URI, as each oauth2-proxy did", hosts.join(", ")));
        let mut uris = Vec::new();
        for (app, _) in cookies {
            let (Some(u), Some(host)) = (&app.redirect, &app.host) else {
                continue;
            };
            let ours = format!(
                "{}{}/callback",
                u.origin().ascii_serialization(),
                self.prefix
            );
            let same = if ours == u.as_str() {
                "its redirect_url, unchanged"
            } else {
                "changed from its redirect_url"
            };
            uris.push(format!("{ours} ({}, {host}: {same})", app.label));
        }
        self.doc.remark(
            "server",
            format!(
                "Redirect URIs: the GitLab application must allow each app's: {}",
                uris.join(", ")
            ),
        );
        self.warnings.push(format!(
            "each app signs in at its own host: the GitLab application must allow all of these Redirect URIs: {}",
            uris.join(", ")
        ));
    }

    /// Who may enter when the apps disagree: `[access]` admits anyone one of them admitted,
    /// and a `[[route]]` per host holds that app's own rules.
    pub(super) fn app_access(&mut self) {
        let apps = self.apps;
        let mut sets = Vec::new();
        for app in apps {
            let Some(host) = app.host.clone() else {
                continue;
            };
            let rules = self.in_app(app, |m| m.rules());
            sets.push((host, app, rules));
        }
        let why = "the apps' oauth2-proxies admitted different people: [access] admits anyone one of them admitted (who may sign in at all), and each app's own rules are in the [[route]] for its host, so each host keeps its oauth2-proxy's answers";
        let members = !sets.is_empty() && sets.iter().all(|(_, _, r)| r.has_members());
        let domains = !sets.is_empty() && sets.iter().all(|(_, _, r)| !r.domains.0.is_empty());
        let union = |pick: fn(&super::access::RuleSet) -> &Vec<String>| {
            let mut out: Vec<String> = Vec::new();
            for (_, _, r) in &sets {
                for v in pick(r) {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
            }
            out
        };
        if members {
            for (key, list) in [
                ("allowed_groups", union(|r| &r.groups.0)),
                ("allowed_projects", union(|r| &r.projects.0)),
            ] {
                if !list.is_empty() {
                    self.doc.set("access", key, arr(&list), why.into());
                }
            }
        }
        if domains {
            let list = union(|r| &r.domains.0);
            self.doc
                .set("access", "allowed_email_domains", arr(&list), why.into());
        }
        self.verified_email(domains);
        if !members {
            self.doc.set(
                "access",
                "allow_any_gitlab_user",
                toml::Value::Boolean(true),
                format!("an app's oauth2-proxy had no gitlab_groups or gitlab_projects, so it admitted every GitLab user (in its email domains); {why}"),
            );
        }
        for (host, app, r) in sets {
            if !r.has_members() && r.domains.0.is_empty() {
                for note in r.remarks {
                    self.doc.remark("access", note);
                }
                self.doc.remark(
                    "access",
                    format!("{} ({host}): its oauth2-proxy admitted every GitLab user, so no [[route]] narrows it", app.label),
                );
                continue;
            }
            let mut notes = vec![format!("{}'s rules, for its host only", app.label)];
            notes.extend(r.remarks);
            let mut entries = vec![
                Entry {
                    key: "hosts".into(),
                    value: arr(&[host]),
                    notes,
                },
                Entry {
                    key: "path".into(),
                    value: s("^/"),
                    notes: vec!["every path of the app".into()],
                },
            ];
            for (key, (list, notes)) in [
                ("allowed_groups", r.groups),
                ("allowed_projects", r.projects),
                ("allowed_email_domains", r.domains),
            ] {
                if !list.is_empty() {
                    entries.push(Entry {
                        key: key.into(),
                        value: arr(&list),
                        notes,
                    });
                }
            }
            self.doc.push_array("route", entries);
        }
    }

    /// Each app's settings nothing read: not mapped, with the reason.
    pub(super) fn apps_rest(&mut self) {
        let apps = self.apps;
        for (i, app) in apps.iter().enumerate() {
            let used = self.app_used.get(i).cloned().unwrap_or_default();
            for x in &app.o.settings {
                if used.contains(&x.key) {
                    continue;
                }
                let why = if app.host.is_none() {
                    "labgate cannot tell which host this app is (it has no redirect_url; see the problems on stderr)".to_owned()
                } else {
                    super::reasons::why_not(x)
                };
                self.doc.unmapped(format!("{}: {why}", said(x)));
            }
        }
    }
}

/// Whether an upstream is on the machine (or pod) of the oauth2-proxy that used it.
fn is_local(url: &str) -> bool {
    if url.starts_with("unix:") {
        return true;
    }
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
        .is_some_and(|h| match h {
            url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        })
}
