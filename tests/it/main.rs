//! Integration tests: real listeners for labgate, the GitLab stand-in and the echo app, and
//! the real `labgate` binary where the process matters (signals, exit codes).

// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    unreachable_pub
)]

mod access;
mod check;
mod config;
mod docs;
mod edges;
mod forward_auth;
mod front_proxies;
mod harness;
mod identity;
mod layout;
mod lifecycle;
mod login;
mod machine;
mod many_apps;
mod many_apps_front;
mod migrate;
mod observability;
mod ops;
mod packaging;
mod properties;
mod proxy;
mod redis;
mod security;
mod sessions_page;
mod upstreams;
mod webhooks;
