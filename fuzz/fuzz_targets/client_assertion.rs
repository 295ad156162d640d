//! `kartotek_auth::fuzzing::client_assertion` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kartotek_auth::fuzzing::client_assertion(data));
