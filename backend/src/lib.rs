//! acme-edge backend (being written).

pub mod api;
pub mod certs;
pub mod cli;
pub mod sds;
