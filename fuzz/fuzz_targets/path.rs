#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let v = labgate::access::PathViews::new(data);
    assert!(v.resolved.starts_with('/') && !v.resolved.contains("//"));
});
