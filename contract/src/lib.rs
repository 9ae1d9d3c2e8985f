//! The contract between the acme-edge challenge filter (inside Envoy) and the backend.
//!
//! # Layout
//!
//! - [`lookup`]: the one HTTP request the filter sends to the backend per challenge, and how
//!   the backend reads it back. The backend owns the path; this module is its only definition.
//! - [`host`]: turning an HTTP `:authority` into the normalised host a challenge is stored
//!   under (lower case, no port, no trailing dot, a DNS name or an IP literal).
//! - [`token`]: the shape of an ACME HTTP-01 token (RFC 8555 section 8.3: base64url).
//!
//! Everything here is pure, allocation-light and total: no input panics. It is compiled into
//! the wasm filter (where a panic traps the VM) and into the backend.

#![forbid(unsafe_code)]
// A panic traps the filter's wasm VM, which compiles this crate in, so nothing outside tests may
// panic (clippy.toml exempts tests).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::string_slice
)]

pub mod host;
pub mod lookup;
pub mod token;

pub use host::{HostError, MAX_LABEL_LEN, MAX_NAME_LEN, check_label, normalize_host};
pub use lookup::{LOOKUP_PREFIX, is_normal_host, lookup_path, parse_lookup_path};
pub use token::{MAX_TOKEN_LEN, TokenError, validate_token};

/// The path prefix under which ACME CAs fetch HTTP-01 challenges (RFC 8555 section 8.3).
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
