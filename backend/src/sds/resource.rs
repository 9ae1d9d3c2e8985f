//! A served certificate as the SDS resource Envoy expects: a `Secret` holding a
//! `TlsCertificate` with inline PEM bytes, packed into a protobuf `Any`.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    Secret, TlsCertificate, secret,
};
use envoy_types::pb::envoy::service::discovery::v3::Resource;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use crate::certs::ServedCertificate;

/// The type URL of every resource this server sends.
pub const SECRET_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The secret `name` (exactly as Envoy asked for it) holding `cert`.
pub fn secret(name: &str, cert: &ServedCertificate) -> Secret {
    let inline = |pem: &str| DataSource {
        specifier: Some(Specifier::InlineBytes(pem.as_bytes().to_vec())),
        ..Default::default()
    };
    Secret {
        name: name.to_owned(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(&cert.chain_pem)),
            private_key: Some(inline(&cert.key_pem)),
            ..Default::default()
        })),
    }
}

/// [`secret()`] packed for a state-of-the-world response.
pub fn secret_any(name: &str, cert: &ServedCertificate) -> Any {
    Any {
        type_url: SECRET_TYPE_URL.to_owned(),
        value: secret(name, cert).encode_to_vec(),
    }
}

/// [`secret()`] wrapped for an incremental (delta) response.
pub fn delta_resource(name: &str, cert: &ServedCertificate) -> Resource {
    Resource {
        name: name.to_owned(),
        version: cert.version.clone(),
        resource: Some(secret_any(name, cert)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_any() {
        let cert = ServedCertificate {
            name: "example.com".into(),
            chain_pem: "CHAIN".into(),
            key_pem: "KEY".into(),
            version: "v1".into(),
        };
        let resource = delta_resource("Example.com", &cert);
        assert_eq!(resource.name, "Example.com");
        assert_eq!(resource.version, "v1");
        let any = resource.resource.unwrap_or_default();
        assert_eq!(any.type_url, SECRET_TYPE_URL);
        let decoded = Secret::decode(any.value.as_slice()).unwrap_or_default();
        assert_eq!(decoded, secret("Example.com", &cert));
        let Some(secret::Type::TlsCertificate(tls)) = decoded.r#type else {
            panic!("not a TLS certificate: {decoded:?}");
        };
        let bytes = |d: Option<DataSource>| match d.and_then(|d| d.specifier) {
            Some(Specifier::InlineBytes(b)) => b,
            other => panic!("not inline bytes: {other:?}"),
        };
        assert_eq!(bytes(tls.certificate_chain), b"CHAIN");
        assert_eq!(bytes(tls.private_key), b"KEY");
    }
}
