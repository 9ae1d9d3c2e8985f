//! `cargo xtask lint`: formatting and clippy, for the host and for the wasm targets of the
//! filter (its proxy-wasm glue only compiles there) and of the web console; and the
//! migrations, which must be expand-only ([`migrations`]).

use anyhow::{Result, bail};

use crate::console::CONSOLE_TARGET;
use crate::install::WASM_TARGET;
use crate::migrations;
use crate::shell::Cmd;

/// Run every check, even after one fails, so one run shows every problem.
pub fn run() -> Result<()> {
    let checks = [
        Cmd::cargo().args(["fmt", "--all", "--", "--check"]),
        Cmd::cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        Cmd::cargo().args([
            "clippy",
            "-p",
            "acme-edge-filter",
            "--target",
            WASM_TARGET,
            "--release",
            "--",
            "-D",
            "warnings",
        ]),
        Cmd::cargo().args([
            "clippy",
            "-p",
            "acme-edge-console",
            "--target",
            CONSOLE_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    ];
    let mut failed = Vec::new();
    for check in checks {
        let line = check.display();
        if !check.status()? {
            failed.push(line);
        }
    }
    if let Err(e) = migrations::run() {
        eprintln!("xtask: {e:#}");
        failed.push("the migration lint".to_owned());
    }
    if failed.is_empty() {
        return Ok(());
    }
    bail!("lint failed: {}", failed.join("; "))
}
