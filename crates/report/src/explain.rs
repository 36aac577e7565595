//! The verdict in words: the reasons behind it (quality gap and its significance, cost at the
//! declared traffic, time-to-ship) and what would change it (a traffic level, a quality gap, the
//! recommended arm slipping below the target, a tenth or ten times the traffic).
//!
//! It only writes sentences about a finished [`DecisionReport`]; the verdict rule itself lives in
//! `decision`, whose `pick` it reuses to say what the verdict would be under other conditions.

use domain::{ArmKind, CostAssumptions};

use crate::break_even::BreakEven;
use crate::decision::{
    ArmReport, DecisionReport, EPS, PairedComparison, Verdict, pick, verdict_of,
};
use crate::figures::{count, duration, factor, hours, percent, quality, signed, usd};
use crate::format::p_value as sentence_p;

/// Writes the reasons and the "what would change it" sentences.
pub(crate) struct Explainer<'a> {
    /// The report so far: everything but the sentences.
    pub r: &'a DecisionReport,
    pub costs: &'a CostAssumptions,
    /// Eval items, to turn a quality gap into a count of items.
    pub items: usize,
}

impl Explainer<'_> {
    /// The reasons and the "what would change it" sentences, given the indices (into `r.arms`)
    /// of the recommended arm and of the prompt arm to beat.
    pub(crate) fn explain(
        &self,
        recommended: Option<usize>,
        baseline: Option<usize>,
    ) -> (Vec<String>, Vec<String>) {
        let mut reasons = Vec::new();
        let mut change = Vec::new();
        let arms = &self.r.arms;
        match recommended {
            Some(rec) if arms[rec].kind == ArmKind::Prompt => {
                reasons.push(format!(
                    "Stay with prompt arm `{}`: it meets the quality target ({}) and {}",
                    arms[rec].arm,
                    self.quality_vs_target(rec),
                    self.cheapest_clause(rec)
                ));
                for (f, ft) in self.finetunes() {
                    reasons.extend(self.comparison_sentence(&ft.arm));
                    if !ft.meets_target {
                        reasons.push(format!(
                            "`{}` misses the target by {}.",
                            ft.arm,
                            quality(self.r.quality_target - ft.quality)
                        ));
                    }
                    reasons.push(self.cost_sentence(&[rec, f]));
                    change.extend(self.stay_flip(rec, f));
                }
                reasons.push(self.ship_sentence(rec));
            }
            Some(rec) => {
                let tail = match baseline {
                    Some(p) if arms[p].meets_target => format!(
                        "costs less over {} days at {} requests/day than prompt arm `{}` ({} against {}), which meets it too.",
                        count(self.costs.horizon_days),
                        count(self.costs.daily_requests),
                        arms[p].arm,
                        usd(arms[rec].cost.horizon_total_usd),
                        usd(arms[p].cost.horizon_total_usd)
                    ),
                    Some(p) => format!(
                        "the best prompt arm, `{}`, misses it ({} {}).",
                        arms[p].arm,
                        self.r.metric,
                        quality(arms[p].quality)
                    ),
                    None => "the experiment has no prompt arm to stay with.".to_owned(),
                };
                reasons.push(format!(
                    "Escalate to fine-tune `{}`: it meets the quality target ({}), and {tail}",
                    arms[rec].arm,
                    self.quality_vs_target(rec),
                ));
                reasons.extend(self.comparison_sentence(&arms[rec].arm));
                if let Some(p) = baseline {
                    let undecided = self.comparison(&arms[rec].arm).is_some_and(|c| !c.decisive);
                    if !arms[p].meets_target && undecided {
                        reasons.push(format!(
                            "Caution: the gain over `{}` is not decisive (its 95% CI contains 0); more eval items would settle it before committing.",
                            arms[p].arm
                        ));
                    }
                    reasons.push(self.cost_sentence(&[p, rec]));
                    change.extend(self.escalate_flip(rec, p));
                } else {
                    reasons.push(self.cost_sentence(&[rec]));
                }
                reasons.push(self.ship_sentence(rec));
            }
            None => {
                if let Some(c) = &self.r.closest {
                    reasons.push(format!(
                        "Neither: no arm meets the quality target of {} on `{}`. The closest is `{}` at {}, {} short.",
                        quality(self.r.quality_target),
                        self.r.metric,
                        c.arm,
                        quality(c.quality),
                        quality(c.gap)
                    ));
                    change.push(format!(
                        "`{}` needs {}{} to reach the target.",
                        c.arm,
                        signed(c.gap),
                        self.items_clause(c.gap)
                    ));
                    let lowered = c.quality;
                    let pick = pick(arms, &self.totals(), lowered, |_| true);
                    change.push(format!(
                        "At a target of {}, the verdict would be: {}.",
                        quality(lowered),
                        describe(arms, pick)
                    ));
                } else {
                    reasons.push("Neither: the run has no arms.".to_owned());
                }
                for (_, ft) in self.finetunes() {
                    reasons.extend(self.comparison_sentence(&ft.arm));
                }
            }
        }
        if let Some(rec) = recommended {
            change.push(self.margin_sentence(rec));
        }
        change.extend(self.sensitivity_sentences());
        (reasons, change)
    }

    /// Each arm's horizon total at the declared traffic, in `r.arms` order.
    fn totals(&self) -> Vec<f64> {
        self.r
            .arms
            .iter()
            .map(|a| a.cost.horizon_total_usd)
            .collect()
    }

    /// How far the recommended arm clears the target, and the verdict without it.
    fn margin_sentence(&self, rec: usize) -> String {
        let arms = &self.r.arms;
        let margin = arms[rec].quality - self.r.quality_target;
        let without = pick(arms, &self.totals(), self.r.quality_target, |i| i != rec);
        format!(
            "`{}` clears the target by {}{}; if it fell below, the verdict would be: {}.",
            arms[rec].arm,
            signed(margin),
            self.items_clause(margin),
            describe(arms, without)
        )
    }

    fn finetunes(&self) -> impl Iterator<Item = (usize, &ArmReport)> {
        self.r
            .arms
            .iter()
            .enumerate()
            .filter(|(_, a)| a.kind == ArmKind::Finetune)
    }

    fn comparison(&self, finetune: &str) -> Option<&PairedComparison> {
        self.r.comparisons.iter().find(|c| c.a == finetune)
    }

    fn break_even(&self, finetune: &str) -> Option<&BreakEven> {
        self.r
            .break_even
            .iter()
            .find(|b| b.finetune_arm == finetune)
    }

    fn quality_vs_target(&self, i: usize) -> String {
        let a = &self.r.arms[i];
        let reviewed = if a.review.is_some() {
            " with review"
        } else {
            ""
        };
        format!(
            "{}{reviewed} {} ≥ {}, 95% CI {}–{}",
            self.r.metric,
            quality(a.quality),
            quality(self.r.quality_target),
            quality(a.ci_low),
            quality(a.ci_high)
        )
    }

    fn cheapest_clause(&self, i: usize) -> String {
        let passing = self.r.arms.iter().filter(|a| a.meets_target).count();
        let total = usd(self.r.arms[i].cost.horizon_total_usd);
        let volume = format!(
            "over {} days at {} requests/day",
            count(self.costs.horizon_days),
            count(self.costs.daily_requests)
        );
        if passing == 1 {
            format!("is the only arm that does; it costs {total} {volume}.")
        } else {
            format!("costs the least of the {passing} arms that do: {total} {volume}.")
        }
    }

    fn comparison_sentence(&self, finetune: &str) -> Option<String> {
        let c = self.comparison(finetune)?;
        let mcnemar = c
            .mcnemar
            .as_ref()
            .map(|m| {
                format!(
                    "; McNemar: only `{}` right on {} items, only `{}` on {}, {}",
                    c.a,
                    m.a_only,
                    c.b,
                    m.b_only,
                    sentence_p(m.p_value)
                )
            })
            .unwrap_or_default();
        Some(format!(
            "Quality: fine-tune `{}` scores {} against {} for `{}`, a difference of {} (95% CI {} to {}, paired bootstrap {}{mcnemar}): {}.",
            c.a,
            quality(c.quality_a),
            quality(c.quality_b),
            c.b,
            signed(c.diff),
            signed(c.ci_low),
            signed(c.ci_high),
            sentence_p(c.p_value),
            if c.decisive {
                "decisive"
            } else {
                "not decisive"
            }
        ))
    }

    fn cost_sentence(&self, which: &[usize]) -> String {
        let parts: Vec<String> = which
            .iter()
            .map(|&i| {
                let a = &self.r.arms[i];
                let fixed = if a.cost.fixed_monthly_usd > 0.0 {
                    format!(", {} a month fixed", usd(a.cost.fixed_monthly_usd))
                } else {
                    String::new()
                };
                format!(
                    "`{}` {} ({} per request{fixed}; staff time {} of it)",
                    a.arm,
                    usd(a.cost.horizon_total_usd),
                    usd(a.cost.cost_per_request_usd),
                    percent(a.cost.staff_share)
                )
            })
            .collect();
        format!(
            "Cost over {} days at {} requests/day: {}.",
            count(self.costs.horizon_days),
            count(self.costs.daily_requests),
            parts.join(" against ")
        )
    }

    fn ship_sentence(&self, rec: usize) -> String {
        let parts: Vec<String> = self
            .r
            .arms
            .iter()
            .enumerate()
            .filter(|(i, a)| {
                *i == rec || a.shippable() && (a.kind != self.r.arms[rec].kind || a.meets_target)
            })
            .map(|(_, a)| {
                format!(
                    "`{}` {} ({} staff + {} machine)",
                    a.arm,
                    hours(a.cost.time_to_ship_hours),
                    hours(a.cost.breakdown.human_hours),
                    duration(a.cost.breakdown.machine_hours * 3600.0)
                )
            })
            .collect();
        format!("Time to ship: {}.", parts.join("; "))
    }

    fn items_clause(&self, gap: f64) -> String {
        if self.r.binary_metric && self.items > 0 {
            let n = (gap * self.items as f64 - EPS).ceil().max(1.0);
            format!(" (about {} more of {} items right)", count(n), self.items)
        } else {
            String::new()
        }
    }

    /// What would turn a `stay` with prompt arm `rec` into escalating to fine-tune `f`.
    fn stay_flip(&self, rec: usize, f: usize) -> Option<String> {
        let arms = &self.r.arms;
        let (p, ft) = (&arms[rec], &arms[f]);
        let b = self.break_even(&ft.arm)?;
        if b.prompt_arm != p.arm {
            return None;
        }
        let declared = self.costs.daily_requests;
        Some(if ft.meets_target {
            match b.daily_requests {
                Some(v) if v > declared => format!(
                    "Traffic above {} requests/day (declared: {}) would make fine-tune `{}` cheaper over the horizon, and the verdict escalate.",
                    count(v),
                    count(declared),
                    ft.arm
                ),
                Some(v) => format!(
                    "Traffic below {} requests/day (declared: {}) would make fine-tune `{}` cheaper over the horizon, and the verdict escalate.",
                    count(v),
                    count(declared),
                    ft.arm
                ),
                None => format!(
                    "Fine-tune `{}` meets the target too, but costs more than `{}` at every volume (break-even: never); no traffic level changes the verdict between them.",
                    ft.arm, p.arm
                ),
            }
        } else {
            let gap = self.r.quality_target - ft.quality;
            let cheaper_now = ft.cost.horizon_total_usd < p.cost.horizon_total_usd;
            let then = if cheaper_now {
                format!(
                    "at the declared traffic it already costs less ({} against {}), so the verdict would become escalate",
                    usd(ft.cost.horizon_total_usd),
                    usd(p.cost.horizon_total_usd)
                )
            } else {
                match b.daily_requests {
                    Some(v) => format!(
                        "even then it would cost more at the declared traffic, and would be cheaper only {} {} requests/day",
                        if b.cheaper_at_high_volume == ft.arm {
                            "above"
                        } else {
                            "below"
                        },
                        count(v)
                    ),
                    None => "even then it would cost more at every volume".to_owned(),
                }
            };
            format!(
                "Fine-tune `{}` would need {}{} to reach the target; {then}.",
                ft.arm,
                signed(gap),
                self.items_clause(gap)
            )
        })
    }

    /// What would turn escalating to fine-tune `rec` into staying with prompt arm `p`.
    fn escalate_flip(&self, rec: usize, p: usize) -> Option<String> {
        let arms = &self.r.arms;
        let b = self.break_even(&arms[rec].arm)?;
        let declared = self.costs.daily_requests;
        Some(if arms[p].meets_target {
            match b.daily_requests {
                Some(v) => format!(
                    "Traffic {} {} requests/day (declared: {}) would make prompt arm `{}` cheaper over the horizon, and the verdict stay.",
                    if v < declared { "below" } else { "above" },
                    count(v),
                    count(declared),
                    arms[p].arm
                ),
                None => format!(
                    "Prompt arm `{}` costs more than `{}` at every volume (break-even: never); no traffic level changes the verdict between them.",
                    arms[p].arm, arms[rec].arm
                ),
            }
        } else {
            let gap = self.r.quality_target - arms[p].quality;
            let cheaper = arms[p].cost.horizon_total_usd <= arms[rec].cost.horizon_total_usd;
            let then = if cheaper {
                format!(
                    "it would cost less at the declared traffic ({} against {}), so the verdict would become stay",
                    usd(arms[p].cost.horizon_total_usd),
                    usd(arms[rec].cost.horizon_total_usd)
                )
            } else {
                let unless = match b.daily_requests {
                    Some(v) => format!(
                        " (it would be cheaper only {} {} requests/day)",
                        if b.cheaper_at_low_volume == arms[p].arm {
                            "below"
                        } else {
                            "above"
                        },
                        count(v)
                    ),
                    None => String::new(),
                };
                format!(
                    "it would still cost more at the declared traffic ({} against {}), so the verdict would stay escalate{unless}",
                    usd(arms[p].cost.horizon_total_usd),
                    usd(arms[rec].cost.horizon_total_usd)
                )
            };
            format!(
                "If prompt arm `{}` gained {}{} and reached the target, {then}.",
                arms[p].arm,
                signed(gap),
                self.items_clause(gap)
            )
        })
    }

    fn sensitivity_sentences(&self) -> Vec<String> {
        self.r
            .sensitivity
            .iter()
            .map(|s| {
                let same =
                    s.verdict == self.r.verdict && s.recommended_arm == self.r.recommended_arm;
                format!(
                    "At {} the declared traffic ({} requests/day): {}{}.",
                    factor(s.factor),
                    count(s.daily_requests),
                    describe_named(s.verdict, s.recommended_arm.as_deref()),
                    if same { " (unchanged)" } else { "" }
                )
            })
            .collect()
    }
}

fn describe(arms: &[ArmReport], pick: Option<usize>) -> String {
    describe_named(verdict_of(arms, pick), pick.map(|i| arms[i].arm.as_str()))
}

/// "stay with prompt arm `x`", "escalate to fine-tune `y`", or "neither".
pub(crate) fn describe_named(verdict: Verdict, arm: Option<&str>) -> String {
    match (verdict, arm) {
        (Verdict::Stay, Some(a)) => format!("stay with prompt arm `{a}`"),
        (Verdict::Escalate, Some(a)) => format!("escalate to fine-tune `{a}`"),
        _ => "neither (no arm meets the target)".to_owned(),
    }
}
