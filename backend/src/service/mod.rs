//! The service: storage, the issuance worker, the admin API, the challenge lookup endpoint
//! and the SDS server, wired together and stopped together. All listeners are bound before
//! anything is served, so a taken port fails the start instead of half a service running.
//!
//! [`run`] takes the shutdown signal as a parameter, so tests run the whole service
//! in-process. On shutdown the listeners stop accepting, the worker stops taking work and
//! in-flight orders get [`SHUTDOWN_GRACE`] to finish.
//!
//! Each component runs as a supervised task (`supervise`): one that fails or ends before
//! shutdown stops the service with [`ServiceError::Component`] (the process exits 70). Each
//! reports its readiness to a [`Readiness`] that `/readyz` reads: the listeners once they
//! serve, the ACME account once loaded (retried from [`ACCOUNT_RETRY_FIRST`] up to
//! [`ACCOUNT_RETRY_MAX`] apart while the CA is unreachable).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use warp::Filter;

use crate::acme::health::CaHealth;
use crate::acme::{CertificateAuthority, Issuer};
use crate::activation::{self, ActivationError, Inherited};
use crate::api::{self, ApiState, auth::AdminToken, auth::TokenError};
use crate::ari_refresh;
use crate::certs::CertificateSource;
use crate::challenge;
use crate::config::{Config, SdsConfig, SdsListen};
use crate::health::{Check, Readiness};
use crate::jobs::Worker;
use crate::listener;
use crate::metrics::{self, MetricsError};
use crate::policy::capacity::Pacing;
use crate::sds::{self, socket::SdsListener, socket::SocketError};
use crate::store::{self, Store, StoreError, source::StoreSource};

mod supervise;
pub use supervise::ComponentFailed;
use supervise::{Work, supervise};

/// How long in-flight orders may run on after a shutdown signal. A healthy order completes
/// in seconds; process supervisors commonly wait 30 s before SIGKILL, so finish well inside.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// First pause before loading the ACME account again after the CA could not be reached.
pub const ACCOUNT_RETRY_FIRST: Duration = Duration::from_secs(15);
/// Longest pause between attempts to load the ACME account.
pub const ACCOUNT_RETRY_MAX: Duration = Duration::from_secs(10 * 60);

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
    #[error("{0}")]
    Component(#[from] ComponentFailed),
    #[error("{0}")]
    Activation(#[from] ActivationError),
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

/// Bind (taking the sockets the service manager passed) and serve until `shutdown`
/// completes.
pub async fn run(
    config: Config,
    inherited: Inherited,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    bind(config, inherited).await?.serve(shutdown).await?;
    Ok(())
}

/// Open the store, resolve the admin token, bind the listeners (taking those the service
/// manager passed in `inherited` instead of binding their addresses).
pub async fn bind(config: Config, mut inherited: Inherited) -> Result<Bound, ServiceError> {
    inherited.check()?;
    let store = store::open(&config.storage).await?;
    let released = store.release_in_flight(OffsetDateTime::now_utc()).await?;
    if released > 0 {
        tracing::info!(
            domains = released,
            "resuming orders interrupted by the last stop"
        );
    }
    let token = AdminToken::resolve(&config.admin.token)?;
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
    let admin = take_or_listen(
        &mut inherited,
        activation::ADMIN,
        "admin API",
        config.admin.listen,
    )
    .await?;
    let challenge = take_or_listen(
        &mut inherited,
        activation::CHALLENGE,
        "challenge lookup",
        config.challenge.listen,
    )
    .await?;
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

/// The socket named `name` passed by the service manager, else `addr` bound now.
async fn take_or_listen(
    inherited: &mut Inherited,
    name: &'static str,
    what: &'static str,
    addr: SocketAddr,
) -> Result<TcpListener, ServiceError> {
    let Some(socket) = inherited.take(name)? else {
        return listen(what, addr).await;
    };
    let socket = TcpListener::from_std(socket).map_err(|source| ServiceError::Bind {
        what,
        addr,
        source,
    })?;
    tracing::info!(
        listener = what,
        addr = ?socket.local_addr().ok(),
        "using the socket passed by the service manager (its configured address is not bound)"
    );
    Ok(socket)
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

    /// Serve until `shutdown` completes, then drain. A component that fails on the way stops
    /// the service too (the others drain) and is returned.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ComponentFailed> {
        let stop = CancellationToken::new();
        let signal = tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.await;
                stop.cancel();
            }
        });
        let readiness = Readiness::new();
        tracing::info!(
            admin = ?self.admin.local_addr().ok(),
            challenge = ?self.challenge.local_addr().ok(),
            filter_sha256 = self.config.challenge.filter.as_ref().map(|f| f.sha256.as_str()),
            sds = %self.sds.describe(),
            sds_mutual_tls = self.config.sds.tls.is_some(),
            directory = %self.config.acme.directory_url,
            "acme-edge serving"
        );
        let components = self.components(&readiness, &stop);
        let outcome = supervise(components, stop).await;
        signal.abort();
        match &outcome {
            Ok(()) => tracing::info!("acme-edge stopped"),
            Err(e) => tracing::error!(error = %e, "acme-edge stopped: a component failed"),
        }
        outcome
    }

    /// Every component, each registering its readiness check and stopping at `stop`.
    fn components(
        self,
        readiness: &Readiness,
        stop: &CancellationToken,
    ) -> Vec<(&'static str, Work)> {
        let Bound {
            config,
            store,
            token,
            admin,
            challenge,
            sds,
            admin_tls,
            console,
        } = self;
        let source = StoreSource::new(store.clone());
        let wake = Arc::new(Notify::new());
        let ca_health = Arc::new(CaHealth::new());
        let ca: Arc<dyn CertificateAuthority> = Arc::new(Issuer::new(&config.acme, store.clone()));
        let worker = Worker::from_config(
            &config,
            store.clone(),
            ca.clone(),
            source.clone(),
            wake.clone(),
            ca_health.clone(),
            SHUTDOWN_GRACE,
        );
        let api = ApiState::new(
            &config,
            store.clone(),
            token,
            wake,
            source.clone(),
            metrics_handle(),
            ca_health.clone(),
            console,
        );
        let admin_routes = api::ready::routes(readiness.clone(), store.clone(), ca_health)
            .or(api::routes(api))
            .unify()
            .boxed();
        let lookup_routes =
            challenge::routes(store.clone(), config.challenge.filter.clone()).boxed();
        let held = Arc::new(sds::HeldNames::new(config.sds.max_names_per_proxy));
        let ari = ari_refresh::Settings::from_config(&config.acme);
        vec![
            (
                "admin API",
                listening(
                    readiness.check("admin_api", "not listening yet"),
                    listener::serve(
                        "admin API",
                        admin,
                        admin_routes,
                        config.admin.limits,
                        admin_tls,
                        stop.clone().cancelled_owned(),
                    ),
                ),
            ),
            (
                "challenge lookup listener",
                listening(
                    readiness.check("challenge_listener", "not listening yet"),
                    listener::serve(
                        "challenge lookup",
                        challenge,
                        lookup_routes,
                        config.challenge.limits,
                        None,
                        stop.clone().cancelled_owned(),
                    ),
                ),
            ),
            (
                "SDS server",
                Box::pin(serve_sds(
                    sds,
                    config.sds.tls.clone(),
                    Arc::new(source.clone()),
                    held,
                    readiness.check("sds", "not serving yet"),
                    stop.clone(),
                )),
            ),
            ("issuance worker", until_done(worker.run(stop.clone()))),
            (
                "ARI refresh",
                until_done(ari_refresh::run(
                    store.clone(),
                    ca.clone(),
                    ari,
                    stop.clone(),
                )),
            ),
            (
                "metrics gauges",
                until_done(api::gauges::keep_fresh(
                    store.clone(),
                    Pacing::from_config(&config.acme),
                    source.subscribe(),
                    stop.clone(),
                )),
            ),
            (
                "change follower",
                Box::pin(follow_changes(store, source, stop.clone())),
            ),
            (
                "ACME account",
                Box::pin(load_account(
                    ca,
                    readiness.check("acme_account", "not loaded yet"),
                    stop.clone(),
                )),
            ),
        ]
    }
}

/// The Prometheus recorder, or none (with a warning) when one is already installed.
fn metrics_handle() -> Option<PrometheusHandle> {
    metrics::install()
        .inspect_err(|e| tracing::warn!(error = %e, "metrics disabled"))
        .ok()
}

/// A component whose work cannot fail: it ends only at shutdown.
fn until_done(work: impl Future<Output = ()> + Send + 'static) -> Work {
    Box::pin(async move {
        work.await;
        Ok(())
    })
}

/// A listener's work: ready once it serves.
fn listening(check: Check, serve: impl Future<Output = ()> + Send + 'static) -> Work {
    Box::pin(async move {
        check.ready();
        serve.await;
        check.not_ready("stopped");
        Ok(())
    })
}

async fn serve_sds(
    listener: SdsListener,
    tls: Option<sds::ServerTls>,
    source: Arc<dyn CertificateSource>,
    held: Arc<sds::HeldNames>,
    check: Check,
    stop: CancellationToken,
) -> Result<(), String> {
    check.ready();
    let shutdown = stop.cancelled_owned();
    let served = match (listener, &tls) {
        (SdsListener::Tcp(listener), Some(tls)) => {
            sds::serve_tls_on(listener, source, held, tls, shutdown).await
        }
        (SdsListener::Tcp(listener), None) => sds::serve_on(listener, source, held, shutdown).await,
        (SdsListener::Unix(socket), _) => sds::serve_unix_on(socket, source, held, shutdown).await,
    };
    check.not_ready("stopped");
    served.map_err(|e| e.to_string())
}

/// Certificates other replicas issue (PostgreSQL) reach this replica's SDS clients. A store
/// without replicas (SQLite) has nothing to follow and returns at once; this waits for `stop`
/// then, so that it does not end before shutdown.
async fn follow_changes(
    store: Arc<dyn Store>,
    source: StoreSource,
    stop: CancellationToken,
) -> Result<(), String> {
    store
        .follow_changes(source, stop.clone())
        .await
        .map_err(|e| format!("following other replicas' changes: {e}"))?;
    stop.cancelled().await;
    Ok(())
}

/// Load the ACME account (or register it) at start-up, so `/readyz` can say whether issuance
/// can work; retried with a growing pause while the CA is unreachable, until shutdown.
async fn load_account(
    ca: Arc<dyn CertificateAuthority>,
    check: Check,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut pause = ACCOUNT_RETRY_FIRST;
    loop {
        match ca.ensure_account().await {
            Ok(()) => {
                check.ready();
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?pause, "ACME account not loaded");
                check.not_ready(format!("not loaded: {e}"));
            }
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(ACCOUNT_RETRY_MAX);
    }
    stop.cancelled().await;
    Ok(())
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
        let bound = bind(config, Inherited::none()).await.unwrap();
        let (admin, lookup) = (bound.admin_addr().unwrap(), bound.challenge_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(bound.serve(async {
            let _ = stopped.await;
        }));
        let ready = get(admin, "/readyz", None).await;
        assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
        assert!(
            ready.contains("acme_account"),
            "the CA is unreachable: {ready}"
        );

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
