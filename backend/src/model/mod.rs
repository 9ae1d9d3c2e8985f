//! The core domain model: what every layer (configuration, store, CA client, worker, API, CLI)
//! speaks, and none of them owns. Nothing here imports another module of the crate.
//!
//! - [`name`]: domain names as operators enable them, validated once ([`DomainName`]).
//! - [`state`]: where a domain is in its life cycle ([`DomainState`]).
//! - [`key_type`]: the kind of private key of a domain's certificates ([`KeyType`]).
//! - [`domain`]: a managed domain ([`Domain`]) and its last failure ([`LastError`]).
//! - [`profile`]: certificate profile names ([`is_profile_name`]).
//!
//! The value types carry their one spelling (`as_str`, serde), shared by the database, the
//! configuration and the API's JSON, which the API builds from these types.

pub mod domain;
pub mod key_type;
pub mod name;
pub mod profile;
pub mod state;

pub use domain::{Domain, FailureClass, LastError};
pub use key_type::KeyType;
pub use name::{DomainError, DomainName, registered_domain};
pub use profile::is_profile_name;
pub use state::DomainState;
