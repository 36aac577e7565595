//! Every experiment shipped in `experiments/` loads, with its dataset, as users will run it.

use std::path::PathBuf;

use experiment::LoadOptions;

#[test]
fn every_shipped_experiment_loads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    specs.sort();
    assert!(
        specs.len() >= 2,
        "expected the example experiments in {}",
        dir.display()
    );
    for spec in specs {
        match experiment::load_with(&spec, &LoadOptions::default()) {
            Ok(plan) => {
                assert!(!plan.arms().is_empty(), "{}", spec.display());
                assert!(!plan.dataset.eval.is_empty(), "{}", spec.display());
            }
            Err(e) => panic!("{} does not load:\n{e}", spec.display()),
        }
    }
}
