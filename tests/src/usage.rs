//! What a running process uses, read from `/proc`: resident memory and CPU time, for the
//! benchmarks that measure the real backend process.

use std::time::Duration;

use anyhow::{Context, Result};

/// One reading of a process's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Resident set size (`VmRSS` in `/proc/<pid>/status`), in KiB.
    pub rss_kib: u64,
    /// User plus system CPU time of all its threads so far (`/proc/<pid>/stat`), in clock
    /// ticks' resolution (10 ms on most kernels).
    pub cpu: Duration,
}

impl Usage {
    /// Read `pid`'s usage now.
    pub fn of(pid: u32) -> Result<Usage> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("read /proc/{pid}/status"))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("read /proc/{pid}/stat"))?;
        Ok(Usage {
            rss_kib: rss_kib(&status).context("no VmRSS in /proc/<pid>/status")?,
            cpu: cpu_time(&stat, ticks_per_second()?).context("unreadable /proc/<pid>/stat")?,
        })
    }

    /// The resolution of [`Usage::cpu`]: one clock tick.
    pub fn tick() -> Result<Duration> {
        Ok(Duration::from_nanos(
            1_000_000_000 / ticks_per_second()?.max(1),
        ))
    }

    /// Resident memory in MiB (rounded down).
    pub fn rss_mib(&self) -> u64 {
        self.rss_kib / 1024
    }
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `utime + stime` from the text of `/proc/<pid>/stat`.
fn cpu_time(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so count fields from
    // after the last `)`. There, utime and stime are fields 12 and 13 (from 0, state being 0).
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1),
    ))
}

fn ticks_per_second() -> Result<u64> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .context("sysconf(CLK_TCK)")?
        .context("CLK_TCK unknown")?;
    u64::try_from(ticks).context("CLK_TCK out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_time(stat, 100), Some(Duration::from_secs(3)));
        assert_eq!(cpu_time("42 (x) S 1", 100), None);
        let status = "Name:\tx\nVmPeak:\t 9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(rss_kib(status), Some(5120));
        assert_eq!(rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_uses_memory_and_its_cpu_time_grows() {
        let before = Usage::of(std::process::id()).unwrap();
        assert!(before.rss_kib > 0);
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = Usage::of(std::process::id()).unwrap();
        assert!(after.cpu > before.cpu, "{before:?} -> {after:?}");
    }
}
