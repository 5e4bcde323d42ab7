//! Fuzz target: see `objectos::fuzzing::filter_cel`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| objectos::fuzzing::filter_cel(data));
