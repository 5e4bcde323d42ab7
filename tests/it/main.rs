//! Integration tests: the real binary, one topic per module.

mod util;

mod bulk;
mod cli;
mod hardening;
mod operator;
mod runtime;
mod sdk;
mod signing;
mod store;
mod toolchain;
mod upstream_api;
mod world;
