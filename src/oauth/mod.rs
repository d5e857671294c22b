//! Signing in with GitLab: the flow's decisions without I/O (`flow.rs`), the only code that
//! talks to GitLab (`gitlab.rs`), and the validation of post-sign-in redirects
//! (`redirect.rs`, pure). The endpoints that use them live in `signin.rs`.

pub mod flow;
pub mod gitlab;
pub mod redirect;
