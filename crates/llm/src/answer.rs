//! One entry point for answering eval prompts locally, free text or constrained to labels:
//! [`LocalModel::answer_each`] generates when the parameters have no `choices`, and otherwise
//! scores every label ([`LocalModel::score_choices`]) and answers with the likeliest one, its
//! choice recorded by `domain::choose_by_likelihood`. Prompt arms (the runner) and fine-tunes
//! (the worker) both answer through it, so their answers are recorded alike.

use domain::{Choices, GenerationParams, Message};

use crate::Error;
use crate::generate::{FinishReason, Generation};
use crate::local_model::LocalModel;

impl LocalModel {
    /// Answers each conversation with an outcome of its own (see
    /// [`LocalModel::generate_each`]); with `params.choices`, the answer is the chosen label.
    pub fn answer_each(
        &self,
        prompts: &[Vec<Message>],
        params: &GenerationParams,
    ) -> Vec<Result<Generation, Error>> {
        match &params.choices {
            None => self.generate_each(prompts, params),
            Some(choices) => self.choose_each(prompts, choices),
        }
    }

    fn choose_each(
        &self,
        prompts: &[Vec<Message>],
        choices: &Choices,
    ) -> Vec<Result<Generation, Error>> {
        let scored = match self.score_choices(prompts, &choices.labels) {
            Ok(scored) => scored,
            // The whole call failed (a label without tokens, a failed forward pass): every
            // prompt fails with the reason.
            Err(err) => {
                let reason = err.to_string();
                return prompts
                    .iter()
                    .map(|_| {
                        Err(Error::Choices {
                            reason: reason.clone(),
                        })
                    })
                    .collect();
            }
        };
        scored
            .into_iter()
            .map(|outcome| {
                let s = outcome?;
                let choice = domain::choose_by_likelihood(choices, &s.logliks);
                let best = choices
                    .labels
                    .iter()
                    .position(|l| Some(l) == choice.label.as_ref());
                Ok(Generation {
                    text: choice.label.clone().unwrap_or_default(),
                    prompt_tokens: s.prompt_tokens,
                    completion_tokens: best.map_or(0, |b| s.label_tokens[b]),
                    seconds: s.seconds,
                    finish_reason: FinishReason::Stop,
                    token_logprobs: Vec::new(),
                    choice: Some(choice),
                })
            })
            .collect()
    }
}
