//! The deployment files under `deploy/` are what operators install: each is checked by the
//! tool that will read it.

use std::process::Command;

use acme_edge_tests::tools;
use anyhow::{Context, Result, ensure};

/// `systemd-analyze verify` accepts the unit as shipped, without a single warning. It needs
/// the unit's binary to exist, so the check runs on a copy pointing at the one just built.
#[test]
fn the_systemd_unit_verifies_without_warnings() -> Result<()> {
    let unit = tools::workspace_root().join("deploy/acme-edge.service");
    let text = std::fs::read_to_string(&unit).with_context(|| unit.display().to_string())?;
    ensure!(
        text.contains("ExecStart=/usr/local/bin/acme-edge serve"),
        "the unit runs the installed binary"
    );
    let backend = tools::backend_bin()?;
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("acme-edge.service");
    std::fs::write(
        &copy,
        text.replace("/usr/local/bin/acme-edge", &backend.display().to_string()),
    )?;
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .context("run systemd-analyze (cargo xtask install installs it)")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "StateDirectory=acme-edge",
        "RuntimeDirectory=acme-edge",
        "User=acme-edge",
    ] {
        ensure!(text.contains(hardening), "the unit sets {hardening:?}");
    }
    Ok(())
}
