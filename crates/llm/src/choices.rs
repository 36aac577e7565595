//! Answers constrained to labels on a local model: [`LocalModel::score_choices`] gives, for each
//! prompt, the log-likelihood of every label as the assistant's answer, which
//! `domain::choose_by_likelihood` turns into a choice and its confidence.
//!
//! One forward pass per batch of prompts scores every label: each row holds its prompt, then
//! every label's tokens one after another, and the attention mask lets each label see the prompt
//! and its own earlier tokens only (with RoPE positions continuing the prompt's), so the prompt is
//! computed once for all labels and no KV cache is copied per label. A single-token label costs
//! nothing beyond the prompt; a label of `n` tokens adds `n - 1` query rows. As in generation,
//! the prefix all prompts share is computed once (and kept for the next call while its prompts
//! start with it: `prefix_cache.rs`), and prompts are sorted by length into batches of at most
//! [`LocalModel::max_batch`], left-padded.
//!
//! Not here: the softmax over labels and the acc / acc_norm ranking (`domain::choices`),
//! free-text generation (`generate.rs`).

use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use domain::Message;

use crate::Error;
use crate::local_model::LocalModel;
use crate::model::{KvCache, MASK_VALUE};

/// The labels' log-likelihoods after one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceScores {
    /// Per label (in the order given): the sum of the natural-log probabilities of its tokens,
    /// each given the prompt and the label's earlier tokens.
    pub logliks: Vec<f64>,
    /// Per label: how many tokens it has.
    pub label_tokens: Vec<u32>,
    pub prompt_tokens: u32,
    /// This prompt's share of its batch's wall time (by tokens computed), plus its share of the
    /// shared prefix's.
    pub seconds: f64,
}

/// The outcome of one prompt: its scores, or why it could not be scored.
pub type ChoiceOutcome = Result<ChoiceScores, Error>;

impl LocalModel {
    /// Scores every label as the answer to each conversation, rendered with the chat template
    /// exactly as [`LocalModel::generate`] renders it (assistant header included). A prompt that
    /// cannot be scored (too long for the context with the longest label) fails alone; a label
    /// with no tokens, no labels, or a failing forward pass fail the call.
    pub fn score_choices(
        &self,
        prompts: &[Vec<Message>],
        labels: &[String],
    ) -> Result<Vec<ChoiceOutcome>, Error> {
        let label_ids = labels
            .iter()
            .map(|l| self.encode_label(l))
            .collect::<Result<Vec<_>, _>>()?;
        let encoded = prompts.iter().map(|m| self.encode_prompt(m)).collect();
        self.score_encoded(encoded, &label_ids)
    }

    /// [`LocalModel::score_choices`] from prompt and label token ids.
    pub fn score_choice_ids(
        &self,
        prompts: &[Vec<u32>],
        labels: &[Vec<u32>],
    ) -> Result<Vec<ChoiceOutcome>, Error> {
        self.score_encoded(prompts.iter().cloned().map(Ok).collect(), labels)
    }

    /// The tokens of `label` as the model would emit them as its answer. The label's text is
    /// tokenised on its own, without an added leading space: every supported template's
    /// assistant header ends in a newline (ChatML `<|im_start|>assistant\n`, Llama-3
    /// `<|end_header_id|>\n\n`), where byte-level BPE pre-tokenisers split, so these are the
    /// tokens the label has in the text prompt + label, and a space would be a token the model
    /// does not write after a newline. Whitespace the label itself has is kept.
    pub fn encode_label(&self, label: &str) -> Result<Vec<u32>, Error> {
        self.tokenizer.encode(label)
    }

    fn score_encoded(
        &self,
        prompts: Vec<Result<Vec<u32>, Error>>,
        labels: &[Vec<u32>],
    ) -> Result<Vec<ChoiceOutcome>, Error> {
        if labels.is_empty() {
            return Err(Error::NoLabels);
        }
        if let Some(index) = labels.iter().position(Vec::is_empty) {
            return Err(Error::EmptyLabel { index });
        }
        let context = self.model.config().context_length();
        let longest = labels.iter().map(Vec::len).max().unwrap_or(0);
        let mut out: Vec<Option<ChoiceOutcome>> = Vec::with_capacity(prompts.len());
        let mut valid: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, p) in prompts.into_iter().enumerate() {
            match p {
                Ok(p) if !p.is_empty() && p.len() + longest <= context => {
                    valid.push((i, p));
                    out.push(None);
                }
                Ok(p) => out.push(Some(Err(Error::ChoicesOverflow {
                    tokens: p.len(),
                    label_tokens: longest,
                    context,
                }))),
                Err(e) => out.push(Some(Err(e))),
            }
        }
        for (i, scores) in self.score_valid(&valid, labels)? {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(Ok(scores));
            }
        }
        // Every prompt that fits is in exactly one batch, so no slot stays empty.
        let unscored = || Error::Candle(candle_core::Error::Msg("prompt left unscored".into()));
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(unscored())))
            .collect())
    }

    /// Scores prompts that fit, returning (index, scores) pairs.
    fn score_valid(
        &self,
        prompts: &[(usize, Vec<u32>)],
        labels: &[Vec<u32>],
    ) -> Result<Vec<(usize, ChoiceScores)>, Error> {
        let ids: Vec<Vec<u32>> = prompts.iter().map(|(_, p)| p.clone()).collect();
        // As in generation: the shared prefix once (or kept from an earlier call), each prompt
        // keeping a token of its own.
        let shared = self.shared_prefix(&ids)?;
        let prefix_seconds = shared.seconds;
        let prefix = shared.cache;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids.get(i).map_or(0, Vec::len));
        let mut out = Vec::with_capacity(ids.len());
        for chunk in order.chunks(self.max_batch) {
            let batch: Vec<&[u32]> = chunk
                .iter()
                .filter_map(|&i| ids.get(i).map(Vec::as_slice))
                .collect();
            let scored = self.score_batch(&batch, labels, prefix.as_deref())?;
            for (&i, s) in chunk.iter().zip(scored) {
                if let Some((index, _)) = prompts.get(i) {
                    out.push((*index, s));
                }
            }
        }
        // The shared prefix's time is charged to every prompt by its tokens.
        let total: u32 = out.iter().map(|(_, s)| s.prompt_tokens).sum();
        if total > 0 {
            for (_, s) in &mut out {
                s.seconds += prefix_seconds * f64::from(s.prompt_tokens) / f64::from(total);
            }
        }
        Ok(out)
    }

    /// One batch in one forward pass. Row `b` is `[pad_b][rest_b][label 0][label 1]…` after the
    /// shared `prefix`, each label without its last token (no prediction is needed after it).
    /// The logits at the prompt's last column predict every label's first token; those at a
    /// label's columns predict its next tokens.
    fn score_batch(
        &self,
        prompts: &[&[u32]],
        labels: &[Vec<u32>],
        prefix: Option<&KvCache>,
    ) -> Result<Vec<ChoiceScores>, Error> {
        let started = Instant::now();
        let dev = self.model.device();
        let shared = prefix.map_or(0, KvCache::len);
        let rests: Vec<&[u32]> = prompts
            .iter()
            .map(|p| p.get(shared..).unwrap_or_default())
            .collect();
        let layout = Layout::new(rests.iter().map(|r| r.len()).max().unwrap_or(0), labels);
        let (n, t) = (prompts.len(), layout.width());
        let pad_id = self.tokenizer.pad_id();
        let mut ids = Vec::with_capacity(n * t);
        let mut pos = Vec::with_capacity(n * t);
        let mut pads = Vec::with_capacity(n);
        for rest in &rests {
            let pad = layout.prompt_cols - rest.len();
            pads.push(pad);
            ids.extend(std::iter::repeat_n(pad_id, pad));
            ids.extend_from_slice(rest);
            pos.extend((0..layout.prompt_cols).map(|j| (shared + j.saturating_sub(pad)) as u32));
            for label in labels {
                let inner = label
                    .get(..label.len().saturating_sub(1))
                    .unwrap_or_default();
                ids.extend_from_slice(inner);
                pos.extend((0..inner.len()).map(|k| (shared + rest.len() + k) as u32));
            }
        }
        let input = Tensor::from_vec(ids, (n, t), dev)?;
        let positions = Tensor::from_vec(pos, (n, t), dev)?;
        let mask = layout.mask(&pads, shared, self.model.dtype(), dev)?;
        let mut cache = KvCache::new(&self.model, n, shared + t)?;
        if let Some(prefix) = prefix {
            cache.fill_from(prefix)?;
        }
        let hidden = self
            .model
            .forward_cached(&input, &positions, Some(&mask), &mut cache)?;
        // Only the columns that predict label tokens go through the LM head.
        let first = layout.prompt_cols.saturating_sub(1);
        let k = t - first;
        let rows = hidden
            .narrow(1, first, k)?
            .reshape((n * k, self.model.config().hidden_size))?;
        let (row_idx, tok_idx) = layout.targets(n, labels);
        let logits = self.model.lm_head(&rows)?;
        let picked = token_logprobs(&logits, Some(&row_idx), &tok_idx)?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(collect_scores(&picked, &rests, shared, labels, seconds))
    }
}

/// `log_softmax(logits)[rows[i], tokens[i]]` for every `i`, from logits `[N, V]` (in f32
/// whatever their dtype); `rows` None means row `i` for token `i`. Shared by label scoring and
/// the token log-probabilities of generated answers.
pub(crate) fn token_logprobs(
    logits: &Tensor,
    rows: Option<&[u32]>,
    tokens: &[u32],
) -> candle_core::Result<Vec<f32>> {
    let dev = logits.device();
    let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let logp = match rows {
        Some(rows) => logp.index_select(&Tensor::new(rows, dev)?, 0)?,
        None => logp,
    };
    logp.gather(&Tensor::new(tokens, dev)?.unsqueeze(1)?, 1)?
        .flatten_all()?
        .to_vec1::<f32>()
}

/// Where each label sits in a row: after the prompt columns, one segment per label of its
/// tokens but the last.
struct Layout {
    /// Columns of the (left-padded) prompt rests.
    prompt_cols: usize,
    /// Per label: (first column, width) of its segment.
    segments: Vec<(usize, usize)>,
}

impl Layout {
    fn new(prompt_cols: usize, labels: &[Vec<u32>]) -> Self {
        let mut col = prompt_cols;
        let segments = labels
            .iter()
            .map(|l| {
                let seg = (col, l.len().saturating_sub(1));
                col += seg.1;
                seg
            })
            .collect();
        Self {
            prompt_cols,
            segments,
        }
    }

    fn width(&self) -> usize {
        self.segments
            .last()
            .map_or(self.prompt_cols, |&(start, w)| start + w)
    }

    /// Additive mask `[B, 1, 1, T, shared + T]`: every query sees the shared prefix; a padding
    /// query sees only itself (so its softmax stays finite); a prompt query is causal over its
    /// row's unpadded prompt; a label query sees the prompt and its own label's earlier tokens.
    fn mask(
        &self,
        pads: &[usize],
        shared: usize,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.width();
        let mut seg_start = vec![0; t];
        for &(start, w) in &self.segments {
            for s in seg_start.iter_mut().skip(start).take(w) {
                *s = start;
            }
        }
        let p = self.prompt_cols;
        let mut m = Vec::with_capacity(pads.len() * t * (shared + t));
        for &pad in pads {
            for (i, &start) in seg_start.iter().enumerate() {
                m.extend(std::iter::repeat_n(0.0f32, shared));
                for j in 0..t {
                    let in_prompt = pad <= j && j < p;
                    let visible = if i < pad {
                        j == i
                    } else if i < p {
                        in_prompt && j <= i
                    } else {
                        in_prompt || (start <= j && j <= i)
                    };
                    m.push(if visible { 0.0 } else { MASK_VALUE });
                }
            }
        }
        Tensor::from_vec(m, (pads.len(), 1, 1, t, shared + t), dev)?.to_dtype(dtype)
    }

    /// For every (row, label, token) in that order: the LM-head row that predicts the token
    /// (rows are `n` × the columns from the prompt's last on), and the token.
    fn targets(&self, n: usize, labels: &[Vec<u32>]) -> (Vec<u32>, Vec<u32>) {
        let k = self.width() - self.prompt_cols.saturating_sub(1);
        let mut rows = Vec::new();
        let mut toks = Vec::new();
        for b in 0..n {
            for (label, &(start, _)) in labels.iter().zip(&self.segments) {
                for (j, &tok) in label.iter().enumerate() {
                    // Token 0 is predicted at the prompt's last column (relative 0), token j
                    // at the label's column j - 1.
                    let col = if j == 0 {
                        0
                    } else {
                        start + j - self.prompt_cols
                    };
                    rows.push((b * k + col) as u32);
                    toks.push(tok);
                }
            }
        }
        (rows, toks)
    }
}

/// Sums the picked log-probabilities (in [`Layout::targets`] order) per row and label, and
/// shares the batch's seconds by the tokens each row computed.
fn collect_scores(
    picked: &[f32],
    rests: &[&[u32]],
    shared: usize,
    labels: &[Vec<u32>],
    seconds: f64,
) -> Vec<ChoiceScores> {
    let label_cols: usize = labels.iter().map(|l| l.len().saturating_sub(1)).sum();
    let computed: usize = rests.iter().map(|r| r.len() + label_cols).sum();
    let mut next = picked.iter();
    rests
        .iter()
        .map(|rest| {
            let logliks = labels
                .iter()
                .map(|l| next.by_ref().take(l.len()).map(|&x| f64::from(x)).sum())
                .collect();
            ChoiceScores {
                logliks,
                label_tokens: labels.iter().map(|l| l.len() as u32).collect(),
                prompt_tokens: (shared + rest.len()) as u32,
                seconds: seconds * (rest.len() + label_cols) as f64 / computed.max(1) as f64,
            }
        })
        .collect()
}
