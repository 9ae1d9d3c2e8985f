//! Values from the configuration that must never reach a log: the admin token, the External
//! Account Binding key, a database URL that may carry a password.

use serde::Deserialize;

/// A secret value: `Debug` and `Display` print `<redacted>`, whatever it holds, so a
/// configuration can be logged whole. [`Secret::expose`] hands the value to the one place
/// that uses it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The value itself: keep it out of logs and error messages.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
