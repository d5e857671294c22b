//! Measures what the assertion costs per request: a fresh ES256 signature every time
//! versus the per-session reuse labgate does. `cargo run --release --example assertion_cost`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

fn main() {
    let cfg = labgate::config::load_str(
        "[server]\npublic_url='https://a.example'\n[upstream]\nurl='http://127.0.0.1:1'\n[gitlab]\nclient_id='x'\nclient_secret='y'\n\
         [session]\ncookie_secret='ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE='\n[access]\nallow_any_gitlab_user=true\n",
    )
    .expect("config");
    let signer =
        labgate::identity::Signer::new(&cfg.identity, "https://a.example", Default::default())
            .expect("signer");
    let mut session = labgate::session::Session {
        v: labgate::session::SESSION_VERSION,
        sid: "bench-session".into(),
        user: labgate::access::User {
            id: 101,
            username: "alice".into(),
            name: "Alice".into(),
            email: Some("alice@example.com".into()),
            email_verified: true,
            groups: vec!["acme".into(), "acme/team".into(), "acme/admins".into()],
            ..Default::default()
        },
        access_token: String::new(),
        refresh_token: None,
        id_token: None,
        created: 0,
        expires: u64::MAX,
        validated: 0,
        host: None,
        checked_ms: 0,
        origin: None,
        derived: Default::default(),
    };
    let n = 20_000u64;
    let now = 1_800_000_000;
    // Every call a different session version: a signature each time.
    let t = Instant::now();
    for i in 0..n {
        session.validated = i + 1;
        let p = labgate::identity::Principal::Person(std::sync::Arc::new(session.clone()));
        std::hint::black_box(signer.assertion(&p, now, "https://a.example"));
    }
    let fresh = t.elapsed().as_secs_f64() / n as f64 * 1e6;
    // The same session: reused.
    session.validated = 0;
    let p = labgate::identity::Principal::Person(std::sync::Arc::new(session.clone()));
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(signer.assertion(&p, now, "https://a.example"));
    }
    let reused = t.elapsed().as_secs_f64() / n as f64 * 1e6;
    println!("assertion per request: signed every time {fresh:.1} us, reused {reused:.2} us ({:.0}x less)", fresh / reused);
}
