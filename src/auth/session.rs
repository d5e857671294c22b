//! Session authentication: read the session (cookie or Redis) and revalidate it with GitLab
//! when `session.revalidate` is due: single-flight in this process ([`RefreshGate`]), and
//! across replicas through the store's lock (Redis); within `revalidate_grace` a GitLab
//! outage keeps the session, after it labgate fails closed.
//!
//! [`RefreshGate`]: crate::session::refresh::RefreshGate

use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;

use crate::app::App;
use crate::auth::{Authenticated, CookieDelivery};
use crate::identity::Principal;
use crate::oauth::gitlab::GitlabError;
use crate::reject::Reject;
use crate::session::refresh::REFRESH_SHARE;
use crate::session::Session;

/// How far a session's own timestamps may lie ahead of this replica's clock (replicas'
/// clocks differ a little).
const FUTURE_SKEW_SECS: u64 = 60;

/// How long a replica waits for another one's revalidation of the same session.
const PEER_REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What to do with a session that was read, decided from the session, the clock and the
/// configuration alone (no I/O): the rest of this module carries it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Its timestamps lie ahead of this replica's clock beyond the skew replicas have: no
    /// clock skew but a forgery (or a leaked cookie secret), since `validated` ahead would
    /// skip revalidation for as long as it is ahead. It is ended.
    Future,
    /// Past its lifetime: ended.
    Expired,
    /// Confirmed with GitLab less than `session.revalidate` ago: used as it is.
    UseAsIs,
    /// Due, but a cookie set on this answer would not reach the browser (a front proxy
    /// that drops `Set-Cookie` from a 2xx, the cookie store): used within
    /// `revalidate_grace`, revalidated on an answer that can carry the rotated cookie.
    UseWithinGrace,
    /// Due: revalidated with GitLab now.
    Revalidate,
}

/// The plan for `session` at `now` (Unix seconds); `due` is its user's mark from a GitLab
/// membership event, if any: a session confirmed at or before it is revalidated now.
pub(crate) fn plan(
    session: &Session,
    now: u64,
    revalidate: std::time::Duration,
    delivery: CookieDelivery,
    shared_store: bool,
    due: Option<u64>,
) -> Plan {
    if session.created > now + FUTURE_SKEW_SECS || session.validated > now + FUTURE_SKEW_SECS {
        Plan::Future
    } else if session.expired(now) {
        Plan::Expired
    } else if marked(session, due) {
        // GitLab said something changed for this person: ask it now, whatever the cookie
        // path (a rotated cookie a proxy drops is the lesser harm).
        Plan::Revalidate
    } else if now.saturating_sub(session.validated) < revalidate.as_secs() {
        Plan::UseAsIs
    } else if delivery == CookieDelivery::Dropped && !shared_store {
        Plan::UseWithinGrace
    } else {
        Plan::Revalidate
    }
}

/// Whether `session` was confirmed at or before its user's mark `due` (Unix ms).
fn marked(session: &Session, due: Option<u64>) -> bool {
    due.is_some_and(|t| session.confirmed_ms() <= t)
}

/// Reads the session and carries out its [`plan`]; a due revalidation is single-flight in
/// this process, and across replicas through the store's lock (Redis).
pub(crate) async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    delivery: CookieDelivery,
) -> Result<Authenticated, Reject> {
    let loaded = match app.sessions.load_cached(headers).await {
        Ok(Some(l)) => l,
        Ok(None) => return Err(Reject::Unauthenticated { clear: Vec::new() }),
        Err(e) => {
            tracing::error!(error = %e, "session store unavailable; failing closed");
            return Err(Reject::StoreUnavailable);
        }
    };
    let session = &loaded.session;
    let now = app.clock.now();
    let clear = || {
        app.sessions
            .codec
            .clear_all(headers, &app.config.session.cookie_name)
    };
    let cfg = &app.config.session;
    let now_ms = app.clock.now_ms();
    let due = app.sessions.due_since(&loaded, now_ms);
    match plan(
        session,
        now,
        cfg.revalidate,
        delivery,
        app.sessions.shared(),
        due,
    ) {
        Plan::Future => {
            tracing::warn!(target: "labgate::audit", user = %session.user.username, "a session dated in the future was refused");
            let _ = Box::pin(app.sessions.end(&loaded)).await;
            Err(Reject::Unauthenticated { clear: clear() })
        }
        Plan::Expired => {
            let _ = Box::pin(app.sessions.end(&loaded)).await;
            Err(Reject::Unauthenticated { clear: clear() })
        }
        Plan::UseAsIs => valid(loaded.session, Vec::new()),
        Plan::UseWithinGrace if in_grace(app, session, now) => valid(loaded.session, Vec::new()),
        Plan::UseWithinGrace => Err(Reject::Unauthenticated { clear: Vec::new() }),
        // Boxed, as every rare path here: the request's future is as large as its largest
        // branch, and hyper moves it whole.
        Plan::Revalidate => {
            Box::pin(revalidate_due(app, headers, loaded, (now, now_ms), due)).await
        }
    }
}

/// A due revalidation: once per session in this process (other requests of the session
/// meanwhile use it within grace), with what this replica already knows (a newer result,
/// tokens rotated since the request's copy, GitLab's back-off), then under the store's
/// cross-replica lock.
async fn revalidate_due(
    app: &App,
    headers: &HeaderMap,
    loaded: crate::session::Loaded,
    (now, now_ms): (u64, u64),
    due: Option<u64>,
) -> Result<Authenticated, Reject> {
    let session = &loaded.session;
    let slot = app.refresh.slot(&session.sid);
    // Another request of this session is revalidating it right now: within grace, answer
    // with the session as it is instead of queueing behind GitLab (not for a marked
    // session: GitLab's answer is awaited).
    let mut guard = match slot.try_lock() {
        Ok(g) => g,
        Err(_) if due.is_none() && in_grace(app, session, now) => {
            return valid(loaded.session, Vec::new())
        }
        Err(_) => slot.lock().await,
    };
    // A result of this process's own, newer than the request's copy: confirmed later (use
    // it), or with tokens GitLab rotated since (the copy's refresh token is spent: go on
    // with the rotated one).
    let mut current = session.clone();
    if let Some((fresh, _)) = guard
        .fresh
        .as_ref()
        .filter(|(_, at)| at.elapsed() < REFRESH_SHARE)
    {
        if fresh.confirmed_ms() > session.confirmed_ms() && !marked(fresh, due) {
            let fresh = fresh.clone();
            let cookies = cookies_for(app, &fresh, headers, now);
            return valid(fresh, cookies);
        }
        if fresh.confirmed_ms() >= session.confirmed_ms()
            && fresh.refresh_token != session.refresh_token
        {
            current = fresh.clone();
        }
    }
    // GitLab failed a moment ago: do not ask again before the back-off is over.
    // (The failure was logged when it happened: not again on every request meanwhile.)
    if guard.retry_at.is_some_and(|t| Instant::now() < t) {
        return within_grace(app, &current, now, None);
    }
    let token = match app.sessions.lock(&loaded).await {
        Ok(Some(token)) => token,
        Ok(None) => return wait_for_peer(app, headers, &loaded, now, due).await,
        Err(e) => {
            tracing::error!(error = %e, "session store unavailable; failing closed");
            return Err(Reject::StoreUnavailable);
        }
    };
    // Another replica may have finished a refresh just before we took the lock; and the
    // tokens to refresh with are the store's, not those of a cached copy (another replica
    // may have rotated them without confirming the session: see `Rotated`).
    let mut base = current;
    if app.sessions.shared() {
        match app.sessions.load_fresh(headers).await {
            Ok(Some(l)) => {
                if l.session.confirmed_ms() > base.confirmed_ms() && !marked(&l.session, due) {
                    app.sessions.unlock(&loaded, &token).await;
                    guard.fresh = Some((l.session.clone(), Instant::now()));
                    return valid(l.session, Vec::new());
                }
                base = l.session;
            }
            // Ended since this replica cached it (signed out, revoked): not revived.
            Ok(None) => {
                app.sessions.unlock(&loaded, &token).await;
                return ended_meanwhile(app, session, headers);
            }
            Err(_) => {}
        }
    }
    let outcome = revalidate_locked(
        app,
        headers,
        &loaded,
        &base,
        (now, now_ms),
        &token,
        &mut guard,
    )
    .await;
    app.sessions.unlock(&loaded, &token).await;
    // A revalidation a GitLab event asked for: counted, and its refusal (here, or by the
    // rules on the fresh memberships) timed from the event.
    match (due.filter(|_| marked(session, due)), outcome) {
        (None, outcome) => outcome,
        (Some(mark), Ok(mut a)) => {
            app.metrics.webhook_revalidations.inc();
            a.marked = Some(mark);
            Ok(a)
        }
        (Some(mark), Err(reject)) => {
            app.metrics.webhook_revalidations.inc();
            if matches!(reject, Reject::Unauthenticated { .. }) {
                app.metrics.webhook_refusal(mark, app.clock.now_ms());
            }
            Err(reject)
        }
    }
}

/// The cookies that carry `fresh` to the browser (none with a shared store: the browser
/// holds a handle).
fn cookies_for(app: &App, fresh: &Session, headers: &HeaderMap, now: u64) -> Vec<String> {
    if app.sessions.shared() {
        Vec::new()
    } else {
        app.sessions.codec.session_cookies(fresh, headers, now)
    }
}

/// Asks GitLab, holding this process's slot (`state`) and the store's lock (`token`), and
/// keeps what it answered: a fresh session, the end of the session, or (GitLab failing)
/// the session within grace, with any tokens GitLab rotated stored.
async fn revalidate_locked(
    app: &App,
    headers: &HeaderMap,
    loaded: &crate::session::Loaded,
    session: &Arc<Session>,
    (now, now_ms): (u64, u64),
    token: &str,
    state: &mut crate::session::refresh::RefreshState,
) -> Result<Authenticated, Reject> {
    // The cross-replica lock must outlive the work it guards: renewed while GitLab is
    // asked, however long that takes (a second replica refreshing with the same single-use
    // token would sign the user out).
    let work = crate::trace::span(
        "revalidate",
        crate::trace::Kind::Internal,
        // Boxed: a revalidation is rare (once per `session.revalidate`), and the request
        // future around it stays shallow.
        Box::pin(revalidate(app, session, now)),
        |r| match r {
            Ok(_) => crate::trace::export::Outcome::ok(Vec::new()),
            Err(RevalidateError::Ended(why)) => {
                crate::trace::export::Outcome::ok(vec![opentelemetry::KeyValue::new(
                    "labgate.session_ended",
                    *why,
                )])
            }
            Err(_) => {
                crate::trace::export::Outcome::failed("GitLab could not be reached", Vec::new())
            }
        },
    );
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            () = tokio::time::sleep(app.sessions.lock_renew_every()) => {
                app.sessions.extend_lock(loaded, token).await;
            }
        }
    };
    // When this confirmation began, to the millisecond: an event that arrives while
    // GitLab is asked makes the session due again.
    let result = result.map(|mut fresh| {
        fresh.checked_ms = now_ms;
        fresh
    });
    match result {
        Ok(fresh) => match store_rotated(app, loaded, &fresh, headers, now, token).await {
            Ok(None) => ended_meanwhile(app, session, headers),
            Ok(Some(cookies)) => {
                app.metrics.revalidation("ok");
                let fresh = Arc::new(fresh);
                state.fresh = Some((fresh.clone(), Instant::now()));
                state.answered();
                valid(fresh, cookies)
            }
            Err(e) => {
                tracing::error!(error = %e, "storing the revalidated session failed; failing closed");
                app.metrics.store_errors.inc();
                Err(Reject::StoreUnavailable)
            }
        },
        Err(RevalidateError::Ended(reason)) => {
            tracing::info!(target: "labgate::audit", user = %session.user.username, reason, "session ended at revalidation");
            app.metrics.revalidation("ended");
            let _ = app.sessions.end(loaded).await;
            Err(Reject::Unauthenticated {
                clear: app
                    .sessions
                    .codec
                    .clear_all(headers, &app.config.session.cookie_name),
            })
        }
        Err(RevalidateError::Unreachable(e)) => {
            app.metrics.revalidation("unreachable");
            state.failed();
            within_grace(app, session, now, Some(&e.to_string()))
        }
        Err(RevalidateError::Rotated { rotated, error }) => {
            // GitLab rotated the tokens, then failed to say who the user is: the old
            // refresh token is spent, so the new pair must be kept (not yet validated)
            // or the next revalidation would be refused and sign the user out.
            app.metrics.revalidation("unreachable");
            state.failed();
            match store_rotated(app, loaded, &rotated, headers, now, token).await {
                Ok(None) => ended_meanwhile(app, session, headers),
                Ok(Some(cookies)) => {
                    let rotated = Arc::new(*rotated);
                    state.fresh = Some((rotated.clone(), Instant::now()));
                    within_grace(app, &rotated, now, Some(&error.to_string())).map(|mut a| {
                        a.cookies = cookies;
                        a
                    })
                }
                Err(e) => {
                    tracing::error!(error = %e, "storing the rotated GitLab tokens failed; failing closed");
                    app.metrics.store_errors.inc();
                    Err(Reject::StoreUnavailable)
                }
            }
        }
    }
}

/// The session was ended in the store (signed out, revoked) while it was revalidated, or
/// before this replica's cached copy came due: it stays ended.
fn ended_meanwhile(
    app: &App,
    session: &Session,
    headers: &HeaderMap,
) -> Result<Authenticated, Reject> {
    tracing::info!(target: "labgate::audit", user = %session.user.username, reason = "ended in the store", "session ended at revalidation");
    app.metrics.revalidation("ended");
    Err(Reject::Unauthenticated {
        clear: app
            .sessions
            .codec
            .clear_all(headers, &app.config.session.cookie_name),
    })
}

/// How long a revalidation that GitLab has already answered keeps trying to store the
/// new tokens while the store is failing (a Redis restart or failover). The lock it holds
/// (kept alive meanwhile) stops other replicas from refreshing with the spent token.
const ROTATED_STORE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(8);

/// Stores a session whose tokens GitLab has just rotated. The old refresh token is spent:
/// losing the new one signs the user out at the next revalidation, on every replica. So a
/// failing store is retried, with the lock renewed, for [`ROTATED_STORE_PATIENCE`].
async fn store_rotated(
    app: &App,
    loaded: &crate::session::Loaded,
    session: &Session,
    headers: &HeaderMap,
    now: u64,
    lock: &str,
) -> Result<Option<Vec<String>>, crate::session::StoreError> {
    let start = Instant::now();
    loop {
        match app.sessions.update(loaded, session, headers, now).await {
            Ok(cookies) => return Ok(cookies),
            Err(e) if start.elapsed() >= ROTATED_STORE_PATIENCE => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "storing rotated tokens failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                app.sessions.extend_lock(loaded, lock).await;
            }
        }
    }
}

/// Another replica holds the revalidation lock: wait for its result in the store.
async fn wait_for_peer(
    app: &App,
    headers: &HeaderMap,
    loaded: &crate::session::Loaded,
    now: u64,
    due: Option<u64>,
) -> Result<Authenticated, Reject> {
    let start = Instant::now();
    while start.elapsed() < PEER_REFRESH_WAIT {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        match app.sessions.load_fresh(headers).await {
            Ok(Some(l))
                if l.session.confirmed_ms() > loaded.session.confirmed_ms()
                    && !marked(&l.session, due) =>
            {
                return valid(l.session, Vec::new())
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Reject::Unauthenticated {
                    clear: app
                        .sessions
                        .codec
                        .clear_all(headers, &app.config.session.cookie_name),
                })
            }
            Err(_) => return Err(Reject::StoreUnavailable),
        }
    }
    // GitLab reported a change for this person: no answer yet is no admission.
    if marked(&loaded.session, due) {
        tracing::warn!(user = %loaded.session.user.username, "another replica's revalidation after a GitLab event did not finish in time; refusing for now");
        return Err(Reject::GitlabUnavailable);
    }
    within_grace(
        app,
        &loaded.session,
        now,
        Some("another replica's revalidation did not finish in time"),
    )
}

/// GitLab could not confirm the session: keep it within the grace period, then fail closed.
/// `why` is logged (at warn) when this request learnt of the failure; `None` while a
/// failure already logged is being waited out.
fn within_grace(
    app: &App,
    session: &Arc<Session>,
    now: u64,
    why: Option<&str>,
) -> Result<Authenticated, Reject> {
    if in_grace(app, session, now) {
        if let Some(why) = why {
            tracing::warn!(user = %session.user.username, error = %why, "cannot revalidate; keeping the session within the grace period");
        }
        valid(session.clone(), Vec::new())
    } else {
        tracing::warn!(user = %session.user.username, error = why.unwrap_or("GitLab failed recently"), "cannot revalidate past the grace period; failing closed");
        Err(Reject::GitlabUnavailable)
    }
}

/// Whether `session` is still within `revalidate + revalidate_grace` of its last
/// confirmation with GitLab.
fn in_grace(app: &App, session: &Session, now: u64) -> bool {
    let cfg = &app.config.session;
    now.saturating_sub(session.validated)
        < cfg.revalidate.as_secs() + cfg.revalidate_grace.as_secs()
}

/// A valid person session.
fn valid(session: Arc<Session>, cookies: Vec<String>) -> Result<Authenticated, Reject> {
    Ok(Authenticated {
        principal: Principal::Person(session),
        cookies,
        marked: None,
    })
}

/// Why a revalidation did not produce a fresh session.
#[derive(Debug)]
enum RevalidateError {
    /// GitLab refused the refresh (or the account is gone): the session is over.
    Ended(&'static str),
    /// GitLab could not be reached.
    Unreachable(GitlabError),
    /// GitLab refreshed the tokens, then could not be reached for the identity: the
    /// session with the new (single-use) tokens, its `validated` unchanged.
    Rotated {
        rotated: Box<Session>,
        error: GitlabError,
    },
}

/// Refreshes the GitLab token and reloads identity, groups and project access.
async fn revalidate(app: &App, session: &Session, now: u64) -> Result<Session, RevalidateError> {
    let Some(refresh) = &session.refresh_token else {
        return Err(RevalidateError::Ended("no refresh token"));
    };
    let tokens = match app.gitlab.refresh(refresh).await {
        Ok(t) => t,
        Err(e @ (GitlabError::Unreachable(_) | GitlabError::Api { .. })) => {
            return Err(RevalidateError::Unreachable(e))
        }
        Err(e) => {
            tracing::info!(error = %e, "refresh refused by GitLab");
            return Err(RevalidateError::Ended("refresh refused"));
        }
    };
    let user = match app
        .gitlab
        .load_user(&tokens, None, &app.policy().project_paths())
        .await
    {
        Ok(u) => u,
        Err(e) if e.is_unreachable() => {
            return Err(RevalidateError::Rotated {
                rotated: Box::new(Session {
                    access_token: tokens.access_token,
                    refresh_token: tokens
                        .refresh_token
                        .or_else(|| session.refresh_token.clone()),
                    ..session.clone()
                }),
                error: e,
            })
        }
        Err(_) => return Err(RevalidateError::Ended("identity could not be reloaded")),
    };
    if user.id != session.user.id {
        return Err(RevalidateError::Ended("GitLab returned a different user"));
    }
    Ok(Session {
        user,
        access_token: tokens.access_token,
        refresh_token: tokens
            .refresh_token
            .or_else(|| session.refresh_token.clone()),
        id_token: tokens
            .id_token
            .filter(|_| app.config.identity.pass_authorization.any()),
        validated: now,
        ..session.clone()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod plan_tests {
    use super::*;
    use std::time::Duration;

    fn session(created: u64, validated: u64, expires: u64) -> Session {
        crate::session::test_session(created, validated, expires)
    }

    #[test]
    fn every_plan() {
        let every = Duration::from_secs(300);
        let now = 10_000;
        let d = CookieDelivery::Delivered;
        let p = |s: &Session, d, shared| plan(s, now, every, d, shared, None);
        let fresh = session(now - 100, now - 100, now + 3600);
        let due = session(now - 1000, now - 300, now + 3600);
        assert_eq!(p(&fresh, d, false), Plan::UseAsIs);
        assert_eq!(p(&due, d, false), Plan::Revalidate);
        assert_eq!(
            p(&due, CookieDelivery::Dropped, false),
            Plan::UseWithinGrace
        );
        // A shared store needs no cookie to reach the browser.
        assert_eq!(p(&due, CookieDelivery::Dropped, true), Plan::Revalidate);
        assert_eq!(
            p(&session(now - 10, now - 10, now - 1), d, false),
            Plan::Expired
        );
        // Ahead by the replicas' skew: fine; beyond it: a forgery.
        assert_eq!(
            p(&session(now + 60, now + 60, now + 3600), d, false),
            Plan::UseAsIs
        );
        assert_eq!(
            p(&session(now + 61, now, now + 3600), d, false),
            Plan::Future
        );
        assert_eq!(
            p(&session(now, now + 61, now + 3600), d, false),
            Plan::Future
        );
        // A GitLab event for the user: confirmed at or before it, revalidated now (also
        // where the cookie would not reach the browser); confirmed after it, as usual.
        let marked = |s: &Session, t: u64| {
            plan(
                s,
                now,
                every,
                CookieDelivery::Dropped,
                false,
                Some(t * 1000),
            )
        };
        assert_eq!(marked(&fresh, now - 50), Plan::Revalidate);
        assert_eq!(marked(&fresh, now - 100), Plan::Revalidate);
        assert_eq!(marked(&fresh, now - 101), Plan::UseAsIs);
        // Within one second: the confirmation's milliseconds decide.
        let mut checked = fresh.clone();
        checked.checked_ms = (now - 100) * 1000 + 500;
        let at = |ms| plan(&checked, now, every, d, false, Some(ms));
        assert_eq!(at((now - 100) * 1000 + 499), Plan::UseAsIs);
        assert_eq!(at((now - 100) * 1000 + 500), Plan::Revalidate);
    }
}
