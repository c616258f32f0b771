//! Turning SIGTERM and SIGINT into a cancellation every part of the process can watch.

use tokio_util::sync::CancellationToken;

/// Completes on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("received SIGTERM"),
                    _ = int.recv() => tracing::info!("received SIGINT"),
                }
                return;
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "cannot watch unix signals, falling back to ctrl-c");
            }
        }
    }
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "cannot watch ctrl-c; shut down with SIGKILL");
        std::future::pending::<()>().await;
    }
}

/// Cancels `token` on the first SIGTERM or SIGINT; a second one, while the graceful shutdown
/// is still draining, exits the process at once (code 130) for an operator who will not wait.
pub async fn cancel_on_signal(token: CancellationToken) {
    tokio::select! {
        () = signal() => token.cancel(),
        () = token.cancelled() => return,
    }
    signal().await;
    tracing::warn!("second signal: exiting without waiting for the shutdown to finish");
    std::process::exit(130);
}
