//! [`ApiState`]: what the admin API's handlers share, built once by the service.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;

use super::auth::AdminToken;
use super::console;
use super::json::KeyType;
use crate::acme::health::CaHealth;
use crate::config::Config;
use crate::policy::capacity::Pacing;
use crate::store::Store;
use crate::store::source::StoreSource;

/// Largest request body accepted (the enable body is a few bytes).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub token: AdminToken,
    /// Woken when a domain becomes due now.
    pub wake: Arc<Notify>,
    pub source: StoreSource,
    pub default_key_type: KeyType,
    pub directory_url: String,
    pub metrics: Option<PrometheusHandle>,
    pub metrics_require_token: bool,
    /// The CA's health, shared with the worker.
    pub ca_health: Arc<CaHealth>,
    /// The web console's files, when installed.
    pub console: Option<console::Assets>,
    /// How orders are paced: the budget, and whether renewals spend it (`/v1/capacity`).
    pub pacing: Pacing,
}

impl ApiState {
    /// The state for `config`'s admin API, sharing the worker's wake-up, the store's change
    /// source and the CA's health.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        token: AdminToken,
        wake: Arc<Notify>,
        source: StoreSource,
        metrics: Option<PrometheusHandle>,
        ca_health: Arc<CaHealth>,
        console: Option<console::Assets>,
    ) -> ApiState {
        ApiState {
            store,
            token,
            wake,
            source,
            default_key_type: config.acme.key_type,
            directory_url: config.acme.directory_url.to_string(),
            metrics,
            metrics_require_token: config.admin.metrics_require_token,
            ca_health,
            console,
            pacing: Pacing::from_config(&config.acme),
        }
    }
}
