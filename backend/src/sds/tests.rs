//! The protocol state machines driven directly, and one stream end to end over gRPC.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio_stream::StreamExt;

use super::delta::DeltaStream;
use super::driver::{Protocol, StreamInfo};
use super::memory::MemorySource;
use super::sotw::{SotwStream, fetch};
use super::{HeldNames, SECRET_TYPE_URL, serve_on};
use crate::certs::{CertEvent, ServedCertificate};

fn cert(name: &str, version: &str) -> ServedCertificate {
    ServedCertificate {
        name: name.into(),
        chain_pem: format!("chain of {name} {version}"),
        key_pem: format!("key of {name}"),
        version: version.into(),
    }
}

fn source_with(names: &[&str]) -> Arc<MemorySource> {
    let source = Arc::new(MemorySource::new());
    names.iter().for_each(|n| source.put(cert(n, "v1")));
    source
}

fn delta(source: &Arc<MemorySource>) -> DeltaStream {
    DeltaStream::new(StreamInfo::next(&AtomicU64::new(0)), source.clone())
}

fn subscribe(names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: SECRET_TYPE_URL.into(),
        resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

fn ack(nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: SECRET_TYPE_URL.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// (name, version) of each resource, and the removed names.
fn summary(response: &DeltaDiscoveryResponse) -> (Vec<(String, String)>, Vec<String>) {
    let mut resources: Vec<_> = (response.resources.iter())
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    resources.sort();
    let mut removed = response.removed_resources.clone();
    removed.sort();
    (resources, removed)
}

fn pair(name: &str, version: &str) -> (String, String) {
    (name.to_owned(), version.to_owned())
}

#[tokio::test]
async fn subscribe_answers_known_names_and_removes_unknown_ones() {
    let source = source_with(&["a.example"]);
    let mut stream = delta(&source);
    let reply = stream.on_request(subscribe(&["a.example", "nope.example", "bad name", ""]));
    let reply = reply.await.unwrap().unwrap();
    assert_eq!(reply.type_url, SECRET_TYPE_URL);
    assert!(!reply.nonce.is_empty());
    let (resources, removed) = summary(&reply);
    assert_eq!(resources, vec![pair("a.example", "v1")]);
    assert_eq!(removed, vec!["", "bad name", "nope.example"]);
}

#[tokio::test]
async fn names_are_looked_up_normalised_and_answered_as_requested() {
    let source = source_with(&["a.example"]);
    let mut stream = delta(&source);
    let reply = stream
        .on_request(subscribe(&["A.Example."]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary(&reply).0, vec![pair("A.Example.", "v1")]);
    source.put(cert("a.example", "v2"));
    let push = stream.on_event(CertEvent::Updated("a.example".into()));
    assert_eq!(
        summary(&push.await.unwrap().unwrap()).0,
        vec![pair("A.Example.", "v2")]
    );
}

#[tokio::test]
async fn acks_and_nacks_need_no_answer() {
    let source = source_with(&["a.example"]);
    let mut stream = delta(&source);
    let reply = stream
        .on_request(subscribe(&["a.example"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stream.on_request(ack(&reply.nonce)).await.unwrap(), None);
    let nack = DeltaDiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 3,
            message: "bad PEM".into(),
            ..Default::default()
        }),
        ..ack(&reply.nonce)
    };
    assert_eq!(stream.on_request(nack).await.unwrap(), None);
}

#[tokio::test]
async fn pushes_updates_and_removals_of_subscribed_names_only() {
    let source = source_with(&["a.example", "b.example"]);
    let mut stream = delta(&source);
    stream.on_request(subscribe(&["a.example"])).await.unwrap();
    source.put(cert("b.example", "v2"));
    let other = stream.on_event(CertEvent::Updated("b.example".into()));
    assert_eq!(other.await.unwrap(), None);
    // An event that changes nothing (same version) sends nothing.
    let same = stream.on_event(CertEvent::Updated("a.example".into()));
    assert_eq!(same.await.unwrap(), None);
    source.put(cert("a.example", "v2"));
    let push = stream.on_event(CertEvent::Updated("a.example".into()));
    assert_eq!(
        summary(&push.await.unwrap().unwrap()).0,
        vec![pair("a.example", "v2")]
    );
    source.remove("a.example");
    let gone = stream.on_event(CertEvent::Removed("a.example".into()));
    assert_eq!(summary(&gone.await.unwrap().unwrap()).1, vec!["a.example"]);
    // Issued later: a still-subscribed name gets it.
    source.put(cert("a.example", "v3"));
    let back = stream.on_event(CertEvent::Updated("a.example".into()));
    assert_eq!(
        summary(&back.await.unwrap().unwrap()).0,
        vec![pair("a.example", "v3")]
    );
}

#[tokio::test]
async fn unsubscribed_names_are_no_longer_pushed() {
    let source = source_with(&["a.example"]);
    let mut stream = delta(&source);
    stream.on_request(subscribe(&["a.example"])).await.unwrap();
    let unsubscribe = DeltaDiscoveryRequest {
        resource_names_unsubscribe: vec!["a.example".into()],
        ..subscribe(&[])
    };
    assert_eq!(stream.on_request(unsubscribe).await.unwrap(), None);
    source.put(cert("a.example", "v2"));
    let push = stream.on_event(CertEvent::Updated("a.example".into()));
    assert_eq!(push.await.unwrap(), None);
}

#[tokio::test]
async fn reconnect_skips_versions_envoy_already_has() {
    let source = source_with(&["a.example", "b.example"]);
    let mut stream = delta(&source);
    let request = DeltaDiscoveryRequest {
        initial_resource_versions: HashMap::from([
            ("a.example".to_owned(), "v1".to_owned()),
            ("b.example".to_owned(), "v0".to_owned()),
            ("c.example".to_owned(), "v1".to_owned()),
        ]),
        ..subscribe(&["a.example", "b.example", "c.example"])
    };
    let reply = stream.on_request(request).await.unwrap().unwrap();
    assert_eq!(
        summary(&reply),
        (vec![pair("b.example", "v1")], vec!["c.example".into()])
    );
}

#[tokio::test]
async fn wildcard_follows_changes() {
    let source = source_with(&[]);
    let mut stream = delta(&source);
    // A first request naming nothing is the legacy wildcard.
    assert_eq!(stream.on_request(subscribe(&[])).await.unwrap(), None);
    source.put(cert("new.example", "v1"));
    let push = stream.on_event(CertEvent::Updated("new.example".into()));
    assert_eq!(
        summary(&push.await.unwrap().unwrap()).0,
        vec![pair("new.example", "v1")]
    );
    source.remove("new.example");
    let gone = stream.on_event(CertEvent::Removed("new.example".into()));
    assert_eq!(
        summary(&gone.await.unwrap().unwrap()).1,
        vec!["new.example"]
    );
    // Removing a name the stream never had says nothing.
    let never = stream.on_event(CertEvent::Removed("other.example".into()));
    assert_eq!(never.await.unwrap(), None);
    let unsubscribe = DeltaDiscoveryRequest {
        resource_names_unsubscribe: vec!["*".into()],
        ..subscribe(&[])
    };
    stream.on_request(unsubscribe).await.unwrap();
    source.put(cert("later.example", "v1"));
    let push = stream.on_event(CertEvent::Updated("later.example".into()));
    assert_eq!(push.await.unwrap(), None);
}

#[tokio::test]
async fn resync_sends_only_what_changed() {
    let source = source_with(&["a.example", "b.example"]);
    let mut stream = delta(&source);
    stream
        .on_request(subscribe(&["a.example", "b.example"]))
        .await
        .unwrap();
    assert_eq!(stream.resync().await.unwrap(), None);
    source.put(cert("a.example", "v2"));
    source.remove("b.example");
    let reply = stream.resync().await.unwrap().unwrap();
    assert_eq!(
        summary(&reply),
        (vec![pair("a.example", "v2")], vec!["b.example".into()])
    );
}

#[tokio::test]
async fn other_resource_types_are_refused() {
    let source = source_with(&[]);
    let request = DeltaDiscoveryRequest {
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        ..subscribe(&["a.example"])
    };
    let status = delta(&source).on_request(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

fn sotw_request(names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: SECRET_TYPE_URL.into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn state_of_the_world_answers_what_exists() {
    let source = source_with(&["a.example"]);
    let mut stream = SotwStream::new(StreamInfo::next(&AtomicU64::new(0)), source.clone());
    let reply = stream.on_request(sotw_request(&["a.example", "nope.example"], ""));
    let reply = reply.await.unwrap().unwrap();
    assert_eq!(reply.resources.len(), 1);
    let ack = sotw_request(&["a.example", "nope.example"], &reply.nonce);
    assert_eq!(stream.on_request(ack).await.unwrap(), None);
    source.put(cert("a.example", "v2"));
    let push = stream.on_event(CertEvent::Updated("a.example".into()));
    let push = push.await.unwrap().unwrap();
    assert_ne!(push.version_info, reply.version_info);
    let other = stream.on_event(CertEvent::Updated("b.example".into()));
    assert_eq!(other.await.unwrap(), None);

    let fetched = fetch(source.as_ref(), &sotw_request(&["a.example"], ""))
        .await
        .unwrap();
    assert_eq!(fetched.resources.len(), 1);
    assert_eq!(fetched.type_url, SECRET_TYPE_URL);
}

/// Poll `f` until it yields, for at most `limit`.
async fn within<T>(limit: Duration, f: impl Future<Output = Option<T>>) -> T {
    match tokio::time::timeout(limit, f).await {
        Ok(Some(value)) => value,
        Ok(None) => panic!("stream ended"),
        Err(_) => panic!("nothing within {limit:?}"),
    }
}

#[tokio::test]
async fn serves_over_grpc_and_pushes() {
    let source = source_with(&["a.example"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(
        listener,
        source.clone(),
        Arc::new(HeldNames::unbounded()),
        async {
            let _ = stopped.await;
        },
    ));
    let mut client = SecretDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (requests, outbound) = tokio::sync::mpsc::channel(4);
    requests
        .send(subscribe(&["a.example", "nope.example"]))
        .await
        .unwrap();
    let response = client
        .delta_secrets(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .unwrap();
    let mut replies = response.into_inner();
    let limit = Duration::from_secs(10);
    let first = within(limit, replies.next()).await.unwrap();
    assert_eq!(
        summary(&first),
        (vec![pair("a.example", "v1")], vec!["nope.example".into()])
    );
    requests.send(ack(&first.nonce)).await.unwrap();
    source.put(cert("a.example", "v2"));
    let push = within(limit, replies.next()).await.unwrap();
    assert_eq!(summary(&push).0, vec![pair("a.example", "v2")]);
    // Envoy never ends its streams: stopping must end them, or shutdown would hang.
    let _ = stop.send(());
    within(limit, async { server.await.ok() }).await.unwrap();
    assert!(
        within(limit, async { Some(replies.next().await) })
            .await
            .is_none()
    );
    drop(requests);
}

#[tokio::test]
async fn serves_secrets_over_ads_on_one_stream() {
    let source = source_with(&["a.example", "b.example"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_on(
        listener,
        source.clone(),
        Arc::new(HeldNames::unbounded()),
        std::future::pending(),
    ));
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (requests, outbound) = tokio::sync::mpsc::channel(4);
    requests.send(subscribe(&["a.example"])).await.unwrap();
    let response = client
        .delta_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .unwrap();
    let mut replies = response.into_inner();
    let limit = Duration::from_secs(10);
    let first = within(limit, replies.next()).await.unwrap();
    assert_eq!(summary(&first).0, vec![pair("a.example", "v1")]);
    // A later name, as the on-demand selector asks over ADS: on the same stream.
    let mut next = subscribe(&["b.example"]);
    next.response_nonce = first.nonce.clone();
    requests.send(next).await.unwrap();
    let second = within(limit, replies.next()).await.unwrap();
    assert_eq!(summary(&second).0, vec![pair("b.example", "v1")]);
    drop(requests);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Subscribe(Vec<String>),
        Unsubscribe(Vec<String>),
        Ack { nack: bool },
        Issue(String),
        Remove(String),
    }

    /// A few managed-looking names, their spellings, the wildcard and arbitrary text.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "a.example",
                "B.example",
                "b.example.",
                "*",
                "",
                "c.example"
            ])
            .prop_map(str::to_owned),
            any::<String>(),
        ]
    }

    fn domain() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a.example", "b.example", "c.example"]).prop_map(str::to_owned)
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            prop::collection::vec(name(), 0..4).prop_map(Step::Subscribe),
            prop::collection::vec(name(), 0..3).prop_map(Step::Unsubscribe),
            any::<bool>().prop_map(|nack| Step::Ack { nack }),
            domain().prop_map(Step::Issue),
            domain().prop_map(Step::Remove),
        ]
    }

    proptest! {
        /// Whatever Envoy sends and however certificates change, the stream never fails,
        /// only ever names what was asked for, and (every change being announced) leaves
        /// Envoy with exactly the source's state: a resync finds nothing to send.
        #[test]
        fn delta_stream_tells_envoy_the_truth(steps in prop::collection::vec(step(), 1..40)) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let source = Arc::new(MemorySource::new());
                let mut stream = delta(&source);
                let mut version = 0;
                let mut asked = std::collections::HashSet::new();
                let mut last_nonce = String::new();
                // A first request naming nothing is the legacy wildcard.
                let mut first = true;
                for step in steps {
                    let is_request = !matches!(step, Step::Issue(_) | Step::Remove(_));
                    if first && is_request {
                        first = false;
                        if !matches!(&step, Step::Subscribe(names) if !names.is_empty()) {
                            asked.insert("*".to_owned());
                        }
                    }
                    let reply = match step {
                        Step::Subscribe(names) => {
                            asked.extend(names.iter().cloned());
                            stream.on_request(DeltaDiscoveryRequest {
                                resource_names_subscribe: names,
                                ..subscribe(&[])
                            }).await
                        }
                        Step::Unsubscribe(names) => stream.on_request(DeltaDiscoveryRequest {
                            resource_names_unsubscribe: names,
                            ..subscribe(&[])
                        }).await,
                        Step::Ack { nack } => stream.on_request(DeltaDiscoveryRequest {
                            error_detail: nack.then(RpcStatus::default),
                            ..ack(&last_nonce)
                        }).await,
                        Step::Issue(name) => {
                            version += 1;
                            source.put(cert(&name, &version.to_string()));
                            stream.on_event(CertEvent::Updated(name)).await
                        }
                        Step::Remove(name) => {
                            source.remove(&name);
                            stream.on_event(CertEvent::Removed(name)).await
                        }
                    };
                    let reply = reply.map_err(|s| TestCaseError::fail(s.to_string()))?;
                    if let Some(reply) = reply {
                        prop_assert!(!reply.resources.is_empty() || !reply.removed_resources.is_empty());
                        prop_assert_eq!(reply.type_url.as_str(), SECRET_TYPE_URL);
                        for r in &reply.resources {
                            // Through the wildcard a name may come unasked for.
                            prop_assert!(asked.contains(&r.name) || asked.contains("*"));
                        }
                        last_nonce = reply.nonce;
                    }
                }
                let resync = stream.resync().await.map_err(|s| TestCaseError::fail(s.to_string()))?;
                prop_assert_eq!(resync, None);
                Ok(())
            })?;
        }
    }
}

fn node_request(names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(envoy_types::pb::envoy::config::core::v3::Node {
            id: "edge-1".into(),
            cluster: "edge".into(),
            ..Default::default()
        }),
        ..subscribe(names)
    }
}

/// One stream per name, as Envoy's on-demand selector opens them, all on one bound.
fn bounded_streams(
    source: &Arc<MemorySource>,
    held: &Arc<HeldNames>,
    count: usize,
) -> Vec<(DeltaStream, tokio::sync::mpsc::UnboundedReceiver<String>)> {
    let counter = AtomicU64::new(0);
    (0..count)
        .map(|_| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let info = StreamInfo::next(&counter);
            let stream = DeltaStream::bounded(info, source.clone(), held.clone(), tx);
            (stream, rx)
        })
        .collect()
}

#[tokio::test]
async fn names_beyond_the_bound_are_removed_once_acknowledged() {
    let source = source_with(&["a.example", "b.example", "c.example"]);
    let held = Arc::new(HeldNames::new(2));
    let mut streams = bounded_streams(&source, &held, 3);
    let mut nonces = Vec::new();
    for ((stream, _), name) in streams
        .iter_mut()
        .zip(["a.example", "b.example", "c.example"])
    {
        let reply = stream
            .on_request(node_request(&[name]))
            .await
            .unwrap()
            .unwrap();
        nonces.push(reply.nonce);
    }
    // Three held, none acknowledged: a handshake may still wait for each.
    assert_eq!(held.counts().names, 3);
    assert!(streams.iter_mut().all(|(_, rx)| rx.try_recv().is_err()));
    for ((stream, _), nonce) in streams.iter_mut().zip(&nonces) {
        stream.on_request(ack(nonce)).await.unwrap();
    }
    // The least recently requested goes: its stream tells Envoy it is removed.
    let evicted = streams[0].1.try_recv().unwrap();
    assert_eq!(evicted, "a.example");
    let removal = streams[0].0.on_evict(evicted).await.unwrap().unwrap();
    assert_eq!(summary(&removal).1, vec!["a.example"]);
    assert_eq!(held.counts().names, 2);
    assert_eq!(held.counts().most_by_one_proxy, 2);
    // A renewal does not hand the evicted name back.
    source.put(cert("a.example", "v2"));
    let push = streams[0]
        .0
        .on_event(CertEvent::Updated("a.example".into()));
    assert_eq!(push.await.unwrap(), None);
    // Subscribed again (a later handshake): served, and now the most recent.
    let again = streams[0].0.on_request(node_request(&["a.example"])).await;
    assert_eq!(
        summary(&again.unwrap().unwrap()).0,
        vec![pair("a.example", "v2")]
    );
    // A stream that ends lets go of its names.
    streams.truncate(1);
    assert_eq!(held.counts().names, 1);
}

/// After a backend restart Envoy subscribes again with the versions it holds; those it
/// holds at the served version get no answer but count against the bound, settled, so the
/// bound still holds and the oldest of them can be evicted.
#[tokio::test]
async fn names_envoy_kept_across_a_restart_count_against_the_bound() {
    let source = source_with(&["a.example", "b.example", "c.example"]);
    let held = Arc::new(HeldNames::new(2));
    let mut streams = bounded_streams(&source, &held, 3);
    for ((stream, _), name) in streams.iter_mut().zip(["a.example", "b.example"]) {
        let request = DeltaDiscoveryRequest {
            initial_resource_versions: HashMap::from([(name.to_owned(), "v1".to_owned())]),
            ..node_request(&[name])
        };
        assert_eq!(stream.on_request(request).await.unwrap(), None);
    }
    assert_eq!(held.counts().names, 2, "the kept names are held");
    // A new name beyond the bound: the oldest kept name is evicted at its acknowledgement.
    let (stream, _) = &mut streams[2];
    let reply = stream
        .on_request(node_request(&["c.example"]))
        .await
        .unwrap()
        .unwrap();
    stream.on_request(ack(&reply.nonce)).await.unwrap();
    assert_eq!(streams[0].1.try_recv().unwrap(), "a.example");
    assert_eq!(held.counts().names, 2);
}
