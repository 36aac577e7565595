//! experiment: an experiment spec (YAML v1, toured in the README) and its datasets become a
//! validated [`Plan`], or a [`SpecError`] listing every problem as `FILE:LINE:COL: message`.
//!
//! The pipeline is parse → shape → meaning: `yaml` builds a tree that remembers positions,
//! `raw` checks keys, types and ranges section by section, `validate` checks what spans sections
//! (ids, references, datasets, templates), and only a spec without a single problem becomes a
//! plan. `dataset` reads JSONL/CSV/TSV, splits deterministically and fingerprints the data;
//! `template` fills `{{field}}` placeholders; [`Plan::render`] adds few-shot demonstrations from
//! the train split.
//!
//! Invariants: the raw structs never leave this crate; the only IO is reading the spec file, the
//! dataset files it names (regular files, size-limited), and the headers of the local models it
//! names or their place in the weights cache (through `models::locate`; nothing is fetched or
//! loaded), plus `$OPENAI_BASE_URL` in [`load`]; the same spec over the same data gives the same
//! plan, split, demonstrations and hashes on every machine.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod data_check;
mod dataset;
mod decode;
mod diagnostic;
pub mod optimize;
mod plan;
mod raw;
mod rng;
pub mod sweep;
mod template;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use diagnostic::{Diagnostic, SpecError};
pub use optimize::{Candidate, OptimizeSpec};
pub use plan::{
    Arm, Dataset, FinetuneSpec, LocalProviderSpec, OpenAiProviderSpec, Plan, PromptSpec,
    ProviderSpec, Row,
};
pub use raw::DEFAULT_OPENAI_BASE_URL;

use crate::decode::Ctx;
use crate::diagnostic::{Diagnostics, LineIndex};

/// The largest spec file read (specs are a few kilobytes).
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// Settings from outside the spec that [`load_with`] uses to fill defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `base_url` of `type: openai` providers that give none. None means
    /// [`DEFAULT_OPENAI_BASE_URL`].
    pub openai_base_url: Option<String>,
}

impl LoadOptions {
    /// Reads `$OPENAI_BASE_URL` (ignored when empty).
    pub fn from_env() -> Self {
        Self {
            openai_base_url: std::env::var("OPENAI_BASE_URL")
                .ok()
                .filter(|s| !s.trim().is_empty()),
        }
    }
}

/// Reads and validates the spec at `path` and the dataset files it names (relative to the
/// spec's folder). `$OPENAI_BASE_URL` is the default `base_url` of OpenAI providers.
pub fn load(path: &Path) -> Result<Plan, SpecError> {
    load_with(path, &LoadOptions::from_env())
}

/// [`load`] with explicit settings instead of the environment.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Plan, SpecError> {
    let mut diags = Diagnostics::for_spec(path);
    let bytes = match dataset::read_regular_file(path, MAX_SPEC_BYTES) {
        Ok(b) => b,
        Err(e) => {
            diags.push(path, 1, 1, format!("cannot read the spec: {e}"));
            return Err(diags.into_error());
        }
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t.strip_prefix('\u{feff}').unwrap_or(t),
        Err(e) => {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            diags.push(path, line, 1, "the spec is not valid UTF-8");
            return Err(diags.into_error());
        }
    };
    let root = match yaml::parse(text) {
        Ok(r) => r,
        Err(e) => {
            diags.push(path, e.pos.line, e.pos.col, e.message);
            return Err(diags.into_error());
        }
    };
    let defaults = raw::Defaults {
        openai_base_url: options.openai_base_url.clone(),
    };
    let spec_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let source = validate::Source {
        text,
        lines: LineIndex::new(text),
    };
    let validated = {
        let mut cx = Ctx {
            file: path,
            diags: &mut diags,
        };
        raw::spec(&mut cx, &root, &defaults)
            .and_then(|raw| validate::validate(&mut cx, &raw, &spec_dir, &source))
    };
    let v = match validated {
        Some(v) if diags.is_empty() => v,
        _ => {
            if diags.is_empty() {
                // Every path that yields no plan reports why; this guards the promise that a
                // SpecError is never empty.
                diags.push(path, 1, 1, "the spec is incomplete");
            }
            return Err(diags.into_error());
        }
    };

    let mut h = Sha256::new();
    h.update(&bytes);
    h.update(v.dataset.fingerprint.as_bytes());
    Ok(Plan {
        name: v.name,
        description: v.description,
        spec_path: path.to_path_buf(),
        spec_hash: hex::encode(h.finalize()),
        dataset: v.dataset,
        providers: v.providers,
        prompts: v.prompts,
        finetunes: v.finetunes,
        generation: v.generation,
        scorers: v.scorers,
        budget_max_cost_usd: v.budget_max_cost_usd,
        costs: v.costs,
        declared_costs: v.declared_costs,
        decision: v.decision,
        optimize: v.optimize,
        review: v.review,
        batch: v.batch,
    })
}
