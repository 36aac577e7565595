//! The embedding models of a run's `similar` scorers, loaded once before any item is answered,
//! and the scoring of one answer by them: the runner embeds answer and reference (crate
//! `embed`) and `scoring` turns the two vectors into a cosine and a score.
//!
//! Embedding is a small Candle forward pass: callers on the async runtime go through
//! [`crate::Shared::score_all_blocking`], which runs it on a blocking thread.

use std::collections::HashMap;
use std::sync::Arc;

use domain::{ModelSource, ScoreRecord, ScorerKind, ScorerSpec};
use embed::Embedder;

use crate::events::Emitter;
use crate::{Error, local};

/// One loaded embedder per distinct `model:` of the run's `similar` scorers.
#[derive(Debug, Default, Clone)]
pub(crate) struct Embedders {
    by_model: HashMap<ModelSource, Arc<Embedder>>,
}

impl Embedders {
    /// Fetches (if need be) and loads every embedding model `scorers` name.
    pub(crate) async fn load(scorers: &[ScorerSpec], events: &Emitter) -> Result<Self, Error> {
        let mut by_model = HashMap::new();
        for s in scorers {
            let ScorerKind::Similar { model, .. } = &s.kind else {
                continue;
            };
            if by_model.contains_key(model) {
                continue;
            }
            let failed = |reason: String| Error::Embedder {
                scorer: s.id.clone(),
                reason,
            };
            let path = local::resolve_model(model, events).await.map_err(failed)?;
            let loaded = tokio::task::spawn_blocking(move || Embedder::load(&path))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(e.to_string()))?;
            by_model.insert(model.clone(), Arc::new(loaded));
        }
        Ok(Embedders { by_model })
    }

    /// Whether no scorer needs an embedding (scoring never blocks then).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_model.is_empty()
    }

    /// The score and the raw cosine of a `similar` scorer `spec` for `answer` against `target`
    /// (or the scorer's `value`). An answer that fails to embed scores 0, cosine 0, like a
    /// text scorer's unparseable answer, and is logged.
    fn score(&self, spec: &ScorerSpec, answer: &str, target: &str) -> (f64, f64) {
        let ScorerKind::Similar {
            value,
            threshold,
            model,
        } = &spec.kind
        else {
            return (0.0, 0.0);
        };
        let reference = value.as_deref().unwrap_or(target);
        let embedded = match self.by_model.get(model) {
            Some(e) => e.embed(&[answer, reference]),
            None => return (0.0, 0.0),
        };
        match embedded.as_deref() {
            Ok([a, b]) => {
                let cos = scoring::cosine(a, b);
                (scoring::similar_score(cos, *threshold), cos)
            }
            Ok(_) => (0.0, 0.0),
            Err(err) => {
                tracing::warn!(scorer = %spec.id, cause = %err, "embedding failed; scoring 0");
                (0.0, 0.0)
            }
        }
    }

    /// The records of one scorer for one answer: its score, and for `similar` its raw cosine.
    pub(crate) fn records(
        &self,
        spec: &ScorerSpec,
        (arm, item_id): (&str, &str),
        answer: &str,
        target: &str,
    ) -> Vec<ScoreRecord> {
        let record = |scorer: String, value: f64| ScoreRecord {
            arm: arm.to_string(),
            item_id: item_id.to_string(),
            scorer,
            value,
        };
        match spec.raw_id() {
            Some(raw_id) => {
                let (score, cos) = self.score(spec, answer, target);
                vec![record(spec.id.clone(), score), record(raw_id, cos)]
            }
            None => vec![record(
                spec.id.clone(),
                scoring::score(&spec.kind, answer, target),
            )],
        }
    }
}
