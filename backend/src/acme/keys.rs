//! Fresh private keys for certificates, one per issuance.
//!
//! rcgen's ring backend signs with RSA keys but cannot generate them, so RSA keys come from
//! the `rsa` crate and are handed to rcgen as PKCS#8.

use rcgen::KeyPair;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use crate::model::KeyType;

/// Key generation failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("generating an RSA key: {0}")]
    Rsa(#[from] rsa::Error),
    #[error("encoding an RSA key: {0}")]
    Pkcs8(#[from] rsa::pkcs8::Error),
    #[error("key pair: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// Generate a key of `key_type`. RSA generation takes from milliseconds to seconds, so call
/// this off the async executor ([`generate_blocking`]).
pub fn generate(key_type: KeyType) -> Result<KeyPair, KeyError> {
    match key_type {
        KeyType::EcdsaP256 => Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?),
        KeyType::EcdsaP384 => Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?),
        KeyType::Rsa2048 => rsa_key(2048),
        KeyType::Rsa3072 => rsa_key(3072),
        KeyType::Rsa4096 => rsa_key(4096),
    }
}

/// [`generate`] on the blocking thread pool.
pub async fn generate_blocking(key_type: KeyType) -> Result<KeyPair, KeyError> {
    match tokio::task::spawn_blocking(move || generate(key_type)).await {
        Ok(result) => result,
        // The closure does not panic on any input; a join error means the runtime is
        // shutting down, and generating inline is still correct.
        Err(_) => generate(key_type),
    }
}

fn rsa_key(bits: usize) -> Result<KeyPair, KeyError> {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)?;
    let pem = key.to_pkcs8_pem(LineEnding::LF)?;
    Ok(KeyPair::from_pkcs8_pem_and_sign_algo(
        &pem,
        &rcgen::PKCS_RSA_SHA256,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_for(key: &KeyPair) -> Vec<u8> {
        let params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        params.serialize_request(key).unwrap().der().to_vec()
    }

    #[test]
    fn every_key_type_signs_a_csr() {
        // RSA 3072/4096 take seconds in debug builds; 2048 covers the RSA path.
        for key_type in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let key = generate(key_type).unwrap();
            assert!(
                key.serialize_pem()
                    .starts_with("-----BEGIN PRIVATE KEY-----")
            );
            let csr = csr_for(&key);
            use x509_parser::prelude::FromDer;
            let parsed =
                x509_parser::certification_request::X509CertificationRequest::from_der(&csr);
            assert!(parsed.is_ok(), "{key_type}: CSR does not parse");
        }
    }

    #[test]
    fn keys_are_fresh() {
        let a = generate(KeyType::EcdsaP256).unwrap().serialize_pem();
        let b = generate(KeyType::EcdsaP256).unwrap().serialize_pem();
        assert_ne!(a, b);
    }
}
