//! The one shutdown signal: SIGTERM or SIGINT (Ctrl-C). `run` takes any future,
//! so tests pass their own and production passes [`signal`].

use std::future::Future;

/// Resolves on the first SIGTERM or SIGINT after this call.
///
/// The handlers are installed here, when the future is made, not when it is
/// first polled: `run` polls it only once it is serving, and a SIGTERM in
/// between (a pod stopped right after it started) would otherwise meet the
/// default action and kill the process without a drain. Call it before
/// anything the signal should find drainable, inside the runtime.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("received SIGTERM"),
                        _ = int.recv() => tracing::info!("received SIGINT"),
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop the gateway");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
