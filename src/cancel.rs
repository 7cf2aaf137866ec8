//! Cancellation on Ctrl-C (SIGINT) and SIGTERM, shared by every worker thread.
//!
//! `main` calls [`install_signal_handlers`] on its runtime; long waits (a COPY
//! stream, a lock) race against [`cancelled`] so a stalled server cannot keep
//! a run from stopping. What was written is then rolled back by the callers.

use std::sync::LazyLock;

use tokio::sync::watch;

static CANCEL: LazyLock<watch::Sender<Option<&'static str>>> =
    LazyLock::new(|| watch::channel(None).0);

/// Asks every worker to stop; `signal` names why (`SIGINT`, `SIGTERM`).
pub fn trigger(signal: &'static str) {
    CANCEL.send_replace(Some(signal));
}

/// The signal that cancelled the run, if any.
pub fn reason() -> Option<&'static str> {
    *CANCEL.borrow()
}

/// Resolves once the run is cancelled, with the signal's name.
pub async fn cancelled() -> &'static str {
    let mut rx = CANCEL.subscribe();
    match rx.wait_for(|v| v.is_some()).await {
        Ok(v) => v.unwrap_or("a signal"),
        // The sender is static and never dropped; wait forever to be safe.
        Err(_) => std::future::pending().await,
    }
}

/// Registers SIGINT and SIGTERM handlers on the current runtime. Must be
/// called from inside a runtime; handlers are in place when this returns.
///
/// # Errors
/// The OS refused to install a handler.
pub fn install_signal_handlers() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => trigger("SIGINT"),
            _ = term.recv() => trigger("SIGTERM"),
        }
    });
    Ok(())
}
