//! The cryptographic base every part stands on: RFC 8785 canonical JSON (the byte
//! form that artifacts, audit rows and checkpoints are hashed in) and
//! minisign-compatible keys and signatures. Pure: no database, no runtime.

pub mod canonical;
pub mod encryption;
pub mod signing;
