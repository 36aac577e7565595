//! A temp dir with a dataset, a spec, a store, and a helper that runs the runner and collects
//! its events.

use std::path::PathBuf;

use domain::Secret;
use experiment::Plan;
use runner::{Event, RunOptions, RunOutcome, RunSummary, Secrets};
use store::Store;
use tokio_util::sync::CancellationToken;

pub struct Bench {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl Bench {
    pub async fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("runs.db")).await.unwrap();
        Bench { dir, store }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `n` rows: `{id: item-I, text: "<qI> ?", label: yes}`.
    pub fn dataset(&self, n: usize) {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!(
                "{{\"id\":\"item-{i}\",\"text\":\"<q{i}> ?\",\"label\":\"yes\"}}\n"
            ));
        }
        std::fs::write(self.path("data.jsonl"), s).unwrap();
    }

    /// Writes `spec.yaml` and loads it.
    pub fn plan(&self, yaml: &str) -> Plan {
        let path = self.path("spec.yaml");
        std::fs::write(&path, yaml).unwrap();
        experiment::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn options(&self) -> RunOptions {
        RunOptions {
            artifacts_dir: self.path(".orchestrator"),
            secrets: Secrets::fixed([("RUNNER_TEST_KEY".to_string(), Secret::new("test-key"))]),
            ..RunOptions::default()
        }
    }

    /// Runs to the end; returns the summary and every event sent.
    pub async fn run(
        &self,
        plan: &Plan,
        opts: RunOptions,
        cancel: CancellationToken,
    ) -> (RunSummary, Vec<Event>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(100_000);
        let outcome = runner::run(plan, &self.store, opts, cancel, tx)
            .await
            .unwrap();
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        match outcome {
            RunOutcome::Finished(s) => (s, events),
            RunOutcome::Planned(e) => panic!("a dry run: {e:?}"),
        }
    }
}

/// A spec with one OpenAI-compatible provider at `url`, arms `plain@fake` and `terse@fake`.
pub fn hosted_spec(url: &str, concurrency: usize, extra: &str) -> String {
    format!(
        r#"name: runner-test
dataset: {{ path: data.jsonl, input: text, target: label }}
providers:
  - id: fake
    type: openai
    model: m
    base_url: {url}
    api_key_env: RUNNER_TEST_KEY
    max_concurrency: {concurrency}
    pricing: {{ input_per_mtok: 1000, output_per_mtok: 1000 }}
prompts:
  - id: plain
    template: "Q: {{{{text}}}}"
  - id: terse
    template: "{{{{text}}}}"
generation: {{ max_tokens: 4 }}
scorers: [{{ type: equals }}]
{extra}"#
    )
}
