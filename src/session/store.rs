//! Where sessions live: in the cookie (default) or in Redis behind a handle cookie. The
//! rest of labgate calls only these methods, so it does not care which.

use std::sync::{Arc, RwLock};

use http::HeaderMap;

use super::redis::RedisStore;
use super::{CookieCodec, Session};
use crate::config::Config;

/// Most decoded cookie sessions kept; the map is emptied when it is full.
const DECODED_MAX: usize = 20_000;

/// The session store failed or did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("session store unavailable: {0}")]
pub struct StoreError(pub String);

/// Where sessions are kept.
enum Backend {
    /// Sealed in the browser's cookies (the default): each replica reads them alone.
    Cookie,
    /// In Redis, shared by every replica; the browser holds a sealed handle.
    Redis(Box<RedisStore>),
}

/// The session store in use.
pub struct Sessions {
    /// Cookie sealing (also used for Redis values and handles).
    pub codec: CookieCodec,
    backend: Backend,
    base_name: String,
    /// Cookie store: sealed cookie value -> its opened session. A hit means this exact
    /// value was already decrypted and authenticated, so AES-GCM and JSON run once per
    /// cookie, not once per request. Expiry and revalidation are still checked per request
    /// from the session's own timestamps.
    /// Keyed with a fast unkeyed hash: only values that decrypted and authenticated are
    /// inserted, and those are AES-GCM output no client can steer into collisions.
    decoded: RwLock<rustc_hash::FxHashMap<Box<str>, Arc<Session>>>,
    /// This process's marks from GitLab's events (the Redis store also keeps them in Redis,
    /// for every replica).
    marks: super::marks::Marks,
    /// How long a mark matters: `session.revalidate`.
    mark_keep: std::time::Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("shared", &self.shared())
            .finish()
    }
}

/// A loaded session and the handle it is stored under (Redis), if any.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The session.
    pub session: Arc<Session>,
    /// Redis handle.
    pub handle: Option<String>,
    /// Its user's mark as the shared store had it (see [`Sessions::mark_due`]).
    pub due: Option<u64>,
}

impl Sessions {
    /// Sets up the configured store.
    pub async fn new(config: &Config) -> Result<Sessions, String> {
        let backend = match &config.session.redis {
            Some(r) => Backend::Redis(Box::new(
                RedisStore::new(r, config.gitlab.webhook_secret.is_some())
                    .await
                    .map_err(|e| format!("session.redis_url: {e}"))?,
            )),
            None => Backend::Cookie,
        };
        Ok(Sessions {
            codec: CookieCodec::new(&config.session),
            backend,
            base_name: config.session.cookie_name.clone(),
            decoded: RwLock::new(rustc_hash::FxHashMap::default()),
            marks: super::marks::Marks::new(
                u64::try_from(config.session.revalidate.as_millis()).unwrap_or(u64::MAX),
            ),
            mark_keep: config.session.revalidate,
        })
    }

    /// Marks every session of user `user_id` confirmed with GitLab at or before `at` (Unix
    /// milliseconds) as due (a GitLab membership event): in this process, and with Redis
    /// for every replica.
    pub async fn mark_due(&self, user_id: u64, at: u64) -> Result<(), StoreError> {
        self.marks.mark(user_id, at);
        match self.redis() {
            Some(r) => r.mark_due(user_id, at, self.mark_keep).await,
            None => Ok(()),
        }
    }

    /// The latest mark in force for `loaded`'s user at `now_ms`: this process's or the
    /// shared store's.
    pub fn due_since(&self, loaded: &Loaded, now_ms: u64) -> Option<u64> {
        let keep = u64::try_from(self.mark_keep.as_millis()).unwrap_or(u64::MAX);
        let local = self.marks.due_since(loaded.session.user.id, now_ms);
        let shared = loaded.due.filter(|t| t.saturating_add(keep) > now_ms);
        local.max(shared)
    }

    /// How many users this process holds marks for.
    pub fn marked_users(&self) -> usize {
        self.marks.len()
    }

    /// Whether sessions live in a store every replica shares (then the browser holds only
    /// a handle: no cookie to deliver after a revalidation, and a cross-replica lock).
    pub fn shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// How often a holder renews the cross-replica revalidation lock while it works.
    pub fn lock_renew_every(&self) -> std::time::Duration {
        super::redis::LOCK_TTL / 3
    }

    /// The Redis store, when sessions live there.
    fn redis(&self) -> Option<&RedisStore> {
        match &self.backend {
            Backend::Redis(r) => Some(r),
            Backend::Cookie => None,
        }
    }

    /// The request's session, if any, from this replica's cache where it has one (the
    /// request path).
    pub(crate) async fn load_cached(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Loaded>, StoreError> {
        self.load(headers, false).await
    }

    /// The request's session, if any, as the store has it now (revalidation, sign-in,
    /// sign-out: another replica may have changed it).
    pub(crate) async fn load_fresh(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Loaded>, StoreError> {
        self.load(headers, true).await
    }

    /// The request's session; `fresh` bypasses the local cache.
    async fn load(&self, headers: &HeaderMap, fresh: bool) -> Result<Option<Loaded>, StoreError> {
        match self.redis() {
            None => Ok(self.open_cookie(headers).map(|session| Loaded {
                session,
                handle: None,
                due: None,
            })),
            Some(r) => {
                let Some(handle) = self.codec.read_handle(headers) else {
                    return Ok(None);
                };
                Ok(r.load(&self.codec, &handle, fresh)
                    .await?
                    .map(|(session, due)| Loaded {
                        session,
                        handle: Some(handle),
                        due,
                    }))
            }
        }
    }

    fn open_cookie(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        let raw = self.codec.raw_session(headers)?;
        if let Ok(map) = self.decoded.read() {
            if let Some(s) = map.get(raw.as_ref()) {
                return Some(s.clone());
            }
        }
        let session = Arc::new(self.codec.read_session(headers)?);
        if let Ok(mut map) = self.decoded.write() {
            if map.len() >= DECODED_MAX {
                map.clear();
            }
            map.insert(raw.into_owned().into_boxed_str(), session.clone());
        }
        Some(session)
    }

    /// Stores a new session (a fresh handle every sign-in: no fixation); returns the
    /// cookies to set.
    pub async fn create(
        &self,
        session: &Session,
        request: &HeaderMap,
        now: u64,
    ) -> Result<Vec<String>, StoreError> {
        match self.redis() {
            None => Ok(self.codec.session_cookies(session, request, now)),
            Some(r) => {
                let handle = crate::random_token(32);
                r.save(&self.codec, &handle, session, now, false).await?;
                let max_age =
                    i64::try_from(session.expires.saturating_sub(now)).unwrap_or(i64::MAX);
                let mut cookies: Vec<String> = self
                    .codec
                    .handle_cookie(&handle, max_age)
                    .into_iter()
                    .collect();
                // Chunks left over from a cookie-store session are cleared.
                cookies.extend(
                    self.codec
                        .clear_all(request, &self.base_name)
                        .into_iter()
                        .filter(|c| !c.starts_with(&format!("{}=", self.codec.name()))),
                );
                Ok(cookies)
            }
        }
    }

    /// Stores an updated session (revalidation); returns the cookies to set (none for
    /// Redis: the handle stays), or `None` when the session was ended meanwhile (signed
    /// out, revoked: an update never brings it back).
    pub async fn update(
        &self,
        loaded: &Loaded,
        session: &Session,
        request: &HeaderMap,
        now: u64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        match (self.redis(), &loaded.handle) {
            (Some(r), Some(handle)) => Ok(r
                .save(&self.codec, handle, session, now, true)
                .await?
                .then(Vec::new)),
            _ => Ok(Some(self.codec.session_cookies(session, request, now))),
        }
    }

    /// Ends a session in the store (Redis: deleted for every replica).
    pub async fn end(&self, loaded: &Loaded) -> Result<(), StoreError> {
        match (self.redis(), &loaded.handle) {
            (Some(r), Some(handle)) => r.delete(handle, loaded.session.user.id).await,
            _ => Ok(()),
        }
    }

    /// Ends every session of a user (Redis only); returns how many.
    pub async fn end_all(&self, user_id: u64) -> Result<usize, StoreError> {
        match self.redis() {
            Some(r) => r.delete_all(user_id).await,
            None => Ok(0),
        }
    }

    /// Every live session of user `user_id` (their sessions page); `None` with the cookie
    /// store, which cannot know a person's other browsers.
    pub async fn list(
        &self,
        user_id: u64,
    ) -> Result<Option<Vec<super::redis::Listed>>, StoreError> {
        match self.redis() {
            Some(r) => r.list(&self.codec, user_id).await.map(Some),
            None => Ok(None),
        }
    }

    /// The store key of the request's session (Redis), to tell it apart in a list.
    pub fn key_of(&self, headers: &HeaderMap) -> Option<String> {
        let handle = self.codec.read_handle(headers)?;
        self.redis().map(|r| r.key_of(&handle))
    }

    /// Ends every session of user `user_id` bound to `host` (labgate serving several apps,
    /// each host keeping its own sessions: one app's "sign out everywhere"); returns how
    /// many. Redis only.
    pub async fn end_all_at(&self, user_id: u64, host: Option<&str>) -> Result<usize, StoreError> {
        let Some(r) = self.redis() else {
            return Ok(0);
        };
        let mut ended = 0;
        for l in r.list(&self.codec, user_id).await? {
            if l.session.host.as_deref() == host {
                r.delete_key(&l.key, user_id).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Ends user `user_id`'s session under store key `key` (Redis).
    pub async fn end_key(&self, key: &str, user_id: u64) -> Result<(), StoreError> {
        match self.redis() {
            Some(r) => r.delete_key(key, user_id).await,
            None => Ok(()),
        }
    }

    /// Takes the cross-replica revalidation lock: `Ok(None)` when another replica holds it.
    /// Without Redis there are no other replicas to coordinate with.
    pub async fn lock(&self, loaded: &Loaded) -> Result<Option<String>, StoreError> {
        match (self.redis(), &loaded.handle) {
            (Some(r), Some(handle)) => r.lock(handle).await,
            _ => Ok(Some(String::new())),
        }
    }

    /// Renews the revalidation lock while the work it guards goes on (only if still ours).
    pub async fn extend_lock(&self, loaded: &Loaded, token: &str) {
        if let (Some(r), Some(handle)) = (self.redis(), &loaded.handle) {
            if let Err(e) = r.extend_lock(handle, token).await {
                tracing::warn!(error = %e, "renewing the revalidation lock failed");
            }
        }
    }

    /// Releases the revalidation lock.
    pub async fn unlock(&self, loaded: &Loaded, token: &str) {
        if let (Some(r), Some(handle)) = (self.redis(), &loaded.handle) {
            if let Err(e) = r.unlock(handle, token).await {
                tracing::warn!(error = %e, "releasing the revalidation lock failed (it expires by itself)");
            }
        }
    }

    /// Readiness: the store answers.
    pub async fn ready(&self) -> Result<(), StoreError> {
        match self.redis() {
            Some(r) => r.ping().await,
            None => Ok(()),
        }
    }
}
