//! The ACME directories the configuration knows by name: what `acme.directory_url`'s
//! shortcuts stand for ([`super::acme`]) and which limits a directory's CA has
//! ([`super::ca_limits`]).

/// Let's Encrypt's production directory (`directory_url = "letsencrypt"`).
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`directory_url = "letsencrypt-staging"`): untrusted
/// certificates, generous rate limits; use it to try a set-up.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
