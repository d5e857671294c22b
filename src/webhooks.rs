//! `POST {prefix}/webhooks/gitlab`: GitLab's group webhooks (member events, `X-Gitlab-Event:
//! Member Hook`) and system hooks (`System Hook`), authenticated by the secret token GitLab
//! sends in `X-Gitlab-Token` (`gitlab.webhook_secret`).
//!
//! An event never grants or refuses anything: it marks every session of the person it names
//! (by GitLab user id) as due ([`crate::session::marks`]), so each one's next request asks
//! GitLab at once and GitLab's answer decides. A forged or replayed event therefore costs at
//! most one GitLab call per session of that person. Bad input gets a 4xx naming what is wrong;
//! the body is never logged.

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::app::App;
use crate::proxy::Body;
use crate::respond;

/// Largest event body read (GitLab's member and user events are well under 2 KiB).
const MAX_BODY: usize = 64 * 1024;

/// The events that say a person's memberships, role, account or name changed: their
/// sessions are revalidated. Member Hook: `user_*_group`; System Hook: those, project
/// membership (`user_*_team`), a deleted or renamed account. (GitLab sends no event when
/// it blocks or deactivates someone.)
const MARKING_EVENTS: &[&str] = &[
    "user_add_to_group",
    "user_remove_from_group",
    "user_update_for_group",
    "user_add_to_team",
    "user_remove_from_team",
    "user_update_for_team",
    "user_destroy",
    "user_rename",
];

/// What to answer GitLab: status, outcome (metrics), message.
fn answer(app: &App, status: StatusCode, outcome: &'static str, message: &str) -> Response<Body> {
    app.metrics.webhook(outcome);
    if status.is_success() {
        respond::json(
            status,
            &serde_json::json!({"outcome": outcome, "message": message}),
        )
    } else {
        respond::json_error(status, outcome, message)
    }
}

/// Whether the request carries exactly the configured token (compared as SHA-256 digests:
/// no early exit on the first differing byte of the secret).
fn token_ok(app: &App, req: &Request<hyper::body::Incoming>) -> bool {
    use sha2::Digest;
    let Some(secret) = &app.config.gitlab.webhook_secret else {
        return false;
    };
    let mut given = req.headers().get_all("x-gitlab-token").iter();
    let (Some(token), None) = (given.next(), given.next()) else {
        return false;
    };
    sha2::Sha256::digest(token.as_bytes()) == sha2::Sha256::digest(secret.expose().as_bytes())
}

/// `POST {prefix}/webhooks/gitlab`.
pub(crate) async fn gitlab(app: &App, req: Request<hyper::body::Incoming>) -> Response<Body> {
    if app.config.gitlab.webhook_secret.is_none() {
        return respond::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "GitLab webhooks are not enabled here (gitlab.webhook_secret is not set)",
        );
    }
    // The token first: a flood without it must not spend what GitLab's real events need
    // (GitLab does not redeliver an event it could not deliver). Refusals are limited (and
    // logged within the limit); an authenticated event is cheap (a mark) and never turned
    // away for load.
    if !token_ok(app, &req) {
        if !app.webhook_budget.spend(app.clock.now()) {
            let mut r = answer(
                app,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many refused webhook requests this second",
            );
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            return r;
        }
        tracing::warn!(target: "labgate::audit", "GitLab webhook refused: missing or wrong X-Gitlab-Token");
        return answer(
            app,
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "X-Gitlab-Token is missing or is not the configured gitlab.webhook_secret",
        );
    }
    let kind = req
        .headers()
        .get("x-gitlab-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(kind, "Member Hook" | "System Hook") {
        return answer(
            app,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "X-Gitlab-Event must be \"Member Hook\" (group webhook, member events) or \"System Hook\"",
        );
    }
    let too_large = || {
        answer(
            app,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the event is larger than 64 KiB",
        )
    };
    // A declared length past the limit is answered at once, not after waiting for it.
    if hyper::body::Body::size_hint(req.body()).lower() > MAX_BODY as u64 {
        return too_large();
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(_) => {
            return answer(
                app,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the event's body could not be read",
            )
        }
    };
    let event: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => {
            return answer(
                app,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the event is not a JSON object",
            )
        }
    };
    let Some(name) = event.get("event_name").and_then(|v| v.as_str()) else {
        return answer(
            app,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the event has no event_name",
        );
    };
    // The name is echoed only when it is one of ours (never a client's text in a log).
    let Some(name) = MARKING_EVENTS.iter().find(|e| **e == name).copied() else {
        return answer(
            app,
            StatusCode::ACCEPTED,
            "ignored",
            "not a membership or account event: nothing to do",
        );
    };
    let Some(user_id) = event.get("user_id").and_then(serde_json::Value::as_u64) else {
        return answer(
            app,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the event has no numeric user_id",
        );
    };
    // Verdicts about the person's GitLab access tokens are asked again too.
    app.machine_tokens.forget_user(user_id);
    match app.sessions.mark_due(user_id, app.clock.now_ms()).await {
        Ok(()) => {
            tracing::info!(target: "labgate::audit", event = name, user_id, "GitLab event: the person's sessions revalidate at their next request");
            answer(
                app,
                StatusCode::ACCEPTED,
                "marked",
                "the person's sessions revalidate with GitLab at their next request",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record a GitLab event in the session store");
            answer(
                app,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
                "the session store is unavailable; GitLab retries",
            )
        }
    }
}
