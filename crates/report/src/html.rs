//! The decision report as one self-contained HTML page: the verdict and its reasons first, the
//! arms table, four inline SVG charts (quality against cost per request with the Pareto frontier;
//! total cost against daily volume with break-even points; training loss curves; latency
//! distributions), measured figures and assumptions, then the items where the prompt arm to beat
//! and the best fine-tune disagree, and every output.
//!
//! The page runs no script and loads nothing: styles are inline, charts are SVG drawn here, and a
//! Content-Security-Policy forbids any request. Every model output and dataset text passes
//! through [`esc`]. It computes no figure of its own beyond chart geometry and percentiles of
//! latency; the numbers come from the [`DecisionReport`].

use std::fmt::Write as _;

use domain::RunResults;

use crate::charts;
use crate::decision::DecisionReport;
use crate::figures::{count, quality};
use crate::index::ResultIndex;
use crate::render::{
    arm_rows, assumption_rows, break_even_line, comparison_rows, headline, measured_rows,
};
use crate::svg::{color, esc};

/// Rows beyond this many are left out of the disagreement table (the count is shown).
const MAX_DISAGREEMENTS: usize = 500;

const STYLE: &str = "
:root{--ink:#1d2430;--muted:#5b6472;--line:#d9dee5;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:4px 0 12px}h2{font-size:18px;margin:28px 0 10px}h3{font-size:15px;margin:16px 0 6px}
.kicker{color:var(--muted);margin:0}
.verdict{border-radius:10px;padding:18px 22px;border-left:8px solid;background:#fff}
.verdict.stay{border-color:#2e8b57}.verdict.escalate{border-color:#3b6fd8}.verdict.neither{border-color:#d9822b}
.verdict ul{margin:6px 0;padding-left:20px}.verdict li{margin:3px 0}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef1f5;border-radius:4px;padding:0 4px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:right;vertical-align:top}
th{background:#eef1f5;font-weight:600}
th:first-child,td:first-child{text-align:left}
td.text,th.text{text-align:left}
.cell{white-space:pre-wrap;word-break:break-word;max-height:9em;overflow:auto;min-width:12em}
.scroll{overflow-x:auto}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(540px,1fr));gap:18px}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px}
figcaption{color:var(--muted);font-size:12.5px;margin-top:4px}
figure h3{margin:0 0 6px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#e8ebef}svg .axis{stroke:#888;fill:none}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .tick{fill:#666}svg .axislbl{font-size:12px;fill:#333}
svg .lbl{font-size:11px;fill:#222}svg .note{font-size:10.5px;fill:#666}
.legend{list-style:none;padding:0;margin:8px 0;display:flex;flex-wrap:wrap;gap:6px 18px}
.sw{display:inline-block;width:11px;height:11px;margin-right:6px;vertical-align:-1px}
.sw.prompt{border-radius:50%}.sw.finetune{transform:rotate(45deg) scale(.85)}
.ok{color:#2e8b57;font-weight:600}.bad{color:#c0392b;font-weight:600}.err{color:#c0392b;font-style:italic}
.muted{color:var(--muted)}
.formula{font:12px ui-monospace,Menlo,monospace;color:var(--muted);white-space:pre-wrap;margin:2px 0 10px 18px}
details summary{cursor:pointer;font-weight:600;margin:12px 0}
.tag{display:inline-block;font-size:11px;border-radius:3px;padding:0 5px;margin-left:6px;background:#eef1f5;color:var(--muted)}
";

/// The line in every page's `<head>` (within its first kilobyte) by which `report --html`
/// recognises an earlier report of ours, which it may overwrite, from any other file.
pub const HTML_MARKER: &str = "<meta name=\"generator\" content=\"orchestrator report\">";

/// Whether `head` (the start of a file) is a page [`render_html`] wrote.
pub fn is_report_html(head: &[u8]) -> bool {
    let marker = HTML_MARKER.as_bytes();
    head.windows(marker.len()).any(|w| w == marker)
}

/// Renders the whole page. `results` supplies what the report does not carry: answers, dataset
/// texts, loss curves and raw latencies.
pub fn render_html(r: &DecisionReport, results: &RunResults) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("Decision report: {}", r.experiment);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{HTML_MARKER}\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>\n",
        esc(&title)
    );
    verdict_section(&mut h, r);
    arms_section(&mut h, r);
    search_section(&mut h, results);
    charts_section(&mut h, r, results);
    details_section(&mut h, r);
    // Item by item, the items quality was measured on (without review's calibration items).
    let view = crate::review::quality_view(results);
    disagreement_section(&mut h, r, &view);
    outputs_section(&mut h, r, &view);
    let _ = write!(
        h,
        "<p class=\"muted\">One self-contained file: no scripts, no network requests. Figures \
         come from run {} of <code>{}</code>; costs are measurements combined with the \
         assumptions above.</p></main></body></html>",
        r.run_id,
        esc(&r.experiment)
    );
    h.push('\n');
    h
}

/// Escapes a sentence and turns its `backtick` spans into `<code>`.
fn prose(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

fn list(h: &mut String, items: &[String]) {
    h.push_str("<ul>");
    for s in items {
        let _ = write!(h, "<li>{}</li>", prose(s));
    }
    h.push_str("</ul>");
}

fn table(h: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    h.push_str("<div class=\"scroll\"><table><thead><tr>");
    for x in headers {
        let _ = write!(h, "<th>{}</th>", esc(x));
    }
    h.push_str("</tr></thead><tbody>");
    for row in rows {
        h.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(h, "<td><code>{}</code></td>", esc(c));
            } else {
                let _ = write!(h, "<td>{}</td>", esc(c));
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div>");
}

/// The candidates of each prompt search (`optimize:`): what each was, how far it got in the
/// halving and its dev score; the chosen one is marked. Nothing when no search ran.
fn search_section(h: &mut String, results: &RunResults) {
    if results.searches.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Prompt search</h2><p class=\"muted\">Candidates scored on the dev split \
         (never on eval), by successive halving: a candidate's dev items say how far it got. \
         The chosen one answers the eval items as its optimised arm.</p>",
    );
    let rows: Vec<Vec<String>> = results
        .searches
        .iter()
        .map(|s| {
            let demos = s.demo_ids.as_ref().map_or_else(
                || "per item (as written)".to_owned(),
                |d| d.len().to_string(),
            );
            vec![
                s.candidate.clone(),
                s.seed_prompt.clone(),
                s.instruction.clone().unwrap_or_else(|| "(none)".to_owned()),
                demos,
                s.dev_items.to_string(),
                s.dev_score
                    .map_or_else(|| "–".to_owned(), crate::figures::quality),
                if s.chosen { "chosen" } else { "" }.to_owned(),
            ]
        })
        .collect();
    let headers = [
        "candidate",
        "seed",
        "instruction",
        "demos",
        "dev items",
        "dev score",
        "",
    ];
    table(h, &headers, &rows);
    h.push('\n');
}

fn verdict_section(h: &mut String, r: &DecisionReport) {
    let class = r.verdict.as_str();
    let items = r.arms.first().map_or(0, |a| a.measured.items);
    let _ = write!(
        h,
        "<section class=\"verdict {class}\"><p class=\"kicker\">Decision report · <code>{}</code> · run {} ({}) · metric <code>{}</code>, target {} · {} eval items</p><h1>{}</h1>",
        esc(&r.experiment),
        r.run_id,
        r.run_status,
        esc(&r.metric),
        quality(r.quality_target),
        items,
        prose(&headline(r))
    );
    list(h, &r.reasons);
    h.push_str("<h3>What would change it</h3>");
    list(h, &r.would_change);
    if !r.warnings.is_empty() {
        h.push_str("<h3>Warnings</h3>");
        list(h, &r.warnings);
    }
    h.push_str("</section>\n");
}

fn arms_section(h: &mut String, r: &DecisionReport) {
    h.push_str(
        "<h2>Arms</h2><p class=\"muted\">Quality is measured; costs are derived from the \
         measurements and the assumptions listed below.</p>",
    );
    let (headers, rows) = arm_rows(r);
    table(h, &headers, &rows);
    h.push('\n');
}

fn legend(h: &mut String, r: &DecisionReport) {
    h.push_str("<ul class=\"legend\">");
    for (i, a) in r.arms.iter().enumerate() {
        let star = if r.recommended_arm.as_deref() == Some(a.arm.as_str()) {
            "<span class=\"tag\">recommended</span>"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<li><span class=\"sw {}\" style=\"background:{}\"></span><code>{}</code> <span class=\"muted\">{}</span>{star}</li>",
            a.kind.as_str(),
            color(i),
            esc(&a.arm),
            a.kind.as_str()
        );
    }
    h.push_str("</ul>");
}

fn figure(h: &mut String, title: &str, svg: &str, caption: &str) {
    let _ = write!(
        h,
        "<figure><h3>{}</h3>{svg}<figcaption>{}</figcaption></figure>",
        esc(title),
        prose(caption)
    );
}

fn charts_section(h: &mut String, r: &DecisionReport, results: &RunResults) {
    h.push_str("<h2>Charts</h2>");
    legend(h, r);
    h.push_str("<div class=\"grid2\">");
    figure(
        h,
        "Quality against cost per request",
        &charts::quality_cost_chart(r),
        "Dots: quality with its 95% bootstrap CI. Dashed staircase: the Pareto frontier (no other arm is both cheaper and better); ringed arms lie on it. Circles are prompt arms, diamonds fine-tunes.",
    );
    figure(
        h,
        &format!(
            "Total cost over {} days against daily volume",
            count(r.horizon_days())
        ),
        &charts::volume_chart(r),
        "Each line is an arm's horizon total at that traffic. Black rings: break-even volumes against the prompt arm to beat. Vertical rules: the declared traffic, and 0.1× and 10× of it.",
    );
    figure(
        h,
        "Training loss",
        &charts::loss_chart(r, results),
        "Solid: training loss per step; dashed with dots: validation loss.",
    );
    figure(
        h,
        "Latency per request",
        &charts::latency_chart(r, results),
        "Box: 25th to 75th percentile, line at the median; whiskers: 5th to 95th percentile. Successful calls; cache hits left out when there are others.",
    );
    if !r.serving_bench.is_empty() {
        figure(
            h,
            "Throughput against latency",
            &charts::bench_chart(r),
            "Each line: one local arm at the batch sizes bench-serving measured (labels), items per second against p95 latency per request. The dashed rule is the latency SLO, when declared.",
        );
    }
    if !r.curves.learning.is_empty() {
        figure(
            h,
            "Quality against training examples",
            &crate::curve_charts::learning_chart(r),
            "Each colour: one declared arm and its train_sizes (or few_shot_sizes) points, with 95% bootstrap CIs. Dashed: the fitted curve; ring: where the fit reaches the target (drawn when within 4× the largest size). The dashed rule is the target.",
        );
    }
    if !r.curves.noise.is_empty() {
        figure(
            h,
            "Quality against label noise",
            &crate::curve_charts::noise_chart(r),
            "Each colour: one declared arm trained (or shown demonstrations) with that share of its labels flipped to another label, seeded and nested across levels. The dashed rule is the target.",
        );
    }
    if r.review.is_some() {
        figure(
            h,
            "Accuracy against coverage",
            &charts::risk_coverage_chart(r),
            "Each line: the accuracy of an arm's answers on the test items if only the most confident share (the coverage) were answered automatically. Markers: the threshold chosen on the calibration items with the guarantee; the dashed rule is the target accuracy.",
        );
    }
    h.push_str("</div>\n");
}

fn details_section(h: &mut String, r: &DecisionReport) {
    let _ = write!(h, "<h2>Measured in run {}</h2>", r.run_id);
    let (headers, rows) = measured_rows(r);
    table(h, &headers, &rows);
    h.push_str("<h3>How each cost per request was computed</h3><ul>");
    for a in &r.arms {
        let _ = write!(
            h,
            "<li><code>{}</code>: {}</li>",
            esc(&a.arm),
            esc(&a.cost.cost_per_request_basis)
        );
    }
    h.push_str("</ul>");
    if !r.break_even.is_empty() {
        h.push_str("<h2>Break-even daily volume</h2>");
        for b in &r.break_even {
            let _ = write!(
                h,
                "<p>{}</p><div class=\"formula\">{}</div>",
                prose(&break_even_line(b)),
                esc(&b.formula)
            );
        }
    }
    if let Some((headers, rows)) = crate::serving::rows(r) {
        h.push_str("<h2>Serving in real time and in batches</h2><p class=\"muted\">Real time: hosted calls at list price, a fine-tune's machine up 24/7. Batches: hosted calls at batch-API rates, self-hosted models paid by the machine-hour their traffic needs at the throughput measured in the run.</p>");
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        table(h, &headers, &rows);
    }
    if let Some((headers, rows)) = crate::serving::bench_rows(r) {
        h.push_str("<h2>Local throughput and latency</h2><p class=\"muted\">Measured by <code>orchestrator bench-serving</code> on the eval prompts; a request's latency is its batch's time. The serving cost uses the marked size.</p>");
        table(h, &headers, &rows);
    }
    if let Some((headers, rows)) = crate::curves::rows(&r.curves) {
        h.push_str("<h2>Learning curves and label noise</h2>");
        table(h, &headers, &rows);
        let notes = crate::curves::notes(&r.curves);
        list(h, &notes);
    }
    if let Some(li) = &r.label_issues {
        h.push_str("<h2>Label issues in the eval split</h2>");
        list(h, &crate::label_issues::notes(li));
        if let Some((headers, rows)) = crate::label_issues::rows(li) {
            table(h, &headers, &rows);
        }
    }
    if let Some((headers, rows)) = crate::review::rows(r) {
        h.push_str("<h2>Review</h2><p class=\"muted\">Thresholds chosen on the calibration items, measured on the rest; reviewed answers count as right (the reviewer is simulated by the gold label).</p>");
        table(h, &headers, &rows);
    }
    if !r.comparisons.is_empty() {
        h.push_str("<h2>Paired comparisons on the same items</h2>");
        let (headers, rows) = comparison_rows(r);
        table(h, &headers, &rows);
    }
    h.push_str("<h2>Assumptions</h2><p class=\"muted\">Declared in the spec, or the documented default when the spec is silent.</p>");
    let (headers, rows) = assumption_rows(r);
    table(h, &headers, &rows);
    h.push('\n');
}

/// Per-item lookups for the output tables, on the decision metric.
struct Items<'a> {
    index: ResultIndex<'a>,
    metric: &'a str,
}

impl<'a> Items<'a> {
    fn new(r: &'a DecisionReport, results: &'a RunResults) -> Self {
        Items {
            index: ResultIndex::new(results),
            metric: &r.metric,
        }
    }

    /// The metric of one item as quality counts it: the score of a successful call, else 0.
    fn value(&self, arm: &str, item: &str) -> f64 {
        self.index.value(arm, item, self.metric).unwrap_or(0.0)
    }

    /// An answer cell: the escaped answer (or error) and its score.
    fn answer_cell(&self, r: &DecisionReport, arm: &str, item: &str) -> String {
        let value = self.value(arm, item);
        let mark = if r.binary_metric {
            if value > 0.5 {
                "<span class=\"ok\">✓</span>".to_owned()
            } else {
                "<span class=\"bad\">✗</span>".to_owned()
            }
        } else {
            format!("<span class=\"muted\">{value:.2}</span>")
        };
        let body = match self.index.call(arm, item) {
            Some(c) => match (&c.response, &c.error) {
                (Some(text), None) => esc(text).into_owned(),
                (_, Some(e)) => format!("<span class=\"err\">error: {}</span>", esc(e)),
                (None, None) => "<span class=\"err\">no answer</span>".to_owned(),
            },
            None => "<span class=\"err\">not run</span>".to_owned(),
        };
        format!("<td class=\"text\">{mark}<div class=\"cell\">{body}</div></td>")
    }
}

fn text_cell(s: &str) -> String {
    format!(
        "<td class=\"text\"><div class=\"cell\">{}</div></td>",
        esc(s)
    )
}

fn disagreement_section(h: &mut String, r: &DecisionReport, results: &RunResults) {
    let (Some(p), Some(f)) = (&r.baseline_prompt_arm, &r.best_finetune_arm) else {
        return;
    };
    let items = Items::new(r, results);
    let differing: Vec<_> = results
        .items
        .iter()
        .filter(|it| items.value(p, &it.item_id) != items.value(f, &it.item_id))
        .collect();
    let _ = write!(
        h,
        "<h2>Where <code>{}</code> and <code>{}</code> disagree</h2><p class=\"muted\">{} of {} items score differently on <code>{}</code>.{}</p>",
        esc(p),
        esc(f),
        differing.len(),
        results.items.len(),
        esc(&r.metric),
        if differing.len() > MAX_DISAGREEMENTS {
            format!(" The first {MAX_DISAGREEMENTS} are shown.")
        } else {
            String::new()
        }
    );
    if differing.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<div class=\"scroll\"><table><thead><tr><th>item</th><th class=\"text\">input</th><th class=\"text\">target</th><th class=\"text\">{}</th><th class=\"text\">{}</th></tr></thead><tbody>",
        esc(p),
        esc(f)
    );
    for it in differing.iter().take(MAX_DISAGREEMENTS) {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td>{}{}{}{}</tr>",
            esc(&it.item_id),
            text_cell(&it.input),
            text_cell(&it.target),
            items.answer_cell(r, p, &it.item_id),
            items.answer_cell(r, f, &it.item_id)
        );
    }
    h.push_str("</tbody></table></div>\n");
}

fn outputs_section(h: &mut String, r: &DecisionReport, results: &RunResults) {
    if results.items.is_empty() || r.arms.is_empty() {
        return;
    }
    let items = Items::new(r, results);
    let _ = write!(
        h,
        "<details><summary>All outputs ({} items × {} arms)</summary><div class=\"scroll\"><table><thead><tr><th>item</th><th class=\"text\">input</th><th class=\"text\">target</th>",
        results.items.len(),
        r.arms.len()
    );
    for a in &r.arms {
        let _ = write!(h, "<th class=\"text\">{}</th>", esc(&a.arm));
    }
    h.push_str("</tr></thead><tbody>");
    for it in &results.items {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td>{}{}",
            esc(&it.item_id),
            text_cell(&it.input),
            text_cell(&it.target)
        );
        for a in &r.arms {
            h.push_str(&items.answer_cell(r, &a.arm, &it.item_id));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div></details>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Verdict;

    #[test]
    fn prose_escapes_and_marks_code() {
        assert_eq!(
            prose("Stay with `a<b>` & \"go\""),
            "Stay with <code>a&lt;b&gt;</code> &amp; &quot;go&quot;"
        );
    }

    #[test]
    fn verdict_class_names_are_fixed_words() {
        for v in [Verdict::Stay, Verdict::Escalate, Verdict::Neither] {
            assert!(v.as_str().chars().all(|c| c.is_ascii_lowercase()));
        }
    }
}
