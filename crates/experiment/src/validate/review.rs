//! `review:` against the data: the calibration split and the test split it leaves must both be
//! non-empty, and the calibration split large enough that some threshold can pass at all.

use domain::ReviewSpec;

use crate::decode::{Ctx, Spanned};

/// Fewest calibration answers that can pass at `target` with `delta`, even all right: the
/// smallest `n` with `target^n ≤ delta` (as `scoring::select_threshold` computes it).
fn fewest_that_can_pass(spec: &ReviewSpec) -> usize {
    (spec.delta.ln() / spec.target_accuracy.ln()).ceil() as usize
}

pub(super) fn check(cx: &mut Ctx<'_>, review: &Spanned<ReviewSpec>, eval_rows: usize) {
    let spec = &review.value;
    let calibration = (spec.calibration * eval_rows as f64).round() as usize;
    let test = eval_rows.saturating_sub(calibration);
    if calibration == 0 || test == 0 {
        cx.error(
            review.pos,
            format!(
                "`review.calibration` {} of {eval_rows} eval items leaves {calibration} to \
                 calibrate and {test} to measure: both need items",
                spec.calibration
            ),
        );
        return;
    }
    let needed = fewest_that_can_pass(spec);
    if calibration < needed {
        cx.error(
            review.pos,
            format!(
                "`review`: the calibration split holds {calibration} of {eval_rows} eval items, \
                 and at `target_accuracy` {} with `delta` {} no threshold can pass on fewer than \
                 {needed}: add eval items, raise `calibration`, or lower the target",
                spec.target_accuracy, spec.delta
            ),
        );
    }
}
