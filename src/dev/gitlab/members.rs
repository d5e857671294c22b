//! GitLab's group Members API (`POST /groups/:id/members`, `PUT` and `DELETE
//! /groups/:id/members/:user_id`, an Owner's `api` token) and the member-event webhooks a
//! change sends: to group webhooks of the group and its parents (`X-Gitlab-Event: Member
//! Hook`) and to system hooks (`System Hook`), asynchronously, with `X-Gitlab-Token`.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::fixture::within;
use super::http_api::bearer;
use super::StandIn;
use crate::access::level;
use crate::dev::util::{form, json, read_body};
use crate::proxy::Body;

/// GitLab's name of a role (`group_access` in events, `access_level` in the API).
fn role_name(level: u8) -> Option<&'static str> {
    level::name(level)
}

fn not_found(what: &str) -> Response<Body> {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "message": format!("404 {what} Not Found") }),
    )
}

/// `/api/v4/groups/:id/members[/:user_id]` for an Owner of the group.
pub(super) async fn api(s: &Arc<StandIn>, req: Request<Incoming>) -> Response<Body> {
    let grant = match bearer(s, &req, &["api"]) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let path = req.uri().path().to_owned();
    let rest = path.trim_start_matches("/api/v4/groups/");
    let (group_ref, tail) = rest.split_once("/members").unwrap_or((rest, ""));
    let group_ref = percent_encoding::percent_decode_str(group_ref)
        .decode_utf8_lossy()
        .into_owned();
    let Some((group_id, group_path)) = s.with_fixture(|f| {
        f.groups.iter().enumerate().find_map(|(i, g)| {
            let id = i as u64 + 1;
            (g.path.eq_ignore_ascii_case(&group_ref) || id.to_string() == group_ref)
                .then(|| (id, g.path.clone()))
        })
    }) else {
        return not_found("Group");
    };
    // Owners manage members (directly, or as owners of a parent group).
    let owner = s.with_fixture(|f| {
        f.direct_groups(&grant.username)
            .iter()
            .any(|(g, l)| *l >= level::OWNER && within(&group_path, g))
    });
    if !owner {
        return json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({"message": "403 Forbidden"}),
        );
    }
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = read_body(req.into_body()).await.unwrap_or_default();
    let mut params = form(query.as_bytes());
    params.extend(form(&body));
    let user_ref = match (&method, tail.trim_start_matches('/')) {
        (&Method::POST, "") => params.get("user_id").cloned().unwrap_or_default(),
        (&Method::PUT | &Method::DELETE, id) if !id.is_empty() && !id.contains('/') => {
            id.to_owned()
        }
        _ => return not_found("Endpoint"),
    };
    let Some(user) = s.with_fixture(|f| {
        f.users
            .iter()
            .find(|u| u.id.to_string() == user_ref)
            .cloned()
    }) else {
        return not_found("User");
    };
    let current = s.with_fixture(|f| {
        f.groups
            .iter()
            .find(|g| g.path == group_path)
            .and_then(|g| {
                g.members
                    .iter()
                    .find(|m| m.user.eq_ignore_ascii_case(&user.username))
                    .map(super::Member::level)
            })
    });
    let wanted = params
        .get("access_level")
        .and_then(|l| l.parse::<u8>().ok())
        .and_then(|l| role_name(l).map(|n| (l, n)));
    let (event, status, level) = match (&method, current, wanted) {
        (&Method::DELETE, None, _) | (&Method::PUT, None, _) => return not_found("Member"),
        (&Method::POST, Some(_), _) => {
            return json(
                StatusCode::CONFLICT,
                &serde_json::json!({"message": "Member already exists"}),
            )
        }
        (&Method::DELETE, Some(l), _) => {
            s.with_fixture(|f| f.set_group_member(&group_path, &user.username, None));
            ("user_remove_from_group", StatusCode::NO_CONTENT, l)
        }
        (_, _, None) => {
            return json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": "access_level is missing, access_level does not have a valid value"}),
            )
        }
        (_, was, Some((l, name))) => {
            s.with_fixture(|f| f.set_group_member(&group_path, &user.username, Some(name)));
            if was.is_some() {
                ("user_update_for_group", StatusCode::OK, l)
            } else {
                ("user_add_to_group", StatusCode::CREATED, l)
            }
        }
    };
    let payload = serde_json::json!({
        "created_at": "2026-12-06T00:00:00Z",
        "updated_at": "2026-12-06T00:00:00Z",
        "group_name": group_path.rsplit('/').next().unwrap_or(&group_path),
        "group_path": group_path,
        "group_id": group_id,
        "user_username": user.username,
        "user_name": user.name,
        "user_email": user.email,
        "user_id": user.id,
        "group_access": role_name(level).map(capitalised),
        "group_plan": null,
        "expires_at": null,
        "event_name": event,
    });
    send_hooks(s, &group_path, payload);
    if status == StatusCode::NO_CONTENT {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status;
        return r;
    }
    json(
        status,
        &serde_json::json!({
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": user.state,
            "access_level": level,
        }),
    )
}

/// `developer` -> `Developer` (events name roles as the UI does).
fn capitalised(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Posts `payload` to the group webhooks of `group` and its parents, and to the system
/// hooks, each on its own task (GitLab delivers hooks asynchronously).
fn send_hooks(s: &StandIn, group: &str, payload: serde_json::Value) {
    let hooks = s.with_fixture(|f| f.hooks.clone());
    for hook in hooks {
        let kind = match &hook.group {
            Some(g) if within(group, g) => "Member Hook",
            Some(_) => continue,
            None => "System Hook",
        };
        let payload = payload.clone();
        s.counters
            .hooks_sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(&hook.url)
                .header("content-type", "application/json")
                .header("user-agent", "GitLab/17.6.0")
                .header("x-gitlab-event", kind)
                .header("x-gitlab-token", &hook.token)
                .body(payload.to_string())
                .send()
                .await;
        });
    }
}
