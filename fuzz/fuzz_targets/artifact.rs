//! Fuzz target: see `objectos::fuzzing::artifact`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| objectos::fuzzing::artifact(data));
