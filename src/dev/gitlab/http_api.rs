//! The stand-in's HTTP surface, route by route as GitLab answers.

// Handlers return the finished error response as `Err`: a test fixture, not a hot path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use sha2::Digest;

use super::{hex_token, keys, now, CodeGrant, StandIn, TokenGrant};
use crate::access::level;
use crate::dev::util::{form, found, json, read_body, respond};
use crate::pages::escape;
use crate::proxy::Body;

const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.";
const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.";
const ACCESS_DENIED: &str = "The resource owner or authorization server denied the request.";
const BROWSER_COOKIE: &str = "_gitlab_session";
/// Authorization codes live 10 minutes.
const CODE_TTL: u64 = 600;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": error, "error_description": description }),
    )
}

fn page(status: StatusCode, title: &str, inner: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><link rel=\"icon\" href=\"data:,\"><title>{t} · GitLab stand-in</title>\
<style>body{{font:16px system-ui,sans-serif;max-width:420px;margin:40px auto;padding:0 16px}}label{{display:block;margin:12px 0 4px}}input{{width:100%;padding:8px;font-size:1rem}}button{{margin-top:16px;padding:10px 16px;font-size:1rem}}.deny{{margin-left:8px}}</style></head>\
<body><p>GitLab stand-in</p><h1>{t}</h1>{inner}</body></html>",
        t = escape(title)
    );
    respond(status, "text/html; charset=utf-8", html)
}

/// Dispatches a stand-in request.
pub(super) async fn handle(s: Arc<StandIn>, req: Request<Incoming>) -> Response<Body> {
    s.counters.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(t) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        if let Ok(mut seen) = s.counters.traceparents.lock() {
            if seen.len() >= 100 {
                seen.remove(0);
            }
            seen.push(t.to_owned());
        }
    }
    let faults = s.faults();
    if let Some(d) = faults.latency {
        tokio::time::sleep(d).await;
    }
    if faults.server_error {
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html",
            "<h1>500: We're sorry, something went wrong on our end</h1>",
        );
    }
    let path = req.uri().path().to_owned();
    let Some(path) = path.strip_prefix(s.prefix.as_str()).map(str::to_owned) else {
        return json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "404 Not Found"}),
        );
    };
    if faults
        .failing_paths
        .iter()
        .any(|p| path.starts_with(p.as_str()))
    {
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html",
            "<h1>500: We're sorry, something went wrong on our end</h1>",
        );
    }
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/.well-known/openid-configuration") => discovery(&s),
        (Method::GET, "/oauth/discovery/keys") => {
            let mut r = respond(StatusCode::OK, "application/json", keys().jwks.clone());
            r.headers_mut().insert(
                "cache-control",
                http::HeaderValue::from_static("max-age=86400, public"),
            );
            r
        }
        (Method::GET, "/oauth/authorize") => authorize_get(&s, &req),
        (Method::POST, "/oauth/authorize") => authorize_post(&s, req).await,
        (Method::GET, "/users/sign_in") => sign_in_form(
            &s,
            req.uri()
                .query()
                .map(|q| form(q.as_bytes()))
                .unwrap_or_default()
                .get("return_to")
                .map_or("", String::as_str),
            None,
        ),
        (Method::POST, "/users/sign_in") => sign_in_post(&s, req).await,
        (Method::POST, "/oauth/token") => token(&s, req).await,
        (Method::GET | Method::POST, "/oauth/userinfo") => userinfo(&s, &req),
        (Method::POST, "/oauth/revoke") => revoke(&s, req).await,
        (Method::GET, "/api/v4/user") => api_user(&s, &req),
        (Method::GET, "/api/v4/personal_access_tokens/self") => api_token_self(&s, &req),
        (Method::GET, p) if p.starts_with("/api/v4/projects/") => api_project(&s, &req),
        (Method::GET, "/api/v4/groups") => api_groups(&s, &req),
        (Method::PUT | Method::DELETE | Method::POST, p)
            if p.starts_with("/api/v4/groups/") && p.contains("/members") =>
        {
            super::members::api(&s, req).await
        }
        // Not GitLab: mints a CI/CD ID token as a job would receive it (demo and tests).
        (Method::POST, "/-/standin/ci_token") => ci_token(&s, req).await,
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "404 Not Found"}),
        ),
    }
}

fn discovery(s: &StandIn) -> Response<Body> {
    let b = &s.base_url;
    json(
        StatusCode::OK,
        &serde_json::json!({
            "issuer": b,
            "authorization_endpoint": format!("{b}/oauth/authorize"),
            "token_endpoint": format!("{b}/oauth/token"),
            "revocation_endpoint": format!("{b}/oauth/revoke"),
            "introspection_endpoint": format!("{b}/oauth/introspect"),
            "userinfo_endpoint": format!("{b}/oauth/userinfo"),
            "jwks_uri": format!("{b}/oauth/discovery/keys"),
            "scopes_supported": ["api","read_api","read_user","read_repository","write_repository","openid","profile","email"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query","fragment","form_post"],
            "grant_types_supported": ["authorization_code","password","client_credentials","device_code","refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic","client_secret_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claim_types_supported": ["normal"],
            "claims_supported": ["iss","sub","aud","exp","iat","sub_legacy","name","nickname","preferred_username","email","email_verified","website","profile","picture","groups","groups_direct","https://gitlab.org/claims/groups/owner","https://gitlab.org/claims/groups/maintainer","https://gitlab.org/claims/groups/developer"],
            "code_challenge_methods_supported": ["plain","S256"],
        }),
    )
}

/// Adds query parameters to a redirect URI (keeping any registered query).
fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
        sep = '&';
    }
    out
}

/// Checks client_id and redirect_uri; GitLab shows its own error page (no redirect) when
/// either is wrong.
fn pre_auth(
    s: &StandIn,
    p: &HashMap<String, String>,
) -> Result<(super::Application, String), Response<Body>> {
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    let app = s.with_fixture(|f| {
        f.applications
            .iter()
            .find(|a| a.client_id == client_id)
            .cloned()
    });
    let Some(app) = app else {
        return Err(page(StatusCode::BAD_REQUEST, "An error has occurred", &format!("<p>Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.</p><p>client_id: {}</p>", escape(&client_id))));
    };
    let redirect_uri = p.get("redirect_uri").cloned().unwrap_or_default();
    if !app.redirect_uris.iter().any(|r| r == &redirect_uri) {
        return Err(page(
            StatusCode::BAD_REQUEST,
            "An error has occurred",
            "<p>The redirect URI included is not valid.</p>",
        ));
    }
    Ok((app, redirect_uri))
}

/// After pre-auth: response type, scopes, PKCE method. Errors go back to the client.
fn check_request(
    app: &super::Application,
    redirect_uri: &str,
    p: &HashMap<String, String>,
) -> Result<Vec<String>, Response<Body>> {
    let state = p.get("state").map(String::as_str).unwrap_or("");
    let back = |error: &str, desc: &str| {
        let mut params = vec![("error", error), ("error_description", desc)];
        if !state.is_empty() {
            params.push(("state", state));
        }
        found(&with_params(redirect_uri, &params))
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "The authorization server does not support this response type.",
        ));
    }
    // No scope: GitLab falls back to its default, `api`.
    let scopes: Vec<String> = p.get("scope").map_or_else(
        || vec!["api".to_owned()],
        |s| s.split_whitespace().map(str::to_owned).collect(),
    );
    if scopes.is_empty() || scopes.iter().any(|sc| !app.scopes.contains(sc)) {
        return Err(back(
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        ));
    }
    if let Some(m) = p.get("code_challenge_method") {
        if m != "S256" && m != "plain" {
            return Err(back(
                "invalid_request",
                "Code challenge method is not supported.",
            ));
        }
    }
    Ok(scopes)
}

fn browser_user(s: &StandIn, req: &Request<impl Sized>) -> Option<String> {
    let cookies = crate::session::request_cookies(req.headers());
    let value = cookies.iter().find(|(n, _)| *n == BROWSER_COOKIE)?.1;
    s.grants.lock().ok()?.browser.get(value).cloned()
}

fn authorize_get(s: &StandIn, req: &Request<Incoming>) -> Response<Body> {
    let p = form(req.uri().query().unwrap_or("").as_bytes());
    let (app, redirect_uri) = match pre_auth(s, &p) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_request(&app, &redirect_uri, &p) {
        return r;
    }
    let Some(username) = browser_user(s, req) else {
        let return_to = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        return found(&format!(
            "{}/users/sign_in?return_to={}",
            s.base_url,
            crate::respond::query_escape(return_to)
        ));
    };
    if app.trusted {
        return issue_code(s, &app, &redirect_uri, &username, &p);
    }
    let hidden: String = p
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(k),
                escape(v)
            )
        })
        .collect();
    let scopes = p.get("scope").cloned().unwrap_or_else(|| "api".into());
    let action = format!("{}/oauth/authorize", s.base_url);
    page(
        StatusCode::OK,
        &format!("Authorize {} to use your account?", app.name),
        &format!(
            r#"<p>Signed in as <strong>{user}</strong>. This application will be able to: {scopes}</p>
<form method="post" action="{action}">{hidden}<button type="submit" name="commit" value="Authorize">Authorize</button></form>
<form method="post" action="{action}">{hidden}<input type="hidden" name="_method" value="delete"><button class="deny" type="submit" name="commit" value="Deny">Deny</button></form>"#,
            user = escape(&username),
            scopes = escape(&scopes),
        ),
    )
}

async fn authorize_post(s: &StandIn, req: Request<Incoming>) -> Response<Body> {
    let username = browser_user(s, &req);
    let Some(body) = read_body(req.into_body()).await else {
        return page(StatusCode::BAD_REQUEST, "Bad request", "");
    };
    let p = form(&body);
    let (app, redirect_uri) = match pre_auth(s, &p) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_request(&app, &redirect_uri, &p) {
        return r;
    }
    let Some(username) = username else {
        return found(&format!("{}/users/sign_in", s.base_url));
    };
    if p.get("_method").map(String::as_str) == Some("delete") {
        let mut params = vec![
            ("error", "access_denied"),
            ("error_description", ACCESS_DENIED),
        ];
        if let Some(st) = p.get("state") {
            params.push(("state", st));
        }
        return found(&with_params(&redirect_uri, &params));
    }
    issue_code(s, &app, &redirect_uri, &username, &p)
}

fn issue_code(
    s: &StandIn,
    app: &super::Application,
    redirect_uri: &str,
    username: &str,
    p: &HashMap<String, String>,
) -> Response<Body> {
    let code = hex_token();
    let grant = CodeGrant {
        client_id: app.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        username: username.to_owned(),
        scopes: p.get("scope").map_or_else(
            || vec!["api".into()],
            |sc| sc.split_whitespace().map(str::to_owned).collect(),
        ),
        nonce: p.get("nonce").cloned(),
        challenge: p.get("code_challenge").map(|c| {
            (
                c.clone(),
                p.get("code_challenge_method")
                    .cloned()
                    .unwrap_or_else(|| "plain".into()),
            )
        }),
        expires: now() + CODE_TTL,
    };
    if let Ok(mut g) = s.grants.lock() {
        g.codes.insert(code.clone(), grant);
    }
    let mut params = vec![("code", code.as_str())];
    if let Some(st) = p.get("state") {
        params.push(("state", st));
    }
    found(&with_params(redirect_uri, &params))
}

fn sign_in_form(s: &StandIn, return_to: &str, error: Option<&str>) -> Response<Body> {
    let err = error
        .map(|e| format!(r#"<p role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    // Not GitLab's: the stand-in names its accounts, so that nobody has to look them up.
    let users: String = s.with_fixture(|f| {
        f.users
            .iter()
            .map(|u| {
                let note = if u.state == "active" {
                    String::new()
                } else {
                    format!(" ({})", escape(&u.state))
                };
                format!(
                    "<li><code>{}</code> / <code>{}</code>{note}</li>",
                    escape(&u.username),
                    escape(&u.password)
                )
            })
            .collect()
    });
    page(
        if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        "Sign in",
        &format!(
            r#"{err}<form method="post" action="{base}/users/sign_in"><input type="hidden" name="return_to" value="{rt}">
<label for="username">Username or primary email</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>
<section aria-labelledby="demo-users"><h2 id="demo-users">Demo accounts (labgate's GitLab stand-in)</h2><ul>{users}</ul></section>"#,
            base = escape(&s.base_url),
            rt = escape(return_to),
        ),
    )
}

async fn sign_in_post(s: &StandIn, req: Request<Incoming>) -> Response<Body> {
    let Some(body) = read_body(req.into_body()).await else {
        return page(StatusCode::BAD_REQUEST, "Bad request", "");
    };
    let p = form(&body);
    let username = p.get("username").cloned().unwrap_or_default();
    let password = p.get("password").cloned().unwrap_or_default();
    let return_to = p.get("return_to").cloned().unwrap_or_default();
    let user = s.with_fixture(|f| {
        f.users
            .iter()
            .find(|u| {
                u.username.eq_ignore_ascii_case(&username)
                    || u.email.eq_ignore_ascii_case(&username)
            })
            .cloned()
    });
    let Some(user) = user.filter(|u| u.password == password) else {
        return sign_in_form(s, &return_to, Some("Invalid login or password."));
    };
    if user.state == "blocked" {
        return sign_in_form(s, &return_to, Some("Your account has been blocked. Please contact your GitLab administrator if you think this is an error."));
    }
    let session = hex_token();
    if let Ok(mut g) = s.grants.lock() {
        g.browser.insert(session.clone(), user.username.clone());
    }
    // Only a local path may be returned to.
    let target = if return_to.starts_with('/') && !return_to.starts_with("//") {
        format!("{}{}", s.base_url.trim_end_matches(&s.prefix), return_to)
    } else {
        format!("{}/", s.base_url)
    };
    let mut r = found(&target);
    if let Ok(v) = http::HeaderValue::from_str(&format!(
        "{BROWSER_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax"
    )) {
        r.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    r
}

/// Client authentication: HTTP Basic (RFC 6749 §2.3.1, form-encoded id and secret) or
/// client_id / client_secret in the body.
fn client_auth(
    s: &StandIn,
    headers: &http::HeaderMap,
    p: &HashMap<String, String>,
) -> Option<super::Application> {
    let (id, secret) = match headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(h) if h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ") => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(h[6..].trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (i, sec) = text.split_once(':')?;
            let dec = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(i), dec(sec))
        }
        _ => (p.get("client_id")?.clone(), p.get("client_secret")?.clone()),
    };
    s.with_fixture(|f| {
        f.applications
            .iter()
            .find(|a| a.client_id == id && a.secret == secret)
            .cloned()
    })
}

async fn token(s: &StandIn, req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers().clone();
    let Some(body) = read_body(req.into_body()).await else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request is missing a required parameter.",
        );
    };
    let p = form(&body);
    let Some(app) = client_auth(s, &headers, &p) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", INVALID_CLIENT);
    };
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            s.counters.code_grants.fetch_add(1, Ordering::SeqCst);
            let code = p.get("code").cloned().unwrap_or_default();
            // Single use: the code is gone whatever happens next.
            let grant = s.grants.lock().ok().and_then(|mut g| g.codes.remove(&code));
            let Some(grant) = grant else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", INVALID_GRANT);
            };
            let redirect_ok = p.get("redirect_uri") == Some(&grant.redirect_uri);
            let pkce_ok = match &grant.challenge {
                None => true,
                Some((challenge, method)) => match p.get("code_verifier") {
                    None => false,
                    Some(v) if method == "S256" => {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes())) == *challenge
                    }
                    Some(v) => v == challenge,
                },
            };
            if grant.client_id != app.client_id || grant.expires < now() || !redirect_ok || !pkce_ok {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", INVALID_GRANT);
            }
            issue_tokens(s, &app.client_id, &grant.username, grant.scopes, grant.nonce.as_deref())
        }
        Some("refresh_token") => {
            s.counters.refresh_grants.fetch_add(1, Ordering::SeqCst);
            let refresh = p.get("refresh_token").cloned().unwrap_or_default();
            let old = s.grants.lock().ok().and_then(|mut g| {
                let access = g.refresh.remove(&refresh)?;
                g.access.remove(&access)
            });
            let Some(old) = old.filter(|o| o.client_id == app.client_id) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", INVALID_GRANT);
            };
            if s.faults().refresh_invalid_grant {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", INVALID_GRANT);
            }
            issue_tokens(s, &app.client_id, &old.username, old.scopes, None)
        }
        Some(_) => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server."),
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "The request is missing a required parameter, includes an unsupported parameter value, or is otherwise malformed."),
    }
}

fn issue_tokens(
    s: &StandIn,
    client_id: &str,
    username: &str,
    scopes: Vec<String>,
    nonce: Option<&str>,
) -> Response<Body> {
    let access = hex_token();
    let refresh = hex_token();
    let ttl = s.faults().access_token_ttl.unwrap_or(7200);
    let grant = TokenGrant {
        client_id: client_id.into(),
        username: username.into(),
        scopes: scopes.clone(),
        expires: now() + ttl,
        refresh: refresh.clone(),
    };
    let (user, id_token) = s.with_fixture(|f| {
        let user = f.user(username).cloned();
        let id = user
            .as_ref()
            .filter(|_| scopes.iter().any(|x| x == "openid"))
            .map(|u| s.id_token(&grant, nonce, u, f));
        (user, id)
    });
    if user.is_none() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", INVALID_GRANT);
    }
    if let Ok(mut g) = s.grants.lock() {
        g.refresh.insert(refresh.clone(), access.clone());
        g.access.insert(access.clone(), grant);
    }
    let mut body = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
        "scope": scopes.join(" "),
        "created_at": now(),
    });
    if let Some(id) = id_token {
        body["id_token"] = id.into();
    }
    json(StatusCode::OK, &body)
}

/// The token grant behind a Bearer header, or GitLab's API error.
/// The `Authorization: Bearer` token of a request ("" without one).
fn bearer_of(req: &Request<Incoming>) -> &str {
    req.headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map_or("", str::trim)
}

pub(super) fn bearer(
    s: &StandIn,
    req: &Request<Incoming>,
    any_of: &[&str],
) -> Result<TokenGrant, Response<Body>> {
    let token = bearer_of(req);
    let grant = s
        .grants
        .lock()
        .ok()
        .and_then(|g| g.access.get(token).cloned())
        .or_else(|| {
            // Personal access tokens.
            s.with_fixture(|f| {
                f.users.iter().find_map(|u| {
                    u.personal_access_tokens
                        .iter()
                        .find(|p| p.token == token)
                        .map(|p| TokenGrant {
                            client_id: String::new(),
                            username: u.username.clone(),
                            scopes: p.scopes.clone(),
                            expires: u64::MAX,
                            refresh: String::new(),
                        })
                })
            })
        });
    let Some(grant) = grant else {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Token was revoked. You have to re-authorize from the user.",
        ));
    };
    if grant.expires <= now() {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Token is expired. You can either do re-authorization or token refresh.",
        ));
    }
    if !grant.scopes.iter().any(|sc| any_of.contains(&sc.as_str())) {
        return Err(json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": any_of.join(" ")}),
        ));
    }
    Ok(grant)
}

fn userinfo(s: &StandIn, req: &Request<Incoming>) -> Response<Body> {
    s.counters.userinfo.fetch_add(1, Ordering::SeqCst);
    let grant = match bearer(s, req, &["openid"]) {
        Ok(g) => g,
        Err(r) => return r,
    };
    s.with_fixture(|f| {
        let Some(u) = f.user(&grant.username) else {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "The access token is invalid");
        };
        let mut claims = serde_json::json!({
            "sub": u.id.to_string(),
            "sub_legacy": format!("legacy-{}", u.id),
            "name": u.name,
            "nickname": u.username,
            "preferred_username": u.username,
            "profile": format!("{}/{}", s.base_url, u.username),
            "picture": format!("{}/uploads/-/system/user/avatar/{}/avatar.png", s.base_url, u.id),
            "groups": f.groups_claim(&u.username),
            "https://gitlab.org/claims/groups/owner": f.groups_with_role(&u.username, level::OWNER),
            "https://gitlab.org/claims/groups/maintainer": f.groups_with_role(&u.username, level::MAINTAINER),
            "https://gitlab.org/claims/groups/developer": f.groups_with_role(&u.username, level::DEVELOPER),
        });
        s.add_email(&mut claims, &grant, u);
        if let Some(obj) = claims.as_object_mut() {
            obj.retain(|_, v| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)));
        }
        json(StatusCode::OK, &claims)
    })
}

async fn revoke(s: &StandIn, req: Request<Incoming>) -> Response<Body> {
    s.counters.revocations.fetch_add(1, Ordering::SeqCst);
    let headers = req.headers().clone();
    let p = read_body(req.into_body())
        .await
        .map(|b| form(&b))
        .unwrap_or_default();
    let Some(app) = client_auth(s, &headers, &p) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", INVALID_CLIENT);
    };
    let token = p.get("token").cloned().unwrap_or_default();
    let Ok(mut g) = s.grants.lock() else {
        return json(StatusCode::OK, &serde_json::json!({}));
    };
    let access_key = if g.access.contains_key(&token) {
        Some(token.clone())
    } else {
        g.refresh.get(&token).cloned()
    };
    if let Some(access) = access_key {
        if g.access
            .get(&access)
            .is_some_and(|t| t.client_id != app.client_id)
        {
            return oauth_error(
                StatusCode::FORBIDDEN,
                "unauthorized_client",
                "You are not authorized to revoke this token",
            );
        }
        if let Some(t) = g.access.remove(&access) {
            g.refresh.remove(&t.refresh);
        }
    }
    json(StatusCode::OK, &serde_json::json!({}))
}

fn api_user(s: &StandIn, req: &Request<Incoming>) -> Response<Body> {
    s.counters.api_user.fetch_add(1, Ordering::SeqCst);
    let grant = match bearer(s, req, &["read_user", "read_api", "api"]) {
        Ok(g) => g,
        Err(r) => return r,
    };
    s.with_fixture(|f| match f.user(&grant.username) {
        Some(u) => json(
            StatusCode::OK,
            &serde_json::json!({
                "id": u.id, "username": u.username, "name": u.name, "state": u.state, "locked": false,
                "avatar_url": format!("{}/uploads/-/system/user/avatar/{}/avatar.png", s.base_url, u.id),
                "web_url": format!("{}/{}", s.base_url, u.username),
                "email": u.email, "public_email": u.public_email, "bot": false,
                "two_factor_enabled": u.two_factor_enabled, "external": false,
            }),
        ),
        None => json(StatusCode::NOT_FOUND, &serde_json::json!({"message": "404 User Not Found"})),
    })
}

/// `GET /api/v4/personal_access_tokens/self`: the calling personal (or project / group)
/// access token's own record; an OAuth application's token is not one (404).
fn api_token_self(s: &StandIn, req: &Request<Incoming>) -> Response<Body> {
    let token = bearer_of(req);
    let pat = s.with_fixture(|f| {
        f.users.iter().find_map(|u| {
            u.personal_access_tokens
                .iter()
                .find(|p| p.token == token)
                .map(|p| (u.id, p.scopes.clone()))
        })
    });
    match pat {
        Some((user_id, scopes)) => json(
            StatusCode::OK,
            &serde_json::json!({
                "id": user_id * 1000 + 1, "name": "labgate", "revoked": false,
                "created_at": "2026-01-01T00:00:00.000Z", "scopes": scopes, "user_id": user_id,
                "last_used_at": null, "active": true, "expires_at": null,
            }),
        ),
        None => match bearer(s, req, &["read_user", "read_api", "api", "openid"]) {
            Ok(_) => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"message": "404 Not Found"}),
            ),
            Err(r) => r,
        },
    }
}

fn api_project(s: &StandIn, req: &Request<Incoming>) -> Response<Body> {
    let grant = match bearer(s, req, &["read_api", "api"]) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let raw = req
        .uri()
        .path()
        .trim_start_matches(s.prefix.as_str())
        .trim_start_matches("/api/v4/projects/");
    let id = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    s.with_fixture(|f| {
        let not_found = || json(StatusCode::NOT_FOUND, &serde_json::json!({"message": "404 Project Not Found"}));
        let Some(p) = f.project(&id) else { return not_found() };
        let (project_access, group_access) = f.project_levels(p, &grant.username);
        if project_access.is_none() && group_access.is_none() && p.visibility == "private" {
            return not_found();
        }
        let lvl = |l: Option<u8>| l.map(|a| serde_json::json!({"access_level": a, "notification_level": 3}));
        json(
            StatusCode::OK,
            &serde_json::json!({
                "id": p.id,
                "path_with_namespace": p.path,
                "name": p.path.rsplit('/').next().unwrap_or(""),
                "archived": p.archived,
                "visibility": p.visibility,
                "permissions": {"project_access": lvl(project_access), "group_access": lvl(group_access)},
            }),
        )
    })
}

fn api_groups(s: &StandIn, req: &Request<Incoming>) -> Response<Body> {
    let grant = match bearer(s, req, &["read_api", "api"]) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let q = form(req.uri().query().unwrap_or("").as_bytes());
    let min: u8 = q
        .get("min_access_level")
        .and_then(|m| m.parse().ok())
        .unwrap_or(level::GUEST);
    let per_page: usize = q
        .get("per_page")
        .and_then(|m| m.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page: usize = q
        .get("page")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1)
        .max(1);
    let all = s.with_fixture(|f| f.groups_with_min_level(&grant.username, min));
    let items: Vec<serde_json::Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(id, path)| serde_json::json!({"id": id, "full_path": path, "path": path.rsplit('/').next().unwrap_or("")}))
        .collect();
    let mut r = json(StatusCode::OK, &serde_json::Value::Array(items));
    if page * per_page < all.len() {
        if let Ok(v) = http::HeaderValue::from_str(&(page + 1).to_string()) {
            r.headers_mut().insert("x-next-page", v);
        }
    }
    r
}

async fn ci_token(s: &StandIn, req: Request<Incoming>) -> Response<Body> {
    let p = read_body(req.into_body())
        .await
        .map(|b| form(&b))
        .unwrap_or_default();
    let Some(project) = p.get("project_path") else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "project_path is required"}),
        );
    };
    let token = s.ci_id_token(
        project,
        p.get("ref").map_or("main", String::as_str),
        p.get("ref_protected").is_none_or(|v| v == "true"),
        p.get("aud").map_or("", String::as_str),
        &serde_json::json!({}),
    );
    respond(StatusCode::OK, "text/plain", token)
}
