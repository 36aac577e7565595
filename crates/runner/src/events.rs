//! What a run tells the outside world while it works: the [`Event`]s the runner sends on its
//! channel, and the small [`Emitter`] that sends them without ever stalling the run.
//!
//! This module decides nothing and draws nothing. Progress events carry absolute counts, so a
//! slow listener may miss some of them without being misled; every other event is delivered.

use std::time::Duration;

use domain::{ArmKind, RunStatus};
use tokio::sync::mpsc;

/// One arm as a run starts it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmStart {
    pub arm: String,
    pub kind: ArmKind,
    /// Eval items this arm answers in the run.
    pub total: u64,
    /// Items already answered by an earlier invocation of the same run (resume).
    pub done: u64,
}

/// Something the run wants the user to know. Only the CLI turns these into pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run exists in the store and is about to answer items.
    RunStarted {
        run_id: i64,
        /// An unfinished run with the same spec was picked up again.
        resumed: bool,
        arms: Vec<ArmStart>,
    },
    /// Absolute progress of one arm. `cost_usd` is what this invocation spent on the arm.
    ArmProgress {
        arm: String,
        done: u64,
        total: u64,
        cost_usd: f64,
        errors: u64,
    },
    /// One item of one arm failed for good (after the provider's retries). The run goes on.
    CallFailed {
        arm: String,
        item: String,
        error: String,
    },
    /// A one-line remark: a skipped provider, a model being fetched, the budget reached.
    Note(String),
    /// A local model is being fetched into the cache.
    ModelDownload {
        model: String,
        done: u64,
        total: Option<u64>,
    },
    /// One optimizer step of a fine-tune arm.
    TrainProgress {
        arm: String,
        step: u64,
        total_steps: u64,
        loss: f64,
        tokens_per_second: f64,
        eta: Option<Duration>,
    },
    /// The run stopped; nothing more follows.
    RunFinished {
        status: RunStatus,
        failed_items: u64,
        spent: f64,
    },
}

/// The sending side of the event channel. A closed channel is not an error: the run does not
/// depend on anyone listening.
#[derive(Clone)]
pub(crate) struct Emitter {
    tx: mpsc::Sender<Event>,
}

impl Emitter {
    pub(crate) fn new(tx: mpsc::Sender<Event>) -> Self {
        Self { tx }
    }

    /// Delivers an event that must not be lost, waiting for room in the channel.
    pub(crate) async fn send(&self, event: Event) {
        let _ = self.tx.send(event).await;
    }

    /// Delivers an event from a thread outside the async runtime.
    pub(crate) fn send_blocking(&self, event: Event) {
        let _ = self.tx.blocking_send(event);
    }

    /// Delivers a progress event if there is room; a dropped one is superseded by the next.
    pub(crate) fn progress(&self, event: Event) {
        let _ = self.tx.try_send(event);
    }

    pub(crate) async fn note(&self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!(note = %text, "note");
        self.send(Event::Note(text)).await;
    }
}
