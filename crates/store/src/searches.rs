//! Prompt searches (`optimize:`): the candidates an optimised arm considered and their dev
//! scores, and the two reads the search needs between its rungs (a candidate's scores on the
//! dev items it answered, what the search's calls cost so far). The candidates' answers are
//! ordinary calls and scores; this module only records the search around them.

use std::collections::HashMap;

use domain::SearchRecord;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::{Error, Result, Store, db_err, from_i64};

impl Store {
    /// Records (or updates, on a resumed search) the candidates of one search, in one
    /// transaction.
    pub async fn upsert_searches(&self, run: i64, records: &[SearchRecord]) -> Result<()> {
        let err = db_err("recording a prompt search", Some(run));
        let mut tx = self.writer.begin().await.map_err(&err)?;
        for r in records {
            let demos = r
                .demo_ids
                .as_ref()
                .map(|d| serde_json::to_string(d).unwrap_or_else(|_| "[]".to_owned()));
            sqlx::query(
                "INSERT INTO searches (run_id, arm, candidate, seq, seed_prompt, instruction, \
                 demo_ids, dev_items, dev_score, chosen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (run_id, candidate) DO UPDATE SET arm = excluded.arm, \
                 seq = excluded.seq, seed_prompt = excluded.seed_prompt, \
                 instruction = excluded.instruction, demo_ids = excluded.demo_ids, \
                 dev_items = excluded.dev_items, dev_score = excluded.dev_score, \
                 chosen = excluded.chosen",
            )
            .bind(run)
            .bind(r.arm.as_str())
            .bind(r.candidate.as_str())
            .bind(i64::from(r.seq))
            .bind(r.seed_prompt.as_str())
            .bind(r.instruction.as_deref())
            .bind(demos)
            .bind(i64::from(r.dev_items))
            .bind(r.dev_score)
            .bind(r.chosen)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)
    }

    /// The value of `scorer` on every item `arm` answered successfully, by item id.
    pub async fn item_scores(
        &self,
        run: i64,
        arm: &str,
        scorer: &str,
    ) -> Result<HashMap<String, f64>> {
        let err = db_err("reading an arm's scores", Some(run));
        let rows = sqlx::query(
            "SELECT s.item_id, s.value FROM scores s JOIN calls c \
             ON c.run_id = s.run_id AND c.arm = s.arm AND c.item_id = s.item_id \
             WHERE s.run_id = ? AND s.arm = ? AND s.scorer = ? AND c.error IS NULL",
        )
        .bind(run)
        .bind(arm)
        .bind(scorer)
        .fetch_all(&self.reader)
        .await
        .map_err(&err)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("item_id").map_err(&err)?;
                let value: f64 = row.try_get("value").map_err(&err)?;
                Ok((id, value))
            })
            .collect()
    }

    /// What the calls of every arm whose id starts with `prefix` have cost, in US dollars.
    /// (A prefix comparison, not `LIKE`: ids may hold `_`, which `LIKE` reads as a wildcard.)
    pub async fn cost_of_arms_with_prefix(&self, run: i64, prefix: &str) -> Result<f64> {
        let row = sqlx::query(
            "SELECT TOTAL(cost_usd) AS cost FROM calls \
             WHERE run_id = ?1 AND substr(arm, 1, length(?2)) = ?2",
        )
        .bind(run)
        .bind(prefix)
        .fetch_one(&self.reader)
        .await
        .map_err(db_err("summing a search's cost", Some(run)))?;
        row.try_get("cost")
            .map_err(db_err("summing a search's cost", Some(run)))
    }
}

/// All of run `run`'s search records, by optimised arm then candidate order.
pub(crate) async fn read_searches(
    tx: &mut sqlx::SqliteConnection,
    run: i64,
) -> Result<Vec<SearchRecord>> {
    let err = db_err("reading a run's prompt searches", Some(run));
    sqlx::query("SELECT * FROM searches WHERE run_id = ? ORDER BY arm, seq")
        .bind(run)
        .fetch_all(tx)
        .await
        .map_err(&err)?
        .iter()
        .map(search_from_row)
        .collect()
}

fn search_from_row(row: &SqliteRow) -> Result<SearchRecord> {
    let err = db_err("reading a run's prompt searches", None);
    let demos: Option<String> = row.try_get("demo_ids").map_err(&err)?;
    let demo_ids = match demos {
        None => None,
        Some(text) => Some(serde_json::from_str(&text).map_err(|_| Error::Corrupt {
            table: "searches",
            column: "demo_ids",
            value: text.clone(),
        })?),
    };
    Ok(SearchRecord {
        arm: row.try_get("arm").map_err(&err)?,
        candidate: row.try_get("candidate").map_err(&err)?,
        seq: from_i64("searches", "seq", row.try_get("seq").map_err(&err)?)?,
        seed_prompt: row.try_get("seed_prompt").map_err(&err)?,
        instruction: row.try_get("instruction").map_err(&err)?,
        demo_ids,
        dev_items: from_i64(
            "searches",
            "dev_items",
            row.try_get("dev_items").map_err(&err)?,
        )?,
        dev_score: row.try_get("dev_score").map_err(&err)?,
        chosen: row.try_get("chosen").map_err(&err)?,
    })
}
