//! `orchestrator validate FILE`: checks a spec and its datasets before anything is spent, and
//! says what the run would do. Errors print as `FILE:LINE:COL: message` (see `exit`).

use std::path::PathBuf;

use crate::exit::Exit;
use crate::progress::plural;

/// Check an experiment spec and its datasets; print every problem as FILE:LINE:COL: message.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment YAML.
    pub file: PathBuf,
}

pub async fn execute(args: Args) -> anyhow::Result<Exit> {
    let plan = experiment::load(&args.file)?;
    let arms = plan.arms();
    let eval = plan.dataset.eval.len() as u64;
    println!(
        "{}: ok — {} arm{}, {eval} eval item{}, {} train item{}, {} scorer{}",
        args.file.display(),
        arms.len(),
        plural(arms.len() as u64),
        plural(eval),
        plan.dataset.train.len(),
        plural(plan.dataset.train.len() as u64),
        plan.scorers.len(),
        plural(plan.scorers.len() as u64),
    );
    for arm in arms {
        println!(
            "  {:<9} {}  ({})",
            arm.kind().as_str(),
            arm.id(),
            arm.model()
        );
    }
    Ok(Exit::Ok)
}
