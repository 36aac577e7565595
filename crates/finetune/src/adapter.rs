//! LoRA adapters on disk, in Hugging Face PEFT's layout, so an adapter trained here loads in
//! PEFT (`PeftModel.from_pretrained`) and vLLM, and one trained there loads here:
//!
//! ```text
//! adapter/adapter_config.json        {"peft_type": "LORA", "r": 8, "lora_alpha": 16, ...}
//! adapter/adapter_model.safetensors  base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight [r, in]
//!                                    base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight [out, r]
//! ```
//!
//! Also the optional merged export: a standalone Hugging Face model directory (`config.json`,
//! `model.safetensors` with `W + (alpha/r)·B·A` folded in, `tokenizer.json`,
//! `tokenizer_config.json` with the chat template) that our own loader, `transformers` and
//! llama.cpp's converter read.
//!
//! On the RoPE permutation: llama.cpp's converter permutes the rows of `q_proj`/`k_proj` for
//! interleaved RoPE, so a LoRA B trained against raw GGUF q/k weights would be in that permuted
//! row order and need un-permuting on export. Our loader un-permutes the GGUF weights at load
//! (`weights.rs`) and the model runs half-rotation RoPE, so the LoRA tensors are born in the
//! Hugging Face layout and are written as they are; the test
//! `gguf_and_hf_bases_agree_on_one_adapter` pins that down (an adapter trained on the GGUF base
//! gives the same logits on the Hugging Face-layout weights).
//!
//! [`load_adapter`] is the strict reader (it refuses DoRA, rsLoRA, per-module ranks, saved
//! modules and unknown tensors rather than half-apply them); [`load_onto`] puts what it read on
//! a [`LocalModel`].
//!
//! Not here: which weights to train (`lora.rs`), training (`train.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::files;
use llm::LocalModel;
use llm::lora::{LoraConfig, LoraTarget};
use llm::model::Llama;

/// The adapter's configuration file.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The adapter's weights file.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// `adapter_config.json` as PEFT writes it for a LoRA adapter (PEFT ≥ 0.10 field set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftConfig {
    pub peft_type: String,
    pub task_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    pub base_model_name_or_path: Option<String>,
    pub bias: String,
    pub fan_in_fan_out: bool,
    pub inference_mode: bool,
    pub init_lora_weights: bool,
    pub modules_to_save: Option<Vec<String>>,
    pub layers_to_transform: Option<Vec<usize>>,
    pub layers_pattern: Option<String>,
    pub rank_pattern: BTreeMap<String, usize>,
    pub alpha_pattern: BTreeMap<String, f64>,
    pub use_rslora: bool,
    pub use_dora: bool,
    pub revision: Option<String>,
}

impl PeftConfig {
    /// The configuration PEFT would write for `cfg` on `base_model`.
    pub fn new(cfg: &LoraConfig, base_model: Option<String>) -> Self {
        Self {
            peft_type: "LORA".into(),
            task_type: "CAUSAL_LM".into(),
            r: cfg.r,
            lora_alpha: cfg.alpha,
            lora_dropout: cfg.dropout,
            target_modules: cfg
                .targets
                .iter()
                .map(|t| t.hf_name().to_string())
                .collect(),
            base_model_name_or_path: base_model,
            bias: "none".into(),
            fan_in_fan_out: false,
            inference_mode: true,
            init_lora_weights: true,
            modules_to_save: None,
            layers_to_transform: None,
            layers_pattern: None,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
            use_rslora: false,
            use_dora: false,
            revision: None,
        }
    }
}

/// The fields of someone else's `adapter_config.json` that decide whether we can use it;
/// everything else PEFT writes is ignored.
#[derive(Deserialize)]
struct PeftConfigIn {
    #[serde(default = "lora")]
    peft_type: String,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    target_modules: TargetModules,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    #[serde(default = "none")]
    bias: String,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    rank_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
}

fn lora() -> String {
    "LORA".into()
}
fn none() -> String {
    "none".into()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TargetModules {
    List(Vec<String>),
    One(String),
}

/// An adapter read from disk, ready to install on a model.
#[derive(Debug, Clone)]
pub struct AdapterWeights {
    pub config: LoraConfig,
    /// What the adapter says it was trained on (`base_model_name_or_path`).
    pub base_model: Option<String>,
    /// PEFT names (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`) → tensors.
    pub tensors: HashMap<String, Tensor>,
}

impl AdapterWeights {
    /// Installs the adapter on `model` (unmerged), replacing any adapter it has.
    pub fn apply_to(&self, model: &mut Llama) -> Result<(), Error> {
        Ok(model.set_lora_tensors(&self.config, &self.tensors)?)
    }
}

/// Writes `model`'s LoRA tensors and configuration to `dir` (replacing what is there) in PEFT
/// layout. `base_model` is recorded as `base_model_name_or_path`.
pub fn save_adapter(dir: &Path, model: &Llama, base_model: &str) -> Result<(), Error> {
    let cfg = model.lora_config().ok_or_else(|| llm::Error::InvalidLora {
        reason: "the model has no LoRA adapter to save".into(),
    })?;
    let tensors: Vec<(String, Tensor)> = model
        .lora_vars()
        .into_iter()
        .map(|(name, var)| (name, var.as_tensor().clone()))
        .collect();
    save_tensors(dir, cfg, &tensors, base_model)
}

/// Writes LoRA `tensors` (PEFT names) with `cfg` to `dir` in PEFT layout, replacing the
/// directory atomically (it is staged beside `dir` and renamed).
pub fn save_tensors(
    dir: &Path,
    cfg: &LoraConfig,
    tensors: &[(String, Tensor)],
    base_model: &str,
) -> Result<(), Error> {
    let staged = staging_dir(dir);
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|e| files::io_error(&staged, e))?;
    }
    files::create_dir_all(&staged)?;
    let peft = PeftConfig::new(cfg, Some(base_model.to_string()));
    files::write_json(&staged.join(CONFIG_FILE), &peft)?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    files::write_safetensors(&staged.join(WEIGHTS_FILE), tensors, metadata)?;
    files::replace_dir(&staged, dir)
}

fn staging_dir(dir: &Path) -> PathBuf {
    dir.with_file_name(format!(
        "{}.partial",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// Reads a PEFT LoRA adapter directory. Refuses what this crate cannot apply faithfully
/// (DoRA, rsLoRA, per-module ranks, trained biases, extra saved modules, unknown tensors).
pub fn load_adapter(dir: &Path, device: &Device) -> Result<AdapterWeights, Error> {
    let cfg_path = dir.join(CONFIG_FILE);
    let peft: PeftConfigIn = files::read_json(&cfg_path)?;
    let bad = |reason: String| Error::BadAdapter {
        path: dir.to_path_buf(),
        reason,
    };
    let refuse = [
        (
            peft.peft_type != "LORA",
            format!("peft_type is {:?}", peft.peft_type),
        ),
        (
            peft.use_dora,
            "DoRA adapters (use_dora) are not supported".into(),
        ),
        (
            peft.use_rslora,
            "rsLoRA adapters (use_rslora) are not supported".into(),
        ),
        (
            peft.bias != "none",
            format!("bias {:?} (only \"none\")", peft.bias),
        ),
        (
            peft.fan_in_fan_out,
            "fan_in_fan_out (Conv1D models) is not supported".into(),
        ),
        (
            !peft.rank_pattern.is_empty() || !peft.alpha_pattern.is_empty(),
            "per-module ranks (rank_pattern/alpha_pattern) are not supported".into(),
        ),
        (
            peft.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()),
            "modules_to_save is not supported".into(),
        ),
        (
            peft.layers_to_transform
                .as_ref()
                .is_some_and(|l| !l.is_null()),
            "layers_to_transform is not supported".into(),
        ),
    ];
    if let Some((_, reason)) = refuse.into_iter().find(|(refused, _)| *refused) {
        return Err(bad(reason));
    }
    let names = match peft.target_modules {
        TargetModules::List(v) => v,
        TargetModules::One(s) => {
            return Err(bad(format!(
                "target_modules is a pattern ({s:?}); a list of module names is expected"
            )));
        }
    };
    let targets = names
        .iter()
        .map(|n| LoraTarget::parse(n).ok_or_else(|| Error::UnknownLoraTarget { name: n.clone() }))
        .collect::<Result<Vec<_>, _>>()?;
    let config = LoraConfig::new(peft.r, peft.lora_alpha, peft.lora_dropout, &targets)?;

    let raw = files::read_safetensors(&dir.join(WEIGHTS_FILE), device)?;
    let mut tensors = HashMap::with_capacity(raw.len());
    for (name, t) in raw {
        // Older PEFT versions name the adapter (`lora_A.default.weight`).
        let name = name.replace(".default.weight", ".weight");
        if !is_lora_name(&name, &config.targets) {
            return Err(bad(format!(
                "unexpected tensor {name:?} (only lora_A/lora_B of {names:?})"
            )));
        }
        tensors.insert(name, t);
    }
    if tensors.is_empty() {
        return Err(bad("no LoRA tensors".into()));
    }
    Ok(AdapterWeights {
        config,
        base_model: peft.base_model_name_or_path,
        tensors,
    })
}

/// `base_model.model.model.layers.{i}.{self_attn|mlp}.{target}.lora_{A|B}.weight` of a target.
fn is_lora_name(name: &str, targets: &[LoraTarget]) -> bool {
    let Some(rest) = name.strip_prefix("base_model.model.model.layers.") else {
        return false;
    };
    let Some((layer, rest)) = rest.split_once('.') else {
        return false;
    };
    if layer.parse::<usize>().is_err() {
        return false;
    }
    targets.iter().any(|t| {
        ["lora_A", "lora_B"]
            .iter()
            .any(|ab| rest == format!("{}.{}.{ab}.weight", t.hf_parent(), t.hf_name()))
    })
}

/// `config.json` of a merged export, in `transformers`' `LlamaConfig` names.
#[derive(Serialize)]
struct HfConfigOut {
    architectures: Vec<&'static str>,
    model_type: &'static str,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    head_dim: usize,
    hidden_act: &'static str,
    rms_norm_eps: f64,
    rope_theta: f64,
    max_position_embeddings: usize,
    tie_word_embeddings: bool,
    attention_bias: bool,
    mlp_bias: bool,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    torch_dtype: &'static str,
}

/// Loads a PEFT adapter directory (`adapter_config.json` + `adapter_model.safetensors`, read
/// by [`load_adapter`]) onto `model`, replacing any adapter, unmerged.
pub fn load_onto(model: &mut LocalModel, dir: &Path) -> Result<(), Error> {
    let weights = load_adapter(dir, model.model().device())?;
    weights.apply_to(model.model_mut())
}

/// Writes `model` with its adapter folded in as a standalone Hugging Face model directory
/// `dir` (f32 weights). `chat_template` goes into `tokenizer_config.json` so the export keeps
/// answering in the same format.
pub fn save_merged(
    dir: &Path,
    model: &LocalModel,
    chat_template: Option<&str>,
) -> Result<(), Error> {
    let llama = model.model();
    let cfg = llama.config();
    if cfg.rope_freq_factors.is_some() {
        return Err(Error::UnsupportedExport {
            what: "models with RoPE frequency factors (Llama 3.1 rope_scaling)".into(),
        });
    }
    let staged = staging_dir(dir);
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|e| files::io_error(&staged, e))?;
    }
    files::create_dir_all(&staged)?;

    let tok = model.tokenizer();
    let hf = HfConfigOut {
        architectures: vec!["LlamaForCausalLM"],
        model_type: "llama",
        vocab_size: cfg.vocab_size,
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        num_hidden_layers: cfg.num_hidden_layers,
        num_attention_heads: cfg.num_attention_heads,
        num_key_value_heads: cfg.num_key_value_heads,
        head_dim: cfg.head_dim,
        hidden_act: "silu",
        rms_norm_eps: cfg.rms_norm_eps,
        rope_theta: cfg.rope_theta,
        max_position_embeddings: cfg.max_position_embeddings,
        tie_word_embeddings: cfg.tie_word_embeddings,
        attention_bias: cfg.attention_bias,
        mlp_bias: false,
        bos_token_id: tok.bos_id(),
        eos_token_id: tok.eos_ids().first().copied(),
        torch_dtype: "float32",
    };
    files::write_json(&staged.join("config.json"), &hf)?;

    let mut weights: Vec<(String, Tensor)> = llama.merged_weights()?.into_iter().collect();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    files::write_safetensors(&staged.join("model.safetensors"), &weights, metadata)?;

    let tokenizer_json = staged.join("tokenizer.json");
    tok.inner()
        .save(&tokenizer_json, false)
        .map_err(llm::Error::tokenizer)?;
    let name = |id: Option<u32>| id.and_then(|i| tok.inner().id_to_token(i));
    let tokenizer_config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": name(tok.bos_id()),
        "eos_token": name(tok.eos_ids().first().copied()),
        "pad_token": name(Some(tok.pad_id())),
        "add_bos_token": false,
        "chat_template": chat_template,
    });
    files::write_json(&staged.join("tokenizer_config.json"), &tokenizer_config)?;
    files::replace_dir(&staged, dir)
}

/// The chat template a base model file declares: `tokenizer.chat_template` of a GGUF, or
/// `chat_template` of the `tokenizer_config.json` beside safetensors weights.
pub fn base_chat_template(base_model: &Path) -> Option<String> {
    if base_model.extension().is_some_and(|e| e == "gguf") {
        let mut file = std::io::BufReader::new(std::fs::File::open(base_model).ok()?);
        let content = candle_core::quantized::gguf_file::Content::read(&mut file).ok()?;
        return match content.metadata.get("tokenizer.chat_template") {
            Some(candle_core::quantized::gguf_file::Value::String(s)) => Some(s.clone()),
            _ => None,
        };
    }
    let dir = if base_model.is_dir() {
        base_model
    } else {
        base_model.parent()?
    };
    let v: serde_json::Value = files::read_json(&dir.join("tokenizer_config.json")).ok()?;
    v.get("chat_template")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{DType, IndexOp};
    use candle_nn::VarBuilder;
    use llm::testing;
    use llm::testing::max_diff;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// Gives every LoRA variable of `model` seeded random values (B too, so the adapter
    /// changes the output).
    fn randomise_lora(model: &Llama, seed: u64) {
        let mut rng = SmallRng::seed_from_u64(seed);
        for (_, var) in model.lora_vars() {
            let n = var.as_tensor().elem_count();
            let data: Vec<f32> = (0..n).map(|_| rng.random_range(-0.3..0.3)).collect();
            let t = Tensor::from_vec(data, var.as_tensor().shape(), &Device::Cpu).unwrap();
            var.set(&t).unwrap();
        }
    }

    fn lora_cfg(targets: &[LoraTarget]) -> LoraConfig {
        LoraConfig::new(4, 8.0, 0.0, targets).unwrap()
    }

    fn ids() -> Tensor {
        Tensor::new(&[[1u32, 40, 77, 3, 200, 9, 150, 2]], &Device::Cpu).unwrap()
    }

    #[test]
    fn save_then_load_gives_identical_logits() {
        let dir = tempfile::tempdir().unwrap();
        let mut trained = testing::tiny_llama(1).unwrap();
        trained.add_lora(&lora_cfg(&LoraTarget::ALL), 5).unwrap();
        randomise_lora(&trained, 6);
        let adapter_dir = dir.path().join("adapter");
        save_adapter(&adapter_dir, &trained, "tiny.gguf").unwrap();

        let peft: serde_json::Value = files::read_json(&adapter_dir.join(CONFIG_FILE)).unwrap();
        assert_eq!(peft["peft_type"], "LORA");
        assert_eq!(peft["task_type"], "CAUSAL_LM");
        assert_eq!(peft["r"], 4);
        assert_eq!(peft["lora_alpha"], 8.0);
        assert_eq!(peft["bias"], "none");
        assert_eq!(peft["fan_in_fan_out"], false);
        assert_eq!(peft["inference_mode"], true);
        assert_eq!(peft["base_model_name_or_path"], "tiny.gguf");
        assert_eq!(
            peft["target_modules"],
            serde_json::json!([
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj"
            ])
        );
        let raw =
            candle_core::safetensors::load(adapter_dir.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
        let a = &raw["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"];
        let b = &raw["base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"];
        assert_eq!(a.dims(), &[4, 32], "A is [r, in]");
        assert_eq!(b.dims(), &[16, 4], "B is [out, r]");
        assert_eq!(raw.len(), 2 * 7 * 2);

        let loaded = load_adapter(&adapter_dir, &Device::Cpu).unwrap();
        assert_eq!(loaded.base_model.as_deref(), Some("tiny.gguf"));
        let mut fresh = testing::tiny_llama(1).unwrap();
        let base = fresh.forward(&ids()).unwrap();
        loaded.apply_to(&mut fresh).unwrap();
        let want = trained.forward(&ids()).unwrap();
        let got = fresh.forward(&ids()).unwrap();
        assert!(
            max_diff(&base, &want) > 1e-2,
            "the adapter changes the logits"
        );
        assert_eq!(max_diff(&want, &got), 0.0);
    }

    #[test]
    fn unsupported_adapters_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = testing::tiny_llama(1).unwrap();
        model.add_lora(&lora_cfg(&[LoraTarget::Q]), 5).unwrap();
        save_adapter(dir.path(), &model, "tiny").unwrap();
        let cfg_path = dir.path().join(CONFIG_FILE);
        let original: serde_json::Value = files::read_json(&cfg_path).unwrap();
        for (key, value) in [
            ("use_dora", serde_json::json!(true)),
            ("bias", serde_json::json!("all")),
            ("target_modules", serde_json::json!(".*proj")),
            ("rank_pattern", serde_json::json!({"q_proj": 16})),
        ] {
            let mut v = original.clone();
            v[key] = value;
            files::write_json(&cfg_path, &v).unwrap();
            let err = load_adapter(dir.path(), &Device::Cpu).unwrap_err();
            assert!(matches!(err, Error::BadAdapter { .. }), "{key}: {err}");
        }
    }

    /// The brief's permutation concern, end to end: the same weights as a llama GGUF (q/k rows
    /// permuted by `write_gguf`, as llama.cpp's converter does) and as Hugging Face safetensors.
    /// An adapter trained on the GGUF-loaded base, saved and applied to the Hugging Face base,
    /// gives the same logits; its q/k B rows therefore need no un-permuting.
    #[test]
    fn gguf_and_hf_bases_agree_on_one_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("tiny.gguf");
        testing::write_tiny_gguf(&gguf, 11).unwrap();
        let files = llm::weights::read(&gguf, &Device::Cpu).unwrap();
        let cfg = files.cfg.clone();
        let mut on_gguf = Llama::new(
            &cfg,
            VarBuilder::from_tensors(files.tensors, DType::F32, &Device::Cpu),
        )
        .unwrap();
        on_gguf
            .add_lora(&lora_cfg(&[LoraTarget::Q, LoraTarget::K, LoraTarget::V]), 2)
            .unwrap();
        randomise_lora(&on_gguf, 3);
        save_adapter(&dir.path().join("adapter"), &on_gguf, "tiny.gguf").unwrap();

        let hf_weights = testing::random_weights(&cfg, 11).unwrap();
        let mut on_hf = Llama::new(
            &cfg,
            VarBuilder::from_tensors(hf_weights, DType::F32, &Device::Cpu),
        )
        .unwrap();
        load_adapter(&dir.path().join("adapter"), &Device::Cpu)
            .unwrap()
            .apply_to(&mut on_hf)
            .unwrap();
        let (a, b) = (
            on_gguf.forward(&ids()).unwrap(),
            on_hf.forward(&ids()).unwrap(),
        );
        assert!(max_diff(&a, &b) < 1e-4, "{}", max_diff(&a, &b));

        // And the q rows really are stored permuted in the file: the first head's row 1 in
        // the GGUF is the Hugging Face row head_dim/2.
        let mut reader = std::io::BufReader::new(std::fs::File::open(&gguf).unwrap());
        let content = candle_core::quantized::gguf_file::Content::read(&mut reader).unwrap();
        let raw_q = content
            .tensor(&mut reader, "blk.0.attn_q.weight", &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let hf_q =
            &testing::random_weights(&cfg, 11).unwrap()["model.layers.0.self_attn.q_proj.weight"];
        let half = cfg.head_dim / 2;
        assert_eq!(max_diff(&raw_q.i(1).unwrap(), &hf_q.i(half).unwrap()), 0.0);
    }

    #[test]
    fn merged_export_answers_like_the_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = testing::tiny_local_model(4).unwrap();
        model
            .model_mut()
            .add_lora(
                &lora_cfg(&[LoraTarget::Q, LoraTarget::V, LoraTarget::Down]),
                1,
            )
            .unwrap();
        randomise_lora(model.model(), 2);
        let merged_dir = dir.path().join("merged");
        save_merged(&merged_dir, &model, Some(testing::CHATML_TEMPLATE)).unwrap();

        let reloaded = LocalModel::load_on(&merged_dir, &Device::Cpu, DType::F32).unwrap();
        let (a, b) = (
            model.model().forward(&ids()).unwrap(),
            reloaded.model().forward(&ids()).unwrap(),
        );
        assert!(max_diff(&a, &b) < 1e-4, "{}", max_diff(&a, &b));
        let msgs = [domain::Message::user("hello")];
        assert_eq!(
            model.encode_prompt(&msgs).unwrap(),
            reloaded.encode_prompt(&msgs).unwrap()
        );
    }

    #[test]
    fn the_gguf_declares_its_chat_template() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("tiny.gguf");
        testing::write_tiny_gguf(&gguf, 1).unwrap();
        assert_eq!(
            base_chat_template(&gguf).as_deref(),
            Some(testing::CHATML_TEMPLATE)
        );
    }
}
