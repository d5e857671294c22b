//! Integration tests: real listeners for labgate, the GitLab stand-in and the echo app, and
//! the real `labgate` binary where the process matters (signals, exit codes).

mod access;
mod check;
mod config;
mod forward_auth;
mod harness;
mod identity;
mod login;
mod machine;
mod ops;
mod properties;
mod proxy;
mod redis;
mod security;
