//! One order, from "new" to a certificate ready to store: HTTP-01 only, one name per order.
//!
//! The key authorization is stored durably *before* the CA is told the challenge is ready,
//! so that any replica answering the CA's validation request finds it. Tokens are removed
//! once the authorization is done, whatever its outcome.
//!
//! Exactly one order per issuance, even across crashes: the order URL is logged as soon as
//! the CA returns it, and the certificate key before the CSR is sent. An attempt first
//! resumes the domain's open order (`resume`) from wherever it stopped (pending: publish
//! the challenges again; ready: finalize with the logged key; processing or valid: fetch the
//! certificate), and places a new order only when there is none, or the CA no longer accepts
//! it, or it already produced the certificate now stored.

use std::collections::HashSet;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeStatus, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus, Problem,
};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::request::bounded;
use super::{AcmeError, keys};
use crate::model::KeyType;
use crate::store::{IssuedCertificate, OpenOrder, OrderOutcome, Published, Store};

/// Total time the CA may take to validate, and then to sign. Pebble answers in seconds and
/// Let's Encrypt in well under a minute; five minutes means something is stuck, and the
/// attempt is retried later with backoff.
pub const POLL_LIMIT: Duration = Duration::from_secs(300);
/// First pause between polls; doubled up to [`POLL_MAX_DELAY`].
const POLL_FIRST_DELAY: Duration = Duration::from_millis(250);
const POLL_MAX_DELAY: Duration = Duration::from_secs(5);

/// What one attempt needs besides the account and the store.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub name: &'a str,
    /// The worker's lease on the domain: tokens are published only while it holds.
    pub lease: &'a str,
    pub key_type: KeyType,
    /// Bound on each request to the CA.
    pub limit: Duration,
    /// The serial (hex) of the certificate stored now, if any: an open order that already
    /// produced it is done with, not resumed.
    pub current_version: Option<&'a str>,
    /// ARI: the certificate this order replaces (only when the CA offers ARI).
    pub replaces: Option<instant_acme::CertificateIdentifier<'static>>,
    /// The certificate profile to ask for (`acme.profile`), when one is configured.
    pub profile: Option<&'a str>,
}

/// Run one order for `request.name`, resuming the open one if it is usable. Challenge
/// tokens are removed before returning, on every path. The order stays open on success (the
/// caller closes it once the certificate is stored) and on transient failures (the next
/// attempt resumes it); it is closed when the CA declared it invalid.
pub async fn issue(
    account: &Account,
    store: &dyn Store,
    request: &Request<'_>,
) -> Result<IssuedCertificate, AcmeError> {
    let (mut order, key_pem) = match resume(account, store, request).await? {
        Some(resumed) => resumed,
        None => (place(account, store, request).await?, None),
    };
    let result = complete(&mut order, store, request, key_pem).await;
    if matches!(result, Err(AcmeError::OrderInvalid { .. })) {
        store
            .close_orders(
                request.name,
                OrderOutcome::Failed,
                OffsetDateTime::now_utc(),
            )
            .await?;
    }
    result
}

/// Place a new order and log it before anything else happens to it.
async fn place(
    account: &Account,
    store: &dyn Store,
    request: &Request<'_>,
) -> Result<Order, AcmeError> {
    let identifiers = [Identifier::Dns(request.name.to_owned())];
    let mut new = NewOrder::new(&identifiers);
    if let Some(replaces) = &request.replaces {
        new = new.replaces(replaces.clone());
    }
    if let Some(profile) = request.profile {
        // A CA without the profile would ignore the field and issue something else.
        offered(profile, account.profiles().map(|p| p.name))?;
        new = new.profile(profile);
    }
    let order = retrying_bad_nonce!(request.limit, "new order", account.new_order(&new))?;
    store
        .record_order(request.name, order.url(), OffsetDateTime::now_utc())
        .await?;
    Ok(order)
}

/// `Ok` when `profile` is among the profiles the CA's directory lists.
fn offered<'a>(profile: &str, offered: impl Iterator<Item = &'a str>) -> Result<(), AcmeError> {
    let offered: Vec<String> = offered.map(str::to_owned).collect();
    if offered.iter().any(|p| p == profile) {
        return Ok(());
    }
    Err(AcmeError::ProfileNotOffered {
        profile: profile.to_owned(),
        offered,
    })
}

/// The domain's open order, fetched from the CA, when it can still give us the certificate.
async fn resume(
    account: &Account,
    store: &dyn Store,
    request: &Request<'_>,
) -> Result<Option<(Order, Option<String>)>, AcmeError> {
    let Some(OpenOrder { order_url, key_pem }) = store.open_order(request.name).await? else {
        return Ok(None);
    };
    if !same_server(&order_url, account.id()) {
        // Placed with another CA (the directory was changed since): this account cannot
        // fetch it, and asking would fail the same way at every attempt.
        return abandon(store, request.name, &order_url, "it belongs to another CA").await;
    }
    let fetched = retrying_bad_nonce!(
        request.limit,
        "resume order",
        account.order(order_url.clone())
    );
    let mut order = match fetched {
        Ok(order) => order,
        // Only the CA's own word that the order is of no more use (gone, not ours) gives it
        // up. Anything else (a timeout, a 5xx, a bad nonce, a rate limit, a problem we do
        // not know) fails this attempt and the same order is resumed next time: the CA may
        // still be issuing it, and a new order would make a second certificate.
        Err(AcmeError::Problem { problem, .. }) if is_gone(&problem) => {
            return abandon(store, request.name, &order_url, "the CA says it is gone").await;
        }
        Err(e) => return Err(e),
    };
    let usable = match order.state().status {
        OrderStatus::Pending | OrderStatus::Ready => true,
        // Past the CSR: only with the key it was made from, and unless it is the
        // certificate stored already (stored, then cut short before the order was closed).
        OrderStatus::Processing | OrderStatus::Valid => {
            key_pem.is_some() && !produced_current(&mut order, request).await
        }
        OrderStatus::Invalid => false,
    };
    if !usable {
        let why = match (order.state().status, key_pem.is_some()) {
            (OrderStatus::Invalid, _) => "the CA made it invalid",
            (_, false) => "past the CSR without a logged key",
            _ => "its certificate is the one stored",
        };
        return abandon(store, request.name, &order_url, why).await;
    }
    tracing::info!(domain = %request.name, order = %order_url, status = ?order.state().status, "resuming the open order");
    store.mark_resumed(&order_url).await?;
    Ok(Some((order, key_pem)))
}

/// Whether an order and an account are at the same ACME server (scheme, host and port): an
/// account's orders are served where the account is, at every CA.
fn same_server(order_url: &str, account_url: &str) -> bool {
    let server = |url: &str| {
        let uri: http::Uri = url.parse().ok()?;
        Some((
            uri.scheme_str()?.to_ascii_lowercase(),
            uri.host()?.to_ascii_lowercase(),
            uri.port_u16(),
        ))
    };
    match (server(order_url), server(account_url)) {
        (Some(order), Some(account)) => order == account,
        // Not a URL we can read: let the CA say whether it knows it.
        _ => true,
    }
}

/// The CA says the order does not exist for us: gone (404, 410, as Pebble after a restart)
/// or not our account's.
fn is_gone(problem: &Problem) -> bool {
    matches!(problem.status, Some(404 | 410))
        || problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:unauthorized")
}

async fn abandon<T>(
    store: &dyn Store,
    name: &str,
    order_url: &str,
    why: &str,
) -> Result<Option<T>, AcmeError> {
    tracing::info!(domain = %name, order = %order_url, why, "open order no longer usable; placing a new one");
    store
        .close_orders(name, OrderOutcome::Abandoned, OffsetDateTime::now_utc())
        .await?;
    Ok(None)
}

/// The order's certificate is the one stored now (compared by what the certificate says:
/// certificate URLs carry the serial at Boulder but not at every CA).
async fn produced_current(order: &mut Order, request: &Request<'_>) -> bool {
    let Some(current) = request.current_version else {
        return false;
    };
    if order.state().status != OrderStatus::Valid {
        return false;
    }
    match retrying_bad_nonce!(request.limit, "certificate", order.certificate()) {
        Ok(Some(chain)) => serial_of(&chain).is_some_and(|s| s.eq_ignore_ascii_case(current)),
        // Unreadable: treat as not ours; at worst a stale certificate is checked and stored.
        _ => false,
    }
}

/// From wherever the order is to a certificate.
async fn complete(
    order: &mut Order,
    store: &dyn Store,
    request: &Request<'_>,
    key_pem: Option<String>,
) -> Result<IssuedCertificate, AcmeError> {
    let name = request.name;
    if order.state().status == OrderStatus::Pending {
        let validated = validate(order, store, request).await;
        let cleaned = store.remove_challenges(name).await;
        validated?;
        cleaned?;
    }
    finalize(order, store, request, key_pem).await
}

/// Publish the challenges, tell the CA, wait until the order is ready.
async fn validate(
    order: &mut Order,
    store: &dyn Store,
    request: &Request<'_>,
) -> Result<(), AcmeError> {
    let limit = request.limit;
    let inherited = publish_challenges(order, store, request).await?;
    match poll_order(order, limit, |s| !matches!(s, OrderStatus::Pending)).await? {
        OrderStatus::Invalid => {
            let mut error = invalid_order(order, limit).await;
            // The CA was validating while no worker of ours held the order: the token may
            // not have been answered, and the failure is not proof against the domain.
            if let AcmeError::OrderInvalid { unanswered, .. } = &mut error {
                *unanswered = inherited;
            }
            Err(error)
        }
        _ => Ok(()),
    }
}

/// How long a challenge an earlier worker told the CA about may stay `pending` before it is
/// told again. A CA that shows `processing` while it validates (RFC 8555, Let's Encrypt)
/// never leaves a told challenge `pending`: there the wait only follows a worker stopped
/// between recording and telling. A CA that keeps it `pending` while validating (Pebble
/// before 2.5) would run a second validation if told twice, and that one can fail after the
/// first one's certificate was issued; it finishes well within this.
const TOLD_READY_GRACE: Duration = Duration::from_secs(60);
/// Pause between looks at a challenge an earlier worker told the CA about.
const TOLD_READY_POLL: Duration = Duration::from_secs(1);

/// What one pass over the authorizations found.
struct Round {
    /// A challenge had been told ready before this attempt.
    inherited: bool,
    /// A challenge told ready before this attempt is still `pending`: look again.
    waiting: bool,
}

/// Publish each pending authorization's token and tell the CA it is ready, unless the CA
/// has it already (a resumed order: a challenge processing is left to the polling, a valid
/// one is not posted again, one an earlier worker told is given [`TOLD_READY_GRACE`] to
/// leave `pending`). Returns whether any challenge had been told ready before this attempt.
/// Reading the authorizations is started again when the CA refuses a nonce (bounded, as
/// every request: [`super::BAD_NONCE_ROUNDS`]).
async fn publish_challenges(
    order: &mut Order,
    store: &dyn Store,
    request: &Request<'_>,
) -> Result<bool, AcmeError> {
    let mut readied = HashSet::new();
    let waited_until = Instant::now() + TOLD_READY_GRACE;
    let mut round = 1;
    // The order caches each authorization as first read: a pass after a wait reads them again.
    let mut again = false;
    loop {
        match publish_round(order, store, request, &mut readied, waited_until, again).await {
            Err(e) if e.is_bad_nonce() && round < super::BAD_NONCE_ROUNDS => round += 1,
            Ok(Round { waiting: true, .. }) => {
                tokio::time::sleep(TOLD_READY_POLL).await;
                again = true;
            }
            Ok(Round { inherited, .. }) => return Ok(inherited),
            Err(e) => return Err(e),
        }
    }
}

async fn publish_round(
    order: &mut Order,
    store: &dyn Store,
    request: &Request<'_>,
    readied: &mut HashSet<String>,
    waited_until: Instant,
    refresh: bool,
) -> Result<Round, AcmeError> {
    let Request { name, limit, .. } = *request;
    let mut authorizations = order.authorizations();
    let mut round = Round {
        inherited: false,
        waiting: false,
    };
    loop {
        let next = tokio::time::timeout(limit, authorizations.next())
            .await
            .map_err(|_| AcmeError::Timeout {
                step: "authorization",
                limit,
            })?;
        let Some(result) = next else {
            return Ok(round);
        };
        let mut authz = result.map_err(|e| AcmeError::client("authorization", e))?;
        if refresh {
            // What the CA did meanwhile: a challenge it validated must not be told again.
            bounded(limit, "authorization", authz.refresh()).await?;
        }
        match authz.status {
            AuthorizationStatus::Pending => {}
            // Reused from an earlier order of this account.
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::OrderInvalid {
                    detail: format!("authorization for {name} is {other:?}"),
                    problem: None,
                    unanswered: false,
                });
            }
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| AcmeError::NoHttp01Challenge(name.to_owned()))?;
        let key_authorization = challenge.key_authorization();
        // A resumed order may have told the CA already; its validation needs the token
        // published again, but a second "ready" would be refused, or worse, validated twice.
        let published = store
            .put_challenge(
                name,
                request.lease,
                &challenge.token,
                key_authorization.as_str(),
                OffsetDateTime::now_utc(),
            )
            .await?;
        let Published::Answered { told_ready } = published else {
            return Err(AcmeError::LeaseLost(name.to_owned()));
        };
        let token = challenge.token.clone();
        if readied.contains(&token) {
            continue;
        }
        if challenge.status != ChallengeStatus::Pending {
            round.inherited = true;
            continue;
        }
        if told_ready.is_some_and(|at| !grace_over(at, waited_until)) {
            tracing::debug!(domain = %name, "challenge told ready by an earlier worker; waiting for the CA");
            round.waiting = true;
            continue;
        }
        store
            .mark_told_ready(name, &token, OffsetDateTime::now_utc())
            .await?;
        retrying_bad_nonce!(limit, "challenge ready", challenge.set_ready())?;
        readied.insert(token);
    }
}

/// The CA has had [`TOLD_READY_GRACE`] since a challenge was told ready at `at` (by the
/// store's clock, or this attempt's when that one is behind).
fn grace_over(at: OffsetDateTime, waited_until: Instant) -> bool {
    OffsetDateTime::now_utc() - at >= TOLD_READY_GRACE || Instant::now() >= waited_until
}

/// Refresh the order until `done(status)`, each request and the whole bounded.
async fn poll_order(
    order: &mut Order,
    limit: Duration,
    done: impl Fn(OrderStatus) -> bool,
) -> Result<OrderStatus, AcmeError> {
    let deadline = Instant::now() + POLL_LIMIT;
    let mut delay = POLL_FIRST_DELAY;
    loop {
        let status = order.state().status;
        if done(status) || status == OrderStatus::Invalid {
            return Ok(status);
        }
        if Instant::now() + delay > deadline {
            return Err(AcmeError::Timeout {
                step: "order status",
                limit: POLL_LIMIT,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(POLL_MAX_DELAY);
        retrying_bad_nonce!(limit, "order status", async {
            order.refresh().await.map(|_| ())
        })?;
    }
}

/// The reason an order failed: the order's own error, else the failed challenge's.
async fn invalid_order(order: &mut Order, limit: Duration) -> AcmeError {
    if let Some(problem) = order.state().error.clone() {
        return invalid(problem);
    }
    match challenge_problem(order, limit).await {
        Ok(Some(problem)) => invalid(problem),
        Ok(None) => AcmeError::OrderInvalid {
            detail: "the CA gave no reason".into(),
            problem: None,
            unanswered: false,
        },
        Err(e) => e,
    }
}

fn invalid(problem: Problem) -> AcmeError {
    AcmeError::OrderInvalid {
        detail: problem
            .detail
            .clone()
            .unwrap_or_else(|| problem.to_string()),
        problem: Some(Box::new(problem)),
        unanswered: false,
    }
}

async fn challenge_problem(
    order: &mut Order,
    limit: Duration,
) -> Result<Option<Problem>, AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(result) = tokio::time::timeout(limit, authorizations.next())
        .await
        .map_err(|_| AcmeError::Timeout {
            step: "authorization",
            limit,
        })?
    {
        let mut authz = result.map_err(|e| AcmeError::client("authorization", e))?;
        let state = retrying_bad_nonce!(limit, "authorization", async {
            authz
                .refresh()
                .await
                .map(|s| s.challenges.iter().find_map(|c| c.error.clone()))
        })?;
        if state.is_some() {
            return Ok(state);
        }
    }
    Ok(None)
}

/// CSR for the logged key (a fresh one, logged first, when there is none), then wait for
/// the chain. An order already past the CSR only waits.
async fn finalize(
    order: &mut Order,
    store: &dyn Store,
    request: &Request<'_>,
    key_pem: Option<String>,
) -> Result<IssuedCertificate, AcmeError> {
    let Request { name, limit, .. } = *request;
    let key_pem = match key_pem {
        Some(pem) => pem,
        None => {
            let pem = keys::generate_blocking(request.key_type)
                .await?
                .serialize_pem();
            store.set_order_key(order.url(), &pem).await?;
            pem
        }
    };
    if order.state().status == OrderStatus::Ready {
        let key = rcgen::KeyPair::from_pem(&key_pem)?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        retrying_bad_nonce!(limit, "finalize", order.finalize_csr(csr.der()))?;
    }
    if poll_order(order, limit, |s| s == OrderStatus::Valid).await? == OrderStatus::Invalid {
        return Err(invalid_order(order, limit).await);
    }
    let chain = retrying_bad_nonce!(limit, "certificate", order.certificate())?
        .ok_or_else(|| AcmeError::BadCertificate("the order has no certificate".into()))?;
    read_certificate(name, chain, key_pem)
}

/// The leaf's serial, hex without separators (as [`IssuedCertificate::version`]).
fn serial_of(chain_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).ok()?;
    let leaf = pem.parse_x509().ok()?;
    Some(leaf.raw_serial_as_string().replace(':', ""))
}

/// Check the chain is for `name` and read what the scheduler and the server need from it.
pub fn read_certificate(
    name: &str,
    chain_pem: String,
    key_pem: String,
) -> Result<IssuedCertificate, AcmeError> {
    let bad = |what: String| AcmeError::BadCertificate(what);
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes())
        .map_err(|e| bad(format!("PEM: {e}")))?;
    let leaf = pem
        .parse_x509()
        .map_err(|e| bad(format!("leaf certificate: {e}")))?;
    let covers_name = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .is_some_and(|san| {
            san.value.general_names.iter().any(|n| {
                matches!(n, x509_parser::extensions::GeneralName::DNSName(dns) if dns.eq_ignore_ascii_case(name))
            })
        });
    if !covers_name {
        return Err(bad(format!("the leaf does not name {name}")));
    }
    // A CA (or anything between us and it) could hand back a certificate for another key:
    // served with ours, every handshake would fail.
    let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| bad(format!("our key: {e}")))?;
    if *leaf.public_key().subject_public_key.data != *key.public_key_raw() {
        return Err(bad(
            "the leaf's public key is not the key of our certificate request".into(),
        ));
    }
    let validity = leaf.validity();
    Ok(IssuedCertificate {
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
        version: leaf.raw_serial_as_string().replace(':', ""),
        chain_pem,
        key_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_of_another_ca_is_recognised() {
        let account = "https://acme-v02.api.letsencrypt.org/acme/acct/123";
        let order = "https://acme-v02.api.letsencrypt.org/acme/order/123/456";
        assert!(same_server(order, account));
        assert!(same_server(
            "https://ACME-v02.api.letsencrypt.org:443/acme/order/1",
            "https://acme-v02.api.letsencrypt.org:443/acme/acct/1"
        ));
        let staging = "https://acme-staging-v02.api.letsencrypt.org/acme/order/123/456";
        assert!(!same_server(staging, account));
        assert!(!same_server(
            "https://127.0.0.1:14000/my-order/1",
            "https://127.0.0.1:15000/my-account/1"
        ));
        assert!(same_server("not a url", account), "the CA decides");
    }

    fn self_signed(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn reads_validity_and_serial() {
        let (chain, key) = self_signed(&["a.example"]);
        let c = read_certificate("a.example", chain, key).unwrap();
        assert!(c.not_before < c.not_after);
        assert!(!c.version.is_empty() && c.version.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn refuses_a_certificate_for_another_name() {
        let (chain, key) = self_signed(&["b.example"]);
        assert!(matches!(
            read_certificate("a.example", chain, key),
            Err(AcmeError::BadCertificate(_))
        ));
        assert!(read_certificate("a.example", "garbage".into(), String::new()).is_err());
    }

    #[test]
    fn accepts_its_own_key_of_every_type() {
        for key_type in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let key = super::keys::generate(key_type).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let read = read_certificate("a.example", cert.pem(), key.serialize_pem());
            assert!(read.is_ok(), "{key_type}: {read:?}");
        }
    }

    #[test]
    fn refuses_a_certificate_for_another_key() {
        let (chain, _) = self_signed(&["a.example"]);
        let (_, other_key) = self_signed(&["a.example"]);
        let refused = read_certificate("a.example", chain, other_key).unwrap_err();
        assert!(matches!(refused, AcmeError::BadCertificate(_)));
        assert!(refused.to_string().contains("public key"), "{refused}");
    }

    #[test]
    fn a_profile_is_asked_for_only_when_the_ca_lists_it() {
        assert!(offered("shortlived", ["classic", "shortlived"].into_iter()).is_ok());
        let refused = offered("tlsserver", ["classic"].into_iter()).unwrap_err();
        assert_eq!(refused.reason(), "profile_not_offered");
        assert!(refused.to_string().contains("\"tlsserver\""));
        assert!(refused.to_string().ends_with("it offers: classic"));
        let none = offered("classic", std::iter::empty()).unwrap_err();
        assert!(none.to_string().contains("no profiles in its directory"));
    }
}
