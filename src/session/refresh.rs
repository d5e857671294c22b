//! Single-flight revalidation per session in this process: GitLab's refresh tokens are
//! single-use, so two concurrent refreshes with one token would sign the user out. Also what
//! this replica remembers of each session's last revalidation (shared with requests that
//! still carry the pre-refresh cookie) and of GitLab's failures (back-off).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Session;

/// How long a refreshed session is handed to requests that still carry the pre-refresh
/// cookie (a browser's parallel requests during a refresh).
pub const REFRESH_SHARE: Duration = Duration::from_secs(60);

/// What this replica remembers about one session's revalidations.
#[derive(Debug, Default)]
pub struct RefreshState {
    /// The latest successful revalidation and when it happened, shared with requests that
    /// still carry the pre-refresh cookie.
    pub fresh: Option<(Arc<Session>, Instant)>,
    /// After GitLab failed: not before this instant is it asked again (jittered back-off).
    pub retry_at: Option<Instant>,
    /// GitLab failures in a row.
    pub failures: u32,
}

/// The revalidation state of one session; holders of its lock revalidate one at a time.
pub type RefreshSlot = Arc<tokio::sync::Mutex<RefreshState>>;

/// Makes refreshes single-flight per session: GitLab refresh tokens are single-use, so two
/// concurrent refreshes with one token would log the user out.
#[derive(Debug, Default)]
pub struct RefreshGate {
    slots: Mutex<HashMap<String, RefreshSlot>>,
}

impl RefreshGate {
    /// The slot for session `sid`; holders of its lock refresh one at a time.
    pub fn slot(&self, sid: &str) -> RefreshSlot {
        let Ok(mut slots) = self.slots.lock() else {
            return Arc::new(tokio::sync::Mutex::new(RefreshState::default()));
        };
        if slots.len() > 10_000 {
            slots.retain(|_, s| {
                Arc::strong_count(s) > 1
                    || s.try_lock()
                        .map(|g| {
                            g.fresh
                                .as_ref()
                                .is_some_and(|(_, t)| t.elapsed() < REFRESH_SHARE)
                                || g.retry_at.is_some_and(|t| t > Instant::now())
                        })
                        .unwrap_or(true)
            });
        }
        slots.entry(sid.to_owned()).or_default().clone()
    }
}
