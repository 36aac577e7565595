//! The optimisation pieces of LoRA training: AdamW over the LoRA variables, the learning-rate
//! schedule (linear warm-up, then cosine or linear decay to zero), gradient clipping by global
//! norm, and gradient accumulation over micro-batches.
//!
//! Each piece follows PyTorch / Hugging Face `transformers` exactly (the formulas are quoted
//! where they are implemented), so a run here and a run there with the same numbers take the
//! same steps. This module knows nothing of models or data: it sees `Var`s and gradients.
//! We do not use `candle_nn::AdamW` because its moments are private, and a resumable
//! checkpoint must save and restore them.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
use domain::LrScheduler;

/// AdamW's constants. The learning rate is not here: the schedule gives it per step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (`lambda` in the PyTorch docs).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// Hugging Face Trainer's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW with decoupled weight decay and bias correction, as `torch.optim.AdamW`
/// (`amsgrad=False`, `maximize=False`). Its moments are public through [`AdamW::moments`] and
/// [`AdamW::restore`] so that a checkpoint can carry them.
#[derive(Debug)]
pub struct AdamW {
    params: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    steps: u64,
    config: AdamWConfig,
}

impl AdamW {
    /// An optimizer over `params` with zero moments.
    pub fn new(params: Vec<Var>, config: AdamWConfig) -> Result<Self> {
        let m = params
            .iter()
            .map(|p| p.as_tensor().zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            params,
            m,
            v,
            steps: 0,
            config,
        })
    }

    /// The variables this optimizer updates, in order.
    pub fn params(&self) -> &[Var] {
        &self.params
    }

    /// Optimizer steps taken so far (`t` in the formulas).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// First and second moments, aligned with [`AdamW::params`].
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// Puts back moments and step count saved from an optimizer over the same variables.
    pub fn restore(&mut self, steps: u64, m: Vec<Tensor>, v: Vec<Tensor>) -> Result<()> {
        if m.len() != self.params.len() || v.len() != self.params.len() {
            candle_core::bail!(
                "optimizer state has {} and {} moments for {} parameters",
                m.len(),
                v.len(),
                self.params.len()
            );
        }
        for ((p, m), v) in self.params.iter().zip(&m).zip(&v) {
            if m.dims() != p.dims() || v.dims() != p.dims() {
                candle_core::bail!(
                    "optimizer state shape {:?}/{:?} does not match parameter {:?}",
                    m.dims(),
                    v.dims(),
                    p.dims()
                );
            }
        }
        let device = self
            .params
            .first()
            .map(|p| p.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let dtype = self.params.first().map(|p| p.dtype()).unwrap_or(DType::F32);
        let to = |t: Vec<Tensor>| -> Result<Vec<Tensor>> {
            t.into_iter()
                .map(|t| t.to_device(&device)?.to_dtype(dtype))
                .collect()
        };
        self.m = to(m)?;
        self.v = to(v)?;
        self.steps = steps;
        Ok(())
    }

    /// One update with learning rate `lr` and gradients aligned with [`AdamW::params`].
    ///
    /// The reference is the algorithm box of `torch.optim.AdamW` (PyTorch 2.x docs):
    ///
    /// ```text
    /// theta_t = theta_{t-1} - gamma * lambda * theta_{t-1}
    /// m_t     = beta1 * m_{t-1} + (1 - beta1) * g_t
    /// v_t     = beta2 * v_{t-1} + (1 - beta2) * g_t^2
    /// m_hat   = m_t / (1 - beta1^t)
    /// v_hat   = v_t / (1 - beta2^t)
    /// theta_t = theta_t - gamma * m_hat / (sqrt(v_hat) + eps)
    /// ```
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        if grads.len() != self.params.len() {
            candle_core::bail!(
                "{} gradients for {} parameters",
                grads.len(),
                self.params.len()
            );
        }
        self.steps += 1;
        let t = self.steps as i32;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2 = 1.0 - beta2.powi(t);
        for (i, (param, grad)) in self.params.iter().zip(grads).enumerate() {
            let grad = grad.to_dtype(param.dtype())?;
            let m = ((&self.m[i] * beta1)? + (&grad * (1.0 - beta1))?)?;
            let v = ((&self.v[i] * beta2)? + (grad.sqr()? * (1.0 - beta2))?)?;
            let decayed = if weight_decay == 0.0 {
                param.as_tensor().clone()
            } else {
                (param.as_tensor() * (1.0 - lr * weight_decay))?
            };
            let denom = ((&v / bias2)?.sqrt()? + eps)?;
            let update = ((&m / bias1)? / denom)?;
            param.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// Linear warm-up from 0 to `peak` over `warmup_steps`, then decay to 0 at `total_steps`:
/// `get_cosine_schedule_with_warmup` / `get_linear_schedule_with_warmup` of Hugging Face
/// `transformers` (num_cycles 0.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub peak: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    /// How it falls after warm-up: the spec's `lr_scheduler`, already validated.
    pub decay: LrScheduler,
}

impl LrSchedule {
    /// The learning rate of the optimizer step that follows `steps_done` earlier steps, as the
    /// `transformers` scheduler gives it (the first step of a warm-up runs at lr 0 there too):
    ///
    /// ```text
    /// if step < warmup: step / max(1, warmup)
    /// progress = (step - warmup) / max(1, total - warmup)
    /// cosine: max(0, 0.5 * (1 + cos(pi * progress)))      linear: max(0, 1 - progress)
    /// ```
    pub fn lr(&self, steps_done: u64) -> f64 {
        let step = steps_done as f64;
        let warmup = self.warmup_steps as f64;
        if steps_done < self.warmup_steps {
            return self.peak * step / warmup.max(1.0);
        }
        let span = (self.total_steps.saturating_sub(self.warmup_steps) as f64).max(1.0);
        let progress = (step - warmup) / span;
        let factor = match self.decay {
            LrScheduler::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            LrScheduler::Linear => 1.0 - progress,
        };
        self.peak * factor.max(0.0)
    }
}

/// Scales `grads` in place so that their global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does (`clip_coef = max_norm / (total_norm + 1e-6)`, applied
/// only when below 1). Returns the norm before clipping. `max_norm <= 0` disables clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let mut sum_sq = 0.0f64;
    for g in grads.iter() {
        sum_sq += g
            .to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?;
    }
    let norm = sum_sq.sqrt();
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.iter_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

/// Sums gradients over the micro-batches of one optimizer step. The trainer weights each
/// micro-batch's loss by its share of the step's answer tokens, so the sum is the gradient of
/// the mean loss over the whole step, exactly as one large batch would give.
#[derive(Debug)]
pub struct GradAccumulator {
    sums: Vec<Option<Tensor>>,
}

impl GradAccumulator {
    pub fn new(n_params: usize) -> Self {
        Self {
            sums: vec![None; n_params],
        }
    }

    /// Adds the gradients `grads` holds for `params` (a variable without one adds nothing).
    pub fn add(&mut self, params: &[Var], grads: &GradStore) -> Result<()> {
        for (sum, p) in self.sums.iter_mut().zip(params) {
            if let Some(g) = grads.get(p.as_tensor()) {
                *sum = Some(match sum.take() {
                    None => g.clone(),
                    Some(s) => (s + g)?,
                });
            }
        }
        Ok(())
    }

    /// The summed gradients, zeros for variables that never received one, and a fresh start.
    pub fn take(&mut self, params: &[Var]) -> Result<Vec<Tensor>> {
        self.sums
            .iter_mut()
            .zip(params)
            .map(|(s, p)| match s.take() {
                Some(g) => Ok(g),
                None => p.as_tensor().zeros_like(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::Device;

    fn vec1(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    /// Two AdamW steps on w = [1, -2] (f64), lr 0.1, weight decay 0.01, betas (0.9, 0.999),
    /// eps 1e-8, gradients g1 = [0.5, -1] then g2 = [0.1, 0.2], i.e. what this PyTorch snippet prints
    ///
    /// ```python
    /// import torch
    /// w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    /// opt = torch.optim.AdamW([w], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    /// for g in ([0.5, -1.0], [0.1, 0.2]):
    ///     w.grad = torch.tensor(g, dtype=torch.float64); opt.step(); print(w.tolist())
    /// ```
    ///
    /// (torch is not installed on the build machines, so the numbers were worked by hand, and in
    /// plain Python, from the formulas quoted in [`AdamW::step`]): step 1 gives m_hat = g1 and
    /// v_hat = g1², so w = 0.999·w − 0.1·sign(g1) = [0.899, −1.898]; step 2:
    /// m = [0.055, −0.07], v = [0.00025975, 0.001039], m_hat = m / 0.19, v_hat = v / 0.001999,
    /// w = 0.999·w − 0.1·m_hat / (sqrt(v_hat) + 1e-8) = [0.81779691, −1.84499939].
    #[test]
    fn adamw_matches_the_pytorch_formula() {
        let dev = Device::Cpu;
        let w = Var::from_slice(&[1.0f64, -2.0], 2, &dev).unwrap();
        let config = AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::new(vec![w.clone()], config).unwrap();
        let g1 = Tensor::new(&[0.5f64, -1.0], &dev).unwrap();
        opt.step(&[g1], 0.1).unwrap();
        assert_close(&vec1(w.as_tensor()), &[0.899, -1.898], 1e-7);

        let g2 = Tensor::new(&[0.1f64, 0.2], &dev).unwrap();
        opt.step(&[g2], 0.1).unwrap();
        let expect = |w: f64, m: f64, v: f64| {
            let m_hat = m / (1.0 - 0.9f64.powi(2));
            let v_hat = v / (1.0 - 0.999f64.powi(2));
            w * (1.0 - 0.1 * 0.01) - 0.1 * m_hat / (v_hat.sqrt() + 1e-8)
        };
        let m = [0.9 * 0.05 + 0.1 * 0.1, 0.9 * -0.1 + 0.1 * 0.2];
        let v = [0.999 * 0.00025 + 0.001 * 0.01, 0.999 * 0.001 + 0.001 * 0.04];
        // Step 1 exactly: 0.999·w − 0.1·g/(|g| + 1e-8).
        let w1 = [
            0.999 - 0.1 * 0.5 / (0.5 + 1e-8),
            -1.998 + 0.1 * 1.0 / (1.0 + 1e-8),
        ];
        let want = [expect(w1[0], m[0], v[0]), expect(w1[1], m[1], v[1])];
        assert_close(&vec1(w.as_tensor()), &want, 1e-12);
        assert_close(&want, &[0.817_796_91, -1.844_999_39], 1e-7);
        assert_eq!(opt.steps(), 2);
    }

    #[test]
    fn adamw_state_restores() {
        let dev = Device::Cpu;
        let run = |split: bool| {
            let w = Var::from_slice(&[0.3f32, -0.7, 1.1], 3, &dev).unwrap();
            let mut opt = AdamW::new(vec![w.clone()], AdamWConfig::default()).unwrap();
            let grads = [[0.1f32, 0.2, -0.3], [-0.5, 0.25, 0.0], [0.3, 0.3, 0.3]];
            for (i, g) in grads.iter().enumerate() {
                if split && i == 2 {
                    let (m, v) = opt.moments();
                    let (m, v) = (m.to_vec(), v.to_vec());
                    let steps = opt.steps();
                    opt = AdamW::new(vec![w.clone()], AdamWConfig::default()).unwrap();
                    opt.restore(steps, m, v).unwrap();
                }
                opt.step(&[Tensor::new(g, &dev).unwrap()], 0.01).unwrap();
            }
            vec1(w.as_tensor())
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let cosine = LrSchedule {
            peak: 1.0,
            warmup_steps: 2,
            total_steps: 6,
            decay: LrScheduler::Cosine,
        };
        let lrs: Vec<f64> = (0..7).map(|s| cosine.lr(s)).collect();
        // transformers: [0, 0.5, 1, 0.5*(1+cos(pi/4)), 0.5, 0.5*(1+cos(3pi/4)), 0]
        let c = |x: f64| 0.5 * (1.0 + (std::f64::consts::PI * x).cos());
        assert_close(&lrs, &[0.0, 0.5, 1.0, c(0.25), 0.5, c(0.75), 0.0], 1e-12);

        let linear = LrSchedule {
            decay: LrScheduler::Linear,
            ..cosine
        };
        let lrs: Vec<f64> = (0..8).map(|s| linear.lr(s)).collect();
        assert_close(&lrs, &[0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0], 1e-12);

        let flat = LrSchedule {
            warmup_steps: 0,
            total_steps: 1,
            ..linear
        };
        assert_eq!(flat.lr(0), 1.0);
    }

    #[test]
    fn clipping_scales_to_the_global_norm() {
        let dev = Device::Cpu;
        // Global norm of [3, 4] and [12] is 13.
        let mut grads = vec![
            Tensor::new(&[3.0f32, 4.0], &dev).unwrap(),
            Tensor::new(&[12.0f32], &dev).unwrap(),
        ];
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        assert!((norm - 13.0).abs() < 1e-9);
        let c = 1.0 / (13.0 + 1e-6);
        assert_close(&vec1(&grads[0]), &[3.0 * c, 4.0 * c], 1e-6);
        assert_close(&vec1(&grads[1]), &[12.0 * c], 1e-6);

        let norm = clip_grad_norm(&mut grads, 5.0).unwrap();
        assert!((norm - 1.0).abs() < 1e-5, "below the limit: left alone");
        assert_close(&vec1(&grads[1]), &[12.0 * c], 1e-6);
    }

    #[test]
    fn accumulation_sums_micro_batches() {
        let dev = Device::Cpu;
        let a = Var::from_slice(&[1.0f32, 2.0], 2, &dev).unwrap();
        let unused = Var::from_slice(&[5.0f32], 1, &dev).unwrap();
        let params = [a.clone(), unused];
        let mut acc = GradAccumulator::new(2);
        for k in [1.0, 3.0] {
            let loss = (a.as_tensor().sqr().unwrap().sum_all().unwrap() * k).unwrap();
            acc.add(&params, &loss.backward().unwrap()).unwrap();
        }
        let grads = acc.take(&params).unwrap();
        // d/da k·|a|² = 2k·a, summed over k = 1, 3: 8·a.
        assert_close(&vec1(&grads[0]), &[8.0, 16.0], 1e-6);
        assert_close(&vec1(&grads[1]), &[0.0], 0.0);
        let again = acc.take(&params).unwrap();
        assert_close(&vec1(&again[0]), &[0.0, 0.0], 0.0);
    }
}
