//! Fuzz target: see `objectos::fuzzing::archive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| objectos::fuzzing::archive(data));
