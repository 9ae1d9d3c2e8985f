//! An in-process [`CertificateAuthority`] for tests of the worker and the ARI walk: scripted
//! per domain, recording every call. Never a product path (compiled for tests only).
//!
//! It behaves like [`Issuer`](super::Issuer) where the policies can see it: an attempt
//! resumes the domain's open order, else places a new one and logs it in the store's order
//! log (what the order budget counts); an invalid order is closed; a certificate is left
//! for the caller to store and close. Certificates are real: leaves signed by a test CA, with
//! the authority key identifier ARI needs, for the times the test's [`Clock`] gives.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use instant_acme::Problem;
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::{AcmeError, CertificateAuthority, Failure, ari, order};
use crate::policy::schedule::Clock;
use crate::store::{Claim, IssuedCertificate, OrderOutcome, Store, StoredCertificate};

/// Lifetime of the certificates the fake issues unless a step says otherwise.
pub const LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// What the next issuance attempt for a domain does. A domain with no steps left succeeds.
pub enum Step {
    /// Issue a certificate valid for this long from now.
    Issue(Duration),
    /// Fail with this error; the CA asks to come back after `retry_after` (from now).
    Fail {
        error: AcmeError,
        retry_after: Option<Duration>,
    },
    /// Never answer.
    Hang,
    /// Answer once the gate is opened ([`Gate::open`]), with the step after it.
    Wait(Gate, Box<Step>),
}

impl Step {
    /// Fail without a Retry-After.
    pub fn fail(error: AcmeError) -> Step {
        Step::Fail {
            error,
            retry_after: None,
        }
    }
}

/// A door a [`Step::Wait`] waits at.
#[derive(Clone, Default)]
pub struct Gate(Arc<Notify>);

impl Gate {
    pub fn open(&self) {
        self.0.notify_one();
    }
}

/// What the CA answers to a renewal-information request for a domain.
#[derive(Debug, Clone, Copy)]
pub enum Ari {
    /// No ARI (like Pebble): the default.
    Unsupported,
    Window {
        start: OffsetDateTime,
        end: OffsetDateTime,
    },
    /// The request fails.
    Error,
}

/// How an issuance call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Still running (or hanging).
    Running,
    Issued,
    /// Failed, with the Retry-After time it returned.
    Failed(Option<OffsetDateTime>),
    /// The caller dropped it before it answered (lease lost, shutdown).
    Cancelled,
}

/// One call of [`CertificateAuthority::issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCall {
    pub name: String,
    pub at: OffsetDateTime,
    /// A certificate was passed as the current one.
    pub renewal: bool,
    /// The profile the claim asked for (the domain's own; `None`: the configured default).
    pub profile: Option<String>,
    /// A new order was logged (else the open one was resumed, or the CA refused to create
    /// one).
    pub new_order: bool,
    pub ended: Ended,
    /// When it answered or was cancelled.
    pub ended_at: Option<OffsetDateTime>,
}

/// The fake CA.
pub struct FakeCa {
    store: Arc<dyn Store>,
    clock: Clock,
    signer: rcgen::Issuer<'static, rcgen::KeyPair>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    steps: HashMap<String, VecDeque<Step>>,
    ari: HashMap<String, Ari>,
    account_error: Option<String>,
    issues: Vec<IssueCall>,
    window_calls: Vec<(String, OffsetDateTime)>,
    account_calls: usize,
    orders: u64,
    probe_error: Option<String>,
    probes: Vec<OffsetDateTime>,
}

impl FakeCa {
    /// A CA that logs its orders in `store` and reads the time from `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Arc<FakeCa> {
        let key = rcgen::KeyPair::generate().expect("test CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
        Arc::new(FakeCa {
            store,
            clock,
            signer: rcgen::Issuer::new(params, key),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue what the next attempts for `name` do, in order.
    pub fn script(&self, name: &str, steps: impl IntoIterator<Item = Step>) {
        self.state()
            .steps
            .entry(name.to_owned())
            .or_default()
            .extend(steps);
    }

    /// What renewal-information requests for `name` answer from now on.
    pub fn set_ari(&self, name: &str, ari: Ari) {
        self.state().ari.insert(name.to_owned(), ari);
    }

    /// Make account requests fail with `error` (`None`: succeed).
    pub fn set_account_error(&self, error: Option<&str>) {
        self.state().account_error = error.map(str::to_owned);
    }

    /// Make probes of the CA fail with a timeout (`true`) or succeed.
    pub fn set_down(&self, down: bool) {
        self.state().probe_error = down.then(|| "down".to_owned());
    }

    /// When the CA was probed.
    pub fn probes(&self) -> Vec<OffsetDateTime> {
        self.state().probes.clone()
    }

    /// Every issuance call so far, in call order.
    pub fn issues(&self) -> Vec<IssueCall> {
        self.state().issues.clone()
    }

    /// The issuance calls for `name`.
    pub fn issues_for(&self, name: &str) -> Vec<IssueCall> {
        self.issues()
            .into_iter()
            .filter(|c| c.name == name)
            .collect()
    }

    /// The names whose renewal window was asked for, in call order, and when.
    pub fn window_calls(&self) -> Vec<(String, OffsetDateTime)> {
        self.state().window_calls.clone()
    }

    pub fn account_calls(&self) -> usize {
        self.state().account_calls
    }

    /// A certificate for `name` from this CA, valid from `not_before` for `lifetime`.
    pub fn certificate(
        &self,
        name: &str,
        not_before: OffsetDateTime,
        lifetime: Duration,
    ) -> IssuedCertificate {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.not_before = not_before;
        params.not_after = not_before + lifetime;
        params.serial_number = Some(rcgen::SerialNumber::from(rand::random::<u64>()));
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&key, &self.signer).expect("signing");
        order::read_certificate(name, leaf.pem(), key.serialize_pem()).expect("readable")
    }

    fn record_end(&self, index: usize, ended: Ended) {
        let at = self.clock.now();
        if let Some(call) = self.state().issues.get_mut(index) {
            call.ended = ended;
            call.ended_at = Some(at);
        }
    }

    /// Log a new order unless the domain has an open one; `true` when one was logged.
    async fn order_for(&self, name: &str) -> bool {
        if self.store.open_order(name).await.ok().flatten().is_some() {
            return false;
        }
        let n = {
            let mut state = self.state();
            state.orders += 1;
            state.orders
        };
        let url = format!("https://fake-ca.test/order/{n}");
        self.store
            .record_order(name, &url, self.clock.now())
            .await
            .expect("logging the order");
        true
    }

    /// Run `step` for `name`; `Ok` with the certificate, or the failure.
    async fn run(&self, name: &str, mut step: Step) -> Result<IssuedCertificate, Failure> {
        loop {
            match step {
                Step::Wait(gate, next) => {
                    gate.0.notified().await;
                    step = *next;
                }
                Step::Hang => return std::future::pending().await,
                Step::Issue(lifetime) => {
                    return Ok(self.certificate(name, self.clock.now(), lifetime));
                }
                Step::Fail { error, retry_after } => {
                    if matches!(error, AcmeError::OrderInvalid { .. }) {
                        let _ = self
                            .store
                            .close_orders(name, OrderOutcome::Failed, self.clock.now())
                            .await;
                    }
                    return Err(Failure {
                        error,
                        retry_after: retry_after.map(|d| self.clock.now() + d),
                    });
                }
            }
        }
    }
}

/// Marks an issuance call cancelled unless it answered.
struct CallGuard<'a> {
    ca: &'a FakeCa,
    index: usize,
    answered: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.ca.record_end(self.index, Ended::Cancelled);
        }
    }
}

#[async_trait]
impl CertificateAuthority for FakeCa {
    async fn ensure_account(&self) -> Result<(), AcmeError> {
        let mut state = self.state();
        state.account_calls += 1;
        match &state.account_error {
            Some(error) => Err(AcmeError::Account(error.clone())),
            None => Ok(()),
        }
    }

    async fn issue(
        &self,
        claim: &Claim,
        current: Option<&StoredCertificate>,
    ) -> Result<IssuedCertificate, Failure> {
        let name = claim.name.as_str();
        let (index, step) = {
            let mut state = self.state();
            let step = state
                .steps
                .get_mut(name)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Step::Issue(LIFETIME));
            state.issues.push(IssueCall {
                name: name.to_owned(),
                at: self.clock.now(),
                renewal: current.is_some(),
                profile: claim.profile.clone(),
                new_order: false,
                ended: Ended::Running,
                ended_at: None,
            });
            (state.issues.len() - 1, step)
        };
        let mut guard = CallGuard {
            ca: self,
            index,
            answered: false,
        };
        // A CA that refuses a new order (a problem document, e.g. rate limited) creates none.
        let refused = matches!(
            step,
            Step::Fail {
                error: AcmeError::Problem { .. },
                ..
            }
        );
        if !refused
            && self.order_for(name).await
            && let Some(call) = self.state().issues.get_mut(index)
        {
            call.new_order = true;
        }
        let result = self.run(name, step).await;
        guard.answered = true;
        let ended = match &result {
            Ok(_) => Ended::Issued,
            Err(failure) => Ended::Failed(failure.retry_after),
        };
        self.record_end(index, ended);
        result
    }

    async fn renewal_window(&self, chain_pem: &str) -> Result<Option<ari::Window>, AcmeError> {
        let name = leaf_name(chain_pem).unwrap_or_default();
        let mut state = self.state();
        state.window_calls.push((name.clone(), self.clock.now()));
        match state.ari.get(&name).copied().unwrap_or(Ari::Unsupported) {
            Ari::Unsupported => Ok(None),
            Ari::Window { start, end } => Ok(Some(ari::Window {
                start,
                end,
                recheck_after: Duration::from_secs(6 * 3600),
            })),
            Ari::Error => Err(problem("serverInternal", 500)),
        }
    }

    async fn probe(&self) -> Result<(), AcmeError> {
        let mut state = self.state();
        state.probes.push(self.clock.now());
        match state.probe_error {
            Some(_) => Err(timeout()),
            None => Ok(()),
        }
    }
}

/// The first DNS name of the leaf of `chain_pem`.
fn leaf_name(chain_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).ok()?;
    let leaf = pem.parse_x509().ok()?;
    let san = leaf.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
        _ => None,
    })
}

fn problem_document(kind: &str, status: u16) -> Problem {
    serde_json::from_value(serde_json::json!({
        "type": format!("urn:ietf:params:acme:error:{kind}"),
        "detail": format!("the test CA says {kind}"),
        "status": status,
    }))
    .expect("a problem document")
}

/// The CA answered a request with a problem document of type `kind` (the part after
/// `urn:ietf:params:acme:error:`, e.g. `rateLimited`, `accountDoesNotExist`).
pub fn problem(kind: &str, status: u16) -> AcmeError {
    AcmeError::Problem {
        step: "new order",
        problem: Box::new(problem_document(kind, status)),
    }
}

/// The CA could not validate the challenge (`kind`: `connection`, `dns`, `unauthorized`...).
pub fn validation_failed(kind: &str) -> AcmeError {
    AcmeError::OrderInvalid {
        detail: format!("validation failed: {kind}"),
        problem: Some(Box::new(problem_document(kind, 400))),
        unanswered: false,
    }
}

/// The CA did not answer within the request limit.
pub fn timeout() -> AcmeError {
    AcmeError::Timeout {
        step: "new order",
        limit: Duration::from_secs(5),
    }
}
