//! Who the caller is ([`Principal`]) and what the upstream is told: the identity header
//! table, the signed ES256 assertion and the JWKS that verifies it.
//!
//! Keys come from `identity.signing_key_files` (all published, the first signs) or are
//! generated at start. An assertion is reused for the same session while more than half
//! its lifetime remains, so a busy session costs one ECDSA signature per half-lifetime
//! rather than one per request.

mod principal;

pub use principal::{set_identity_headers, CiCaller, HeaderSet, IdentityHeader, Principal};

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::HeaderValue;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::IdentityConfig;

/// Most cached assertions kept before expired ones are swept.
const CACHE_SWEEP_AT: usize = 50_000;

/// The assertion's claims (SPEC §4).
#[derive(Debug, Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    username: &'a str,
    email: &'a str,
    email_verified: bool,
    name: &'a str,
    groups: &'a [String],
    iat: u64,
    nbf: u64,
    exp: u64,
    sid: &'a str,
    jti: String,
    /// "user" (signed in), "ci_job" or "user_token".
    kind: &'a str,
    /// The CI/CD claims that admitted a `ci_job`.
    #[serde(skip_serializing_if = "Option::is_none")]
    ci: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// Generates a new ES256 private key as PKCS#8 PEM (`labgate keygen`, ephemeral keys).
pub fn generate_es256_pem() -> String {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

/// Signed assertions by (principal handle, its verification time, audience): the value and
/// its expiry.
type AssertionCache = HashMap<(String, u64, String), (HeaderValue, u64)>;

/// Signs assertions and publishes their keys.
pub struct Signer {
    key: EncodingKey,
    kid: String,
    issuer: String,
    lifetime: u64,
    jwks: Bytes,
    etag: HeaderValue,
    /// Whether the key was generated at start (single replica only).
    pub ephemeral: bool,
    cache: Mutex<AssertionCache>,
    signed: prometheus_client::metrics::counter::Counter,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn public_jwk(key: &EncodingKey) -> Result<(Jwk, String), String> {
    let mut jwk = Jwk::from_encoding_key(key, Algorithm::ES256).map_err(|e| e.to_string())?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| e.to_string())?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
    Ok((jwk, kid))
}

impl Signer {
    /// Loads the configured keys (or generates one) for `issuer` = public_url.
    pub fn new(
        cfg: &IdentityConfig,
        issuer: &str,
        signed: prometheus_client::metrics::counter::Counter,
    ) -> Result<Self, String> {
        let mut pems = Vec::new();
        for path in &cfg.signing_key_files {
            let pem = std::fs::read(path).map_err(|e| {
                format!(
                    "identity.signing_key_files: cannot read {}: {e}",
                    path.display()
                )
            })?;
            pems.push((path.display().to_string(), pem));
        }
        let ephemeral = pems.is_empty();
        if ephemeral {
            pems.push(("generated".into(), generate_es256_pem().into_bytes()));
        }
        let mut keys = Vec::new();
        let mut jwks = Vec::new();
        for (origin, pem) in &pems {
            let key = EncodingKey::from_ec_pem(pem).map_err(|e| {
                format!("identity.signing_key_files: {origin} is not an ES256 (P-256) private key in PEM: {e}; create one with `labgate keygen`")
            })?;
            let (jwk, kid) = public_jwk(&key)
                .map_err(|e| format!("identity.signing_key_files: {origin}: {e}"))?;
            jwks.push(jwk);
            keys.push((key, kid));
        }
        let body = serde_json::to_vec(&JwkSet { keys: jwks }).map_err(|e| e.to_string())?;
        let etag = {
            use sha2::Digest;
            let d = sha2::Sha256::digest(&body);
            let hex: String = d.iter().take(12).map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).map_err(|e| e.to_string())?
        };
        let (key, kid) = keys.into_iter().next().ok_or("no signing key")?;
        Ok(Signer {
            key,
            kid,
            issuer: issuer.trim_end_matches('/').to_owned(),
            lifetime: cfg.assertion_lifetime.as_secs(),
            jwks: Bytes::from(body),
            etag,
            ephemeral,
            cache: Mutex::new(HashMap::new()),
            signed,
        })
    }

    /// The JWKS document and its ETag.
    pub fn jwks(&self) -> (Bytes, HeaderValue) {
        (self.jwks.clone(), self.etag.clone())
    }

    /// The `kid` of the signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The assertion for `principal` at `now`, for the app at `aud` (its origin), reused
    /// while more than half its life remains.
    pub fn assertion(&self, principal: &Principal, now: u64, aud: &str) -> Option<HeaderValue> {
        let derived = principal.derived();
        // First the opened session's own copy (no key to build, no shared lock)...
        let kind = principal.kind();
        let fresh = |own: &crate::session::OwnAssertion| {
            (own.kind == kind && &*own.aud == aud && own.exp > now + self.lifetime / 2)
                .then(|| own.value.clone())
        };
        let own = derived.assertion.lock().ok();
        if let Some(value) = own.as_ref().and_then(|a| a.as_ref()).and_then(fresh) {
            return Some(value);
        }
        drop(own);
        let (value, exp) = self.shared_assertion(principal, now, aud)?;
        if let Ok(mut own) = derived.assertion.lock() {
            *own = Some(crate::session::OwnAssertion {
                kind,
                aud: aud.into(),
                value: value.clone(),
                exp,
            });
        }
        Some(value)
    }

    /// ...then the process's, shared by copies of the session opened separately (Redis
    /// loads, other cookies of the same session): the assertion and its expiry.
    fn shared_assertion(
        &self,
        principal: &Principal,
        now: u64,
        aud: &str,
    ) -> Option<(HeaderValue, u64)> {
        let cache_key = (
            principal.handle().to_owned(),
            principal.verified(),
            aud.to_owned(),
        );
        if let Ok(cache) = self.cache.lock() {
            if let Some((value, exp)) = cache.get(&cache_key) {
                if *exp > now + self.lifetime / 2 {
                    return Some((value.clone(), *exp));
                }
            }
        }
        let value = self.sign(principal, now, aud)?;
        let exp = now + self.lifetime;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_SWEEP_AT {
                cache.retain(|_, (_, exp)| *exp > now);
                // Still full (many sessions, or one caller asking for many audiences): the
                // cache is only a saving, so it starts again rather than grow.
                if cache.len() >= CACHE_SWEEP_AT {
                    cache.clear();
                }
            }
            cache.insert(cache_key, (value.clone(), exp));
        }
        Some((value, exp))
    }

    fn sign(&self, principal: &Principal, now: u64, aud: &str) -> Option<HeaderValue> {
        let user = principal.user();
        let ci = principal.ci_claims();
        let claims = Claims {
            iss: &self.issuer,
            aud,
            // A CI job's subject is its token's (`project_path:...:ref_type:...`), a
            // person's their GitLab user id.
            sub: match ci.and_then(|c| c.get("sub")).and_then(|v| v.as_str()) {
                Some(ci_sub) => ci_sub.to_owned(),
                None => user.id.to_string(),
            },
            username: &user.username,
            email: user.email.as_deref().unwrap_or(""),
            email_verified: user.email_verified,
            name: &user.name,
            groups: &user.groups,
            iat: now,
            nbf: now,
            exp: now + self.lifetime,
            sid: principal.handle(),
            jti: crate::random_token(16),
            kind: principal.kind(),
            ci,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        self.signed.inc();
        match jsonwebtoken::encode(&header, &claims, &self.key) {
            Ok(token) => HeaderValue::from_str(&token).ok(),
            Err(e) => {
                tracing::error!(error = %e, "signing the assertion failed");
                None
            }
        }
    }
}
