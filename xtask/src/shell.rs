//! Running the commands a task is made of: each is echoed before it runs, so a CI log reads
//! as the list of commands to reproduce it by hand.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// A command to run, echoed as `$ program args...`.
pub struct Cmd {
    inner: Command,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            inner: Command::new(program),
        }
    }

    /// `cargo`, as the one running this task runner (rustup's proxy or a plain install).
    pub fn cargo() -> Self {
        Cmd::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.inner.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.inner.env(key, value);
        self
    }

    /// The command line as a user would type it.
    pub fn display(&self) -> String {
        let mut line = self.inner.get_program().to_string_lossy().into_owned();
        if line.ends_with("/cargo") {
            line = "cargo".into();
        }
        for arg in self.inner.get_args() {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains([' ', '"', '\'', '$']) {
                line.push_str(&format!(" '{arg}'"));
            } else {
                line.push(' ');
                line.push_str(&arg);
            }
        }
        line
    }

    /// Run with the terminal's stdio; fail unless it exits 0.
    pub fn run(self) -> Result<()> {
        let line = self.display();
        if self.status()? {
            Ok(())
        } else {
            bail!("`{line}` failed")
        }
    }

    /// Run with the terminal's stdio; `Ok(false)` when it ran and exited non-zero.
    pub fn status(mut self) -> Result<bool> {
        println!("$ {}", self.display());
        let status = self
            .inner
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("start `{}`", self.display()))?;
        Ok(status.success())
    }

    /// Run silently and capture its output (for checks, not for work the user should see).
    pub fn output(mut self) -> Result<Output> {
        self.inner
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("start `{}`", self.display()))
    }

    /// Run silently; its stdout when it exits 0, `None` when it fails or cannot start.
    pub fn probe(self) -> Option<String> {
        let out = self.output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let cmd = Cmd::new("pebble-challtestsrv").args(["-defaultIPv6", "", "a b"]);
        assert_eq!(cmd.display(), "pebble-challtestsrv -defaultIPv6 '' 'a b'");
    }

    #[test]
    fn probe_reports_success_and_failure() {
        assert_eq!(Cmd::new("echo").arg("hi").probe().as_deref(), Some("hi\n"));
        assert_eq!(Cmd::new("false").probe(), None);
        assert_eq!(Cmd::new("/nonexistent/program").probe(), None);
    }
}
