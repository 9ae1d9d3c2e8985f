//! The admin API (being written).

pub mod model;
