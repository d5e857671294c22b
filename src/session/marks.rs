//! What a GitLab membership event leaves behind: "the sessions of user N confirmed with
//! GitLab at or before T are due" (T in Unix milliseconds: confirmations and events within
//! one second are told apart). An event never grants or refuses anything itself: the
//! next request of each such session revalidates with GitLab at once, and GitLab's answer
//! decides. A mark matters only for `session.revalidate` (after that every session confirmed
//! before it is due anyway), so the table is bounded by the events of that window, and by
//! [`MAX_MARKS`] whatever arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most users marked at once; past it the oldest mark goes (its sessions then revalidate on
/// their usual schedule: a lost mark delays, never grants).
pub const MAX_MARKS: usize = 100_000;

/// This process's marks: user id -> the latest event time (Unix milliseconds).
#[derive(Debug)]
pub struct Marks {
    table: Mutex<HashMap<u64, u64>>,
    /// How many are held: the request path skips the lock while there are none.
    held: AtomicUsize,
    /// How long a mark matters (`session.revalidate`), in milliseconds.
    keep: u64,
}

impl Marks {
    /// An empty table whose marks matter for `keep` milliseconds.
    pub fn new(keep: u64) -> Marks {
        Marks {
            table: Mutex::new(HashMap::new()),
            held: AtomicUsize::new(0),
            keep: keep.max(1),
        }
    }

    /// Marks user `id`'s sessions confirmed at or before `at` as due.
    pub fn mark(&self, id: u64, at: u64) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        if table.len() >= MAX_MARKS && !table.contains_key(&id) {
            let keep = self.keep;
            table.retain(|_, t| t.saturating_add(keep) > at);
            if table.len() >= MAX_MARKS {
                if let Some(oldest) = table.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                    table.remove(&oldest);
                }
            }
        }
        let t = table.entry(id).or_insert(at);
        *t = (*t).max(at);
        self.held.store(table.len(), Ordering::Relaxed);
    }

    /// The time of user `id`'s latest mark still in force at `now`, if any.
    pub fn due_since(&self, id: u64, now: u64) -> Option<u64> {
        if self.held.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let t = *self.table.lock().ok()?.get(&id)?;
        (t.saturating_add(self.keep) > now).then_some(t)
    }

    /// How many users are marked (metrics, tests).
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether no user is marked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Most GitLab events accepted per second by one process (a GitLab instance sends them one
/// by one; a burst beyond this is answered 429 and GitLab retries).
pub const EVENTS_PER_SECOND: u64 = 100;

/// A fixed one-second window counting accepted events.
#[derive(Debug, Default)]
pub struct EventBudget {
    window: std::sync::atomic::AtomicU64,
    used: std::sync::atomic::AtomicU64,
}

impl EventBudget {
    /// Whether one more event fits in the second `now` (Unix seconds).
    pub fn spend(&self, now: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.window.swap(now, Relaxed) != now {
            self.used.store(0, Relaxed);
        }
        self.used.fetch_add(1, Relaxed) < EVENTS_PER_SECOND
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn marks_last_for_one_revalidation_period_and_stay_bounded() {
        let m = Marks::new(300);
        assert_eq!(m.due_since(7, 1000), None);
        m.mark(7, 1000);
        m.mark(7, 990);
        assert_eq!(m.due_since(7, 1000), Some(1000));
        assert_eq!(m.due_since(7, 1299), Some(1000));
        assert_eq!(m.due_since(7, 1300), None);
        // Milliseconds apart: the later one holds.
        m.mark(7, 1001);
        assert_eq!(m.due_since(7, 1001), Some(1001));
        assert_eq!(m.due_since(8, 1000), None);
        for id in 0..(MAX_MARKS as u64 + 50) {
            m.mark(1000 + id, 2000 + id);
        }
        assert!(m.len() <= MAX_MARKS);
        let b = EventBudget::default();
        assert_eq!(
            (0..150).filter(|_| b.spend(5)).count(),
            EVENTS_PER_SECOND as usize
        );
        assert!(b.spend(6));
        // The newest mark is kept, an old one went.
        assert!(m.due_since(1000 + MAX_MARKS as u64 + 49, 3000).is_some());
    }
}
