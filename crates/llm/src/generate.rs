//! Batched generation on a [`LocalModel`] with a KV cache — the throughput path of `type: local`
//! providers and fine-tuned arms.
//!
//! The prefix all prompts of a call share (system prompt, instructions, few-shot examples:
//! most of an eval prompt) is computed once and copied into every row's KV cache. A batch is
//! left-padded to its longest remaining prompt, every prompt is prefilled in one forward pass
//! (padding masked out, each row's RoPE positions those of its unpadded prompt), then the whole
//! batch decodes one token per step. Rows that finish (end-of-turn/EOS, a stop string, `max_tokens`)
//! leave the batch and its cache, so stragglers do not make everyone pay. Prompts are sorted
//! by length into batches of at most [`LocalModel::max_batch`] to keep padding small. Each
//! answer is charged a share of its batch's wall time proportional to its tokens.
//!
//! Not here: loading (`local_model.rs`), chat formatting (`chat.rs`), the model itself
//! (`model.rs`); training and the adapter file format (the `finetune` crate).

use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use domain::{GenerationParams, Message};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Error;
use crate::choices::token_logprobs;
pub use crate::local_model::{DEFAULT_MAX_BATCH, LocalModel};
use crate::model::{KvCache, MASK_VALUE};

/// Shortest shared prefix worth computing separately.
pub(crate) const MIN_SHARED_PREFIX: usize = 8;

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-turn or EOS token, or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

/// One generated answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The answer, without the end-of-turn token, cut before any stop string.
    pub text: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// This answer's share of its batch's wall time (by tokens).
    pub seconds: f64,
    pub finish_reason: FinishReason,
    /// Per generated token (`completion_tokens` of them; a final end-of-turn token is not one):
    /// its natural-log probability under the model's distribution (temperature 1), from the
    /// logits it was picked from.
    pub token_logprobs: Vec<f32>,
    /// With `choices`: the label chosen by likelihood ([`LocalModel::answer_each`]); `text` is
    /// that label and `token_logprobs` is empty. `None` for generated text.
    pub choice: Option<domain::ChoiceRecord>,
}

/// Where the time of a [`LocalModel::generate_with_stats`] call went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    pub batches: usize,
    /// Tokens of all prompts together.
    pub prompt_tokens: usize,
    /// Tokens of the prefix all prompts share, computed once instead of once per prompt.
    pub shared_prefix_tokens: usize,
    pub shared_prefix_seconds: f64,
    /// Prompt tokens actually computed (the shared prefix once, then every prompt's rest;
    /// padding not counted) and the seconds their prefill passes took.
    pub prefill_tokens: usize,
    pub prefill_seconds: f64,
    /// Generated tokens and the seconds the decode steps took (sampling included).
    pub decode_tokens: usize,
    pub decode_seconds: f64,
}

impl GenerationStats {
    fn add(&mut self, o: &GenerationStats) {
        self.batches += o.batches;
        self.prompt_tokens += o.prompt_tokens;
        self.shared_prefix_tokens += o.shared_prefix_tokens;
        self.shared_prefix_seconds += o.shared_prefix_seconds;
        self.prefill_tokens += o.prefill_tokens;
        self.prefill_seconds += o.prefill_seconds;
        self.decode_tokens += o.decode_tokens;
        self.decode_seconds += o.decode_seconds;
    }
}

impl LocalModel {
    /// Answers each conversation (in order). Prompts are sorted by length and decoded in
    /// batches of at most [`LocalModel::max_batch`].
    pub fn generate(
        &self,
        prompts: &[Vec<Message>],
        params: &GenerationParams,
    ) -> Result<Vec<Generation>, Error> {
        Ok(self.generate_with_stats(prompts, params)?.0)
    }

    /// [`LocalModel::generate`], also reporting prefill and decode throughput.
    pub fn generate_with_stats(
        &self,
        prompts: &[Vec<Message>],
        params: &GenerationParams,
    ) -> Result<(Vec<Generation>, GenerationStats), Error> {
        let ids = prompts
            .iter()
            .map(|m| self.encode_prompt(m))
            .collect::<Result<Vec<_>, _>>()?;
        self.generate_ids_with_stats(&ids, params)
    }

    /// [`LocalModel::generate`] from prompt token ids.
    pub fn generate_ids(
        &self,
        prompts: &[Vec<u32>],
        params: &GenerationParams,
    ) -> Result<Vec<Generation>, Error> {
        Ok(self.generate_ids_with_stats(prompts, params)?.0)
    }

    /// [`LocalModel::generate_ids`] with throughput figures.
    pub fn generate_ids_with_stats(
        &self,
        prompts: &[Vec<u32>],
        params: &GenerationParams,
    ) -> Result<(Vec<Generation>, GenerationStats), Error> {
        for (index, p) in prompts.iter().enumerate() {
            self.check_fits(p, params)
                .map_err(|source| Error::InPrompt {
                    index,
                    source: Box::new(source),
                })?;
        }
        // The prefix every prompt shares (system prompt, instructions, few-shot examples) is
        // computed once; each prompt keeps at least one token of its own for the logits.
        // (Kept from an earlier call when these prompts still start with it.)
        let mut stats = GenerationStats::default();
        let shared = self.shared_prefix(prompts)?;
        stats.shared_prefix_tokens = shared.len();
        stats.prefill_tokens = shared.computed;
        stats.prefill_seconds = shared.seconds;
        stats.shared_prefix_seconds = shared.seconds;
        let prefix = shared.cache;
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by_key(|&i| prompts.get(i).map_or(0, Vec::len));
        let mut out: Vec<Option<Generation>> = vec![None; prompts.len()];
        for chunk in order.chunks(self.max_batch) {
            let batch: Vec<&[u32]> = chunk
                .iter()
                .filter_map(|&i| prompts.get(i).map(Vec::as_slice))
                .collect();
            let (gens, s) = self.generate_batch(&batch, params, prefix.as_deref())?;
            stats.add(&s);
            for (&i, g) in chunk.iter().zip(gens) {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(g);
                }
            }
        }
        let mut gens: Vec<Generation> = out.into_iter().flatten().collect();
        // The shared prefix's time is charged to every answer by its tokens.
        let total: u32 = gens
            .iter()
            .map(|g| g.prompt_tokens + g.completion_tokens)
            .sum();
        if prefix.is_some() && total > 0 {
            let prefix_seconds = stats.shared_prefix_seconds;
            for g in &mut gens {
                g.seconds += prefix_seconds * f64::from(g.prompt_tokens + g.completion_tokens)
                    / f64::from(total);
            }
        }
        Ok((gens, stats))
    }

    /// Whether `prompt` and `params.max_tokens` new tokens fit the model's context.
    pub fn check_fits(&self, prompt: &[u32], params: &GenerationParams) -> Result<(), Error> {
        let context = self.model.config().context_length();
        let max_tokens = params.max_tokens as usize;
        if prompt.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if prompt.len() + max_tokens > context {
            return Err(Error::ContextOverflow {
                tokens: prompt.len(),
                max_tokens,
                context,
            });
        }
        Ok(())
    }

    /// Runs `ids` through the model once, returning its keys and values (batch of one).
    pub(crate) fn prefill_prefix(&self, ids: &[u32]) -> Result<KvCache, Error> {
        let dev = self.model.device();
        let n = ids.len();
        let input = Tensor::from_vec(ids.to_vec(), (1, n), dev)?;
        let positions = Tensor::arange(0u32, n as u32, dev)?.reshape((1, n))?;
        let mask = crate::model::causal_mask(n, 0, self.model.dtype(), dev)?;
        let mut cache = KvCache::new(&self.model, 1, n)?;
        self.model
            .forward_cached(&input, &positions, Some(&mask), &mut cache)?;
        Ok(cache)
    }

    /// One batch: after the shared `prefix` (copied into every row's cache), each prompt's
    /// rest is left-padded to the longest, prefilled together, then decoded together. Row `b`'s
    /// cache thus holds `[prefix][pad_b padding][rest_b]`; masks hide the padding.
    fn generate_batch(
        &self,
        prompts: &[&[u32]],
        params: &GenerationParams,
        prefix: Option<&KvCache>,
    ) -> Result<(Vec<Generation>, GenerationStats), Error> {
        let started = Instant::now();
        let dev = self.model.device();
        let n = prompts.len();
        let shared = prefix.map_or(0, KvCache::len);
        let rests: Vec<&[u32]> = prompts
            .iter()
            .map(|p| p.get(shared..).unwrap_or_default())
            .collect();
        let t = rests.iter().map(|p| p.len()).max().unwrap_or(0);
        let max_new = params.max_tokens as usize;
        let pad_id = self.tokenizer.pad_id();
        let pads: Vec<usize> = rests.iter().map(|p| t - p.len()).collect();

        let mut ids = Vec::with_capacity(n * t);
        let mut pos = Vec::with_capacity(n * t);
        for (p, &pad) in rests.iter().zip(&pads) {
            ids.extend(std::iter::repeat_n(pad_id, pad));
            ids.extend_from_slice(p);
            pos.extend((0..t).map(|j| (shared + j.saturating_sub(pad)) as u32));
        }
        let input = Tensor::from_vec(ids, (n, t), dev)?;
        let positions = Tensor::from_vec(pos, (n, t), dev)?;
        let mask = prefill_mask(&pads, t, shared, self.model.dtype(), dev)?;
        let mut cache = KvCache::new(&self.model, n, shared + t + max_new.max(1))?;
        if let Some(prefix) = prefix {
            cache.fill_from(prefix)?;
        }
        let hidden = self
            .model
            .forward_cached(&input, &positions, Some(&mask), &mut cache)?;
        let last = hidden.narrow(1, t - 1, 1)?.squeeze(1)?;
        let mut logits = self.model.lm_head(&last)?;
        let prefill_seconds = started.elapsed().as_secs_f64();

        let mut rows: Vec<Row> = prompts
            .iter()
            .zip(&pads)
            .map(|(p, &pad)| Row {
                pad,
                prompt_len: p.len(),
                tokens: Vec::new(),
                logprobs: Vec::new(),
                rng: params.seed.map(|s| StdRng::seed_from_u64(s ^ fnv(p))),
                done: None,
            })
            .collect();
        // Cache row → index into `rows`. Finished rows stay in the batch (their outputs are
        // ignored) until half the batch has finished: dropping rows copies the whole cache, so
        // it is done a few times per batch, not once per finished row.
        let mut batch: Vec<usize> = if max_new == 0 {
            Vec::new()
        } else {
            (0..n).collect()
        };
        let mut greedy_rng = StdRng::seed_from_u64(0);
        while !batch.is_empty() {
            let next = self.pick(&logits, &batch, &mut rows, params, &mut greedy_rng)?;
            let logprobs = token_logprobs(&logits, None, &next)?;
            for ((&r, &tok), &logprob) in batch.iter().zip(&next).zip(&logprobs) {
                let Some(row) = rows.get_mut(r).filter(|row| row.done.is_none()) else {
                    continue;
                };
                if self.stop_ids.contains(&tok) {
                    row.done = Some(FinishReason::Stop);
                    continue;
                }
                row.tokens.push(tok);
                row.logprobs.push(logprob);
                if !params.stop.is_empty() && self.hits_stop(&row.tokens, &params.stop)? {
                    row.done = Some(FinishReason::Stop);
                } else if row.tokens.len() >= max_new {
                    row.done = Some(FinishReason::Length);
                }
            }
            let live: Vec<usize> = (0..batch.len())
                .filter(|&b| {
                    batch
                        .get(b)
                        .and_then(|&r| rows.get(r))
                        .is_some_and(|row| row.done.is_none())
                })
                .collect();
            if live.is_empty() {
                break;
            }
            if 2 * live.len() <= batch.len() {
                let idx: Vec<u32> = live.iter().map(|&b| b as u32).collect();
                cache.retain_rows(&Tensor::from_vec(idx, live.len(), dev)?)?;
                batch = live.iter().filter_map(|&b| batch.get(b).copied()).collect();
            }
            // Finished rows still in the batch decode a padding token at their last position.
            let mut step_ids = Vec::with_capacity(batch.len());
            let mut step_pos = Vec::with_capacity(batch.len());
            let mut pads = Vec::with_capacity(batch.len());
            for row in batch.iter().filter_map(|&r| rows.get(r)) {
                let pos = row.prompt_len + row.tokens.len().max(1) - 1;
                let id = match (row.done, row.tokens.last()) {
                    (None, Some(&t)) => t,
                    _ => pad_id,
                };
                step_ids.push(id);
                step_pos.push(pos as u32);
                pads.push(row.pad);
            }
            let m = batch.len();
            let input = Tensor::from_vec(step_ids, (m, 1), dev)?;
            let positions = Tensor::from_vec(step_pos, (m, 1), dev)?;
            let mask = decode_mask(&pads, shared, cache.len() + 1, self.model.dtype(), dev)?;
            let hidden =
                self.model
                    .forward_cached(&input, &positions, mask.as_ref(), &mut cache)?;
            logits = self.model.lm_head(&hidden.squeeze(1)?)?;
        }

        let seconds = started.elapsed().as_secs_f64();
        let total_tokens: usize = rows.iter().map(|r| r.prompt_len + r.tokens.len()).sum();
        let stats = GenerationStats {
            batches: 1,
            prompt_tokens: rows.iter().map(|r| r.prompt_len).sum(),
            shared_prefix_tokens: 0,
            shared_prefix_seconds: 0.0,
            prefill_tokens: rows.iter().map(|r| r.prompt_len - shared).sum(),
            prefill_seconds,
            decode_tokens: rows.iter().map(|r| r.tokens.len()).sum(),
            decode_seconds: seconds - prefill_seconds,
        };
        let gens = rows
            .into_iter()
            .map(|row| {
                let mut text = self.tokenizer.decode(&row.tokens, true)?;
                if let Some(cut) = params
                    .stop
                    .iter()
                    .filter_map(|s| text.find(s.as_str()))
                    .min()
                {
                    text.truncate(cut);
                }
                let share = (row.prompt_len + row.tokens.len()) as f64 / total_tokens.max(1) as f64;
                Ok(Generation {
                    text,
                    prompt_tokens: row.prompt_len as u32,
                    completion_tokens: row.tokens.len() as u32,
                    seconds: seconds * share,
                    finish_reason: row.done.unwrap_or(FinishReason::Length),
                    token_logprobs: row.logprobs,
                    choice: None,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok((gens, stats))
    }

    /// The next token of every active row from its logits `[m, V]`.
    fn pick(
        &self,
        logits: &Tensor,
        active: &[usize],
        rows: &mut [Row],
        params: &GenerationParams,
        fallback_rng: &mut StdRng,
    ) -> Result<Vec<u32>, Error> {
        if params.temperature <= 0.0 {
            return Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
        }
        let probs = candle_nn::ops::softmax_last_dim(
            &(logits.to_dtype(DType::F32)? / f64::from(params.temperature))?,
        )?
        .to_vec2::<f32>()?;
        let top_p = params.top_p.unwrap_or(1.0).clamp(0.0, 1.0);
        let mut out = Vec::with_capacity(active.len());
        for (p, &r) in probs.iter().zip(active) {
            let rng = match rows.get_mut(r).and_then(|row| row.rng.as_mut()) {
                Some(rng) => rng,
                None => &mut *fallback_rng,
            };
            out.push(sample(p, top_p, rng));
        }
        Ok(out)
    }

    fn hits_stop(&self, tokens: &[u32], stop: &[String]) -> Result<bool, Error> {
        let text = self.tokenizer.decode(tokens, true)?;
        Ok(stop
            .iter()
            .any(|s| !s.is_empty() && text.contains(s.as_str())))
    }
}

/// Decoding state of one prompt of a batch.
struct Row {
    pad: usize,
    prompt_len: usize,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    /// Per-prompt sampler (seeded by the params' seed and the prompt), so an answer does not
    /// depend on which batch it landed in.
    rng: Option<StdRng>,
    done: Option<FinishReason>,
}

/// Additive prefill mask `[B, 1, 1, T, shared + T]` for the rows' own tokens after a shared
/// prefix: every query sees the prefix; within its own part it is causal and skips its row's
/// padding (a padding query sees only itself, so its softmax stays finite).
fn prefill_mask(
    pads: &[usize],
    t: usize,
    shared: usize,
    dtype: DType,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let s = shared + t;
    let mut m = Vec::with_capacity(pads.len() * t * s);
    for &pad in pads {
        for i in 0..t {
            m.extend(std::iter::repeat_n(0.0f32, shared));
            for j in 0..t {
                let visible = j <= i && (j >= pad || j == i);
                m.push(if visible { 0.0 } else { MASK_VALUE });
            }
        }
    }
    Tensor::from_vec(m, (pads.len(), 1, 1, t, s), dev)?.to_dtype(dtype)
}

/// Additive decode mask `[B, 1, 1, 1, S]` hiding each row's padding (positions
/// `shared..shared + pad`); None when no row is padded.
fn decode_mask(
    pads: &[usize],
    shared: usize,
    s: usize,
    dtype: DType,
    dev: &Device,
) -> candle_core::Result<Option<Tensor>> {
    if pads.iter().all(|&p| p == 0) {
        return Ok(None);
    }
    let m: Vec<f32> = pads
        .iter()
        .flat_map(|&pad| {
            (0..s).map(move |j| {
                if (shared..shared + pad).contains(&j) {
                    MASK_VALUE
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Some(
        Tensor::from_vec(m, (pads.len(), 1, 1, 1, s), dev)?.to_dtype(dtype)?,
    ))
}

/// Length of the longest token prefix all prompts share.
pub(crate) fn common_prefix_len(prompts: &[Vec<u32>]) -> usize {
    let Some((first, rest)) = prompts.split_first() else {
        return 0;
    };
    rest.iter().fold(first.len(), |n, p| {
        first
            .iter()
            .zip(p)
            .take(n)
            .take_while(|(a, b)| a == b)
            .count()
    })
}

/// Samples from `probs` restricted to the smallest set of tokens whose mass reaches `top_p`.
fn sample(probs: &[f32], top_p: f32, rng: &mut StdRng) -> u32 {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    if top_p < 1.0 {
        idx.sort_unstable_by(|&a, &b| {
            let pa = probs.get(a).copied().unwrap_or(0.0);
            let pb = probs.get(b).copied().unwrap_or(0.0);
            pb.total_cmp(&pa)
        });
        let mut mass = 0.0;
        let mut cut = idx.len();
        for (k, &i) in idx.iter().enumerate() {
            mass += probs.get(i).copied().unwrap_or(0.0);
            if mass >= top_p {
                cut = k + 1;
                break;
            }
        }
        idx.truncate(cut);
    }
    let total: f32 = idx
        .iter()
        .map(|&i| probs.get(i).copied().unwrap_or(0.0))
        .sum();
    let mut x = rng.random::<f32>() * total;
    for &i in &idx {
        let p = probs.get(i).copied().unwrap_or(0.0);
        if x < p {
            return i as u32;
        }
        x -= p;
    }
    idx.last().copied().unwrap_or(0) as u32
}

/// FNV-1a over token ids: a stable per-prompt seed.
fn fnv(ids: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &i in ids {
        for b in i.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}
