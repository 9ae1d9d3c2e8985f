//! ACME HTTP-01 tokens: RFC 8555 section 8.3 says a token "contains entropy" and uses only
//! the base64url alphabet without padding. We accept 1 to [`MAX_TOKEN_LEN`] such characters.

use core::fmt;

/// Longest token accepted. Real CAs send 43 characters (32 random bytes); 255 leaves room for
/// any CA while bounding what a client can make us look up.
pub const MAX_TOKEN_LEN: usize = 255;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Empty,
    TooLong,
    /// A character outside `A-Z a-z 0-9 - _`.
    BadCharacter,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Empty => "empty token",
            TokenError::TooLong => "token longer than 255 characters",
            TokenError::BadCharacter => "token has a character outside the base64url alphabet",
        })
    }
}

impl std::error::Error for TokenError {}

/// Check that `token` is 1 to 255 characters of the base64url alphabet.
pub fn validate_token(token: &str) -> Result<&str, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    if !token.bytes().all(is_base64url) {
        return Err(TokenError::BadCharacter);
    }
    Ok(token)
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_real_tokens() {
        let t = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
        assert_eq!(validate_token(t), Ok(t));
        assert_eq!(validate_token("a"), Ok("a"));
    }

    #[test]
    fn refuses_bad_tokens() {
        assert_eq!(validate_token(""), Err(TokenError::Empty));
        assert_eq!(validate_token("a/b"), Err(TokenError::BadCharacter));
        assert_eq!(validate_token("a=="), Err(TokenError::BadCharacter));
        assert_eq!(validate_token("..%2f"), Err(TokenError::BadCharacter));
        assert_eq!(validate_token(&"a".repeat(256)), Err(TokenError::TooLong));
        assert!(validate_token(&"a".repeat(255)).is_ok());
    }

    proptest! {
        #[test]
        fn base64url_strings_are_accepted(t in "[A-Za-z0-9_-]{1,255}") {
            prop_assert_eq!(validate_token(&t), Ok(t.as_str()));
        }

        #[test]
        fn never_panics_and_accepts_only_the_alphabet(t in any::<String>()) {
            if validate_token(&t).is_ok() {
                prop_assert!(!t.is_empty() && t.len() <= MAX_TOKEN_LEN);
                prop_assert!(t.bytes().all(is_base64url));
            }
        }
    }
}
