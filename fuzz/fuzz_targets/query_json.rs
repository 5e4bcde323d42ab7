//! Fuzz target: see `objectos::fuzzing::query_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| objectos::fuzzing::query_json(data));
