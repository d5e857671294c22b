//! One typed rejection for every way labgate turns a request away, rendered to a status,
//! an HTML page or JSON, `WWW-Authenticate` and cookies in exactly one place ([`Reject::render`]),
//! and recording who caused it ([`Cause`], a response extension the access log reads) so
//! that a client's mistake can be told from a GitLab, session-store or upstream fault.

use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::access::Deny;
use crate::pages::{Alert, Pages};
use crate::proxy::Body;
use crate::respond;

/// How long a client should wait before retrying a 503 (GitLab or the store down).
const RETRY_AFTER_SECS: HeaderValue = HeaderValue::from_static("5");

/// Who caused a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The client: no or bad credentials, not allowed, a malformed request.
    Client,
    /// GitLab could not be reached or answered wrongly.
    Gitlab,
    /// The session store (Redis) failed.
    Store,
    /// The protected application failed.
    Upstream,
}

impl Cause {
    /// A label for logs and metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Cause::Client => "client",
            Cause::Gitlab => "gitlab",
            Cause::Store => "store",
            Cause::Upstream => "upstream",
        }
    }
}

/// Why labgate answers instead of the application.
#[derive(Debug)]
pub(crate) enum Reject {
    /// No credentials, or a session that is over: sign in first. `clear` holds the
    /// cookies that remove an ended session.
    Unauthenticated {
        /// `Set-Cookie` values clearing an ended session.
        clear: Vec<String>,
    },
    /// A bearer credential that does not verify (401 with `error="invalid_token"`).
    InvalidToken {
        /// Why, for the caller (never the token itself).
        message: String,
    },
    /// A CI job that no `[[machine.allow]]` rule admits.
    NoMachineRule {
        /// Which claims failed.
        message: String,
    },
    /// A verified caller the access rules turn away.
    Forbidden {
        /// The caller's name, for the page.
        name: String,
        /// The rule that refused.
        deny: Deny,
        /// `Set-Cookie` values of a session refreshed on the way (kept: its old refresh
        /// token is spent).
        cookies: Vec<String>,
    },
    /// The request itself is unusable (e.g. conflicting original-request headers).
    BadRequest {
        /// Machine-readable reason.
        code: &'static str,
        /// The reason in words.
        message: String,
    },
    /// Serving several apps, labgate serves none at the request's host (421: never another
    /// app's upstream, never "the rules of every host").
    UnknownHost {
        /// The host asked for (canonical).
        host: String,
    },
    /// Revalidation is due and GitLab is unreachable past the grace period, or GitLab's
    /// keys could not be loaded.
    GitlabUnavailable,
    /// The session store failed: nobody is admitted on a guess.
    StoreUnavailable,
    /// One client sent more never-seen access tokens than its budget of GitLab checks.
    TooManyTokenChecks,
    /// The application could not be reached (502) or did not answer in time (504).
    Upstream {
        /// 504 rather than 502.
        timeout: bool,
    },
}

/// How the entry point wants a rejection shown.
#[derive(Debug, Default)]
pub(crate) struct Style {
    /// The client is a browser (HTML pages rather than JSON).
    pub html: bool,
    /// For [`Reject::Unauthenticated`]: send the browser here (the sign-in flow) instead
    /// of answering 401.
    pub sign_in: Option<String>,
}

impl Reject {
    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Reject::Unauthenticated { .. } | Reject::InvalidToken { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Reject::NoMachineRule { .. } | Reject::Forbidden { .. } => StatusCode::FORBIDDEN,
            Reject::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Reject::UnknownHost { .. } => StatusCode::MISDIRECTED_REQUEST,
            Reject::TooManyTokenChecks => StatusCode::TOO_MANY_REQUESTS,
            Reject::GitlabUnavailable | Reject::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reject::Upstream { timeout: true } => StatusCode::GATEWAY_TIMEOUT,
            Reject::Upstream { timeout: false } => StatusCode::BAD_GATEWAY,
        }
    }

    /// Who caused it.
    pub(crate) fn cause(&self) -> Cause {
        match self {
            Reject::GitlabUnavailable => Cause::Gitlab,
            Reject::StoreUnavailable => Cause::Store,
            Reject::Upstream { .. } => Cause::Upstream,
            _ => Cause::Client,
        }
    }

    /// A short machine-readable name (the JSON `error`).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Reject::Unauthenticated { .. } => "unauthenticated",
            Reject::InvalidToken { .. } => "invalid_token",
            Reject::NoMachineRule { .. } => "no_machine_rule",
            Reject::Forbidden { deny, .. } => deny.code(),
            Reject::BadRequest { code, .. } => code,
            Reject::UnknownHost { .. } => "unknown_host",
            Reject::GitlabUnavailable => "gitlab_unreachable",
            Reject::StoreUnavailable => "session_store_unavailable",
            Reject::TooManyTokenChecks => "too_many_token_checks",
            Reject::Upstream { timeout: true } => "upstream_timeout",
            Reject::Upstream { timeout: false } => "upstream_unreachable",
        }
    }

    /// The answer, in the style the entry point asked for.
    pub(crate) fn render(self, pages: &Pages, style: &Style) -> Response<Body> {
        let status = self.status();
        let code = self.code();
        let cause = self.cause();
        let mut resp = match self {
            Reject::Unauthenticated { clear } => {
                let r = match &style.sign_in {
                    Some(url) => respond::redirect(url),
                    None => {
                        let mut r = respond::json_error(status, code, "sign in with GitLab first");
                        r.headers_mut().insert(
                            WWW_AUTHENTICATE,
                            HeaderValue::from_static("Bearer realm=\"labgate\""),
                        );
                        r
                    }
                };
                respond::with_cookies(r, clear)
            }
            Reject::InvalidToken { message } => {
                let mut r = respond::json_error(status, code, &message);
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"labgate\", error=\"invalid_token\""),
                );
                r
            }
            Reject::NoMachineRule { message } => respond::json_error(status, code, &message),
            Reject::BadRequest { message, .. } => page_or_json(
                pages,
                style,
                status,
                code,
                "This request cannot be served",
                &message,
            ),
            Reject::UnknownHost { host } => page_or_json(
                pages,
                style,
                status,
                code,
                "No application here",
                &format!("labgate serves no application at {host}. Check the address."),
            ),
            Reject::TooManyTokenChecks => {
                let mut r = respond::json_error(
                    status,
                    code,
                    "too many unknown access tokens from this address: try again in a minute",
                );
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("60"));
                r
            }
            Reject::Forbidden {
                name,
                deny,
                cookies,
            } => {
                let r = if style.html {
                    let page = pages.forbidden(&name, deny.explain(), &pages.sign_out_url);
                    respond::html(status, page, &pages.csp)
                } else {
                    respond::json(
                        status,
                        &serde_json::json!({
                            "error": "forbidden",
                            "reason": code,
                            "message": deny.explain(),
                            "user": name,
                        }),
                    )
                };
                respond::with_cookies(r, cookies)
            }
            Reject::GitlabUnavailable => page_or_json(
                pages,
                style,
                status,
                code,
                "GitLab is unreachable",
                "labgate cannot confirm your access with GitLab right now. Try again in a few minutes.",
            ),
            Reject::StoreUnavailable => page_or_json(
                pages,
                style,
                status,
                code,
                "Sessions are unavailable",
                "labgate cannot reach its session store right now, so it cannot check who you are. Try again in a moment.",
            ),
            Reject::Upstream { timeout } => {
                let (title, msg) = if timeout {
                    (
                        "The application did not answer in time",
                        "The application behind labgate took too long to answer. Try again in a moment.",
                    )
                } else {
                    (
                        "The application is unreachable",
                        "labgate could not reach the application it protects. Try again in a moment.",
                    )
                };
                let mut r = page_or_json(pages, style, status, code, title, msg);
                r.headers_mut()
                    .insert("x-labgate-error", HeaderValue::from_static("upstream"));
                r
            }
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, RETRY_AFTER_SECS);
        }
        resp.extensions_mut().insert(cause);
        resp
    }
}

/// An error page for browsers, JSON for everyone else.
fn page_or_json(
    pages: &Pages,
    style: &Style,
    status: StatusCode,
    code: &str,
    title: &str,
    message: &str,
) -> Response<Body> {
    if style.html {
        let alert = Alert {
            message,
            hints: &[],
        };
        respond::html(status, pages.error(title, &alert, None), &pages.csp)
    } else {
        respond::json_error(status, code, message)
    }
}
