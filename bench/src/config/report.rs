//! The rounds of each side, their medians, and the table with the ratios.

use std::time::Duration;

use super::per_domain::Format;
use super::startup::Start;

/// How one added domain took effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// A new route file, answered after this long.
    Reloaded(Duration),
    /// Nothing changed in Envoy; the new name's challenge was answered after this long.
    Unchanged(Duration),
    TimedOut(Duration),
}

impl Added {
    fn time(&self) -> Option<Duration> {
        match self {
            Added::Reloaded(d) | Added::Unchanged(d) => Some(*d),
            Added::TimedOut(_) => None,
        }
    }

    /// The cell for this outcome, with `time` in place of its own.
    fn cell_with(&self, time: Duration) -> String {
        match self {
            Added::Reloaded(_) => format!("new route file, answered after {}", seconds(time)),
            Added::Unchanged(_) => format!(
                "0 changes to Envoy's configuration; answered after {}",
                seconds(time)
            ),
            Added::TimedOut(limit) => format!("not answered within {}", seconds(*limit)),
        }
    }
}

/// One start of Envoy on a side's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub start: Start,
    /// `None` when Envoy did not start.
    pub added: Option<Added>,
}

impl Round {
    /// Whether Envoy started and answered the added domain.
    fn complete(&self) -> bool {
        matches!(self.start, Start::Live { .. })
            && self.added.as_ref().and_then(Added::time).is_some()
    }

    /// One line for the progress output.
    pub fn summary(&self) -> String {
        let added = match &self.added {
            Some(added) => added.cell_with(added.time().unwrap_or_default()),
            None => "-".to_owned(),
        };
        format!("start: {}; added domain: {added}", start_cell(&self.start))
    }
}

/// One configuration measured over rounds.
#[derive(Debug, Default)]
pub struct Side {
    /// Bytes of every configuration file Envoy reads.
    pub config_bytes: u64,
    rounds: Vec<Round>,
}

impl Side {
    pub fn record(&mut self, config_bytes: u64, round: Round) {
        self.config_bytes = config_bytes;
        self.rounds.push(round);
    }

    /// True after a round that did not start or answer: another would wait as long again.
    pub fn gave_up(&self) -> bool {
        self.rounds.iter().any(|r| !r.complete())
    }

    /// The median start-up time, if every round started.
    fn start_time(&self) -> Option<Duration> {
        self.all_live(|after, _| after.as_secs_f64())
            .map(Duration::from_secs_f64)
    }

    /// The median resident memory after start, in KiB, if every round started.
    fn rss_kib(&self) -> Option<f64> {
        self.all_live(|_, rss| rss as f64)
    }

    fn all_live(&self, figure: impl Fn(Duration, u64) -> f64) -> Option<f64> {
        let values = self.rounds.iter().map(|r| match r.start {
            Start::Live { after, rss_kib } => Some(figure(after, rss_kib)),
            _ => None,
        });
        median(&values.collect::<Option<Vec<f64>>>()?)
    }

    /// The median time for the added domain, if every round answered it.
    fn added_time(&self) -> Option<Duration> {
        let times = self.rounds.iter().map(|r| r.added.as_ref()?.time());
        let times: Vec<f64> = times
            .map(|t| t.map(|d| d.as_secs_f64()))
            .collect::<Option<_>>()?;
        median(&times).map(Duration::from_secs_f64)
    }

    /// The first round that did not complete.
    fn failed(&self) -> Option<&Round> {
        self.rounds.iter().find(|r| !r.complete())
    }

    fn cells(&self) -> [String; 3] {
        let (start, rss) = match (self.start_time(), self.rss_kib(), self.failed()) {
            (Some(start), Some(rss), _) => (seconds(start), mib(rss)),
            (_, _, Some(failed)) => (start_cell(&failed.start), "-".to_owned()),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        [start, rss, self.added_cell()]
    }

    /// The median added time with its kind (from the first round), else what went wrong.
    fn added_cell(&self) -> String {
        let kind = self.rounds.first().and_then(|r| r.added.as_ref());
        if let (Some(time), Some(kind)) = (self.added_time(), kind) {
            return kind.cell_with(time);
        }
        match self.failed().and_then(|r| r.added.as_ref()) {
            Some(added) => added.cell_with(Duration::ZERO),
            None => "-".to_owned(),
        }
    }
}

fn start_cell(start: &Start) -> String {
    match start {
        Start::Live { after, rss_kib } => {
            format!("LIVE after {}, {}", seconds(*after), mib(*rss_kib as f64))
        }
        Start::TimedOut(limit) => format!("did not start within {}", seconds(*limit)),
        Start::Exited(why) => format!("exited during start-up: {why}"),
    }
}

/// One number of domains, every side.
#[derive(Debug)]
pub struct Row {
    pub domains: usize,
    pub per_domain: Vec<(Format, Side)>,
    pub constant: Side,
}

/// The table, medians of `rounds` rounds per side.
pub fn print(rows: &[Row], rounds: usize) {
    println!();
    println!(
        "Envoy 1.40, 1 worker (--concurrency 1), median of {rounds} start(s) per configuration; \
         start-up = process start until admin /ready answers LIVE (listeners initialised, \
         routes loaded); RSS = VmRSS then"
    );
    println!();
    println!(
        "| domains | Envoy configuration | size (bytes) | start-up | RSS after start | one domain added |"
    );
    println!("|---:|---|---:|---:|---:|---|");
    for row in rows {
        let n = thousands(row.domains as u64);
        for (format, side) in &row.per_domain {
            let name = format!("one virtual host per domain, {}", format.name());
            print_side(&n, &name, side);
        }
        print_side(&n, "acme-edge, constant", &row.constant);
        for (format, side) in &row.per_domain {
            print_ratios(&n, format.name(), side, &row.constant);
        }
    }
}

fn print_side(domains: &str, name: &str, side: &Side) {
    let [start, rss, added] = side.cells();
    println!(
        "| {domains} | {name} | {} | {start} | {rss} | {added} |",
        thousands(side.config_bytes)
    );
}

fn print_ratios(domains: &str, format: &str, old: &Side, new: &Side) {
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    let size = ratio(Some(old.config_bytes as f64), Some(new.config_bytes as f64));
    let start = ratio(secs(old.start_time()), secs(new.start_time()));
    let rss = ratio(old.rss_kib(), new.rss_kib());
    let added = ratio(secs(old.added_time()), secs(new.added_time()));
    println!(
        "| {domains} | **ratio old ({format}) / acme-edge** | {size} | {start} | {rss} | {added} |"
    );
}

fn ratio(old: Option<f64>, new: Option<f64>) -> String {
    match (old, new) {
        (Some(old), Some(new)) if new > 0.0 => format!("{:.1}×", old / new),
        _ => "-".to_owned(),
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 0.1 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn mib(kib: f64) -> String {
    format!("{:.0} MiB", kib / 1024.0)
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ms: u64, rss_kib: u64, added_ms: u64) -> Round {
        Round {
            start: Start::Live {
                after: Duration::from_millis(ms),
                rss_kib,
            },
            added: Some(Added::Reloaded(Duration::from_millis(added_ms))),
        }
    }

    #[test]
    fn a_side_reports_medians() {
        let mut side = Side::default();
        for round in [
            live(300, 2048, 50),
            live(100, 1024, 70),
            live(200, 4096, 60),
        ] {
            side.record(10, round);
        }
        assert!(!side.gave_up());
        assert_eq!(
            side.cells(),
            [
                "0.20 s".to_owned(),
                "2 MiB".to_owned(),
                "new route file, answered after 60.0 ms".to_owned()
            ]
        );
    }

    #[test]
    fn a_side_that_did_not_start_says_so_and_gives_up() {
        let mut side = Side::default();
        side.record(10, live(300, 2048, 50));
        side.record(
            10,
            Round {
                start: Start::TimedOut(Duration::from_secs(300)),
                added: None,
            },
        );
        assert!(side.gave_up());
        let [start, rss, added] = side.cells();
        assert_eq!(start, "did not start within 300.00 s");
        assert_eq!((rss.as_str(), added.as_str()), ("-", "-"));
        assert_eq!(ratio(None, Some(1.0)), "-");
    }

    #[test]
    fn formats_figures() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(4_712_345), "4,712,345");
        assert_eq!(seconds(Duration::from_millis(4)), "4.0 ms");
        assert_eq!(seconds(Duration::from_millis(4_560)), "4.56 s");
        assert_eq!(mib(155_648.0), "152 MiB");
        assert_eq!(ratio(Some(10.0), Some(4.0)), "2.5×");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "-");
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
