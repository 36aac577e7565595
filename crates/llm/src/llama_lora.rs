//! The LoRA side of [`Llama`]: adding fresh adapters to the configured projections of every
//! layer, reading them as PEFT-named `Var`s (the trainer's parameters), setting them from
//! tensors (a checkpoint or an adapter file), removing them, and folding them into the base
//! weights for generation (merge, unmerge, merged weights for export).
//!
//! It is a child of `model.rs` (so it reaches the private layers) kept in its own file beside
//! `lora.rs`, which holds the layer itself. Not here: the adapter file format (the `finetune`
//! crate's `adapter.rs`).

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::{Block, Llama};
use crate::Error;
use crate::lora::Linear;
use crate::lora::{LoraConfig, LoraTarget};

impl Llama {
    /// Adds fresh LoRA adapters (A Kaiming-uniform, B zero) to the configured modules of every
    /// layer, replacing any present. `seed` fixes A.
    pub fn add_lora(&mut self, cfg: &LoraConfig, seed: u64) -> Result<(), Error> {
        let mut rng = SmallRng::seed_from_u64(seed);
        self.remove_lora()?;
        for layer in &mut self.layers {
            for &t in &cfg.targets {
                let (lin, part) = layer.linear_mut(t);
                lin.add_lora(part, cfg, &mut rng)?;
            }
        }
        self.lora = Some(cfg.clone());
        Ok(())
    }

    /// Installs adapters from tensors under PEFT names
    /// (`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`, A `[r, in]`,
    /// B `[out, r]`), for every target of `cfg` in every layer.
    pub fn set_lora_tensors(
        &mut self,
        cfg: &LoraConfig,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<(), Error> {
        self.remove_lora()?;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for &t in &cfg.targets {
                let prefix = crate::lora::peft_prefix(t, i);
                let get = |which: &str| {
                    let name = format!("{prefix}.{which}.weight");
                    tensors.get(&name).ok_or(Error::MissingTensor { name })
                };
                let (a, b) = (get("lora_A")?, get("lora_B")?);
                let (lin, part) = layer.linear_mut(t);
                lin.set_lora(part, a, b, cfg)?;
            }
        }
        self.lora = Some(cfg.clone());
        Ok(())
    }

    /// Removes all adapters (unmerging merged ones).
    pub fn remove_lora(&mut self) -> Result<(), Error> {
        for layer in &mut self.layers {
            for lin in layer.linears_mut() {
                lin.remove_lora()?;
            }
        }
        self.lora = None;
        Ok(())
    }

    pub fn lora_config(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// The LoRA variables under their PEFT names, layer by layer, A before B.
    pub fn lora_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for t in LoraTarget::ALL {
                let (lin, part) = layer.linear(t);
                if let Some((a, b)) = lin.lora(part) {
                    let p = crate::lora::peft_prefix(t, i);
                    out.push((format!("{p}.lora_A.weight"), a.clone()));
                    out.push((format!("{p}.lora_B.weight"), b.clone()));
                }
            }
        }
        out
    }

    /// Folds every adapter into its base weight (inference then costs what the base costs).
    pub fn merge_lora(&mut self) -> Result<(), Error> {
        for layer in &mut self.layers {
            for lin in layer.linears_mut() {
                lin.merge()?;
            }
        }
        Ok(())
    }

    /// Takes merged adapters back out of the base weights.
    pub fn unmerge_lora(&mut self) -> Result<(), Error> {
        for layer in &mut self.layers {
            for lin in layer.linears_mut() {
                lin.unmerge()?;
            }
        }
        Ok(())
    }

    /// Every weight in Hugging Face naming with adapters folded in, for writing merged
    /// safetensors (`model.layers.N.self_attn.q_proj.weight`, …; no `lm_head.weight` when tied).
    pub fn merged_weights(&self) -> Result<HashMap<String, Tensor>, Error> {
        let mut out = HashMap::new();
        out.insert(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.clone(),
        );
        out.insert("model.norm.weight".to_string(), self.norm.weight.clone());
        if !self.cfg.tie_word_embeddings {
            out.insert("lm_head.weight".to_string(), self.lm_head.clone());
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.insert(
                format!("{p}.input_layernorm.weight"),
                layer.input_layernorm.weight.clone(),
            );
            out.insert(
                format!("{p}.post_attention_layernorm.weight"),
                layer.post_attention_layernorm.weight.clone(),
            );
            for t in LoraTarget::ALL {
                let (lin, part) = layer.linear(t);
                let name = format!("{p}.{}.{}", t.hf_parent(), t.hf_name());
                out.insert(format!("{name}.weight"), lin.effective_weight(part)?);
                if let Some(b) = lin.bias(part) {
                    out.insert(format!("{name}.bias"), b.contiguous()?);
                }
            }
        }
        Ok(out)
    }
}

impl Block {
    /// The layer holding `target`, and its part index there.
    pub(super) fn linear(&self, target: LoraTarget) -> (&Linear, usize) {
        match target {
            LoraTarget::Q => (&self.self_attn.qkv, 0),
            LoraTarget::K => (&self.self_attn.qkv, 1),
            LoraTarget::V => (&self.self_attn.qkv, 2),
            LoraTarget::O => (&self.self_attn.o_proj, 0),
            LoraTarget::Gate => (&self.mlp.gate_up, 0),
            LoraTarget::Up => (&self.mlp.gate_up, 1),
            LoraTarget::Down => (&self.mlp.down_proj, 0),
        }
    }

    pub(super) fn linear_mut(&mut self, target: LoraTarget) -> (&mut Linear, usize) {
        match target {
            LoraTarget::Q => (&mut self.self_attn.qkv, 0),
            LoraTarget::K => (&mut self.self_attn.qkv, 1),
            LoraTarget::V => (&mut self.self_attn.qkv, 2),
            LoraTarget::O => (&mut self.self_attn.o_proj, 0),
            LoraTarget::Gate => (&mut self.mlp.gate_up, 0),
            LoraTarget::Up => (&mut self.mlp.gate_up, 1),
            LoraTarget::Down => (&mut self.mlp.down_proj, 0),
        }
    }

    /// Every distinct linear layer of the block.
    pub(super) fn linears_mut(&mut self) -> [&mut Linear; 4] {
        [
            &mut self.self_attn.qkv,
            &mut self.self_attn.o_proj,
            &mut self.mlp.gate_up,
            &mut self.mlp.down_proj,
        ]
    }
}
