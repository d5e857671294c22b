//! The echo app's HTML page for a browser: who labgate says you are (name, username,
//! email, kind), your groups, whether the assertion verified against labgate's JWKS and its
//! claims, then everything the request carried. One self-contained document (inline CSS, no
//! script, no external resource) that reads at phone width; every value is escaped.

use std::fmt::Write;

use crate::pages::escape;

/// What the echo app saw of one request.
pub(super) struct Seen<'a> {
    /// The request's headers, as the upstream received them.
    pub headers: &'a http::HeaderMap,
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path labgate forwarded.
    pub path: &'a str,
    /// Its query, if any.
    pub query: Option<&'a str>,
    /// The assertion header's value.
    pub assertion: Option<&'a str>,
    /// The verified claims, or why the assertion did not verify.
    pub verified: &'a Result<serde_json::Value, String>,
    /// Everything above as the JSON answer shows it.
    pub json: &'a serde_json::Value,
    /// Unix seconds now (for "expires in").
    pub now: u64,
}

/// The identity the page shows: the verified claims when the assertion verified, else the
/// identity headers (marked as unverified).
struct Who {
    name: String,
    username: String,
    email: String,
    email_verified: bool,
    groups: Vec<String>,
    kind: String,
}

impl Who {
    fn from(seen: &Seen<'_>) -> Who {
        match seen.verified {
            Ok(c) => {
                let s = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                Who {
                    name: s("name"),
                    username: s("username"),
                    email: s("email"),
                    email_verified: c.get("email_verified").and_then(serde_json::Value::as_bool)
                        == Some(true),
                    groups: c
                        .get("groups")
                        .and_then(|g| g.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|g| g.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    kind: s("kind"),
                }
            }
            Err(_) => {
                let h = |n: &str| {
                    seen.headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let email = h("x-forwarded-email");
                Who {
                    name: String::new(),
                    username: h("x-forwarded-user"),
                    email_verified: !email.is_empty(),
                    email,
                    groups: h("x-forwarded-groups")
                        .split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    kind: h("x-labgate-kind"),
                }
            }
        }
    }

    /// Up to two initials of the name (else the username), for the avatar.
    fn initials(&self) -> String {
        let source = if self.name.trim().is_empty() {
            self.username.trim_start_matches("ci:")
        } else {
            self.name.as_str()
        };
        let initials: String = source
            .split(|c: char| c.is_whitespace() || c == '.' || c == '-' || c == '_' || c == '/')
            .filter_map(|w| w.chars().next())
            .filter(|c| c.is_alphanumeric())
            .take(2)
            .flat_map(char::to_uppercase)
            .collect();
        if initials.is_empty() {
            "?".into()
        } else {
            initials
        }
    }
}

/// What a principal kind (the `kind` claim, `X-Labgate-Kind`) means, for people.
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "user" => "Person, signed in with GitLab",
        "user_token" => "Person, with a GitLab access token",
        "ci_job" => "GitLab CI/CD job",
        _ => "Unknown kind of caller",
    }
}

/// The claims in the order an app developer reads them; any others follow.
const CLAIM_ORDER: [&str; 15] = [
    "sub",
    "username",
    "name",
    "email",
    "email_verified",
    "groups",
    "kind",
    "iss",
    "aud",
    "iat",
    "nbf",
    "exp",
    "sid",
    "jti",
    "ci",
];

/// "in 4 min 10 s" / "12 s ago" for a Unix time claim.
fn relative(t: u64, now: u64) -> String {
    let (d, future) = if t >= now {
        (t - now, true)
    } else {
        (now - t, false)
    };
    let text = match d {
        0 => return "now".into(),
        1..=59 => format!("{d} s"),
        60..=3599 if d % 60 == 0 => format!("{} min", d / 60),
        60..=3599 => format!("{} min {} s", d / 60, d % 60),
        _ => format!("{} h {} min", d / 3600, (d % 3600) / 60),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// One claim's value as HTML.
fn claim_html(name: &str, v: &serde_json::Value, now: u64) -> String {
    match (name, v) {
        ("iat" | "nbf" | "exp", serde_json::Value::Number(n)) => match n.as_u64() {
            Some(t) => format!(
                "{} <span class=\"muted\">({})</span>",
                t,
                escape(&relative(t, now))
            ),
            None => escape(&n.to_string()),
        },
        (_, serde_json::Value::String(s)) => escape(s),
        (_, serde_json::Value::Array(a)) if a.iter().all(serde_json::Value::is_string) => {
            if a.is_empty() {
                "<span class=\"muted\">(none)</span>".into()
            } else {
                let items: Vec<String> = a
                    .iter()
                    .filter_map(|x| x.as_str())
                    .map(|x| format!("<li>{}</li>", escape(x)))
                    .collect();
                format!("<ul class=\"plain\">{}</ul>", items.concat())
            }
        }
        (_, serde_json::Value::Object(_)) => format!(
            "<pre>{}</pre>",
            escape(&serde_json::to_string_pretty(v).unwrap_or_default())
        ),
        (_, other) => escape(&other.to_string()),
    }
}

/// A `<dl>` of name/value rows (values already HTML).
fn rows(id: &str, items: &[(String, String)]) -> String {
    let mut out = format!("<dl class=\"rows\" id=\"{id}\">");
    for (k, v) in items {
        let _ = write!(out, "<div><dt>{}</dt><dd>{v}</dd></div>", escape(k));
    }
    out.push_str("</dl>");
    out
}

/// The page.
pub(super) fn render(seen: &Seen<'_>) -> String {
    let who = Who::from(seen);
    let signed_in = !who.username.is_empty();
    let mut body = String::with_capacity(8 * 1024);

    // Verification first: it says whether the rest may be believed.
    match (seen.assertion, seen.verified) {
        (_, Ok(_)) => body.push_str(
            "<p class=\"status ok\" role=\"status\"><span class=\"icon\" aria-hidden=\"true\">\u{2713}</span>\
             <span><strong id=\"valid\">Verified</strong>: the assertion's ES256 signature checks out \
             against labgate's JWKS, and its issuer, audience and expiry are the expected ones.</span></p>",
        ),
        (None, Err(_)) => body.push_str(
            "<p class=\"status none\" role=\"status\"><span class=\"icon\" aria-hidden=\"true\">\u{2013}</span>\
             <span><strong id=\"valid\">No assertion</strong>: labgate forwarded this request without an identity \
             (a public path).</span></p>",
        ),
        (Some(_), Err(e)) => {
            let _ = write!(
                body,
                "<p class=\"status bad\" role=\"alert\"><span class=\"icon\" aria-hidden=\"true\">\u{2717}</span>\
                 <span><strong id=\"valid\">Not verified</strong>: {}. Do not trust the identity below.</span></p>",
                escape(e)
            );
        }
    }

    // Who you are.
    body.push_str("<section class=\"card who\" aria-labelledby=\"who-h\">");
    if signed_in {
        let display = if who.name.is_empty() {
            &who.username
        } else {
            &who.name
        };
        let email = if who.email.is_empty() {
            "<span class=\"muted\">no email shared</span>".to_owned()
        } else if who.email_verified {
            format!(
                "<a href=\"mailto:{0}\">{0}</a> <span class=\"badge\">verified</span>",
                escape(&who.email)
            )
        } else {
            format!(
                "{} <span class=\"badge\">unverified</span>",
                escape(&who.email)
            )
        };
        let _ = write!(
            body,
            "<div class=\"avatar\" aria-hidden=\"true\">{initials}</div>\
             <div class=\"ident\"><h1 id=\"who-h\">{display}</h1>\
             <p class=\"handle\">@<span id=\"user\">{username}</span></p>\
             <p id=\"email\">{email}</p>\
             <p class=\"muted\" id=\"kind\">{kind}{source}</p></div>",
            initials = escape(&who.initials()),
            display = escape(display),
            username = escape(&who.username),
            kind = kind_label(&who.kind),
            source = if seen.verified.is_ok() {
                ""
            } else {
                " \u{b7} from the identity headers, not verified"
            },
        );
    } else {
        body.push_str(
            "<div class=\"avatar anon\" aria-hidden=\"true\">?</div><div class=\"ident\">\
             <h1 id=\"who-h\">Not signed in</h1><p class=\"muted\">This path is public: labgate let the \
             request through and told the app nobody's identity.</p></div>",
        );
    }
    body.push_str("</section>");

    // Groups.
    if signed_in {
        let _ = write!(
            body,
            "<section class=\"card\" aria-labelledby=\"groups-h\"><h2 id=\"groups-h\">Groups \
             <span class=\"count\">{}</span></h2>",
            who.groups.len()
        );
        if who.groups.is_empty() {
            body.push_str("<p class=\"muted\">No GitLab groups.</p>");
        } else {
            body.push_str("<ul class=\"chips\" id=\"groups\">");
            for g in &who.groups {
                let _ = write!(body, "<li>{}</li>", escape(g));
            }
            body.push_str("</ul>");
        }
        body.push_str("</section>");
    }

    // The verified claims.
    if let Ok(claims) = seen.verified {
        let mut items: Vec<(String, String)> = Vec::new();
        let map = claims.as_object();
        for name in CLAIM_ORDER {
            if let Some(v) = map.and_then(|m| m.get(name)) {
                items.push((name.to_owned(), claim_html(name, v, seen.now)));
            }
        }
        for (name, v) in map.into_iter().flatten() {
            if !CLAIM_ORDER.contains(&name.as_str()) {
                items.push((name.clone(), claim_html(name, v, seen.now)));
            }
        }
        let _ = write!(
            body,
            "<section class=\"card\" aria-labelledby=\"claims-h\"><h2 id=\"claims-h\">Verified assertion claims</h2>\
             <p class=\"muted\">What an app reads after verifying the <code>X-Labgate-Assertion</code> JWT \
             against <code>/oauth2/jwks.json</code>.</p>{}</section>",
            rows("claims", &items)
        );
    }

    // The request itself.
    let mut request = vec![
        ("Method".to_owned(), escape(seen.method)),
        ("Path".to_owned(), escape(seen.path)),
    ];
    if let Some(q) = seen.query {
        request.push(("Query".to_owned(), escape(q)));
    }
    let headers: Vec<(String, String)> = seen
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                escape(&String::from_utf8_lossy(v.as_bytes())),
            )
        })
        .collect();
    let _ = write!(
        body,
        "<section class=\"card\" aria-labelledby=\"req-h\"><h2 id=\"req-h\">The request</h2>{}\
         <details><summary>Headers received ({})</summary>{}</details>",
        rows("request", &request),
        headers.len(),
        rows("headers", &headers),
    );
    if let Some(a) = seen.assertion {
        let _ = write!(
            body,
            "<details><summary>The assertion, as sent</summary><pre id=\"assertion\">{}</pre></details>",
            escape(a)
        );
    }
    let _ = write!(
        body,
        "<details><summary>Everything as JSON</summary><pre id=\"received\">{}</pre></details></section>",
        escape(&serde_json::to_string_pretty(seen.json).unwrap_or_default())
    );

    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>{title} \u{b7} Echo app</title><style>{STYLE}</style></head>\
         <body><header class=\"top\"><div class=\"bar\"><span class=\"brand\">Echo app \
         <span class=\"muted\">behind labgate</span></span>{sign_out}</div></header>\
         <main>{body}<p class=\"muted foot\">The same as JSON: send <code>Accept: application/json</code>.</p>\
         </main></body></html>",
        title = if signed_in {
            escape(&who.username)
        } else {
            "Not signed in".into()
        },
        sign_out = if signed_in {
            "<a class=\"signout\" href=\"/oauth2/sign_out\">Sign out</a>"
        } else {
            ""
        },
    )
}

/// The page's style sheet: light and dark, one column that narrows to a phone.
const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;\
--chip:#eef1f5;--accent:#5b3cc4;--ok-bg:#dafbe1;--ok-fg:#116329;--bad-bg:#ffebe9;--bad-fg:#a40e26;\
--none-bg:#eef1f5;--none-fg:#3d444d}\
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#151b23;--fg:#e6edf3;--muted:#9198a1;\
--line:#3d444d;--chip:#212830;--accent:#b692f6;--ok-bg:#12261e;--ok-fg:#6fdd8b;--bad-bg:#25171c;\
--bad-fg:#ff9492;--none-bg:#212830;--none-fg:#d1d9e0}}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\
code,pre,.chips li,.rows dt,.rows dd{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
a{color:var(--accent)}\
.top{background:var(--card);border-bottom:1px solid var(--line)}\
.bar{max-width:880px;margin:0 auto;padding:12px 16px;display:flex;align-items:center;justify-content:space-between;gap:12px}\
.brand{font-weight:600}\
.signout{border:1px solid var(--line);border-radius:8px;padding:6px 14px;text-decoration:none;font-weight:500;white-space:nowrap}\
.signout:hover,.signout:focus-visible{background:var(--chip)}\
main{max-width:880px;margin:0 auto;padding:20px 16px 40px}\
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:20px;margin:0 0 16px;min-width:0}\
h1{font-size:1.6rem;line-height:1.2;margin:0 0 4px;overflow-wrap:anywhere}\
h2{font-size:1.05rem;margin:0 0 12px}\
p{margin:0 0 6px}\
.muted{color:var(--muted)}\
.who{display:flex;gap:20px;align-items:center}\
.ident{min-width:0}\
.avatar{flex:none;width:72px;height:72px;border-radius:50%;background:var(--accent);color:#fff;display:grid;\
place-items:center;font-size:28px;font-weight:650;letter-spacing:.02em}\
.avatar.anon{background:var(--chip);color:var(--muted)}\
.handle{font-size:1.05rem;color:var(--muted);overflow-wrap:anywhere}\
#email{overflow-wrap:anywhere}\
.badge{display:inline-block;font-size:.75rem;border:1px solid var(--line);border-radius:999px;padding:0 8px;\
color:var(--muted);vertical-align:1px}\
.count{display:inline-block;min-width:1.6em;text-align:center;font-size:.8rem;background:var(--chip);\
border-radius:999px;padding:0 6px;color:var(--muted);vertical-align:2px}\
.chips{list-style:none;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:8px}\
.chips li{background:var(--chip);border:1px solid var(--line);border-radius:999px;padding:3px 12px;\
font-size:.9rem;overflow-wrap:anywhere;max-width:100%}\
.status{display:flex;gap:12px;align-items:flex-start;border-radius:12px;padding:14px 18px;margin:0 0 16px}\
.status .icon{font-weight:700;font-size:1.2rem;line-height:1.3}\
.status.ok{background:var(--ok-bg);color:var(--ok-fg)}\
.status.bad{background:var(--bad-bg);color:var(--bad-fg)}\
.status.none{background:var(--none-bg);color:var(--none-fg)}\
.rows{margin:0}\
.rows>div{display:grid;grid-template-columns:10rem minmax(0,1fr);gap:16px;padding:7px 0;border-top:1px solid var(--line)}\
.rows>div:first-child{border-top:0}\
.rows dt{color:var(--muted);font-size:.9rem;overflow-wrap:anywhere}\
.rows dd{margin:0;font-size:.9rem;overflow-wrap:anywhere;min-width:0}\
.plain{list-style:none;margin:0;padding:0}\
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--chip);border-radius:8px;padding:12px;margin:8px 0 0;font-size:.85rem}\
details{margin-top:12px}\
summary{cursor:pointer;font-weight:500;padding:4px 0}\
.foot{font-size:.9rem;text-align:center}\
@media (max-width:560px){.who{flex-direction:column;align-items:flex-start;gap:12px}\
.avatar{width:56px;height:56px;font-size:22px}\
.rows>div{grid-template-columns:minmax(0,1fr);gap:0}\
.card{padding:16px}h1{font-size:1.35rem}}";

#[cfg(test)]
mod tests {
    use super::*;

    fn seen<'a>(
        headers: &'a http::HeaderMap,
        verified: &'a Result<serde_json::Value, String>,
        json: &'a serde_json::Value,
        assertion: Option<&'a str>,
    ) -> Seen<'a> {
        Seen {
            headers,
            method: "GET",
            path: "/<p>",
            query: Some("a=<b>"),
            assertion,
            verified,
            json,
            now: 1_000,
        }
    }

    #[test]
    fn verified_claims_are_shown_escaped() {
        let headers = http::HeaderMap::new();
        let verified = Ok(serde_json::json!({
            "username": "alice", "name": "Alice <script>x</script>", "email": "a@example.com",
            "email_verified": true, "groups": ["acme", "acme/<b>"], "kind": "user",
            "exp": 1_250, "extra": "\"quoted\"",
        }));
        let json = serde_json::json!({"k": "</pre><script>"});
        let html = render(&seen(&headers, &verified, &json, Some("a.b.c")));
        assert!(html.contains("<strong id=\"valid\">Verified</strong>"));
        assert!(html.contains("<span id=\"user\">alice</span>"));
        assert!(html.contains("Alice &lt;script&gt;x&lt;/script&gt;"));
        assert!(html.contains("<li>acme/&lt;b&gt;</li>"));
        assert!(html.contains("in 4 min 10 s"));
        assert!(html.contains("&quot;quoted&quot;"));
        assert!(html.contains("/&lt;p&gt;") && html.contains("a=&lt;b&gt;"));
        assert!(!html.contains("<script"), "nothing unescaped: {html}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external resource"
        );
    }

    #[test]
    fn an_unverified_assertion_says_so_and_falls_back_to_the_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-user", "bob".parse().unwrap());
        headers.insert("x-forwarded-groups", "acme,acme/ops".parse().unwrap());
        let verified = Err("InvalidSignature <x>".to_owned());
        let json = serde_json::json!({});
        let html = render(&seen(&headers, &verified, &json, Some("forged")));
        assert!(
            html.contains("<strong id=\"valid\">Not verified</strong>: InvalidSignature &lt;x&gt;")
        );
        assert!(html.contains("not verified"));
        assert!(html.contains("<li>acme/ops</li>"));
        assert!(!html.contains("Verified assertion claims"));
    }

    #[test]
    fn a_public_path_has_nobody() {
        let headers = http::HeaderMap::new();
        let verified = Err("no assertion header".to_owned());
        let json = serde_json::json!({});
        let html = render(&seen(&headers, &verified, &json, None));
        assert!(html.contains("Not signed in"));
        assert!(html.contains("No assertion"));
        assert!(!html.contains("Sign out"));
    }

    #[test]
    fn initials_and_relative_times() {
        let w = |name: &str, username: &str| Who {
            name: name.into(),
            username: username.into(),
            email: String::new(),
            email_verified: false,
            groups: Vec::new(),
            kind: String::new(),
        };
        assert_eq!(w("Alice Example", "alice").initials(), "AE");
        assert_eq!(w("", "ci:acme/deployer").initials(), "AD");
        assert_eq!(w("élodie", "e").initials(), "É");
        assert_eq!(w("", "").initials(), "?");
        assert_eq!(relative(1_000, 1_000), "now");
        assert_eq!(relative(1_300, 1_000), "in 5 min");
        assert_eq!(relative(990, 1_000), "10 s ago");
        assert_eq!(relative(1_000 + 7_260, 1_000), "in 2 h 1 min");
    }
}
