//! Integration tests: the real binary, one topic per module.

mod util;

mod agents;
mod assistant;
mod bench;
mod bulk;
mod cli;
mod crash;
mod docs;
mod egress;
mod evidence;
mod hardening;
mod hostile;
mod limits;
mod mcp_wire;
mod model;
mod openapi;
mod operator;
mod operator_ux;
mod postgres;
mod prompts;
mod races;
mod runtime;
mod sdk;
mod seals;
mod signing;
mod store;
mod tls_clients;
mod toolchain;
mod upstream;
mod upstream_api;
mod world;
