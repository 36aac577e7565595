//! How long work in flight may go on after the run was told to stop: a period (the first Ctrl-C
//! or SIGTERM lets calls finish within it), which a second signal cuts short. Cut short, calls
//! still in flight are abandoned at once, but everything already answered is still written:
//! the writer flushes before `run` returns, so no paid answer is lost to an impatient user.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub(crate) struct Grace {
    pub period: Duration,
    /// Cancelled: the period is over now.
    pub abort: CancellationToken,
}

impl Grace {
    /// When a grace period that starts now ends.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.period
    }

    /// Waits until `deadline` (never, when None) or until the period is cut short.
    pub(crate) async fn until(&self, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            return std::future::pending().await;
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = self.abort.cancelled() => {}
        }
    }
}
