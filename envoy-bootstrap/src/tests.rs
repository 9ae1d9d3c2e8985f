#![allow(clippy::field_reassign_with_default)]

use std::path::PathBuf;

use serde_json::json;

use super::*;

#[test]
fn default_is_dual_stack_with_the_unix_socket_and_a_local_filter() {
    let value = Bootstrap::default().to_value();
    let listeners = &value["static_resources"]["listeners"];
    for i in 0..2 {
        let socket = &listeners[i]["address"]["socket_address"];
        assert_eq!(socket["address"], "::");
        assert_eq!(socket["ipv4_compat"], true);
    }
    let clusters = &value["static_resources"]["clusters"];
    assert_eq!(clusters[1]["name"], "acme_sds");
    assert_eq!(
        clusters[1]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]
            ["path"],
        "/run/acme-edge/sds.sock"
    );
    let yaml = Bootstrap::default().to_yaml();
    assert!(yaml.starts_with(YAML_HEADER), "{yaml}");
    assert!(yaml.contains("filename: /usr/local/lib/acme-edge/acme_edge_filter.wasm"));
}

#[test]
fn ipv4_listeners_have_no_ipv4_compat() {
    let mut b = Bootstrap::default();
    b.http = Listen::new("0.0.0.0".parse().unwrap(), 80);
    let value = b.to_value();
    let socket = &value["static_resources"]["listeners"][0]["address"]["socket_address"];
    assert_eq!(socket["address"], "0.0.0.0");
    assert!(socket.get("ipv4_compat").is_none());
}

#[test]
fn filter_settings_are_a_json_string() {
    let mut b = Bootstrap::default();
    let settings = Filter::parse_settings(r#"{"on_miss":"pass"}"#).unwrap();
    b.filter = Some(Filter {
        source: FilterSource::Local(PathBuf::from("/x.wasm")),
        settings,
    });
    let yaml = b.to_yaml();
    assert!(
        yaml.contains(r#"value: "{\"on_miss\":\"pass\"}""#),
        "{yaml}"
    );
    assert_eq!(Filter::parse_settings("").unwrap().len(), 0);
    assert_eq!(
        Filter::parse_settings("[1]"),
        Err(BootstrapError::SettingsNotObject)
    );
    assert!(matches!(
        Filter::parse_settings("{"),
        Err(BootstrapError::BadSettings(_))
    ));
}

#[test]
fn remote_filter_has_its_digest_retries_and_cluster() {
    let mut b = Bootstrap::default();
    let sha = "AB".repeat(32);
    b.filter = Some(Filter {
        source: FilterSource::Remote {
            url: RemoteUrl::parse("http://backend.internal:8081/acme-edge/v1/filter.wasm").unwrap(),
            sha256: Sha256::parse(&sha).unwrap(),
        },
        settings: Default::default(),
    });
    let value = b.to_value();
    let http = &value["static_resources"]["listeners"][0];
    let filter = &http["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0];
    let remote = &filter["typed_config"]["config"]["vm_config"]["code"]["remote"];
    assert_eq!(remote["sha256"], sha.to_ascii_lowercase());
    assert_eq!(remote["http_uri"]["cluster"], "acme_filter_source");
    assert_eq!(remote["retry_policy"]["num_retries"], 5);
    let clusters = value["static_resources"]["clusters"].as_array().unwrap();
    let source = clusters
        .iter()
        .find(|c| c["name"] == "acme_filter_source")
        .unwrap();
    assert_eq!(source["type"], "STRICT_DNS");
    assert_eq!(
        source["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
        json!({"socket_address": {"address": "backend.internal", "port_value": 8081}})
    );
}

#[test]
fn parses_urls_digests_and_upstreams() {
    assert!(RemoteUrl::parse("https://a/x").is_err());
    assert!(RemoteUrl::parse("http://a").is_err());
    assert!(RemoteUrl::parse("http://a/").is_err());
    assert_eq!(RemoteUrl::parse("http://a/f").unwrap().upstream.port, 80);
    assert_eq!(
        RemoteUrl::parse("http://[::1]:9/f").unwrap().upstream.host,
        "::1"
    );
    assert!(Sha256::parse("abc").is_err());
    assert!(Sha256::parse(&"g".repeat(64)).is_err());
    assert_eq!(
        Upstream::parse("[::1]:8081").unwrap(),
        Upstream {
            host: "::1".into(),
            port: 8081
        }
    );
    assert_eq!(Upstream::parse("sds.internal:8082").unwrap().port, 8082);
    for bad in ["x", "a b:1", ":1", "a:99999", "a:"] {
        assert!(Upstream::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn redirect_is_a_runtime_fraction() {
    let mut b = Bootstrap::default();
    b.https_redirect = true;
    let text = b.to_json();
    assert!(text.contains("\"numerator\": 100"), "{text}");
    b.https = None;
    b.https_redirect = false;
    assert!(!b.to_json().contains("https_redirect"));
}

#[test]
fn sds_over_tcp_with_mutual_tls() {
    let mut b = Bootstrap::default();
    b.https = Some(Https {
        listen: Listen::new("::".parse().unwrap(), 443),
        sds: Sds::Tcp {
            upstream: Upstream::parse("sds.internal:8082").unwrap(),
            tls: Some(SdsClientTls {
                chain_file: "/etc/envoy/c.crt".into(),
                key_file: "/etc/envoy/c.key".into(),
                ca_file: "/etc/envoy/ca.crt".into(),
                server_name: "sds.internal".into(),
            }),
        },
    });
    let value = b.to_value();
    let sds = &value["static_resources"]["clusters"][1];
    assert_eq!(sds["type"], "STRICT_DNS");
    let tls = &sds["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], "sds.internal");
    assert_eq!(tls["common_tls_context"]["alpn_protocols"], json!(["h2"]));
}
