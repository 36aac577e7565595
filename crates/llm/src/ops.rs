//! Tensor operations the transformer needs that Candle does not offer in a form that is both
//! fast and differentiable.
//!
//! Candle's fused `rms_norm`, `softmax_last_dim` and `rope` are built without a backward pass:
//! a graph through them silently detaches and LoRA variables get no gradient. And a plain
//! `matmul` against a frozen weight also computes the weight's gradient, which nobody reads.
//! Here each fused op runs forward as Candle runs it, and a small custom op re-attaches the
//! graph with a hand-written backward; [`frozen_matmul`] multiplies by a frozen weight and
//! returns a gradient for the activations only. Where nothing tracks gradients (inference)
//! these are the plain fused ops, with no extra work.
//!
//! This module is not a general autograd extension: every backward here is checked against
//! Candle's slow reference ops in the tests below.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, D, DType, Layout, Result, Shape, Tensor};

use crate::kernels::{DecodeAttention, LoraAdd, LoraSpan, RmsNormCpu, Swiglu};

/// `x · wt` for activations `x` `[N, in]` and a frozen weight `wt` `[in, out]` (any strides,
/// e.g. a transposed view of an `[out, in]` weight). The backward returns the gradient of `x`
/// only; `wt` is treated as a constant even if it is a variable.
pub fn frozen_matmul(x: &Tensor, wt: &Tensor) -> Result<Tensor> {
    if !x.track_op() {
        return x.matmul(&wt.detach());
    }
    x.apply_op2(&wt.detach(), FrozenMatmul)
}

struct FrozenMatmul;

impl FrozenMatmul {
    fn bmnk(l1: &Layout, l2: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (m, k) = l1.shape().dims2()?;
        let (k2, n) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!(
                "frozen_matmul: shape mismatch {:?} x {:?}",
                l1.shape(),
                l2.shape()
            )
        }
        Ok((1, m, n, k))
    }
}

impl CustomOp2 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let bmnk = Self::bmnk(l1, l2)?;
        Ok((s1.matmul(s2, bmnk, l1, l2)?, Shape::from((bmnk.1, bmnk.2))))
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let bmnk = Self::bmnk(l1, l2)?;
        Ok((s1.matmul(s2, bmnk, l1, l2)?, Shape::from((bmnk.1, bmnk.2))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        wt: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.matmul(&wt.t()?)?), None))
    }
}

/// RMS normalisation over the last dimension, `x / sqrt(mean(x²) + eps) · alpha`, with a
/// gradient for `x` (`alpha` is frozen).
pub fn rms_norm(x: &Tensor, alpha: &Tensor, eps: f32) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        // One pass forward and one backward instead of Candle's kernel plus about ten
        // elementwise ops for the gradient. Used with and without gradients, so a model with
        // a fresh (B = 0) adapter computes exactly what the base model computes.
        let x = x.contiguous()?;
        let alpha = alpha.to_dtype(x.dtype())?.contiguous()?;
        let op = RmsNormCpu {
            eps: f64::from(eps),
        };
        return if x.track_op() {
            x.apply_op2(&alpha, op)
        } else {
            x.apply_op2_no_bwd(&alpha, &op)
        };
    }
    if x.dtype() == DType::F64 {
        // Candle's fused kernel has no f64 version; f64 is for gradient checks only.
        return candle_nn::ops::rms_norm_slow(x, alpha, eps);
    }
    let y = candle_nn::ops::rms_norm(x, alpha, eps)?;
    attach(
        x,
        y,
        Backward::RmsNorm {
            alpha: alpha.clone(),
            eps: f64::from(eps),
        },
    )
}

/// Softmax over the last dimension, with a gradient.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let y = candle_nn::ops::softmax_last_dim(x)?;
    attach(x, y, Backward::Softmax)
}

/// Rotary position embedding in the half-rotation (Hugging Face / NeoX) layout, with a
/// gradient for `x`. `x` is `[B, heads, T, head_dim]` (made contiguous here); `cos`/`sin` are
/// `[T, head_dim/2]` or, for per-row positions, `[B, T, head_dim/2]`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let y = candle_nn::rotary_emb::rope(&x, cos, sin)?;
    attach(
        &x,
        y,
        Backward::Rope {
            cos: cos.clone(),
            sin: sin.clone(),
        },
    )
}

/// `silu(gate) · up` for `gate_up` `[N, 2F]` holding gate in its first F columns and up in the
/// rest (the fused MLP projection) → `[N, F]`. On the CPU one pass forward and one pass
/// backward (Candle's silu and mul backward take about ten passes over these, the largest
/// activations of the model); elsewhere Candle's ops.
pub fn swiglu(gate_up: &Tensor) -> Result<Tensor> {
    let f = gate_up.dim(D::Minus1)? / 2;
    let supported = matches!(gate_up.dtype(), DType::F32 | DType::F64);
    if !gate_up.device().is_cpu() || !supported {
        let gate = gate_up.narrow(D::Minus1, 0, f)?;
        let up = gate_up.narrow(D::Minus1, f, f)?;
        return gate.silu()? * up;
    }
    let gate_up = gate_up.contiguous()?;
    if gate_up.track_op() {
        gate_up.apply_op1(Swiglu)
    } else {
        gate_up.apply_op1_no_bwd(&Swiglu)
    }
}

/// `y` `[N, C]` plus each LoRA adapter's update in its columns: `hs[i]` `[N, r_i]` is that
/// adapter's `x·Aᵀ`, `bs[i]` `[len_i, r_i]` its scaled B, `spans[i]` where they go. One op with
/// a gradient for all three (y's passes through), so the graph keeps `y`, `H` and `B` rather
/// than a full-width product and sum per adapter. CPU, f32/f64, `y` and the adapters in one
/// dtype; `None` elsewhere (add the products with Candle's ops).
pub(crate) fn lora_add(
    y: &Tensor,
    hs: &[Tensor],
    bs: &[Tensor],
    spans: &[LoraSpan],
) -> Result<Option<Tensor>> {
    let dtype = y.dtype();
    let same = hs
        .iter()
        .chain(bs)
        .all(|t| t.dtype() == dtype && t.device().is_cpu());
    if !y.device().is_cpu() || !matches!(dtype, DType::F32 | DType::F64) || !same {
        return Ok(None);
    }
    let y = y.contiguous()?;
    let h = Tensor::cat(hs, 1)?.contiguous()?;
    let b = Tensor::cat(bs, 0)?.contiguous()?;
    let op = LoraAdd {
        spans: spans.to_vec(),
    };
    Ok(Some(if y.track_op() || h.track_op() || b.track_op() {
        y.apply_op3(&h, &b, op)?
    } else {
        y.apply_op3_no_bwd(&h, &b, &op)?
    }))
}

/// One decode step of attention for every row and head at once: `q` `[B, kv_heads, group, d]`
/// (the query heads sharing a KV head folded together), `k`/`v` `[B, kv_heads, S, d]` (views
/// into the KV cache are fine), `mask` additive `[B, S]` values or none. Returns
/// `softmax(q·kᵀ·scale + mask)·v`, `[B, kv_heads, group, d]`, without gradient.
///
/// Candle would run this as two batched matmuls of `B·kv_heads` tiny gemm calls each, whose
/// per-call overhead made a 16-row decode step cost 3× its arithmetic; here it is one pass,
/// parallel over rows and heads. CPU f32 only: `None` elsewhere (use matmuls).
pub fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Option<Tensor>> {
    if !q.device().is_cpu() || q.dtype() != DType::F32 || q.track_op() {
        return Ok(None);
    }
    let (b, _, _, _) = k.dims4()?;
    let s = k.dim(2)?;
    let mask = match mask {
        Some(m) => {
            let m = m.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            if m.len() != b * s {
                return Ok(None);
            }
            Some(m)
        }
        None => None,
    };
    let q = q.contiguous()?;
    Ok(Some(q.apply_op3_no_bwd(
        k,
        v,
        &DecodeAttention {
            scale: scale as f32,
            mask,
        },
    )?))
}

/// How to take the gradient of an op whose forward Candle computed without a graph.
enum Backward {
    RmsNorm { alpha: Tensor, eps: f64 },
    Softmax,
    Rope { cos: Tensor, sin: Tensor },
}

/// Returns `y` (computed from `x` by a fused op without backward) as a node of `x`'s graph
/// whose backward is `backward`. A no-op when `x` tracks no gradient.
fn attach(x: &Tensor, y: Tensor, backward: Backward) -> Result<Tensor> {
    if !x.track_op() {
        return Ok(y);
    }
    // The op copies `y`'s storage, which must therefore be exactly `y`: fresh fused outputs are.
    let y = if y.is_contiguous() && y.layout().start_offset() == 0 {
        y
    } else {
        y.copy()?
    };
    x.apply_op2(&y, Attach(backward))
}

struct Attach(Backward);

fn check_plain(l: &Layout) -> Result<()> {
    if !l.is_contiguous() || l.start_offset() != 0 {
        candle_core::bail!("attach: forward result must be contiguous from offset 0")
    }
    Ok(())
}

impl CustomOp2 for Attach {
    fn name(&self) -> &'static str {
        "attach-backward"
    }

    fn cpu_fwd(
        &self,
        _s1: &CpuStorage,
        _l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_plain(l2)?;
        Ok((s2.try_clone(l2)?, l2.shape().clone()))
    }

    fn cuda_fwd(
        &self,
        _s1: &CudaStorage,
        _l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        check_plain(l2)?;
        Ok((s2.try_clone(l2)?, l2.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        y: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = match &self.0 {
            Backward::RmsNorm { alpha, eps } => {
                // y = x·r·α with r = (mean(x²) + eps)^-½; dx = r·(g − x·r²·mean(x·g)), g = dy·α.
                let g = dy.broadcast_mul(alpha)?;
                let r = (x.sqr()?.mean_keepdim(D::Minus1)? + *eps)?
                    .sqrt()?
                    .recip()?;
                let m = (x * &g)?.mean_keepdim(D::Minus1)?;
                let inner = (g - x.broadcast_mul(&(r.sqr()? * m)?)?)?;
                inner.broadcast_mul(&r)?
            }
            Backward::Softmax => {
                // dx = y·(dy − Σ dy·y)
                let s = (dy * y)?.sum_keepdim(D::Minus1)?;
                (dy.broadcast_sub(&s)? * y)?
            }
            Backward::Rope { cos, sin } => {
                // The rotation's transpose is the rotation by the opposite angle.
                candle_nn::rotary_emb::rope(&dy.contiguous()?, cos, &sin.neg()?)?
            }
        };
        Ok((Some(dx), None))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        // A deterministic pseudo-random tensor without relying on the device RNG.
        let n: usize = shape.iter().product();
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Gradient of sum(f(x) · w) through the fused op and through Candle's slow reference.
    fn check_grad(
        shape: &[usize],
        fast: impl Fn(&Tensor) -> Result<Tensor>,
        slow: impl Fn(&Tensor) -> Result<Tensor>,
    ) {
        let x = Var::from_tensor(&rand(shape, 1)).unwrap();
        let w = rand(shape, 2);
        let yf = fast(x.as_tensor()).unwrap();
        let ys = slow(x.as_tensor()).unwrap();
        let diff = (&yf - &ys).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5, "forward differs");
        let gf = (yf * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = (ys * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gf = gf.get(x.as_tensor()).unwrap();
        let gs = gs.get(x.as_tensor()).unwrap();
        let diff = (gf - gs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-4, "gradient differs");
    }

    #[test]
    fn rms_norm_grad_matches_slow() {
        let alpha = (rand(&[8], 3) + 1.5).unwrap();
        check_grad(
            &[5, 8],
            |x| rms_norm(x, &alpha, 1e-5),
            |x| candle_nn::ops::rms_norm_slow(x, &alpha, 1e-5),
        );
    }

    #[test]
    fn softmax_grad_matches_slow() {
        check_grad(&[2, 3, 7], softmax_last_dim, |x| {
            candle_nn::ops::softmax(x, D::Minus1)
        });
    }

    #[test]
    fn rope_grad_matches_slow() {
        let cos = rand(&[4, 3], 4);
        let sin = rand(&[4, 3], 5);
        check_grad(
            &[2, 3, 4, 6],
            |x| rope(x, &cos, &sin),
            |x| candle_nn::rotary_emb::rope_slow(x, &cos, &sin),
        );
    }

    #[test]
    fn swiglu_grad_matches_slow() {
        check_grad(&[3, 10], swiglu_grad_probe, |x| {
            let gate = x.narrow(1, 0, 5)?;
            let up = x.narrow(1, 5, 5)?;
            (gate.silu()? * up)?.pad_with_zeros(1, 0, 5)
        });
    }

    /// swiglu's output padded back to its input's width, so `check_grad` can compare it.
    fn swiglu_grad_probe(x: &Tensor) -> Result<Tensor> {
        swiglu(x)?.pad_with_zeros(1, 0, 5)
    }

    #[test]
    fn lora_add_matches_padded_products_with_gradients() {
        // y [5, 9] with rank-2 adapters on columns 0..4 and 6..9.
        let y = Var::from_tensor(&rand(&[5, 9], 1)).unwrap();
        let h1 = Var::from_tensor(&rand(&[5, 2], 2)).unwrap();
        let h2 = Var::from_tensor(&rand(&[5, 2], 3)).unwrap();
        let b1 = Var::from_tensor(&rand(&[4, 2], 4)).unwrap();
        let b2 = Var::from_tensor(&rand(&[3, 2], 5)).unwrap();
        let w = rand(&[5, 9], 6);
        let spans = vec![
            LoraSpan {
                col: 0,
                len: 4,
                h_col: 0,
                rank: 2,
                b_row: 0,
            },
            LoraSpan {
                col: 6,
                len: 3,
                h_col: 2,
                rank: 2,
                b_row: 4,
            },
        ];
        let hs = [h1.as_tensor().clone(), h2.as_tensor().clone()];
        let bs = [b1.as_tensor().clone(), b2.as_tensor().clone()];
        let fast = lora_add(y.as_tensor(), &hs, &bs, &spans).unwrap().unwrap();
        let p1 = h1
            .as_tensor()
            .matmul(&b1.as_tensor().pad_with_zeros(0, 0, 5).unwrap().t().unwrap())
            .unwrap();
        let p2 = h2
            .as_tensor()
            .matmul(&b2.as_tensor().pad_with_zeros(0, 6, 0).unwrap().t().unwrap())
            .unwrap();
        let slow = ((y.as_tensor() + p1).unwrap() + p2).unwrap();
        assert!(crate::testing::max_diff(&fast, &slow) < 1e-6);
        let gf = (fast * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = (slow * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&y, &h1, &h2, &b1, &b2] {
            let (a, b) = (
                gf.get(v.as_tensor()).unwrap(),
                gs.get(v.as_tensor()).unwrap(),
            );
            assert!(crate::testing::max_diff(a, b) < 1e-5);
        }
    }

    #[test]
    fn frozen_matmul_grads_only_the_input() {
        let x = Var::from_tensor(&rand(&[3, 4], 1)).unwrap();
        let w = Var::from_tensor(&rand(&[5, 4], 2)).unwrap();
        let y = frozen_matmul(x.as_tensor(), &w.as_tensor().t().unwrap()).unwrap();
        let y_ref = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let g_ref = y_ref.sum_all().unwrap().backward().unwrap();
        assert!(g.get(w.as_tensor()).is_none());
        let d = (g.get(x.as_tensor()).unwrap() - g_ref.get(x.as_tensor()).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
