//! A small controllable HTTP server playing the challenge backend (the peer of the filter's
//! lookup call), for tests that need to steer what the backend does.
//!
//! It answers the lookup path of `acme_edge_contract` (`GET /acme-edge/v1/challenge/{host}/
//! {token}`) from a table of `(host, token) -> key authorization`, counts requests (in total
//! and per host), and can be told, per host, to hang (never answer) or to fail with a status;
//! [`ChallengeBackend::stop`] takes it down (connections closed, port refused). Behaviour is
//! per host so that tests sharing one backend and one Envoy stay independent of each other.
//! It runs on 127.0.0.1 in a tokio runtime of its own, so plain `#[test]`s can use it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// What the backend does with lookups for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behavior {
    /// 200 with the key authorization if held, else 404.
    #[default]
    Answer,
    /// Never answer (the request stays open until the client gives up).
    Hang,
    /// Answer with this status and a short body.
    Fail(u16),
    /// Answer the next lookup with this status, then as [`Behavior::Answer`].
    FailOnce(u16),
}

#[derive(Default)]
struct State {
    answers: HashMap<(String, String), String>,
    behaviors: HashMap<String, Behavior>,
    requests: u64,
    requests_by_host: HashMap<String, u64>,
    paths: Vec<String>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // The state stays consistent under a panic (plain inserts), so a poisoned lock is usable.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fake challenge backend, stopped when dropped.
pub struct ChallengeBackend {
    addr: SocketAddr,
    state: Shared,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ChallengeBackend {
    /// Start on a free loopback port.
    pub fn start() -> Result<ChallengeBackend> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("challenge-backend")
            .enable_all()
            .build()
            .context("build the fixture runtime")?;
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", 0)))
            .context("bind the fixture backend")?;
        let addr = listener.local_addr()?;
        let state = Shared::default();
        let (stop, stopped) = oneshot::channel();
        let server = runtime.spawn(serve(listener, Arc::clone(&state), stopped));
        Ok(ChallengeBackend {
            addr,
            state,
            stop: Some(stop),
            server: Some(server),
            runtime: Some(runtime),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Hold `key_authorization` for `host` (normalised) and `token`.
    pub fn insert(&self, host: &str, token: &str, key_authorization: &str) {
        lock(&self.state).answers.insert(
            (host.to_owned(), token.to_owned()),
            key_authorization.to_owned(),
        );
    }

    /// Set what lookups for `host` get.
    pub fn behave(&self, host: &str, behavior: Behavior) {
        lock(&self.state)
            .behaviors
            .insert(host.to_owned(), behavior);
    }

    /// Requests received so far, any path.
    pub fn requests(&self) -> u64 {
        lock(&self.state).requests
    }

    /// Lookups received so far for `host` (as it appears in the lookup path).
    pub fn requests_for(&self, host: &str) -> u64 {
        lock(&self.state)
            .requests_by_host
            .get(host)
            .copied()
            .unwrap_or(0)
    }

    /// Every request path received so far, in order.
    pub fn paths(&self) -> Vec<String> {
        lock(&self.state).paths.clone()
    }

    /// Take the backend down: stop accepting, close every connection. Afterwards its port
    /// refuses connections. Idempotent.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(server), Some(runtime)) = (self.server.take(), self.runtime.as_ref()) {
            let _ = runtime.block_on(server);
        }
    }
}

impl Drop for ChallengeBackend {
    fn drop(&mut self) {
        self.stop();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve(listener: TcpListener, state: Shared, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = service_fn(move |req| answer(Arc::clone(&state), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn answer(
    state: Shared,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let (behavior, found) = {
        let mut s = lock(&state);
        s.requests += 1;
        s.paths.push(path.clone());
        match acme_edge_contract::parse_lookup_path(&path) {
            Some((host, token)) => {
                *s.requests_by_host.entry(host.to_owned()).or_default() += 1;
                let behavior = s.behaviors.get(host).copied().unwrap_or_default();
                if let Behavior::FailOnce(_) = behavior {
                    s.behaviors.insert(host.to_owned(), Behavior::Answer);
                }
                let key = (host.to_owned(), token.to_owned());
                (behavior, s.answers.get(&key).cloned())
            }
            None => (Behavior::Answer, None),
        }
    };
    Ok(match behavior {
        Behavior::Hang => std::future::pending().await,
        Behavior::Fail(status) | Behavior::FailOnce(status) => {
            reply(status, "fixture failure\n".to_owned())
        }
        Behavior::Answer => match found {
            Some(key_authorization) => reply(200, key_authorization),
            None => reply(404, "no such challenge\n".to_owned()),
        },
    })
}

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}
