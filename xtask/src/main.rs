//! `cargo xtask`: install, build, test, benchmark and demo acme-edge. (being written)

mod bench;
mod fuzz;

fn main() {}
