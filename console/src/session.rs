//! The session: the admin token (kept in `sessionStorage` for the tab's lifetime), the
//! [`Api`] that sends it, and a generation number that tells background work whether the
//! session it started in is still the current one.
//!
//! Signing in and out changes what the page shows, but this module knows no page: the app
//! registers what to do with [`on_change`], and views and live updates call [`sign_in`] and
//! [`sign_out`] without depending on the app.

use std::cell::{Cell, RefCell};

use crate::api::Api;

/// Where the token lives for the tab's lifetime: not in a cookie, not in a URL.
const TOKEN_KEY: &str = "acme-edge-admin-token";

#[derive(Default)]
struct Session {
    api: Option<Api>,
    /// Bumped at every sign-in and sign-out: background loops of an older session stop.
    generation: u64,
}

/// A session began or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// Signed in ([`api`] and [`generation`] are the new session's).
    SignedIn,
    /// Signed out; the message, if any, says why (a refused token).
    SignedOut(Option<&'a str>),
}

thread_local! {
    static SESSION: RefCell<Session> = RefCell::new(Session::default());
    static ON_CHANGE: Cell<Option<fn(Change<'_>)>> = const { Cell::new(None) };
}

/// The signed-in API, if any.
pub fn api() -> Option<Api> {
    SESSION.with(|s| s.borrow().api.clone())
}

/// The current session's number: work started under another number belongs to a session
/// that has ended and must stop.
pub fn generation() -> u64 {
    SESSION.with(|s| s.borrow().generation)
}

/// What to do once a session begins or ends (the app re-renders; set once, at start).
pub fn on_change(f: fn(Change<'_>)) {
    ON_CHANGE.with(|c| c.set(Some(f)));
}

fn changed(change: Change<'_>) {
    // Called with no borrow of the session held: the page reads it again to render.
    if let Some(f) = ON_CHANGE.with(Cell::get) {
        f(change);
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.session_storage().ok().flatten())
}

/// The token kept by an earlier page load in this tab, if any.
pub fn stored_token() -> Option<String> {
    storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten())
}

/// Keep the token for this tab and begin a new session.
pub fn sign_in(api: Api) {
    if let Some(s) = storage() {
        let _ = s.set_item(TOKEN_KEY, api.token());
    }
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        s.api = Some(api);
        s.generation += 1;
    });
    changed(Change::SignedIn);
}

/// Forget the token and end the session; `message` says why, if there is a reason to give.
pub fn sign_out(message: Option<&str>) {
    if let Some(s) = storage() {
        let _ = s.remove_item(TOKEN_KEY);
    }
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        s.api = None;
        s.generation += 1;
    });
    changed(Change::SignedOut(message));
}
