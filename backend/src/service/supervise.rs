//! The service's components run as tasks until shutdown. One that ends before shutdown (an
//! error, a panic, or a return nobody asked for) stops the whole service: the others drain,
//! and [`supervise`] names the component, so the process exits non-zero, says why, and its
//! service manager restarts it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A component's work: runs until the stop token is cancelled; `Err` says why it could not.
pub type Work = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A component stopped while the service was running.
#[derive(Debug, thiserror::Error)]
#[error("{component} failed: {reason}")]
pub struct ComponentFailed {
    pub component: &'static str,
    pub reason: String,
}

/// Run every component until all have ended. The first to end before `stop` is cancelled
/// cancels it (the others drain) and is returned.
pub async fn supervise(
    components: Vec<(&'static str, Work)>,
    stop: CancellationToken,
) -> Result<(), ComponentFailed> {
    let mut tasks = JoinSet::new();
    let mut names = HashMap::new();
    for (name, work) in components {
        let handle = tasks.spawn(work);
        names.insert(handle.id(), name);
    }
    let mut failure = None;
    while let Some(ended) = tasks.join_next_with_id().await {
        let (id, outcome) = match ended {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => (e.id(), Err(panic_reason(e))),
        };
        let component = names.get(&id).copied().unwrap_or("a component");
        let reason = match outcome {
            Err(reason) => reason,
            Ok(()) if stop.is_cancelled() => continue,
            Ok(()) => "ended before shutdown".to_owned(),
        };
        tracing::error!(component, error = %reason, "component failed; stopping the service");
        stop.cancel();
        failure.get_or_insert(ComponentFailed { component, reason });
    }
    failure.map_or(Ok(()), Err)
}

fn panic_reason(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "cancelled".to_owned();
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    format!("panicked: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until_stopped(stop: &CancellationToken) -> Work {
        let stop = stop.clone();
        Box::pin(async move {
            stop.cancelled().await;
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_failing_component_stops_the_others_and_is_named() {
        let stop = CancellationToken::new();
        let components: Vec<(&'static str, Work)> = vec![
            ("admin API", until_stopped(&stop)),
            (
                "SDS server",
                Box::pin(async { Err("socket gone".to_owned()) }),
            ),
            ("worker", until_stopped(&stop)),
        ];
        let failed = supervise(components, stop.clone()).await.unwrap_err();
        assert_eq!(failed.component, "SDS server");
        assert_eq!(failed.reason, "socket gone");
        assert!(stop.is_cancelled(), "the others were told to stop");
    }

    #[tokio::test]
    async fn a_panic_or_an_early_return_is_a_failure() {
        let stop = CancellationToken::new();
        let components: Vec<(&'static str, Work)> =
            vec![("worker", Box::pin(async { panic!("broken on purpose") }))];
        let failed = supervise(components, stop).await.unwrap_err();
        assert_eq!(failed.component, "worker");
        assert!(failed.reason.contains("panicked: broken on purpose"));

        let stop = CancellationToken::new();
        let components: Vec<(&'static str, Work)> =
            vec![("ARI refresh", Box::pin(async { Ok(()) }))];
        let failed = supervise(components, stop).await.unwrap_err();
        assert_eq!(failed.reason, "ended before shutdown");
    }

    #[tokio::test]
    async fn shutdown_is_not_a_failure() {
        let stop = CancellationToken::new();
        let components = vec![
            ("admin API", until_stopped(&stop)),
            ("worker", until_stopped(&stop)),
        ];
        stop.cancel();
        assert!(supervise(components, stop).await.is_ok());
    }
}
