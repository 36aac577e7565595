//! Turns what a run stored (`domain::RunResults`) into what people read: the leaderboard,
//! item-by-item comparisons, and the decision report (cost model, break-even, verdict) in
//! table, JSON, CSV, Markdown and self-contained HTML form.
//!
//! It never queries SQL and never prints: callers hand it records and get strings back. It
//! reads only what the run stored (`RunResults`, with each arm's pricing and the run's settings),
//! never the spec.

pub mod calibration;
pub mod compare;
pub mod cost;
pub mod curves;
pub mod decision;
pub mod escape;
pub mod format;
pub mod html;
pub mod label_issues;
pub mod leaderboard;
pub mod render;
pub mod review;
pub mod serving;
pub mod settings;
// The fixture of this crate's unit and integration tests; `#[doc(hidden)]` because it is no
// part of the report's API.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

mod break_even;
mod ceiling;
mod charts;
mod curve_charts;
mod explain;
mod figures;
mod index;
mod svg;

pub use break_even::BreakEven;
pub use ceiling::{PromptCeiling, Searched};
pub use compare::{Comparison, Disagreement, Error, compare, render_compare};
pub use cost::{ArmCostInputs, ArmPricing};
pub use decision::{DecisionReport, Verdict, decide, fail_under};
pub use escape::{Sink, escape};
pub use format::{Format, ParseFormatError};
pub use html::{HTML_MARKER, is_report_html, render_html};
pub use leaderboard::{LeaderboardRow, leaderboard, metric_values, metrics, render_leaderboard};
pub use render::{ReportFormat, render_report};
pub use serving::render_serving_bench;
pub use settings::{Assumed, assumed_settings};
