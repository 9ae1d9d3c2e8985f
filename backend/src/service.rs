//! The service: storage, the issuance worker, the admin API, the challenge lookup endpoint
//! and the SDS server, wired together and stopped together. All listeners are bound before
//! anything is served, so a taken port fails the start instead of half a service running.
//!
//! [`run`] takes the shutdown signal as a parameter, so tests run the whole service
//! in-process. On shutdown the listeners stop accepting, the worker stops taking work and
//! in-flight orders get [`SHUTDOWN_GRACE`] to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::acme::{CertificateAuthority, Issuer};
use crate::api::{self, ApiState, auth::AdminToken, auth::TokenError};
use crate::ari_refresh;
use crate::certs::CertificateSource;
use crate::challenge;
use crate::config::Config;
use crate::jobs::Worker;
use crate::metrics::{self, MetricsError};
use crate::schedule::Clock;
use crate::sds;
use crate::store::{self, Store, StoreError, source::StoreSource};

/// How long in-flight orders may run on after a shutdown signal. A healthy order completes
/// in seconds; process supervisors commonly wait 30 s before SIGKILL, so finish well inside.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("{0}")]
    Metrics(#[from] MetricsError),
    #[error("listening on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A service whose listeners are bound and whose store is open, ready to [`Bound::serve`].
pub struct Bound {
    config: Config,
    store: Arc<dyn Store>,
    token: AdminToken,
    admin: TcpListener,
    challenge: TcpListener,
    sds: TcpListener,
}

/// Bind and serve until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    bind(config).await?.serve(shutdown).await;
    Ok(())
}

/// Open the store, resolve the admin token, bind the listeners.
pub async fn bind(config: Config) -> Result<Bound, ServiceError> {
    let store = store::open(&config.storage).await?;
    let released = store.release_in_flight(OffsetDateTime::now_utc()).await?;
    if released > 0 {
        tracing::info!(
            domains = released,
            "resuming orders interrupted by the last stop"
        );
    }
    let token = AdminToken::resolve(&config)?;
    if config.sds.tls.is_none() && !config.sds.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.sds.listen,
            "the SDS listener hands out private keys without TLS on a non-loopback address; \
             set sds.tls_cert_file, sds.tls_key_file and sds.client_ca_file"
        );
    }
    let admin = listen("admin API", config.admin.listen).await?;
    let challenge = listen("challenge lookup", config.challenge.listen).await?;
    let sds = listen("SDS", config.sds.listen).await?;
    Ok(Bound {
        config,
        store,
        token,
        admin,
        challenge,
        sds,
    })
}

async fn listen(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServiceError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Bind { what, addr, source })
}

impl Bound {
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
    }

    pub fn challenge_addr(&self) -> Option<SocketAddr> {
        self.challenge.local_addr().ok()
    }

    pub fn sds_addr(&self) -> Option<SocketAddr> {
        self.sds.local_addr().ok()
    }

    /// Serve until `shutdown` completes, then drain.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let source = StoreSource::new(self.store.clone());
        let wake = Arc::new(Notify::new());
        let metrics = match metrics::install() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "metrics disabled");
                None
            }
        };
        let api_state = ApiState {
            store: self.store.clone(),
            token: self.token,
            wake: wake.clone(),
            source: source.clone(),
            default_key_type: self.config.acme.key_type,
            directory_url: self.config.acme.directory().to_owned(),
            metrics,
            metrics_require_token: self.config.admin.metrics_require_token,
        };
        let ca: Arc<dyn CertificateAuthority> =
            Arc::new(Issuer::new(&self.config.acme, self.store.clone()));
        let ari_refresh = ari_refresh::run(
            self.store.clone(),
            ca.clone(),
            ari_refresh::Settings::from_config(&self.config.acme),
            stop.clone(),
        );
        let worker = Worker {
            store: self.store.clone(),
            ca,
            source: source.clone(),
            wake,
            max_in_flight: self.config.acme.max_in_flight_orders,
            lease: self.config.storage.lease(),
            grace: SHUTDOWN_GRACE,
            backoff: self.config.acme.backoff(),
            budget: self.config.acme.order_budget(),
            clock: Clock::system(),
        };
        let announcer = source.clone();

        tracing::info!(
            admin = ?self.admin.local_addr().ok(),
            challenge = ?self.challenge.local_addr().ok(),
            sds = ?self.sds.local_addr().ok(),
            sds_mutual_tls = self.config.sds.tls.is_some(),
            directory = %self.config.acme.directory(),
            "acme-edge serving"
        );
        let admin = warp::serve(api::routes(api_state))
            .incoming(self.admin)
            .graceful(stopped(stop.clone()))
            .run();
        let lookups = warp::serve(challenge::routes(self.store.clone()))
            .incoming(self.challenge)
            .graceful(stopped(stop.clone()))
            .run();
        let sds = async {
            let source: Arc<dyn CertificateSource> = Arc::new(source);
            let served = match &self.config.sds.tls {
                Some(tls) => sds::serve_tls_on(self.sds, source, tls, stopped(stop.clone())).await,
                None => sds::serve_on(self.sds, source, stopped(stop.clone())).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "SDS server failed");
            }
        };
        // Certificates other replicas issue (PostgreSQL) reach this replica's SDS clients.
        let changes = async {
            if let Err(e) = self.store.follow_changes(announcer, stop.clone()).await {
                tracing::error!(error = %e, "following other replicas' changes failed");
            }
        };
        tokio::join!(
            admin,
            lookups,
            sds,
            worker.run(stop.clone()),
            ari_refresh,
            changes
        );
        tracing::info!("acme-edge stopped");
    }
}

/// Completes once the shutdown flag is set (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> String {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let request = format!("GET {path} HTTP/1.1\r\nhost: t\r\n{auth}connection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_in_process_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let token = "in-process-token-0123456789";
        let text = format!(
            "[acme]\nterms_agreed = true\ndirectory_url = \"http://127.0.0.1:1/dir\"\n\
             [storage]\nurl = \"sqlite://{}\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n\
             [challenge]\nlisten = \"127.0.0.1:0\"\n[sds]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join("db.sqlite").display()
        );
        let config = Config::parse(&text, |_| None).unwrap();
        let bound = bind(config).await.unwrap();
        let (admin, lookup) = (bound.admin_addr().unwrap(), bound.challenge_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(bound.serve(async {
            let _ = stopped.await;
        }));

        assert!(
            get(admin, "/healthz", None)
                .await
                .starts_with("HTTP/1.1 200")
        );
        assert!(
            get(admin, "/v1/domains", None)
                .await
                .starts_with("HTTP/1.1 401")
        );
        assert!(
            get(admin, "/v1/domains", Some(token))
                .await
                .starts_with("HTTP/1.1 200")
        );
        let path = acme_edge_contract::lookup_path("a.example", "tok");
        assert!(get(lookup, &path, None).await.starts_with("HTTP/1.1 404"));

        let _ = stop.send(());
        let finished = tokio::time::timeout(SHUTDOWN_GRACE, server).await;
        assert!(finished.is_ok(), "the service must stop after the signal");
        assert!(
            tokio::net::TcpStream::connect(admin).await.is_err(),
            "listener closed"
        );
    }
}
