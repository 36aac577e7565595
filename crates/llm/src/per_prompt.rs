//! Generation that keeps prompts apart: [`LocalModel::generate_each`] gives every prompt its
//! own outcome, so one prompt that cannot be answered (longer than the model's context, say)
//! fails alone instead of failing the batched call it was part of.
//!
//! Lengths are checked before the batch is built: an over-long prompt never reaches the model.
//! Should the batched call still fail for another reason, its prompts are asked again one at a
//! time. Naming the failed item (its id, its arm) is the caller's business; this module knows
//! only positions. The batching itself is `generate.rs`.

use domain::{GenerationParams, Message};

use crate::Error;
use crate::generate::{Generation, LocalModel};

impl LocalModel {
    /// Answers each conversation (in order) with an outcome of its own: a prompt that does not
    /// fit the context, or fails to encode, gets its error, and the others are answered in one
    /// batched [`LocalModel::generate_ids`] call (retried prompt by prompt if that call fails).
    pub fn generate_each(
        &self,
        prompts: &[Vec<Message>],
        params: &GenerationParams,
    ) -> Vec<Result<Generation, Error>> {
        let prepared = prompts
            .iter()
            .map(|messages| {
                let ids = self.encode_prompt(messages)?;
                self.check_fits(&ids, params)?;
                Ok(ids)
            })
            .collect();
        isolate(prepared, |batch| self.generate_ids(batch, params))
    }
}

/// One outcome per entry of `prepared`: entries already failed stay failed; the others go to
/// `run` together, and when that call fails (or answers too few), one at a time, so a prompt
/// that breaks the call takes down only itself.
pub(crate) fn isolate<F>(
    prepared: Vec<Result<Vec<u32>, Error>>,
    mut run: F,
) -> Vec<Result<Generation, Error>>
where
    F: FnMut(&[Vec<u32>]) -> Result<Vec<Generation>, Error>,
{
    let mut out: Vec<Option<Result<Generation, Error>>> = Vec::with_capacity(prepared.len());
    let mut slots = Vec::new();
    let mut batch = Vec::new();
    for (i, entry) in prepared.into_iter().enumerate() {
        match entry {
            Ok(ids) => {
                out.push(None);
                slots.push(i);
                batch.push(ids);
            }
            Err(err) => out.push(Some(Err(err))),
        }
    }
    if !batch.is_empty() {
        let answered = run(&batch).and_then(|gens| {
            if gens.len() == batch.len() {
                Ok(gens)
            } else {
                Err(Error::NoAnswer)
            }
        });
        let outcomes: Vec<Result<Generation, Error>> = match answered {
            Ok(gens) => gens.into_iter().map(Ok).collect(),
            // Alone in its call: asking again would only repeat the failure.
            Err(err) if batch.len() == 1 => vec![Err(err)],
            Err(err) => {
                tracing::warn!(prompts = batch.len(), cause = %err, "batched generation failed; answering its prompts one at a time");
                batch.iter().map(|ids| alone(&mut run, ids)).collect()
            }
        };
        for (i, outcome) in slots.into_iter().zip(outcomes) {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(outcome);
            }
        }
    }
    out.into_iter()
        .map(|o| o.unwrap_or(Err(Error::NoAnswer)))
        .collect()
}

/// `ids` asked on its own.
fn alone<F>(run: &mut F, ids: &[u32]) -> Result<Generation, Error>
where
    F: FnMut(&[Vec<u32>]) -> Result<Vec<Generation>, Error>,
{
    run(&[ids.to_vec()])?
        .into_iter()
        .next()
        .ok_or(Error::NoAnswer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::FinishReason;

    /// An answer whose text is the prompt's first id.
    fn answer(ids: &[u32]) -> Generation {
        Generation {
            text: ids.first().map_or_else(String::new, u32::to_string),
            prompt_tokens: ids.len() as u32,
            completion_tokens: 1,
            seconds: 0.0,
            finish_reason: FinishReason::Stop,
            token_logprobs: vec![0.0],
            choice: None,
        }
    }

    /// Runs `prepared` through an engine that fails any call holding a prompt that starts
    /// with `poison`; returns each outcome as text (or "error: ...") and the calls' sizes.
    fn check(prepared: Vec<Result<Vec<u32>, Error>>, poison: u32) -> (Vec<String>, Vec<usize>) {
        let mut calls = Vec::new();
        let out = isolate(prepared, |batch| {
            calls.push(batch.len());
            if batch.iter().any(|p| p.first() == Some(&poison)) {
                return Err(Error::Device {
                    device: "cpu".into(),
                    reason: "poisoned".into(),
                });
            }
            Ok(batch.iter().map(|p| answer(p)).collect())
        });
        let texts = out
            .into_iter()
            .map(|o| o.map_or_else(|e| format!("error: {e}"), |g| g.text))
            .collect();
        (texts, calls)
    }

    fn overflow() -> Error {
        Error::ContextOverflow {
            tokens: 600,
            max_tokens: 4,
            context: 512,
        }
    }

    #[test]
    fn a_prompt_rejected_up_front_fails_alone_and_the_rest_share_one_call() {
        let (texts, calls) = check(
            vec![Ok(vec![1]), Err(overflow()), Ok(vec![3]), Ok(vec![4])],
            99,
        );
        assert_eq!(
            texts,
            [
                "1",
                "error: the prompt has 600 tokens; with 4 new tokens it exceeds the model's context of 512",
                "3",
                "4"
            ]
        );
        assert_eq!(calls, [3]);
    }

    #[test]
    fn a_failed_batch_is_retried_prompt_by_prompt() {
        let (texts, calls) = check(vec![Ok(vec![1]), Ok(vec![7]), Ok(vec![3])], 7);
        assert_eq!(texts, ["1", "error: device cpu: poisoned", "3"]);
        assert_eq!(calls, [3, 1, 1, 1]);
    }

    #[test]
    fn a_lone_prompt_that_fails_is_not_asked_twice() {
        let (texts, calls) = check(vec![Err(Error::EmptyPrompt), Ok(vec![7])], 7);
        assert_eq!(
            texts,
            [
                "error: the prompt has no tokens",
                "error: device cpu: poisoned"
            ]
        );
        assert_eq!(calls, [1]);
    }

    #[test]
    fn nothing_to_answer_calls_nothing() {
        let (texts, calls) = check(vec![Err(overflow())], 7);
        assert_eq!(texts.len(), 1);
        assert!(calls.is_empty());
    }
}
