//! Talking to GitLab as an OAuth2 / OpenID Connect provider (`gitlab.rs`, the only code
//! that does) and validating post-sign-in redirects (`redirect.rs`, pure). The endpoints
//! that use them live in `signin.rs`; the decision in `access`.

pub mod gitlab;
pub mod redirect;
