//! acme-edge backend (being written).

pub mod certs;
pub mod sds;
