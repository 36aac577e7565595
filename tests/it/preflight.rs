//! What `validate` and `run` check before a database exists or a cent is spent, beyond the
//! spec's shape: API keys of the selected arms (a warning for `validate`, a refusal for a `run`
//! that would then do nothing), the local models `run` will fetch first, and `--print-plan`.

use crate::support::{Env, SpecOptions};

#[tokio::test]
async fn a_provider_without_its_key_is_a_warning_for_validate_and_stops_run_before_the_store() {
    let mut env = Env::without_server();
    env.api_key = None;
    env.write_dataset(8);
    env.write_spec(&SpecOptions::default());
    let out = env.run(&["validate", "spec.yaml"]).await;
    out.expect_code(0);
    assert!(
        out.stderr.contains(
            "warning: provider fake: OPENAI_API_KEY is not set; `run` skips its 2 arms \
             (plain@fake, polite@fake)"
        ),
        "{}",
        out.stderr
    );
    let out = env.run(&["run", "spec.yaml"]).await;
    out.expect_code(1);
    assert!(
        out.stderr.contains("nothing to run") && out.stderr.contains("OPENAI_API_KEY"),
        "{}",
        out.stderr
    );
    assert!(
        !env.db().exists(),
        "a run that does nothing creates no database"
    );
}

#[tokio::test]
async fn a_known_model_not_downloaded_yet_is_fine_and_validate_says_run_fetches_it() {
    let env = Env::without_server();
    env.write_dataset(8);
    let spec = crate::support::spec("http://127.0.0.1:9/v1", &SpecOptions::default()).replacen(
        "providers:\n",
        "providers:\n  - { id: small, type: local, model: smollm2-135m-instruct }\n",
        1,
    );
    env.write("spec.yaml", &spec);
    let out = env.run(&["validate", "spec.yaml"]).await;
    out.expect_code(0);
    assert!(
        out.stdout.contains(
            "note: model smollm2-135m-instruct is not downloaded yet: `run` fetches it first \
             (about 99 MB)"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("plain@small"), "{}", out.stdout);
}

#[tokio::test]
async fn print_plan_shows_the_resolved_plan_as_yaml() {
    let env = Env::without_server();
    env.write_dataset(8);
    env.write_spec(&SpecOptions::default());
    let out = env.run(&["validate", "spec.yaml", "--print-plan"]).await;
    out.expect_code(0);
    let yaml = &out.stdout;
    for line in [
        "name: e2e",
        "arms:\n- plain@fake\n- polite@fake\n",
        "providers:\n- type: openai\n  id: fake\n  model: gpt-test\n",
        "  max_concurrency: 4",
        "  api_key_env: OPENAI_API_KEY",
        "  max_retries: 4",
        "  eval_items: 8",
        "  metric: equals",
        "  quality_target: 0.9",
    ] {
        assert!(yaml.contains(line), "{line:?} not in\n{yaml}");
    }
    assert!(
        !yaml.contains("<q0>"),
        "rows are summarised, not printed:\n{yaml}"
    );
}
