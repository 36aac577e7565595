//! Throwaway: where a batched decode step's time goes.
use std::time::Instant;

use candle_core::{Device, Tensor};
use finetune::LocalModel;
use finetune::model::KvCache;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::PathBuf::from(std::env::args().nth(1).ok_or("model path")?);
    let m = LocalModel::load(&path, domain::Device::Cpu)?;
    let model = m.model();
    for &b in &[1usize, 16, 32] {
        let s = 80;
        let mut cache = KvCache::new(model, b, s + 40)?;
        let ids = Tensor::from_vec(vec![5u32; b * s], (b, s), &Device::Cpu)?;
        let pos = Tensor::arange(0u32, s as u32, &Device::Cpu)?.unsqueeze(0)?.repeat((b, 1))?;
        let mask = finetune::model::causal_mask(s, 0, candle_core::DType::F32, &Device::Cpu)?;
        model.forward_cached(&ids, &pos, Some(&mask), &mut cache)?;
        let step_ids = Tensor::from_vec(vec![7u32; b], (b, 1), &Device::Cpu)?;
        let n = 10;
        let t = Instant::now();
        let mut h = None;
        for i in 0..n {
            let p = Tensor::from_vec(vec![(s + i) as u32; b], (b, 1), &Device::Cpu)?;
            h = Some(model.forward_cached(&step_ids, &p, None, &mut cache)?);
        }
        let layers = t.elapsed().as_secs_f64() / n as f64;
        let h = h.ok_or("no step")?.squeeze(1)?;
        let t = Instant::now();
        for _ in 0..n {
            model.lm_head(&h)?.argmax(1)?;
        }
        let head = t.elapsed().as_secs_f64() / n as f64;
        println!("batch {b}: layers {:.1} ms, head+argmax {:.1} ms per step", layers * 1e3, head * 1e3);
    }
    Ok(())
}
