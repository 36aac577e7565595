//! A database written by the previous version: only migration 0001 applied, arms without their
//! pricing, runs whose assumptions live only in `spec_json` (`fixtures/plan_v1.json` is a plan as
//! that version serialised it). Opening it migrates without losing a row and backfills what the
//! report needs; a run whose `spec_json` cannot supply it reads back as "not recorded".

use std::path::Path;

use domain::{ArmKind, ArmPricing, Pricing, RunStatus};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use store::Store;

use crate::{db_path, failed, ok, score};

const PLAN_V1: &str = include_str!("fixtures/plan_v1.json");

/// (run id, spec_json) of the old database's runs.
const RUNS: [(i64, &str); 2] = [(1, PLAN_V1), (2, "not json")];
const ARMS: [(&str, &str, Option<&str>, &str); 4] = [
    ("zero-shot@mini", "prompt", Some("mini"), "gpt-4o-mini"),
    ("zero-shot@api", "prompt", Some("api"), "my-hosted-model"),
    (
        "zero-shot@small",
        "prompt",
        Some("small"),
        "smollm2-135m-instruct",
    ),
    ("lora", "finetune", None, "smollm2-135m-instruct"),
];

/// Creates the database exactly as the previous version did: its one migration, then its rows.
async fn old_database(path: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("migrations");
    std::fs::create_dir(&v1).unwrap();
    let first = "0001_initial_schema.sql";
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    std::fs::copy(source.join(first), v1.join(first)).unwrap();
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    Migrator::new(v1.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for (id, spec_json) in RUNS {
        sqlx::query(
            "INSERT INTO runs (id, experiment, status, started_ms, finished_ms, \
             dataset_fingerprint, spec_hash, spec_json) VALUES (?, 'movies', 'completed', 1, 2, \
             'fp', 'hash', ?)",
        )
        .bind(id)
        .bind(spec_json)
        .execute(&pool)
        .await
        .unwrap();
        for (seq, (arm, kind, provider, model)) in ARMS.iter().enumerate() {
            sqlx::query(
                "INSERT INTO arms (run_id, arm, seq, kind, provider, prompt, model) \
                 VALUES (?, ?, ?, ?, ?, 'zero-shot', ?)",
            )
            .bind(id)
            .bind(arm)
            .bind(seq as i64)
            .bind(kind)
            .bind(provider)
            .bind(model)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO items (run_id, item_id, seq, input, target) VALUES \
             (?1, 'r1', 0, 'good', 'positive'), (?1, 'r2', 1, 'bad', 'negative')",
        )
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
        for (arm, ..) in ARMS {
            let calls = [ok(arm, "r1", "positive"), failed(arm, "r2", "HTTP 500")];
            for c in calls {
                sqlx::query(
                    "INSERT INTO calls (run_id, arm, item_id, response, prompt_tokens, \
                     completion_tokens, latency_ms, cost_usd, attempts, cache_hit, error, \
                     compute_seconds, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                )
                .bind(id)
                .bind(&c.arm)
                .bind(&c.item_id)
                .bind(&c.response)
                .bind(c.prompt_tokens)
                .bind(c.completion_tokens)
                .bind(c.latency_ms)
                .bind(c.cost_usd)
                .bind(c.attempts)
                .bind(c.cache_hit)
                .bind(&c.error)
                .bind(c.compute_seconds)
                .execute(&pool)
                .await
                .unwrap();
            }
            let s = score(arm, "r1", "contains", 1.0);
            sqlx::query(
                "INSERT INTO scores (run_id, arm, item_id, scorer, value) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(&s.arm)
            .bind(&s.item_id)
            .bind(&s.scorer)
            .bind(s.value)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    pool.close().await;
}

#[tokio::test]
async fn a_database_of_the_previous_version_is_migrated_with_what_the_report_needs() {
    let dir = tempfile::tempdir().unwrap();
    old_database(&db_path(&dir)).await;
    let store = Store::open(&db_path(&dir)).await.unwrap();

    let r = store.results(1).await.unwrap();
    assert_eq!(r.run.status, RunStatus::Completed);
    assert_eq!((r.items.len(), r.calls.len(), r.scores.len()), (2, 8, 4));
    let pricing: Vec<_> = r.arms.iter().map(|a| (a.arm.as_str(), a.pricing)).collect();
    assert_eq!(
        pricing,
        [
            // No price in the spec: the built-in table's, as the previous version priced it.
            (
                "zero-shot@mini",
                Some(ArmPricing::Hosted {
                    pricing: domain::builtin_pricing("gpt-4o-mini"),
                    batch_api: false
                })
            ),
            (
                "zero-shot@api",
                Some(ArmPricing::Hosted {
                    pricing: Some(Pricing {
                        input_per_mtok: 1.0,
                        output_per_mtok: 10.0
                    }),
                    batch_api: true
                })
            ),
            (
                "zero-shot@small",
                Some(ArmPricing::Compute {
                    cost_per_hour: 0.05
                })
            ),
            ("lora", Some(ArmPricing::Compute { cost_per_hour: 1.5 })),
        ]
    );
    assert!(domain::builtin_pricing("gpt-4o-mini").is_some());
    assert_eq!(r.arms[3].kind, ArmKind::Finetune);
    let settings = r.run.settings.expect("settings backfilled from spec_json");
    assert_eq!(settings.costs.hourly_rate_usd, 120.0);
    assert_eq!(settings.costs.daily_requests, 10_000.0);
    assert!(!settings.costs.batch_api);
    assert_eq!(settings.decision.metric, "contains");
    assert_eq!(settings.decision.quality_target, 0.8);
    assert_eq!(
        settings.declared_costs,
        Some(["hourly_rate_usd".to_owned()].into())
    );

    // A spec record that is not JSON: every row kept, nothing derived.
    let r = store.results(2).await.unwrap();
    assert_eq!((r.items.len(), r.calls.len(), r.scores.len()), (2, 8, 4));
    assert_eq!(r.run.settings, None);
    assert!(r.arms.iter().all(|a| a.pricing.is_none()));

    // Resuming such a run stores what it lacked; arms keep their place.
    store
        .insert_arms(2, &[crate::prompt_arm("zero-shot@mini")])
        .await
        .unwrap();
    let arms = store.results(2).await.unwrap().arms;
    assert_eq!(arms[0].arm, "zero-shot@mini");
    assert_eq!(arms[0].pricing, crate::prompt_arm("x").pricing);
    assert_eq!(arms[0].model, "gpt-4o-mini");
    assert_eq!(arms.len(), 4);
}

#[tokio::test]
async fn run_settings_round_trip_and_an_unknown_run_is_not_found() {
    let (_dir, store, run) = crate::with_run().await;
    assert_eq!(store.run(run).await.unwrap().unwrap().settings, None);
    let settings = domain::RunSettings {
        costs: domain::CostAssumptions {
            batch_api: true,
            daily_requests: 5.0,
            review: domain::ReviewCosts {
                cost_per_review_usd: None,
                minutes_per_review: Some(2.5),
            },
            serving: domain::ServingAssumptions {
                mode: domain::ServingMode::Batch,
                batch_window_hours: 6.0,
                utilisation: 0.5,
                latency_slo_ms: Some(800.0),
            },
            labelling_minutes_per_example: Some(1.5),
            ..domain::CostAssumptions::default()
        },
        declared_costs: Some(["batch_api".to_owned(), "daily_requests".to_owned()].into()),
        decision: domain::Decision {
            metric: "f1".into(),
            quality_target: 0.75,
        },
        review: Some(domain::ReviewSpec {
            target_accuracy: 0.95,
            delta: 0.05,
            calibration: 0.4,
            correction: domain::ReviewCorrection::Bonferroni,
            seed: 3,
        }),
    };
    store.set_run_settings(run, &settings).await.unwrap();
    assert_eq!(
        store.run(run).await.unwrap().unwrap().settings,
        Some(settings.clone())
    );
    let none_declared = domain::RunSettings {
        declared_costs: Some(Default::default()),
        review: None,
        ..settings.clone()
    };
    store.set_run_settings(run, &none_declared).await.unwrap();
    assert_eq!(
        store.results(run).await.unwrap().run.settings,
        Some(none_declared)
    );
    assert!(matches!(
        store.set_run_settings(run + 1, &settings).await,
        Err(store::Error::NotFound { .. })
    ));
}

/// Reading never migrates: an old database opened read-only says which schema it has, and the
/// caller upgrades it with `Store::open` (which the read commands do, with a note).
#[tokio::test]
async fn reading_a_database_of_the_previous_version_asks_for_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    old_database(&path).await;
    let err = Store::open_read_only(&path).await.unwrap_err();
    match err {
        store::Error::OlderSchema { found, known, .. } => {
            assert_eq!(found, 1);
            assert_eq!(known, store::known_schema());
        }
        other => panic!("expected OlderSchema, got {other:?}"),
    }
    Store::open(&path).await.unwrap();
    Store::open_read_only(&path).await.unwrap();
}
