//! `kartotek_auth::fuzzing::access_token` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kartotek_auth::fuzzing::access_token(data));
