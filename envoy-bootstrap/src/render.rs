//! [`Bootstrap`] to Envoy's bootstrap (a JSON value). The hardening settings are fixed here,
//! each with what it prevents (envoy/README.md, "Edge protections", has them as a table).

use serde_json::{Map, Value, json};

use crate::params::{Bootstrap, Filter, FilterSource, Https, Listen, Sds, SdsClientTls, Upstream};

/// Cluster of the backend's challenge listener (the filter's `cluster` setting).
pub const CHALLENGE_CLUSTER: &str = "acme_backend";
/// Cluster of the backend's SDS listener.
pub const SDS_CLUSTER: &str = "acme_sds";
/// Cluster the remote filter code is fetched through.
pub const FILTER_SOURCE_CLUSTER: &str = "acme_filter_source";
/// The filter's name in the HTTP filter chain (the challenge route switches it on).
pub const FILTER_NAME: &str = "acme_edge.challenge";
/// Runtime key of the HTTPS redirect's percentage.
pub const REDIRECT_RUNTIME_KEY: &str = "acme_edge.https_redirect";
/// The challenge route's prefix (keep the filter's `prefix` setting equal to it).
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The whole bootstrap.
pub fn bootstrap(b: &Bootstrap) -> Value {
    let mut listeners = vec![http_listener(b)];
    let mut clusters = vec![challenge_cluster(&b.challenge_backend)];
    if let Some(https) = &b.https {
        listeners.push(https_listener(https));
        clusters.push(sds_cluster(&https.sds));
    }
    if let Some(Filter {
        source: FilterSource::Remote { url, .. },
        ..
    }) = &b.filter
    {
        clusters.push(filter_source_cluster(&url.upstream));
    }
    json!({
        // Required for the SDS listener (a handshake without them aborts Envoy); one id per proxy.
        "node": {"id": b.node_id, "cluster": b.node_cluster},
        "admin": {
            "address": socket_address_of(b.admin.ip().to_string(), b.admin.port()),
            // The operator must reach a proxy that clients have saturated.
            "ignore_global_conn_limit": true,
        },
        "overload_manager": {
            "resource_monitors": [{
                // Beyond this many client connections Envoy resets new ones at accept: a
                // flood cannot run the process out of file descriptors and memory.
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": b.max_connections,
                },
            }],
        },
        "stats_config": {
            "stats_matcher": {
                // About a dozen stats per secret name and one per served certificate: over a
                // million series for 100,000 domains.
                "exclusion_list": {"patterns": [
                    {"prefix": "sds."},
                    {"safe_regex": {"regex": "^listener\\..*\\.on_demand_secret\\.ssl\\.certificate\\..*"}},
                ]},
            },
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}

fn socket_address_of(address: String, port: u16) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

/// A listener's address; the IPv6 wildcard takes IPv4 connections too (`ipv4_compat`), so
/// a CA validating over either family reaches the proxy.
fn listen_address(listen: &Listen) -> Value {
    let mut socket = json!({
        "address": listen.address.to_string(),
        "port_value": listen.port,
    });
    if listen.is_dual_stack() {
        socket["ipv4_compat"] = json!(true);
    }
    json!({"socket_address": socket})
}

/// The edge protections both connection managers share.
fn connection_manager(
    stat_prefix: &str,
    timeouts: Timeouts,
    http_filters: Vec<Value>,
    route_config: Value,
) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            // The client is the TCP peer, never what `x-forwarded-for` claims.
            "use_remote_address": true,
            "xff_num_trusted_hops": 0,
            // One spelling of every path for routes, the filter and upstreams.
            "normalize_path": true,
            "merge_slashes": true,
            "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
            // Larger request heads get 431.
            "max_request_headers_kb": 32,
            // Slowloris: the whole head within 10 s of its first byte.
            "request_headers_timeout": "10s",
            "stream_idle_timeout": timeouts.stream,
            "request_timeout": timeouts.stream,
            "common_http_protocol_options": {
                "idle_timeout": timeouts.connection_idle,
                "max_headers_count": 100,
            },
            "http2_protocol_options": {"max_concurrent_streams": 100},
            "http_filters": http_filters,
            "route_config": route_config,
        },
    })
}

/// Per-listener timeouts: challenge fetches are one-off bodiless GETs; HTTPS carries
/// customers' browser traffic.
struct Timeouts {
    /// Stream idle and whole-request timeout; on HTTP above the filter's longest lookup
    /// (`timeout_ms` at most 60 s), during which the stream is quiet.
    stream: &'static str,
    connection_idle: &'static str,
}

fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    })
}

/// The normal routes' answer. In production: the customers' upstreams.
fn normal_route() -> Value {
    json!({
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}},
    })
}

fn http_listener(b: &Bootstrap) -> Value {
    let mut filters = Vec::new();
    let mut routes = Vec::new();
    let mut challenge_route = normal_route();
    challenge_route["match"] = json!({"prefix": CHALLENGE_PREFIX});
    if let Some(filter) = &b.filter {
        filters.push(wasm_filter(filter));
        // Switches the filter on for challenge paths only (it is off by default): other
        // requests never enter the wasm VM.
        challenge_route["typed_per_filter_config"] = json!({
            FILTER_NAME: {
                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                "config": {},
            },
        });
    }
    filters.push(router());
    // Challenges the filter passes on (`on_miss: pass`) go to the normal routes over plain
    // HTTP, never to the redirect.
    routes.push(challenge_route);
    if b.https_redirect || b.https.is_some() {
        routes.push(json!({
            "match": {
                "prefix": "/",
                "runtime_fraction": {
                    "default_value": {
                        "numerator": if b.https_redirect { 100 } else { 0 },
                        "denominator": "HUNDRED",
                    },
                    "runtime_key": REDIRECT_RUNTIME_KEY,
                },
            },
            "redirect": {"https_redirect": true},
        }));
    }
    routes.push(normal_route());
    let timeouts = Timeouts {
        stream: "75s",
        connection_idle: "60s",
    };
    let route_config = json!({
        "name": "edge_routes",
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}],
    });
    json!({
        "name": "http",
        "address": listen_address(&b.http),
        "filter_chains": [{
            "filters": [connection_manager("edge_http", timeouts, filters, route_config)],
        }],
    })
}

fn wasm_filter(filter: &Filter) -> Value {
    let settings = if filter.settings.is_empty() {
        String::new()
    } else {
        Value::Object(filter.settings.clone()).to_string()
    };
    let code = match &filter.source {
        FilterSource::Local(path) => json!({"local": {"filename": path.display().to_string()}}),
        FilterSource::Remote { url, sha256 } => json!({"remote": {
            "http_uri": {
                "uri": url.url,
                "cluster": FILTER_SOURCE_CLUSTER,
                "timeout": "10s",
            },
            // Code with any other digest is refused: every proxy runs the same build.
            "sha256": sha256.as_str(),
            // The backend may start a little after Envoy: up to 5 more tries over at most
            // 23 s (then the filter stays unloaded and challenges get 503 until a restart;
            // a wrong digest is retried too, then refused the same way).
            "retry_policy": {
                "retry_back_off": {"base_interval": "1s", "max_interval": "8s"},
                "num_retries": 5,
            },
        }}),
    };
    json!({
        "name": FILTER_NAME,
        "disabled": true,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "acme_edge",
                "root_id": "acme_edge",
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": settings,
                },
                // If the code is missing (not fetched, refused) or the VM fails, challenge
                // requests get 503 rather than the normal routes' answer; the filter is off
                // for every other route, so other traffic is unaffected.
                "failure_policy": "FAIL_CLOSED",
                "vm_config": {
                    // One VM per worker, shared by every listener using this vm_id.
                    "vm_id": "acme_edge",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": code,
                },
            },
        },
    })
}

fn https_listener(https: &Https) -> Value {
    let timeouts = Timeouts {
        stream: "300s",
        connection_idle: "300s",
    };
    let route_config = json!({
        "name": "edge_https_routes",
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [normal_route()]}],
    });
    json!({
        "name": "https",
        "address": listen_address(&https.listen),
        "filter_chains": [{
            // A handshake paused for a secret that cannot arrive ends here.
            "transport_socket_connect_timeout": "10s",
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    // Required by Envoy 1.40 with on-demand certificates.
                    "disable_stateless_session_resumption": true,
                    "disable_stateful_session_resumption": true,
                    "common_tls_context": {"custom_tls_certificate_selector": on_demand_selector()},
                },
            },
            "filters": [connection_manager("edge_https", timeouts, vec![router()], route_config)],
        }],
    })
}

/// Certificates by SNI, fetched over delta SDS during the handshake (only the incremental
/// protocol lets the backend say "no such secret").
fn on_demand_selector() -> Value {
    json!({
        "name": "envoy.tls.certificate_selectors.on_demand_secret",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.cert_selectors.on_demand_secret.v3.Config",
            "config_source": {
                "resource_api_version": "V3",
                "api_config_source": {
                    "api_type": "DELTA_GRPC",
                    "transport_api_version": "V3",
                    "grpc_services": [{"envoy_grpc": {"cluster_name": SDS_CLUSTER}}],
                },
            },
            "certificate_mapper": {
                "name": "envoy.tls.certificate_mappers.sni",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.cert_mappers.sni.v3.SNI",
                    // A client without SNI asks for a name no domain can have: refused.
                    "default_value": "_no_sni",
                },
            },
        },
    })
}

/// STATIC for an IP literal, STRICT_DNS for a name (both address families).
fn upstream_cluster(name: &str, upstream: &Upstream) -> Map<String, Value> {
    let mut cluster = Map::new();
    cluster.insert("name".into(), json!(name));
    if upstream.ip().is_some() {
        cluster.insert("type".into(), json!("STATIC"));
    } else {
        cluster.insert("type".into(), json!("STRICT_DNS"));
        cluster.insert("dns_lookup_family".into(), json!("V4_PREFERRED"));
    }
    cluster
}

fn load_assignment(name: &str, address: Value) -> Value {
    json!({
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
    })
}

fn challenge_cluster(upstream: &Upstream) -> Value {
    let mut cluster = upstream_cluster(CHALLENGE_CLUSTER, upstream);
    // Well under the filter's lookup timeout, so a dead replica fails fast.
    cluster.insert("connect_timeout".into(), json!("0.5s"));
    cluster.insert("lb_policy".into(), json!("ROUND_ROBIN"));
    cluster.insert(
        "typed_extension_protocol_options".into(),
        json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            // Below the backend's 120 s: Envoy closes pooled connections first, so a lookup
            // never goes out on a connection the backend is closing.
            "common_http_protocol_options": {"idle_timeout": "60s"},
            "explicit_http_config": {"http_protocol_options": {}},
        }}),
    );
    cluster.insert(
        "load_assignment".into(),
        load_assignment(
            CHALLENGE_CLUSTER,
            socket_address_of(upstream.host.clone(), upstream.port),
        ),
    );
    Value::Object(cluster)
}

fn filter_source_cluster(upstream: &Upstream) -> Value {
    let mut cluster = upstream_cluster(FILTER_SOURCE_CLUSTER, upstream);
    cluster.insert("connect_timeout".into(), json!("1s"));
    cluster.insert(
        "load_assignment".into(),
        load_assignment(
            FILTER_SOURCE_CLUSTER,
            socket_address_of(upstream.host.clone(), upstream.port),
        ),
    );
    Value::Object(cluster)
}

fn sds_cluster(sds: &Sds) -> Value {
    let (mut cluster, address, tls) = match sds {
        Sds::Unix(path) => {
            let mut cluster = Map::new();
            cluster.insert("name".into(), json!(SDS_CLUSTER));
            cluster.insert("type".into(), json!("STATIC"));
            let address = json!({"pipe": {"path": path.display().to_string()}});
            (cluster, address, None)
        }
        Sds::Tcp { upstream, tls } => (
            upstream_cluster(SDS_CLUSTER, upstream),
            socket_address_of(upstream.host.clone(), upstream.port),
            tls.as_ref(),
        ),
    };
    cluster.insert("connect_timeout".into(), json!("1s"));
    cluster.insert(
        "typed_extension_protocol_options".into(),
        json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            // gRPC needs HTTP/2; the keepalive notices a backend that vanished.
            "explicit_http_config": {"http2_protocol_options": {
                "connection_keepalive": {"interval": "30s", "timeout": "5s"},
            }},
        }}),
    );
    // Each held secret name is one gRPC stream, counted as a request.
    cluster.insert(
        "circuit_breakers".into(),
        json!({"thresholds": [{"max_requests": 1_000_000, "max_pending_requests": 1_000_000}]}),
    );
    if let Some(tls) = tls {
        cluster.insert("transport_socket".into(), sds_client_tls(tls));
    }
    cluster.insert(
        "load_assignment".into(),
        load_assignment(SDS_CLUSTER, address),
    );
    Value::Object(cluster)
}

fn sds_client_tls(tls: &SdsClientTls) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": tls.server_name,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificates": [{
                    "certificate_chain": {"filename": tls.chain_file.display().to_string()},
                    "private_key": {"filename": tls.key_file.display().to_string()},
                }],
                "validation_context": {
                    "trusted_ca": {"filename": tls.ca_file.display().to_string()},
                    "match_typed_subject_alt_names": [{
                        "san_type": "DNS",
                        "matcher": {"exact": tls.server_name},
                    }],
                },
            },
        },
    })
}
