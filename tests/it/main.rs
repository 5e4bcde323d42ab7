//! Integration tests: the real binary, one topic per module.

mod util;

mod cli;
mod hardening;
mod operator;
mod runtime;
mod signing;
mod store;
mod toolchain;
mod upstream;
mod world;
