//! What a run needs from the environment, checked before the store is opened: the API key of
//! every hosted provider with a selected arm. A provider without its key is skipped (its arms do
//! not run); when that leaves nothing to run, the run is refused before a database exists.
//!
//! Keys are looked up, never read out: only the variable names appear in what this returns.

use experiment::{Arm, Plan, ProviderSpec};

use crate::plan::select_arms;
use crate::{Error, RunOptions, Secrets};

/// A hosted provider whose API key is not set, and the selected arms it would have answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingKey {
    pub provider: String,
    /// The environment variable the spec names (`api_key_env`).
    pub env: String,
    pub arms: Vec<String>,
}

/// The providers of the arms `opts` selects whose keys are not set, in the spec's order.
pub fn missing_keys(plan: &Plan, opts: &RunOptions) -> Result<Vec<MissingKey>, Error> {
    let selected = select_arms(plan, opts.arms.as_deref())?;
    Ok(missing_for(plan, &selected, &opts.secrets))
}

pub(crate) fn missing_for(plan: &Plan, selected: &[Arm], secrets: &Secrets) -> Vec<MissingKey> {
    let mut missing = Vec::new();
    for provider in &plan.providers {
        let ProviderSpec::OpenAi(spec) = provider else {
            continue;
        };
        let arms: Vec<String> = selected
            .iter()
            .filter(|a| a.provider_id() == Some(spec.id.as_str()))
            .map(|a| a.id().to_owned())
            .collect();
        if !arms.is_empty() && secrets.get(&spec.api_key_env).is_none() {
            missing.push(MissingKey {
                provider: spec.id.clone(),
                env: spec.api_key_env.clone(),
                arms,
            });
        }
    }
    missing
}

/// [`Error::NothingToRun`] when every selected arm belongs to a provider without its key.
pub(crate) fn refuse_if_nothing_runs(
    selected: &[Arm],
    missing: &[MissingKey],
) -> Result<(), Error> {
    let skipped: usize = missing.iter().map(|m| m.arms.len()).sum();
    if skipped < selected.len() {
        return Ok(());
    }
    let mut reasons: Vec<String> = missing
        .iter()
        .map(|m| format!("provider {} needs {}", m.provider, m.env))
        .collect();
    reasons.sort();
    Err(Error::NothingToRun { reasons })
}
