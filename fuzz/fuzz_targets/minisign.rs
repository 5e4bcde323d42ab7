//! Fuzz target: see `objectos::fuzzing::minisign`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| objectos::fuzzing::minisign(data));
