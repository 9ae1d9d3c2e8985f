//! What every view does alike: report a request that failed. A leaf: it knows the session
//! and the page's status region, no view.

use crate::api::ApiError;
use crate::dom;
use crate::session;

/// Report a failed request: sign out on 401 (the token was revoked or changed: nothing else
/// will work), else say it in the live region.
pub fn report(e: &ApiError) {
    if e.status() == Some(401) {
        session::sign_out(Some("The admin API refused the token; sign in again."));
    } else {
        dom::status(&e.to_string());
    }
}
