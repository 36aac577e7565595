//! The llama-family transformer (Llama 2/3, SmolLM2, Qwen2-style with q/k/v biases), in
//! Candle's order: [`Config`], private blocks each built with `new(cfg, vb)`, then the public
//! [`Llama`] with `new` and its forward passes.
//!
//! Weights are always in the Hugging Face layout with half-rotation RoPE: the GGUF loader
//! (`weights.rs`) un-permutes llama.cpp's q/k rows at load, so one forward serves both formats
//! and LoRA tensors map one to one onto PEFT's.
//!
//! Activations stay flat, `[B·T, H]`, through every linear (3-D broadcast matmuls build large
//! gradients), and q/k/v and gate/up are fused into one matmul each. The fused kernels (RMS
//! norm, softmax, RoPE, SwiGLU) come from [`crate::ops`], which gives them a backward, so the
//! same forward serves inference and LoRA training; training mode ([`Llama::set_training`])
//! only switches LoRA dropout on. Grouped-query attention folds the query heads that share a KV
//! head into the row dimension instead of repeating K and V; a one-token decode step uses a
//! dedicated attention kernel over the [`KvCache`].
//!
//! Not here: adding, reading and merging LoRA adapters (`llama_lora.rs`), file formats
//! (`weights.rs`), the cache (`kv_cache.rs`), tokens and chat templates, sampling
//! (`generate.rs`).

use std::sync::Mutex;

use candle_core::{DType, Device, Result as CResult, Tensor};
use candle_nn::VarBuilder;

pub use crate::kv_cache::KvCache;

// The LoRA side of `Llama` (adding, reading, setting and merging adapters) lives beside
// `lora.rs`; as a child module it reaches the private layers.
#[path = "llama_lora.rs"]
mod llama_lora;
use crate::lora::{Dropout, Linear, LoraConfig};
use crate::{Error, attention, ops};

/// Largest RoPE table built, whatever the model claims as its context.
const MAX_ROPE_POSITIONS: usize = 32_768;

/// Additive mask value: finite, so a fully masked (padding) row softmaxes to a uniform row
/// instead of NaN.
pub const MASK_VALUE: f32 = -1e9;

/// The architecture's hyper-parameters, in Hugging Face's names.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Per-frequency divisors of the RoPE frequencies (Llama 3.1's `rope_scaling`, or GGUF's
    /// `rope_freqs.weight`), `head_dim/2` values.
    pub rope_freq_factors: Option<Vec<f32>>,
    pub max_position_embeddings: usize,
    /// The LM head is the embedding matrix.
    pub tie_word_embeddings: bool,
    /// q/k/v projections carry biases (Qwen2). Loaders also detect biases by their presence.
    pub attention_bias: bool,
}

impl Config {
    /// Usable context length (the model's, capped by the RoPE table built).
    pub fn context_length(&self) -> usize {
        self.max_position_embeddings.min(MAX_ROPE_POSITIONS)
    }

    fn check(&self) -> Result<(), Error> {
        let bad = |reason: String| {
            Err(Error::UnsupportedArchitecture {
                architecture: reason,
            })
        };
        if self.num_attention_heads == 0
            || self.num_key_value_heads == 0
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return bad(format!(
                "{} attention heads over {} KV heads",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!("odd head_dim {}", self.head_dim));
        }
        Ok(())
    }
}

/// Cos/sin tables of the rotary embedding, `[positions, head_dim/2]`.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(cfg: &Config, dtype: DType, dev: &Device) -> CResult<Self> {
        let half = cfg.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let f = 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim as f64) as f32;
                match &cfg.rope_freq_factors {
                    Some(div) => f / div.get(i).copied().unwrap_or(1.0),
                    None => f,
                }
            })
            .collect();
        let n = cfg.context_length();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), dev)?;
        let t = Tensor::arange(0u32, n as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((n, 1))?;
        let freqs = t.broadcast_mul(&inv_freq)?;
        Ok(Self {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    /// Tables for positions `0..t`.
    fn prefix(&self, t: usize) -> CResult<(Tensor, Tensor)> {
        Ok((self.cos.narrow(0, 0, t)?, self.sin.narrow(0, 0, t)?))
    }

    /// Tables for per-row positions `[B, T]` (u32): `[B, T, head_dim/2]`.
    fn at(&self, positions: &Tensor) -> CResult<(Tensor, Tensor)> {
        let (b, t) = positions.dims2()?;
        let flat = positions.flatten_all()?;
        let half = self.cos.dim(1)?;
        Ok((
            self.cos.index_select(&flat, 0)?.reshape((b, t, half))?,
            self.sin.index_select(&flat, 0)?.reshape((b, t, half))?,
        ))
    }
}

/// Everything one forward pass needs besides the activations.
struct Pass<'a> {
    batch: usize,
    seq: usize,
    cos: &'a Tensor,
    sin: &'a Tensor,
    /// Additive mask broadcastable to `[B, kv_heads, group, T, S]`, or none (no masking).
    mask: Option<&'a Tensor>,
    /// Plain causal attention over positions `0..T` (no cache, `mask` is the causal mask): the
    /// fused [`attention::causal_attention`] may run instead of the op chain.
    causal: bool,
}

/// Which layer of the cache a block writes, and the cache.
struct CacheSlot<'a> {
    cache: &'a mut KvCache,
    layer: usize,
}

struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn new(size: usize, eps: f64, vb: VarBuilder) -> CResult<Self> {
        Ok(Self {
            weight: vb
                .get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?
                .detach(),
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        ops::rms_norm(x, &self.weight, self.eps)
    }
}

/// A weight `[out, in]` and, when `bias` or present in the file, a bias `[out]`.
fn weight_and_bias(
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    vb: &VarBuilder,
) -> CResult<(Tensor, Option<Tensor>)> {
    let init = candle_nn::init::DEFAULT_KAIMING_NORMAL;
    let w = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let b = if bias || vb.contains_tensor("bias") {
        Some(vb.get_with_hints(out_dim, "bias", candle_nn::Init::Const(0.0))?)
    } else {
        None
    };
    Ok((w, b))
}

/// Projections of the same input, `(name, out_dim)`, fused into one [`Linear`].
fn fused_linear(
    in_dim: usize,
    parts: &[(&str, usize)],
    bias: bool,
    vb: &VarBuilder,
) -> CResult<Linear> {
    let mut weights = Vec::with_capacity(parts.len());
    let mut biases = Vec::with_capacity(parts.len());
    for (name, out) in parts {
        let (w, b) = weight_and_bias(in_dim, *out, bias, &vb.pp(*name))?;
        weights.push(w);
        biases.extend(b);
    }
    let biases = if biases.is_empty() {
        None
    } else if biases.len() == parts.len() {
        Some(biases)
    } else {
        candle_core::bail!(
            "{}: some of the fused projections have biases, some not",
            vb.prefix()
        )
    };
    Linear::fused(&weights, biases)
}

struct Attention {
    /// q, k and v fused (parts 0, 1, 2).
    qkv: Linear,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &Config, vb: VarBuilder) -> CResult<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let parts = [("q_proj", nh * d), ("k_proj", nkv * d), ("v_proj", nkv * d)];
        Ok(Self {
            qkv: fused_linear(h, &parts, cfg.attention_bias, &vb)?,
            o_proj: fused_linear(nh * d, &[("o_proj", h)], false, &vb)?,
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: d,
        })
    }

    /// `x` `[B·T, H]` → `[B·T, H]`.
    fn forward(
        &self,
        x: &Tensor,
        pass: &Pass,
        cache: Option<CacheSlot>,
        mut drop: Option<&mut Dropout>,
    ) -> CResult<Tensor> {
        let (b, t, d) = (pass.batch, pass.seq, self.head_dim);
        let (nh, nkv) = (self.num_heads, self.num_kv_heads);
        let group = nh / nkv;
        let qkv = self.qkv.forward(x, drop.as_deref_mut())?;
        if pass.causal && cache.is_none() {
            let heads = attention::Heads {
                batch: b,
                seq: t,
                heads: nh,
                kv_heads: nkv,
                head_dim: d,
            };
            if let Some(y) = attention::causal_attention(&qkv, pass.cos, pass.sin, heads)? {
                return self.o_proj.forward(&y, drop);
            }
        }
        let mut qkv = self.qkv.split_parts(&qkv)?.into_iter();
        let (Some(q), Some(k), Some(v)) = (qkv.next(), qkv.next(), qkv.next()) else {
            candle_core::bail!("fused qkv projection without three parts")
        };
        let q = q.reshape((b, t, nh, d))?.transpose(1, 2)?;
        let k = k.reshape((b, t, nkv, d))?.transpose(1, 2)?;
        let v = v.reshape((b, t, nkv, d))?.transpose(1, 2)?;
        let q = ops::rope(&q, pass.cos, pass.sin)?;
        let k = ops::rope(&k, pass.cos, pass.sin)?;
        let (k, v) = match cache {
            Some(slot) => slot.cache.append(slot.layer, &k, &v)?,
            None => (k, v.contiguous()?),
        };
        let s = k.dim(2)?;
        let scale = 1.0 / (d as f64).sqrt();
        if t == 1
            && let Some(y) =
                ops::decode_attention(&q.reshape((b, nkv, group, d))?, &k, &v, pass.mask, scale)?
        {
            return self.o_proj.forward(&y.reshape((b, nh * d))?, drop);
        }
        // Heads h·group..(h+1)·group share KV head h: fold them into the rows.
        let q = (q * scale)?.reshape((b, nkv, group * t, d))?;
        let att = q.matmul(&k.t()?)?;
        let att = match pass.mask {
            Some(m) => att.reshape((b, nkv, group, t, s))?.broadcast_add(m)?,
            None => att,
        };
        let att = ops::softmax_last_dim(&att)?.reshape((b, nkv, group * t, s))?;
        let y = att.matmul(&v)?; // [b, nkv, group·t, d]
        let y = y
            .reshape((b, nh, t, d))?
            .transpose(1, 2)?
            .reshape((b * t, nh * d))?;
        self.o_proj.forward(&y, drop)
    }
}

struct Mlp {
    /// gate and up fused (parts 0, 1).
    gate_up: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(cfg: &Config, vb: VarBuilder) -> CResult<Self> {
        let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_up: fused_linear(h, &[("gate_proj", f), ("up_proj", f)], false, &vb)?,
            down_proj: fused_linear(f, &[("down_proj", h)], false, &vb)?,
        })
    }

    fn forward(&self, x: &Tensor, mut drop: Option<&mut Dropout>) -> CResult<Tensor> {
        let gate_up = self.gate_up.forward(x, drop.as_deref_mut())?;
        self.down_proj.forward(&ops::swiglu(&gate_up)?, drop)
    }
}

struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn new(cfg: &Config, vb: VarBuilder) -> CResult<Self> {
        Ok(Self {
            input_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        pass: &Pass,
        cache: Option<CacheSlot>,
        mut drop: Option<&mut Dropout>,
    ) -> CResult<Tensor> {
        let h = self.input_layernorm.forward(x)?;
        let h = self
            .self_attn
            .forward(&h, pass, cache, drop.as_deref_mut())?;
        let x = (x + h)?;
        let h = self.post_attention_layernorm.forward(&x)?;
        let h = self.mlp.forward(&h, drop)?;
        x + h
    }
}

/// A llama-family decoder with optional LoRA adapters on its projections.
///
/// API for the trainer:
/// - [`Llama::add_lora`] then [`Llama::lora_vars`] gives the trainable `Var`s under PEFT names;
/// - [`Llama::set_training`]`(true)` switches LoRA dropout on;
/// - [`Llama::forward_hidden`] `[B, T]` u32 ids → `[B, T, H]` final normed hidden states
///   (causal attention from position 0; pad on the right);
/// - [`Llama::lm_head`] `[N, H]` → `[N, V]` logits for the rows you select (answer positions);
/// - [`Llama::merge_lora`] / [`Llama::unmerge_lora`]; [`Llama::set_lora_tensors`] installs a
///   PEFT adapter; [`Llama::merged_weights`] gives the HF-named weights for export.
pub struct Llama {
    embed_tokens: Tensor,
    layers: Vec<Block>,
    norm: RmsNorm,
    /// `[V, H]` (the embeddings when tied).
    lm_head: Tensor,
    rotary: Rotary,
    cfg: Config,
    lora: Option<LoraConfig>,
    training: bool,
    dropout: Mutex<Dropout>,
    device: Device,
    dtype: DType,
}

impl Llama {
    /// Builds the model from weights in Hugging Face naming (`model.layers.N.self_attn.q_proj.
    /// weight`, …). `vb` decides device and dtype; with a `VarMap` builder it creates random
    /// weights (tests).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self, Error> {
        cfg.check()?;
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let m = vb.pp("model");
        // Weights are constants: detached, so a `VarMap` builder (tests) behaves like a file.
        let embed_tokens = m
            .get_with_hints(
                (cfg.vocab_size, cfg.hidden_size),
                "embed_tokens.weight",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )?
            .detach();
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::new(cfg, m.pp("layers").pp(i)))
            .collect::<CResult<Vec<_>>>()?;
        let norm = RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, m.pp("norm"))?;
        let lm_head = if cfg.tie_word_embeddings {
            embed_tokens.clone()
        } else {
            vb.get_with_hints(
                (cfg.vocab_size, cfg.hidden_size),
                "lm_head.weight",
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
            )?
            .detach()
            .contiguous()?
        };
        Ok(Self {
            rotary: Rotary::new(cfg, dtype, &device)?,
            embed_tokens,
            layers,
            norm,
            lm_head,
            cfg: cfg.clone(),
            lora: None,
            training: false,
            dropout: Mutex::new(Dropout::new(0)),
            device,
            dtype,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of weights and activations (LoRA variables are always f32).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Training mode switches LoRA dropout on (seeded by `seed`); the forward is differentiable
    /// in both modes.
    pub fn set_training(&mut self, training: bool, seed: u64) {
        self.training = training;
        if let Ok(mut d) = self.dropout.lock() {
            *d = Dropout::new(seed);
        }
    }

    pub fn is_training(&self) -> bool {
        self.training
    }

    fn embed(&self, input_ids: &Tensor) -> CResult<Tensor> {
        self.embed_tokens.index_select(&input_ids.flatten_all()?, 0)
    }

    fn run_layers(
        &self,
        mut x: Tensor,
        pass: &Pass,
        mut cache: Option<&mut KvCache>,
    ) -> CResult<Tensor> {
        let mut guard = if self.training && self.lora.as_ref().is_some_and(|l| l.dropout > 0.0) {
            self.dropout.lock().ok()
        } else {
            None
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache
                .as_deref_mut()
                .map(|cache| CacheSlot { cache, layer: i });
            x = layer.forward(&x, pass, slot, guard.as_deref_mut())?;
        }
        self.norm
            .forward(&x)?
            .reshape((pass.batch, pass.seq, self.cfg.hidden_size))
    }

    /// `input_ids` `[B, T]` (u32) → final normed hidden states `[B, T, H]`, with causal attention
    /// from position 0 in every row (pad on the right; padding never influences earlier
    /// positions). Differentiable with respect to the LoRA variables.
    pub fn forward_hidden(&self, input_ids: &Tensor) -> CResult<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let (cos, sin) = self.rotary.prefix(t)?;
        let mask = if t > 1 {
            Some(causal_mask(t, 0, self.dtype, &self.device)?)
        } else {
            None
        };
        let pass = Pass {
            batch: b,
            seq: t,
            cos: &cos,
            sin: &sin,
            mask: mask.as_ref(),
            causal: true,
        };
        self.run_layers(self.embed(input_ids)?, &pass, None)
    }

    /// One step of incremental decoding: `input_ids` `[B, T]` at per-row `positions` `[B, T]`
    /// (u32), attending to the `cache` plus these tokens under `mask` (additive, broadcastable to
    /// `[B, 1, 1, T, cache.len() + T]`; see [`MASK_VALUE`]). Appends to the cache and returns the
    /// hidden states `[B, T, H]`.
    pub fn forward_cached(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> CResult<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let (cos, sin) = self.rotary.at(positions)?;
        let pass = Pass {
            batch: b,
            seq: t,
            cos: &cos,
            sin: &sin,
            mask,
            causal: false,
        };
        let h = self.run_layers(self.embed(input_ids)?, &pass, Some(cache))?;
        cache.advance(t);
        Ok(h)
    }

    /// Logits `[N, V]` for hidden rows `[N, H]`.
    pub fn lm_head(&self, hidden: &Tensor) -> CResult<Tensor> {
        ops::frozen_matmul(hidden, &self.lm_head.t()?)
    }

    /// Logits `[B, T, V]` for every position (tests and small inputs; prefer selecting rows and
    /// calling [`Llama::lm_head`]).
    pub fn forward(&self, input_ids: &Tensor) -> CResult<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let h = self
            .forward_hidden(input_ids)?
            .reshape((b * t, self.cfg.hidden_size))?;
        self.lm_head(&h)?.reshape((b, t, self.cfg.vocab_size))
    }
}

/// Causal additive mask `[1, 1, 1, T, offset + T]`: query `i` sees keys `0..=offset + i`.
pub fn causal_mask(t: usize, offset: usize, dtype: DType, dev: &Device) -> CResult<Tensor> {
    let s = offset + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..s).map(move |j| if j > offset + i { MASK_VALUE } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (1, 1, 1, t, s), dev)?.to_dtype(dtype)
}
