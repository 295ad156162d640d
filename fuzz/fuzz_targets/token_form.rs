//! `kartotek_frontend::token::fuzzing::token_form` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kartotek_frontend::token::fuzzing::token_form(data));
