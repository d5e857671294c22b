//! Property tests for the parsers that face the network: redirect validation, path
//! readings, identity-header stripping, cookie decoding. They run in CI with every build
//! (cargo-fuzz targets for the same functions live in fuzz/).

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE};
use labgate::access::PathViews;
use labgate::oauth::redirect;
use proptest::prelude::*;

fn public() -> url::Url {
    url::Url::parse("https://app.example.com").unwrap()
}

/// Strings built from the characters redirect tricks are made of.
fn tricky() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just("\\".to_owned()),
            Just("%2f".to_owned()),
            Just("%5c".to_owned()),
            Just("%25".to_owned()),
            Just("%09".to_owned()),
            Just("@".to_owned()),
            Just(":".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("evil.com".to_owned()),
            Just("app.example.com".to_owned()),
            Just("https:".to_owned()),
            Just("//".to_owned()),
            Just("?".to_owned()),
            Just("#".to_owned()),
            Just(" ".to_owned()),
            Just("\t".to_owned()),
            Just("%2e".to_owned()),
            "[a-z0-9]{1,4}",
            "\\PC{1,2}",
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, .. ProptestConfig::default() })]

    #[test]
    fn accepted_redirects_stay_on_allowed_origins(rd in tricky()) {
        if let Some(to) = redirect::validate(&rd, &public(), &[".example.org".to_owned()]) {
            // Whatever a browser makes of it, the target is ours or an allowed host.
            let resolved = public().join(&to).unwrap();
            let host = resolved.host_str().unwrap_or("").to_owned();
            prop_assert!(host == "app.example.com" || host == "example.org" || host.ends_with(".example.org"), "{rd:?} -> {to:?} -> {resolved}");
            prop_assert_eq!(resolved.scheme(), "https");
            prop_assert!(to.is_ascii());
            prop_assert!(!to.starts_with("//") && !to.starts_with("/\\"));
        }
    }

    #[test]
    fn path_readings_are_canonical(path in tricky()) {
        let v = PathViews::new(&format!("/{path}"));
        prop_assert!(v.resolved.starts_with('/'));
        prop_assert!(!v.resolved.contains("//"), "{:?}", v.resolved);
        prop_assert!(!v.resolved.split('/').any(|s| s == "." || s == ".."), "{:?}", v.resolved);
        prop_assert!(!v.resolved.contains('#') && !v.resolved.contains('?') && !v.resolved.contains('\\'));
        prop_assert!(v.forward.starts_with('/'));
        // Idempotent: the forwarded path reads the same again.
        prop_assert_eq!(&PathViews::new(&v.forward).forward, &v.forward);
    }

    #[test]
    fn identity_headers_never_survive_stripping(
        base in prop_oneof![Just("x-forwarded-user"), Just("x-forwarded-email"), Just("x-forwarded-groups"), Just("x-labgate-user-id"), Just("x-labgate-assertion"), Just("x-auth-request-user"), Just("x-forwarded-access-token"), Just("x-labgate-anything")],
        upper in proptest::collection::vec(any::<bool>(), 32),
        underscore in proptest::collection::vec(any::<bool>(), 32),
        copies in 1usize..4,
    ) {
        let name: String = base.chars().enumerate().map(|(i, c)| {
            let c = if c == '-' && underscore[i % 32] { '_' } else { c };
            if upper[i % 32] { c.to_ascii_uppercase() } else { c }
        }).collect();
        let mut h = HeaderMap::new();
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        for _ in 0..copies {
            h.append(name.clone(), HeaderValue::from_static("forged"));
        }
        h.append("x-keep", HeaderValue::from_static("1"));
        labgate::headers::strip_identity(&mut h, &HeaderName::from_static("x-labgate-assertion"));
        prop_assert_eq!(h.len(), 1);
    }

    #[test]
    fn cookie_decoding_never_panics_or_opens_garbage(value in "[ -~]{0,600}", chunks in proptest::collection::vec("[A-Za-z0-9+/=._-]{0,200}", 0..4)) {
        let cfg = labgate::config::load_str(
            "[server]\npublic_url='https://a.example'\n[upstream]\nurl='http://127.0.0.1:1'\n[gitlab]\nclient_id='x'\nclient_secret='y'\n\
             [session]\ncookie_secure=false\ncookie_secret='ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE='\n[access]\nallow_any_gitlab_user=true\n",
        ).unwrap();
        let codec = labgate::session::CookieCodec::new(&cfg.session);
        let mut header = format!("_labgate={}", value.replace(';', ""));
        for (i, c) in chunks.iter().enumerate() {
            header.push_str(&format!("; _labgate_{}={c}", i + 1));
        }
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&header) {
            h.insert(COOKIE, v);
            prop_assert!(codec.read_session(&h).is_none());
            prop_assert!(codec.read_handle(&h).is_none());
            prop_assert!(codec.read_flow(&h, &value, 0).is_err());
        }
    }
}
