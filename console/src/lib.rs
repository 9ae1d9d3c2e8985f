//! The acme-edge web console: a single-page application, compiled to wasm32-unknown-unknown
//! and bound to the browser with wasm-bindgen and web-sys, served by the backend at
//! `/console/` on the admin listener. The admin API (`/v1/`) is its only data source.
//!
//! Every piece of text that comes from outside (names, CA problem documents, error messages)
//! reaches the page through `textContent` ([`dom::text`]), never as HTML: nothing the CA or an
//! operator typed can become markup or script.
//!
//! # Layout
//!
//! - [`json`]: the API's JSON shapes.
//! - [`api`]: requests with the bearer token; errors with the API's reason.
//! - [`dom`]: element builders (text only) and the page's fixed regions.
//! - [`sse`]: the server-sent events parser (pure; tested on the host).
//! - [`format`](mod@format): dates and durations for people (pure; tested on the host).
//! - [`live`]: `/v1/events` read through `fetch`, polling while the stream is down.
//! - [`session`]: the admin token, the signed-in [`api::Api`], signing in and out.
//! - [`route`]: the console's pages, in `location.hash`.
//! - [`app`]: the page's frame, the view of each route, the event dispatch; it wires the
//!   session, the views and the live updates together.
//! - [`views`]: sign-in, domain list, enable, domain page, overview.
//!
//! Imports go one way: [`app`] uses the views, [`live`] and the session; the views use the
//! session, the route and the leaf modules (`api`, `dom`, `format`, `json`). [`live`] knows
//! neither the views nor the app: the app hands it a [`live::Page`] to apply events to, and
//! the session tells the app of a sign-in or sign-out through the function the app registers.

pub mod api;
pub mod app;
pub mod dom;
pub mod format;
pub mod json;
pub mod live;
pub mod route;
pub mod session;
pub mod sse;
pub mod views;

use wasm_bindgen::prelude::wasm_bindgen;

/// Entry point, run by the wasm-bindgen glue when the module is instantiated (`boot.js`
/// loads it: the Content-Security-Policy allows no inline script).
#[wasm_bindgen(start)]
pub fn start() {
    app::start();
}
