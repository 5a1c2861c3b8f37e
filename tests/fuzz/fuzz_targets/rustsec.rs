#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flow_fuzz_targets::rustsec(data));
