//! The one step of bringing an earlier version's database up to date that SQL cannot do alone:
//! migration 0002 marks hosted arms whose spec gave no price `legacy_per_token`, and this prices
//! them by the built-in table (`domain::resolve_pricing`), as the version that ran them did.
//!
//! It runs on every open and finds nothing to do once a database has been upgraded. It decides
//! nothing of its own: the price rule is `domain`'s.

use sqlx::Row as _;
use sqlx::sqlite::SqlitePool;

use crate::{Result, db_err};

/// Prices every arm still marked `legacy_per_token`, one model at a time.
pub(crate) async fn price_legacy_arms(pool: &SqlitePool) -> Result<()> {
    let err = db_err("pricing arms recorded by an earlier version", None);
    let models: Vec<String> =
        sqlx::query("SELECT DISTINCT model FROM arms WHERE pricing = 'legacy_per_token'")
            .fetch_all(pool)
            .await
            .map_err(&err)?
            .iter()
            .map(|row| row.try_get("model"))
            .collect::<Result<_, _>>()
            .map_err(&err)?;
    for model in models {
        let price = domain::resolve_pricing(None, &model);
        sqlx::query(
            "UPDATE arms SET pricing = 'per_token', input_per_mtok = ?, output_per_mtok = ? \
             WHERE pricing = 'legacy_per_token' AND model = ?",
        )
        .bind(price.map(|p| p.input_per_mtok))
        .bind(price.map(|p| p.output_per_mtok))
        .bind(&model)
        .execute(pool)
        .await
        .map_err(&err)?;
        tracing::info!(
            model,
            known = price.is_some(),
            "priced arms of an earlier version"
        );
    }
    Ok(())
}
