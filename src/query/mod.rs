//! ObjectQL at run time: requests parsed from the API, checked against rights and
//! compiled to backend-neutral conditions. The filter tree itself is part of the
//! app model (`crate::model::filter`), shared with the toolchain.

pub mod compile;
pub mod request;
