//! The GitLab stand-in: GitLab's OAuth2 / OIDC provider and the REST API calls labgate
//! makes, behaving as documented in shared/GITLAB.md (discovery, RS256 JWKS with several
//! keys, exact redirect-URI match, single-use expiring codes, PKCE, rotating single-use
//! refresh tokens, RFC 6749 errors with GitLab's status codes, userinfo with `groups` and
//! role claims, revocation, `/api/v4/user`, `/api/v4/projects/:id`).
//!
//! Tests drive it in-process: change memberships, inject faults, count calls.

mod fixture;
mod http_api;
mod members;

pub use fixture::{
    Application, Fixture, FixtureUser, Group, Hook, Member, PersonalAccessToken, Project,
};

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use tokio::net::TcpListener;

/// Faults tests can inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Delay every answer.
    pub latency: Option<Duration>,
    /// Answer every request with 500.
    pub server_error: bool,
    /// Answer 500 to requests whose path (after the install's prefix) starts with one of
    /// these, e.g. `/oauth/userinfo`: GitLab failing between two calls of one revalidation.
    pub failing_paths: Vec<String>,
    /// Refuse every refresh with `invalid_grant`.
    pub refresh_invalid_grant: bool,
    /// Access-token lifetime (default 7200 s, GitLab's fixed value).
    pub access_token_ttl: Option<u64>,
    /// ID-token lifetime (default 120 s).
    pub id_token_ttl: Option<u64>,
    /// Tamper with ID tokens: "nonce", "aud", "iss", "expired", "signature", "kid".
    pub id_token_tamper: Option<String>,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    username: String,
    scopes: Vec<String>,
    nonce: Option<String>,
    challenge: Option<(String, String)>,
    expires: u64,
}

#[derive(Debug, Clone)]
struct TokenGrant {
    client_id: String,
    username: String,
    scopes: Vec<String>,
    expires: u64,
    refresh: String,
}

#[derive(Debug, Default)]
struct Grants {
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, TokenGrant>,
    /// refresh token -> access token it belongs to.
    refresh: HashMap<String, String>,
    /// stand-in browser session cookie -> username.
    browser: HashMap<String, String>,
}

/// Call counters, for tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// Every request, whatever its answer (faults included).
    pub requests: AtomicUsize,
    /// Successful and failed authorization_code grants.
    pub code_grants: AtomicUsize,
    /// refresh_token grants.
    pub refresh_grants: AtomicUsize,
    /// userinfo calls.
    pub userinfo: AtomicUsize,
    /// revocations.
    pub revocations: AtomicUsize,
    /// `/api/v4/user` calls.
    pub api_user: AtomicUsize,
    /// Webhook deliveries started (member events).
    pub hooks_sent: AtomicUsize,
    /// The `traceparent` of each request that had one (the last 100), to see that calls
    /// made while serving a request carry its trace.
    pub traceparents: Mutex<Vec<String>>,
}

/// The stand-in.
pub struct StandIn {
    /// Base URL, e.g. `http://127.0.0.1:4181` or `http://127.0.0.1:4181/gitlab`.
    pub base_url: String,
    /// Path prefix of a sub-path install ("" or "/gitlab").
    prefix: String,
    fixture: Mutex<Fixture>,
    grants: Mutex<Grants>,
    faults: Mutex<Faults>,
    /// Call counters.
    pub counters: Counters,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Two RSA keys, generated once per process: the first signs, both are published (GitLab's
/// JWKS holds several keys).
struct Keys {
    signing: EncodingKey,
    kid: String,
    /// A published key that does not sign (rotation), and one that is never published.
    other: EncodingKey,
    unpublished: EncodingKey,
    jwks: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey;
        let gen = || {
            let key =
                rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key generation");
            let pem = key
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .expect("PKCS#8 PEM");
            EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM")
        };
        let (signing, other, unpublished) = (gen(), gen(), gen());
        let jwk = |k: &EncodingKey| {
            let mut j = Jwk::from_encoding_key(k, Algorithm::RS256).expect("JWK");
            let kid = j
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .expect("thumbprint");
            j.common.key_id = Some(kid.clone());
            j.common.public_key_use = Some(PublicKeyUse::Signature);
            j.common.key_algorithm = Some(KeyAlgorithm::RS256);
            (j, kid)
        };
        let (a, kid) = jwk(&signing);
        let (b, _) = jwk(&other);
        let jwks = serde_json::to_string(&JwkSet { keys: vec![a, b] }).expect("JWKS");
        Keys {
            signing,
            kid,
            other,
            unpublished,
            jwks,
        }
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random 64-hex token, like GitLab's.
fn hex_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl StandIn {
    /// Starts the stand-in on `listener`, mounted at `prefix` ("" or e.g. "/gitlab").
    pub fn start(listener: TcpListener, fixture: Fixture, prefix: &str) -> Arc<StandIn> {
        Self::start_with_tls(listener, fixture, prefix, None)
    }

    /// Like [`StandIn::start`], serving HTTPS with `tls` when given (a self-managed GitLab
    /// behind a private CA).
    pub fn start_with_tls(
        listener: TcpListener,
        fixture: Fixture,
        prefix: &str,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Arc<StandIn> {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let prefix = prefix.trim_end_matches('/').to_owned();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let _ = keys();
        let s = Arc::new(StandIn {
            base_url: format!("{scheme}://{addr}{prefix}"),
            prefix,
            fixture: Mutex::new(fixture),
            grants: Mutex::new(Grants::default()),
            faults: Mutex::new(Faults::default()),
            counters: Counters::default(),
        });
        crate::dev::util::serve(listener, tls, s.clone(), http_api::handle);
        s
    }

    /// Changes the fixture (memberships, user state...) while running.
    pub fn with_fixture<R>(&self, f: impl FnOnce(&mut Fixture) -> R) -> R {
        let mut guard = self.fixture.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Sets the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Revokes every token of a user (as an admin would by blocking them).
    pub fn revoke_all(&self, username: &str) {
        let mut g = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        g.access.retain(|_, t| t.username != username);
        let alive: Vec<String> = g.access.keys().cloned().collect();
        g.refresh.retain(|_, a| alive.contains(a));
    }

    /// How many refresh grants were made.
    pub fn refresh_count(&self) -> usize {
        self.counters.refresh_grants.load(Ordering::SeqCst)
    }

    /// Mints a GitLab CI/CD ID token as GitLab would for a job of `project_path` on `ref_`:
    /// GitLab's claim set (all values strings), signed with the JWKS key. `overrides` replaces
    /// or adds claims (tests use it for expired, other-issuer... tokens).
    pub fn ci_id_token(
        &self,
        project_path: &str,
        ref_: &str,
        ref_protected: bool,
        aud: &str,
        overrides: &serde_json::Value,
    ) -> String {
        let t = now();
        let namespace = project_path.rsplit_once('/').map_or("", |(n, _)| n);
        let project_id = self
            .with_fixture(|f| f.project(project_path).map(|p| p.id))
            .unwrap_or(0);
        let mut claims = serde_json::json!({
            "namespace_id": "1",
            "namespace_path": namespace,
            "project_id": project_id.to_string(),
            "project_path": project_path,
            "user_id": "101",
            "user_login": "alice",
            "user_email": "alice@example.com",
            "user_access_level": "maintainer",
            "pipeline_id": "4242",
            "pipeline_source": "push",
            "job_id": "9001",
            "ref": ref_,
            "ref_type": "branch",
            "ref_path": format!("refs/heads/{ref_}"),
            "ref_protected": ref_protected.to_string(),
            "environment": "production",
            "environment_protected": "true",
            "runner_id": "7",
            "runner_environment": "self-hosted",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "project_visibility": "private",
            "ci_config_ref_uri": format!("{}/{project_path}//.gitlab-ci.yml@refs/heads/{ref_}", self.base_url.split("://").nth(1).unwrap_or("")),
            "jti": crate::random_token(16),
            "iss": self.base_url,
            "iat": t,
            "nbf": t - 5,
            "exp": t + 300,
            "sub": format!("project_path:{project_path}:ref_type:branch:ref:{ref_}"),
            "aud": aud,
        });
        if let (Some(obj), Some(extra)) = (claims.as_object_mut(), overrides.as_object()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        self.sign(&claims)
    }

    /// Signs arbitrary claims with the stand-in's JWKS key (CI ID tokens, tests).
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let k = keys();
        let mut h = jsonwebtoken::Header::new(Algorithm::RS256);
        h.kid = Some(k.kid.clone());
        h.typ = Some("JWT".into());
        jsonwebtoken::encode(&h, claims, &k.signing).unwrap_or_default()
    }

    fn id_token(
        &self,
        grant: &TokenGrant,
        nonce: Option<&str>,
        user: &FixtureUser,
        fixture: &Fixture,
    ) -> String {
        let k = keys();
        let faults = self.faults();
        let tamper = faults.id_token_tamper.as_deref();
        let t = now();
        let ttl = faults.id_token_ttl.unwrap_or(120);
        let mut claims = serde_json::json!({
            "iss": if tamper == Some("iss") { "https://evil.example" } else { self.base_url.as_str() },
            "sub": user.id.to_string(),
            "aud": if tamper == Some("aud") { "another-app" } else { grant.client_id.as_str() },
            "exp": if tamper == Some("expired") { t - 600 } else { t + ttl },
            "iat": if tamper == Some("expired") { t - 720 } else { t },
            "auth_time": t,
            "sub_legacy": format!("legacy-{}", user.id),
            "name": user.name,
            "nickname": user.username,
            "preferred_username": user.username,
            "website": "",
            "profile": format!("{}/{}", self.base_url, user.username),
            "picture": format!("{}/uploads/-/system/user/avatar/{}/avatar.png", self.base_url, user.id),
            "groups_direct": fixture.direct_groups(&user.username).into_iter().map(|(p, _)| p).collect::<Vec<_>>(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = serde_json::Value::from(if tamper == Some("nonce") {
                "not-the-nonce"
            } else {
                n
            });
        }
        self.add_email(&mut claims, grant, user);
        let obj = claims.as_object_mut().expect("object");
        obj.retain(|_, v| {
            !(v.is_null() || v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty))
        });
        let mut h = jsonwebtoken::Header::new(Algorithm::RS256);
        h.typ = Some("JWT".into());
        let key = match tamper {
            Some("signature") => {
                h.kid = Some(k.kid.clone());
                &k.other
            }
            Some("kid") => {
                h.kid = Some("unknown-kid".into());
                &k.unpublished
            }
            _ => {
                h.kid = Some(k.kid.clone());
                &k.signing
            }
        };
        jsonwebtoken::encode(&h, &claims, key).unwrap_or_default()
    }

    fn add_email(&self, claims: &mut serde_json::Value, grant: &TokenGrant, user: &FixtureUser) {
        // `email` scope: the primary email; otherwise only the public email, if any.
        if grant.scopes.iter().any(|s| s == "email") {
            claims["email"] = user.email.clone().into();
            claims["email_verified"] = user.email_verified.into();
        } else if let Some(public) = &user.public_email {
            claims["email"] = public.clone().into();
            claims["email_verified"] = user.email_verified.into();
        }
    }
}
