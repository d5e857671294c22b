#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let public = url::Url::parse("https://app.example.com").unwrap();
    if let Some(to) = labgate::oauth::redirect::validate(data, &public, &[".example.org".to_owned()]) {
        let resolved = public.join(&to).unwrap();
        let host = resolved.host_str().unwrap_or("");
        assert!(host == "app.example.com" || host == "example.org" || host.ends_with(".example.org"));
    }
});
