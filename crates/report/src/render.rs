//! Renders a [`DecisionReport`] as plain text (the terminal default), Markdown or JSON. The
//! verdict and its reasons come first; then derived figures, measured figures and the declared
//! assumptions, each in its own section so nobody mistakes an assumption for a measurement.
//!
//! It renders only; every number was computed in `decision` and `cost`. The HTML page is `html`.

use crate::break_even::BreakEven;
use crate::cost::PricingUsed;
use crate::decision::{DecisionReport, Verdict};
use crate::escape::{Sink, escape};
use crate::explain::describe_named;
use crate::figures::{
    count, duration, factor, hours, p_value, percent, plain, quality, signed, usd,
};
use crate::format::{Align, Table, json_pretty};

/// Output formats of `orchestrator report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
}

/// Renders the report. JSON is pretty-printed and carries every field unrounded.
pub fn render_report(r: &DecisionReport, format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => json_pretty(r),
        // Arm names and reasons reach the terminal: no control character gets through.
        ReportFormat::Text => escape(&Doc::new(false).report(r), Sink::Text).into_owned(),
        ReportFormat::Markdown => escape(&Doc::new(true).report(r), Sink::Text).into_owned(),
    }
}

/// The verdict as a headline: "STAY with prompt arm `x`".
pub(crate) fn headline(r: &DecisionReport) -> String {
    let lead = match r.verdict {
        Verdict::Stay => "STAY",
        Verdict::Escalate => "ESCALATE",
        Verdict::Neither => "NEITHER",
    };
    let rest = describe_named(r.verdict, r.recommended_arm.as_deref());
    let rest = rest
        .split_once(' ')
        .map_or(rest.as_str(), |(_, tail)| tail)
        .to_owned();
    format!("{lead} {rest}")
}

/// Rows of the derived-figures table, shared with the HTML page.
pub(crate) fn arm_rows(r: &DecisionReport) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let headers = vec![
        "arm",
        "kind",
        "quality",
        "95% CI",
        "meets target",
        "$/request",
        "upfront",
        "fixed/month",
        "horizon total",
        "time to ship",
        "staff share",
    ];
    let rows = r
        .arms
        .iter()
        .map(|a| {
            vec![
                a.arm.clone(),
                a.kind.to_string(),
                quality(a.quality),
                format!("{}–{}", quality(a.ci_low), quality(a.ci_high)),
                if a.meets_target { "yes" } else { "no" }.to_owned(),
                usd(a.cost.cost_per_request_usd),
                usd(a.cost.upfront_usd),
                usd(a.cost.fixed_monthly_usd),
                usd(a.cost.horizon_total_usd),
                hours(a.cost.time_to_ship_hours),
                percent(a.cost.staff_share),
            ]
        })
        .collect();
    (headers, rows)
}

/// Rows of the measured-figures table, shared with the HTML page.
/// Where `unanswered` stands in the measured-figures table (after `arm`, `answered`, `failed`).
const UNANSWERED_COLUMN: usize = 3;

/// The `unanswered` column is there only when some arm has items not asked yet.
pub(crate) fn measured_rows(r: &DecisionReport) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let unanswered = r.arms.iter().any(|a| a.measured.unanswered > 0);
    let mut headers = vec![
        "arm",
        "answered",
        "failed",
        "unanswered",
        "cache hits",
        "eval spend",
        "tokens in/out",
        "compute s/req",
        "price used",
        "eval machine",
        "training",
        "latency p50",
        "latency p95",
    ];
    let ms = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{} ms", count(v)));
    let rows = r
        .arms
        .iter()
        .map(|a| {
            let m = &a.measured;
            let price = match a.cost.breakdown.pricing {
                PricingUsed::Hosted {
                    pricing: Some(p),
                    batch_api,
                } => format!(
                    "${}/${} per Mtok{}",
                    p.input_per_mtok,
                    p.output_per_mtok,
                    if batch_api { " ×0.5 batch" } else { "" }
                ),
                PricingUsed::Hosted { pricing: None, .. } => "recorded cost".to_owned(),
                PricingUsed::Compute {
                    cost_per_hour,
                    source,
                } => format!("${cost_per_hour}/h ({})", source.as_str()),
            };
            let mut row = vec![
                a.arm.clone(),
                format!("{}/{}", m.answered, m.items),
                m.failed.to_string(),
                m.unanswered.to_string(),
                m.cache_hits.to_string(),
                usd(m.eval_spend_usd),
                format!(
                    "{:.0}/{:.0}",
                    m.mean_prompt_tokens, m.mean_completion_tokens
                ),
                format!("{:.3}", m.mean_compute_seconds),
                price,
                duration(m.eval_machine_seconds),
                m.train_seconds.map_or("–".to_owned(), duration),
                ms(m.latency_p50_ms),
                ms(m.latency_p95_ms),
            ];
            if !unanswered {
                row.remove(UNANSWERED_COLUMN);
            }
            row
        })
        .collect();
    if !unanswered {
        headers.remove(UNANSWERED_COLUMN);
    }
    (headers, rows)
}

/// Rows of the paired-comparison table, shared with the HTML page.
pub(crate) fn comparison_rows(r: &DecisionReport) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let headers = vec![
        "a",
        "b",
        "a − b",
        "95% CI",
        "p",
        "McNemar (a only / b only, p)",
        "decisive",
    ];
    let rows = r
        .comparisons
        .iter()
        .map(|c| {
            vec![
                c.a.clone(),
                c.b.clone(),
                signed(c.diff),
                format!("{} to {}", signed(c.ci_low), signed(c.ci_high)),
                p_value(c.p_value),
                c.mcnemar.as_ref().map_or("–".to_owned(), |m| {
                    format!("{} / {}, p = {}", m.a_only, m.b_only, p_value(m.p_value))
                }),
                if c.decisive { "yes" } else { "not decisive" }.to_owned(),
            ]
        })
        .collect();
    (headers, rows)
}

/// Rows of the assumptions table, shared with the HTML page.
pub(crate) fn assumption_rows(r: &DecisionReport) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let headers = vec!["assumption", "value", "unit", "source"];
    let rows = r
        .assumptions
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                match &a.value {
                    serde_json::Value::Number(n) => n.as_f64().map_or(n.to_string(), plain),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                a.unit.clone(),
                a.source.as_str().to_owned(),
            ]
        })
        .collect();
    (headers, rows)
}

/// A break-even line: "`ft` vs `p`: 3,889 requests/day (`p` cheaper below, `ft` above)".
pub(crate) fn break_even_line(b: &BreakEven) -> String {
    match b.daily_requests {
        Some(v) => format!(
            "`{}` vs `{}`: {} requests/day (`{}` cheaper below, `{}` above)",
            b.finetune_arm,
            b.prompt_arm,
            count(v),
            b.cheaper_at_low_volume,
            b.cheaper_at_high_volume
        ),
        None => format!(
            "`{}` vs `{}`: never (`{}` is cheaper at every volume)",
            b.finetune_arm, b.prompt_arm, b.cheaper_at_low_volume
        ),
    }
}

/// Builds the text or Markdown document.
struct Doc {
    markdown: bool,
    out: String,
}

impl Doc {
    fn new(markdown: bool) -> Self {
        Doc {
            markdown,
            out: String::new(),
        }
    }

    fn report(mut self, r: &DecisionReport) -> String {
        let items = r.arms.first().map_or(0, |a| a.measured.items);
        if self.markdown {
            self.line(&format!("# Decision report: {}", r.experiment));
        } else {
            self.line(&format!("Decision report: {}", r.experiment));
        }
        let split = r.review.as_ref().map_or(String::new(), |s| {
            format!(
                " ({} set aside to calibrate review, {} for every quality figure)",
                s.calibration_items, s.test_items
            )
        });
        self.line(&format!(
            "Run {} ({}), metric `{}`, quality target {}, {} eval items{split}.",
            r.run_id,
            r.run_status,
            r.metric,
            quality(r.quality_target),
            items
        ));
        self.blank();
        if self.markdown {
            self.line(&format!("## Verdict: {}", headline(r)));
        } else {
            self.line(&format!("VERDICT: {}", headline(r)));
        }
        self.blank();
        self.list(&r.reasons);
        self.section("What would change it");
        self.list(&r.would_change);

        let total_label = format!("horizon total ({} d)", count(r.horizon_days()));
        self.section("Arms (derived: the measurements below × the assumptions below)");
        let (mut h, rows) = arm_rows(r);
        let label = total_label.as_str();
        for x in h.iter_mut() {
            if *x == "horizon total" {
                *x = label;
            }
        }
        self.table(&h, &rows);

        self.section(&format!("Measured in run {}", r.run_id));
        let (h, rows) = measured_rows(r);
        self.table(&h, &rows);
        let bases: Vec<String> = r
            .arms
            .iter()
            .map(|a| format!("`{}`: {}", a.arm, a.cost.cost_per_request_basis))
            .collect();
        self.blank();
        self.line("Cost per request:");
        self.list(&bases);

        if let Some((h, rows)) = crate::serving::rows(r) {
            self.section("Serving in real time and in batches");
            let h: Vec<&str> = h.iter().map(String::as_str).collect();
            self.table(&h, &rows);
        }
        if let Some((h, rows)) = crate::serving::bench_rows(r) {
            self.section("Local throughput and latency (bench-serving)");
            self.table(&h, &rows);
        }
        if let Some((h, rows)) = crate::review::rows(r) {
            self.section(
                "Review (thresholds chosen on the calibration items, measured on the rest)",
            );
            self.table(&h, &rows);
        }
        if let Some((h, rows)) = crate::curves::rows(&r.curves) {
            self.section("Learning curves and label noise");
            self.table(&h, &rows);
            let notes = crate::curves::notes(&r.curves);
            self.list(&notes);
        }
        if let Some(li) = &r.label_issues {
            self.section("Label issues in the eval split");
            self.list(&crate::label_issues::notes(li));
            if let Some((h, rows)) = crate::label_issues::rows(li) {
                self.table(&h, &rows);
            }
        }
        if !r.break_even.is_empty() {
            self.section("Break-even daily volume");
            for b in &r.break_even {
                self.list(&[break_even_line(b)]);
                self.indented(&b.formula);
            }
        }
        if !r.comparisons.is_empty() {
            let compared = r.review.as_ref().map_or(items, |s| s.test_items);
            self.section(&format!("Paired comparisons on the same {compared} items"));
            let (h, rows) = comparison_rows(r);
            self.table(&h, &rows);
        }
        self.section("Verdict at other traffic");
        let lines: Vec<String> = r
            .sensitivity
            .iter()
            .map(|s| {
                format!(
                    "{} ({} requests/day): {}",
                    factor(s.factor),
                    count(s.daily_requests),
                    describe_named(s.verdict, s.recommended_arm.as_deref())
                )
            })
            .collect();
        self.list(&lines);
        self.section("Assumptions (declared in the spec, or the default)");
        let (h, rows) = assumption_rows(r);
        self.table(&h, &rows);
        if !r.warnings.is_empty() {
            self.section("Warnings");
            self.list(&r.warnings);
        }
        self.out
    }

    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }

    fn section(&mut self, title: &str) {
        self.blank();
        if self.markdown {
            self.line(&format!("## {title}"));
            self.blank();
        } else {
            self.line(&format!("{title}:"));
        }
    }

    fn list(&mut self, items: &[String]) {
        for s in items {
            if self.markdown {
                self.line(&format!("- {s}"));
            } else {
                self.line(&format!("  - {s}"));
            }
        }
    }

    fn indented(&mut self, s: &str) {
        if self.markdown {
            self.line(&format!("  `{s}`"));
        } else {
            self.line(&format!("      {s}"));
        }
    }

    /// A table: the first column left-aligned, the figures right-aligned.
    fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) {
        let t = Table {
            header: headers.iter().map(|h| (*h).to_owned()).collect(),
            align: (0..headers.len())
                .map(|i| if i == 0 { Align::Left } else { Align::Right })
                .collect(),
            rows,
        };
        if self.markdown {
            self.out.push_str(&t.markdown());
        } else {
            for line in t.text().lines() {
                self.line(&format!("  {line}"));
            }
        }
    }
}

impl DecisionReport {
    /// The horizon the totals cover, read back from the assumptions.
    pub fn horizon_days(&self) -> f64 {
        self.assumption("horizon_days").unwrap_or(0.0)
    }

    /// The declared daily traffic, read back from the assumptions.
    pub fn daily_requests(&self) -> f64 {
        self.assumption("daily_requests").unwrap_or(0.0)
    }

    fn assumption(&self, name: &str) -> Option<f64> {
        self.assumptions
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.value.as_f64())
    }
}
