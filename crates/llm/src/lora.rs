//! LoRA: the linear layer every projection of the transformer uses, frozen base weight plus an
//! optional low-rank update, `y = W·x + b + (alpha/r)·B·(A·dropout(x))`.
//!
//! A starts as PEFT starts it (Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in)) and B at
//! zero, so a fresh adapter leaves the model unchanged. A and B are `Var`s in f32 whatever the
//! model's dtype (f64 in an f64 model), so the optimiser works in full precision. The base
//! weight stays `[out, in]` as stored (Candle's gemm reads it transposed without a copy; it is
//! as fast as a pre-transposed copy for many rows and faster for few) and never receives a
//! gradient. Projections reading the same input can be fused into one weight. Merging folds `(alpha/r)·B·A` into the base weight; unmerging
//! takes it out again.
//!
//! This module knows nothing of files: PEFT names are built by [`crate::model::Llama`] and the
//! adapter format lives in the `finetune` crate (`adapter.rs`).

use candle_core::{DType, Result as CResult, Tensor, Var};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::kernels::LoraSpan;
use crate::{Error, ops};

/// The projections LoRA can adapt: the experiment's own vocabulary type, so a validated
/// spec's `lora_target_modules` arrive here without being parsed again.
pub use domain::LoraTarget;

/// PEFT's prefix for module `target` in layer `layer`, e.g.
/// `base_model.model.model.layers.3.self_attn.q_proj`; append `.lora_A.weight` or
/// `.lora_B.weight`.
pub fn peft_prefix(target: LoraTarget, layer: usize) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{}",
        target.hf_parent(),
        target.hf_name()
    )
}

/// LoRA hyper-parameters that shape the model (the optimiser's live in the trainer).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Adapted modules, sorted and without duplicates.
    pub targets: Vec<LoraTarget>,
}

impl LoraConfig {
    /// Validates and normalises (sorts, dedups targets).
    pub fn new(r: usize, alpha: f64, dropout: f64, targets: &[LoraTarget]) -> Result<Self, Error> {
        if r == 0 {
            return Err(Error::InvalidLora {
                reason: "rank r must be at least 1".into(),
            });
        }
        if !(0.0..1.0).contains(&dropout) {
            return Err(Error::InvalidLora {
                reason: format!("dropout {dropout} is not in [0, 1)"),
            });
        }
        if !alpha.is_finite() || alpha <= 0.0 {
            return Err(Error::InvalidLora {
                reason: format!("alpha {alpha} must be positive"),
            });
        }
        let mut targets = targets.to_vec();
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            return Err(Error::InvalidLora {
                reason: "no target modules".into(),
            });
        }
        Ok(Self {
            r,
            alpha,
            dropout,
            targets,
        })
    }

    /// From the experiment's hyper-parameters.
    pub fn from_hyper(h: &domain::LoraHyper) -> Result<Self, Error> {
        Self::new(
            h.lora_r,
            h.lora_alpha,
            h.lora_dropout,
            &h.lora_target_modules,
        )
    }

    /// `alpha / r`, the factor on `B·A`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }
}

/// Draws dropout masks from a seeded generator (Candle's CPU RNG cannot be seeded).
pub struct Dropout {
    rng: SmallRng,
}

impl Dropout {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// `x` with each element zeroed with probability `p` and the rest scaled by `1/(1-p)`.
    pub fn apply(&mut self, x: &Tensor, p: f64) -> CResult<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = (1.0 / (1.0 - p)) as f32;
        let p = p as f32;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.random::<f32>() < p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}

/// The low-rank update of one part of a [`Linear`].
struct Adapter {
    /// `[r, in]`, f32 (f64 in an f64 model).
    a: Var,
    /// `[out, r]`.
    b: Var,
    scale: f64,
    dropout: f64,
    merged: bool,
}

/// One projection of a (possibly fused) [`Linear`]: rows `offset..offset + out` of its weight.
struct Part {
    offset: usize,
    out: usize,
    adapter: Option<Adapter>,
}

/// Rows (tokens) up to which inference multiplies as `(W·xᵀ)ᵀ`: for a handful of rows that
/// streams the weight once and runs 1.5–2× faster than `x·Wᵀ` with Candle's gemm.
const SMALL_BATCH_ROWS: usize = 32;

/// A linear layer with a frozen weight and optional LoRA updates. Projections that read the
/// same input (q, k, v; gate, up) are fused into one weight so one larger matmul serves them
/// all; each keeps its own adapter.
pub struct Linear {
    /// `[Σ out, in]`, contiguous, as PyTorch and GGUF store it.
    w: Tensor,
    /// `[Σ out]`.
    bias: Option<Tensor>,
    parts: Vec<Part>,
    /// The weight as it was before the first merge, while any adapter is merged: unmerging
    /// puts it back exactly, so a worker that serves several jobs trains each from the same
    /// base. It costs a second copy of the (fused) weight while merged, that is while a
    /// fine-tune answers, never while it trains.
    premerge: Option<Tensor>,
}

impl Linear {
    /// One projection from its weight `[out, in]` and optional bias `[out]`.
    pub fn new(weight: &Tensor, bias: Option<Tensor>) -> CResult<Self> {
        Self::fused(std::slice::from_ref(weight), bias.map(|b| vec![b]))
    }

    /// Projections of the same input, fused: weights `[out_i, in]`, biases `[out_i]` (all or
    /// none).
    pub fn fused(weights: &[Tensor], biases: Option<Vec<Tensor>>) -> CResult<Self> {
        let mut parts = Vec::with_capacity(weights.len());
        let mut offset = 0;
        for w in weights {
            let out = w.dim(0)?;
            parts.push(Part {
                offset,
                out,
                adapter: None,
            });
            offset += out;
        }
        let w = Tensor::cat(weights, 0)?.detach().contiguous()?;
        let bias = match biases {
            Some(b) => Some(Tensor::cat(&b, 0)?.detach()),
            None => None,
        };
        Ok(Self {
            w,
            bias,
            parts,
            premerge: None,
        })
    }

    /// LoRA variables are f32, or f64 in an f64 model (gradient checks).
    fn lora_dtype(&self) -> DType {
        if self.w.dtype() == DType::F64 {
            DType::F64
        } else {
            DType::F32
        }
    }

    pub fn in_dim(&self) -> usize {
        self.w.dims().get(1).copied().unwrap_or(0)
    }

    /// Output size of part `part`.
    pub fn out_dim(&self, part: usize) -> usize {
        self.parts.get(part).map_or(0, |p| p.out)
    }

    fn part(&self, part: usize) -> CResult<&Part> {
        match self.parts.get(part) {
            Some(p) => Ok(p),
            None => candle_core::bail!("linear layer has no part {part}"),
        }
    }

    fn part_mut(&mut self, part: usize) -> CResult<&mut Part> {
        match self.parts.get_mut(part) {
            Some(p) => Ok(p),
            None => candle_core::bail!("linear layer has no part {part}"),
        }
    }

    /// `x` `[N, in]` → `[N, Σ out]`, every part's adapter added to its columns. `dropout` is
    /// given in training mode only; without it LoRA's dropout is off.
    ///
    /// On the CPU every adapter's `(x·Aᵀ)·(scale·B)ᵀ` is added to its columns by one op
    /// ([`ops::lora_add`]); elsewhere by one zero-padded full-width product per adapter.
    pub fn forward(&self, x: &Tensor, mut dropout: Option<&mut Dropout>) -> CResult<Tensor> {
        let rows = x.dim(0)?;
        let mut y = if !x.track_op() && rows <= SMALL_BATCH_ROWS {
            self.w.matmul(&x.t()?)?.t()?.contiguous()?
        } else {
            ops::frozen_matmul(x, &self.w.t()?)?
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let total: usize = self.parts.iter().map(|p| p.out).sum();
        let mut x_lora = None;
        let (mut hs, mut bs, mut spans) = (Vec::new(), Vec::new(), Vec::new());
        let (mut h_col, mut b_row) = (0, 0);
        for p in &self.parts {
            let Some(ad) = p.adapter.as_ref().filter(|a| !a.merged) else {
                continue;
            };
            let xl = match &x_lora {
                Some(xl) => xl,
                None => x_lora.insert(x.to_dtype(self.lora_dtype())?),
            };
            let xd = match dropout.as_deref_mut() {
                Some(d) => d.apply(xl, ad.dropout)?,
                None => xl.clone(),
            };
            let h = xd.matmul(&ad.a.as_tensor().t()?)?;
            let rank = h.dim(1)?;
            spans.push(LoraSpan {
                col: p.offset,
                len: p.out,
                h_col,
                rank,
                b_row,
            });
            (h_col, b_row) = (h_col + rank, b_row + p.out);
            hs.push(h);
            bs.push((ad.b.as_tensor() * ad.scale)?);
        }
        if hs.is_empty() {
            return Ok(y);
        }
        if let Some(out) = ops::lora_add(&y, &hs, &bs, &spans)? {
            return Ok(out);
        }
        // Elsewhere: each update as a full-width product, B zero-padded to the other parts'
        // columns (slicing the output instead would make the backward build padded gradients).
        for ((h, b), s) in hs.iter().zip(bs).zip(&spans) {
            let b = if s.len == total {
                b
            } else {
                b.pad_with_zeros(0, s.col, total - s.col - s.len)?
            };
            y = (y + h.matmul(&b.t()?)?.to_dtype(self.w.dtype())?)?;
        }
        Ok(y)
    }

    /// The output `y` `[N, Σ out]` of [`Linear::forward`] as one `[N, out_i]` view per part.
    pub fn split_parts(&self, y: &Tensor) -> CResult<Vec<Tensor>> {
        if self.parts.len() == 1 {
            return Ok(vec![y.clone()]);
        }
        self.parts
            .iter()
            .map(|p| y.narrow(1, p.offset, p.out))
            .collect()
    }

    /// Adds a fresh adapter to `part`: A Kaiming-uniform (PEFT's init), B zero.
    pub fn add_lora(&mut self, part: usize, cfg: &LoraConfig, rng: &mut SmallRng) -> CResult<()> {
        let (fan_in, out) = (self.in_dim(), self.part(part)?.out);
        // kaiming_uniform(a=√5): gain √(2/(1+a²)) = √(1/3), bound gain·√(3/fan_in) = 1/√fan_in.
        let bound = 1.0 / (fan_in as f32).sqrt();
        let a: Vec<f32> = (0..cfg.r * fan_in)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let a = Tensor::from_vec(a, (cfg.r, fan_in), self.w.device())?;
        let b = Tensor::zeros((out, cfg.r), self.lora_dtype(), self.w.device())?;
        self.set_lora(part, &a, &b, cfg)
    }

    /// Installs an adapter on `part` with the given A `[r, in]` and B `[out, r]` (copied into
    /// new variables).
    pub fn set_lora(
        &mut self,
        part: usize,
        a: &Tensor,
        b: &Tensor,
        cfg: &LoraConfig,
    ) -> CResult<()> {
        let (r, fan_in) = a.dims2()?;
        let (out, r2) = b.dims2()?;
        let want_out = self.part(part)?.out;
        if r != r2 || fan_in != self.in_dim() || out != want_out || r != cfg.r {
            candle_core::bail!(
                "LoRA shapes A {:?}, B {:?} do not fit a {}→{} projection with r={}",
                a.shape(),
                b.shape(),
                self.in_dim(),
                want_out,
                cfg.r
            )
        }
        self.unmerge()?;
        let dev = self.w.device().clone();
        let dtype = self.lora_dtype();
        self.part_mut(part)?.adapter = Some(Adapter {
            a: Var::from_tensor(&a.to_device(&dev)?.to_dtype(dtype)?)?,
            b: Var::from_tensor(&b.to_device(&dev)?.to_dtype(dtype)?)?,
            scale: cfg.scale(),
            dropout: cfg.dropout,
            merged: false,
        });
        Ok(())
    }

    /// Drops every adapter (unmerging merged ones first).
    pub fn remove_lora(&mut self) -> CResult<()> {
        self.unmerge()?;
        for p in &mut self.parts {
            p.adapter = None;
        }
        Ok(())
    }

    /// The `(A, B)` variables of `part`'s adapter.
    pub fn lora(&self, part: usize) -> Option<(&Var, &Var)> {
        self.parts
            .get(part)?
            .adapter
            .as_ref()
            .map(|ad| (&ad.a, &ad.b))
    }

    /// `(alpha/r)·B·A`, `[out, in]`, in the weight's dtype.
    fn delta(&self, ad: &Adapter) -> CResult<Tensor> {
        let ba = ad.b.as_tensor().matmul(ad.a.as_tensor())?;
        (ba * ad.scale)?.to_dtype(self.w.dtype())
    }

    /// Folds the unmerged adapters into the weight; forward then costs what the base layer
    /// costs. The weight from before the first merge is kept for [`Linear::unmerge`].
    pub fn merge(&mut self) -> CResult<()> {
        if !self
            .parts
            .iter()
            .any(|p| p.adapter.as_ref().is_some_and(|a| !a.merged))
        {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            let w = self.w.narrow(0, p.offset, p.out)?;
            rows.push(match &p.adapter {
                Some(ad) if !ad.merged => (w + self.delta(ad)?)?,
                _ => w,
            });
        }
        let merged = Tensor::cat(&rows, 0)?.contiguous()?;
        let before = std::mem::replace(&mut self.w, merged);
        self.premerge.get_or_insert(before);
        for ad in self.parts.iter_mut().filter_map(|p| p.adapter.as_mut()) {
            ad.merged = true;
        }
        Ok(())
    }

    /// Takes merged adapters back out of the weight: the weight from before the first merge,
    /// bit for bit (subtracting the update again would leave rounding behind).
    pub fn unmerge(&mut self) -> CResult<()> {
        if let Some(w) = self.premerge.take() {
            self.w = w;
        }
        for ad in self.parts.iter_mut().filter_map(|p| p.adapter.as_mut()) {
            ad.merged = false;
        }
        Ok(())
    }

    pub fn is_merged(&self) -> bool {
        self.parts
            .iter()
            .any(|p| p.adapter.as_ref().is_some_and(|a| a.merged))
    }

    /// The effective weight of `part`, `[out, in]`: base plus its adapter's update (merged or
    /// not).
    pub fn effective_weight(&self, part: usize) -> CResult<Tensor> {
        let p = self.part(part)?;
        let w = self.w.narrow(0, p.offset, p.out)?;
        match &p.adapter {
            Some(ad) if !ad.merged => w + self.delta(ad)?,
            _ => w.contiguous(),
        }
    }

    /// The bias of `part`, if the layer has biases.
    pub fn bias(&self, part: usize) -> Option<Tensor> {
        let p = self.parts.get(part)?;
        self.bias.as_ref()?.narrow(0, p.offset, p.out).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::max_diff;
    use candle_core::Device;

    fn layer() -> (Linear, Tensor) {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (6, 4), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, 6, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap();
        (Linear::new(&w, Some(bias)).unwrap(), x)
    }

    #[test]
    fn fresh_adapter_is_identity_and_merge_matches() {
        let (mut lin, x) = layer();
        let base = lin.forward(&x, None).unwrap();
        let cfg = LoraConfig::new(2, 4.0, 0.0, &[LoraTarget::Q]).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        lin.add_lora(0, &cfg, &mut rng).unwrap();
        assert_eq!(max_diff(&base, &lin.forward(&x, None).unwrap()), 0.0);
        // A non-zero B: merged equals unmerged, unmerging restores the same outputs, and
        // removing the adapter restores the base.
        let (a, _) = lin.lora(0).unwrap();
        let a = a.as_tensor().clone();
        let b = Tensor::randn(0f32, 1.0, (6, 2), &Device::Cpu).unwrap();
        lin.set_lora(0, &a, &b, &cfg).unwrap();
        let unmerged = lin.forward(&x, None).unwrap();
        assert!(max_diff(&base, &unmerged) > 1e-3);
        lin.merge().unwrap();
        assert!(max_diff(&unmerged, &lin.forward(&x, None).unwrap()) < 1e-5);
        lin.unmerge().unwrap();
        assert!(max_diff(&unmerged, &lin.forward(&x, None).unwrap()) < 1e-5);
        lin.merge().unwrap();
        lin.remove_lora().unwrap();
        // Bit for bit: the weight from before the merge comes back.
        assert_eq!(max_diff(&base, &lin.forward(&x, None).unwrap()), 0.0);
    }

    #[test]
    fn fused_parts_equal_separate_layers() {
        let dev = Device::Cpu;
        let w1 = Tensor::randn(0f32, 1.0, (6, 4), &dev).unwrap();
        let w2 = Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (40, 4), &dev).unwrap();
        let cfg = LoraConfig::new(2, 4.0, 0.0, &[LoraTarget::K]).unwrap();
        let mut fused = Linear::fused(&[w1.clone(), w2.clone()], None).unwrap();
        let mut single = Linear::new(&w2, None).unwrap();
        let a = Tensor::randn(0f32, 1.0, (2, 4), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, (3, 2), &dev).unwrap();
        fused.set_lora(1, &a, &b, &cfg).unwrap();
        single.set_lora(0, &a, &b, &cfg).unwrap();
        // Both the small-batch and the large-batch paths.
        for rows in [3, 40] {
            let x = x.narrow(0, 0, rows).unwrap();
            let parts = fused
                .split_parts(&fused.forward(&x, None).unwrap())
                .unwrap();
            let first = x.matmul(&w1.t().unwrap()).unwrap();
            assert!(max_diff(&parts[0], &first) < 1e-5);
            assert!(max_diff(&parts[1], &single.forward(&x, None).unwrap()) < 1e-5);
        }
        fused.merge().unwrap();
        let merged = fused
            .split_parts(&fused.forward(&x, None).unwrap())
            .unwrap();
        assert!(max_diff(&merged[1], &single.forward(&x, None).unwrap()) < 1e-4);
        assert!(max_diff(&fused.effective_weight(0).unwrap(), &w1) < 1e-6);
    }

    #[test]
    fn targets_parse() {
        assert_eq!(LoraTarget::parse("gate_proj").unwrap(), LoraTarget::Gate);
        assert_eq!(LoraTarget::parse("v").unwrap(), LoraTarget::V);
        assert!(LoraTarget::parse("lm_head").is_none());
        assert_eq!(
            peft_prefix(LoraTarget::Down, 2),
            "base_model.model.model.layers.2.mlp.down_proj"
        );
    }
}
