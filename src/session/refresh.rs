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
    /// The waits still to come while GitLab keeps failing (`None`: it answered last time).
    backoff: Option<Backoff>,
}

/// The waits after GitLab failed revalidations in a row.
type Backoff = <backon::ExponentialBuilder as backon::BackoffBuilder>::Backoff;

/// The first wait after GitLab failed a revalidation, doubling up to the longest; each
/// with up to as much again of random jitter (so 3-6 s, then 6-12 s, ... 30-60 s), so
/// that sessions do not retry in step against a recovering GitLab.
const BACKOFF_FIRST: Duration = Duration::from_secs(3);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl RefreshState {
    /// GitLab failed a revalidation: it is not asked again before the next wait is over.
    pub fn failed(&mut self) {
        use backon::BackoffBuilder;
        let wait = self
            .backoff
            .get_or_insert_with(|| {
                backon::ExponentialBuilder::default()
                    .with_min_delay(BACKOFF_FIRST)
                    .with_max_delay(BACKOFF_MAX)
                    .with_factor(2.0)
                    .with_jitter()
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(BACKOFF_MAX);
        self.retry_at = Some(Instant::now() + wait);
    }

    /// GitLab answered: the back-off starts over.
    pub fn answered(&mut self) {
        self.retry_at = None;
        self.backoff = None;
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_up_to_the_longest_and_start_over_when_gitlab_answers() {
        let mut state = RefreshState::default();
        let wait = |state: &RefreshState| state.retry_at.unwrap() - Instant::now();
        let mut first = Duration::ZERO;
        for (n, (low, high)) in [
            (3, 6),
            (6, 12),
            (12, 24),
            (24, 48),
            (30, 60),
            (30, 60),
            (30, 60),
        ]
        .into_iter()
        .enumerate()
        {
            state.failed();
            let w = wait(&state);
            // (A few milliseconds pass between setting and reading.)
            assert!(
                w > Duration::from_secs(low) - Duration::from_millis(50)
                    && w <= Duration::from_secs(high),
                "failure {}: {w:?}",
                n + 1
            );
            if n == 0 {
                first = w;
            }
        }
        state.answered();
        assert!(state.retry_at.is_none());
        state.failed();
        assert!(wait(&state) <= Duration::from_secs(6), "{first:?}");
    }
}
