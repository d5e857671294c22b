//! The sign-in flow's decisions, with no I/O (kanidm's sans-IO client is the model): the
//! secrets a flow begins with, from a random source the caller passes; what GitLab's answer
//! at the callback says (RFC 6749 §4.1.2 `code` / `error`, RFC 9207 `iss`); whether the ID
//! token and the userinfo answer name one person of this sign-in (OIDC Core §3.1.3.7 nonce,
//! §5.3.2 `sub`). `gitlab.rs` performs the requests, `signin.rs` renders the outcome.

use base64::Engine;

/// The secrets of one sign-in: `state` (CSRF, RFC 6749 §10.12), the PKCE verifier
/// (RFC 7636; its S256 challenge is the `oauth2` crate's to compute), the OIDC nonce.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// `state`, echoed by GitLab to the callback.
    pub state: String,
    /// PKCE `code_verifier`, kept in the flow cookie.
    pub verifier: String,
    /// `nonce`, which the ID token must carry back.
    pub nonce: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

/// 32 random bytes, base64url: 43 characters (RFC 7636 §4.1's recommendation, also for
/// `state` and `nonce`).
fn token(rng: &mut impl rand::RngCore) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Fresh secrets for a sign-in, from `rng` (the OS's in production, a seeded one in tests).
pub fn begin(rng: &mut impl rand::RngCore) -> Secrets {
    let state = token(rng);
    let verifier = token(rng);
    let nonce = token(rng);
    Secrets {
        state,
        verifier,
        nonce,
    }
}

/// Why a sign-in cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The callback has no `state`.
    #[error("the callback has no state")]
    NoState,
    /// The person cancelled at GitLab (`error=access_denied`).
    #[error("the sign-in was cancelled at GitLab")]
    Cancelled,
    /// GitLab answered with another `error` (at most 64 characters of it kept).
    #[error("GitLab returned the error {0:?}")]
    Gitlab(String),
    /// The callback names another issuer than GitLab's (RFC 9207: an IdP mix-up).
    #[error("the callback names an unexpected issuer")]
    WrongIssuer,
    /// The callback has neither `code` nor `error`.
    #[error("the callback has no code")]
    NoCode,
    /// The ID token does not carry this sign-in's nonce (a replayed or injected token).
    #[error("nonce does not match this sign-in")]
    Nonce,
    /// userinfo answers for another person than the ID token.
    #[error("userinfo sub differs from the ID token's")]
    Subject,
    /// `sub` is not a GitLab user id.
    #[error("sub {0:?} is not a GitLab user id")]
    NotAUserId(String),
}

/// What the callback's query says, before any I/O: the authorization code, or why there is
/// none. `issuer` is GitLab's (from discovery), when known; `param` reads one query
/// parameter, decoded.
pub fn check_callback(
    param: impl Fn(&str) -> Option<String>,
    issuer: Option<&str>,
) -> Result<String, FlowError> {
    if let Some(error) = param("error") {
        return Err(if error == "access_denied" {
            FlowError::Cancelled
        } else {
            FlowError::Gitlab(error.chars().take(64).collect())
        });
    }
    // RFC 9207: when GitLab names the issuer, it must be ours (mix-up defence).
    if let Some(iss) = param("iss") {
        if issuer != Some(iss.as_str()) {
            return Err(FlowError::WrongIssuer);
        }
    }
    param("code").ok_or(FlowError::NoCode)
}

/// Whether the verified ID token (its `sub` and `nonce`) and the userinfo answer (its
/// `sub`) name one person of this sign-in (`expected_nonce`; `None` when revalidating):
/// that person's GitLab user id.
pub fn check_identity(
    id_sub: &str,
    id_nonce: Option<&str>,
    userinfo_sub: &str,
    expected_nonce: Option<&str>,
) -> Result<u64, FlowError> {
    if let Some(expected) = expected_nonce {
        if id_nonce != Some(expected) {
            return Err(FlowError::Nonce);
        }
    }
    if userinfo_sub != id_sub {
        return Err(FlowError::Subject);
    }
    userinfo_sub
        .parse()
        .map_err(|_| FlowError::NotAUserId(userinfo_sub.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn secrets_come_from_the_given_source() {
        let a = begin(&mut rand::rngs::StdRng::seed_from_u64(7));
        let b = begin(&mut rand::rngs::StdRng::seed_from_u64(7));
        let c = begin(&mut rand::rngs::StdRng::seed_from_u64(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // RFC 7636 §4.1: 43 to 128 characters of the unreserved set.
        assert_eq!(a.verifier.len(), 43);
        assert!(a
            .verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(a.state != a.verifier && a.verifier != a.nonce);
        assert!(!format!("{a:?}").contains(&a.state));
    }

    fn query<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn every_callback_branch() {
        let iss = Some("https://gitlab.example.com");
        let long = "x".repeat(100);
        type Case<'a> = (Vec<(&'a str, &'a str)>, Result<String, FlowError>);
        let cases: Vec<Case<'_>> = vec![
            (vec![("code", "c1"), ("state", "s")], Ok("c1".into())),
            (
                vec![("code", "c1"), ("iss", "https://gitlab.example.com")],
                Ok("c1".into()),
            ),
            (
                vec![("error", "access_denied"), ("code", "c1")],
                Err(FlowError::Cancelled),
            ),
            (
                vec![("error", "server_error")],
                Err(FlowError::Gitlab("server_error".into())),
            ),
            (
                vec![("error", long.as_str())],
                Err(FlowError::Gitlab("x".repeat(64))),
            ),
            (
                vec![("code", "c1"), ("iss", "https://evil.example")],
                Err(FlowError::WrongIssuer),
            ),
            (vec![("state", "s")], Err(FlowError::NoCode)),
        ];
        for (pairs, want) in cases {
            assert_eq!(check_callback(query(&pairs), iss), want, "{pairs:?}");
        }
        // An issuer named while discovery is unknown is refused, not believed.
        assert_eq!(
            check_callback(query(&[("code", "c"), ("iss", "x")]), None),
            Err(FlowError::WrongIssuer)
        );
    }

    #[test]
    fn every_identity_branch() {
        assert_eq!(check_identity("42", Some("n"), "42", Some("n")), Ok(42));
        assert_eq!(check_identity("42", None, "42", None), Ok(42));
        assert_eq!(
            check_identity("42", Some("other"), "42", Some("n")),
            Err(FlowError::Nonce)
        );
        assert_eq!(
            check_identity("42", None, "42", Some("n")),
            Err(FlowError::Nonce)
        );
        assert_eq!(
            check_identity("42", Some("n"), "43", Some("n")),
            Err(FlowError::Subject)
        );
        assert_eq!(
            check_identity("ab", Some("n"), "ab", Some("n")),
            Err(FlowError::NotAUserId("ab".into()))
        );
    }
}
