//! `optimize:` entries read with their positions: which prompts seed the search, on which
//! providers, the extra and proposed instructions, the demo sets, the dev split and the search's
//! own budget. Whether the ids they name exist, and whether the budget buys a search at all, is
//! checked in `validate`.

use super::id;
use crate::decode::{Ctx, Spanned, fields};
use crate::yaml::{Node, Pos};

const OPTIMIZE: &[&str] = &[
    "id",
    "from",
    "providers",
    "instructions",
    "propose",
    "demos",
    "dev",
    "budget",
];
const PROPOSE: &[&str] = &["provider", "n"];
const DEMOS: &[&str] = &["max", "candidates", "bootstrap"];
const BUDGET: &[&str] = &["max_calls", "max_cost_usd"];

/// Defaults: demo sets of up to 4 rows, 8 of them; 50 dev items; 2,000 calls.
const DEFAULT_DEMOS_MAX: usize = 4;
const DEFAULT_DEMO_SETS: usize = 8;
const DEFAULT_DEV: usize = 50;
const DEFAULT_MAX_CALLS: usize = 2000;
/// Most instructions one proposal call may ask for.
const MAX_PROPOSED: usize = 32;

pub(crate) struct RawOptimize {
    pub pos: Pos,
    pub id: Option<Spanned<String>>,
    pub from: Vec<Spanned<String>>,
    pub providers: Option<Vec<Spanned<String>>>,
    pub instructions: Vec<String>,
    pub propose: Option<(Spanned<String>, usize)>,
    pub demos_max: Spanned<usize>,
    pub demo_sets: usize,
    /// `demos.bootstrap`: train rows the first seed answers first (0: off).
    pub bootstrap: Spanned<usize>,
    pub dev: Spanned<usize>,
    pub max_calls: Spanned<usize>,
    pub max_cost_usd: Option<f64>,
}

pub(super) fn optimize(cx: &mut Ctx<'_>, node: &Node) -> Option<RawOptimize> {
    let f = fields(cx, node, "an `optimize` entry", OPTIMIZE, &[])?;
    let id = id(cx, &f, true);
    let names = |cx: &mut Ctx<'_>, key: &str| {
        f.strings(cx, key, true)
            .map(|l| (l.pos, l.value))
            .unwrap_or((f.pos, Vec::new()))
    };
    let (from_pos, from) = names(cx, "from");
    if from.is_empty() {
        cx.error(
            from_pos,
            "`optimize` needs `from`: the prompts whose instructions and template seed the search",
        );
    }
    let providers = f.get("providers").map(|_| names(cx, "providers").1);
    let instructions = f
        .strings(cx, "instructions", true)
        .map(|l| l.value.into_iter().map(|s| s.value).collect())
        .unwrap_or_default();
    let propose = f.get("propose").and_then(|n| {
        let p = fields(cx, n, "`propose`", PROPOSE, &[])?;
        let provider = p.req_string(cx, "provider")?;
        let n = p.usize_in(cx, "n", 1, MAX_PROPOSED).map_or(8, |s| s.value);
        Some((provider, n))
    });
    let at = |value| Spanned { value, pos: f.pos };
    let (demos_max, demo_sets, bootstrap) = match f
        .get("demos")
        .and_then(|n| fields(cx, n, "`demos`", DEMOS, &[]))
    {
        Some(d) => (
            d.usize_in(cx, "max", 0, 64).unwrap_or(Spanned {
                value: DEFAULT_DEMOS_MAX,
                pos: d.pos,
            }),
            d.usize_in(cx, "candidates", 0, 1000)
                .map_or(DEFAULT_DEMO_SETS, |s| s.value),
            d.usize_in(cx, "bootstrap", 0, 100_000).unwrap_or(Spanned {
                value: 0,
                pos: d.pos,
            }),
        ),
        None => (at(DEFAULT_DEMOS_MAX), DEFAULT_DEMO_SETS, at(0)),
    };
    let dev = f.usize(cx, "dev", 1).unwrap_or(at(DEFAULT_DEV));
    let (max_calls, max_cost_usd) = match f
        .get("budget")
        .and_then(|n| fields(cx, n, "`optimize.budget`", BUDGET, &[]))
    {
        Some(b) => (
            b.usize(cx, "max_calls", 1).unwrap_or(Spanned {
                value: DEFAULT_MAX_CALLS,
                pos: b.pos,
            }),
            b.number(cx, "max_cost_usd", |x| x >= 0.0, "zero or more")
                .map(|s| s.value),
        ),
        None => (at(DEFAULT_MAX_CALLS), None),
    };
    Some(RawOptimize {
        pos: f.pos,
        id,
        from,
        providers,
        instructions,
        propose,
        demos_max,
        demo_sets,
        bootstrap,
        dev,
        max_calls,
        max_cost_usd,
    })
}
