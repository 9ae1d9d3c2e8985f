//! The ACME account: one per CA directory URL, created on first use with the configured
//! contact, terms agreement and External Account Binding, then kept in the store and reused
//! (same account URL) after restarts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{Account, AccountBuilder, AccountCredentials, ExternalAccountKey, NewAccount};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::AcmeError;
use super::request::bounded;
use crate::config::AcmeConfig;
use crate::store::{Store, StoredAccount};

/// What the account is made from.
#[derive(Clone)]
pub struct AccountSettings {
    pub directory_url: String,
    pub contact: Vec<String>,
    pub ca_root_file: Option<PathBuf>,
    pub eab: Option<(String, Vec<u8>)>,
    /// Slots for requests in flight to the CA, shared by every client made from these
    /// settings (`acme.max_concurrent_requests`).
    pub request_slots: Arc<Semaphore>,
}

impl AccountSettings {
    pub fn from_config(config: &AcmeConfig) -> AccountSettings {
        let eab = config
            .eab
            .as_ref()
            .map(|eab| (eab.key_id.clone(), eab.hmac_key.expose().clone()));
        AccountSettings {
            directory_url: config.directory_url.to_string(),
            contact: config.contact_urls(),
            ca_root_file: config.ca_root_file.clone(),
            eab,
            request_slots: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        }
    }

    fn builder(&self) -> Result<AccountBuilder, AcmeError> {
        let client = super::http::client(self.ca_root_file.as_deref(), self.request_slots.clone())?;
        Ok(Account::builder_with_http(client))
    }
}

/// The stored account for the directory, or a new one registered with the CA and stored.
pub async fn load_or_create(
    settings: &AccountSettings,
    store: &dyn Store,
    limit: Duration,
) -> Result<Account, AcmeError> {
    if let Some(stored) = store.account(&settings.directory_url).await? {
        let credentials: AccountCredentials = serde_json::from_str(&stored.credentials_json)
            .map_err(|e| AcmeError::Account(format!("stored credentials: {e}")))?;
        let account = bounded(
            limit,
            "directory",
            settings.builder()?.from_credentials(credentials),
        )
        .await?;
        tracing::info!(account = %stored.account_url, "ACME account loaded");
        return Ok(account);
    }
    create(settings, store, limit).await
}

async fn create(
    settings: &AccountSettings,
    store: &dyn Store,
    limit: Duration,
) -> Result<Account, AcmeError> {
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let eab = settings
        .eab
        .as_ref()
        .map(|(id, key)| ExternalAccountKey::new(id.clone(), key));
    let new_account = NewAccount {
        contact: &contact,
        // Only reached when `acme.terms_agreed = true`: configuration refuses otherwise.
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = bounded(
        limit,
        "new account",
        settings
            .builder()?
            .create(&new_account, settings.directory_url.clone(), eab.as_ref()),
    )
    .await?;
    let credentials_json = serde_json::to_string(&credentials)
        .map_err(|e| AcmeError::Account(format!("serialising credentials: {e}")))?;
    let stored = store
        .save_account(&StoredAccount {
            directory_url: settings.directory_url.clone(),
            account_url: account.id().to_owned(),
            credentials_json,
            created_at: OffsetDateTime::now_utc(),
        })
        .await?;
    tracing::info!(account = %stored.account_url, directory = %settings.directory_url, "ACME account created");
    Ok(account)
}
