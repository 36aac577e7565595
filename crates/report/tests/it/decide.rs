//! The decision layer end to end on constructed runs: the cost model against hand-computed
//! totals, each verdict branch (stay, escalate twice over, neither), break-even "never", the
//! verdict at a tenth and ten times the traffic, `--fail-under`, and the JSON, text and Markdown
//! renderings.
//!
//! Hand computation shared by the tests (100 items, assumptions of
//! `report::testing::assumptions`):
//! - prompt arm: $0.002/request; eval spend 100 × 0.002 = $0.2; upfront 5 h × $100 + 0.2 =
//!   $500.2; total at D requests/day = 500.2 + 365 × D × 0.002.
//! - fine-tune: $0.0002/request (0.36 s × $2/h); eval spend $0.02; training 2 h × $2 = $4;
//!   upfront 40 h × $100 + 4 + 0.02 = $4004.02; fixed $1 × 730 + 2 h × $100 = $930/month;
//!   months = 365 / 30.4375 = 11.991786447638603; total at D = 4004.02 + 365 × D × 0.0002
//!   + 11152.3613963039.
//! - break-even: (4004.02 + 11152.3613963039 − 500.2) / (365 × (0.002 − 0.0002))
//!   = 14656.1813963039 / 0.657 = 22307.73424094962 requests/day.

use report::{ReportFormat, Verdict, decide, fail_under, render_report};

use report::testing::{ArmSpec, assumptions, decision, inputs, right, run};

const BREAK_EVEN: f64 = 22307.73424094962;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Decides a run of 100 items with one prompt arm right on `p` items and one fine-tune right on
/// `f` items (both the first ones), at `daily` requests a day and target 0.9.
fn check(p: usize, f: usize, daily: f64) -> report::DecisionReport {
    let results = run(
        100,
        vec![
            ArmSpec::prompt("zero-shot@api", right(100, 0, p)),
            ArmSpec::finetune("lora", right(100, 0, f)),
        ],
    );
    decide(
        &results,
        &assumptions(daily),
        &decision(0.9),
        &inputs(&results),
    )
}

#[test]
fn cost_model_matches_the_hand_computation() {
    let r = check(95, 97, 1000.0);
    let (p, f) = (&r.arms[0], &r.arms[1]);
    assert!(close(p.cost.cost_per_request_usd, 0.002));
    assert!(close(p.cost.upfront_usd, 500.2));
    assert_eq!(p.cost.fixed_monthly_usd, 0.0);
    assert!(close(p.cost.horizon_total_usd, 1230.2));
    // 5 h declared + summed latency 39.84 s (400 ms × Σ(0.6 + 0.1 × (i mod 9)) = 400 × 99.6).
    assert!(close(p.cost.time_to_ship_hours, 5.0 + 39.84 / 3600.0));
    assert!(close(p.cost.staff_share, 500.0 / 1230.2));

    assert!(close(f.cost.cost_per_request_usd, 0.0002));
    assert!(close(f.cost.upfront_usd, 4004.02));
    assert!(close(f.cost.fixed_monthly_usd, 930.0));
    assert!(close(f.cost.horizon_total_usd, 15_229.381_396_303_9));
    // 40 h declared + (100 × 0.36 s eval + 7200 s training) / 3600.
    assert!(close(f.cost.time_to_ship_hours, 42.01));
    // (4000 + 11.991786447638603 × 200) / 15_229.381_396_303_9
    assert!(close(f.cost.staff_share, 0.420132448129546));

    let b = &r.break_even[0];
    assert_eq!(
        (b.prompt_arm.as_str(), b.finetune_arm.as_str()),
        ("zero-shot@api", "lora")
    );
    assert!(close(b.daily_requests.unwrap(), BREAK_EVEN));
    assert!(
        b.formula.contains("= 22307.7 requests/day"),
        "{}",
        b.formula
    );
}

#[test]
fn stay_when_the_prompt_arm_meets_the_target_and_costs_less() {
    let r = check(95, 97, 1000.0);
    assert_eq!(r.verdict, Verdict::Stay);
    assert_eq!(r.recommended_arm.as_deref(), Some("zero-shot@api"));
    assert!(r.reasons[0].starts_with("Stay with prompt arm `zero-shot@api`: it meets the quality target (equals 0.950 ≥ 0.900"), "{}", r.reasons[0]);
    let all = r.reasons.join("\n");
    assert!(
        all.contains("fine-tune `lora` scores 0.970 against 0.950"),
        "{all}"
    );
    assert!(all.contains("not decisive"), "{all}");
    assert!(all.contains("`lora` $15,229"), "{all}");
    assert!(all.contains("Time to ship: `zero-shot@api` 5.0 h"), "{all}");
    let change = r.would_change.join("\n");
    assert!(
        change.contains("Traffic above 22,308 requests/day (declared: 1,000) would make fine-tune `lora` cheaper"),
        "{change}"
    );
    assert!(!fail_under(&r, None));
}

#[test]
fn escalate_when_only_the_finetune_meets_the_target() {
    let r = check(80, 95, 1000.0);
    assert_eq!(r.verdict, Verdict::Escalate);
    assert_eq!(r.recommended_arm.as_deref(), Some("lora"));
    assert!(
        r.reasons[0].contains("the best prompt arm, `zero-shot@api`, misses it (equals 0.800)"),
        "{}",
        r.reasons[0]
    );
    let c = &r.comparisons[0];
    assert_eq!((c.a.as_str(), c.b.as_str()), ("lora", "zero-shot@api"));
    assert!(close(c.diff, 0.15));
    assert!(c.decisive && c.ci_low > 0.0, "{c:?}");
    // The fine-tune alone is right on items 80..95: McNemar 15 vs 0, exact p = 2 × 0.5^15.
    let m = c.mcnemar.unwrap();
    assert_eq!((m.a_only, m.b_only), (15, 0));
    assert!(close(m.p_value, 6.103515625e-05));
    let reasons = r.reasons.join("\n");
    assert!(
        reasons.contains("(95% CI +0.080 to +0.220, paired bootstrap p < 0.001; McNemar: only `lora` right on 15 items, only `zero-shot@api` on 0, p < 0.001): decisive."),
        "{reasons}"
    );
    let change = r.would_change.join("\n");
    assert!(
        change.contains("If prompt arm `zero-shot@api` gained +0.100 (about 10 more of 100 items right) and reached the target, it would cost less at the declared traffic ($1,230 against $15,229), so the verdict would become stay"),
        "{change}"
    );
    assert!(!fail_under(&r, None));
    assert!(fail_under(&r, Some(0.96)));
}

#[test]
fn escalate_when_both_meet_the_target_and_the_finetune_is_cheaper() {
    // At 50,000/day: prompt 500.2 + 36,500 = $37,000.2; fine-tune 4004.02 + 3,650 + 11,152.36
    // = $18,806.38.
    let r = check(95, 95, 50_000.0);
    assert_eq!(r.verdict, Verdict::Escalate);
    assert!(close(r.arms[0].cost.horizon_total_usd, 37000.2));
    assert!(close(
        r.arms[1].cost.horizon_total_usd,
        18_806.381_396_303_9
    ));
    assert!(r.reasons[0].contains("costs less over 365 days at 50,000 requests/day than prompt arm `zero-shot@api` ($18,806 against $37,000)"), "{}", r.reasons[0]);
    let change = r.would_change.join("\n");
    assert!(change.contains("Traffic below 22,308 requests/day (declared: 50,000) would make prompt arm `zero-shot@api` cheaper"), "{change}");
    // A tenth of the traffic (5,000/day): prompt $4,150.2 against fine-tune $15,521.4: stay.
    let low = &r.sensitivity[0];
    assert_eq!((low.factor, low.verdict), (0.1, Verdict::Stay));
    assert_eq!(low.recommended_arm.as_deref(), Some("zero-shot@api"));
    assert_eq!(r.sensitivity[1].verdict, Verdict::Escalate);
}

#[test]
fn neither_when_no_arm_meets_the_target() {
    let r = check(70, 80, 1000.0);
    assert_eq!(r.verdict, Verdict::Neither);
    assert_eq!(r.recommended_arm, None);
    let c = r.closest.as_ref().unwrap();
    assert_eq!(c.arm, "lora");
    assert!(close(c.gap, 0.1));
    assert!(r.reasons[0].starts_with("Neither: no arm meets the quality target of 0.900 on `equals`. The closest is `lora` at 0.800, 0.100 short."), "{}", r.reasons[0]);
    let change = r.would_change.join("\n");
    assert!(
        change.contains("`lora` needs +0.100 (about 10 more of 100 items right)"),
        "{change}"
    );
    assert!(
        change
            .contains("At a target of 0.800, the verdict would be: escalate to fine-tune `lora`."),
        "{change}"
    );
    assert!(fail_under(&r, None));
}

#[test]
fn sensitivity_flips_the_verdict_at_ten_times_the_traffic() {
    // 5,000/day: stay. 50,000/day is above the break-even of 22,308: escalate. 500/day: stay.
    let r = check(95, 95, 5000.0);
    assert_eq!(r.verdict, Verdict::Stay);
    let s: Vec<_> = r
        .sensitivity
        .iter()
        .map(|s| {
            (
                s.factor,
                s.daily_requests,
                s.verdict,
                s.recommended_arm.clone(),
            )
        })
        .collect();
    assert_eq!(
        s,
        [
            (0.1, 500.0, Verdict::Stay, Some("zero-shot@api".to_owned())),
            (10.0, 50_000.0, Verdict::Escalate, Some("lora".to_owned())),
        ]
    );
    let change = r.would_change.join("\n");
    assert!(
        change.contains(
            "At 10× the declared traffic (50,000 requests/day): escalate to fine-tune `lora`."
        ),
        "{change}"
    );
    assert!(change.contains("At 0.1× the declared traffic (500 requests/day): stay with prompt arm `zero-shot@api` (unchanged)."), "{change}");
}

#[test]
fn break_even_is_never_when_the_finetune_costs_more_per_request() {
    // 36 compute seconds at $2/h = $0.02 a request, ten times the prompt arm's $0.002: the
    // fine-tune costs more upfront and per request, v = (A_ft − A_p) / (365 × (0.002 − 0.02)) < 0.
    let mut ft = ArmSpec::finetune("lora", right(100, 0, 95));
    ft.compute_seconds = 36.0;
    let results = run(
        100,
        vec![ArmSpec::prompt("zero-shot@api", right(100, 0, 95)), ft],
    );
    let r = decide(
        &results,
        &assumptions(1000.0),
        &decision(0.9),
        &inputs(&results),
    );
    let b = &r.break_even[0];
    assert_eq!(b.daily_requests, None);
    assert_eq!(
        (
            b.cheaper_at_low_volume.as_str(),
            b.cheaper_at_high_volume.as_str()
        ),
        ("zero-shot@api", "zero-shot@api")
    );
    assert!(
        b.formula.ends_with("→ never (no positive volume)"),
        "{}",
        b.formula
    );
    assert_eq!(r.verdict, Verdict::Stay);
    assert!(r.sensitivity.iter().all(|s| s.verdict == Verdict::Stay));
    let change = r.would_change.join("\n");
    assert!(
        change.contains("costs more than `zero-shot@api` at every volume (break-even: never)"),
        "{change}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_report(&r, ReportFormat::Json)).unwrap();
    assert!(json["break_even"][0]["daily_requests"].is_null());
}

#[test]
fn failed_calls_count_zero() {
    let mut p = ArmSpec::prompt("zero-shot@api", right(100, 0, 100));
    p.failed = (0..10).collect();
    let results = run(100, vec![p, ArmSpec::finetune("lora", right(100, 0, 85))]);
    let r = decide(
        &results,
        &assumptions(1000.0),
        &decision(0.9),
        &inputs(&results),
    );
    assert!(close(r.arms[0].quality, 0.9));
    assert_eq!(
        (r.arms[0].measured.answered, r.arms[0].measured.failed),
        (90, 10)
    );
    // Eval spend covers the 90 answered calls only.
    assert!(close(r.arms[0].measured.eval_spend_usd, 0.18));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("10 of 100 items failed")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.verdict, Verdict::Stay);
}

#[test]
fn mcnemar_counts_discordant_items() {
    // Prompt right on 0..90, fine-tune on 5..100: prompt alone on 5 items, fine-tune alone on 10.
    // Exact two-sided p = 2 × Σ_{k≤5} C(15, k) / 2^15 = 2 × 4944 / 32768 = 0.3017578125,
    // as scipy.stats.binomtest(5, 15, 0.5).pvalue gives.
    let results = run(
        100,
        vec![
            ArmSpec::prompt("zero-shot@api", right(100, 0, 90)),
            ArmSpec::finetune("lora", right(100, 5, 100)),
        ],
    );
    let r = decide(
        &results,
        &assumptions(1000.0),
        &decision(0.9),
        &inputs(&results),
    );
    let c = &r.comparisons[0];
    let m = c.mcnemar.unwrap();
    assert_eq!((m.a_only, m.b_only), (10, 5));
    assert!(close(m.p_value, 0.3017578125));
    assert!(close(c.diff, 0.05));
    assert!(!c.decisive, "{c:?}");
}

#[test]
fn the_cheapest_passing_prompt_arm_is_the_one_to_beat() {
    // Two passing prompt arms; the few-shot one costs more (twice the tokens), so the verdict
    // stays with zero-shot although few-shot scores higher.
    let results = run(
        100,
        vec![
            ArmSpec::prompt("zero-shot@api", right(100, 0, 91)),
            ArmSpec::prompt("few-shot@api", right(100, 0, 99)),
            ArmSpec::finetune("lora", right(100, 0, 93)),
        ],
    );
    let mut inputs = inputs(&results);
    inputs.arms.insert(
        "few-shot@api".to_owned(),
        report::ArmPricing::Hosted {
            pricing: Some(domain::Pricing {
                input_per_mtok: 2.0,
                output_per_mtok: 20.0,
            }),
            batch_api: false,
        },
    );
    let r = decide(&results, &assumptions(1000.0), &decision(0.9), &inputs);
    assert_eq!(r.recommended_arm.as_deref(), Some("zero-shot@api"));
    assert_eq!(r.baseline_prompt_arm.as_deref(), Some("zero-shot@api"));
    assert!(
        r.reasons[0].contains("costs the least of the 3 arms that do"),
        "{}",
        r.reasons[0]
    );
    let change = r.would_change.join("\n");
    assert!(
        change.contains(
            "if it fell below, the verdict would be: stay with prompt arm `few-shot@api`"
        ),
        "{change}"
    );
}

#[test]
fn json_carries_the_documented_fields() {
    let r = check(95, 97, 1000.0);
    let json: serde_json::Value =
        serde_json::from_str(&render_report(&r, ReportFormat::Json)).unwrap();
    assert_eq!(json["verdict"], "stay");
    assert_eq!(json["recommended_arm"], "zero-shot@api");
    assert!(
        json["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.is_string())
    );
    for arm in json["arms"].as_array().unwrap() {
        for key in [
            "arm",
            "kind",
            "quality",
            "ci_low",
            "ci_high",
            "cost_per_request_usd",
            "upfront_usd",
            "fixed_monthly_usd",
            "horizon_total_usd",
            "time_to_ship_hours",
            "staff_share",
        ] {
            assert!(!arm[key].is_null(), "arm lacks {key}: {arm}");
        }
        assert!(arm["measured"].is_object(), "measured figures apart: {arm}");
    }
    assert_eq!(json["arms"][1]["kind"], "finetune");
    let b = &json["break_even"][0];
    for key in ["prompt_arm", "finetune_arm", "daily_requests", "formula"] {
        assert!(!b[key].is_null(), "break_even lacks {key}");
    }
    let c = &json["comparisons"][0];
    for key in ["a", "b", "diff", "ci_low", "ci_high", "p_value", "decisive"] {
        assert!(!c[key].is_null(), "comparison lacks {key}");
    }
    let names: Vec<&str> = json["assumptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "daily_requests",
            "horizon_days",
            "hourly_rate_usd",
            "prompt_iteration_hours",
            "data_prep_hours",
            "mlops_hours_per_month",
            "finetune_hourly_usd",
            "serving_mode",
            "utilisation",
            "batch_api",
        ]
    );
    // The fixture declares every field but the serving mode, utilisation and batch_api.
    assert_eq!(json["assumptions"][0]["source"], "declared");
    assert_eq!(json["assumptions"][7]["source"], "default");
    assert_eq!(json["assumptions"][9]["source"], "default");
    let modes: Vec<&str> = json["serving"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["realtime", "batch"]);
    assert_eq!(json["serving"][0]["declared"], true);
}

#[test]
fn undeclared_assumptions_are_marked_by_comparison_with_the_defaults() {
    let results = run(10, vec![ArmSpec::prompt("p@api", right(10, 0, 10))]);
    let costs = domain::CostAssumptions {
        daily_requests: 123.0,
        ..Default::default()
    };
    let r = decide(
        &results,
        &costs,
        &decision(0.9),
        &report::ArmCostInputs::default(),
    );
    let sources: Vec<(String, String)> = r
        .assumptions
        .iter()
        .map(|a| (a.name.clone(), a.source.as_str().to_owned()))
        .collect();
    assert_eq!(
        sources[0],
        ("daily_requests".to_owned(), "declared".to_owned())
    );
    assert!(
        sources[1..].iter().all(|(_, s)| s == "default"),
        "{sources:?}"
    );
}

#[test]
fn text_and_markdown_show_verdict_first_and_sections_apart() {
    let r = check(95, 97, 1000.0);
    let text = render_report(&r, ReportFormat::Text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Decision report: movie-sentiment");
    assert_eq!(lines[3], "VERDICT: STAY with prompt arm `zero-shot@api`");
    for section in [
        "What would change it:",
        "Arms (derived: the measurements below × the assumptions below):",
        "Measured in run 1:",
        "Break-even daily volume:",
        "Assumptions (declared in the spec, or the default):",
    ] {
        assert!(lines.contains(&section), "missing {section}\n{text}");
    }
    assert!(text.contains("`lora` vs `zero-shot@api`: 22,308 requests/day (`zero-shot@api` cheaper below, `lora` above)"), "{text}");
    let md = render_report(&r, ReportFormat::Markdown);
    assert!(
        md.starts_with("# Decision report: movie-sentiment\n"),
        "{md}"
    );
    assert!(
        md.contains("## Verdict: STAY with prompt arm `zero-shot@api`"),
        "{md}"
    );
    assert!(md.contains("| arm | kind | quality |"), "{md}");
}

#[test]
fn html_is_self_contained_and_escapes_every_text() {
    let mut ft = ArmSpec::finetune("lora", right(100, 0, 97));
    ft.answers = vec![(0, "<script>alert(1)</script>\"onload=alert(2)")];
    let mut results = run(
        100,
        vec![ArmSpec::prompt("zero-shot@api", right(100, 0, 95)), ft],
    );
    results.items[1].input = "<img src=x onerror=alert(3)> & 'quotes'".to_owned();
    let r = decide(
        &results,
        &assumptions(1000.0),
        &decision(0.9),
        &inputs(&results),
    );
    let html = report::render_html(&r, &results);

    assert!(
        !html.to_lowercase().contains("<script"),
        "raw script tag in the page"
    );
    assert!(!html.contains("<img"), "raw img tag in the page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;onload=alert(2)"));
    assert!(html.contains("&lt;img src=x onerror=alert(3)&gt; &amp; &#x27;quotes&#x27;"));
    assert!(!html.contains("\"onload"));
    // Nothing to fetch: the only URL is the SVG namespace, and the CSP forbids requests.
    let urls = html.matches("http://").count() + html.matches("https://").count();
    assert_eq!(urls, html.matches("http://www.w3.org/2000/svg").count());
    assert!(html.contains("default-src 'none'"));
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 4);
    // The verdict comes before the charts; the escaped answer sits in the disagreement table.
    let verdict = html.find("STAY with prompt arm").unwrap();
    assert!(verdict < html.find("<svg").unwrap());
    assert!(html.contains("Where <code>zero-shot@api</code> and <code>lora</code> disagree"));
}

#[test]
fn text_report_snapshot() {
    let r = check(95, 97, 1000.0);
    expect_test::expect![[r#"
        Decision report: movie-sentiment
        Run 1 (completed), metric `equals`, quality target 0.900, 100 eval items.

        VERDICT: STAY with prompt arm `zero-shot@api`

          - Stay with prompt arm `zero-shot@api`: it meets the quality target (equals 0.950 ≥ 0.900, 95% CI 0.910–0.990) and costs the least of the 2 arms that do: $1,230 over 365 days at 1,000 requests/day.
          - Quality: fine-tune `lora` scores 0.970 against 0.950 for `zero-shot@api`, a difference of +0.020 (95% CI +0.000 to +0.050, paired bootstrap p = 0.264; McNemar: only `lora` right on 2 items, only `zero-shot@api` on 0, p = 0.500): not decisive.
          - Cost over 365 days at 1,000 requests/day: `zero-shot@api` $1,230 ($0.00200 per request; staff time 41% of it) against `lora` $15,229 ($0.000200 per request, $930.00 a month fixed; staff time 42% of it).
          - Time to ship: `zero-shot@api` 5.0 h (5.0 h staff + 40 s machine); `lora` 42.0 h (40.0 h staff + 2.0 h machine).
          - Prompting's ceiling was not searched: on `equals` the hand-written prompts reach 0.950 with `zero-shot@api` (95% CI 0.910–0.990), best of 1 prompt arm: 100 calls, $0.200 and 40 s. Add an `optimize:` block (seed prompts, demos from the train split, a dev split) to search instructions and demo sets before escalating.

        What would change it:
          - Traffic above 22,308 requests/day (declared: 1,000) would make fine-tune `lora` cheaper over the horizon, and the verdict escalate.
          - `zero-shot@api` clears the target by +0.050 (about 5 more of 100 items right); if it fell below, the verdict would be: escalate to fine-tune `lora`.
          - At 0.1× the declared traffic (100 requests/day): stay with prompt arm `zero-shot@api` (unchanged).
          - At 10× the declared traffic (10,000 requests/day): stay with prompt arm `zero-shot@api` (unchanged).
          - Served in batches (hosted calls at batch-API rates, self-hosted models only for the machine-hours their traffic needs), the verdict would be the same: stay with prompt arm `zero-shot@api` ($865.20 over the horizon).

        Arms (derived: the measurements below × the assumptions below):
          arm                kind  quality       95% CI  meets target  $/request  upfront  fixed/month  horizon total (365 d)  time to ship  staff share
          zero-shot@api    prompt    0.950  0.910–0.990           yes   $0.00200  $500.20        $0.00                 $1,230         5.0 h          41%
          lora           finetune    0.970  0.930–1.000           yes  $0.000200   $4,004      $930.00                $15,229        42.0 h          42%

        Measured in run 1:
          arm            answered  failed  cache hits  eval spend  tokens in/out  compute s/req       price used  eval machine  training  latency p50  latency p95
          zero-shot@api   100/100       0           0      $0.200       1000/100          0.000  $1/$10 per Mtok          40 s         –       400 ms       560 ms
          lora            100/100       0           0     $0.0200       1000/100          0.360  $2/h (declared)          36 s     2.0 h        90 ms       126 ms

        Cost per request:
          - `zero-shot@api`: measured mean tokens 1000.0 in + 100.0 out × price $1/$10 per Mtok
          - `lora`: measured 0.360 compute s per request × $2/h

        Serving in real time and in batches:
          arm            realtime (declared): $/request    realtime (declared): horizon total  batch: $/request                  batch: horizon total
          zero-shot@api                        $0.00200                                $1,230          $0.00100                               $865.20
          lora                                $0.000200                               $15,229         $0.000167                                $6,463
          verdict                                        stay with prompt arm `zero-shot@api`                    stay with prompt arm `zero-shot@api`

        Break-even daily volume:
          - `lora` vs `zero-shot@api`: 22,308 requests/day (`zero-shot@api` cheaper below, `lora` above)
              daily_requests = (A_ft − A_p) / (H × (c_p − c_ft)), A = upfront + H/30.4375 × fixed_monthly, H = 365 days: (($4004.02 + 11.9918 × $930) − ($500.2 + 11.9918 × $0)) / (365 × ($0.002 − $0.0002)) = $14656.2 / $0.657 = 22307.7 requests/day

        Paired comparisons on the same 100 items:
          a                 b   a − b            95% CI      p  McNemar (a only / b only, p)      decisive
          lora  zero-shot@api  +0.020  +0.000 to +0.050  0.264              2 / 0, p = 0.500  not decisive

        Verdict at other traffic:
          - 0.1× (100 requests/day): stay with prompt arm `zero-shot@api`
          - 10× (10,000 requests/day): stay with prompt arm `zero-shot@api`

        Assumptions (declared in the spec, or the default):
          assumption                 value                              unit    source
          daily_requests             1,000                      requests/day  declared
          horizon_days                 365                              days  declared
          hourly_rate_usd              100                 USD/engineer-hour  declared
          prompt_iteration_hours         5                    engineer-hours  declared
          data_prep_hours               40                    engineer-hours  declared
          mlops_hours_per_month          2              engineer-hours/month  declared
          finetune_hourly_usd            1   USD/hour of the serving machine  declared
          serving_mode            realtime          how production is served   default
          utilisation                  0.6  share of a batch machine's hours   default
          batch_api                  false        hosted calls at half price   default
    "#]].assert_eq(&render_report(&r, ReportFormat::Text));
}

/// A run an earlier version stored without its settings or its arms' pricing still reports: on
/// the defaults and inferred prices, and says so in its warnings.
#[test]
fn a_run_stored_without_settings_or_pricing_reports_on_defaults_and_says_so() {
    let mut results = run(
        100,
        vec![
            ArmSpec::prompt("zero-shot@api", right(100, 0, 95)),
            ArmSpec::finetune("lora", right(100, 0, 97)),
        ],
    );
    results.run.settings = None;
    for arm in &mut results.arms {
        arm.pricing = None;
    }
    let assumed = report::assumed_settings(&results);
    assert!(assumed.note.as_deref().unwrap().contains("defaults"));
    assert_eq!(assumed.settings.costs, domain::CostAssumptions::default());
    assert_eq!(assumed.settings.decision.metric, "equals");
    assert_eq!(
        assumed.settings.decision.quality_target,
        domain::Decision::DEFAULT_QUALITY_TARGET
    );
    let unrecorded = inputs(&results);
    assert!(unrecorded.arms.is_empty() && unrecorded.declared.is_none());
    let r = decide(
        &results,
        &assumed.settings.costs,
        &assumed.settings.decision,
        &unrecorded,
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("no stored cost assumptions")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("pricing of zero-shot@api, lora was not stored")),
        "{:?}",
        r.warnings
    );
    // The fine-tune's hourly price is inferred from its recorded calls: $2/h.
    assert!(close(r.arms[1].cost.cost_per_request_usd, 0.0002));

    // The same run with what this version stores has no such warnings.
    let stored = run(
        100,
        vec![
            ArmSpec::prompt("zero-shot@api", right(100, 0, 95)),
            ArmSpec::finetune("lora", right(100, 0, 97)),
        ],
    );
    assert_eq!(report::assumed_settings(&stored).note, None);
    let r = decide(
        &stored,
        &assumptions(1000.0),
        &decision(0.9),
        &inputs(&stored),
    );
    assert!(!r.warnings.iter().any(|w| w.contains("not stored")));
}
