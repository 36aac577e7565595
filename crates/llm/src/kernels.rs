//! CPU kernels behind some of [`crate::ops`]: Candle custom ops whose forward and backward are
//! plain loops over contiguous f32/f64 rows — the fused MLP activation (`silu(gate)·up`), RMS
//! normalisation with its gradient, and one-token attention over the KV cache. Each replaces a
//! chain of Candle ops (or thousands of tiny gemm calls) that cost more than its arithmetic.
//!
//! Only the CPU forward is implemented; `ops` falls back to Candle's ops on other devices. The
//! gradients are checked against Candle's reference ops in `ops`' tests.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

pub(crate) struct Swiglu;

/// The rows of a contiguous CPU tensor as a slice.
pub(crate) fn cpu_slice<'a, T: candle_core::WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
) -> Result<&'a [T]> {
    if !l.is_contiguous() {
        candle_core::bail!("expected a contiguous tensor")
    }
    let all = s.as_slice::<T>()?;
    match all.get(l.start_offset()..l.start_offset() + l.shape().elem_count()) {
        Some(v) => Ok(v),
        None => candle_core::bail!("tensor layout out of its storage"),
    }
}

/// The contiguous values of a CPU tensor, given to `f`.
pub(crate) fn with_values<T: Float, R>(t: &Tensor, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => f(cpu_slice::<T>(cpu, layout)?),
        _ => candle_core::bail!("expected a CPU tensor"),
    }
}

/// A CPU kernel written once for f32 and f64. `inputs` are the op's arguments as contiguous
/// slices, all of one dtype, with their layouts.
pub(crate) trait FloatKernel {
    const NAME: &'static str;
    fn run<T: Float>(&self, inputs: &[(&[T], &Layout)]) -> Result<Vec<T>>;
}

/// Runs `kernel` on the arguments in the dtype they share (f32 or f64; anything else, or mixed
/// dtypes, is an error naming the kernel).
pub(crate) fn run_float<K: FloatKernel>(
    kernel: &K,
    args: &[(&CpuStorage, &Layout)],
) -> Result<CpuStorage> {
    fn slices<'a, T: Float>(
        args: &[(&'a CpuStorage, &'a Layout)],
    ) -> Result<Vec<(&'a [T], &'a Layout)>> {
        args.iter()
            .map(|&(s, l)| Ok((cpu_slice::<T>(s, l)?, l)))
            .collect()
    }
    match args.first().map(|(s, _)| s.dtype()) {
        Some(candle_core::DType::F32) => Ok(CpuStorage::F32(kernel.run(&slices::<f32>(args)?)?)),
        Some(candle_core::DType::F64) => Ok(CpuStorage::F64(kernel.run(&slices::<f64>(args)?)?)),
        dtype => candle_core::bail!("{}: unsupported dtype {dtype:?}", K::NAME),
    }
}

/// RMS norm on the CPU with its own backward (for `x` only: `alpha` is frozen).
pub(crate) struct RmsNormCpu {
    pub(crate) eps: f64,
}

fn rms_norm_fwd<T: Float>(x: &[T], alpha: &[T], eps: f64) -> Vec<T> {
    let h = alpha.len();
    let mut out = vec![T::ZERO; x.len()];
    out.par_chunks_exact_mut(h)
        .zip(x.par_chunks_exact(h))
        .with_min_len(min_rows(h))
        .for_each(|(dst, row)| {
            let r = T::inv_rms(row, eps);
            for ((d, &v), &a) in dst.iter_mut().zip(row).zip(alpha) {
                *d = v * r * a;
            }
        });
    out
}

/// `dx = r·(g − x·r²·mean(x·g))` with `g = dy·alpha`, `r = (mean(x²) + eps)^-½`.
fn rms_norm_bwd<T: Float>(x: &[T], alpha: &[T], dy: &[T], eps: f64) -> Vec<T> {
    let h = alpha.len();
    let mut out = vec![T::ZERO; x.len()];
    out.par_chunks_exact_mut(h)
        .zip(x.par_chunks_exact(h).zip(dy.par_chunks_exact(h)))
        .with_min_len(min_rows(h))
        .for_each(|(dst, (row, dy))| {
            let r = T::inv_rms(row, eps);
            let dot = row
                .iter()
                .zip(dy)
                .zip(alpha)
                .fold(T::ZERO, |acc, ((&v, &d), &a)| acc + v * d * a);
            let c = r * r * dot * <T as num_like::Float>::from_f64(1.0 / h as f64);
            for (((o, &v), &d), &a) in dst.iter_mut().zip(row).zip(dy).zip(alpha) {
                *o = r * (d * a - v * c);
            }
        });
    out
}

/// Rows per parallel task so each task has at least ~16K elements: below that, splitting
/// costs more than it saves.
pub(crate) fn min_rows(row_len: usize) -> usize {
    (16_384 / row_len.max(1)).max(1)
}

impl FloatKernel for RmsNormCpu {
    const NAME: &'static str = "rms-norm-cpu";
    fn run<T: Float>(&self, inputs: &[(&[T], &Layout)]) -> Result<Vec<T>> {
        let &[(x, _), (alpha, _)] = inputs else {
            candle_core::bail!("{}: expected 2 inputs", Self::NAME)
        };
        Ok(rms_norm_fwd(x, alpha, self.eps))
    }
}

impl CustomOp2 for RmsNormCpu {
    fn name(&self) -> &'static str {
        "rms-norm-cpu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((run_float(self, &[(s1, l1), (s2, l2)])?, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        alpha: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = x.apply_op3_no_bwd(alpha, &dy, &RmsNormCpuBackward { eps: self.eps })?;
        Ok((Some(dx), None))
    }
}

struct RmsNormCpuBackward {
    eps: f64,
}

impl FloatKernel for RmsNormCpuBackward {
    const NAME: &'static str = "rms-norm-cpu-backward";
    fn run<T: Float>(&self, inputs: &[(&[T], &Layout)]) -> Result<Vec<T>> {
        let &[(x, _), (alpha, _), (dy, _)] = inputs else {
            candle_core::bail!("{}: expected 3 inputs", Self::NAME)
        };
        Ok(rms_norm_bwd(x, alpha, dy, self.eps))
    }
}

impl candle_core::CustomOp3 for RmsNormCpuBackward {
    fn name(&self) -> &'static str {
        "rms-norm-cpu-backward"
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
        let out = run_float(self, &[(s1, l1), (s2, l2), (s3, l3)])?;
        Ok((out, l1.shape().clone()))
    }
}

pub(crate) trait Float: candle_core::WithDType + num_like::Float {}
impl Float for f32 {}
impl Float for f64 {}

/// The few float operations the CPU kernels need, for f32 and f64.
pub(crate) mod num_like {
    pub trait Float:
        Copy
        + Send
        + Sync
        + std::ops::Mul<Output = Self>
        + std::ops::Add<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Div<Output = Self>
        + std::ops::AddAssign
        + std::ops::MulAssign
    {
        const ONE: Self;
        const ZERO: Self;
        const NEG_INFINITY: Self;
        fn sigmoid(self) -> Self;
        fn exp(self) -> Self;
        fn max(self, other: Self) -> Self;
        fn from_f64(v: f64) -> Self;
        /// `(mean(row²) + eps)^-½`.
        fn inv_rms(row: &[Self], eps: f64) -> Self;
    }
    /// The impl for one primitive float type; the sum of squares is taken in that type.
    macro_rules! float_impl {
        ($t:ty) => {
            impl Float for $t {
                const ONE: $t = 1.0;
                const ZERO: $t = 0.0;
                const NEG_INFINITY: $t = <$t>::NEG_INFINITY;
                fn exp(self) -> $t {
                    <$t>::exp(self)
                }
                fn max(self, other: $t) -> $t {
                    <$t>::max(self, other)
                }
                fn sigmoid(self) -> $t {
                    1.0 / (1.0 + (-self).exp())
                }
                fn from_f64(v: f64) -> $t {
                    v as $t
                }
                fn inv_rms(row: &[$t], eps: f64) -> $t {
                    let ss: $t = row.iter().map(|v| v * v).sum();
                    (1.0 / (f64::from(ss) / row.len() as f64 + eps).sqrt()) as $t
                }
            }
        };
    }
    float_impl!(f32);
    float_impl!(f64);
}

fn swiglu_fwd<T: Float>(gu: &[T], f: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; gu.len() / 2];
    out.par_chunks_exact_mut(f)
        .zip(gu.par_chunks_exact(2 * f))
        .with_min_len(min_rows(2 * f))
        .for_each(|(dst, row)| {
            let (g, u) = row.split_at(f);
            for ((o, &g), &u) in dst.iter_mut().zip(g).zip(u) {
                *o = g * g.sigmoid() * u;
            }
        });
    out
}

/// `[dgate | dup]` from `gate_up` and the output gradient `dy`.
fn swiglu_bwd<T: Float>(gu: &[T], dy: &[T], f: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; gu.len()];
    out.par_chunks_exact_mut(2 * f)
        .zip(gu.par_chunks_exact(2 * f).zip(dy.par_chunks_exact(f)))
        .with_min_len(min_rows(2 * f))
        .for_each(|(dst, (row, dy))| {
            let (g, u) = row.split_at(f);
            let (dg, du) = dst.split_at_mut(f);
            for ((((dg, du), &g), &u), &d) in dg.iter_mut().zip(du).zip(g).zip(u).zip(dy) {
                let s = g.sigmoid();
                // silu'(g) = s·(1 + g·(1 − s))
                *dg = d * u * (s * (T::ONE + g * (T::ONE - s)));
                *du = d * g * s;
            }
        });
    out
}

/// Half the last dimension: gate's (and up's) width.
fn half_width(l: &Layout) -> usize {
    l.shape().dims().last().copied().unwrap_or(0) / 2
}

impl FloatKernel for Swiglu {
    const NAME: &'static str = "swiglu";
    fn run<T: Float>(&self, inputs: &[(&[T], &Layout)]) -> Result<Vec<T>> {
        let &[(gate_up, l)] = inputs else {
            candle_core::bail!("{}: expected 1 input", Self::NAME)
        };
        Ok(swiglu_fwd(gate_up, half_width(l)))
    }
}

impl candle_core::CustomOp1 for Swiglu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut out_dims = l.shape().dims().to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = half_width(l);
        }
        Ok((run_float(self, &[(s, l)])?, Shape::from(out_dims)))
    }

    fn bwd(&self, gate_up: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        Ok(Some(gate_up.apply_op2_no_bwd(&dy, &SwigluBackward)?))
    }
}

struct SwigluBackward;

impl FloatKernel for SwigluBackward {
    const NAME: &'static str = "swiglu-backward";
    fn run<T: Float>(&self, inputs: &[(&[T], &Layout)]) -> Result<Vec<T>> {
        let &[(gate_up, l), (dy, _)] = inputs else {
            candle_core::bail!("{}: expected 2 inputs", Self::NAME)
        };
        Ok(swiglu_bwd(gate_up, dy, half_width(l)))
    }
}

impl CustomOp2 for SwigluBackward {
    fn name(&self) -> &'static str {
        "swiglu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((run_float(self, &[(s1, l1), (s2, l2)])?, l1.shape().clone()))
    }
}

/// `d` values of `all` from `start`.
fn row_at(all: &[f32], start: usize, d: usize) -> Result<&[f32]> {
    match all.get(start..start + d) {
        Some(r) => Ok(r),
        None => candle_core::bail!("decode-attention: cache index out of range"),
    }
}

pub(crate) struct DecodeAttention {
    pub(crate) scale: f32,
    /// Additive mask values `[B, S]`, or none.
    pub(crate) mask: Option<Vec<f32>>,
}

impl candle_core::CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let q = cpu_slice::<f32>(sq, lq)?;
        let (b, h, g, d) = lq.shape().dims4()?;
        let (kb, kh, s, kd) = lk.shape().dims4()?;
        if (kb, kh, kd) != (b, h, d) || lv.shape().dims4()? != (b, h, s, d) {
            candle_core::bail!(
                "decode-attention: shapes {:?} {:?} {:?}",
                lq.shape(),
                lk.shape(),
                lv.shape()
            )
        }
        let (ks, vs) = (lk.stride(), lv.stride());
        if ks.get(3) != Some(&1) || vs.get(3) != Some(&1) {
            candle_core::bail!("decode-attention: k and v need contiguous rows")
        }
        let (k_all, v_all) = (sk.as_slice::<f32>()?, sv.as_slice::<f32>()?);
        let (k0, v0) = (lk.start_offset(), lv.start_offset());
        let mut out = vec![0f32; b * h * g * d];
        out.par_chunks_mut(g * d)
            .enumerate()
            .try_for_each(|(bh, dst)| -> Result<()> {
                let (bi, hi) = (bh / h, bh % h);
                let kbase = k0 + bi * ks[0] + hi * ks[1];
                let vbase = v0 + bi * vs[0] + hi * vs[1];
                let mut p = vec![0f32; s];
                for gi in 0..g {
                    let qoff = ((bi * h + hi) * g + gi) * d;
                    let qrow = q.get(qoff..qoff + d).unwrap_or_default();
                    let mut max = f32::NEG_INFINITY;
                    for (j, pj) in p.iter_mut().enumerate() {
                        let kr = row_at(k_all, kbase + j * ks[2], d)?;
                        let dot: f32 = qrow.iter().zip(kr).map(|(a, b)| a * b).sum();
                        let m = match &self.mask {
                            Some(m) => m.get(bi * s + j).copied().unwrap_or(0.0),
                            None => 0.0,
                        };
                        *pj = dot * self.scale + m;
                        max = max.max(*pj);
                    }
                    let mut sum = 0f32;
                    for pj in p.iter_mut() {
                        *pj = (*pj - max).exp();
                        sum += *pj;
                    }
                    let o = &mut dst[gi * d..(gi + 1) * d];
                    o.fill(0.0);
                    for (j, &pj) in p.iter().enumerate() {
                        let w = pj / sum;
                        let vr = row_at(v_all, vbase + j * vs[2], d)?;
                        for (oi, &vi) in o.iter_mut().zip(vr) {
                            *oi += w * vi;
                        }
                    }
                }
                Ok(())
            })?;
        Ok((CpuStorage::F32(out), Shape::from((b, h, g, d))))
    }
}

/// Where one LoRA adapter writes in [`LoraAdd`]: output columns `col..col + len`, from
/// columns `h_col..h_col + rank` of `H` and rows `b_row..b_row + len` of `B`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoraSpan {
    pub(crate) col: usize,
    pub(crate) len: usize,
    pub(crate) h_col: usize,
    pub(crate) rank: usize,
    pub(crate) b_row: usize,
}

/// `y` `[N, C]` plus, for every span, `H[:, span]·B[span]ᵀ` added to its columns, where `H`
/// `[N, Σ rank]` holds each adapter's `x·Aᵀ` and `B` `[Σ len, rank]` each adapter's scaled B.
/// One new `[N, C]` tensor, where separate zero-padded products and sums made two per
/// adapter (and Candle's graph kept them all until the backward). CPU, f32 and f64.
pub(crate) struct LoraAdd {
    pub(crate) spans: Vec<LoraSpan>,
}

impl FloatKernel for LoraAdd {
    const NAME: &'static str = "lora-add";
    /// `y` is copied once, into the result; H and B (small) become tensors again for Candle's
    /// gemm.
    fn run<T: Float>(&self, inputs: &[(&[T], &Layout)]) -> Result<Vec<T>> {
        let &[(y, ly), (h, lh), (b, lb)] = inputs else {
            candle_core::bail!("{}: expected 3 inputs", Self::NAME)
        };
        let c = ly.shape().dims2()?.1;
        let cpu = &candle_core::Device::Cpu;
        let (h, b) = (
            Tensor::from_slice(h, lh.shape(), cpu)?,
            Tensor::from_slice(b, lb.shape(), cpu)?,
        );
        let mut out = y.to_vec();
        for s in &self.spans {
            let hs = h.narrow(1, s.h_col, s.rank)?;
            let bs = b.narrow(0, s.b_row, s.len)?;
            let delta = hs.matmul(&bs.t()?)?; // [N, len], contiguous
            with_values::<T, _>(&delta, |d| {
                out.par_chunks_exact_mut(c)
                    .zip(d.par_chunks_exact(s.len))
                    .with_min_len(min_rows(s.len))
                    .for_each(|(row, d)| {
                        for (o, &v) in row[s.col..s.col + s.len].iter_mut().zip(d) {
                            *o += v;
                        }
                    });
                Ok(())
            })?;
        }
        Ok(out)
    }
}

impl candle_core::CustomOp3 for LoraAdd {
    fn name(&self) -> &'static str {
        "lora-add"
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
        let out = run_float(self, &[(s1, l1), (s2, l2), (s3, l3)])?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        h: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        d: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // y passes through; for each span dH = d[:, span]·B[span], dB[span] = d[:, span]ᵀ·H.
        let mut dh = Vec::with_capacity(self.spans.len());
        let mut db = Vec::with_capacity(self.spans.len());
        for s in &self.spans {
            let ds = d.narrow(1, s.col, s.len)?;
            dh.push(ds.matmul(&b.narrow(0, s.b_row, s.len)?)?);
            db.push(ds.t()?.matmul(&h.narrow(1, s.h_col, s.rank)?)?);
        }
        Ok((
            Some(d.clone()),
            Some(Tensor::cat(&dh, 1)?),
            Some(Tensor::cat(&db, 0)?),
        ))
    }
}
