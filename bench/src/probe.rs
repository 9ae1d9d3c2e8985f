//! What the in-process SDS server did, and when, for `bench cold`: its histograms
//! (`acme_edge_sds_*_seconds`, captured by a metrics recorder) and the moments Envoy opened
//! a stream and asked for a name (seen through the certificate source it reads).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use acme_edge::certs::{CertEvent, CertificateSource, ServedCertificate, SourceError};
use async_trait::async_trait;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tokio::sync::broadcast;

/// Every histogram sample recorded in this process, by metric name, in order.
#[derive(Clone, Default)]
pub struct Samples(Arc<Mutex<HashMap<String, Vec<f64>>>>);

impl Samples {
    /// Capture this process's metrics from now on (once per process).
    pub fn install() -> anyhow::Result<Samples> {
        let samples = Samples::default();
        metrics::set_global_recorder(Capture(samples.clone()))
            .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
        Ok(samples)
    }

    /// The samples of `name` recorded since the last call, in seconds.
    pub fn take(&self, name: &str) -> Vec<f64> {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.get_mut(name).map(std::mem::take).unwrap_or_default()
    }

    fn push(&self, name: &str, value: f64) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry(name.to_owned()).or_default().push(value);
    }
}

struct Capture(Samples);

struct Series {
    name: String,
    samples: Samples,
}

impl HistogramFn for Series {
    fn record(&self, value: f64) {
        self.samples.push(&self.name, value);
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Series {
            name: key.name().to_owned(),
            samples: self.0.clone(),
        }))
    }
}

/// A certificate source that notes when the server uses it: a new stream subscribes to its
/// announcements before anything else, and a subscription request looks its name up.
pub struct TimedSource {
    inner: Arc<dyn CertificateSource>,
    moments: Mutex<Moments>,
}

/// When streams were opened and names looked up, since the last [`TimedSource::take`].
#[derive(Debug, Default)]
pub struct Moments {
    pub opened: Vec<Instant>,
    pub looked_up: Vec<Instant>,
}

impl TimedSource {
    pub fn new(inner: Arc<dyn CertificateSource>) -> Self {
        TimedSource {
            inner,
            moments: Mutex::default(),
        }
    }

    pub fn take(&self) -> Moments {
        std::mem::take(&mut *self.moments.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn note(&self, what: impl FnOnce(&mut Moments) -> &mut Vec<Instant>) {
        let mut moments = self.moments.lock().unwrap_or_else(PoisonError::into_inner);
        what(&mut moments).push(Instant::now());
    }
}

#[async_trait]
impl CertificateSource for TimedSource {
    async fn certificate(&self, name: &str) -> Result<Option<ServedCertificate>, SourceError> {
        self.note(|m| &mut m.looked_up);
        self.inner.certificate(name).await
    }

    fn subscribe(&self) -> broadcast::Receiver<CertEvent> {
        self.note(|m| &mut m.opened);
        self.inner.subscribe()
    }
}
