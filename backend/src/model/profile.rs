//! Certificate profile names (`classic`, `tlsserver`, `shortlived`: what a CA lists in its
//! directory and a new order may ask for), checked the same way in the configuration
//! (`acme.profile`) and the API (a domain's own).

/// Longest profile name: they are single words; the bound keeps what we send to the CA and
/// log small.
pub const MAX_PROFILE_LEN: usize = 64;

/// A name a CA could list: 1 to [`MAX_PROFILE_LEN`] ASCII letters, digits, `.`, `_`, `-`.
pub fn is_profile_name(name: &str) -> bool {
    (1..=MAX_PROFILE_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What a profile name must be, for error messages.
pub const PROFILE_RULE: &str =
    "a profile name the CA lists: 1 to 64 letters, digits, '.', '_' or '-'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_are_single_words() {
        for ok in ["classic", "tlsserver", "shortlived", "v1.2_x-y"] {
            assert!(is_profile_name(ok), "{ok}");
        }
        for bad in ["", "short lived", "a/b", "é", &"x".repeat(65)] {
            assert!(!is_profile_name(bad), "{bad}");
        }
    }
}
