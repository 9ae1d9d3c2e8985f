//! The proxy-wasm host-call glue: the only code that talks to Envoy.
//!
//! It calls `proxy_wasm::hostcalls` directly where the SDK's trait helpers would `unwrap` a
//! host error or a non-UTF-8 header (a panic traps the VM for every request on the worker).

use crate::cache;
use crate::counters::Counter;
use crate::outcome::{self, MAX_KEY_AUTHORIZATION_LEN, Outcome};
use crate::reply::Reply;
use crate::request::{Challenge, Verdict, classify};
use crate::settings::{Settings, parse_settings};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Metric ids as returned by `define_metric`; `None` where Envoy refused one (then that
/// counter is simply not counted).
type Metrics = [Option<u32>; Counter::ALL.len()];

#[derive(Default)]
struct Root {
    settings: Rc<Settings>,
    metrics: Rc<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        match parse_settings(&raw) {
            Ok(settings) => {
                self.settings = Rc::new(settings);
                self.metrics = Rc::new(define_metrics());
                true
            }
            Err(errors) => {
                log(
                    LogLevel::Error,
                    &format!("acme-edge: refusing plugin configuration: {errors}"),
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Exchange {
            settings: Rc::clone(&self.settings),
            metrics: Rc::clone(&self.metrics),
            pending: None,
            attempts: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn define_metrics() -> Metrics {
    Counter::ALL.map(|c| hostcalls::define_metric(MetricType::Counter, c.name()).ok())
}

/// One client request through the filter.
struct Exchange {
    settings: Rc<Settings>,
    metrics: Rc<Metrics>,
    /// The challenge being looked up while the request is paused.
    pending: Option<Challenge>,
    /// Lookups sent so far for this request.
    attempts: u8,
}

impl Context for Exchange {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(challenge) = self.pending.take() else {
            return;
        };
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten();
        if outcome::worth_retrying(status.as_deref())
            && self.attempts < outcome::LOOKUP_ATTEMPTS
            && self.dispatch(&challenge).is_ok()
        {
            self.count(Counter::Retries);
            self.pending = Some(challenge);
            return;
        }
        // One byte past the limit is enough to tell an oversized answer from a valid one.
        let wanted = body_size.min(MAX_KEY_AUTHORIZATION_LEN + 1);
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, wanted)
            .ok()
            .flatten();
        let outcome = outcome::decide(&self.settings, status.as_deref(), body.as_deref());
        if let Outcome::Serve(key_authorization) = &outcome {
            self.remember(&challenge, key_authorization);
        }
        self.finish(outcome, true);
    }
}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if !self.settings.enabled {
            return Action::Continue;
        }
        let Some(path) = header(":path") else {
            return Action::Continue;
        };
        let method = header(":method");
        let authority = header(":authority");
        match classify(
            &self.settings.prefix,
            method.as_deref(),
            &path,
            authority.as_deref(),
        ) {
            Verdict::Pass => Action::Continue,
            Verdict::Reject(reply) => {
                self.count(Counter::Handled);
                self.count(Counter::Invalid);
                respond(&reply);
                Action::Pause
            }
            Verdict::Lookup(challenge) => {
                self.count(Counter::Handled);
                self.lookup(challenge)
            }
        }
    }
}

impl Exchange {
    fn lookup(&mut self, challenge: Challenge) -> Action {
        if let Some(key_authorization) = self.cached(&challenge) {
            self.count(Counter::CacheHits);
            self.count(Counter::Served);
            respond(&Reply::found(&key_authorization));
            return Action::Pause;
        }
        match self.dispatch(&challenge) {
            Ok(()) => {
                self.pending = Some(challenge);
                Action::Pause
            }
            Err(status) => {
                log(
                    LogLevel::Warn,
                    &format!(
                        "acme-edge: lookup via cluster {} not sent: {status:?}",
                        self.settings.cluster
                    ),
                );
                let outcome = outcome::error(&self.settings);
                self.finish(outcome, false)
            }
        }
    }

    /// Send the lookup for `challenge` to the backend's cluster.
    fn dispatch(&mut self, challenge: &Challenge) -> Result<(), proxy_wasm::types::Status> {
        let path = acme_edge_contract::lookup_path(&challenge.host, &challenge.token);
        let cluster = self.settings.cluster.as_str();
        let headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", cluster),
        ];
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        self.attempts = self.attempts.saturating_add(1);
        self.dispatch_http_call(cluster, headers, None, vec![], timeout)
            .map(|_| ())
    }

    /// Send the reply or let the request go on. `resume` is set in the call-out callback, where
    /// the request is paused; in the header callback returning `Continue` is enough.
    fn finish(&self, outcome: Outcome, resume: bool) -> Action {
        match outcome {
            Outcome::Serve(key_authorization) => {
                self.count(Counter::Served);
                respond(&Reply::found(&key_authorization));
                Action::Pause
            }
            Outcome::Respond(reply, counter) => {
                self.count(counter);
                respond(&reply);
                Action::Pause
            }
            Outcome::Pass(counter) => {
                self.count(counter);
                self.count(Counter::Passed);
                if resume {
                    let _ = hostcalls::resume_http_request();
                }
                Action::Continue
            }
        }
    }

    fn cached(&self, challenge: &Challenge) -> Option<Vec<u8>> {
        let ttl = self.settings.cache_ttl_ms;
        if ttl == 0 {
            return None;
        }
        let now = now_ms()?;
        let key = cache::slot_key(&self.settings.cluster, &challenge.host, &challenge.token);
        let (value, _cas) = hostcalls::get_shared_data(&key).ok()?;
        cache::lookup(&value?, &challenge.host, &challenge.token, now).map(<[u8]>::to_vec)
    }

    fn remember(&self, challenge: &Challenge, key_authorization: &[u8]) {
        let ttl = self.settings.cache_ttl_ms;
        let Some(now) = now_ms().filter(|_| ttl > 0) else {
            return;
        };
        let key = cache::slot_key(&self.settings.cluster, &challenge.host, &challenge.token);
        let expires = now.saturating_add(ttl);
        if let Some(value) = cache::encode(
            &challenge.host,
            &challenge.token,
            key_authorization,
            expires,
        ) {
            // Last writer wins; a lost race only costs a later backend call.
            let _ = hostcalls::set_shared_data(&key, Some(&value), None);
        }
    }

    fn count(&self, counter: Counter) {
        if let Some(Some(id)) = self.metrics.get(counter.index()) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }
}

fn header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}

fn respond(reply: &Reply) {
    let _ =
        hostcalls::send_http_response(reply.status, reply.headers.clone(), reply.body.as_deref());
}

fn now_ms() -> Option<u64> {
    let now = hostcalls::get_current_time().ok()?;
    let ms = now.duration_since(UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}
