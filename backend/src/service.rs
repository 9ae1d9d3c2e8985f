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
use warp::Filter;

use crate::acme::{CertificateAuthority, Issuer};
use crate::api::{self, ApiState, auth::AdminToken, auth::TokenError};
use crate::ari_refresh;
use crate::budget::OrderBudget;
use crate::certs::CertificateSource;
use crate::challenge;
use crate::config::{Config, SdsConfig, SdsListen};
use crate::jobs::Worker;
use crate::listener;
use crate::metrics::{self, MetricsError};
use crate::schedule::{Backoff, Clock};
use crate::sds::{self, socket::SdsListener, socket::SocketError};
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
    #[error("admin API: {0}")]
    AdminTls(#[from] listener::TlsError),
    #[error("{0}")]
    Console(#[from] crate::api::console::ConsoleError),
    #[error("SDS socket: {0}")]
    SdsSocket(#[from] SocketError),
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
    sds: SdsListener,
    admin_tls: Option<Arc<rustls::ServerConfig>>,
    console: Option<crate::api::console::Assets>,
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
    let admin_tls = config
        .admin
        .tls
        .as_ref()
        .map(listener::tls_config)
        .transpose()?;
    if admin_tls.is_none() && !config.admin.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.admin.listen,
            "the admin API listens beyond loopback without TLS: its bearer token and every \
             request travel in plain text; keep it on loopback or behind a TLS proxy"
        );
    }
    let console = crate::api::console::Assets::load(&config.admin.console_dir)?;
    let admin = listen("admin API", config.admin.listen).await?;
    let challenge = listen("challenge lookup", config.challenge.listen).await?;
    let sds = bind_sds(&config.sds).await?;
    Ok(Bound {
        config,
        store,
        token,
        admin,
        challenge,
        sds,
        admin_tls,
        console,
    })
}

/// The SDS listener: a Unix socket for Envoy's group (its directory created if missing), or
/// TCP.
async fn bind_sds(config: &SdsConfig) -> Result<SdsListener, ServiceError> {
    match &config.listen {
        SdsListen::Tcp(addr) => {
            if config.insecure_plaintext && !addr.ip().is_loopback() && config.tls.is_none() {
                tracing::warn!(
                    listen = %addr,
                    "sds.insecure_plaintext: every private key is served in plain text to \
                     anyone who can reach this address"
                );
            }
            Ok(SdsListener::Tcp(listen("SDS", *addr).await?))
        }
        SdsListen::Unix(path) => {
            if let Some(dir) = path.parent() {
                create_socket_dir(dir).map_err(|source| {
                    ServiceError::SdsSocket(SocketError::Io {
                        path: dir.to_owned(),
                        what: "creating the socket's directory",
                        source,
                    })
                })?;
            }
            let socket = sds::socket::bind_unix(path, config.socket_group).await?;
            Ok(SdsListener::Unix(socket))
        }
    }
}

/// The socket's directory, when missing: traversable by Envoy's user (the socket's own mode
/// and group decide who may connect).
fn create_socket_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
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

    /// The SDS listener's TCP address (`None` on a Unix socket).
    pub fn sds_addr(&self) -> Option<SocketAddr> {
        match &self.sds {
            SdsListener::Tcp(listener) => listener.local_addr().ok(),
            SdsListener::Unix(_) => None,
        }
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
            directory_url: self.config.acme.directory_url.to_string(),
            metrics,
            metrics_require_token: self.config.admin.metrics_require_token,
            console: self.console.clone(),
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
            lease: self.config.storage.lease,
            grace: SHUTDOWN_GRACE,
            backoff: Backoff {
                base: self.config.acme.retry_base,
            },
            budget: OrderBudget {
                orders: self.config.acme.order_budget,
                window: self.config.acme.order_budget_window,
            },
            clock: Clock::system(),
        };
        let announcer = source.clone();

        tracing::info!(
            admin = ?self.admin.local_addr().ok(),
            challenge = ?self.challenge.local_addr().ok(),
            sds = %self.sds.describe(),
            sds_mutual_tls = self.config.sds.tls.is_some(),
            directory = %self.config.acme.directory_url,
            "acme-edge serving"
        );
        let admin_tls = self.admin_tls.clone();
        let admin = listener::serve(
            "admin API",
            self.admin,
            api::routes(api_state).boxed(),
            self.config.admin.limits,
            admin_tls,
            stopped(stop.clone()),
        );
        let lookups = listener::serve(
            "challenge lookup",
            self.challenge,
            challenge::routes(self.store.clone()).boxed(),
            self.config.challenge.limits,
            None,
            stopped(stop.clone()),
        );
        let sds = async {
            let source: Arc<dyn CertificateSource> = Arc::new(source);
            let served = match (self.sds, &self.config.sds.tls) {
                (SdsListener::Tcp(listener), Some(tls)) => {
                    sds::serve_tls_on(listener, source, tls, stopped(stop.clone())).await
                }
                (SdsListener::Tcp(listener), None) => {
                    sds::serve_on(listener, source, stopped(stop.clone())).await
                }
                (SdsListener::Unix(socket), _) => {
                    sds::serve_unix_on(socket, source, stopped(stop.clone())).await
                }
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
            "[acme]\nterms_agreed = true\ndirectory_url = \"https://127.0.0.1:1/dir\"\n\
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
