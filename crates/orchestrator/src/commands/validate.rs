//! `orchestrator validate FILE`: checks a spec, its datasets and its local models before anything
//! is spent, and says what the run would do: the arms, the models `run` will fetch first, and
//! the providers whose API key is not set (a warning: `run` skips their arms). Errors print as
//! `FILE:LINE:COL: message` (see `exit`).

use std::path::PathBuf;

use domain::ModelSource;
use experiment::{Plan, ProviderSpec};

use crate::exit::Exit;
use crate::output::{errln, out, outln};
use crate::progress::plural;

/// Check an experiment spec, its datasets and models; print every problem as FILE:LINE:COL:
/// message.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment YAML.
    pub file: PathBuf,

    /// Print the resolved plan as YAML (every default filled in, the arms, the dataset's split
    /// sizes and fingerprint) instead of the summary.
    #[arg(long)]
    pub print_plan: bool,
}

/// What `--print-plan` shows: the plan with the dataset's rows summarised.
#[derive(serde::Serialize)]
struct PrintedPlan<'a> {
    name: &'a str,
    description: Option<&'a str>,
    spec_hash: &'a str,
    dataset: PrintedDataset<'a>,
    arms: Vec<String>,
    providers: &'a [ProviderSpec],
    prompts: &'a [experiment::PromptSpec],
    finetunes: &'a [experiment::FinetuneSpec],
    generation: &'a domain::GenerationParams,
    scorers: &'a [domain::ScorerSpec],
    budget_max_cost_usd: Option<f64>,
    costs: &'a domain::CostAssumptions,
    decision: &'a domain::Decision,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    optimize: &'a [experiment::OptimizeSpec],
}

#[derive(serde::Serialize)]
struct PrintedDataset<'a> {
    input: &'a str,
    target: &'a str,
    eval_items: usize,
    train_items: usize,
    /// Rows carved from train for `optimize:` searches.
    dev_items: usize,
    seed: u64,
    fingerprint: &'a str,
}

/// The plan as YAML, in the plan's own field order.
fn plan_yaml(plan: &Plan) -> anyhow::Result<String> {
    let printed = PrintedPlan {
        name: &plan.name,
        description: plan.description.as_deref(),
        spec_hash: &plan.spec_hash,
        dataset: PrintedDataset {
            input: &plan.dataset.input_field,
            target: &plan.dataset.target_field,
            eval_items: plan.dataset.eval.len(),
            train_items: plan.dataset.train.len(),
            dev_items: plan.dataset.dev.len(),
            seed: plan.dataset.seed,
            fingerprint: &plan.dataset.fingerprint,
        },
        arms: plan.arms().iter().map(|a| a.id().to_owned()).collect(),
        providers: &plan.providers,
        prompts: &plan.prompts,
        finetunes: &plan.finetunes,
        generation: &plan.generation,
        scorers: &plan.scorers,
        budget_max_cost_usd: plan.budget_max_cost_usd,
        costs: &plan.costs,
        decision: &plan.decision,
        optimize: &plan.optimize,
    };
    Ok(serde_yaml::to_string(&printed)?)
}

pub async fn execute(args: Args) -> anyhow::Result<Exit> {
    let plan = experiment::load(&args.file)?;
    if args.print_plan {
        out!("{}", plan_yaml(&plan)?)?;
        warn_missing_keys(&plan)?;
        return Ok(Exit::Ok);
    }
    let arms = plan.arms();
    let eval = plan.dataset.eval.len() as u64;
    outln!(
        "{}: ok — {} arm{}, {eval} eval item{}, {} train item{}, {} scorer{}",
        args.file.display(),
        arms.len(),
        plural(arms.len() as u64),
        plural(eval),
        plan.dataset.train.len(),
        plural(plan.dataset.train.len() as u64),
        plan.scorers.len(),
        plural(plan.scorers.len() as u64),
    )?;
    for arm in arms {
        outln!(
            "  {:<9} {}  ({})",
            arm.kind().as_str(),
            arm.id(),
            arm.model()
        )?;
    }
    for line in searches(&plan) {
        outln!("{line}")?;
    }
    for note in fetch_notes(&plan) {
        outln!("note: {note}")?;
    }
    for warning in plan.warnings() {
        errln!("warning: {warning}");
    }
    warn_missing_keys(&plan)?;
    Ok(Exit::Ok)
}

/// One line per `optimize:` block: how many candidates its budget buys on its dev items.
fn searches(plan: &Plan) -> Vec<String> {
    use experiment::optimize::{affordable, schedule, schedule_calls};
    plan.optimize
        .iter()
        .map(|b| {
            let grid = b.candidates(plan, &[]).len();
            let dev = b.dev.min(plan.dataset.dev.len());
            let n = affordable(grid, dev, b.max_calls);
            let proposed = b.propose.as_ref().map_or(String::new(), |p| {
                format!(", plus up to {} instructions proposed by {}", p.n, p.provider)
            });
            format!(
                "  search    {}: {n} of {grid} candidates on {dev} dev items, at most {} calls per provider{proposed}",
                b.id,
                schedule_calls(&schedule(n, dev))
            )
        })
        .collect()
}

/// A warning on stderr per hosted provider whose API key is not set: `run` skips its arms.
fn warn_missing_keys(plan: &Plan) -> anyhow::Result<()> {
    let opts = runner::RunOptions {
        secrets: runner::Secrets::from_env(),
        ..runner::RunOptions::default()
    };
    for m in runner::missing_keys(plan, &opts)? {
        errln!(
            "warning: provider {}: {} is not set; `run` skips its {} arm{} ({})",
            m.provider,
            m.env,
            m.arms.len(),
            plural(m.arms.len() as u64),
            m.arms.join(", ")
        );
    }
    Ok(())
}

/// One line per named model that is not in the cache yet: `run` fetches it first.
fn fetch_notes(plan: &Plan) -> Vec<String> {
    let local = plan.providers.iter().filter_map(|p| match p {
        ProviderSpec::Local(l) => Some(&l.weights),
        ProviderSpec::OpenAi(_) => None,
    });
    let bases = plan.finetunes.iter().map(|f| &f.base_weights);
    let mut names: Vec<&str> = local
        .chain(bases)
        .filter_map(|w| match w {
            ModelSource::Named(n) => Some(n.as_str()),
            ModelSource::Path(_) => None,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|name| matches!(models::resolve(name), Err(models::Error::NotCached { .. })))
        .map(|name| match models::find(name) {
            Some(known) => format!(
                "model {name} is not downloaded yet: `run` fetches it first (about {} MB)",
                known.approx_bytes.div_ceil(1_000_000)
            ),
            None => format!("model {name} is not downloaded yet: `run` fetches it first"),
        })
        .collect()
}
