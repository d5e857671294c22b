//! The Redis session store: the cookie carries only a random 256-bit handle (sealed); Redis
//! holds the session sealed too (tokens are secrets at rest) under a key derived from the
//! handle, with a TTL of the remaining absolute lifetime. Standalone (`redis://`,
//! `rediss://`), Sentinel and Cluster. Every command has a timeout; any failure is an
//! error the caller turns into a fail-closed 503, never a guess.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use sha2::Digest;

use super::{CookieCodec, Session};
use crate::config::{RedisConfig, RedisTarget};

/// A user's index is pruned of expired sessions once it holds more entries than this.
const INDEX_PRUNE_ABOVE: usize = 16;

/// Most live sessions one user keeps in Redis; signing in beyond it ends others.
const MAX_SESSIONS_PER_USER: usize = 64;

/// How long a revalidation lock is held at most (a refresh takes a few GitLab calls).
pub const LOCK_TTL: Duration = Duration::from_secs(10);

pub use super::store::StoreError;

// One per store, built once: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel {
        /// The Sentinels, and how to reach the master they name: its password
        /// (`redis_password`) and TLS (when the Sentinels are `rediss://`, with the
        /// configured CA and client certificate for both).
        sentinel: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
        current: tokio::sync::Mutex<Option<ConnectionManager>>,
    },
}

/// How often a session's "last seen" time is written, per replica: the sessions page
/// shows it to the minute, and a busy session costs one write a minute, not one a request.
const SEEN_EVERY: Duration = Duration::from_secs(60);

/// One of a person's sessions as the store lists it.
#[derive(Debug)]
pub struct Listed {
    /// Its store key (the digest of its handle, never the handle).
    pub key: String,
    /// The session.
    pub session: Session,
    /// When it was last used (Unix seconds), to [`SEEN_EVERY`].
    pub seen: Option<u64>,
}

/// A session kept in this process: itself, its user's mark as Redis had it, and since when.
type Cached = (Arc<Session>, Option<u64>, Instant);

/// The Redis store.
pub struct RedisStore {
    conn: Conn,
    cfg: RedisConfig,
    /// Validated sessions kept in this process for `redis_cache_ttl`, with their user's
    /// mark as Redis had it.
    cache: Mutex<HashMap<String, Cached>>,
    /// Whether GitLab's events can mark users (webhooks on): only then is a user's mark
    /// read with the session.
    read_marks: bool,
    /// When this replica last wrote each session's "last seen" time (by store key).
    seen: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

fn with_password(
    url: &str,
    password: Option<&crate::config::Secret>,
) -> Result<redis::ConnectionInfo, StoreError> {
    use redis::IntoConnectionInfo;
    let mut info = url
        .into_connection_info()
        .map_err(|e| StoreError(format!("bad Redis URL: {e}")))?;
    if let Some(p) = password {
        if info.redis_settings().password().is_none() {
            let settings = info.redis_settings().clone().set_password(p.expose());
            info = info.set_redis_settings(settings);
        }
    }
    Ok(info)
}

/// The configured CA and client certificate (`session.redis_ca_file`...), in the form the
/// redis crate takes them.
fn certificates(cfg: &RedisConfig) -> Option<redis::TlsCertificates> {
    let tls = cfg.tls.as_ref()?;
    Some(redis::TlsCertificates {
        client_tls: tls
            .client
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.expose().as_bytes().to_vec(),
            }),
        root_cert: tls.ca.clone(),
    })
}

/// The client that asks the Sentinels `nodes` for `master`: the Sentinels' own credentials
/// from their URLs (the first one's), the master's from `redis_password`; over TLS when the
/// Sentinels are `rediss://`, to both, with the configured CA and client certificate.
fn sentinel_client(
    cfg: &RedisConfig,
    master: &str,
    nodes: &[crate::config::Secret],
) -> Result<redis::sentinel::SentinelClient, StoreError> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let fail = |e: redis::RedisError| StoreError(e.to_string());
    let infos = nodes
        .iter()
        .map(|n| with_password(n.expose(), None))
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = SentinelClientBuilder::new(
        infos.iter().map(|i| i.addr().clone()),
        master,
        SentinelServerType::Master,
    )
    .map_err(fail)?;
    if let Some(first) = infos.first().map(redis::ConnectionInfo::redis_settings) {
        if let Some(user) = first.username() {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(pw) = first.password() {
            builder = builder.set_client_to_sentinel_password(pw);
        }
    }
    if let Some(pw) = &cfg.password {
        builder = builder.set_client_to_redis_password(pw.expose());
    }
    if nodes.iter().any(|n| n.expose().starts_with("rediss://")) {
        builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
        if let Some(certs) = certificates(cfg) {
            builder = builder
                .set_client_to_sentinel_certificates(certs.clone())
                .set_client_to_redis_certificates(certs);
        }
    }
    builder.build().map_err(fail)
}

fn manager_config(cfg: &RedisConfig) -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(cfg.connect_timeout))
        .set_response_timeout(Some(cfg.command_timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

impl RedisStore {
    /// Sets up the connection(s). Does not fail when Redis is down: connections are made
    /// (and re-made) on use, so labgate starts and recovers without a restart.
    /// `read_marks`: GitLab's events are taken (`gitlab.webhook_secret`), so a session's
    /// load also reads its user's mark.
    pub async fn new(cfg: &RedisConfig, read_marks: bool) -> Result<RedisStore, StoreError> {
        let conn = match &cfg.target {
            RedisTarget::Single(url) => {
                let info = with_password(url.expose(), cfg.password.as_ref())?;
                let client = match certificates(cfg) {
                    Some(certs) => redis::Client::build_with_tls(info, certs),
                    None => redis::Client::open(info),
                }
                .map_err(|e| StoreError(e.to_string()))?;
                Conn::Single(
                    ConnectionManager::new_lazy_with_config(client, manager_config(cfg))
                        .map_err(|e| StoreError(e.to_string()))?,
                )
            }
            RedisTarget::Cluster(nodes) => {
                let infos = nodes
                    .iter()
                    .map(|n| with_password(n.expose(), cfg.password.as_ref()))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut builder = redis::cluster::ClusterClient::builder(infos)
                    .connection_timeout(cfg.connect_timeout)
                    .response_timeout(cfg.command_timeout);
                if let Some(certs) = certificates(cfg) {
                    builder = builder.certs(certs);
                }
                let client = builder.build().map_err(|e| StoreError(e.to_string()))?;
                let c =
                    tokio::time::timeout(cfg.connect_timeout * 3, client.get_async_connection())
                        .await
                        .map_err(|_| StoreError("Redis Cluster did not answer in time".into()))?
                        .map_err(|e| StoreError(e.to_string()))?;
                Conn::Cluster(c)
            }
            RedisTarget::Sentinel { master, nodes } => Conn::Sentinel {
                sentinel: tokio::sync::Mutex::new(sentinel_client(cfg, master, nodes)?),
                current: tokio::sync::Mutex::new(None),
            },
        };
        Ok(RedisStore {
            conn,
            cfg: cfg.clone(),
            cache: Mutex::new(HashMap::new()),
            read_marks,
            seen: Mutex::new(HashMap::new()),
        })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let timeout = self.cfg.command_timeout;
        let fail = |e: redis::RedisError| StoreError(e.to_string());
        let run = async {
            match &self.conn {
                Conn::Single(m) => cmd.query_async(&mut m.clone()).await.map_err(fail),
                Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await.map_err(fail),
                Conn::Sentinel { sentinel, current } => {
                    let mut slot = current.lock().await;
                    if slot.is_none() {
                        // Boxed: asked once per (re)connection, and deep.
                        let mut sentinel = sentinel.lock().await;
                        let client = Box::pin(sentinel.async_get_client()).await.map_err(fail)?;
                        drop(sentinel);
                        *slot = Some(
                            ConnectionManager::new_with_config(client, manager_config(&self.cfg))
                                .await
                                .map_err(fail)?,
                        );
                    }
                    let mut m = slot.clone().ok_or_else(|| StoreError("no master".into()))?;
                    drop(slot);
                    let r = cmd.query_async(&mut m).await;
                    if r.is_err() {
                        // A failover may have moved the master: ask Sentinel again next time.
                        *current.lock().await = None;
                    }
                    r.map_err(fail)
                }
            }
        };
        tokio::time::timeout(timeout * 2, run)
            .await
            .map_err(|_| StoreError(format!("Redis did not answer within {timeout:?}")))?
    }

    fn key(&self, handle: &str) -> String {
        let d = sha2::Sha256::digest(handle.as_bytes());
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}s:{hex}", self.cfg.key_prefix)
    }

    fn user_key(&self, user_id: u64) -> String {
        format!("{}u:{user_id}", self.cfg.key_prefix)
    }

    fn seen_key(&self, user_id: u64) -> String {
        format!("{}seen:{user_id}", self.cfg.key_prefix)
    }

    /// Records that the session under `key` is in use, at most once per [`SEEN_EVERY`] per
    /// replica; a failure loses only the page's "last seen" time.
    async fn touch(&self, key: &str, session: &Session) {
        let now = Instant::now();
        {
            let Ok(mut seen) = self.seen.lock() else {
                return;
            };
            if seen
                .get(key)
                .is_some_and(|at| now.duration_since(*at) < SEEN_EVERY)
            {
                return;
            }
            if seen.len() >= 100_000 {
                seen.clear();
            }
            seen.insert(key.to_owned(), now);
        }
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // The times live as long as the user's longest session (as the index does).
        const TOUCH: &str = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) redis.call('PEXPIRE', KEYS[1], ARGV[3], 'NX') redis.call('PEXPIRE', KEYS[1], ARGV[3], 'GT') return 1";
        let ttl_ms = session.expires.saturating_sub(unix).max(1) * 1000;
        let touched = self
            .query::<i64>(
                redis::cmd("EVAL")
                    .arg(TOUCH)
                    .arg(1)
                    .arg(self.seen_key(session.user.id))
                    .arg(key)
                    .arg(unix)
                    .arg(ttl_ms),
            )
            .await;
        if let Err(e) = touched {
            tracing::debug!(error = %e, "recording a session's last use failed");
        }
    }

    /// Every live session of user `user_id`, with when each was last used.
    pub async fn list(&self, codec: &CookieCodec, user_id: u64) -> Result<Vec<Listed>, StoreError> {
        let members: Vec<String> = self
            .query(redis::cmd("SMEMBERS").arg(self.user_key(user_id)))
            .await?;
        let seen: HashMap<String, u64> = self
            .query(redis::cmd("HGETALL").arg(self.seen_key(user_id)))
            .await?;
        let mut listed: Vec<Listed> = Vec::with_capacity(members.len());
        for m in &members {
            let key = self.member_key(m);
            let sealed: Option<String> = self.query(redis::cmd("GET").arg(&key)).await?;
            let session = sealed
                .and_then(|v| codec.open_value(&key, &v))
                .and_then(|json| serde_json::from_str::<Session>(&json).ok());
            // Another user's session in this index would be a forgery: never listed.
            if let Some(session) = session.filter(|s| s.user.id == user_id) {
                listed.push(Listed {
                    seen: seen.get(&key).copied(),
                    key,
                    session,
                });
            }
        }
        // Times of sessions that expired or were ended elsewhere go with them.
        let stale: Vec<&String> = seen
            .keys()
            .filter(|k| !listed.iter().any(|l| &l.key == *k))
            .collect();
        if !stale.is_empty() {
            self.query::<()>(redis::cmd("HDEL").arg(self.seen_key(user_id)).arg(stale))
                .await?;
        }
        Ok(listed)
    }

    /// Deletes user `user_id`'s session under store key `key` (their sessions page).
    pub async fn delete_key(&self, key: &str, user_id: u64) -> Result<(), StoreError> {
        if let Ok(mut cache) = self.cache.lock() {
            // Only this user's entries are hashed to find it.
            cache.retain(|handle, (s, _, _)| s.user.id != user_id || self.key(handle) != key);
        }
        self.query::<()>(redis::cmd("DEL").arg(key)).await?;
        self.query::<()>(redis::cmd("SREM").arg(self.user_key(user_id)).arg(key))
            .await?;
        self.query::<()>(redis::cmd("HDEL").arg(self.seen_key(user_id)).arg(key))
            .await
    }

    /// The store key of the session `handle` names.
    pub fn key_of(&self, handle: &str) -> String {
        self.key(handle)
    }

    fn due_key(&self, user_id: u64) -> String {
        format!("{}due:{user_id}", self.cfg.key_prefix)
    }

    /// Marks user `user_id`'s sessions confirmed at or before `at` as due, for every
    /// replica (they read the mark with the session, after their cache's TTL), for `keep`.
    pub async fn mark_due(&self, user_id: u64, at: u64, keep: Duration) -> Result<(), StoreError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, (s, _, _)| s.user.id != user_id);
        }
        const LATEST: &str = "local t = tonumber(redis.call('GET', KEYS[1]) or '0') if tonumber(ARGV[1]) > t then t = tonumber(ARGV[1]) end redis.call('SET', KEYS[1], t, 'PX', ARGV[2]) return t";
        self.query::<i64>(
            redis::cmd("EVAL")
                .arg(LATEST)
                .arg(1)
                .arg(self.due_key(user_id))
                .arg(at)
                .arg(keep.as_millis().max(1) as u64),
        )
        .await
        .map(|_| ())
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    /// The session for `handle` and its user's mark (see [`RedisStore::mark_due`]), from
    /// the local cache when fresh enough (`fresh = false`).
    pub async fn load(
        &self,
        codec: &CookieCodec,
        handle: &str,
        fresh: bool,
    ) -> Result<Option<(Arc<Session>, Option<u64>)>, StoreError> {
        if !fresh && !self.cfg.cache_ttl.is_zero() {
            if let Ok(cache) = self.cache.lock() {
                if let Some((s, due, at)) = cache.get(handle) {
                    if at.elapsed() < self.cfg.cache_ttl {
                        return Ok(Some((s.clone(), *due)));
                    }
                }
            }
        }
        let key = self.key(handle);
        let sealed: Option<String> = self.query(redis::cmd("GET").arg(&key)).await?;
        let session = sealed
            .and_then(|v| codec.open_value(&key, &v))
            .and_then(|json| serde_json::from_str::<Session>(&json).ok())
            .map(Arc::new);
        let due = match &session {
            Some(s) if self.read_marks => {
                let t: Option<u64> = self
                    .query(redis::cmd("GET").arg(self.due_key(s.user.id)))
                    .await?;
                t
            }
            _ => None,
        };
        if let Ok(mut cache) = self.cache.lock() {
            match &session {
                Some(s) if !self.cfg.cache_ttl.is_zero() => {
                    if cache.len() > 50_000 {
                        let ttl = self.cfg.cache_ttl;
                        cache.retain(|_, (_, _, at)| at.elapsed() < ttl);
                    }
                    cache.insert(handle.to_owned(), (s.clone(), due, Instant::now()));
                }
                _ => {
                    cache.remove(handle);
                }
            }
        }
        if let Some(s) = &session {
            self.touch(&key, s).await;
        }
        Ok(session.map(|s| (s, due)))
    }

    /// Stores `session` under `handle` until its absolute expiry; `existing`: only over a
    /// session still stored (a revalidation must not bring back one that was ended
    /// meanwhile). Whether it was stored.
    pub async fn save(
        &self,
        codec: &CookieCodec,
        handle: &str,
        session: &Session,
        now: u64,
        existing: bool,
    ) -> Result<bool, StoreError> {
        let key = self.key(handle);
        let json = serde_json::to_string(session).map_err(|e| StoreError(e.to_string()))?;
        let sealed = codec
            .seal_value(&key, json)
            .ok_or_else(|| StoreError("cannot seal the session".into()))?;
        let ttl_ms = session.expires.saturating_sub(now).max(1) * 1000;
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(sealed).arg("PX").arg(ttl_ms);
        if existing {
            set.arg("XX");
        }
        let stored: Option<String> = self.query(&set).await?;
        if stored.is_none() {
            if let Ok(mut cache) = self.cache.lock() {
                cache.remove(handle);
            }
            return Ok(false);
        }
        // The per-user index (for sign-out everywhere) holds the hashed keys, never the
        // handles: reading Redis must not yield a usable cookie.
        let index = self.user_key(session.user.id);
        self.query::<()>(redis::cmd("SADD").arg(&index).arg(&key))
            .await?;
        self.prune_index(&index, session.user.id).await?;
        // The index lives as long as its longest session: NX sets a first TTL, GT extends.
        for flag in ["NX", "GT"] {
            self.query::<i64>(redis::cmd("PEXPIRE").arg(&index).arg(ttl_ms).arg(flag))
                .await?;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if existing {
                // A revalidation: the next request reads Redis (a sign-out on this replica
                // meanwhile must not leave the fresh copy cached for redis_cache_ttl).
                cache.remove(handle);
            } else {
                // The mark is not known here: the next load past the TTL reads it again.
                cache.insert(
                    handle.to_owned(),
                    (Arc::new(session.clone()), None, Instant::now()),
                );
            }
        }
        Ok(true)
    }

    /// Deletes one session: every replica refuses its cookie from now on (after their
    /// local cache TTL).
    pub async fn delete(&self, handle: &str, user_id: u64) -> Result<(), StoreError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(handle);
        }
        self.query::<()>(redis::cmd("DEL").arg(self.key(handle)))
            .await?;
        // Indexes written before 0.2 hold the handle itself.
        self.query::<()>(
            redis::cmd("SREM")
                .arg(self.user_key(user_id))
                .arg(self.key(handle))
                .arg(handle),
        )
        .await?;
        self.query::<()>(
            redis::cmd("HDEL")
                .arg(self.seen_key(user_id))
                .arg(self.key(handle)),
        )
        .await
    }

    /// The session key an index member names (the hashed key, or a handle in an index
    /// written before 0.2).
    fn member_key(&self, member: &str) -> String {
        if member.starts_with(&format!("{}s:", self.cfg.key_prefix)) {
            member.to_owned()
        } else {
            self.key(member)
        }
    }

    /// Keeps a user's index small: once it holds more than [`INDEX_PRUNE_ABOVE`] entries,
    /// those whose session has expired are removed, and past [`MAX_SESSIONS_PER_USER`]
    /// live sessions the surplus is ended (a stranger cannot grow Redis without bound by
    /// signing in again and again).
    async fn prune_index(&self, index: &str, user_id: u64) -> Result<(), StoreError> {
        let seen = self.seen_key(user_id);
        let count: usize = self.query(redis::cmd("SCARD").arg(index)).await?;
        if count <= INDEX_PRUNE_ABOVE {
            return Ok(());
        }
        let members: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(index)).await?;
        for m in &members {
            let live: i64 = self
                .query(redis::cmd("EXISTS").arg(self.member_key(m)))
                .await?;
            if live == 0 {
                self.query::<()>(redis::cmd("SREM").arg(index).arg(m))
                    .await?;
                self.query::<()>(redis::cmd("HDEL").arg(&seen).arg(self.member_key(m)))
                    .await?;
            }
        }
        loop {
            let count: usize = self.query(redis::cmd("SCARD").arg(index)).await?;
            if count <= MAX_SESSIONS_PER_USER {
                return Ok(());
            }
            let popped: Option<String> = self.query(redis::cmd("SPOP").arg(index)).await?;
            let Some(m) = popped else {
                return Ok(());
            };
            self.query::<()>(redis::cmd("DEL").arg(self.member_key(&m)))
                .await?;
            self.query::<()>(redis::cmd("HDEL").arg(&seen).arg(self.member_key(&m)))
                .await?;
        }
    }

    /// Deletes every session of a user (`sign_out?everywhere=1`).
    pub async fn delete_all(&self, user_id: u64) -> Result<usize, StoreError> {
        let index = self.user_key(user_id);
        let members: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(&index)).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, (s, _, _)| s.user.id != user_id);
        }
        for m in &members {
            self.query::<()>(redis::cmd("DEL").arg(self.member_key(m)))
                .await?;
        }
        // One key a command: in a Cluster the two live in different slots.
        self.query::<()>(redis::cmd("DEL").arg(&index)).await?;
        self.query::<()>(redis::cmd("DEL").arg(self.seen_key(user_id)))
            .await?;
        Ok(members.len())
    }

    /// Takes the revalidation lock for a session (SET NX PX with a random token).
    pub async fn lock(&self, handle: &str) -> Result<Option<String>, StoreError> {
        let token = crate::random_token(16);
        let key = format!("{}l", self.key(handle));
        let got: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(LOCK_TTL.as_millis() as u64),
            )
            .await?;
        Ok(got.map(|_| token))
    }

    /// Renews the lock's TTL only if it is still ours (a compare-and-expire script).
    pub async fn extend_lock(&self, handle: &str, token: &str) -> Result<(), StoreError> {
        const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
        let key = format!("{}l", self.key(handle));
        self.query::<i64>(
            redis::cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(&key)
                .arg(token)
                .arg(LOCK_TTL.as_millis() as u64),
        )
        .await
        .map(|_| ())
    }

    /// Releases the lock only if it is still ours (a compare-and-delete script).
    pub async fn unlock(&self, handle: &str, token: &str) -> Result<(), StoreError> {
        const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
        let key = format!("{}l", self.key(handle));
        self.query::<i64>(redis::cmd("EVAL").arg(RELEASE).arg(1).arg(key).arg(token))
            .await
            .map(|_| ())
    }
}
