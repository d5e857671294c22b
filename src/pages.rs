//! labgate's own HTML pages: sign-in, signed-out, error, 403. Self-contained (inline CSS
//! allowed by hash, no script, no external assets), readable on a phone, light and dark.

use base64::Engine;
use sha2::Digest;

use crate::config::ServerConfig;

const STYLE: &str = r#"
:root{color-scheme:light dark;--bg:#f6f6f8;--card:#fff;--fg:#1f1e24;--muted:#5e5c66;--line:#dcdcde;--accent:#6b4fbb;--accent-fg:#fff;--err-bg:#fdecea;--err-fg:#8d1b13}
@media (prefers-color-scheme:dark){:root{--bg:#18171d;--card:#232229;--fg:#ececef;--muted:#b5b3bd;--line:#3a383f;--accent:#9e87f0;--accent-fg:#111;--err-bg:#3b1916;--err-fg:#ffb4ab}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;justify-content:center;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;padding:24px}
main{width:100%;max-width:420px;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:32px 28px}
.logo{display:block;max-height:48px;max-width:160px;margin:0 0 16px}
h1{font-size:1.375rem;line-height:1.3;margin:0 0 8px}
p{margin:0 0 16px;color:var(--muted)}
p strong{color:var(--fg)}
.app{font-size:.875rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:0 0 4px}
.btn{display:flex;align-items:center;justify-content:center;gap:10px;width:100%;min-height:44px;padding:10px 16px;border-radius:8px;border:1px solid transparent;background:var(--accent);color:var(--accent-fg);font-weight:600;text-decoration:none;font-size:1rem}
.btn:hover{filter:brightness(1.08)}
button.btn{cursor:pointer;font:inherit}
.btn:focus-visible,a:focus-visible{outline:3px solid var(--fg);outline-offset:2px}
.btn.secondary{background:transparent;color:var(--fg);border-color:var(--line);margin-top:12px}
.alert{background:var(--err-bg);color:var(--err-fg);border-radius:8px;padding:12px 14px;margin:0 0 20px}
.alert p{color:inherit;margin:0}
.alert ul{margin:8px 0 0;padding-left:20px}
.hint{font-size:.875rem}
ul.hint{color:var(--muted);padding-left:20px;margin:0 0 16px}
footer{margin-top:20px;font-size:.8125rem;color:var(--muted);text-align:center}
a{color:var(--accent)}
h2{font-size:1.0625rem;margin:0 0 6px}
ul.sessions{list-style:none;padding:0;margin:0 0 20px}
ul.sessions li{border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:0 0 12px}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 12px;margin:0 0 12px;font-size:.875rem}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.note{border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:0 0 20px}
.note p{margin:0;color:var(--fg)}
"#;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders pages with the configured branding.
#[derive(Debug, Clone)]
pub struct Pages {
    app_name: String,
    logo_url: Option<String>,
    footer: Option<String>,
    /// Content-Security-Policy for every page: the stylesheet by hash, nothing else.
    pub csp: String,
    /// `{prefix}/sign_out`: the 403 page's way out.
    pub sign_out_url: String,
}

/// A page's alert box.
pub struct Alert<'a> {
    /// One-line reason.
    pub message: &'a str,
    /// Extra help lines (HTML-escaped here).
    pub hints: &'a [String],
}

impl<'a> Alert<'a> {
    /// An alert with a reason and no help lines.
    pub fn new(message: &'a str) -> Alert<'a> {
        Alert {
            message,
            hints: &[],
        }
    }
}

/// What the sessions page shows.
pub struct SessionsView<'a> {
    /// Whose sessions.
    pub username: &'a str,
    /// One per session, the current first.
    pub rows: &'a [SessionRow<'a>],
    /// Whether these are all the person's sessions (the Redis store).
    pub listed: bool,
    /// Where "sign out this session" posts.
    pub action: &'a str,
    /// A line on what was just done.
    pub notice: Option<&'a str>,
    /// A line on the sessions other apps list (each host keeping its own).
    pub elsewhere: Option<&'a str>,
}

/// One session on the sessions page.
pub struct SessionRow<'a> {
    /// The session this request carries.
    pub current: bool,
    /// What "sign out this session" names (the session's `sid`).
    pub id: &'a str,
    /// Unix seconds.
    pub signed_in: u64,
    /// Unix seconds.
    pub last_active: u64,
    /// The client's address.
    pub address: &'a str,
    /// Its `User-Agent`.
    pub agent: &'a str,
    /// The app host it is bound to, if any.
    pub app: Option<&'a str>,
}

/// A Unix time as the pages show it: `2026-12-06 13:45 UTC`.
fn when(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let text = humantime::format_rfc3339_seconds(t).to_string();
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(minute)) => format!("{day} {minute} UTC"),
        _ => text,
    }
}

/// What labgate's pages say when a sign-in or sign-out goes wrong (`signin.rs` picks one).
pub(crate) mod text {
    /// The callback has no `state`.
    pub(crate) const NO_STATE: &str =
        "The sign-in response from GitLab is incomplete (no state). Please sign in again.";
    /// The flow cookie is expired or used.
    pub(crate) const FLOW_INVALID: &str = "This sign-in link is not valid any more (it expired or was already used). Please sign in again.";
    /// The flow cookie did not come back.
    pub(crate) const FLOW_COOKIE_MISSING: &str = "The sign-in could not be completed: your browser did not send back labgate's sign-in cookie. Likely causes:";
    /// A hint: Secure cookies on a plain-http address.
    pub(crate) const SECURE_COOKIES_ON_HTTP: &str = "labgate sets Secure cookies (session.cookie_secure = true): if this address is plain http, browsers drop them. Use https, or cookie_secure = false for local testing.";
    /// A hint: blocked cookies, a slow sign-in.
    pub(crate) const COOKIES_BLOCKED: &str =
        "The browser blocks cookies for this site, or the sign-in took longer than 10 minutes.";
    /// `error=access_denied`.
    pub(crate) const CANCELLED: &str =
        "You cancelled the sign-in at GitLab. Sign in again when you are ready.";
    /// RFC 9207 `iss` mismatch.
    pub(crate) const WRONG_ISSUER: &str =
        "The sign-in response came from an unexpected issuer and was refused.";
    /// No `code` and no `error`.
    pub(crate) const NO_CODE: &str =
        "The sign-in response from GitLab has no code. Please sign in again.";
    /// The session does not fit the cookie store.
    pub(crate) const SESSION_TOO_LARGE: &str = "Your GitLab account belongs to so many groups that labgate cannot keep your session in a browser cookie. The administrator can fix this by setting session.store = \"redis\".";
    /// `invalid_grant` at the token endpoint.
    pub(crate) const CODE_REFUSED: &str = "GitLab did not accept the sign-in code (it was already used, expired, or issued for another request). Please sign in again.";
    /// `invalid_client` at the token endpoint.
    pub(crate) const CLIENT_REFUSED: &str = "GitLab did not accept labgate's application credentials. The administrator should check gitlab.client_id and the client secret (`labgate check --online`).";
    /// The ID token or the identity did not verify.
    pub(crate) const UNVERIFIED: &str =
        "GitLab's answer could not be verified, so the sign-in was refused. Please try again.";
    /// GitLab could not be reached.
    pub(crate) const UNREACHABLE: &str =
        "GitLab could not be reached. Please try again in a moment.";
    /// Sign-out could not end the session in the store.
    pub(crate) const FLOW_WRONG_HOST: &str = "This sign-in was started at another address than the one it came back to. Start again from the application's own address.";
    pub(crate) const AUTH_HOST: &str = "This address is where you sign in to the applications labgate protects; there is no application here itself. Go back to the application you opened: you stay signed in.";
    pub(crate) const SIGN_OUT_INCOMPLETE: &str = "You are signed out in this browser, but labgate could not end your session on the server: its session store is unreachable. Sign out again in a moment to end it everywhere.";
}

impl Pages {
    /// Pages for the configured app name, logo and footer.
    pub fn new(server: &ServerConfig) -> Self {
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(STYLE.as_bytes()));
        let img = match &server.logo_url {
            Some(u) if u.starts_with("https://") => "img-src 'self' data: https:",
            _ => "img-src 'self' data:",
        };
        Pages {
            app_name: server.app_name.clone(),
            logo_url: server.logo_url.clone(),
            footer: server.footer_text.clone(),
            sign_out_url: format!("{}/sign_out", server.prefix),
            csp: format!(
                "default-src 'none'; style-src 'sha256-{hash}'; {img}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
        }
    }

    fn layout(&self, title: &str, inner: &str) -> String {
        let logo = self
            .logo_url
            .as_deref()
            .map(|u| format!(r#"<img class="logo" src="{}" alt="">"#, escape(u)))
            .unwrap_or_default();
        let footer = self
            .footer
            .as_deref()
            .map(|f| format!("<footer>{}</footer>", escape(f)))
            .unwrap_or_else(|| "<footer>Protected by labgate</footer>".into());
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><link rel="icon" href="data:,"><title>{title} · {app}</title><style>{STYLE}</style></head>
<body><main>{logo}<p class="app">{app}</p>{inner}</main>{footer}</body></html>"#,
            title = escape(title),
            app = escape(&self.app_name),
        )
    }

    fn alert(a: Option<&Alert<'_>>) -> String {
        let Some(a) = a else { return String::new() };
        let hints: String = a
            .hints
            .iter()
            .map(|h| format!("<li>{}</li>", escape(h)))
            .collect();
        let hints = if hints.is_empty() {
            String::new()
        } else {
            format!("<ul>{hints}</ul>")
        };
        format!(
            r#"<div class="alert" role="alert"><p>{}</p>{hints}</div>"#,
            escape(a.message)
        )
    }

    /// The sign-in page: app name, the button, an error if any.
    pub fn sign_in(&self, start_url: &str, alert: Option<&Alert<'_>>) -> String {
        let inner = format!(
            r#"<h1>Sign in to continue</h1>{alert}<p>Use your GitLab account to access {app}.</p>
<a class="btn" href="{start}">Sign in with GitLab</a>"#,
            alert = Self::alert(alert),
            app = escape(&self.app_name),
            start = escape(start_url),
        );
        self.layout("Sign in", &inner)
    }

    /// Shown after sign-out.
    pub fn signed_out(&self, sign_in_url: &str) -> String {
        let inner = format!(
            r#"<h1>You are signed out</h1><p>Your session for {app} has ended.</p>
<a class="btn" href="{url}">Sign in again</a>"#,
            app = escape(&self.app_name),
            url = escape(sign_in_url),
        );
        self.layout("Signed out", &inner)
    }

    /// Asks before signing out when the request came from another site.
    pub fn confirm_sign_out(&self, action: &str) -> String {
        let inner = format!(
            r#"<h1>Sign out?</h1><p>Another site asked to sign you out of {app}.</p>
<form method="post" action="{action}"><button class="btn" type="submit">Sign out</button></form>"#,
            app = escape(&self.app_name),
            action = escape(action),
        );
        self.layout("Sign out", &inner)
    }

    /// 403: who the user is, why (in general terms), and a way out.
    pub fn forbidden(&self, username: &str, reason: &str, sign_out_url: &str) -> String {
        let inner = format!(
            r#"<h1>You don't have access</h1><p>You are signed in as <strong>{user}</strong>.</p>
<div class="alert" role="alert"><p>{reason}</p></div>
<p class="hint">If you think you should have access, ask the people who run {app} to add you in GitLab, then sign in again.</p>
<a class="btn secondary" href="{out}">Sign out</a>"#,
            user = escape(username),
            reason = escape(reason),
            app = escape(&self.app_name),
            out = escape(sign_out_url),
        );
        self.layout("Access denied", &inner)
    }

    /// The person's sessions page (`{prefix}/sessions`). `listed`: whether the store knows
    /// every session (Redis) or only this browser's (the cookie store).
    pub fn sessions(&self, view: &SessionsView<'_>) -> String {
        let mut items = String::new();
        for (i, row) in view.rows.iter().enumerate() {
            let title = if row.current {
                "This browser".to_owned()
            } else {
                format!("Signed in {}", when(row.signed_in))
            };
            let app = row
                .app
                .map(|a| format!("<dt>App</dt><dd>{}</dd>", escape(a)))
                .unwrap_or_default();
            let agent = if row.agent.is_empty() {
                "(not sent)"
            } else {
                row.agent
            };
            let button = if row.current {
                format!(
                    r#"<form method="post" action="{out}"><button class="btn secondary" type="submit" aria-describedby="s{i}">Sign out</button></form>"#,
                    out = escape(&self.sign_out_url),
                )
            } else {
                format!(
                    r#"<form method="post" action="{action}"><input type="hidden" name="end" value="{id}"><button class="btn secondary" type="submit" aria-describedby="s{i}">Sign out this session</button></form>"#,
                    action = escape(view.action),
                    id = escape(row.id),
                )
            };
            items.push_str(&format!(
                r#"<li><h2 id="s{i}">{title}</h2><dl><dt>Signed in</dt><dd>{signed_in}</dd><dt>Last active</dt><dd>{seen}</dd><dt>Address</dt><dd>{address}</dd><dt>Browser</dt><dd>{agent}</dd>{app}</dl>{button}</li>"#,
                title = escape(&title),
                signed_in = escape(&when(row.signed_in)),
                seen = escape(&when(row.last_active)),
                address = escape(row.address),
                agent = escape(agent),
            ));
        }
        let notice = view
            .notice
            .map(|n| {
                format!(
                    r#"<div class="note" role="status"><p>{}</p></div>"#,
                    escape(n)
                )
            })
            .unwrap_or_default();
        let everywhere = if view.listed {
            format!(
                r#"<form method="post" action="{}?everywhere=1"><button class="btn" type="submit">{}</button></form>"#,
                escape(&self.sign_out_url),
                if view.elsewhere.is_some() {
                    "Sign out of this app everywhere"
                } else {
                    "Sign out everywhere"
                }
            )
        } else {
            r#"<p class="hint">Your session is kept in this browser's cookies, not on the server, so labgate cannot list or end the sessions of your other browsers and devices: each ends when it is signed out there, or at the end of its lifetime. If a device is lost, ask the people who run this service to end your sessions.</p>"#.to_owned()
        };
        let elsewhere = view
            .elsewhere
            .map(|e| format!(r#"<p class="hint">{}</p>"#, escape(e)))
            .unwrap_or_default();
        let inner = format!(
            r#"<h1>Your sessions</h1>{notice}<p>Signed in to {app} as <strong>{user}</strong>.</p><ul class="sessions">{items}</ul>{elsewhere}{everywhere}"#,
            app = escape(&self.app_name),
            user = escape(view.username),
        );
        self.layout("Your sessions", &inner)
    }

    /// A general error page with a next step.
    pub fn error(&self, title: &str, alert: &Alert<'_>, action: Option<(&str, &str)>) -> String {
        let action = action
            .map(|(label, href)| {
                format!(
                    r#"<a class="btn" href="{}">{}</a>"#,
                    escape(href),
                    escape(label)
                )
            })
            .unwrap_or_default();
        let inner = format!(
            "<h1>{}</h1>{}{action}",
            escape(title),
            Self::alert(Some(alert))
        );
        self.layout(title, &inner)
    }
}
