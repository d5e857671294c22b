#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use http::header::{HeaderMap, HeaderValue, COOKIE};

use super::*;
use crate::access::User;

fn codec(secrets: &[&str]) -> CookieCodec {
    let toml = format!(
        "[server]\npublic_url='https://a.example'\n[upstream]\nurl='http://127.0.0.1:1'\n[gitlab]\nclient_id='x'\nclient_secret='y'\n\
         [session]\ncookie_secure=false\ncookie_secret={secrets:?}\n[access]\nallow_any_gitlab_user=true\n"
    );
    CookieCodec::new(&crate::config::load_str(&toml).unwrap().session)
}

fn session(groups: usize) -> Session {
    Session {
        v: SESSION_VERSION,
        sid: "sid".into(),
        user: User {
            id: 7,
            username: "u".into(),
            groups: (0..groups).map(|i| format!("group/number-{i}")).collect(),
            ..User::default()
        },
        access_token: "at".into(),
        refresh_token: Some("rt".into()),
        id_token: None,
        created: 1,
        expires: 1000,
        validated: 1,
        host: None,
        checked_ms: 0,
        origin: None,
        derived: Default::default(),
    }
}

fn request_with(set_cookies: &[String]) -> HeaderMap {
    let pairs: Vec<&str> = set_cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .collect();
    let mut h = HeaderMap::new();
    h.insert(COOKIE, HeaderValue::from_str(&pairs.join("; ")).unwrap());
    h
}

const K1: &str = "ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE=";
const K2: &str = "c2VjcmV0LWZvci10aGUtZXhhbXBsZS0zMi1ieXRlcyE=";

#[test]
fn round_trip_small_and_split() {
    let c = codec(&[K1]);
    for groups in [0, 400] {
        let s = session(groups);
        let set = c.session_cookies(&s, &HeaderMap::new(), 10);
        assert_eq!(set.len() > 1, groups > 0, "split only when large");
        assert_eq!(c.read_session(&request_with(&set)), Some(s));
    }
}

#[test]
fn rotation_and_foreign_keys() {
    let s = session(0);
    let set = codec(&[K1]).session_cookies(&s, &HeaderMap::new(), 10);
    assert_eq!(codec(&[K2, K1]).read_session(&request_with(&set)), Some(s));
    assert_eq!(codec(&[K2]).read_session(&request_with(&set)), None);
}

#[test]
fn tampered_truncated_and_reordered_cookies_are_refused() {
    let c = codec(&[K1]);
    let set = c.session_cookies(&session(400), &HeaderMap::new(), 10);
    let pairs: Vec<String> = set
        .iter()
        .filter_map(|c| c.split(';').next().map(str::to_owned))
        .collect();
    let header = |p: &[String]| {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(&p.join("; ")).unwrap());
        h
    };
    // Drop a chunk.
    assert_eq!(c.read_session(&header(&pairs[..pairs.len() - 1])), None);
    // Swap two chunks' values.
    let mut swapped = pairs.clone();
    let (a, b) = (
        swapped[1].split_once('=').unwrap().1.to_owned(),
        swapped[2].split_once('=').unwrap().1.to_owned(),
    );
    swapped[1] = format!("_labgate_1={b}");
    swapped[2] = format!("_labgate_2={a}");
    assert_eq!(c.read_session(&header(&swapped)), None);
    // Flip a character.
    let mut flipped = pairs.clone();
    let last = flipped[0].pop().unwrap();
    flipped[0].push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(c.read_session(&header(&flipped)), None);
    // Garbage.
    for junk in [
        "_labgate=",
        "_labgate=1.",
        "_labgate=99.x",
        "_labgate=2.abc",
    ] {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_bytes(junk.as_bytes()).unwrap());
        assert_eq!(c.read_session(&h), None, "{junk}");
    }
}

#[test]
fn stale_chunks_are_expired_when_the_session_shrinks() {
    let c = codec(&[K1]);
    let big = c.session_cookies(&session(400), &HeaderMap::new(), 10);
    let small = c.session_cookies(&session(0), &request_with(&big), 10);
    assert!(small.iter().any(|s| s.starts_with("_labgate_1=;")
        || (s.starts_with("_labgate_1=") && s.contains("Max-Age=0"))));
}

#[test]
fn flow_cookies_are_bound_to_their_state_and_expire() {
    let c = codec(&[K1]);
    let flow = FlowState {
        state: "st".into(),
        verifier: "v".into(),
        nonce: "n".into(),
        rd: "/".into(),
        started: 100,
        redirect_uri: None,
    };
    let set = c.flow_cookie(&flow).unwrap();
    let h = request_with(&[set]);
    assert_eq!(c.read_flow(&h, "st", 150), Ok(flow));
    assert_eq!(c.read_flow(&h, "other", 150), Err(FlowCookie::Missing));
    assert_eq!(c.read_flow(&h, "st", 100 + 601), Err(FlowCookie::Expired));
}

#[test]
fn debug_never_shows_tokens() {
    let mut s = session(2);
    s.access_token = "secret-access-token".into();
    s.refresh_token = Some("secret-refresh-token".into());
    s.id_token = Some("secret-id-token".into());
    let shown = format!("{s:?}");
    for secret in [
        "secret-access-token",
        "secret-refresh-token",
        "secret-id-token",
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let flow = crate::session::FlowState {
        state: "st-secret".into(),
        verifier: "ver-secret".into(),
        nonce: "nonce-secret".into(),
        rd: "/x".into(),
        started: 0,
        redirect_uri: None,
    };
    let shown = format!("{flow:?}");
    assert!(!shown.contains("secret"), "{shown}");
}
