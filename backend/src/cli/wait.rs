//! `--wait`: follow domains until their issuance ends, with a progress indicator.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

use super::client::{ApiClient, ClientError};
use super::exit;
use crate::api::json::{Domain, DomainState};

/// How often the API is asked; issuance takes seconds, so this is plenty and cheap.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The domains as last seen, and whether the wait ran out.
pub struct Outcome {
    pub domains: Vec<Domain>,
    pub timed_out: bool,
}

impl Outcome {
    /// 0 when every domain is issued; 1 when any failed or was disabled meanwhile; 75 when
    /// time ran out first.
    pub fn exit_code(&self) -> u8 {
        if self.domains.iter().any(|d| ended_badly(d.state)) {
            exit::FAILED
        } else if self.timed_out {
            exit::TIMED_OUT
        } else {
            0
        }
    }
}

fn is_final(state: DomainState) -> bool {
    matches!(
        state,
        DomainState::Issued | DomainState::Failed | DomainState::Disabled
    )
}

fn ended_badly(state: DomainState) -> bool {
    matches!(state, DomainState::Failed | DomainState::Disabled)
}

/// Poll every name until each is issued, failed or disabled, or `timeout` passes.
/// With `show`, one spinner line per domain (hidden when stderr is not a terminal) and a final
/// line per domain on stdout.
pub async fn follow(
    client: &ApiClient,
    names: &[String],
    timeout: Duration,
    show: bool,
) -> Result<Outcome, ClientError> {
    let deadline = Instant::now() + timeout;
    let bars = Bars::new(names, show);
    let mut latest: Vec<Option<Domain>> = vec![None; names.len()];
    loop {
        for (i, name) in names.iter().enumerate() {
            if latest[i].as_ref().is_some_and(|d| is_final(d.state)) {
                continue;
            }
            let domain = client.get(name).await?;
            bars.update(i, &domain);
            latest[i] = Some(domain);
        }
        let all_final = latest
            .iter()
            .all(|d| d.as_ref().is_some_and(|d| is_final(d.state)));
        if all_final || Instant::now() >= deadline {
            let domains: Vec<Domain> = latest.into_iter().flatten().collect();
            bars.finish();
            if show {
                report(&domains);
            }
            return Ok(Outcome {
                domains,
                timed_out: !all_final,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn report(domains: &[Domain]) {
    for d in domains {
        match (d.state, &d.last_error) {
            (DomainState::Issued, _) => {
                let until = d
                    .not_after
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .map(|t| format!(", valid until {t}"))
                    .unwrap_or_default();
                println!("{}: issued{until}", d.name);
            }
            (state, Some(e)) if ended_badly(state) || !is_final(state) => {
                println!("{}: {state}: {}", d.name, e.message);
            }
            (state, _) => println!("{}: {state}", d.name),
        }
    }
}

/// One spinner per domain.
struct Bars {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
}

impl Bars {
    fn new(names: &[String], show: bool) -> Bars {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{spinner} {prefix}: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = names
            .iter()
            .map(|name| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                bar.set_message("waiting");
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .collect();
        Bars { multi, bars }
    }

    fn update(&self, i: usize, domain: &Domain) {
        if let Some(bar) = self.bars.get(i) {
            bar.set_message(domain.state.to_string());
            if is_final(domain.state) {
                bar.finish();
            }
        }
    }

    fn finish(&self) {
        for bar in &self.bars {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
