//! The single writer: every answered item of every arm goes through one task that batches
//! records into `store.write_batch` (one transaction per batch), so a 10,000-item run costs tens
//! of transactions, not ten thousand, and no two writers ever contend for SQLite's lock.
//!
//! It is not a cache or a queue of work: a record sent here is already final. A write that fails
//! stops the run (through the `stop` token) and is reported when the writer is finished. Once a
//! batch is committed its cache entries are dropped from [`Unwritten`], where the hosted
//! scheduler keeps answers that a cache lookup could not see yet.

use std::time::Duration;

use domain::{CallRecord, ScoreRecord};
use store::{CachedAnswer, Store, WriteBatch};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lookahead::Unwritten;

/// Most records written in one transaction.
const BATCH_RECORDS: usize = 256;
/// Longest a record waits for its batch to fill before it is written anyway.
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// Records that may wait for the writer before senders are slowed down.
const CHANNEL_CAPACITY: usize = 4096;

/// One answered (or failed) item: the call, its scores, and the cache entry it leaves.
pub(crate) struct Written {
    pub call: CallRecord,
    pub scores: Vec<ScoreRecord>,
    pub cache: Option<(String, CachedAnswer)>,
}

pub(crate) struct Writer {
    tx: mpsc::Sender<Written>,
    closing: CancellationToken,
    task: JoinHandle<Result<(), store::Error>>,
}

impl Writer {
    /// Starts the writer. It writes nothing before `first` (storing the run's eval items) has
    /// finished, and stops the run if that failed.
    pub(crate) fn spawn(
        store: Store,
        run: i64,
        stop: CancellationToken,
        unwritten: Unwritten,
        first: JoinHandle<Result<(), store::Error>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let closing = CancellationToken::new();
        let closing_loop = closing.clone();
        let task = tokio::spawn(async move {
            match first.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::error!(run, error = %err, "storing the eval items failed");
                    stop.cancel();
                    return Err(err);
                }
                // Only a panic gets here; the results can still be written.
                Err(join) => {
                    tracing::error!(run, error = %join, "storing the eval items stopped abnormally")
                }
            }
            write_loop(store, run, rx, stop, closing_loop, unwritten).await
        });
        Self { tx, closing, task }
    }

    pub(crate) fn sender(&self) -> mpsc::Sender<Written> {
        self.tx.clone()
    }

    /// Writes what is already sent and returns the first write error, if any. Later sends (from
    /// work abandoned after the grace period) fail instead of keeping the writer alive.
    pub(crate) async fn finish(self) -> Result<(), store::Error> {
        drop(self.tx);
        self.closing.cancel();
        match self.task.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(error = %join, "the result writer stopped abnormally");
                Ok(())
            }
        }
    }
}

async fn write_loop(
    store: Store,
    run: i64,
    mut rx: mpsc::Receiver<Written>,
    stop: CancellationToken,
    closing: CancellationToken,
    unwritten: Unwritten,
) -> Result<(), store::Error> {
    let mut pending: Vec<Written> = Vec::with_capacity(BATCH_RECORDS);
    let mut rx_closed = false;
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut pending, BATCH_RECORDS) => n,
            () = closing.cancelled(), if !rx_closed => {
                // Refuse new records; the ones already queued are still received below.
                rx.close();
                rx_closed = true;
                continue;
            }
        };
        if received == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + BATCH_WINDOW;
        let mut closed = false;
        while pending.len() < BATCH_RECORDS {
            let room = BATCH_RECORDS - pending.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut pending, room)).await {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
                Err(_elapsed) => break,
            }
        }
        let batch = into_batch(pending.drain(..));
        if let Err(err) = store.write_batch(run, &batch).await {
            tracing::error!(run, error = %err, records = batch.calls.len(), "writing results failed");
            stop.cancel();
            return Err(err);
        }
        if !batch.cache.is_empty() {
            unwritten.committed(batch.cache.iter().map(|(key, _)| key.as_str()));
        }
        tracing::debug!(run, records = batch.calls.len(), "results written");
        if closed {
            return Ok(());
        }
    }
}

fn into_batch(records: impl Iterator<Item = Written>) -> WriteBatch {
    let mut calls = Vec::new();
    let mut scores = Vec::new();
    let mut cache = Vec::new();
    for w in records {
        calls.push(w.call);
        scores.extend(w.scores);
        cache.extend(w.cache);
    }
    WriteBatch {
        calls,
        scores,
        cache,
    }
}
