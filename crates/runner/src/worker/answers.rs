//! The fine-tuned model's answers as the worker reports them: each one scored, counted and
//! handed to the writer; an item the model could not answer (its prompt does not fit) is
//! stored as that item's failure, with the reason, and the others go on.

use domain::{CallRecord, ScoreRecord};
use finetune::job::WorkerEvent;

use super::{FinetuneArm, Session};
use crate::events::Event;
use crate::writer::Written;

impl Session<'_> {
    /// Scores one of the worker's answers (a [`WorkerEvent::Answer`]) and hands it to the
    /// writer.
    pub(super) async fn answer(&mut self, ft: &mut FinetuneArm, answer: WorkerEvent) {
        let WorkerEvent::Answer {
            item_id,
            text,
            prompt_tokens,
            completion_tokens,
            seconds,
            truncated,
            choice,
            token_logprobs,
        } = answer
        else {
            return;
        };
        let Some(&i) = self.rows.get(item_id.as_str()) else {
            tracing::warn!(arm = %ft.arm, item = %item_id, "the worker answered an unknown item");
            return;
        };
        let shared = &self.ctx.side.shared;
        let call = CallRecord {
            arm: ft.arm.to_string(),
            item_id: shared.items[i].id.clone(),
            response: Some(text.clone()),
            prompt_tokens,
            completion_tokens,
            latency_ms: seconds * 1000.0,
            cost_usd: seconds * self.per_second,
            attempts: 1,
            cache_hit: false,
            error: None,
            compute_seconds: seconds,
            truncated,
            choice,
            token_logprobs: (!token_logprobs.is_empty()).then_some(token_logprobs),
        };
        self.cost += call.cost_usd;
        let scores = shared.score_all_blocking(&ft.arm, i, &text).await;
        ft.done += 1;
        self.answered += 1;
        self.ctx.side.events.progress(Event::ArmProgress {
            arm: ft.arm.to_string(),
            done: ft.done,
            total: ft.total,
            cost_usd: self.cost,
            errors: self.errors,
        });
        self.write(call, scores).await;
    }

    /// Stores an item the worker could not answer as its failure.
    pub(super) async fn unanswered(&mut self, ft: &mut FinetuneArm, item_id: &str, error: String) {
        let Some(&i) = self.rows.get(item_id) else {
            tracing::warn!(arm = %ft.arm, item = %item_id, "the worker failed an unknown item");
            return;
        };
        let id = self.ctx.side.shared.items[i].id.clone();
        let error = format!("item {id:?}: {error}");
        self.errors += 1;
        self.ctx
            .side
            .events
            .send(Event::CallFailed {
                arm: ft.arm.to_string(),
                item: id.clone(),
                error: error.clone(),
            })
            .await;
        let call = crate::local::failed_call(&ft.arm, &id, error);
        self.write(call, Vec::new()).await;
    }

    async fn write(&self, call: CallRecord, scores: Vec<ScoreRecord>) {
        // A closed writer means the run is ending; what it could not take is lost with it,
        // and the rerun asks again.
        let _ = self
            .ctx
            .side
            .writer
            .send(Written {
                call,
                scores,
                cache: None,
            })
            .await;
    }
}
