//! Runs and what they are made of: creating a run, finding one to resume, moving it through its
//! statuses, and recording its arms and eval items in plan order.
//!
//! Which statuses may be resumed is `domain::RunStatus::is_resumable`'s decision, not this
//! module's: the SQL here filters by experiment and hash only, never by a copy of that list.

use std::collections::HashSet;
use std::sync::LazyLock;

use domain::{
    ArmInfo, ArmKind, ArmPricing, CostAssumptions, Decision, EvalItem, Pricing, RunInfo,
    RunSettings, RunStatus,
};
use sqlx::Row as _;
use sqlx::SqliteExecutor;
use sqlx::sqlite::SqliteRow;

use crate::lease::NewRun;
use crate::multirow::{Insert, insert_rows};
use crate::{Error, Result, Store, db_err, now_ms, parse_enum};

/// Items with the positions `insert_items` gives them. `insert_items` already leaves out the items
/// a run has; the `ON CONFLICT` clause keeps the statement idempotent on its own all the same.
static ITEMS: LazyLock<Insert> = LazyLock::new(|| {
    Insert::new(
        "INSERT INTO items (run_id, item_id, seq, input, target)",
        5,
        "ON CONFLICT (run_id, item_id) DO NOTHING",
    )
});

/// The `runs` columns `run_from_row` reads, as a macro so `concat!` can build static SQL.
macro_rules! run_columns {
    () => {
        "id, experiment, status, started_ms, finished_ms, dataset_fingerprint, spec_hash, \
         spec_json, daily_requests, horizon_days, hourly_rate_usd, prompt_iteration_hours, \
         data_prep_hours, mlops_hours_per_month, finetune_hourly_usd, batch_api, \
         decision_metric, quality_target, declared_costs, review, review_costs, serving, \
         labelling_minutes_per_example"
    };
}

/// The `arms` columns `arm_from_row` reads.
macro_rules! arm_columns {
    () => {
        "arm, kind, provider, prompt, model, pricing, input_per_mtok, output_per_mtok, \
         batch_api, cost_per_hour, sweep, choices"
    };
}
pub(crate) use arm_columns;

/// The `runs` columns of `CostAssumptions`' numbers, in its field order.
const COST_COLUMNS: [&str; 7] = [
    "daily_requests",
    "horizon_days",
    "hourly_rate_usd",
    "prompt_iteration_hours",
    "data_prep_hours",
    "mlops_hours_per_month",
    "finetune_hourly_usd",
];

/// `arms.pricing` of a hosted arm and of an arm priced by the hour.
const PER_TOKEN: &str = "per_token";
const PER_HOUR: &str = "per_hour";
pub(crate) use run_columns;

impl Store {
    /// Starts a run of `experiment` in status `running` and returns its id. (`run` claims runs
    /// with [`Store::claim_run`], which also takes the lease; this is for tools and tests.)
    pub async fn create_run(
        &self,
        experiment: &str,
        spec_hash: &str,
        dataset_fingerprint: &str,
        spec_json: &str,
    ) -> Result<i64> {
        let new = NewRun {
            experiment,
            spec_hash,
            dataset_fingerprint,
            spec_json,
        };
        insert_run(&self.writer, &new).await
    }

    /// The newest run of `experiment` with this spec hash whose status can be resumed, if any.
    pub async fn resumable_run(
        &self,
        experiment: &str,
        spec_hash: &str,
    ) -> Result<Option<RunInfo>> {
        newest_resumable(&self.reader, experiment, spec_hash).await
    }

    /// Moves a run to `status`. Any status but `running` stamps `finished_ms` with now (the run
    /// stopped, for whatever reason); `running` clears it, as when a run is resumed.
    pub async fn set_run_status(&self, run: i64, status: RunStatus) -> Result<()> {
        let finished_ms = (status != RunStatus::Running).then(now_ms);
        let done = sqlx::query("UPDATE runs SET status = ?, finished_ms = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(finished_ms)
            .bind(run)
            .execute(&self.writer)
            .await
            .map_err(db_err("setting a run's status", Some(run)))?;
        updated_one(run, done.rows_affected())?;
        tracing::debug!(run, status = %status, "run status set");
        Ok(())
    }

    /// Stores what the run's report assumes (the spec's `costs:` and `decision:`), replacing
    /// what was stored before.
    pub async fn set_run_settings(&self, run: i64, settings: &RunSettings) -> Result<()> {
        let c = &settings.costs;
        let declared = settings.declared_costs.as_ref().map(|names| {
            names
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(",")
        });
        let done = sqlx::query(
            "UPDATE runs SET daily_requests = ?, horizon_days = ?, hourly_rate_usd = ?, \
             prompt_iteration_hours = ?, data_prep_hours = ?, mlops_hours_per_month = ?, \
             finetune_hourly_usd = ?, batch_api = ?, decision_metric = ?, quality_target = ?, \
             declared_costs = ?, review = ?, review_costs = ?, serving = ?, \
             labelling_minutes_per_example = ? WHERE id = ?",
        )
        .bind(c.daily_requests)
        .bind(c.horizon_days)
        .bind(c.hourly_rate_usd)
        .bind(c.prompt_iteration_hours)
        .bind(c.data_prep_hours)
        .bind(c.mlops_hours_per_month)
        .bind(c.finetune_hourly_usd)
        .bind(c.batch_api)
        .bind(&settings.decision.metric)
        .bind(settings.decision.quality_target)
        .bind(declared)
        .bind(settings.review.and_then(|r| serde_json::to_string(&r).ok()))
        .bind(serde_json::to_string(&c.review).ok())
        .bind(serde_json::to_string(&c.serving).ok())
        .bind(c.labelling_minutes_per_example)
        .bind(run)
        .execute(&self.writer)
        .await
        .map_err(db_err("storing a run's settings", Some(run)))?;
        updated_one(run, done.rows_affected())
    }

    /// Records the arms of a run, in the order given. Idempotent: an arm already recorded for
    /// the run keeps its first description and position; new arms go after the existing ones.
    /// The one exception: an arm an earlier version recorded without its pricing gets it.
    pub async fn insert_arms(&self, run: i64, arms: &[ArmInfo]) -> Result<()> {
        let err = db_err("recording a run's arms", Some(run));
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        for a in arms {
            let p = PricingColumns::of(a.pricing.as_ref());
            sqlx::query(
                "INSERT INTO arms (run_id, arm, seq, kind, provider, prompt, model, pricing, \
                 input_per_mtok, output_per_mtok, batch_api, cost_per_hour, sweep, choices) \
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(seq) + 1, 0) FROM arms WHERE run_id = ?1), \
                 ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (run_id, arm) DO UPDATE SET \
                 pricing = excluded.pricing, input_per_mtok = excluded.input_per_mtok, \
                 output_per_mtok = excluded.output_per_mtok, batch_api = excluded.batch_api, \
                 cost_per_hour = excluded.cost_per_hour WHERE arms.pricing IS NULL",
            )
            .bind(run)
            .bind(&a.arm)
            .bind(a.kind.as_str())
            .bind(a.provider.as_deref())
            .bind(a.prompt.as_deref())
            .bind(&a.model)
            .bind(p.pricing)
            .bind(p.input_per_mtok)
            .bind(p.output_per_mtok)
            .bind(p.batch_api)
            .bind(p.cost_per_hour)
            .bind(a.sweep.as_ref().and_then(|s| serde_json::to_string(s).ok()))
            .bind(a.choices.as_ref().and_then(|c| serde_json::to_string(c).ok()))
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)
    }

    /// Records the eval items of a run, in the order given. Idempotent like [`Self::insert_arms`]:
    /// items already recorded keep their position, new ones go after them in the order given.
    ///
    /// Positions are worked out here rather than by a subquery per row, so the rows go in as
    /// multi-row `INSERT`s (one statement per 64 items, not one per item).
    pub async fn insert_items(&self, run: i64, items: &[EvalItem]) -> Result<()> {
        let err = db_err("recording a run's eval items", Some(run));
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(seq) + 1, 0) FROM items WHERE run_id = ?")
            .bind(run)
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(&err)?;
        // A fresh run has no items yet, so there is nothing to read back.
        let stored: HashSet<String> = if next > 0 {
            sqlx::query("SELECT item_id FROM items WHERE run_id = ?")
                .bind(run)
                .fetch_all(&mut *tx)
                .await
                .map_err(&err)?
                .iter()
                .map(|row| row.try_get("item_id"))
                .collect::<Result<_, _>>()
                .map_err(&err)?
        } else {
            HashSet::new()
        };
        let mut seen: HashSet<&str> = HashSet::with_capacity(items.len());
        let new: Vec<(i64, &EvalItem)> = items
            .iter()
            .filter(|i| !stored.contains(&i.item_id) && seen.insert(i.item_id.as_str()))
            .zip(next..)
            .map(|(item, seq)| (seq, item))
            .collect();
        insert_rows(&mut tx, &ITEMS, &new, |q, (seq, item)| {
            q.bind(run)
                .bind(item.item_id.as_str())
                .bind(*seq)
                .bind(item.input.as_str())
                .bind(item.target.as_str())
        })
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)
    }

    /// Every run, oldest first.
    pub async fn list_runs(&self) -> Result<Vec<RunInfo>> {
        let rows = sqlx::query(concat!("SELECT ", run_columns!(), " FROM runs ORDER BY id"))
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("listing runs", None))?;
        rows.iter().map(run_from_row).collect()
    }

    /// The run with this id, if there is one.
    pub async fn run(&self, id: i64) -> Result<Option<RunInfo>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err("reading a run", None))?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The newest run (the one created last), of `experiment` when given.
    pub async fn latest_run(&self, experiment: Option<&str>) -> Result<Option<RunInfo>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE ?1 IS NULL OR experiment = ?1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(experiment)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err("reading the latest run", None))?;
        row.as_ref().map(run_from_row).transpose()
    }
}

/// An `UPDATE ... WHERE id = run` that changed no row means there is no such run.
fn updated_one(run: i64, rows: u64) -> Result<()> {
    if rows == 0 {
        return Err(Error::NotFound { run });
    }
    Ok(())
}

/// The `arms` pricing columns of one [`ArmPricing`].
#[derive(Default)]
struct PricingColumns {
    pricing: Option<&'static str>,
    input_per_mtok: Option<f64>,
    output_per_mtok: Option<f64>,
    batch_api: Option<bool>,
    cost_per_hour: Option<f64>,
}

impl PricingColumns {
    fn of(pricing: Option<&ArmPricing>) -> Self {
        match pricing {
            None => PricingColumns::default(),
            Some(ArmPricing::Hosted { pricing, batch_api }) => PricingColumns {
                pricing: Some(PER_TOKEN),
                input_per_mtok: pricing.map(|p| p.input_per_mtok),
                output_per_mtok: pricing.map(|p| p.output_per_mtok),
                batch_api: Some(*batch_api),
                cost_per_hour: None,
            },
            Some(ArmPricing::Compute { cost_per_hour }) => PricingColumns {
                pricing: Some(PER_HOUR),
                cost_per_hour: Some(*cost_per_hour),
                ..PricingColumns::default()
            },
        }
    }
}

/// Reads a `runs` row selected with `run_columns!()`.
pub(crate) fn run_from_row(row: &SqliteRow) -> Result<RunInfo> {
    let get = db_err("reading a run", None);
    let status: String = row.try_get("status").map_err(&get)?;
    Ok(RunInfo {
        settings: settings_from_row(row)?,
        id: row.try_get("id").map_err(&get)?,
        experiment: row.try_get("experiment").map_err(&get)?,
        status: parse_enum("runs", "status", status, RunStatus::parse)?,
        started_ms: row.try_get("started_ms").map_err(&get)?,
        finished_ms: row.try_get("finished_ms").map_err(&get)?,
        dataset_fingerprint: row.try_get("dataset_fingerprint").map_err(&get)?,
        spec_hash: row.try_get("spec_hash").map_err(&get)?,
        spec_json: row.try_get("spec_json").map_err(&get)?,
    })
}

/// The run's report settings; `None` when they were not recorded (the decision metric is NULL,
/// or any cost is).
fn settings_from_row(row: &SqliteRow) -> Result<Option<RunSettings>> {
    let get = db_err("reading a run's settings", None);
    let metric: Option<String> = row.try_get("decision_metric").map_err(&get)?;
    let real = |column: &str| -> Result<Option<f64>> { row.try_get(column).map_err(&get) };
    let (Some(metric), Some(quality_target)) = (metric, real("quality_target")?) else {
        return Ok(None);
    };
    let mut values = [0.0; COST_COLUMNS.len()];
    for (value, column) in values.iter_mut().zip(COST_COLUMNS) {
        match real(column)? {
            Some(v) => *value = v,
            None => return Ok(None),
        }
    }
    let [
        daily_requests,
        horizon_days,
        hourly_rate_usd,
        prompt_iteration_hours,
        data_prep_hours,
        mlops_hours_per_month,
        finetune_hourly_usd,
    ] = values;
    let Some(batch_api) = row.try_get::<Option<bool>, _>("batch_api").map_err(&get)? else {
        return Ok(None);
    };
    let costs = CostAssumptions {
        daily_requests,
        horizon_days,
        hourly_rate_usd,
        prompt_iteration_hours,
        data_prep_hours,
        mlops_hours_per_month,
        finetune_hourly_usd,
        batch_api,
        review: json_column(row, "review_costs")?.unwrap_or_default(),
        serving: json_column(row, "serving")?.unwrap_or_default(),
        labelling_minutes_per_example: real("labelling_minutes_per_example")?,
    };
    let declared: Option<String> = row.try_get("declared_costs").map_err(&get)?;
    Ok(Some(RunSettings {
        costs,
        declared_costs: declared.map(|names| {
            names
                .split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        decision: Decision {
            metric,
            quality_target,
        },
        review: json_column(row, "review")?,
    }))
}

/// Reads an `arms` row selected with `arm_columns!()`.
pub(crate) fn arm_from_row(row: &SqliteRow) -> Result<ArmInfo> {
    let get = db_err("reading a run's arms", None);
    let kind: String = row.try_get("kind").map_err(&get)?;
    Ok(ArmInfo {
        arm: row.try_get("arm").map_err(&get)?,
        kind: parse_enum("arms", "kind", kind, ArmKind::parse)?,
        provider: row.try_get("provider").map_err(&get)?,
        prompt: row.try_get("prompt").map_err(&get)?,
        model: row.try_get("model").map_err(&get)?,
        pricing: pricing_from_row(row)?,
        sweep: json_in(row, "arms", "sweep")?,
        choices: json_in(row, "arms", "choices")?,
    })
}

fn pricing_from_row(row: &SqliteRow) -> Result<Option<ArmPricing>> {
    let get = db_err("reading a run's arms", None);
    let rule: Option<String> = row.try_get("pricing").map_err(&get)?;
    let real = |column: &str| -> Result<Option<f64>> { row.try_get(column).map_err(&get) };
    match rule.as_deref() {
        None => Ok(None),
        Some(PER_TOKEN) => {
            let pricing = match (real("input_per_mtok")?, real("output_per_mtok")?) {
                (Some(input_per_mtok), Some(output_per_mtok)) => Some(Pricing {
                    input_per_mtok,
                    output_per_mtok,
                }),
                _ => None,
            };
            let batch_api: Option<bool> = row.try_get("batch_api").map_err(&get)?;
            Ok(Some(ArmPricing::Hosted {
                pricing,
                batch_api: batch_api.unwrap_or(false),
            }))
        }
        Some(PER_HOUR) => match real("cost_per_hour")? {
            Some(cost_per_hour) => Ok(Some(ArmPricing::Compute { cost_per_hour })),
            None => Err(Error::Corrupt {
                table: "arms",
                column: "cost_per_hour",
                value: "NULL".to_owned(),
            }),
        },
        Some(other) => Err(Error::Corrupt {
            table: "arms",
            column: "pricing",
            value: other.to_owned(),
        }),
    }
}

/// Inserts `new` as a run in status `running`; its id. On `ex` so [`Store::claim_run`] can do
/// it inside its transaction.
pub(crate) async fn insert_run<'e>(ex: impl SqliteExecutor<'e>, new: &NewRun<'_>) -> Result<i64> {
    let op = "creating a run";
    let row = sqlx::query(
        "INSERT INTO runs (experiment, status, started_ms, dataset_fingerprint, spec_hash, \
         spec_json) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(new.experiment)
    .bind(RunStatus::Running.as_str())
    .bind(now_ms())
    .bind(new.dataset_fingerprint)
    .bind(new.spec_hash)
    .bind(new.spec_json)
    .fetch_one(ex)
    .await
    .map_err(db_err(op, None))?;
    let id: i64 = row.try_get(0).map_err(db_err(op, None))?;
    tracing::debug!(run = id, experiment = new.experiment, "run created");
    Ok(id)
}

/// The newest run of `experiment` with `spec_hash` whose status can be resumed, read on `ex`.
pub(crate) async fn newest_resumable<'e>(
    ex: impl SqliteExecutor<'e>,
    experiment: &str,
    spec_hash: &str,
) -> Result<Option<RunInfo>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE experiment = ? AND spec_hash = ? ORDER BY id DESC"
    ))
    .bind(experiment)
    .bind(spec_hash)
    .fetch_all(ex)
    .await
    .map_err(db_err("looking for a resumable run", None))?;
    for row in &rows {
        let run = run_from_row(row)?;
        if run.status.is_resumable() {
            return Ok(Some(run));
        }
    }
    Ok(None)
}

/// A nullable JSON column of `runs`, parsed.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &'static str,
) -> Result<Option<T>> {
    json_in(row, "runs", column)
}

/// A JSON column of `table` read back into `T`; `None` when NULL.
fn json_in<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    table: &'static str,
    column: &'static str,
) -> Result<Option<T>> {
    let text: Option<String> = row
        .try_get(column)
        .map_err(db_err("reading a stored JSON column", None))?;
    text.map(|t| crate::choice_columns::parse_json(table, column, t))
        .transpose()
}
