//! `propose:` — one call to a hosted model that writes instruction candidates for a prompt
//! search, as MIPROv2's instruction proposer does (shown the task's examples and the seed
//! instructions, asked for `n` different ones). The call goes through the response cache and is
//! stored like any call, under the optimised arm's `~propose` arm, so a rerun proposes the same
//! instructions without paying again and the search's cost includes it.

use domain::{CallRecord, GenerationParams, Message};
use experiment::{OptimizeSpec, Plan};
use store::{CachedAnswer, WriteBatch};

use crate::Error;
use crate::budget::call_cost_upper_bound;
use crate::execute::Invocation;
use crate::hosted::Lane;

/// Train rows shown to the proposer as examples of the task.
const EXAMPLES: usize = 8;
/// Longest instruction kept, in characters.
const MAX_INSTRUCTION_CHARS: usize = 1000;

/// The instructions the proposer wrote for `block` (empty when it has no `propose:`, when its
/// provider is not connected or when the money left cannot cover the call). `left` is what the
/// search may still spend; `arm` is the arm the call is stored under.
pub(crate) async fn proposals(
    inv: &Invocation<'_>,
    block: &OptimizeSpec,
    lanes: &[(String, Lane)],
    arm: &str,
    left: Option<f64>,
) -> Result<Vec<String>, Error> {
    let Some(p) = &block.propose else {
        return Ok(Vec::new());
    };
    let Some((_, lane)) = lanes.iter().find(|(id, _)| *id == p.provider) else {
        inv.events
            .note(format!(
                "optimize {}: provider {} is not connected, so no instructions are proposed",
                block.id, p.provider
            ))
            .await;
        return Ok(Vec::new());
    };
    let messages = meta_prompt(inv.plan, block, p.n);
    let params = GenerationParams {
        max_tokens: (96 * p.n as u32).clamp(256, 4096),
        temperature: 0.7,
        choices: None,
        seed: Some(inv.plan.dataset.seed),
        ..inv.plan.generation.clone()
    };
    let key = providers::cache_key(&lane.base_url, &lane.model, &messages, &params);
    let cached = if inv.opts.no_cache {
        None
    } else {
        inv.store.cache_get(&key).await?
    };
    let text = match cached {
        Some(hit) => {
            write(inv, record(arm, &hit, 0.0, 0.0, true), None).await?;
            hit.text
        }
        None => {
            let bound = call_cost_upper_bound(&messages, params.max_tokens, &lane.pricing);
            if left.is_some_and(|l| bound > l) {
                inv.events
                    .note(format!(
                        "optimize {}: the budget left cannot cover the proposal call; searching \
                         without proposed instructions",
                        block.id
                    ))
                    .await;
                return Ok(Vec::new());
            }
            match call(inv, lane, arm, &messages, &params, key).await? {
                Some(text) => text,
                None => return Ok(Vec::new()),
            }
        }
    };
    let found = parse(&text, p.n);
    inv.events
        .note(format!(
            "optimize {}: {} proposed {} instruction(s)",
            block.id,
            p.provider,
            found.len()
        ))
        .await;
    Ok(found)
}

/// Makes the paid call and stores it; None (with a note) when it failed.
async fn call(
    inv: &Invocation<'_>,
    lane: &Lane,
    arm: &str,
    messages: &[Message],
    params: &GenerationParams,
    key: String,
) -> Result<Option<String>, Error> {
    let outcome = lane.client.chat(messages, params).await;
    let latency_ms = outcome.latency.as_secs_f64() * 1000.0;
    match outcome.result {
        Ok(answer) => {
            let cached = CachedAnswer {
                text: answer.text.clone(),
                prompt_tokens: answer.usage.prompt_tokens,
                completion_tokens: answer.usage.completion_tokens,
                truncated: answer.truncated,
                choice: None,
                token_logprobs: None,
            };
            let call = record(arm, &cached, answer.cost_usd, latency_ms, false);
            write(inv, call, Some((key, cached))).await?;
            Ok(Some(answer.text))
        }
        Err(err) => {
            let mut call = crate::call::unsent(arm, PROPOSE_ITEM, &err.to_string());
            call.latency_ms = latency_ms;
            call.attempts = outcome.attempts;
            write(inv, call, None).await?;
            inv.events
                .note(format!(
                    "optimize: the proposal call failed ({err}); searching without proposed \
                     instructions"
                ))
                .await;
            Ok(None)
        }
    }
}

/// The item id of the proposal call.
const PROPOSE_ITEM: &str = "propose";

fn record(arm: &str, a: &CachedAnswer, cost_usd: f64, latency_ms: f64, hit: bool) -> CallRecord {
    CallRecord {
        arm: arm.to_owned(),
        item_id: PROPOSE_ITEM.to_owned(),
        response: Some(a.text.clone()),
        prompt_tokens: a.prompt_tokens,
        completion_tokens: a.completion_tokens,
        latency_ms,
        cost_usd,
        attempts: u32::from(!hit),
        cache_hit: hit,
        error: None,
        compute_seconds: 0.0,
        truncated: a.truncated,
        choice: None,
        token_logprobs: None,
    }
}

async fn write(
    inv: &Invocation<'_>,
    call: CallRecord,
    cache: Option<(String, CachedAnswer)>,
) -> Result<(), Error> {
    let batch = WriteBatch {
        calls: vec![call],
        scores: Vec::new(),
        cache: cache.into_iter().collect(),
    };
    inv.store
        .write_batch(inv.run_id, &batch)
        .await
        .map_err(Error::Write)
}

/// The proposer's prompt: the task's first template, a few train examples with their answers,
/// the seed instructions, and the request for `n` instructions, one per line.
fn meta_prompt(plan: &Plan, block: &OptimizeSpec, n: usize) -> Vec<Message> {
    let seeds: Vec<_> = block.from.iter().filter_map(|p| plan.prompt(p)).collect();
    let mut user = String::from("A language model is given this prompt for each item:\n\n");
    if let Some(first) = seeds.first() {
        user.push_str(&first.template);
        user.push_str("\n\nExamples of items and the answers expected:\n");
    }
    for row in plan.dataset.train.iter().take(EXAMPLES) {
        user.push_str(&format!(
            "- input: {}\n  answer: {}\n",
            row.input, row.target
        ));
    }
    let written: Vec<&str> = seeds.iter().filter_map(|s| s.system.as_deref()).collect();
    if !written.is_empty() {
        user.push_str("\nInstructions tried so far:\n");
        for w in written {
            user.push_str(&format!("- {w}\n"));
        }
    }
    user.push_str(&format!(
        "\nWrite {n} different instructions (system messages) that would make the model give \
         the expected answers. One instruction per line, no numbering, nothing else."
    ));
    vec![
        Message::system("You write instructions for language models.".to_owned()),
        Message::user(user),
    ]
}

/// One instruction per non-empty line, list markers and numbering stripped, duplicates and
/// over-long lines dropped, at most `n`.
fn parse(text: &str, n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line
            .trim()
            .trim_start_matches(['-', '*', '•'])
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start_matches(['.', ')', ':'])
            .trim()
            .trim_matches('"')
            .trim();
        if t.is_empty() || t.chars().count() > MAX_INSTRUCTION_CHARS {
            continue;
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
        if out.len() == n {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_instruction_per_line() {
        let text = "1. Answer with the label.\n- Be brief.\n\n2) \"Be brief.\"\n  * Say only yes or no  \n";
        assert_eq!(
            parse(text, 8),
            vec!["Answer with the label.", "Be brief.", "Say only yes or no"]
        );
        assert_eq!(parse(text, 1), vec!["Answer with the label."]);
    }
}
