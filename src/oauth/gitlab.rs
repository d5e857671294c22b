//! The only code that talks to GitLab: discovery, JWKS, the token endpoint (via the
//! `oauth2` crate), ID-token verification, userinfo and the REST API calls the access
//! rules need. Every failure says whether GitLab refused (and with which RFC 6749 error)
//! or could not be reached, so the caller can answer 4xx vs 502. Every HTTP call is
//! counted and timed by endpoint name and outcome ([`GitlabMetrics`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::access::User;
use crate::config::GitlabConfig;
use crate::metrics::{GitlabEndpoint, GitlabMetrics, GitlabOutcome};
use crate::oauth::flow::{self, Secrets};

/// What went wrong talking to GitLab.
#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    /// GitLab could not be reached or answered with something unusable.
    #[error("GitLab unreachable: {0}")]
    Unreachable(String),
    /// The token endpoint refused, with an RFC 6749 error code.
    #[error("GitLab refused the request: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// `invalid_grant`, `invalid_client`, ...
        code: String,
        /// GitLab's error_description.
        description: Option<String>,
    },
    /// The ID token failed verification.
    #[error("ID token rejected: {0}")]
    BadIdToken(String),
    /// An API call was answered with an error status.
    #[error("GitLab API {path} answered {status}")]
    Api {
        /// The API path.
        path: String,
        /// HTTP status.
        status: u16,
    },
}

impl GitlabError {
    /// Whether GitLab (not the user or labgate) is at fault, so the answer is 502.
    pub fn is_unreachable(&self) -> bool {
        // 408, 425 and 429 (GitLab's rate limit) say "not now", not "no".
        matches!(self, GitlabError::Unreachable(_))
            || matches!(self, GitlabError::Api { status, .. }
                if *status >= 500 || matches!(*status, 408 | 425 | 429))
    }
    /// The RFC 6749 error code, if GitLab refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            GitlabError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The discovery document fields labgate uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    /// Issuer, the GitLab base URL.
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// Userinfo endpoint.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// JWKS URL.
    pub jwks_uri: String,
    /// Revocation endpoint.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// Supported client authentication methods.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// `id_token` in the token response (GitLab adds it with `openid`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    /// The compact JWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

/// One call of the token endpoint, as the `oauth2` crate runs it.
type TokenCall<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<oauth2::HttpResponse, oauth2::HttpClientError<reqwest::Error>>,
            > + Send
            + 'a,
    >,
>;

/// The HTTP client the `oauth2` crate calls the token endpoint with: the GitLab client's
/// own, each call recorded as [`GitlabEndpoint::Token`].
struct TokenClient<'a>(&'a Gitlab);

impl<'c> oauth2::AsyncHttpClient<'c> for TokenClient<'_> {
    type Error = oauth2::HttpClientError<reqwest::Error>;
    type Future = TokenCall<'c>;

    fn call(&'c self, mut request: oauth2::HttpRequest) -> Self::Future {
        let call = async move {
            request.headers_mut().extend(crate::trace::outgoing());
            let start = Instant::now();
            let answer = oauth2::AsyncHttpClient::call(&self.0.http, request).await;
            let outcome = match &answer {
                Ok(a) => GitlabOutcome::of_status(a.status().as_u16()),
                Err(oauth2::HttpClientError::Reqwest(e)) => {
                    GitlabOutcome::of_transport(e.is_timeout())
                }
                Err(_) => GitlabOutcome::Unreachable,
            };
            self.0
                .metrics
                .observe(GitlabEndpoint::Token, outcome, start.elapsed());
            answer
        };
        Box::pin(crate::trace::span(
            "gitlab",
            crate::trace::Kind::Client,
            call,
            |answer| {
                span_outcome(
                    GitlabEndpoint::Token,
                    answer.as_ref().map(|a| a.status().as_u16()).ok(),
                )
            },
        ))
    }
}

/// The span of one GitLab call: the endpoint, and GitLab's status (`None`: no answer).
fn span_outcome(endpoint: GitlabEndpoint, status: Option<u16>) -> crate::trace::export::Outcome {
    use opentelemetry::KeyValue;
    let mut attributes = vec![KeyValue::new("labgate.gitlab.endpoint", endpoint.as_str())];
    match status {
        Some(status) => {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            crate::trace::export::Outcome::ok(attributes)
        }
        None => crate::trace::export::Outcome::failed("GitLab did not answer", attributes),
    }
}

type TokenResp = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResp,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Tokens from the token endpoint.
#[derive(Clone)]
pub struct Tokens {
    /// Access token.
    pub access_token: String,
    /// Refresh token (rotates on every refresh).
    pub refresh_token: Option<String>,
    /// ID token, with `openid`.
    pub id_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `GET /api/v4/personal_access_tokens/self`.
#[derive(Debug, Deserialize)]
struct TokenSelf {
    #[serde(default)]
    active: bool,
    #[serde(default)]
    revoked: bool,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    groups_direct: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default, rename = "https://gitlab.org/claims/groups/owner")]
    owner: Vec<String>,
    #[serde(default, rename = "https://gitlab.org/claims/groups/maintainer")]
    maintainer: Vec<String>,
    #[serde(default, rename = "https://gitlab.org/claims/groups/developer")]
    developer: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ApiUser {
    id: u64,
    username: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    two_factor_enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct GroupRef {
    full_path: String,
}

#[derive(Debug, Deserialize)]
struct AccessLevel {
    access_level: u8,
}

#[derive(Debug, Deserialize)]
struct Permissions {
    #[serde(default)]
    project_access: Option<AccessLevel>,
    #[serde(default)]
    group_access: Option<AccessLevel>,
}

#[derive(Debug, Deserialize)]
struct Project {
    #[serde(default)]
    archived: bool,
    permissions: Option<Permissions>,
}

/// Leeway for `exp`/`iat` on GitLab's ID tokens (clock skew between hosts).
const ID_TOKEN_LEEWAY_SECS: u64 = 30;
/// An unknown `kid` triggers a JWKS re-fetch at most this often.
const JWKS_REFETCH_MIN: Duration = Duration::from_secs(10);
/// The JWKS is fetched again after its `Cache-Control: max-age` (GitLab: a day), at least
/// this often, and never more often than every minute because of a short max-age.
const JWKS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
const JWKS_MIN_AGE: Duration = Duration::from_secs(60);

/// GitLab's keys as last fetched.
#[derive(Debug)]
struct Keys {
    set: Arc<JwkSet>,
    /// When they were fetched (`None`: never).
    fetched: Option<Instant>,
    /// How long they may be used without asking again.
    max_age: Duration,
}

/// The GitLab client.
pub struct Gitlab {
    cfg: GitlabConfig,
    http: reqwest::Client,
    redirect_uri: String,
    provider: RwLock<Option<Arc<Provider>>>,
    jwks: RwLock<Keys>,
    /// One JWKS fetch at a time: a herd of tokens with an unknown `kid` costs one.
    jwks_fetch: tokio::sync::Mutex<()>,
    /// Where every call is counted and timed.
    metrics: GitlabMetrics,
}

/// A whole answer from GitLab: status, headers and the body, read within `gitlab.timeout`.
struct Answer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    /// The body as JSON of type `T`; `what` names the call in the error.
    fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, GitlabError> {
        serde_json::from_slice(&self.body).map_err(|e| unreachable(format!("{what}: {e}")))
    }
}

impl std::fmt::Debug for Gitlab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gitlab")
            .field("url", &self.cfg.url)
            .finish_non_exhaustive()
    }
}

/// The HTTP client for GitLab: rustls, `gitlab.ca_file` added to the trusted roots, no
/// redirects followed (OAuth endpoints must not be redirected), `gitlab.timeout` per call.
pub fn http_client(cfg: &GitlabConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(cfg.timeout)
        .user_agent(concat!("labgate/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &cfg.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("gitlab.ca_file: cannot read {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "gitlab.ca_file: {} is not a PEM certificate bundle: {e}",
                ca.display()
            )
        })?;
        if certs.is_empty() {
            return Err(format!(
                "gitlab.ca_file: {} holds no certificate",
                ca.display()
            ));
        }
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

fn unreachable(e: impl std::fmt::Display) -> GitlabError {
    GitlabError::Unreachable(e.to_string())
}

impl Gitlab {
    /// A client for the configured GitLab; `redirect_uri` is `public_url + prefix + /callback`.
    pub fn new(cfg: &GitlabConfig, redirect_uri: String) -> Result<Self, String> {
        let http = http_client(cfg)?;
        Ok(Gitlab {
            cfg: cfg.clone(),
            http,
            redirect_uri,
            provider: RwLock::new(None),
            jwks: RwLock::new(Keys {
                set: Arc::new(JwkSet { keys: Vec::new() }),
                fetched: None,
                max_age: JWKS_MAX_AGE,
            }),
            jwks_fetch: tokio::sync::Mutex::new(()),
            metrics: GitlabMetrics::default(),
        })
    }

    /// Records this client's calls into `metrics` (the registry's; a client made with
    /// [`Gitlab::new`] alone counts into metrics nobody exports).
    pub fn with_metrics(mut self, metrics: GitlabMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sends one request to GitLab and reads the whole answer, recording the call under
    /// `endpoint`. A transport failure (no answer, a timeout, a body cut off) is
    /// [`GitlabError::Unreachable`]; the status is left to the caller.
    async fn send(
        &self,
        endpoint: GitlabEndpoint,
        req: reqwest::RequestBuilder,
    ) -> Result<Answer, GitlabError> {
        crate::trace::span(
            "gitlab",
            crate::trace::Kind::Client,
            self.send_now(endpoint, req),
            |answer| span_outcome(endpoint, answer.as_ref().map(|a| a.status.as_u16()).ok()),
        )
        .await
    }

    /// [`Gitlab::send`] within its span.
    async fn send_now(
        &self,
        endpoint: GitlabEndpoint,
        req: reqwest::RequestBuilder,
    ) -> Result<Answer, GitlabError> {
        let start = Instant::now();
        // In the trace of the request being served, if any.
        let req = req.headers(crate::trace::outgoing());
        let answer = async {
            let resp = req.send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>(Answer {
                status,
                headers,
                body,
            })
        }
        .await;
        let outcome = match &answer {
            Ok(a) => GitlabOutcome::of_status(a.status.as_u16()),
            Err(e) => GitlabOutcome::of_transport(e.is_timeout()),
        };
        self.metrics.observe(endpoint, outcome, start.elapsed());
        answer.map_err(unreachable)
    }

    /// The Redirect URI registered in GitLab.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Whether discovery has been loaded (readiness).
    pub fn discovered(&self) -> bool {
        self.provider.read().map(|p| p.is_some()).unwrap_or(false)
    }

    /// The discovery document, fetched once and cached.
    pub async fn provider(&self) -> Result<Arc<Provider>, GitlabError> {
        if let Some(p) = self.provider.read().ok().and_then(|p| p.clone()) {
            return Ok(p);
        }
        let url = format!("{}/.well-known/openid-configuration", self.cfg.url);
        let resp = self
            .send(GitlabEndpoint::Discovery, self.http.get(&url))
            .await?;
        if !resp.status.is_success() {
            return Err(GitlabError::Api {
                path: url,
                status: resp.status.as_u16(),
            });
        }
        let p: Provider = resp.json("discovery document")?;
        if p.issuer.trim_end_matches('/') != self.cfg.url {
            return Err(unreachable(format!(
                "discovery issuer {:?} is not gitlab.url {:?}",
                p.issuer, self.cfg.url
            )));
        }
        let p = Arc::new(p);
        if let Ok(mut slot) = self.provider.write() {
            *slot = Some(p.clone());
        }
        Ok(p)
    }

    fn oauth_client(&self, p: &Provider, redirect_uri: &str) -> Result<OAuthClient, GitlabError> {
        let basic = p.token_endpoint_auth_methods_supported.is_empty()
            || p.token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == "client_secret_basic");
        Ok(
            oauth2::Client::new(ClientId::new(self.cfg.client_id.clone()))
                .set_client_secret(ClientSecret::new(
                    self.cfg.client_secret.expose().to_owned(),
                ))
                .set_auth_uri(AuthUrl::new(p.authorization_endpoint.clone()).map_err(unreachable)?)
                .set_token_uri(TokenUrl::new(p.token_endpoint.clone()).map_err(unreachable)?)
                .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(unreachable)?)
                .set_auth_type(if basic {
                    AuthType::BasicAuth
                } else {
                    AuthType::RequestBody
                }),
        )
    }

    /// The authorization URL for a sign-in with `secrets`: its state, the PKCE S256
    /// challenge of its verifier, its nonce, the configured scopes; GitLab sends the
    /// browser back to `redirect_uri` (the Redirect URI, or one host's own when labgate
    /// serves several apps each with its own session).
    pub async fn authorize_url(
        &self,
        secrets: &Secrets,
        redirect_uri: &str,
    ) -> Result<String, GitlabError> {
        let p = self.provider().await?;
        let client = self.oauth_client(&p, redirect_uri)?;
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            secrets.verifier.clone(),
        ));
        // GitLab falls back to its default scope `api` when none is sent: always send it.
        let (url, _) = client
            .authorize_url(|| CsrfToken::new(secrets.state.clone()))
            .add_scopes(self.cfg.scopes.iter().map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", secrets.nonce.clone())
            .url();
        Ok(url.to_string())
    }

    fn token_error(
        e: RequestTokenError<oauth2::HttpClientError<reqwest::Error>, BasicErrorResponse>,
    ) -> GitlabError {
        match e {
            RequestTokenError::ServerResponse(r) => GitlabError::Refused {
                code: match r.error() {
                    BasicErrorResponseType::Extension(s) => s.clone(),
                    other => other.as_ref().to_owned(),
                },
                description: r.error_description().cloned(),
            },
            RequestTokenError::Request(e) => unreachable(e),
            RequestTokenError::Parse(e, body) => unreachable(format!(
                "token endpoint answered with something that is not OAuth JSON ({e}; {} bytes)",
                body.len()
            )),
            RequestTokenError::Other(s) => unreachable(s),
        }
    }

    fn tokens(t: &TokenResp) -> Tokens {
        Tokens {
            access_token: t.access_token().secret().clone(),
            refresh_token: t.refresh_token().map(|r| r.secret().clone()),
            id_token: t.extra_fields().id_token.clone(),
        }
    }

    /// Exchanges an authorization code (with its PKCE verifier and the `redirect_uri` its
    /// authorization named) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, GitlabError> {
        let p = self.provider().await?;
        let resp = self
            .oauth_client(&p, redirect_uri)?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&TokenClient(self))
            .await
            .map_err(Self::token_error)?;
        Ok(Self::tokens(&resp))
    }

    /// Uses a refresh token (single-use at GitLab: the answer carries the next one).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, GitlabError> {
        let p = self.provider().await?;
        let resp = self
            .oauth_client(&p, &self.redirect_uri)?
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
            .request_async(&TokenClient(self))
            .await
            .map_err(Self::token_error)?;
        Ok(Self::tokens(&resp))
    }

    /// Revokes a token, best effort (sign-out).
    pub async fn revoke(&self, token: &str) {
        let Ok(p) = self.provider().await else { return };
        let Some(url) = &p.revocation_endpoint else {
            return;
        };
        let req = self
            .http
            .post(url)
            .basic_auth(&self.cfg.client_id, Some(self.cfg.client_secret.expose()))
            .form(&[("token", token)]);
        match self.send(GitlabEndpoint::Revocation, req).await {
            Err(e) => tracing::warn!(error = %e, "token revocation at GitLab failed"),
            Ok(a) if !a.status.is_success() => {
                tracing::warn!(
                    status = a.status.as_u16(),
                    "GitLab refused the token revocation"
                );
            }
            Ok(_) => {}
        }
    }

    /// The cached keys when they may be used: not past their max-age, and (`force`: an
    /// unknown `kid` was seen) not older than [`JWKS_REFETCH_MIN`].
    fn cached_jwks(&self, force: bool) -> Option<Arc<JwkSet>> {
        let keys = self.jwks.read().ok()?;
        let age = keys.fetched?.elapsed();
        let usable = age < keys.max_age && (!force || age < JWKS_REFETCH_MIN);
        usable.then(|| keys.set.clone())
    }

    async fn jwks(&self, force: bool) -> Result<Arc<JwkSet>, GitlabError> {
        if let Some(set) = self.cached_jwks(force) {
            return Ok(set);
        }
        let _one_fetch = self.jwks_fetch.lock().await;
        // Fetched by another request while this one waited.
        if let Some(set) = self.cached_jwks(force) {
            return Ok(set);
        }
        match self.fetch_jwks().await {
            Ok((set, max_age)) => {
                if let Ok(mut keys) = self.jwks.write() {
                    *keys = Keys {
                        set: set.clone(),
                        fetched: Some(Instant::now()),
                        max_age,
                    };
                }
                Ok(set)
            }
            // GitLab unreachable: keys it published before still verify what they signed.
            Err(e) => match self.jwks.read().ok().filter(|k| k.fetched.is_some()) {
                Some(keys) => {
                    tracing::warn!(error = %e, "GitLab's JWKS could not be refreshed; using the keys fetched before");
                    Ok(keys.set.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_jwks(&self) -> Result<(Arc<JwkSet>, Duration), GitlabError> {
        let p = self.provider().await?;
        let resp = self
            .send(GitlabEndpoint::Jwks, self.http.get(&p.jwks_uri))
            .await?;
        if !resp.status.is_success() {
            return Err(GitlabError::Api {
                path: p.jwks_uri.clone(),
                status: resp.status.as_u16(),
            });
        }
        let max_age = resp
            .headers
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',')
                    .find_map(|d| d.trim().strip_prefix("max-age="))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .map_or(JWKS_MAX_AGE, Duration::from_secs)
            .clamp(JWKS_MIN_AGE, JWKS_MAX_AGE);
        let set: JwkSet = resp.json("JWKS")?;
        Ok((Arc::new(set), max_age))
    }

    /// Verifies a GitLab-issued RS256 JWT (ID token or CI ID token): signature via JWKS
    /// (re-fetched once on an unknown `kid`), `iss`, `aud`, `exp`/`nbf` with leeway.
    pub async fn verify_jwt<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<T, GitlabError> {
        let bad = |e: &dyn std::fmt::Display| GitlabError::BadIdToken(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(&e))?;
        if header.alg != Algorithm::RS256 {
            return Err(bad(&format!("algorithm {:?} is not RS256", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| bad(&"no kid in the header"))?;
        let mut set = self.jwks(false).await?;
        if set.find(&kid).is_none() {
            set = self.jwks(true).await?;
        }
        let jwk = set
            .find(&kid)
            .ok_or_else(|| bad(&format!("unknown kid {kid:?}")))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(&e))?;
        let p = self.provider().await?;
        let mut v = Validation::new(Algorithm::RS256);
        v.leeway = ID_TOKEN_LEEWAY_SECS;
        v.set_issuer(&[p.issuer.as_str()]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        jsonwebtoken::decode::<T>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| bad(&e))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: GitlabEndpoint,
        url: &str,
        token: &str,
    ) -> Result<T, GitlabError> {
        let resp = self
            .send(endpoint, self.http.get(url).bearer_auth(token))
            .await?;
        let status = resp.status;
        if !status.is_success() {
            let path = url::Url::parse(url)
                .map(|u| u.path().to_owned())
                .unwrap_or_default();
            return Err(GitlabError::Api {
                path,
                status: status.as_u16(),
            });
        }
        resp.json(url)
    }

    /// Loads who the tokens belong to and everything the rules need: ID token (verified,
    /// with `nonce` when signing in), userinfo (groups, role claims), `/api/v4/user` when
    /// the scopes allow (state, two-factor), and the access level on each rule project.
    pub async fn load_user(
        &self,
        tokens: &Tokens,
        nonce: Option<&str>,
        projects: &[String],
    ) -> Result<User, GitlabError> {
        let mut user = User::default();
        if self.cfg.oidc() {
            let id_token = tokens.id_token.as_deref().ok_or_else(|| {
                GitlabError::BadIdToken("the token response has no id_token".into())
            })?;
            let claims: IdClaims = self.verify_jwt(id_token, &self.cfg.client_id).await?;
            let p = self.provider().await?;
            let url = p
                .userinfo_endpoint
                .clone()
                .unwrap_or_else(|| format!("{}/oauth/userinfo", self.cfg.url));
            let info: UserInfo = self
                .get_json(GitlabEndpoint::Userinfo, &url, &tokens.access_token)
                .await?;
            user.id = flow::check_identity(&claims.sub, claims.nonce.as_deref(), &info.sub, nonce)
                .map_err(|e| GitlabError::BadIdToken(e.to_string()))?;
            user.username = info
                .preferred_username
                .or(info.nickname)
                .unwrap_or_default();
            user.name = info.name.unwrap_or_default();
            user.email = info.email;
            user.email_verified = info.email_verified.unwrap_or(false);
            user.groups = info.groups;
            if user.groups.is_empty() {
                user.groups = claims.groups_direct;
            }
            user.owner_of = info.owner;
            user.maintainer_of = info.maintainer;
            user.developer_of = info.developer;
        }
        if self.cfg.can_read_user() {
            let api: ApiUser = self
                .get_json(
                    GitlabEndpoint::User,
                    &format!("{}/api/v4/user", self.cfg.url),
                    &tokens.access_token,
                )
                .await?;
            if user.id != 0 && user.id != api.id {
                return Err(GitlabError::BadIdToken(
                    "/api/v4/user is a different user than the ID token".into(),
                ));
            }
            if user.id == 0 {
                user.id = api.id;
                user.username = api.username;
                user.name = api.name.unwrap_or_default();
                // `email` from /api/v4/user is the primary email, which GitLab requires to be
                // confirmed before sign-in.
                user.email_verified = api.email.is_some();
                user.email = api.email;
            }
            user.state = api.state;
            user.two_factor = api.two_factor_enabled;
        }
        if user.username.is_empty() {
            return Err(GitlabError::BadIdToken(
                "GitLab did not say which user signed in (no username)".into(),
            ));
        }
        for path in projects {
            let level = self.project_access(&tokens.access_token, path).await?;
            user.projects.insert(path.clone(), level);
        }
        Ok(user)
    }

    /// Who a GitLab access token (personal or OAuth) belongs to: `/api/v4/user`, the
    /// groups where they have at least guest access (`/api/v4/groups`, when the token has
    /// `read_api`), and the access level on each rule project.
    pub async fn user_for_token(
        &self,
        token: &str,
        projects: &[String],
    ) -> Result<User, GitlabError> {
        // Only tokens that provably belong to the caller: a personal, project or group
        // access token answers for itself. An OAuth token minted for some other
        // application (any site the user ever signed in to with GitLab) does not, and is
        // refused (the confused deputy).
        let me: TokenSelf = self
            .get_json(
                GitlabEndpoint::TokenSelf,
                &format!("{}/api/v4/personal_access_tokens/self", self.cfg.url),
                token,
            )
            .await?;
        if !me.active || me.revoked {
            return Err(GitlabError::Api {
                path: "/api/v4/personal_access_tokens/self".into(),
                status: 401,
            });
        }
        let api: ApiUser = self
            .get_json(
                GitlabEndpoint::User,
                &format!("{}/api/v4/user", self.cfg.url),
                token,
            )
            .await?;
        let mut user = User {
            id: api.id,
            username: api.username,
            name: api.name.unwrap_or_default(),
            email_verified: api.email.is_some(),
            email: api.email,
            state: api.state,
            two_factor: api.two_factor_enabled,
            ..User::default()
        };
        let mut page = 1;
        loop {
            let url = format!(
                "{}/api/v4/groups?min_access_level=10&per_page=100&page={page}",
                self.cfg.url
            );
            let resp = self
                .send(
                    GitlabEndpoint::Groups,
                    self.http.get(&url).bearer_auth(token),
                )
                .await?;
            match resp.status.as_u16() {
                200 => {}
                // A token without read_api cannot list groups: no group memberships then.
                403 => break,
                s => {
                    return Err(GitlabError::Api {
                        path: "/api/v4/groups".into(),
                        status: s,
                    })
                }
            }
            let next = resp
                .headers
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok());
            let groups: Vec<GroupRef> = resp.json("/api/v4/groups")?;
            user.groups.extend(groups.into_iter().map(|g| g.full_path));
            match next {
                Some(n) if n > page && page < 50 => page = n,
                _ => break,
            }
        }
        for path in projects {
            let level = self.project_access(token, path).await.unwrap_or(0);
            user.projects.insert(path.clone(), level);
        }
        Ok(user)
    }

    /// The user's effective access level on a project (0 when none, hidden or archived).
    async fn project_access(&self, token: &str, path: &str) -> Result<u8, GitlabError> {
        let encoded: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
        let url = format!(
            "{}/api/v4/projects/{}",
            self.cfg.url,
            encoded.replace('+', "%20")
        );
        match self
            .get_json::<Project>(GitlabEndpoint::Projects, &url, token)
            .await
        {
            Ok(p) if p.archived => Ok(0),
            Ok(p) => Ok(p
                .permissions
                .map(|perm| {
                    let a = perm.project_access.map_or(0, |l| l.access_level);
                    let b = perm.group_access.map_or(0, |l| l.access_level);
                    a.max(b)
                })
                .unwrap_or(0)),
            Err(GitlabError::Api {
                status: 404 | 403, ..
            }) => Ok(0),
            Err(e) => Err(e),
        }
    }
}
