//! ObjectQL: filters parsed from JSON or CEL, checked against rights, compiled to SQL.

pub mod cel;
pub mod filter;

pub use filter::{Filter, FilterError, Op};
pub mod compile;
pub mod request;
