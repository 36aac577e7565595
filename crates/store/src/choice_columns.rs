//! The five columns that `calls` and `cache` share for answers constrained to labels: the
//! label, how it was found, its probability, every label's probability and the answer tokens'
//! log-probabilities (the last two as JSON arrays). One reader and one writer for both tables.

use domain::{ChoiceRecord, ChoiceVia};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::multirow::Q;
use crate::{Error, Result, db_err, parse_enum};

/// Column names, in the order [`ChoiceColumns`] binds them.
pub(crate) const COLUMNS: &str =
    "choice_label, choice_via, confidence, choice_probabilities, token_logprobs";

/// `col = excluded.col` for each column, for an upsert.
pub(crate) const UPDATE_FROM_EXCLUDED: &str = "choice_label = excluded.choice_label, \
     choice_via = excluded.choice_via, confidence = excluded.confidence, \
     choice_probabilities = excluded.choice_probabilities, \
     token_logprobs = excluded.token_logprobs";

/// The values to bind, in [`COLUMNS`] order.
pub(crate) struct ChoiceColumns {
    pub label: Option<String>,
    pub via: Option<&'static str>,
    pub confidence: Option<f64>,
    pub probabilities: Option<String>,
    pub token_logprobs: Option<String>,
}

impl ChoiceColumns {
    /// Adds the five values to `q`, in [`COLUMNS`] order.
    pub(crate) fn bind(self, q: Q) -> Q {
        q.bind(self.label)
            .bind(self.via)
            .bind(self.confidence)
            .bind(self.probabilities)
            .bind(self.token_logprobs)
    }

    pub(crate) fn new(choice: Option<&ChoiceRecord>, logprobs: Option<&[f32]>) -> Self {
        // Serialising numbers into memory does not fail (a NaN becomes `null`); should it,
        // the column is left NULL, "not measured", rather than failing the batch.
        ChoiceColumns {
            label: choice.and_then(|c| c.label.clone()),
            via: choice.map(|c| c.via.as_str()),
            confidence: choice.and_then(|c| c.confidence),
            probabilities: choice
                .filter(|c| !c.probabilities.is_empty())
                .and_then(|c| serde_json::to_string(&c.probabilities).ok()),
            token_logprobs: logprobs.and_then(|l| serde_json::to_string(l).ok()),
        }
    }
}

/// The choice stored in `row` of `table`, if its answer was constrained.
pub(crate) fn choice_from_row(
    row: &SqliteRow,
    table: &'static str,
) -> Result<Option<ChoiceRecord>> {
    let err = db_err("reading an answer's choice", None);
    let via: Option<String> = row.try_get("choice_via").map_err(&err)?;
    let Some(via) = via else {
        return Ok(None);
    };
    let probabilities: Option<String> = row.try_get("choice_probabilities").map_err(&err)?;
    Ok(Some(ChoiceRecord {
        label: row.try_get("choice_label").map_err(&err)?,
        via: parse_enum(table, "choice_via", via, ChoiceVia::parse)?,
        confidence: row.try_get("confidence").map_err(&err)?,
        probabilities: match probabilities {
            Some(text) => parse_json(table, "choice_probabilities", text)?,
            None => Vec::new(),
        },
    }))
}

/// The answer tokens' log-probabilities stored in `row` of `table`, when there are some.
pub(crate) fn logprobs_from_row(row: &SqliteRow, table: &'static str) -> Result<Option<Vec<f32>>> {
    let text: Option<String> = row
        .try_get("token_logprobs")
        .map_err(db_err("reading an answer's log-probabilities", None))?;
    text.map(|t| parse_json(table, "token_logprobs", t))
        .transpose()
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    text: String,
) -> Result<T> {
    serde_json::from_str(&text).map_err(|_| Error::Corrupt {
        table,
        column,
        value: text,
    })
}
