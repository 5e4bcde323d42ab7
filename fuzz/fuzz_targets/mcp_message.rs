//! Fuzz target: see `objectos::fuzzing::mcp_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| objectos::fuzzing::mcp_message(data));
