//! [`Issuer`]: the [`CertificateAuthority`] over ACME. It holds the account (loaded from the
//! store or registered on first use, and forgotten when the CA no longer knows it) and runs
//! each order through [`super::order`], keeping the CA's `Retry-After` ([`super::http`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::request::bounded;
use super::{AccountSettings, AcmeError, CertificateAuthority, Failure, account, ari, http, order};
use crate::config::AcmeConfig;
use crate::store::{Claim, IssuedCertificate, Store, StoredCertificate};

/// After the account could not be loaded or created, jobs fail fast with that error for this
/// long instead of each queueing behind the lock to wait out the same unresponsive CA.
const ACCOUNT_FAILURE_PAUSE: Duration = Duration::from_secs(15);

/// The account, or why it could not be had recently.
#[derive(Default)]
struct AccountSlot {
    account: Option<instant_acme::Account>,
    last_failure: Option<(tokio::time::Instant, String)>,
}

/// Issues certificates: holds the account (created on first use) and runs orders.
pub struct Issuer {
    settings: AccountSettings,
    store: Arc<dyn Store>,
    request_timeout: Duration,
    profile: Option<String>,
    account: Mutex<AccountSlot>,
}

impl Issuer {
    pub fn new(config: &AcmeConfig, store: Arc<dyn Store>) -> Issuer {
        Issuer {
            settings: AccountSettings::from_config(config),
            store,
            request_timeout: config.request_timeout,
            profile: config.profile.clone(),
            account: Mutex::new(AccountSlot::default()),
        }
    }

    /// The account, loaded from the store or created with the CA on first use.
    pub async fn account(&self) -> Result<instant_acme::Account, AcmeError> {
        let mut slot = self.account.lock().await;
        if let Some(account) = &slot.account {
            return Ok(account.clone());
        }
        if let Some((at, error)) = &slot.last_failure
            && at.elapsed() < ACCOUNT_FAILURE_PAUSE
        {
            return Err(AcmeError::Account(format!("unavailable: {error}")));
        }
        let loaded =
            account::load_or_create(&self.settings, self.store.as_ref(), self.request_timeout)
                .await;
        match loaded {
            Ok(account) => {
                slot.account = Some(account.clone());
                slot.last_failure = None;
                Ok(account)
            }
            Err(e) => {
                slot.last_failure = Some((tokio::time::Instant::now(), e.to_string()));
                Err(e)
            }
        }
    }

    /// The CA lost our account (a test CA restarted, or the account was deactivated): drop it
    /// here and in the store, so that the next attempt registers a new one.
    async fn forget_account(&self) {
        let mut slot = self.account.lock().await;
        let Some(account) = slot.account.take() else {
            return;
        };
        tracing::warn!(account = %account.id(), "the CA does not know our account; registering a new one");
        if let Err(e) = self
            .store
            .forget_account(&self.settings.directory_url, account.id())
            .await
        {
            tracing::error!(error = %e, "forgetting the account");
        }
    }
}

#[async_trait]
impl CertificateAuthority for Issuer {
    async fn ensure_account(&self) -> Result<(), AcmeError> {
        self.account().await.map(drop)
    }

    async fn issue(
        &self,
        claim: &Claim,
        current: Option<&StoredCertificate>,
    ) -> Result<IssuedCertificate, Failure> {
        let attempt = async {
            let account = self.account().await?;
            // ARI: name the replaced certificate, only when the CA offers ARI (else the
            // order would be refused).
            let replaces = match current {
                Some(c) => ari::window(&account, &c.chain_pem, self.request_timeout)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|_| ari::identifier(&c.chain_pem)),
                None => None,
            };
            let request = order::Request {
                name: &claim.name,
                lease: &claim.lease,
                key_type: claim.key_type,
                limit: self.request_timeout,
                current_version: current.map(|c| c.version.as_str()),
                replaces,
                // The domain's own, else the configured default.
                profile: claim.profile.as_deref().or(self.profile.as_deref()),
            };
            order::issue(&account, self.store.as_ref(), &request).await
        };
        let (result, retry_after) = http::noting_retry_after(attempt).await;
        if let Err(error) = &result
            && error.account_unknown()
        {
            self.forget_account().await;
        }
        result.map_err(|error| Failure {
            retry_after: retry_after
                .map(OffsetDateTime::from)
                .or_else(|| error.retry_hint()),
            error,
        })
    }

    async fn renewal_window(&self, chain_pem: &str) -> Result<Option<ari::Window>, AcmeError> {
        let account = self.account().await?;
        ari::window(&account, chain_pem, self.request_timeout).await
    }

    async fn probe(&self) -> Result<(), AcmeError> {
        let settings = &self.settings;
        let client = http::client(
            settings.ca_root_file.as_deref(),
            settings.request_slots.clone(),
        )?;
        let request = ::http::Request::get(settings.directory_url.as_str())
            .body(instant_acme::BodyWrapper::from(Vec::new()))
            .map_err(|e| AcmeError::Account(format!("directory request: {e}")))?;
        let answer = async {
            let mut response = client.request(request).await?;
            let status = response.parts.status;
            response
                .body
                .into_bytes()
                .await
                .map_err(instant_acme::Error::Other)?;
            Ok(status)
        };
        let status = bounded(self.request_timeout, "directory", answer).await?;
        if status.is_server_error() {
            return Err(AcmeError::Client {
                step: "directory",
                source: instant_acme::Error::Str("the CA's directory answered with a server error"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::KeyType;
    use crate::store::SqliteStore;
    use warp::Filter;

    /// A CA that rate-limits account creation, with a Retry-After an hour away.
    async fn rate_limiting_ca() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let directory = serde_json::json!({
            "newNonce": format!("{base}/nonce"),
            "newAccount": format!("{base}/account"),
            "newOrder": format!("{base}/order"),
        });
        let dir = warp::path!("dir")
            .and(warp::get())
            .map(move || warp::reply::json(&directory));
        let nonce = warp::path!("nonce")
            .and(warp::head())
            .map(|| warp::reply::with_header("", "replay-nonce", "bm9uY2U"));
        let account = warp::path!("account").and(warp::post()).map(|| {
            let problem = serde_json::json!({
                "type": "urn:ietf:params:acme:error:rateLimited",
                "detail": "too many new accounts",
                "status": 429,
            });
            let reply = warp::reply::with_status(
                warp::reply::json(&problem),
                warp::http::StatusCode::TOO_MANY_REQUESTS,
            );
            let reply = warp::reply::with_header(reply, "retry-after", "3600");
            warp::reply::with_header(reply, "replay-nonce", "bm9uY2Uy")
        });
        tokio::spawn(
            warp::serve(dir.or(nonce).or(account))
                .incoming(listener)
                .run(),
        );
        format!("{base}/dir")
    }

    #[tokio::test]
    async fn the_cas_retry_after_and_problem_reach_the_failure() {
        let directory = rate_limiting_ca().await;
        let text = format!(
            "[acme]\nterms_agreed = true\ndirectory_url = \"{directory}\"\n\
             allow_insecure_directory = true\n"
        );
        let config = Config::parse(&text, |_| None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let issuer = Issuer::new(&config.acme, store);

        let before = OffsetDateTime::now_utc();
        let claim = Claim {
            name: "a.example".into(),
            key_type: KeyType::EcdsaP256,
            profile: None,
            lease: "L".into(),
            attempts: 0,
            renewal: false,
            resumed: false,
        };
        let Err(failure) = issuer.issue(&claim, None).await else {
            panic!("a rate-limited account cannot issue");
        };
        assert_eq!(failure.error.reason(), "rate_limited", "{}", failure.error);
        let problem = failure.error.problem().unwrap();
        assert_eq!(problem["type"], "urn:ietf:params:acme:error:rateLimited");
        assert_eq!(problem["status"], 429);
        let wait = failure.retry_after.unwrap() - before;
        assert!(
            (time::Duration::minutes(59)..=time::Duration::minutes(61)).contains(&wait),
            "{wait}"
        );
        // The scheduler keeps the CA's time over its own one-minute backoff.
        let retry =
            crate::policy::schedule::Backoff::default().retry_at(before, 1, failure.retry_after);
        assert!(retry - before > time::Duration::minutes(59));
    }
}
