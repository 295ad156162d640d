//! `kartotek_auth::fuzzing::login_token` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kartotek_auth::fuzzing::login_token(data));
