//! Causal self-attention over whole sequences (training and loss evaluation), from the fused
//! q/k/v projection to the input of `o_proj`, as one differentiable op.
//!
//! Built from Candle's ops the same attention is a chain: narrow the projection into q, k and
//! v; rotate q and k (a copy, the rotation, a copy to attach its backward); scale; a batched
//! matmul; an additive mask; softmax (and its copy); a second matmul; a transpose back. The
//! backward walks each link in reverse, and the three narrows alone build three zero-padded
//! full-width gradients and add them. Each of those links is a pass over memory on Candle's
//! barrier pool, whose workers spin between ops while the matmuls want the cores.
//!
//! Here the work around the batched matmuls (Candle's gemm: two forward, four backward) is
//! three passes forward (split + rotate + scale, masked softmax, merge heads) and three
//! backward (split heads, softmax gradient, rotate back + merge into one `[B·T, q+k+v]`
//! gradient), on rayon like the matmuls. The probabilities are kept for the backward, as Candle's graph
//! keeps the softmax output.
//!
//! CPU, f32 and f64; [`causal_attention`] returns `None` elsewhere and the model uses Candle's
//! ops. Checked against that chain, values and gradients, in the tests below.

use std::sync::{Mutex, PoisonError};

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::{Float, FloatKernel, min_rows, run_float, with_values};

/// The head layout of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl Heads {
    /// Query heads per key/value head.
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Columns of the fused projection: q heads, then k heads, then v heads.
    fn width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    /// Rows per (batch row, kv head) block of the split layout: the group's q heads, k, v.
    fn block_rows(&self) -> usize {
        (self.group() + 2) * self.seq
    }

    /// The q heads of a split-layout tensor, `[B, kv_heads, group·T, d]`.
    fn q(&self, split: &Tensor) -> Result<Tensor> {
        split.narrow(2, 0, self.group() * self.seq)
    }

    /// Its k, `[B, kv_heads, T, d]`.
    fn k(&self, split: &Tensor) -> Result<Tensor> {
        split.narrow(2, self.group() * self.seq, self.seq)
    }

    /// Its v, `[B, kv_heads, T, d]`.
    fn v(&self, split: &Tensor) -> Result<Tensor> {
        split.narrow(2, (self.group() + 1) * self.seq, self.seq)
    }

    fn check(&self, qkv: &Layout, cos: &Layout, sin: &Layout) -> Result<()> {
        let n = self.batch * self.seq;
        let half = self.head_dim / 2;
        if self.kv_heads == 0
            || !self.heads.is_multiple_of(self.kv_heads)
            || !self.head_dim.is_multiple_of(2)
            || qkv.shape().dims() != [n, self.width()]
            || cos.shape().dims() != [self.seq, half]
            || sin.shape().dims() != [self.seq, half]
        {
            candle_core::bail!(
                "causal-attention: shapes {:?}, {:?}, {:?} do not fit {self:?}",
                qkv.shape(),
                cos.shape(),
                sin.shape()
            )
        }
        Ok(())
    }
}

/// `softmax(q·kᵀ/√d + causal mask)·v` for every query head, with q and k rotated (half-rotation
/// layout) by `cos`/`sin` `[T, head_dim/2]` (positions `0..T`). `qkv` is `[B·T, (heads +
/// 2·kv_heads)·head_dim]` as the fused projection writes it; the result is `[B·T,
/// heads·head_dim]`, the input of `o_proj`. Differentiable for `qkv`. `None` where this op does
/// not run (not the CPU, or not f32/f64).
pub fn causal_attention(
    qkv: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    heads: Heads,
) -> Result<Option<Tensor>> {
    if !qkv.device().is_cpu() || !matches!(qkv.dtype(), DType::F32 | DType::F64) {
        return Ok(None);
    }
    let qkv = qkv.contiguous()?;
    let cos = cos.to_dtype(qkv.dtype())?.contiguous()?;
    let sin = sin.to_dtype(qkv.dtype())?.contiguous()?;
    let op = CausalAttention {
        heads,
        saved: Mutex::new(None),
    };
    Ok(Some(if qkv.track_op() {
        qkv.apply_op3(&cos, &sin, op)?
    } else {
        qkv.apply_op3_no_bwd(&cos, &sin, &op)?
    }))
}

struct CausalAttention {
    heads: Heads,
    /// What the forward leaves for the backward.
    saved: Mutex<Option<Saved>>,
}

#[derive(Clone)]
struct Saved {
    /// `[B, kv_heads, (group + 2)·T, d]`: per block the group's rotated, scaled q heads, then
    /// the rotated k, then v.
    split: Tensor,
    /// Attention probabilities `[B, kv_heads, group·T, T]`, zero above the diagonal.
    probs: Tensor,
}

/// `dst = rotate(src)·scale` over one head row: the first half pairs with the second.
fn rotate<T: Float>(dst: &mut [T], src: &[T], cos: &[T], sin: &[T], scale: T) {
    let half = cos.len();
    let (d1, d2) = dst.split_at_mut(half);
    let (s1, s2) = src.split_at(half);
    for i in 0..half {
        let (x1, x2, c, s) = (s1[i], s2[i], cos[i], sin[i]);
        d1[i] = (x1 * c - x2 * s) * scale;
        d2[i] = (x2 * c + x1 * s) * scale;
    }
}

/// The transpose of [`rotate`] (rotation by the opposite angle), times `scale`.
fn rotate_back<T: Float>(dst: &mut [T], src: &[T], cos: &[T], sin: &[T], scale: T) {
    let half = cos.len();
    let (d1, d2) = dst.split_at_mut(half);
    let (s1, s2) = src.split_at(half);
    for i in 0..half {
        let (y1, y2, c, s) = (s1[i], s2[i], cos[i], sin[i]);
        d1[i] = (y1 * c + y2 * s) * scale;
        d2[i] = (y2 * c - y1 * s) * scale;
    }
}

impl CausalAttention {
    /// The split layout from the projection: per (batch row, kv head) block, the group's q
    /// heads rotated and scaled by 1/√d, k rotated, v copied.
    fn split<T: Float>(&self, qkv: &[T], cos: &[T], sin: &[T]) -> Vec<T> {
        let h = self.heads;
        let (t_len, d, g, width) = (h.seq, h.head_dim, h.group(), h.width());
        let half = d / 2;
        let scale = <T as candle_core::WithDType>::from_f64(1.0 / (d as f64).sqrt());
        let mut out = vec![T::ZERO; h.batch * h.kv_heads * h.block_rows() * d];
        out.par_chunks_exact_mut(h.block_rows() * d)
            .enumerate()
            .for_each(|(block, dst)| {
                let (b, kv) = (block / h.kv_heads, block % h.kv_heads);
                for t in 0..t_len {
                    let row = &qkv[(b * t_len + t) * width..][..width];
                    let (c, s) = (&cos[t * half..][..half], &sin[t * half..][..half]);
                    for gi in 0..g {
                        let src = &row[(kv * g + gi) * d..][..d];
                        rotate(&mut dst[(gi * t_len + t) * d..][..d], src, c, s, scale);
                    }
                    let k = &row[(h.heads + kv) * d..][..d];
                    rotate(&mut dst[(g * t_len + t) * d..][..d], k, c, s, T::ONE);
                    let v = &row[(h.heads + h.kv_heads + kv) * d..][..d];
                    dst[((g + 1) * t_len + t) * d..][..d].copy_from_slice(v);
                }
            });
        out
    }

    /// Row-wise softmax of the scores `[.., group·T, T]` over the keys at or before each row's
    /// position (row r of a block is position r mod T); zero after it.
    fn softmax<T: Float>(&self, scores: &[T]) -> Vec<T> {
        let t_len = self.heads.seq;
        let mut out = vec![T::ZERO; scores.len()];
        out.par_chunks_exact_mut(t_len)
            .zip(scores.par_chunks_exact(t_len))
            .enumerate()
            .with_min_len(min_rows(t_len))
            .for_each(|(r, (dst, row))| {
                let visible = r % t_len + 1;
                let max = row[..visible].iter().fold(T::NEG_INFINITY, |m, &v| {
                    crate::kernels::num_like::Float::max(m, v)
                });
                let mut sum = T::ZERO;
                for (o, &v) in dst[..visible].iter_mut().zip(row) {
                    *o = (v - max).exp();
                    sum += *o;
                }
                let inv = T::ONE / sum;
                for o in dst[..visible].iter_mut() {
                    *o *= inv;
                }
            });
        out
    }

    /// Per-head rows `[B, heads, T, d]` (the same memory as `[B, kv_heads, group·T, d]`: head
    /// kv·group + gi) → token rows `[B·T, heads·d]`.
    fn merge_heads<T: Float>(&self, src: &[T]) -> Vec<T> {
        let h = self.heads;
        let (t_len, d) = (h.seq, h.head_dim);
        let mut out = vec![T::ZERO; src.len()];
        out.par_chunks_exact_mut(h.heads * d)
            .enumerate()
            .for_each(|(n, dst)| {
                let (b, t) = (n / t_len, n % t_len);
                for (head, o) in dst.chunks_exact_mut(d).enumerate() {
                    o.copy_from_slice(&src[((b * h.heads + head) * t_len + t) * d..][..d]);
                }
            });
        out
    }

    /// The inverse of [`Self::merge_heads`].
    fn split_heads<T: Float>(&self, src: &[T]) -> Vec<T> {
        let h = self.heads;
        let (t_len, d) = (h.seq, h.head_dim);
        let mut out = vec![T::ZERO; src.len()];
        out.par_chunks_exact_mut(t_len * d)
            .enumerate()
            .for_each(|(bh, dst)| {
                let (b, head) = (bh / h.heads, bh % h.heads);
                for (t, o) in dst.chunks_exact_mut(d).enumerate() {
                    o.copy_from_slice(&src[((b * t_len + t) * h.heads + head) * d..][..d]);
                }
            });
        out
    }

    fn forward<T: Float>(&self, qkv: &[T], cos: &[T], sin: &[T]) -> Result<(Vec<T>, Saved)> {
        let h = self.heads;
        let split = self.split(qkv, cos, sin);
        let split = Tensor::from_vec(
            split,
            (h.batch, h.kv_heads, h.block_rows(), h.head_dim),
            &Device::Cpu,
        )?;
        let scores = h.q(&split)?.matmul(&h.k(&split)?.t()?)?;
        let probs = with_values::<T, _>(&scores, |s| Ok(self.softmax(s)))?;
        let probs = Tensor::from_vec(probs, scores.shape(), &Device::Cpu)?;
        let y = probs.matmul(&h.v(&split)?)?;
        let out = with_values::<T, _>(&y, |y| Ok(self.merge_heads(y)))?;
        Ok((out, Saved { split, probs }))
    }

    fn backward<T: Float>(&self, saved: &Saved, dy: &[T], cos: &[T], sin: &[T]) -> Result<Vec<T>> {
        let h = self.heads;
        let (t_len, d, g, width) = (h.seq, h.head_dim, h.group(), h.width());
        let half = d / 2;
        let dy = Tensor::from_vec(
            self.split_heads(dy),
            (h.batch, h.kv_heads, g * t_len, d),
            &Device::Cpu,
        )?;
        let (q, k, v) = (h.q(&saved.split)?, h.k(&saved.split)?, h.v(&saved.split)?);
        // dS = P ⊙ (dP − rowsum(dP ⊙ P)), dP = dY·vᵀ; zero where P is (above the diagonal).
        let dp = dy.matmul(&v.t()?)?;
        let ds = with_values::<T, _>(&dp, |dp| {
            with_values::<T, _>(&saved.probs, |p| {
                let mut ds = vec![T::ZERO; p.len()];
                ds.par_chunks_exact_mut(t_len)
                    .zip(p.par_chunks_exact(t_len).zip(dp.par_chunks_exact(t_len)))
                    .with_min_len(min_rows(t_len))
                    .for_each(|(o, (p, dp))| {
                        let dot = p.iter().zip(dp).fold(T::ZERO, |a, (&p, &g)| a + p * g);
                        for ((o, &p), &g) in o.iter_mut().zip(p).zip(dp) {
                            *o = p * (g - dot);
                        }
                    });
                Ok(ds)
            })
        })?;
        let ds = Tensor::from_vec(ds, dp.shape(), &Device::Cpu)?;
        let dq = ds.matmul(&k)?; // gradient of the scaled, rotated q
        let dk = ds.t()?.matmul(&q)?; // the group's heads summed
        let dv = saved.probs.t()?.matmul(&dy)?;
        let scale = <T as candle_core::WithDType>::from_f64(1.0 / (d as f64).sqrt());
        with_values::<T, _>(&dq, |dq| {
            with_values::<T, _>(&dk, |dk| {
                with_values::<T, _>(&dv, |dv| {
                    let mut out = vec![T::ZERO; h.batch * t_len * width];
                    out.par_chunks_exact_mut(width)
                        .enumerate()
                        .for_each(|(n, row)| {
                            let (b, t) = (n / t_len, n % t_len);
                            let (c, s) = (&cos[t * half..][..half], &sin[t * half..][..half]);
                            let (qs, rest) = row.split_at_mut(h.heads * d);
                            let (ks, vs) = rest.split_at_mut(h.kv_heads * d);
                            for kv in 0..h.kv_heads {
                                let block = b * h.kv_heads + kv;
                                for gi in 0..g {
                                    let src = &dq[((block * g + gi) * t_len + t) * d..][..d];
                                    let dst = &mut qs[(kv * g + gi) * d..][..d];
                                    rotate_back(dst, src, c, s, scale);
                                }
                                let src = &dk[(block * t_len + t) * d..][..d];
                                rotate_back(&mut ks[kv * d..][..d], src, c, s, T::ONE);
                                vs[kv * d..][..d]
                                    .copy_from_slice(&dv[(block * t_len + t) * d..][..d]);
                            }
                        });
                    Ok(out)
                })
            })
        })
    }
}

impl FloatKernel for CausalAttention {
    const NAME: &'static str = "causal-attention";
    /// The forward; what the backward needs is kept in `saved`.
    fn run<T: Float>(&self, inputs: &[(&[T], &Layout)]) -> Result<Vec<T>> {
        let &[(qkv, _), (cos, _), (sin, _)] = inputs else {
            candle_core::bail!("{}: expected 3 inputs", Self::NAME)
        };
        let (out, saved) = self.forward(qkv, cos, sin)?;
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved);
        Ok(out)
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = self.heads;
        h.check(l1, l2, l3)?;
        let out = run_float(self, &[(s1, l1), (s2, l2), (s3, l3)])?;
        Ok((out, Shape::from((h.batch * h.seq, h.heads * h.head_dim))))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let h = self.heads;
        let dy = dy.contiguous()?;
        let dqkv = match qkv.dtype() {
            DType::F32 => self.grad::<f32>(qkv, cos, sin, &dy)?,
            DType::F64 => self.grad::<f64>(qkv, cos, sin, &dy)?,
            dt => candle_core::bail!("causal-attention: unsupported dtype {dt:?}"),
        };
        let dqkv = dqkv.reshape((h.batch * h.seq, h.width()))?;
        Ok((Some(dqkv), None, None))
    }
}

impl CausalAttention {
    fn grad<T: Float>(
        &self,
        qkv: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        dy: &Tensor,
    ) -> Result<Tensor> {
        with_values::<T, _>(cos, |c| {
            with_values::<T, _>(sin, |s| {
                // `cpu_fwd` always runs (and saves) before Candle calls the backward.
                let saved = self
                    .saved
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let Some(saved) = saved else {
                    candle_core::bail!("causal-attention: backward without a forward")
                };
                let g = with_values::<T, _>(dy, |dy| self.backward(&saved, dy, c, s))?;
                Tensor::from_vec(g, qkv.shape(), &Device::Cpu)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::causal_mask;
    use crate::testing::max_diff;
    use candle_core::{D, Var};

    fn rand(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f64> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    /// The same attention from Candle's reference ops, as the model computed it before.
    fn reference(qkv: &Tensor, cos: &Tensor, sin: &Tensor, h: Heads) -> Tensor {
        let (b, t, d) = (h.batch, h.seq, h.head_dim);
        let (nh, nkv, g) = (h.heads, h.kv_heads, h.group());
        let q = qkv.narrow(1, 0, nh * d).unwrap();
        let k = qkv.narrow(1, nh * d, nkv * d).unwrap();
        let v = qkv.narrow(1, (nh + nkv) * d, nkv * d).unwrap();
        let heads = |x: &Tensor, n: usize| {
            x.reshape((b, t, n, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let q = candle_nn::rotary_emb::rope_slow(&heads(&q, nh), cos, sin).unwrap();
        let k = candle_nn::rotary_emb::rope_slow(&heads(&k, nkv), cos, sin).unwrap();
        let v = heads(&v, nkv);
        let q = (q / (d as f64).sqrt())
            .unwrap()
            .reshape((b, nkv, g * t, d))
            .unwrap();
        let att = q.matmul(&k.t().unwrap()).unwrap();
        let mask = causal_mask(t, 0, qkv.dtype(), &Device::Cpu).unwrap();
        let att = att
            .reshape((b, nkv, g, t, t))
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        let att = candle_nn::ops::softmax(&att, D::Minus1)
            .unwrap()
            .reshape((b, nkv, g * t, t))
            .unwrap();
        att.matmul(&v)
            .unwrap()
            .reshape((b, nh, t, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b * t, nh * d))
            .unwrap()
    }

    fn check(h: Heads, dtype: DType, tol: f64) {
        let qkv = Var::from_tensor(&rand(&[h.batch * h.seq, h.width()], 1, dtype)).unwrap();
        let cos = rand(&[h.seq, h.head_dim / 2], 2, dtype);
        let sin = rand(&[h.seq, h.head_dim / 2], 3, dtype);
        let w = rand(&[h.batch * h.seq, h.heads * h.head_dim], 4, dtype);
        let fast = causal_attention(qkv.as_tensor(), &cos, &sin, h)
            .unwrap()
            .unwrap();
        let slow = reference(qkv.as_tensor(), &cos, &sin, h);
        assert!(max_diff(&fast, &slow) < tol, "forward differs");
        let gf = (fast * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = (&slow * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let (gf, gs) = (
            gf.get(qkv.as_tensor()).unwrap(),
            gs.get(qkv.as_tensor()).unwrap(),
        );
        assert!(max_diff(gf, gs) < tol, "gradient differs");
        // Without a graph: the same values.
        let plain = causal_attention(&qkv.as_tensor().detach(), &cos, &sin, h)
            .unwrap()
            .unwrap();
        assert!(max_diff(&plain, &slow) < tol);
    }

    #[test]
    fn matches_candle_ops_with_grouped_heads() {
        let h = Heads {
            batch: 2,
            seq: 5,
            heads: 6,
            kv_heads: 2,
            head_dim: 4,
        };
        check(h, DType::F32, 1e-5);
        check(h, DType::F64, 1e-12);
    }

    #[test]
    fn matches_candle_ops_one_head_per_kv_and_one_position() {
        for seq in [1, 7] {
            let h = Heads {
                batch: 3,
                seq,
                heads: 2,
                kv_heads: 2,
                head_dim: 6,
            };
            check(h, DType::F64, 1e-12);
        }
    }

    #[test]
    fn wrong_shapes_are_an_error() {
        let h = Heads {
            batch: 1,
            seq: 3,
            heads: 2,
            kv_heads: 1,
            head_dim: 4,
        };
        let qkv = rand(&[3, 15], 1, DType::F32);
        let cs = rand(&[3, 2], 2, DType::F32);
        assert!(causal_attention(&qkv, &cs, &cs, h).is_err());
    }
}
