//! Ctrl-C and SIGTERM: listened for from the first instant, handed to whichever prompt runs.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first Ctrl-C or SIGTERM; one listener for the process's whole life, so
/// no signal is missed between commands.
pub fn cancel_on_signal(token: CancellationToken) {
    on_signals(token, None);
}

/// Signal listeners registered at startup, before anything is printed: a signal that comes
/// before the prompt is ready is then kept for it, instead of killing the process.
static SIGNALS: std::sync::Mutex<Option<Signals>> = std::sync::Mutex::new(None);

/// Ctrl-C (SIGINT) and SIGTERM, as streams that keep what arrives until it is read.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Option<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let interrupt = signal(SignalKind::interrupt()).ok()?;
            let terminate = signal(SignalKind::terminate()).ok()?;
            Some(Signals { interrupt, terminate })
        }
        #[cfg(not(unix))]
        {
            Some(Signals {})
        }
    }

    /// The next signal: `true` for SIGTERM, `false` for Ctrl-C.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => true,
                _ = self.interrupt.recv() => false,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            false
        }
    }
}

/// Starts listening for Ctrl-C and SIGTERM; call first thing, inside the runtime.
pub fn install_signals() {
    let mut slot = SIGNALS.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Signals::new();
    }
}

/// Until `shutdown` is cancelled: SIGTERM cancels it; Ctrl-C (SIGINT) wakes `interrupt` if
/// given (to cancel what runs, not the program), else cancels `shutdown` too.
pub fn on_signals(shutdown: CancellationToken, interrupt: Option<Arc<Notify>>) {
    let taken = SIGNALS.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(mut signals) = taken.or_else(Signals::new) else { return };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                terminate = signals.next() => match (terminate, &interrupt) {
                    (false, Some(interrupt)) => interrupt.notify_one(),
                    _ => {
                        shutdown.cancel();
                        break;
                    }
                },
            }
        }
        // Hand the listeners back, so a later prompt (or a second one) still hears signals.
        *SIGNALS.lock().unwrap_or_else(|p| p.into_inner()) = Some(signals);
    });
}
