//! What labgate remembers about GitLab access tokens: GitLab's verdicts, keyed by SHA-256
//! of the token (never the token), and what keeps a flood of tokens from costing GitLab
//! more than a bounded number of calls or from starving callers with working tokens.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::Caller;

/// Most cached access-token identities kept.
const TOKEN_CACHE_MAX: usize = 10_000;

/// SHA-256 of a token: the cache key (the token itself is never kept).
pub(crate) type TokenHash = [u8; 32];

/// What GitLab said about an access token, and when (Unix seconds).
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    /// The token's owner.
    Valid(Arc<Caller>),
    /// Refused: remembered too, so that a bad token costs one GitLab call per TTL.
    Refused,
}

/// Cache of access-token verdicts, keyed by SHA-256 of the token (never the token), plus
/// what keeps GitLab from being flooded and a flood from starving real callers: one check
/// at a time per token (single-flight), at most [`GENERAL_CHECKS`] checks of never-seen
/// tokens at once plus [`RESERVED_CHECKS`] kept for tokens GitLab accepted before, and a
/// budget of [`CLIENT_BUDGET`] checks of never-seen tokens per client address and of
/// [`PROCESS_BUDGET`] for all of them.
#[derive(Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<TokenHash, (Verdict, u64)>>,
    in_flight: Mutex<HashMap<TokenHash, Arc<tokio::sync::Mutex<()>>>>,
    checks: tokio::sync::Semaphore,
    reserved: tokio::sync::Semaphore,
    budgets: Mutex<Budgets>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            entries: Mutex::default(),
            in_flight: Mutex::default(),
            checks: tokio::sync::Semaphore::new(GENERAL_CHECKS),
            reserved: tokio::sync::Semaphore::new(RESERVED_CHECKS),
            budgets: Mutex::default(),
        }
    }
}

/// Most checks of tokens GitLab has not accepted before, with GitLab at once; further
/// ones wait their turn (up to `gitlab.timeout`) and are then refused with 503.
const GENERAL_CHECKS: usize = 12;

/// Checks kept for tokens GitLab accepted before (their cached verdict has expired): a
/// flood of random tokens cannot make a working token wait.
const RESERVED_CHECKS: usize = 4;

/// Checks of never-seen tokens one client address may cause per [`BUDGET_WINDOW`]
/// seconds (then 429): a script that uses a handful of tokens never meets it, a flood of
/// random ones costs GitLab this many calls a minute per address.
const CLIENT_BUDGET: u32 = 30;

/// The budget's window, in seconds.
const BUDGET_WINDOW: u64 = 60;

/// Most client addresses whose budget is tracked (the oldest windows go first).
const BUDGETS_MAX: usize = 10_000;

/// Checks of never-seen tokens the whole process may cause per [`BUDGET_WINDOW`], from
/// every client together: what a flood from many addresses costs GitLab at most (GitLab
/// rate-limits labgate's address too). Tokens GitLab accepted before do not count.
const PROCESS_BUDGET: u32 = 600;

/// The process's spending and each client's.
#[derive(Debug, Default)]
struct Budgets {
    all: Budget,
    clients: HashMap<IpAddr, Budget>,
}

/// The address a budget is kept for: IPv4 as it is, IPv6 by its /64.
fn budget_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// One client address's spending in its current window.
#[derive(Debug, Clone, Copy, Default)]
struct Budget {
    since: u64,
    spent: u32,
}

impl TokenCache {
    pub(crate) fn cached(&self, key: &TokenHash, now: u64, ttl: u64) -> Option<Verdict> {
        let cache = self.entries.lock().ok()?;
        let (verdict, at) = cache.get(key)?;
        (now < at + ttl).then(|| verdict.clone())
    }

    /// Caches a verdict. When full: expired entries go first, then refusals; valid tokens
    /// are never evicted by a flood of bad ones (a full cache just stops caching).
    pub(crate) fn remember(&self, key: TokenHash, verdict: Verdict, now: u64, ttl: u64) {
        if let Ok(mut cache) = self.entries.lock() {
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.retain(|_, (_, at)| now < *at + ttl);
            }
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.retain(|_, (v, _)| matches!(v, Verdict::Valid(_)));
            }
            if cache.len() < TOKEN_CACHE_MAX {
                cache.insert(key, (verdict, now));
            }
        }
    }

    /// Whether GitLab accepted this token before (its verdict may have expired since).
    /// Forgets every verdict about user `id`'s tokens (a GitLab event about them): the next
    /// use asks GitLab.
    pub(crate) fn forget_user(&self, id: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (v, _)| !matches!(v, Verdict::Valid(c) if c.user.id == id));
        }
    }

    pub(crate) fn seen_valid(&self, key: &TokenHash) -> bool {
        self.entries
            .lock()
            .is_ok_and(|c| matches!(c.get(key), Some((Verdict::Valid(_), _))))
    }

    /// Spends one check of `client`'s budget and of the process's; `false` when either is
    /// spent for this window. IPv6 clients are counted per /64 (one host holds a whole
    /// one); a client arriving when the table is full of live windows has only the
    /// process's budget (a flood from many addresses must not lock newcomers out).
    pub(crate) fn spend(&self, client: IpAddr, now: u64) -> bool {
        let Ok(mut budgets) = self.budgets.lock() else {
            return false;
        };
        let key = budget_key(client);
        let window = |b: &mut Budget| {
            if now >= b.since.saturating_add(BUDGET_WINDOW) {
                *b = Budget {
                    since: now,
                    spent: 0,
                };
            }
        };
        window(&mut budgets.all);
        if budgets.all.spent >= PROCESS_BUDGET {
            return false;
        }
        let table = &mut budgets.clients;
        if table.len() >= BUDGETS_MAX && !table.contains_key(&key) {
            table.retain(|_, b| now < b.since.saturating_add(BUDGET_WINDOW));
        }
        if table.len() < BUDGETS_MAX || table.contains_key(&key) {
            let b = table.entry(key).or_insert(Budget {
                since: now,
                spent: 0,
            });
            window(b);
            if b.spent >= CLIENT_BUDGET {
                return false;
            }
            b.spent += 1;
        }
        budgets.all.spent += 1;
        true
    }

    /// The per-token gate: holders check with GitLab one at a time.
    pub(crate) fn gate(&self, key: TokenHash) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut gates) = self.in_flight.lock() else {
            return Arc::default();
        };
        gates.retain(|_, g| Arc::strong_count(g) > 1);
        gates.entry(key).or_default().clone()
    }

    /// A GitLab check slot: of the general share, or for a token GitLab accepted before
    /// (`known`), of whichever share frees first.
    pub(crate) async fn check_slot(
        &self,
        known: bool,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError> {
        if known {
            tokio::select! {
                p = self.reserved.acquire() => p,
                p = self.checks.acquire() => p,
            }
        } else {
            self.checks.acquire().await
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_a_budget_per_window() {
        let c = TokenCache::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..CLIENT_BUDGET {
            assert!(c.spend(a, 1000));
        }
        assert!(!c.spend(a, 1000));
        assert!(!c.spend(a, 1000 + BUDGET_WINDOW - 1));
        assert!(c.spend(b, 1000), "another address has its own");
        assert!(c.spend(a, 1000 + BUDGET_WINDOW), "a new window");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let c = TokenCache::default();
        for i in 0..CLIENT_BUDGET {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            assert!(c.spend(ip, 1000));
        }
        assert!(!c.spend("2001:db8:1:2:ffff::1".parse().unwrap(), 1000));
        assert!(c.spend("2001:db8:1:3::1".parse().unwrap(), 1000));
    }

    #[test]
    fn many_addresses_meet_the_process_budget_and_lock_no_newcomer_out_of_the_table() {
        let c = TokenCache::default();
        let mut granted = 0;
        for i in 0..(BUDGETS_MAX as u32 + 100) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            granted += u32::from(c.spend(ip, 1000));
        }
        assert_eq!(granted, PROCESS_BUDGET);
        // A new window: an address never seen, the table full of stale entries, is served.
        assert!(c.spend("192.0.2.77".parse().unwrap(), 1000 + BUDGET_WINDOW));
    }
}
