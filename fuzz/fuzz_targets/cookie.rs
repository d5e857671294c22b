#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = labgate::config::load_str(
        "[server]\npublic_url='https://a.example'\n[upstream]\nurl='http://127.0.0.1:1'\n[gitlab]\nclient_id='x'\nclient_secret='y'\n\
         [session]\ncookie_secret='ZGV2LW9ubHktY29va2llLXNlY3JldC0zMi1ieXRlcyE='\n[access]\nallow_any_gitlab_user=true\n",
    )
    .unwrap();
    let codec = labgate::session::CookieCodec::new(&cfg.session);
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::COOKIE, v);
        assert!(codec.read_session(&h).is_none());
    }
});
