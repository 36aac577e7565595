//! `bench-serving`: how fast a local arm (a prompt arm on a `type: local` provider, or a
//! fine-tune with its trained adapter) answers the run's eval prompts at each batch size, and
//! how long each request waits. The batch's time is every one of its requests' latency (a request
//! waits for the batch it is in), so a larger batch buys throughput with latency; the report
//! picks the size that meets `costs.serving.latency_slo_ms`.
//!
//! The model is loaded once and warmed on one prompt before any measurement; each size answers
//! the same prompts, in the same order, on a blocking thread.

use std::path::{Path, PathBuf};
use std::time::Instant;

use domain::{Device, GenerationParams, Message, ServingBench};
use experiment::{Arm, Plan};

use crate::events::{Emitter, Event};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// Batch sizes, each at least 1.
    pub sizes: Vec<usize>,
    /// Eval prompts answered at each size (the first ones; fewer when eval has fewer).
    pub items: usize,
}

/// Why a benchmark could not run; each is a sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    BadArm(String),
    #[error("{0}")]
    Model(String),
}

/// A local arm resolved for measurement.
struct Target {
    weights: domain::ModelSource,
    device: Device,
    adapter: Option<PathBuf>,
    prompts: Vec<Vec<Message>>,
    params: GenerationParams,
}

/// Measures `arm` of `plan`; `adapter` is the trained adapter of a fine-tune arm (from the run).
/// Notes (a model fetched into the cache) arrive on `events`.
pub async fn bench_serving(
    plan: &Plan,
    arm: &str,
    adapter: Option<&Path>,
    request: &BenchRequest,
    events: tokio::sync::mpsc::Sender<Event>,
) -> Result<Vec<ServingBench>, BenchError> {
    let target = target(plan, arm, adapter, request.items)?;
    if target.prompts.is_empty() {
        return Err(BenchError::BadArm(
            "the eval split has no items to answer".to_owned(),
        ));
    }
    let path = crate::local::resolve_model(&target.weights, &Emitter::new(events))
        .await
        .map_err(BenchError::Model)?;
    let arm = arm.to_owned();
    let sizes = request.sizes.clone();
    tokio::task::spawn_blocking(move || measure(&arm, &path, &target, &sizes))
        .await
        .map_err(|e| BenchError::Model(format!("the benchmark thread failed: {e}")))?
}

fn target(
    plan: &Plan,
    arm: &str,
    adapter: Option<&Path>,
    items: usize,
) -> Result<Target, BenchError> {
    let rows = plan.dataset.eval.iter().take(items.max(1));
    let found = plan.arms().into_iter().find(|a| a.id() == arm);
    match found {
        Some(Arm::Local {
            provider, prompt, ..
        }) => Ok(Target {
            weights: provider.weights.clone(),
            device: provider.device,
            adapter: None,
            prompts: rows.map(|r| plan.render(&prompt, r)).collect(),
            params: crate::arm_params(&plan.generation, &prompt),
        }),
        Some(Arm::Finetune { spec, prompt }) => {
            let adapter = adapter.ok_or_else(|| {
                BenchError::BadArm(format!(
                    "fine-tune `{arm}` has no trained adapter in this run: run the experiment \
                     until it has trained"
                ))
            })?;
            Ok(Target {
                weights: spec.base_weights.clone(),
                device: spec.compute.device,
                adapter: Some(adapter.to_path_buf()),
                prompts: rows
                    .map(|r| plan.render_finetune(&spec, &prompt, r))
                    .collect(),
                params: crate::arm_params(&plan.generation, &prompt),
            })
        }
        Some(Arm::Hosted { .. }) => Err(BenchError::BadArm(format!(
            "`{arm}` is a hosted arm: bench-serving measures local arms (a prompt on a \
             `type: local` provider, or a fine-tune)"
        ))),
        None => {
            let local: Vec<String> = plan
                .arms()
                .iter()
                .filter(|a| !matches!(a, Arm::Hosted { .. }))
                .map(|a| format!("`{}`", a.id()))
                .collect();
            Err(BenchError::BadArm(format!(
                "no arm `{arm}` in the spec; its local arms are: {}",
                if local.is_empty() {
                    "none".to_owned()
                } else {
                    local.join(", ")
                }
            )))
        }
    }
}

fn measure(
    arm: &str,
    path: &Path,
    t: &Target,
    sizes: &[usize],
) -> Result<Vec<ServingBench>, BenchError> {
    let model_err =
        |e: &dyn std::fmt::Display| BenchError::Model(format!("{}: {e}", path.display()));
    let mut model = llm::LocalModel::load(path, t.device).map_err(|e| model_err(&e))?;
    if let Some(dir) = &t.adapter {
        finetune::adapter::load_onto(&mut model, dir)
            .map_err(|e| BenchError::Model(format!("adapter {}: {e}", dir.display())))?;
    }
    // Warm-up: the first forward pass pays for allocation and page faults.
    answered(model.answer_each(&t.prompts[..1], &t.params))?;
    sizes
        .iter()
        .map(|&size| one_size(arm, &mut model, t, size.max(1)))
        .collect()
}

/// A timing is only worth having when every prompt was answered: a prompt that fails (one past
/// the model's context, say) returns early and would flatter the figures.
fn answered(outcomes: Vec<Result<llm::Generation, llm::Error>>) -> Result<(), BenchError> {
    let failed: Vec<llm::Error> = outcomes.into_iter().filter_map(Result::err).collect();
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(BenchError::Model(format!(
            "{} prompt(s) could not be answered, so the timing would mean nothing; the first: \
             {first}",
            failed.len()
        ))),
    }
}

fn one_size(
    arm: &str,
    model: &mut llm::LocalModel,
    t: &Target,
    size: usize,
) -> Result<ServingBench, BenchError> {
    model.set_max_batch(size);
    let mut latencies = Vec::with_capacity(t.prompts.len());
    let started = Instant::now();
    for chunk in t.prompts.chunks(size) {
        let batch = Instant::now();
        answered(model.answer_each(chunk, &t.params))?;
        let ms = batch.elapsed().as_secs_f64() * 1000.0;
        latencies.extend(std::iter::repeat_n(ms, chunk.len()));
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Ok(ServingBench {
        arm: arm.to_owned(),
        batch_size: size as u32,
        items: t.prompts.len() as u32,
        items_per_second: t.prompts.len() as f64 / seconds,
        latency_p50_ms: scoring::percentile(&latencies, 50.0),
        latency_p95_ms: scoring::percentile(&latencies, 95.0),
        measured_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    })
}
