//! One request to the CA: bounded in time, and sent again while the CA refuses its nonce.
//!
//! instant-acme sets no timeout of its own, so every request goes through [`bounded`]: a CA
//! that stops answering fails the attempt instead of hanging a job.

use std::future::Future;
use std::time::Duration;

use super::AcmeError;

/// Rounds of a request the CA keeps answering with `badNonce` (RFC 8555 §6.5: retry with
/// the nonce from the error). instant-acme already tries each request three times with the
/// fresh nonce; this many rounds of that make 12 tries, so that even a CA refusing 30 % of
/// nonces fails a request this way about once in two million.
pub const BAD_NONCE_ROUNDS: u32 = 4;

/// [`bounded`] request, made again while the CA refuses its nonce, up to
/// [`BAD_NONCE_ROUNDS`] rounds. The request expression is evaluated anew each round (a
/// refused request did nothing at the CA, so sending it again is safe).
macro_rules! retrying_bad_nonce {
    ($limit:expr, $step:expr, $request:expr) => {{
        let mut round = 1;
        loop {
            match $crate::acme::request::bounded($limit, $step, $request).await {
                Err(e) if e.is_bad_nonce() && round < $crate::acme::request::BAD_NONCE_ROUNDS => {
                    tracing::debug!(step = $step, round, "the CA refused our nonce; again");
                    round += 1;
                }
                other => break other,
            }
        }
    }};
}

/// Run one request to the CA with a time limit.
pub(crate) async fn bounded<T>(
    limit: Duration,
    step: &'static str,
    request: impl Future<Output = Result<T, instant_acme::Error>>,
) -> Result<T, AcmeError> {
    match tokio::time::timeout(limit, request).await {
        Ok(result) => result.map_err(|e| AcmeError::client(step, e)),
        Err(_) => Err(AcmeError::Timeout { step, limit }),
    }
}
