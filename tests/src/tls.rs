//! TLS clients for the tests: rustls (ring) trusting only the roots a test names.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls::AlertDescription;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Every certificate in a PEM text, DER-encoded.
pub fn pem_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>();
    certs.context("malformed PEM")
}

/// A TLS client (no client certificate) trusting `roots` only.
pub fn client(roots: rustls::RootCertStore) -> Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A TLS client trusting only the certificates in `pem`.
pub fn client_trusting(pem: &str) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for root in pem_certificates(pem)? {
        roots.add(root)?;
    }
    client(roots)
}

/// Handshake with `client` at `addr`, naming `sni` (SNI and server name), within `limit`, and
/// return the leaf presented (DER). rustls verifies the chain against the client's roots and
/// the leaf's SAN against `sni`.
pub async fn handshake_within(
    client: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
    limit: Duration,
) -> Result<Vec<u8>> {
    let name = ServerName::try_from(sni.to_owned())?;
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        client.connect(name, tcp).await
    };
    let tls = tokio::time::timeout(limit, connect)
        .await
        .with_context(|| format!("handshake for {sni} still pending after {limit:?}"))?
        .with_context(|| format!("handshake for {sni} failed"))?;
    let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
    Ok(leaf.context("no certificate presented")?.to_vec())
}

/// Succeeds when the server at `addr` (a mutual-TLS listener, named `server_name`) refuses
/// `client`, which presents no certificate, with the `certificate_required` alert (TLS 1.3,
/// alert 116) within `limit`; fails if it answers, hangs or refuses in any other way.
///
/// A TLS 1.3 client finishes its handshake before the server has read its (empty)
/// certificate, so the alert comes on the first read. The client sends the HTTP/2 preface
/// first, so a gRPC server that wrongly accepted it would answer.
pub async fn refuses_without_client_certificate(
    client: &TlsConnector,
    addr: SocketAddr,
    server_name: &str,
    limit: Duration,
) -> Result<()> {
    let name = ServerName::try_from(server_name.to_owned())?;
    let attempt = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = client.connect(name, tcp).await?;
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        let mut buf = [0u8; 64];
        tls.read(&mut buf).await
    };
    let outcome = tokio::time::timeout(limit, attempt)
        .await
        .with_context(|| format!("{addr} left a client without a certificate hanging"))?;
    match outcome {
        Err(e) if alert_received(&e) == Some(AlertDescription::CertificateRequired) => Ok(()),
        Err(e) => bail!(
            "{addr} refused a client without a certificate, but not with certificate_required: {e}"
        ),
        Ok(n) => bail!("{addr} answered a client without a certificate ({n} bytes)"),
    }
}

/// The alert the peer sent, when `e` is rustls reporting one.
fn alert_received(e: &io::Error) -> Option<AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ca::{TestCa, Usage};
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    use rustls::server::WebPkiClientVerifier;
    use tokio_rustls::TlsAcceptor;

    const LIMIT: Duration = Duration::from_secs(10);

    /// A TLS server on a free port that asks for a client certificate (`required`: refusing
    /// clients without one) and closes each connection after its handshake.
    async fn server(ca: &TestCa, required: bool) -> SocketAddr {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(pem_certificates(ca.root_pem()).unwrap());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let verifier = if required {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let leaf = ca.issue_for(&["server.test"], Usage::Server).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier.build().unwrap())
            .with_single_cert(
                pem_certificates(&leaf.chain_pem).unwrap(),
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"welcome").await;
                    let _ = tls.shutdown().await;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn certificate_required_is_told_from_an_answer() {
        let ca = TestCa::new("acme-edge test CA").unwrap();
        let client = ca.client().unwrap();
        let strict = server(&ca, true).await;
        refuses_without_client_certificate(&client, strict, "server.test", LIMIT)
            .await
            .unwrap();
        let lenient = server(&ca, false).await;
        let answered = refuses_without_client_certificate(&client, lenient, "server.test", LIMIT)
            .await
            .unwrap_err();
        assert!(answered.to_string().contains("answered"), "{answered:#}");
    }
}
