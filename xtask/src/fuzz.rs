//! `cargo xtask fuzz [--seconds N] [--target NAME]`: fuzz the filter's parsers with
//! cargo-fuzz (libFuzzer), the targets in `fuzz/`.
//!
//! cargo-fuzz builds with sanitizer flags only nightly Rust accepts. The nightly toolchain is
//! used when rustup has one; otherwise the stable one with `RUSTC_BOOTSTRAP=1`, which unlocks
//! the same flags. cargo-fuzz itself is installed from crates.io when missing. Crashes land
//! in `fuzz/artifacts/<target>/`, the corpus in `fuzz/corpus/<target>/` (both ignored by git);
//! `fuzz/seeds/<target>/` holds committed starting inputs.

use anyhow::{Context, Result};
use clap::Parser;

use crate::paths;
use crate::shell::Cmd;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask fuzz")]
struct Args {
    /// How long to fuzz, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Fuzz target (a file in fuzz/fuzz_targets/).
    #[arg(long, default_value = "filter_input")]
    target: String,
}

/// Run the fuzz task with `args` (after `cargo xtask fuzz`).
pub fn run(args: Vec<String>) -> Result<()> {
    let args = Args::try_parse_from(std::iter::once("fuzz".to_owned()).chain(args))?;
    let root = paths::workspace_root();
    ensure_cargo_fuzz()?;
    let fuzz_dir = root.join("fuzz");
    let corpus = fuzz_dir.join("corpus").join(&args.target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("create {}", corpus.display()))?;
    // Hand-written valid inputs get libFuzzer past the early rejections quickly; new
    // findings go to the first (writable) corpus directory only.
    let seeds = fuzz_dir.join("seeds").join(&args.target);
    let mut cmd = toolchain()
        .args(["fuzz", "run", &args.target])
        .arg("--fuzz-dir")
        .arg(&fuzz_dir)
        .arg(&corpus);
    if seeds.is_dir() {
        cmd = cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={}", args.seconds))
        .run()
}

fn ensure_cargo_fuzz() -> Result<()> {
    if Cmd::new("cargo")
        .args(["fuzz", "--version"])
        .probe()
        .is_some()
    {
        return Ok(());
    }
    println!("xtask: cargo-fuzz is missing; installing it from crates.io");
    Cmd::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .run()
}

/// `cargo +nightly` when rustup has a nightly toolchain, else stable cargo with
/// `RUSTC_BOOTSTRAP=1`.
fn toolchain() -> Cmd {
    let nightly = Cmd::new("cargo")
        .args(["+nightly", "--version"])
        .probe()
        .is_some();
    if nightly {
        Cmd::new("cargo").arg("+nightly")
    } else {
        println!("xtask: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1");
        Cmd::new("cargo").env("RUSTC_BOOTSTRAP", "1")
    }
}
