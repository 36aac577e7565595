//! `finetunes:` entries: axolotl-named LoRA hyper-parameters (with the `lora_rank` and
//! `num_train_epochs` aliases) over `domain::LoraHyper`'s defaults, and their `compute`. Whether
//! `prompt` names a prompt is checked in `validate`.

use domain::{ComputeSpec, LoraHyper, LoraTarget, LrScheduler};

use super::sweep::RawSweep;
use super::{RawFinetune, device, id, non_negative, positive};
use crate::decode::{Ctx, fields, one_of, suggest};
use crate::yaml::Node;

const FINETUNE: &[&str] = &[
    "id",
    "base_model",
    "prompt",
    "train_with_demos",
    "adapter",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "learning_rate",
    "num_epochs",
    "micro_batch_size",
    "gradient_accumulation_steps",
    "sequence_len",
    "val_set_size",
    "early_stopping_patience",
    "eval_steps",
    "save_steps",
    "warmup_steps",
    "lr_scheduler",
    "weight_decay",
    "max_grad_norm",
    "seed",
    "merge_weights",
    "compute",
    "train_sizes",
    "label_noise",
];
/// axolotl and PEFT spellings accepted for our names.
const FINETUNE_ALIASES: &[(&str, &str)] =
    &[("lora_rank", "lora_r"), ("num_train_epochs", "num_epochs")];
const COMPUTE: &[&str] = &["device", "cost_per_hour"];
/// Upper bounds of the numeric keys (README's YAML tour): far beyond useful values, well below
/// what exhausts a machine (a rank of 10^6 asks the worker for hundreds of gigabytes).
const MAX_LORA_R: usize = 1024;
const MAX_EPOCHS: usize = 1000;
const MAX_BATCH: usize = 4096;
const MAX_SEQUENCE_LEN: usize = 131_072;
/// The projections LoRA can target in a llama-family model (Hugging Face names).
const TARGET_MODULES: [&str; 7] = {
    let mut names = [""; 7];
    let mut i = 0;
    while i < names.len() {
        names[i] = LoraTarget::ALL[i].hf_name();
        i += 1;
    }
    names
};

pub(super) fn finetune(cx: &mut Ctx<'_>, node: &Node) -> RawFinetune {
    let d = LoraHyper::default();
    let Some(f) = fields(cx, node, "a fine-tune", FINETUNE, FINETUNE_ALIASES) else {
        return RawFinetune {
            id: None,
            base_model: None,
            prompt: None,
            train_with_demos: false,
            hyper: d,
            compute: ComputeSpec::default(),
            sweep: RawSweep::default(),
        };
    };
    if let Some(a) = f.string(cx, "adapter")
        && a.value != "lora"
    {
        cx.error(
            a.pos,
            format!(
                "unsupported adapter `{}`: only `lora` is supported",
                a.value
            ),
        );
    }
    let target_modules = match f.strings(cx, "lora_target_modules", false) {
        Some(list) => {
            if list.value.is_empty() {
                cx.error(
                    list.pos,
                    "`lora_target_modules` must name at least one module",
                );
            }
            let mut targets = Vec::with_capacity(list.value.len());
            for m in &list.value {
                match LoraTarget::ALL.into_iter().find(|t| t.hf_name() == m.value) {
                    Some(t) => targets.push(t),
                    None => {
                        let hint = match suggest(&m.value, TARGET_MODULES.iter().copied()) {
                            Some(s) => format!(", did you mean `{s}`?"),
                            None => format!(": expected {}", one_of(&TARGET_MODULES)),
                        };
                        cx.error(
                            m.pos,
                            format!("unknown LoRA target module `{}`{hint}", m.value),
                        );
                    }
                }
            }
            targets
        }
        None => d.lora_target_modules.clone(),
    };
    let lr_scheduler = match f.string(cx, "lr_scheduler") {
        Some(s) => LrScheduler::parse(&s.value).unwrap_or_else(|message| {
            cx.error(s.pos, message);
            d.lr_scheduler
        }),
        None => d.lr_scheduler,
    };
    let unit = |x: f64| (0.0..1.0).contains(&x);
    let hyper = LoraHyper {
        lora_r: f
            .usize_in(cx, "lora_r", 1, MAX_LORA_R)
            .map_or(d.lora_r, |s| s.value),
        lora_alpha: f
            .number(cx, "lora_alpha", positive, "more than zero")
            .map_or(d.lora_alpha, |s| s.value),
        lora_dropout: f
            .number(cx, "lora_dropout", unit, "at least 0 and less than 1")
            .map_or(d.lora_dropout, |s| s.value),
        lora_target_modules: target_modules,
        learning_rate: f
            .number(cx, "learning_rate", positive, "more than zero")
            .map_or(d.learning_rate, |s| s.value),
        num_epochs: f
            .usize_in(cx, "num_epochs", 1, MAX_EPOCHS)
            .map_or(d.num_epochs, |s| s.value),
        micro_batch_size: f
            .usize_in(cx, "micro_batch_size", 1, MAX_BATCH)
            .map_or(d.micro_batch_size, |s| s.value),
        gradient_accumulation_steps: f
            .usize_in(cx, "gradient_accumulation_steps", 1, MAX_BATCH)
            .map_or(d.gradient_accumulation_steps, |s| s.value),
        sequence_len: f
            .usize_in(cx, "sequence_len", 8, MAX_SEQUENCE_LEN)
            .map_or(d.sequence_len, |s| s.value),
        val_set_size: f
            .number(cx, "val_set_size", unit, "at least 0 and less than 1")
            .map_or(d.val_set_size, |s| s.value),
        early_stopping_patience: f
            .usize(cx, "early_stopping_patience", 1)
            .map(|s| s.value)
            .or(d.early_stopping_patience),
        eval_steps: f
            .usize(cx, "eval_steps", 1)
            .map(|s| s.value)
            .or(d.eval_steps),
        save_steps: f
            .usize_in(cx, "save_steps", 1, LoraHyper::MAX_SAVE_STEPS)
            .map(|s| s.value)
            .or(d.save_steps),
        warmup_steps: f
            .usize(cx, "warmup_steps", 0)
            .map_or(d.warmup_steps, |s| s.value),
        lr_scheduler,
        weight_decay: f
            .number(cx, "weight_decay", non_negative, "zero or more")
            .map_or(d.weight_decay, |s| s.value),
        max_grad_norm: f
            .number(cx, "max_grad_norm", non_negative, "zero or more")
            .map_or(d.max_grad_norm, |s| s.value),
        seed: f.uint(cx, "seed", 0).map_or(d.seed, |s| s.value),
        merge_weights: f
            .bool(cx, "merge_weights")
            .map_or(d.merge_weights, |s| s.value),
    };
    let compute = match f.get("compute") {
        Some(n) => match fields(cx, n, "`compute`", COMPUTE, &[]) {
            Some(c) => {
                let base = ComputeSpec::default();
                ComputeSpec {
                    device: device(cx, &c).unwrap_or(base.device),
                    cost_per_hour: c
                        .number(cx, "cost_per_hour", non_negative, "zero or more")
                        .map_or(base.cost_per_hour, |s| s.value),
                }
            }
            None => ComputeSpec::default(),
        },
        None => ComputeSpec::default(),
    };
    RawFinetune {
        id: id(cx, &f, true),
        base_model: f.req_string(cx, "base_model"),
        prompt: f.req_string(cx, "prompt"),
        train_with_demos: f.bool(cx, "train_with_demos").is_some_and(|s| s.value),
        hyper,
        compute,
        sweep: super::sweep::sweep(cx, &f, "train_sizes", true),
    }
}
